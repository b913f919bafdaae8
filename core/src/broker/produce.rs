//! Produce (key 0): validate each partition's batches, append them, and answer by `acks`:
//! 0 never, 1 at once, -1 (all) once every appended batch is flushed.
//!
//! Backpressure: while more than `Config::unwritten_bytes_max` appended bytes wait for their
//! writes (the disk is slower than the producers), acks=0 and acks=1 produces are held until
//! their own batches are written. A connection has one request in the core at a time, so that
//! holds the producer: unwritten memory stays within the bound plus one request per connection.

use super::{Broker, RequestContext};
use crate::batch::{self, BatchInfo};
use crate::errors;
use crate::io::{ConnId, Level, Output};
use crate::producers::SequenceCheck;
use crate::topics::{self, TopicId};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// A produce response waiting for its batches: acks=all for their fsync, acks=0/1 held by
/// backpressure for their write.
pub(super) struct PendingProduce {
    ctx: RequestContext,
    deadline_ms: i64,
    response: ProduceResponse,
    /// (topic index, partition index) in `response`, the partition, and the last offset that
    /// must be flushed (or written).
    waits: Vec<(usize, usize, TopicId, i32, i64)>,
    /// Held by backpressure: waits for the write only, and acks=0 gets no response.
    until_written: bool,
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

impl Broker {
    pub(super) fn on_produce(&mut self, ctx: &RequestContext, request: ProduceRequest) {
        let acks = request.acks;
        let mut response = ProduceResponse::default();
        let mut waits = Vec::new();
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
                        if acks == -1 {
                            // acks=all waits for the fsync whatever the flush policy says.
                            if let Some(log) = self.partition_log_mut(&name, index) {
                                log.want_durable(last_offset + 1);
                            }
                        }
                        waits.push((ti, pi, id, index, last_offset));
                    }
                    Err((code, message)) => {
                        result.error_code = code;
                        if ctx.version >= 8 {
                            result.error_message = message.map(StrBytes::from_string);
                        }
                    }
                }
                topic_response.partition_responses.push(result);
            }
            response.responses.push(topic_response);
        }
        self.pump_io();
        let bound = self.config.shard_share(self.config.unwritten_bytes_max);
        let held = acks == -1 || self.unwritten_bytes() > bound;
        if held && !waits.is_empty() {
            let deadline_ms = ctx.now_ms + i64::from(request.timeout_ms.max(0));
            self.produces.push(PendingProduce {
                ctx: ctx.clone(),
                deadline_ms,
                response,
                waits,
                until_written: acks != -1,
                acks,
            });
            return self.complete_produces(ctx.now_ms);
        }
        self.answer_produce(ctx, acks, &response);
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
                let log = self.topics.get(name)?.partitions.get(*partition as usize)?;
                Some(log.unwritten_bytes())
            })
            .sum()
    }

    /// Whether a produce held by backpressure waits for a write.
    pub(super) fn produces_wait_for_writes(&self) -> bool {
        self.produces.iter().any(|p| p.until_written)
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
        self.create_topic(name, self.config.num_partitions, BTreeMap::new());
        Ok(())
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
        if !self.owns(name, index) {
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
        // The in-sync set is this node alone: acks=all cannot meet a larger minimum (Kafka
        // refuses before appending).
        let min_insync = topic.config_i64("min.insync.replicas");
        if acks == -1 && min_insync > IN_SYNC_REPLICAS {
            let message = format!(
                "The size of the current ISR Set({}) is insufficient to satisfy the min.isr \
                 requirement of {min_insync} for partition {name}-{index}",
                self.config.node_id
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
        let log = &topic.partitions[index as usize];
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
        let log = &mut self.topics.get_mut(name).expect("checked above").partitions[index as usize];
        let mut position = 0;
        let mut first = None;
        let mut last = 0;
        for info in &batches {
            let bytes = BytesMut::from(&records[position..position + info.size_bytes]);
            position += info.size_bytes;
            let appended = log.append(bytes, info, ctx.now_ms, log_append_time, &policy);
            first.get_or_insert(appended.base_offset);
            last = appended.last_offset;
        }
        let log_start = log.log_start_offset();
        self.dirty.insert((name.to_string(), index));
        self.note_cached(position);
        let base = first.expect("at least one batch");
        let append_time = if log_append_time { ctx.now_ms } else { -1 };
        Ok((id, base, last, append_time, log_start))
    }

    /// Where one awaited partition stands: `Some(code)` once its answer is final (NONE when its
    /// batches are flushed), `None` while it still waits.
    fn wait_status(
        &self,
        id: TopicId,
        partition: i32,
        last_offset: i64,
        until_written: bool,
    ) -> Option<i16> {
        let Some(topic) = self.topics.values().find(|t| t.id == id) else {
            return Some(errors::UNKNOWN_TOPIC_OR_PARTITION);
        };
        if self.offline.contains(&(id, partition)) {
            return Some(errors::KAFKA_STORAGE_ERROR);
        }
        let log = &topic.partitions[partition as usize];
        let durable = match self.config.planted_bug {
            _ if until_written => log.written_offset(),
            Some(super::PlantedBug::AckBeforeFsync) => log.written_offset(),
            _ => log.flushed_offset(),
        };
        (durable > last_offset).then_some(errors::NONE)
    }

    /// Settles the awaited partitions of a waiting produce; true when none still waits. With
    /// `expired`, partitions still waiting get REQUEST_TIMED_OUT (their batches stay in the log:
    /// as in Kafka, a timeout does not undo the write).
    fn settle(&self, pending: &mut PendingProduce, expired: bool) -> bool {
        let mut done = true;
        for &(ti, pi, id, partition, last_offset) in &pending.waits {
            let result = &mut pending.response.responses[ti].partition_responses[pi];
            match self.wait_status(id, partition, last_offset, pending.until_written) {
                Some(code) => result.error_code = code,
                None if expired => result.error_code = errors::REQUEST_TIMED_OUT,
                None => done = false,
            }
        }
        done
    }

    /// Answers every waiting acks=all produce whose partitions are all settled.
    pub(super) fn complete_produces(&mut self, now_ms: i64) {
        // Offset commits wait on the same flushes.
        self.complete_commits(now_ms);
        let pending = std::mem::take(&mut self.produces);
        for mut produce in pending {
            let expired = produce.deadline_ms <= now_ms;
            if self.settle(&mut produce, expired) {
                self.answer_produce(&produce.ctx, produce.acks, &produce.response);
            } else {
                self.produces.push(produce);
            }
        }
    }

    pub(super) fn expire_produces(&mut self, now_ms: i64) {
        self.complete_produces(now_ms);
    }
}

/// The replicas in sync with a partition's leader: a single node's is itself.
const IN_SYNC_REPLICAS: i64 = 1;

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
