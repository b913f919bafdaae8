//! The Kafka v2 record batch ("magic 2"), kept as opaque bytes.
//!
//! The broker reads the fixed 61-byte header in place (through `zerocopy`), checks the length, the
//! magic byte and the CRC32C, and rewrites only the header fields it owns (base offset, partition
//! leader epoch, and the max timestamp for `LogAppendTime`). Records are never decoded or re-encoded
//! here: a compressed batch is stored and served exactly as the producer sent it.

use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the fixed batch header, up to and including the record count.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batchLength`'s coverage starts: base offset (8) and the length itself (4).
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The CRC covers the batch from `attributes` to its end.
const CRC_START: usize = 21;
const MAGIC_V2: i8 = 2;
const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// The fixed header of a v2 record batch, big-endian as on the wire and on disk.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Debug)]
#[repr(C)]
pub struct BatchHeader {
    pub base_offset: I64,
    pub batch_length: I32,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub records_count: I32,
}

const _: () = assert!(std::mem::size_of::<BatchHeader>() == HEADER_BYTES);

/// Why a batch was refused. Each maps to the Kafka error code a broker answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a header, or a length field that points past the buffer.
    Truncated { needed: usize, available: usize },
    /// A length that cannot describe a v2 batch.
    BadLength(i32),
    /// Magic byte other than 2 (the v0/v1 message formats are not accepted).
    UnsupportedMagic(i8),
    /// The stored CRC does not match the CRC32C of the batch.
    CrcMismatch { stored: u32, computed: u32 },
    /// `records_count` disagrees with `last_offset_delta`, or either is negative.
    BadRecordCount {
        records_count: i32,
        last_offset_delta: i32,
    },
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Truncated { needed, available } => {
                write!(f, "truncated record batch: needs {needed} bytes, has {available}")
            }
            BatchError::BadLength(len) => write!(f, "invalid record batch length {len}"),
            BatchError::UnsupportedMagic(m) => {
                write!(f, "unsupported record batch magic {m} (only v2 batches are accepted)")
            }
            BatchError::CrcMismatch { stored, computed } => write!(
                f,
                "record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            BatchError::BadRecordCount { records_count, last_offset_delta } => write!(
                f,
                "record batch claims {records_count} records but last offset delta {last_offset_delta}"
            ),
        }
    }
}

/// What the broker needs to know about a validated batch, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub base_offset: i64,
    /// Whole size in bytes, header included.
    pub size_bytes: usize,
    pub last_offset_delta: i32,
    pub records_count: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    /// The leader epoch the batch was appended in (the leader writes it).
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    /// -1 for a producer that is not idempotent.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl BatchInfo {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }
}

/// Size of the batch at the start of `bytes`, from its length field alone, or `None` when
/// fewer than 12 bytes are there. Does not validate anything else.
pub fn peek_size(bytes: &[u8]) -> Option<i64> {
    let len = bytes.get(8..12)?;
    Some(
        i64::from(i32::from_be_bytes([len[0], len[1], len[2], len[3]])) + LOG_OVERHEAD_BYTES as i64,
    )
}

/// The length of the longest run of whole batches at the start of `records` that fits in
/// `budget` bytes; with `at_least_one`, the first batch counts whatever its size. A length field
/// that runs past the end stops the run there.
pub fn whole_batches_within(records: &[u8], budget: usize, at_least_one: bool) -> usize {
    let mut end = 0usize;
    while let Some(size) = peek_size(&records[end..]) {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let next = end.saturating_add(size);
        let fits = next <= budget || (at_least_one && end == 0);
        if size < LOG_OVERHEAD_BYTES || next > records.len() || !fits {
            break;
        }
        end = next;
    }
    end
}

/// Kafka's Fetch limits (KIP-74) over the partitions of a response, in its order: together they
/// carry at most `max_bytes`, each at most its own limit, in whole batches; only the first
/// partition with records keeps its first batch whatever its size, so a consumer always moves
/// on. Records cut off are left for the next fetch.
pub fn limit_fetch_records<'a>(
    partitions: impl Iterator<Item = (&'a mut Option<bytes::Bytes>, usize)>,
    max_bytes: usize,
) {
    let mut budget = max_bytes;
    let mut first = true;
    for (records, partition_max) in partitions {
        let Some(bytes) = records.as_mut().filter(|b| !b.is_empty()) else {
            continue;
        };
        let keep = whole_batches_within(bytes, budget.min(partition_max), first);
        bytes.truncate(keep);
        budget = budget.saturating_sub(keep);
        first &= keep == 0;
    }
}

/// Validates the batch at the start of `bytes` (length, magic, record count, CRC) and returns its
/// header fields. Bytes after the batch are ignored.
pub fn validate(bytes: &[u8]) -> Result<BatchInfo, BatchError> {
    check(bytes, false)
}

/// As [`validate`], for a batch a log holds: a cleaning (log compaction) may have removed
/// records, so it may hold fewer than one per offset of its range, or none.
pub fn validate_stored(bytes: &[u8]) -> Result<BatchInfo, BatchError> {
    check(bytes, true)
}

fn check(bytes: &[u8], holes: bool) -> Result<BatchInfo, BatchError> {
    let (header, _) = BatchHeader::ref_from_prefix(bytes).map_err(|_| BatchError::Truncated {
        needed: HEADER_BYTES,
        available: bytes.len(),
    })?;
    let batch_length = header.batch_length.get();
    let size = i64::from(batch_length) + LOG_OVERHEAD_BYTES as i64;
    if size < HEADER_BYTES as i64 {
        return Err(BatchError::BadLength(batch_length));
    }
    let size = size as usize;
    if size > bytes.len() {
        return Err(BatchError::Truncated {
            needed: size,
            available: bytes.len(),
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(header.magic));
    }
    let records_count = header.records_count.get();
    let last_offset_delta = header.last_offset_delta.get();
    // Kafka requires one offset per record: count == last delta + 1, and at least one record;
    // a cleaned batch keeps its offsets with fewer records.
    let counted = match holes {
        false => i64::from(records_count) == i64::from(last_offset_delta) + 1,
        true => (0..=i64::from(last_offset_delta) + 1).contains(&i64::from(records_count)),
    };
    if last_offset_delta < 0 || !counted {
        return Err(BatchError::BadRecordCount {
            records_count,
            last_offset_delta,
        });
    }
    let stored = header.crc.get();
    let computed = crc32c::crc32c(&bytes[CRC_START..size]);
    if stored != computed {
        return Err(BatchError::CrcMismatch { stored, computed });
    }
    Ok(BatchInfo {
        base_offset: header.base_offset.get(),
        size_bytes: size,
        last_offset_delta,
        records_count,
        base_timestamp: header.base_timestamp.get(),
        max_timestamp: header.max_timestamp.get(),
        partition_leader_epoch: header.partition_leader_epoch.get(),
        attributes: header.attributes.get(),
        producer_id: header.producer_id.get(),
        producer_epoch: header.producer_epoch.get(),
        base_sequence: header.base_sequence.get(),
    })
}

/// Splits a buffer holding whole batches (a produce request's records, or a run read from a
/// segment) into validated batches. Fails on the first bad batch, or on trailing bytes.
pub fn validate_all(bytes: &[u8]) -> Result<Vec<BatchInfo>, BatchError> {
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let info = validate(&bytes[position..])?;
        position += info.size_bytes;
        batches.push(info);
    }
    Ok(batches)
}

/// As [`validate_all`], for batches a log holds (see [`validate_stored`]).
pub fn validate_all_stored(bytes: &[u8]) -> Result<Vec<BatchInfo>, BatchError> {
    let mut batches = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let info = validate_stored(&bytes[position..])?;
        position += info.size_bytes;
        batches.push(info);
    }
    Ok(batches)
}

/// Writes the header fields the broker owns into a batch that has been validated: the base
/// offset and the leader epoch, neither covered by the CRC.
pub fn assign_offset(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    let (header, _) = BatchHeader::mut_from_prefix(batch).expect("batch was validated");
    header.base_offset.set(base_offset);
    header.partition_leader_epoch.set(leader_epoch);
}

/// Stamps a batch with the broker's time (`message.timestamp.type=LogAppendTime`): sets the
/// timestamp-type attribute and the max timestamp, both under the CRC, so the CRC is recomputed.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let size = {
        let (header, _) = BatchHeader::mut_from_prefix(&mut *batch).expect("batch was validated");
        let attributes = header.attributes.get() | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
        header.attributes.set(attributes);
        header.max_timestamp.set(now_ms);
        (header.batch_length.get() as usize) + LOG_OVERHEAD_BYTES
    };
    let crc = crc32c::crc32c(&batch[CRC_START..size]);
    let (header, _) = BatchHeader::mut_from_prefix(batch).expect("batch was validated");
    header.crc.set(crc);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an uncompressed v2 batch of `count` records with the given values, the way a
    /// producer does: zigzag varints, CreateTime, base offset 0.
    pub fn make_batch(values: &[&[u8]], base_timestamp: i64) -> Vec<u8> {
        let timestamps: Vec<i64> = (0..values.len() as i64)
            .map(|i| base_timestamp + i)
            .collect();
        make_batch_at(values, &timestamps)
    }

    /// As [`make_batch`], with each record's own timestamp (in any order).
    pub fn make_batch_at(values: &[&[u8]], timestamps: &[i64]) -> Vec<u8> {
        assert_eq!(values.len(), timestamps.len());
        let base_timestamp = timestamps[0];
        let mut records = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let mut body = Vec::new();
            body.push(0u8); // record attributes
            put_varint(&mut body, timestamps[i] - base_timestamp); // timestamp delta
            put_varint(&mut body, i as i64); // offset delta
            put_varint(&mut body, -1); // null key
            put_varint(&mut body, value.len() as i64);
            body.extend_from_slice(value);
            put_varint(&mut body, 0); // no headers
            put_varint(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let count = values.len() as i32;
        let mut batch = vec![0u8; HEADER_BYTES];
        batch.extend_from_slice(&records);
        let size = batch.len();
        {
            let (h, _) = BatchHeader::mut_from_prefix(&mut batch[..]).unwrap();
            h.batch_length.set((size - LOG_OVERHEAD_BYTES) as i32);
            h.magic = 2;
            h.last_offset_delta.set(count - 1);
            h.base_timestamp.set(base_timestamp);
            h.max_timestamp
                .set(*timestamps.iter().max().expect("one record"));
            h.producer_id.set(-1);
            h.producer_epoch.set(-1);
            h.base_sequence.set(-1);
            h.records_count.set(count);
        }
        let crc = crc32c::crc32c(&batch[CRC_START..]);
        BatchHeader::mut_from_prefix(&mut batch[..])
            .unwrap()
            .0
            .crc
            .set(crc);
        batch
    }

    fn put_varint(out: &mut Vec<u8>, value: i64) {
        let mut v = ((value << 1) ^ (value >> 63)) as u64;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    #[test]
    fn valid_batch_reports_its_header() {
        let batch = make_batch(&[b"a", b"bb", b"ccc"], 1_000);
        let info = validate(&batch).unwrap();
        assert_eq!(info.size_bytes, batch.len());
        assert_eq!(info.records_count, 3);
        assert_eq!(info.last_offset(), 2);
        assert_eq!(info.base_timestamp, 1_000);
        assert_eq!(info.max_timestamp, 1_002);
        assert_eq!(peek_size(&batch), Some(batch.len() as i64));
    }

    #[test]
    fn flipped_bit_in_a_record_fails_the_crc() {
        let mut batch = make_batch(&[b"hello"], 0);
        let last = batch.len() - 2;
        batch[last] ^= 0x01;
        assert!(matches!(
            validate(&batch),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn short_or_overlong_batches_are_truncated_errors() {
        let batch = make_batch(&[b"hello"], 0);
        assert!(matches!(
            validate(&batch[..30]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(
            validate(&batch[..batch.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut bad = batch.clone();
        bad[8..12].copy_from_slice(&5i32.to_be_bytes());
        assert_eq!(validate(&bad), Err(BatchError::BadLength(5)));
    }

    #[test]
    fn old_magic_and_inconsistent_counts_are_refused() {
        let mut batch = make_batch(&[b"x"], 0);
        batch[16] = 1;
        assert_eq!(validate(&batch), Err(BatchError::UnsupportedMagic(1)));
        let mut batch = make_batch(&[b"x", b"y"], 0);
        batch[57..61].copy_from_slice(&5i32.to_be_bytes());
        assert!(matches!(
            validate(&batch),
            Err(BatchError::BadRecordCount { .. })
        ));
    }

    #[test]
    fn assigning_offsets_keeps_the_crc_valid() {
        let mut batch = make_batch(&[b"a", b"b"], 0);
        assign_offset(&mut batch, 41, 7);
        let info = validate(&batch).unwrap();
        assert_eq!(info.base_offset, 41);
        assert_eq!(info.last_offset(), 42);
        assert_eq!(&batch[12..16], &7i32.to_be_bytes());
    }

    #[test]
    fn log_append_time_rewrites_max_timestamp_and_crc() {
        let mut batch = make_batch(&[b"a"], 5);
        stamp_log_append_time(&mut batch, 99);
        let info = validate(&batch).unwrap();
        assert_eq!(info.max_timestamp, 99);
        assert_eq!(
            info.attributes & ATTR_TIMESTAMP_TYPE_LOG_APPEND,
            ATTR_TIMESTAMP_TYPE_LOG_APPEND
        );
    }

    #[test]
    fn validate_all_splits_concatenated_batches_and_rejects_trailing_bytes() {
        let mut both = make_batch(&[b"a"], 0);
        both.extend(make_batch(&[b"b", b"c"], 0));
        let infos = validate_all(&both).unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[1].records_count, 2);
        both.extend_from_slice(&[0, 0, 0]);
        assert!(validate_all(&both).is_err());
    }
}
