//! Log compaction through the broker: the cleaner chooses a partition, its steps go to the
//! disk, the cleaned segments are swapped in, and what a consumer reads from the start is the
//! latest value of each key at its original offset, before and after a restart, and after a
//! crash at any point of a swap.
use super::*;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::BTreeMap;

/// A batch of records (key, value; `None` value: a tombstone) without a producer id.
pub(super) fn keyed_batch(
    records: &[(&str, Option<&str>)],
    timestamp: i64,
    codec: Compression,
) -> Vec<u8> {
    encode_batch(records, (-1, -1, -1), timestamp, codec)
}

/// A batch of an idempotent producer (id, epoch): records (key, value) from `sequence`.
fn idempotent_batch(producer: (i64, i16), sequence: i32, records: &[(&str, &str)]) -> Vec<u8> {
    let records: Vec<(&str, Option<&str>)> = records.iter().map(|&(k, v)| (k, Some(v))).collect();
    let producer = (producer.0, producer.1, sequence);
    encode_batch(&records, producer, 1_000, Compression::None)
}

fn encode_batch(
    records: &[(&str, Option<&str>)],
    (producer_id, producer_epoch, sequence): (i64, i16, i32),
    timestamp: i64,
    codec: Compression,
) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // (Without a producer, `sequence - 1` keeps the encoder from splitting the batch.)
            sequence: if producer_id < 0 {
                i as i32 - 1
            } else {
                sequence + i as i32
            },
            timestamp,
            key: Some(Bytes::from(key.to_string())),
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

fn compacting_config() -> Config {
    let mut config = Config {
        tail_cache_bytes_per_partition: 1, // reads go to the disk
        ..Config::default()
    };
    config.cleaner.backoff_ms = 100;
    config
}

/// Topic `t`, compacted, in small segments; `updates` records with keys k0..k{keys-1} in
/// turn, value `v<offset>`, one record a batch, every fifth batch gzip.
fn compacted(updates: usize, keys: usize) -> Harness {
    compacted_with(compacting_config(), updates, keys)
}

fn compacted_with(config: Config, updates: usize, keys: usize) -> Harness {
    let mut h = Harness::new(config);
    h.create_topic("t", 1);
    let ops = [
        ("cleanup.policy", 0, Some("compact")),
        ("segment.bytes", 0, Some("2000")),
        ("index.interval.bytes", 0, Some("300")),
        ("min.cleanable.dirty.ratio", 0, Some("0.3")),
    ];
    assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
    for i in 0..updates {
        let key = format!("k{}", i % keys);
        let value = format!("v{i}");
        let codec = match i % 5 {
            0 => Compression::Gzip,
            _ => Compression::None,
        };
        h.produce(
            1,
            "t",
            0,
            -1,
            keyed_batch(&[(&key, Some(&value))], 1_000, codec),
        );
        assert_eq!(h.produce_result(1), (errors::NONE, i as i64));
    }
    h
}

/// Lets time pass in `ms` steps until the cleaner has nothing left to do.
fn run_cleaner(h: &mut Harness, steps: usize) {
    for _ in 0..steps {
        h.now_ms += 150;
        h.handle_timeout();
    }
}

/// Every record read from `from` through Fetch: (offset, key, value), and the batches' offset
/// ranges, which must cover every offset once, in order.
fn read_records(h: &mut Harness, from: i64) -> Vec<(i64, String, Option<String>)> {
    let mut records = Vec::new();
    let mut next = from;
    loop {
        h.fetch(3, "t", next, 0);
        let (error, high_watermark, bytes) = h.fetch_result(3);
        assert_eq!(error, errors::NONE, "fetch at {next}");
        if bytes.is_empty() {
            assert_eq!(next, high_watermark, "nothing read before the end");
            return records;
        }
        for info in batch::validate_all_stored(&bytes).unwrap() {
            assert!(
                info.base_offset <= next && info.last_offset() >= next,
                "batch {}..={} read at {next}: the log is dense",
                info.base_offset,
                info.last_offset()
            );
            next = info.last_offset() + 1;
        }
        let mut buf = bytes.clone();
        while !buf.is_empty() {
            let set = RecordBatchDecoder::decode(&mut buf).unwrap();
            for r in set.records {
                let text = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
                if r.offset >= from {
                    records.push((
                        r.offset,
                        text(r.key.as_ref().unwrap()),
                        r.value.as_ref().map(text),
                    ));
                }
            }
        }
    }
}

/// Checks what a consumer reading from the start sees: records in offset order, each the value
/// produced at its offset, and for every key the latest value produced.
fn check_latest(records: &[(i64, String, Option<String>)], updates: usize, keys: usize) {
    let mut last = -1;
    let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
    for (offset, key, value) in records {
        assert!(*offset > last, "offsets in order");
        last = *offset;
        let value = value.as_deref().unwrap();
        assert_eq!(value, format!("v{offset}"), "a record keeps its offset");
        latest.insert(key, value);
    }
    assert_eq!(latest.len(), keys);
    for k in 0..keys {
        let newest = (0..updates).rev().find(|i| i % keys == k).unwrap();
        assert_eq!(latest[format!("k{k}").as_str()], format!("v{newest}"));
    }
}

/// The partition's bytes of batches.
fn log_bytes(h: &Harness) -> u64 {
    h.broker.topics["t"].partitions[0].log.size_bytes()
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_of_each_key_at_its_offset() {
    let (updates, keys) = (600, 12);
    let mut h = compacted(updates, keys);
    let before = read_records(&mut h, 0);
    assert_eq!(before.len(), updates);
    let bytes_before = log_bytes(&h);
    run_cleaner(&mut h, 40);
    let after = read_records(&mut h, 0);
    check_latest(&after, updates, keys);
    // Bounded by the keys, plus what the active segment and the last dirty ones hold.
    assert!(after.len() < updates / 4, "{} records left", after.len());
    assert!(
        log_bytes(&h) < bytes_before / 3,
        "{} of {bytes_before} bytes",
        log_bytes(&h)
    );
    assert!(h.broker.cleaner.cleanings > 0);
    // No cleaning file is left, and every closed segment has its index file again.
    let files = h.data_files();
    assert!(
        !files
            .iter()
            .any(|p| p.ends_with(".cleaned") || p.ends_with(".swap")),
        "{files:?}"
    );
    let logs = files.iter().filter(|p| p.ends_with(".log")).count();
    let indexes = files.iter().filter(|p| p.ends_with(".index")).count();
    assert_eq!(indexes, logs - 1, "{files:?}");

    // A fetch in the middle of what was removed gets the next record.
    let removed = (0..updates as i64)
        .find(|o| !after.iter().any(|(at, ..)| at == o))
        .unwrap();
    let from_hole = read_records(&mut h, removed);
    assert!(from_hole.first().unwrap().0 > removed);
    assert_eq!(from_hole[..], after[after.len() - from_hole.len()..]);

    // A restart reads the cleaned segments the same way, from their index files or a scan.
    let mut restarted = h.restart(compacting_config());
    assert_eq!(read_records(&mut restarted, 0), after);
    // The cleaner's checkpoint says where the last cleaning ended: nothing is dirty after the
    // restart, so nothing is cleaned again; without it, the whole log is mapped once more.
    run_cleaner(&mut restarted, 10);
    assert_eq!(restarted.broker.cleaner.cleanings, 0);
    let mut forgotten = h.disk.clone();
    forgotten
        .files
        .retain(|p, _| !p.ends_with(crate::io::CLEANER_CHECKPOINT));
    assert!(forgotten.files.len() < h.disk.files.len());
    let (mut forgetful, _) = h.restart_on(forgotten, compacting_config());
    assert_eq!(read_records(&mut forgetful, 0), after); // (a request starts the clock)
    run_cleaner(&mut forgetful, 10);
    assert!(forgetful.broker.cleaner.cleanings > 0);
    assert_eq!(read_records(&mut forgetful, 0), after);
    let mut scanned = h.disk.clone();
    scanned.files.retain(|p, _| !p.ends_with(".index"));
    let (mut rescanned, report) = h.restart_on(scanned, compacting_config());
    assert!(report.scanned.len() > 1);
    assert_eq!(read_records(&mut rescanned, 0), after);
    // And the log goes on from its end.
    rescanned.produce(
        1,
        "t",
        0,
        -1,
        keyed_batch(&[("k0", Some("new"))], 1_000, Compression::None),
    );
    assert_eq!(rescanned.produce_result(1), (errors::NONE, updates as i64));
}

#[test]
fn tombstones_remove_their_key_once_past_the_delete_retention() {
    let mut h = compacted(200, 5);
    let ops = [("delete.retention.ms", 0, Some("1000"))];
    assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
    // k0 is deleted; enough updates of the others follow to roll and dirty the segments.
    h.produce(
        1,
        "t",
        0,
        -1,
        keyed_batch(&[("k0", None)], 1_000, Compression::None),
    );
    assert_eq!(h.produce_result(1).0, errors::NONE);
    for i in 201..400 {
        let key = format!("k{}", 1 + i % 4);
        let value = format!("v{i}");
        h.produce(
            1,
            "t",
            0,
            -1,
            keyed_batch(&[(&key, Some(&value))], 1_000, Compression::None),
        );
        assert_eq!(h.produce_result(1).0, errors::NONE);
    }
    run_cleaner(&mut h, 30);
    let keys: Vec<(String, bool)> = read_records(&mut h, 0)
        .into_iter()
        .map(|(_, k, v)| (k, v.is_none()))
        .collect();
    // The tombstone's batch is older than delete.retention.ms (timestamp 1,000): once its
    // segment was cleaned a first time, a later cleaning removes it, and k0 is gone.
    for _ in 0..3 {
        for i in 0..50 {
            let key = format!("k{}", 1 + i % 4);
            h.produce(
                1,
                "t",
                0,
                -1,
                keyed_batch(&[(&key, Some("x"))], 1_000, Compression::None),
            );
            assert_eq!(h.produce_result(1).0, errors::NONE);
        }
        run_cleaner(&mut h, 30);
    }
    // The first cleaning keeps the tombstone (a consumer reading the topic meanwhile learns
    // of the deletion) and removes every earlier value of k0.
    let k0: Vec<&(String, bool)> = keys.iter().filter(|(k, _)| k == "k0").collect();
    assert_eq!(k0, [&("k0".to_string(), true)]);
    let after: Vec<String> = read_records(&mut h, 0)
        .into_iter()
        .map(|(_, k, _)| k)
        .collect();
    assert!(!after.contains(&"k0".to_string()), "{after:?}");
    assert!(after.contains(&"k1".to_string()));
}

/// A crash at each point of a cleaning's swap: after the cleaned file is written, after the
/// commit (the `.swap` rename), after the old segments are removed. Start-up leaves the old
/// segments or finishes the swap; either way a consumer reads the same latest values.
#[test]
fn a_crash_during_a_swap_leaves_the_old_segments_or_the_new_never_a_mix() {
    let (updates, keys) = (300, 7);
    let mut h = compacted(updates, keys);
    let original = read_records(&mut h, 0);
    h.hold_io = true;
    let mut swap = None;
    for _ in 0..10_000 {
        if let Some(at) = h
            .held
            .iter()
            .position(|c| matches!(c.op, IoOp::SwapCleaned { .. }))
        {
            swap = Some(h.held.remove(at));
            break;
        }
        if h.held.is_empty() {
            h.now_ms += 150;
            h.broker.handle_timeout(h.now_ms);
        } else {
            let command = h.held.remove(0);
            let result = h.perform(command.op);
            h.broker.handle_io_done(h.now_ms, command.token, result);
        }
        h.step();
    }
    let IoOp::SwapCleaned { file, remove } = swap.expect("a cleaning reached its swap").op else {
        unreachable!()
    };
    let cleaned = h.disk.files[&file.cleaned_path()].clone();
    let stages: Vec<(&str, MemoryDisk)> = {
        let mut disk = h.disk.clone();
        let before_commit = disk.clone();
        disk.files.remove(&file.cleaned_path());
        disk.files.insert(file.swap_path(), cleaned.clone());
        let committed = disk.clone();
        for path in &remove {
            disk.files.remove(path);
        }
        vec![
            ("before the commit", before_commit),
            ("after the commit", committed),
            ("after the removals", disk),
        ]
    };
    for (stage, disk) in stages {
        let (mut restarted, _) = h.restart_on(disk, compacting_config());
        let files = restarted.data_files();
        assert!(
            !files
                .iter()
                .any(|p| p.ends_with(".cleaned") || p.ends_with(".swap")),
            "{stage}: {files:?}"
        );
        let records = read_records(&mut restarted, 0);
        check_latest(&records, updates, keys);
        if stage == "before the commit" {
            assert_eq!(records, original, "{stage}: the old segments");
        } else {
            assert!(
                records.len() < original.len(),
                "{stage}: the cleaned segments"
            );
        }
        // The restarted broker cleans on.
        run_cleaner(&mut restarted, 40);
        check_latest(&read_records(&mut restarted, 0), updates, keys);
    }
}

/// An idempotent producer whose every record was superseded keeps its last batch as a header
/// without records: after the cleaning and a restart that rebuilds its state from the cleaned
/// segments (scanned, no index files), a retry of that batch is still known as a duplicate and
/// its next batch is still in sequence.
#[test]
fn an_idempotent_producers_state_survives_the_cleaning_of_all_its_records() {
    let mut h = compacted(0, 1);
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    h.send(5, ApiKey::InitProducerId, 4, &request);
    let r: InitProducerIdResponse = h.response(5, ApiKey::InitProducerId, 4);
    let producer = (r.producer_id.0, r.producer_epoch);
    let last = idempotent_batch(producer, 2, &[("a", "1"), ("b", "1")]);
    h.produce(
        1,
        "t",
        0,
        -1,
        idempotent_batch(producer, 0, &[("a", "0"), ("b", "0")]),
    );
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    h.produce(1, "t", 0, -1, last.clone());
    assert_eq!(h.produce_result(1), (errors::NONE, 2));
    // Another producer supersedes both keys, enough times to roll and dirty the segments.
    for i in 0..100 {
        let key = ["a", "b"][i % 2];
        h.produce(
            1,
            "t",
            0,
            -1,
            keyed_batch(&[(key, Some("x"))], 1_000, Compression::None),
        );
        assert_eq!(h.produce_result(1).0, errors::NONE);
    }
    run_cleaner(&mut h, 30);
    let records = read_records(&mut h, 0);
    assert!(
        records.iter().all(|(offset, ..)| *offset >= 4),
        "{records:?}"
    );

    let mut scanned = h.disk.clone();
    scanned.files.retain(|p, _| !p.ends_with(".index"));
    let (mut restarted, _) = h.restart_on(scanned, compacting_config());
    restarted.produce(1, "t", 0, -1, last);
    assert_eq!(
        restarted.produce_result(1),
        (errors::NONE, 2),
        "a retry answered with its offsets"
    );
    let next = idempotent_batch(producer, 4, &[("a", "2")]);
    restarted.produce(1, "t", 0, -1, next);
    assert_eq!(
        restarted.produce_result(1),
        (errors::NONE, 104),
        "the next in sequence"
    );
    let gap = idempotent_batch(producer, 9, &[("a", "3")]);
    restarted.produce(1, "t", 0, -1, gap);
    assert_eq!(
        restarted.produce_result(1).0,
        errors::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
}

/// A key map too small for the dirty part (`log.cleaner.dedupe.buffer.size`): each cleaning maps
/// what fits (three keys here) and cleans up to there, the next maps on from there; every pass
/// keeps the latest value of each key, and together they remove most of the log.
#[test]
fn a_small_key_map_cleans_in_several_passes_to_the_same_log() {
    let (updates, keys) = (600, 12);
    let mut config = compacting_config();
    config.cleaner.dedupe_buffer_bytes = 3 * (crate::log::compact::KEY_OVERHEAD_BYTES + 3);
    let mut small = compacted_with(config, updates, keys);
    let mut large = compacted(updates, keys);
    run_cleaner(&mut small, 200);
    run_cleaner(&mut large, 40);
    assert!(
        small.broker.cleaner.cleanings > large.broker.cleaner.cleanings + 3,
        "{} cleanings with a small map, {} with a large one",
        small.broker.cleaner.cleanings,
        large.broker.cleaner.cleanings
    );
    let records = read_records(&mut small, 0);
    check_latest(&records, updates, keys);
    assert!(
        records.len() < updates / 2,
        "{} records left",
        records.len()
    );
}
