"""confluent-kafka (librdkafka) beyond the bulk round trip of test_confluent.py: manual
assignment with seeks, offsets_for_times, AdminClient.list_topics, and the awkward records
(null keys and values, empty ones, repeated and null headers, binary bytes)."""

from __future__ import annotations

import time

import pytest

from spate_helpers import create_topic, produce_confluent

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from test_compat_compression import stored_batches

TIMEOUT = 30


def consumer(broker, topic: str, **extra) -> Consumer:
    config = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": f"compat-{topic}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "auto.offset.reset": "earliest",
    }
    config.update(extra)
    return Consumer(config)


def poll_records(c: Consumer, count: int, timeout: float = TIMEOUT) -> list:
    """The next `count` records (fails on an error or a timeout)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} records within {timeout}s"
        msg = c.poll(0.2)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(msg)
    return got


def assert_quiet(c: Consumer, seconds: float = 1.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = c.poll(0.2)
        assert msg is None or msg.error() is not None, f"unexpected record at {msg.partition()}/{msg.offset()}"


def produce_one_per_batch(broker, topic: str, records: list[dict]) -> None:
    """One produce request, hence one batch, per record: flush after each."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "enable.idempotence": False})
    errors = []
    for r in records:
        producer.produce(
            topic,
            value=r["value"],
            timestamp=r["timestamp"],
            partition=r.get("partition", 0),
            on_delivery=lambda err, msg: errors.append(err) if err else None,
        )
        assert producer.flush(TIMEOUT) == 0
    assert not errors, errors[:3]


# ---- assign and seek -----------------------------------------------------------------------


def test_assign_at_offsets_then_seek(broker, topic):
    create_topic(broker.bootstrap, topic, 2)
    records = [{"value": f"p{p}-{i}".encode(), "partition": p} for p in (0, 1) for i in range(20)]
    produce_confluent(broker.bootstrap, topic, records)

    c = consumer(broker, topic)
    try:
        c.assign([TopicPartition(topic, 0, 5), TopicPartition(topic, 1, confluent_kafka.OFFSET_BEGINNING)])
        got = poll_records(c, 15 + 20)
        by_partition = {p: [(m.offset(), m.value()) for m in got if m.partition() == p] for p in (0, 1)}
        assert by_partition[0] == [(i, f"p0-{i}".encode()) for i in range(5, 20)]
        assert by_partition[1] == [(i, f"p1-{i}".encode()) for i in range(20)]
        assert_quiet(c)

        c.seek(TopicPartition(topic, 0, 15))
        again = poll_records(c, 5)
        assert [(m.partition(), m.offset()) for m in again] == [(0, i) for i in range(15, 20)]
        assert_quiet(c)

        c.seek(TopicPartition(topic, 1, 3))
        assert [(m.partition(), m.offset()) for m in poll_records(c, 17)] == [(1, i) for i in range(3, 20)]
        positions = c.position([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        assert [(tp.partition, tp.offset) for tp in positions] == [(0, 20), (1, 20)]
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 20)

        # At the end, a new record is the next one read.
        produce_confluent(broker.bootstrap, topic, [{"value": b"late", "partition": 0}])
        [late] = poll_records(c, 1)
        assert (late.partition(), late.offset(), late.value()) == (0, 20, b"late")
    finally:
        c.close()


def test_assign_beyond_the_end_resets_per_auto_offset_reset(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    produce_confluent(broker.bootstrap, topic, [{"value": b"%d" % i} for i in range(10)])
    for reset, first in (("earliest", 0), ("latest", 10)):
        c = consumer(broker, topic, **{"auto.offset.reset": reset})
        try:
            c.assign([TopicPartition(topic, 0, 50)])  # OFFSET_OUT_OF_RANGE, then the reset
            if first == 10:
                assert_quiet(c, 2.0)
                produce_confluent(broker.bootstrap, topic, [{"value": b"after"}])
            [msg] = poll_records(c, 1)
            assert msg.offset() == first, f"auto.offset.reset={reset}"
        finally:
            c.close()


# ---- offsets_for_times ---------------------------------------------------------------------


def test_offsets_for_times_one_record_per_batch(broker, topic):
    create_topic(broker.bootstrap, topic, 2)
    base = int(time.time() * 1000) - 3_600_000
    # Partition 0: rising timestamps with one step back (Kafka looks for the first offset whose
    # timestamp is at or after the target, not for a sorted log).
    deltas = [0, 1000, 2000, 1500, 3000, 3000, 5000]
    produce_one_per_batch(broker, topic, [{"value": b"%d" % i, "timestamp": base + d} for i, d in enumerate(deltas)])
    produce_one_per_batch(
        broker, topic, [{"value": b"q%d" % i, "timestamp": base + 10_000 * i, "partition": 1} for i in range(3)]
    )
    batches = stored_batches(broker, topic, 0)
    assert [b["count"] for b in batches] == [1] * len(deltas), f"one batch per record: {batches}"

    c = consumer(broker, topic)
    try:

        def offset_at(delta: int, partition: int = 0) -> int:
            [tp] = c.offsets_for_times([TopicPartition(topic, partition, base + delta)], timeout=TIMEOUT)
            assert tp.error is None, tp.error
            return tp.offset

        expected = {
            -1: 0,  # before everything: the first record
            0: 0,
            1: 1,
            1000: 1,
            1200: 2,  # 2000 at offset 2 is the first at or after; 1500 at offset 3 comes later
            1600: 2,
            2001: 4,
            3000: 4,
            3001: 6,
            5000: 6,
            5001: -1,  # after everything: OFFSET_END, as Kafka answers
        }
        got = {delta: offset_at(delta) for delta in expected}
        assert got == expected
        assert [offset_at(d, 1) for d in (0, 5000, 10_000, 20_000, 20_001)] == [0, 1, 1, 2, -1]

        # Both partitions in one request, and the consumer starts where they point.
        answer = c.offsets_for_times(
            [TopicPartition(topic, 0, base + 2500), TopicPartition(topic, 1, base + 15_000)], timeout=TIMEOUT
        )
        assert [(tp.partition, tp.offset) for tp in answer] == [(0, 4), (1, 2)]
        c.assign(answer)
        got = poll_records(c, 3 + 1)
        assert sorted((m.partition(), m.offset()) for m in got) == [(0, 4), (0, 5), (0, 6), (1, 2)]
    finally:
        c.close()


class BatchGranularity(Exception):
    """offsets_for_times answered with a batch's base offset instead of the record's offset."""


def test_offsets_for_times_inside_a_batch(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 3_600_000
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 500, "enable.idempotence": False})
    for i in range(3):
        producer.produce(topic, value=b"%d" % i, timestamp=base + 1000 * i, partition=0)
    assert producer.flush(TIMEOUT) == 0
    assert [b["count"] for b in stored_batches(broker, topic)] == [3], "the three records share one batch"
    c = consumer(broker, topic)
    try:
        [tp] = c.offsets_for_times([TopicPartition(topic, 0, base + 1500)], timeout=TIMEOUT)
    finally:
        c.close()
    if tp.offset != 2:
        raise BatchGranularity(f"offsets_for_times(base+1500) = {tp.offset}; Kafka answers 2")


# ---- AdminClient.list_topics ---------------------------------------------------------------


def test_admin_list_topics_names_broker_topics_and_partitions(broker, topic):
    create_topic(broker.bootstrap, topic, 3)
    other = topic + "-other"
    create_topic(broker.bootstrap, other, 1)
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    md = client.list_topics(timeout=TIMEOUT)
    assert md.cluster_id and md.cluster_id in broker.stderr_text(), "the cluster id the broker logged"
    assert md.controller_id == 1
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {1: (broker.host, broker.port)}
    assert {topic, other} <= set(md.topics)
    for name, count in ((topic, 3), (other, 1)):
        t = md.topics[name]
        assert t.error is None
        assert sorted(t.partitions) == list(range(count))
        for p in t.partitions.values():
            assert (p.leader, p.replicas, p.isrs, p.error) == (1, [1], [1], None)

    one = client.list_topics(topic=topic, timeout=TIMEOUT)
    assert set(one.topics) == {topic}
    # Metadata for an unknown topic creates it only when the client allows it (librdkafka's
    # allow.auto.create.topics, true for producer-type handles) and the broker does
    # (auto.create.topics.enable, true by default), as with Kafka.
    missing = topic + "-missing"
    strict = AdminClient({"bootstrap.servers": broker.bootstrap, "allow.auto.create.topics": False})
    answer = strict.list_topics(topic=missing, timeout=TIMEOUT).topics[missing]
    assert answer.error is not None and answer.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert missing not in client.list_topics(timeout=TIMEOUT).topics
    created = client.list_topics(topic=missing, timeout=TIMEOUT).topics[missing]
    assert created.error is None or created.error.code() == KafkaError.LEADER_NOT_AVAILABLE
    assert missing in client.list_topics(timeout=TIMEOUT).topics


# ---- awkward records -----------------------------------------------------------------------


def test_awkward_records_round_trip(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    binary = bytes(range(256))
    records = [
        {"key": None, "value": b""},
        {"key": b"", "value": None},  # a tombstone: null value
        {"key": None, "value": None},
        {"key": b"k", "value": b"v", "headers": [("a", b"1"), ("a", b"2"), ("b", None), ("c", b"")]},
        {"key": binary, "value": binary * 4, "headers": [("bin", binary)]},
        {"key": "ключ-🔑".encode(), "value": "значение ✓".encode(), "headers": [("ünïcode-ключ", "✓".encode())]},
        {"key": b"big", "value": b"x" * 500_000},
        {"key": b"many-headers", "value": b"h", "headers": [(f"h{i}", b"%d" % i) for i in range(100)]},
    ]
    reports = produce_confluent(broker.bootstrap, topic, [dict(r, partition=0) for r in records])
    assert [off for _, _, off in reports] == list(range(len(records)))

    c = consumer(broker, topic)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        got = poll_records(c, len(records))
    finally:
        c.close()
    for m, r in zip(got, records):
        where = f"offset {m.offset()}"
        assert m.key() == r["key"], where
        assert m.value() == r["value"], where
        # Header order and repeats are kept, a null header value stays null.
        assert m.headers() == r.get("headers"), where
