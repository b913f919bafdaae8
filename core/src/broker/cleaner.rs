//! The log cleaner (log compaction, `cleanup.policy=compact`): which partition a shard cleans,
//! and its steps handed to the shell at the rate `log.cleaner.io.max.bytes.per.second` allows.
//! What a cleaning does is each partition log's decision (`log/cleaner.rs`); this file picks the
//! partition, issues the I/O and routes the results back. Each shard cleans one partition at a
//! time (Kafka's `log.cleaner.threads=1`), the dirtiest of those due, and looks again every
//! `log.cleaner.backoff.ms` when none is.

use super::{Broker, InFlight};
use crate::io::{CleanedFile, IoOp, IoResult, Level, SegmentFile};
use crate::log::{CleanStep, CleaningSummary};
use crate::topics::TopicId;

/// The cleaner of one shard.
#[derive(Debug, Default)]
pub(super) struct CleanerState {
    /// The partition being cleaned, and when its cleaning began.
    active: Option<(TopicId, i32, i64)>,
    /// When to look for a partition due a cleaning (0: at the first timer).
    next_check_ms: i64,
    /// The rate bound holds the next step until then.
    resume_at_ms: Option<i64>,
    /// Cleanings finished, and their bytes, since start-up.
    pub(super) cleanings: u64,
    pub(super) bytes_read: u64,
}

impl Broker {
    /// When the cleaner wants the timer.
    pub(super) fn cleaner_deadline(&self) -> Option<i64> {
        if !self.config.cleaner.enable || self.shutdown.is_some() {
            return None;
        }
        match self.cleaner.active {
            Some(_) => self.cleaner.resume_at_ms,
            // Not before the first request, as retention.
            None => (self.cleaner.next_check_ms > 0).then_some(self.cleaner.next_check_ms),
        }
    }

    /// The first request starts the cleaner's clock.
    pub(super) fn start_cleaner_clock(&mut self, now_ms: i64) {
        if self.cleaner.next_check_ms == 0 {
            self.cleaner.next_check_ms = now_ms + self.config.cleaner.backoff_ms.max(1);
        }
    }

    /// Starts a cleaning if one is due, and hands out the active cleaning's next step.
    pub(super) fn pump_cleaner(&mut self, now_ms: i64) {
        if !self.config.cleaner.enable || self.shutdown.is_some() {
            return;
        }
        if self.cleaner.resume_at_ms.is_some_and(|at| now_ms < at) {
            return;
        }
        self.cleaner.resume_at_ms = None;
        if self.cleaner.active.is_none() {
            if self.cleaner.next_check_ms == 0 || now_ms < self.cleaner.next_check_ms {
                return;
            }
            self.cleaner.next_check_ms = now_ms + self.config.cleaner.backoff_ms.max(1);
            self.choose_cleaning(now_ms);
        }
        let Some((id, partition, _)) = self.cleaner.active else {
            return;
        };
        let Some(topic) = self.topics.values().find(|t| t.id == id) else {
            self.cleaner.active = None; // deleted
            return;
        };
        let dir = topic.dir_name();
        let writable = self.is_writable(topic, partition);
        let unsynced = self.config.planted_bug == Some(super::PlantedBug::SwapUnsyncedCleaning);
        let log =
            &mut self.topic_by_id_mut(id).expect("found above").partitions[partition as usize].log;
        if !writable {
            log.abandon_cleaning();
        }
        if !log.is_cleaning() {
            // Given up (a truncation, the partition offline): another is chosen next time.
            self.cleaner.active = None;
            return;
        }
        let Some(mut step) = log.poll_cleaning() else {
            return;
        };
        if matches!(step, CleanStep::Sync(_)) && unsynced {
            log.handle_cleaning_done();
            match log.poll_cleaning() {
                Some(next) => step = next,
                None => return,
            }
        }
        let segment = |base_offset| SegmentFile {
            topic_dir: dir.clone(),
            partition,
            base_offset,
        };
        let cleaned = |range: crate::log::CleanedRange| CleanedFile {
            segment: segment(range.base_offset),
            end: range.end,
        };
        let op = match step {
            CleanStep::Begin(range) => IoOp::RemoveFiles {
                paths: vec![cleaned(range).cleaned_path()],
            },
            CleanStep::Read {
                segment_base_offset,
                position,
                len,
            } => IoOp::Read {
                file: segment(segment_base_offset),
                position,
                len,
            },
            CleanStep::Write {
                range,
                position,
                data,
            } => {
                self.throttle_cleaner(now_ms, data.len());
                IoOp::WriteCleaned {
                    file: cleaned(range),
                    position,
                    data,
                }
            }
            CleanStep::Sync(range) => IoOp::SyncCleaned {
                file: cleaned(range),
            },
            CleanStep::Swap { range, replaced } => IoOp::SwapCleaned {
                file: cleaned(range),
                remove: replaced
                    .iter()
                    .rev()
                    .flat_map(|&base| [segment(base).index_path(), segment(base).relative_path()])
                    .collect(),
            },
        };
        self.issue(
            op,
            InFlight::Clean {
                topic: id,
                partition,
            },
        );
    }

    /// Picks the partition to clean: of this shard's writable, compacted partitions due a
    /// cleaning, one due by `max.compaction.lag.ms` first, then the dirtiest.
    fn choose_cleaning(&mut self, now_ms: i64) {
        let map_bytes = self
            .config
            .shard_share(self.config.cleaner.dedupe_buffer_bytes);
        let mut best: Option<(bool, f64, TopicId, i32)> = None;
        for topic in self.topics.values() {
            if !topic.has_cleanup_policy("compact") {
                continue;
            }
            let config = topic.cleaner_config(map_bytes);
            for (index, partition) in topic.partitions.iter().enumerate() {
                let index = index as i32;
                if !self.owns(&topic.name, index)
                    || !self.is_writable(topic, index)
                    || self.replication.truncating.contains_key(&(topic.id, index))
                {
                    continue;
                }
                let Some(due) = partition.log.cleaning_due(now_ms, config.policy) else {
                    continue;
                };
                let rank = (due.forced, due.dirty_ratio, topic.id, index);
                if best.is_none_or(|b| (rank.0, rank.1) > (b.0, b.1)) {
                    best = Some(rank);
                }
            }
        }
        let Some((_, _, id, partition)) = best else {
            return;
        };
        let topic = self.topic_by_id_mut(id).expect("chosen above");
        let config = topic.cleaner_config(map_bytes);
        let name = format!("{}-{partition}", topic.name);
        let log = &mut topic.partitions[partition as usize].log;
        if let Some(due) = log.begin_cleaning(now_ms, config) {
            self.cleaner.active = Some((id, partition, now_ms));
            self.log(
                Level::Info,
                format!(
                    "{name}: cleaning, dirty offsets {} to {} (dirty ratio {:.2}{})",
                    due.first_dirty,
                    due.end,
                    due.dirty_ratio,
                    if due.forced {
                        ", max.compaction.lag.ms passed"
                    } else {
                        ""
                    }
                ),
            );
        }
    }

    /// Holds the next step as long as `bytes` take at the configured rate.
    fn throttle_cleaner(&mut self, now_ms: i64, bytes: usize) {
        let rate = self.config.cleaner.io_max_bytes_per_second / self.config.shards.max(1) as f64;
        if rate.is_finite() && rate > 0.0 && rate < f64::MAX / 2.0 {
            let ms = (bytes as f64 * 1000.0 / rate).ceil() as i64;
            if ms > 0 {
                self.cleaner.resume_at_ms = Some(now_ms + ms);
            }
        }
    }

    /// A cleaning step finished.
    pub(super) fn on_clean_done(
        &mut self,
        now_ms: i64,
        id: TopicId,
        partition: i32,
        result: IoResult,
    ) {
        let Some(topic) = self.topic_by_id_mut(id) else {
            return;
        };
        let topic_name = topic.name.clone();
        let name = format!("{topic_name}-{partition}");
        let log = &mut topic.partitions[partition as usize].log;
        if log.orphan_clean_step_done() {
            return;
        }
        let swapping = log.is_swapping();
        let outcome: Result<Option<CleaningSummary>, String> = match result {
            IoResult::Failed(error) => Err(error),
            IoResult::Data(data) => {
                let read = log.handle_cleaning_read(&data);
                self.cleaner.bytes_read += data.len() as u64;
                self.throttle_cleaner(now_ms, data.len());
                read.map(|()| None)
            }
            IoResult::Done => Ok(log.handle_cleaning_done()),
        };
        match outcome {
            Ok(None) => {}
            Ok(Some(summary)) => {
                let began = self.cleaner.active.map_or(now_ms, |(_, _, at)| at);
                self.cleaner.active = None;
                self.cleaner.cleanings += 1;
                self.cleaner.next_check_ms = now_ms; // another may be due at once
                self.log(
                    Level::Info,
                    format!(
                        "{name}: cleaned offsets below {} ({} keys mapped from {} to {}): {} segment(s) of {} bytes into {} of {} bytes, {} bytes read in {} ms",
                        summary.cleaned_to,
                        summary.keys,
                        summary.first_dirty,
                        summary.mapped_to,
                        summary.segments_before,
                        summary.bytes_before,
                        summary.segments_after,
                        summary.bytes_after,
                        summary.bytes_read,
                        now_ms - began,
                    ),
                );
                // The cleaned segments get their index files.
                self.dirty.insert((topic_name.clone(), partition));
                if let Some(topic) = self.topics.get(&topic_name) {
                    let path = format!(
                        "{}/{}",
                        crate::io::partition_dir(&topic.dir_name(), partition),
                        crate::io::CLEANER_CHECKPOINT
                    );
                    let data = format!("cleaned {}\n", summary.mapped_to).into_bytes();
                    self.issue(IoOp::WriteFile { path, data }, InFlight::CleanerCheckpoint);
                }
            }
            Err(error) if swapping => {
                // Which files the swap changed is not known: a restart finishes or undoes it.
                self.take_offline(
                    now_ms,
                    id,
                    &topic_name,
                    partition,
                    &format!("a cleaning's swap failed: {error}; offline until restart"),
                );
                self.cleaner.active = None;
            }
            Err(error) => {
                self.log(Level::Warn, format!("{name}: cleaning given up: {error}"));
                if let Some(topic) = self.topic_by_id_mut(id) {
                    topic.partitions[partition as usize].log.abandon_cleaning();
                }
                self.cleaner.active = None;
            }
        }
        self.pump_cleaner(now_ms);
    }
}
