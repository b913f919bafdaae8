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
