//! Start-up: rebuilding the topic table and the partition logs from what the disk kept.
//!
//! [`Broker::start_up`] reads the metadata file, then each partition's directory: closed
//! segments are loaded from their index files when those are sound (the last segment too after
//! a clean shutdown); every other segment is scanned batch by batch, a torn or corrupt tail is
//! truncated, and segments after a gap are removed. Directories that belong to no topic are
//! removed last.

use super::Broker;
use crate::batch;
use crate::controller::Controller;
use crate::io::{self, Level, SegmentFile};
use crate::log::{self, PartitionLog, RecoveryReport};
use crate::segment::Segment;
use crate::topics::Topic;
use std::collections::BTreeSet;

/// The disk as start-up needs it: plain reads and the repairs recovery decides, by paths
/// relative to the data directory. Each shell implements it with its own I/O (blocking is fine:
/// it runs before serving) and calls [`Broker::start_up`], so the order of recovery lives in
/// one place.
pub trait StartupDisk {
    /// The metadata file, or `None` for a new data directory.
    fn read_metadata(&mut self) -> Result<Option<Vec<u8>>, String>;
    /// Replaces the metadata file durably, so that a crash leaves the old or the new one whole.
    fn write_metadata(&mut self, data: &[u8]) -> Result<(), String>;
    /// A file's bytes, or `None` when it does not exist.
    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, String>;
    /// Up to `len` bytes of a file from `offset` (fewer at its end; none past it or when the
    /// file does not exist).
    fn read_at(&mut self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, String>;
    /// How much of a segment file recovery reads at a time.
    fn scan_chunk_bytes(&self) -> usize {
        SCAN_CHUNK_BYTES
    }
    /// A file's length, or `None` when it does not exist.
    fn file_len(&mut self, path: &str) -> Result<Option<u64>, String>;
    /// The names of the files in a directory; empty when it does not exist.
    fn list_files(&mut self, dir: &str) -> Result<Vec<String>, String>;
    /// Cuts the file to `len` bytes, durably.
    fn truncate_file(&mut self, path: &str, len: u64) -> Result<(), String>;
    /// Makes what the file holds durable (writes from before a crash may not be yet).
    fn sync_file(&mut self, path: &str) -> Result<(), String>;
    /// Removes a file durably; a missing file is not an error.
    fn remove_file(&mut self, path: &str) -> Result<(), String>;
    /// Renames a file over `to`, durably (the directory synced).
    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), String>;
    /// The directories in the data directory.
    fn list_dirs(&mut self) -> Result<Vec<String>, String>;
    fn remove_dir(&mut self, dir: &str) -> Result<(), String>;
}

/// The offset of a cleaner checkpoint file (`cleaned <offset>`); `None` when damaged (every
/// segment then counts as dirty, and the next cleaning maps the whole log).
fn parse_cleaned(data: &[u8]) -> Option<i64> {
    std::str::from_utf8(data)
        .ok()?
        .trim()
        .strip_prefix("cleaned ")?
        .parse()
        .ok()
        .filter(|&o: &i64| o >= 0)
}

/// Segment files are scanned in pieces of this size, so start-up memory does not grow with
/// `segment.bytes`.
pub const SCAN_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// What start-up did, for tests and the start-up log line.
#[derive(Debug, Default)]
pub struct StartupReport {
    /// Whether the last shutdown was clean (its checkpoint was used).
    pub clean: bool,
    /// Segments loaded from their index files, without a scan.
    pub loaded: usize,
    /// Segments scanned, each with what the scan found.
    pub scanned: Vec<(SegmentFile, RecoveryReport)>,
}

impl Broker {
    /// Brings a new broker up from what the disk kept: metadata, then every partition (torn
    /// tails truncated, the rest synced), then directories of deleted topics removed. Call it
    /// once, before the first request; `now_ms` starts the new active segments' clocks.
    pub fn start_up(
        &mut self,
        disk: &mut impl StartupDisk,
        now_ms: i64,
    ) -> Result<StartupReport, String> {
        let identity = match disk.read_file(super::META_PROPERTIES)? {
            Some(bytes) => Some(super::Identity::decode(&bytes)?),
            None => None,
        };
        let metadata = disk.read_metadata()?;
        self.check_node_identity(identity.as_ref(), metadata.is_some())?;
        let mut report = StartupReport {
            clean: disk.file_len(io::CLEAN_SHUTDOWN_FILE)?.is_some(),
            ..StartupReport::default()
        };
        let mut recovered = 0;
        let to_recover = self.recover_metadata(metadata.as_deref())?;
        self.check_cluster_identity(identity.as_ref())?;
        if let (Some(controller), Some(_)) = (&self.controller, &metadata) {
            // The new leader epochs are durable before a batch is written in them.
            let data = crate::controller::snapshot::encode(controller.image(), self.config.node_id);
            disk.write_metadata(&data)?;
        }
        for (topic_dir, partition) in to_recover {
            let name = self
                .topics
                .values()
                .find(|t| t.dir_name() == topic_dir)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            if self.owns(&name, partition) {
                self.recover_partition(disk, &topic_dir, partition, now_ms, &mut report)?;
                recovered += 1;
            }
        }
        self.forget_foreign_log_starts();
        if self.is_control() && !self.config.controller_quorum.is_empty() {
            let journal = disk.read_file(io::QUORUM_JOURNAL)?;
            self.start_quorum(journal.as_deref(), now_ms)?;
        }
        if self.is_control() {
            // The other shards started up first (their partitions only): what is left is the
            // control shard's, as is the mark.
            for orphan in self.orphan_dirs(&disk.list_dirs()?) {
                self.log(
                    Level::Info,
                    format!("removing directory of a deleted topic: {orphan}"),
                );
                disk.remove_dir(&orphan)?;
            }
            if report.clean {
                // From here on the index files of active segments go stale.
                disk.remove_file(io::CLEAN_SHUTDOWN_FILE)?;
            }
        }
        let shard = match self.config.shards {
            1 => String::new(),
            _ => format!("shard {}: ", self.config.shard),
        };
        self.log(
            Level::Info,
            format!(
                "{shard}recovered {recovered} partition(s) after a{} shutdown: {} segment(s) from their index files, {} scanned",
                if report.clean { " clean" } else { "n unclean" },
                report.loaded,
                report.scanned.len()
            ),
        );
        // Closed segments found without a sound index file get one.
        for topic in self.topics.values() {
            for (partition, p) in topic.partitions.iter().enumerate() {
                if p.log.wants_seal() {
                    self.dirty.insert((topic.name.clone(), partition as i32));
                }
            }
        }
        self.pump_io();
        Ok(report)
    }

    /// Restores the topic table from the metadata file, or starts a fresh one when there is none.
    /// Returns the partitions to load: (topic directory, partition).
    pub fn recover_metadata(&mut self, data: Option<&[u8]>) -> Result<Vec<(String, i32)>, String> {
        let Some(data) = data else {
            if self.is_control() {
                self.log(
                    Level::Info,
                    format!("new data directory, cluster id {}", self.cluster_id),
                );
            }
            self.pump_io(); // persist the cluster id now, so it survives a restart
            return Ok(Vec::new());
        };
        let mut image = crate::controller::snapshot::decode(data, self.config.node_id)?;
        self.begin_leaderships(&mut image)?;
        self.load_image(&image);
        // Ids below the limit may be in use by producers from before the restart.
        self.next_producer_id = image.producer_id_limit;
        self.metadata_version = 1;
        self.metadata_persisted = 1;
        let to_load = self
            .topics
            .values()
            .flat_map(|t| (0..t.partitions.len() as i32).map(|p| (t.dir_name(), p)))
            .collect();
        if self.is_control() {
            self.controller = Some(Controller::recovered(self.config.node_id, image));
        }
        Ok(to_load)
    }

    /// Start-up: this node leads its partitions in new leader epochs, one above the last each
    /// (as a KRaft broker that restarts is fenced and then elected again), so batches written
    /// from now on are told apart from those of its earlier life (KIP-101, KIP-320).
    fn begin_leaderships(
        &self,
        image: &mut crate::controller::MetadataImage,
    ) -> Result<(), String> {
        if image.quorum_index > 0 {
            // A node of a quorum: the controller begins its new leaderships.
            return Ok(());
        }
        if self.config.planted_bug == Some(super::PlantedBug::ForgetLeaderEpochs) {
            for topic in image.topics.values_mut() {
                for placed in &mut topic.partitions {
                    placed.leader_epoch = 0;
                }
            }
        }
        for record in image.new_leaderships(self.config.node_id)? {
            image.apply(&record)?;
        }
        Ok(())
    }

    /// Rebuilds one partition from its directory.
    fn recover_partition(
        &mut self,
        disk: &mut impl StartupDisk,
        topic_dir: &str,
        partition: i32,
        now_ms: i64,
        report: &mut StartupReport,
    ) -> Result<(), String> {
        let topic = self
            .topics
            .values()
            .find(|t| t.dir_name() == topic_dir)
            .expect("named by recover_metadata");
        let (id, name) = (topic.id, format!("{}-{partition}", topic.name));
        let index_interval_bytes = topic.segment_policy().index_interval_bytes;
        let is_offsets_topic = topic.name == crate::groups::OFFSETS_TOPIC;
        let dir = io::partition_dir(topic_dir, partition);
        self.finish_cleanings(disk, topic_dir, partition, &name)?;
        let mut logs = BTreeSet::new();
        let mut indexes = BTreeSet::new();
        for file in disk.list_files(&dir)? {
            match io::parse_segment_name(&file) {
                Some((base, false)) => logs.insert(base),
                Some((base, true)) => indexes.insert(base),
                None => false,
            };
        }
        let segment = |base_offset| SegmentFile {
            topic_dir: topic_dir.to_string(),
            partition,
            base_offset,
        };
        for orphan in indexes.difference(&logs) {
            disk.remove_file(&segment(*orphan).index_path())?;
        }
        let mut recorded_start = self
            .recovered_log_starts
            .remove(&(id, partition))
            .unwrap_or(0);
        if recorded_start > OFFSET_MAX {
            self.log(
                Level::Error,
                format!("{name}: ignoring the impossible log start offset {recorded_start} in the metadata"),
            );
            recorded_start = 0;
        }
        let bases: Vec<i64> = logs.into_iter().collect();
        let first = bases.first().copied().unwrap_or(recorded_start);
        let mut log = PartitionLog::empty_at(first, self.config.tail_cache_bytes_per_partition);
        let leader_epoch = topic_epoch(self, id, partition);
        log.bound_recovered_epochs(leader_epoch);
        let mut replayed = 0;
        for (i, &base) in bases.iter().enumerate() {
            let file = segment(base);
            if base != log.log_end_offset() {
                self.log(
                    Level::Error,
                    format!(
                        "{name}: segment {base} does not follow the log end {}: removing it and {} later segment(s)",
                        log.log_end_offset(),
                        bases.len() - i - 1
                    ),
                );
                for &later in &bases[i..] {
                    disk.remove_file(&segment(later).relative_path())?;
                    disk.remove_file(&segment(later).index_path())?;
                }
                break;
            }
            let is_last = i + 1 == bases.len();
            let next_base = bases.get(i + 1).copied();
            if indexes.contains(&base) && (report.clean || !is_last) {
                match self.load_index(disk, &file, next_base)? {
                    Ok((loaded, producers)) => {
                        let bytes = loaded.bytes;
                        log.recover_sealed(loaded, producers);
                        report.loaded += 1;
                        if is_offsets_topic {
                            replayed += self.replay_offsets(disk, &file.relative_path(), bytes)?;
                        }
                        continue;
                    }
                    Err(why) => self.log(
                        Level::Warn,
                        format!("{name}: index file of segment {base} not used ({why}); scanning the segment"),
                    ),
                }
            }
            let path = file.relative_path();
            let mut file_bytes = disk.file_len(&path)?.unwrap_or(0);
            if is_last
                && self.config.planted_bug == Some(super::PlantedBug::LoseLastBatchOnRecovery)
            {
                let data = disk.read_file(&path)?.unwrap_or_default();
                if let Some(last) = last_batch_start(&data) {
                    file_bytes = last as u64;
                }
            }
            let scan = scan_segment(
                disk,
                &path,
                &mut log,
                base,
                file_bytes,
                index_interval_bytes,
            )?;
            if scan.torn_bytes > 0 {
                self.log(
                    Level::Warn,
                    format!(
                        "{name}: truncating torn tail of segment {base}: keeping {} bytes (offsets below {}), dropping {} bytes: {}",
                        scan.valid_bytes,
                        scan.next_offset,
                        scan.torn_bytes,
                        scan.stop_reason.as_deref().unwrap_or("unreadable batch"),
                    ),
                );
            }
            if scan.damaged_epochs > 0 {
                self.log(
                    Level::Error,
                    format!(
                        "{name}: segment {base}: {} batch(es) carry a leader epoch above the metadata's {leader_epoch} (damage outside their CRC); kept out of the epoch history, and reads of them from disk fail",
                        scan.damaged_epochs
                    ),
                );
            }
            if scan.needs_truncate() {
                disk.truncate_file(&path, scan.valid_bytes)?;
            } else if file_bytes > 0 {
                disk.sync_file(&path)?;
            }
            if is_offsets_topic {
                replayed += self.replay_offsets(disk, &path, scan.valid_bytes)?;
            }
            report.scanned.push((file, scan));
        }
        log.finish_recovery(now_ms);
        // DeleteRecords and retention only move the start to committed offsets, so the start is
        // within the recovered log unless acknowledged data was lost; then the log starts at its
        // end.
        let start = recorded_start.max(first);
        if start > log.high_watermark() {
            if bases.is_empty() {
                log = PartitionLog::empty_at(start, self.config.tail_cache_bytes_per_partition);
                log.finish_recovery(now_ms);
            } else {
                self.log(
                    Level::Error,
                    format!(
                        "{name}: the log start offset {start} is beyond the recovered log end {}; starting at the end",
                        log.high_watermark()
                    ),
                );
            }
        }
        log.advance_log_start(start.min(log.high_watermark()));
        let checkpoint = format!("{dir}/{}", io::CLEANER_CHECKPOINT);
        if let Some(offset) = disk.read_file(&checkpoint)?.and_then(|d| parse_cleaned(&d)) {
            log.recover_cleaned_offset(offset);
        }
        let topic = self
            .topics
            .values_mut()
            .find(|t| t.id == id)
            .expect("found above");
        let slot = &mut topic.partitions[partition as usize];
        let leader_epoch = slot.replica.leader_epoch();
        *slot = slot.with_log(log, now_ms, self.config.controller_quorum.is_empty());
        if let Some(logged) = slot.log.latest_epoch().filter(|&e| e > leader_epoch) {
            // The epoch field is outside a batch's CRC, or the metadata file is older than
            // the log: either way the history above the leader's epoch cannot be trusted.
            self.log(
                Level::Error,
                format!("{name}: the log holds leader epoch {logged}, above the metadata's {leader_epoch}"),
            );
        }
        if replayed > 0 {
            let groups = self.groups.group_count();
            self.log(
                Level::Info,
                format!("{name}: replayed {replayed} group record(s): {groups} group(s)"),
            );
        }
        Ok(())
    }

    /// Replays the group records of an offsets partition's segment file (its first `valid`
    /// bytes) into the group state, a piece at a time: start-up memory is bounded by the piece
    /// size, not by the log (which compaction keeps to about one record per group and
    /// partition). Returns how many records it replayed.
    fn replay_offsets(
        &mut self,
        disk: &mut impl StartupDisk,
        path: &str,
        valid: u64,
    ) -> Result<usize, String> {
        let piece = disk.scan_chunk_bytes();
        let (mut position, mut replayed) = (0u64, 0);
        while position < valid {
            let mut data = disk.read_at(path, position, piece.min((valid - position) as usize))?;
            let mut whole = 0usize;
            while let Some(size) = batch::peek_size(&data[whole..]) {
                let size = usize::try_from(size).unwrap_or(0);
                if size < batch::HEADER_BYTES || whole + size > data.len() {
                    break;
                }
                whole += size;
            }
            if whole == 0 {
                // One batch longer than a piece: read it whole (recovery checked it).
                let size = batch::peek_size(&data).map_or(0, |s| usize::try_from(s).unwrap_or(0));
                if size <= data.len() || position + size as u64 > valid {
                    break;
                }
                data = disk.read_at(path, position, size)?;
                whole = size;
            }
            replayed += self.groups.replay_partition(&data[..whole]);
            position += whole as u64;
        }
        Ok(replayed)
    }

    /// Log compaction's files a crash left (see `log/cleaner.rs`): a cleaned file not swapped
    /// in is removed; a swap that committed is finished (the segments it replaces removed, the
    /// swap file renamed into place), as the swap itself would have.
    fn finish_cleanings(
        &mut self,
        disk: &mut impl StartupDisk,
        topic_dir: &str,
        partition: i32,
        name: &str,
    ) -> Result<(), String> {
        let dir = io::partition_dir(topic_dir, partition);
        let files = disk.list_files(&dir)?;
        for file in &files {
            let Some((base, end, swap)) = io::parse_cleaned_name(file) else {
                continue;
            };
            let segment = |base_offset| SegmentFile {
                topic_dir: topic_dir.to_string(),
                partition,
                base_offset,
            };
            let cleaned = io::CleanedFile {
                segment: segment(base),
                end,
            };
            if !swap {
                disk.remove_file(&cleaned.cleaned_path())?;
                continue;
            }
            let replaced: Vec<i64> = files
                .iter()
                .filter_map(|f| io::parse_segment_name(f))
                .map(|(b, _)| b)
                .filter(|&b| b >= base && b < end)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.log(
                Level::Info,
                format!(
                    "{name}: finishing the swap of cleaned segments {base}..{end} ({} old segment file(s) left)",
                    replaced.len()
                ),
            );
            for &b in replaced.iter().rev() {
                disk.remove_file(&segment(b).index_path())?;
                disk.remove_file(&segment(b).relative_path())?;
            }
            disk.rename_file(&cleaned.swap_path(), &segment(base).relative_path())?;
        }
        Ok(())
    }

    /// A segment's index file, if it can be trusted: sound, and agreeing with the segment file's
    /// length and with where the next segment starts. `Err` inside says why not.
    #[allow(clippy::type_complexity)]
    fn load_index(
        &mut self,
        disk: &mut impl StartupDisk,
        file: &SegmentFile,
        next_base: Option<i64>,
    ) -> Result<Result<(Segment, crate::producers::ProducerStates), String>, String> {
        let Some(data) = disk.read_file(&file.index_path())? else {
            return Ok(Err("missing".into()));
        };
        let (segment, producers) = match Segment::decode_index(file.base_offset, &data) {
            Ok(loaded) => loaded,
            Err(why) => return Ok(Err(why)),
        };
        let file_len = disk.file_len(&file.relative_path())?.unwrap_or(0);
        if file_len < segment.bytes {
            return Ok(Err(format!(
                "it describes {} bytes, the segment file has {file_len}",
                segment.bytes
            )));
        }
        if let Some(next) = next_base.filter(|&next| next != segment.next_offset) {
            return Ok(Err(format!(
                "it ends at offset {}, the next segment starts at {next}",
                segment.next_offset
            )));
        }
        Ok(Ok((segment, producers)))
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

/// Offsets a log could reach: a log start above it in the metadata is damage, not history.
const OFFSET_MAX: i64 = i64::MAX / 4;

/// Where the last whole batch of a segment's bytes starts (for the planted bug that loses it).
fn last_batch_start(data: &[u8]) -> Option<usize> {
    let mut position = 0;
    let mut last = None;
    while let Ok(info) = batch::validate_stored(&data[position..]) {
        last = Some(position);
        position += info.size_bytes;
    }
    last
}

/// Scans a segment file `file_bytes` long in pieces of the disk's chunk size: the valid
/// batches go into `log`; the report says where they end and what follows them.
fn scan_segment(
    disk: &mut impl StartupDisk,
    path: &str,
    log: &mut PartitionLog,
    base: i64,
    file_bytes: u64,
    index_interval_bytes: u64,
) -> Result<RecoveryReport, String> {
    let chunk_bytes = disk.scan_chunk_bytes().max(1);
    let mut scan = log.begin_scan(base, index_interval_bytes);
    while let Some((position, needed)) = scan.wants(file_bytes) {
        let left = file_bytes - position;
        let want = (needed.max(chunk_bytes) as u64).min(left) as usize;
        let chunk = disk.read_at(path, position, want)?;
        let eof = chunk.len() < want || chunk.len() as u64 >= left;
        log.scan_chunk(&mut scan, &chunk, eof);
        if eof && scan.wants(file_bytes).is_some() && scan.position() == position {
            break; // the file is shorter than its length said: nothing more to read
        }
    }
    // What follows the valid batches: zero padding, or a torn or corrupt tail.
    let valid = scan.position();
    let mut torn_bytes = 0;
    let mut at = valid;
    while at < file_bytes {
        let want = ((file_bytes - at) as usize).min(chunk_bytes);
        let chunk = disk.read_at(path, at, want)?;
        if chunk.is_empty() {
            break;
        }
        let end = log::last_nonzero_end(&chunk);
        if end > 0 {
            torn_bytes = at - valid + end;
        }
        at += chunk.len() as u64;
    }
    Ok(log.finish_scan(scan, file_bytes, torn_bytes))
}

/// The leader epoch a recovered partition's topic table gives it (from the metadata).
fn topic_epoch(broker: &Broker, id: crate::topics::TopicId, partition: i32) -> i32 {
    let topic = broker.topics.values().find(|t| t.id == id);
    let slot = topic.and_then(|t| t.partitions.get(partition as usize));
    slot.map_or(i32::MAX, |p| p.replica.leader_epoch())
}
