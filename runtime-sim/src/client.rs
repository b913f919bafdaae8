//! Simulated Kafka clients. They speak the real protocol (requests encoded, responses decoded with
//! the same generated codecs real clients mirror), one request in flight each, with retries, and
//! write down what they sent, what was acknowledged and what they read, for the checkers.

use crate::group_client::{GroupMember, GroupRequest};
use crate::history::{Ack, History};
use crate::rng::Stream;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use spate_core::errors;

/// Virtual microseconds.
pub type Micros = u64;

/// A request waits this long for its answer before the client gives up on the connection.
const REQUEST_TIMEOUT_US: Micros = 5_000_000;
const RETRY_BACKOFF_US: Micros = 100_000;

/// A workload topic: its name, partitions and the configs it is created with.
pub type WorkloadTopic = (String, i32, Vec<(String, String)>);

#[derive(Debug, Clone)]
pub enum Role {
    /// Creates the workload topics, then creates and deletes scratch topics.
    Admin {
        /// Each workload topic, its partitions, and the configs it is created with (small
        /// segments, compaction, say).
        topics: Vec<WorkloadTopic>,
        created: usize,
        scratch: u32,
        scratch_exists: bool,
    },
    Producer(Producer),
    Consumer(Consumer),
    GroupMember(GroupMember),
}

#[derive(Debug, Clone)]
pub struct Producer {
    pub topic: String,
    pub partitions: i32,
    pub acks: i16,
    pub idempotent: bool,
    producer_id: i64,
    epoch: i16,
    next_sequence: Vec<i32>,
    next_record: u64,
    /// A compacted topic's producer: each record has one of this many keys, `k<n>`, which its
    /// payload ends with (`...|k<n>`), so the checkers know every record's key.
    pub keys: Option<u64>,
    /// The batch being sent (resent as is on retry): partition, first sequence, payloads.
    batch: Option<(i32, i32, Vec<String>)>,
}

#[derive(Debug, Clone)]
pub struct Consumer {
    pub topic: String,
    pub partitions: i32,
    pub next_offset: Vec<i64>,
    pub high_watermark: Vec<i64>,
    /// The verifier reads everything once at the end, into the history's final log.
    pub verifier: bool,
}

#[derive(Debug, Clone, Copy)]
struct Waiting {
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    sent_us: Micros,
    /// When the client gives up on the answer and resets the connection.
    timeout_us: Micros,
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: usize,
    pub role: Role,
    pub connected: bool,
    waiting: Option<Waiting>,
    next_correlation: i32,
    /// No new work after this (the quiet phase drains what is pending).
    pub producing: bool,
}

/// What a client wants from the network after a step.
#[derive(Debug, Default)]
pub struct Step {
    pub connect: bool,
    /// A request frame (no length prefix), and whether an answer will come.
    pub send: Option<(Bytes, bool)>,
    /// Drop the connection (a request timed out).
    pub reset: bool,
    /// Call `tick` again after this long.
    pub wake_after_us: Option<Micros>,
}

impl Client {
    pub fn new(id: usize, role: Role) -> Client {
        Client {
            id,
            role,
            connected: false,
            waiting: None,
            next_correlation: 1,
            producing: true,
        }
    }

    pub fn producer(topic: &str, partitions: i32, acks: i16, idempotent: bool) -> Role {
        Role::Producer(Producer {
            topic: topic.to_string(),
            partitions,
            acks,
            idempotent,
            producer_id: -1,
            epoch: -1,
            next_sequence: vec![0; partitions as usize],
            next_record: 0,
            keys: None,
            batch: None,
        })
    }

    /// A producer of keyed records (one of `keys` keys each) for a compacted topic.
    pub fn keyed_producer(topic: &str, acks: i16, idempotent: bool, keys: u64) -> Role {
        let mut role = Client::producer(topic, 1, acks, idempotent);
        if let Role::Producer(p) = &mut role {
            p.keys = Some(keys);
        }
        role
    }

    pub fn consumer(topic: &str, partitions: i32, verifier: bool) -> Role {
        Role::Consumer(Consumer {
            topic: topic.to_string(),
            partitions,
            next_offset: vec![0; partitions as usize],
            high_watermark: vec![0; partitions as usize],
            verifier,
        })
    }

    /// Whether nothing is left to do: the liveness check wants every producer idle.
    pub fn is_idle(&self) -> bool {
        match &self.role {
            Role::Producer(p) => p.batch.is_none() && self.waiting.is_none(),
            Role::Admin {
                topics, created, ..
            } => *created >= topics.len(),
            Role::Consumer(c) => c.next_offset == c.high_watermark,
            Role::GroupMember(m) => m.is_settled(),
        }
    }

    /// A one-line account of where the client stands, for liveness reports.
    pub fn describe(&self) -> String {
        let state = match &self.role {
            Role::Producer(p) => format!(
                "producer acks={} pid={} epoch={} batch={:?} seq={:?}",
                p.acks,
                p.producer_id,
                p.epoch,
                p.batch.as_ref().map(|b| (b.0, b.1, b.2.len())),
                p.next_sequence
            ),
            Role::Consumer(c) => format!(
                "consumer at {:?}, high watermarks {:?}",
                c.next_offset, c.high_watermark
            ),
            Role::GroupMember(m) => format!(
                "group member {} generation {} phase {:?} assigned {:?} at {:?}",
                m.member_id, m.generation, m.phase, m.assigned, m.positions
            ),
            Role::Admin {
                created, scratch, ..
            } => format!("admin created={created} scratch={scratch}"),
        };
        format!(
            "{state}, connected={}, waiting={:?}",
            self.connected,
            self.waiting.map(|w| (w.api_key, w.sent_us))
        )
    }

    /// The partition the request about to be sent is for (a producer's batch), so that a
    /// cluster routes it to that partition's leader; `None` for any node.
    pub fn target_partition(&self) -> Option<i32> {
        match &self.role {
            Role::Producer(p) => p.batch.as_ref().map(|b| b.0),
            _ => None,
        }
    }

    /// A consumer's position and last high watermark seen, by partition.
    pub fn consumer_state(&self) -> Option<(&[i64], &[i64])> {
        match &self.role {
            Role::Consumer(c) => Some((&c.next_offset, &c.high_watermark)),
            _ => None,
        }
    }

    pub fn topics_created(&self) -> bool {
        matches!(&self.role, Role::Admin { topics, created, .. } if *created >= topics.len())
    }

    /// The connection broke: whatever was in flight has an unknown outcome and is retried.
    pub fn on_reset(&mut self) {
        self.connected = false;
        self.waiting = None;
    }

    pub fn on_connected(&mut self) {
        self.connected = true;
    }

    /// Decides what to do next.
    pub fn tick(
        &mut self,
        now: Micros,
        rng: &mut Stream,
        history: &mut History,
        topics_ready: bool,
    ) -> Step {
        if let Some(waiting) = self.waiting {
            if now >= waiting.sent_us + waiting.timeout_us {
                self.on_reset();
                return Step {
                    reset: true,
                    wake_after_us: Some(RETRY_BACKOFF_US),
                    ..Step::default()
                };
            }
            return Step {
                wake_after_us: Some(waiting.sent_us + waiting.timeout_us - now),
                ..Step::default()
            };
        }
        if !self.connected {
            return Step {
                connect: true,
                wake_after_us: Some(RETRY_BACKOFF_US),
                ..Step::default()
            };
        }
        let request = match &mut self.role {
            Role::Admin { .. } => self.admin_request(rng),
            Role::Producer(_) if !topics_ready => None,
            Role::Producer(_) => self.producer_request(rng, history),
            Role::Consumer(_) if !topics_ready => None,
            Role::Consumer(_) => self.consumer_request(rng),
            Role::GroupMember(_) if !topics_ready => None,
            Role::GroupMember(_) => self.group_request(now, rng),
        };
        match request {
            Some((frame, api_key, version, expects_response)) => {
                // A JoinGroup waits for the rebalance: clients give it the rebalance timeout
                // and a margin (the Java client's 5 s), not the usual request timeout.
                let timeout_us = match &self.role {
                    Role::GroupMember(m) if api_key == ApiKey::JoinGroup => {
                        m.rebalance_timeout_ms as Micros * 1_000 + 5_000_000
                    }
                    _ => REQUEST_TIMEOUT_US,
                };
                if expects_response {
                    let correlation_id = self.next_correlation - 1;
                    self.waiting = Some(Waiting {
                        correlation_id,
                        api_key,
                        version,
                        sent_us: now,
                        timeout_us,
                    });
                }
                let wake = if expects_response {
                    timeout_us
                } else {
                    rng.range(1_000, 20_000)
                };
                Step {
                    send: Some((frame, expects_response)),
                    wake_after_us: Some(wake),
                    ..Step::default()
                }
            }
            None => Step {
                wake_after_us: Some(rng.range(10_000, 100_000)),
                ..Step::default()
            },
        }
    }

    fn encode<R: Encodable>(&mut self, api_key: ApiKey, version: i16, request: &R) -> Bytes {
        let frame = encode_request(self.id, self.next_correlation, api_key, version, request);
        self.next_correlation += 1;
        frame
    }

    fn admin_request(&mut self, rng: &mut Stream) -> Option<(Bytes, ApiKey, i16, bool)> {
        let Role::Admin {
            topics,
            created,
            scratch,
            scratch_exists,
        } = &mut self.role
        else {
            unreachable!()
        };
        let workload = *created < topics.len();
        let (name, partitions, create, configs) = if workload {
            let (name, partitions, configs) = topics[*created].clone();
            (name, partitions, true, configs)
        } else if rng.chance(300) {
            (
                format!("scratch-{scratch}"),
                1 + (rng.next_u64() % 3) as i32,
                !*scratch_exists,
                Vec::new(),
            )
        } else {
            return None;
        };
        let name = TopicName(StrBytes::from_string(name));
        if create {
            let topic = CreatableTopic::default()
                .with_name(name)
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(
                    configs
                        .into_iter()
                        .map(|(key, value)| {
                            kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(key))
                                .with_value(Some(StrBytes::from_string(value)))
                        })
                        .collect(),
                );
            let request = CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000);
            Some((
                self.encode(ApiKey::CreateTopics, 7, &request),
                ApiKey::CreateTopics,
                7,
                true,
            ))
        } else {
            let request = DeleteTopicsRequest::default()
                .with_topic_names(vec![name])
                .with_timeout_ms(30_000);
            Some((
                self.encode(ApiKey::DeleteTopics, 5, &request),
                ApiKey::DeleteTopics,
                5,
                true,
            ))
        }
    }

    fn producer_request(
        &mut self,
        rng: &mut Stream,
        history: &mut History,
    ) -> Option<(Bytes, ApiKey, i16, bool)> {
        let producing = self.producing;
        let Role::Producer(p) = &mut self.role else {
            unreachable!()
        };
        if p.idempotent && p.producer_id < 0 {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            return Some((
                self.encode(ApiKey::InitProducerId, 4, &request),
                ApiKey::InitProducerId,
                4,
                true,
            ));
        }
        if p.batch.is_none() {
            if !producing {
                return None;
            }
            let partition = (rng.next_u64() % p.partitions as u64) as i32;
            let count = rng.range(1, 5) as usize;
            let payloads: Vec<String> = (0..count)
                .map(|i| {
                    let payload = format!("c{}-r{}", self.id, p.next_record + i as u64);
                    match p.keys {
                        Some(keys) => format!("{payload}|k{}", rng.next_u64() % keys),
                        None => payload,
                    }
                })
                .collect();
            p.next_record += count as u64;
            for payload in &payloads {
                history.sent.insert(payload.clone());
            }
            let sequence = if p.idempotent {
                p.next_sequence[partition as usize]
            } else {
                -1
            };
            p.batch = Some((partition, sequence, payloads));
        }
        let (partition, sequence, payloads) = p.batch.clone().expect("set above");
        let records: Vec<Record> = payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: if p.idempotent { p.producer_id } else { -1 },
                producer_epoch: if p.idempotent { p.epoch } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The codec starts a new batch where offset - sequence changes: without a
                // producer id, offset - 1 keeps one batch whose base sequence is -1.
                sequence: if p.idempotent {
                    sequence + i as i32
                } else {
                    i as i32 - 1
                },
                timestamp: 1_700_000_000_000,
                key: payload
                    .split_once('|')
                    .map(|(_, key)| Bytes::from(key.to_string())),
                value: Some(Bytes::from(payload.clone().into_bytes())),
                headers: Default::default(),
            })
            .collect();
        let mut batch = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut batch, &records, &options).expect("batch encodes");
        let data = PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(batch.freeze()));
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(p.topic.clone())))
            .with_partition_data(vec![data]);
        let acks = p.acks;
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![topic]);
        if acks == 0 {
            // No answer will come: the batch counts as sent, never as acknowledged.
            p.batch = None;
        }
        Some((
            self.encode(ApiKey::Produce, 9, &request),
            ApiKey::Produce,
            9,
            acks != 0,
        ))
    }

    fn consumer_request(&mut self, rng: &mut Stream) -> Option<(Bytes, ApiKey, i16, bool)> {
        let Role::Consumer(c) = &mut self.role else {
            unreachable!()
        };
        let partitions = (0..c.partitions)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(c.next_offset[p as usize])
                    .with_partition_max_bytes(rng.range(1, 64 * 1024) as i32)
            })
            .collect();
        let topic = FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(c.topic.clone())))
            .with_partitions(partitions);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(rng.range(0, 500) as i32)
            .with_min_bytes(1)
            .with_max_bytes(rng.range(1, 256 * 1024) as i32)
            .with_topics(vec![topic]);
        Some((
            self.encode(ApiKey::Fetch, 11, &request),
            ApiKey::Fetch,
            11,
            true,
        ))
    }

    /// A response frame (length prefix included) arrived.
    /// `now` is when the node sent the response: acknowledgements are timed by it.
    pub fn on_response(&mut self, frame: Bytes, now: Micros, history: &mut History) {
        let Some(waiting) = self.waiting.take() else {
            history.problems.push(format!(
                "client {} got a response it did not ask for",
                self.id
            ));
            return;
        };
        let mut body = frame.slice(4..);
        let header = match ResponseHeader::decode(
            &mut body,
            waiting.api_key.response_header_version(waiting.version),
        ) {
            Ok(header) => header,
            Err(e) => {
                return history.problems.push(format!(
                    "client {}: undecodable response header: {e}",
                    self.id
                ))
            }
        };
        if header.correlation_id != waiting.correlation_id {
            history.problems.push(format!(
                "client {}: response correlation id {} for request {}",
                self.id, header.correlation_id, waiting.correlation_id
            ));
            return;
        }
        let outcome = match waiting.api_key {
            ApiKey::CreateTopics => CreateTopicsResponse::decode(&mut body, waiting.version)
                .map(|r| self.on_create(r, history)),
            ApiKey::DeleteTopics => DeleteTopicsResponse::decode(&mut body, waiting.version)
                .map(|r| self.on_delete(r, history)),
            ApiKey::InitProducerId => {
                InitProducerIdResponse::decode(&mut body, waiting.version).map(|r| self.on_init(r))
            }
            ApiKey::Produce => ProduceResponse::decode(&mut body, waiting.version)
                .map(|r| self.on_produce(r, history)),
            ApiKey::Fetch if matches!(self.role, Role::GroupMember(_)) => {
                FetchResponse::decode(&mut body, waiting.version)
                    .map(|r| self.on_group_fetch(r, history))
            }
            ApiKey::Fetch => {
                FetchResponse::decode(&mut body, waiting.version).map(|r| self.on_fetch(r, history))
            }
            key => self.on_group_response(key, waiting.version, &mut body, now, history),
        };
        if let Err(e) = outcome {
            history.problems.push(format!(
                "client {}: undecodable {:?} response: {e}",
                self.id, waiting.api_key
            ));
        }
    }

    fn on_create(&mut self, response: CreateTopicsResponse, history: &mut History) {
        let Role::Admin {
            topics,
            created,
            scratch_exists,
            ..
        } = &mut self.role
        else {
            unreachable!()
        };
        let code = response.topics.first().map_or(-1, |t| t.error_code);
        // A retried create may find the topic made by the first attempt.
        if code == errors::NONE || code == errors::TOPIC_ALREADY_EXISTS {
            if *created < topics.len() {
                *created += 1;
            } else {
                *scratch_exists = true;
            }
        } else {
            history
                .problems
                .push(format!("CreateTopics failed with error {code}"));
        }
    }

    fn on_delete(&mut self, response: DeleteTopicsResponse, history: &mut History) {
        let Role::Admin {
            scratch,
            scratch_exists,
            ..
        } = &mut self.role
        else {
            unreachable!()
        };
        let code = response.responses.first().map_or(-1, |t| t.error_code);
        if code == errors::NONE || code == errors::UNKNOWN_TOPIC_OR_PARTITION {
            *scratch_exists = false;
            *scratch += 1;
        } else {
            history
                .problems
                .push(format!("DeleteTopics failed with error {code}"));
        }
    }

    fn on_init(&mut self, response: InitProducerIdResponse) {
        let Role::Producer(p) = &mut self.role else {
            unreachable!()
        };
        if response.error_code == errors::NONE {
            p.producer_id = response.producer_id.0;
            p.epoch = response.producer_epoch;
            p.next_sequence.iter_mut().for_each(|s| *s = 0);
            if let Some(batch) = &mut p.batch {
                batch.1 = 0;
            }
        }
    }

    fn on_produce(&mut self, response: ProduceResponse, history: &mut History) {
        let client = self.id;
        let Role::Producer(p) = &mut self.role else {
            unreachable!()
        };
        let Some(result) = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
        else {
            history
                .problems
                .push(format!("client {client}: empty produce response"));
            return;
        };
        let Some((partition, _, payloads)) = p.batch.clone() else {
            return;
        };
        match result.error_code {
            errors::NONE => {
                history.acks.push(Ack {
                    client,
                    acks: p.acks,
                    idempotent: p.idempotent,
                    topic: p.topic.clone(),
                    partition,
                    base_offset: result.base_offset,
                    payloads: payloads.clone(),
                });
                if p.idempotent {
                    p.next_sequence[partition as usize] += payloads.len() as i32;
                }
                p.batch = None;
            }
            errors::OUT_OF_ORDER_SEQUENCE_NUMBER | errors::INVALID_PRODUCER_EPOCH => {
                // The broker lost sequence state it had acknowledged (possible after acks=1
                // records vanish in a crash): start a new producer session, as clients do.
                history.sequence_resets += 1;
                p.producer_id = -1;
            }
            // Retriable: storage error, timeout, unknown partition while recovering. Same batch again.
            _ => {}
        }
    }

    fn on_fetch(&mut self, response: FetchResponse, history: &mut History) {
        let client = self.id;
        let Role::Consumer(c) = &mut self.role else {
            unreachable!()
        };
        for topic in &response.responses {
            for partition in &topic.partitions {
                let index = partition.partition_index as usize;
                if index >= c.next_offset.len() {
                    history.problems.push(format!(
                        "client {client}: fetch answered unknown partition {index}"
                    ));
                    continue;
                }
                match partition.error_code {
                    errors::NONE => {}
                    errors::OFFSET_OUT_OF_RANGE => {
                        history.problems.push(format!(
                            "client {client}: offset {} of {}-{index} out of range: records it could read are gone",
                            c.next_offset[index], c.topic
                        ));
                        // Then on as a Kafka consumer resets (auto.offset.reset): to the end
                        // when past it, to the start when below it.
                        c.next_offset[index] = reset_position(
                            c.next_offset[index],
                            partition.log_start_offset,
                            partition.high_watermark,
                        );
                        continue;
                    }
                    _ => continue,
                }
                // The latest, not the largest seen: a crash under a relaxed flush policy may take
                // the high watermark back.
                c.high_watermark[index] = partition.high_watermark;
                let records = partition.records.clone().unwrap_or_default();
                let next = read_batches(
                    client,
                    &c.topic,
                    index as i32,
                    c.next_offset[index],
                    records,
                    history,
                    c.verifier,
                );
                c.next_offset[index] = next;
            }
        }
    }
}

impl Client {
    fn group_request(
        &mut self,
        now: Micros,
        rng: &mut Stream,
    ) -> Option<(Bytes, ApiKey, i16, bool)> {
        let faulty = self.producing;
        let Role::GroupMember(member) = &mut self.role else {
            unreachable!()
        };
        let request = member.next_request(now, rng, faulty)?;
        let (frame, key, version) = match request {
            GroupRequest::Join(r) => (self.encode(ApiKey::JoinGroup, 5, &r), ApiKey::JoinGroup, 5),
            GroupRequest::Sync(r) => (self.encode(ApiKey::SyncGroup, 3, &r), ApiKey::SyncGroup, 3),
            GroupRequest::Heartbeat(r) => {
                (self.encode(ApiKey::Heartbeat, 3, &r), ApiKey::Heartbeat, 3)
            }
            GroupRequest::Leave(r) => (
                self.encode(ApiKey::LeaveGroup, 3, &r),
                ApiKey::LeaveGroup,
                3,
            ),
            GroupRequest::OffsetFetch(r) => (
                self.encode(ApiKey::OffsetFetch, 7, &r),
                ApiKey::OffsetFetch,
                7,
            ),
            GroupRequest::Commit(r) => (
                self.encode(ApiKey::OffsetCommit, 8, &r),
                ApiKey::OffsetCommit,
                8,
            ),
            GroupRequest::Fetch(r) => (self.encode(ApiKey::Fetch, 11, &r), ApiKey::Fetch, 11),
        };
        Some((frame, key, version, true))
    }

    fn on_group_response(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &mut Bytes,
        now: Micros,
        history: &mut History,
    ) -> anyhow::Result<()> {
        let client = self.id;
        let Role::GroupMember(member) = &mut self.role else {
            unreachable!("clients do not send {key:?}")
        };
        match key {
            ApiKey::JoinGroup => member.on_join(JoinGroupResponse::decode(body, version)?),
            ApiKey::SyncGroup => {
                member.on_sync(SyncGroupResponse::decode(body, version)?, client, history)
            }
            ApiKey::Heartbeat => member.on_heartbeat(HeartbeatResponse::decode(body, version)?),
            ApiKey::LeaveGroup => {
                LeaveGroupResponse::decode(body, version)?;
            }
            ApiKey::OffsetFetch => {
                member.on_offset_fetch(OffsetFetchResponse::decode(body, version)?, client, history)
            }
            ApiKey::OffsetCommit => member.on_commit(
                OffsetCommitResponse::decode(body, version)?,
                client,
                now,
                history,
            ),
            other => unreachable!("clients do not send {other:?}"),
        }
        Ok(())
    }

    /// A group member's fetch: read like a plain consumer, advancing its positions.
    fn on_group_fetch(&mut self, response: FetchResponse, history: &mut History) {
        let client = self.id;
        let Role::GroupMember(member) = &mut self.role else {
            unreachable!()
        };
        for topic in &response.responses {
            for partition in &topic.partitions {
                let index = partition.partition_index;
                let Some(&position) = member.positions.get(&index) else {
                    continue;
                };
                if partition.error_code == errors::OFFSET_OUT_OF_RANGE {
                    history.problems.push(format!(
                        "client {client}: group offset {position} of {}-{index} out of range",
                        member.topic
                    ));
                    let reset = reset_position(
                        position,
                        partition.log_start_offset,
                        partition.high_watermark,
                    );
                    member.positions.insert(index, reset);
                    continue;
                }
                if partition.error_code != errors::NONE {
                    continue;
                }
                let records = partition.records.clone().unwrap_or_default();
                let next = read_batches(
                    client,
                    &member.topic,
                    index,
                    position,
                    records,
                    history,
                    false,
                );
                member.positions.insert(index, next);
            }
        }
    }
}

/// Checks and records every batch of a fetched partition; returns the next offset to read.
/// A request frame (without its length prefix) from simulated client `client`.
pub(crate) fn encode_request<R: Encodable>(
    client: usize,
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    request: &R,
) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(format!("sim-{client}"))));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .expect("request header encodes");
    request.encode(&mut buf, version).expect("request encodes");
    buf.freeze()
}

fn read_batches(
    client: usize,
    topic: &str,
    partition: i32,
    mut next: i64,
    records: Bytes,
    history: &mut History,
    verifier: bool,
) -> i64 {
    // A compacted topic's batches may hold fewer records than offsets, or none.
    let compacted = topic == crate::TABLE;
    let validate = match compacted {
        true => spate_core::batch::validate_stored,
        false => spate_core::batch::validate,
    };
    let mut position = 0;
    while position < records.len() {
        let rest = records.slice(position..);
        let info = match validate(&rest) {
            Ok(info) => info,
            Err(e) => {
                history.problems.push(format!("client {client}: corrupt batch served from {topic}-{partition} at offset {next}: {e}"));
                return next;
            }
        };
        position += info.size_bytes;
        let epoch = info.partition_leader_epoch;
        history.observe_batch(topic, partition, info.base_offset, epoch, verifier);
        if info.base_offset > next || info.last_offset() < next {
            history.problems.push(format!(
                "client {client}: {topic}-{partition}: expected offset {next}, got a batch of {}..={}",
                info.base_offset,
                info.last_offset()
            ));
            return next;
        }
        let mut one = rest.slice(..info.size_bytes);
        let set = match RecordBatchDecoder::decode(&mut one) {
            Ok(set) => set,
            Err(e) => {
                history.problems.push(format!(
                    "client {client}: undecodable batch from {topic}-{partition}: {e}"
                ));
                return next;
            }
        };
        for record in set.records {
            if record.offset < next {
                continue;
            }
            let payload = record
                .value
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            history.observe(client, topic, partition, record.offset, payload, verifier);
            next = record.offset + 1;
        }
        if next != info.last_offset() + 1 {
            if !compacted {
                history.problems.push(format!(
                    "client {client}: {topic}-{partition}: batch ends at {} but records at {next}",
                    info.last_offset()
                ));
            }
            next = info.last_offset() + 1;
        }
    }
    next
}

/// Where a consumer goes after OFFSET_OUT_OF_RANGE, as Kafka's `auto.offset.reset` does: the
/// end when it was past it, the start when below it.
fn reset_position(position: i64, log_start: i64, high_watermark: i64) -> i64 {
    if high_watermark >= 0 && position > high_watermark {
        high_watermark
    } else if position < log_start {
        log_start
    } else {
        position
    }
}
