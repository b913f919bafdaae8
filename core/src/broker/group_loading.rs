//! Group coordinator failover (issue 16): on a controller quorum a group's coordinator is the
//! leader of its partition of `__consumer_offsets`, which is replicated like any topic. When
//! this node stops leading such a partition its groups are unloaded (their waiting requests
//! told NOT_COORDINATOR); when it starts leading one, in a new leader epoch, it loads the
//! groups from its own copy of the log, up to the log end it had when elected (Kafka's
//! `loadGroupsAndOffsets`), reading the segments as a fetch would. Until the load ends those
//! groups' requests are answered COORDINATOR_LOAD_IN_PROGRESS (see `group_routing.rs`).

use super::{Broker, InFlight};
use crate::groups::{self, OFFSETS_TOPIC};
use crate::io::{IoOp, IoResult, Level, SegmentFile};
use crate::log::{DiskRead, ReadOutcome, ReadPlan};
use bytes::Bytes;

/// How much a load reads at a time.
const LOAD_READ_BYTES: usize = 1 << 20;

/// A load of one offsets partition's groups in progress.
#[derive(Debug)]
pub(super) struct GroupLoad {
    /// Numbers the loads, so a read of an abandoned one is recognised when it completes.
    seq: u64,
    /// The next offset to read, and where the load ends (the log end when elected).
    next: i64,
    end: i64,
    reading: Option<DiskRead>,
    started_ms: i64,
    records: usize,
}

impl Broker {
    /// This node's leadership of `__consumer_offsets` partition `partition` changed: the
    /// groups it held are unloaded, and if it now leads, they are loaded from the log.
    pub(super) fn on_offsets_leadership(&mut self, partition: i32, leads: bool) {
        if !self.in_quorum() {
            return;
        }
        self.group_loads.remove(&partition);
        let count = self.config.groups.offsets_topic_partitions;
        let unloaded = self
            .groups
            .unload(|group| groups::partition_for(group, count) == partition);
        if unloaded > 0 {
            self.log(
                Level::Info,
                format!("unloaded {unloaded} group(s) of {OFFSETS_TOPIC}-{partition}"),
            );
        }
        self.pump_groups();
        if !leads {
            return;
        }
        let Some(log) = self.partition_log_mut(OFFSETS_TOPIC, partition) else {
            return;
        };
        let (next, end) = (log.log_start_offset(), log.log_end_offset());
        self.next_group_load += 1;
        let load = GroupLoad {
            seq: self.next_group_load,
            next,
            end,
            reading: None,
            started_ms: self.now_ms,
            records: 0,
        };
        self.group_loads.insert(partition, load);
        self.pump_group_loads();
    }

    /// Moves every load on as far as memory allows, issuing its next disk read.
    pub(super) fn pump_group_loads(&mut self) {
        let partitions: Vec<i32> = self.group_loads.keys().copied().collect();
        for partition in partitions {
            self.pump_group_load(partition);
        }
    }

    fn pump_group_load(&mut self, partition: i32) {
        loop {
            let Some(load) = self.group_loads.get(&partition) else {
                return;
            };
            if load.reading.is_some() {
                return;
            }
            let (seq, next, end) = (load.seq, load.next, load.end);
            if next >= end {
                return self.finish_group_load(partition);
            }
            let Some(log) = self.partition_log_mut(OFFSETS_TOPIC, partition) else {
                self.group_loads.remove(&partition);
                return;
            };
            let log_start = log.log_start_offset();
            match log.read_for_replica(next, LOAD_READ_BYTES) {
                ReadPlan::Cached(batches) => {
                    for bytes in batches {
                        self.replay_loaded(partition, &bytes);
                    }
                }
                ReadPlan::Disk(read) => return self.issue_load_read(partition, seq, read),
                // The rest is not written yet: on once it is (after the next I/O).
                ReadPlan::Empty => return,
                ReadPlan::OutOfRange if next < log_start => {
                    if let Some(load) = self.group_loads.get_mut(&partition) {
                        load.next = log_start;
                    }
                }
                ReadPlan::OutOfRange => return self.finish_group_load(partition),
            }
        }
    }

    /// A load's disk read completed.
    pub(super) fn on_group_load_read(&mut self, partition: i32, seq: u64, result: IoResult) {
        let Some(load) = self
            .group_loads
            .get_mut(&partition)
            .filter(|l| l.seq == seq)
        else {
            return; // abandoned: the leadership changed meanwhile
        };
        let read = load.reading.take().expect("a load read was in flight");
        let at = load.next;
        let outcome = match result {
            IoResult::Data(data) => read.complete(&data),
            IoResult::Failed(error) => ReadOutcome::Corrupt(error),
            IoResult::Done => ReadOutcome::Corrupt("the read returned no data".into()),
        };
        match outcome {
            ReadOutcome::Found { batches, .. } => self.replay_loaded(partition, &batches),
            ReadOutcome::More(more) => return self.issue_load_read(partition, seq, more),
            ReadOutcome::NotFound => return self.finish_group_load(partition),
            ReadOutcome::Corrupt(_)
                if self
                    .partition_log_mut(OFFSETS_TOPIC, partition)
                    .is_some_and(|log| log.read_is_stale(&read)) =>
            {
                // A cleaning rewrote the files under the read: read again from the same offset.
            }
            ReadOutcome::Corrupt(error) => {
                // What was read stands; the groups after it cannot be known.
                self.log(
                    Level::Error,
                    format!("{OFFSETS_TOPIC}-{partition}: loading its groups failed at offset {at}: {error}"),
                );
                return self.finish_group_load(partition);
            }
        }
        self.pump_group_load(partition);
    }

    /// Reads `read` of the partition for its load.
    fn issue_load_read(&mut self, partition: i32, seq: u64, read: DiskRead) {
        let op = IoOp::Read {
            file: SegmentFile {
                topic_dir: self.topics[OFFSETS_TOPIC].dir_name(),
                partition,
                base_offset: read.segment_base_offset,
            },
            position: read.position,
            len: read.len,
        };
        if let Some(load) = self.group_loads.get_mut(&partition) {
            load.reading = Some(read);
        }
        self.issue(op, InFlight::GroupLoad { partition, seq });
    }

    /// Replays whole batches read from the partition; the load goes on after the last. Bytes
    /// that do not take it past where it stood end it (never the same read again and again).
    fn replay_loaded(&mut self, partition: i32, bytes: &Bytes) {
        let Some(load) = self.group_loads.get_mut(&partition) else {
            return;
        };
        let last = crate::batch::validate_all_stored(bytes)
            .ok()
            .and_then(|batches| batches.last().map(|b| b.last_offset()));
        match last {
            Some(last) if last >= load.next => {
                load.next = last + 1;
                load.records += self.groups.replay_partition(bytes);
            }
            _ => {
                let at = load.next;
                self.log(
                    Level::Error,
                    format!("{OFFSETS_TOPIC}-{partition}: loading its groups stopped at offset {at}: the log there does not read back"),
                );
                self.finish_group_load(partition);
            }
        }
    }

    fn finish_group_load(&mut self, partition: i32) {
        let Some(load) = self.group_loads.remove(&partition) else {
            return;
        };
        self.log(
            Level::Info,
            format!(
                "{OFFSETS_TOPIC}-{partition}: loaded its groups from {} record(s) in {} ms; coordinating them",
                load.records,
                self.now_ms - load.started_ms
            ),
        );
        self.pump_groups();
    }
}
