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
    let info = batch::validate(batch).ok()?;
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

/// What a read at an offset found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlan {
    /// The offset is below the log start or beyond the log end.
    OutOfRange,
    /// Nothing is visible at or after the offset yet.
    Empty,
    /// The batches, from memory (the tail cache or the read-ahead).
    Cached(Vec<Bytes>),
    /// The batches must be read from a segment file.
    Disk(DiskRead),
}

/// What a disk read looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The batches from the one holding `offset`, up to `max_bytes` (at least one batch).
    Offset { offset: i64, max_bytes: usize },
    /// The first batch with a timestamp at or after `timestamp` and a record at or after
    /// `log_start`.
    Timestamp { timestamp: i64, log_start: i64 },
}

/// A read of a segment file: `len` bytes at `position`, where a batch with base offset
/// `first_offset` starts. The shell performs it; [`DiskRead::complete`] makes sense of the
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRead {
    pub segment_base_offset: i64,
    pub position: u64,
    pub len: usize,
    pub first_offset: i64,
    /// Where the segment's visible (committed) bytes ended when the read was planned.
    pub visible_end: u64,
    pub want: Want,
}

/// Bytes read from a segment after what a fetch took, kept for the next fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAhead {
    pub segment_base_offset: i64,
    pub position: u64,
    pub first_offset: i64,
    pub data: Bytes,
}

/// What a completed disk read gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Whole, checked batches; and what was read after them, if anything.
    Found {
        batches: Bytes,
        rest: Option<ReadAhead>,
    },
    /// The bytes ended before what is wanted: read on.
    More(DiskRead),
    /// The segment's visible bytes hold nothing wanted.
    NotFound,
    /// The bytes are not the batches the log expects there.
    Corrupt(String),
}

impl DiskRead {
    /// Walks the batches in `data` (read at `self.position`), checking that their base offsets
    /// follow on from `first_offset` and that the CRC of every batch returned matches, so a
    /// corrupt batch is never served.
    pub fn complete(&self, data: &Bytes) -> ReadOutcome {
        let mut position = 0usize;
        let mut expected = self.first_offset;
        // The bytes of the batches kept, and the offset after them.
        let mut kept: Option<(usize, usize, i64)> = None;
        let data_end = self.position + data.len() as u64;
        while position < data.len() {
            let rest = &data[position..];
            let Some(size) = batch::peek_size(rest) else {
                break;
            };
            if size < batch::HEADER_BYTES as i64 {
                return ReadOutcome::Corrupt(format!(
                    "batch at byte {} has length {size}",
                    self.position + position as u64
                ));
            }
            let size = size as usize;
            if size > rest.len() {
                break;
            }
            let info = match batch::validate(rest) {
                Ok(info) => info,
                Err(error) => {
                    return ReadOutcome::Corrupt(format!(
                        "at byte {}: {error}",
                        self.position + position as u64
                    ))
                }
            };
            if info.base_offset != expected {
                return ReadOutcome::Corrupt(format!(
                    "batch at byte {} has base offset {}, expected {expected}",
                    self.position + position as u64,
                    info.base_offset
                ));
            }
            expected = info.last_offset() + 1;
            match self.want {
                Want::Offset { offset, max_bytes } => {
                    if info.last_offset() >= offset {
                        match kept {
                            None => kept = Some((position, position + size, expected)),
                            Some((start, end, _)) if end - start + size <= max_bytes => {
                                kept = Some((start, end + size, expected))
                            }
                            Some(_) => break,
                        }
                    }
                }
                Want::Timestamp {
                    timestamp,
                    log_start,
                } => {
                    if info.max_timestamp >= timestamp && info.last_offset() >= log_start {
                        return ReadOutcome::Found {
                            batches: data.slice(position..position + size),
                            rest: None,
                        };
                    }
                }
            }
            position += size;
        }
        if let Some((start, end, next_offset)) = kept {
            let rest = (end < data.len()).then(|| ReadAhead {
                segment_base_offset: self.segment_base_offset,
                position: self.position + end as u64,
                first_offset: next_offset,
                data: data.slice(end..),
            });
            return ReadOutcome::Found {
                batches: data.slice(start..end),
                rest,
            };
        }
        let next_position = self.position + position as u64;
        if next_position >= self.visible_end {
            return ReadOutcome::NotFound;
        }
        if data_end < next_position {
            return ReadOutcome::Corrupt("read returned fewer bytes than asked".into());
        }
        // The batch at `next_position` did not fit: read from it, whole (its length is known
        // once 12 bytes of it are there), or the read-ahead size, whichever is more.
        let need = batch::peek_size(&data[position..]).map_or(0, |s| s.max(0) as usize);
        let len = need
            .max(READ_AHEAD_BYTES)
            .min((self.visible_end - next_position) as usize);
        ReadOutcome::More(DiskRead {
            position: next_position,
            len,
            first_offset: expected,
            ..self.clone()
        })
    }
}

/// Where the batch holding the first record at or after a timestamp is to be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampPlan {
    /// The batch, from the tail cache.
    Cached(Bytes),
    Disk(DiskRead),
}

/// What recovery found in a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes of whole, valid, contiguous batches from the start of the file.
    pub valid_bytes: u64,
    /// Bytes in the file.
    pub file_bytes: u64,
    /// Non-zero bytes after the valid end: a torn or corrupt tail (zero padding is expected).
    pub torn_bytes: u64,
    /// Why the scan stopped before the end of the file, when it was not clean padding.
    pub stop_reason: Option<String>,
    pub batches: usize,
    pub next_offset: i64,
    /// Where the last valid batch starts, if there is one.
    pub last_batch_position: Option<u64>,
}

impl RecoveryReport {
    /// The file must be cut back to `valid_bytes` before new writes go after it.
    pub fn needs_truncate(&self) -> bool {
        self.file_bytes > self.valid_bytes
    }
}

/// A batch larger than this is not one the broker wrote (it is over `socket.request.max.bytes`):
/// a recovery scan takes its length field for damage instead of reading that much.
pub const SCAN_BATCH_BYTES_MAX: usize = 100 * 1024 * 1024;

/// A recovery scan of one segment file in progress (see [`PartitionLog::begin_scan`]).
#[derive(Debug)]
pub struct SegmentScan {
    segment: Segment,
    index_interval_bytes: u64,
    /// Where the valid batches end so far: the next chunk starts here.
    position: u64,
    /// Bytes the batch at `position` needs, when the last chunk cut it.
    needed: usize,
    stopped: bool,
    stop_reason: Option<String>,
    batches: usize,
    last_batch_position: Option<u64>,
    /// The bytes from the block boundary at or below `position` up to it.
    tail_block: Vec<u8>,
}

impl SegmentScan {
    /// The next piece of the file to feed, as (position, at least this many bytes), or `None`
    /// when the scan is over. `file_bytes` is the file's length.
    pub fn wants(&self, file_bytes: u64) -> Option<(u64, usize)> {
        (!self.stopped && self.position < file_bytes).then_some((self.position, self.needed))
    }

    /// Where the valid batches end so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    fn stop(&mut self, reason: String) {
        self.stopped = true;
        self.stop_reason = Some(reason);
    }
}

/// The length of `bytes` up to and including its last non-zero byte.
pub fn last_nonzero_end(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last as u64 + 1)
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
    producers: ProducerStates,
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
            sync_in_flight: None,
            invisible: VecDeque::new(),
            seal_in_flight: None,
            tail: VecDeque::new(),
            tail_bytes: 0,
            tail_bytes_max,
            read_ahead: None,
            producers: ProducerStates::default(),
        }
    }

    // ---- recovery ----

    /// Adds a closed segment loaded from its index file (with the producers' state at its end)
    /// while recovering. It must start where the log ends.
    pub fn recover_sealed(&mut self, segment: Segment, producers: ProducerStates) {
        assert_eq!(
            segment.base_offset, self.log_end_offset,
            "segments are dense"
        );
        self.close_recovered();
        self.unnamed.remove(&segment.base_offset);
        // The tail cache holds batches up to the log end, back to back: what an earlier
        // segment's scan put there is no longer at the end.
        self.tail.clear();
        self.tail_bytes = 0;
        self.log_end_offset = segment.next_offset;
        self.written_position = (segment.base_offset, segment.bytes);
        self.producers = producers;
        self.segments.push_back(segment);
        self.mark_recovered();
    }

    /// Rebuilds a segment from its file's bytes while recovering: scans batches from the start,
    /// validating length, CRC and offset continuity, and stops at the first that fails. What
    /// follows is a torn or corrupt tail, which the shell truncates (see the report). The
    /// segment must start where the log ends; what it keeps counts as flushed once the shell has
    /// synced the truncated file. The whole file at once; start-up reads it in pieces with
    /// [`PartitionLog::begin_scan`] instead.
    pub fn recover_segment(
        &mut self,
        base_offset: i64,
        data: &[u8],
        index_interval_bytes: u64,
    ) -> RecoveryReport {
        let mut scan = self.begin_scan(base_offset, index_interval_bytes);
        self.scan_chunk(&mut scan, data, true);
        let valid = scan.position as usize;
        let torn_bytes = last_nonzero_end(&data[valid..]);
        self.finish_scan(scan, data.len() as u64, torn_bytes)
    }

    /// Starts rebuilding a segment from its file, read in pieces (so start-up memory does not
    /// grow with `segment.bytes`): feed [`PartitionLog::scan_chunk`] what
    /// [`SegmentScan::wants`] asks for, then call [`PartitionLog::finish_scan`].
    pub fn begin_scan(&mut self, base_offset: i64, index_interval_bytes: u64) -> SegmentScan {
        assert_eq!(base_offset, self.log_end_offset, "segments are dense");
        self.close_recovered();
        self.unnamed.remove(&base_offset);
        SegmentScan {
            segment: Segment::new(base_offset, 0),
            index_interval_bytes,
            position: 0,
            needed: 0,
            stopped: false,
            stop_reason: None,
            batches: 0,
            last_batch_position: None,
            tail_block: Vec::new(),
        }
    }

    /// Scans `chunk`, the file's bytes from `scan.position()` on; `eof` when the file ends with
    /// it. Whole valid batches are taken; a batch cut by the chunk's end is asked for again
    /// (whole) unless the file ends there.
    pub fn scan_chunk(&mut self, scan: &mut SegmentScan, chunk: &[u8], eof: bool) {
        let chunk_start = scan.position;
        let mut at = 0usize;
        scan.needed = 0;
        while at < chunk.len() && !scan.stopped {
            let rest = &chunk[at..];
            let position = chunk_start + at as u64;
            if rest.len() >= batch::LOG_OVERHEAD_BYTES
                && rest[..batch::LOG_OVERHEAD_BYTES].iter().all(|&b| b == 0)
            {
                scan.stopped = true; // zero padding after the logical end
                break;
            }
            match batch::validate(rest) {
                Ok(info) if info.base_offset == scan.segment.next_offset => {
                    scan.segment.push(&info, scan.index_interval_bytes);
                    self.producers.record(&info);
                    let bytes = Bytes::copy_from_slice(&rest[..info.size_bytes]);
                    self.cache(&info, bytes, i64::MIN);
                    scan.last_batch_position = Some(position);
                    scan.batches += 1;
                    at += info.size_bytes;
                }
                Ok(info) => {
                    scan.stop(format!(
                        "batch at byte {position} has base offset {}, expected {}",
                        info.base_offset, scan.segment.next_offset
                    ));
                }
                Err(batch::BatchError::Truncated { needed, .. })
                    if !eof && needed <= SCAN_BATCH_BYTES_MAX =>
                {
                    scan.needed = needed;
                    break;
                }
                Err(error) => scan.stop(format!("at byte {position}: {error}")),
            }
        }
        if eof && scan.needed == 0 {
            scan.stopped = true;
        }
        // Keep the bytes of the block the valid end falls in: the next write rewrites it.
        let end = chunk_start + at as u64;
        let block = align_down(end);
        if block >= chunk_start {
            scan.tail_block = chunk[(block - chunk_start) as usize..at].to_vec();
        } else {
            scan.tail_block.extend_from_slice(&chunk[..at]);
        }
        scan.position = end;
    }

    /// Ends a scan: the segment keeps its valid batches. `file_bytes` is the file's length and
    /// `torn_bytes` the non-zero bytes after the valid end (see [`RecoveryReport`]).
    pub fn finish_scan(
        &mut self,
        scan: SegmentScan,
        file_bytes: u64,
        torn_bytes: u64,
    ) -> RecoveryReport {
        let SegmentScan {
            mut segment,
            position: valid_bytes,
            stop_reason,
            batches,
            last_batch_position,
            tail_block,
            ..
        } = scan;
        let base_offset = segment.base_offset;
        segment.submitted_bytes = valid_bytes;
        segment.partial_block = tail_block;
        self.log_end_offset = segment.next_offset;
        self.written_position = (base_offset, valid_bytes);
        self.segments.push_back(segment);
        self.mark_recovered();
        RecoveryReport {
            valid_bytes,
            file_bytes,
            torn_bytes,
            stop_reason: stop_reason.filter(|_| torn_bytes > 0),
            batches,
            next_offset: self.log_end_offset,
            last_batch_position,
        }
    }

    /// Ends recovery: a log whose last segment is sealed (loaded from its index file) starts a
    /// new active segment, since the sealed one's partial last block was not read. `now_ms`
    /// starts the active segment's `segment.ms` clock (record timestamps are the producers', so
    /// they do not decide when a segment is old).
    pub fn finish_recovery(&mut self, now_ms: i64) {
        let last = self.segments.back_mut().expect("never empty");
        if last.sealed {
            let base = self.log_end_offset;
            self.segments.push_back(Segment::new(base, now_ms));
            self.unnamed.insert(base);
        } else {
            last.started_ms = now_ms;
        }
        self.check_invariants();
    }

    /// Before a recovered segment is added: the empty active segment the log was created with
    /// goes, and a scanned segment that is now closed keeps the producers' state at its end,
    /// for its index file (written once the broker runs).
    fn close_recovered(&mut self) {
        if self
            .segments
            .back()
            .is_some_and(|s| s.is_empty() && !s.sealed)
        {
            self.segments.pop_back();
        }
        let producers = self.producers.clone();
        if let Some(last) = self.segments.back_mut().filter(|s| !s.sealed) {
            last.producers_at_end = Some(producers);
        }
    }

    /// Whether a closed segment waits for its index file.
    pub fn wants_seal(&self) -> bool {
        self.seal_in_flight.is_none() && self.next_to_seal().is_some()
    }

    /// The first closed, durable segment without its index file.
    fn next_to_seal(&self) -> Option<&Segment> {
        let active = self.segments.len() - 1;
        self.segments.iter().take(active).find(|s| {
            !s.sealed && s.producers_at_end.is_some() && s.next_offset <= self.flushed_offset
        })
    }

    fn mark_recovered(&mut self) {
        self.written_offset = self.log_end_offset;
        self.flushed_offset = self.log_end_offset;
        self.high_watermark = self.log_end_offset;
        self.flushed_position = self.written_position;
        self.visible_position = self.written_position;
        self.durable_wanted = self.log_end_offset;
        self.unflushed_since_ms = None;
        for segment in &mut self.segments {
            segment.visible_max_timestamp = segment.max_timestamp;
            segment.visible_max_offset = segment.max_timestamp_offset;
        }
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
        let (hw_segment, hw_bytes) = self.visible_position;
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

    /// The next write to hand to the shell, if appended bytes wait and no write is in flight:
    /// the waiting batches of the oldest segment with any, up to [`WRITE_BYTES_MAX`].
    pub fn poll_write(&mut self) -> Option<SegmentWrite> {
        if self.write_in_flight.is_some() {
            return None;
        }
        if let Some(retry) = self.failed_write.take() {
            let write = retry.write.clone();
            self.write_in_flight = Some(retry);
            return Some(write);
        }
        let &(segment_base, _, _) = self.unwritten.front()?;
        let mut taken = 0usize;
        let count = self
            .unwritten
            .iter()
            .take_while(|(s, _, b)| {
                let fits = taken == 0 || taken + b.len() <= WRITE_BYTES_MAX;
                taken += b.len();
                *s == segment_base && fits
            })
            .count();
        let index = self.segment_index(segment_base);
        let segment = &mut self.segments[index];
        assert_eq!(
            segment.base_offset, segment_base,
            "a segment with unwritten data"
        );
        let position = align_down(segment.submitted_bytes);
        let pending: usize = self
            .unwritten
            .iter()
            .take(count)
            .map(|(_, _, b)| b.len())
            .sum();
        let logical_len = segment.partial_block.len() + pending;
        let batch_bytes = pending;
        let mut data = Vec::with_capacity(align_up(logical_len as u64) as usize);
        data.extend_from_slice(&segment.partial_block);
        let mut end_offset = self.written_offset;
        for (_, end, bytes) in self.unwritten.drain(..count) {
            data.extend_from_slice(&bytes);
            end_offset = end;
        }
        let logical_end = position + logical_len as u64;
        assert!(
            logical_end <= segment.bytes,
            "every appended byte is submitted once"
        );
        let partial_start = (align_down(logical_end) - position) as usize;
        segment.partial_block = data[partial_start..].to_vec();
        data.resize(align_up(logical_len as u64) as usize, 0);
        segment.submitted_bytes = logical_end;
        let write = SegmentWrite {
            segment_base_offset: segment_base,
            position,
            data: Bytes::from(data),
        };
        self.write_in_flight = Some(PendingWrite {
            end_offset,
            segment: segment_base,
            logical_end,
            batch_bytes,
            write: write.clone(),
        });
        Some(write)
    }

    /// The write handed out last is on disk (not yet durable).
    pub fn handle_write_done(&mut self) {
        let done = self.write_in_flight.take().expect("a write was in flight");
        assert!(done.end_offset >= self.written_offset);
        self.written_offset = done.end_offset;
        self.written_position = (done.segment, done.logical_end);
        self.unwritten_bytes -= done.batch_bytes;
        self.unsynced.insert(done.segment);
    }

    /// Appended bytes not yet written to their segment file (queued, or in a write).
    pub fn unwritten_bytes(&self) -> usize {
        self.unwritten_bytes
    }

    /// A waiter needs every record below `end_offset` fsynced: the next sync round takes this
    /// partition whatever its flush policy says.
    pub fn want_durable(&mut self, end_offset: i64) {
        self.durable_wanted = self.durable_wanted.max(end_offset);
    }

    /// Whether the flush policy (or a waiter, or a rolled segment) wants a sync now.
    fn sync_due(&self, now_ms: i64, policy: &FlushPolicy) -> bool {
        let rolled_unflushed = self
            .segments
            .iter()
            .rev()
            .nth(1)
            .is_some_and(|closed| closed.next_offset > self.flushed_offset);
        policy.is_immediate()
            || self.durable_wanted > self.flushed_offset
            || self.written_offset - self.flushed_offset >= policy.messages
            || self
                .unflushed_since_ms
                .is_some_and(|since| now_ms.saturating_sub(since) >= policy.ms)
            || rolled_unflushed
    }

    /// When `flush.ms` makes a sync due, if a sync could start then (written records wait and
    /// no sync is in flight); `None` under the immediate policy, which syncs without waiting.
    pub fn sync_deadline(&self, policy: &FlushPolicy) -> Option<i64> {
        if policy.is_immediate()
            || self.sync_in_flight.is_some()
            || self.written_offset <= self.flushed_offset
        {
            return None;
        }
        self.unflushed_since_ms
            .map(|since| since.saturating_add(policy.ms))
    }

    /// The write handed out last failed; the next `poll_write` hands it out again. Later
    /// appends wait behind it, so the file never has a hole.
    pub fn handle_write_failed(&mut self) {
        let failed = self.write_in_flight.take().expect("a write was in flight");
        self.failed_write = Some(failed);
    }

    /// The segments to fsync now, if something is written that is not flushed, no sync is in
    /// flight, and the flush policy wants it (or `force`, at a clean shutdown). The sync, once
    /// every one of them is done, covers every write completed before it was asked for.
    pub fn poll_sync(
        &mut self,
        now_ms: i64,
        policy: &FlushPolicy,
        force: bool,
    ) -> Option<SyncRound> {
        if self.sync_in_flight.is_some()
            || self.written_offset <= self.flushed_offset
            || !(force || self.sync_due(now_ms, policy))
        {
            return None;
        }
        self.sync_in_flight = Some((self.written_offset, self.written_position, now_ms));
        let segments: Vec<i64> = std::mem::take(&mut self.unsynced).into_iter().collect();
        self.naming = segments
            .iter()
            .copied()
            .filter(|base| self.unnamed.contains(base))
            .collect();
        Some(SyncRound {
            name_files: !self.naming.is_empty(),
            segments,
        })
    }

    /// The sync asked for last is done.
    pub fn handle_sync_done(&mut self) {
        let (target, position, started_ms) =
            self.sync_in_flight.take().expect("a sync was in flight");
        for base in std::mem::take(&mut self.naming) {
            self.unnamed.remove(&base);
        }
        assert!(target >= self.flushed_offset);
        self.flushed_offset = target;
        self.flushed_position = position;
        // What is still unflushed was appended after the sync started (at the earliest).
        self.unflushed_since_ms = (self.flushed_offset < self.log_end_offset).then_some(started_ms);
        self.check_invariants();
    }

    /// The partition's replication decided the high watermark is `offset` (a batch end this
    /// log has written): the records below it become visible. Returns whether it moved; it
    /// never goes back.
    pub fn set_high_watermark(&mut self, offset: i64) -> bool {
        assert!(
            offset <= self.written_offset,
            "high watermark {offset} beyond the written offset {}",
            self.written_offset
        );
        if offset <= self.high_watermark {
            return false;
        }
        let mut visible_end = self.high_watermark;
        while let Some(&(last, timestamp, segment, end_bytes)) = self.invisible.front() {
            if last >= offset {
                break;
            }
            self.invisible.pop_front();
            visible_end = last + 1;
            self.visible_position = (segment, end_bytes);
            let index = self.segment_index(segment);
            let segment = &mut self.segments[index];
            if timestamp > segment.visible_max_timestamp || segment.visible_max_offset < 0 {
                segment.visible_max_timestamp = timestamp.max(segment.visible_max_timestamp);
                segment.visible_max_offset = last;
            }
        }
        assert_eq!(visible_end, offset, "the high watermark is a batch end");
        self.high_watermark = offset;
        self.check_invariants();
        true
    }

    /// Whether writes or syncs are waiting or in flight.
    pub fn is_dirty(&self) -> bool {
        self.flushed_offset < self.log_end_offset
    }

    /// The index file to write for a closed segment that is now durable, if there is one and no
    /// other is being written: (segment base, file bytes).
    pub fn poll_seal(&mut self) -> Option<(i64, Vec<u8>)> {
        if self.seal_in_flight.is_some() {
            return None;
        }
        let segment = self.next_to_seal()?;
        let producers = segment.producers_at_end.as_ref().expect("checked above");
        let (base, data) = (segment.base_offset, segment.encode_index(producers));
        self.seal_in_flight = Some(base);
        Some((base, data))
    }

    /// The index file from `poll_seal` is durable, or could not be written (then the segment
    /// stays unsealed, and a restart scans it).
    pub fn handle_seal_done(&mut self, ok: bool) {
        let base = self.seal_in_flight.take().expect("a seal was in flight");
        let index = self.segment_index(base);
        if let Some(segment) = self
            .segments
            .get_mut(index)
            .filter(|s| s.base_offset == base)
        {
            segment.producers_at_end = None;
            segment.sealed = ok;
        }
    }

    /// The active segment's index file for a clean shutdown, once everything is flushed: the
    /// next start loads it instead of scanning. `None` while data is unflushed or when the
    /// active segment is empty.
    pub fn checkpoint_index(&self) -> Option<(i64, Vec<u8>)> {
        let active = self.segments.back().expect("never empty");
        if self.is_dirty() || active.is_empty() || self.seal_in_flight.is_some() {
            return None;
        }
        Some((active.base_offset, active.encode_index(&self.producers)))
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
        while self.segments.len() > 1 {
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

    // ---- reads ----

    /// Plans a read of visible batches from `offset`, up to `max_bytes` (but always at least the
    /// first batch, as Kafka does, so a batch larger than the limit never stalls a consumer):
    /// from the tail cache, from the read-ahead of the fetch before, or from the segment file.
    pub fn read(&mut self, offset: i64, max_bytes: usize) -> ReadPlan {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return ReadPlan::OutOfRange;
        }
        if offset >= self.high_watermark {
            return ReadPlan::Empty;
        }
        if self.tail.front().is_some_and(|c| c.base_offset <= offset) {
            let first = self.tail.partition_point(|c| c.last_offset < offset);
            let mut total = 0usize;
            let mut batches = Vec::new();
            for cached in self.tail.iter().skip(first) {
                if cached.last_offset >= self.high_watermark
                    || (!batches.is_empty() && total + cached.bytes.len() > max_bytes)
                {
                    break;
                }
                total += cached.bytes.len();
                batches.push(cached.bytes.clone());
            }
            return if batches.is_empty() {
                ReadPlan::Empty
            } else {
                ReadPlan::Cached(batches)
            };
        }
        let segment = &self.segments[self.segment_index(offset)];
        let visible_end = self.visible_end(segment);
        let want = Want::Offset { offset, max_bytes };
        if let Some(ahead) = self.read_ahead.take() {
            if ahead.segment_base_offset == segment.base_offset && ahead.first_offset <= offset {
                let plan = DiskRead {
                    segment_base_offset: segment.base_offset,
                    position: ahead.position,
                    len: ahead.data.len(),
                    first_offset: ahead.first_offset,
                    visible_end,
                    want,
                };
                match plan.complete(&ahead.data) {
                    ReadOutcome::Found { batches, rest } => {
                        self.read_ahead = rest;
                        return ReadPlan::Cached(vec![batches]);
                    }
                    ReadOutcome::More(read) => return ReadPlan::Disk(read),
                    ReadOutcome::NotFound | ReadOutcome::Corrupt(_) => {}
                }
            }
        }
        let start = segment.lookup(offset);
        if start.position >= visible_end {
            return ReadPlan::Empty;
        }
        let len = max_bytes
            .max(READ_AHEAD_BYTES)
            .min((visible_end - start.position) as usize);
        ReadPlan::Disk(DiskRead {
            segment_base_offset: segment.base_offset,
            position: start.position,
            len,
            first_offset: start.offset,
            visible_end,
            want,
        })
    }

    /// Keeps what a disk read brought beyond what its fetch took, for the next fetch (at most
    /// [`READ_AHEAD_BYTES`]; a batch cut short is read again when wanted).
    pub fn keep_read_ahead(&mut self, mut ahead: ReadAhead) {
        if ahead.first_offset < self.log_start_offset
            || !self
                .segments
                .iter()
                .any(|s| s.base_offset == ahead.segment_base_offset)
        {
            return;
        }
        ahead.data.truncate(READ_AHEAD_BYTES);
        self.read_ahead = Some(ahead);
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

/// Validates batches read back from disk: each CRC, and the base offsets, which the CRC does
/// not cover, against the offsets expected (dense from `base_offset`).
pub fn verify_read(data: &[u8], base_offset: i64) -> Result<usize, String> {
    let batches = batch::validate_all(data).map_err(|e| e.to_string())?;
    let mut expected = base_offset;
    for info in &batches {
        if info.base_offset != expected {
            return Err(format!(
                "batch has base offset {}, expected {expected}",
                info.base_offset
            ));
        }
        expected = info.last_offset() + 1;
    }
    Ok(batches.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::make_batch;
    use std::collections::BTreeMap;

    const POLICY: SegmentPolicy = SegmentPolicy {
        segment_bytes: 1 << 30,
        segment_ms: 1 << 40,
        index_interval_bytes: 4096,
    };

    fn append_at(
        log: &mut PartitionLog,
        values: &[&[u8]],
        now_ms: i64,
        policy: &SegmentPolicy,
    ) -> Appended {
        let bytes = make_batch(values, 1_000);
        let info = batch::validate(&bytes).unwrap();
        log.append_as_leader(BytesMut::from(&bytes[..]), &info, 0, now_ms, false, policy)
    }

    fn append_values(log: &mut PartitionLog, values: &[&[u8]]) -> Appended {
        append_at(log, values, 0, &POLICY)
    }

    /// The segment files of a log, by base offset.
    type Files = BTreeMap<i64, Vec<u8>>;

    /// Performs every write, sync and seal the log asks for on in-memory "files".
    fn flush(log: &mut PartitionLog, files: &mut Files) -> Vec<(i64, Vec<u8>)> {
        let mut seals = Vec::new();
        loop {
            let mut progress = false;
            while let Some(write) = log.poll_write() {
                assert_eq!(write.position % BLOCK_BYTES, 0);
                assert_eq!(write.data.len() as u64 % BLOCK_BYTES, 0);
                let file = files.entry(write.segment_base_offset).or_default();
                let end = write.position as usize + write.data.len();
                if file.len() < end {
                    file.resize(end, 0);
                }
                file[write.position as usize..end].copy_from_slice(&write.data);
                log.handle_write_done();
                progress = true;
            }
            if log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_some() {
                log.handle_sync_done();
                log.set_high_watermark(log.flushed_offset());
                progress = true;
            }
            if let Some(seal) = log.poll_seal() {
                seals.push(seal);
                log.handle_seal_done(true);
                progress = true;
            }
            if !progress {
                return seals;
            }
        }
    }

    /// Performs a disk read plan against the files until it gives an answer.
    fn perform_read(files: &Files, mut read: DiskRead) -> ReadOutcome {
        loop {
            let file = &files[&read.segment_base_offset];
            let end = (read.position as usize + read.len).min(file.len());
            let data = Bytes::copy_from_slice(&file[read.position as usize..end]);
            match read.complete(&data) {
                ReadOutcome::More(next) => {
                    assert!(
                        next.position > read.position || next.len > read.len,
                        "progress"
                    );
                    read = next;
                }
                other => return other,
            }
        }
    }

    fn offsets_in(batches: &[u8]) -> Vec<i64> {
        batch::validate_all(batches)
            .unwrap()
            .iter()
            .flat_map(|b| b.base_offset..=b.last_offset())
            .collect()
    }

    #[test]
    fn append_assigns_dense_offsets() {
        let mut log = PartitionLog::new(1 << 20);
        assert_eq!(
            append_values(&mut log, &[b"a", b"b", b"c"]),
            Appended {
                base_offset: 0,
                last_offset: 2
            }
        );
        assert_eq!(
            append_values(&mut log, &[b"d"]),
            Appended {
                base_offset: 3,
                last_offset: 3
            }
        );
        assert_eq!(log.log_end_offset(), 4);
    }

    #[test]
    fn records_are_invisible_until_flushed() {
        let mut log = PartitionLog::new(1 << 20);
        append_values(&mut log, &[b"a"]);
        assert_eq!(log.high_watermark(), 0);
        assert_eq!(log.read(0, 1024), ReadPlan::Empty);
        let write = log.poll_write().unwrap();
        assert!(log.poll_write().is_none(), "one write in flight at a time");
        assert!(
            log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_none(),
            "nothing written yet"
        );
        log.handle_write_done();
        assert_eq!(
            log.poll_sync(0, &FlushPolicy::IMMEDIATE, false),
            Some(SyncRound {
                segments: vec![0],
                name_files: true
            })
        );
        assert!(
            log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_none(),
            "one sync in flight at a time"
        );
        log.handle_sync_done();
        assert_eq!(log.high_watermark(), 0, "the replica decides when it moves");
        assert!(log.set_high_watermark(log.flushed_offset()));
        assert_eq!(log.high_watermark(), 1);
        assert_eq!(write.position, 0);
        match log.read(0, 1024) {
            ReadPlan::Cached(batches) => assert_eq!(batches.len(), 1),
            other => panic!("expected a cached read, got {other:?}"),
        }
    }

    /// A segment file this log created needs its directory synced with the first sync that
    /// covers it, and no other; a file found at recovery never does.
    #[test]
    fn a_new_segment_file_is_named_durably_by_its_first_sync() {
        fn round(log: &mut PartitionLog, values: &[&[u8]], policy: &SegmentPolicy) -> SyncRound {
            for value in values {
                append_at(log, &[value], 0, policy);
            }
            while log.poll_write().is_some() {
                log.handle_write_done();
            }
            let round = log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).unwrap();
            log.handle_sync_done();
            round
        }
        let named = |segments: Vec<i64>, name_files| SyncRound {
            segments,
            name_files,
        };
        let tiny = SegmentPolicy {
            segment_bytes: 1,
            ..POLICY
        };
        let mut log = PartitionLog::new(1 << 20);
        assert_eq!(round(&mut log, &[b"a"], &POLICY), named(vec![0], true));
        assert_eq!(round(&mut log, &[b"b"], &POLICY), named(vec![0], false));
        // Each batch now fills a segment: two new files, and one sync names both.
        assert_eq!(
            round(&mut log, &[b"c", b"d"], &tiny),
            named(vec![2, 3], true)
        );
        // A recovered segment's file exists, named: appending to it needs no directory sync.
        let mut recovered = PartitionLog::empty_at(0, 1 << 20);
        recovered.recover_segment(0, &make_batch(&[b"x"], 1_000), 4096);
        recovered.finish_recovery(0);
        assert_eq!(
            round(&mut recovered, &[b"y"], &POLICY),
            named(vec![0], false)
        );
    }

    #[test]
    fn a_sync_covers_only_what_was_written_before_it() {
        let mut log = PartitionLog::new(1 << 20);
        append_values(&mut log, &[b"a"]);
        log.poll_write().unwrap();
        log.handle_write_done();
        assert!(log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_some());
        append_values(&mut log, &[b"b"]);
        log.poll_write().unwrap();
        log.handle_write_done();
        log.handle_sync_done();
        assert_eq!(
            log.flushed_offset(),
            1,
            "the second batch was written after the sync began"
        );
        assert!(log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_some());
        log.handle_sync_done();
        assert_eq!(log.flushed_offset(), 2);
    }

    #[test]
    fn writes_rewrite_the_partial_block_and_the_file_recovers_exactly() {
        let mut log = PartitionLog::new(1 << 20);
        let mut files = Files::new();
        for i in 0..200u32 {
            let value = vec![b'x'; (i as usize * 37) % 3000];
            append_values(&mut log, &[&value, b"tail"]);
            flush(&mut log, &mut files);
        }
        let mut recovered = PartitionLog::empty_at(0, 1 << 20);
        let report = recovered.recover_segment(0, &files[&0], 4096);
        recovered.finish_recovery(0);
        assert_eq!(report.next_offset, 400);
        assert_eq!(report.batches, 200);
        assert_eq!(report.torn_bytes, 0);
        assert_eq!(recovered.log_end_offset(), 400);
        assert_eq!(recovered.high_watermark(), 400);
        assert_eq!(recovered.read(10, 1), log.read(10, 1));
    }

    #[test]
    fn recovery_truncates_a_torn_tail_and_appends_continue() {
        let mut log = PartitionLog::new(1 << 20);
        let mut files = Files::new();
        append_values(&mut log, &[b"one"]);
        append_values(&mut log, &[b"two", b"three"]);
        flush(&mut log, &mut files);
        let file = files.get_mut(&0).unwrap();
        let first_len = make_batch(&[b"one"], 1_000).len();
        let second_len = make_batch(&[b"two", b"three"], 1_000).len();
        let good_end = first_len + second_len;
        let torn_at = good_end - second_len / 2;
        file[torn_at..].fill(0);
        file[torn_at] = 0xAB;
        let mut recovered = PartitionLog::empty_at(0, 1 << 20);
        let report = recovered.recover_segment(0, file, 4096);
        recovered.finish_recovery(0);
        assert_eq!(report.next_offset, 1);
        assert_eq!(report.valid_bytes as usize, good_end - second_len);
        assert!(report.torn_bytes > 0);
        assert!(report.stop_reason.is_some());
        assert!(report.needs_truncate());
        file.truncate(report.valid_bytes as usize);
        assert_eq!(append_values(&mut recovered, &[b"again"]).base_offset, 1);
        flush(&mut recovered, &mut files);
        let mut again = PartitionLog::empty_at(0, 1 << 20);
        let report = again.recover_segment(0, &files[&0], 4096);
        assert_eq!(report.torn_bytes, 0);
        assert_eq!(again.log_end_offset(), 2);
    }

    #[test]
    fn reads_respect_max_bytes_but_return_at_least_one_batch() {
        let mut log = PartitionLog::new(1 << 20);
        let mut files = Files::new();
        for _ in 0..5 {
            append_values(&mut log, &[&[7u8; 100]]);
        }
        flush(&mut log, &mut files);
        let one = make_batch(&[&[7u8; 100]], 1_000).len();
        match log.read(0, 1) {
            ReadPlan::Cached(b) => assert_eq!(b.len(), 1),
            other => panic!("{other:?}"),
        }
        match log.read(2, one * 2) {
            ReadPlan::Cached(b) => assert_eq!(b.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(log.read(5, 100), ReadPlan::Empty);
        assert_eq!(log.read(6, 100), ReadPlan::OutOfRange);
        assert_eq!(log.read(-1, 100), ReadPlan::OutOfRange);
    }

    #[test]
    fn a_moved_log_start_hides_older_offsets_from_reads_and_timestamp_lookups() {
        let mut log = PartitionLog::new(1 << 20);
        let mut files = Files::new();
        for _ in 0..3 {
            append_values(&mut log, &[b"a", b"b"]);
        }
        flush(&mut log, &mut files);
        log.advance_log_start(3);
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(log.read(2, 1 << 20), ReadPlan::OutOfRange);
        match log.read(3, 1 << 20) {
            // The batch holding offset 3 starts at 2, as in Kafka: the consumer skips offset 2.
            ReadPlan::Cached(batches) => assert_eq!(batches.len(), 2),
            other => panic!("{other:?}"),
        }
        let Some(TimestampPlan::Cached(batch)) = log.timestamp_lookup(0) else {
            panic!("the batch is cached")
        };
        assert_eq!(
            first_record_at_or_after(&batch, 0, 3),
            Some((3, 1_001)),
            "offset 2 is below the log start"
        );
        log.advance_log_start(1);
        assert_eq!(log.log_start_offset(), 3, "the log start never moves back");
    }

    #[test]
    #[should_panic(expected = "beyond the high watermark")]
    fn the_log_start_cannot_pass_the_high_watermark() {
        let mut log = PartitionLog::new(1 << 20);
        append_values(&mut log, &[b"a"]);
        log.advance_log_start(1);
    }

    /// A log of `batches` batches of ~`value_bytes` each, flushed, with a 1-byte tail cache so
    /// that reads below the newest batch go to "disk".
    fn disk_log(
        batches: usize,
        value_bytes: usize,
        policy: &SegmentPolicy,
    ) -> (PartitionLog, Files) {
        let mut log = PartitionLog::new(1);
        let mut files = Files::new();
        for i in 0..batches {
            let value = vec![b'a' + (i % 26) as u8; value_bytes];
            append_at(&mut log, &[&value, b"x"], i as i64, policy);
            flush(&mut log, &mut files);
        }
        (log, files)
    }

    #[test]
    fn disk_reads_start_at_the_sparse_index_and_return_the_batch_holding_the_offset() {
        let policy = SegmentPolicy {
            index_interval_bytes: 1000,
            ..POLICY
        };
        let (mut log, files) = disk_log(100, 300, &policy);
        for offset in [0, 1, 57, 101, 150, 197] {
            let ReadPlan::Disk(read) = log.read(offset, 1) else {
                panic!("offset {offset} is below the tail cache")
            };
            assert!(read.first_offset <= offset);
            let ReadOutcome::Found { batches, rest } = perform_read(&files, read) else {
                panic!("offset {offset} is there")
            };
            let got = offsets_in(&batches);
            assert_eq!(got, vec![offset - offset % 2, offset - offset % 2 + 1]);
            assert!(rest.is_some(), "the read-ahead brought more");
        }
        // Larger limits take more batches, all checked and dense.
        let ReadPlan::Disk(read) = log.read(20, 5_000) else {
            panic!()
        };
        let ReadOutcome::Found { batches, rest } = perform_read(&files, read) else {
            panic!()
        };
        let got = offsets_in(&batches);
        assert_eq!(got[0], 20);
        assert!(got.len() > 10 && batches.len() <= 5_000);
        // The next fetch continues from the read-ahead, in memory.
        let rest = rest.unwrap();
        let next = rest.first_offset;
        assert_eq!(next, got.last().unwrap() + 1);
        log.keep_read_ahead(rest);
        let ReadPlan::Cached(from_memory) = log.read(next, 5_000) else {
            panic!("served from the read-ahead")
        };
        assert_eq!(offsets_in(&from_memory[0])[0], next);
    }

    #[test]
    fn a_corrupt_batch_on_disk_is_never_served() {
        let (mut log, mut files) = disk_log(10, 100, &POLICY);
        let ReadPlan::Disk(read) = log.read(4, 1) else {
            panic!()
        };
        let file = files.get_mut(&0).unwrap();
        let batch = make_batch(&[&[b'a'; 100], b"x"], 1_000).len();
        file[2 * batch + 70] ^= 0xFF;
        assert!(matches!(
            perform_read(&files, read),
            ReadOutcome::Corrupt(error) if error.contains("CRC") || error.contains("crc")
        ));
    }

    #[test]
    fn segments_roll_by_size_and_age_and_each_closed_one_is_sealed() {
        let policy = SegmentPolicy {
            segment_bytes: 2_000,
            segment_ms: 1_000,
            index_interval_bytes: 500,
        };
        let mut log = PartitionLog::new(1 << 20);
        let mut files = Files::new();
        let mut seals = Vec::new();
        for i in 0..20 {
            append_at(&mut log, &[&[b'v'; 400]], 10 + i, &policy);
            seals.extend(flush(&mut log, &mut files));
        }
        let bases = log.segment_bases();
        assert!(bases.len() >= 4, "~4 batches a segment: {bases:?}");
        assert_eq!(files.keys().copied().collect::<Vec<_>>(), bases);
        assert!(files
            .values()
            .all(|f| f.len() <= 2_000 + BLOCK_BYTES as usize));
        assert_eq!(
            seals.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
            bases[..bases.len() - 1],
            "every closed segment got its index file, in order"
        );
        // Age: the active segment is older than segment.ms at the next append.
        let segments = log.segment_bases().len();
        append_at(&mut log, &[b"late"], 10_000, &policy);
        assert_eq!(log.segment_bases().len(), segments + 1);
        // Index files load back into the same segments.
        for (base, data) in &seals {
            let (segment, _) = Segment::decode_index(*base, data).unwrap();
            assert_eq!(segment.base_offset, *base);
            let next = bases.iter().find(|b| *b > base).unwrap();
            assert_eq!(segment.next_offset, *next);
        }
    }

    #[test]
    fn reads_and_timestamp_lookups_cross_segments() {
        let policy = SegmentPolicy {
            segment_bytes: 3_000,
            segment_ms: 1 << 40,
            index_interval_bytes: 700,
        };
        let (mut log, files) = disk_log(60, 300, &policy);
        assert!(log.segment_bases().len() > 5);
        for offset in (0..118).step_by(7) {
            let ReadPlan::Disk(read) = log.read(offset, 1) else {
                panic!("offset {offset} on disk")
            };
            let ReadOutcome::Found { batches, .. } = perform_read(&files, read) else {
                panic!("offset {offset} found")
            };
            assert_eq!(offsets_in(&batches)[0], offset - offset % 2);
        }
        // Batch i has timestamps 1,000 and 1,001 (make_batch), appended at now = i: look up by
        // timestamp finds the first batch, whatever the segment.
        let Some(TimestampPlan::Disk(read)) = log.timestamp_lookup(1_001) else {
            panic!("on disk")
        };
        let ReadOutcome::Found { batches, .. } = perform_read(&files, read) else {
            panic!()
        };
        assert_eq!(
            first_record_at_or_after(&batches, 1_001, 0),
            Some((1, 1_001))
        );
        assert!(log.timestamp_lookup(1_002).is_none());
        assert_eq!(log.max_timestamp(), Some((1_001, 1)));
    }

    #[test]
    fn retention_deletes_whole_closed_segments_by_time_size_and_log_start() {
        let policy = SegmentPolicy {
            segment_bytes: 2_000,
            segment_ms: 1 << 40,
            index_interval_bytes: 4096,
        };
        let mut log = PartitionLog::new(1 << 20);
        let mut files = Files::new();
        // Timestamps are fixed at 1,000-1,001 by make_batch; retention compares them to now.
        for i in 0..30 {
            append_at(&mut log, &[&[b'v'; 400]], i, &policy);
            flush(&mut log, &mut files);
        }
        let bases = log.segment_bases();
        let total = log.size_bytes();
        // Nothing is old enough, and no size limit: nothing goes.
        assert!(log.apply_retention(2_000, 10_000, -1).is_empty());
        // By size: keep at least 5,000 bytes, deleting whole segments from the front.
        let deleted = log.apply_retention(2_000, -1, 5_000);
        assert!(!deleted.is_empty());
        assert_eq!(deleted, bases[..deleted.len()]);
        assert!(log.size_bytes() >= 5_000);
        assert!(
            log.size_bytes() < 5_000 + 2_000 + 500,
            "{} of {total}",
            log.size_bytes()
        );
        assert_eq!(log.log_start_offset(), log.segment_bases()[0]);
        assert_eq!(log.read(0, 100), ReadPlan::OutOfRange);
        // By log start: DeleteRecords into the third segment left deletes the two before it.
        let third = log.segment_bases()[2];
        log.advance_log_start(third + 1);
        assert_eq!(log.apply_retention(2_000, -1, -1).len(), 2);
        assert_eq!(
            log.log_start_offset(),
            third + 1,
            "the start stays where it was moved"
        );
        // By time: everything is older than 500 ms at now = 2,000: every closed segment goes,
        // the active one is rolled, and goes at the next pass.
        let before = log.log_end_offset();
        log.apply_retention(2_000, 500, -1);
        flush(&mut log, &mut files);
        log.apply_retention(2_000, 500, -1);
        assert_eq!(log.segment_bases(), vec![before]);
        assert_eq!(log.log_start_offset(), before);
        assert_eq!(log.log_end_offset(), before, "offsets never go back");
        assert_eq!(append_values(&mut log, &[b"new"]).base_offset, before);
    }

    #[test]
    fn segments_with_writes_or_syncs_pending_are_not_deleted() {
        let policy = SegmentPolicy {
            segment_bytes: 1_000,
            ..POLICY
        };
        let mut log = PartitionLog::new(1 << 20);
        let mut files = Files::new();
        for i in 0..4 {
            append_at(&mut log, &[&[b'v'; 600]], i, &policy);
        }
        assert!(
            log.apply_retention(1 << 40, 0, 0).is_empty(),
            "nothing is flushed"
        );
        flush(&mut log, &mut files);
        assert_eq!(log.apply_retention(1 << 40, 0, 0).len(), 3);
    }

    #[test]
    fn recovery_from_index_files_then_the_last_segment_scanned() {
        let policy = SegmentPolicy {
            segment_bytes: 2_500,
            segment_ms: 1 << 40,
            index_interval_bytes: 600,
        };
        let (mut log, mut files) = disk_log(40, 300, &policy);
        let seals: BTreeMap<i64, Vec<u8>> = log
            .segments
            .iter()
            .filter(|s| s.sealed)
            .map(|s| (s.base_offset, s.encode_index(&ProducerStates::default())))
            .collect();
        let bases = log.segment_bases();
        let last = *bases.last().unwrap();
        let mut recovered = PartitionLog::empty_at(bases[0], 1);
        for base in &bases[..bases.len() - 1] {
            let (segment, producers) = Segment::decode_index(*base, &seals[base]).unwrap();
            recovered.recover_sealed(segment, producers);
        }
        let report = recovered.recover_segment(last, &files[&last], 600);
        recovered.finish_recovery(99);
        assert_eq!(report.torn_bytes, 0);
        assert_eq!(recovered.log_end_offset(), 80);
        assert_eq!(recovered.segment_bases(), bases);
        for offset in [0, 33, 79] {
            assert_eq!(recovered.read(offset, 1), log.read(offset, 1));
        }
        // Appends continue in the last segment, after its partial block.
        append_at(&mut recovered, &[b"after"], 100, &policy);
        flush(&mut recovered, &mut files);
        let mut again = PartitionLog::empty_at(last, 1);
        let report = again.recover_segment(last, &files[&last], 600);
        assert_eq!(report.next_offset, 81);
    }

    #[test]
    fn a_checkpointed_active_segment_loads_without_a_scan_and_a_new_one_starts() {
        let (log, _files) = disk_log(5, 100, &POLICY);
        let (base, index) = log.checkpoint_index().expect("flushed");
        let (segment, producers) = Segment::decode_index(base, &index).unwrap();
        let mut recovered = PartitionLog::empty_at(0, 1);
        recovered.recover_sealed(segment, producers);
        recovered.finish_recovery(7);
        assert_eq!(recovered.segment_bases(), vec![0, 10]);
        assert_eq!(recovered.log_end_offset(), 10);
        assert_eq!(recovered.high_watermark(), 10);
        assert_eq!(recovered.max_timestamp(), log.max_timestamp());
    }
    /// Issue 14: batches carry their leader epoch; the epoch history spans segments, is kept
    /// in their index files, and comes back after a restart from those and from the scan.
    #[test]
    fn the_epoch_history_survives_sealing_and_recovery() {
        let policy = SegmentPolicy {
            segment_bytes: 600,
            segment_ms: 1 << 40,
            index_interval_bytes: 100,
        };
        let mut log = PartitionLog::new(1 << 20);
        let mut files = Files::new();
        // Epoch 0 for offsets 0..5, 3 for 5..12, 7 from 12 on, over several segments.
        for (epoch, count) in [(0, 5), (3, 7), (7, 6)] {
            for _ in 0..count {
                let bytes = make_batch(&[&[b'v'; 100]], 1_000);
                let info = batch::validate(&bytes).unwrap();
                log.append_as_leader(BytesMut::from(&bytes[..]), &info, epoch, 0, false, &policy);
            }
        }
        let seals = flush(&mut log, &mut files);
        assert!(log.segment_bases().len() > 3, "several segments");
        let history = vec![(0, 0), (3, 5), (7, 12)];
        assert_eq!(log.epoch_history(), history);
        assert_eq!(log.latest_epoch(), Some(7));
        // Kafka's answers, end offset 18 standing for the caller's.
        let cases = [
            (0, (0, 5)),
            (1, (0, 5)),
            (3, (3, 12)),
            (5, (3, 12)),
            (7, (7, 18)),
            (8, (-1, -1)),
            (-1, (-1, -1)),
        ];
        for (epoch, expected) in cases {
            assert_eq!(
                log.end_offset_for_epoch(epoch, 18),
                expected,
                "epoch {epoch}"
            );
        }
        // Back from the sealed segments' index files and a scan of the rest.
        let seals: BTreeMap<i64, Vec<u8>> = seals.into_iter().collect();
        let bases = log.segment_bases();
        let mut recovered = PartitionLog::empty_at(0, 1);
        for base in &bases {
            match seals.get(base) {
                Some(index) => {
                    let (segment, producers) = Segment::decode_index(*base, index).unwrap();
                    recovered.recover_sealed(segment, producers);
                }
                None => {
                    recovered.recover_segment(*base, &files[base], 100);
                }
            }
        }
        recovered.finish_recovery(0);
        assert_eq!(recovered.epoch_history(), history);
        // Scanned alone, every segment gives the same.
        let mut scanned = PartitionLog::empty_at(0, 1);
        for base in &bases {
            scanned.recover_segment(*base, &files[base], 100);
        }
        scanned.finish_recovery(0);
        assert_eq!(scanned.epoch_history(), history);
    }
}
