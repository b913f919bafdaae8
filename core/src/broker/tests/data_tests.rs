use super::*;

/// KIP-74 (issue 13: a librdkafka consumer with `fetch.max.bytes` 1 MB got 1.84 MB): the
/// response carries at most `max_bytes` in whole batches, and each partition at most its own
/// limit; only the first partition with records keeps its first batch whatever its size.
#[test]
fn a_fetch_keeps_to_its_max_bytes_across_partitions_but_always_makes_progress() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 3);
    for partition in 0..3 {
        for _ in 0..2 {
            h.produce(1, "t", partition, -1, make_batch(&[&[7u8; 600]], 5));
            assert_eq!(h.produce_result(1).0, errors::NONE);
        }
    }
    let batch_bytes = make_batch(&[&[7u8; 600]], 5).len();
    // (max_bytes, partition_max_bytes) -> batches per partition
    let cases: [(usize, usize, [usize; 3]); 4] = [
        (batch_bytes / 2, 1 << 20, [1, 0, 0]),
        (batch_bytes * 3, 1 << 20, [2, 1, 0]),
        (1 << 20, batch_bytes / 2, [1, 0, 0]),
        (1 << 20, batch_bytes, [1, 1, 1]),
    ];
    for (max_bytes, partition_max_bytes, expected) in cases {
        let partitions = (0..3)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(partition_max_bytes as i32)
            })
            .collect();
        let request = FetchRequest::default()
            .with_max_bytes(max_bytes as i32)
            .with_min_bytes(1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)]);
        h.send(3, ApiKey::Fetch, 11, &request);
        let response: FetchResponse = h.response(3, ApiKey::Fetch, 11);
        let counts: Vec<usize> = response.responses[0]
            .partitions
            .iter()
            .map(|p| offsets_in(&p.records.clone().unwrap_or_default()).len())
            .collect();
        assert_eq!(
            counts, expected,
            "max_bytes {max_bytes}, partition max {partition_max_bytes}"
        );
    }
}

#[test]
fn acks_all_is_answered_only_after_the_fsync() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"a", b"b"], 5));
    assert!(
        !h.has_response(1),
        "no answer before the write and fsync complete"
    );
    assert!(h.held.iter().any(|c| matches!(c.op, IoOp::Write { .. })));
    h.release_io();
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    h.produce(1, "t", 0, -1, make_batch(&[b"c"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 2));
}

#[test]
fn acks_one_is_answered_at_once_and_acks_zero_not_at_all() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, 1, make_batch(&[b"a"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    h.produce(2, "t", 0, 0, make_batch(&[b"b"], 5));
    assert!(!h.has_response(2));
    assert_eq!(h.no_response, vec![2]);
}

#[test]
fn consumers_see_only_flushed_records_and_parked_fetches_wake_up() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.fetch(3, "t", 0, 500);
    assert!(!h.has_response(3), "an empty fetch waits for data");
    h.hold_io = true;
    h.produce(1, "t", 0, 1, make_batch(&[b"a"], 5));
    assert!(!h.has_response(3), "not visible before the fsync");
    h.release_io();
    let (error, high_watermark, records) = h.fetch_result(3);
    assert_eq!((error, high_watermark), (errors::NONE, 1));
    assert_eq!(offsets_in(&records), vec![0]);
}

#[test]
fn a_waiting_fetch_times_out_empty() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.fetch(3, "t", 0, 500);
    assert_eq!(h.broker.poll_timeout(), Some(h.now_ms + 500));
    h.now_ms += 500;
    h.handle_timeout();
    let (error, _, records) = h.fetch_result(3);
    assert_eq!(error, errors::NONE);
    assert!(records.is_empty());
}

#[test]
fn reads_below_the_cache_come_from_disk_and_match() {
    let config = Config {
        tail_cache_bytes_per_partition: 1,
        ..Config::default()
    };
    let mut h = Harness::new(config);
    h.create_topic("t", 1);
    for i in 0..5u8 {
        h.produce(1, "t", 0, -1, make_batch(&[&[i; 300]], 5));
        h.produce_result(1);
    }
    h.fetch(2, "t", 1, 0);
    let (error, _, records) = h.fetch_result(2);
    assert_eq!(error, errors::NONE);
    assert_eq!(offsets_in(&records), vec![1, 2, 3, 4]);
}

#[test]
fn fetch_out_of_range_and_unknown_topic_get_kafka_errors() {
    let mut h = Harness::new(Config {
        auto_create_topics: false,
        ..Config::default()
    });
    h.create_topic("t", 1);
    h.fetch(2, "t", 5, 0);
    assert_eq!(h.fetch_result(2).0, errors::OFFSET_OUT_OF_RANGE);
    h.fetch(2, "nope", 0, 0);
    assert_eq!(h.fetch_result(2).0, errors::UNKNOWN_TOPIC_OR_PARTITION);
    h.produce(2, "nope", 0, 1, make_batch(&[b"x"], 5));
    assert_eq!(h.produce_result(2).0, errors::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn a_corrupt_batch_is_refused_and_nothing_is_appended() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let mut batch = make_batch(&[b"hello"], 5);
    let last = batch.len() - 3;
    batch[last] ^= 0xff;
    h.produce(1, "t", 0, -1, batch);
    assert_eq!(h.produce_result(1), (errors::CORRUPT_MESSAGE, -1));
    h.produce(1, "t", 0, -1, make_batch(&[b"ok"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
}

#[test]
fn unknown_api_keys_close_the_connection_and_new_api_versions_get_v0_fallback() {
    let mut h = Harness::new(Config::default());
    h.broker.handle_request(
        h.now_ms,
        4,
        Bytes::from_static(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0]),
    );
    h.step();
    assert_eq!(h.closed, vec![4]);
    // ApiVersions v99: header v2 (key, version, correlation id, client id, no tags), empty body.
    let frame = [0u8, 18, 0, 99, 0, 0, 0, 7, 0, 4, b't', b'e', b's', b't', 0];
    h.broker
        .handle_request(h.now_ms, 5, Bytes::copy_from_slice(&frame));
    h.step();
    let response: ApiVersionsResponse = h.response(5, ApiKey::ApiVersions, 0);
    assert_eq!(response.error_code, errors::UNSUPPORTED_VERSION);
    assert!(response
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 0));
}

#[test]
fn create_topics_validates_like_kafka() {
    let mut h = Harness::new(Config::default());
    assert_eq!(h.create_topic("ok", 2).topics[0].error_code, errors::NONE);
    assert_eq!(
        h.create_topic("ok", 2).topics[0].error_code,
        errors::TOPIC_ALREADY_EXISTS
    );
    assert_eq!(
        h.create_topic("bad/name", 1).topics[0].error_code,
        errors::INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(
        h.create_topic("zero", 0).topics[0].error_code,
        errors::INVALID_PARTITIONS
    );
    let three = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("rf3")))
        .with_num_partitions(1)
        .with_replication_factor(3);
    h.send(
        9,
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![three]),
    );
    let response: CreateTopicsResponse = h.response(9, ApiKey::CreateTopics, 7);
    assert_eq!(
        response.topics[0].error_code,
        errors::INVALID_REPLICATION_FACTOR
    );
}

#[test]
fn create_topics_answers_after_the_metadata_is_durable() {
    let mut h = Harness::new(Config::default());
    h.hold_io = true;
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_num_partitions(1)
        .with_replication_factor(1);
    h.send(
        9,
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![topic]),
    );
    assert!(!h.has_response(9));
    assert!(h
        .held
        .iter()
        .any(|c| matches!(c.op, IoOp::PersistMetadata { .. })));
    h.release_io();
    let response: CreateTopicsResponse = h.response(9, ApiKey::CreateTopics, 7);
    assert_eq!(response.topics[0].error_code, errors::NONE);
}

#[test]
fn restart_keeps_records_offsets_and_topics_and_continues_the_offsets() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    for _ in 0..3 {
        h.produce(1, "t", 0, -1, make_batch(&[b"a", b"b"], 5));
        h.produce_result(1);
    }
    let mut h = h.restart(Config::default());
    h.fetch(2, "t", 0, 0);
    let (error, high_watermark, records) = h.fetch_result(2);
    assert_eq!((error, high_watermark), (errors::NONE, 6));
    assert_eq!(offsets_in(&records), vec![0, 2, 4]);
    h.produce(1, "t", 0, -1, make_batch(&[b"c"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 6));
}

#[test]
fn a_crash_before_the_fsync_loses_only_unacknowledged_records() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce(1, "t", 0, -1, make_batch(&[b"kept"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"lost"], 5));
    assert!(!h.has_response(1));
    // Crash: the held write never reaches the disk.
    let mut h = h.restart(Config::default());
    h.fetch(2, "t", 0, 0);
    let (_, high_watermark, records) = h.fetch_result(2);
    assert_eq!(high_watermark, 1);
    assert_eq!(offsets_in(&records), vec![0]);
}

#[test]
fn deleted_topics_disappear_and_their_files_go() {
    let mut h = Harness::new(Config {
        auto_create_topics: false,
        ..Config::default()
    });
    h.create_topic("t", 1);
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    h.produce_result(1);
    assert!(!h.data_files().is_empty());
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("t"))]);
    h.send(9, ApiKey::DeleteTopics, 5, &request);
    let response: DeleteTopicsResponse = h.response(9, ApiKey::DeleteTopics, 5);
    assert_eq!(response.responses[0].error_code, errors::NONE);
    assert!(h.data_files().is_empty());
    h.fetch(2, "t", 0, 0);
    assert_eq!(h.fetch_result(2).0, errors::UNKNOWN_TOPIC_OR_PARTITION);
    let h = h.restart(Config::default());
    assert!(h.broker.topics.is_empty());
}

/// An acks=all produce still waiting for its fsync when its topic is deleted is answered at
/// once with UNKNOWN_TOPIC_OR_PARTITION: a partition that goes away hands back its waiters.
#[test]
fn a_produce_waiting_on_a_deleted_topic_is_answered_unknown_topic() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    assert!(!h.has_response(1), "waiting for the fsync");
    let request = DeleteTopicsRequest::default()
        .with_topic_names(vec![TopicName(StrBytes::from_static_str("t"))]);
    h.send(9, ApiKey::DeleteTopics, 5, &request);
    assert_eq!(h.produce_result(1).0, errors::UNKNOWN_TOPIC_OR_PARTITION);
    h.release_io();
    let response: DeleteTopicsResponse = h.response(9, ApiKey::DeleteTopics, 5);
    assert_eq!(response.responses[0].error_code, errors::NONE);
}

#[test]
fn an_idempotent_retry_is_not_appended_twice() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let mut batch = make_batch(&[b"a"], 5);
    batch[43..51].copy_from_slice(&42i64.to_be_bytes()); // producer id
    batch[51..53].copy_from_slice(&0i16.to_be_bytes()); // epoch
    batch[53..57].copy_from_slice(&0i32.to_be_bytes()); // base sequence
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    h.produce(1, "t", 0, -1, batch.clone());
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    h.produce(1, "t", 0, -1, batch);
    assert_eq!(
        h.produce_result(1),
        (errors::NONE, 0),
        "the retry is answered with the first offset"
    );
    h.produce(1, "t", 0, -1, make_batch(&[b"b"], 5));
    assert_eq!(
        h.produce_result(1),
        (errors::NONE, 1),
        "the retry took no offset"
    );
}

#[test]
fn an_array_length_bomb_is_a_decode_error_not_an_abort() {
    let mut h = Harness::new(Config::default());
    // CreateTopics v2: header v1 (key 19, version 2, correlation 1, client id "t"), then a
    // topics array claiming i32::MAX entries with nothing behind it.
    let mut frame = vec![0u8, 19, 0, 2, 0, 0, 0, 1, 0, 1, b't'];
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    h.broker.handle_request(h.now_ms, 6, Bytes::from(frame));
    h.step();
    assert_eq!(h.closed, vec![6]);
}

#[test]
fn a_failed_write_answers_storage_error_then_is_retried_and_recovers() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    let write = h
        .held
        .iter()
        .position(|c| matches!(c.op, IoOp::Write { .. }))
        .unwrap();
    let failed = h.held.remove(write);
    h.broker.handle_io_done(
        h.now_ms,
        failed.token,
        IoResult::Failed("No space left on device".into()),
    );
    h.hold_io = false;
    h.step();
    assert_eq!(h.produce_result(1).0, errors::KAFKA_STORAGE_ERROR);
    h.produce(1, "t", 0, -1, make_batch(&[b"b"], 5));
    assert_eq!(
        h.produce_result(1).0,
        errors::KAFKA_STORAGE_ERROR,
        "offline until the retry"
    );
    assert_eq!(
        h.broker.poll_timeout(),
        Some(h.now_ms + STORAGE_RETRY_MS),
        "the retry is armed"
    );
    h.now_ms += STORAGE_RETRY_MS;
    h.handle_timeout();
    h.fetch(2, "t", 0, 0);
    let (error, high_watermark, records) = h.fetch_result(2);
    assert_eq!(
        (error, high_watermark),
        (errors::NONE, 1),
        "the failed write went through on retry"
    );
    assert_eq!(offsets_in(&records), vec![0]);
    h.produce(1, "t", 0, -1, make_batch(&[b"c"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 1));
}

#[test]
fn planted_ack_before_fsync_answers_before_the_sync() {
    let config = Config {
        planted_bug: Some(PlantedBug::AckBeforeFsync),
        ..Config::default()
    };
    let mut h = Harness::new(config);
    h.create_topic("t", 1);
    h.hold_io = true;
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    let write = h
        .held
        .iter()
        .position(|c| matches!(c.op, IoOp::Write { .. }))
        .unwrap();
    let write = h.held.remove(write);
    h.broker
        .handle_io_done(h.now_ms, write.token, IoResult::Done);
    h.step();
    assert!(
        h.has_response(1),
        "the planted bug acknowledges with the sync still pending"
    );
}

/// KIP-734: ListOffsets -3 answers the first record with the largest timestamp, not the last
/// offset of its batch (issue 13: a batch of 3 whose middle record is the newest was answered
/// 2), from the tail cache and from disk alike.
#[test]
fn list_offsets_max_timestamp_finds_the_record_inside_its_batch() {
    use crate::batch::tests::make_batch_at;
    for tail_cache_bytes in [4 << 20, 1] {
        let mut h = Harness::new(Config {
            tail_cache_bytes,
            tail_cache_bytes_per_partition: tail_cache_bytes,
            ..Config::default()
        });
        h.create_topic("t", 1);
        assert_eq!(
            h.list_offset_found("t", 0, -3),
            (errors::NONE, -1, -1),
            "empty"
        );
        let batch = make_batch_at(&[b"a", b"b", b"c"], &[1_000, 3_000, 2_000]);
        h.produce(1, "t", 0, -1, batch);
        assert_eq!(h.produce_result(1), (errors::NONE, 0));
        // A later batch with an equal maximum does not win: the first record holding it does.
        let batch = make_batch_at(&[b"d", b"e"], &[3_000, 500]);
        h.produce(1, "t", 0, -1, batch);
        assert_eq!(h.produce_result(1), (errors::NONE, 3));
        assert_eq!(
            h.list_offset_found("t", 0, -3),
            (errors::NONE, 1, 3_000),
            "tail cache {tail_cache_bytes} B"
        );
    }
}

/// KIP-966 (issue 13): DescribeTopicPartitions pages through topics in name order with a
/// cursor, at most `response_partition_limit` partitions a page.
#[test]
fn describe_topic_partitions_pages_with_a_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let mut h = Harness::new(Config::default());
    for (name, partitions) in [("b", 2), ("a", 3), ("c", 1)] {
        h.create_topic(name, partitions);
    }
    let mut page = |topics: &[&str], limit: i32, cursor: Option<(&str, i32)>| {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| TopicRequest::default().with_name(topic_name(t)))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                Cursor::default()
                    .with_topic_name(topic_name(t))
                    .with_partition_index(p)
            }));
        h.send(3, ApiKey::DescribeTopicPartitions, 0, &request);
        let response: DescribeTopicPartitionsResponse =
            h.response(3, ApiKey::DescribeTopicPartitions, 0);
        let topics: Vec<(String, i16, Vec<i32>)> = response
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
                (name, t.error_code, partitions)
            })
            .collect();
        let next = response
            .next_cursor
            .map(|c| (c.topic_name.0.to_string(), c.partition_index));
        (topics, next)
    };
    let owned = |t: &str, ps: &[i32]| (t.to_string(), errors::NONE, ps.to_vec());
    // Every topic (the internal one absent: no group yet), two partitions a page.
    assert_eq!(
        page(&[], 2, None),
        (vec![owned("a", &[0, 1])], Some(("a".to_string(), 2)))
    );
    assert_eq!(
        page(&[], 2, Some(("a", 2))),
        (
            vec![owned("a", &[2]), owned("b", &[0])],
            Some(("b".into(), 1))
        )
    );
    assert_eq!(
        page(&[], 2, Some(("b", 1))),
        (vec![owned("b", &[1]), owned("c", &[0])], None)
    );
    // A page ending with a topic's last partition goes on with the next topic.
    assert_eq!(
        page(&["c", "b"], 2, None),
        (vec![owned("b", &[0, 1])], Some(("c".into(), 0)))
    );
    // Named topics that do not exist are answered as such; a cursor outside the names is
    // refused for every topic.
    assert_eq!(
        page(&["zz", "c"], 2000, None),
        (
            vec![
                owned("c", &[0]),
                ("zz".into(), errors::UNKNOWN_TOPIC_OR_PARTITION, vec![])
            ],
            None
        )
    );
    assert_eq!(
        page(&["c"], 10, Some(("a", 0))),
        (vec![("c".into(), errors::INVALID_REQUEST, vec![])], None)
    );
}

fn offset_for_time(h: &mut Harness, timestamp: i64) -> (i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let partition = ListOffsetsPartition::default()
        .with_partition_index(0)
        .with_timestamp(timestamp);
    let topic = ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partitions(vec![partition]);
    h.send(
        8,
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest::default().with_topics(vec![topic]),
    );
    let response: ListOffsetsResponse = h.response(8, ApiKey::ListOffsets, 7);
    let p = &response.topics[0].partitions[0];
    (p.offset, p.timestamp)
}

#[test]
fn offsets_for_times_find_the_record_inside_a_batch_from_cache_and_disk() {
    // A 1-byte tail cache keeps only the newest batch: the first is read from disk.
    let mut h = Harness::new(Config {
        tail_cache_bytes_per_partition: 1,
        ..Config::default()
    });
    h.create_topic("t", 1);
    h.produce(1, "t", 0, -1, make_batch(&[b"a", b"b", b"c"], 1_000)); // timestamps 1000..=1002
    h.produce_result(1);
    h.produce(1, "t", 0, -1, make_batch(&[b"d", b"e"], 2_000)); // timestamps 2000..=2001
    h.produce_result(1);
    assert_eq!(
        offset_for_time(&mut h, 1_001),
        (1, 1_001),
        "inside the first batch, read from disk"
    );
    assert_eq!(
        offset_for_time(&mut h, 1_500),
        (3, 2_000),
        "the next batch's first record"
    );
    assert_eq!(
        offset_for_time(&mut h, 2_001),
        (4, 2_001),
        "inside the cached batch"
    );
    assert_eq!(
        offset_for_time(&mut h, 3_000),
        (-1, -1),
        "nothing that late"
    );
}
