"""Compressed record batches (issue 4): every codec, from every Python client, round-trips, and
the broker really stores the batches compressed (checked on the wire with a hand-built Fetch
that reads each stored batch's attributes, since a client would decompress transparently).

Codec ids are the low 3 bits of a v2 batch's attributes: 1 gzip, 2 snappy, 3 lz4, 4 zstd.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from spate_helpers import create_topic, describe, run_spate

from confluent_kafka import Consumer, Producer, TopicPartition

try:
    import kafka.codec
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KpTopicPartition
except ImportError as e:  # a missing client is a failure, never a skip
    pytest.fail(f"kafka-python is not importable ({e}); pip install 'kafka-python>=3,<4'", pytrace=False)

try:
    import aiokafka.codec
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
except ImportError as e:
    pytest.fail(f"aiokafka is not importable ({e}); pip install 'aiokafka>=0.12,<1'", pytrace=False)

CODECS = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
N = 300
TIMEOUT = 30


# ---- a raw Fetch v4, by hand ---------------------------------------------------------------


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"broker closed the connection after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def raw_fetch(host: str, port: int, topic: str, partition: int, offset: int) -> tuple[int, int, bytes]:
    """One Fetch v4 request; returns (error code, high watermark, record data)."""
    max_bytes = 16 << 20
    body = struct.pack(">iiiib", -1, 100, 1, max_bytes, 0)  # replica, wait, min, max, isolation
    body += struct.pack(">i", 1) + _string(topic) + struct.pack(">i", 1)
    body += struct.pack(">iqi", partition, offset, max_bytes)
    frame = struct.pack(">hhi", 1, 4, 4242) + _string("spate-compat-raw") + body
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        resp = _recv_exact(sock, size)
    (correlation_id, _throttle, topics) = struct.unpack_from(">iii", resp, 0)
    assert correlation_id == 4242 and topics == 1, (correlation_id, topics)
    pos = 12
    (name_len,) = struct.unpack_from(">h", resp, pos)
    pos += 2 + name_len
    (partitions,) = struct.unpack_from(">i", resp, pos)
    assert partitions == 1
    pos += 4
    index, error, high_watermark, _lso, aborted = struct.unpack_from(">ihqqi", resp, pos)
    assert index == partition
    pos += 4 + 2 + 8 + 8 + 4 + 16 * max(aborted, 0)
    (records_len,) = struct.unpack_from(">i", resp, pos)
    pos += 4
    return error, high_watermark, resp[pos : pos + max(records_len, 0)]


def stored_batches(broker, topic: str, partition: int = 0) -> list[dict]:
    """Every batch of the partition as stored: base offset, record count, codec id."""
    batches: list[dict] = []
    offset = 0
    while True:
        error, high_watermark, data = raw_fetch(broker.host, broker.port, topic, partition, offset)
        assert error == 0, f"raw Fetch of {topic}-{partition} at {offset}: error code {error}"
        pos = 0
        while pos + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if pos + 12 + length > len(data):
                break  # cut by the size limit: fetched again from its offset
            (magic,) = struct.unpack_from(">b", data, pos + 16)
            (attributes,) = struct.unpack_from(">h", data, pos + 21)
            (last_delta,) = struct.unpack_from(">i", data, pos + 23)
            (count,) = struct.unpack_from(">i", data, pos + 57)
            assert magic == 2, f"batch at {base} has magic {magic}"
            batches.append({"base": base, "count": count, "codec": attributes & 7})
            offset = base + last_delta + 1
            pos += 12 + length
        if offset >= high_watermark:
            return batches
        assert pos > 0, f"no whole batch at offset {offset} of {topic}-{partition}"


def check_stored_compressed(broker, topic: str, codec: str, client: str) -> None:
    batches = stored_batches(broker, topic)
    assert sum(b["count"] for b in batches) == N, batches
    assert [b["base"] for b in batches][0] == 0
    codecs = {b["codec"] for b in batches}
    hint = ""
    if codec == "lz4" and client == "confluent":
        hint = (
            " (librdkafka compresses with lz4 only when the broker advertises FindCoordinator v0 in "
            "ApiVersions: its feature map ties LZ4 to it, and otherwise logs 'Broker does not "
            "support compression type lz4: not compressing batch')"
        )
    assert codecs == {CODECS[codec]}, (
        f"{client} produced with {codec} but the stored batches carry codec ids {sorted(codecs)} "
        f"(expected {CODECS[codec]}){hint}: {batches[:5]}"
    )
    assert max(b["count"] for b in batches) > 1, f"every batch holds one record: compression untested {batches[:5]}"


# ---- the records ---------------------------------------------------------------------------


def make_records(base_ts: int) -> list[dict]:
    records = []
    for i in range(N):
        records.append(
            {
                "key": None if i % 10 == 0 else f"key-{i % 37}".encode(),
                "value": b"" if i % 17 == 0 else (f"value {i} " * (1 + i % 9)).encode(),
                "headers": [("i", str(i).encode()), ("empty", b"")] if i % 3 == 0 else [],
                "timestamp": base_ts + i,
            }
        )
    return records


def check_confluent_reads(broker, topic: str, records: list[dict]) -> None:
    """librdkafka decompresses what any client compressed, record for record."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"read-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    got = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + TIMEOUT
        while len(got) < len(records) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append(msg)
    finally:
        consumer.close()
    assert [m.offset() for m in got] == list(range(len(records)))
    for m, r in zip(got, records):
        where = f"offset {m.offset()}"
        assert m.key() == r["key"], where
        assert m.value() == r["value"], where
        assert (m.headers() or []) == r["headers"], where
        assert m.timestamp()[1] == r["timestamp"], where


def check_kafka_python_reads(broker, topic: str, records: list[dict]) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    try:
        consumer.assign([KpTopicPartition(topic, 0)])
        got = []
        deadline = time.monotonic() + TIMEOUT
        for msg in consumer:
            got.append(msg)
            if len(got) >= len(records) or time.monotonic() > deadline:
                break
    finally:
        consumer.close()
    assert [m.offset for m in got] == list(range(len(records)))
    for m, r in zip(got, records):
        assert (m.key, m.value, list(m.headers), m.timestamp) == (
            r["key"],
            r["value"],
            r["headers"],
            r["timestamp"],
        ), f"offset {m.offset}"


# ---- the producers -------------------------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_confluent_producer_codec(broker, topic, codec):
    create_topic(broker.bootstrap, topic, 1)
    records = make_records(int(time.time() * 1000) - 60_000)
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "compression.type": codec,
            "linger.ms": 100,
            "enable.idempotence": True,
        }
    )
    errors = []
    for r in records:
        producer.produce(
            topic,
            key=r["key"],
            value=r["value"],
            headers=r["headers"] or None,
            timestamp=r["timestamp"],
            partition=0,
            on_delivery=lambda err, msg: errors.append(err) if err else None,
        )
    assert producer.flush(TIMEOUT) == 0
    assert not errors, errors[:3]
    check_stored_compressed(broker, topic, codec, "confluent")
    check_confluent_reads(broker, topic, records)
    check_kafka_python_reads(broker, topic, records)


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_kafka_python_producer_codec(broker, topic, codec):
    available = {
        "gzip": kafka.codec.has_gzip,
        "snappy": kafka.codec.has_snappy,
        "lz4": kafka.codec.has_lz4,
        "zstd": kafka.codec.has_zstd,
    }
    assert available[codec](), (
        f"kafka-python has no {codec} library: pip install python-snappy lz4 zstandard (see .ci/run)"
    )
    records = make_records(int(time.time() * 1000) - 60_000)
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, compression_type=codec, linger_ms=100, acks="all"
    )
    try:
        futures = [
            producer.send(
                topic, key=r["key"], value=r["value"], headers=r["headers"], timestamp_ms=r["timestamp"], partition=0
            )
            for r in records
        ]
        producer.flush(timeout=TIMEOUT)
        assert [f.get(timeout=TIMEOUT).offset for f in futures] == list(range(N))
    finally:
        producer.close(timeout=10)
    check_stored_compressed(broker, topic, codec, "kafka-python")
    check_kafka_python_reads(broker, topic, records)
    check_confluent_reads(broker, topic, records)


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_aiokafka_producer_codec(broker, topic, codec):
    assert codec == "gzip" or aiokafka.codec.has_zstd(), "aiokafka needs cramjam for snappy/lz4/zstd: pip install cramjam"
    records = make_records(int(time.time() * 1000) - 60_000)

    async def produce_then_consume():
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, compression_type=codec, linger_ms=100, acks="all"
        )
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic,
                    key=r["key"],
                    value=r["value"],
                    headers=r["headers"],
                    timestamp_ms=r["timestamp"],
                    partition=0,
                )
                for r in records
            ]
            metas = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        assert [m.offset for m in metas] == list(range(N))
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        got = []
        try:
            while len(got) < N:
                batch = await consumer.getmany(timeout_ms=1000)
                got.extend(m for msgs in batch.values() for m in msgs)
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(asyncio.wait_for(produce_then_consume(), timeout=2 * TIMEOUT))
    assert [m.offset for m in got] == list(range(N))
    for m, r in zip(got, records):
        assert (m.key, m.value, list(m.headers), m.timestamp) == (
            r["key"],
            r["value"],
            r["headers"],
            r["timestamp"],
        ), f"offset {m.offset}"
    check_stored_compressed(broker, topic, codec, "aiokafka")
    check_confluent_reads(broker, topic, records)


# ---- the console consumer ------------------------------------------------------------------


class SpateConsumeCannotDecompress(Exception):
    """`spate consume` refused a compressed batch (with a clear message)."""


def test_spate_consume_reads_compressed_batches(broker, topic):
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, compression_type="gzip", linger_ms=50, acks="all"
    )
    try:
        for i in range(5):
            producer.send(topic, key=f"k{i}".encode(), value=f"v{i} ".encode() * 50, partition=0)
        producer.flush(timeout=TIMEOUT)
    finally:
        producer.close(timeout=10)
    assert {b["codec"] for b in stored_batches(broker, topic)} == {CODECS["gzip"]}
    cp = run_spate(
        "consume", "--topic", topic, "--from-beginning", "--max-messages", "5", "--print-key",
        "--bootstrap-server", broker.bootstrap,
    )
    if cp.returncode != 0:
        # Until then, the refusal must say what and why, and point somewhere useful.
        assert "offset 0 is compressed with gzip" in cp.stderr, describe(cp)
        assert "kcat" in cp.stderr, describe(cp)
        raise SpateConsumeCannotDecompress(cp.stderr)
    assert cp.stdout == "".join(f"k{i}\t" + f"v{i} " * 50 + "\n" for i in range(5)), describe(cp)
