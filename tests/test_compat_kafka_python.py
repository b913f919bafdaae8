"""kafka-python 3 beyond test_kafka_python.py and test_admin.py: consumer positioning
(seek_to_beginning, seek, seek_to_end, offsets_for_times) and the KafkaAdminClient calls that
test_admin.py leaves out (validate-only creation, errors by class, partitions, config changes,
cluster, records). Codecs are in test_compat_compression.py."""

from __future__ import annotations

import time

import pytest

try:
    import kafka.errors as Errors
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, NewTopic, OffsetSpec
except ImportError as e:  # a missing client is a failure, never a skip
    pytest.fail(f"kafka-python is not importable ({e}); pip install 'kafka-python>=3,<4'", pytrace=False)

TIMEOUT = 30


@pytest.fixture
def admin(broker):
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    yield client
    client.close()


def produce(broker, topic: str, records: list[dict], one_per_batch: bool = False) -> list:
    """Sends `records` (value, partition, timestamp); returns their RecordMetadata in order."""
    # acks=all: an acks=1 answer comes before the fsync that makes the record visible (the
    # high watermark is the flushed offset, docs/ARCHITECTURE.md), so offsets read at once lag.
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0 if one_per_batch else 20, acks="all")
    try:
        metas = []
        for r in records:
            future = producer.send(
                topic, value=r["value"], partition=r.get("partition"), timestamp_ms=r.get("timestamp")
            )
            if one_per_batch:
                producer.flush(timeout=TIMEOUT)
            metas.append(future)
        producer.flush(timeout=TIMEOUT)
        return [f.get(timeout=TIMEOUT) for f in metas]
    finally:
        producer.close(timeout=10)


def take(consumer: KafkaConsumer, count: int) -> list:
    got = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} records within {TIMEOUT}s"
        for msgs in consumer.poll(timeout_ms=200, max_records=count - len(got)).values():
            got.extend(msgs)
    return got


def assert_quiet(consumer: KafkaConsumer) -> None:
    extra = [m for msgs in consumer.poll(timeout_ms=1000).values() for m in msgs]
    assert not extra, f"unexpected records: {[(m.partition, m.offset) for m in extra]}"


def test_seek_to_beginning_seek_and_seek_to_end(broker, admin, topic):
    admin.create_topics([NewTopic(topic, 2, 1)], timeout_ms=TIMEOUT * 1000)
    produce(broker, topic, [{"value": f"p{p}-{i}".encode(), "partition": p} for p in (0, 1) for i in range(10)])
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest")
    try:
        consumer.assign([p0, p1])
        assert consumer.beginning_offsets([p0, p1]) == {p0: 0, p1: 0}
        assert consumer.end_offsets([p0, p1]) == {p0: 10, p1: 10}
        first = take(consumer, 20)
        assert sorted((m.partition, m.offset) for m in first) == [(p, i) for p in (0, 1) for i in range(10)]
        assert all(m.value == f"p{m.partition}-{m.offset}".encode() for m in first)
        assert_quiet(consumer)

        consumer.seek_to_beginning(p0)
        assert [(m.partition, m.offset) for m in take(consumer, 10)] == [(0, i) for i in range(10)]
        assert_quiet(consumer)

        consumer.seek(p1, 7)
        assert [(m.partition, m.offset, m.value) for m in take(consumer, 3)] == [
            (1, i, f"p1-{i}".encode()) for i in (7, 8, 9)
        ]

        consumer.seek_to_beginning()
        assert len(take(consumer, 20)) == 20
        consumer.seek_to_end()
        assert (consumer.position(p0), consumer.position(p1)) == (10, 10)
        assert_quiet(consumer)
        produce(broker, topic, [{"value": b"late", "partition": 1}])
        [late] = take(consumer, 1)
        assert (late.partition, late.offset, late.value) == (1, 10, b"late")
    finally:
        consumer.close()


def test_offsets_for_times(broker, admin, topic):
    admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=TIMEOUT * 1000)
    base = int(time.time() * 1000) - 7_200_000
    deltas = [0, 100, 200, 5000, 5000, 9000]
    metas = produce(
        broker, topic, [{"value": b"%d" % i, "timestamp": base + d, "partition": 0} for i, d in enumerate(deltas)],
        one_per_batch=True,
    )
    assert [m.offset for m in metas] == list(range(len(deltas)))
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        def at(delta):
            found = consumer.offsets_for_times({tp: base + delta})[tp]
            return None if found is None else (found.offset, found.timestamp - base)

        # (offset, timestamp) of the first record at or after the target; None past the end.
        assert at(-10) == (0, 0)
        assert at(0) == (0, 0)
        assert at(50) == (1, 100)
        assert at(201) == (3, 5000)
        assert at(5000) == (3, 5000)
        assert at(5001) == (5, 9000)
        assert at(9001) is None

        consumer.assign([tp])
        consumer.seek(tp, consumer.offsets_for_times({tp: base + 4000})[tp].offset)
        assert [m.value for m in take(consumer, 3)] == [b"3", b"4", b"5"]
    finally:
        consumer.close()


def test_admin_validate_only_and_errors_by_class(broker, admin, topic):
    admin.create_topics([NewTopic(topic, 3, 1)], timeout_ms=TIMEOUT * 1000, validate_only=True)
    assert topic not in admin.list_topics(), "validate_only created nothing"
    admin.create_topics([NewTopic(topic, 3, 1)], timeout_ms=TIMEOUT * 1000)
    [described] = admin.describe_topics([topic])
    assert described["error_code"] == 0
    assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]
    assert {p["leader_id"] for p in described["partitions"]} == {1}

    with pytest.raises(Errors.TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=TIMEOUT * 1000)
    with pytest.raises(Errors.InvalidReplicationFactorError):
        admin.create_topics([NewTopic(topic + "-rf", 1, 3)], timeout_ms=TIMEOUT * 1000)
    with pytest.raises(Errors.InvalidTopicError):
        admin.create_topics([NewTopic("bad/name", 1, 1)], timeout_ms=TIMEOUT * 1000)
    with pytest.raises(Errors.UnknownTopicOrPartitionError):
        admin.delete_topics([topic + "-missing"], timeout_ms=TIMEOUT * 1000)
    assert topic + "-rf" not in admin.list_topics()


def test_admin_create_partitions(broker, admin, topic):
    admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=TIMEOUT * 1000)
    admin.create_partitions({topic: 4}, validate_only=True)
    assert len(admin.describe_topics([topic])[0]["partitions"]) == 1
    admin.create_partitions({topic: 4})
    assert len(admin.describe_topics([topic])[0]["partitions"]) == 4
    with pytest.raises(Errors.InvalidPartitionsError):
        admin.create_partitions({topic: 2})
    [meta] = produce(broker, topic, [{"value": b"in the new partition", "partition": 3}])
    assert (meta.partition, meta.offset) == (3, 0)


def test_admin_alter_and_reset_configs(broker, admin, topic):
    admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=TIMEOUT * 1000)
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)

    def overrides():
        return {k: v["value"] for k, v in admin.describe_configs([resource])["topic"][topic].items()}

    changes = {"retention.ms": "3600000", "segment.ms": (AlterConfigOp.SET, "7200000")}
    assert admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=changes)]) == {
        "topic": {topic: "OK"}
    }
    assert overrides() == {"retention.ms": "3600000", "segment.ms": "7200000"}

    admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": (AlterConfigOp.APPEND, "compact")})]
    )
    assert overrides()["cleanup.policy"] == "delete,compact"

    admin.reset_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=["retention.ms"])])
    assert set(overrides()) == {"segment.ms", "cleanup.policy"}

    dry = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "1"})
    admin.alter_configs([dry], validate_only=True)
    assert overrides()["segment.ms"] == "7200000"

    bad = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "soon"})
    [error] = admin.alter_configs([bad])["topic"].values()
    assert "InvalidConfigurationError" in str(error) and "retention.ms" in str(error), error
    assert overrides()["segment.ms"] == "7200000"


def test_admin_describe_cluster_delete_records_and_offsets(broker, admin, topic):
    cluster = admin.describe_cluster()
    assert cluster["controller_id"] == 1
    assert cluster["cluster_id"] and cluster["cluster_id"] in broker.stderr_text()
    assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(1, broker.host, broker.port)]

    admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=TIMEOUT * 1000)
    produce(broker, topic, [{"value": b"%d" % i, "partition": 0} for i in range(10)])
    tp = TopicPartition(topic, 0)
    assert admin.delete_records({tp: 6})[tp]["low_watermark"] == 6
    offsets = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST})
    assert offsets[tp].offset == 6
    assert admin.list_partition_offsets({tp: OffsetSpec.LATEST})[tp].offset == 10

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest")
    try:
        consumer.assign([tp])
        assert [m.offset for m in take(consumer, 4)] == [6, 7, 8, 9]
    finally:
        consumer.close()


def test_admin_describe_log_dirs(broker, admin, topic):
    admin.create_topics([NewTopic(topic, 2, 1)], timeout_ms=TIMEOUT * 1000)
    produce(broker, topic, [{"value": b"x" * 100, "partition": 0} for _ in range(10)])

    def topics_of(answer) -> dict:
        (per_broker,) = answer
        assert per_broker["broker"] == 1
        (log_dir,) = per_broker["log_dirs"]
        assert log_dir["error_code"] == 0
        assert log_dir["log_dir"] == str(broker.data_dir)
        return {t["name"]: {p["partition_index"]: p["partition_size"] for p in t["partitions"]} for t in log_dir["topics"]}

    everything = topics_of(admin.describe_log_dirs())
    sizes = everything[topic]
    assert set(sizes) == {0, 1}
    # Ten 100-byte records in v2 batches: more than their values, and partition 1 is empty.
    assert sizes[0] > 1000 and sizes[1] == 0, sizes
    assert topics_of(admin.describe_log_dirs(topic_partitions={topic: [0]})) == {topic: {0: sizes[0]}}
    assert topics_of(admin.describe_log_dirs(topic_partitions={"no-such-topic": [0]})) == {}


def test_offset_for_leader_epoch_as_the_fetcher_sends_it(broker, admin, topic):
    """kafka-python's fetcher validates positions (KIP-320) with this request, built the same way
    (kafka/consumer/fetcher.py); with one node the only leader epoch is 0."""
    from kafka.protocol.consumer import OffsetForLeaderEpochRequest

    partition = OffsetForLeaderEpochRequest.OffsetForLeaderTopic.OffsetForLeaderPartition
    admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=TIMEOUT * 1000)
    produce(broker, topic, [{"value": b"%d" % i, "partition": 0} for i in range(7)])
    request = OffsetForLeaderEpochRequest(
        replica_id=-1,
        topics=[
            (topic, [partition(partition=0, current_leader_epoch=-1, leader_epoch=0)]),
            ("no-such-topic", [partition(partition=0, current_leader_epoch=-1, leader_epoch=0)]),
        ],
    )
    response = admin._manager.run(admin._manager.send, request, 1)
    results = {t.topic: t.partitions[0] for t in response.topics}
    assert (results[topic].error_code, results[topic].leader_epoch, results[topic].end_offset) == (0, 0, 7)
    assert results["no-such-topic"].error_code == Errors.UnknownTopicOrPartitionError.errno


def test_admin_alter_list_and_delete_group_offsets(broker, admin, topic):
    """OffsetCommit, OffsetFetch and OffsetDelete through kafka-python's admin client, on a
    group with no members (as Kafka requires for both)."""
    from kafka.structs import OffsetAndMetadata

    group = f"offsets-{topic}"
    admin.create_topics([NewTopic(topic, 3, 1)], timeout_ms=TIMEOUT * 1000)
    produce(broker, topic, [{"value": b"v", "partition": p} for p in range(3) for _ in range(5)])
    tps = [TopicPartition(topic, p) for p in range(3)]
    altered = admin.alter_group_offsets(
        group, {tp: OffsetAndMetadata(p + 1, "meta", -1) for p, tp in enumerate(tps)}
    )
    assert all(error is Errors.NoError for error in altered.values()), altered
    listed = admin.list_group_offsets({group: None})[group]
    assert {tp: om.offset for tp, om in listed.items()} == {tps[0]: 1, tps[1]: 2, tps[2]: 3}

    deleted = admin.delete_group_offsets(group, [tps[1]])
    assert deleted == {tps[1]: Errors.NoError}, deleted
    listed = admin.list_group_offsets({group: None})[group]
    assert {tp: om.offset for tp, om in listed.items()} == {tps[0]: 1, tps[2]: 3}

    # An unknown group is GROUP_ID_NOT_FOUND, by Kafka's code.
    with pytest.raises(Errors.GroupIdNotFoundError):
        result = admin.delete_group_offsets(f"nobody-{topic}", [tps[0]])
        raise_first_error(result)


def raise_first_error(result: dict) -> None:
    for error in result.values():
        if error is not Errors.NoError:
            raise error()
