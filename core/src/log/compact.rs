//! Log compaction's decisions over record batches: the latest offset of each key in the dirty
//! part of a log, and which records of a batch a cleaning keeps, with the batch that holds them,
//! written in place of the original. No I/O and no clock: `cleaner.rs` runs a cleaning over a
//! log's segments, the broker performs its reads and writes and says what time it is.
//!
//! Kafka's cleaner is the anchor (`LogCleaner.shouldRetainRecord`, `MemoryRecords.filterTo`):
//! - A record stays if no later record has its key: its offset is at or past the latest one
//!   the key map holds for it (a key the map does not hold was not seen later). A tombstone
//!   (null value) stays too, until the caller says its segment is past `delete.retention.ms`.
//!   A record without a key goes (a compacted topic refuses them at produce time).
//! - A batch keeps its base offset, last offset delta, base and max timestamps, producer id,
//!   epoch and base sequence: offsets never change, a fetch at a removed offset gets the next
//!   record, and the producer state read from the log (each producer's last batch: its last
//!   offset and sequence) comes out the same. The records kept are copied byte for byte (their
//!   deltas are relative to the unchanged base) and compressed again with the batch's codec.
//! - A batch left without records goes, unless the caller keeps it (its producer's last batch):
//!   then its header stays with no records and no compression, as Kafka keeps it.
//! - Control batches stay whole (transaction markers: transactions are not served yet).

use crate::batch::{self, BatchHeader, BatchInfo, HEADER_BYTES, LOG_OVERHEAD_BYTES};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};
use std::collections::BTreeMap;
use std::ops::Range;
use zerocopy::FromBytes;

/// The CRC covers a batch from its attributes to its end.
const CRC_START: usize = 21;
const COMPRESSION_MASK: i16 = 0x07;
/// What one key costs the map beyond its bytes (the offset and the tree's bookkeeping).
pub const KEY_OVERHEAD_BYTES: usize = 48;

/// One record of a batch, as compaction reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    pub offset: i64,
    pub key: Option<Bytes>,
    /// A null value: the key's deletion.
    pub tombstone: bool,
    /// Where the record (its length prefix included) lies in the uncompressed records.
    pub span: Range<usize>,
}

/// A batch's header and its records, decompressed.
pub struct BatchRecords {
    pub info: BatchInfo,
    /// The records' bytes, uncompressed.
    pub payload: Bytes,
    pub records: Vec<RecordView>,
}

/// Reads the batch at the start of `bytes` (one written to a log: its offsets may have holes
/// from an earlier cleaning) and its records.
pub fn read_records(bytes: &[u8]) -> Result<BatchRecords, String> {
    let info = batch::validate_stored(bytes).map_err(|e| e.to_string())?;
    let body = Bytes::copy_from_slice(&bytes[HEADER_BYTES..info.size_bytes]);
    let payload = decompress(info.compression(), body)?;
    let mut records = Vec::with_capacity(info.records_count.max(0) as usize);
    let mut at = 0usize;
    for _ in 0..info.records_count {
        let start = at;
        let length = varint(&payload, &mut at)?;
        let length = usize::try_from(length).map_err(|_| "a negative record length")?;
        let end = at
            .checked_add(length)
            .filter(|&end| end <= payload.len())
            .ok_or("a record runs past its batch")?;
        let mut field = at + 1; // the record's attributes
        let _timestamp_delta = varint(&payload[..end], &mut field)?;
        let offset_delta = varint(&payload[..end], &mut field)?;
        let key = bytes_field(&payload, end, &mut field)?;
        let value = bytes_field(&payload, end, &mut field)?;
        records.push(RecordView {
            offset: info.base_offset + offset_delta,
            key,
            tombstone: value.is_none(),
            span: start..end,
        });
        at = end;
    }
    if at != payload.len() {
        return Err(format!(
            "{} bytes after the batch's {} records",
            payload.len() - at,
            info.records_count
        ));
    }
    Ok(BatchRecords {
        info,
        payload,
        records,
    })
}

/// The latest offset of each key in the dirty part of a log (Kafka's `OffsetMap`), bounded by
/// `log.cleaner.dedupe.buffer.size`: each key costs its bytes and `KEY_OVERHEAD_BYTES`. Keys
/// are kept whole, in a `BTreeMap` (no hash collisions to reason about, and deterministic).
#[derive(Debug, Default)]
pub struct KeyMap {
    latest: BTreeMap<Bytes, i64>,
    bytes: usize,
    limit: usize,
    /// One past the last offset of the last batch added: a cleaning covers offsets below it.
    end: Option<i64>,
}

impl KeyMap {
    pub fn new(limit_bytes: usize) -> KeyMap {
        KeyMap {
            limit: limit_bytes,
            ..KeyMap::default()
        }
    }

    /// Adds the keys of the batch at the start of `bytes`, which follows every batch added
    /// before. Returns false and adds none of it if the map would pass its bound (unless it is
    /// empty: one batch always goes in, so every cleaning moves on): the cleaning then covers
    /// the batches before, and another pass takes the rest.
    pub fn add_batch(&mut self, bytes: &[u8]) -> Result<bool, String> {
        let read = read_records(bytes)?;
        if let Some(end) = self.end {
            if read.info.base_offset < end {
                return Err(format!(
                    "batch at {} added after offsets up to {end}",
                    read.info.base_offset
                ));
            }
        }
        if !read.info.is_control() {
            let new_bytes: usize = read
                .records
                .iter()
                .filter_map(|r| r.key.as_ref())
                .filter(|k| !self.latest.contains_key(*k))
                .map(|k| k.len() + KEY_OVERHEAD_BYTES)
                .sum();
            if !self.latest.is_empty() && self.bytes + new_bytes > self.limit {
                return Ok(false);
            }
            for record in &read.records {
                if let Some(key) = &record.key {
                    if self.latest.insert(key.clone(), record.offset).is_none() {
                        self.bytes += key.len() + KEY_OVERHEAD_BYTES;
                    }
                }
            }
        }
        self.end = Some(read.info.last_offset() + 1);
        Ok(true)
    }

    /// The latest offset of `key` added, if it was.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// One past the last offset added (none if nothing was).
    pub fn end(&self) -> Option<i64> {
        self.end
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// What the keys cost, counted against the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// What cleaning does to one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleaned {
    /// Every record stays: the batch as it is.
    Whole,
    /// Some stay (or none, in a header kept for its producer): the batch to write instead.
    Rewritten(Vec<u8>),
    /// Nothing of it stays.
    Removed,
}

/// How a batch is cleaned besides the key map: whether its tombstones are past
/// `delete.retention.ms` (they go), and whether it is its producer's last batch (its header
/// stays even with no records, so the producer's state survives).
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchRules {
    pub drop_tombstones: bool,
    pub keep_if_empty: bool,
}

/// Whether `record` stays (Kafka's `shouldRetainRecord`).
fn retained(record: &RecordView, map: &KeyMap, rules: BatchRules) -> bool {
    let Some(key) = &record.key else {
        return false;
    };
    let latest = map.latest(key).is_none_or(|at| record.offset >= at);
    latest && !(record.tombstone && rules.drop_tombstones)
}

/// Cleans the batch at the start of `bytes` against `map`.
pub fn clean_batch(bytes: &[u8], map: &KeyMap, rules: BatchRules) -> Result<Cleaned, String> {
    let read = read_records(bytes)?;
    if read.info.is_control() {
        return Ok(Cleaned::Whole);
    }
    let kept: Vec<&RecordView> = read
        .records
        .iter()
        .filter(|r| retained(r, map, rules))
        .collect();
    if kept.len() == read.records.len() {
        return Ok(Cleaned::Whole);
    }
    if kept.is_empty() && !rules.keep_if_empty {
        return Ok(Cleaned::Removed);
    }
    let mut raw = Vec::with_capacity(kept.iter().map(|r| r.span.len()).sum());
    for record in &kept {
        raw.extend_from_slice(&read.payload[record.span.clone()]);
    }
    let codec = match kept.is_empty() {
        true => 0,
        false => read.info.compression(),
    };
    let body = compress(codec, &raw)?;
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&bytes[..HEADER_BYTES]);
    out.extend_from_slice(&body);
    let size = out.len();
    let length = i32::try_from(size - LOG_OVERHEAD_BYTES).map_err(|_| "a batch too large")?;
    {
        let (header, _) = BatchHeader::mut_from_prefix(&mut out[..]).expect("a whole header");
        header.batch_length.set(length);
        header.records_count.set(kept.len() as i32);
        let attributes = header.attributes.get();
        header
            .attributes
            .set((attributes & !COMPRESSION_MASK) | codec);
    }
    let crc = crc32c::crc32c(&out[CRC_START..]);
    let (header, _) = BatchHeader::mut_from_prefix(&mut out[..]).expect("a whole header");
    header.crc.set(crc);
    Ok(Cleaned::Rewritten(out))
}

/// A batch without records for offsets `base_offset..=last_offset` (at most `i32::MAX` apart)
/// in leader epoch `epoch`: a cleaning writes one where it removed whole batches, so that every
/// offset of a log stays in some batch (Kafka's logs have gaps there instead; clients read both
/// the same way, and skip a batch without records). No timestamp and no producer, so neither
/// a timestamp lookup nor a producer's state ever finds it.
pub fn hole_batch(base_offset: i64, last_offset: i64, epoch: i32) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_BYTES];
    let delta = i32::try_from(last_offset - base_offset).expect("a hole within i32 offsets");
    let (header, _) = BatchHeader::mut_from_prefix(&mut out[..]).expect("a whole header");
    header.base_offset.set(base_offset);
    header
        .batch_length
        .set((HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32);
    header.partition_leader_epoch.set(epoch);
    header.magic = 2;
    header.last_offset_delta.set(delta);
    header.base_timestamp.set(-1);
    header.max_timestamp.set(-1);
    header.producer_id.set(-1);
    header.producer_epoch.set(-1);
    header.base_sequence.set(-1);
    let crc = crc32c::crc32c(&out[CRC_START..]);
    let (header, _) = BatchHeader::mut_from_prefix(&mut out[..]).expect("a whole header");
    header.crc.set(crc);
    out
}

/// A segment as the cleaning plan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    pub base_offset: i64,
    /// Offset after its last batch.
    pub next_offset: i64,
    pub bytes: u64,
    /// The largest timestamp of its batches.
    pub max_timestamp: i64,
}

/// A topic's compaction configs: `min.cleanable.dirty.ratio`, `min.compaction.lag.ms`,
/// `max.compaction.lag.ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionPolicy {
    pub min_dirty_ratio: f64,
    pub min_lag_ms: i64,
    pub max_lag_ms: i64,
}

impl Default for CompactionPolicy {
    /// Kafka's defaults: 0.5, 0, and no bound.
    fn default() -> CompactionPolicy {
        CompactionPolicy {
            min_dirty_ratio: 0.5,
            min_lag_ms: 0,
            max_lag_ms: i64::MAX,
        }
    }
}

/// A cleaning that is due: offsets from `first_dirty` below `end` are the dirty part its key
/// map is built from, and segments below `end` are cleaned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleaningDue {
    pub first_dirty: i64,
    pub end: i64,
    pub dirty_ratio: f64,
    /// Due by `max.compaction.lag.ms` whatever the ratio.
    pub forced: bool,
}

/// Whether a log of `segments` (in order; the last is the active one) is due a cleaning, with
/// everything below `first_dirty` cleaned before (Kafka's `LogCleanerManager`
/// `cleanableOffsets` and its choice). Never cleaned: the active segment, a segment holding
/// offsets at or past the high watermark, and, from the first dirty segment newer than
/// `min.compaction.lag.ms`, that one and all after it. Due when the dirty part is at least
/// `min.cleanable.dirty.ratio` of the cleanable log, or its oldest segment is older than
/// `max.compaction.lag.ms`.
pub fn cleaning_due(
    segments: &[SegmentSummary],
    first_dirty: i64,
    high_watermark: i64,
    now_ms: i64,
    policy: CompactionPolicy,
) -> Option<CleaningDue> {
    let (_active, closed) = segments.split_last()?;
    let first_dirty = first_dirty.max(closed.first()?.base_offset);
    let too_new = |s: &SegmentSummary| {
        s.next_offset > high_watermark
            || (s.next_offset > first_dirty
                && s.max_timestamp > now_ms.saturating_sub(policy.min_lag_ms))
    };
    let cleanable = closed.iter().take_while(|s| !too_new(s));
    let (mut clean, mut dirty, mut end, mut oldest_dirty) = (0u64, 0u64, None, None);
    for segment in cleanable {
        match segment.next_offset <= first_dirty {
            true => clean += segment.bytes,
            false => {
                dirty += segment.bytes;
                oldest_dirty.get_or_insert(segment.max_timestamp);
            }
        }
        end = Some(segment.next_offset);
    }
    let end = end.filter(|&end| end > first_dirty)?;
    let ratio = dirty_ratio(clean, dirty);
    let forced = oldest_dirty.is_some_and(|t| t < now_ms.saturating_sub(policy.max_lag_ms));
    (ratio >= policy.min_dirty_ratio || forced).then_some(CleaningDue {
        first_dirty,
        end,
        dirty_ratio: ratio,
        forced,
    })
}

/// The tagged field (of a DescribeLogDirs partition, v2+) in which Spate reports a compacted
/// partition's dirty ratio, as an 8-byte big-endian float: Kafka has no API for it (a JMX
/// metric); clients skip tagged fields they do not know, and `spate topic describe` shows it.
pub const DIRTY_RATIO_TAG: i32 = 0x5a7e;

/// The share of a log's bytes written since it was last cleaned (Kafka's dirty ratio):
/// `dirty` of `dirty + clean` bytes (0 for an empty log).
pub fn dirty_ratio(clean_bytes: u64, dirty_bytes: u64) -> f64 {
    match clean_bytes + dirty_bytes {
        0 => 0.0,
        total => dirty_bytes as f64 / total as f64,
    }
}

// ---- the record format ----

/// A zigzag varint (Kafka's varint and varlong) at `*at` in `bytes`, moving past it.
fn varint(bytes: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *bytes
            .get(*at)
            .ok_or("a record field runs past its record")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    Err("a varint longer than 10 bytes".into())
}

/// A length-prefixed byte field (a key or a value; -1: null) ending at or before `end`.
fn bytes_field(payload: &Bytes, end: usize, at: &mut usize) -> Result<Option<Bytes>, String> {
    let length = varint(&payload[..end], at)?;
    if length < 0 {
        return Ok(None);
    }
    let stop = usize::try_from(length)
        .ok()
        .and_then(|l| at.checked_add(l))
        .filter(|&stop| stop <= end)
        .ok_or("a record field runs past its record")?;
    let field = payload.slice(*at..stop);
    *at = stop;
    Ok(Some(field))
}

fn decompress(codec: i16, mut body: Bytes) -> Result<Bytes, String> {
    let whole = |b: &mut Bytes| Ok(std::mem::take(b));
    let result = match codec {
        0 => return Ok(body),
        1 => Gzip::decompress(&mut body, whole),
        2 => Snappy::decompress(&mut body, whole),
        3 => Lz4::decompress(&mut body, whole),
        4 => Zstd::decompress(&mut body, whole),
        other => return Err(format!("unknown compression codec {other}")),
    };
    result.map_err(|e| format!("records cannot be decompressed: {e}"))
}

fn compress(codec: i16, raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| {
        b.put_slice(raw);
        Ok(())
    };
    let result = match codec {
        0 => return Ok(raw.to_vec()),
        1 => Gzip::compress(&mut out, fill),
        2 => Snappy::compress(&mut out, fill),
        3 => Lz4::compress(&mut out, fill),
        4 => Zstd::compress(&mut out, fill),
        other => return Err(format!("unknown compression codec {other}")),
    };
    result.map_err(|e| format!("records cannot be compressed: {e}"))?;
    Ok(out.to_vec())
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;
