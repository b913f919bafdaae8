//! Record batches as the console tools see them: encoding what `spate produce` sends and
//! splitting and decoding what a Fetch returns.
//!
//! A Fetch response's record data is a run of v2 batches, and the last one may be cut short by
//! the size limit. The batches are framed here (base offset, length) before the codec sees them,
//! so a partial tail is recognised and skipped rather than reported as corruption.

use crate::client::decode_guarded;
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

/// base offset (8) + batch length (4)
const BATCH_LOG_OVERHEAD: usize = 12;
/// From partition leader epoch to record count: the part of the header the length covers.
const BATCH_HEADER_AFTER_LENGTH: usize = 49;
const MAGIC_OFFSET: usize = 16;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const RECORD_COUNT_OFFSET: usize = 57;
/// The smallest encoding of one record: length, attributes, three deltas/lengths, headers.
const RECORD_BYTES_MIN: usize = 7;
const CONTROL_FLAG: i16 = 1 << 5;
const COMPRESSION_MASK: i16 = 0b111;

/// A key and value as read from a line.
pub struct Line {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// Encodes `lines` as one v2 record batch without compression, all stamped `timestamp_ms`
/// (CreateTime), with no producer id (not idempotent).
pub fn encode_batch(lines: &[Line], timestamp_ms: i64) -> Result<Bytes, String> {
    assert!(
        !lines.is_empty(),
        "a record batch holds at least one record"
    );
    let records: Vec<Record> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let offset = i as i64;
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset,
                // The encoder keeps records in one batch while offset - sequence is constant
                // and writes the first record's sequence as the base sequence: -1, none.
                sequence: offset as i32 - 1,
                timestamp: timestamp_ms,
                key: line.key.clone(),
                value: line.value.clone(),
                headers: IndexMap::new(),
            }
        })
        .collect();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &options)
        .map_err(|e| format!("cannot encode a record batch: {e}"))?;
    Ok(buf.freeze())
}

/// The records of one fetched batch.
pub struct FetchedBatch {
    pub records: Vec<Record>,
    /// The offset after the batch's last offset: where the next fetch starts.
    pub next_offset: i64,
}

/// What a partition's fetched record data held.
pub struct Fetched {
    pub batches: Vec<FetchedBatch>,
    /// Bytes were left that do not make a whole batch (the fetch size limit cut it).
    pub partial_tail: bool,
}

/// Splits `data` into whole batches and decodes them; a partial trailing batch is skipped.
/// Control batches (transaction markers) yield no records but still advance the offset.
pub fn decode_fetched(data: Bytes) -> Result<Fetched, String> {
    let mut rest = data;
    let mut batches = Vec::new();
    loop {
        if rest.is_empty() {
            return Ok(Fetched {
                batches,
                partial_tail: false,
            });
        }
        if rest.len() < BATCH_LOG_OVERHEAD {
            break;
        }
        let base_offset = read_i64(&rest, 0);
        let length = read_i32(&rest, 8);
        let length = usize::try_from(length)
            .ok()
            .filter(|&l| l >= BATCH_HEADER_AFTER_LENGTH)
            .ok_or_else(|| {
                format!("record batch at offset {base_offset} has an invalid length {length}")
            })?;
        let total = BATCH_LOG_OVERHEAD + length;
        if rest.len() < total {
            break;
        }
        let batch = rest.split_to(total);
        batches.push(decode_batch(batch, base_offset, length)?);
    }
    Ok(Fetched {
        batches,
        partial_tail: true,
    })
}

/// Decodes one whole batch (`length` bytes after the 12-byte log overhead).
fn decode_batch(batch: Bytes, base_offset: i64, length: usize) -> Result<FetchedBatch, String> {
    let magic = batch[MAGIC_OFFSET] as i8;
    if magic != 2 {
        return Err(format!(
            "record batch at offset {base_offset} uses message format v{magic}; spate reads only \
             v2 record batches"
        ));
    }
    let last_offset_delta = read_i32(&batch, LAST_OFFSET_DELTA_OFFSET);
    let next_offset = base_offset
        .checked_add(i64::from(last_offset_delta))
        .and_then(|o| o.checked_add(1))
        .filter(|_| last_offset_delta >= 0)
        .ok_or_else(|| {
            format!("record batch at offset {base_offset} has an invalid last offset delta")
        })?;
    // Bound the record count by the bytes before the codec allocates for it.
    let record_count = read_i32(&batch, RECORD_COUNT_OFFSET);
    let records_bytes_max = length - BATCH_HEADER_AFTER_LENGTH;
    let count_fits = usize::try_from(record_count)
        .is_ok_and(|count| count.saturating_mul(RECORD_BYTES_MIN) <= records_bytes_max);
    if !count_fits {
        return Err(format!(
            "record batch at offset {base_offset} claims {record_count} records in {length} bytes"
        ));
    }
    let attributes = read_i16(&batch, ATTRIBUTES_OFFSET);
    let mut buf = batch;
    let set =
        decode_guarded(|| RecordBatchDecoder::decode(&mut buf)).map_err(
            |e| match compression_name(attributes) {
                Some(codec) if e.contains("not enabled") => format!(
                "the record batch at offset {base_offset} is compressed with {codec}, which this \
                 build of spate cannot decompress (it needs kafka-protocol's compression \
                 features); read the topic with kcat or another Kafka client meanwhile"
            ),
                _ => format!("corrupt record batch at offset {base_offset}: {e}"),
            },
        )?;
    let records = if attributes & CONTROL_FLAG != 0 {
        Vec::new()
    } else {
        set.records
    };
    Ok(FetchedBatch {
        records,
        next_offset,
    })
}

/// The codec a batch's attributes name, `None` for uncompressed (or an unknown codec).
fn compression_name(attributes: i16) -> Option<&'static str> {
    match attributes & COMPRESSION_MASK {
        1 => Some("gzip"),
        2 => Some("snappy"),
        3 => Some("lz4"),
        4 => Some("zstd"),
        _ => None,
    }
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(bytes[at..at + 2].try_into().expect("2 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(key: Option<&str>, value: Option<&str>) -> Line {
        Line {
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        }
    }

    /// A batch as the broker would return it: base offset rewritten, CRC unchanged (the CRC
    /// covers only what follows the attributes' start).
    fn at_offset(batch: &Bytes, base_offset: i64) -> Bytes {
        let mut bytes = BytesMut::from(&batch[..]);
        bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
        bytes.freeze()
    }

    #[test]
    fn encoded_batch_is_one_v2_batch_without_producer_id() {
        let lines = [
            line(None, Some("hello")),
            line(Some("k"), Some("")),
            line(None, None),
        ];
        let batch = encode_batch(&lines, 1_700_000_000_000).unwrap();
        assert_eq!(batch[MAGIC_OFFSET], 2);
        assert_eq!(
            read_i32(&batch, 8) as usize,
            batch.len() - BATCH_LOG_OVERHEAD
        );
        assert_eq!(
            read_i16(&batch, ATTRIBUTES_OFFSET),
            0,
            "no compression, CreateTime"
        );
        assert_eq!(read_i32(&batch, LAST_OFFSET_DELTA_OFFSET), 2);
        assert_eq!(read_i64(&batch, 43), -1, "producer id");
        assert_eq!(read_i32(&batch, 53), -1, "base sequence");
        assert_eq!(read_i32(&batch, RECORD_COUNT_OFFSET), 3);
    }

    #[test]
    fn fetched_batches_decode_with_offsets_keys_and_values() {
        let first =
            encode_batch(&[line(None, Some("hello")), line(None, Some("test"))], 7).unwrap();
        let second = encode_batch(&[line(Some("k"), None)], 8).unwrap();
        let mut data = BytesMut::new();
        data.extend_from_slice(&at_offset(&first, 10));
        data.extend_from_slice(&at_offset(&second, 12));
        let fetched = decode_fetched(data.freeze()).unwrap();
        assert!(!fetched.partial_tail);
        assert_eq!(fetched.batches.len(), 2);
        let records: Vec<&Record> = fetched.batches.iter().flat_map(|b| &b.records).collect();
        let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [10, 11, 12]);
        assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
        assert_eq!(records[0].key, None);
        assert_eq!(records[0].timestamp, 7);
        assert_eq!(records[2].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[2].value, None);
        assert_eq!(fetched.batches[0].next_offset, 12);
        assert_eq!(fetched.batches[1].next_offset, 13);
    }

    #[test]
    fn partial_trailing_batch_is_skipped() {
        let batch = encode_batch(&[line(None, Some("hello"))], 1).unwrap();
        for cut in [1, 11, 12, batch.len() - 1] {
            let mut data = BytesMut::from(&batch[..]);
            data.extend_from_slice(&batch[..cut]);
            let fetched = decode_fetched(data.freeze()).unwrap();
            assert_eq!(fetched.batches.len(), 1, "cut at {cut}");
            assert!(fetched.partial_tail);
        }
        let only_partial = decode_fetched(batch.slice(..batch.len() - 1)).unwrap();
        assert!(only_partial.batches.is_empty() && only_partial.partial_tail);
    }

    #[test]
    fn corrupt_batches_are_errors_not_panics() {
        let batch = encode_batch(&[line(None, Some("hello"))], 1).unwrap();
        let mut flipped = BytesMut::from(&batch[..]);
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        let error = decode_fetched(flipped.freeze()).err().unwrap();
        assert!(
            error.contains("corrupt record batch at offset 0"),
            "{error}"
        );

        let mut huge_count = BytesMut::from(&batch[..]);
        huge_count[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4]
            .copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_fetched(huge_count.freeze()).is_err());

        let mut old_magic = BytesMut::from(&batch[..]);
        old_magic[MAGIC_OFFSET] = 1;
        let error = decode_fetched(old_magic.freeze()).err().unwrap();
        assert!(error.contains("message format v1"), "{error}");

        let mut short_length = BytesMut::from(&batch[..]);
        short_length[8..12].copy_from_slice(&3i32.to_be_bytes());
        assert!(decode_fetched(short_length.freeze()).is_err());
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        let batch = encode_batch(&[line(Some("key"), Some("value")), line(None, None)], 5).unwrap();
        for cut in 0..batch.len() {
            let _ = decode_fetched(batch.slice(..cut));
        }
        for at in 0..batch.len() {
            let mut bytes = BytesMut::from(&batch[..]);
            bytes[at] ^= 0x80;
            let _ = decode_fetched(bytes.freeze());
        }
    }

    /// CRC-32C, bit by bit: enough to re-seal a batch whose attributes a test changed.
    fn crc32c(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82f6_3b78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_compressed_batch_names_its_codec_and_what_to_do() {
        let batch = encode_batch(&[line(None, Some("hello"))], 1).unwrap();
        for (codec, name) in [(1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")] {
            let mut bytes = BytesMut::from(&batch[..]);
            bytes[ATTRIBUTES_OFFSET + 1] |= codec;
            let crc = crc32c(&bytes[ATTRIBUTES_OFFSET..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            // The bytes claim a codec but are not compressed: an error naming the batch, and
            // the codec when this build lacks it.
            let Err(error) = decode_fetched(bytes.freeze()) else {
                panic!("uncompressed bytes decoded as {name}");
            };
            assert!(error.contains("offset 0"), "{error}");
            if error.contains("cannot decompress") {
                assert!(
                    error.contains(&format!("compressed with {name}")),
                    "{error}"
                );
            }
        }
        assert_eq!(compression_name(0), None);
        assert_eq!(
            compression_name(0b1000),
            None,
            "the timestamp type bit is no codec"
        );
    }
}
