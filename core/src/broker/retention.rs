//! Retention (`retention.ms`, `retention.bytes`, `cleanup.policy=delete`): which segments go,
//! decided by each partition log; the new log starts are persisted in the metadata before any
//! file is removed, so a crash never leaves a partition whose offsets restart lower.

use super::Broker;
use crate::io::{IoCommand, IoOp, Level, Output, SegmentFile};
use crate::topics::TopicId;

impl Broker {
    /// Deletes the segments retention no longer keeps, in every partition. The new log start
    /// offsets are persisted in the metadata before any file is removed, so a crash never
    /// leaves a partition whose offsets restart lower.
    pub(super) fn apply_retention(&mut self, now_ms: i64) {
        let mut removals = Vec::new();
        let mut rolled = Vec::new();
        for topic in self.topics.values_mut() {
            if !topic.has_cleanup_policy("delete") {
                continue; // compacted topics (the offsets topic) keep every segment
            }
            let retention_ms = topic.config_i64("retention.ms");
            let retention_bytes = topic.config_i64("retention.bytes");
            let dir = topic.dir_name();
            for (partition, log) in topic.partitions.iter_mut().map(|p| &mut p.log).enumerate() {
                if log.is_cleaning() {
                    continue; // compact,delete: retention waits for the cleaning's swap
                }
                let start = log.log_start_offset();
                let segments = log.segment_bases().len();
                let deleted = log.apply_retention(now_ms, retention_ms, retention_bytes);
                if log.segment_bases().len() > segments - deleted.len() {
                    rolled.push((topic.name.clone(), partition as i32));
                }
                if deleted.is_empty() {
                    continue;
                }
                let paths = deleted
                    .iter()
                    .flat_map(|&base_offset| {
                        let file = SegmentFile {
                            topic_dir: dir.clone(),
                            partition: partition as i32,
                            base_offset,
                        };
                        [file.relative_path(), file.index_path()]
                    })
                    .collect();
                removals.push((
                    format!(
                        "{}-{partition}: retention deleted {} segment(s); log start {start} -> {}",
                        topic.name,
                        deleted.len(),
                        log.log_start_offset()
                    ),
                    paths,
                    (topic.id, partition as i32, log.log_start_offset()),
                ));
            }
        }
        self.dirty.extend(rolled);
        if removals.is_empty() {
            return;
        }
        if !self.is_control() {
            // The control shard persists the new log starts; the files go once it has.
            for (message, paths, start) in removals {
                self.log(Level::Info, message);
                let remove = Output::Io(IoCommand {
                    token: 0,
                    op: IoOp::RemoveFiles { paths },
                });
                self.await_log_starts(vec![start], remove);
            }
            return;
        }
        let starts: Vec<(TopicId, i32, i64)> = removals.iter().map(|(_, _, s)| *s).collect();
        let version = self.append_log_starts(&starts);
        for (message, paths, _) in removals {
            self.log(Level::Info, message);
            self.after_metadata.push((
                version,
                Output::Io(IoCommand {
                    token: 0,
                    op: IoOp::RemoveFiles { paths },
                }),
            ));
        }
    }
}
