"""kafka-python (the pure-Python client) against a real broker: auto-created topic, 1,000 JSON records."""

import json
import time

import pytest

try:
    from kafka import KafkaConsumer, KafkaProducer
except ImportError as e:
    pytest.fail(f"kafka-python is not importable ({e}); pip install 'kafka-python>=3,<4'", pytrace=False)

N = 1000


def test_produce_consume_1000_json_records(broker, topic):
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        value_serializer=lambda x: json.dumps(x).encode("utf-8"),
    )
    try:
        futures = [producer.send(topic, {"number": n}) for n in range(N)]
        producer.flush(timeout=60)
        metas = [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)

    # The topic was auto-created with 1 partition: offsets are 0..N-1 in send order.
    assert {m.topic for m in metas} == {topic}
    assert {m.partition for m in metas} == {0}
    assert [m.offset for m in metas] == list(range(N))

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=10000,
        value_deserializer=lambda x: json.loads(x.decode("utf-8")),
    )
    received = []
    offsets = []
    deadline = time.monotonic() + 60
    try:
        for msg in consumer:  # stops after consumer_timeout_ms of silence
            received.append(msg.value)
            offsets.append(msg.offset)
            if len(received) >= N or time.monotonic() > deadline:
                break
    finally:
        consumer.close()

    assert received == [{"number": n} for n in range(N)]
    assert offsets == list(range(N))


def test_a_consumer_reads_on_across_a_restart_that_moves_the_leader_epoch(broker, topic):
    """kafka-python 3 fetches with the leader epoch it knows (KIP-320). After a restart the
    broker leads in a later epoch: the consumer's fetch is fenced, it refreshes metadata,
    validates its position with OffsetForLeaderEpoch and reads on from where it was, with no
    record twice, none skipped, and no truncation reported."""
    from kafka import TopicPartition

    def produce(prefix, n):
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        try:
            for i in range(n):
                producer.send(topic, f"{prefix}-{i}".encode(), partition=0)
            producer.flush(timeout=60)
        finally:
            producer.close(timeout=10)

    produce("a", 5)
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        metadata_max_age_ms=500,
        reconnect_backoff_max_ms=500,
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    got = []

    def read_until(count, seconds):
        deadline = time.monotonic() + seconds
        while len(got) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend((r.offset, r.value.decode(), r.leader_epoch) for r in records)

    try:
        read_until(5, 30)
        assert [(o, e) for o, _, e in got] == [(i, 0) for i in range(5)], got
        broker.restart()
        produce("b", 5)
        read_until(10, 60)
        read_until(11, 2)  # anything read twice would come now
    finally:
        consumer.close()
    assert [o for o, _, _ in got] == list(range(10)), got
    assert [v for _, v, _ in got[5:]] == [f"b-{i}" for i in range(5)]
    assert {e for _, _, e in got[5:]} == {1}, got
