//! The broker driven through its public interface by an in-memory shell: requests in, outputs
//! performed on a map of byte vectors, with control over when I/O completes. The harness is
//! here; the tests are by area in `tests/`: `data_tests.rs` (produce, fetch, list offsets,
//! recovery), `admin_tests.rs` and `configs_tests.rs` (admin APIs), `groups_tests.rs`,
//! `flush_policy_tests.rs`, `chunked_recovery_tests.rs`, `storage_tests.rs` (segments,
//! retention, checkpoints).

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
    /// Controller quorum messages for other nodes.
    to_nodes: Vec<(crate::replica::NodeId, Vec<u8>)>,
    /// Requests for other brokers (followers' fetches), length prefix included.
    to_brokers: Vec<(crate::replica::NodeId, Bytes)>,
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
            to_nodes: Vec::new(),
            to_brokers: Vec::new(),
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
                Output::Log { message, .. } => {
                    if std::env::var_os("HARNESS_LOG").is_some() {
                        eprintln!("{message}");
                    }
                }
                Output::ToShard { shard, message } => {
                    panic!("a single shard told shard {shard}: {message:?}")
                }
                Output::ToNode { node, frame } => self.to_nodes.push((node, frame)),
                Output::ToBroker { node, frame, .. } => self.to_brokers.push((node, frame)),
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
        self.fetch_as(conn, (topic, offset, max_wait_ms), 11, "");
    }

    /// As `fetch`, in Fetch `version`, from a consumer in `rack` (v11+; "" for none).
    fn fetch_as(
        &mut self,
        conn: ConnId,
        (topic, offset, max_wait_ms): (&str, i64, i32),
        version: i16,
        rack: &str,
    ) {
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
            .with_rack_id(StrBytes::from_string(rack.into()))
            .with_topics(vec![topic]);
        self.send(conn, ApiKey::Fetch, version, &request);
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

mod admin_tests;
mod chunked_recovery_tests;
mod cluster_tests;
mod compaction_tests;
mod configs_tests;
mod data_tests;
mod epoch_tests;
mod flush_policy_tests;
mod groups_tests;
mod quorum_tests;
mod storage_tests;

use admin_tests::{text, topic_name, ADMIN};
