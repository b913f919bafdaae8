//! Run-time truncation: a follower drops what its new leader does not have (Kafka's
//! `truncateTo`). Every record at or after the offset goes, and the batch holding it goes
//! whole, so the log ends at a batch boundary at or below the offset.
//!
//! It is a core decision in steps the shell performs, so a crash can fall between them:
//! 1. where the cut falls inside a segment, the bytes around it are read (the sparse index
//!    says only roughly where the batch starts; the block before the cut is rewritten by the
//!    next write, so the log needs its bytes);
//! 2. one [`crate::io::IoOp::Truncate`]: the files of the segments after the cut removed, last
//!    first, then the cut segment's index file, then its log file cut and synced.
//!
//! A crash part way leaves the last segments removed and the cut segment whole and without its
//! index file: a restart scans it and the log ends at or after the cut, a prefix of what it
//! was, never with a hole. The caller truncates again. Meanwhile the log is cut in memory at
//! once, and hands out no write, sync or seal until the files are done.

use super::*;

/// What a truncation asks of the shell next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truncation {
    /// The log holds nothing at or after the offset.
    Nothing,
    /// Read these bytes and hand them to [`PartitionLog::handle_truncate_read`].
    Read(TruncateRead),
    /// Change these files, then call [`PartitionLog::handle_truncate_done`].
    Files(TruncateFiles),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateRead {
    pub segment_base_offset: i64,
    pub position: u64,
    pub len: usize,
}

/// The files of a truncation: the segments after the cut go (their log and index files, the
/// last segment first), the cut segment's index file goes, and its log file is cut to `len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncateFiles {
    pub segment_base_offset: i64,
    pub len: u64,
    pub removed_segments: Vec<i64>,
}

/// A truncation waiting for its read: the offset asked for, and what the segment's index said.
#[derive(Debug, Clone)]
pub(super) struct PendingCut {
    offset: i64,
    segment: usize,
    read_from: u64,
    entry: crate::segment::IndexEntry,
}

impl PartitionLog {
    /// Whether nothing is in flight or waiting to be written: a truncation may start.
    pub fn is_quiet(&self) -> bool {
        self.write_in_flight.is_none()
            && self.failed_write.is_none()
            && self.sync_in_flight.is_none()
            && self.seal_in_flight.is_none()
            && self.unwritten.is_empty()
            && !self.truncating()
            && self.swapping().is_none()
    }

    pub(super) fn truncating(&self) -> bool {
        self.cut_pending.is_some() || self.cut_in_flight
    }

    /// Starts dropping every record at or after `offset` (the batch holding it whole). The log
    /// must be quiet ([`PartitionLog::is_quiet`]) and the offset at or above the log start.
    pub fn truncate_to(&mut self, offset: i64) -> Result<Truncation, String> {
        if !self.is_quiet() {
            return Err("a truncation waits for the log's writes and syncs to finish".into());
        }
        if offset < self.log_start_offset {
            return Err(format!(
                "cannot truncate to {offset}, below the log start {}",
                self.log_start_offset
            ));
        }
        if offset >= self.log_end_offset {
            return Ok(Truncation::Nothing);
        }
        // A cleaning works on segments the cut may change (its swap, in flight, makes the log
        // not quiet): it is given up, and what was cleaned above the cut is dirty again.
        self.abandon_cleaning();
        self.cleaned_offset = self.cleaned_offset.min(offset);
        let index = self.segment_index(offset);
        let segment = &self.segments[index];
        if offset == segment.base_offset {
            let files = self.cut(index, offset, 0, (-1, -1), Vec::new());
            return Ok(Truncation::Files(files));
        }
        let (entry, end) = segment.span_holding(offset);
        let read_from = align_down(entry.position);
        self.cut_pending = Some(PendingCut {
            offset,
            segment: index,
            read_from,
            entry,
        });
        Ok(Truncation::Read(TruncateRead {
            segment_base_offset: segment.base_offset,
            position: read_from,
            len: (end - read_from) as usize,
        }))
    }

    /// The bytes a truncation asked for: where the batch holding the offset starts is the cut.
    /// An error means the bytes are not the batches the index promised (the truncation is
    /// abandoned; the log is as it was).
    pub fn handle_truncate_read(&mut self, data: &[u8]) -> Result<TruncateFiles, String> {
        let pending = self
            .cut_pending
            .take()
            .expect("a truncation read was asked for");
        let mut position = (pending.entry.position - pending.read_from) as usize;
        let mut expected = pending.entry.offset;
        let mut max_timestamp = match pending.entry.max_timestamp_before {
            -1 => (-1, -1),
            // The index keeps the timestamp, not where it was: the batch before the entry's.
            ts => (ts, pending.entry.offset - 1),
        };
        loop {
            let bytes = data.get(position..).unwrap_or_default();
            let info = batch::validate_stored(bytes).map_err(|e| {
                format!("truncating to {}: bytes at {position}: {e}", pending.offset)
            })?;
            if info.base_offset != expected {
                return Err(format!(
                    "truncating to {}: a batch with base offset {}, expected {expected}",
                    pending.offset, info.base_offset
                ));
            }
            if info.last_offset() >= pending.offset {
                break;
            }
            if info.max_timestamp > max_timestamp.0 || max_timestamp.1 < 0 {
                max_timestamp = (info.max_timestamp.max(max_timestamp.0), info.last_offset());
            }
            expected = info.last_offset() + 1;
            position += info.size_bytes;
        }
        let cut = pending.read_from + position as u64;
        let block_start = (align_down(cut) - pending.read_from) as usize;
        let partial = data[block_start..position].to_vec();
        Ok(self.cut(pending.segment, expected, cut, max_timestamp, partial))
    }

    /// The read a truncation asked for failed: the truncation is abandoned (the log is as
    /// it was; the caller may truncate again).
    pub fn abandon_truncation(&mut self) {
        self.cut_pending = None;
    }

    /// The truncation's files are changed: the log writes again.
    pub fn handle_truncate_done(&mut self) {
        assert!(self.cut_in_flight, "a truncation was in flight");
        self.cut_in_flight = false;
        self.check_invariants();
    }

    /// Cuts the log in memory at `offset`, `position` bytes into segment `index`.
    fn cut(
        &mut self,
        index: usize,
        offset: i64,
        position: u64,
        max_timestamp: (i64, i64),
        partial_block: Vec<u8>,
    ) -> TruncateFiles {
        let removed_segments: Vec<i64> = self
            .segments
            .drain(index + 1..)
            .rev()
            .map(|s| s.base_offset)
            .collect();
        let segment = self.segments.back_mut().expect("the cut segment");
        segment.truncate_at(offset, position, max_timestamp, partial_block);
        let base = segment.base_offset;
        let at = (base, position);
        for (value, place) in [
            (&mut self.written_offset, &mut self.written_position),
            (&mut self.flushed_offset, &mut self.flushed_position),
            (&mut self.high_watermark, &mut self.visible_position),
        ] {
            if *value > offset {
                *value = offset;
                *place = at;
            }
        }
        self.log_end_offset = offset;
        self.durable_wanted = self.durable_wanted.min(offset);
        if self.flushed_offset == offset {
            self.unflushed_since_ms = None;
        }
        self.invisible.retain(|&(last, ..)| last < offset);
        self.tail.retain(|c| c.base_offset < offset);
        self.tail_bytes = self.tail.iter().map(|c| c.bytes.len()).sum();
        self.read_ahead = None;
        self.truncations += 1;
        self.unsynced.retain(|&s| s <= base);
        self.unnamed.retain(|&s| s <= base);
        self.producers.truncate_to(offset);
        self.cut_in_flight = true;
        TruncateFiles {
            segment_base_offset: base,
            len: position,
            removed_segments,
        }
    }
}
