"""Consumer groups (issue 6): the group coordinator driven by real clients and by raw frames.

- kafka-python's classic JSON example with a group: a second run resumes after the offsets the
  first run committed on close;
- confluent-kafka: three members share six partitions, one leaves and the others take over with
  no gap, committed offsets survive a broker restart;
- publish-subscribe across groups vs queueing within a group;
- the coordinator's error codes for bad JoinGroup/SyncGroup/Heartbeat/OffsetCommit/DeleteGroups,
  with hand-built frames, and a silent member expiring after its session timeout;
- the admin API (list, describe, offsets, alter, delete);
- static membership (KIP-345): a member restarted with the same group.instance.id within its
  session gets its partitions back, with no rebalance (the leader too, as Kafka).

The first rebalance of a group waits group.initial.rebalance.delay.ms (3 s, as in Kafka).
"""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid

import pytest

from spate_helpers import create_topic, produce_confluent

import confluent_kafka
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

# Kafka's error codes.
NONE = 0
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79

API_OFFSET_COMMIT, API_OFFSET_FETCH = 8, 9
API_JOIN_GROUP, API_HEARTBEAT, API_LEAVE_GROUP, API_SYNC_GROUP = 11, 12, 13, 14
API_DELETE_GROUPS = 42


def unique_group(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------
# confluent-kafka helpers
# --------------------------------------------------------------------------------------------


def group_consumer(bootstrap: str, group: str, client_id: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": client_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 300,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    conf.update(extra)
    return Consumer(conf)


class Tracker:
    """Polls a set of named consumers, recording every record each one receives."""

    def __init__(self, consumers: dict[str, Consumer]):
        self.consumers = dict(consumers)
        self.got: dict[str, list[tuple[int, int, bytes]]] = {n: [] for n in consumers}
        self.errors: list[str] = []

    def poll_once(self, timeout: float = 0.05) -> int:
        n = 0
        for name, c in self.consumers.items():
            for m in c.consume(num_messages=500, timeout=timeout):
                if m.error() is not None:
                    self.errors.append(f"{name}: {m.error()}")
                    continue
                self.got[name].append((m.partition(), m.offset(), m.value()))
                n += 1
        return n

    def assignment(self, name: str) -> set[int]:
        return {tp.partition for tp in self.consumers[name].assignment()}

    def assignments(self) -> dict[str, set[int]]:
        return {n: self.assignment(n) for n in self.consumers}

    def wait_assignment(self, partitions: int, sizes: list[int], timeout: float = 30.0,
                        settle: float = 1.0, between=None) -> dict[str, set[int]]:
        """Poll until the members' assignments are disjoint, cover all partitions, have the
        given sizes, and stay so for `settle` seconds. `between()` runs every round."""
        deadline = time.monotonic() + timeout
        stable_since = None
        last = None
        while True:
            self.poll_once()
            if between is not None:
                between()
            a = self.assignments()
            union = set().union(*a.values())
            ok = (
                sorted(len(s) for s in a.values()) == sorted(sizes)
                and sum(len(s) for s in a.values()) == len(union)
                and union == set(range(partitions))
            )
            if ok and a == last:
                if stable_since is None:
                    stable_since = time.monotonic()
                elif time.monotonic() - stable_since >= settle:
                    return a
            else:
                stable_since = None
            last = a
            if time.monotonic() > deadline:
                pytest.fail(
                    f"assignment did not stabilize to sizes {sizes} over {partitions} partitions "
                    f"within {timeout:.0f}s; last: { {n: sorted(s) for n, s in a.items()} }; "
                    f"consumer errors: {self.errors[:5]}",
                    pytrace=False,
                )

    def by_partition(self, names=None) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for n in names or self.got:
            for p, off, _ in self.got[n]:
                out.setdefault(p, set()).add(off)
        return out


# --------------------------------------------------------------------------------------------
# 1. kafka-python: the classic example, with a group and auto-commit
# --------------------------------------------------------------------------------------------


def test_kafka_python_json_example_resumes_after_committed_offset(broker, topic):
    from kafka import KafkaConsumer, KafkaProducer

    n_first, n_second = 1000, 250
    group = unique_group("my-group")

    def produce(numbers):
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap,
            value_serializer=lambda x: json.dumps(x).encode("utf-8"),
        )
        for e in numbers:
            producer.send(topic, value={"number": e})
        producer.flush()
        producer.close()

    def consume_run():
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            group_id=group,
            value_deserializer=lambda x: json.loads(x.decode("utf-8")),
            consumer_timeout_ms=5000,
        )
        got = []
        for message in consumer:
            got.append((message.partition, message.offset, message.value))
        consumer.close()  # commits the consumed offsets (autocommit=True)
        return got

    produce(range(n_first))
    first = consume_run()
    assert [v for _, _, v in first] == [{"number": e} for e in range(n_first)], (
        f"first run: got {len(first)} records, first ones {first[:3]}, last ones {first[-3:]}"
    )
    assert [off for _, off, _ in first] == list(range(n_first))

    produce(range(n_first, n_first + n_second))
    second = consume_run()
    assert [v for _, _, v in second] == [{"number": e} for e in range(n_first, n_first + n_second)], (
        f"second run of group {group!r} should read exactly the {n_second} new records; got "
        f"{len(second)}, first ones {second[:3]}"
    )
    assert [off for _, off, _ in second] == list(range(n_first, n_first + n_second))


# --------------------------------------------------------------------------------------------
# 2. confluent-kafka: 3 members on 6 partitions, one leaves, commit, broker restart, resume
# --------------------------------------------------------------------------------------------


def test_confluent_group_rebalance_no_gaps_and_resume_after_restart(broker, topic):
    partitions = 6
    create_topic(broker.bootstrap, topic, partitions)
    group = unique_group("g-rebalance")

    delivered: dict[tuple[int, int], bytes] = {}
    delivery_errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            delivery_errors.append(str(err))
        else:
            delivered[(msg.partition(), msg.offset())] = msg.value()

    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all"})
    seq = [0]

    def produce_some(k: int = 6):
        for _ in range(k):
            i = seq[0]
            producer.produce(topic, value=f"rec-{i}".encode(), partition=i % partitions,
                             on_delivery=on_delivery)
            seq[0] += 1
        producer.poll(0)

    names = ["c0", "c1", "c2"]
    consumers = {n: group_consumer(broker.bootstrap, group, n) for n in names}
    closed = set()
    try:
        for c in consumers.values():
            c.subscribe([topic])
        tr = Tracker(consumers)

        a3 = tr.wait_assignment(partitions, [2, 2, 2], between=produce_some)
        assert all(len(s) == 2 for s in a3.values()), a3

        # Keep producing and consuming for a moment with the three members.
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            produce_some()
            tr.poll_once()

        # c0 leaves (close sends LeaveGroup): the two others take over its partitions, 3 each.
        leaver = consumers["c0"]
        leaver_parts = a3["c0"]
        leaver.close()
        closed.add("c0")
        del tr.consumers["c0"]
        a2 = tr.wait_assignment(partitions, [3, 3], between=produce_some)
        assert leaver_parts <= a2["c1"] | a2["c2"]

        for _ in range(10):
            produce_some()
        assert producer.flush(30) == 0
        assert not delivery_errors, delivery_errors[:5]
        end = {p: 1 + max(o for (pp, o) in delivered if pp == p) for p in range(partitions)}
        assert len(delivered) == seq[0] == sum(end.values())

        # The two remaining members consume everything: every offset covered, positions at the end.
        deadline = time.monotonic() + 30
        while True:
            tr.poll_once()
            cov = tr.by_partition()
            positions = {
                tp.partition: tp.offset
                for n in ("c1", "c2")
                for tp in consumers[n].position(consumers[n].assignment())
            }
            if all(set(range(end[p])) <= cov.get(p, set()) for p in range(partitions)) and all(
                positions.get(p) == end[p] for p in range(partitions)
            ):
                break
            if time.monotonic() > deadline:
                missing = {p: len(set(range(end[p])) - cov.get(p, set())) for p in range(partitions)}
                pytest.fail(
                    f"not every record consumed within 30s: missing per partition {missing}, "
                    f"positions {positions}, ends {end}, errors {tr.errors[:5]}",
                    pytrace=False,
                )
        assert not tr.errors, tr.errors[:5]
        for name, recs in tr.got.items():
            for p, off, value in recs:
                assert (p, off) in delivered, f"{name} got {p}/{off} which was never produced"
                assert value == delivered[(p, off)], f"{name}: {p}/{off} value {value!r}"

        # Synchronous commit of the positions; they are the end offsets.
        committed: dict[int, int] = {}
        for n in ("c1", "c2"):
            res = consumers[n].commit(asynchronous=False)
            for tp in res:
                assert tp.error is None, f"{n} commit {tp}: {tp.error}"
                committed[tp.partition] = tp.offset
        assert committed == end, f"committed {committed} != end offsets {end}"
        for n in ("c1", "c2"):
            consumers[n].close()
            closed.add(n)
    finally:
        for n, c in consumers.items():
            if n not in closed:
                c.close()

    # Records after the committed offsets, then a broker restart.
    extra = 4
    produce_confluent(
        broker.bootstrap, topic,
        [{"value": f"after-{p}-{k}".encode(), "partition": p} for k in range(extra) for p in range(partitions)],
    )
    broker.restart()

    c = group_consumer(broker.bootstrap, group, "c-new")
    try:
        before = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        assert {tp.partition: tp.offset for tp in before} == committed, (
            f"committed offsets after restart {[(tp.partition, tp.offset) for tp in before]} != {committed}"
        )
        c.subscribe([topic])
        first: dict[int, tuple[int, bytes]] = {}
        all_got: dict[int, list[int]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + 30
        while sum(len(v) for v in all_got.values()) < extra * partitions and time.monotonic() < deadline:
            for m in c.consume(num_messages=500, timeout=0.2):
                assert m.error() is None, m.error()
                first.setdefault(m.partition(), (m.offset(), m.value()))
                all_got[m.partition()].append(m.offset())
        assert {tp.partition for tp in c.assignment()} == set(range(partitions))
        for p in range(partitions):
            assert p in first, f"partition {p}: nothing consumed after restart within 30s"
            assert first[p] == (committed[p], f"after-{p}-0".encode()), (
                f"partition {p}: first record after restart {first[p]}, committed offset {committed[p]}"
            )
            assert all_got[p] == list(range(committed[p], committed[p] + extra)), (p, all_got[p])
    finally:
        c.close()


# --------------------------------------------------------------------------------------------
# 3. Publish-subscribe across groups, queueing within a group
# --------------------------------------------------------------------------------------------


def test_two_groups_each_get_everything_members_share(broker, topic):
    partitions = 4
    create_topic(broker.bootstrap, topic, partitions)
    ga, gb = unique_group("ga"), unique_group("gb")
    consumers = {
        "a1": group_consumer(broker.bootstrap, ga, "a1"),
        "a2": group_consumer(broker.bootstrap, ga, "a2"),
        "b1": group_consumer(broker.bootstrap, gb, "b1"),
        "b2": group_consumer(broker.bootstrap, gb, "b2"),
    }
    groups = {"A": ("a1", "a2"), "B": ("b1", "b2")}
    try:
        for c in consumers.values():
            c.subscribe([topic])
        tr = Tracker(consumers)
        # Both groups stable (2 + 2 partitions each); poll all consumers while waiting.
        deadline = time.monotonic() + 30
        stable_since = None
        while True:
            tr.poll_once()
            a = tr.assignments()
            ok = all(
                sorted(len(a[n]) for n in members) == [2, 2]
                and a[members[0]] | a[members[1]] == set(range(partitions))
                for members in groups.values()
            )
            if ok:
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= 1.0:
                    break
            else:
                stable_since = None
            if time.monotonic() > deadline:
                pytest.fail(f"groups not stable within 30s: {a}", pytrace=False)
        assert not any(tr.got.values()), "records consumed before any were produced"
        stable = tr.assignments()

        n = 400
        produce_confluent(
            broker.bootstrap, topic,
            [{"value": f"v{i}".encode(), "partition": i % partitions} for i in range(n)],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            tr.poll_once()
            if all(sum(len(tr.got[m]) for m in members) >= n for members in groups.values()):
                break
        t_linger = time.monotonic() + 1.0
        while time.monotonic() < t_linger:
            tr.poll_once()
        assert not tr.errors, tr.errors[:5]
        assert tr.assignments() == stable, "assignment changed while consuming"

        everything = {(i % partitions, i // partitions) for i in range(n)}
        for g, members in groups.items():
            seen = {m: [(p, o) for p, o, _ in tr.got[m]] for m in members}
            for m in members:
                assert len(seen[m]) == len(set(seen[m])), f"{m} got duplicates"
                assert {p for p, _ in seen[m]} <= stable[m], (
                    f"{m} got records from partitions outside its assignment {sorted(stable[m])}"
                )
            both = set(seen[members[0]]) & set(seen[members[1]])
            assert not both, f"group {g}: {len(both)} records seen by both members, e.g. {sorted(both)[:3]}"
            union = set(seen[members[0]]) | set(seen[members[1]])
            assert union == everything, (
                f"group {g}: got {len(union)} distinct records of {n}; missing e.g. "
                f"{sorted(everything - union)[:5]}"
            )
            for m in members:
                for p, o, v in tr.got[m]:
                    assert v == f"v{o * partitions + p}".encode(), (m, p, o, v)
    finally:
        for c in consumers.values():
            c.close()


# --------------------------------------------------------------------------------------------
# 4. Bad input to the coordinator, with hand-built frames
# --------------------------------------------------------------------------------------------


def kstring(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def kbytes(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b


def karray(items: list[bytes]) -> bytes:
    return struct.pack(">i", len(items)) + b"".join(items)


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _take(self, fmt: str):
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def i16(self) -> int:
        return self._take(">h")

    def i32(self) -> int:
        return self._take(">i")

    def i64(self) -> int:
        return self._take(">q")

    def string(self) -> str | None:
        n = self.i16()
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def bytes_(self) -> bytes | None:
        n = self.i32()
        if n < 0:
            return None
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def array(self, item):
        return [item() for _ in range(self.i32())]

    def done(self) -> bool:
        return self.pos == len(self.data)


class RawConn:
    """One connection speaking non-flexible request versions (header v1, response header v0)."""

    def __init__(self, broker, client_id: str = "groups-raw"):
        self.sock = socket.create_connection((broker.host, broker.port), timeout=20)
        self.client_id = client_id
        self.corr = 0

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
            buf += chunk
        return buf

    def request(self, api_key: int, version: int, body: bytes) -> Reader:
        self.corr += 1
        frame = struct.pack(">hhi", api_key, version, self.corr) + kstring(self.client_id) + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", self._recv(4))
        data = self._recv(size)
        (corr,) = struct.unpack_from(">i", data)
        assert corr == self.corr, f"correlation id {corr} != {self.corr}"
        return Reader(data[4:])

    # -- the group APIs, each in one non-flexible version ------------------------------------

    def join_group_v4(self, group: str, member: str, protocols: list[tuple[str, bytes]],
                      session_ms: int = 10000, rebalance_ms: int = 10000,
                      protocol_type: str = "consumer"):
        body = (kstring(group) + struct.pack(">ii", session_ms, rebalance_ms) + kstring(member)
                + kstring(protocol_type)
                + karray([kstring(name) + kbytes(meta) for name, meta in protocols]))
        r = self.request(API_JOIN_GROUP, 4, body)
        resp = {"throttle": r.i32(), "error": r.i16(), "generation": r.i32(),
                "protocol": r.string(), "leader": r.string(), "member_id": r.string()}
        resp["members"] = r.array(lambda: (r.string(), r.bytes_()))
        assert r.done(), "trailing bytes in JoinGroup v4 response"
        return resp

    def sync_group_v2(self, group: str, generation: int, member: str,
                      assignments: list[tuple[str, bytes]]):
        body = (kstring(group) + struct.pack(">i", generation) + kstring(member)
                + karray([kstring(m) + kbytes(a) for m, a in assignments]))
        r = self.request(API_SYNC_GROUP, 2, body)
        resp = {"throttle": r.i32(), "error": r.i16(), "assignment": r.bytes_()}
        assert r.done()
        return resp

    def heartbeat_v2(self, group: str, generation: int, member: str) -> int:
        r = self.request(API_HEARTBEAT, 2, kstring(group) + struct.pack(">i", generation) + kstring(member))
        r.i32()
        err = r.i16()
        assert r.done()
        return err

    def leave_group_v2(self, group: str, member: str) -> int:
        r = self.request(API_LEAVE_GROUP, 2, kstring(group) + kstring(member))
        r.i32()
        err = r.i16()
        assert r.done()
        return err

    def offset_commit_v5(self, group: str, generation: int, member: str,
                         offsets: dict[str, dict[int, int]]) -> dict[tuple[str, int], int]:
        topics = [
            kstring(t) + karray([struct.pack(">iq", p, off) + kstring(None) for p, off in parts.items()])
            for t, parts in offsets.items()
        ]
        body = kstring(group) + struct.pack(">i", generation) + kstring(member) + karray(topics)
        r = self.request(API_OFFSET_COMMIT, 5, body)
        r.i32()
        out = {}
        for _ in range(r.i32()):
            t = r.string()
            for _ in range(r.i32()):
                p = r.i32()
                out[(t, p)] = r.i16()
        assert r.done()
        return out

    def offset_fetch_v5(self, group: str, topic: str, parts: list[int]):
        body = kstring(group) + karray([kstring(topic) + karray([struct.pack(">i", p) for p in parts])])
        r = self.request(API_OFFSET_FETCH, 5, body)
        r.i32()
        out = {}
        for _ in range(r.i32()):
            t = r.string()
            for _ in range(r.i32()):
                p = r.i32()
                off = r.i64()
                r.i32()  # committed leader epoch
                r.string()  # metadata
                out[(t, p)] = (off, r.i16())
        err = r.i16()
        assert r.done()
        return err, out

    def delete_groups_v1(self, groups: list[str]) -> dict[str, int]:
        r = self.request(API_DELETE_GROUPS, 1, karray([kstring(g) for g in groups]))
        r.i32()
        out = {}
        for _ in range(r.i32()):
            g = r.string()
            out[g] = r.i16()
        assert r.done()
        return out

    def close(self):
        self.sock.close()


def subscription(topics: list[str]) -> bytes:
    """ConsumerProtocolSubscription v0."""
    return struct.pack(">h", 0) + karray([kstring(t) for t in topics]) + kbytes(b"")


def assignment(parts: dict[str, list[int]]) -> bytes:
    """ConsumerProtocolAssignment v0."""
    return (struct.pack(">h", 0)
            + karray([kstring(t) + karray([struct.pack(">i", p) for p in ps]) for t, ps in parts.items()])
            + kbytes(b""))


def test_coordinator_error_codes(broker, topic):
    create_topic(broker.bootstrap, topic, 2)
    group = unique_group("g-raw")
    meta = subscription([topic])
    conn = RawConn(broker)
    try:
        # Empty group id: INVALID_GROUP_ID.
        r = conn.join_group_v4("", "", [("range", meta)])
        assert r["error"] == INVALID_GROUP_ID, f"JoinGroup v4 group_id='': {r}"

        # KIP-394: a v4 join without a member id gets MEMBER_ID_REQUIRED and an id to come back with.
        r = conn.join_group_v4(group, "", [("range", meta)])
        assert r["error"] == MEMBER_ID_REQUIRED, f"JoinGroup v4 member_id='': {r}"
        member = r["member_id"]
        assert member, f"MEMBER_ID_REQUIRED came without a member id: {r}"
        assert r["generation"] == -1, r

        # Joining with that id completes the (first, delayed) rebalance: we are the leader.
        t0 = time.monotonic()
        r = conn.join_group_v4(group, member, [("range", meta)])
        assert r["error"] == NONE, f"JoinGroup v4 with the given member id: {r}"
        gen = r["generation"]
        assert gen >= 1 and r["leader"] == member and r["member_id"] == member, r
        assert r["protocol"] == "range"
        assert r["members"] == [(member, meta)], r["members"]
        assert time.monotonic() - t0 < 9, "first rebalance took far longer than the 3 s initial delay"

        mine = assignment({topic: [0, 1]})
        r = conn.sync_group_v2(group, gen, member, [(member, mine)])
        assert r["error"] == NONE and r["assignment"] == mine, r
        assert conn.heartbeat_v2(group, gen, member) == NONE  # the control: a good heartbeat

        # Unknown member ids.
        err = conn.heartbeat_v2(group, gen, "no-such-member")
        assert err == UNKNOWN_MEMBER_ID, f"Heartbeat with unknown member id -> {err}"
        r = conn.sync_group_v2(group, gen, "no-such-member", [])
        assert r["error"] == UNKNOWN_MEMBER_ID, f"SyncGroup with unknown member id -> {r}"
        r = conn.join_group_v4(group, "no-such-member", [("range", meta)])
        assert r["error"] == UNKNOWN_MEMBER_ID, f"JoinGroup with unknown member id -> {r}"
        res = conn.offset_commit_v5(group, gen, "no-such-member", {topic: {0: 3}})
        assert res == {(topic, 0): UNKNOWN_MEMBER_ID}, f"OffsetCommit with unknown member id -> {res}"
        # A "simple" commit (no member, generation -1) is only for groups with no members.
        res = conn.offset_commit_v5(group, -1, "", {topic: {0: 3}})
        assert res == {(topic, 0): UNKNOWN_MEMBER_ID}, f"OffsetCommit gen -1 on a Stable group -> {res}"

        # A new member that the group's protocols do not fit, or with a session timeout below
        # group.min.session.timeout.ms (6000).
        r = conn.join_group_v4(group, "", [("roundrobin", meta)])
        assert r["error"] == INCONSISTENT_GROUP_PROTOCOL, f"JoinGroup with protocol 'roundrobin' only -> {r}"
        r = conn.join_group_v4(group, "", [("range", meta)], protocol_type="connect")
        assert r["error"] == INCONSISTENT_GROUP_PROTOCOL, f"JoinGroup with protocol type 'connect' -> {r}"
        r = conn.join_group_v4(unique_group("g-short"), "", [("range", meta)], session_ms=1000)
        assert r["error"] == INVALID_SESSION_TIMEOUT, f"JoinGroup session timeout 1000 ms -> {r}"

        # Stale or future generations.
        for bad in (gen - 1, gen + 1):
            err = conn.heartbeat_v2(group, bad, member)
            assert err == ILLEGAL_GENERATION, f"Heartbeat generation {bad} (current {gen}) -> {err}"
        r = conn.sync_group_v2(group, gen + 1, member, [(member, mine)])
        assert r["error"] == ILLEGAL_GENERATION, f"SyncGroup generation {gen + 1} (current {gen}) -> {r}"
        for bad in (gen - 1, gen + 1):
            res = conn.offset_commit_v5(group, bad, member, {topic: {0: 3}})
            assert res == {(topic, 0): ILLEGAL_GENERATION}, (
                f"OffsetCommit v5 generation {bad} (current {gen}) -> {res}"
            )
        err, fetched = conn.offset_fetch_v5(group, topic, [0])
        assert err == NONE and fetched[(topic, 0)][0] == -1, (
            f"a rejected commit must not be stored: {fetched}"
        )

        # The member is still there and well: heartbeat and commit in the right generation.
        assert conn.heartbeat_v2(group, gen, member) == NONE
        res = conn.offset_commit_v5(group, gen, member, {topic: {0: 3, 1: 7}})
        assert res == {(topic, 0): NONE, (topic, 1): NONE}, res
        err, fetched = conn.offset_fetch_v5(group, topic, [0, 1])
        assert err == NONE and {k: v[0] for k, v in fetched.items()} == {(topic, 0): 3, (topic, 1): 7}, fetched

        # DeleteGroups: a group with members, and an unknown group.
        unknown = unique_group("g-never")
        res = conn.delete_groups_v1([group, unknown])
        assert res == {group: NON_EMPTY_GROUP, unknown: GROUP_ID_NOT_FOUND}, f"DeleteGroups -> {res}"

        # Once empty, the group can be deleted, and its offsets go with it.
        assert conn.leave_group_v2(group, member) == NONE
        res = conn.delete_groups_v1([group])
        assert res == {group: NONE}, f"DeleteGroups on the emptied group -> {res}"
        err, fetched = conn.offset_fetch_v5(group, topic, [0, 1])
        assert err == NONE and {k: v[0] for k, v in fetched.items()} == {(topic, 0): -1, (topic, 1): -1}, fetched
    finally:
        conn.close()


def test_silent_member_expires_after_session_timeout(broker, topic):
    """A member that stops heartbeating stays in the group until session.timeout.ms has passed,
    then is removed (the group becomes Empty and deletable)."""
    create_topic(broker.bootstrap, topic, 1)
    group = unique_group("g-expire")
    meta = subscription([topic])
    conn = RawConn(broker)
    try:
        member = conn.join_group_v4(group, "", [("range", meta)], session_ms=6000)["member_id"]
        r = conn.join_group_v4(group, member, [("range", meta)], session_ms=6000)
        assert r["error"] == NONE, r
        gen = r["generation"]
        assert conn.sync_group_v2(group, gen, member, [(member, assignment({topic: [0]}))])["error"] == NONE
        assert conn.heartbeat_v2(group, gen, member) == NONE
        t0 = time.monotonic()
        time.sleep(3.5)
        # Not expired yet (DeleteGroups does not count as a heartbeat).
        assert conn.delete_groups_v1([group]) == {group: NON_EMPTY_GROUP}
        time.sleep(max(0.0, t0 + 6.0 + 2.0 - time.monotonic()))
        err = conn.heartbeat_v2(group, gen, member)
        assert err == UNKNOWN_MEMBER_ID, f"heartbeat 8 s after the last one (session 6 s) -> {err}"
        assert conn.delete_groups_v1([group]) == {group: NONE}
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# 5. The admin API
# --------------------------------------------------------------------------------------------


def test_admin_list_describe_offsets_alter_delete(broker, topic):
    partitions = 3
    create_topic(broker.bootstrap, topic, partitions)
    produce_confluent(broker.bootstrap, topic,
                      [{"value": f"x{i}".encode(), "partition": i % partitions} for i in range(30)])
    group = unique_group("g-admin")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def list_groups():
        res = admin.list_consumer_groups(request_timeout=10).result(timeout=15)
        assert not res.errors, res.errors
        return {g.group_id: g for g in res.valid}

    def group_offsets():
        fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=10)
        res = fut[group].result(timeout=15)
        return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}

    c = group_consumer(broker.bootstrap, group, "admin-member")
    closed = False
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while got < 30 and time.monotonic() < deadline:
            got += len([m for m in c.consume(num_messages=100, timeout=0.2) if m.error() is None])
        assert got == 30
        committed = {tp.partition: tp.offset for tp in c.commit(asynchronous=False)}
        assert committed == {p: 10 for p in range(partitions)}, committed

        groups = list_groups()
        assert group in groups, f"{group} not in {sorted(groups)}"
        assert groups[group].state == ConsumerGroupState.STABLE, groups[group].state
        assert groups[group].is_simple_consumer_group is False

        desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        assert desc.group_id == group
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor in ("range", "roundrobin"), desc.partition_assignor
        assert len(desc.members) == 1, desc.members
        m = desc.members[0]
        assert m.client_id == "admin-member", m.client_id
        assert m.member_id and m.member_id.startswith("admin-member"), m.member_id
        assert m.host, m.host
        assert sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) == [
            (topic, p) for p in range(partitions)
        ], m.assignment.topic_partitions

        assert group_offsets() == committed

        # Deleting a group with an active member fails with NON_EMPTY_GROUP.
        with pytest.raises(KafkaException) as ei:
            admin.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
        assert ei.value.args[0].code() == NON_EMPTY_GROUP, ei.value

        c.close()
        closed = True
    finally:
        if not closed:
            c.close()

    groups = list_groups()
    assert groups[group].state == ConsumerGroupState.EMPTY, groups[group].state

    # Offsets of an empty group can be altered.
    new = {0: 2, 1: 5, 2: 9}
    fut = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in new.items()])],
        request_timeout=10,
    )
    res = fut[group].result(timeout=15)
    assert all(tp.error is None for tp in res.topic_partitions), res.topic_partitions
    assert group_offsets() == new

    # A consumer with the group id that uses assign() starts at the altered offsets and can
    # commit on the empty group too.
    c2 = group_consumer(broker.bootstrap, group, "admin-assign")
    try:
        c2.assign([TopicPartition(topic, 1)])
        first = None
        deadline = time.monotonic() + 15
        while first is None and time.monotonic() < deadline:
            m = c2.poll(0.2)
            if m is not None and m.error() is None:
                first = m.offset()
        assert first == 5, f"assign() on partition 1 started at {first}, committed offset 5"
        res = c2.commit(offsets=[TopicPartition(topic, 1, 8)], asynchronous=False)
        assert all(tp.error is None for tp in res), res
    finally:
        c2.close()
    assert group_offsets() == {0: 2, 1: 8, 2: 9}

    admin.delete_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    assert group not in list_groups()
    assert all(o == confluent_kafka.OFFSET_INVALID for o in group_offsets().values()), group_offsets()


# --------------------------------------------------------------------------------------------
# 6. Static membership
# --------------------------------------------------------------------------------------------


def static_restart(broker, topic: str, restart: str) -> dict:
    """Two static members, "lead" (joins first, so it is the group leader) and "follow";
    the one named by `restart` is closed (a static member sends no LeaveGroup), records are
    produced, and it comes back with the same group.instance.id well within its session.
    Asserts it gets the same partitions and that no record is lost; returns what the other
    member saw (its revocations) for the rebalance check."""
    partitions = 4
    create_topic(broker.bootstrap, topic, partitions)
    group = unique_group("g-static")
    other = "follow" if restart == "lead" else "lead"

    def produce(tag: str, per_partition: int):
        produce_confluent(
            broker.bootstrap, topic,
            [{"value": f"{tag}-{p}-{k}".encode(), "partition": p}
             for k in range(per_partition) for p in range(partitions)],
        )

    revoked = {"lead": 0, "follow": 0}

    def static(instance: str) -> Consumer:
        c = group_consumer(broker.bootstrap, group, instance, **{"group.instance.id": instance})
        c.subscribe([topic], on_revoke=lambda consumer, parts: revoked.__setitem__(instance, revoked[instance] + 1))
        return c

    consumers = {}
    try:
        consumers["lead"] = static("lead")
        tr = Tracker(consumers)
        t_end = time.monotonic() + 1.0  # the leader's JoinGroup goes first, within the 3 s delay
        while time.monotonic() < t_end:
            tr.poll_once()
        consumers["follow"] = tr.consumers["follow"] = static("follow")
        tr.got["follow"] = []
        before = tr.wait_assignment(partitions, [2, 2])
        revoked_before = dict(revoked)

        produce("one", 10)
        deadline = time.monotonic() + 20
        while sum(len(v) for v in tr.got.values()) < 10 * partitions and time.monotonic() < deadline:
            tr.poll_once()
        assert sum(len(v) for v in tr.got.values()) == 10 * partitions
        res = consumers[restart].commit(asynchronous=False)
        assert {tp.partition: tp.offset for tp in res} == {p: 10 for p in before[restart]}

        consumers.pop(restart).close()
        del tr.consumers[restart]
        produce("two", 5)

        new = restart + "-new"
        c_new = group_consumer(broker.bootstrap, group, restart, **{"group.instance.id": restart})
        c_new.subscribe([topic])
        consumers[new] = tr.consumers[new] = c_new
        tr.got[new] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tr.poll_once()
            if tr.assignment(new) and len(tr.got[new]) >= 5 * len(before[restart]):
                break
        after = tr.assignments()
        assert after[new] == before[restart], (
            f"static member {restart!r} rejoined with partitions {sorted(after[new])}, "
            f"had {sorted(before[restart])}"
        )
        assert after[other] == before[other], (after, before)

        t_linger = time.monotonic() + 0.5
        while time.monotonic() < t_linger:
            tr.poll_once()
        assert not tr.errors, tr.errors[:5]
        # No record lost: per partition, offsets 0..15 consumed; the new incarnation starts at
        # the committed offset.
        cov = tr.by_partition()
        for p in range(partitions):
            assert cov.get(p, set()) >= set(range(15)), f"partition {p}: consumed {sorted(cov.get(p, set()))}"
        for p in before[restart]:
            offs = [o for pp, o, _ in tr.got[new] if pp == p]
            assert offs and offs[0] == 10, f"partition {p}: {new} started at {offs[:1]}, committed 10"
        return {"other_revocations": revoked[other] - revoked_before[other]}
    finally:
        for c in consumers.values():
            c.close()


@pytest.mark.parametrize("restart", ["follow", "lead"])
def test_static_member_restart_gets_same_partitions(broker, topic, restart):
    seen = static_restart(broker, topic, restart)
    if restart == "follow":
        # Kafka: a static member rejoining a Stable group within its session, with the same
        # protocol, gets its assignment back with no rebalance.
        assert seen["other_revocations"] == 0, "the other member was revoked: the group rebalanced"


def test_static_leader_restart_does_not_rebalance(broker, topic):
    seen = static_restart(broker, topic, "lead")
    assert seen["other_revocations"] == 0, "the other member was revoked: the group rebalanced"
