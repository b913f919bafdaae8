use super::*;

/// A topic `t` with small segments, and `batches` acks=all batches of two records each with
/// timestamps 5 and 6 produced into it.
fn small_segments(batches: usize) -> Harness {
    let mut h = Harness::new(Config {
        tail_cache_bytes_per_partition: 1,
        retention_check_interval_ms: 1_000,
        ..Config::default()
    });
    h.create_topic("t", 1);
    let ops = [
        ("segment.bytes", 0, Some("1000")),
        ("index.interval.bytes", 0, Some("200")),
    ];
    assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
    for _ in 0..batches {
        h.produce(1, "t", 0, -1, make_batch(&[&[b'v'; 150], b"w"], 5));
        assert_eq!(h.produce_result(1).0, errors::NONE);
    }
    h
}

fn segment_files(h: &Harness, suffix: &str) -> Vec<String> {
    h.data_files()
        .into_iter()
        .filter(|p| p.ends_with(suffix))
        .cloned()
        .collect()
}

/// Every offset from `from` read back through Fetch, in order.
fn read_all(h: &mut Harness, from: i64) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut next = from;
    loop {
        h.fetch(3, "t", next, 0);
        let (error, _, records) = h.fetch_result(3);
        assert_eq!(error, errors::NONE);
        let batches = batch::validate_all(&records).unwrap();
        let got: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.base_offset..=b.last_offset())
            .filter(|o| *o >= next)
            .collect();
        let Some(&last) = got.last() else {
            return offsets;
        };
        offsets.extend(got);
        next = last + 1;
    }
}

#[test]
fn segments_roll_at_segment_bytes_and_reads_cross_them_from_disk() {
    let mut h = small_segments(30);
    let logs = segment_files(&h, ".log");
    assert!(logs.len() >= 6, "~4 batches a 1,000-byte segment: {logs:?}");
    // Every closed segment has its index file.
    assert_eq!(segment_files(&h, ".index").len(), logs.len() - 1);
    assert_eq!(read_all(&mut h, 0), (0..60).collect::<Vec<_>>());
    assert_eq!(read_all(&mut h, 37), (37..60).collect::<Vec<_>>());
    assert_eq!(h.list_offset("t", 0, 5), (errors::NONE, 0));
}

#[test]
fn retention_ms_deletes_old_segments_and_fetch_below_the_start_is_out_of_range() {
    let mut h = small_segments(30);
    let files = segment_files(&h, ".log").len();
    // The records' timestamps are 5 and 6 ms; now is ~1,000,000 ms.
    let ops = [("retention.ms", 0, Some("100000"))];
    assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
    h.now_ms += 2_000;
    h.handle_timeout();
    // Every closed segment went; the active one was rolled, to go at the next pass.
    assert_eq!(segment_files(&h, ".log").len(), 1, "of {files}");
    h.now_ms += 2_000;
    h.handle_timeout();
    assert!(segment_files(&h, ".log").is_empty());
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 60));
    h.fetch(3, "t", 10, 0);
    assert_eq!(h.fetch_result(3).0, errors::OFFSET_OUT_OF_RANGE);
    // Offsets carry on after a restart, from the start persisted in the metadata.
    let mut h = h.restart(Config::default());
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 60));
    assert_eq!(h.produce_ok("t", 0, 1), 60);
}

#[test]
fn retention_bytes_keeps_the_newest_segments() {
    let mut h = small_segments(30);
    let ops = [("retention.bytes", 0, Some("3000"))];
    assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
    h.now_ms += 2_000;
    h.handle_timeout();
    let (_, start) = h.list_offset("t", 0, -2);
    assert!(start > 20 && start < 60, "log start {start}");
    assert_eq!(read_all(&mut h, start), (start..60).collect::<Vec<_>>());
    let log = &h.broker.topics["t"].partitions[0].log;
    assert!(log.size_bytes() >= 3000 && log.size_bytes() < 3000 + 1000);
}

#[test]
fn delete_records_then_retention_removes_the_segments_below_the_start() {
    let mut h = small_segments(30);
    let before = segment_files(&h, ".log").len();
    assert_eq!(h.delete_records("t", 0, 30), (errors::NONE, 30));
    h.now_ms += 2_000;
    h.handle_timeout();
    let after = segment_files(&h, ".log").len();
    assert!(after < before && after > 1, "{before} -> {after}");
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 30));
    assert_eq!(read_all(&mut h, 30), (30..60).collect::<Vec<_>>());
}

#[test]
fn a_clean_shutdown_checkpoints_so_the_next_start_scans_nothing() {
    let mut h = small_segments(10);
    h.broker.begin_shutdown();
    h.step();
    assert!(!h.broker.is_flushing());
    assert!(h.disk.files.contains_key(crate::io::CLEAN_SHUTDOWN_FILE));
    let mut broker = Broker::new(Config::default());
    let mut disk = h.disk.clone();
    let report = broker.start_up(&mut disk, h.now_ms).unwrap();
    assert!(report.clean);
    assert!(report.scanned.is_empty(), "{:?}", report.scanned);
    assert!(report.loaded >= 3);
    assert!(!disk.files.contains_key(crate::io::CLEAN_SHUTDOWN_FILE));
    let mut h = Harness {
        broker,
        disk,
        now_ms: h.now_ms,
        ..Harness::new(Config::default())
    };
    h.step();
    assert_eq!(read_all(&mut h, 0), (0..20).collect::<Vec<_>>());
    assert_eq!(h.produce_ok("t", 0, 1), 20);
    // Without the mark, the last segment is scanned again.
    let h = h.restart(Config::default());
    assert_eq!(h.broker.high_watermark("t", 0), Some(21));
}

#[test]
fn after_a_crash_closed_segments_load_from_their_index_and_only_the_last_is_scanned() {
    let h = small_segments(30);
    let mut broker = Broker::new(Config::default());
    let mut disk = h.disk.clone();
    let report = broker.start_up(&mut disk, h.now_ms).unwrap();
    assert!(!report.clean);
    assert_eq!(report.scanned.len(), 1);
    assert_eq!(report.loaded, segment_files(&h, ".index").len());
    // A damaged index file is not trusted: its segment is scanned and the index rewritten.
    let mut damaged = h.disk.clone();
    let index = segment_files(&h, ".index")[1].clone();
    damaged.files.get_mut(&index).unwrap()[10] ^= 1;
    let mut broker = Broker::new(Config::default());
    let report = broker.start_up(&mut damaged, h.now_ms).unwrap();
    assert_eq!(report.scanned.len(), 2);
    let mut h2 = Harness {
        broker,
        disk: damaged,
        now_ms: h.now_ms,
        ..Harness::new(Config::default())
    };
    h2.step();
    let base = crate::io::parse_segment_name(index.rsplit('/').next().unwrap())
        .unwrap()
        .0;
    let (rebuilt, _) = crate::segment::Segment::decode_index(base, &h2.disk.files[&index]).unwrap();
    let (original, _) = crate::segment::Segment::decode_index(base, &h.disk.files[&index]).unwrap();
    assert_eq!(
        (rebuilt.next_offset, rebuilt.bytes, rebuilt.index_entries()),
        (
            original.next_offset,
            original.bytes,
            original.index_entries()
        ),
        "the index file is rebuilt"
    );
    assert_eq!(read_all(&mut h2, 0), (0..60).collect::<Vec<_>>());
}

#[test]
fn a_torn_closed_segment_drops_the_segments_after_it() {
    let h = small_segments(30);
    let mut disk = h.disk.clone();
    let logs = segment_files(&h, ".log");
    let index = segment_files(&h, ".index");
    // The third segment lost its index and its last bytes (its sync never happened).
    disk.files.remove(&index[2]);
    let third = disk.files.get_mut(&logs[2]).unwrap();
    let len = third.len();
    third[len - 4096..].fill(0);
    third.truncate(len - 10);
    let mut broker = Broker::new(Config::default());
    broker.start_up(&mut disk, h.now_ms).unwrap();
    let hw = broker.high_watermark("t", 0).unwrap();
    assert!(hw < 60 && hw > 8, "{hw}");
    let remaining = disk.files.keys().filter(|p| p.ends_with(".log")).count();
    assert_eq!(remaining, 3, "the segments after the torn one are gone");
}

/// The data directory's identity (meta.properties): written at the first start-up, another
/// node's directory refused before anything in it changes, metadata of another cluster refused,
/// and the cluster id the file names kept when the metadata was never stored.
#[test]
fn a_data_directory_knows_its_node_and_cluster_and_refuses_another() {
    let h = Harness::new(Config::default());
    let h = h.restart(Config::default());
    let written = h
        .disk
        .files
        .get(META_PROPERTIES)
        .expect("written at start-up");
    let identity = Identity::decode(written).unwrap();
    assert_eq!(identity.node_id, 1);
    assert_eq!(identity.cluster_id, h.broker.cluster_id());
    let cluster = identity.cluster_id.clone();

    // Another node id on this directory: refused, naming both.
    let start = |disk: &MemoryDisk, config: Config| {
        let mut disk = disk.clone();
        let mut broker = Broker::new(config);
        broker
            .start_up(&mut disk, 0)
            .map(|_| broker.cluster_id().to_string())
    };
    let other_node = Config {
        node_id: 2,
        ..Config::default()
    };
    let refused = start(&h.disk, other_node).unwrap_err();
    assert!(
        refused.contains("belongs to node 1") && refused.contains("not to node 2"),
        "{refused}"
    );

    // The metadata of another cluster under this identity: refused.
    let mut mixed = h.disk.clone();
    let other = Identity {
        node_id: 1,
        cluster_id: "AnotherClusterIdAAAAAA".into(),
    };
    mixed.files.insert(META_PROPERTIES.into(), other.encode());
    let refused = start(&mixed, Config::default()).unwrap_err();
    assert!(
        refused.contains("belongs to cluster AnotherClusterIdAAAAAA"),
        "{refused}"
    );

    // No metadata yet (a crash at the first start): the file's cluster id is kept.
    let mut fresh = MemoryDisk::default();
    fresh.files.insert(META_PROPERTIES.into(), other.encode());
    let seeded = Config {
        seed: 99,
        ..Config::default()
    };
    assert_eq!(start(&fresh, seeded).unwrap(), "AnotherClusterIdAAAAAA");
    assert_ne!(cluster, "AnotherClusterIdAAAAAA");
}

#[test]
fn meta_properties_is_read_as_kafka_writes_it_and_its_faults_are_named() {
    let kafka = b"#\n#Sun Dec 06 10:00:00 UTC 2026\nnode.id=3\ndirectory.id=xyz\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n";
    assert_eq!(
        Identity::decode(kafka),
        Ok(Identity {
            node_id: 3,
            cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into()
        })
    );
    let faults: &[(&[u8], &str)] = &[
        (
            b"version=0\nnode.id=1\ncluster.id=x\n",
            "version 0 is not 1",
        ),
        (b"node.id=1\ncluster.id=x\n", "version (missing)"),
        (
            b"version=1\nnode.id=one\ncluster.id=x\n",
            "line 2: node.id 'one' is not a number",
        ),
        (
            b"version=1\nnode.id=1\n",
            "must name node.id and cluster.id",
        ),
        (
            b"version=1\nnode.id\n",
            "line 2: 'node.id' is not key=value",
        ),
        (b"\xff\xfe", "not text"),
    ];
    for (bytes, want) in faults {
        let error = Identity::decode(bytes).unwrap_err();
        assert!(error.contains(want), "{error} lacks {want}");
    }
}
