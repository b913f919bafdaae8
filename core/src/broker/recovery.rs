//! Start-up: rebuilding the topic table and the partition logs from what the disk kept.
//!
//! The shell reads the metadata file and hands it to [`Broker::recover_metadata`], which names the
//! segment files to load; the shell reads each (empty when missing) and hands it to
//! [`Broker::recover_partition`], then truncates and syncs the file as the report says before it
//! serves a request. Directories that belong to no topic are named by [`Broker::orphan_dirs`].

use super::Broker;
use crate::io::{Level, SegmentFile};
use crate::log::{PartitionLog, RecoveryReport};
use crate::topics::{self, Topic};

/// A segment file the shell must read at start-up.
pub type PartitionToLoad = SegmentFile;

/// The disk as start-up needs it: plain reads and the repairs recovery decides. Each shell
/// implements it with its own I/O (blocking is fine: it runs before serving) and calls
/// [`Broker::start_up`], so the order of recovery lives in one place.
pub trait StartupDisk {
    /// The metadata file, or `None` for a new data directory.
    fn read_metadata(&mut self) -> Result<Option<Vec<u8>>, String>;
    /// A segment file's bytes; empty when it does not exist.
    fn read_segment(&mut self, file: &SegmentFile) -> Result<Vec<u8>, String>;
    /// Cuts the file to `len` bytes, durably.
    fn truncate_segment(&mut self, file: &SegmentFile, len: u64) -> Result<(), String>;
    /// Makes what the file holds durable (writes from before a crash may not be yet).
    fn sync_segment(&mut self, file: &SegmentFile) -> Result<(), String>;
    /// The directories in the data directory.
    fn list_dirs(&mut self) -> Result<Vec<String>, String>;
    fn remove_dir(&mut self, dir: &str) -> Result<(), String>;
}

impl Broker {
    /// Brings a new broker up from what the disk kept: metadata, then every partition (torn
    /// tails truncated, the rest synced), then directories of deleted topics removed. Call it
    /// once, before the first request.
    pub fn start_up(&mut self, disk: &mut impl StartupDisk) -> Result<(), String> {
        let metadata = disk.read_metadata()?;
        for file in self.recover_metadata(metadata.as_deref())? {
            let data = disk.read_segment(&file)?;
            let report = self.recover_partition(&file, &data);
            if report.needs_truncate() {
                disk.truncate_segment(&file, report.valid_bytes)?;
            } else if !data.is_empty() {
                disk.sync_segment(&file)?;
            }
        }
        for orphan in self.orphan_dirs(&disk.list_dirs()?) {
            self.log(
                Level::Info,
                format!("removing directory of a deleted topic: {orphan}"),
            );
            disk.remove_dir(&orphan)?;
        }
        Ok(())
    }

    /// Restores the topic table from the metadata file, or starts a fresh one when there is none.
    pub fn recover_metadata(
        &mut self,
        data: Option<&[u8]>,
    ) -> Result<Vec<PartitionToLoad>, String> {
        let Some(data) = data else {
            self.log(
                Level::Info,
                format!("new data directory, cluster id {}", self.cluster_id),
            );
            self.pump_io(); // persist the cluster id now, so it survives a restart
            return Ok(Vec::new());
        };
        let image = topics::decode_metadata(data)?;
        topics::check_metadata(&image)?;
        self.cluster_id = image.cluster_id;
        // Ids below the limit may be in use by producers from before the restart.
        self.next_producer_id = image.producer_id_limit;
        self.producer_id_limit = image.producer_id_limit;
        let records = image.topics;
        self.metadata_version = 1;
        self.metadata_persisted = 1;
        let mut to_load = Vec::new();
        for record in records {
            for (&partition, &offset) in &record.log_start_offsets {
                self.recovered_log_starts
                    .insert((record.id, partition), offset);
            }
            let logs = (0..record.partitions)
                .map(|_| PartitionLog::new(self.config.tail_cache_bytes_per_partition))
                .collect();
            let topic = Topic {
                name: record.name.clone(),
                id: record.id,
                configs: record.configs,
                partitions: logs,
                created_in_version: 0,
            };
            for partition in 0..record.partitions {
                to_load.push(SegmentFile {
                    topic_dir: topic.dir_name(),
                    partition,
                    base_offset: 0,
                });
            }
            self.topics.insert(record.name, topic);
        }
        Ok(to_load)
    }

    /// Rebuilds one partition from its segment file's bytes. The shell must cut the file to
    /// `valid_bytes` (when `needs_truncate`) and sync it before serving.
    pub fn recover_partition(&mut self, file: &SegmentFile, data: &[u8]) -> RecoveryReport {
        let tail_bytes_max = self.config.tail_cache_bytes_per_partition;
        let (mut log, mut report) = PartitionLog::recover(file.base_offset, data, tail_bytes_max);
        if let (Some(super::PlantedBug::LoseLastBatchOnRecovery), Some(last)) =
            (self.config.planted_bug, report.last_batch_position)
        {
            let file_bytes = report.file_bytes;
            (log, report) =
                PartitionLog::recover(file.base_offset, &data[..last as usize], tail_bytes_max);
            report.file_bytes = file_bytes;
        }
        let topic = self
            .topics
            .values_mut()
            .find(|t| t.dir_name() == file.topic_dir)
            .expect("recover_partition is called for files named by recover_metadata");
        let name = format!("{}-{}", topic.name, file.partition);
        let is_offsets_topic = topic.name == crate::groups::OFFSETS_TOPIC;
        let log_start = self
            .recovered_log_starts
            .remove(&(topic.id, file.partition))
            .unwrap_or(0);
        // DeleteRecords only moves the start to committed offsets, so the start is within the
        // recovered log unless acknowledged data was lost; then the log starts at its end.
        let lost = log_start > log.high_watermark();
        let applied = log_start.min(log.high_watermark());
        log.advance_log_start(applied);
        topic.partitions[file.partition as usize] = log;
        if lost {
            self.log(
                Level::Error,
                format!(
                    "{name}: the log start offset {log_start} is beyond the recovered log end {applied}; starting at {applied}"
                ),
            );
        }
        if is_offsets_topic {
            self.replay_offsets_partition(&data[..report.valid_bytes as usize]);
        }
        if report.torn_bytes > 0 {
            self.log(
                Level::Warn,
                format!(
                    "{name}: truncating torn tail: keeping {} bytes (offsets below {}), dropping {} bytes: {}",
                    report.valid_bytes,
                    report.next_offset,
                    report.torn_bytes,
                    report.stop_reason.as_deref().unwrap_or("unreadable batch"),
                ),
            );
        }
        report
    }

    /// Of the directories in the data directory, those that belong to no topic: deleted topics
    /// whose removal a crash interrupted. The shell removes them.
    pub fn orphan_dirs(&self, found: &[String]) -> Vec<String> {
        let live: Vec<String> = self.topics.values().map(Topic::dir_name).collect();
        found
            .iter()
            .filter(|dir| !live.contains(dir))
            .cloned()
            .collect()
    }
}
