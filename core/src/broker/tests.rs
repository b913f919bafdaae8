//! The broker driven through its public interface by an in-memory shell: requests in, outputs
//! performed on a map of byte vectors, with control over when I/O completes.

use super::*;
use crate::batch::{self, tests::make_batch};
use crate::errors;
use bytes::BytesMut;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::memory_disk::MemoryDisk;

struct Harness {
    broker: Broker,
    disk: MemoryDisk,
    responses: Vec<(ConnId, Bytes)>,
    closed: Vec<ConnId>,
    no_response: Vec<ConnId>,
    held: Vec<IoCommand>,
    hold_io: bool,
    now_ms: i64,
    next_correlation: i32,
}

impl Harness {
    fn new(config: Config) -> Self {
        let mut broker = Broker::new(config);
        broker.recover_metadata(None).unwrap();
        let mut harness = Harness {
            broker,
            disk: MemoryDisk::default(),
            responses: Vec::new(),
            closed: Vec::new(),
            no_response: Vec::new(),
            held: Vec::new(),
            hold_io: false,
            now_ms: 1_000_000,
            next_correlation: 1,
        };
        harness.step();
        harness
    }

    /// A broker restarted on this harness's disk.
    fn restart(&self, config: Config) -> Harness {
        self.restart_on(self.disk.clone(), config).0
    }

    /// A broker started on `disk` (a copy of this harness's, changed as a test needs), with
    /// what its start-up reported.
    fn restart_on(&self, mut disk: MemoryDisk, config: Config) -> (Harness, StartupReport) {
        let mut broker = Broker::new(config);
        let report = broker.start_up(&mut disk, self.now_ms).unwrap();
        let mut harness = Harness {
            broker,
            disk,
            now_ms: self.now_ms,
            ..Harness::new(Config::default())
        };
        harness.responses.clear();
        harness.step();
        (harness, report)
    }

    fn send<R: Encodable>(
        &mut self,
        conn: ConnId,
        api_key: ApiKey,
        version: i16,
        request: &R,
    ) -> i32 {
        let correlation_id = self.next_correlation;
        self.next_correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .unwrap();
        request.encode(&mut buf, version).unwrap();
        self.broker.handle_request(self.now_ms, conn, buf.freeze());
        self.step();
        correlation_id
    }

    /// Performs outputs until none is left (I/O is held instead when `hold_io`).
    fn step(&mut self) {
        while let Some(output) = self.broker.poll_output() {
            match output {
                Output::Respond { conn, frame } => self.responses.push((conn, frame)),
                Output::Close { conn } => self.closed.push(conn),
                Output::NoResponse { conn } => self.no_response.push(conn),
                Output::Log { .. } => {}
                Output::ToShard { shard, message } => {
                    panic!("a single shard told shard {shard}: {message:?}")
                }
                Output::Io(command) if self.hold_io => self.held.push(command),
                Output::Io(command) => {
                    let result = self.perform(command.op);
                    self.broker
                        .handle_io_done(self.now_ms, command.token, result);
                }
            }
        }
    }

    /// The time has come for the deadlines due at `now_ms`: they fire, and none is left due
    /// (one left due would make a shell fire its timer again at once, forever: issue 12).
    fn handle_timeout(&mut self) {
        self.broker.handle_timeout(self.now_ms);
        assert_eq!(
            self.broker.overdue_deadlines(self.now_ms),
            Vec::<&str>::new(),
            "deadlines still due after handle_timeout({})",
            self.now_ms
        );
        self.step();
    }

    fn release_io(&mut self) {
        self.hold_io = false;
        for command in std::mem::take(&mut self.held) {
            let result = self.perform(command.op);
            self.broker
                .handle_io_done(self.now_ms, command.token, result);
        }
        self.step();
    }

    fn perform(&mut self, op: IoOp) -> IoResult {
        if let IoOp::Write { position, data, .. } = &op {
            assert_eq!(position % crate::log::BLOCK_BYTES, 0);
            assert_eq!(data.len() as u64 % crate::log::BLOCK_BYTES, 0);
        }
        self.disk.perform(op)
    }

    /// The data files (everything but the metadata file).
    fn data_files(&self) -> Vec<&String> {
        self.disk
            .files
            .keys()
            .filter(|p| p.as_str() != crate::io::METADATA_FILE)
            .collect()
    }

    fn response<R: Decodable>(&mut self, conn: ConnId, api_key: ApiKey, version: i16) -> R {
        let at = self
            .responses
            .iter()
            .position(|(c, _)| *c == conn)
            .expect("a response on this connection");
        let (_, frame) = self.responses.remove(at);
        let mut body = frame.slice(4..);
        ResponseHeader::decode(&mut body, api_key.response_header_version(version)).unwrap();
        R::decode(&mut body, version).unwrap()
    }

    fn has_response(&self, conn: ConnId) -> bool {
        self.responses.iter().any(|(c, _)| *c == conn)
    }

    fn create_topic(&mut self, name: &str, partitions: i32) -> CreateTopicsResponse {
        let topic = CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(-1);
        self.send(
            9,
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![topic]),
        );
        self.response(9, ApiKey::CreateTopics, 7)
    }

    fn produce(&mut self, conn: ConnId, topic: &str, partition: i32, acks: i16, batch: Vec<u8>) {
        let data = PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(Bytes::from(batch)));
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![data]);
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![topic]);
        self.send(conn, ApiKey::Produce, 9, &request);
    }

    fn produce_result(&mut self, conn: ConnId) -> (i16, i64) {
        let response: ProduceResponse = self.response(conn, ApiKey::Produce, 9);
        let partition = &response.responses[0].partition_responses[0];
        (partition.error_code, partition.base_offset)
    }

    fn fetch(&mut self, conn: ConnId, topic: &str, offset: i64, max_wait_ms: i32) {
        let partition = FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20);
        let topic = FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![partition]);
        let request = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 24)
            .with_topics(vec![topic]);
        self.send(conn, ApiKey::Fetch, 11, &request);
    }

    fn fetch_result(&mut self, conn: ConnId) -> (i16, i64, Bytes) {
        let response: FetchResponse = self.response(conn, ApiKey::Fetch, 11);
        let partition = &response.responses[0].partitions[0];
        (
            partition.error_code,
            partition.high_watermark,
            partition.records.clone().unwrap_or_default(),
        )
    }
}

fn offsets_in(records: &Bytes) -> Vec<i64> {
    batch::validate_all(records)
        .unwrap()
        .iter()
        .map(|b| b.base_offset)
        .collect()
}

/// KIP-74 (issue 13: a librdkafka consumer with `fetch.max.bytes` 1 MB got 1.84 MB): the
/// response carries at most `max_bytes` in whole batches, and each partition at most its own
/// limit; only the first partition with records keeps its first batch whatever its size.
#[test]
fn a_fetch_keeps_to_its_max_bytes_across_partitions_but_always_makes_progress() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 3);
    for partition in 0..3 {
        for _ in 0..2 {
            h.produce(1, "t", partition, -1, make_batch(&[&[7u8; 600]], 5));
            assert_eq!(h.produce_result(1).0, errors::NONE);
        }
    }
    let batch_bytes = make_batch(&[&[7u8; 600]], 5).len();
    // (max_bytes, partition_max_bytes) -> batches per partition
    let cases: [(usize, usize, [usize; 3]); 4] = [
        (batch_bytes / 2, 1 << 20, [1, 0, 0]),
        (batch_bytes * 3, 1 << 20, [2, 1, 0]),
        (1 << 20, batch_bytes / 2, [1, 0, 0]),
        (1 << 20, batch_bytes, [1, 1, 1]),
    ];
    for (max_bytes, partition_max_bytes, expected) in cases {
        let partitions = (0..3)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(partition_max_bytes as i32)
            })
            .collect();
        let request = FetchRequest::default()
            .with_max_bytes(max_bytes as i32)
            .with_min_bytes(1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)]);
        h.send(3, ApiKey::Fetch, 11, &request);
        let response: FetchResponse = h.response(3, ApiKey::Fetch, 11);
        let counts: Vec<usize> = response.responses[0]
            .partitions
            .iter()
            .map(|p| offsets_in(&p.records.clone().unwrap_or_default()).len())
            .collect();
        assert_eq!(
            counts, expected,
            "max_bytes {max_bytes}, partition max {partition_max_bytes}"
        );
    }
}

#[test]
fn acks_all_is_answered_only_after_the_fsync() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"a", b"b"], 5));
    assert!(
        !h.has_response(1),
        "no answer before the write and fsync complete"
    );
    assert!(h.held.iter().any(|c| matches!(c.op, IoOp::Write { .. })));
    h.release_io();
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    h.produce(1, "t", 0, -1, make_batch(&[b"c"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 2));
}

#[test]
fn acks_one_is_answered_at_once_and_acks_zero_not_at_all() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, 1, make_batch(&[b"a"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    h.produce(2, "t", 0, 0, make_batch(&[b"b"], 5));
    assert!(!h.has_response(2));
    assert_eq!(h.no_response, vec![2]);
}

#[test]
fn consumers_see_only_flushed_records_and_parked_fetches_wake_up() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.fetch(3, "t", 0, 500);
    assert!(!h.has_response(3), "an empty fetch waits for data");
    h.hold_io = true;
    h.produce(1, "t", 0, 1, make_batch(&[b"a"], 5));
    assert!(!h.has_response(3), "not visible before the fsync");
    h.release_io();
    let (error, high_watermark, records) = h.fetch_result(3);
    assert_eq!((error, high_watermark), (errors::NONE, 1));
    assert_eq!(offsets_in(&records), vec![0]);
}

#[test]
fn a_waiting_fetch_times_out_empty() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.fetch(3, "t", 0, 500);
    assert_eq!(h.broker.poll_timeout(), Some(h.now_ms + 500));
    h.now_ms += 500;
    h.handle_timeout();
    let (error, _, records) = h.fetch_result(3);
    assert_eq!(error, errors::NONE);
    assert!(records.is_empty());
}

#[test]
fn reads_below_the_cache_come_from_disk_and_match() {
    let config = Config {
        tail_cache_bytes_per_partition: 1,
        ..Config::default()
    };
    let mut h = Harness::new(config);
    h.create_topic("t", 1);
    for i in 0..5u8 {
        h.produce(1, "t", 0, -1, make_batch(&[&[i; 300]], 5));
        h.produce_result(1);
    }
    h.fetch(2, "t", 1, 0);
    let (error, _, records) = h.fetch_result(2);
    assert_eq!(error, errors::NONE);
    assert_eq!(offsets_in(&records), vec![1, 2, 3, 4]);
}

#[test]
fn fetch_out_of_range_and_unknown_topic_get_kafka_errors() {
    let mut h = Harness::new(Config {
        auto_create_topics: false,
        ..Config::default()
    });
    h.create_topic("t", 1);
    h.fetch(2, "t", 5, 0);
    assert_eq!(h.fetch_result(2).0, errors::OFFSET_OUT_OF_RANGE);
    h.fetch(2, "nope", 0, 0);
    assert_eq!(h.fetch_result(2).0, errors::UNKNOWN_TOPIC_OR_PARTITION);
    h.produce(2, "nope", 0, 1, make_batch(&[b"x"], 5));
    assert_eq!(h.produce_result(2).0, errors::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn a_corrupt_batch_is_refused_and_nothing_is_appended() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let mut batch = make_batch(&[b"hello"], 5);
    let last = batch.len() - 3;
    batch[last] ^= 0xff;
    h.produce(1, "t", 0, -1, batch);
    assert_eq!(h.produce_result(1), (errors::CORRUPT_MESSAGE, -1));
    h.produce(1, "t", 0, -1, make_batch(&[b"ok"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
}

#[test]
fn unknown_api_keys_close_the_connection_and_new_api_versions_get_v0_fallback() {
    let mut h = Harness::new(Config::default());
    h.broker.handle_request(
        h.now_ms,
        4,
        Bytes::from_static(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0]),
    );
    h.step();
    assert_eq!(h.closed, vec![4]);
    // ApiVersions v99: header v2 (key, version, correlation id, client id, no tags), empty body.
    let frame = [0u8, 18, 0, 99, 0, 0, 0, 7, 0, 4, b't', b'e', b's', b't', 0];
    h.broker
        .handle_request(h.now_ms, 5, Bytes::copy_from_slice(&frame));
    h.step();
    let response: ApiVersionsResponse = h.response(5, ApiKey::ApiVersions, 0);
    assert_eq!(response.error_code, errors::UNSUPPORTED_VERSION);
    assert!(response
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 0));
}

#[test]
fn create_topics_validates_like_kafka() {
    let mut h = Harness::new(Config::default());
    assert_eq!(h.create_topic("ok", 2).topics[0].error_code, errors::NONE);
    assert_eq!(
        h.create_topic("ok", 2).topics[0].error_code,
        errors::TOPIC_ALREADY_EXISTS
    );
    assert_eq!(
        h.create_topic("bad/name", 1).topics[0].error_code,
        errors::INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(
        h.create_topic("zero", 0).topics[0].error_code,
        errors::INVALID_PARTITIONS
    );
    let three = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("rf3")))
        .with_num_partitions(1)
        .with_replication_factor(3);
    h.send(
        9,
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![three]),
    );
    let response: CreateTopicsResponse = h.response(9, ApiKey::CreateTopics, 7);
    assert_eq!(
        response.topics[0].error_code,
        errors::INVALID_REPLICATION_FACTOR
    );
}

#[test]
fn create_topics_answers_after_the_metadata_is_durable() {
    let mut h = Harness::new(Config::default());
    h.hold_io = true;
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_num_partitions(1)
        .with_replication_factor(1);
    h.send(
        9,
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![topic]),
    );
    assert!(!h.has_response(9));
    assert!(h
        .held
        .iter()
        .any(|c| matches!(c.op, IoOp::PersistMetadata { .. })));
    h.release_io();
    let response: CreateTopicsResponse = h.response(9, ApiKey::CreateTopics, 7);
    assert_eq!(response.topics[0].error_code, errors::NONE);
}

#[test]
fn restart_keeps_records_offsets_and_topics_and_continues_the_offsets() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    for _ in 0..3 {
        h.produce(1, "t", 0, -1, make_batch(&[b"a", b"b"], 5));
        h.produce_result(1);
    }
    let mut h = h.restart(Config::default());
    h.fetch(2, "t", 0, 0);
    let (error, high_watermark, records) = h.fetch_result(2);
    assert_eq!((error, high_watermark), (errors::NONE, 6));
    assert_eq!(offsets_in(&records), vec![0, 2, 4]);
    h.produce(1, "t", 0, -1, make_batch(&[b"c"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 6));
}

#[test]
fn a_crash_before_the_fsync_loses_only_unacknowledged_records() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce(1, "t", 0, -1, make_batch(&[b"kept"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"lost"], 5));
    assert!(!h.has_response(1));
    // Crash: the held write never reaches the disk.
    let mut h = h.restart(Config::default());
    h.fetch(2, "t", 0, 0);
    let (_, high_watermark, records) = h.fetch_result(2);
    assert_eq!(high_watermark, 1);
    assert_eq!(offsets_in(&records), vec![0]);
}

#[test]
fn deleted_topics_disappear_and_their_files_go() {
    let mut h = Harness::new(Config {
        auto_create_topics: false,
        ..Config::default()
    });
    h.create_topic("t", 1);
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    h.produce_result(1);
    assert!(!h.data_files().is_empty());
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("t"))]);
    h.send(9, ApiKey::DeleteTopics, 5, &request);
    let response: DeleteTopicsResponse = h.response(9, ApiKey::DeleteTopics, 5);
    assert_eq!(response.responses[0].error_code, errors::NONE);
    assert!(h.data_files().is_empty());
    h.fetch(2, "t", 0, 0);
    assert_eq!(h.fetch_result(2).0, errors::UNKNOWN_TOPIC_OR_PARTITION);
    let h = h.restart(Config::default());
    assert!(h.broker.topics.is_empty());
}

/// An acks=all produce still waiting for its fsync when its topic is deleted is answered at
/// once with UNKNOWN_TOPIC_OR_PARTITION: a partition that goes away hands back its waiters.
#[test]
fn a_produce_waiting_on_a_deleted_topic_is_answered_unknown_topic() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    assert!(!h.has_response(1), "waiting for the fsync");
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("t"))]);
    h.send(9, ApiKey::DeleteTopics, 5, &request);
    assert_eq!(h.produce_result(1).0, errors::UNKNOWN_TOPIC_OR_PARTITION);
    h.release_io();
    let response: DeleteTopicsResponse = h.response(9, ApiKey::DeleteTopics, 5);
    assert_eq!(response.responses[0].error_code, errors::NONE);
}

#[test]
fn an_idempotent_retry_is_not_appended_twice() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let mut batch = make_batch(&[b"a"], 5);
    batch[43..51].copy_from_slice(&42i64.to_be_bytes()); // producer id
    batch[51..53].copy_from_slice(&0i16.to_be_bytes()); // epoch
    batch[53..57].copy_from_slice(&0i32.to_be_bytes()); // base sequence
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    h.produce(1, "t", 0, -1, batch.clone());
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    h.produce(1, "t", 0, -1, batch);
    assert_eq!(
        h.produce_result(1),
        (errors::NONE, 0),
        "the retry is answered with the first offset"
    );
    h.produce(1, "t", 0, -1, make_batch(&[b"b"], 5));
    assert_eq!(
        h.produce_result(1),
        (errors::NONE, 1),
        "the retry took no offset"
    );
}

#[test]
fn an_array_length_bomb_is_a_decode_error_not_an_abort() {
    let mut h = Harness::new(Config::default());
    // CreateTopics v2: header v1 (key 19, version 2, correlation 1, client id "t"), then a
    // topics array claiming i32::MAX entries with nothing behind it.
    let mut frame = vec![0u8, 19, 0, 2, 0, 0, 0, 1, 0, 1, b't'];
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    h.broker.handle_request(h.now_ms, 6, Bytes::from(frame));
    h.step();
    assert_eq!(h.closed, vec![6]);
}

#[test]
fn a_failed_write_answers_storage_error_then_is_retried_and_recovers() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    let write = h
        .held
        .iter()
        .position(|c| matches!(c.op, IoOp::Write { .. }))
        .unwrap();
    let failed = h.held.remove(write);
    h.broker.handle_io_done(
        h.now_ms,
        failed.token,
        IoResult::Failed("No space left on device".into()),
    );
    h.hold_io = false;
    h.step();
    assert_eq!(h.produce_result(1).0, errors::KAFKA_STORAGE_ERROR);
    h.produce(1, "t", 0, -1, make_batch(&[b"b"], 5));
    assert_eq!(
        h.produce_result(1).0,
        errors::KAFKA_STORAGE_ERROR,
        "offline until the retry"
    );
    assert_eq!(
        h.broker.poll_timeout(),
        Some(h.now_ms + STORAGE_RETRY_MS),
        "the retry is armed"
    );
    h.now_ms += STORAGE_RETRY_MS;
    h.handle_timeout();
    h.fetch(2, "t", 0, 0);
    let (error, high_watermark, records) = h.fetch_result(2);
    assert_eq!(
        (error, high_watermark),
        (errors::NONE, 1),
        "the failed write went through on retry"
    );
    assert_eq!(offsets_in(&records), vec![0]);
    h.produce(1, "t", 0, -1, make_batch(&[b"c"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 1));
}

#[test]
fn planted_ack_before_fsync_answers_before_the_sync() {
    let config = Config {
        planted_bug: Some(PlantedBug::AckBeforeFsync),
        ..Config::default()
    };
    let mut h = Harness::new(config);
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    let write = h
        .held
        .iter()
        .position(|c| matches!(c.op, IoOp::Write { .. }))
        .unwrap();
    let write = h.held.remove(write);
    h.broker
        .handle_io_done(h.now_ms, write.token, IoResult::Done);
    h.step();
    assert!(
        h.has_response(1),
        "the planted bug acknowledges with the sync still pending"
    );
}

/// KIP-734: ListOffsets -3 answers the first record with the largest timestamp, not the last
/// offset of its batch (issue 13: a batch of 3 whose middle record is the newest was answered
/// 2), from the tail cache and from disk alike.
#[test]
fn list_offsets_max_timestamp_finds_the_record_inside_its_batch() {
    use crate::batch::tests::make_batch_at;
    for tail_cache_bytes in [4 << 20, 1] {
        let mut h = Harness::new(Config {
            tail_cache_bytes,
            tail_cache_bytes_per_partition: tail_cache_bytes,
            ..Config::default()
        });
        h.create_topic("t", 1);
        assert_eq!(
            h.list_offset_found("t", 0, -3),
            (errors::NONE, -1, -1),
            "empty"
        );
        let batch = make_batch_at(&[b"a", b"b", b"c"], &[1_000, 3_000, 2_000]);
        h.produce(1, "t", 0, -1, batch);
        assert_eq!(h.produce_result(1), (errors::NONE, 0));
        // A later batch with an equal maximum does not win: the first record holding it does.
        let batch = make_batch_at(&[b"d", b"e"], &[3_000, 500]);
        h.produce(1, "t", 0, -1, batch);
        assert_eq!(h.produce_result(1), (errors::NONE, 3));
        assert_eq!(
            h.list_offset_found("t", 0, -3),
            (errors::NONE, 1, 3_000),
            "tail cache {tail_cache_bytes} B"
        );
    }
}

/// KIP-966 (issue 13): DescribeTopicPartitions pages through topics in name order with a
/// cursor, at most `response_partition_limit` partitions a page.
#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let mut h = Harness::new(Config::default());
    for (name, partitions) in [("b", 2), ("a", 3), ("c", 1)] {
        h.create_topic(name, partitions);
    }
    let mut page = |topics: &[&str], limit: i32, cursor: Option<(&str, i32)>| {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| TopicRequest::default().with_name(topic_name(t)))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                Cursor::default()
                    .with_topic_name(topic_name(t))
                    .with_partition_index(p)
            }));
        h.send(3, ApiKey::DescribeTopicPartitions, 0, &request);
        let response: DescribeTopicPartitionsResponse =
            h.response(3, ApiKey::DescribeTopicPartitions, 0);
        let topics: Vec<(String, i16, Vec<i32>)> = response
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                (name, t.error_code, partitions)
            })
            .collect();
        let next = response
            .next_cursor
            .map(|c| (c.topic_name.0.to_string(), c.partition_index));
        (topics, next)
    };
    let owned = |t: &str, ps: &[i32]| (t.to_string(), errors::NONE, ps.to_vec());
    // Every topic (the internal one absent: no group yet), two partitions a page.
    assert_eq!(
        page(&[], 2, None),
        (vec![owned("a", &[0, 1])], Some(("a".to_string(), 2)))
    );
    assert_eq!(
        page(&[], 2, Some(("a", 2))),
        (
            vec![owned("a", &[2]), owned("b", &[0])],
            Some(("b".into(), 1))
        )
    );
    assert_eq!(
        page(&[], 2, Some(("b", 1))),
        (vec![owned("b", &[1]), owned("c", &[0])], None)
    );
    // A page ending with a topic's last partition goes on with the next topic.
    assert_eq!(
        page(&["c", "b"], 2, None),
        (vec![owned("b", &[0, 1])], Some(("c".into(), 0)))
    );
    // Named topics that do not exist are answered as such; a cursor outside the names is
    // refused for every topic.
    assert_eq!(
        page(&["zz", "c"], 2000, None),
        (
            vec![
                owned("c", &[0]),
                ("zz".into(), errors::UNKNOWN_TOPIC_OR_PARTITION, vec![])
            ],
            None
        )
    );
    assert_eq!(
        page(&["c"], 10, Some(("a", 0))),
        (vec![("c".into(), errors::INVALID_REQUEST, vec![])], None)
    );
}

// ---- admin APIs (issue 4) ----

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};

/// The connection admin requests go on.
const ADMIN: ConnId = 10;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.into())
}

impl Harness {
    fn describe_configs(
        &mut self,
        resource_type: i8,
        name: &str,
        keys: Option<&[&str]>,
        version: i16,
    ) -> DescribeConfigsResult {
        let resource = DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configuration_keys(keys.map(|k| k.iter().map(|k| text(k)).collect()));
        let request = DescribeConfigsRequest::default()
            .with_resources(vec![resource])
            .with_include_synonyms(true);
        self.send(ADMIN, ApiKey::DescribeConfigs, version, &request);
        let mut response: DescribeConfigsResponse =
            self.response(ADMIN, ApiKey::DescribeConfigs, version);
        response.results.remove(0)
    }

    /// A topic's config as DescribeConfigs v4 reports it: value, source, type and synonyms.
    fn topic_config(&mut self, topic: &str, key: &str) -> (String, i8, i8, Vec<(String, i8)>) {
        let result = self.describe_configs(2, topic, Some(&[key]), 4);
        assert_eq!(
            result.error_code,
            errors::NONE,
            "{:?}",
            result.error_message
        );
        let entry = &result.configs[0];
        (
            entry.value.as_ref().unwrap().to_string(),
            entry.config_source,
            entry.config_type,
            entry
                .synonyms
                .iter()
                .map(|s| (s.name.to_string(), s.source))
                .collect(),
        )
    }

    fn alter_configs(
        &mut self,
        resource_type: i8,
        name: &str,
        configs: &[(&str, Option<&str>)],
        validate_only: bool,
    ) -> (i16, Option<String>) {
        use kafka_protocol::messages::alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let configs = configs
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(text(k))
                    .with_value(v.map(text))
            })
            .collect();
        let resource = AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configs(configs);
        let request = AlterConfigsRequest::default()
            .with_resources(vec![resource])
            .with_validate_only(validate_only);
        self.send(ADMIN, ApiKey::AlterConfigs, 2, &request);
        let response: AlterConfigsResponse = self.response(ADMIN, ApiKey::AlterConfigs, 2);
        let result = &response.responses[0];
        (
            result.error_code,
            result.error_message.as_ref().map(|m| m.to_string()),
        )
    }

    /// Operations are (key, op: 0 SET 1 DELETE 2 APPEND 3 SUBTRACT, value).
    fn incremental_alter(
        &mut self,
        resource_type: i8,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
        validate_only: bool,
    ) -> (i16, Option<String>) {
        let configs = ops
            .iter()
            .map(|(k, op, v)| {
                incremental::AlterableConfig::default()
                    .with_name(text(k))
                    .with_config_operation(*op)
                    .with_value(v.map(text))
            })
            .collect();
        let resource = incremental::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configs(configs);
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![resource])
            .with_validate_only(validate_only);
        self.send(ADMIN, ApiKey::IncrementalAlterConfigs, 1, &request);
        let response: IncrementalAlterConfigsResponse =
            self.response(ADMIN, ApiKey::IncrementalAlterConfigs, 1);
        let result = &response.responses[0];
        (
            result.error_code,
            result.error_message.as_ref().map(|m| m.to_string()),
        )
    }

    fn send_create_partitions(&mut self, topic: &str, count: i32, validate_only: bool) {
        use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        let wanted = CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(count);
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![wanted])
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only);
        self.send(ADMIN, ApiKey::CreatePartitions, 3, &request);
    }

    fn create_partitions(
        &mut self,
        topic: &str,
        count: i32,
        validate_only: bool,
    ) -> (i16, Option<String>) {
        self.send_create_partitions(topic, count, validate_only);
        let response: CreatePartitionsResponse = self.response(ADMIN, ApiKey::CreatePartitions, 3);
        let result = &response.results[0];
        (
            result.error_code,
            result.error_message.as_ref().map(|m| m.to_string()),
        )
    }

    fn send_delete_records(&mut self, topic: &str, partition: i32, offset: i64) {
        use kafka_protocol::messages::delete_records_request::{
            DeleteRecordsPartition, DeleteRecordsTopic,
        };
        let wanted = DeleteRecordsPartition::default()
            .with_partition_index(partition)
            .with_offset(offset);
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![wanted])])
            .with_timeout_ms(30_000);
        self.send(ADMIN, ApiKey::DeleteRecords, 2, &request);
    }

    /// (error, low watermark)
    fn delete_records(&mut self, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
        self.send_delete_records(topic, partition, offset);
        let response: DeleteRecordsResponse = self.response(ADMIN, ApiKey::DeleteRecords, 2);
        let result = &response.topics[0].partitions[0];
        (result.error_code, result.low_watermark)
    }

    /// (error, offset) of ListOffsets v7 for `timestamp` (-2 earliest, -1 latest).
    fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> (i16, i64) {
        let (error, offset, _) = self.list_offset_found(topic, partition, timestamp);
        (error, offset)
    }

    /// (error, offset, timestamp) of ListOffsets v7 for `timestamp`.
    fn list_offset_found(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> (i16, i64, i64) {
        let wanted = ListOffsetsPartition::default()
            .with_partition_index(partition)
            .with_timestamp(timestamp);
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![wanted])]);
        self.send(ADMIN, ApiKey::ListOffsets, 7, &request);
        let response: ListOffsetsResponse = self.response(ADMIN, ApiKey::ListOffsets, 7);
        let result = &response.topics[0].partitions[0];
        (result.error_code, result.offset, result.timestamp)
    }

    fn partition_count(&mut self, topic: &str) -> usize {
        let request =
            MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(topic_name(topic)))]));
        self.send(ADMIN, ApiKey::Metadata, 12, &request);
        let response: MetadataResponse = self.response(ADMIN, ApiKey::Metadata, 12);
        response.topics[0].partitions.len()
    }

    /// Produces one acks=all batch of `count` records to `topic`-`partition`, expecting success.
    fn produce_ok(&mut self, topic: &str, partition: i32, count: usize) -> i64 {
        let values: Vec<&[u8]> = vec![b"v"; count];
        self.produce(1, topic, partition, -1, make_batch(&values, 5));
        let (error, base_offset) = self.produce_result(1);
        assert_eq!(error, errors::NONE);
        base_offset
    }
}

#[test]
fn describe_configs_reports_every_topic_config_with_its_source_type_and_synonyms() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    assert_eq!(
        h.alter_configs(2, "t", &[("retention.ms", Some("1000"))], false)
            .0,
        errors::NONE
    );
    let result = h.describe_configs(2, "t", None, 4);
    assert_eq!(
        (result.error_code, &result.error_message),
        (errors::NONE, &None)
    );
    let names: Vec<&str> = result.configs.iter().map(|c| c.name.as_str()).collect();
    let known: Vec<&str> = crate::configs::topic::TOPIC_CONFIGS
        .iter()
        .map(|c| c.def.name)
        .collect();
    assert_eq!(names, known);
    assert!(result
        .configs
        .iter()
        .all(|c| !c.read_only && !c.is_sensitive && c.documentation.is_none()));
    assert_eq!(
        h.topic_config("t", "retention.ms"),
        (
            "1000".into(),
            1,
            5,
            vec![
                ("retention.ms".into(), 1),
                ("log.retention.hours".into(), 5)
            ]
        ),
        "an override is TOPIC_CONFIG, LONG, with the broker default as its synonym"
    );
    assert_eq!(
        h.topic_config("t", "max.message.bytes"),
        (
            "1048588".into(),
            5,
            3,
            vec![("message.max.bytes".into(), 5)]
        ),
        "a default is DEFAULT_CONFIG"
    );
    assert_eq!(h.topic_config("t", "cleanup.policy").2, 7, "LIST");
    assert_eq!(h.topic_config("t", "compression.type").2, 2, "STRING");
}

#[test]
fn describe_configs_filters_by_configuration_keys() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let result = h.describe_configs(2, "t", Some(&["segment.bytes", "no.such.key"]), 4);
    let names: Vec<&str> = result.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["segment.bytes"]);
    assert_eq!(
        h.describe_configs(2, "t", Some(&[]), 4).configs.len(),
        crate::configs::topic::TOPIC_CONFIGS.len(),
        "an empty key list asks for everything"
    );
}

#[test]
fn describe_configs_of_an_unknown_topic_is_unknown_topic_or_partition_with_a_message() {
    let mut h = Harness::new(Config::default());
    let result = h.describe_configs(2, "nope", None, 4);
    assert_eq!(result.error_code, errors::UNKNOWN_TOPIC_OR_PARTITION);
    assert!(result.error_message.unwrap().contains("nope"));
    assert!(result.configs.is_empty());
}

#[test]
fn describe_configs_v1_answers_without_types() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let result = h.describe_configs(2, "t", Some(&["retention.ms"]), 1);
    assert_eq!(result.configs[0].value.as_deref(), Some("604800000"));
    assert_eq!(result.configs[0].config_source, 5);
    assert_eq!(
        result.configs[0].config_type, 0,
        "config_type exists from v3"
    );
}

#[test]
fn describe_configs_of_the_broker_lists_its_settings_with_their_sources() {
    let mut config = Config::default();
    config.set("num.partitions", "3").unwrap();
    let mut h = Harness::new(config);
    let result = h.describe_configs(4, "1", None, 4);
    assert_eq!(result.error_code, errors::NONE);
    let find = |name: &str| {
        let c = result
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name} is listed"));
        (
            c.value.as_ref().unwrap().to_string(),
            c.config_source,
            c.config_type,
        )
    };
    assert_eq!(find("node.id"), ("1".into(), 4, 3));
    assert_eq!(
        find("num.partitions"),
        ("3".into(), 4, 3),
        "set: STATIC_BROKER_CONFIG"
    );
    assert_eq!(find("auto.create.topics.enable"), ("true".into(), 5, 1));
    assert_eq!(find("default.replication.factor"), ("1".into(), 5, 3));
    assert_eq!(find("message.max.bytes"), ("1048588".into(), 5, 3));
    assert_eq!(find("log.dirs").0, "./spate-data");
    let read_only = |name: &str| {
        result
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap()
            .read_only
    };
    assert!(read_only("node.id") && read_only("group.initial.rebalance.delay.ms"));
    assert!(!read_only("log.retention.ms") && !read_only("num.io.threads"));
    let cluster = h.describe_configs(4, "", None, 4);
    assert_eq!(cluster.error_code, errors::NONE);
    assert!(
        cluster.configs.is_empty(),
        "no cluster-wide dynamic defaults"
    );
    let other = h.describe_configs(4, "7", None, 4);
    assert_eq!(other.error_code, errors::INVALID_REQUEST);
    assert!(other.error_message.unwrap().contains("expected 1"));
    assert_eq!(
        h.describe_configs(4, "x", None, 4).error_code,
        errors::INVALID_REQUEST
    );
    assert_eq!(
        h.describe_configs(3, "g", None, 4).error_code,
        errors::INVALID_REQUEST
    );
}

#[test]
fn alter_configs_replaces_the_whole_override_set_and_survives_restart() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let set = [
        ("retention.ms", Some("1000")),
        ("segment.bytes", Some("1048576")),
    ];
    assert_eq!(h.alter_configs(2, "t", &set, false), (errors::NONE, None));
    assert_eq!(
        h.alter_configs(2, "t", &[("cleanup.policy", Some("compact"))], false)
            .0,
        errors::NONE
    );
    assert_eq!(h.topic_config("t", "cleanup.policy").0, "compact");
    assert_eq!(
        h.topic_config("t", "retention.ms").1,
        5,
        "left out of the new set: back to the default"
    );
    let mut h = h.restart(Config::default());
    assert_eq!(
        h.topic_config("t", "cleanup.policy"),
        (
            "compact".into(),
            1,
            7,
            vec![
                ("cleanup.policy".into(), 1),
                ("log.cleanup.policy".into(), 5)
            ]
        )
    );
    assert_eq!(h.topic_config("t", "segment.bytes").0, "1073741824");
}

#[test]
fn alter_configs_refuses_an_invalid_value_naming_the_key_and_changes_nothing() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (code, message) = h.alter_configs(
        2,
        "t",
        &[
            ("retention.ms", Some("5000")),
            ("segment.bytes", Some("big")),
        ],
        false,
    );
    assert_eq!(code, errors::INVALID_CONFIG);
    assert!(message.unwrap().contains("segment.bytes"));
    assert_eq!(h.topic_config("t", "retention.ms").1, 5, "nothing changed");
    let (code, message) = h.alter_configs(2, "t", &[("no.such", Some("1"))], false);
    assert_eq!(code, errors::INVALID_CONFIG);
    assert!(message.unwrap().contains("no.such"));
    assert_eq!(
        h.alter_configs(2, "nope", &[("retention.ms", Some("1"))], false)
            .0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn alter_configs_validate_only_checks_and_changes_nothing() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    assert_eq!(
        h.alter_configs(2, "t", &[("retention.ms", Some("1000"))], true)
            .0,
        errors::NONE
    );
    assert_eq!(h.topic_config("t", "retention.ms").0, "604800000");
    assert_eq!(
        h.alter_configs(2, "t", &[("retention.ms", Some("x"))], true)
            .0,
        errors::INVALID_CONFIG
    );
    assert_eq!(
        h.incremental_alter(2, "t", &[("retention.ms", 0, Some("1000"))], true)
            .0,
        errors::NONE
    );
    assert_eq!(h.topic_config("t", "retention.ms").0, "604800000");
}

#[test]
fn alter_configs_answers_after_the_metadata_is_durable() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let resource = AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("t"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(text("retention.ms"))
            .with_value(Some(text("1000")))]);
    let request = AlterConfigsRequest::default().with_resources(vec![resource]);
    h.send(ADMIN, ApiKey::AlterConfigs, 2, &request);
    assert!(!h.has_response(ADMIN));
    assert!(h
        .held
        .iter()
        .any(|c| matches!(&c.op, IoOp::PersistMetadata { data } if String::from_utf8_lossy(data).contains("retention.ms=1000"))));
    h.release_io();
    let response: AlterConfigsResponse = h.response(ADMIN, ApiKey::AlterConfigs, 2);
    assert_eq!(response.responses[0].error_code, errors::NONE);
}

#[test]
fn incremental_alter_configs_sets_deletes_appends_and_subtracts() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let ops = [
        ("retention.ms", 0, Some("1000")),
        ("cleanup.policy", 2, Some("compact")),
    ];
    assert_eq!(
        h.incremental_alter(2, "t", &ops, false),
        (errors::NONE, None)
    );
    assert_eq!(h.topic_config("t", "retention.ms").0, "1000");
    assert_eq!(
        h.topic_config("t", "cleanup.policy").0,
        "delete,compact",
        "APPEND starts from the default"
    );
    assert_eq!(
        h.incremental_alter(2, "t", &[("cleanup.policy", 3, Some("delete"))], false)
            .0,
        errors::NONE
    );
    assert_eq!(h.topic_config("t", "cleanup.policy").0, "compact");
    assert_eq!(
        h.incremental_alter(2, "t", &[("retention.ms", 1, None)], false)
            .0,
        errors::NONE
    );
    assert_eq!(
        h.topic_config("t", "retention.ms"),
        (
            "604800000".into(),
            5,
            5,
            vec![("log.retention.hours".into(), 5)]
        )
    );
    // Issue 13: subtracting the last value leaves the empty list (Kafka 4.1+, KIP-1161: no
    // deletion, no compaction), not an error.
    assert_eq!(
        h.incremental_alter(2, "t", &[("cleanup.policy", 3, Some("compact"))], false),
        (errors::NONE, None)
    );
    assert_eq!(h.topic_config("t", "cleanup.policy").0, "");
    let (code, message) =
        h.incremental_alter(2, "t", &[("cleanup.policy", 2, Some("nope"))], false);
    assert_eq!(code, errors::INVALID_CONFIG);
    assert_eq!(
        message.as_deref(),
        Some("Invalid value nope for configuration cleanup.policy: String must be one of: compact, delete")
    );
    let h = h.restart(Config::default());
    assert_eq!(
        h.broker.topics["t"]
            .configs
            .get("cleanup.policy")
            .map(String::as_str),
        Some("")
    );
}

#[test]
fn incremental_append_to_a_non_list_config_is_invalid_config() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (code, message) = h.incremental_alter(2, "t", &[("retention.ms", 2, Some("5"))], false);
    assert_eq!(code, errors::INVALID_CONFIG);
    assert!(message.unwrap().contains("retention.ms"));
    assert_eq!(
        h.incremental_alter(2, "t", &[("retention.ms", 9, Some("5"))], false)
            .0,
        errors::INVALID_REQUEST,
        "unknown operation"
    );
}

/// Topic configs Spate acts on at produce time (issue 13): `min.insync.replicas` above the
/// in-sync set (this node) refuses acks=all before appending, as Kafka does; CreateTime
/// timestamps outside `message.timestamp.before.max.ms` / `after.max.ms` are INVALID_TIMESTAMP.
#[test]
fn produce_honours_min_insync_replicas_and_timestamp_bounds() {
    use crate::batch::tests::make_batch_at;
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let now = h.now_ms;
    let configs = [
        ("min.insync.replicas", Some("2")),
        ("message.timestamp.before.max.ms", Some("60000")),
    ];
    assert_eq!(h.alter_configs(2, "t", &configs, false).0, errors::NONE);
    h.produce(1, "t", 0, -1, make_batch_at(&[b"a"], &[now]));
    assert_eq!(h.produce_result(1), (errors::NOT_ENOUGH_REPLICAS, -1));
    h.produce(1, "t", 0, 1, make_batch_at(&[b"a"], &[now]));
    assert_eq!(
        h.produce_result(1),
        (errors::NONE, 0),
        "acks=1 does not need the set"
    );
    // Kafka 4's default after.max.ms: one hour into the future at most.
    h.produce(1, "t", 0, 1, make_batch_at(&[b"b"], &[now + 3_600_001]));
    assert_eq!(h.produce_result(1).0, errors::INVALID_TIMESTAMP);
    h.produce(1, "t", 0, 1, make_batch_at(&[b"c"], &[now - 60_001]));
    assert_eq!(h.produce_result(1).0, errors::INVALID_TIMESTAMP);
    h.produce(1, "t", 0, 1, make_batch_at(&[b"d"], &[now - 59_999]));
    assert_eq!(h.produce_result(1), (errors::NONE, 1));
    // LogAppendTime topics stamp records themselves: any producer timestamp goes.
    let configs = [("message.timestamp.type", Some("LogAppendTime"))];
    assert_eq!(h.alter_configs(2, "t", &configs, false).0, errors::NONE);
    h.produce(1, "t", 0, -1, make_batch_at(&[b"e"], &[1]));
    assert_eq!(h.produce_result(1), (errors::NONE, 2));
}

/// Issue 13: Kafka's split of broker configs. Dynamic ones are accepted for this broker or as
/// the cluster default, persisted, described with their source, and topics inherit them;
/// read-only ones get Kafka's INVALID_REQUEST.
#[test]
fn dynamic_broker_configs_are_kept_described_and_inherited_while_read_only_ones_are_refused() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    for name in ["1", ""] {
        let (code, message) = h.alter_configs(4, name, &[("num.partitions", Some("3"))], false);
        assert_eq!(code, errors::INVALID_REQUEST);
        assert_eq!(
            message.as_deref(),
            Some("Cannot update these configs dynamically: Set(num.partitions)")
        );
        let (code, _) = h.incremental_alter(4, name, &[("num.partitions", 0, Some("3"))], false);
        assert_eq!(code, errors::INVALID_REQUEST);
    }
    assert_eq!(
        h.incremental_alter(4, "2", &[("num.partitions", 0, Some("3"))], false)
            .0,
        errors::INVALID_REQUEST,
        "another broker's id"
    );
    // The cluster default, then this broker's own value, which wins.
    let ops = [
        ("log.retention.ms", 0, Some("5000")),
        ("num.io.threads", 0, Some("4")),
    ];
    assert_eq!(
        h.incremental_alter(4, "", &ops, false),
        (errors::NONE, None)
    );
    let relogin = [("sasl.kerberos.min.time.before.relogin", 0, Some("1000"))];
    assert_eq!(
        h.incremental_alter(4, "1", &relogin, false),
        (errors::NONE, None)
    );
    assert_eq!(
        h.incremental_alter(4, "1", &[("log.retention.ms", 0, Some("7000"))], false),
        (errors::NONE, None)
    );
    // A per-broker config cannot be a cluster default.
    assert_eq!(
        h.incremental_alter(4, "", &relogin, false).0,
        errors::INVALID_REQUEST
    );
    let topic = h.topic_config("t", "retention.ms");
    assert_eq!(
        (topic.0.as_str(), topic.1),
        ("7000", 2),
        "DYNAMIC_BROKER_CONFIG"
    );
    assert_eq!(h.broker.topics["t"].config_i64("retention.ms"), 7000);
    let broker = h.describe_configs(4, "1", Some(&["log.retention.ms"]), 4);
    assert_eq!(broker.configs[0].value.as_deref(), Some("7000"));
    let synonyms: Vec<(String, i8)> = broker.configs[0]
        .synonyms
        .iter()
        .map(|s| (s.value.as_deref().unwrap_or_default().to_string(), s.source))
        .collect();
    assert_eq!(synonyms, vec![("7000".into(), 2), ("5000".into(), 3)]);
    let cluster = h.describe_configs(4, "", None, 4);
    let names: Vec<&str> = cluster.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["log.retention.ms", "num.io.threads"]);
    assert!(cluster.configs.iter().all(|c| c.config_source == 3));
    // Deleting this broker's value falls back to the cluster default; all of it survives a
    // restart.
    assert_eq!(
        h.incremental_alter(4, "1", &[("log.retention.ms", 1, None)], false),
        (errors::NONE, None)
    );
    let h = h.restart(Config::default());
    assert_eq!(h.broker.topics["t"].config_i64("retention.ms"), 5000);
    assert_eq!(
        h.broker
            .broker_configs
            .dynamic_node
            .get("sasl.kerberos.min.time.before.relogin"),
        Some(&"1000".to_string())
    );
}

#[test]
fn repeated_resources_null_values_and_repeated_keys_are_invalid_requests() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let resource = incremental::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("t"));
    let request =
        IncrementalAlterConfigsRequest::default().with_resources(vec![resource.clone(), resource]);
    h.send(ADMIN, ApiKey::IncrementalAlterConfigs, 1, &request);
    let response: IncrementalAlterConfigsResponse =
        h.response(ADMIN, ApiKey::IncrementalAlterConfigs, 1);
    assert!(response
        .responses
        .iter()
        .all(|r| r.error_code == errors::INVALID_REQUEST));
    let (code, message) = h.alter_configs(2, "t", &[("retention.ms", None)], false);
    assert_eq!(code, errors::INVALID_REQUEST);
    assert_eq!(
        message.as_deref(),
        Some("Null value not supported for : retention.ms")
    );
    let twice = [
        ("retention.ms", 0, Some("1")),
        ("retention.ms", 0, Some("2")),
    ];
    assert_eq!(
        h.incremental_alter(2, "t", &twice, false).0,
        errors::INVALID_REQUEST
    );
}

#[test]
fn an_altered_max_message_bytes_is_enforced_at_produce_time() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 1);
    assert_eq!(
        h.incremental_alter(2, "t", &[("max.message.bytes", 0, Some("100"))], false)
            .0,
        errors::NONE
    );
    h.produce(1, "t", 0, -1, make_batch(&[&[7u8; 200]], 5));
    assert_eq!(h.produce_result(1).0, errors::MESSAGE_TOO_LARGE);
}

#[test]
fn an_altered_timestamp_type_stamps_log_append_time() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let ops = [("message.timestamp.type", 0, Some("LogAppendTime"))];
    assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    let response: ProduceResponse = h.response(1, ApiKey::Produce, 9);
    assert_eq!(
        response.responses[0].partition_responses[0].log_append_time_ms,
        h.now_ms
    );
}

#[test]
fn create_partitions_adds_empty_partitions_that_survive_restart() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 2);
    assert_eq!(h.create_partitions("t", 3, false), (errors::NONE, None));
    assert_eq!(h.partition_count("t"), 3);
    assert_eq!(h.produce_ok("t", 2, 1), 0, "a new partition starts empty");
    let mut h = h.restart(Config::default());
    assert_eq!(h.partition_count("t"), 3);
    assert_eq!(h.list_offset("t", 2, -1), (errors::NONE, 1));
    assert_eq!(h.list_offset("t", 0, -1), (errors::NONE, 2));
}

#[test]
fn create_partitions_refuses_fewer_or_equal_with_kafkas_message() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 3);
    assert_eq!(
        h.create_partitions("t", 2, false),
        (
            errors::INVALID_PARTITIONS,
            Some("The topic t currently has 3 partition(s); 2 would not be an increase.".into())
        )
    );
    assert_eq!(
        h.create_partitions("t", 3, false),
        (
            errors::INVALID_PARTITIONS,
            Some("Topic already has 3 partition(s).".into())
        )
    );
    assert_eq!(
        h.create_partitions("nope", 3, false).0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        h.create_partitions("t", 1_000_000, false).0,
        errors::INVALID_PARTITIONS
    );
}

#[test]
fn create_partitions_refuses_assignments_and_honours_validate_only() {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    assert_eq!(h.create_partitions("t", 4, true), (errors::NONE, None));
    assert_eq!(h.partition_count("t"), 1, "validate_only changes nothing");
    let wanted = CreatePartitionsTopic::default()
        .with_name(topic_name("t"))
        .with_count(2)
        .with_assignments(Some(vec![
            CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)])
        ]));
    let request = CreatePartitionsRequest::default().with_topics(vec![wanted]);
    h.send(ADMIN, ApiKey::CreatePartitions, 3, &request);
    let response: CreatePartitionsResponse = h.response(ADMIN, ApiKey::CreatePartitions, 3);
    assert_eq!(
        response.results[0].error_code,
        errors::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(h.partition_count("t"), 1);
}

#[test]
fn create_partitions_writes_nothing_before_its_metadata_is_durable() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.send_create_partitions("t", 2, false);
    assert!(
        !h.has_response(ADMIN),
        "answered only once the metadata is durable"
    );
    h.produce(1, "t", 1, 1, make_batch(&[b"a"], 5));
    assert_eq!(h.produce_result(1).0, errors::NONE);
    assert!(
        !h.held.iter().any(|c| matches!(c.op, IoOp::Write { .. })),
        "no data reaches a partition the disk does not know yet"
    );
    h.release_io();
    let response: CreatePartitionsResponse = h.response(ADMIN, ApiKey::CreatePartitions, 3);
    assert_eq!(response.results[0].error_code, errors::NONE);
    assert!(
        h.data_files().iter().any(|path| path.contains("/1/")),
        "written after it"
    );
}

#[test]
fn delete_records_moves_the_log_start_and_survives_restart() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    for _ in 0..3 {
        h.produce_ok("t", 0, 2);
    }
    assert_eq!(h.delete_records("t", 0, 3), (errors::NONE, 3));
    h.fetch(2, "t", 1, 0);
    assert_eq!(h.fetch_result(2).0, errors::OFFSET_OUT_OF_RANGE);
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 3));
    assert_eq!(
        h.delete_records("t", 0, 1),
        (errors::NONE, 3),
        "never moves back"
    );
    let mut h = h.restart(Config::default());
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 3));
    h.fetch(2, "t", 2, 0);
    assert_eq!(h.fetch_result(2).0, errors::OFFSET_OUT_OF_RANGE);
    h.fetch(2, "t", 3, 0);
    let (error, high_watermark, records) = h.fetch_result(2);
    assert_eq!((error, high_watermark), (errors::NONE, 6));
    assert_eq!(
        offsets_in(&records),
        vec![2, 4],
        "from the batch holding the log start"
    );
}

#[test]
fn delete_records_beyond_the_high_watermark_is_offset_out_of_range() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 2);
    assert_eq!(
        h.delete_records("t", 0, 3),
        (errors::OFFSET_OUT_OF_RANGE, -1)
    );
    assert_eq!(
        h.delete_records("t", 0, -5),
        (errors::OFFSET_OUT_OF_RANGE, -1)
    );
    assert_eq!(
        h.delete_records("t", 1, 0).0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        h.delete_records("nope", 0, 0).0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 0));
}

#[test]
fn delete_records_minus_one_deletes_up_to_the_high_watermark() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 4);
    h.hold_io = true;
    h.produce(1, "t", 0, 1, make_batch(&[b"unflushed"], 5));
    assert_eq!(h.produce_result(1).0, errors::NONE);
    h.release_io();
    assert_eq!(h.delete_records("t", 0, -1), (errors::NONE, 5));
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 5));
}

#[test]
fn delete_records_answers_after_the_metadata_is_durable() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 2);
    h.hold_io = true;
    h.send_delete_records("t", 0, 1);
    assert!(!h.has_response(ADMIN));
    assert!(h.held.iter().any(|c| matches!(&c.op, IoOp::PersistMetadata { data } if String::from_utf8_lossy(data).contains("start\t"))));
    h.release_io();
    let response: DeleteRecordsResponse = h.response(ADMIN, ApiKey::DeleteRecords, 2);
    assert_eq!(response.topics[0].partitions[0].low_watermark, 1);
}

#[test]
fn delete_records_on_a_compacted_topic_is_a_policy_violation() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 2);
    assert_eq!(
        h.alter_configs(2, "t", &[("cleanup.policy", Some("compact"))], false)
            .0,
        errors::NONE
    );
    assert_eq!(h.delete_records("t", 0, 1).0, errors::POLICY_VIOLATION);
}

#[test]
fn a_log_start_beyond_the_recovered_log_starts_the_log_at_its_end() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 1);
    h.produce_ok("t", 0, 1);
    assert_eq!(h.delete_records("t", 0, 2), (errors::NONE, 2));
    let mut h = h.restart(Config {
        planted_bug: Some(PlantedBug::LoseLastBatchOnRecovery),
        ..Config::default()
    });
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 1));
    assert_eq!(h.list_offset("t", 0, -1), (errors::NONE, 1));
}

#[test]
fn describe_cluster_names_the_one_broker_and_the_cluster_id() {
    let mut h = Harness::new(Config::default());
    h.send(
        ADMIN,
        ApiKey::DescribeCluster,
        2,
        &DescribeClusterRequest::default(),
    );
    let response: DescribeClusterResponse = h.response(ADMIN, ApiKey::DescribeCluster, 2);
    assert_eq!(response.error_code, errors::NONE);
    assert_eq!(response.cluster_id.as_str(), h.broker.cluster_id());
    assert_eq!(response.controller_id, BrokerId(1));
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].port, 9092);
    assert_eq!(response.cluster_authorized_operations, i32::MIN);
    let asked = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    h.send(ADMIN, ApiKey::DescribeCluster, 0, &asked);
    let response: DescribeClusterResponse = h.response(ADMIN, ApiKey::DescribeCluster, 0);
    assert_ne!(
        response.cluster_authorized_operations & (1 << 8),
        0,
        "DESCRIBE is allowed"
    );
}

#[test]
fn describe_cluster_for_controllers_is_unsupported_endpoint_type() {
    let mut h = Harness::new(Config::default());
    let request = DescribeClusterRequest::default().with_endpoint_type(2);
    h.send(ADMIN, ApiKey::DescribeCluster, 1, &request);
    let response: DescribeClusterResponse = h.response(ADMIN, ApiKey::DescribeCluster, 1);
    assert_eq!(response.error_code, errors::UNSUPPORTED_ENDPOINT_TYPE);
}

#[test]
fn offset_for_leader_epoch_answers_epoch_zero_ending_at_the_high_watermark() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 3);
    let ask = |partition, current, epoch| {
        OffsetForLeaderPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(current)
            .with_leader_epoch(epoch)
    };
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![
                    ask(0, 0, 0),
                    ask(0, -1, 5),
                    ask(0, 3, 0),
                    ask(7, 0, 0),
                ]),
            OffsetForLeaderTopic::default()
                .with_topic(topic_name("nope"))
                .with_partitions(vec![ask(0, 0, 0)]),
        ]);
    h.send(ADMIN, ApiKey::OffsetForLeaderEpoch, 4, &request);
    let response: OffsetForLeaderEpochResponse = h.response(ADMIN, ApiKey::OffsetForLeaderEpoch, 4);
    let answers: Vec<(i16, i32, i64)> = response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.error_code, p.leader_epoch, p.end_offset))
        .collect();
    assert_eq!(
        answers,
        vec![
            (errors::NONE, 0, 3),
            (errors::NONE, -1, -1),
            (errors::UNKNOWN_LEADER_EPOCH, -1, -1),
            (errors::UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
            (errors::UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
        ]
    );
}

#[test]
fn describe_log_dirs_reports_each_partitions_size_in_bytes() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    let mut h = Harness::new(Config {
        log_dir: "/var/lib/spate".into(),
        ..Config::default()
    });
    h.create_topic("t", 2);
    h.produce_ok("t", 0, 2);
    let batch_bytes = make_batch(&[b"v", b"v"], 5).len() as i64;
    let all = DescribeLogDirsRequest::default().with_topics(None);
    h.send(ADMIN, ApiKey::DescribeLogDirs, 4, &all);
    let response: DescribeLogDirsResponse = h.response(ADMIN, ApiKey::DescribeLogDirs, 4);
    let dir = &response.results[0];
    assert_eq!(
        (dir.error_code, dir.log_dir.as_str()),
        (errors::NONE, "/var/lib/spate")
    );
    let sizes: Vec<(i32, i64, i64, bool)> = dir.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.partition_size,
                p.offset_lag,
                p.is_future_key,
            )
        })
        .collect();
    assert_eq!(sizes, vec![(0, batch_bytes, 0, false), (1, 0, 0, false)]);
    let only = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(topic_name("t"))
            .with_partitions(vec![1, 9]),
        DescribableLogDirTopic::default()
            .with_topic(topic_name("nope"))
            .with_partitions(vec![0]),
    ]));
    h.send(ADMIN, ApiKey::DescribeLogDirs, 1, &only);
    let response: DescribeLogDirsResponse = h.response(ADMIN, ApiKey::DescribeLogDirs, 1);
    let topics = &response.results[0].topics;
    assert_eq!(topics.len(), 1, "unknown topics are left out");
    assert_eq!(
        topics[0].partitions.len(),
        1,
        "unknown partitions are left out"
    );
}

#[test]
fn unserved_transaction_apis_close_the_connection_with_one_log_line() {
    // Clients send these only after FindCoordinator found a transaction coordinator, which it
    // never does here (see `transactions_and_acls_are_refused_with_named_errors`).
    let unserved = [
        (ApiKey::AddPartitionsToTxn, 3),
        (ApiKey::AddOffsetsToTxn, 3),
        (ApiKey::EndTxn, 3),
        (ApiKey::TxnOffsetCommit, 3),
    ];
    for (conn, (api_key, version)) in (20..).zip(unserved) {
        assert_eq!(
            supported_versions(api_key),
            None,
            "{api_key:?} is not advertised"
        );
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(1);
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, api_key.request_header_version(version))
            .unwrap();
        assert_closes_with_one_log_line(conn, api_key, frame.freeze());
    }
}

#[test]
fn transactions_and_acls_are_refused_with_named_errors() {
    let mut h = Harness::new(Config::default());
    // A transaction coordinator lookup fails fatally (for clients) with a message, in the old
    // single-key form and in the v4 batch form.
    let old = FindCoordinatorRequest::default()
        .with_key(text("tx-1"))
        .with_key_type(1);
    h.send(ADMIN, ApiKey::FindCoordinator, 3, &old);
    let response: FindCoordinatorResponse = h.response(ADMIN, ApiKey::FindCoordinator, 3);
    assert_eq!(
        response.error_code,
        errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(response.node_id.0, -1);
    assert!(response
        .error_message
        .unwrap()
        .contains("transactions are not supported"));
    let batch = FindCoordinatorRequest::default()
        .with_coordinator_keys(vec![text("tx-1"), text("tx-2")])
        .with_key_type(1);
    h.send(ADMIN, ApiKey::FindCoordinator, 4, &batch);
    let response: FindCoordinatorResponse = h.response(ADMIN, ApiKey::FindCoordinator, 4);
    assert_eq!(response.coordinators.len(), 2);
    for c in &response.coordinators {
        assert_eq!(c.error_code, errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        assert!(c.error_message.is_some());
    }
    // A group lookup on the same connection still works.
    let group = FindCoordinatorRequest::default()
        .with_coordinator_keys(vec![text("g")])
        .with_key_type(0);
    h.send(ADMIN, ApiKey::FindCoordinator, 4, &group);
    let response: FindCoordinatorResponse = h.response(ADMIN, ApiKey::FindCoordinator, 4);
    assert_eq!(response.coordinators[0].error_code, errors::NONE);
    // Success carries a null message (issue 13: "" reads as an error to clients).
    assert_eq!(response.coordinators[0].error_message, None);
    let single = FindCoordinatorRequest::default().with_key(text("g"));
    h.send(ADMIN, ApiKey::FindCoordinator, 3, &single);
    let response: FindCoordinatorResponse = h.response(ADMIN, ApiKey::FindCoordinator, 3);
    assert_eq!(
        (response.error_code, response.error_message),
        (errors::NONE, None)
    );

    // ACLs: SECURITY_DISABLED, per creation and per filter, as Kafka without an authorizer.
    h.send(
        ADMIN,
        ApiKey::DescribeAcls,
        3,
        &DescribeAclsRequest::default(),
    );
    let response: DescribeAclsResponse = h.response(ADMIN, ApiKey::DescribeAcls, 3);
    assert_eq!(response.error_code, errors::SECURITY_DISABLED);
    assert!(response.error_message.unwrap().contains("No Authorizer"));
    let creations = CreateAclsRequest::default().with_creations(vec![
        create_acls_request::AclCreation::default(),
        create_acls_request::AclCreation::default(),
    ]);
    h.send(ADMIN, ApiKey::CreateAcls, 2, &creations);
    let response: CreateAclsResponse = h.response(ADMIN, ApiKey::CreateAcls, 2);
    assert_eq!(response.results.len(), 2);
    assert!(response
        .results
        .iter()
        .all(|r| r.error_code == errors::SECURITY_DISABLED));
    let filters = DeleteAclsRequest::default()
        .with_filters(vec![delete_acls_request::DeleteAclsFilter::default()]);
    h.send(ADMIN, ApiKey::DeleteAcls, 1, &filters);
    let response: DeleteAclsResponse = h.response(ADMIN, ApiKey::DeleteAcls, 1);
    assert_eq!(response.filter_results.len(), 1);
    assert_eq!(
        response.filter_results[0].error_code,
        errors::SECURITY_DISABLED
    );

    // SASL on a PLAINTEXT listener: ILLEGAL_SASL_STATE, as Kafka answers.
    h.send(
        ADMIN,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(text("PLAIN")),
    );
    let response: SaslHandshakeResponse = h.response(ADMIN, ApiKey::SaslHandshake, 1);
    assert_eq!(response.error_code, errors::ILLEGAL_SASL_STATE);
    assert!(response.mechanisms.is_empty());
    h.send(
        ADMIN,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default(),
    );
    let response: SaslAuthenticateResponse = h.response(ADMIN, ApiKey::SaslAuthenticate, 2);
    assert_eq!(response.error_code, errors::ILLEGAL_SASL_STATE);
    assert!(response.error_message.unwrap().contains("PLAINTEXT"));
}

/// Sends `frame` to a fresh broker and checks it closes `conn` with exactly one log line.
fn assert_closes_with_one_log_line(conn: ConnId, api_key: ApiKey, frame: Bytes) {
    let mut broker = Broker::new(Config::default());
    broker.handle_request(0, conn, frame);
    let mut logs = Vec::new();
    let mut closed = Vec::new();
    while let Some(output) = broker.poll_output() {
        match output {
            Output::Log { message, .. } => logs.push(message),
            Output::Close { conn } => closed.push(conn),
            other => panic!("unexpected output {other:?}"),
        }
    }
    assert_eq!(closed, vec![conn]);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].contains(&format!("{api_key:?}")) && logs[0].contains("not implemented"));
}

#[test]
fn the_admin_apis_are_advertised_with_their_versions() {
    let mut h = Harness::new(Config::default());
    h.send(
        ADMIN,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    let response: ApiVersionsResponse = h.response(ADMIN, ApiKey::ApiVersions, 3);
    let advertised = |key: ApiKey| {
        response
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(advertised(ApiKey::DeleteRecords), Some((0, 2)));
    assert_eq!(advertised(ApiKey::OffsetForLeaderEpoch), Some((2, 4)));
    assert_eq!(advertised(ApiKey::DescribeConfigs), Some((1, 4)));
    assert_eq!(advertised(ApiKey::AlterConfigs), Some((0, 2)));
    assert_eq!(advertised(ApiKey::DescribeLogDirs), Some((1, 4)));
    assert_eq!(advertised(ApiKey::CreatePartitions), Some((0, 3)));
    assert_eq!(advertised(ApiKey::IncrementalAlterConfigs), Some((0, 1)));
    assert_eq!(advertised(ApiKey::DescribeCluster), Some((0, 2)));
    assert_eq!(advertised(ApiKey::EndTxn), None);
}

// ---- consumer groups ----

mod groups {
    use super::*;
    use crate::groups::GroupState;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;

    const DELAY_MS: i64 = 3_000;

    fn join(h: &mut Harness, conn: ConnId, group: &str, member: &str) {
        join_as(h, conn, group, member, None);
    }

    /// A JoinGroup v7, with a `group.instance.id` for a static member.
    fn join_as(h: &mut Harness, conn: ConnId, group: &str, member: &str, instance: Option<&str>) {
        let protocol = JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(subscription(&["t"]));
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS as i32)
            .with_rebalance_timeout_ms(20_000)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_group_instance_id(instance.map(|i| StrBytes::from_string(i.into())))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![protocol]);
        h.send(conn, ApiKey::JoinGroup, 7, &request);
    }

    /// A ConsumerProtocolSubscription v0 for `topics`, as the Java client and librdkafka send.
    fn subscription(topics: &[&str]) -> Bytes {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&0i16.to_be_bytes());
        let subscription = ConsumerProtocolSubscription::default().with_topics(
            topics
                .iter()
                .map(|t| StrBytes::from_string(t.to_string()))
                .collect(),
        );
        subscription.encode(&mut buf, 0).unwrap();
        buf.freeze()
    }

    fn joined(h: &mut Harness, conn: ConnId) -> JoinGroupResponse {
        h.response(conn, ApiKey::JoinGroup, 7)
    }

    /// Joins with the KIP-394 round trip; returns the member id.
    fn join_new(h: &mut Harness, conn: ConnId, group: &str) -> String {
        join(h, conn, group, "");
        let first = joined(h, conn);
        assert_eq!(first.error_code, errors::MEMBER_ID_REQUIRED);
        let member = first.member_id.to_string();
        assert!(!member.is_empty());
        join(h, conn, group, &member);
        member
    }

    fn sync(
        h: &mut Harness,
        conn: ConnId,
        group: &str,
        member: &str,
        generation: i32,
        assignments: &[(&str, &[u8])],
    ) {
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(StrBytes::from_string(m.to_string()))
                            .with_assignment(Bytes::copy_from_slice(a))
                    })
                    .collect(),
            );
        h.send(conn, ApiKey::SyncGroup, 5, &request);
    }

    fn heartbeat(h: &mut Harness, conn: ConnId, group: &str, member: &str, generation: i32) -> i16 {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member.into()));
        h.send(conn, ApiKey::Heartbeat, 4, &request);
        h.response::<HeartbeatResponse>(conn, ApiKey::Heartbeat, 4)
            .error_code
    }

    fn advance(h: &mut Harness, ms: i64) {
        h.now_ms += ms;
        h.handle_timeout();
    }

    fn synced(h: &mut Harness, conn: ConnId) -> SyncGroupResponse {
        h.response(conn, ApiKey::SyncGroup, 5)
    }

    /// The session timeout `join` asks for.
    const SESSION_TIMEOUT_MS: i64 = 10_000;

    /// Issue 12: a member parked in JoinGroup longer than its session timeout (while another
    /// takes up to its rebalance timeout to rejoin, as a librdkafka consumer does whose
    /// application is slow to poll) kept its passed session deadline in `poll_timeout` while
    /// `handle_timeout` skipped it: the shard's timer fired again at once, forever, and the
    /// production shell recursed until its stack overflowed. Its session is renewed instead.
    #[test]
    fn a_member_waiting_in_join_longer_than_its_session_keeps_deadlines_in_the_future() {
        let mut h = Harness::new(Config::default());
        let a = join_new(&mut h, 1, "g");
        advance(&mut h, DELAY_MS);
        assert_eq!(joined(&mut h, 1).generation_id, 1);
        sync(&mut h, 1, "g", &a, 1, &[(&a, b"a")]);
        assert_eq!(synced(&mut h, 1).error_code, errors::NONE);
        // b joins and waits; a keeps heartbeating but takes 15 s (rebalance timeout 20 s,
        // b's session 10 s) to rejoin.
        let b = join_new(&mut h, 2, "g");
        for _ in 0..15 {
            advance(&mut h, 1_000); // checks that no deadline is left due
            let deadline = h.broker.poll_timeout().expect("the rebalance deadline");
            assert!(deadline > h.now_ms, "deadline {deadline} at {}", h.now_ms);
            assert_eq!(
                heartbeat(&mut h, 1, "g", &a, 1),
                errors::REBALANCE_IN_PROGRESS
            );
        }
        assert!(!h.has_response(2), "b waits for a to rejoin");
        join(&mut h, 1, "g", &a);
        let (ja, jb) = (joined(&mut h, 1), joined(&mut h, 2));
        assert_eq!((ja.error_code, jb.error_code), (errors::NONE, errors::NONE));
        assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
        assert_eq!(ja.members.len(), 2, "b is still a member");
        assert_eq!(jb.member_id.to_string(), b);
    }

    // Group liveness found by the simulator: timers through a step back of the wall clock (seed
    // 791: the quiet phase undid 13 s of clock jumps, and a member from before a restart outlived
    // the quiet phase), and the store of a generation a rebalance ended (seed 1524).
    #[test]
    fn a_member_that_never_rejoins_is_dropped_on_time_after_the_clock_steps_back() {
        let mut h = Harness::new(Config::default());
        let a = join_new(&mut h, 1, "g");
        let b = join_new(&mut h, 2, "g");
        advance(&mut h, 3_000);
        assert_eq!(joined(&mut h, 1).generation_id, 1);
        assert_eq!(joined(&mut h, 2).generation_id, 1);
        sync(&mut h, 2, "g", &b, 1, &[]);
        sync(&mut h, 1, "g", &a, 1, &[(&a, b"a"), (&b, b"b")]);
        assert_eq!(synced(&mut h, 1).error_code, errors::NONE);
        assert_eq!(synced(&mut h, 2).error_code, errors::NONE);
        // The clock jumps 13 s ahead, the broker restarts with both members, the leader
        // rejoins and b never comes back.
        h.now_ms += 13_000;
        let mut h = h.restart(Config::default());
        join(&mut h, 1, "g", &a);
        assert_eq!(
            h.broker.groups.group("g").unwrap().state,
            GroupState::PreparingRebalance
        );
        // The clock is corrected: 13 s back, seen by the next input. Timers keep the time they
        // had left.
        h.now_ms -= 13_000;
        advance(&mut h, 0);
        advance(&mut h, SESSION_TIMEOUT_MS - 100);
        assert!(!h.has_response(1), "b's session has 100 ms left");
        advance(&mut h, 200);
        let response = joined(&mut h, 1);
        assert_eq!(
            (
                response.error_code,
                response.generation_id,
                response.members.len()
            ),
            (errors::NONE, 2, 1),
            "b expired after its session timeout, not 13 s later"
        );
        let group = &h.broker.groups.group("g").unwrap();
        assert_eq!(group.members.keys().collect::<Vec<_>>(), vec![&a]);
    }

    #[test]
    fn storing_an_ended_generation_does_not_answer_the_next_generations_syncs() {
        let mut h = Harness::new(Config::default());
        let a = join_new(&mut h, 1, "g");
        advance(&mut h, 3_000);
        assert_eq!(joined(&mut h, 1).generation_id, 1);
        // a's assignment for generation 1 is being stored when b joins.
        h.hold_io = true;
        sync(&mut h, 1, "g", &a, 1, &[(&a, b"all")]);
        let b = join_new(&mut h, 2, "g");
        assert_eq!(synced(&mut h, 1).error_code, errors::REBALANCE_IN_PROGRESS);
        join(&mut h, 1, "g", &a);
        assert_eq!(joined(&mut h, 1).generation_id, 2);
        assert_eq!(joined(&mut h, 2).generation_id, 2);
        // b's sync for generation 2 waits for the leader's, not for generation 1's store.
        sync(&mut h, 2, "g", &b, 2, &[]);
        h.release_io();
        assert!(
            !h.has_response(2),
            "generation 1's store answered b before the leader assigned generation 2"
        );
        sync(&mut h, 1, "g", &a, 2, &[(&a, b"half a"), (&b, b"half b")]);
        assert_eq!(&synced(&mut h, 1).assignment[..], b"half a");
        assert_eq!(&synced(&mut h, 2).assignment[..], b"half b");
    }

    fn commit(h: &mut Harness, group: &str, member: &str, generation: i32, offset: i64) -> i16 {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(0)
            .with_committed_offset(offset);
        let topic = OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![partition]);
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_topics(vec![topic]);
        h.send(7, ApiKey::OffsetCommit, 8, &request);
        let response: OffsetCommitResponse = h.response(7, ApiKey::OffsetCommit, 8);
        response.topics[0].partitions[0].error_code
    }

    fn committed(h: &mut Harness, group: &str) -> i64 {
        let topic = OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_indexes(vec![0]);
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_topics(Some(vec![topic]));
        h.send(7, ApiKey::OffsetFetch, 7, &request);
        let response: OffsetFetchResponse = h.response(7, ApiKey::OffsetFetch, 7);
        response.topics[0].partitions[0].committed_offset
    }

    /// Two members join, the first rebalance waits the initial delay, the leader assigns.
    fn stable_group_of_two(h: &mut Harness) -> (String, String, i32) {
        let a = join_new(h, 1, "g");
        let b = join_new(h, 2, "g");
        assert!(
            !h.has_response(1) && !h.has_response(2),
            "the first rebalance waits the initial delay"
        );
        advance(h, DELAY_MS);
        let (ja, jb) = (joined(h, 1), joined(h, 2));
        assert_eq!((ja.error_code, jb.error_code), (errors::NONE, errors::NONE));
        assert_eq!(ja.generation_id, 1);
        assert_eq!(ja.leader.as_str(), a, "the first member to join leads");
        assert_eq!(ja.members.len(), 2, "the leader gets every member");
        assert!(jb.members.is_empty(), "followers get none");
        sync(h, 2, "g", &b, 1, &[]);
        assert!(
            !h.has_response(2),
            "a follower's sync waits for the leader's"
        );
        sync(h, 1, "g", &a, 1, &[(&a, b"for-a"), (&b, b"for-b")]);
        let sa: SyncGroupResponse = h.response(1, ApiKey::SyncGroup, 5);
        let sb: SyncGroupResponse = h.response(2, ApiKey::SyncGroup, 5);
        assert_eq!(
            (&sa.assignment[..], &sb.assignment[..]),
            (&b"for-a"[..], &b"for-b"[..])
        );
        (a, b, 1)
    }

    /// Issue 13: a second process started with a live member's `group.instance.id` takes its
    /// place, and the old one is told FENCED_INSTANCE_ID on every request (so it stops), not
    /// UNKNOWN_MEMBER_ID (on which it rejoined and replaced the new one, over and over).
    #[test]
    fn a_static_member_replaced_by_a_new_process_is_fenced_everywhere() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        join_as(&mut h, 1, "g", "", Some("instance-1"));
        advance(&mut h, DELAY_MS);
        let first = joined(&mut h, 1);
        assert_eq!((first.error_code, first.generation_id), (errors::NONE, 1));
        let old = first.member_id.to_string();
        sync(&mut h, 1, "g", &old, 1, &[(&old, b"a")]);
        assert_eq!(synced(&mut h, 1).error_code, errors::NONE);

        join_as(&mut h, 2, "g", "", Some("instance-1"));
        let new = joined(&mut h, 2);
        assert_eq!(new.error_code, errors::NONE);
        assert_ne!(new.member_id.to_string(), old);

        let instance = Some(StrBytes::from_static_str("instance-1"));
        let group = GroupId(StrBytes::from_static_str("g"));
        let old_id = StrBytes::from_string(old.clone());
        let heartbeat = HeartbeatRequest::default()
            .with_group_id(group.clone())
            .with_generation_id(1)
            .with_member_id(old_id.clone())
            .with_group_instance_id(instance.clone());
        h.send(1, ApiKey::Heartbeat, 4, &heartbeat);
        let answer: HeartbeatResponse = h.response(1, ApiKey::Heartbeat, 4);
        assert_eq!(answer.error_code, errors::FENCED_INSTANCE_ID, "heartbeat");

        let sync_request = SyncGroupRequest::default()
            .with_group_id(group.clone())
            .with_generation_id(1)
            .with_member_id(old_id.clone())
            .with_group_instance_id(instance.clone());
        h.send(1, ApiKey::SyncGroup, 5, &sync_request);
        assert_eq!(
            synced(&mut h, 1).error_code,
            errors::FENCED_INSTANCE_ID,
            "sync"
        );

        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(0)
            .with_committed_offset(1);
        let commit = OffsetCommitRequest::default()
            .with_group_id(group.clone())
            .with_generation_id_or_member_epoch(1)
            .with_member_id(old_id.clone())
            .with_group_instance_id(instance.clone())
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![partition])]);
        h.send(1, ApiKey::OffsetCommit, 8, &commit);
        let answer: OffsetCommitResponse = h.response(1, ApiKey::OffsetCommit, 8);
        assert_eq!(
            answer.topics[0].partitions[0].error_code,
            errors::FENCED_INSTANCE_ID,
            "commit"
        );

        join_as(&mut h, 1, "g", &old, Some("instance-1"));
        assert_eq!(
            joined(&mut h, 1).error_code,
            errors::FENCED_INSTANCE_ID,
            "join"
        );

        let leave = LeaveGroupRequest::default()
            .with_group_id(group)
            .with_members(vec![leave_group_request::MemberIdentity::default()
                .with_member_id(old_id)
                .with_group_instance_id(instance)]);
        h.send(1, ApiKey::LeaveGroup, 4, &leave);
        let answer: LeaveGroupResponse = h.response(1, ApiKey::LeaveGroup, 4);
        assert_eq!(
            answer.members[0].error_code,
            errors::FENCED_INSTANCE_ID,
            "leave"
        );
        // The new member is untouched: still in the group, which never rebalanced.
        let g = &h.broker.groups.group("g").unwrap();
        assert_eq!((g.state, g.generation_id), (GroupState::Stable, 1));
        assert!(g.members.contains_key(new.member_id.as_str()));
    }

    #[test]
    fn members_join_sync_and_become_stable() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        let (a, b, generation) = stable_group_of_two(&mut h);
        assert_eq!(heartbeat(&mut h, 1, "g", &a, generation), errors::NONE);
        assert_eq!(heartbeat(&mut h, 2, "g", &b, generation), errors::NONE);
        assert_eq!(
            h.broker.groups.group("g").unwrap().state,
            GroupState::Stable
        );
    }

    #[test]
    fn sync_answers_wait_until_the_new_generation_is_durable() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        let a = join_new(&mut h, 1, "g");
        advance(&mut h, DELAY_MS);
        assert_eq!(joined(&mut h, 1).generation_id, 1);
        h.hold_io = true;
        sync(&mut h, 1, "g", &a, 1, &[(&a, b"mine")]);
        assert!(
            !h.has_response(1),
            "the assignment waits for the group record's flush"
        );
        h.release_io();
        let response: SyncGroupResponse = h.response(1, ApiKey::SyncGroup, 5);
        assert_eq!(&response.assignment[..], b"mine");
    }

    #[test]
    fn bad_group_requests_get_kafkas_errors() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        let (a, _, generation) = stable_group_of_two(&mut h);
        assert_eq!(
            heartbeat(&mut h, 1, "g", "nobody", generation),
            errors::UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            heartbeat(&mut h, 1, "g", &a, generation + 5),
            errors::ILLEGAL_GENERATION
        );
        assert_eq!(
            heartbeat(&mut h, 1, "", &a, generation),
            errors::INVALID_GROUP_ID
        );
        assert_eq!(
            commit(&mut h, "g", &a, generation + 1, 5),
            errors::ILLEGAL_GENERATION
        );
        assert_eq!(
            commit(&mut h, "g", "nobody", generation, 5),
            errors::UNKNOWN_MEMBER_ID
        );
        assert_eq!(
            commit(&mut h, "g", "", -1, 5),
            errors::UNKNOWN_MEMBER_ID,
            "only members commit to an active group"
        );
        join(&mut h, 3, "", "");
        assert_eq!(joined(&mut h, 3).error_code, errors::INVALID_GROUP_ID);
        let delete = DeleteGroupsRequest::default().with_groups_names(vec![
            GroupId(StrBytes::from_static_str("g")),
            GroupId(StrBytes::from_static_str("unknown")),
        ]);
        h.send(7, ApiKey::DeleteGroups, 2, &delete);
        let response: DeleteGroupsResponse = h.response(7, ApiKey::DeleteGroups, 2);
        assert_eq!(response.results[0].error_code, errors::NON_EMPTY_GROUP);
        assert_eq!(response.results[1].error_code, errors::GROUP_ID_NOT_FOUND);
    }

    #[test]
    fn an_expired_session_rebalances_the_rest_and_the_last_one_out_empties_the_group() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        let (a, b, generation) = stable_group_of_two(&mut h);
        advance(&mut h, 6_000);
        assert_eq!(heartbeat(&mut h, 1, "g", &a, generation), errors::NONE);
        advance(&mut h, 5_000); // b has not heartbeated for 11 s > 10 s session
        assert_eq!(
            heartbeat(&mut h, 1, "g", &a, generation),
            errors::REBALANCE_IN_PROGRESS
        );
        assert!(!h.broker.groups.group("g").unwrap().members.contains_key(&b));
        join(&mut h, 1, "g", &a);
        let rejoined = joined(&mut h, 1);
        assert_eq!(
            (rejoined.error_code, rejoined.generation_id),
            (errors::NONE, 2),
            "a alone completes the rebalance"
        );
        let leave = LeaveGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_member_id(StrBytes::from_string(a.clone()));
        h.send(1, ApiKey::LeaveGroup, 2, &leave);
        assert_eq!(
            h.response::<LeaveGroupResponse>(1, ApiKey::LeaveGroup, 2)
                .error_code,
            errors::NONE
        );
        assert_eq!(h.broker.groups.group("g").unwrap().state, GroupState::Empty);
    }

    #[test]
    fn commits_are_durable_and_survive_a_restart_with_the_group() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        let (a, _, generation) = stable_group_of_two(&mut h);
        h.hold_io = true;
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(0)
            .with_committed_offset(42);
        let topic = OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![partition]);
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(a.clone()))
            .with_topics(vec![topic]);
        h.send(7, ApiKey::OffsetCommit, 8, &request);
        assert!(
            !h.has_response(7),
            "a commit is answered once its record is flushed"
        );
        h.release_io();
        let response: OffsetCommitResponse = h.response(7, ApiKey::OffsetCommit, 8);
        assert_eq!(response.topics[0].partitions[0].error_code, errors::NONE);
        assert_eq!(committed(&mut h, "g"), 42);
        let mut h = h.restart(Config::default());
        assert_eq!(
            committed(&mut h, "g"),
            42,
            "offsets are replayed from __consumer_offsets"
        );
        let group = &h.broker.groups.group("g").unwrap();
        assert_eq!(
            (group.state, group.generation_id, group.members.len()),
            (GroupState::Stable, 1, 2)
        );
        assert_eq!(
            heartbeat(&mut h, 1, "g", &a, generation),
            errors::NONE,
            "members carry on after a restart"
        );
    }

    #[test]
    fn simple_commits_work_without_members_and_expire_with_retention() {
        let config = Config {
            groups: crate::groups::GroupConfig {
                offsets_retention_ms: 60_000,
                offsets_retention_check_interval_ms: 1_000,
                ..Default::default()
            },
            ..Config::default()
        };
        let mut h = Harness::new(config);
        h.create_topic("t", 1);
        assert_eq!(commit(&mut h, "solo", "", -1, 7), errors::NONE);
        assert_eq!(committed(&mut h, "solo"), 7);
        assert_eq!(committed(&mut h, "nobody"), -1);
        advance(&mut h, 30_000);
        advance(&mut h, 29_000);
        assert_eq!(
            committed(&mut h, "solo"),
            7,
            "not yet: 59 s after the commit"
        );
        advance(&mut h, 2_000);
        assert_eq!(
            committed(&mut h, "solo"),
            -1,
            "expired after offsets.retention"
        );
        assert!(h.broker.groups.group("solo").is_none());
    }

    #[test]
    fn offset_delete_refuses_a_subscribed_topic() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        h.create_topic("other", 1);
        let (a, _, generation) = stable_group_of_two(&mut h);
        assert_eq!(commit(&mut h, "g", &a, generation, 3), errors::NONE);
        let topic = |name: &'static str| {
            kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(name)))
                .with_partitions(vec![kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default()])
        };
        let request = OffsetDeleteRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(vec![topic("t"), topic("other")]);
        h.send(7, ApiKey::OffsetDelete, 0, &request);
        let response: OffsetDeleteResponse = h.response(7, ApiKey::OffsetDelete, 0);
        assert_eq!(
            response.topics[0].partitions[0].error_code,
            errors::GROUP_SUBSCRIBED_TO_TOPIC
        );
        assert_eq!(response.topics[1].partitions[0].error_code, errors::NONE);
        assert_eq!(committed(&mut h, "g"), 3);
    }

    #[test]
    fn list_and_describe_groups_use_kafkas_state_names() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        stable_group_of_two(&mut h);
        h.send(7, ApiKey::ListGroups, 4, &ListGroupsRequest::default());
        let listed: ListGroupsResponse = h.response(7, ApiKey::ListGroups, 4);
        assert_eq!(listed.groups.len(), 1);
        assert_eq!(listed.groups[0].group_state.as_str(), "Stable");
        let request = DescribeGroupsRequest::default().with_groups(vec![
            GroupId(StrBytes::from_static_str("g")),
            GroupId(StrBytes::from_static_str("none")),
        ]);
        h.send(7, ApiKey::DescribeGroups, 5, &request);
        let described: DescribeGroupsResponse = h.response(7, ApiKey::DescribeGroups, 5);
        assert_eq!(described.groups[0].members.len(), 2);
        assert_eq!(described.groups[0].protocol_data.as_str(), "range");
        assert_eq!(described.groups[1].group_state.as_str(), "Dead");
    }
}

fn offset_for_time(h: &mut Harness, timestamp: i64) -> (i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let partition = ListOffsetsPartition::default()
        .with_partition_index(0)
        .with_timestamp(timestamp);
    let topic = ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partitions(vec![partition]);
    h.send(
        8,
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest::default().with_topics(vec![topic]),
    );
    let response: ListOffsetsResponse = h.response(8, ApiKey::ListOffsets, 7);
    let p = &response.topics[0].partitions[0];
    (p.offset, p.timestamp)
}

#[test]
fn offsets_for_times_find_the_record_inside_a_batch_from_cache_and_disk() {
    // A 1-byte tail cache keeps only the newest batch: the first is read from disk.
    let mut h = Harness::new(Config {
        tail_cache_bytes_per_partition: 1,
        ..Config::default()
    });
    h.create_topic("t", 1);
    h.produce(1, "t", 0, -1, make_batch(&[b"a", b"b", b"c"], 1_000)); // timestamps 1000..=1002
    h.produce_result(1);
    h.produce(1, "t", 0, -1, make_batch(&[b"d", b"e"], 2_000)); // timestamps 2000..=2001
    h.produce_result(1);
    assert_eq!(
        offset_for_time(&mut h, 1_001),
        (1, 1_001),
        "inside the first batch, read from disk"
    );
    assert_eq!(
        offset_for_time(&mut h, 1_500),
        (3, 2_000),
        "the next batch's first record"
    );
    assert_eq!(
        offset_for_time(&mut h, 2_001),
        (4, 2_001),
        "inside the cached batch"
    );
    assert_eq!(
        offset_for_time(&mut h, 3_000),
        (-1, -1),
        "nothing that late"
    );
}

// ---- storage: segments, retention, checkpoints ----

mod flush_policy {
    use super::*;

    /// Performs every held I/O command, and what it causes, until none is left; returns how
    /// many fsyncs were among them.
    fn run_held(h: &mut Harness) -> usize {
        let mut syncs = 0;
        while !h.held.is_empty() {
            for command in std::mem::take(&mut h.held) {
                syncs += usize::from(matches!(command.op, IoOp::Sync { .. }));
                let result = h.perform(command.op);
                h.broker.handle_io_done(h.now_ms, command.token, result);
            }
            h.step();
        }
        syncs
    }

    /// A topic `lazy` with `flush.messages=5`, `flush.ms=1000`, I/O held from here on.
    fn lazy_topic() -> Harness {
        let mut h = Harness::new(Config::default());
        h.create_topic("lazy", 1);
        let (code, message) = h.alter_configs(
            2,
            "lazy",
            &[("flush.messages", Some("5")), ("flush.ms", Some("1000"))],
            false,
        );
        assert_eq!(code, errors::NONE, "{message:?}");
        h.hold_io = true;
        h
    }

    #[test]
    fn the_default_policy_syncs_every_write_and_shows_only_synced_records() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        assert_eq!(h.topic_config("t", "flush.messages").0, "1");
        h.hold_io = true;
        h.produce(1, "t", 0, 1, make_batch(&[b"a"], 5));
        assert_eq!(h.produce_result(1), (errors::NONE, 0));
        assert_eq!(run_held(&mut h), 1, "an acks=1 write is synced at once");
        h.fetch(2, "t", 0, 0);
        assert_eq!(h.fetch_result(2).1, 1);
    }

    #[test]
    fn a_relaxed_policy_shows_written_records_and_syncs_after_flush_ms() {
        let mut h = lazy_topic();
        h.produce(1, "lazy", 0, 1, make_batch(&[b"a", b"b"], 5));
        assert_eq!(h.produce_result(1), (errors::NONE, 0));
        assert_eq!(
            run_held(&mut h),
            0,
            "2 of 5 messages, 0 of 1000 ms: no sync yet"
        );
        // Visible once written, as with Kafka's page cache.
        h.fetch(2, "lazy", 0, 0);
        let (code, high_watermark, records) = h.fetch_result(2);
        assert_eq!((code, high_watermark), (errors::NONE, 2));
        assert_eq!(offsets_in(&records), vec![0], "the one batch, at offset 0");
        let log = &h.broker.topics["lazy"].partitions[0].log;
        assert_eq!(log.flushed_offset(), 0);
        // The broker asks to be woken when flush.ms runs out, and syncs then.
        assert_eq!(h.broker.poll_timeout(), Some(h.now_ms + 1000));
        h.now_ms += 999;
        h.handle_timeout();
        assert_eq!(run_held(&mut h), 0, "not yet");
        h.now_ms += 1;
        h.handle_timeout();
        assert_eq!(run_held(&mut h), 1);
        assert_eq!(
            h.broker.topics["lazy"].partitions[0].log.flushed_offset(),
            2
        );
        assert_eq!(
            h.broker.poll_timeout().filter(|&t| t <= h.now_ms + 1000),
            None
        );
    }

    #[test]
    fn a_relaxed_policy_syncs_after_flush_messages() {
        let mut h = lazy_topic();
        h.produce(1, "lazy", 0, 1, make_batch(&[b"1", b"2", b"3"], 5));
        assert_eq!(run_held(&mut h), 0);
        h.produce(1, "lazy", 0, 1, make_batch(&[b"4", b"5"], 5));
        assert_eq!(
            run_held(&mut h),
            1,
            "the fifth unflushed message makes a sync due"
        );
        assert_eq!(
            h.broker.topics["lazy"].partitions[0].log.flushed_offset(),
            5
        );
    }

    #[test]
    fn acks_all_and_commits_always_wait_for_their_fsync() {
        let mut h = lazy_topic();
        h.produce(1, "lazy", 0, 1, make_batch(&[b"a"], 5));
        assert_eq!(run_held(&mut h), 0);
        h.produce(3, "lazy", 0, -1, make_batch(&[b"b"], 5));
        assert!(
            !h.has_response(3),
            "acks=all is not answered before its fsync"
        );
        // The unflushed acks=1 write may get its own sync first; then the acks=all write's.
        assert!(run_held(&mut h) >= 1, "acks=all makes a sync due at once");
        assert_eq!(h.produce_result(3), (errors::NONE, 1));
        assert_eq!(
            h.broker.topics["lazy"].partitions[0].log.flushed_offset(),
            2
        );
    }

    #[test]
    fn a_clean_shutdown_syncs_what_a_relaxed_policy_left_unflushed() {
        let mut h = lazy_topic();
        h.produce(1, "lazy", 0, 1, make_batch(&[b"a"], 5));
        assert_eq!(run_held(&mut h), 0);
        h.broker.begin_shutdown();
        h.step();
        assert_eq!(run_held(&mut h), 1);
        assert!(!h.broker.is_flushing());
        let restarted = h.restart(Config::default());
        assert_eq!(restarted.broker.high_watermark("lazy", 0), Some(1));
    }

    #[test]
    fn backpressure_holds_acks_0_and_1_until_their_write_once_unwritten_bytes_pass_the_bound() {
        let big = vec![b'x'; 3000];
        let mut h = Harness::new(Config {
            unwritten_bytes_max: 4000,
            ..Config::default()
        });
        h.create_topic("t", 1);
        h.hold_io = true;
        // Under the bound: answered at append, the write still held.
        h.produce(1, "t", 0, 1, make_batch(&[&big], 5));
        assert_eq!(h.produce_result(1), (errors::NONE, 0));
        // Past the bound: held until its own batch is written (not synced).
        h.produce(2, "t", 0, 1, make_batch(&[&big], 5));
        assert!(!h.has_response(2), "held by backpressure");
        h.produce(3, "t", 0, 0, make_batch(&[&big], 5));
        assert!(h.no_response.is_empty(), "acks=0 is held too");
        // The first write takes batch 0 only (the others were appended while it was in flight).
        let first = h.held.remove(0);
        assert!(matches!(first.op, IoOp::Write { .. }));
        let result = h.perform(first.op);
        h.broker.handle_io_done(h.now_ms, first.token, result);
        h.step();
        assert!(!h.has_response(2), "its own batch is not written yet");
        // The next write carries batches 1 and 2: both producers go on, before any fsync.
        let next = h
            .held
            .iter()
            .position(|c| matches!(c.op, IoOp::Write { .. }))
            .expect("the second write");
        let next = h.held.remove(next);
        let result = h.perform(next.op);
        h.broker.handle_io_done(h.now_ms, next.token, result);
        h.step();
        assert_eq!(h.produce_result(2), (errors::NONE, 1));
        assert_eq!(h.no_response, vec![3]);
        assert!(h.broker.topics["t"].partitions[0].log.flushed_offset() < 3);
    }

    #[test]
    fn the_tail_cache_of_all_partitions_stays_within_its_bound_oldest_first() {
        let value = vec![b'v'; 1000];
        let mut h = Harness::new(Config {
            tail_cache_bytes: 10_000,
            ..Config::default()
        });
        h.create_topic("t", 3);
        // 12 batches of about 1 KiB, round robin over the partitions, one millisecond apart.
        for i in 0..12 {
            h.now_ms += 1;
            h.produce(1, "t", i % 3, -1, make_batch(&[&value], 5));
            assert_eq!(h.produce_result(1).0, errors::NONE);
        }
        let logs = &h.broker.topics["t"].partitions;
        let total: usize = logs.iter().map(|l| l.log.tail_bytes()).sum();
        assert!(total <= 10_000, "{total} bytes cached");
        assert!(total > 7_000, "only what must go is evicted: {total}");
        // Three batches had to go, the three oldest: each partition's first. Each partition's
        // oldest cached batch is now its second, appended at 4, 5 and 6 ms.
        let start = h.now_ms - 12;
        for (p, log) in logs.iter().map(|p| &p.log).enumerate() {
            assert_eq!(log.tail_bytes(), 3 * total / 9, "partition {p}");
            assert_eq!(log.oldest_evictable_ms(), Some(start + 4 + p as i64));
        }
        // An evicted batch is read back from disk, intact.
        h.fetch(2, "t", 0, 0);
        let (code, _, records) = h.fetch_result(2);
        assert_eq!(code, errors::NONE);
        assert_eq!(offsets_in(&records), vec![0, 1, 2, 3]);
    }

    #[test]
    fn flush_ms_zero_is_immediate_and_flush_messages_zero_is_refused() {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        let (code, _) = h.alter_configs(
            2,
            "t",
            &[("flush.messages", Some("100")), ("flush.ms", Some("0"))],
            false,
        );
        assert_eq!(code, errors::NONE);
        h.hold_io = true;
        h.produce(1, "t", 0, 1, make_batch(&[b"a"], 5));
        assert_eq!(run_held(&mut h), 1);
        let (code, message) = h.alter_configs(2, "t", &[("flush.messages", Some("0"))], false);
        assert_eq!(code, errors::INVALID_CONFIG);
        assert!(message.unwrap().contains("flush.messages"));
    }
}

mod chunked_recovery {
    use super::*;
    use crate::log::RecoveryReport;

    /// A topic `t` with batches of 1, 2, ... 8 records of growing values, produced with
    /// acks=all: the segment holds batches of many sizes.
    fn produced() -> Harness {
        let mut h = Harness::new(Config::default());
        h.create_topic("t", 1);
        for n in 1..=8usize {
            let values: Vec<Vec<u8>> = (0..n).map(|i| vec![b'a' + i as u8; 37 * n]).collect();
            let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            h.produce(1, "t", 0, -1, make_batch(&values, 5));
            assert_eq!(h.produce_result(1).0, errors::NONE);
        }
        h
    }

    /// Restarts (as after a crash: no clean-shutdown mark) scanning in `chunk`-byte pieces;
    /// returns the scan report of the one segment and what a fetch from 0 reads.
    fn restart_scanning_in(h: &Harness, chunk: usize) -> (RecoveryReport, Vec<i64>, Harness) {
        let mut disk = h.disk.clone();
        disk.scan_chunk_bytes = Some(chunk);
        let (mut restarted, report) = h.restart_on(disk, Config::default());
        restarted.fetch(2, "t", 0, 0);
        let (code, _, records) = restarted.fetch_result(2);
        assert_eq!(code, errors::NONE);
        let (_, scan) = report
            .scanned
            .into_iter()
            .next()
            .expect("the segment was scanned");
        (scan, offsets_in(&records), restarted)
    }

    #[test]
    fn a_scan_in_pieces_of_any_size_finds_what_a_whole_read_finds() {
        let h = produced();
        let (whole, offsets, _) = restart_scanning_in(&h, 1 << 30);
        assert_eq!(whole.batches, 8);
        assert_eq!(whole.next_offset, 36);
        assert_eq!(offsets.len(), 8);
        for chunk in [1, 7, 61, 100, 4096, 5000] {
            let (scan, read, mut restarted) = restart_scanning_in(&h, chunk);
            assert_eq!(scan, whole, "pieces of {chunk} bytes");
            assert_eq!(read, offsets, "pieces of {chunk} bytes");
            // Appends continue after the recovered end, in the same block-aligned file.
            restarted.produce(1, "t", 0, -1, make_batch(&[b"after"], 5));
            assert_eq!(restarted.produce_result(1), (errors::NONE, 36));
        }
    }

    #[test]
    fn a_torn_tail_is_found_across_pieces() {
        let mut h = produced();
        let (whole, _, _) = restart_scanning_in(&h, 1 << 30);
        let path = h
            .data_files()
            .into_iter()
            .find(|p| p.ends_with(".log"))
            .expect("a segment file")
            .clone();
        // Garbage after the last batch, then zeros, then more garbage further on.
        let file = h.disk.files.get_mut(&path).unwrap();
        let end = whole.valid_bytes as usize;
        file.resize(end + 9000, 0);
        file[end..end + 10].copy_from_slice(b"garbage!!!");
        file[end + 8000] = 0xff;
        for chunk in [1, 13, 4096, 1 << 30] {
            let (scan, read, _) = restart_scanning_in(&h, chunk);
            assert_eq!(
                scan.valid_bytes, whole.valid_bytes,
                "pieces of {chunk} bytes"
            );
            assert_eq!(scan.torn_bytes, 8001, "pieces of {chunk} bytes");
            assert!(scan.stop_reason.is_some());
            assert_eq!(read.len(), 8);
        }
    }
}

mod storage {
    use super::*;

    /// A topic `t` with small segments, and `batches` acks=all batches of two records each with
    /// timestamps 5 and 6 produced into it.
    fn small_segments(batches: usize) -> Harness {
        let mut h = Harness::new(Config {
            tail_cache_bytes_per_partition: 1,
            retention_check_interval_ms: 1_000,
            ..Config::default()
        });
        h.create_topic("t", 1);
        let ops = [
            ("segment.bytes", 0, Some("1000")),
            ("index.interval.bytes", 0, Some("200")),
        ];
        assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
        for _ in 0..batches {
            h.produce(1, "t", 0, -1, make_batch(&[&[b'v'; 150], b"w"], 5));
            assert_eq!(h.produce_result(1).0, errors::NONE);
        }
        h
    }

    fn segment_files(h: &Harness, suffix: &str) -> Vec<String> {
        h.data_files()
            .into_iter()
            .filter(|p| p.ends_with(suffix))
            .cloned()
            .collect()
    }

    /// Every offset from `from` read back through Fetch, in order.
    fn read_all(h: &mut Harness, from: i64) -> Vec<i64> {
        let mut offsets = Vec::new();
        let mut next = from;
        loop {
            h.fetch(3, "t", next, 0);
            let (error, _, records) = h.fetch_result(3);
            assert_eq!(error, errors::NONE);
            let batches = batch::validate_all(&records).unwrap();
            let got: Vec<i64> = batches
                .iter()
                .flat_map(|b| b.base_offset..=b.last_offset())
                .filter(|o| *o >= next)
                .collect();
            let Some(&last) = got.last() else {
                return offsets;
            };
            offsets.extend(got);
            next = last + 1;
        }
    }

    #[test]
    fn segments_roll_at_segment_bytes_and_reads_cross_them_from_disk() {
        let mut h = small_segments(30);
        let logs = segment_files(&h, ".log");
        assert!(logs.len() >= 6, "~4 batches a 1,000-byte segment: {logs:?}");
        // Every closed segment has its index file.
        assert_eq!(segment_files(&h, ".index").len(), logs.len() - 1);
        assert_eq!(read_all(&mut h, 0), (0..60).collect::<Vec<_>>());
        assert_eq!(read_all(&mut h, 37), (37..60).collect::<Vec<_>>());
        assert_eq!(h.list_offset("t", 0, 5), (errors::NONE, 0));
    }

    #[test]
    fn retention_ms_deletes_old_segments_and_fetch_below_the_start_is_out_of_range() {
        let mut h = small_segments(30);
        let files = segment_files(&h, ".log").len();
        // The records' timestamps are 5 and 6 ms; now is ~1,000,000 ms.
        let ops = [("retention.ms", 0, Some("100000"))];
        assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
        h.now_ms += 2_000;
        h.handle_timeout();
        // Every closed segment went; the active one was rolled, to go at the next pass.
        assert_eq!(segment_files(&h, ".log").len(), 1, "of {files}");
        h.now_ms += 2_000;
        h.handle_timeout();
        assert!(segment_files(&h, ".log").is_empty());
        assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 60));
        h.fetch(3, "t", 10, 0);
        assert_eq!(h.fetch_result(3).0, errors::OFFSET_OUT_OF_RANGE);
        // Offsets carry on after a restart, from the start persisted in the metadata.
        let mut h = h.restart(Config::default());
        assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 60));
        assert_eq!(h.produce_ok("t", 0, 1), 60);
    }

    #[test]
    fn retention_bytes_keeps_the_newest_segments() {
        let mut h = small_segments(30);
        let ops = [("retention.bytes", 0, Some("3000"))];
        assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
        h.now_ms += 2_000;
        h.handle_timeout();
        let (_, start) = h.list_offset("t", 0, -2);
        assert!(start > 20 && start < 60, "log start {start}");
        assert_eq!(read_all(&mut h, start), (start..60).collect::<Vec<_>>());
        let log = &h.broker.topics["t"].partitions[0].log;
        assert!(log.size_bytes() >= 3000 && log.size_bytes() < 3000 + 1000);
    }

    #[test]
    fn delete_records_then_retention_removes_the_segments_below_the_start() {
        let mut h = small_segments(30);
        let before = segment_files(&h, ".log").len();
        assert_eq!(h.delete_records("t", 0, 30), (errors::NONE, 30));
        h.now_ms += 2_000;
        h.handle_timeout();
        let after = segment_files(&h, ".log").len();
        assert!(after < before && after > 1, "{before} -> {after}");
        assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 30));
        assert_eq!(read_all(&mut h, 30), (30..60).collect::<Vec<_>>());
    }

    #[test]
    fn a_clean_shutdown_checkpoints_so_the_next_start_scans_nothing() {
        let mut h = small_segments(10);
        h.broker.begin_shutdown();
        h.step();
        assert!(!h.broker.is_flushing());
        assert!(h.disk.files.contains_key(crate::io::CLEAN_SHUTDOWN_FILE));
        let mut broker = Broker::new(Config::default());
        let mut disk = h.disk.clone();
        let report = broker.start_up(&mut disk, h.now_ms).unwrap();
        assert!(report.clean);
        assert!(report.scanned.is_empty(), "{:?}", report.scanned);
        assert!(report.loaded >= 3);
        assert!(!disk.files.contains_key(crate::io::CLEAN_SHUTDOWN_FILE));
        let mut h = Harness {
            broker,
            disk,
            now_ms: h.now_ms,
            ..Harness::new(Config::default())
        };
        h.step();
        assert_eq!(read_all(&mut h, 0), (0..20).collect::<Vec<_>>());
        assert_eq!(h.produce_ok("t", 0, 1), 20);
        // Without the mark, the last segment is scanned again.
        let h = h.restart(Config::default());
        assert_eq!(h.broker.high_watermark("t", 0), Some(21));
    }

    #[test]
    fn after_a_crash_closed_segments_load_from_their_index_and_only_the_last_is_scanned() {
        let h = small_segments(30);
        let mut broker = Broker::new(Config::default());
        let mut disk = h.disk.clone();
        let report = broker.start_up(&mut disk, h.now_ms).unwrap();
        assert!(!report.clean);
        assert_eq!(report.scanned.len(), 1);
        assert_eq!(report.loaded, segment_files(&h, ".index").len());
        // A damaged index file is not trusted: its segment is scanned and the index rewritten.
        let mut damaged = h.disk.clone();
        let index = segment_files(&h, ".index")[1].clone();
        damaged.files.get_mut(&index).unwrap()[10] ^= 1;
        let mut broker = Broker::new(Config::default());
        let report = broker.start_up(&mut damaged, h.now_ms).unwrap();
        assert_eq!(report.scanned.len(), 2);
        let mut h2 = Harness {
            broker,
            disk: damaged,
            now_ms: h.now_ms,
            ..Harness::new(Config::default())
        };
        h2.step();
        let base = crate::io::parse_segment_name(index.rsplit('/').next().unwrap())
            .unwrap()
            .0;
        let (rebuilt, _) =
            crate::segment::Segment::decode_index(base, &h2.disk.files[&index]).unwrap();
        let (original, _) =
            crate::segment::Segment::decode_index(base, &h.disk.files[&index]).unwrap();
        assert_eq!(
            (rebuilt.next_offset, rebuilt.bytes, rebuilt.index_entries()),
            (
                original.next_offset,
                original.bytes,
                original.index_entries()
            ),
            "the index file is rebuilt"
        );
        assert_eq!(read_all(&mut h2, 0), (0..60).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_closed_segment_drops_the_segments_after_it() {
        let h = small_segments(30);
        let mut disk = h.disk.clone();
        let logs = segment_files(&h, ".log");
        let index = segment_files(&h, ".index");
        // The third segment lost its index and its last bytes (its sync never happened).
        disk.files.remove(&index[2]);
        let third = disk.files.get_mut(&logs[2]).unwrap();
        let len = third.len();
        third[len - 4096..].fill(0);
        third.truncate(len - 10);
        let mut broker = Broker::new(Config::default());
        broker.start_up(&mut disk, h.now_ms).unwrap();
        let hw = broker.high_watermark("t", 0).unwrap();
        assert!(hw < 60 && hw > 8, "{hw}");
        let remaining = disk.files.keys().filter(|p| p.ends_with(".log")).count();
        assert_eq!(remaining, 3, "the segments after the torn one are gone");
    }
}
