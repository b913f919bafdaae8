"""aiokafka (asyncio): send_and_wait, then a consumer without a group (group_id=None,
auto_offset_reset='earliest') reads everything back in order; seeks and offsets by time. Codecs
are in test_compat_compression.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from spate_helpers import create_topic

try:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
except ImportError as e:  # a missing client is a failure, never a skip
    pytest.fail(f"aiokafka is not importable ({e}); pip install 'aiokafka>=0.12,<1'", pytrace=False)

TIMEOUT = 30
N = 500


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=2 * TIMEOUT))


async def read(consumer: AIOKafkaConsumer, count: int) -> list:
    got = []
    while len(got) < count:
        batch = await consumer.getmany(timeout_ms=500, max_records=count - len(got))
        for msgs in batch.values():
            got.extend(msgs)
    return got


def test_send_and_wait_then_consume_in_order(broker, topic):
    base = int(time.time() * 1000) - 600_000
    records = [
        {
            "key": None if i % 9 == 0 else f"k{i % 13}".encode(),
            "value": b"" if i % 11 == 0 else f"record {i}".encode(),
            "headers": [("seq", str(i).encode())] if i % 2 else [],
            "timestamp": base + i,
        }
        for i in range(N)
    ]

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            metas = []
            for r in records:
                metas.append(
                    await producer.send_and_wait(
                        topic, value=r["value"], key=r["key"], headers=r["headers"], timestamp_ms=r["timestamp"]
                    )
                )
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            got = await read(consumer, N)
            extra = await consumer.getmany(timeout_ms=1000)
        finally:
            await consumer.stop()
        return metas, got, extra

    metas, got, extra = run(scenario())
    # The topic was auto-created with one partition: offsets follow the send order.
    assert {(m.topic, m.partition) for m in metas} == {(topic, 0)}
    assert [m.offset for m in metas] == list(range(N))
    assert [m.offset for m in got] == list(range(N))
    for m, r in zip(got, records):
        assert (m.key, m.value, list(m.headers), m.timestamp) == (
            r["key"],
            r["value"],
            r["headers"],
            r["timestamp"],
        ), f"offset {m.offset}"
    assert not any(extra.values()), "nothing beyond what was sent"


def test_assign_seek_and_offsets_for_times(broker, topic):
    create_topic(broker.bootstrap, topic, 2)
    base = int(time.time() * 1000) - 600_000

    async def scenario():
        # acks=all (aiokafka defaults to 1): an acks=1 answer precedes the fsync that makes the
        # record visible, so end_offsets read right after could lag (docs/ARCHITECTURE.md).
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0, acks="all")
        await producer.start()
        try:
            for p in (0, 1):
                for i in range(10):
                    # send_and_wait: one request, hence one batch, per record.
                    await producer.send_and_wait(
                        topic, value=f"p{p}-{i}".encode(), partition=p, timestamp_ms=base + 1000 * i
                    )
        finally:
            await producer.stop()
        p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([p0, p1])
            ends = await consumer.end_offsets([p0, p1])
            starts = await consumer.beginning_offsets([p0, p1])
            times = await consumer.offsets_for_times({p0: base + 4500, p1: base + 20_000})
            consumer.seek(p0, times[p0].offset)
            await consumer.seek_to_beginning(p1)
            got = await read(consumer, 5 + 10)
            await consumer.seek_to_end(p0)
            position = await consumer.position(p0)
        finally:
            await consumer.stop()
        return ends, starts, times, got, position, p0, p1

    ends, starts, times, got, position, p0, p1 = run(scenario())
    assert ends == {p0: 10, p1: 10}
    assert starts == {p0: 0, p1: 0}
    assert (times[p0].offset, times[p0].timestamp) == (5, base + 5000)
    assert times[p1] is None, "no record at or after the target"
    assert sorted((m.partition, m.offset) for m in got) == [(0, i) for i in range(5, 10)] + [(1, i) for i in range(10)]
    assert all(m.value == f"p{m.partition}-{m.offset}".encode() for m in got)
    assert position == 10


def test_admin_client_creates_describes_and_deletes(broker, topic):
    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
            listed = await admin.list_topics()
            [described] = await admin.describe_topics([topic])
            cluster = await admin.describe_cluster()
            await admin.delete_topics([topic])
            after = await admin.list_topics()
        finally:
            await admin.close()
        return listed, described, cluster, after

    listed, described, cluster, after = run(scenario())
    assert topic in listed
    assert (described["topic"], described["error_code"]) == (topic, 0)
    assert sorted((p["partition"], p["leader"], p["isr"]) for p in described["partitions"]) == [
        (i, 1, [1]) for i in range(3)
    ]
    assert cluster["controller_id"] == 1
    assert cluster["cluster_id"] and cluster["cluster_id"] in broker.stderr_text()
    assert [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [(1, broker.host, broker.port)]
    assert topic not in after
