//! The broker's data plane on disk: which writes, syncs and index files (seals) go out and
//! when, group commit (one flush window syncs every partition written meanwhile), and what a
//! completion or a failure does to a partition (offline with KAFKA_STORAGE_ERROR; a failed write
//! retried after `STORAGE_RETRY_MS`, a failed fsync offline until restart). What to write is
//! each partition log's decision; this file hands it to the shell and routes the results back.

use super::{Broker, InFlight, PlantedBug, STORAGE_RETRY_MS};
use crate::errors;
use crate::io::{IoCommand, IoOp, IoResult, Level, Output, SegmentFile};
use crate::topics::{Topic, TopicId};

impl Broker {
    pub(super) fn issue(&mut self, op: IoOp, what: InFlight) {
        let token = self.next_token;
        self.next_token += 1;
        self.in_flight.insert(token, what);
        self.outputs.push_back(Output::Io(IoCommand { token, op }));
    }

    /// Batches were appended (`bytes` of them): keeps the tail cache of all partitions within
    /// `tail_cache_bytes`, evicting the oldest batches of any partition first.
    pub(super) fn note_cached(&mut self, bytes: usize) {
        self.tail_cache_estimate += bytes;
        let bound = self.config.shard_share(self.config.tail_cache_bytes);
        if self.tail_cache_estimate <= bound {
            return;
        }
        // Per-partition limits and retention evict too: sum what is really cached.
        let logs = || {
            self.topics
                .values()
                .flat_map(|t| t.partitions.iter().map(|p| &p.log))
        };
        let mut total: usize = logs().map(crate::log::PartitionLog::tail_bytes).sum();
        while total > bound {
            let oldest = self
                .topics
                .values_mut()
                .flat_map(|t| t.partitions.iter_mut().map(|p| &mut p.log))
                .filter_map(|log| Some((log.oldest_evictable_ms()?, log)))
                .min_by_key(|(appended_ms, _)| *appended_ms);
            let Some((_, log)) = oldest else {
                break; // every partition is down to its newest batch
            };
            total -= log.evict_oldest_cached();
        }
        self.tail_cache_estimate = total;
    }

    /// Hands out every write, sync, seal and metadata persist that may start now.
    pub(super) fn pump_io(&mut self) {
        self.pump_metadata();
        let dirty: Vec<(String, i32)> = self.dirty.iter().cloned().collect();
        for (name, partition) in &dirty {
            self.pump_partition(name, *partition);
        }
        if self.sync_round.is_empty() {
            self.start_sync_round(&dirty);
        }
        if self.shutdown.is_some() {
            self.pump_shutdown();
        }
    }

    /// The partition's log, its topic id and directory, if it may do I/O now.
    pub(super) fn writable_log(&self, name: &str, partition: i32) -> Option<(TopicId, String)> {
        let topic = self.topics.get(name)?;
        self.is_writable(topic, partition)
            .then(|| (topic.id, topic.dir_name()))
    }

    /// Whether the partition may do I/O now: its topic's metadata is durable, and it is online.
    pub(super) fn is_writable(&self, topic: &Topic, partition: i32) -> bool {
        topic.created_in_version <= self.metadata_persisted
            && !self.offline.contains(&(topic.id, partition))
    }

    pub(super) fn pump_partition(&mut self, name: &str, partition: i32) {
        let key = (name.to_string(), partition);
        if !self.topics.contains_key(name) {
            self.dirty.remove(&key);
            return;
        }
        let Some((id, dir)) = self.writable_log(name, partition) else {
            return;
        };
        let topic = self.topics.get_mut(name).expect("checked");
        let log = &mut topic.partitions[partition as usize].log;
        let write = log.poll_write();
        let seal = log.poll_seal();
        if !log.is_dirty() && !log.wants_seal() {
            self.dirty.remove(&key);
        }
        let file = |base_offset| SegmentFile {
            topic_dir: dir.clone(),
            partition,
            base_offset,
        };
        if let Some(write) = write {
            self.issue(
                IoOp::Write {
                    file: file(write.segment_base_offset),
                    position: write.position,
                    data: write.data,
                },
                InFlight::Write {
                    topic: id,
                    partition,
                },
            );
        }
        if let Some((base, data)) = seal {
            self.issue(
                IoOp::WriteFile {
                    path: file(base).index_path(),
                    data,
                },
                InFlight::Seal {
                    topic: id,
                    partition,
                },
            );
        }
    }

    /// Group commit: one flush window syncs every partition with written, unflushed data, all
    /// at once; each partition's produces are answered as soon as its own fsyncs are done.
    /// Partitions whose flush policy does not want a sync yet wait for a later round.
    pub(super) fn start_sync_round(&mut self, candidates: &[(String, i32)]) {
        let force = self.shutdown.is_some();
        for (name, partition) in candidates {
            let Some((id, dir)) = self.writable_log(name, *partition) else {
                continue;
            };
            let topic = self.topics.get_mut(name.as_str()).expect("writable");
            let policy = topic.flush_policy();
            let log = &mut topic.partitions[*partition as usize].log;
            let Some(round) = log.poll_sync(self.now_ms, &policy, force) else {
                continue;
            };
            let segments = round.segments;
            let name_files =
                round.name_files && self.config.planted_bug != Some(PlantedBug::SkipDirSync);
            if segments.is_empty() {
                // Nothing new reached a file since the last sync (a rewrite after a failure).
                log.handle_sync_done();
                let now_ms = self.now_ms;
                self.on_partition_progress(now_ms, id, *partition);
                continue;
            }
            self.sync_round
                .insert((id, *partition), segments.len() + usize::from(name_files));
            if name_files {
                self.issue(
                    IoOp::SyncDir {
                        dir: crate::io::partition_dir(&dir, *partition),
                    },
                    InFlight::Sync {
                        topic: id,
                        partition: *partition,
                    },
                );
            }
            for base_offset in segments {
                let file = SegmentFile {
                    topic_dir: dir.clone(),
                    partition: *partition,
                    base_offset,
                };
                self.issue(
                    IoOp::Sync { file },
                    InFlight::Sync {
                        topic: id,
                        partition: *partition,
                    },
                );
            }
        }
    }

    pub(super) fn on_write_done(
        &mut self,
        now_ms: i64,
        id: TopicId,
        partition: i32,
        result: IoResult,
    ) {
        let Some(topic) = self.topic_by_id_mut(id) else {
            return;
        };
        let name = topic.name.clone();
        let log = &mut topic.partitions[partition as usize].log;
        match result {
            IoResult::Failed(error) => {
                log.handle_write_failed();
                // Disk full and the like: answer KAFKA_STORAGE_ERROR meanwhile, then try again.
                self.storage_retry_at
                    .insert((id, partition), now_ms + STORAGE_RETRY_MS);
                let retry = format!("{error}; retrying in {STORAGE_RETRY_MS} ms");
                self.take_offline(now_ms, id, &name, partition, &retry);
            }
            _ => {
                log.handle_write_done();
                self.on_partition_progress(now_ms, id, partition);
            }
        }
    }

    pub(super) fn on_sync_done(
        &mut self,
        now_ms: i64,
        id: TopicId,
        partition: i32,
        result: IoResult,
    ) {
        let key = (id, partition);
        if let IoResult::Failed(error) = &result {
            self.sync_failed.insert(key);
            if let Some(name) = self
                .topics
                .values()
                .find(|t| t.id == id)
                .map(|t| t.name.clone())
            {
                // After a failed fsync nothing is known about what reached the disk: the
                // partition stays offline until a restart recovers it from what is there.
                let error = format!("{error}; offline until restart");
                self.take_offline(now_ms, id, &name, partition, &error);
            }
        }
        let Some(left) = self.sync_round.get_mut(&key) else {
            return;
        };
        *left -= 1;
        if *left > 0 {
            return;
        }
        self.sync_round.remove(&key);
        if self.sync_failed.remove(&key) {
            return;
        }
        let Some(topic) = self.topic_by_id_mut(id) else {
            return;
        };
        let log = &mut topic.partitions[partition as usize].log;
        log.handle_sync_done();
        if log.wants_seal() {
            let name = topic.name.clone();
            self.dirty.insert((name, partition));
        }
        // A sync moves the flushed offset, which acks=all produces and commits wait on.
        self.on_partition_progress(now_ms, id, partition);
    }

    pub(super) fn on_seal_done(&mut self, id: TopicId, partition: i32, result: IoResult) {
        let Some(topic) = self.topic_by_id_mut(id) else {
            return;
        };
        let name = topic.name.clone();
        let log = &mut topic.partitions[partition as usize].log;
        log.handle_seal_done(result == IoResult::Done);
        if log.wants_seal() {
            // Several closed segments wait (a cleaning rewrote them): one at a time.
            self.dirty.insert((name.clone(), partition));
        }
        if let IoResult::Failed(error) = result {
            self.log(
                Level::Warn,
                format!("{name}-{partition}: cannot write a segment's index file: {error}; a restart will scan the segment"),
            );
        }
    }

    /// A partition whose storage failed stops taking produces; the others carry on.
    pub(super) fn take_offline(
        &mut self,
        now_ms: i64,
        id: TopicId,
        name: &str,
        partition: i32,
        error: &str,
    ) {
        self.log(
            Level::Error,
            format!("partition {name}-{partition} is offline: storage error: {error}"),
        );
        self.offline.insert((id, partition));
        self.dirty.remove(&(name.to_string(), partition));
        self.fail_waiters(now_ms, id, partition, errors::KAFKA_STORAGE_ERROR);
    }

    /// Brings back partitions whose failed write is due for another try.
    pub(super) fn retry_storage(&mut self, now_ms: i64) {
        let due: Vec<(TopicId, i32)> = self
            .storage_retry_at
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(key, _)| *key)
            .collect();
        for (id, partition) in due {
            self.storage_retry_at.remove(&(id, partition));
            self.offline.remove(&(id, partition));
            if let Some(topic) = self.topics.values().find(|t| t.id == id) {
                let name = topic.name.clone();
                self.log(
                    Level::Info,
                    format!("partition {name}-{partition}: retrying the failed write"),
                );
                self.dirty.insert((name, partition));
            }
        }
    }

    /// When `flush.ms` makes a partition's sync due, if the next round could take it then.
    pub(super) fn flush_deadline_ms(&self) -> Option<i64> {
        if !self.sync_round.is_empty() {
            return None; // the round's end starts the next one
        }
        self.dirty
            .iter()
            .filter_map(|(name, partition)| {
                let topic = self.topics.get(name)?;
                let log = &topic.partitions.get(*partition as usize)?.log;
                self.is_writable(topic, *partition)
                    .then(|| log.sync_deadline(&topic.flush_policy()))
                    .flatten()
            })
            .min()
    }
}
