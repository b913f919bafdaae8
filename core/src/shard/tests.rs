use super::merge::encode_response;
use super::*;
use bytes::BytesMut;
use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsPartition;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::list_offsets_response::ListOffsetsTopicResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::produce_response::TopicProduceResponse;
use kafka_protocol::messages::{
    DescribeLogDirsResponse, FetchResponse, ListOffsetsResponse, ProduceResponse, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::StrBytes;

const SHARDS: usize = 2;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Partitions of `topic` owned by `shard` (of [`SHARDS`]), from 0 up.
fn owned(topic: &str, shard: usize, n: usize) -> Vec<i32> {
    (0..)
        .filter(|&p| owner(topic, p, SHARDS) == shard)
        .take(n)
        .collect()
}

fn request<R: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("router-test")));
    let mut buf = BytesMut::new();
    body.encode(&mut buf, version).unwrap();
    frame_of(&header, api_key, version, &buf.freeze()).unwrap()
}

fn decode_request<R: Decodable>(frame: &Bytes) -> (RequestHeader, R) {
    let (api_key, version, header, mut body) = parse(frame).expect("a sub-request parses");
    assert_eq!(header.request_api_key, api_key as i16);
    (header, R::decode(&mut body, version).unwrap())
}

fn response<R: Encodable>(api_key: ApiKey, version: i16, correlation_id: i32, body: &R) -> Answer {
    let split = Split {
        api_key,
        version,
        correlation_id,
        order: Vec::new(),
        waiting: BTreeSet::new(),
        answers: Vec::new(),
        no_response: false,
        woken: false,
        closed: false,
        fetch_max_bytes: None,
    };
    Answer::Respond(encode_response(&split, body).unwrap())
}

fn decode_answer<R: Decodable>(api_key: ApiKey, version: i16, answer: Answer) -> (i32, R) {
    let Answer::Respond(frame) = answer else {
        panic!("expected a response, got {answer:?}")
    };
    let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(size, frame.len() - 4, "length prefix");
    let mut body = frame.slice(4..);
    let header =
        ResponseHeader::decode(&mut body, api_key.response_header_version(version)).unwrap();
    (
        header.correlation_id,
        R::decode(&mut body, version).unwrap(),
    )
}

/// A Fetch of `partitions` of `topic` from `offset`, waiting up to `max_wait_ms` for a byte.
pub(crate) fn fetch_request(
    topic: &str,
    partitions: &[i32],
    offset: i64,
    max_wait_ms: i32,
) -> FetchRequest {
    let partitions = partitions
        .iter()
        .map(|&p| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(partitions)])
}

fn produce(topic: &str, partitions: &[i32], acks: i16) -> ProduceRequest {
    let data = partitions
        .iter()
        .map(|&p| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(Bytes::from(format!("records of {topic}-{p}"))))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(data)])
}

fn produce_answer(topic: &str, partitions: &[i32]) -> ProduceResponse {
    let responses = partitions
        .iter()
        .map(|&p| {
            PartitionProduceResponse::default()
                .with_index(p)
                .with_base_offset(1000 + i64::from(p))
        })
        .collect();
    ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
        .with_name(name(topic))
        .with_partition_responses(responses)])
}

#[test]
fn owners_are_fixed_spread_a_topic_and_keep_the_offsets_topic_on_the_control_shard() {
    for p in 0..8 {
        assert_eq!(owner("orders", p, 1), 0);
        assert_eq!(owner(crate::groups::OFFSETS_TOPIC, p, 4), CONTROL_SHARD);
        assert_eq!(owner("orders", p, 4), owner("orders", p, 4));
    }
    // Consecutive partitions go round the shards: 8 partitions, 2 on each of 4 shards.
    let mut counts = [0; 4];
    for p in 0..8 {
        counts[owner("orders", p, 4)] += 1;
        assert_ne!(owner("orders", p, 4), owner("orders", p + 1, 4));
    }
    assert_eq!(counts, [2, 2, 2, 2]);
    // Different topics start on different shards.
    let starts: BTreeSet<usize> = (0..16)
        .map(|t| owner(&format!("topic-{t}"), 0, 4))
        .collect();
    assert!(starts.len() > 1, "{starts:?}");
}

#[test]
fn a_request_for_one_shard_goes_as_it_came_and_its_answer_comes_back_as_it_is() {
    let mut router = Router::new(SHARDS);
    let on_one = owned("t", 1, 2);
    let frame = request(ApiKey::Produce, 9, 7, &produce("t", &on_one, -1));
    let routed = router.route(5, frame.clone());
    assert_eq!(routed.to, vec![(1, frame)]);
    let answer = response(ApiKey::Produce, 9, 7, &produce_answer("t", &on_one));
    assert_eq!(router.on_answer(5, 1, answer.clone()).answer, Some(answer));
    // Anything without partitions goes to the control shard.
    let metadata = request(
        ApiKey::Metadata,
        12,
        8,
        &kafka_protocol::messages::MetadataRequest::default(),
    );
    assert_eq!(router.route(5, metadata.clone()).to, vec![(0, metadata)]);
    // A frame that does not parse goes to the control shard, which closes with the reason.
    let junk = Bytes::from_static(&[0, 0, 0, 99, 1]);
    assert_eq!(router.route(5, junk.clone()).to, vec![(0, junk)]);
}

#[test]
fn a_produce_over_two_shards_is_split_and_answered_in_the_clients_order() {
    let mut router = Router::new(SHARDS);
    let (a, b) = (owned("t", 0, 2), owned("t", 1, 2));
    // Interleaved, so the merged order cannot come from concatenation.
    let order = vec![b[0], a[0], b[1], a[1]];
    let frame = request(ApiKey::Produce, 9, 42, &produce("t", &order, -1));
    let routed = router.route(3, frame);
    assert_eq!(routed.to.len(), 2);
    for (shard, sub) in &routed.to {
        let (header, sub): (_, ProduceRequest) = decode_request(sub);
        assert_eq!(header.correlation_id, 42);
        assert_eq!(header.client_id.as_deref(), Some("router-test"));
        assert_eq!(sub.acks, -1);
        let parts: Vec<i32> = sub.topic_data[0]
            .partition_data
            .iter()
            .map(|p| p.index)
            .collect();
        let mine = if *shard == 0 { &a } else { &b };
        assert_eq!(&parts, mine, "shard {shard} gets its own partitions");
        for p in &sub.topic_data[0].partition_data {
            assert_eq!(
                p.records.as_deref(),
                Some(format!("records of t-{}", p.index).as_bytes())
            );
        }
    }
    // Shard 1 answers first: nothing for the client yet.
    let first = router.on_answer(
        3,
        1,
        response(ApiKey::Produce, 9, 42, &produce_answer("t", &b)),
    );
    assert_eq!(first, Routed::default());
    let done = router.on_answer(
        3,
        0,
        response(ApiKey::Produce, 9, 42, &produce_answer("t", &a)),
    );
    let (correlation_id, merged): (_, ProduceResponse) =
        decode_answer(ApiKey::Produce, 9, done.answer.unwrap());
    assert_eq!(correlation_id, 42);
    assert_eq!(merged.responses.len(), 1);
    let got: Vec<(i32, i64)> = merged.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.base_offset))
        .collect();
    assert_eq!(
        got,
        order
            .iter()
            .map(|&p| (p, 1000 + i64::from(p)))
            .collect::<Vec<_>>()
    );
    // The split is over: the next answer on the connection passes straight through.
    let stray = Answer::Respond(Bytes::from_static(b"\0\0\0\0"));
    assert_eq!(router.on_answer(3, 0, stray.clone()).answer, Some(stray));
}

#[test]
fn a_split_acks_0_produce_gets_no_response_and_a_close_from_one_shard_closes_at_once() {
    let mut router = Router::new(SHARDS);
    let both = vec![owned("t", 0, 1)[0], owned("t", 1, 1)[0]];
    router.route(1, request(ApiKey::Produce, 9, 1, &produce("t", &both, 0)));
    assert_eq!(router.on_answer(1, 0, Answer::NoResponse).answer, None);
    assert_eq!(
        router.on_answer(1, 1, Answer::NoResponse).answer,
        Some(Answer::NoResponse)
    );

    router.route(2, request(ApiKey::Produce, 9, 2, &produce("t", &both, -1)));
    assert_eq!(
        router.on_answer(2, 1, Answer::Close).answer,
        Some(Answer::Close)
    );
    // The other shard's late answer is dropped, not sent on the closing connection.
    let late = response(ApiKey::Produce, 9, 2, &produce_answer("t", &both[..1]));
    assert_eq!(router.on_answer(2, 0, late), Routed::default());
    let next = Answer::NoResponse;
    assert_eq!(router.on_answer(2, 0, next.clone()).answer, Some(next));
}

#[test]
fn a_split_fetch_wakes_the_other_shards_at_the_first_answer() {
    let mut router = Router::new(SHARDS);
    let (a, b) = (owned("t", 0, 1)[0], owned("t", 1, 1)[0]);
    let fetch = fetch_request("t", &[a, b], 3, 500);
    let routed = router.route(9, request(ApiKey::Fetch, 12, 5, &fetch));
    assert_eq!(routed.to.len(), 2);
    for (_, sub) in &routed.to {
        let (_, sub): (_, FetchRequest) = decode_request(sub);
        assert_eq!((sub.max_wait_ms, sub.min_bytes), (500, 1));
        assert_eq!(sub.topics[0].partitions.len(), 1);
        // Half the partitions, half the response limit: the merged answer stays within it.
        assert_eq!(sub.max_bytes, 1 << 19);
    }
    let batch = Bytes::from(crate::batch::tests::make_batch(&[b"v"], 0));
    let first = router.on_answer(9, 1, fetch_answer(b, batch.clone()));
    assert_eq!(first.wake, vec![0]);
    assert_eq!(first.answer, None);
    let done = router.on_answer(9, 0, fetch_answer(a, Bytes::new()));
    let (_, merged): (_, FetchResponse) = decode_answer(ApiKey::Fetch, 12, done.answer.unwrap());
    let parts = &merged.responses[0].partitions;
    assert_eq!(
        parts.iter().map(|p| p.partition_index).collect::<Vec<_>>(),
        vec![a, b]
    );
    assert_eq!(parts[1].records, Some(batch));
}

fn fetch_answer(partition: i32, records: Bytes) -> Answer {
    response(
        ApiKey::Fetch,
        12,
        5,
        &FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(name("t"))
            .with_partitions(vec![PartitionData::default()
                .with_partition_index(partition)
                .with_high_watermark(10)
                .with_records(Some(records))])]),
    )
}

/// Issue 13: each shard may return a first batch beyond its share of `max_bytes` (a librdkafka
/// consumer with `fetch.max.bytes` 1 MB got 1.84 MB and stalled). The merged answer keeps the
/// first partition's batch whole and drops what does not fit after it (KIP-74).
#[test]
fn a_split_fetch_answer_keeps_to_the_requests_max_bytes() {
    let (a, b) = (owned("t", 0, 1)[0], owned("t", 1, 1)[0]);
    let big = Bytes::from(crate::batch::tests::make_batch(&[&[7u8; 700]], 0));
    let small = Bytes::from(crate::batch::tests::make_batch(&[b"v"], 0));
    let two = Bytes::from([small.clone(), small.clone()].concat());
    // (max_bytes, what the second partition keeps)
    let cases = [
        (big.len() + small.len() + 10, small.clone()),
        (big.len() - 100, Bytes::new()),
    ];
    for (max_bytes, kept) in cases {
        let mut router = Router::new(SHARDS);
        let mut fetch = fetch_request("t", &[a, b], 3, 0);
        fetch.max_bytes = max_bytes as i32;
        router.route(9, request(ApiKey::Fetch, 12, 5, &fetch));
        router.on_answer(9, 1, fetch_answer(b, two.clone()));
        let done = router.on_answer(9, 0, fetch_answer(a, big.clone()));
        let (_, merged): (_, FetchResponse) =
            decode_answer(ApiKey::Fetch, 12, done.answer.unwrap());
        let parts = &merged.responses[0].partitions;
        assert_eq!(
            parts[0].records,
            Some(big.clone()),
            "the first batch, whole"
        );
        assert_eq!(parts[1].records, Some(kept), "max_bytes {max_bytes}");
        assert_eq!(parts[1].high_watermark, 10, "offsets still answered");
    }
}

#[test]
fn list_offsets_and_describe_log_dirs_merge_across_shards() {
    let mut router = Router::new(SHARDS);
    let (a, b) = (owned("x", 0, 1)[0], owned("y", 1, 1)[0]);
    let list = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(name("y"))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(b)]),
        ListOffsetsTopic::default()
            .with_name(name("x"))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(a)]),
    ]);
    let routed = router.route(4, request(ApiKey::ListOffsets, 7, 11, &list));
    assert_eq!(
        routed.to.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let answer = |topic: &str, p: i32| {
        response(
            ApiKey::ListOffsets,
            7,
            11,
            &ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
                .with_name(name(topic))
                .with_partitions(vec![ListOffsetsPartitionResponse::default()
                    .with_partition_index(p)
                    .with_offset(i64::from(p) + 50)])]),
        )
    };
    assert_eq!(router.on_answer(4, 0, answer("x", a)).answer, None);
    let done = router.on_answer(4, 1, answer("y", b));
    let (_, merged): (_, ListOffsetsResponse) =
        decode_answer(ApiKey::ListOffsets, 7, done.answer.unwrap());
    let got: Vec<(String, i64)> = merged
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions[0].offset))
        .collect();
    assert_eq!(
        got,
        vec![
            ("y".into(), i64::from(b) + 50),
            ("x".into(), i64::from(a) + 50)
        ]
    );

    // Every partition (topics null): every shard describes its own, one directory comes back.
    let routed = router.route(
        6,
        request(
            ApiKey::DescribeLogDirs,
            4,
            12,
            &DescribeLogDirsRequest::default().with_topics(None),
        ),
    );
    assert_eq!(routed.to.len(), SHARDS);
    let dir = |p: i32| {
        response(
            ApiKey::DescribeLogDirs,
            4,
            12,
            &DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default(
            )
            .with_log_dir(StrBytes::from_static_str("/data"))
            .with_topics(vec![DescribeLogDirsTopic::default()
                .with_name(name("z"))
                .with_partitions(vec![DescribeLogDirsPartition::default()
                    .with_partition_index(p)
                    .with_partition_size(100 * i64::from(p))])])]),
        )
    };
    assert_eq!(router.on_answer(6, 1, dir(1)).answer, None);
    let done = router.on_answer(6, 0, dir(0));
    let (_, merged): (_, DescribeLogDirsResponse) =
        decode_answer(ApiKey::DescribeLogDirs, 4, done.answer.unwrap());
    assert_eq!(merged.results.len(), 1);
    let topics = &merged.results[0].topics;
    assert_eq!(topics.len(), 1);
    let sizes: Vec<(i32, i64)> = topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.partition_size))
        .collect();
    assert_eq!(sizes, vec![(0, 0), (1, 100)]);
}

#[test]
fn a_connection_whose_partition_requests_go_to_one_other_shard_moves_there() {
    let mut router = Router::new(SHARDS);
    let (a, b) = (owned("t", 0, 1)[0], owned("t", 1, 1)[0]);
    let produce_to = |router: &mut Router, partitions: &[i32]| {
        router.route(
            1,
            request(ApiKey::Produce, 9, 1, &produce("t", partitions, -1)),
        );
    };
    for i in 1..=MIGRATE_AFTER {
        assert_eq!(router.migration(1, 0), None, "after {} requests", i - 1);
        produce_to(&mut router, &[b]);
        // Requests for the control shard do not break the streak.
        router.route(
            1,
            request(
                ApiKey::Metadata,
                12,
                2,
                &kafka_protocol::messages::MetadataRequest::default(),
            ),
        );
    }
    assert_eq!(router.migration(1, 1), None, "already on the owner");
    assert_eq!(router.migration(1, 0), Some(1));
    assert_eq!(router.migration(1, 0), None, "asked once");
    // A split request, or one for another shard, starts the count again.
    for _ in 0..MIGRATE_AFTER {
        produce_to(&mut router, &[b]);
    }
    produce_to(&mut router, &[a, b]);
    router.on_answer(1, 0, Answer::NoResponse);
    router.on_answer(1, 1, Answer::NoResponse);
    assert_eq!(router.migration(1, 0), None);
    for _ in 0..MIGRATE_AFTER {
        produce_to(&mut router, &[a]);
    }
    assert_eq!(router.migration(1, 1), Some(0));
}

#[test]
fn a_forgotten_connection_drops_its_split() {
    let mut router = Router::new(SHARDS);
    let both = vec![owned("t", 0, 1)[0], owned("t", 1, 1)[0]];
    router.route(8, request(ApiKey::Produce, 9, 1, &produce("t", &both, -1)));
    router.forget(8);
    let answer = Answer::NoResponse;
    assert_eq!(router.on_answer(8, 0, answer.clone()).answer, Some(answer));
}
