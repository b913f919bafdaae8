"""Partition replication and failover with real processes and real clients (issue 16).

Three `spate server` processes, a topic with replication factor 3 and min.insync.replicas=2,
and idempotent acks=all producers from two client libraries (confluent-kafka/librdkafka and
kafka-python) writing while the test SIGKILLs the leader of a partition again and again and
restarts it each time. Afterwards every acknowledged record is in the log exactly once, at the
offset its acknowledgement named, each producer's records in the order it sent them, and a
consumer group read every offset without a gap across the failovers. With two of three nodes
dead, acks=all writes fail with NOT_ENOUGH_REPLICAS and resume when a second node returns; a
rolling restart of every node under load loses nothing; a group's committed offsets outlive a
SIGKILL of its coordinator (`__consumer_offsets` is replicated too).

Rounds (SPATE_KILL_ROUNDS, 20 by default) are what the issue asks of CI; SPATE_ROLLING_CYCLES
repeats the rolling restart (once by default). Sessions last 2 s so each failover takes a few
seconds."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import NotEnoughReplicasError

from conftest import Broker, free_port
from spate_helpers import sigkill_broker
from test_cluster import bootstraps, wait_partitions
from test_quorum import start_registered, stop_all, wait_listed

SESSION_MS = 2000
ROUNDS = int(os.environ.get("SPATE_KILL_ROUNDS", "20"))
ROLLING_CYCLES = int(os.environ.get("SPATE_ROLLING_CYCLES", "1"))


def consumer_debug() -> dict:
    """With SPATE_RDKAFKA_DEBUG=<file>, the group's consumer writes librdkafka's fetch, group
    and metadata debug log there (how a skipped offset was found: a seek after KIP-320's
    truncation check)."""
    path = os.environ.get("SPATE_RDKAFKA_DEBUG")
    if not path:
        return {}
    logger = logging.getLogger("spate.rdkafka")
    logger.propagate = False
    logger.addHandler(logging.FileHandler(path))
    logger.setLevel(logging.DEBUG)
    return {"debug": "fetch,consumer,topic,cgrp,metadata", "logger": logger}
PARTITIONS = 2


def create_replicated(node, topic: str, partitions: int = PARTITIONS) -> None:
    admin = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=15_000)
    try:
        admin.create_topics(
            [NewTopic(topic, partitions, 3, topic_configs={"min.insync.replicas": "2"})], timeout_ms=15_000
        )
    finally:
        admin.close()


def all_in_sync(ps) -> bool:
    return all(p["leader_id"] >= 0 and len(p["isr_nodes"]) == 3 for p in ps)


def alive(nodes) -> Broker:
    return next(n for n in nodes if n.alive())


class Workload:
    """Two idempotent acks=all producers (one per client library) writing a numbered value per
    record, round-robin over the partitions, and one consumer in a group reading along. Every
    acknowledgement (client, partition, offset, value) and every consumed record is kept."""

    def __init__(self, bootstrap: str, topic: str, group: str):
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.lock = threading.Lock()
        self.acked: list[tuple[str, int, int, bytes]] = []
        self.failed: list[str] = []
        self.consumed: list[tuple[int, int, bytes]] = []
        self.consumer_errors: list[str] = []
        self.stopping = threading.Event()
        self.consumer_stop = threading.Event()
        self.crashed: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._guard(self._confluent), daemon=True),
            threading.Thread(target=self._guard(self._kafka_python), daemon=True),
        ]
        self.reader = threading.Thread(target=self._guard(self._consume), daemon=True)

    def _guard(self, body):
        def run():
            try:
                body()
            except BaseException as error:  # surfaced by stop()
                self.crashed.append(error)

        return run

    def start(self) -> "Workload":
        for t in [*self.threads, self.reader]:
            t.start()
        return self

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def wait_acked(self, count: int, timeout: float, why: str) -> None:
        deadline = time.monotonic() + timeout
        while self.acked_count() < count:
            assert not self.crashed, self.crashed
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{why}: {self.acked_count()} of {count} records acknowledged after {timeout:.0f}s; "
                    f"failures {self.failed[:3]}",
                    pytrace=False,
                )
            time.sleep(0.1)

    def _ack(self, client: str, partition: int, offset: int, value: bytes) -> None:
        with self.lock:
            self.acked.append((client, partition, offset, value))

    def _confluent(self) -> None:
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 300_000,
                "retry.backoff.ms": 100,
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )

        def report(err, msg):
            if err is not None:
                self.failed.append(f"confluent {msg.value()!r}: {err}")
            else:
                self._ack("confluent", msg.partition(), msg.offset(), msg.value())

        seq = 0
        while not self.stopping.is_set():
            try:
                producer.produce(
                    self.topic, value=b"confluent-%07d" % seq, partition=seq % PARTITIONS, on_delivery=report
                )
                seq += 1
            except BufferError:
                pass
            producer.poll(0.004)
        assert producer.flush(120) == 0, "confluent-kafka left records undelivered"

    def _kafka_python(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            delivery_timeout_ms=300_000,
            request_timeout_ms=5_000,
            retry_backoff_ms=100,
        )
        seq = 0
        try:
            while not self.stopping.is_set():
                value = b"kafka-python-%07d" % seq
                future = producer.send(self.topic, value=value, partition=seq % PARTITIONS)
                future.add_callback(lambda md, value=value: self._ack("kafka-python", md.partition, md.offset, value))
                future.add_errback(lambda error, value=value: self.failed.append(f"kafka-python {value!r}: {error!r}"))
                seq += 1
                time.sleep(0.004)
            producer.flush(120)
        finally:
            producer.close(timeout=10)

    def _consume(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "auto.commit.interval.ms": 500,
                "topic.metadata.refresh.interval.ms": 1000,
                **consumer_debug(),
            }
        )
        try:
            consumer.subscribe([self.topic])
            while not self.consumer_stop.is_set():
                for m in consumer.consume(num_messages=500, timeout=0.2):
                    with self.lock:
                        if m.error() is None:
                            self.consumed.append((m.partition(), m.offset(), m.value()))
                        else:
                            self.consumer_errors.append(f"after {len(self.consumed)} records: {m.error()}")
        finally:
            consumer.close()

    def stop_producers(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(180)
        assert not self.crashed, self.crashed
        assert all(not t.is_alive() for t in self.threads), "a producer did not finish"

    def stop_consumer(self, ends: dict[int, int], timeout: float = 60.0) -> None:
        """Once the group's consumer has read up to `ends` (the partitions' end offsets)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                reached = {p: max((o for q, o, _ in self.consumed if q == p), default=-1) + 1 for p in ends}
            if all(reached[p] >= ends[p] for p in ends):
                break
            time.sleep(0.2)
        self.consumer_stop.set()
        self.reader.join(30)
        assert not self.crashed, self.crashed
        assert reached == ends, f"the group's consumer stopped at {reached}, the log ends at {ends}"


# NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, OFFSET_NOT_AVAILABLE, and librdkafka's own
# timeout and transport errors.
RETRIABLE = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.OFFSET_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


def end_offset(consumer: Consumer, topic: str, partition: int, timeout: float = 30.0) -> int:
    """The partition's end (ListOffsets through its leader). Just after a failover the client
    may still ask the old leader, or the new one may not answer the end yet (KIP-207): both
    are retriable, as clients treat them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
        except KafkaException as error:
            if error.args[0].code() not in RETRIABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def read_log(bootstrap: str, topic: str) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition, up to its end offset, as (offset, value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "verify", "enable.auto.commit": False})
    try:
        ends = {p: end_offset(consumer, topic, p) for p in range(PARTITIONS)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        log: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + 120
        while any(len(log[p]) < ends[p] for p in log) and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                assert m.error() is None, m.error()
                log[m.partition()].append((m.offset(), m.value()))
        return log
    finally:
        consumer.close()


def verify(work: Workload, bootstrap: str) -> None:
    """Every acknowledged record exactly once, where its acknowledgement said, each producer's
    records in order; the group read every offset."""
    log = read_log(bootstrap, work.topic)
    ends = {p: len(records) for p, records in log.items()}
    work.stop_consumer(ends)
    assert not work.failed, f"{len(work.failed)} deliveries failed: {work.failed[:5]}"
    for p, records in log.items():
        assert [o for o, _ in records] == list(range(len(records))), f"partition {p} has gaps"
        values = [v for _, v in records]
        assert len(set(values)) == len(values), f"partition {p} holds a record twice"
        for client in (b"confluent-", b"kafka-python-"):
            mine = [v for v in values if v.startswith(client)]
            assert mine == sorted(mine), f"{client!r} records out of order in partition {p}"
    lost = [(c, p, o, v) for c, p, o, v in work.acked if o >= len(log[p]) or log[p][o][1] != v]
    assert not lost, f"{len(lost)} of {len(work.acked)} acknowledged records lost or moved: {lost[:5]}"
    # The group's consumer read every offset of every partition (a rebalance or a failover
    # may hand it an offset again, never skip one), each offset with the record it holds.
    with work.lock:
        consumed = list(work.consumed)
    for p in log:
        offsets = {o for q, o, _ in consumed if q == p}
        skipped = sorted(set(range(ends[p])) - offsets)
        assert not skipped, (
            f"the group skipped offsets {skipped[:20]} of partition {p}; it read, in order: "
            f"{around(consumed, p, skipped[0])}; consumer errors: {work.consumer_errors[-10:]}"
        )
    wrong = [(p, o, v) for p, o, v in consumed if log[p][o][1] != v]
    assert not wrong, f"the group read records that are not in the log: {wrong[:5]}"


def around(consumed: list[tuple[int, int, bytes]], partition: int, offset: int) -> list[tuple[int, int, bytes]]:
    """What the consumer read of `partition` just before and after it went past `offset`."""
    mine = [(i, o, v) for i, (q, o, v) in enumerate(consumed) if q == partition]
    past = next((k for k, (_, o, _) in enumerate(mine) if o > offset), len(mine))
    return mine[max(0, past - 4) : past + 4]


def wait_new_leader(nodes, topic: str, old: int, epoch: int) -> None:
    """Until a node other than `old` leads partition 0 of `topic` in an epoch after `epoch`."""
    wait_partitions(
        alive(nodes),
        topic,
        lambda ps: ps[0]["leader_id"] not in (-1, old) and ps[0]["leader_epoch"] > epoch,
        30,
    )


def start_loaded(nodes, via: Broker, topic: str, group: str) -> Workload:
    """Creates `topic` (replicated, through `via`), waits until it is placed and in sync, and
    starts the workload on it; returns once 200 records are acknowledged."""
    create_replicated(via, topic)
    wait_partitions(via, topic, lambda ps: len(ps) == PARTITIONS and all_in_sync(ps))
    work = Workload(bootstraps(nodes), topic, group).start()
    work.wait_acked(200, 60, f"before the first fault on {topic}")
    return work


def test_killing_a_partitions_leader_again_and_again_loses_no_acknowledged_record(tmp_path):
    nodes = start_registered(tmp_path, SESSION_MS)
    try:
        work = start_loaded(nodes, nodes[0], "ledger", "auditors")
        for round in range(ROUNDS):
            ps = wait_partitions(alive(nodes), "ledger", all_in_sync, 60)
            leader, epoch = ps[0]["leader_id"], ps[0]["leader_epoch"]
            before = work.acked_count()
            sigkill_broker(nodes[leader - 1])
            # Another in-sync replica leads, in a later epoch, and the producers carry on.
            wait_new_leader(nodes, "ledger", leader, epoch)
            work.wait_acked(before + 100, 60, f"round {round}: after node {leader} was killed")
            nodes[leader - 1].start()
        wait_partitions(alive(nodes), "ledger", all_in_sync, 60)
        work.stop_producers()
        assert work.acked_count() > 100 * ROUNDS
        verify(work, bootstraps(nodes))
    finally:
        stop_all(nodes)


def test_a_rolling_restart_of_every_node_under_load_loses_nothing(tmp_path):
    nodes = start_registered(tmp_path, SESSION_MS)
    try:
        work = start_loaded(nodes, nodes[1], "rolling", "rollers")
        for node in nodes * ROLLING_CYCLES:
            wait_partitions(alive(nodes), "rolling", all_in_sync, 60)
            before = work.acked_count()
            node.stop()  # SIGTERM: it tells the controller and its partitions move at once
            work.wait_acked(before + 100, 60, f"while node {node.node_id} was down")
            node.start()
        wait_partitions(alive(nodes), "rolling", all_in_sync, 60)
        work.stop_producers()
        verify(work, bootstraps(nodes))
    finally:
        stop_all(nodes)


def test_a_groups_committed_offsets_and_coordinator_survive_the_coordinators_death(tmp_path):
    """`__consumer_offsets` is replicated (offsets.topic.replication.factor 3): SIGKILL the
    node coordinating a group and another in-sync replica takes its partition, loads the
    group from its copy of the log, and answers with every offset committed before."""
    nodes = start_registered(tmp_path, SESSION_MS)
    try:
        create_replicated(nodes[0], "kept")
        wait_partitions(nodes[0], "kept", lambda ps: len(ps) == PARTITIONS and all_in_sync(ps))
        producer = Producer({"bootstrap.servers": bootstraps(nodes), "acks": "all", "enable.idempotence": True})
        for i in range(200):
            producer.produce("kept", value=b"r%03d" % i, partition=i % PARTITIONS)
        assert producer.flush(30) == 0, "records left undelivered"
        consumer = Consumer(
            {
                "bootstrap.servers": bootstraps(nodes),
                "group.id": "keepers",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.assign([TopicPartition("kept", p, 0) for p in range(PARTITIONS)])
            wanted = {0: 37, 1: 61}
            read = {p: 0 for p in range(PARTITIONS)}
            deadline = time.monotonic() + 60
            while any(read[p] < wanted[p] for p in read) and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=100, timeout=0.5):
                    assert m.error() is None, m.error()
                    read[m.partition()] = max(read[m.partition()], m.offset() + 1)
            assert all(read[p] >= wanted[p] for p in read), f"read {read} of {wanted}"
            committed = [TopicPartition("kept", p, wanted[p]) for p in range(PARTITIONS)]
            consumer.commit(offsets=committed, asynchronous=False)
        finally:
            consumer.close()
        # The offsets topic exists now, placed on all three, all in sync.
        offsets = wait_partitions(alive(nodes), "__consumer_offsets", all_in_sync, 60)
        coordinator = offsets[0]["leader_id"]
        epoch = offsets[0]["leader_epoch"]
        sigkill_broker(nodes[coordinator - 1])
        wait_new_leader(nodes, "__consumer_offsets", coordinator, epoch)
        rest = ",".join(n.bootstrap for n in nodes if n.alive())
        consumer = Consumer(
            {
                "bootstrap.servers": rest,
                "group.id": "keepers",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                **consumer_debug(),
            }
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    got = consumer.committed([TopicPartition("kept", p) for p in range(PARTITIONS)], timeout=10)
                    break
                except KafkaException as error:
                    # COORDINATOR_NOT_AVAILABLE or LOAD_IN_PROGRESS while the new one takes over.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            assert {tp.partition: tp.offset for tp in got} == wanted
            # A member of the group resumes where the group left off.
            consumer.subscribe(["kept"])
            first: dict[int, int] = {}
            deadline = time.monotonic() + 60
            while len(first) < PARTITIONS and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=100, timeout=0.5):
                    if m.error() is None:
                        first.setdefault(m.partition(), m.offset())
            assert first == wanted, f"the group resumed at {first}, it had committed {wanted}"
        finally:
            consumer.close()
        nodes[coordinator - 1].start()
        wait_partitions(alive(nodes), "__consumer_offsets", all_in_sync, 60)
    finally:
        stop_all(nodes)


def start_one_voter(tmp_path):
    """Node 1 is the whole controller quorum; nodes 2 and 3 are brokers only, so the cluster
    decides on in-sync sets while both of them are dead."""
    port = free_port()
    common = [
        "--controller-quorum",
        f"1@127.0.0.1:{port}",
        "--override",
        "broker.heartbeat.interval.ms=300",
        "--override",
        f"broker.session.timeout.ms={SESSION_MS}",
    ]
    nodes = []
    for i in (1, 2, 3):
        node = Broker(tmp_path / f"node{i}", ["--node-id", str(i), *common])
        node.node_id = i
        nodes.append(node)
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            wait_listed(node, {n.node_id: n.port for n in nodes}, 30)
    except BaseException:
        stop_all(nodes)
        raise
    return nodes


def test_with_one_of_three_nodes_left_writes_fail_until_a_second_returns(tmp_path):
    nodes = start_one_voter(tmp_path)
    first = nodes[0]
    try:
        create_replicated(first, "few", partitions=1)
        wait_partitions(first, "few", lambda ps: len(ps) == 1 and all_in_sync(ps))
        acked: list[tuple[int, bytes]] = []

        def produce(values: list[bytes], timeout_ms: int) -> list[str]:
            producer = Producer(
                {
                    "bootstrap.servers": bootstraps(nodes),
                    "acks": "all",
                    "enable.idempotence": True,
                    "message.timeout.ms": timeout_ms,
                }
            )
            errors: list[str] = []

            def report(err, msg):
                if err is not None:
                    errors.append(str(err))
                else:
                    acked.append((msg.offset(), msg.value()))

            for value in values:
                producer.produce("few", value=value, on_delivery=report)
            producer.flush(timeout_ms / 1000 + 10)
            return errors

        assert produce([b"before-%d" % i for i in range(100)], 30_000) == []

        for node in nodes[1:]:
            sigkill_broker(node)
        survivors = wait_partitions(
            first, "few", lambda ps: ps[0]["leader_id"] == 1 and ps[0]["isr_nodes"] == [1], 3 * SESSION_MS / 1000 + 15
        )
        assert sorted(survivors[0]["offline_replicas"]) == [2, 3], survivors

        # One in-sync replica is fewer than min.insync.replicas: acks=all is refused before the
        # append, and acks=1 (which min.insync.replicas does not govern) is taken.
        single = KafkaProducer(bootstrap_servers=first.bootstrap, acks="all", retries=0, request_timeout_ms=10_000)
        try:
            with pytest.raises(NotEnoughReplicasError):
                single.send("few", value=b"refused").get(timeout=15)
        finally:
            single.close(timeout=5)
        leader_only = KafkaProducer(bootstrap_servers=first.bootstrap, acks=1, request_timeout_ms=10_000)
        try:
            metadata = leader_only.send("few", value=b"acks-1").get(timeout=15)
            acked.append((metadata.offset, b"acks-1"))
        finally:
            leader_only.close(timeout=5)

        # A second node returns, catches up and rejoins the in-sync set: acks=all works again.
        nodes[1].start()
        wait_partitions(first, "few", lambda ps: sorted(ps[0]["isr_nodes"]) == [1, 2], 60)
        assert produce([b"after-%d" % i for i in range(100)], 30_000) == []

        log = {}
        consumer = Consumer({"bootstrap.servers": first.bootstrap, "group.id": "few-check", "enable.auto.commit": False})
        try:
            end = end_offset(consumer, "few", 0)
            consumer.assign([TopicPartition("few", 0, 0)])
            deadline = time.monotonic() + 60
            while len(log) < end and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=500, timeout=0.5):
                    assert m.error() is None, m.error()
                    log[m.offset()] = m.value()
        finally:
            consumer.close()
        assert end == 201, end
        assert b"refused" not in log.values()
        assert all(log.get(offset) == value for offset, value in acked), "an acknowledged record was lost"
    finally:
        stop_all(nodes)
