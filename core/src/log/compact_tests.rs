use super::*;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// A batch of producer 77 (epoch 1, sequences from 10) at `base`: one record per (key,
/// value), at consecutive offsets.
fn batch_of(base: i64, records: &[(Option<&str>, Option<&str>)], codec: Compression) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 3,
            producer_id: 77,
            producer_epoch: 1,
            timestamp_type: TimestampType::Creation,
            offset: base + i as i64,
            sequence: 10 + i as i32,
            timestamp: 1_000 + i as i64,
            key: key.map(|k| Bytes::from(k.to_string())),
            value: value.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.to_vec()
}

/// (offset, key, value) of every record of `bytes`, as a client decodes them.
fn decoded(bytes: &[u8]) -> Vec<(i64, String, Option<String>)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    let text = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
    set.records
        .iter()
        .map(|r| {
            (
                r.offset,
                text(r.key.as_ref().unwrap()),
                r.value.as_ref().map(text),
            )
        })
        .collect()
}

fn rewritten(cleaned: Cleaned) -> Vec<u8> {
    match cleaned {
        Cleaned::Rewritten(bytes) => bytes,
        other => panic!("not rewritten: {other:?}"),
    }
}

fn mapped(batches: &[&[u8]]) -> KeyMap {
    let mut map = KeyMap::new(1 << 20);
    for b in batches {
        assert!(map.add_batch(b).unwrap());
    }
    map
}

#[test]
fn the_latest_record_of_each_key_stays_at_its_offset_in_every_codec() {
    for codec in CODECS {
        let first = batch_of(
            0,
            &[
                (Some("a"), Some("a1")),
                (Some("b"), Some("b1")),
                (Some("a"), Some("a2")),
            ],
            codec,
        );
        let second = batch_of(
            3,
            &[(Some("b"), Some("b2")), (Some("c"), Some("c1"))],
            codec,
        );
        let map = mapped(&[&first, &second]);
        assert_eq!((map.len(), map.end()), (3, Some(5)));
        assert_eq!(map.latest(b"a"), Some(2));

        let cleaned = rewritten(clean_batch(&first, &map, BatchRules::default()).unwrap());
        assert_eq!(
            decoded(&cleaned),
            vec![(2, "a".into(), Some("a2".into()))],
            "{codec:?}"
        );
        let info = batch::validate_stored(&cleaned).unwrap();
        let before = batch::validate(&first).unwrap();
        assert_eq!(
            (info.base_offset, info.last_offset(), info.records_count),
            (0, 2, 1),
            "offsets kept: {codec:?}"
        );
        assert_eq!(info.compression(), before.compression(), "{codec:?}");
        assert_eq!(
            (info.producer_id, info.producer_epoch, info.base_sequence),
            (
                before.producer_id,
                before.producer_epoch,
                before.base_sequence
            ),
            "the producer's state reads the same"
        );
        assert_eq!(
            (info.base_timestamp, info.max_timestamp),
            (before.base_timestamp, before.max_timestamp)
        );
        assert!(
            batch::validate(&cleaned).is_err(),
            "a hole is not a produce"
        );
        assert_eq!(
            clean_batch(&second, &map, BatchRules::default()).unwrap(),
            Cleaned::Whole,
            "nothing later: {codec:?}"
        );
        // Cleaning again changes nothing more.
        assert_eq!(
            clean_batch(&cleaned, &map, BatchRules::default()).unwrap(),
            Cleaned::Whole
        );
    }
}

#[test]
fn tombstones_stay_until_their_segment_is_past_the_retention_then_go() {
    let bytes = batch_of(
        10,
        &[(Some("k"), Some("v")), (Some("k"), None)],
        Compression::Lz4,
    );
    let map = mapped(&[&bytes]);
    let kept = rewritten(clean_batch(&bytes, &map, BatchRules::default()).unwrap());
    assert_eq!(decoded(&kept), vec![(11, "k".into(), None)]);
    let drop = BatchRules {
        drop_tombstones: true,
        keep_if_empty: false,
    };
    assert_eq!(clean_batch(&bytes, &map, drop).unwrap(), Cleaned::Removed);
    // Its producer's last batch keeps its header, with no records and no compression.
    let last = BatchRules {
        drop_tombstones: true,
        keep_if_empty: true,
    };
    let header = rewritten(clean_batch(&bytes, &map, last).unwrap());
    assert_eq!(header.len(), HEADER_BYTES);
    let info = batch::validate_stored(&header).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset(), info.records_count),
        (10, 11, 0)
    );
    assert_eq!(
        (info.compression(), info.producer_id, info.base_sequence),
        (0, 77, 10)
    );
    assert!(read_records(&header).unwrap().records.is_empty());
}

#[test]
fn records_without_a_key_go_and_control_batches_stay_whole() {
    let bytes = batch_of(
        0,
        &[(None, Some("x")), (Some("k"), Some("v"))],
        Compression::None,
    );
    let map = mapped(&[&bytes]);
    let cleaned = rewritten(clean_batch(&bytes, &map, BatchRules::default()).unwrap());
    assert_eq!(decoded(&cleaned), vec![(1, "k".into(), Some("v".into()))]);

    let mut control = BytesMut::new();
    let marker = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: 3,
        producer_id: 77,
        producer_epoch: 1,
        timestamp_type: TimestampType::Creation,
        offset: 2,
        sequence: -1,
        timestamp: 1_000,
        key: Some(Bytes::from_static(&[0, 0, 0, 1])),
        value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        headers: Default::default(),
    };
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut control, [&marker], &options).unwrap();
    let mut map = mapped(&[&bytes]);
    assert!(map.add_batch(&control).unwrap());
    assert_eq!(map.len(), 1, "a marker's key is not a record's");
    assert_eq!(
        clean_batch(&control, &map, BatchRules::default()).unwrap(),
        Cleaned::Whole
    );
}

#[test]
fn the_key_map_stops_at_its_bound_and_always_takes_one_batch() {
    let one = batch_of(
        0,
        &[(Some("aa"), Some("1")), (Some("bb"), Some("1"))],
        Compression::None,
    );
    let again = batch_of(2, &[(Some("aa"), Some("2"))], Compression::None);
    let more = batch_of(3, &[(Some("cc"), Some("1"))], Compression::None);
    let mut map = KeyMap::new(1);
    assert!(
        map.add_batch(&one).unwrap(),
        "the first batch whatever its size"
    );
    assert_eq!(map.bytes(), 2 * (2 + KEY_OVERHEAD_BYTES));
    let mut map = KeyMap::new(2 * (2 + KEY_OVERHEAD_BYTES));
    assert!(map.add_batch(&one).unwrap());
    assert!(
        map.add_batch(&again).unwrap(),
        "a key it holds costs nothing more"
    );
    assert!(
        !map.add_batch(&more).unwrap(),
        "a new key would pass the bound"
    );
    assert_eq!(
        (map.len(), map.end(), map.latest(b"cc")),
        (2, Some(3), None)
    );
    assert!(map.add_batch(&one).is_err(), "batches come in offset order");
}

#[test]
fn a_damaged_batch_is_an_error_never_a_panic() {
    let bytes = batch_of(
        0,
        &[(Some("k"), Some("v")), (Some("j"), Some("w"))],
        Compression::None,
    );
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert!(read_records(&flipped).is_err(), "CRC");
    assert!(
        read_records(&bytes[..bytes.len() - 1]).is_err(),
        "truncated"
    );
    // A record length that runs past the batch, under a valid CRC.
    let mut long = bytes.clone();
    long[HEADER_BYTES] = 0x7e; // zigzag 63
    let crc = crc32c::crc32c(&long[CRC_START..]);
    long[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(read_records(&long).is_err());
    // Garbage compressed bytes.
    let mut gz = batch_of(0, &[(Some("k"), Some("v"))], Compression::Gzip);
    let at = HEADER_BYTES; // the gzip magic
    gz[at] ^= 0xff;
    let crc = crc32c::crc32c(&gz[CRC_START..]);
    gz[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(read_records(&gz).is_err());
    assert!(KeyMap::new(10).add_batch(&gz).is_err());
}

#[test]
fn the_dirty_ratio_is_the_share_written_since_the_last_cleaning() {
    assert_eq!(dirty_ratio(0, 0), 0.0);
    assert_eq!(dirty_ratio(300, 100), 0.25);
    assert_eq!(dirty_ratio(0, 10), 1.0);
}

fn segment(base_offset: i64, next_offset: i64, bytes: u64, max_timestamp: i64) -> SegmentSummary {
    SegmentSummary {
        base_offset,
        next_offset,
        bytes,
        max_timestamp,
    }
}

#[test]
fn a_cleaning_is_due_past_the_dirty_ratio_and_never_touches_the_active_segment() {
    let segments = [
        segment(0, 100, 1_000, 10),
        segment(100, 200, 1_000, 20),
        segment(200, 300, 1_000, 30),
        segment(300, 350, 500, 40), // active
    ];
    let policy = CompactionPolicy::default();
    let due = cleaning_due(&segments, 0, 350, 100, policy).unwrap();
    assert_eq!((due.first_dirty, due.end, due.dirty_ratio), (0, 300, 1.0));
    // Cleaned below 200: a third is dirty, under 0.5.
    assert_eq!(cleaning_due(&segments, 200, 350, 100, policy), None);
    let eager = CompactionPolicy {
        min_dirty_ratio: 0.3,
        ..policy
    };
    let due = cleaning_due(&segments, 200, 350, 100, eager).unwrap();
    assert_eq!((due.first_dirty, due.end), (200, 300));
    assert!((due.dirty_ratio - 1.0 / 3.0).abs() < 1e-9);
    // Everything cleaned: nothing is due.
    assert_eq!(cleaning_due(&segments, 300, 350, 100, eager), None);
    // Only an active segment: nothing.
    assert_eq!(cleaning_due(&segments[3..], 0, 350, 100, policy), None);
}

#[test]
fn uncommitted_and_too_recent_segments_wait_and_the_max_lag_forces_a_cleaning() {
    let segments = [
        segment(0, 100, 1_000, 10),
        segment(100, 200, 1_000, 500),
        segment(200, 300, 1_000, 900),
        segment(300, 301, 10, 950),
    ];
    let policy = CompactionPolicy::default();
    // The high watermark inside the second segment: only the first is cleanable.
    let due = cleaning_due(&segments, 0, 150, 1_000, policy).unwrap();
    assert_eq!(due.end, 100);
    // min.compaction.lag.ms: segments with records newer than now - lag wait.
    let lagged = CompactionPolicy {
        min_lag_ms: 300,
        ..policy
    };
    let due = cleaning_due(&segments, 0, 301, 1_000, lagged).unwrap();
    assert_eq!(due.end, 200, "the third is too recent");
    // Cleaned below 100, the dirty rest under the ratio: not due, unless the oldest dirty
    // segment passed max.compaction.lag.ms.
    let lazy = CompactionPolicy {
        min_dirty_ratio: 0.9,
        ..policy
    };
    assert_eq!(cleaning_due(&segments, 100, 301, 1_000, lazy), None);
    let bounded = CompactionPolicy {
        max_lag_ms: 400,
        ..lazy
    };
    let due = cleaning_due(&segments, 100, 301, 1_000, bounded).unwrap();
    assert!(due.forced);
    assert_eq!((due.first_dirty, due.end), (100, 300));
}
