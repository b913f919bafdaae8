//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3, v7+: the first record
//! with the largest timestamp), or the offset of the first record whose timestamp is at or after
//! T. For T the batch is found by its max timestamp, then its records are read, from the tail
//! cache or from disk, as Kafka does.

use super::apis::{api, Api};
use super::offset_for_leader_epoch::check_current_epoch;
use super::{Broker, InFlight, RequestContext};
use crate::errors;
use crate::io::{ConnId, IoOp, IoResult, SegmentFile};
use crate::log::{self, DiskRead, ReadOutcome, TimestampPlan};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// One partition waiting for its batch from disk.
struct ReadSlot {
    topic_index: usize,
    partition_index: usize,
    timestamp: i64,
    log_start_offset: i64,
    topic_dir: String,
    partition: i32,
    read: DiskRead,
}

/// A ListOffsets answer waiting for batches read from disk.
pub(super) struct PendingListOffsets {
    ctx: RequestContext,
    response: ListOffsetsResponse,
    reads_outstanding: usize,
    slots: Vec<ReadSlot>,
}

impl PendingListOffsets {
    pub(super) fn conn(&self) -> ConnId {
        self.ctx.conn
    }
}

/// Versions served, and the adapter.
pub(super) const API: Api = api!(ListOffsets, 1..=7, Broker::on_list_offsets);

impl Broker {
    pub(super) fn on_list_offsets(&mut self, ctx: &RequestContext, request: ListOffsetsRequest) {
        let id = self.next_fetch;
        self.next_fetch += 1;
        let mut pending = PendingListOffsets {
            ctx: ctx.clone(),
            response: ListOffsetsResponse::default(),
            reads_outstanding: 0,
            slots: Vec::new(),
        };
        for (ti, topic) in request.topics.into_iter().enumerate() {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for (pi, wanted) in topic.partitions.into_iter().enumerate() {
                let mut result = ListOffsetsPartitionResponse::default()
                    .with_partition_index(wanted.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                let found = self.lookup_offset(
                    &mut pending,
                    id,
                    (ti, pi),
                    topic.name.0.as_str(),
                    wanted.partition_index,
                    (wanted.timestamp, wanted.current_leader_epoch, ctx.version),
                );
                match found {
                    Err(code) => result.error_code = code,
                    Ok(Some((timestamp, offset, epoch))) => {
                        result.timestamp = timestamp;
                        result.offset = offset;
                        if ctx.version >= 4 {
                            result.leader_epoch = epoch;
                        }
                    }
                    Ok(None) => {}
                }
                partitions.push(result);
            }
            pending.response.topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        if pending.reads_outstanding == 0 {
            self.respond(ctx, &pending.response);
        } else {
            self.list_offsets.insert(id, pending);
        }
    }

    /// The (timestamp, offset, leader epoch) answer for one partition, `Ok(None)` when there is
    /// none (or when it waits for a disk read, filled in by `on_timestamp_read_done`), after
    /// the check of the leader epoch the requester believes current.
    fn lookup_offset(
        &mut self,
        pending: &mut PendingListOffsets,
        id: u64,
        at: (usize, usize),
        topic: &str,
        partition: i32,
        (timestamp, current_leader_epoch, version): (i64, i32, i16),
    ) -> Result<Option<(i64, i64, i32)>, i16> {
        let topic = self
            .topics
            .get(topic)
            .filter(|_| partition >= 0)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        let partition_state = topic
            .partitions
            .get(partition as usize)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        let log = &partition_state.log;
        if !self.owns(&topic.name, partition) || !partition_state.replica.is_leader() {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        if self.offline.contains(&(topic.id, partition)) {
            return Err(errors::KAFKA_STORAGE_ERROR);
        }
        let leader_epoch = partition_state.replica.leader_epoch();
        check_current_epoch(current_leader_epoch, leader_epoch)?;
        let with_epoch =
            |(timestamp, offset)| (timestamp, offset, partition_state.epoch_at(offset));
        if matches!(timestamp, LATEST | MAX_TIMESTAMP)
            && !partition_state.replica.serves_consumers()
        {
            // KIP-207: a new leader whose high watermark is below the start of its epoch
            // does not answer the end yet (it could be less than an earlier leader's).
            return Err(match version >= 5 {
                true => errors::OFFSET_NOT_AVAILABLE,
                false => errors::LEADER_NOT_AVAILABLE,
            });
        }
        // The largest timestamp (KIP-734) is answered with the first record that has it,
        // found as a lookup by that timestamp: the first batch reaching it holds the record.
        // (Records without timestamps, -1, keep the batch's answer.)
        let timestamp = match timestamp {
            MAX_TIMESTAMP => match log.max_timestamp() {
                Some((max_timestamp, _)) if max_timestamp >= 0 => max_timestamp,
                other => return Ok(other.map(with_epoch)),
            },
            t => t,
        };
        match timestamp {
            // Kafka answers the latest offset with the current epoch, not the last batch's.
            LATEST => Ok(Some((-1, partition_state.high_watermark(), leader_epoch))),
            EARLIEST => Ok(Some(with_epoch((-1, log.log_start_offset())))),
            t if t >= 0 => {
                let log_start_offset = log.log_start_offset();
                match log.timestamp_lookup(t) {
                    None => Ok(None),
                    Some(TimestampPlan::Cached(bytes)) => {
                        Ok(log::first_record_at_or_after(&bytes, t, log_start_offset)
                            .map(|(offset, ts)| with_epoch((ts, offset))))
                    }
                    Some(TimestampPlan::Disk(read)) => {
                        let slot = pending.slots.len();
                        pending.slots.push(ReadSlot {
                            topic_index: at.0,
                            partition_index: at.1,
                            timestamp: t,
                            log_start_offset,
                            topic_dir: topic.dir_name(),
                            partition,
                            read,
                        });
                        pending.reads_outstanding += 1;
                        self.issue_timestamp_read(id, slot, &pending.slots[slot]);
                        Ok(None)
                    }
                }
            }
            _ => Err(errors::INVALID_REQUEST),
        }
    }

    fn issue_timestamp_read(&mut self, id: u64, slot: usize, read: &ReadSlot) {
        let file = SegmentFile {
            topic_dir: read.topic_dir.clone(),
            partition: read.partition,
            base_offset: read.read.segment_base_offset,
        };
        self.issue(
            IoOp::Read {
                file,
                position: read.read.position,
                len: read.read.len,
            },
            InFlight::TimestampRead { list: id, slot },
        );
    }

    pub(super) fn on_timestamp_read_done(&mut self, id: u64, slot: usize, result: IoResult) {
        let Some(mut pending) = self.list_offsets.remove(&id) else {
            return;
        };
        let read = &pending.slots[slot];
        let found = match &result {
            IoResult::Data(data) => match read.read.complete(data) {
                ReadOutcome::Found { batches, .. } => Ok(log::first_record_at_or_after(
                    &batches,
                    read.timestamp,
                    read.log_start_offset,
                )),
                ReadOutcome::NotFound => Ok(None),
                ReadOutcome::More(next) => {
                    pending.slots[slot].read = next;
                    self.issue_timestamp_read(id, slot, &pending.slots[slot]);
                    self.list_offsets.insert(id, pending);
                    return;
                }
                ReadOutcome::Corrupt(error) => Err(error),
            },
            IoResult::Failed(error) => Err(error.clone()),
            IoResult::Done => Err("the read returned no data".into()),
        };
        let epoch_at = |offset| {
            let topic = self
                .topics
                .values()
                .find(|t| t.dir_name() == read.topic_dir);
            let partition = topic.and_then(|t| t.partitions.get(read.partition as usize));
            partition.map_or(-1, |p| p.epoch_at(offset))
        };
        let answer =
            &mut pending.response.topics[read.topic_index].partitions[read.partition_index];
        match found {
            Ok(Some((offset, timestamp))) => {
                answer.timestamp = timestamp;
                answer.offset = offset;
                if pending.ctx.version >= 4 {
                    answer.leader_epoch = epoch_at(offset);
                }
            }
            Ok(None) => {}
            Err(error) => {
                answer.error_code = errors::KAFKA_STORAGE_ERROR;
                let message = format!(
                    "ListOffsets by timestamp on {}-{}: {error}",
                    read.topic_dir, read.partition
                );
                self.log(crate::io::Level::Error, message);
            }
        }
        pending.reads_outstanding -= 1;
        if pending.reads_outstanding == 0 {
            self.respond(&pending.ctx, &pending.response);
        } else {
            self.list_offsets.insert(id, pending);
        }
    }
}
