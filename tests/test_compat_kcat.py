"""kcat beyond test_kcat.py: JSON metadata, keys and headers on produce, NULL keys and values,
and every way of choosing where to start and stop consuming (-o N, -o -N, beginning, end,
s@timestamp, e@timestamp, -c, -p) with a format string printing key, headers, partition and
offset."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from spate_helpers import consume_all_confluent, create_topic, require_tool

TIMEOUT = 30


@pytest.fixture(scope="module")
def kcat():
    return require_tool("kcat", "install it with `apt-get install kcat`")


def run_kcat(kcat, *args, input=None):
    cmd = [kcat, *args]
    try:
        cp = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"`{' '.join(cmd)}` hung for {TIMEOUT}s; stdout={e.stdout!r} stderr={e.stderr!r}", pytrace=False)
    assert cp.returncode == 0, f"`{' '.join(cmd)}` exited {cp.returncode}\nstdout:\n{cp.stdout}\nstderr:\n{cp.stderr}"
    return cp.stdout


def consume(kcat, broker, topic, *args, fmt="%o %s\\n"):
    """Consume until the end (-e), quietly, with `fmt`; returns the output lines."""
    return run_kcat(kcat, "-C", "-b", broker.bootstrap, "-t", topic, "-e", "-q", "-f", fmt, *args).splitlines()


def test_metadata_as_text_and_json(broker, topic, kcat):
    create_topic(broker.bootstrap, topic, 3)
    text = run_kcat(kcat, "-L", "-b", broker.bootstrap, "-t", topic)
    assert re.search(r"^ 1 brokers:$", text, re.M), text
    assert re.search(rf"^\s+broker 1 at {re.escape(broker.bootstrap)} \(controller\)$", text, re.M), text
    assert re.search(rf'^\s+topic "{re.escape(topic)}" with 3 partitions:$', text, re.M), text
    for p in range(3):
        assert re.search(rf"^\s+partition {p}, leader 1, replicas: 1, isrs: 1$", text, re.M), text

    md = json.loads(run_kcat(kcat, "-L", "-J", "-b", broker.bootstrap))
    assert md["controllerid"] == 1
    assert md["brokers"] == [{"id": 1, "name": broker.bootstrap}]
    [entry] = [t for t in md["topics"] if t["topic"] == topic]
    assert "error" not in entry, entry
    assert entry["partitions"] == [
        {"partition": p, "leader": 1, "replicas": [{"id": 1}], "isrs": [{"id": 1}]} for p in range(3)
    ]
    one = json.loads(run_kcat(kcat, "-L", "-J", "-b", broker.bootstrap, "-t", topic))
    assert [t["topic"] for t in one["topics"]] == [topic]


def test_keys_and_headers_with_a_format_string(broker, topic, kcat):
    lines = [f"key-{i}:value {i}" for i in range(10)] + [":empty key", "k:", "k:v:with:colons"]
    run_kcat(kcat, "-P", "-b", broker.bootstrap, "-t", topic, "-K:", "-H", "trace=abc", "-H", "n=1",
             input="\n".join(lines) + "\n")
    out = consume(kcat, broker, topic, "-o", "beginning", fmt="%k|%h|%p|%o|%s\\n")
    expected = []
    for offset, line in enumerate(lines):
        key, value = line.split(":", 1)
        expected.append(f"{key}|trace=abc,n=1|0|{offset}|{value}")
    assert out == expected

    # The JSON envelope carries the same, plus the CreateTime timestamp.
    envelopes = [json.loads(line) for line in
                 run_kcat(kcat, "-C", "-J", "-b", broker.bootstrap, "-t", topic, "-e", "-q", "-o", "beginning").splitlines()]
    assert [(e["offset"], e["key"], e["payload"], e["headers"]) for e in envelopes[:2]] == [
        (0, "key-0", "value 0", ["trace", "abc", "n", "1"]),
        (1, "key-1", "value 1", ["trace", "abc", "n", "1"]),
    ]
    assert {e["tstype"] for e in envelopes} == {"create"}
    assert all(abs(e["ts"] - time.time() * 1000) < 600_000 for e in envelopes)


def test_null_keys_and_values(broker, topic, kcat):
    # -Z: an empty key or value is sent as NULL; without it, as empty.
    run_kcat(kcat, "-P", "-b", broker.bootstrap, "-t", topic, "-K:", "-Z", input=":null key\nnull value:\n")
    run_kcat(kcat, "-P", "-b", broker.bootstrap, "-t", topic, "-K:", input=":empty key\nempty value:\n")
    out = consume(kcat, broker, topic, "-o", "beginning", fmt="%K %S %k|%s\\n")
    assert out == ["-1 8 |null key", "10 -1 null value|", "0 9 |empty key", "11 0 empty value|"]
    got = consume_all_confluent(broker.bootstrap, topic, 1, expected=4)[0]
    assert [(m.key(), m.value()) for m in got] == [
        (None, b"null key"),
        (b"null value", None),
        (b"", b"empty key"),
        (b"empty value", b""),
    ]


def test_offsets_counts_and_partitions(broker, topic, kcat):
    create_topic(broker.bootstrap, topic, 2)
    run_kcat(kcat, "-P", "-b", broker.bootstrap, "-t", topic, "-p", "0", input="".join(f"a{i}\n" for i in range(10)))
    run_kcat(kcat, "-P", "-b", broker.bootstrap, "-t", topic, "-p", "1", input="b0\nb1\nb2\n")

    def read(*args):
        return consume(kcat, broker, topic, "-p", "0", *args)

    assert read("-o", "beginning") == [f"{i} a{i}" for i in range(10)]
    assert read("-o", "7") == ["7 a7", "8 a8", "9 a9"]
    assert read("-o", "-2") == ["8 a8", "9 a9"]
    assert read("-o", "end") == []
    assert read("-o", "3", "-c", "2") == ["3 a3", "4 a4"]
    assert consume(kcat, broker, topic, "-p", "1", "-o", "1") == ["1 b1", "2 b2"]
    # No -p: every partition, each in order.
    both = consume(kcat, broker, topic, "-o", "beginning", fmt="%p:%o:%s\\n")
    assert sorted(both) == sorted([f"0:{i}:a{i}" for i in range(10)] + [f"1:{i}:b{i}" for i in range(3)])


def test_start_and_stop_by_timestamp(broker, topic, kcat):
    create_topic(broker.bootstrap, topic, 1)
    # Three separate runs, so three batches with clearly apart CreateTime timestamps.
    for run in range(3):
        run_kcat(kcat, "-P", "-b", broker.bootstrap, "-t", topic, input=f"r{run}-0\nr{run}-1\n")
        time.sleep(0.05)
    stamped = [line.split() for line in consume(kcat, broker, topic, "-o", "beginning", fmt="%o %T %s\\n")]
    assert [s[2] for s in stamped] == ["r0-0", "r0-1", "r1-0", "r1-1", "r2-0", "r2-1"]
    ts = [int(s[1]) for s in stamped]
    assert ts[1] < ts[2] < ts[4], f"the runs should be apart in time: {ts}"

    assert consume(kcat, broker, topic, "-o", f"s@{ts[2]}") == ["2 r1-0", "3 r1-1", "4 r2-0", "5 r2-1"]
    assert consume(kcat, broker, topic, "-o", f"s@{ts[1] + 1}") == ["2 r1-0", "3 r1-1", "4 r2-0", "5 r2-1"]
    assert consume(kcat, broker, topic, "-o", f"s@{ts[0]}", "-o", f"e@{ts[4]}") == [
        "0 r0-0", "1 r0-1", "2 r1-0", "3 r1-1"
    ]
    assert consume(kcat, broker, topic, "-o", f"s@{ts[5] + 1}") == []
