"""Hostile and malformed input over raw sockets, with hand-built Kafka frames.

All tests in this module share one broker, so the abuse accumulates; every test ends by checking
that the broker is still alive and still answers a fresh connection, and the last test drives it
with a normal client.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from conftest import unique_topic
from spate_helpers import create_topic

API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA = 0, 1, 2, 3
API_API_VERSIONS = 18
UNSUPPORTED_VERSION = 35
CORRUPT_MESSAGE = 2

# --------------------------------------------------------------------------------------------
# Encoding helpers
# --------------------------------------------------------------------------------------------


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n: int) -> bytes:
    """Zigzag-encoded signed varint/varlong (64-bit)."""
    return uvarint(((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF)


def kstring(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def compact_string(s: str) -> bytes:
    b = s.encode()
    return uvarint(len(b) + 1) + b


def kbytes(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


def encode_record(offset_delta: int, ts_delta: int, key: bytes | None, value: bytes | None,
                  headers: list[tuple[str, bytes | None]] = ()) -> bytes:
    body = bytearray()
    body += struct.pack(">b", 0)  # attributes
    body += varint(ts_delta)
    body += varint(offset_delta)
    if key is None:
        body += varint(-1)
    else:
        body += varint(len(key)) + key
    if value is None:
        body += varint(-1)
    else:
        body += varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        hkb = hk.encode()
        body += varint(len(hkb)) + hkb
        if hv is None:
            body += varint(-1)
        else:
            body += varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_batch(records: list[tuple[bytes | None, bytes | None]], first_ts: int,
                 corrupt_crc: bool = False) -> bytes:
    """A magic-2 record batch (uncompressed, no producer id) with the given (key, value) records."""
    recs = b"".join(encode_record(i, i, k, v, [("n", str(i).encode())]) for i, (k, v) in enumerate(records))
    after_crc = struct.pack(
        ">hiqqqhii",
        0,                      # attributes
        len(records) - 1,       # lastOffsetDelta
        first_ts,               # firstTimestamp
        first_ts + len(records) - 1,  # maxTimestamp
        -1,                     # producerId
        -1,                     # producerEpoch
        -1,                     # baseSequence
        len(records),           # records count
    ) + recs
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    # batchLength counts everything after itself: partitionLeaderEpoch, magic, crc, rest.
    after_len = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_len)) + after_len


def request_header_v1(api_key: int, api_version: int, correlation_id: int, client_id: str = "spate-bad-input") -> bytes:
    return struct.pack(">hhi", api_key, api_version, correlation_id) + kstring(client_id)


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def produce_v3(correlation_id: int, topic: str, partition: int, batch: bytes, acks: int = -1) -> bytes:
    body = kstring(None)  # transactional_id
    body += struct.pack(">hi", acks, 30_000)
    body += struct.pack(">i", 1) + kstring(topic)
    body += struct.pack(">i", 1) + struct.pack(">i", partition) + kbytes(batch)
    return frame(request_header_v1(API_PRODUCE, 3, correlation_id) + body)


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        assert self.pos + size <= len(self.data), (
            f"response truncated: wanted {size} bytes at {self.pos}, have {len(self.data)}: {self.data.hex()}")
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals if len(vals) > 1 else vals[0]

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        return s.decode()

    def done(self) -> bool:
        return self.pos == len(self.data)


# --------------------------------------------------------------------------------------------
# Socket helpers
# --------------------------------------------------------------------------------------------


def connect(broker) -> socket.socket:
    s = socket.create_connection((broker.host, broker.port), timeout=5)
    s.settimeout(5)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_response(s: socket.socket) -> bytes:
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    assert 0 < size < 64 * 1024 * 1024, f"implausible response size {size}"
    return recv_exact(s, size)


def roundtrip(broker, request: bytes) -> bytes:
    with connect(broker) as s:
        s.sendall(request)
        return read_response(s)


def assert_closed_by_broker(s: socket.socket, what: str, timeout: float = 5.0) -> None:
    """The broker must close this connection (EOF or reset) within `timeout`, sending no response."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    received = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break  # orderly close: good
            received += chunk
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: broker kept sending data instead of closing", pytrace=False)
    except (ConnectionResetError, BrokenPipeError):
        pass  # reset: also a close
    except socket.timeout:
        pytest.fail(f"{what}: broker did not close the connection within {timeout:.0f}s "
                    f"(received {received[:64].hex()!s})", pytrace=False)
    assert received == b"", f"{what}: expected no response before the close, got {received[:64].hex()}"


def api_versions_v0(correlation_id: int) -> bytes:
    return frame(request_header_v1(API_API_VERSIONS, 0, correlation_id))


def parse_api_versions_v0(resp: bytes, correlation_id: int):
    r = Reader(resp)
    assert r.take(">i") == correlation_id, f"wrong correlation id in {resp[:8].hex()}"
    error = r.take(">h")
    n = r.take(">i")
    apis = {}
    for _ in range(max(n, 0)):
        key, lo, hi = r.take(">hhh")
        apis[key] = (lo, hi)
    assert r.done(), f"{len(resp) - r.pos} trailing bytes after the ApiVersions v0 response"
    return error, n, apis


def assert_broker_healthy(broker) -> None:
    """Still running, and a fresh connection gets a correct ApiVersions v0 answer."""
    assert broker.alive(), f"broker died (exit code {broker.proc.returncode})\n{broker.stderr_tail()}"
    error, _, apis = parse_api_versions_v0(roundtrip(broker, api_versions_v0(4242)), 4242)
    assert error == 0 and API_API_VERSIONS in apis


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_crc32c_self_check():
    # Known-answer tests for the pure-Python CRC32C (RFC 3720 / iSCSI vectors).
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"\x00" * 32) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert varint(0) == b"\x00" and varint(-1) == b"\x01" and varint(1) == b"\x02" and varint(300) == b"\xd8\x04"


@pytest.mark.parametrize("length", [0x7FFFFFFF, -5], ids=["int32max", "negative"])
def test_garbage_frame_length_closes_connection(module_broker, length):
    with connect(module_broker) as s:
        s.sendall(struct.pack(">i", length) + b"\x00\x12\x00\x00\x00\x00\x00\x01")
        assert_closed_by_broker(s, f"frame length {length}")
    assert_broker_healthy(module_broker)


def test_truncated_frame_then_new_connection_works(module_broker):
    with connect(module_broker) as s:
        s.sendall(struct.pack(">i", 100) + b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\x00")
    # Abandoned mid-frame; the broker must not care for anyone else.
    error, n, apis = parse_api_versions_v0(roundtrip(module_broker, api_versions_v0(8)), 8)
    assert error == 0 and n > 0
    assert_broker_healthy(module_broker)


def test_unknown_api_key_closes_connection(module_broker):
    with connect(module_broker) as s:
        s.sendall(frame(request_header_v1(9999, 0, 77) + b"\x00" * 8))
        assert_closed_by_broker(s, "api key 9999")
    assert_broker_healthy(module_broker)


def test_api_versions_too_new_version_gets_v0_error_response(module_broker):
    # A v3+ style request (header v2 with tagged fields, compact-string body) at version 99.
    header = struct.pack(">hhi", API_API_VERSIONS, 99, 31337) + kstring("spate-bad-input") + b"\x00"
    body = compact_string("spate-tests") + compact_string("1.0") + b"\x00"
    resp = roundtrip(module_broker, frame(header + body))
    error, n, apis = parse_api_versions_v0(resp, 31337)
    assert error == UNSUPPORTED_VERSION, f"error code {error}, expected 35 (UNSUPPORTED_VERSION)"
    assert n > 0 and apis, "the UNSUPPORTED_VERSION response must still list the supported APIs"
    assert API_API_VERSIONS in apis, f"ApiVersions itself missing from {sorted(apis)}"
    assert_broker_healthy(module_broker)


def test_api_versions_v0_lists_core_apis(module_broker):
    error, n, apis = parse_api_versions_v0(roundtrip(module_broker, api_versions_v0(5)), 5)
    assert error == 0
    assert n == len(apis)
    for key in (API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA, 18, 19, 20):
        assert key in apis, f"API key {key} missing from ApiVersions: {sorted(apis)}"
    for key, (lo, hi) in apis.items():
        assert 0 <= lo <= hi, f"API {key}: bad version range {lo}..{hi}"
    # librdkafka disables compression unless Produce's advertised min version is 0; Produce v3 is
    # what the raw-produce tests below send.
    assert apis[API_PRODUCE][0] <= 3 <= apis[API_PRODUCE][1], f"Produce range {apis[API_PRODUCE]}"
    assert apis[API_API_VERSIONS][0] == 0


def parse_produce_v3(resp: bytes, correlation_id: int):
    r = Reader(resp)
    assert r.take(">i") == correlation_id
    results = {}
    for _ in range(r.take(">i")):
        name = r.string()
        for _ in range(r.take(">i")):
            index, error, base_offset, log_append_time = r.take(">ihqq")
            results[(name, index)] = (error, base_offset, log_append_time)
    throttle = r.take(">i")
    assert throttle >= 0
    assert r.done(), f"{len(resp) - r.pos} trailing bytes in Produce v3 response"
    return results


def test_produce_bad_crc_is_corrupt_message(module_broker):
    topic = unique_topic("checksum-test")
    create_topic(module_broker.bootstrap, topic, 1)
    recs = [(b"key-%d" % i, b"value-%d" % i) for i in range(5)]
    ts = 1_700_000_000_000

    good = record_batch(recs, ts)
    bad = record_batch(recs, ts, corrupt_crc=True)
    assert good != bad and len(good) == len(bad)
    # Our own encoder must agree with itself: the CRC field covers attributes..end.
    assert struct.unpack(">I", good[17:21])[0] == crc32c(good[21:])

    log_mark = module_broker.stderr_size()
    with connect(module_broker) as s:
        s.sendall(produce_v3(101, topic, 0, bad))
        results = parse_produce_v3(read_response(s), 101)
        assert set(results) == {(topic, 0)}, results
        error, base_offset, _ = results[(topic, 0)]
        assert error == CORRUPT_MESSAGE, f"bad-CRC batch got error {error}, expected 2 (CORRUPT_MESSAGE)"

        # Positive control on the same connection: the identical batch with the right CRC is
        # accepted at offset 0 (the corrupt one must not have taken any offsets).
        s.sendall(produce_v3(102, topic, 0, good))
        results = parse_produce_v3(read_response(s), 102)
        assert results[(topic, 0)][:2] == (0, 0), f"good batch: (error, base_offset) = {results[(topic, 0)][:2]}"

        # And again: the next batch lands right after it.
        s.sendall(produce_v3(103, topic, 0, good))
        results = parse_produce_v3(read_response(s), 103)
        assert results[(topic, 0)][:2] == (0, len(recs)), f"second good batch: {results[(topic, 0)][:2]}"

    line = module_broker.wait_for_log(r"crc|corrupt", since=log_mark, timeout=5)
    assert line is not None, (
        "no broker log line mentions the CRC / corruption after a bad-CRC produce\n"
        f"--- stderr since the request ---\n{module_broker.stderr_text()[log_mark:][-4000:]}"
    )

    # The stored batches are readable by a real client, with their content intact.
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": module_broker.bootstrap, "group.id": f"g-{topic}",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 2 * len(recs) and time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=0.5):
                assert m.error() is None, m.error()
                got.append((m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]))
    finally:
        c.close()
    want = [(i, k, v, [("n", str(i % len(recs)).encode())], ts + i % len(recs))
            for i, (k, v) in enumerate(recs * 2)]
    assert got == want
    assert_broker_healthy(module_broker)


def test_normal_client_still_works_after_bad_input(module_broker):
    """Run last in this module: after all of the above, kafka-python still produces and consumes."""
    try:
        from kafka import KafkaConsumer, KafkaProducer
    except ImportError as e:
        pytest.fail(f"kafka-python is not importable ({e})", pytrace=False)
    topic = unique_topic("after-abuse")
    producer = KafkaProducer(bootstrap_servers=module_broker.bootstrap)
    try:
        metas = [producer.send(topic, b"ok-%d" % i) for i in range(20)]
        producer.flush(timeout=30)
        assert [f.get(timeout=10).offset for f in metas] == list(range(20))
    finally:
        producer.close(timeout=10)
    consumer = KafkaConsumer(topic, bootstrap_servers=module_broker.bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=10000)
    try:
        values = []
        for m in consumer:
            values.append(m.value)
            if len(values) == 20:
                break
    finally:
        consumer.close()
    assert values == [b"ok-%d" % i for i in range(20)]
    assert_broker_healthy(module_broker)
