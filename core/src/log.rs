//! One partition's log as a state machine: offsets, the batch index, the tail cache, and the
//! decisions about what to write, what to fsync and what a reader may see.
//!
//! The log never performs I/O. It hands out [`SegmentWrite`]s (`poll_write`) and sync requests
//! (`poll_sync`), and learns of their completion (`handle_write_done`, `handle_sync_done`).
//!
//! Offsets, by what they promise:
//! - `log_end_offset`: next offset to assign; everything below is appended (in memory).
//! - `written_offset`: everything below has been written to the segment file (not yet durable).
//! - `flushed_offset`: everything below is fsynced.
//! - `high_watermark`: everything below is committed and visible to consumers. On a single node
//!   the quorum is this node's disk, so the high watermark is the flushed offset: a consumer
//!   never sees a record that a crash could take back.
//!
//! On-disk layout and alignment: the segment file is written only with O_DIRECT-sized writes,
//! each starting at the block boundary at or below the logical end and padded with zeros to a
//! block boundary. The next write starts again at the last partial block, carrying its bytes, so
//! the file holds the batches back to back with only zeros after the logical end. At most one
//! write per segment is in flight, so two writes of the same block never race.

use crate::batch::{self, BatchInfo};
use crate::producers::{ProducerStates, SequenceCheck};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// O_DIRECT alignment for positions, lengths and buffers.
pub const BLOCK_BYTES: u64 = 4096;

/// Where a batch sits in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexEntry {
    base_offset: i64,
    last_offset: i64,
    position: u64,
    size_bytes: u32,
    max_timestamp: i64,
}

/// A write the shell must perform: `data` at `position` in the segment starting at
/// `segment_base_offset`. Both are multiples of [`BLOCK_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentWrite {
    pub segment_base_offset: i64,
    pub position: u64,
    pub data: Bytes,
}

/// What a read at an offset found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPlan {
    /// The offset is below the log start or beyond the log end.
    OutOfRange,
    /// Nothing is visible at or after the offset yet.
    Empty,
    /// The batches, from the tail cache.
    Cached(Vec<Bytes>),
    /// The batches must be read from the segment: `len` bytes at `position`, the first batch
    /// starting at offset `base_offset`.
    Disk {
        segment_base_offset: i64,
        position: u64,
        len: usize,
        base_offset: i64,
    },
}

/// Where the batch holding the first record at or after a timestamp is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampLookup {
    /// The batch's base offset (or the log start, if later) and max timestamp: the answer when
    /// the batch cannot be read.
    pub base_offset: i64,
    pub max_timestamp: i64,
    pub log_start_offset: i64,
    pub source: BatchSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSource {
    Cached(Bytes),
    Disk {
        segment_base_offset: i64,
        position: u64,
        len: usize,
    },
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

/// Result of appending one producer batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug)]
pub struct PartitionLog {
    segment_base_offset: i64,
    log_start_offset: i64,
    log_end_offset: i64,
    written_offset: i64,
    flushed_offset: i64,
    high_watermark: i64,
    index: Vec<IndexEntry>,
    /// Bytes appended to the segment (logical end), written or not.
    segment_bytes: u64,
    /// Bytes handed to the shell in writes so far.
    submitted_bytes: u64,
    /// The bytes of the last partial block below `submitted_bytes`, re-sent with the next write.
    partial_block: Vec<u8>,
    /// Appended batches not yet handed out in a write.
    unwritten: Vec<Bytes>,
    /// The write handed out and not yet completed, with the offset it brings `written_offset` to.
    write_in_flight: Option<(i64, SegmentWrite)>,
    /// A write that failed (disk full, say): handed out again by the next `poll_write`.
    failed_write: Option<(i64, SegmentWrite)>,
    sync_in_flight: Option<i64>,
    /// The newest batches, served to readers at the tail without touching the disk.
    tail: VecDeque<(i64, Bytes)>,
    tail_bytes: usize,
    tail_bytes_max: usize,
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
        PartitionLog {
            segment_base_offset: 0,
            log_start_offset: 0,
            log_end_offset: 0,
            written_offset: 0,
            flushed_offset: 0,
            high_watermark: 0,
            index: Vec::new(),
            segment_bytes: 0,
            submitted_bytes: 0,
            partial_block: Vec::new(),
            unwritten: Vec::new(),
            write_in_flight: None,
            failed_write: None,
            sync_in_flight: None,
            tail: VecDeque::new(),
            tail_bytes: 0,
            tail_bytes_max,
            producers: ProducerStates::default(),
        }
    }

    /// Rebuilds the log from a segment file's bytes after a restart. Scans batches from the start,
    /// validating length, CRC and offset continuity, and stops at the first that fails: what
    /// follows is a torn or corrupt tail, which the shell truncates (see the report). Everything
    /// kept counts as flushed once the shell has synced the truncated file.
    pub fn recover(
        segment_base_offset: i64,
        data: &[u8],
        tail_bytes_max: usize,
    ) -> (Self, RecoveryReport) {
        let mut log = PartitionLog::new(tail_bytes_max);
        log.segment_base_offset = segment_base_offset;
        log.log_start_offset = segment_base_offset;
        log.log_end_offset = segment_base_offset;
        let mut position = 0usize;
        let mut stop_reason = None;
        while position < data.len() {
            let rest = &data[position..];
            if rest.len() >= batch::LOG_OVERHEAD_BYTES
                && rest[..batch::LOG_OVERHEAD_BYTES].iter().all(|&b| b == 0)
            {
                break; // zero padding after the logical end
            }
            match batch::validate(rest) {
                Ok(info) if info.base_offset == log.log_end_offset => {
                    let bytes = Bytes::copy_from_slice(&rest[..info.size_bytes]);
                    log.push_batch(&info, bytes);
                    position += info.size_bytes;
                }
                Ok(info) => {
                    stop_reason = Some(format!(
                        "batch at byte {position} has base offset {}, expected {}",
                        info.base_offset, log.log_end_offset
                    ));
                    break;
                }
                Err(error) => {
                    stop_reason = Some(format!("at byte {position}: {error}"));
                    break;
                }
            }
        }
        let valid_bytes = position as u64;
        let torn_bytes = data[position..]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |last| last as u64 + 1);
        if torn_bytes == 0 {
            stop_reason = None;
        }
        log.unwritten.clear();
        log.submitted_bytes = valid_bytes;
        log.partial_block = data[align_down(valid_bytes) as usize..position].to_vec();
        log.written_offset = log.log_end_offset;
        log.flushed_offset = log.log_end_offset;
        log.high_watermark = log.log_end_offset;
        let report = RecoveryReport {
            valid_bytes,
            file_bytes: data.len() as u64,
            torn_bytes,
            stop_reason,
            batches: log.index.len(),
            next_offset: log.log_end_offset,
            last_batch_position: log.index.last().map(|e| e.position),
        };
        log.check_invariants();
        (log, report)
    }

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
    pub fn segment_base_offset(&self) -> i64 {
        self.segment_base_offset
    }
    /// Bytes of batches appended to the segment, written or not (DescribeLogDirs).
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// Moves the log start forward to `offset` (DeleteRecords, or recovery re-applying it):
    /// offsets below it are no longer served. An offset at or below the current start changes
    /// nothing. The bytes stay in the segment until segments roll and old ones are deleted
    /// (issue 3). Only committed offsets may be deleted: `offset` is at most the high watermark.
    pub fn advance_log_start(&mut self, offset: i64) {
        assert!(
            offset <= self.high_watermark,
            "log start {offset} beyond the high watermark {}",
            self.high_watermark
        );
        self.log_start_offset = self.log_start_offset.max(offset);
        self.check_invariants();
    }

    /// Largest timestamp in the log and the offset of the batch holding it (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.index
            .iter()
            .filter(|e| e.last_offset >= self.log_start_offset)
            .filter(|e| e.last_offset < self.high_watermark)
            .max_by_key(|e| e.max_timestamp)
            .map(|e| (e.max_timestamp, e.last_offset))
    }

    /// The first visible batch whose max timestamp is at or after `timestamp`, and where its
    /// bytes are: the record itself is found in it with [`first_record_at_or_after`].
    pub fn timestamp_lookup(&self, timestamp: i64) -> Option<TimestampLookup> {
        let entry = self
            .index
            .iter()
            .skip_while(|e| e.last_offset < self.log_start_offset)
            .take_while(|e| e.last_offset < self.high_watermark)
            .find(|e| e.max_timestamp >= timestamp)?;
        let cached = self
            .tail
            .iter()
            .find(|(base, _)| *base == entry.base_offset);
        let source = match cached {
            Some((_, bytes)) => BatchSource::Cached(bytes.clone()),
            None => BatchSource::Disk {
                segment_base_offset: self.segment_base_offset,
                position: entry.position,
                len: entry.size_bytes as usize,
            },
        };
        Some(TimestampLookup {
            base_offset: entry.base_offset.max(self.log_start_offset),
            max_timestamp: entry.max_timestamp,
            log_start_offset: self.log_start_offset,
            source,
        })
    }

    /// Appends a batch that `batch::validate` accepted: assigns its offsets (rewriting the header
    /// in `bytes`), indexes it, keeps it in the tail cache and queues it for writing.
    pub fn append(
        &mut self,
        mut bytes: BytesMut,
        info: &BatchInfo,
        log_append_time_ms: Option<i64>,
    ) -> Appended {
        debug_assert_eq!(bytes.len(), info.size_bytes);
        let base_offset = self.log_end_offset;
        batch::assign_offset(&mut bytes, base_offset, 0);
        if let Some(now_ms) = log_append_time_ms {
            batch::stamp_log_append_time(&mut bytes, now_ms);
        }
        let info = BatchInfo {
            base_offset,
            max_timestamp: log_append_time_ms.unwrap_or(info.max_timestamp),
            ..*info
        };
        let bytes = bytes.freeze();
        self.unwritten.push(bytes.clone());
        self.push_batch(&info, bytes);
        self.check_invariants();
        Appended {
            base_offset,
            last_offset: info.last_offset(),
        }
    }

    /// Whether an idempotent producer's batch is next in its sequence, a retry, or refused.
    pub fn check_sequence(&self, info: &BatchInfo) -> SequenceCheck {
        self.producers.check(info)
    }

    fn push_batch(&mut self, info: &BatchInfo, bytes: Bytes) {
        assert_eq!(info.base_offset, self.log_end_offset, "offsets are dense");
        self.producers.record(info);
        self.index.push(IndexEntry {
            base_offset: info.base_offset,
            last_offset: info.last_offset(),
            position: self.segment_bytes,
            size_bytes: info.size_bytes as u32,
            max_timestamp: info.max_timestamp,
        });
        self.segment_bytes += info.size_bytes as u64;
        self.log_end_offset = info.last_offset() + 1;
        self.tail_bytes += bytes.len();
        self.tail.push_back((info.base_offset, bytes));
        // Keep at least the newest batch, so a reader at the tail always hits memory.
        while self.tail_bytes > self.tail_bytes_max && self.tail.len() > 1 {
            let (_, evicted) = self.tail.pop_front().expect("tail is not empty");
            self.tail_bytes -= evicted.len();
        }
    }

    /// The next write to hand to the shell, if appended bytes wait and no write is in flight.
    pub fn poll_write(&mut self) -> Option<SegmentWrite> {
        if self.write_in_flight.is_some() {
            return None;
        }
        if let Some(retry) = self.failed_write.take() {
            let write = retry.1.clone();
            self.write_in_flight = Some(retry);
            return Some(write);
        }
        if self.unwritten.is_empty() {
            return None;
        }
        let position = align_down(self.submitted_bytes);
        let pending: usize = self.unwritten.iter().map(Bytes::len).sum();
        let logical_len = self.partial_block.len() + pending;
        let mut data = Vec::with_capacity(align_up(logical_len as u64) as usize);
        data.extend_from_slice(&self.partial_block);
        for bytes in self.unwritten.drain(..) {
            data.extend_from_slice(&bytes);
        }
        let logical_end = position + logical_len as u64;
        assert_eq!(
            logical_end, self.segment_bytes,
            "every appended byte is submitted once"
        );
        let partial_start = (align_down(logical_end) - position) as usize;
        self.partial_block = data[partial_start..].to_vec();
        data.resize(align_up(logical_len as u64) as usize, 0);
        self.submitted_bytes = logical_end;
        let write = SegmentWrite {
            segment_base_offset: self.segment_base_offset,
            position,
            data: Bytes::from(data),
        };
        self.write_in_flight = Some((self.log_end_offset, write.clone()));
        Some(write)
    }

    /// The write handed out last is on disk (not yet durable).
    pub fn handle_write_done(&mut self) {
        let (end, _) = self.write_in_flight.take().expect("a write was in flight");
        assert!(end >= self.written_offset);
        self.written_offset = end;
    }

    /// The write handed out last failed; the next `poll_write` hands it out again. Later
    /// appends wait behind it, so the file never has a hole.
    pub fn handle_write_failed(&mut self) {
        let failed = self.write_in_flight.take().expect("a write was in flight");
        self.failed_write = Some(failed);
    }

    /// Everything below is written to the file (not necessarily durable).
    pub fn written_offset(&self) -> i64 {
        self.written_offset
    }

    /// Whether to fsync now: something is written that is not flushed, and no sync is in flight.
    /// The sync, once done, covers every write completed before it was asked for.
    pub fn poll_sync(&mut self) -> bool {
        if self.sync_in_flight.is_some() || self.written_offset <= self.flushed_offset {
            return false;
        }
        self.sync_in_flight = Some(self.written_offset);
        true
    }

    /// The sync asked for last is done. Returns whether the high watermark moved.
    pub fn handle_sync_done(&mut self) -> bool {
        let target = self.sync_in_flight.take().expect("a sync was in flight");
        assert!(target >= self.flushed_offset);
        self.flushed_offset = target;
        let moved = self.high_watermark < self.flushed_offset;
        self.high_watermark = self.flushed_offset;
        self.check_invariants();
        moved
    }

    /// Whether writes or syncs are waiting or in flight.
    pub fn is_dirty(&self) -> bool {
        self.flushed_offset < self.log_end_offset
    }

    /// Plans a read of visible batches from `offset`, up to `max_bytes` (but always at least the
    /// first batch, as Kafka does, so a batch larger than the limit never stalls a consumer).
    pub fn read(&self, offset: i64, max_bytes: usize) -> ReadPlan {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return ReadPlan::OutOfRange;
        }
        if offset >= self.high_watermark {
            return ReadPlan::Empty;
        }
        let first = self.index.partition_point(|e| e.last_offset < offset);
        let mut total = 0usize;
        let mut count = 0usize;
        for entry in &self.index[first..] {
            if entry.last_offset >= self.high_watermark {
                break;
            }
            let size = entry.size_bytes as usize;
            if count > 0 && total + size > max_bytes {
                break;
            }
            total += size;
            count += 1;
        }
        if count == 0 {
            return ReadPlan::Empty;
        }
        let first_entry = self.index[first];
        let cached_from = self.tail.front().map_or(i64::MAX, |(base, _)| *base);
        if first_entry.base_offset >= cached_from {
            let skip = self
                .tail
                .partition_point(|(base, _)| *base < first_entry.base_offset);
            let batches = self
                .tail
                .iter()
                .skip(skip)
                .take(count)
                .map(|(_, b)| b.clone())
                .collect();
            return ReadPlan::Cached(batches);
        }
        ReadPlan::Disk {
            segment_base_offset: self.segment_base_offset,
            position: first_entry.position,
            len: total,
            base_offset: first_entry.base_offset,
        }
    }

    fn check_invariants(&self) {
        assert!(self.log_start_offset <= self.high_watermark);
        assert!(self.high_watermark <= self.flushed_offset);
        assert!(self.flushed_offset <= self.written_offset);
        assert!(self.written_offset <= self.log_end_offset);
        assert!(self.submitted_bytes <= self.segment_bytes);
        assert!(self.partial_block.len() < BLOCK_BYTES as usize);
    }
}

/// Validates batches read back from disk before they are served, so a corrupt batch is never
/// sent to a consumer: each CRC, and the base offsets, which the CRC does not cover, against
/// the offsets the index expects (dense from `base_offset`).
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

    fn append_values(log: &mut PartitionLog, values: &[&[u8]]) -> Appended {
        let bytes = make_batch(values, 1_000);
        let info = batch::validate(&bytes).unwrap();
        log.append(BytesMut::from(&bytes[..]), &info, None)
    }

    /// Performs every write and sync the log asks for on an in-memory "file".
    fn flush(log: &mut PartitionLog, file: &mut Vec<u8>) {
        while let Some(write) = log.poll_write() {
            assert_eq!(write.position % BLOCK_BYTES, 0);
            assert_eq!(write.data.len() as u64 % BLOCK_BYTES, 0);
            let end = write.position as usize + write.data.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[write.position as usize..end].copy_from_slice(&write.data);
            log.handle_write_done();
            assert!(log.poll_sync());
            log.handle_sync_done();
        }
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
        assert!(!log.poll_sync(), "nothing written yet");
        log.handle_write_done();
        assert!(log.poll_sync());
        assert!(!log.poll_sync(), "one sync in flight at a time");
        assert!(log.handle_sync_done());
        assert_eq!(log.high_watermark(), 1);
        assert_eq!(write.position, 0);
        match log.read(0, 1024) {
            ReadPlan::Cached(batches) => assert_eq!(batches.len(), 1),
            other => panic!("expected a cached read, got {other:?}"),
        }
    }

    #[test]
    fn a_sync_covers_only_what_was_written_before_it() {
        let mut log = PartitionLog::new(1 << 20);
        append_values(&mut log, &[b"a"]);
        log.poll_write().unwrap();
        log.handle_write_done();
        assert!(log.poll_sync());
        append_values(&mut log, &[b"b"]);
        log.poll_write().unwrap();
        log.handle_write_done();
        log.handle_sync_done();
        assert_eq!(
            log.flushed_offset(),
            1,
            "the second batch was written after the sync began"
        );
        assert!(log.poll_sync());
        log.handle_sync_done();
        assert_eq!(log.flushed_offset(), 2);
    }

    #[test]
    fn writes_rewrite_the_partial_block_and_the_file_recovers_exactly() {
        let mut log = PartitionLog::new(1 << 20);
        let mut file = Vec::new();
        for i in 0..200u32 {
            let value = vec![b'x'; (i as usize * 37) % 3000];
            append_values(&mut log, &[&value, b"tail"]);
            flush(&mut log, &mut file);
        }
        let (recovered, report) = PartitionLog::recover(0, &file, 1 << 20);
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
        let mut file = Vec::new();
        append_values(&mut log, &[b"one"]);
        append_values(&mut log, &[b"two", b"three"]);
        flush(&mut log, &mut file);
        let first_len = make_batch(&[b"one"], 1_000).len();
        let second_len = make_batch(&[b"two", b"three"], 1_000).len();
        let good_end = first_len + second_len;
        let torn_at = good_end - second_len / 2;
        file[torn_at..].fill(0);
        file[torn_at] = 0xAB;
        let (mut recovered, report) = PartitionLog::recover(0, &file, 1 << 20);
        assert_eq!(report.next_offset, 1);
        assert_eq!(report.valid_bytes as usize, good_end - second_len);
        assert!(report.torn_bytes > 0);
        assert!(report.stop_reason.is_some());
        assert!(report.needs_truncate());
        file.truncate(report.valid_bytes as usize);
        assert_eq!(append_values(&mut recovered, &[b"again"]).base_offset, 1);
        flush(&mut recovered, &mut file);
        let (again, report) = PartitionLog::recover(0, &file, 1 << 20);
        assert_eq!(report.torn_bytes, 0);
        assert_eq!(again.log_end_offset(), 2);
    }

    #[test]
    fn reads_respect_max_bytes_but_return_at_least_one_batch() {
        let mut log = PartitionLog::new(1 << 20);
        let mut file = Vec::new();
        for _ in 0..5 {
            append_values(&mut log, &[&[7u8; 100]]);
        }
        flush(&mut log, &mut file);
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
        let mut file = Vec::new();
        for _ in 0..3 {
            append_values(&mut log, &[b"a", b"b"]);
        }
        flush(&mut log, &mut file);
        log.advance_log_start(3);
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(log.read(2, 1 << 20), ReadPlan::OutOfRange);
        match log.read(3, 1 << 20) {
            // The batch holding offset 3 starts at 2, as in Kafka: the consumer skips offset 2.
            ReadPlan::Cached(batches) => assert_eq!(batches.len(), 2),
            other => panic!("{other:?}"),
        }
        let lookup = log.timestamp_lookup(0).unwrap();
        assert_eq!((lookup.base_offset, lookup.max_timestamp), (3, 1_001));
        let BatchSource::Cached(batch) = lookup.source else {
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

    #[test]
    fn reads_below_the_tail_cache_go_to_disk_at_the_batch_position() {
        let mut log = PartitionLog::new(1);
        let mut file = Vec::new();
        for _ in 0..3 {
            append_values(&mut log, &[b"v"]);
        }
        flush(&mut log, &mut file);
        let size = make_batch(&[b"v"], 1_000).len();
        assert_eq!(
            log.read(1, size),
            ReadPlan::Disk {
                segment_base_offset: 0,
                position: size as u64,
                len: size,
                base_offset: 1,
            }
        );
        assert!(matches!(log.read(2, size), ReadPlan::Cached(_)));
        assert_eq!(verify_read(&file[size..2 * size], 1), Ok(1));
        assert!(verify_read(&file[size..2 * size], 2)
            .unwrap_err()
            .contains("base offset 1"));
    }
}
