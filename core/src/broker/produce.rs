//! Produce (key 0): validate each partition's batches, append them, and answer by `acks`:
//! 0 never, 1 at once, -1 (all) once every appended batch is flushed. A partition this broker
//! does not lead is NOT_LEADER_OR_FOLLOWER; from v10 the answer names its leader and epoch and
//! where the leader is (KIP-951), so the client moves without asking for metadata.
//!
//! Backpressure: while more than `Config::unwritten_bytes_max` appended bytes wait for their
//! writes (the disk is slower than the producers), acks=0 and acks=1 produces are held until
//! their own batches are written. A connection has one request in the core at a time, so that
//! holds the producer: unwritten memory stays within the bound plus one request per connection.

use super::apis::{decode, Api};
use super::{Broker, RequestContext};
use crate::batch::{self, BatchInfo};
use crate::errors;
use crate::io::{ConnId, Level, Output};
use crate::partition::{Until, Waiter};
use crate::producers::SequenceCheck;
use crate::topics::{self, TopicId};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// A produce response waiting for its batches: acks=all for them to be committed (durable
/// on the in-sync set), acks=0/1 held by backpressure for their write. Each partition it
/// appended to tells it, through the partition's waiters (`Waiter::Produce`).
pub(super) struct PendingProduce {
    ctx: RequestContext,
    deadline_ms: i64,
    response: ProduceResponse,
    /// (topic index, partition index) in `response`, and the partition, still waiting.
    waits: Vec<(usize, usize, TopicId, i32)>,
    acks: i16,
}

impl PendingProduce {
    pub(super) fn conn(&self) -> ConnId {
        self.ctx.conn
    }
    pub(super) fn deadline_ms(&self) -> i64 {
        self.deadline_ms
    }
}

/// Versions served, and the adapter. v0 is advertised as Kafka 4 does, because librdkafka
/// disables compression unless Produce's minimum is 0 (KAFKA-18659); v0-v2 (message formats v0
/// and v1) are refused when they arrive.
pub(super) const API: Api = Api {
    key: ApiKey::Produce,
    min: 0,
    max: 11,
    handle: |broker, ctx, body| {
        if ctx.version < 3 {
            return Err(
                "Produce v0-v2 (message formats v0 and v1) are not supported; use v3 or later"
                    .into(),
            );
        }
        broker.on_produce(ctx, decode(body, ctx.version)?);
        Ok(())
    },
};

impl Broker {
    pub(super) fn on_produce(&mut self, ctx: &RequestContext, request: ProduceRequest) {
        let acks = request.acks;
        let mut response = ProduceResponse::default();
        let mut waits = Vec::new();
        // Per partition, the end of what this request appended there.
        let mut ends: BTreeMap<(TopicId, i32), i64> = BTreeMap::new();
        // Leaders named to a client sent to the wrong broker (KIP-951, v10+).
        let mut leaders_named = BTreeSet::new();
        for (ti, topic_data) in request.topic_data.into_iter().enumerate() {
            let name = topic_data.name.0.to_string();
            let mut topic_response =
                TopicProduceResponse::default().with_name(topic_data.name.clone());
            let topic_known = self.ensure_topic_for_produce(&name);
            for (pi, partition_data) in topic_data.partition_data.into_iter().enumerate() {
                let index = partition_data.index;
                let mut result = PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(-1);
                let outcome = match topic_known {
                    Err(code) => Err((code, None)),
                    Ok(()) if !matches!(acks, -1..=1) => Err((errors::INVALID_REQUIRED_ACKS, None)),
                    Ok(()) => self.append_records(ctx, &name, index, acks, partition_data.records),
                };
                match outcome {
                    Ok((id, base_offset, last_offset, log_append_time_ms, log_start_offset)) => {
                        result.base_offset = base_offset;
                        result.log_append_time_ms = log_append_time_ms;
                        if ctx.version >= 5 {
                            result.log_start_offset = log_start_offset;
                        }
                        let end = ends.entry((id, index)).or_insert(0);
                        *end = (*end).max(last_offset + 1);
                        waits.push((ti, pi, id, index));
                    }
                    Err((code, message)) => {
                        result.error_code = code;
                        if ctx.version >= 8 {
                            result.error_message = message.map(StrBytes::from_string);
                        }
                        if code == errors::NOT_LEADER_OR_FOLLOWER && ctx.version >= 10 {
                            if let Some((leader, epoch)) = self.current_leader(&name, index) {
                                result.current_leader = LeaderIdAndEpoch::default()
                                    .with_leader_id(BrokerId(leader))
                                    .with_leader_epoch(epoch);
                                leaders_named.insert(leader);
                            }
                        }
                    }
                }
                topic_response.partition_responses.push(result);
            }
            response.responses.push(topic_response);
        }
        response.node_endpoints = self.node_endpoints(&leaders_named);
        self.pump_io();
        let bound = self.config.shard_share(self.config.unwritten_bytes_max);
        let held = acks == -1 || self.unwritten_bytes() > bound;
        if !held || waits.is_empty() {
            return self.answer_produce(ctx, acks, &response);
        }
        // acks=all waits for its records to be committed, whatever the flush policy says; a
        // produce held by backpressure for its own write.
        let until = match (acks, self.config.planted_bug) {
            (-1, Some(super::PlantedBug::AckBeforeFsync)) => Until::Written,
            (-1, _) => Until::Durable,
            _ => Until::Written,
        };
        let id = self.next_produce;
        self.next_produce += 1;
        for ((topic, partition), end) in ends {
            if let Some(p) = self.partition_mut(topic, partition) {
                p.wait_for(end, until, Waiter::Produce(id));
            }
        }
        self.produces.insert(
            id,
            PendingProduce {
                ctx: ctx.clone(),
                deadline_ms: ctx.now_ms + i64::from(request.timeout_ms.max(0)),
                response,
                waits,
                acks,
            },
        );
        // Appended to partitions whose records are already that far (a retried duplicate).
        let partitions: Vec<(TopicId, i32)> = self.produces[&id]
            .waits
            .iter()
            .map(|&(.., topic, partition)| (topic, partition))
            .collect();
        for (topic, partition) in partitions {
            self.poll_waiters(ctx.now_ms, topic, partition);
        }
    }

    fn answer_produce(&mut self, ctx: &RequestContext, acks: i16, response: &ProduceResponse) {
        if acks == 0 {
            self.outputs
                .push_back(Output::NoResponse { conn: ctx.conn });
        } else {
            self.respond(ctx, response);
        }
    }

    /// Appended bytes of every partition still waiting for (or in) their write.
    fn unwritten_bytes(&self) -> usize {
        self.dirty
            .iter()
            .filter_map(|(name, partition)| {
                let partition = self.topics.get(name)?.partitions.get(*partition as usize)?;
                Some(partition.log.unwritten_bytes())
            })
            .sum()
    }

    /// Auto-creates an unknown topic when allowed; otherwise the error for its partitions.
    fn ensure_topic_for_produce(&mut self, name: &str) -> Result<(), i16> {
        // The offsets topic is written by the coordinator only, as in Kafka: a forged record
        // would be replayed as group state.
        if name == crate::groups::OFFSETS_TOPIC {
            return Err(errors::INVALID_TOPIC_EXCEPTION);
        }
        if self.topics.contains_key(name) {
            return Ok(());
        }
        if topics::validate_name(name).is_err() {
            return Err(errors::INVALID_TOPIC_EXCEPTION);
        }
        // Only the control shard creates topics; the client's metadata request does it there.
        if !self.config.auto_create_topics || !self.is_control() {
            return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
        }
        let replicas = self.default_placement(self.config.num_partitions);
        match self.create_topic(name, replicas, BTreeMap::new()) {
            Ok(_) if self.topics.contains_key(name) => Ok(()),
            // On a quorum the topic exists once the active controller's change is mirrored.
            Ok(_) => Err(errors::LEADER_NOT_AVAILABLE),
            Err(_) if self.in_quorum() => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
            Err(_) => Err(errors::UNKNOWN_SERVER_ERROR),
        }
    }

    /// A partition's leader and its epoch as the shard serving it knows them (its replica
    /// follows the controller's leadership on every shard), if another node leads it.
    fn current_leader(&self, topic: &str, partition: i32) -> Option<(i32, i32)> {
        let index = usize::try_from(partition).ok()?;
        let replica = &self.topics.get(topic)?.partitions.get(index)?.replica;
        match replica.role() {
            crate::replica::Role::Follower { leader } if leader >= 0 => {
                Some((leader, replica.leader_epoch()))
            }
            _ => None,
        }
    }

    /// Where clients reach `nodes` (KIP-951's node endpoints), of those this node lists.
    fn node_endpoints(&self, nodes: &BTreeSet<i32>) -> Vec<NodeEndpoint> {
        self.listed_brokers()
            .into_iter()
            .filter(|(id, _)| nodes.contains(id))
            .map(|(id, broker)| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(broker.host))
                    .with_port(i32::from(broker.port))
                    .with_rack(broker.rack.map(StrBytes::from_string))
            })
            .collect()
    }

    /// Validates and appends one partition's record batches. Either every batch is appended or
    /// none is. Returns the topic id, base and last offsets, log append time and log start.
    #[allow(clippy::type_complexity)]
    fn append_records(
        &mut self,
        ctx: &RequestContext,
        name: &str,
        index: i32,
        acks: i16,
        records: Option<Bytes>,
    ) -> Result<(TopicId, i64, i64, i64, i64), (i16, Option<String>)> {
        let topic = self.topics.get(name).expect("ensured by the caller");
        let id = topic.id;
        if index < 0 || index as usize >= topic.partitions.len() {
            return Err((errors::UNKNOWN_TOPIC_OR_PARTITION, None));
        }
        let leads = topic.partitions[index as usize].replica.is_leader();
        if !self.owns(name, index) || !leads {
            return Err((errors::NOT_LEADER_OR_FOLLOWER, None));
        }
        if self.offline.contains(&(id, index)) {
            return Err((
                errors::KAFKA_STORAGE_ERROR,
                Some("partition storage is offline".into()),
            ));
        }
        let records = records.unwrap_or_default();
        let batches: Vec<BatchInfo> = match batch::validate_all(&records) {
            Ok(batches) if !batches.is_empty() => batches,
            Ok(_) => {
                return Err((
                    errors::CORRUPT_MESSAGE,
                    Some("produce request has no record batch".into()),
                ))
            }
            Err(error) => {
                let code = match error {
                    batch::BatchError::UnsupportedMagic(_) => {
                        errors::UNSUPPORTED_FOR_MESSAGE_FORMAT
                    }
                    _ => errors::CORRUPT_MESSAGE,
                };
                let message = format!("{name}-{index}: {error}");
                self.log(
                    Level::Warn,
                    format!("conn {}: produce refused: {message}", ctx.conn),
                );
                return Err((code, Some(message)));
            }
        };
        // acks=all needs `min.insync.replicas` in sync (Kafka refuses before appending).
        let min_insync = topic.config_i64("min.insync.replicas");
        let replica = &topic.partitions[index as usize].replica;
        if acks == -1 && min_insync > replica.in_sync_count() as i64 {
            let in_sync: Vec<String> = replica.in_sync().map(|n| n.to_string()).collect();
            let message = format!(
                "The size of the current ISR Set({}) is insufficient to satisfy the min.isr \
                 requirement of {min_insync} for partition {name}-{index}",
                in_sync.join(",")
            );
            return Err((errors::NOT_ENOUGH_REPLICAS, Some(message)));
        }
        let log_append_time = topic.config("message.timestamp.type") == "LogAppendTime";
        if !log_append_time {
            check_timestamps(topic, &batches, ctx.now_ms, name, index)?;
        }
        let max_bytes = topic.config_i64("max.message.bytes");
        if let Some(big) = batches.iter().find(|b| b.size_bytes as i64 > max_bytes) {
            let message = format!(
                "record batch of {} bytes exceeds max.message.bytes {max_bytes} of topic '{name}'",
                big.size_bytes
            );
            return Err((errors::MESSAGE_TOO_LARGE, Some(message)));
        }
        if topic.has_cleanup_policy("compact") {
            check_keys(&records, &batches, name, index)?;
        }
        let log = &topic.partitions[index as usize].log;
        let mut duplicate = None;
        for info in &batches {
            match log.check_sequence(info) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate {
                    base_offset,
                    last_offset,
                } => {
                    duplicate.get_or_insert((base_offset, last_offset));
                }
                SequenceCheck::Refuse(code) => {
                    let message = format!(
                        "{name}-{index}: producer {} epoch {} sequence {} refused",
                        info.producer_id, info.producer_epoch, info.base_sequence
                    );
                    return Err((code, Some(message)));
                }
            }
        }
        if let (Some((base, last)), 1) = (duplicate, batches.len()) {
            // A retry of a batch already in the log: answer with where it went.
            return Ok((id, base, last, -1, log.log_start_offset()));
        }
        let policy = topic.segment_policy();
        let topic = self.topics.get_mut(name).expect("checked above");
        let state = &mut topic.partitions[index as usize];
        let mut position = 0;
        let mut first = None;
        let mut last = 0;
        for info in &batches {
            let bytes = BytesMut::from(&records[position..position + info.size_bytes]);
            position += info.size_bytes;
            let appended =
                state.append_as_leader(bytes, info, ctx.now_ms, log_append_time, &policy);
            first.get_or_insert(appended.base_offset);
            last = appended.last_offset;
        }
        let log_start = state.log.log_start_offset();
        self.dirty.insert((name.to_string(), index));
        self.note_cached(position);
        let base = first.expect("at least one batch");
        let append_time = if log_append_time { ctx.now_ms } else { -1 };
        Ok((id, base, last, append_time, log_start))
    }

    /// A partition that a waiting produce appended to settled: its records are committed
    /// (`NONE`), or the partition failed or went away. The produce is answered once every
    /// partition it waits for has settled.
    pub(super) fn on_produce_settled(
        &mut self,
        id: u64,
        topic: TopicId,
        partition: i32,
        code: i16,
    ) {
        let Some(acks) = self.produces.get(&id).map(|p| p.acks) else {
            return; // answered already (timed out, or its connection closed)
        };
        // Committed while the in-sync set shrank below the minimum: written, but not as
        // safe as asked (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND; a retry may duplicate).
        let code =
            match code == errors::NONE && acks == -1 && self.below_min_in_sync(topic, partition) {
                true => errors::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                false => code,
            };
        let Some(pending) = self.produces.get_mut(&id) else {
            return;
        };
        let response = &mut pending.response.responses;
        pending.waits.retain(|&(ti, pi, t, p)| {
            let settled = (t, p) == (topic, partition);
            if settled {
                response[ti].partition_responses[pi].error_code = code;
            }
            !settled
        });
        if pending.waits.is_empty() {
            let pending = self.produces.remove(&id).expect("found above");
            self.answer_produce(&pending.ctx, pending.acks, &pending.response);
        }
    }

    /// Whether the partition's in-sync set is smaller than its `min.insync.replicas`.
    fn below_min_in_sync(&self, topic: TopicId, partition: i32) -> bool {
        let Some(t) = self.topics.values().find(|t| t.id == topic) else {
            return false;
        };
        let Some(p) = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
        else {
            return false;
        };
        (p.replica.in_sync_count() as i64) < t.config_i64("min.insync.replicas")
    }

    /// Answers the produces whose time ran out: partitions still waiting get
    /// REQUEST_TIMED_OUT (their batches stay in the log: as in Kafka, a timeout does not undo
    /// the write). Their waiters, still in the partitions, find nothing when they fire.
    pub(super) fn expire_produces(&mut self, now_ms: i64) {
        let due: Vec<u64> = self
            .produces
            .iter()
            .filter(|(_, p)| p.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let mut pending = self.produces.remove(&id).expect("listed above");
            for &(ti, pi, ..) in &pending.waits {
                pending.response.responses[ti].partition_responses[pi].error_code =
                    errors::REQUEST_TIMED_OUT;
            }
            self.answer_produce(&pending.ctx, pending.acks, &pending.response);
        }
    }
}

/// `message.timestamp.before.max.ms` and `after.max.ms` (CreateTime): a batch whose records
/// are older or newer than that, by the broker's clock, is refused with INVALID_TIMESTAMP, as
/// Kafka's `LogValidator` does. The newest record is the batch's max timestamp; the oldest is
/// taken to be its base timestamp (the first record's, which producers stamp first).
fn check_timestamps(
    topic: &crate::topics::Topic,
    batches: &[BatchInfo],
    now_ms: i64,
    name: &str,
    index: i32,
) -> Result<(), (i16, Option<String>)> {
    let before_ms = topic.config_i64("message.timestamp.before.max.ms");
    let after_ms = topic.config_i64("message.timestamp.after.max.ms");
    let (earliest, latest) = (
        now_ms.saturating_sub(before_ms),
        now_ms.saturating_add(after_ms),
    );
    for info in batches {
        let out_of_range = [info.base_timestamp, info.max_timestamp]
            .into_iter()
            // -1: a record without a timestamp.
            .find(|&t| t >= 0 && (t < earliest || t > latest));
        if let Some(timestamp) = out_of_range {
            let message = format!(
                "Timestamp {timestamp} of message with offset {} is out of range. The timestamp \
                 should be within [{earliest}, {latest}] ({name}-{index})",
                info.base_offset
            );
            return Err((errors::INVALID_TIMESTAMP, Some(message)));
        }
    }
    Ok(())
}

/// Kafka's rule for compacted topics: every record has a key (compaction keeps the latest
/// value per key), else the batch is refused with INVALID_RECORD and Kafka's message. The
/// records are decoded (decompressed if need be) only for topics whose policy includes compact.
fn check_keys(
    records: &Bytes,
    batches: &[batch::BatchInfo],
    name: &str,
    index: i32,
) -> Result<(), (i16, Option<String>)> {
    const CONTROL_BATCH: i16 = 0x20;
    let mut position = 0;
    for info in batches {
        let mut one = records.slice(position..position + info.size_bytes);
        position += info.size_bytes;
        if info.attributes & CONTROL_BATCH != 0 {
            continue;
        }
        let keyed = match kafka_protocol::records::RecordBatchDecoder::decode(&mut one) {
            Ok(set) => set.records.iter().all(|r| r.key.is_some()),
            Err(error) => {
                let message = format!("{name}-{index}: records cannot be read: {error}");
                return Err((errors::CORRUPT_MESSAGE, Some(message)));
            }
        };
        if !keyed {
            let message = format!(
                "Compacted topic cannot accept message without key in topic partition {name}-{index}."
            );
            return Err((errors::INVALID_RECORD, Some(message)));
        }
    }
    Ok(())
}
