//! Tests of the partition log.

use super::*;
use crate::batch::tests::make_batch;
use std::collections::BTreeMap;

const POLICY: SegmentPolicy = SegmentPolicy {
    segment_bytes: 1 << 30,
    segment_ms: 1 << 40,
    index_interval_bytes: 4096,
};

fn append_at(
    log: &mut PartitionLog,
    values: &[&[u8]],
    now_ms: i64,
    policy: &SegmentPolicy,
) -> Appended {
    let bytes = make_batch(values, 1_000);
    let info = batch::validate(&bytes).unwrap();
    log.append_as_leader(BytesMut::from(&bytes[..]), &info, 0, now_ms, false, policy)
}

fn append_values(log: &mut PartitionLog, values: &[&[u8]]) -> Appended {
    append_at(log, values, 0, &POLICY)
}

/// The segment files of a log, by base offset.
type Files = BTreeMap<i64, Vec<u8>>;

/// Performs every write, sync and seal the log asks for on in-memory "files".
fn flush(log: &mut PartitionLog, files: &mut Files) -> Vec<(i64, Vec<u8>)> {
    let mut seals = Vec::new();
    loop {
        let mut progress = false;
        while let Some(write) = log.poll_write() {
            assert_eq!(write.position % BLOCK_BYTES, 0);
            assert_eq!(write.data.len() as u64 % BLOCK_BYTES, 0);
            let file = files.entry(write.segment_base_offset).or_default();
            let end = write.position as usize + write.data.len();
            if file.len() < end {
                file.resize(end, 0);
            }
            file[write.position as usize..end].copy_from_slice(&write.data);
            log.handle_write_done();
            progress = true;
        }
        if log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_some() {
            log.handle_sync_done();
            log.set_high_watermark(log.flushed_offset());
            progress = true;
        }
        if let Some(seal) = log.poll_seal() {
            seals.push(seal);
            log.handle_seal_done(true);
            progress = true;
        }
        if !progress {
            return seals;
        }
    }
}

/// Performs a disk read plan against the files until it gives an answer.
fn perform_read(files: &Files, mut read: DiskRead) -> ReadOutcome {
    loop {
        let file = &files[&read.segment_base_offset];
        let end = (read.position as usize + read.len).min(file.len());
        let data = Bytes::copy_from_slice(&file[read.position as usize..end]);
        match read.complete(&data) {
            ReadOutcome::More(next) => {
                assert!(
                    next.position > read.position || next.len > read.len,
                    "progress"
                );
                read = next;
            }
            other => return other,
        }
    }
}

fn offsets_in(batches: &[u8]) -> Vec<i64> {
    batch::validate_all(batches)
        .unwrap()
        .iter()
        .flat_map(|b| b.base_offset..=b.last_offset())
        .collect()
}

#[test]
fn append_assigns_dense_offsets() {
    let mut log = PartitionLog::new(1 << 20);
    assert_eq!(
        append_values(&mut log, &[b"a", b"b", b"c"]),
        Appended {
            base_offset: 0,
            last_offset: 2
        }
    );
    assert_eq!(
        append_values(&mut log, &[b"d"]),
        Appended {
            base_offset: 3,
            last_offset: 3
        }
    );
    assert_eq!(log.log_end_offset(), 4);
}

#[test]
fn records_are_invisible_until_flushed() {
    let mut log = PartitionLog::new(1 << 20);
    append_values(&mut log, &[b"a"]);
    assert_eq!(log.high_watermark(), 0);
    assert_eq!(log.read(0, 1024), ReadPlan::Empty);
    let write = log.poll_write().unwrap();
    assert!(log.poll_write().is_none(), "one write in flight at a time");
    assert!(
        log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_none(),
        "nothing written yet"
    );
    log.handle_write_done();
    assert_eq!(
        log.poll_sync(0, &FlushPolicy::IMMEDIATE, false),
        Some(SyncRound {
            segments: vec![0],
            name_files: true
        })
    );
    assert!(
        log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_none(),
        "one sync in flight at a time"
    );
    log.handle_sync_done();
    assert_eq!(log.high_watermark(), 0, "the replica decides when it moves");
    assert!(log.set_high_watermark(log.flushed_offset()));
    assert_eq!(log.high_watermark(), 1);
    assert_eq!(write.position, 0);
    match log.read(0, 1024) {
        ReadPlan::Cached(batches) => assert_eq!(batches.len(), 1),
        other => panic!("expected a cached read, got {other:?}"),
    }
}

/// A segment file this log created needs its directory synced with the first sync that
/// covers it, and no other; a file found at recovery never does.
#[test]
fn a_new_segment_file_is_named_durably_by_its_first_sync() {
    fn round(log: &mut PartitionLog, values: &[&[u8]], policy: &SegmentPolicy) -> SyncRound {
        for value in values {
            append_at(log, &[value], 0, policy);
        }
        while log.poll_write().is_some() {
            log.handle_write_done();
        }
        let round = log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).unwrap();
        log.handle_sync_done();
        round
    }
    let named = |segments: Vec<i64>, name_files| SyncRound {
        segments,
        name_files,
    };
    let tiny = SegmentPolicy {
        segment_bytes: 1,
        ..POLICY
    };
    let mut log = PartitionLog::new(1 << 20);
    assert_eq!(round(&mut log, &[b"a"], &POLICY), named(vec![0], true));
    assert_eq!(round(&mut log, &[b"b"], &POLICY), named(vec![0], false));
    // Each batch now fills a segment: two new files, and one sync names both.
    assert_eq!(
        round(&mut log, &[b"c", b"d"], &tiny),
        named(vec![2, 3], true)
    );
    // A recovered segment's file exists, named: appending to it needs no directory sync.
    let mut recovered = PartitionLog::empty_at(0, 1 << 20);
    recovered.recover_segment(0, &make_batch(&[b"x"], 1_000), 4096);
    recovered.finish_recovery(0);
    assert_eq!(
        round(&mut recovered, &[b"y"], &POLICY),
        named(vec![0], false)
    );
}

#[test]
fn a_sync_covers_only_what_was_written_before_it() {
    let mut log = PartitionLog::new(1 << 20);
    append_values(&mut log, &[b"a"]);
    log.poll_write().unwrap();
    log.handle_write_done();
    assert!(log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_some());
    append_values(&mut log, &[b"b"]);
    log.poll_write().unwrap();
    log.handle_write_done();
    log.handle_sync_done();
    assert_eq!(
        log.flushed_offset(),
        1,
        "the second batch was written after the sync began"
    );
    assert!(log.poll_sync(0, &FlushPolicy::IMMEDIATE, false).is_some());
    log.handle_sync_done();
    assert_eq!(log.flushed_offset(), 2);
}

#[test]
fn writes_rewrite_the_partial_block_and_the_file_recovers_exactly() {
    let mut log = PartitionLog::new(1 << 20);
    let mut files = Files::new();
    for i in 0..200u32 {
        let value = vec![b'x'; (i as usize * 37) % 3000];
        append_values(&mut log, &[&value, b"tail"]);
        flush(&mut log, &mut files);
    }
    let mut recovered = PartitionLog::empty_at(0, 1 << 20);
    let report = recovered.recover_segment(0, &files[&0], 4096);
    recovered.finish_recovery(0);
    assert_eq!(report.next_offset, 400);
    assert_eq!(report.batches, 200);
    assert_eq!(report.torn_bytes, 0);
    assert_eq!(recovered.log_end_offset(), 400);
    assert_eq!(recovered.high_watermark(), 400);
    assert_eq!(recovered.read(10, 1), log.read(10, 1));
}

#[test]
fn recovery_truncates_a_torn_tail_and_appends_continue() {
    let mut log = PartitionLog::new(1 << 20);
    let mut files = Files::new();
    append_values(&mut log, &[b"one"]);
    append_values(&mut log, &[b"two", b"three"]);
    flush(&mut log, &mut files);
    let file = files.get_mut(&0).unwrap();
    let first_len = make_batch(&[b"one"], 1_000).len();
    let second_len = make_batch(&[b"two", b"three"], 1_000).len();
    let good_end = first_len + second_len;
    let torn_at = good_end - second_len / 2;
    file[torn_at..].fill(0);
    file[torn_at] = 0xAB;
    let mut recovered = PartitionLog::empty_at(0, 1 << 20);
    let report = recovered.recover_segment(0, file, 4096);
    recovered.finish_recovery(0);
    assert_eq!(report.next_offset, 1);
    assert_eq!(report.valid_bytes as usize, good_end - second_len);
    assert!(report.torn_bytes > 0);
    assert!(report.stop_reason.is_some());
    assert!(report.needs_truncate());
    file.truncate(report.valid_bytes as usize);
    assert_eq!(append_values(&mut recovered, &[b"again"]).base_offset, 1);
    flush(&mut recovered, &mut files);
    let mut again = PartitionLog::empty_at(0, 1 << 20);
    let report = again.recover_segment(0, &files[&0], 4096);
    assert_eq!(report.torn_bytes, 0);
    assert_eq!(again.log_end_offset(), 2);
}

#[test]
fn reads_respect_max_bytes_but_return_at_least_one_batch() {
    let mut log = PartitionLog::new(1 << 20);
    let mut files = Files::new();
    for _ in 0..5 {
        append_values(&mut log, &[&[7u8; 100]]);
    }
    flush(&mut log, &mut files);
    let one = make_batch(&[&[7u8; 100]], 1_000).len();
    match log.read(0, 1) {
        ReadPlan::Cached(b) => assert_eq!(b.len(), 1),
        other => panic!("{other:?}"),
    }
    match log.read(2, one * 2) {
        ReadPlan::Cached(b) => assert_eq!(b.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.read(5, 100), ReadPlan::Empty);
    assert_eq!(log.read(6, 100), ReadPlan::OutOfRange);
    assert_eq!(log.read(-1, 100), ReadPlan::OutOfRange);
}

#[test]
fn a_moved_log_start_hides_older_offsets_from_reads_and_timestamp_lookups() {
    let mut log = PartitionLog::new(1 << 20);
    let mut files = Files::new();
    for _ in 0..3 {
        append_values(&mut log, &[b"a", b"b"]);
    }
    flush(&mut log, &mut files);
    log.advance_log_start(3);
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.read(2, 1 << 20), ReadPlan::OutOfRange);
    match log.read(3, 1 << 20) {
        // The batch holding offset 3 starts at 2, as in Kafka: the consumer skips offset 2.
        ReadPlan::Cached(batches) => assert_eq!(batches.len(), 2),
        other => panic!("{other:?}"),
    }
    let Some(TimestampPlan::Cached(batch)) = log.timestamp_lookup(0) else {
        panic!("the batch is cached")
    };
    assert_eq!(
        first_record_at_or_after(&batch, 0, 3),
        Some((3, 1_001)),
        "offset 2 is below the log start"
    );
    log.advance_log_start(1);
    assert_eq!(log.log_start_offset(), 3, "the log start never moves back");
}

#[test]
#[should_panic(expected = "beyond the high watermark")]
fn the_log_start_cannot_pass_the_high_watermark() {
    let mut log = PartitionLog::new(1 << 20);
    append_values(&mut log, &[b"a"]);
    log.advance_log_start(1);
}

/// A log of `batches` batches of ~`value_bytes` each, flushed, with a 1-byte tail cache so
/// that reads below the newest batch go to "disk".
fn disk_log(batches: usize, value_bytes: usize, policy: &SegmentPolicy) -> (PartitionLog, Files) {
    let mut log = PartitionLog::new(1);
    let mut files = Files::new();
    for i in 0..batches {
        let value = vec![b'a' + (i % 26) as u8; value_bytes];
        append_at(&mut log, &[&value, b"x"], i as i64, policy);
        flush(&mut log, &mut files);
    }
    (log, files)
}

#[test]
fn disk_reads_start_at_the_sparse_index_and_return_the_batch_holding_the_offset() {
    let policy = SegmentPolicy {
        index_interval_bytes: 1000,
        ..POLICY
    };
    let (mut log, files) = disk_log(100, 300, &policy);
    for offset in [0, 1, 57, 101, 150, 197] {
        let ReadPlan::Disk(read) = log.read(offset, 1) else {
            panic!("offset {offset} is below the tail cache")
        };
        assert!(read.first_offset <= offset);
        let ReadOutcome::Found { batches, rest } = perform_read(&files, read) else {
            panic!("offset {offset} is there")
        };
        let got = offsets_in(&batches);
        assert_eq!(got, vec![offset - offset % 2, offset - offset % 2 + 1]);
        assert!(rest.is_some(), "the read-ahead brought more");
    }
    // Larger limits take more batches, all checked and dense.
    let ReadPlan::Disk(read) = log.read(20, 5_000) else {
        panic!()
    };
    let ReadOutcome::Found { batches, rest } = perform_read(&files, read) else {
        panic!()
    };
    let got = offsets_in(&batches);
    assert_eq!(got[0], 20);
    assert!(got.len() > 10 && batches.len() <= 5_000);
    // The next fetch continues from the read-ahead, in memory.
    let rest = rest.unwrap();
    let next = rest.first_offset;
    assert_eq!(next, got.last().unwrap() + 1);
    log.keep_read_ahead(rest);
    let ReadPlan::Cached(from_memory) = log.read(next, 5_000) else {
        panic!("served from the read-ahead")
    };
    assert_eq!(offsets_in(&from_memory[0])[0], next);
}

#[test]
fn a_read_ahead_a_follower_brought_shows_a_consumer_nothing_above_the_high_watermark() {
    let (mut log, mut files) = disk_log(10, 300, &POLICY);
    // Ten more batches written and synced, but not yet committed: followers may read them,
    // consumers may not.
    for i in 10..20 {
        append_at(&mut log, &[&[b'q'; 300], b"x"], i, &POLICY);
    }
    while let Some(write) = log.poll_write() {
        let file = files.entry(write.segment_base_offset).or_default();
        let end = write.position as usize + write.data.len();
        file.resize(file.len().max(end), 0);
        file[write.position as usize..end].copy_from_slice(&write.data);
        log.handle_write_done();
    }
    assert_eq!((log.high_watermark(), log.written_offset()), (20, 40));
    let ReadPlan::Disk(read) = log.read_for_replica(0, 1) else {
        panic!("below the tail cache")
    };
    let ReadOutcome::Found { rest, .. } = perform_read(&files, read) else {
        panic!("offset 0 is there")
    };
    let rest = rest.expect("the follower's read brought more");
    log.keep_read_ahead(rest);
    let mut offset = 2;
    loop {
        let batches = match log.read(offset, 1 << 20) {
            ReadPlan::Cached(batches) => batches,
            ReadPlan::Disk(read) => match perform_read(&files, read) {
                ReadOutcome::Found { batches, .. } => vec![batches],
                other => panic!("{other:?}"),
            },
            ReadPlan::Empty => break,
            ReadPlan::OutOfRange => panic!("offset {offset} is in the log"),
        };
        let got: Vec<i64> = batches.iter().flat_map(|b| offsets_in(b)).collect();
        assert!(
            got.iter().all(|&o| o < 20),
            "a consumer read {got:?}, above the high watermark 20"
        );
        offset = got.last().unwrap() + 1;
    }
    assert_eq!(offset, 20, "a consumer reads up to the high watermark");
}

#[test]
fn a_corrupt_batch_on_disk_is_never_served() {
    let (mut log, mut files) = disk_log(10, 100, &POLICY);
    let ReadPlan::Disk(read) = log.read(4, 1) else {
        panic!()
    };
    let file = files.get_mut(&0).unwrap();
    let batch = make_batch(&[&[b'a'; 100], b"x"], 1_000).len();
    file[2 * batch + 70] ^= 0xFF;
    assert!(matches!(
        perform_read(&files, read),
        ReadOutcome::Corrupt(error) if error.contains("CRC") || error.contains("crc")
    ));
}

#[test]
fn segments_roll_by_size_and_age_and_each_closed_one_is_sealed() {
    let policy = SegmentPolicy {
        segment_bytes: 2_000,
        segment_ms: 1_000,
        index_interval_bytes: 500,
    };
    let mut log = PartitionLog::new(1 << 20);
    let mut files = Files::new();
    let mut seals = Vec::new();
    for i in 0..20 {
        append_at(&mut log, &[&[b'v'; 400]], 10 + i, &policy);
        seals.extend(flush(&mut log, &mut files));
    }
    let bases = log.segment_bases();
    assert!(bases.len() >= 4, "~4 batches a segment: {bases:?}");
    assert_eq!(files.keys().copied().collect::<Vec<_>>(), bases);
    assert!(files
        .values()
        .all(|f| f.len() <= 2_000 + BLOCK_BYTES as usize));
    assert_eq!(
        seals.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
        bases[..bases.len() - 1],
        "every closed segment got its index file, in order"
    );
    // Age: the active segment is older than segment.ms at the next append.
    let segments = log.segment_bases().len();
    append_at(&mut log, &[b"late"], 10_000, &policy);
    assert_eq!(log.segment_bases().len(), segments + 1);
    // Index files load back into the same segments.
    for (base, data) in &seals {
        let (segment, _) = Segment::decode_index(*base, data).unwrap();
        assert_eq!(segment.base_offset, *base);
        let next = bases.iter().find(|b| *b > base).unwrap();
        assert_eq!(segment.next_offset, *next);
    }
}

#[test]
fn reads_and_timestamp_lookups_cross_segments() {
    let policy = SegmentPolicy {
        segment_bytes: 3_000,
        segment_ms: 1 << 40,
        index_interval_bytes: 700,
    };
    let (mut log, files) = disk_log(60, 300, &policy);
    assert!(log.segment_bases().len() > 5);
    for offset in (0..118).step_by(7) {
        let ReadPlan::Disk(read) = log.read(offset, 1) else {
            panic!("offset {offset} on disk")
        };
        let ReadOutcome::Found { batches, .. } = perform_read(&files, read) else {
            panic!("offset {offset} found")
        };
        assert_eq!(offsets_in(&batches)[0], offset - offset % 2);
    }
    // Batch i has timestamps 1,000 and 1,001 (make_batch), appended at now = i: look up by
    // timestamp finds the first batch, whatever the segment.
    let Some(TimestampPlan::Disk(read)) = log.timestamp_lookup(1_001) else {
        panic!("on disk")
    };
    let ReadOutcome::Found { batches, .. } = perform_read(&files, read) else {
        panic!()
    };
    assert_eq!(
        first_record_at_or_after(&batches, 1_001, 0),
        Some((1, 1_001))
    );
    assert!(log.timestamp_lookup(1_002).is_none());
    assert_eq!(log.max_timestamp(), Some((1_001, 1)));
}

#[test]
fn retention_deletes_whole_closed_segments_by_time_size_and_log_start() {
    let policy = SegmentPolicy {
        segment_bytes: 2_000,
        segment_ms: 1 << 40,
        index_interval_bytes: 4096,
    };
    let mut log = PartitionLog::new(1 << 20);
    let mut files = Files::new();
    // Timestamps are fixed at 1,000-1,001 by make_batch; retention compares them to now.
    for i in 0..30 {
        append_at(&mut log, &[&[b'v'; 400]], i, &policy);
        flush(&mut log, &mut files);
    }
    let bases = log.segment_bases();
    let total = log.size_bytes();
    // Nothing is old enough, and no size limit: nothing goes.
    assert!(log.apply_retention(2_000, 10_000, -1).is_empty());
    // By size: keep at least 5,000 bytes, deleting whole segments from the front.
    let deleted = log.apply_retention(2_000, -1, 5_000);
    assert!(!deleted.is_empty());
    assert_eq!(deleted, bases[..deleted.len()]);
    assert!(log.size_bytes() >= 5_000);
    assert!(
        log.size_bytes() < 5_000 + 2_000 + 500,
        "{} of {total}",
        log.size_bytes()
    );
    assert_eq!(log.log_start_offset(), log.segment_bases()[0]);
    assert_eq!(log.read(0, 100), ReadPlan::OutOfRange);
    // By log start: DeleteRecords into the third segment left deletes the two before it.
    let third = log.segment_bases()[2];
    log.advance_log_start(third + 1);
    assert_eq!(log.apply_retention(2_000, -1, -1).len(), 2);
    assert_eq!(
        log.log_start_offset(),
        third + 1,
        "the start stays where it was moved"
    );
    // By time: everything is older than 500 ms at now = 2,000: every closed segment goes,
    // the active one is rolled, and goes at the next pass.
    let before = log.log_end_offset();
    log.apply_retention(2_000, 500, -1);
    flush(&mut log, &mut files);
    log.apply_retention(2_000, 500, -1);
    assert_eq!(log.segment_bases(), vec![before]);
    assert_eq!(log.log_start_offset(), before);
    assert_eq!(log.log_end_offset(), before, "offsets never go back");
    assert_eq!(append_values(&mut log, &[b"new"]).base_offset, before);
}

#[test]
fn segments_with_writes_or_syncs_pending_are_not_deleted() {
    let policy = SegmentPolicy {
        segment_bytes: 1_000,
        ..POLICY
    };
    let mut log = PartitionLog::new(1 << 20);
    let mut files = Files::new();
    for i in 0..4 {
        append_at(&mut log, &[&[b'v'; 600]], i, &policy);
    }
    assert!(
        log.apply_retention(1 << 40, 0, 0).is_empty(),
        "nothing is flushed"
    );
    flush(&mut log, &mut files);
    assert_eq!(log.apply_retention(1 << 40, 0, 0).len(), 3);
}

#[test]
fn recovery_from_index_files_then_the_last_segment_scanned() {
    let policy = SegmentPolicy {
        segment_bytes: 2_500,
        segment_ms: 1 << 40,
        index_interval_bytes: 600,
    };
    let (mut log, mut files) = disk_log(40, 300, &policy);
    let seals: BTreeMap<i64, Vec<u8>> = log
        .segments
        .iter()
        .filter(|s| s.sealed)
        .map(|s| (s.base_offset, s.encode_index(&ProducerStates::default())))
        .collect();
    let bases = log.segment_bases();
    let last = *bases.last().unwrap();
    let mut recovered = PartitionLog::empty_at(bases[0], 1);
    for base in &bases[..bases.len() - 1] {
        let (segment, producers) = Segment::decode_index(*base, &seals[base]).unwrap();
        recovered.recover_sealed(segment, producers);
    }
    let report = recovered.recover_segment(last, &files[&last], 600);
    recovered.finish_recovery(99);
    assert_eq!(report.torn_bytes, 0);
    assert_eq!(recovered.log_end_offset(), 80);
    assert_eq!(recovered.segment_bases(), bases);
    for offset in [0, 33, 79] {
        assert_eq!(recovered.read(offset, 1), log.read(offset, 1));
    }
    // Appends continue in the last segment, after its partial block.
    append_at(&mut recovered, &[b"after"], 100, &policy);
    flush(&mut recovered, &mut files);
    let mut again = PartitionLog::empty_at(last, 1);
    let report = again.recover_segment(last, &files[&last], 600);
    assert_eq!(report.next_offset, 81);
}

#[test]
fn a_checkpointed_active_segment_loads_without_a_scan_and_a_new_one_starts() {
    let (log, _files) = disk_log(5, 100, &POLICY);
    let (base, index) = log.checkpoint_index().expect("flushed");
    let (segment, producers) = Segment::decode_index(base, &index).unwrap();
    let mut recovered = PartitionLog::empty_at(0, 1);
    recovered.recover_sealed(segment, producers);
    recovered.finish_recovery(7);
    assert_eq!(recovered.segment_bases(), vec![0, 10]);
    assert_eq!(recovered.log_end_offset(), 10);
    assert_eq!(recovered.high_watermark(), 10);
    assert_eq!(recovered.max_timestamp(), log.max_timestamp());
}
/// Issue 14: batches carry their leader epoch; the epoch history spans segments, is kept
/// in their index files, and comes back after a restart from those and from the scan.
#[test]
fn the_epoch_history_survives_sealing_and_recovery() {
    let policy = SegmentPolicy {
        segment_bytes: 600,
        segment_ms: 1 << 40,
        index_interval_bytes: 100,
    };
    let mut log = PartitionLog::new(1 << 20);
    let mut files = Files::new();
    // Epoch 0 for offsets 0..5, 3 for 5..12, 7 from 12 on, over several segments.
    for (epoch, count) in [(0, 5), (3, 7), (7, 6)] {
        for _ in 0..count {
            let bytes = make_batch(&[&[b'v'; 100]], 1_000);
            let info = batch::validate(&bytes).unwrap();
            log.append_as_leader(BytesMut::from(&bytes[..]), &info, epoch, 0, false, &policy);
        }
    }
    let seals = flush(&mut log, &mut files);
    assert!(log.segment_bases().len() > 3, "several segments");
    let history = vec![(0, 0), (3, 5), (7, 12)];
    assert_eq!(log.epoch_history(), history);
    assert_eq!(log.latest_epoch(), Some(7));
    // Kafka's answers, end offset 18 standing for the caller's.
    let cases = [
        (0, (0, 5)),
        (1, (0, 5)),
        (3, (3, 12)),
        (5, (3, 12)),
        (7, (7, 18)),
        (8, (-1, -1)),
        (-1, (-1, -1)),
    ];
    for (epoch, expected) in cases {
        assert_eq!(
            log.end_offset_for_epoch(epoch, 18),
            expected,
            "epoch {epoch}"
        );
    }
    // Back from the sealed segments' index files and a scan of the rest.
    let seals: BTreeMap<i64, Vec<u8>> = seals.into_iter().collect();
    let bases = log.segment_bases();
    let mut recovered = PartitionLog::empty_at(0, 1);
    for base in &bases {
        match seals.get(base) {
            Some(index) => {
                let (segment, producers) = Segment::decode_index(*base, index).unwrap();
                recovered.recover_sealed(segment, producers);
            }
            None => {
                recovered.recover_segment(*base, &files[base], 100);
            }
        }
    }
    recovered.finish_recovery(0);
    assert_eq!(recovered.epoch_history(), history);
    // Scanned alone, every segment gives the same.
    let mut scanned = PartitionLog::empty_at(0, 1);
    for base in &bases {
        scanned.recover_segment(*base, &files[base], 100);
    }
    scanned.finish_recovery(0);
    assert_eq!(scanned.epoch_history(), history);
}

/// Every offset a consumer reads from the log's start to its high watermark.
fn readable(log: &mut PartitionLog, files: &Files) -> Vec<i64> {
    let mut offsets = Vec::new();
    let mut next = log.log_start_offset();
    loop {
        let batches = match log.read(next, 1 << 20) {
            ReadPlan::Cached(batches) => batches.concat(),
            ReadPlan::Disk(read) => match perform_read(files, read) {
                ReadOutcome::Found { batches, .. } => batches.to_vec(),
                other => panic!("reading at {next}: {other:?}"),
            },
            ReadPlan::Empty => return offsets,
            other => panic!("reading at {next}: {other:?}"),
        };
        offsets.extend(offsets_in(&batches));
        next = *offsets.last().unwrap() + 1;
    }
}

/// A log of 20 batches of 2 records (offsets 0..40) in epochs 0, 3 and 5, over segments of
/// about four batches with index entries every other batch, all durable; its files and the
/// index files of its sealed segments. Tail cache of one byte: reads come from the files.
fn cut_fixture() -> (PartitionLog, Files, BTreeMap<i64, Vec<u8>>) {
    let policy = SegmentPolicy {
        segment_bytes: 600,
        segment_ms: 1 << 40,
        index_interval_bytes: 150,
    };
    let mut log = PartitionLog::new(1);
    let mut files = Files::new();
    for i in 0..20 {
        let bytes = make_batch(&[&[b'v'; 40], &[b'w'; 40]], 1_000 + i);
        let info = batch::validate(&bytes).unwrap();
        let epoch = [0, 3, 5][i as usize / 8];
        log.append_as_leader(BytesMut::from(&bytes[..]), &info, epoch, 0, false, &policy);
    }
    let seals = flush(&mut log, &mut files).into_iter().collect();
    assert!(log.segment_bases().len() >= 4, "{:?}", log.segment_bases());
    (log, files, seals)
}

/// Performs a truncation on the files; `crash_after_removals` stops it before the cut.
fn truncate_files(
    log: &mut PartitionLog,
    files: &mut Files,
    seals: &mut BTreeMap<i64, Vec<u8>>,
    offset: i64,
    crash_after_removals: bool,
) -> Option<TruncateFiles> {
    let plan = match log.truncate_to(offset).unwrap() {
        Truncation::Nothing => return None,
        Truncation::Files(plan) => plan,
        Truncation::Read(read) => {
            let file = &files[&read.segment_base_offset];
            let data = &file[read.position as usize..read.position as usize + read.len];
            log.handle_truncate_read(data).unwrap()
        }
    };
    assert!(log.poll_write().is_none() && log.poll_seal().is_none());
    for base in plan
        .removed_segments
        .iter()
        .chain([&plan.segment_base_offset])
    {
        seals.remove(base);
        if *base != plan.segment_base_offset {
            files.remove(base);
        }
    }
    if !crash_after_removals {
        let file = files.get_mut(&plan.segment_base_offset).unwrap();
        file.truncate(plan.len as usize);
        log.handle_truncate_done();
    }
    Some(plan)
}

/// A restart on the files: sealed segments from their index files, the rest scanned.
fn restart(files: &Files, seals: &BTreeMap<i64, Vec<u8>>) -> PartitionLog {
    let mut log = PartitionLog::empty_at(0, 1);
    for (&base, file) in files {
        match seals.get(&base) {
            Some(index) => {
                let (segment, producers) = Segment::decode_index(base, index).unwrap();
                log.recover_sealed(segment, producers);
            }
            None => {
                log.recover_segment(base, file, 150);
            }
        }
    }
    log.finish_recovery(0);
    log.set_high_watermark(log.flushed_offset());
    log
}

/// A read in flight across a truncation brought bytes the log no longer holds: they are not
/// kept as read-ahead, and the next read serves what the log holds now.
#[test]
fn a_read_ahead_from_before_a_truncation_is_not_served_after_it() {
    let (mut log, mut files, mut seals) = cut_fixture();
    let base = log.segment_bases()[3];
    let ReadPlan::Disk(read) = log.read_for_replica(base, 1) else {
        panic!("below the tail cache")
    };
    let ReadOutcome::Found { rest, .. } = perform_read(&files, read) else {
        panic!("offset {base} is there")
    };
    let rest = rest.expect("the read brought more");
    let cut = rest.first_offset;
    assert_eq!(cut, base + 2);
    truncate_files(&mut log, &mut files, &mut seals, cut, false).expect("a cut");
    for i in 0..4 {
        let bytes = make_batch(&[b"new", b"new"], 2_000 + i);
        let info = batch::validate(&bytes).unwrap();
        log.append_as_leader(BytesMut::from(&bytes[..]), &info, 7, 0, false, &POLICY);
    }
    flush(&mut log, &mut files);
    log.keep_read_ahead(rest);
    let batches = match log.read(cut, 1 << 20) {
        ReadPlan::Cached(batches) => batches,
        ReadPlan::Disk(read) => match perform_read(&files, read) {
            ReadOutcome::Found { batches, .. } => vec![batches],
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    let infos: Vec<_> = batches
        .iter()
        .flat_map(|b| batch::validate_all(b).unwrap())
        .collect();
    assert_eq!(infos[0].base_offset, cut);
    assert!(
        infos.iter().all(|b| b.partition_leader_epoch == 7),
        "served the truncated batches: {infos:?}"
    );
}

/// Run-time truncation: the batch holding the offset goes whole, with everything after it;
/// the epochs of what is cut go; appends continue at the cut; and a restart finds the same.
#[test]
fn truncation_cuts_at_the_batch_holding_the_offset_and_the_log_goes_on_from_there() {
    let (log, _, _) = cut_fixture();
    let bases = log.segment_bases();
    let (second, third) = (bases[1], bases[2]);
    // (offset asked, where the log must end): mid-batch, a batch start, a segment's start,
    // the first segment, the last record, past the end.
    let cases = [
        (second + 3, second + 2),
        (second + 2, second + 2),
        (third, third),
        (1, 0),
        (39, 38),
        (40, 40),
    ];
    for (offset, end) in cases {
        let (mut log, mut files, mut seals) = cut_fixture();
        let plan = truncate_files(&mut log, &mut files, &mut seals, offset, false);
        assert_eq!(plan.is_none(), offset == 40, "offset {offset}");
        assert_eq!(log.log_end_offset(), end, "offset {offset}");
        assert_eq!(log.high_watermark(), end);
        let kept: Vec<i64> = (0..end).collect();
        assert_eq!(readable(&mut log, &files), kept, "offset {offset}");
        let history: Vec<(i32, i64)> = [(0, 0), (3, 16), (5, 32)]
            .into_iter()
            .filter(|&(_, start)| start < end)
            .collect();
        assert_eq!(log.epoch_history(), history, "offset {offset}");
        // A new leader's records follow at the cut, and survive a restart.
        let bytes = make_batch(&[b"new"], 5_000);
        let info = batch::validate(&bytes).unwrap();
        let appended = log.append_as_leader(
            BytesMut::from(&bytes[..]),
            &info,
            9,
            0,
            false,
            &SegmentPolicy::default(),
        );
        assert_eq!(appended.base_offset, end);
        seals.extend(flush(&mut log, &mut files));
        let mut expected = kept.clone();
        expected.push(end);
        assert_eq!(readable(&mut log, &files), expected, "offset {offset}");
        let mut restarted = restart(&files, &seals);
        assert_eq!(restarted.log_end_offset(), end + 1, "offset {offset}");
        assert_eq!(
            readable(&mut restarted, &files),
            expected,
            "offset {offset}"
        );
        let mut history = history.clone();
        history.push((9, end));
        assert_eq!(restarted.epoch_history(), history, "offset {offset}");
    }
}

/// A crash after the later segments are removed but before the cut: the restart finds a
/// prefix of the old log, at or past the cut and without a hole; truncating again finishes.
#[test]
fn a_crash_inside_a_truncation_leaves_a_prefix_and_truncating_again_finishes_it() {
    let (log, _, _) = cut_fixture();
    let offset = log.segment_bases()[1] + 3;
    let (mut log, mut files, mut seals) = cut_fixture();
    let plan = truncate_files(&mut log, &mut files, &mut seals, offset, true).unwrap();
    assert!(!plan.removed_segments.is_empty());
    let mut restarted = restart(&files, &seals);
    let end = restarted.log_end_offset();
    assert!(end > offset && end < 40, "a prefix past the cut: {end}");
    assert_eq!(
        readable(&mut restarted, &files),
        (0..end).collect::<Vec<_>>()
    );
    truncate_files(&mut restarted, &mut files, &mut seals, offset, false).unwrap();
    assert_eq!(restarted.log_end_offset(), offset - 1);
    assert_eq!(
        readable(&mut restart(&files, &seals), &files),
        (0..offset - 1).collect::<Vec<_>>()
    );
}

/// A truncation waits for the log to be quiet, and never goes below the log start.
#[test]
fn a_truncation_waits_for_writes_and_stays_above_the_log_start() {
    let mut log = PartitionLog::new(1 << 20);
    append_values(&mut log, &[b"a"]);
    assert!(log.truncate_to(0).is_err(), "an unwritten batch");
    let mut files = Files::new();
    flush(&mut log, &mut files);
    append_values(&mut log, &[b"b"]);
    flush(&mut log, &mut files);
    log.advance_log_start(1);
    assert!(log
        .truncate_to(0)
        .unwrap_err()
        .contains("below the log start"));
    assert_eq!(log.truncate_to(2), Ok(Truncation::Nothing));
}
