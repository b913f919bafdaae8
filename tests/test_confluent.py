"""confluent-kafka (librdkafka): 3-partition topic, 10,000 records with keys, null keys, empty
values, headers and explicit timestamps, acks=all; everything must round-trip exactly."""

import time

import confluent_kafka

from spate_helpers import consume_all_confluent, create_topic, produce_confluent

N = 10_000
PARTITIONS = 3


def make_record(n: int, base_ts: int) -> dict:
    key = None if n % 7 == 0 else f"key-{n % 97}".encode()
    value = b"" if n % 11 == 0 else f"value-{n}".encode() * (1 + n % 5)
    if n % 5 == 0:
        headers = [("h", f"v{n}".encode()), ("n", None)]
    elif n % 13 == 0:
        headers = [("only", b"")]
    else:
        headers = None
    return {"key": key, "value": value, "headers": headers, "timestamp": base_ts + n}


def test_roundtrip_10000_records_3_partitions(broker, topic):
    create_topic(broker.bootstrap, topic, PARTITIONS)

    base_ts = int(time.time() * 1000) - 3_600_000  # an hour ago: clearly not broker-assigned
    records = [make_record(n, base_ts) for n in range(N)]
    reports = produce_confluent(broker.bootstrap, topic, records, acks="all")

    # Delivery reports: per partition, offsets are dense from 0 in production order.
    by_partition: dict[int, list[tuple[int, int]]] = {p: [] for p in range(PARTITIONS)}
    for i, part, off in reports:
        assert 0 <= part < PARTITIONS, f"record {i} delivered to partition {part}"
        by_partition[part].append((off, i))
    for p, lst in by_partition.items():
        assert lst, f"no record landed on partition {p}: keyed records should spread over all 3"
        assert [off for off, _ in lst] == list(range(len(lst))), (
            f"partition {p}: delivery-report offsets not dense from 0 in production order: "
            f"{[off for off, _ in lst][:20]}..."
        )

    got = consume_all_confluent(broker.bootstrap, topic, PARTITIONS, expected=N, group=f"g-{topic}")

    for p in range(PARTITIONS):
        msgs = got[p]
        expected = by_partition[p]
        assert [m.offset() for m in msgs] == list(range(len(expected))), f"partition {p}: offsets not dense from 0"
        assert len(msgs) == len(expected)
        for m, (off, i) in zip(msgs, expected):
            r = records[i]
            where = f"partition {p} offset {off} (record #{i})"
            assert m.topic() == topic
            assert m.offset() == off, where
            assert m.key() == r["key"], f"{where}: key {m.key()!r} != {r['key']!r}"
            assert m.value() == r["value"], f"{where}: value {m.value()!r} != {r['value']!r}"
            assert m.headers() == r["headers"], f"{where}: headers {m.headers()!r} != {r['headers']!r}"
            ts_type, ts = m.timestamp()
            assert ts_type == confluent_kafka.TIMESTAMP_CREATE_TIME, f"{where}: timestamp type {ts_type}"
            assert ts == r["timestamp"], f"{where}: timestamp {ts} != {r['timestamp']}"

    # Sanity on the shape of the data we sent: the edge cases really were exercised.
    consumed = [m for p in range(PARTITIONS) for m in got[p]]
    assert sum(m.key() is None for m in consumed) == len([n for n in range(N) if n % 7 == 0])
    assert sum(m.value() == b"" for m in consumed) == len([n for n in range(N) if n % 11 == 0])
    assert any(m.headers() and ("n", None) in m.headers() for m in consumed)
