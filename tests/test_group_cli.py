"""`spate group` (list, describe, reset-offsets, delete), after kafka-consumer-groups.sh, against
the real broker, with a confluent-kafka consumer forming the group.

The first rebalance of a group waits group.initial.rebalance.delay.ms (3 s, as in Kafka).
"""

from __future__ import annotations

import re
import time
import uuid

import confluent_kafka
from confluent_kafka import Consumer, TopicPartition

from spate_helpers import create_topic, describe, produce_confluent, run_spate

PARTITIONS = 3
PER_PARTITION = 10
OFFSETS_HEADER = [
    "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST",
    "CLIENT-ID",
]


def unique_group(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def spate_group(bootstrap: str, *args: str):
    return run_spate("group", *args, "--bootstrap-server", bootstrap)


def table(cp) -> tuple[list[str], list[list[str]]]:
    """The header and rows of an aligned table whose cells hold no spaces."""
    lines = [line for line in cp.stdout.splitlines() if line.strip()]
    assert lines, describe(cp)
    return lines[0].split(), [line.split() for line in lines[1:]]


def offsets_by_partition(cp, topic: str) -> dict[int, dict[str, str]]:
    header, rows = table(cp)
    assert header == OFFSETS_HEADER, describe(cp)
    for line in cp.stdout.splitlines()[1:]:
        # Aligned: each column starts where its header does.
        for name in ("TOPIC", "PARTITION", "LAG", "CONSUMER-ID"):
            start = cp.stdout.splitlines()[0].index(name)
            assert line[start - 1] == " " and line[start] != " ", describe(cp)
    out = {}
    for row in rows:
        cells = dict(zip(header, row))
        assert len(row) == len(header), describe(cp)
        assert cells["TOPIC"] == topic, describe(cp)
        out[int(cells["PARTITION"])] = cells
    return out


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets as a confluent consumer sees them (-1001: none)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=15)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def test_group_cli_describe_reset_delete(broker, topic):
    b = broker.bootstrap
    group = unique_group("cli-group")
    create_topic(b, topic, PARTITIONS)
    produce_confluent(b, topic, [{"value": f"v{i}".encode(), "partition": i % PARTITIONS}
                                 for i in range(PARTITIONS * PER_PARTITION)])

    c = Consumer({
        "bootstrap.servers": b,
        "group.id": group,
        "client.id": "group-cli-member",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 300,
    })
    closed = False
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while (got < PARTITIONS * PER_PARTITION or len(c.assignment()) < PARTITIONS) \
                and time.monotonic() < deadline:
            got += len([m for m in c.consume(num_messages=100, timeout=0.2) if m.error() is None])
        assert got == PARTITIONS * PER_PARTITION and len(c.assignment()) == PARTITIONS, (got, c.assignment())
        # Partition 0 half-way, partition 1 fully consumed, partition 2 never committed.
        c.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 10)], asynchronous=False)
        member_id = c.memberid()
        assert member_id

        # -- while the consumer is in the group ------------------------------------------------
        cp = spate_group(b, "list")
        assert cp.returncode == 0 and group in cp.stdout.splitlines(), describe(cp)
        cp = spate_group(b, "list", "--state")
        assert cp.returncode == 0, describe(cp)
        assert cp.stdout.splitlines()[0] == "GROUP\tSTATE", describe(cp)
        assert f"{group}\tStable" in cp.stdout.splitlines(), describe(cp)

        cp = spate_group(b, "describe", group)
        assert cp.returncode == 0, describe(cp)
        assert "no active members" not in cp.stderr, describe(cp)
        rows = offsets_by_partition(cp, topic)
        assert sorted(rows) == [0, 1, 2], describe(cp)
        expected = {0: ("4", "10", "6"), 1: ("10", "10", "0"), 2: ("-", "10", "-")}
        for p, (current, end, lag) in expected.items():
            r = rows[p]
            assert (r["GROUP"], r["CURRENT-OFFSET"], r["LOG-END-OFFSET"], r["LAG"]) == (group, current, end, lag), describe(cp)
            assert r["CONSUMER-ID"] == member_id, describe(cp)
            assert "127.0.0.1" in r["HOST"], describe(cp)
            assert r["CLIENT-ID"] == "group-cli-member", describe(cp)

        cp = spate_group(b, "describe", "--group", group, "--members")
        assert cp.returncode == 0, describe(cp)
        header, members = table(cp)
        assert header == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"], describe(cp)
        assert len(members) == 1 and members[0][1] == member_id and members[0][-1] == "3", describe(cp)

        cp = spate_group(b, "describe", group, "--state")
        assert cp.returncode == 0, describe(cp)
        lines = cp.stdout.splitlines()
        assert lines[0].split() == ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"], describe(cp)
        assert re.fullmatch(rf"{re.escape(group)} +{re.escape(b)}  \(1\) +(range|roundrobin) +Stable +1",
                            lines[1]), describe(cp)

        # An active group's offsets are not reset, not even as a dry run (as Kafka), and it
        # cannot be deleted.
        for extra in (["--execute"], []):
            cp = spate_group(b, "reset-offsets", group, "--topic", topic, "--to-earliest", *extra)
            assert cp.returncode != 0, describe(cp)
            assert f"consumer group '{group}' is active (state Stable): stop its consumers" in cp.stderr, describe(cp)
            assert cp.stdout == "", describe(cp)
        assert committed(b, group, topic) == {0: 4, 1: 10, 2: confluent_kafka.OFFSET_INVALID}
        cp = spate_group(b, "delete", group)
        assert cp.returncode != 0, describe(cp)
        assert f"consumer group '{group}' is not empty: stop its consumers first" in cp.stderr, describe(cp)

        c.close()
        closed = True
    finally:
        if not closed:
            c.close()

    # -- the group is empty ---------------------------------------------------------------------
    cp = spate_group(b, "list", "--state")
    assert f"{group}\tEmpty" in cp.stdout.splitlines(), describe(cp)
    cp = spate_group(b, "describe", group)
    assert cp.returncode == 0, describe(cp)
    assert f"Consumer group '{group}' has no active members." in cp.stderr, describe(cp)
    rows = offsets_by_partition(cp, topic)
    assert sorted(rows) == [0, 1], describe(cp)  # partition 2: neither committed nor assigned
    assert [rows[0][k] for k in ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID")] \
        == ["4", "10", "6", "-", "-", "-"], describe(cp)
    assert [rows[1][k] for k in ("CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")] == ["10", "10", "0"], describe(cp)

    def reset(*args: str):
        cp = spate_group(b, "reset-offsets", *args)
        assert cp.returncode == 0, describe(cp)
        header, rows = table(cp)
        assert header == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], describe(cp)
        assert all(r[0] == group and r[1] == topic for r in rows), describe(cp)
        return cp, {int(r[2]): int(r[3]) for r in rows}

    # The dry run (the default) prints the plan and changes nothing.
    cp, plan = reset(group, "--topic", topic, "--to-earliest")
    assert plan == {0: 0, 1: 0, 2: 0}, describe(cp)
    assert "(dry run: add --execute to apply)" in cp.stderr, describe(cp)
    assert committed(b, group, topic) == {0: 4, 1: 10, 2: confluent_kafka.OFFSET_INVALID}

    cp, plan = reset(group, "--topic", topic, "--to-earliest", "--execute")
    assert plan == {0: 0, 1: 0, 2: 0} and "dry run" not in cp.stderr, describe(cp)
    assert committed(b, group, topic) == {0: 0, 1: 0, 2: 0}

    cp, plan = reset("--group", group, "--topic", f"{topic}:1", "--to-offset", "7", "--execute")
    assert plan == {1: 7}, describe(cp)
    assert committed(b, group, topic) == {0: 0, 1: 7, 2: 0}

    # Past the log end: brought back to it, as Kafka does, with a warning.
    cp, plan = reset(group, "--topic", f"{topic}:0,2", "--to-offset", "99", "--execute")
    assert plan == {0: 10, 2: 10}, describe(cp)
    assert "past the log end offset" in cp.stderr, describe(cp)
    assert committed(b, group, topic) == {0: 10, 1: 7, 2: 10}

    cp, plan = reset(group, "--all-topics", "--to-earliest", "--execute")
    assert plan == {0: 0, 1: 0, 2: 0}, describe(cp)
    cp, plan = reset(group, "--topic", topic, "--to-latest", "--execute")
    assert plan == {0: 10, 1: 10, 2: 10}, describe(cp)
    assert committed(b, group, topic) == {0: 10, 1: 10, 2: 10}
    cp = spate_group(b, "describe", group)
    assert {p: r["LAG"] for p, r in offsets_by_partition(cp, topic).items()} == {0: "0", 1: "0", 2: "0"}, describe(cp)

    # -- delete ---------------------------------------------------------------------------------
    cp = spate_group(b, "delete", group)
    assert cp.returncode == 0, describe(cp)
    assert cp.stdout == f"Deleted consumer group '{group}'.\n", describe(cp)
    cp = spate_group(b, "list")
    assert cp.returncode == 0 and group not in cp.stdout.splitlines(), describe(cp)
    cp = spate_group(b, "delete", "--group", group)
    assert cp.returncode != 0, describe(cp)
    assert f"consumer group '{group}' does not exist" in cp.stderr, describe(cp)
    cp = spate_group(b, "describe", group)
    assert cp.returncode != 0 and f"consumer group '{group}' does not exist" in cp.stderr, describe(cp)
    assert committed(b, group, topic) == {p: confluent_kafka.OFFSET_INVALID for p in range(PARTITIONS)}


def test_group_cli_refusals(broker, topic):
    b = broker.bootstrap
    create_topic(b, topic, 2)
    group = unique_group("cli-missing")

    cp = spate_group(b, "describe", group)
    assert cp.returncode != 0, describe(cp)
    assert f"consumer group '{group}' does not exist" in cp.stderr, describe(cp)
    for flag in ("--members", "--state"):
        cp = spate_group(b, "describe", group, flag)
        assert cp.returncode != 0 and "does not exist" in cp.stderr, describe(cp)

    cp = spate_group(b, "reset-offsets", group, "--topic", f"{topic}:5", "--to-latest")
    assert cp.returncode != 0, describe(cp)
    assert f"topic '{topic}' has no partition 5" in cp.stderr, describe(cp)
    cp = spate_group(b, "reset-offsets", group, "--topic", "no-such-topic", "--to-latest")
    assert cp.returncode != 0, describe(cp)
    assert "topic 'no-such-topic' does not exist" in cp.stderr, describe(cp)
    cp = spate_group(b, "reset-offsets", group, "--all-topics", "--to-latest")
    assert cp.returncode != 0 and "has no committed offsets" in cp.stderr, describe(cp)
    cp = spate_group(b, "reset-offsets", group, "--topic", topic)
    assert cp.returncode != 0 and "--to-earliest" in cp.stderr, describe(cp)

    # A group that never existed can be given offsets (a "simple" group), then deleted.
    cp = spate_group(b, "reset-offsets", group, "--topic", topic, "--to-offset", "0", "--execute")
    assert cp.returncode == 0, describe(cp)
    cp = spate_group(b, "list")
    assert group in cp.stdout.splitlines(), describe(cp)
    cp = spate_group(b, "delete", group)
    assert cp.returncode == 0, describe(cp)

    cp = run_spate("group", "list", "--bootstrap-server", "127.0.0.1:1")
    assert cp.returncode != 0 and "cannot connect" in cp.stderr, describe(cp)
