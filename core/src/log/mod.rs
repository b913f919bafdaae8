//! One partition's log as a state machine: its segments, offsets, the tail cache, and the
//! decisions about what to write, what to fsync, what a reader may see, and what to delete.
//!
//! The log never performs I/O. It hands out [`SegmentWrite`]s (`poll_write`), sync requests
//! (`poll_sync`) and index files to persist (`poll_seal`), and learns of their completion
//! (`handle_write_done`, `handle_sync_done`, `handle_seal_done`).
//!
//! Offsets, by what they promise:
//! - `log_end_offset`: next offset to assign; everything below is appended (in memory).
//! - `written_offset`: everything below has been written to its segment file (not yet durable).
//! - `flushed_offset`: everything below is fsynced.
//! - `high_watermark`: everything below is committed and visible to consumers. The log does not
//!   decide it: the partition's [`crate::replica::Replica`] does, from every in-sync member's
//!   progress, and the log is told (`set_high_watermark`) and serves reads below it. On a single
//!   node under the default flush policy (every write synced at once, group-committed) it is
//!   the flushed offset: a consumer never sees a record that a crash could take back. A relaxed
//!   policy (`flush.messages` > 1 and `flush.ms` > 0, see [`FlushPolicy`]) makes records visible
//!   once written, as Kafka does with its page cache: a process crash keeps them (the device
//!   has them), a power loss may not.
//!
//! Segments: a partition is a run of segments (see [`crate::segment`]); the last one takes
//! appends. A segment is rolled when the next batch would take it past `segment.bytes`, or when
//! it is older than `segment.ms`. A rolled segment, once durable, gets its index file
//! ("sealed"); retention deletes whole segments from the front, never the active one.
//!
//! On-disk layout and alignment: a segment file is written only with O_DIRECT-sized writes,
//! each starting at the block boundary at or below the logical end and padded with zeros to a
//! block boundary. The next write starts again at the last partial block, carrying its bytes, so
//! the file holds the batches back to back with only zeros after the logical end. One write per
//! partition is in flight at a time, so two writes of the same block never race; a write takes
//! every batch appended while the one before it was in flight (the write grows with the load, up
//! to [`WRITE_BYTES_MAX`]).
use crate::batch::{self, BatchInfo};
use crate::producers::{ProducerStates, SequenceCheck};
use crate::segment::Segment;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeSet, VecDeque};

/// O_DIRECT alignment for positions, lengths and buffers.
pub const BLOCK_BYTES: u64 = 4096;

/// A write the shell must perform: `data` at `position` in the segment starting at
/// `segment_base_offset`. Both are multiples of [`BLOCK_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentWrite {
    pub segment_base_offset: i64,
    pub position: u64,
    pub data: Bytes,
}

/// The offset and timestamp of the first record at or after `timestamp` (and at or after the
/// log start) in a batch, as Kafka answers ListOffsets: record by record, decompressing if the
/// producer compressed. A LogAppendTime batch gives every record its max timestamp.
pub fn first_record_at_or_after(
    batch: &[u8],
    timestamp: i64,
    log_start_offset: i64,
) -> Option<(i64, i64)> {
    let info = batch::validate_stored(batch).ok()?;
    if info.attributes & 0x08 != 0 {
        return Some((info.base_offset.max(log_start_offset), info.max_timestamp));
    }
    let mut bytes = Bytes::copy_from_slice(&batch[..info.size_bytes]);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).ok()?;
    set.records
        .iter()
        .find(|r| r.offset >= log_start_offset && r.timestamp >= timestamp)
        .map(|r| (r.offset, r.timestamp))
}

/// Kafka's `LeaderEpochFileCache.endOffsetFor` over an epoch history ((epoch, start offset),
/// in order): the latest epoch ends at `end_offset`; an older one where the next epoch begins,
/// answered as (the largest epoch at or below the one asked, that offset); an epoch above every
/// known one, or -1, is unknown (-1, -1).
pub fn end_offset_for_epoch(history: &[(i32, i64)], epoch: i32, end_offset: i64) -> (i32, i64) {
    const UNKNOWN: (i32, i64) = (-1, -1);
    if epoch < 0 {
        return UNKNOWN;
    }
    match history.last() {
        None => UNKNOWN,
        Some(&(latest, _)) if epoch == latest => (latest, end_offset),
        Some(_) => {
            let Some(&(_, next_start)) = history.iter().find(|&&(e, _)| e > epoch) else {
                return UNKNOWN;
            };
            match history.iter().rev().find(|&&(e, _)| e <= epoch) {
                Some(&(floor, _)) => (floor, next_start),
                // Older than every epoch the log has (retention took them).
                None => (epoch, next_start),
            }
        }
    }
}

/// A write carries at most this many appended bytes (and always at least one batch): a write
/// is copied twice on its way to the disk (into one buffer, then into an aligned DMA buffer),
/// so its size bounds that memory, while a few MiB already run a disk at full speed.
pub const WRITE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Reads from disk fetch at least this much (the consumer's limit if larger): what is not
/// served now is kept as the partition's read-ahead for the next fetch.
pub const READ_AHEAD_BYTES: usize = 256 * 1024;

/// How a topic's segments are cut and indexed (`segment.bytes`, `segment.ms`,
/// `index.interval.bytes`). Passed with each append, so an altered config applies at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentPolicy {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u64,
}

impl Default for SegmentPolicy {
    fn default() -> Self {
        SegmentPolicy {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            index_interval_bytes: 4096,
        }
    }
}

/// When appended records are fsynced: Kafka's per-topic `flush.messages` and `flush.ms`. A
/// sync is due when as many records wait unflushed, or the oldest has waited as long; always
/// when an acks=all produce or a group commit waits on it, when a rolled segment holds unflushed
/// records (as Kafka flushes a segment it rolls), and at a clean shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    pub messages: i64,
    pub ms: i64,
}

impl FlushPolicy {
    /// Spate's default: every write is synced as soon as it is done (one group-commit round
    /// covers every partition), and consumers see only synced records.
    pub const IMMEDIATE: FlushPolicy = FlushPolicy {
        messages: 1,
        ms: i64::MAX,
    };

    pub fn is_immediate(&self) -> bool {
        self.messages <= 1 || self.ms <= 0
    }
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy::IMMEDIATE
    }
}

/// Result of appending one producer batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
}

/// A batch in the tail cache.
#[derive(Debug, Clone)]
struct Cached {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    /// When it was appended (`i64::MIN` when read back at recovery): the broker-wide cache
    /// bound evicts the oldest first.
    appended_ms: i64,
    bytes: Bytes,
}

/// A write handed out, and what its completion means.
#[derive(Debug, Clone)]
struct PendingWrite {
    /// `written_offset` once it is done.
    end_offset: i64,
    segment: i64,
    /// The segment's logical end once it is done.
    logical_end: u64,
    /// Appended bytes (batches) it carries.
    batch_bytes: usize,
    write: SegmentWrite,
}

/// What one sync of a partition must do before the records it covers are durable: fsync each
/// segment, and where one of them is a file this run created, fsync the partition's directory
/// (and those above it) so that the file's name survives a crash as well as its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRound {
    pub segments: Vec<i64>,
    pub name_files: bool,
}

/// A position in the log: a segment and a byte count in it.
type Position = (i64, u64);

#[derive(Debug)]
pub struct PartitionLog {
    /// Recovery: the highest leader epoch a sound batch can carry.
    epoch_bound: i32,
    /// Never empty; the last is the active segment.
    segments: VecDeque<Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    written_offset: i64,
    flushed_offset: i64,
    high_watermark: i64,
    /// Where the written and the flushed bytes end.
    written_position: Position,
    flushed_position: Position,
    /// Where the visible bytes (below the high watermark) end.
    visible_position: Position,
    /// Records below this offset have a waiter that needs them fsynced (acks=all, a commit).
    durable_wanted: i64,
    /// When the oldest record not yet flushed was appended (or a bound below it).
    unflushed_since_ms: Option<i64>,
    /// Appended batches not yet handed out in a write: (segment, offset after it, bytes).
    unwritten: VecDeque<(i64, i64, Bytes)>,
    /// Bytes of the batches in `unwritten` and in the write in flight (or failed).
    unwritten_bytes: usize,
    write_in_flight: Option<PendingWrite>,
    /// A write that failed (disk full, say): handed out again by the next `poll_write`.
    failed_write: Option<PendingWrite>,
    /// Segments written since the last sync began; the next sync covers them all.
    unsynced: BTreeSet<i64>,
    /// Segments whose file this log creates (not found at recovery) and whose name is not yet
    /// known durable: a sync that covers one also syncs the partition's directory
    /// ([`SyncRound::name_files`]), and takes them out once done.
    unnamed: BTreeSet<i64>,
    naming: Vec<i64>,
    /// A run-time truncation waiting for its read, and one whose files are being changed
    /// (see `truncate.rs`): no write, sync or seal meanwhile.
    cut_pending: Option<truncate::PendingCut>,
    cut_in_flight: bool,
    /// The sync in flight: the offset and position it makes durable, and when it started.
    sync_in_flight: Option<(i64, Position, i64)>,
    /// Batches not yet visible: (last offset, max timestamp, segment, the segment's bytes up to
    /// the batch's end). The high watermark passes them whole (it is always a batch end), and
    /// they become visible to reads and to ListOffsets (max timestamp).
    invisible: VecDeque<(i64, i64, i64, u64)>,
    /// The segment whose index file is being written.
    seal_in_flight: Option<i64>,
    /// The newest batches, served to readers at the tail without touching the disk.
    tail: VecDeque<Cached>,
    tail_bytes: usize,
    tail_bytes_max: usize,
    read_ahead: Option<ReadAhead>,
    /// How many times the log was cut (truncated): a read planned before a cut brought bytes
    /// that may no longer be the log's.
    truncations: u64,
    producers: ProducerStates,
    /// Log compaction: the cleaning in progress, where the part not yet cleaned begins, and
    /// steps of an abandoned cleaning still in flight (see `cleaner.rs`).
    cleaning: Option<cleaner::Cleaning>,
    cleaned_offset: i64,
    orphan_clean_steps: usize,
}

fn align_down(position: u64) -> u64 {
    position - position % BLOCK_BYTES
}

fn align_up(len: u64) -> u64 {
    len.div_ceil(BLOCK_BYTES) * BLOCK_BYTES
}

impl PartitionLog {
    /// An empty log whose first segment starts at offset 0.
    pub fn new(tail_bytes_max: usize) -> Self {
        Self::empty_at(0, tail_bytes_max)
    }

    /// An empty log starting at `offset` (a partition whose segments were all deleted).
    pub fn empty_at(offset: i64, tail_bytes_max: usize) -> Self {
        PartitionLog {
            segments: VecDeque::from([Segment::new(offset, 0)]),
            log_start_offset: offset,
            log_end_offset: offset,
            written_offset: offset,
            flushed_offset: offset,
            high_watermark: offset,
            written_position: (offset, 0),
            flushed_position: (offset, 0),
            visible_position: (offset, 0),
            durable_wanted: offset,
            unflushed_since_ms: None,
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
            write_in_flight: None,
            failed_write: None,
            unsynced: BTreeSet::new(),
            unnamed: BTreeSet::from([offset]),
            naming: Vec::new(),
            cut_pending: None,
            cut_in_flight: false,
            sync_in_flight: None,
            invisible: VecDeque::new(),
            seal_in_flight: None,
            tail: VecDeque::new(),
            tail_bytes: 0,
            tail_bytes_max,
            read_ahead: None,
            truncations: 0,
            producers: ProducerStates::default(),
            epoch_bound: i32::MAX,
            cleaning: None,
            cleaned_offset: offset,
            orphan_clean_steps: 0,
        }
    }

    /// Recovery: no batch can carry a leader epoch above `bound` (the metadata's, which is
    /// durable before any batch is written in it); one that does holds damage in that field,
    /// which its CRC does not cover, and is kept out of the epoch history.
    pub fn bound_recovered_epochs(&mut self, bound: i32) {
        self.epoch_bound = bound;
    }

    // ---- offsets ----

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }
    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    /// The highest batch end at or below `offset` that is at or above the high watermark
    /// and written (the high watermark itself if none): where a follower's high watermark
    /// may stand when its leader reports `offset`.
    pub fn batch_end_at_or_below(&self, offset: i64) -> i64 {
        let bound = offset.min(self.written_offset);
        self.invisible
            .iter()
            .take_while(|&&(last, ..)| last < bound)
            .last()
            .map_or(self.high_watermark, |&(last, ..)| last + 1)
            .max(self.high_watermark)
    }
    /// Everything below is written to the file (not necessarily durable).
    pub fn written_offset(&self) -> i64 {
        self.written_offset
    }
    /// Bytes of batches in all segments, written or not (DescribeLogDirs, retention.bytes).
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }
    /// The segments' base offsets, oldest first.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }
    /// Bytes held in memory: the tail cache and the read-ahead.
    /// Bytes of the tail cache alone.
    pub fn tail_bytes(&self) -> usize {
        self.tail_bytes
    }

    /// When the oldest batch the tail cache may give up was appended: never the newest one,
    /// which a reader at the tail needs.
    pub fn oldest_evictable_ms(&self) -> Option<i64> {
        (self.tail.len() > 1).then(|| self.tail[0].appended_ms)
    }

    /// Drops the oldest cached batch (never the newest); returns the bytes freed. Readers of it
    /// go to the disk.
    pub fn evict_oldest_cached(&mut self) -> usize {
        if self.tail.len() <= 1 {
            return 0;
        }
        let evicted = self.tail.pop_front().expect("more than one");
        self.tail_bytes -= evicted.bytes.len();
        evicted.bytes.len()
    }

    pub fn cached_bytes(&self) -> usize {
        self.tail_bytes + self.read_ahead.as_ref().map_or(0, |r| r.data.len())
    }

    /// Moves the log start forward to `offset` (DeleteRecords, or recovery re-applying it):
    /// offsets below it are no longer served, and segments wholly below it are deleted by the
    /// next retention pass. An offset at or below the current start changes nothing. Only
    /// committed offsets may be deleted: `offset` is at most the high watermark.
    pub fn advance_log_start(&mut self, offset: i64) {
        assert!(
            offset <= self.high_watermark,
            "log start {offset} beyond the high watermark {}",
            self.high_watermark
        );
        self.log_start_offset = self.log_start_offset.max(offset);
        while self
            .tail
            .front()
            .is_some_and(|c| c.last_offset < self.log_start_offset)
        {
            let evicted = self.tail.pop_front().expect("not empty");
            self.tail_bytes -= evicted.bytes.len();
        }
        self.check_invariants();
    }

    /// Largest visible timestamp in the log and the offset of the batch holding it
    /// (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.segments
            .iter()
            .filter(|s| s.next_offset > self.log_start_offset && s.visible_max_offset >= 0)
            .map(|s| (s.visible_max_timestamp, s.visible_max_offset))
            // The first of equal maxima, as Kafka keeps the earliest.
            .fold(None, |best: Option<(i64, i64)>, next| match best {
                Some(best) if best.0 >= next.0 => Some(best),
                _ => Some(next),
            })
    }

    fn segment_index(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Bytes of the segment below the high watermark.
    fn visible_end(&self, segment: &Segment) -> u64 {
        Self::end_within(segment, self.visible_position)
    }

    /// Where bytes ending at `end` (segment, bytes) end within `segment`.
    fn end_within(segment: &Segment, end: Position) -> u64 {
        let (hw_segment, hw_bytes) = end;
        match segment.base_offset.cmp(&hw_segment) {
            std::cmp::Ordering::Less => segment.bytes,
            std::cmp::Ordering::Equal => hw_bytes,
            std::cmp::Ordering::Greater => 0,
        }
    }

    /// The first visible batch with a timestamp at or after `timestamp` (and a record at or after
    /// the log start) is found from here: the record itself is found in it with
    /// [`first_record_at_or_after`]. `None` when no visible batch has such a timestamp.
    pub fn timestamp_lookup(&self, timestamp: i64) -> Option<TimestampPlan> {
        let segment = self.segments.iter().find(|s| {
            s.next_offset > self.log_start_offset && s.visible_max_timestamp >= timestamp
        })?;
        let start = segment.lookup_time(timestamp);
        let from_start = segment.lookup(self.log_start_offset);
        let start = if from_start.position > start.position {
            from_start
        } else {
            start
        };
        // Batches before the tail cache's first are either before `start` or wholly below the
        // log start (evicted when it moved).
        let cached_from = start.offset.max(self.log_start_offset);
        if self
            .tail
            .front()
            .is_some_and(|c| c.base_offset <= cached_from)
        {
            return self
                .tail
                .iter()
                .skip_while(|c| c.base_offset < start.offset)
                .take_while(|c| c.last_offset < self.high_watermark)
                .find(|c| c.max_timestamp >= timestamp && c.last_offset >= self.log_start_offset)
                .map(|c| TimestampPlan::Cached(c.bytes.clone()));
        }
        let visible_end = self.visible_end(segment);
        Some(TimestampPlan::Disk(DiskRead {
            segment_base_offset: segment.base_offset,
            position: start.position,
            len: READ_AHEAD_BYTES.min((visible_end - start.position) as usize),
            first_offset: start.offset,
            visible_end,
            want: Want::Timestamp {
                timestamp,
                log_start: self.log_start_offset,
            },
            epochs: segment.epochs.clone(),
            truncations: self.truncations,
        }))
    }

    // ---- appends and writes ----

    /// Appends a batch that `batch::validate` accepted, as the partition's leader in
    /// `leader_epoch`: rolls the segment if the policy says so, assigns the batch's offsets and
    /// epoch (rewriting the header in `bytes`), indexes it, keeps it in the tail cache and
    /// queues it for writing.
    pub fn append_as_leader(
        &mut self,
        mut bytes: BytesMut,
        info: &BatchInfo,
        leader_epoch: i32,
        now_ms: i64,
        log_append_time: bool,
        policy: &SegmentPolicy,
    ) -> Appended {
        debug_assert_eq!(bytes.len(), info.size_bytes);
        // (A log whose last epoch is above the leader's holds damage: the epoch field is
        // outside the CRC. The history keeps only growing epochs, see `Segment::push`.)
        let base_offset = self.log_end_offset;
        batch::assign_offset(&mut bytes, base_offset, leader_epoch);
        if log_append_time {
            batch::stamp_log_append_time(&mut bytes, now_ms);
        }
        let info = BatchInfo {
            base_offset,
            partition_leader_epoch: leader_epoch,
            max_timestamp: if log_append_time {
                now_ms
            } else {
                info.max_timestamp
            },
            ..*info
        };
        self.append_batch(bytes.freeze(), info, now_ms, policy)
    }

    /// Appends a batch a follower fetched from its leader as it is: its offsets and leader
    /// epoch were assigned there. It must start at the log end.
    pub fn append_as_follower(
        &mut self,
        bytes: Bytes,
        info: &BatchInfo,
        now_ms: i64,
        policy: &SegmentPolicy,
    ) -> Appended {
        assert_eq!(
            info.base_offset, self.log_end_offset,
            "a follower appends at its log end"
        );
        self.append_batch(bytes, *info, now_ms, policy)
    }

    fn append_batch(
        &mut self,
        bytes: Bytes,
        info: BatchInfo,
        now_ms: i64,
        policy: &SegmentPolicy,
    ) -> Appended {
        debug_assert_eq!(bytes.len(), info.size_bytes);
        self.roll_if_due(now_ms, info.size_bytes as u64, policy);
        let base_offset = info.base_offset;
        let segment = self.segments.back_mut().expect("never empty");
        if segment.is_empty() {
            segment.started_ms = now_ms;
        }
        segment.push(&info, policy.index_interval_bytes);
        let (segment, end_bytes) = (segment.base_offset, segment.bytes);
        self.producers.record(&info);
        self.log_end_offset = info.last_offset() + 1;
        self.unwritten_bytes += bytes.len();
        self.unwritten
            .push_back((segment, self.log_end_offset, bytes.clone()));
        self.invisible
            .push_back((info.last_offset(), info.max_timestamp, segment, end_bytes));
        self.unflushed_since_ms.get_or_insert(now_ms);
        self.cache(&info, bytes, now_ms);
        self.check_invariants();
        Appended {
            base_offset,
            last_offset: info.last_offset(),
        }
    }

    fn roll_if_due(&mut self, now_ms: i64, incoming: u64, policy: &SegmentPolicy) {
        let active = self.segments.back().expect("never empty");
        if active.is_empty() {
            return;
        }
        let full = active.bytes + incoming > policy.segment_bytes;
        let old = now_ms.saturating_sub(active.started_ms) >= policy.segment_ms;
        if full || old {
            self.roll(now_ms);
        }
    }

    /// Starts a new active segment at the log end.
    fn roll(&mut self, now_ms: i64) {
        let producers = self.producers.clone();
        let active = self.segments.back_mut().expect("never empty");
        active.producers_at_end = Some(producers);
        let base = self.log_end_offset;
        self.segments.push_back(Segment::new(base, now_ms));
        self.unnamed.insert(base);
    }

    // ---- leader epochs ----

    /// Where each leader epoch of the log's batches starts: (epoch, first offset), in order
    /// (Kafka's leader-epoch-checkpoint; kept per segment, see [`crate::segment`]).
    pub fn epoch_history(&self) -> Vec<(i32, i64)> {
        let mut history: Vec<(i32, i64)> = Vec::new();
        for &(epoch, start) in self.segments.iter().flat_map(|s| &s.epochs) {
            if history.last().is_none_or(|&(last, _)| epoch > last) {
                history.push((epoch, start));
            }
        }
        history
    }

    /// The epoch of the log's last batch (`None` for a log that never held one).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.epochs.last())
            .map(|&(epoch, _)| epoch)
    }

    /// Where `epoch`'s batches end, by Kafka's rules (`LeaderEpochFileCache.endOffsetFor`):
    /// the latest epoch ends at `end_offset` (the caller's: Spate answers the high
    /// watermark); an older one where the next epoch begins, as (the largest epoch at or below
    /// the one asked, that end); an epoch above every known one, or -1, is unknown (-1, -1).
    pub fn end_offset_for_epoch(&self, epoch: i32, end_offset: i64) -> (i32, i64) {
        end_offset_for_epoch(&self.epoch_history(), epoch, end_offset)
    }

    /// Whether an idempotent producer's batch is next in its sequence, a retry, or refused.
    pub fn check_sequence(&self, info: &BatchInfo) -> SequenceCheck {
        self.producers.check(info)
    }

    fn cache(&mut self, info: &BatchInfo, bytes: Bytes, appended_ms: i64) {
        self.tail_bytes += bytes.len();
        self.tail.push_back(Cached {
            base_offset: info.base_offset,
            last_offset: info.last_offset(),
            max_timestamp: info.max_timestamp,
            appended_ms,
            bytes,
        });
        // Keep at least the newest batch, so a reader at the tail always hits memory.
        while self.tail_bytes > self.tail_bytes_max && self.tail.len() > 1 {
            let evicted = self.tail.pop_front().expect("tail is not empty");
            self.tail_bytes -= evicted.bytes.len();
        }
    }

    /// Deletes whole segments from the front that retention no longer keeps: those wholly below
    /// the log start, those whose newest record is older than `retention_ms` (-1: no limit), and
    /// those the log can lose while staying at or above `retention_bytes` (-1: no limit). Only
    /// closed, durable segments are deleted; an active segment past `retention_ms` is rolled so
    /// the next pass can delete it, as Kafka does. The log start moves to the first segment
    /// kept. Returns the deleted segments' base offsets, for the shell to remove.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
    ) -> Vec<i64> {
        let expired = |s: &Segment| retention_ms >= 0 && s.max_timestamp < now_ms - retention_ms;
        let mut total = self.size_bytes();
        let mut deleted = Vec::new();
        while self.segments.len() > 1 && !self.truncating() {
            let oldest = self.segments.front().expect("not empty");
            if oldest.next_offset > self.flushed_offset
                || self.seal_in_flight == Some(oldest.base_offset)
            {
                break;
            }
            let below_start = oldest.next_offset <= self.log_start_offset;
            let too_big = retention_bytes >= 0 && total - oldest.bytes >= retention_bytes as u64;
            if !(below_start || expired(oldest) || too_big) {
                break;
            }
            let oldest = self.segments.pop_front().expect("not empty");
            total -= oldest.bytes;
            deleted.push(oldest.base_offset);
            let next = self
                .segments
                .front()
                .expect("the active segment")
                .base_offset;
            self.log_start_offset = self.log_start_offset.max(next);
        }
        if !deleted.is_empty() {
            if self
                .read_ahead
                .as_ref()
                .is_some_and(|r| deleted.contains(&r.segment_base_offset))
            {
                self.read_ahead = None;
            }
            self.advance_log_start(self.log_start_offset);
        }
        let active = self.segments.back().expect("never empty");
        if self.segments.len() == 1
            && !active.is_empty()
            && expired(active)
            && !self.is_dirty()
            && self.write_in_flight.is_none()
        {
            self.roll(now_ms);
        }
        deleted
    }

    fn check_invariants(&self) {
        assert!(self.log_start_offset <= self.high_watermark);
        assert!(self.high_watermark <= self.written_offset);
        assert!(self.flushed_offset <= self.written_offset);
        assert!(self.written_offset <= self.log_end_offset);
        let active = self.segments.back().expect("never empty");
        assert_eq!(active.next_offset, self.log_end_offset);
        assert!(active.submitted_bytes <= active.bytes);
        assert!(active.partial_block.len() < BLOCK_BYTES as usize);
    }
}

mod cleaner;
pub mod compact;
mod read;
mod recovery;
mod truncate;
mod write;

pub use cleaner::*;
pub use read::*;
pub use recovery::*;
pub use truncate::*;

#[cfg(test)]
mod tests;
