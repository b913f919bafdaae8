//! A clean shutdown: new requests are refused, writes in flight finish, each flushed
//! partition's active segment gets its index file, then the clean-shutdown mark (written by the
//! control shard once every shard is done), so the next start need not scan.

use super::{Broker, InFlight};
use crate::io::{IoOp, IoResult, Level, SegmentFile};
use crate::topics::TopicId;
use std::collections::{BTreeMap, BTreeSet};

/// A clean shutdown in progress.
#[derive(Debug, Default)]
pub(super) struct ShutdownState {
    /// Partitions whose active segment's index file is written, as of this log end.
    checkpointed: BTreeMap<(TopicId, i32), i64>,
    in_flight: BTreeSet<(TopicId, i32)>,
    mark: MarkState,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) enum MarkState {
    #[default]
    NotYet,
    Writing,
    Written,
}

impl Broker {
    /// Whether any data or metadata is still waiting to be written and synced, or, once
    /// `begin_shutdown` was called, the clean-shutdown checkpoint is not yet written.
    pub fn is_flushing(&self) -> bool {
        // A metadata version whose write failed is not waited for: nothing that depends on
        // it was answered or written, and the next start reads the version before it.
        !self.dirty.is_empty()
            || (self.metadata_persisted < self.metadata_version
                && !(self.shutdown.is_some() && self.metadata_retry_at.is_some()))
            || !self.in_flight.is_empty()
            || self.quorum_settling()
            || self
                .shutdown
                .as_ref()
                .is_some_and(|s| s.mark != MarkState::Written)
    }

    /// Starts a clean shutdown: new requests are refused (their connections closed), writes in
    /// flight finish, and once every partition is flushed its active segment's index file and
    /// then the clean-shutdown mark are written, so the next start need not scan. The shell
    /// waits for `is_flushing` to turn false.
    pub fn begin_shutdown(&mut self) {
        if self.shutdown.is_none() {
            self.shutdown = Some(ShutdownState::default());
            self.quorum_shutdown();
            self.share_shutdown();
            self.pump_io();
        }
    }

    /// At a clean shutdown: each flushed partition's active segment gets its index file, then
    /// the mark that says they are all current.
    pub(super) fn pump_shutdown(&mut self) {
        // Partitions with nothing to write are current at once; then the rest.
        self.checkpoint_partitions();
        self.checkpoint_partitions();
    }

    pub(super) fn checkpoint_partitions(&mut self) {
        if !self.offline.is_empty() {
            // A partition that cannot write cannot checkpoint: the next start scans.
            let shutdown = self.shutdown.as_mut().expect("shutting down");
            if shutdown.mark != MarkState::Written {
                shutdown.mark = MarkState::Written;
                if !self.is_control() {
                    self.report_shut_down(false);
                }
            }
            return;
        }
        let mut checkpoints = Vec::new();
        let mut all_current =
            self.dirty.is_empty() && self.metadata_persisted >= self.metadata_version;
        let shutdown = self.shutdown.as_ref().expect("shutting down");
        for topic in self.topics.values() {
            for (partition, log) in topic.partitions.iter().map(|p| &p.log).enumerate() {
                let key = (topic.id, partition as i32);
                if shutdown.checkpointed.get(&key) == Some(&log.log_end_offset()) {
                    continue;
                }
                all_current = false;
                if shutdown.in_flight.contains(&key) || self.offline.contains(&key) {
                    continue;
                }
                if let Some((base_offset, data)) = log.checkpoint_index() {
                    let file = SegmentFile {
                        topic_dir: topic.dir_name(),
                        partition: partition as i32,
                        base_offset,
                    };
                    checkpoints.push((key, file.index_path(), data, log.log_end_offset()));
                } else if !log.is_dirty() {
                    // An empty active segment: the segments before it are sealed.
                    checkpoints.push((key, String::new(), Vec::new(), log.log_end_offset()));
                }
            }
        }
        for (key, path, data, log_end) in checkpoints {
            let shutdown = self.shutdown.as_mut().expect("shutting down");
            if path.is_empty() {
                shutdown.checkpointed.insert(key, log_end);
                continue;
            }
            shutdown.in_flight.insert(key);
            self.issue(
                IoOp::WriteFile { path, data },
                InFlight::Checkpoint {
                    topic: key.0,
                    partition: key.1,
                    log_end,
                },
            );
        }
        let shutdown = self.shutdown.as_ref().expect("shutting down");
        if all_current && shutdown.mark == MarkState::NotYet && self.in_flight.is_empty() {
            if !self.is_control() {
                // The control shard writes the one mark once every shard is here.
                self.shutdown.as_mut().expect("shutting down").mark = MarkState::Written;
                return self.report_shut_down(true);
            }
            match self.peers_shut_down() {
                None => return, // other shards are still writing
                Some(false) => {
                    // Another shard could not checkpoint: the next start scans.
                    self.shutdown.as_mut().expect("shutting down").mark = MarkState::Written;
                    return;
                }
                Some(true) => {}
            }
            self.shutdown.as_mut().expect("shutting down").mark = MarkState::Writing;
            self.issue(
                IoOp::WriteFile {
                    path: crate::io::CLEAN_SHUTDOWN_FILE.into(),
                    data: b"spate clean shutdown\n".to_vec(),
                },
                InFlight::CleanShutdownMark,
            );
        }
    }

    pub(super) fn on_checkpoint_done(
        &mut self,
        id: TopicId,
        partition: i32,
        log_end: i64,
        result: IoResult,
    ) {
        let shutdown = self.shutdown.as_mut().expect("only written at shutdown");
        shutdown.in_flight.remove(&(id, partition));
        match result {
            IoResult::Done => {
                shutdown.checkpointed.insert((id, partition), log_end);
            }
            _ => {
                // Without its index file the segment is scanned at the next start: no mark.
                shutdown.mark = MarkState::Written;
                self.log(
                    Level::Warn,
                    "cannot write an index file at shutdown; the next start scans the active segments".into(),
                );
            }
        }
    }

    pub(super) fn on_mark_done(&mut self, result: IoResult) {
        if let IoResult::Failed(error) = result {
            self.log(
                Level::Warn,
                format!("cannot write the clean-shutdown mark: {error}; the next start scans the active segments"),
            );
        }
        if let Some(shutdown) = self.shutdown.as_mut() {
            shutdown.mark = MarkState::Written;
        }
    }
}
