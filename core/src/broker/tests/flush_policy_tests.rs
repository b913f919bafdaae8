use super::*;

/// Performs every held I/O command, and what it causes, until none is left; returns how
/// many fsyncs were among them.
fn run_held(h: &mut Harness) -> usize {
    let mut syncs = 0;
    while !h.held.is_empty() {
        for command in std::mem::take(&mut h.held) {
            syncs += usize::from(matches!(command.op, IoOp::Sync { .. }));
            let result = h.perform(command.op);
            h.broker.handle_io_done(h.now_ms, command.token, result);
        }
        h.step();
    }
    syncs
}

/// A topic `lazy` with `flush.messages=5`, `flush.ms=1000`, I/O held from here on.
fn lazy_topic() -> Harness {
    let mut h = Harness::new(Config::default());
    h.create_topic("lazy", 1);
    let (code, message) = h.alter_configs(
        2,
        "lazy",
        &[("flush.messages", Some("5")), ("flush.ms", Some("1000"))],
        false,
    );
    assert_eq!(code, errors::NONE, "{message:?}");
    h.hold_io = true;
    h
}

#[test]
fn the_default_policy_syncs_every_write_and_shows_only_synced_records() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    assert_eq!(h.topic_config("t", "flush.messages").0, "1");
    h.hold_io = true;
    h.produce(1, "t", 0, 1, make_batch(&[b"a"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    assert_eq!(run_held(&mut h), 1, "an acks=1 write is synced at once");
    h.fetch(2, "t", 0, 0);
    assert_eq!(h.fetch_result(2).1, 1);
}

#[test]
fn a_relaxed_policy_shows_written_records_and_syncs_after_flush_ms() {
    let mut h = lazy_topic();
    h.produce(1, "lazy", 0, 1, make_batch(&[b"a", b"b"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    assert_eq!(
        run_held(&mut h),
        0,
        "2 of 5 messages, 0 of 1000 ms: no sync yet"
    );
    // Visible once written, as with Kafka's page cache.
    h.fetch(2, "lazy", 0, 0);
    let (code, high_watermark, records) = h.fetch_result(2);
    assert_eq!((code, high_watermark), (errors::NONE, 2));
    assert_eq!(offsets_in(&records), vec![0], "the one batch, at offset 0");
    let log = &h.broker.topics["lazy"].partitions[0].log;
    assert_eq!(log.flushed_offset(), 0);
    // The broker asks to be woken when flush.ms runs out, and syncs then.
    assert_eq!(h.broker.poll_timeout(), Some(h.now_ms + 1000));
    h.now_ms += 999;
    h.handle_timeout();
    assert_eq!(run_held(&mut h), 0, "not yet");
    h.now_ms += 1;
    h.handle_timeout();
    assert_eq!(run_held(&mut h), 1);
    assert_eq!(
        h.broker.topics["lazy"].partitions[0].log.flushed_offset(),
        2
    );
    assert_eq!(
        h.broker.poll_timeout().filter(|&t| t <= h.now_ms + 1000),
        None
    );
}

#[test]
fn a_relaxed_policy_syncs_after_flush_messages() {
    let mut h = lazy_topic();
    h.produce(1, "lazy", 0, 1, make_batch(&[b"1", b"2", b"3"], 5));
    assert_eq!(run_held(&mut h), 0);
    h.produce(1, "lazy", 0, 1, make_batch(&[b"4", b"5"], 5));
    assert_eq!(
        run_held(&mut h),
        1,
        "the fifth unflushed message makes a sync due"
    );
    assert_eq!(
        h.broker.topics["lazy"].partitions[0].log.flushed_offset(),
        5
    );
}

#[test]
fn acks_all_and_commits_always_wait_for_their_fsync() {
    let mut h = lazy_topic();
    h.produce(1, "lazy", 0, 1, make_batch(&[b"a"], 5));
    assert_eq!(run_held(&mut h), 0);
    h.produce(3, "lazy", 0, -1, make_batch(&[b"b"], 5));
    assert!(
        !h.has_response(3),
        "acks=all is not answered before its fsync"
    );
    // The unflushed acks=1 write may get its own sync first; then the acks=all write's.
    assert!(run_held(&mut h) >= 1, "acks=all makes a sync due at once");
    assert_eq!(h.produce_result(3), (errors::NONE, 1));
    assert_eq!(
        h.broker.topics["lazy"].partitions[0].log.flushed_offset(),
        2
    );
}

#[test]
fn a_clean_shutdown_syncs_what_a_relaxed_policy_left_unflushed() {
    let mut h = lazy_topic();
    h.produce(1, "lazy", 0, 1, make_batch(&[b"a"], 5));
    assert_eq!(run_held(&mut h), 0);
    h.broker.begin_shutdown();
    h.step();
    assert_eq!(run_held(&mut h), 1);
    assert!(!h.broker.is_flushing());
    let restarted = h.restart(Config::default());
    assert_eq!(restarted.broker.high_watermark("lazy", 0), Some(1));
}

#[test]
fn backpressure_holds_acks_0_and_1_until_their_write_once_unwritten_bytes_pass_the_bound() {
    let big = vec![b'x'; 3000];
    let mut h = Harness::new(Config {
        unwritten_bytes_max: 4000,
        ..Config::default()
    });
    h.create_topic("t", 1);
    h.hold_io = true;
    // Under the bound: answered at append, the write still held.
    h.produce(1, "t", 0, 1, make_batch(&[&big], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    // Past the bound: held until its own batch is written (not synced).
    h.produce(2, "t", 0, 1, make_batch(&[&big], 5));
    assert!(!h.has_response(2), "held by backpressure");
    h.produce(3, "t", 0, 0, make_batch(&[&big], 5));
    assert!(h.no_response.is_empty(), "acks=0 is held too");
    // The first write takes batch 0 only (the others were appended while it was in flight).
    let first = h.held.remove(0);
    assert!(matches!(first.op, IoOp::Write { .. }));
    let result = h.perform(first.op);
    h.broker.handle_io_done(h.now_ms, first.token, result);
    h.step();
    assert!(!h.has_response(2), "its own batch is not written yet");
    // The next write carries batches 1 and 2: both producers go on, before any fsync.
    let next = h
        .held
        .iter()
        .position(|c| matches!(c.op, IoOp::Write { .. }))
        .expect("the second write");
    let next = h.held.remove(next);
    let result = h.perform(next.op);
    h.broker.handle_io_done(h.now_ms, next.token, result);
    h.step();
    assert_eq!(h.produce_result(2), (errors::NONE, 1));
    assert_eq!(h.no_response, vec![3]);
    assert!(h.broker.topics["t"].partitions[0].log.flushed_offset() < 3);
}

#[test]
fn the_tail_cache_of_all_partitions_stays_within_its_bound_oldest_first() {
    let value = vec![b'v'; 1000];
    let mut h = Harness::new(Config {
        tail_cache_bytes: 10_000,
        ..Config::default()
    });
    h.create_topic("t", 3);
    // 12 batches of about 1 KiB, round robin over the partitions, one millisecond apart.
    for i in 0..12 {
        h.now_ms += 1;
        h.produce(1, "t", i % 3, -1, make_batch(&[&value], 5));
        assert_eq!(h.produce_result(1).0, errors::NONE);
    }
    let logs = &h.broker.topics["t"].partitions;
    let total: usize = logs.iter().map(|l| l.log.tail_bytes()).sum();
    assert!(total <= 10_000, "{total} bytes cached");
    assert!(total > 7_000, "only what must go is evicted: {total}");
    // Three batches had to go, the three oldest: each partition's first. Each partition's
    // oldest cached batch is now its second, appended at 4, 5 and 6 ms.
    let start = h.now_ms - 12;
    for (p, log) in logs.iter().map(|p| &p.log).enumerate() {
        assert_eq!(log.tail_bytes(), 3 * total / 9, "partition {p}");
        assert_eq!(log.oldest_evictable_ms(), Some(start + 4 + p as i64));
    }
    // An evicted batch is read back from disk, intact.
    h.fetch(2, "t", 0, 0);
    let (code, _, records) = h.fetch_result(2);
    assert_eq!(code, errors::NONE);
    assert_eq!(offsets_in(&records), vec![0, 1, 2, 3]);
}

#[test]
fn flush_ms_zero_is_immediate_and_flush_messages_zero_is_refused() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (code, _) = h.alter_configs(
        2,
        "t",
        &[("flush.messages", Some("100")), ("flush.ms", Some("0"))],
        false,
    );
    assert_eq!(code, errors::NONE);
    h.hold_io = true;
    h.produce(1, "t", 0, 1, make_batch(&[b"a"], 5));
    assert_eq!(run_held(&mut h), 1);
    let (code, message) = h.alter_configs(2, "t", &[("flush.messages", Some("0"))], false);
    assert_eq!(code, errors::INVALID_CONFIG);
    assert!(message.unwrap().contains("flush.messages"));
}
