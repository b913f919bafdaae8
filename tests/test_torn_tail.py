"""Torn and corrupt segment tails against the real broker.

Each test produces known records (acks=all) to a 1-partition topic in several flushes, so the
segment holds several batches, the last one alone in its flush and large enough to span a 4096-byte
block boundary. The broker is stopped, the last segment file is damaged on disk, and the broker is
started again on the same data dir. Stop modes:

- ``kill``: SIGKILL (acks=all data is fsynced, so the file holds every record);
- ``term``: SIGTERM, then the ``clean-shutdown`` mark is removed if the broker wrote one: a crash
  during a clean shutdown, after the active segment's index file was written but before the mark.
  The broker must not trust the last segment's index file then, and scans it;
- ``term_clean``: SIGTERM, the mark kept (only for damage that shortens the file: the index file
  then describes more bytes than the segment has and must be refused, so the segment is scanned).
  Damage that keeps the file's length after a clean stop is bit rot, not a torn tail: a broker
  that trusts its clean-shutdown checkpoint finds it on read (CRC), not at start, so those
  combinations are not tested here.

Damage, and what start-up must do about it (ARCHITECTURE.md, "Recovery"): the scan keeps whole
valid batches from the start of the file and stops at zero padding or at the first batch that
fails its length/magic/count/CRC/offset checks; non-zero bytes after that point are a torn or
corrupt tail, truncated with a WARN naming the bytes and offsets kept.

- ``truncate_mid``: the file cut in the middle of the last batch;
- ``truncate_block``: cut at a 4096-byte boundary inside the last batch (an O_DIRECT write of
  which only the first blocks reached the disk);
- ``truncate_header``: cut 17 bytes into the last batch (inside its header, past the magic byte);
- ``crc``: bytes inside the last batch's records overwritten (CRC mismatch);
- ``bad_length``: the last batch's length field made to point past the end of the file;
- ``garbage_gap``: non-zero garbage inside the zero padding, some zeros after the logical end;
- ``garbage_adjacent``: non-zero garbage right at the logical end;
- ``zeroed_after_first``: everything after the first batch zeroed, file length kept.

For every kind: the broker starts; the records before the damaged batch are all there, with their
values, at their offsets, and nothing after them (the damaged batch's offsets are gone, ListOffsets
latest agrees); new records get offsets continuing right after the last good record; after a
clean stop the segment file is exactly valid batches (CRC-checked here) followed by zeros; a second
restart logs no truncation and serves the same records. All kinds but ``zeroed_after_first`` must
log the "torn tail" WARN naming the offset it keeps up to. Zeroed bytes are, by design,
indistinguishable from the zero padding after the logical end, so for ``zeroed_after_first`` the
broker cannot tell that batches were lost and the test asserts nothing about the WARN (only that
it recovers to the first batch and goes on correctly).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from spate_helpers import create_topic, sigkill_broker

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

BLOCK = 4096
HEADER = 61  # Kafka v2 record batch header
GROUPS = [(15, 150)] * 6 + [(12, 700)]  # (records, value bytes) per flush; the last is the victim

SHORTENING = ["truncate_mid", "truncate_block", "truncate_header"]
KINDS = [
    "truncate_mid",
    "truncate_block",
    "truncate_header",
    "crc",
    "bad_length",
    "garbage_gap",
    "garbage_adjacent",
    "zeroed_after_first",
]


# -- segment files ---------------------------------------------------------------------------


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


@dataclass
class Batch:
    pos: int
    size: int
    base_offset: int
    count: int

    @property
    def end(self) -> int:
        return self.pos + self.size

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.count


def parse_segment(data: bytes) -> tuple[list[Batch], int]:
    """Whole, CRC-valid v2 batches from the start of a segment. Returns (batches, logical end)."""
    pos = 0
    batches = []
    while pos + 12 <= len(data) and data[pos : pos + 12] != bytes(12):
        base = int.from_bytes(data[pos : pos + 8], "big", signed=True)
        length = int.from_bytes(data[pos + 8 : pos + 12], "big", signed=True)
        size = 12 + length
        if size < HEADER or pos + size > len(data) or data[pos + 16] != 2:
            break
        crc = int.from_bytes(data[pos + 17 : pos + 21], "big")
        if crc32c(data[pos + 21 : pos + size]) != crc:
            break
        last_delta = int.from_bytes(data[pos + 23 : pos + 27], "big", signed=True)
        count = int.from_bytes(data[pos + 57 : pos + 61], "big", signed=True)
        assert count == last_delta + 1, f"batch at {pos}: {count} records, last offset delta {last_delta}"
        batches.append(Batch(pos, size, base, count))
        pos += size
    return batches, pos


def partition_dir(data_dir: Path, topic: str, partition: int = 0) -> Path:
    dirs = [d for d in data_dir.iterdir() if d.is_dir() and topic in d.name]
    assert len(dirs) == 1, f"expected one directory for topic {topic!r} in {data_dir}, found {dirs}"
    pdir = dirs[0] / str(partition)
    assert pdir.is_dir(), f"no partition directory {pdir}"
    return pdir


def last_segment(data_dir: Path, topic: str, partition: int = 0) -> Path:
    logs = sorted(partition_dir(data_dir, topic, partition).glob("*.log"), key=lambda p: int(p.stem))
    assert logs, f"no segment files for {topic}-{partition} in {data_dir}"
    return logs[-1]


def check_segment_clean(path: Path, expected_end_offset: int) -> None:
    """The file is valid batches with dense offsets up to `expected_end_offset`, then zeros."""
    data = path.read_bytes()
    batches, end = parse_segment(data)
    assert batches, f"{path}: no valid batch"
    assert batches[0].base_offset == int(path.stem), f"{path}: first batch at {batches[0].base_offset}"
    for a, b in zip(batches, batches[1:]):
        assert b.base_offset == a.next_offset, f"{path}: batch at byte {b.pos} starts at {b.base_offset}, expected {a.next_offset}"
    assert batches[-1].next_offset == expected_end_offset, (
        f"{path}: batches end at offset {batches[-1].next_offset}, expected {expected_end_offset}"
    )
    tail = data[end:]
    assert tail == bytes(len(tail)), (
        f"{path}: {len(tail)} bytes after the logical end {end} are not all zero "
        f"(first non-zero at {end + next(i for i, b in enumerate(tail) if b)})"
    )


def patch(path: Path, position: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def damage(path: Path, kind: str, batches: list[Batch], end: int) -> int:
    """Damage the segment; returns the offset recovery must keep up to (exclusive)."""
    last = batches[-1]
    size = path.stat().st_size
    if kind == "truncate_mid":
        os.truncate(path, last.pos + last.size // 2)
        return last.base_offset
    if kind == "truncate_block":
        cut = (last.end - 1) // BLOCK * BLOCK
        assert cut > last.pos + HEADER, f"the last batch ({last}) does not span a block boundary"
        os.truncate(path, cut)
        return last.base_offset
    if kind == "truncate_header":
        os.truncate(path, last.pos + 17)
        return last.base_offset
    if kind == "crc":
        at = last.pos + HEADER + (last.size - HEADER) // 2
        old = path.read_bytes()[at : at + 8]
        patch(path, at, bytes(b ^ 0xA5 for b in old))
        return last.base_offset
    if kind == "bad_length":
        patch(path, last.pos + 8, (size * 2).to_bytes(4, "big"))
        return last.base_offset
    if kind in ("garbage_gap", "garbage_adjacent"):
        garbage = bytes(range(1, 41))
        at = end + 100 if kind == "garbage_gap" else end
        if at + len(garbage) > size:  # not enough padding: add a zero block, as a write would
            os.truncate(path, (at + len(garbage) + BLOCK - 1) // BLOCK * BLOCK)
        patch(path, at, garbage)
        return last.next_offset
    if kind == "zeroed_after_first":
        first = batches[0]
        patch(path, first.end, bytes(size - first.end))
        return first.next_offset
    raise AssertionError(kind)


# -- clients ---------------------------------------------------------------------------------


def produce_groups(bootstrap: str, topic: str, groups, start: int = 0) -> list[tuple[int, bytes]]:
    """Produce each group of records then flush (acks=all); returns [(offset, value)] in order."""
    p = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": False,
         "message.timeout.ms": 30000}
    )
    reports: dict[bytes, int] = {}
    errors = []

    def cb(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            reports[msg.value()] = msg.offset()

    values = []
    i = start
    for n, width in groups:
        for _ in range(n):
            v = f"rec-{i:06d}-".encode()
            v += bytes([65 + i % 26]) * (width - len(v))
            p.produce(topic, value=v, partition=0, on_delivery=cb)
            values.append(v)
            i += 1
        assert p.flush(30) == 0
    assert not errors, errors[:5]
    assert len(reports) == len(values)
    return [(reports[v], v) for v in values]


def read_partition(bootstrap: str, topic: str, timeout: float = 30.0) -> tuple[int, list]:
    """(high watermark, every record from offset 0 up to it) of partition 0."""
    c = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"verify-{topic}", "enable.auto.commit": False,
         "fetch.wait.max.ms": 20, "enable.partition.eof": True}
    )
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
        assert low == 0, f"log start offset {low}"
        c.assign([TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + timeout
        while high > 0 and (not got or got[-1].offset() < high - 1):
            assert time.monotonic() < deadline, f"read {len(got)} of {high} records in {timeout}s"
            for m in c.consume(num_messages=1000, timeout=0.2):
                if m.error() is not None:
                    assert m.error().code() == KafkaError._PARTITION_EOF, str(m.error())
                    continue
                got.append(m)
        return high, got
    finally:
        c.close()


def check_log(bootstrap: str, topic: str, expected: list[bytes]) -> None:
    high, got = read_partition(bootstrap, topic)
    assert high == len(expected), f"high watermark {high}, expected {len(expected)}"
    assert [m.offset() for m in got] == list(range(len(expected)))
    bad = [m.offset() for m, v in zip(got, expected) if m.value() != v]
    assert not bad, f"records at offsets {bad[:10]} have the wrong value"


def started_output(broker) -> str:
    """The new incarnation's stderr once its ready line is out (start() may return on the first
    accepted connection, before start-up's log lines are all written)."""
    assert broker.wait_for_log(r"listening on", timeout=10), broker.stderr_tail()
    return broker.stderr_text()


def torn_lines(text: str) -> list[str]:
    """WARN lines about a torn tail (matched as a word, so a path holding "torn" is no hit)."""
    return [line for line in text.splitlines() if re.search(r"\bWARN\b.*\btorn\b", line)]


def no_panic(text: str, what: str) -> None:
    bad = [line for line in text.splitlines() if re.search(r"panick|\bERROR\b", line)]
    assert not bad, f"{what} logged a panic or an ERROR:\n" + "\n".join(bad)


# -- the test --------------------------------------------------------------------------------


CASES = [(kind, stop) for kind in KINDS for stop in ("term", "kill")] + [
    (kind, "term_clean") for kind in SHORTENING
]


def remove_clean_shutdown_mark(data_dir: Path) -> list[str]:
    marks = [p for p in data_dir.iterdir() if p.is_file() and "clean" in p.name]
    for p in marks:
        p.unlink()
    return [p.name for p in marks]


@pytest.mark.parametrize("kind,stop", CASES)
def test_damaged_tail_is_truncated_on_restart(broker, topic, kind, stop):
    create_topic(broker.bootstrap, topic, 1)
    reports = produce_groups(broker.bootstrap, topic, GROUPS)
    assert [o for o, _ in reports] == list(range(len(reports)))
    values = [v for _, v in reports]
    n = len(values)

    if stop == "kill":
        sigkill_broker(broker)
    else:
        broker.stop()
        if stop == "term":
            remove_clean_shutdown_mark(broker.data_dir)
    no_panic(broker.stderr_text(), "the first broker")

    seg = last_segment(broker.data_dir, topic)
    data = seg.read_bytes()
    batches, end = parse_segment(data)
    assert batches and batches[-1].next_offset == n, f"segment before damage: {batches}"
    assert data[end:] == bytes(len(data) - end), "segment before damage is not batches then zeros"
    assert len(data) % BLOCK == 0, f"segment of {len(data)} bytes, not whole blocks"
    last_group = GROUPS[-1][0]
    assert batches[-1].base_offset >= n - last_group, (
        f"the last batch {batches[-1]} mixes records of earlier flushes"
    )
    keep = damage(seg, kind, batches, end)
    print(f"\n{kind}/{stop}: {len(batches)} batches, {n} records, {end} bytes; keep offsets < {keep}")

    broker.start()
    startup = started_output(broker)
    no_panic(startup, "the broker restarted on the damaged segment")
    torn = torn_lines(startup)
    print("\n".join(torn) or "(no torn-tail line)")
    if kind != "zeroed_after_first":
        assert torn, f"no 'torn' WARN after {kind}:\n{startup}"
        assert len(torn) == 1, f"more than one torn-tail line:\n" + "\n".join(torn)
        assert re.search(rf"torn.*\b{keep}\b", torn[0]), f"the WARN does not name offset {keep}: {torn[0]}"

    # Before the damaged batch: everything; the damaged batch's offsets: gone.
    check_log(broker.bootstrap, topic, values[:keep])

    # New records continue right after the last good record.
    more = produce_groups(broker.bootstrap, topic, [(10, 100), (10, 100)], start=n)
    assert [o for o, _ in more] == list(range(keep, keep + 20)), [o for o, _ in more]
    expected = values[:keep] + [v for _, v in more]
    check_log(broker.bootstrap, topic, expected)

    # A clean stop leaves valid batches then zeros; a second start is clean and serves the same.
    broker.stop()
    check_segment_clean(last_segment(broker.data_dir, topic), keep + 20)
    broker.start()
    second = started_output(broker)
    no_panic(second, "the second restart")
    assert not torn_lines(second), f"the second restart truncated again:\n{second}"
    check_log(broker.bootstrap, topic, expected)
