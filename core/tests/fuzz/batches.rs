//! Record batches for the fuzz targets: valid ones from kafka-protocol's `RecordBatchEncoder`,
//! then damaged, either blindly (bytes) or in their header fields with the CRC fixed up so the
//! damage gets past the CRC check to the code behind it.

use super::mutate::{self, I16_SPECIAL, I32_SPECIAL};
use super::rng::Rng;
use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use spate_core::groups::{CommittedOffset, GroupSnapshot, MemberSnapshot, OffsetsRecord};

/// Header field offsets of a v2 batch.
pub const BASE_OFFSET: usize = 0;
pub const LENGTH: usize = 8;
pub const LEADER_EPOCH: usize = 12;
pub const MAGIC: usize = 16;
pub const CRC: usize = 17;
pub const ATTRIBUTES: usize = 21;
pub const LAST_OFFSET_DELTA: usize = 23;
pub const BASE_TIMESTAMP: usize = 27;
pub const MAX_TIMESTAMP: usize = 35;
pub const PRODUCER_ID: usize = 43;
pub const PRODUCER_EPOCH: usize = 51;
pub const BASE_SEQUENCE: usize = 53;
pub const RECORDS_COUNT: usize = 57;
pub const HEADER: usize = 61;

/// Who writes the batch: a plain producer, or an idempotent one with a sequence.
#[derive(Debug, Clone, Copy)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub sequence: i32,
}

impl Producer {
    pub const NONE: Producer = Producer {
        id: -1,
        epoch: -1,
        sequence: -1,
    };
}

/// A valid, uncompressed v2 batch of `count` records at base offset 0.
pub fn encode(rng: &mut Rng, count: usize, producer: Producer, base_timestamp: i64) -> Vec<u8> {
    let transactional = rng.percent(5);
    let control = rng.percent(3);
    let log_append = rng.percent(5);
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut headers: kafka_protocol::indexmap::IndexMap<StrBytes, Option<Bytes>> =
                Default::default();
            for h in 0..rng.below(3) * rng.below(2) {
                let value = rng.percent(80).then(|| Bytes::from(rng.some_bytes(8)));
                headers.insert(StrBytes::from_string(format!("h{h}")), value);
            }
            let key_len = rng.small_len(16);
            let value_len = rng.small_len(300);
            Record {
                transactional,
                control,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: producer.id,
                producer_epoch: producer.epoch,
                timestamp_type: if log_append {
                    TimestampType::LogAppend
                } else {
                    TimestampType::Creation
                },
                offset: i as i64,
                sequence: producer.sequence.wrapping_add(i as i32),
                timestamp: base_timestamp + rng.range(0, 1_000),
                key: rng.percent(70).then(|| Bytes::from(rng.bytes(key_len))),
                value: rng.percent(95).then(|| Bytes::from(rng.bytes(value_len))),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("kafka-protocol encodes an uncompressed v2 batch");
    buf.to_vec()
}

/// A random valid batch: mostly small, plain or idempotent.
pub fn valid(rng: &mut Rng) -> Vec<u8> {
    let count = match rng.below(10) {
        0 => 10 + rng.below(40),
        _ => 1 + rng.below(4),
    };
    let producer = if rng.percent(30) {
        Producer {
            id: *rng.pick(&[0, 1, 2, 42]),
            epoch: *rng.pick(&[0, 0, 1, -1]),
            sequence: *rng.pick(&[0, 0, 1, 5, i32::MAX - 1]),
        }
    } else {
        Producer::NONE
    };
    let base_timestamp = *rng.pick(&[0, 1_000_000, 1_700_000_000_000, -1]);
    encode(rng, count, producer, base_timestamp)
}

/// Recomputes the CRC32C over `attributes..batch end` (or the buffer's end when shorter).
pub fn fix_crc(batch: &mut [u8]) {
    if batch.len() < HEADER {
        return;
    }
    let length = i32::from_be_bytes(batch[LENGTH..LENGTH + 4].try_into().expect("4 bytes"));
    let end = (i64::from(length) + 12).clamp(ATTRIBUTES as i64, batch.len() as i64) as usize;
    let crc = crc32c::crc32c(&batch[ATTRIBUTES..end]);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

fn set_i32(batch: &mut [u8], at: usize, v: i32) {
    batch[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn set_i64(batch: &mut [u8], at: usize, v: i64) {
    batch[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Sets one header field of the batch at `at` to an interesting value; the CRC is fixed up most
/// of the time, so the change reaches the code after the CRC check.
pub fn mutate_header(rng: &mut Rng, data: &mut [u8], at: usize) {
    if data.len() < at + HEADER {
        return;
    }
    let batch = &mut data[at..];
    let i64_special = [
        i64::MAX,
        i64::MIN,
        -1,
        0,
        1,
        i64::from(i32::MAX),
        i64::MAX - 1,
        rng.next_u64() as i64,
    ];
    match rng.below(10) {
        0 => set_i64(batch, BASE_OFFSET, *rng.pick(&i64_special)),
        1 => set_i32(batch, LENGTH, *rng.pick(I32_SPECIAL)),
        2 => batch[MAGIC] = *rng.pick(&[0u8, 1, 3, 0xff]),
        3 => {
            // Attributes: compression codecs (kept opaque by the broker), timestamp type,
            // transactional, control, and undefined bits.
            let v = *rng.pick(&[1i16, 2, 3, 4, 5, 7, 0x08, 0x10, 0x20, 0x40, -1, i16::MIN]);
            batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&v.to_be_bytes());
        }
        4 => {
            // Consistent count and delta, at the extremes: offsets jump by up to 2^31.
            let delta = *rng.pick(&[0, 1, i32::MAX - 1, i32::MAX / 2, 1 << 20]);
            set_i32(batch, LAST_OFFSET_DELTA, delta);
            set_i32(batch, RECORDS_COUNT, delta.wrapping_add(1));
        }
        5 => {
            let field = *rng.pick(&[LAST_OFFSET_DELTA, RECORDS_COUNT, BASE_SEQUENCE]);
            set_i32(batch, field, *rng.pick(I32_SPECIAL));
        }
        6 => {
            let field = *rng.pick(&[BASE_TIMESTAMP, MAX_TIMESTAMP]);
            set_i64(batch, field, *rng.pick(&i64_special));
        }
        7 => set_i64(
            batch,
            PRODUCER_ID,
            *rng.pick(&[-1, 0, 1, 42, i64::MAX, i64::MIN]),
        ),
        8 => {
            let v = *rng.pick(I16_SPECIAL);
            batch[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&v.to_be_bytes());
        }
        _ => set_i32(batch, LEADER_EPOCH, *rng.pick(I32_SPECIAL)),
    }
    if rng.percent(85) {
        fix_crc(batch);
    }
}

/// Start of each batch in a run of whole batches (as far as their length fields go).
pub fn batch_starts(data: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0usize;
    while at + HEADER <= data.len() && starts.len() < 64 {
        starts.push(at);
        let length = i32::from_be_bytes(data[at + LENGTH..at + LENGTH + 4].try_into().unwrap());
        if length < 49 {
            break;
        }
        at += length as usize + 12;
    }
    starts
}

/// One or more valid batches back to back, as a produce request carries them.
pub fn valid_run(rng: &mut Rng) -> Vec<u8> {
    let mut out = valid(rng);
    while rng.percent(20) {
        out.extend(valid(rng));
    }
    out
}

/// Damages a run of batches: header fields with the CRC fixed, or bytes.
pub fn damage(rng: &mut Rng, data: &mut Vec<u8>) {
    let starts = batch_starts(data);
    if !starts.is_empty() && rng.percent(25) {
        // The records themselves damaged, the CRC made right again: what a buggy or hostile
        // producer sends, which only the record decoders (not the broker's checks) see.
        let at = *rng.pick(&starts);
        let length = i32::from_be_bytes(data[at + LENGTH..at + LENGTH + 4].try_into().unwrap());
        let end = (at + 12 + length.max(49) as usize).min(data.len());
        let mut body = data[at + HEADER..end].to_vec();
        mutate::mutate(rng, &mut body, 0, None);
        let tail = data.split_off(end);
        data.truncate(at + HEADER);
        data.extend(body);
        let length = (data.len() - at - 12) as i32;
        data[at + LENGTH..at + LENGTH + 4].copy_from_slice(&length.to_be_bytes());
        fix_crc(&mut data[at..]);
        data.extend(tail);
    } else if !starts.is_empty() && rng.percent(50) {
        let at = *rng.pick(&starts);
        mutate_header(rng, data, at);
        if rng.percent(20) {
            mutate::mutate(rng, data, 0, None);
        }
    } else {
        mutate::mutate(rng, data, 0, None);
    }
}

/// A segment file as the broker writes it: batches with dense base offsets from 0, zero padding
/// to a 4096-byte block, and sometimes a torn or corrupt tail.
pub fn segment(rng: &mut Rng) -> Vec<u8> {
    let mut file = Vec::new();
    let mut next = 0i64;
    for _ in 0..rng.below(6) {
        let mut batch = valid(rng);
        set_i64(&mut batch, BASE_OFFSET, next);
        let delta = i32::from_be_bytes(
            batch[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4]
                .try_into()
                .unwrap(),
        );
        next += i64::from(delta) + 1;
        file.extend(batch);
    }
    if rng.percent(80) {
        let padded = file.len().div_ceil(4096).max(1) * 4096;
        file.resize(padded, 0);
    }
    match rng.below(6) {
        0 => {
            // A torn write: garbage over the end of the data.
            let at = rng.below(file.len() + 1);
            let n = rng.small_len(600).min(file.len() - at);
            let garbage = rng.bytes(n);
            file[at..at + n].copy_from_slice(&garbage);
        }
        1 => {
            let starts = batch_starts(&file);
            if !starts.is_empty() {
                let at = *rng.pick(&starts);
                mutate_header(rng, &mut file, at);
            }
        }
        2 => mutate::mutate(rng, &mut file, 0, None),
        // Non-zero bytes far into the padding, after a clean end.
        3 if !file.is_empty() => {
            let at = rng.below(file.len());
            file[at] |= 1;
        }
        _ => {}
    }
    file
}

/// A record of `__consumer_offsets` as the broker writes it (`OffsetsRecord::encode`), with
/// awkward values: empty and very long names, negative and extreme timeouts and generations,
/// a leader that is not a member, duplicate members, tombstones.
pub fn offsets_record(rng: &mut Rng) -> OffsetsRecord {
    fn name(rng: &mut Rng, typical: &[&str]) -> String {
        match rng.below(20) {
            0 => String::new(),
            // Longer strings are refused before a record is made (see `put_string`).
            1 => "x".repeat(*rng.pick(&[255, 4096, 32_767])),
            2 => "ü".repeat(20),
            _ => rng.pick(typical).to_string(),
        }
    }
    let timeout = |rng: &mut Rng| *rng.pick(&[10_000, 6_000, 45_000, 0, -1, i32::MAX, i32::MIN]);
    let timestamp =
        |rng: &mut Rng| *rng.pick(&[1_700_000_000_000, 0, -1, i64::MAX, i64::MIN, 1_000]);
    if rng.percent(60) {
        let value = rng.percent(85).then(|| CommittedOffset {
            offset: *rng.pick(&[0, 1, 5, -1, i64::MAX, i64::MIN]),
            leader_epoch: *rng.pick(&[-1, 0, 5, i32::MIN]),
            metadata: name(rng, &["", "meta"]),
            commit_timestamp_ms: timestamp(rng),
        });
        OffsetsRecord::Offset {
            group: name(rng, &["g", "h"]),
            topic: name(rng, &["t", "u", "nope", "__consumer_offsets"]),
            partition: *rng.pick(&[0, 1, 2, -1, i32::MAX, i32::MIN]),
            value,
        }
    } else {
        let members: Vec<MemberSnapshot> = (0..rng.below(4))
            .map(|i| MemberSnapshot {
                member_id: name(rng, &["m-1", "m-2", "fuzz-m"]),
                group_instance_id: rng.percent(20).then(|| format!("i{i}")),
                client_id: name(rng, &["fuzz", "c"]),
                client_host: name(rng, &["/127.0.0.1", "/h"]),
                rebalance_timeout_ms: timeout(rng),
                session_timeout_ms: timeout(rng),
                subscription: Bytes::from(rng.some_bytes(32)),
                assignment: Bytes::from(rng.some_bytes(32)),
            })
            .collect();
        let leader = match rng.below(4) {
            0 => None,
            1 => Some("ghost".to_string()),
            _ => members.first().map(|m| m.member_id.clone()),
        };
        let value = rng.percent(85).then(|| GroupSnapshot {
            protocol_type: name(rng, &["consumer", "connect"]),
            generation_id: *rng.pick(&[0, 1, 2, -1, i32::MAX, i32::MIN]),
            protocol_name: rng.percent(85).then(|| name(rng, &["range", "roundrobin"])),
            leader,
            timestamp_ms: timestamp(rng),
            members,
        });
        OffsetsRecord::Group {
            group: name(rng, &["g", "h"]),
            value,
        }
    }
}

/// A batch of `__consumer_offsets` records, sometimes with damaged keys or values (the CRC is
/// still right: the batch is what a client could produce to the topic).
pub fn offsets_batch(rng: &mut Rng) -> Vec<u8> {
    let records: Vec<Record> = (0..1 + rng.below(3))
        .map(|i| {
            let (key, value) = offsets_record(rng).encode();
            let mut key = key.to_vec();
            let mut value = value.map(|v| v.to_vec());
            if rng.percent(20) {
                mutate::mutate(rng, &mut key, 0, None);
            }
            if let Some(v) = value.as_mut().filter(|_| rng.percent(20)) {
                mutate::mutate(rng, v, 0, None);
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1 + i as i32,
                timestamp: 1_700_000_000_000,
                key: Some(Bytes::from(key)),
                value: value.map(Bytes::from),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("kafka-protocol encodes an uncompressed v2 batch");
    buf.to_vec()
}
