//! Reads: what a fetch at an offset (or ListOffsets at a timestamp) gets from the tail cache,
//! the read-ahead or a segment file, and the checks of bytes read back from disk.

use super::*;

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
    /// Where each leader epoch of the segment's batches begins: a batch's epoch, outside its
    /// CRC, is checked against it.
    pub epochs: Vec<(i32, i64)>,
    /// The log's truncation count when the read was planned: bytes read before a truncation
    /// are not kept as read-ahead after it (see [`PartitionLog::keep_read_ahead`]).
    pub truncations: u64,
}

/// Bytes read from a segment after what a fetch took, kept for the next fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAhead {
    pub segment_base_offset: i64,
    pub position: u64,
    pub first_offset: i64,
    pub data: Bytes,
    pub truncations: u64,
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
    /// follow on from `first_offset`, that their leader epochs are the segment's, and that the
    /// CRC of every batch returned matches, so a corrupt batch is never served.
    pub fn complete(&self, data: &Bytes) -> ReadOutcome {
        // Bytes past the reader's visible end are not for it (a read-ahead a follower brought
        // holds batches above the high watermark).
        let visible = self.visible_end.saturating_sub(self.position);
        let data = &data.slice(..(data.len() as u64).min(visible) as usize);
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
            let info = match batch::validate_stored(rest) {
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
            let epoch = self
                .epochs
                .iter()
                .rev()
                .find(|&&(_, start)| start <= info.base_offset);
            if let Some(&(epoch, _)) = epoch.filter(|&&(e, _)| e != info.partition_leader_epoch) {
                return ReadOutcome::Corrupt(format!(
                    "batch at byte {} has leader epoch {}, the segment's history says {epoch}",
                    self.position + position as u64,
                    info.partition_leader_epoch
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
                truncations: self.truncations,
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

impl PartitionLog {
    // ---- reads ----

    /// Plans a read of visible batches from `offset`, up to `max_bytes` (but always at least the
    /// first batch, as Kafka does, so a batch larger than the limit never stalls a consumer):
    /// from the tail cache, from the read-ahead of the fetch before, or from the segment file.
    pub fn read(&mut self, offset: i64, max_bytes: usize) -> ReadPlan {
        self.read_below(
            offset,
            max_bytes,
            self.high_watermark,
            self.visible_position,
        )
    }

    /// Plans a read for a follower replica: batches written to the segment file, committed or
    /// not (the leader's log is what followers copy; the high watermark follows them).
    pub fn read_for_replica(&mut self, offset: i64, max_bytes: usize) -> ReadPlan {
        self.read_below(
            offset,
            max_bytes,
            self.written_offset,
            self.written_position,
        )
    }

    /// Plans a read of batches below `end` (whose bytes end at `end_position`).
    fn read_below(
        &mut self,
        offset: i64,
        max_bytes: usize,
        end: i64,
        end_position: super::Position,
    ) -> ReadPlan {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return ReadPlan::OutOfRange;
        }
        if offset >= end {
            return ReadPlan::Empty;
        }
        if self.tail.front().is_some_and(|c| c.base_offset <= offset) {
            let first = self.tail.partition_point(|c| c.last_offset < offset);
            let mut total = 0usize;
            let mut batches = Vec::new();
            for cached in self.tail.iter().skip(first) {
                if cached.last_offset >= end
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
        let visible_end = Self::end_within(segment, end_position);
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
                    epochs: segment.epochs.clone(),
                    truncations: self.truncations,
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
            epochs: segment.epochs.clone(),
            truncations: self.truncations,
        })
    }

    /// Keeps what a disk read brought beyond what its fetch took, for the next fetch (at most
    /// [`READ_AHEAD_BYTES`]; a batch cut short is read again when wanted).
    pub fn keep_read_ahead(&mut self, mut ahead: ReadAhead) {
        if ahead.truncations != self.truncations
            || ahead.first_offset < self.log_start_offset
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
}

/// Validates batches read back from disk: each CRC, and the base offsets, which the CRC does
/// not cover, against the offsets expected (dense from `base_offset`).
pub fn verify_read(data: &[u8], base_offset: i64) -> Result<usize, String> {
    let batches = batch::validate_all_stored(data).map_err(|e| e.to_string())?;
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
