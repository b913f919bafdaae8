use super::*;
use crate::log::RecoveryReport;

/// A topic `t` with batches of 1, 2, ... 8 records of growing values, produced with
/// acks=all: the segment holds batches of many sizes.
fn produced() -> Harness {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    for n in 1..=8usize {
        let values: Vec<Vec<u8>> = (0..n).map(|i| vec![b'a' + i as u8; 37 * n]).collect();
        let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        h.produce(1, "t", 0, -1, make_batch(&values, 5));
        assert_eq!(h.produce_result(1).0, errors::NONE);
    }
    h
}

/// Restarts (as after a crash: no clean-shutdown mark) scanning in `chunk`-byte pieces;
/// returns the scan report of the one segment and what a fetch from 0 reads.
fn restart_scanning_in(h: &Harness, chunk: usize) -> (RecoveryReport, Vec<i64>, Harness) {
    let mut disk = h.disk.clone();
    disk.scan_chunk_bytes = Some(chunk);
    let (mut restarted, report) = h.restart_on(disk, Config::default());
    restarted.fetch(2, "t", 0, 0);
    let (code, _, records) = restarted.fetch_result(2);
    assert_eq!(code, errors::NONE);
    let (_, scan) = report
        .scanned
        .into_iter()
        .next()
        .expect("the segment was scanned");
    (scan, offsets_in(&records), restarted)
}

#[test]
fn a_scan_in_pieces_of_any_size_finds_what_a_whole_read_finds() {
    let h = produced();
    let (whole, offsets, _) = restart_scanning_in(&h, 1 << 30);
    assert_eq!(whole.batches, 8);
    assert_eq!(whole.next_offset, 36);
    assert_eq!(offsets.len(), 8);
    for chunk in [1, 7, 61, 100, 4096, 5000] {
        let (scan, read, mut restarted) = restart_scanning_in(&h, chunk);
        assert_eq!(scan, whole, "pieces of {chunk} bytes");
        assert_eq!(read, offsets, "pieces of {chunk} bytes");
        // Appends continue after the recovered end, in the same block-aligned file.
        restarted.produce(1, "t", 0, -1, make_batch(&[b"after"], 5));
        assert_eq!(restarted.produce_result(1), (errors::NONE, 36));
    }
}

#[test]
fn a_torn_tail_is_found_across_pieces() {
    let mut h = produced();
    let (whole, _, _) = restart_scanning_in(&h, 1 << 30);
    let path = h
        .data_files()
        .into_iter()
        .find(|p| p.ends_with(".log"))
        .expect("a segment file")
        .clone();
    // Garbage after the last batch, then zeros, then more garbage further on.
    let file = h.disk.files.get_mut(&path).unwrap();
    let end = whole.valid_bytes as usize;
    file.resize(end + 9000, 0);
    file[end..end + 10].copy_from_slice(b"garbage!!!");
    file[end + 8000] = 0xff;
    for chunk in [1, 13, 4096, 1 << 30] {
        let (scan, read, _) = restart_scanning_in(&h, chunk);
        assert_eq!(
            scan.valid_bytes, whole.valid_bytes,
            "pieces of {chunk} bytes"
        );
        assert_eq!(scan.torn_bytes, 8001, "pieces of {chunk} bytes");
        assert!(scan.stop_reason.is_some());
        assert_eq!(read.len(), 8);
    }
}
