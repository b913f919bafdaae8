//! Kafka v2 record batches of an exact size, the unit every case writes.
//!
//! A batch of `B` bytes holds `B / RECORD_BYTES` records (at least one), each about
//! [`RECORD_BYTES`] long including its framing, so a 64 KiB batch is 64 records of ~1 KiB. The
//! values are sized so that the encoded batch (61-byte header included) is exactly `B` bytes: the
//! plain writer writes the same number of bytes per batch as the broker stores, and batches of
//! 4 KiB or more fill whole O_DIRECT blocks.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

/// The nominal size of one record, framing included.
pub const RECORD_BYTES: usize = 1024;

/// A record batch and how many records it holds.
#[derive(Clone)]
pub struct Batch {
    pub bytes: Bytes,
    pub records: usize,
}

/// Records per batch of `batch_bytes`.
pub fn records_per_batch(batch_bytes: usize) -> usize {
    (batch_bytes / RECORD_BYTES).max(1)
}

/// Encodes a batch of exactly `batch_bytes` bytes: uncompressed, CreateTime, no producer id (not
/// idempotent, so the broker accepts the same batch again and again).
pub fn exact_batch(batch_bytes: usize) -> Result<Batch, String> {
    let records = records_per_batch(batch_bytes);
    // Header 61 bytes; each record ~9 bytes of framing around its value. The last value absorbs
    // the difference, re-encoded until the varint lengths settle.
    let framing = 9;
    let per_record = (batch_bytes.saturating_sub(61) / records).saturating_sub(framing);
    if per_record == 0 {
        return Err(format!("a {batch_bytes}-byte batch is too small"));
    }
    let mut sizes = vec![per_record; records];
    let filler = filler_bytes(batch_bytes);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for _ in 0..8 {
        let encoded = encode(&sizes, &filler, now_ms)?;
        let diff = batch_bytes as i64 - encoded.len() as i64;
        if diff == 0 {
            return Ok(Batch {
                bytes: encoded,
                records,
            });
        }
        let last = sizes.last_mut().expect("at least one record");
        let adjusted = *last as i64 + diff;
        if adjusted <= 0 {
            break;
        }
        *last = adjusted as usize;
    }
    Err(format!(
        "cannot encode a record batch of exactly {batch_bytes} bytes"
    ))
}

fn encode(value_sizes: &[usize], filler: &Bytes, timestamp_ms: i64) -> Result<Bytes, String> {
    let records: Vec<Record> = value_sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Base sequence -1 (none): the encoder writes the first record's sequence.
            sequence: i as i32 - 1,
            timestamp: timestamp_ms,
            key: None,
            value: Some(filler.slice(..size.min(filler.len()))),
            headers: IndexMap::new(),
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

/// Incompressible-looking bytes (xorshift), enough for the largest value.
fn filler_bytes(len: usize) -> Bytes {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_have_the_exact_size_and_record_count() {
        for size in [1024, 4096, 16 * 1024, 64 * 1024, 1024 * 1024] {
            let batch = exact_batch(size).expect("encodes");
            assert_eq!(batch.bytes.len(), size);
            assert_eq!(batch.records, size / 1024);
            // The record count field of the v2 header.
            let count = i32::from_be_bytes(batch.bytes[57..61].try_into().unwrap());
            assert_eq!(count as usize, batch.records);
        }
    }
}
