//! Thread-per-core in the core: several shards (`ShardNode`s, as the shells run them) on one
//! in-memory disk, their messages to each other delivered in order, or the brokers' own held to
//! show what waits for what.

use super::*;
use crate::batch::{self, tests::make_batch};
use crate::errors;
use crate::memory_disk::MemoryDisk;
use crate::node::{home_shard, NodeOutput, PeerMessage, ShardNode};
use crate::shard::tests::fetch_request;
use crate::shard::{owner, Answer};
use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const SHARDS: usize = 2;

struct Shards {
    /// Each shard as the shells run it: its broker and router (`ShardNode`).
    nodes: Vec<ShardNode>,
    disk: MemoryDisk,
    now_ms: i64,
    /// What clients were answered, by connection.
    answers: Vec<(ConnId, Answer)>,
    /// The brokers' own messages to this shard are held until released.
    hold_to: Option<usize>,
    held: Vec<(usize, usize, PeerMessage)>,
    next_correlation: i32,
    reports: Vec<StartupReport>,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

impl Shards {
    /// Every shard started up on `disk`, the control shard last (as the shell does).
    fn start(mut disk: MemoryDisk) -> Shards {
        let (brokers, reports): (Vec<Broker>, Vec<StartupReport>) =
            Broker::start_shards(&Config::default(), SHARDS, &mut disk, 1_000_000)
                .unwrap()
                .into_iter()
                .unzip();
        let mut shards = Shards {
            nodes: brokers.into_iter().map(ShardNode::new).collect(),
            disk,
            now_ms: 1_000_000,
            answers: Vec::new(),
            hold_to: None,
            held: Vec::new(),
            next_correlation: 1,
            reports,
        };
        shards.step();
        shards
    }

    fn broker(&self, shard: usize) -> &Broker {
        self.nodes[shard].broker()
    }

    /// Performs every output of every shard until none is left: messages between shards
    /// arrive in order, at once.
    fn step(&mut self) {
        loop {
            let mut progress = false;
            for shard in 0..SHARDS {
                while let Some(output) = self.nodes[shard].poll_output() {
                    progress = true;
                    match output {
                        NodeOutput::ToConnection { conn, answer } => {
                            self.answers.push((conn, answer))
                        }
                        NodeOutput::Io(command) => {
                            let result = self.disk.perform(command.op);
                            self.nodes[shard].handle_io_done(self.now_ms, command.token, result);
                        }
                        NodeOutput::Log { .. } => {}
                        NodeOutput::ToNode { node, .. } => {
                            panic!("no quorum, yet a message to {node}")
                        }
                        NodeOutput::ToBroker { node, .. } => {
                            panic!("no quorum, yet a request to broker {node}")
                        }
                        NodeOutput::ToShard { shard: to, message } => {
                            let core = matches!(message, PeerMessage::Core(_));
                            if core && self.hold_to == Some(to) {
                                self.held.push((shard, to, message));
                            } else {
                                self.nodes[to].handle_peer_message(self.now_ms, shard, message);
                            }
                        }
                    }
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn release(&mut self) {
        self.hold_to = None;
        for (from, to, message) in std::mem::take(&mut self.held) {
            self.nodes[to].handle_peer_message(self.now_ms, from, message);
        }
        self.step();
    }

    fn frame<R: Encodable>(&mut self, api_key: ApiKey, version: i16, request: &R) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.next_correlation)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        self.next_correlation += 1;
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        request.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    /// A client's request, on the connection's home shard (which routes it).
    fn send<R: Encodable>(&mut self, conn: ConnId, api_key: ApiKey, version: i16, request: &R) {
        let frame = self.frame(api_key, version, request);
        let home = home_shard(conn, SHARDS);
        self.nodes[home].handle_request(self.now_ms, conn, frame);
        self.step();
    }

    /// The connection's answer, if it came, decoded as `R`.
    fn response<R: Decodable>(&mut self, conn: ConnId, api_key: ApiKey, version: i16) -> Option<R> {
        let at = self.answers.iter().position(|(c, _)| *c == conn)?;
        let (_, answer) = self.answers.remove(at);
        let Answer::Respond(frame) = answer else {
            panic!("connection {conn} got {answer:?}");
        };
        let mut body = frame.slice(4..);
        ResponseHeader::decode(&mut body, api_key.response_header_version(version)).unwrap();
        Some(R::decode(&mut body, version).unwrap())
    }

    fn create_topic(&mut self, topic: &str, partitions: i32) {
        let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)]);
        self.send(9, ApiKey::CreateTopics, 7, &request);
        let response: CreateTopicsResponse = self.response(9, ApiKey::CreateTopics, 7).unwrap();
        assert_eq!(response.topics[0].error_code, errors::NONE);
    }

    /// One batch of `values` to each partition, in one request.
    fn produce(&mut self, topic: &str, partitions: &[i32], values: &[&[u8]]) -> ProduceResponse {
        let data = partitions
            .iter()
            .map(|&p| {
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(Bytes::from(make_batch(values, 1_000))))
            })
            .collect();
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(data)]);
        self.send(1, ApiKey::Produce, 9, &request);
        self.response(1, ApiKey::Produce, 9)
            .expect("a produce answer")
    }

    fn fetch(&mut self, topic: &str, partitions: &[i32], offset: i64) -> FetchResponse {
        let request = fetch_request(topic, partitions, offset, 500);
        self.send(2, ApiKey::Fetch, 12, &request);
        self.response(2, ApiKey::Fetch, 12).expect("a fetch answer")
    }

    fn earliest(&mut self, topic: &str, partition: i32) -> i64 {
        let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-2)])]);
        self.send(3, ApiKey::ListOffsets, 7, &request);
        let response: ListOffsetsResponse = self.response(3, ApiKey::ListOffsets, 7).unwrap();
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, errors::NONE);
        partition.offset
    }

    /// A clean shutdown of every shard, then a start on the same disk.
    fn restart(mut self) -> Shards {
        self.nodes[0].begin_shutdown();
        self.step();
        assert!(self.nodes.iter().all(|n| !n.is_flushing()));
        Shards::start(self.disk)
    }
}

/// The first `n` partitions of `topic` that `shard` owns.
fn owned(topic: &str, shard: usize, n: usize) -> Vec<i32> {
    (0..)
        .filter(|&p| owner(topic, p, SHARDS) == shard)
        .take(n)
        .collect()
}

fn records(response: &FetchResponse) -> Vec<(i32, usize)> {
    response.responses[0]
        .partitions
        .iter()
        .map(|p| {
            let bytes = p.records.clone().unwrap_or_default();
            let count = batch::validate_all(&bytes).map_or(0, |batches| {
                batches.iter().map(|b| b.records_count as usize).sum()
            });
            (p.partition_index, count)
        })
        .collect()
}

#[test]
fn a_topic_is_answered_once_every_shard_runs_on_it_and_each_partition_lives_on_its_owner() {
    let mut shards = Shards::start(MemoryDisk::default());
    shards.hold_to = Some(1);
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name("t"))
        .with_num_partitions(4)
        .with_replication_factor(-1)]);
    shards.send(9, ApiKey::CreateTopics, 7, &request);
    assert!(
        shards.answers.is_empty(),
        "answered before shard 1 had the topic"
    );
    assert!(shards.broker(1).high_watermark("t", 0).is_none());
    shards.release();
    let created: CreateTopicsResponse = shards.response(9, ApiKey::CreateTopics, 7).unwrap();
    assert_eq!(created.topics[0].error_code, errors::NONE);

    let all = [0, 1, 2, 3];
    let produced = shards.produce("t", &all, &[b"a", b"b"]);
    for p in &produced.responses[0].partition_responses {
        assert_eq!((p.error_code, p.base_offset), (errors::NONE, 0), "{p:?}");
    }
    for p in all {
        let mine = owner("t", p, SHARDS);
        assert_eq!(shards.broker(mine).high_watermark("t", p), Some(2));
        assert_eq!(shards.broker(1 - mine).high_watermark("t", p), Some(0));
    }
    // Each partition's segment was written by its owner only, once.
    let segments = shards
        .disk
        .files
        .keys()
        .filter(|path| path.ends_with(".log") && path.starts_with("t."))
        .count();
    assert_eq!(segments, 4);
    let fetched = shards.fetch("t", &all, 0);
    assert_eq!(records(&fetched), vec![(0, 2), (1, 2), (2, 2), (3, 2)]);

    let mut shards = shards.restart();
    assert!(
        shards.reports.iter().all(|r| r.clean),
        "a clean start on every shard"
    );
    assert_eq!(records(&shards.fetch("t", &all, 0)), records(&fetched));
    let produced = shards.produce("t", &all, &[b"c"]);
    assert!(produced.responses[0]
        .partition_responses
        .iter()
        .all(|p| p.base_offset == 2));
}

#[test]
fn a_split_fetch_answers_at_the_first_shard_with_data() {
    let mut shards = Shards::start(MemoryDisk::default());
    shards.create_topic("f", 2);
    let (a, b) = (owned("f", 0, 1)[0], owned("f", 1, 1)[0]);
    // Nothing yet: both parts wait.
    let request = fetch_request("f", &[a, b], 0, 10_000);
    shards.send(2, ApiKey::Fetch, 12, &request);
    assert!(shards.answers.is_empty());
    // Data on shard 1's partition: its part answers, shard 0's is woken, the client answered.
    shards.produce("f", &[b], &[b"x"]);
    let fetched: FetchResponse = shards
        .response(2, ApiKey::Fetch, 12)
        .expect("answered at once");
    assert_eq!(records(&fetched), vec![(a, 0), (b, 1)]);
}

#[test]
fn delete_records_on_another_shard_waits_for_the_control_shard_to_persist_it() {
    let mut shards = Shards::start(MemoryDisk::default());
    shards.create_topic("d", 2);
    let p = owned("d", 1, 1)[0];
    shards.produce("d", &[p], &[b"1", b"2", b"3"]);
    shards.hold_to = Some(0);
    let request = DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
        .with_name(name("d"))
        .with_partitions(vec![DeleteRecordsPartition::default()
            .with_partition_index(p)
            .with_offset(2)])]);
    shards.send(4, ApiKey::DeleteRecords, 2, &request);
    assert!(
        shards.answers.is_empty(),
        "answered before it was persisted"
    );
    shards.release();
    let deleted: DeleteRecordsResponse = shards.response(4, ApiKey::DeleteRecords, 2).unwrap();
    let result = &deleted.topics[0].partitions[0];
    assert_eq!((result.error_code, result.low_watermark), (errors::NONE, 2));
    let mut shards = shards.restart();
    assert_eq!(shards.earliest("d", p), 2);
}

#[test]
fn the_clean_shutdown_mark_waits_for_every_shard() {
    let mut shards = Shards::start(MemoryDisk::default());
    shards.create_topic("m", 2);
    shards.produce("m", &[0, 1], &[b"x"]);
    shards.hold_to = Some(0);
    shards.nodes[0].begin_shutdown();
    shards.step();
    assert!(!shards.nodes[1].is_flushing(), "shard 1 checkpointed");
    assert!(
        shards.nodes[0].is_flushing(),
        "shard 0 waits for shard 1's word"
    );
    assert!(!shards
        .disk
        .files
        .contains_key(crate::io::CLEAN_SHUTDOWN_FILE));
    shards.release();
    assert!(!shards.nodes[0].is_flushing());
    assert!(shards
        .disk
        .files
        .contains_key(crate::io::CLEAN_SHUTDOWN_FILE));
    let shards = Shards::start(shards.disk);
    assert!(shards
        .reports
        .iter()
        .all(|r| r.clean && r.scanned.is_empty()));
}

#[test]
fn a_request_on_the_wrong_shard_is_refused() {
    let mut shards = Shards::start(MemoryDisk::default());
    shards.create_topic("w", 2);
    let p = owned("w", 1, 1)[0];
    // A produce for shard 1's partition handed to shard 0, as if shard 1's router sent it
    // there.
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name("w"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(Bytes::from(make_batch(&[b"x"], 1))))])]);
    let frame = shards.frame(ApiKey::Produce, 9, &request);
    let misrouted = PeerMessage::Request { conn: 5, frame };
    shards.nodes[0].handle_peer_message(shards.now_ms, 1, misrouted);
    shards.step();
    let response: ProduceResponse = shards.response(5, ApiKey::Produce, 9).unwrap();
    let result = &response.responses[0].partition_responses[0];
    assert_eq!(result.error_code, errors::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(shards.broker(0).high_watermark("w", p), Some(0));
    // A control request handed to shard 1: it closes the connection.
    let frame = shards.frame(ApiKey::Metadata, 12, &MetadataRequest::default());
    let misrouted = PeerMessage::Request { conn: 6, frame };
    shards.nodes[1].handle_peer_message(shards.now_ms, 0, misrouted);
    shards.step();
    assert_eq!(shards.answers, vec![(6, Answer::Close)]);
}

#[test]
fn each_shard_keeps_to_its_share_of_the_brokers_memory_bounds() {
    let config = Config {
        tail_cache_bytes: 1000,
        unwritten_bytes_max: 64,
        ..Config::default()
    };
    let shard = config.for_shard(2, 3);
    // The broker's bounds stay what DescribeConfigs reports; the shard keeps to a third.
    assert_eq!(
        (shard.tail_cache_bytes, shard.unwritten_bytes_max),
        (1000, 64)
    );
    assert_eq!(shard.shard_share(shard.tail_cache_bytes), 333);
    assert_eq!(shard.shard_share(shard.unwritten_bytes_max), 21);
    assert_eq!(
        config.shard_share(1000),
        1000,
        "one shard keeps the whole bound"
    );
}

/// A connection whose requests keep going to another shard's partitions is told to move there
/// (between requests), and served there under an id of that shard, its answers unchanged.
#[test]
fn a_connection_moves_to_the_shard_its_requests_go_to() {
    let mut shards = Shards::start(MemoryDisk::default());
    shards.create_topic("mv", 2);
    let p = owned("mv", 1, 1)[0];
    // Connection 4 is served by shard 0; its produces all go to shard 1.
    for round in 0..crate::shard::MIGRATE_AFTER {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("mv"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(Bytes::from(make_batch(&[b"x"], 1))))])]);
        shards.send(4, ApiKey::Produce, 9, &request);
        let response: ProduceResponse = shards.response(4, ApiKey::Produce, 9).unwrap();
        assert_eq!(
            response.responses[0].partition_responses[0].base_offset,
            round as i64
        );
        let moves = shards.nodes[0].poll_migration(4);
        let last = round + 1 == crate::shard::MIGRATE_AFTER;
        assert_eq!(moves, last.then_some(1), "round {round}");
    }
    shards.nodes[0].handle_connection_closed(4);
    shards.nodes[1].handle_connection_opened(5, "127.0.0.1:1");
    shards.step();
    assert_eq!(
        shards.fetch("mv", &[p], 0).responses[0].partitions[0].high_watermark,
        4
    );
}

/// A broker's topic table as the metadata sees it: names, ids, partition counts, configs.
fn table(broker: &Broker) -> Vec<(String, TopicId, usize, BTreeMap<String, String>)> {
    broker
        .topics
        .values()
        .map(|t| (t.name.clone(), t.id, t.partitions.len(), t.configs.clone()))
        .collect()
}

fn image_table(
    image: &crate::controller::MetadataImage,
) -> Vec<(String, TopicId, usize, BTreeMap<String, String>)> {
    image
        .topics
        .values()
        .map(|t| (t.name.clone(), t.id, t.partitions.len(), t.configs.clone()))
        .collect()
}

#[test]
fn every_shard_runs_on_the_controllers_records_and_the_file_holds_its_image() {
    let mut shards = Shards::start(MemoryDisk::default());
    shards.create_topic("t", 3);
    shards.create_topic("u", 1);
    let grow = CreatePartitionsRequest::default().with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default()
            .with_name(name("t"))
            .with_count(5),
    ]);
    shards.send(5, ApiKey::CreatePartitions, 3, &grow);
    let grown: CreatePartitionsResponse = shards.response(5, ApiKey::CreatePartitions, 3).unwrap();
    assert_eq!(grown.results[0].error_code, errors::NONE);
    let alter = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("t"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("60000")))]),
    ]);
    shards.send(6, ApiKey::AlterConfigs, 2, &alter);
    let altered: AlterConfigsResponse = shards.response(6, ApiKey::AlterConfigs, 2).unwrap();
    assert_eq!(altered.responses[0].error_code, errors::NONE);
    let delete = DeleteTopicsRequest::default().with_topic_names(vec![name("u")]);
    shards.send(7, ApiKey::DeleteTopics, 5, &delete);
    let deleted: DeleteTopicsResponse = shards.response(7, ApiKey::DeleteTopics, 5).unwrap();
    assert_eq!(deleted.responses[0].error_code, errors::NONE);

    let controller = shards.broker(0).controller.as_ref().expect("control shard");
    let expected = image_table(controller.image());
    assert_eq!(expected.len(), 1, "{expected:?}");
    assert_eq!((expected[0].2, expected[0].3.len()), (5, 1), "{expected:?}");
    for shard in 0..SHARDS {
        assert_eq!(table(shards.broker(shard)), expected, "shard {shard}");
    }
    let file = &shards.disk.files[crate::io::METADATA_FILE];
    let on_disk = crate::controller::snapshot::decode(file, 1).unwrap();
    assert_eq!(
        on_disk,
        *controller.image(),
        "the file is the committed image"
    );
    let shards = shards.restart();
    for shard in 0..SHARDS {
        assert_eq!(
            table(shards.broker(shard)),
            expected,
            "shard {shard} after a restart"
        );
    }
}
