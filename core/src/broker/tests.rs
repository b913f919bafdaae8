//! The broker driven through its public interface by an in-memory shell: requests in, outputs
//! performed on a map of byte vectors, with control over when I/O completes.

use super::*;
use crate::batch::{self, tests::make_batch};
use crate::errors;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

struct Harness {
    broker: Broker,
    files: BTreeMap<String, Vec<u8>>,
    metadata: Option<Vec<u8>>,
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
            files: BTreeMap::new(),
            metadata: None,
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
        let mut broker = Broker::new(config);
        let to_load = broker.recover_metadata(self.metadata.as_deref()).unwrap();
        let mut files = self.files.clone();
        for file in to_load {
            let data = files
                .get(&file.relative_path())
                .cloned()
                .unwrap_or_default();
            let report = broker.recover_partition(&file, &data);
            if report.needs_truncate() {
                files
                    .get_mut(&file.relative_path())
                    .unwrap()
                    .truncate(report.valid_bytes as usize);
            }
        }
        let mut harness = Harness {
            broker,
            files,
            metadata: self.metadata.clone(),
            ..Harness::new(Config::default())
        };
        harness.responses.clear();
        harness.step();
        harness
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
                Output::Io(command) if self.hold_io => self.held.push(command),
                Output::Io(command) => {
                    let result = self.perform(command.op);
                    self.broker
                        .handle_io_done(self.now_ms, command.token, result);
                }
            }
        }
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
        match op {
            IoOp::Write {
                file,
                position,
                data,
            } => {
                assert_eq!(position % crate::log::BLOCK_BYTES, 0);
                assert_eq!(data.len() as u64 % crate::log::BLOCK_BYTES, 0);
                let bytes = self.files.entry(file.relative_path()).or_default();
                let end = position as usize + data.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[position as usize..end].copy_from_slice(&data);
                IoResult::Done
            }
            IoOp::Sync { .. } => IoResult::Done,
            IoOp::Read {
                file,
                position,
                len,
            } => {
                let bytes = &self.files[&file.relative_path()];
                IoResult::Data(Bytes::copy_from_slice(
                    &bytes[position as usize..position as usize + len],
                ))
            }
            IoOp::PersistMetadata { data } => {
                self.metadata = Some(data);
                IoResult::Done
            }
            IoOp::RemoveTopicDir { topic_dir } => {
                self.files
                    .retain(|path, _| !path.starts_with(&format!("{topic_dir}/")));
                IoResult::Done
            }
        }
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
    h.broker.handle_timeout(h.now_ms);
    h.step();
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
    assert!(!h.files.is_empty());
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("t"))]);
    h.send(9, ApiKey::DeleteTopics, 5, &request);
    let response: DeleteTopicsResponse = h.response(9, ApiKey::DeleteTopics, 5);
    assert_eq!(response.responses[0].error_code, errors::NONE);
    assert!(h.files.is_empty());
    h.fetch(2, "t", 0, 0);
    assert_eq!(h.fetch_result(2).0, errors::UNKNOWN_TOPIC_OR_PARTITION);
    let h = h.restart(Config::default());
    assert!(h.broker.topics.is_empty());
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
    h.now_ms += STORAGE_RETRY_MS;
    h.broker.handle_timeout(h.now_ms);
    h.step();
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
