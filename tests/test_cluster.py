"""Three `spate server` processes as one cluster for real clients (issue 15): topics are placed
over the registered brokers by the active controller, every broker answers Metadata with all
live brokers and each partition's leader, clients produce and consume through any bootstrap
broker, groups find their coordinator, and a broker that dies leaves the partitions it alone
held leaderless until it returns, when it leads them again in a later epoch with its data
intact. Replication and failover themselves are `test_replication.py`'s."""

from __future__ import annotations

import collections
import re
import subprocess
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import InvalidReplicationFactorError

from conftest import Broker
from spate_helpers import describe, require_tool, run_spate, sigkill_broker
from test_quorum import settled, start_registered, stop_all, wait_listed

TIMEOUT = 30.0
SESSION_MS = 4000


def bootstraps(nodes) -> str:
    return ",".join(n.bootstrap for n in nodes)


def partitions_seen(node, topic: str) -> list[dict]:
    """DescribeTopics (Metadata) through kafka-python's admin client on `node`: each
    partition's leader, leader epoch, replicas, in-sync and offline replicas, by index."""
    admin = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=10_000)
    try:
        described = admin.describe_topics([topic])[0]
    finally:
        admin.close()
    assert described["error_code"] == 0, described
    return sorted(described["partitions"], key=lambda p: p["partition_index"])


def wait_partitions(node, topic: str, accept, timeout: float = TIMEOUT) -> list[dict]:
    """Waits until `accept(partitions)` holds for what `node` describes; returns them."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = partitions_seen(node, topic)
        except Exception as error:  # the topic may not be known there yet
            seen = error
        if not isinstance(seen, Exception) and accept(seen):
            return seen
        time.sleep(0.3)
    pytest.fail(f"node {node.node_id} describes {topic} as {seen}", pytrace=False)


def produce_with_confluent(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failures = []
    for value in values:
        producer.produce(topic, value=value, on_delivery=lambda err, _msg: err and failures.append(err))
    assert producer.flush(TIMEOUT) == 0, "records left undelivered"
    assert not failures, failures[:3]


def consume_group(bootstrap: str, topic: str, group: str, expected: int) -> set[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    seen: set[bytes] = set()
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(seen) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            seen.add(message.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return seen


@pytest.fixture
def cluster(tmp_path):
    nodes = start_registered(tmp_path)
    try:
        yield nodes
    finally:
        stop_all(nodes)


def test_three_brokers_are_one_cluster_through_any_of_them(cluster):
    first, second, third = cluster
    admin = KafkaAdminClient(bootstrap_servers=second.bootstrap, request_timeout_ms=15_000)
    try:
        # kafka-python sends CreateTopics to the controller its Metadata names.
        admin.create_topics([NewTopic("orders", 6, 3)], timeout_ms=15_000)
        with pytest.raises(InvalidReplicationFactorError):
            admin.create_topics([NewTopic("too-many", 1, 4)], timeout_ms=15_000)
    finally:
        admin.close()

    # Every broker describes the same placement: leaders and replicas spread evenly, each
    # partition on all three brokers, all of them in sync (a new partition is empty).
    views = []
    for node in cluster:
        partitions = wait_partitions(node, "orders", lambda ps: len(ps) == 6)
        for p in partitions:
            assert sorted(p["replica_nodes"]) == [1, 2, 3], p
            assert p["leader_id"] == p["replica_nodes"][0], p
            assert sorted(p["isr_nodes"]) == [1, 2, 3] and p["offline_replicas"] == [], p
            assert p["leader_epoch"] == 0, p
        leaders = collections.Counter(p["leader_id"] for p in partitions)
        assert leaders == {1: 2, 2: 2, 3: 2}, leaders
        views.append([(p["leader_id"], p["replica_nodes"]) for p in partitions])
    assert views[0] == views[1] == views[2]

    metadata = AdminClient({"bootstrap.servers": third.bootstrap}).list_topics(timeout=10)
    assert sorted(metadata.brokers) == [1, 2, 3]
    assert metadata.controller_id in (1, 2, 3)
    kcat = require_tool("kcat", "apt-get install kcat")
    listing = subprocess.run(
        [kcat, "-L", "-b", first.bootstrap, "-t", "orders"], capture_output=True, text=True, timeout=30
    )
    assert listing.returncode == 0, listing.stderr
    assert " 3 brokers:" in listing.stdout and "6 partitions" in listing.stdout, listing.stdout

    # Producers through different bootstrap brokers find every partition's leader; both are
    # idempotent, so each broker hands out producer ids from a block the controller granted it.
    produce_with_confluent(third.bootstrap, "orders", [b"c-%d" % i for i in range(300)])
    producer = KafkaProducer(bootstrap_servers=first.bootstrap, acks="all")
    try:
        futures = [producer.send("orders", value=b"k-%d" % i) for i in range(300)]
        producer.flush(TIMEOUT)
        offsets = [f.get(timeout=TIMEOUT) for f in futures]
    finally:
        producer.close()
    assert {o.partition for o in offsets} == set(range(6))

    # A group through the second broker: FindCoordinator names the broker leading the
    # group's `__consumer_offsets` partition, and the group reads everything once.
    seen = consume_group(second.bootstrap, "orders", "readers", 600)
    assert len(seen) == 600
    again = Consumer({"bootstrap.servers": first.bootstrap, "group.id": "readers"})
    try:
        from confluent_kafka import TopicPartition

        committed = again.committed([TopicPartition("orders", p) for p in range(6)], timeout=TIMEOUT)
    finally:
        again.close()
    assert sum(tp.offset for tp in committed) == 600, committed

    # A broker that is not the controller forwards topic changes to it (KIP-590): a creation
    # and a config change sent straight to one are done, and answered there.
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.protocol.admin.configs import IncrementalAlterConfigsRequest
    from kafka.protocol.admin.topics import CreateTopicsRequest

    admin = KafkaAdminClient(bootstrap_servers=first.bootstrap, request_timeout_ms=15_000)
    try:
        controller_id = admin.describe_cluster()["controller_id"]
        other = next(n.node_id for n in cluster if n.node_id != controller_id)
        wanted = CreateTopicsRequest.CreatableTopic(
            name="forwarded", num_partitions=3, replication_factor=2, assignments=[], configs=[]
        )
        request = CreateTopicsRequest(topics=[wanted], timeout_ms=10_000, validate_only=False)
        created = admin._manager.run(admin._manager.send, request, other)
        assert [(t.name, t.error_code, t.replication_factor) for t in created.topics] == [("forwarded", 0, 2)]
        resource = IncrementalAlterConfigsRequest.AlterConfigsResource
        change = resource.AlterableConfig(name="retention.ms", config_operation=0, value="12345")
        request = IncrementalAlterConfigsRequest(
            resources=[resource(resource_type=2, resource_name="forwarded", configs=[change])], validate_only=False
        )
        altered = admin._manager.run(admin._manager.send, request, other)
        assert [r.error_code for r in altered.responses] == [0], altered
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "forwarded")])
        assert described["topic"]["forwarded"]["retention.ms"]["value"] == "12345", described
    finally:
        admin.close()
    wait_partitions(cluster[other - 1], "forwarded", lambda ps: len(ps) == 3)

    # Our own CLI describes replicas and in-sync sets as kafka-topics.sh does.
    cp = run_spate("topic", "--bootstrap-server", first.bootstrap, "describe", "orders")
    assert cp.returncode == 0, cp.stderr
    assert "ReplicationFactor: 3" in cp.stdout, cp.stdout


def test_a_dead_brokers_partitions_wait_for_it_and_it_leads_them_again_in_a_new_epoch(tmp_path):
    nodes = start_registered(tmp_path, SESSION_MS)
    try:
        controller, _ = settled(nodes)
        cp = run_spate(
            "topic", "--bootstrap-server", nodes[0].bootstrap, "create", "events", "--partitions", "3",
            "--replication-factor", "1",
        )
        assert cp.returncode == 0, cp.stderr
        placed = wait_partitions(nodes[0], "events", lambda ps: len(ps) == 3)
        assert sorted(p["leader_id"] for p in placed) == [1, 2, 3], placed
        produce_with_confluent(bootstraps(nodes), "events", [b"e-%d" % i for i in range(90)])

        # The controller leader dies: another is elected, the dead broker is fenced once its
        # session ends, and its partition has no leader (no other replica holds its data).
        dead = nodes[controller - 1]
        sigkill_broker(dead)
        alive = [n for n in nodes if n is not dead]
        new_controller, _ = settled(nodes, not_leader=controller)
        assert new_controller != controller
        orphan = next(p["partition_index"] for p in placed if p["leader_id"] == dead.node_id)

        def orphaned(ps):
            p = ps[orphan]
            return p["leader_id"] == -1 and p["offline_replicas"] == [dead.node_id] and p["leader_epoch"] == 1

        wait_partitions(alive[0], "events", orphaned, 3 * SESSION_MS / 1000 + 10)
        # Topic changes go on with two of three voters.
        cp = run_spate("topic", "--bootstrap-server", alive[1].bootstrap, "create", "later", "--partitions", "2")
        assert cp.returncode == 0, cp.stderr

        # It returns: registered in a new life, it leads its partition again, in the epoch
        # after, with every record it had.
        dead.start()
        back = wait_partitions(alive[0], "events", lambda ps: ps[orphan]["leader_id"] == dead.node_id)
        assert back[orphan]["leader_epoch"] == 2, back
        seen = consume_group(alive[1].bootstrap, "events", "after-return", 90)
        assert seen == {b"e-%d" % i for i in range(90)}
    finally:
        stop_all(nodes)


def test_dev_cluster_starts_three_brokers_in_one_command_and_stops_them(tmp_path):
    """`spate dev-cluster` (what `just cluster` runs): three nodes on 127.0.0.1 with their data
    under one directory, one cluster for clients; SIGTERM stops them all cleanly."""
    import random
    import signal

    from conftest import spate_bin
    from spate_helpers import port_is_free

    for _ in range(50):
        base = random.randrange(20_000, 60_000)
        ports = [base + 100 * i + j for i in range(3) for j in range(2)]
        if all(port_is_free("127.0.0.1", p) for p in ports):
            break
    data = tmp_path / "cluster"
    proc = subprocess.Popen(
        [str(spate_bin()), "dev-cluster", "--nodes", "3", "--data-dir", str(data), "--base-port", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        brokers = []
        while time.monotonic() < deadline and len(brokers) < 3:
            time.sleep(0.5)
            cp = run_spate("cluster", "--bootstrap-server", f"127.0.0.1:{base + 100}", "describe")
            brokers = [line for line in cp.stdout.splitlines() if line.startswith("  ")]
        assert len(brokers) == 3, (cp.stdout, cp.stderr)
        assert sorted(p.name for p in data.iterdir()) == [
            "node-1", "node-1.log", "node-2", "node-2.log", "node-3", "node-3.log",
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"bootstrap servers: 127.0.0.1:{base},127.0.0.1:{base + 100},127.0.0.1:{base + 200}" in out, out
    left = subprocess.run(["pgrep", "-f", str(data)], capture_output=True, text=True)
    assert left.stdout.strip() == "", "a node outlived the cluster"
    for i in (1, 2, 3):
        log = (data / f"node-{i}.log").read_text()
        assert "stopped" in log.splitlines()[-1], log[-2000:]


def test_a_voter_that_missed_many_changes_catches_up_from_a_snapshot(tmp_path):
    """With a snapshot every 5 versions, a voter stopped while 30 topics are created finds the
    leader's log begun after its own: it takes the leader's snapshot, its metadata becomes the
    cluster's, and clients find the topics through it."""
    import re

    nodes = start_registered(tmp_path, extra=["--override", "metadata.snapshot.interval.versions=5"])
    try:
        leader, _ = settled(nodes)
        behind = next(n for n in nodes if n.node_id != leader)
        behind.stop()
        names = [f"t{i:02d}" for i in range(30)]
        admin = KafkaAdminClient(bootstrap_servers=nodes[leader - 1].bootstrap, request_timeout_ms=15_000)
        try:
            admin.create_topics([NewTopic(name, 1, 1) for name in names], timeout_ms=15_000)
        finally:
            admin.close()
        behind.start()
        deadline = time.monotonic() + TIMEOUT
        listed = set()
        while time.monotonic() < deadline and not set(names) <= listed:
            metadata = AdminClient({"bootstrap.servers": behind.bootstrap}).list_topics(timeout=10)
            listed = set(metadata.topics)
            time.sleep(0.3)
        assert set(names) <= listed, sorted(listed)
        assert behind.wait_for_log(r"the metadata image of version \d+ \(a snapshot\)", timeout=5)
        versions = [int(v) for v in re.findall(r"the metadata image of version (\d+)", behind.stderr_tail(400))]
        assert max(versions) >= 25, versions
        # They were placed over the brokers that were up, and clients find them through it.
        leaders = {metadata.topics[t].partitions[0].leader for t in names}
        assert leaders == {n.node_id for n in nodes if n is not behind}, leaders
        produce_with_confluent(behind.bootstrap, names[0], [b"after"])
    finally:
        stop_all(nodes)


def test_a_broker_only_node_joins_leads_its_partitions_and_never_votes(tmp_path):
    """A node whose id is not among the voters runs as a broker only (an observer of the
    quorum, KIP-595): it has no controller listener, registers through the voters, mirrors
    the metadata, leads its share of partitions and serves clients; the quorum lists it as an
    observer, and losing it costs the quorum nothing."""
    voters = start_registered(tmp_path)
    observer = None
    try:
        args = voters[0].extra_args
        quorum_arg = args[args.index("--controller-quorum") + 1]
        observer = Broker(
            tmp_path / "node4",
            [
                "--node-id",
                "4",
                "--controller-quorum",
                quorum_arg,
                "--override",
                "broker.heartbeat.interval.ms=300",
                "--override",
                "broker.rack=rack-4",
            ],
        )
        observer.node_id = 4
        observer.start()
        assert observer.wait_for_log("broker-only node", timeout=10), observer.stderr_tail()
        nodes = [*voters, observer]
        everyone = {n.node_id: n.port for n in nodes}
        for node in nodes:
            wait_listed(node, everyone, TIMEOUT)

        admin = KafkaAdminClient(bootstrap_servers=observer.bootstrap, request_timeout_ms=15_000)
        try:
            admin.create_topics([NewTopic("spread", 4, 1)], timeout_ms=15_000)
        finally:
            admin.close()
        partitions = wait_partitions(
            observer, "spread", lambda ps: len(ps) == 4 and all(p["leader_id"] >= 0 for p in ps)
        )
        assert sorted(p["leader_id"] for p in partitions) == [1, 2, 3, 4], partitions

        values = [f"v{i}".encode() for i in range(40)]
        produce_with_confluent(observer.bootstrap, "spread", values)
        assert consume_group(observer.bootstrap, "spread", "spread-readers", len(values)) == set(values)

        cp = run_spate("cluster", "--bootstrap-server", observer.bootstrap, "describe")
        assert cp.returncode == 0, describe(cp)
        assert re.search(r"^  4 \S+ rack: rack-4 broker-only$", cp.stdout, re.M), cp.stdout
        # Its rack (broker.rack) reaches clients, as kafka-python's describe_cluster reads it.
        admin = KafkaAdminClient(bootstrap_servers=voters[1].bootstrap, request_timeout_ms=15_000)
        try:
            brokers = admin.describe_cluster()["brokers"]
            racks = {b.get("node_id", b.get("broker_id")): b["rack"] for b in brokers}
        finally:
            admin.close()
        assert racks == {1: None, 2: None, 3: None, 4: "rack-4"}, racks
        assert re.search(r"^  1 \S+ voter$", cp.stdout, re.M), cp.stdout
        leader, _ = settled(voters)
        cp = run_spate("cluster", "--bootstrap-server", voters[leader - 1].bootstrap, "quorum")
        assert re.search(r"^Observers:\n  4 log end \d+ lag 0$", cp.stdout, re.M), cp.stdout
        assert not re.search(r"^Voters:\n(  \d.*\n)*  4 ", cp.stdout, re.M), cp.stdout

        # The broker-only node goes: fenced once its session ends, and the voters commit on
        # without it.
        sigkill_broker(observer)
        wait_listed(voters[0], {n.node_id: n.port for n in voters}, TIMEOUT)
        admin = KafkaAdminClient(bootstrap_servers=voters[0].bootstrap, request_timeout_ms=15_000)
        try:
            admin.create_topics([NewTopic("after-observer", 1, 1)], timeout_ms=15_000)
        finally:
            admin.close()
        wait_partitions(voters[1], "after-observer", lambda ps: len(ps) == 1)
    finally:
        stop_all([*voters, *([observer] if observer else [])])
