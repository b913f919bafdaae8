"""Leaders and where consumers read, with real processes and real clients (issue 16): after
nodes return, the controller gives each partition back to its preferred replica (the first of
its replicas) once that replica is in sync again, by itself every
`leader.imbalance.check.interval.seconds` while `auto.leader.rebalance.enable` holds, and when
an admin client asks (ElectLeaders). With `replica.selector.class` Kafka's rack-aware selector,
a consumer that names its rack (`client.rack`) reads from the replica in its rack (KIP-392)."""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, ElectionType, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from spate_helpers import sigkill_broker
from test_cluster import bootstraps, produce_with_confluent, wait_partitions
from test_quorum import start_registered, stop_all
from test_replication import SESSION_MS, alive, create_replicated

PARTITIONS = 3


def all_in_sync(ps) -> bool:
    return len(ps) == PARTITIONS and all(p["leader_id"] >= 0 and len(p["isr_nodes"]) == 3 for p in ps)


def preferred(ps) -> list[int]:
    return [p["replica_nodes"][0] for p in ps]


def leaders(ps) -> list[int]:
    return [p["leader_id"] for p in ps]


def code(err) -> int:
    """A partition's error in elect_leaders' result: a KafkaError or a KafkaException."""
    return err.code() if isinstance(err, KafkaError) else err.args[0].code()


def balanced(ps) -> bool:
    return all_in_sync(ps) and leaders(ps) == preferred(ps)


def test_leadership_goes_back_to_the_preferred_replicas_by_itself_after_a_rolling_restart(tmp_path):
    nodes = start_registered(tmp_path, SESSION_MS, extra=["--override", "leader.imbalance.check.interval.seconds=2"])
    try:
        create_replicated(nodes[0], "spread", partitions=PARTITIONS)
        ps = wait_partitions(nodes[0], "spread", all_in_sync, 60)
        assert sorted(preferred(ps)) == [1, 2, 3], ps
        assert leaders(ps) == preferred(ps), "as placed"
        for node in nodes:
            wait_partitions(alive(nodes), "spread", all_in_sync, 60)
            node.stop()  # its partitions move to other in-sync replicas at once
            moved = wait_partitions(alive(nodes), "spread", lambda ps: node.node_id not in leaders(ps), 30)
            assert all(p["leader_id"] >= 0 for p in moved), (node.node_id, moved)
            node.start()
        # Each node leads its own partition again, without anyone asking.
        ps = wait_partitions(alive(nodes), "spread", balanced, 60)
        assert sorted(leaders(ps)) == [1, 2, 3], ps
        produce_with_confluent(bootstraps(nodes), "spread", [b"after-%d" % i for i in range(30)])
    finally:
        stop_all(nodes)


def test_an_admin_clients_elect_leaders_gives_a_returned_node_its_partitions_back(tmp_path):
    nodes = start_registered(tmp_path, SESSION_MS, extra=["--override", "auto.leader.rebalance.enable=false"])
    try:
        create_replicated(nodes[1], "elected", partitions=PARTITIONS)
        ps = wait_partitions(nodes[1], "elected", all_in_sync, 60)
        victim = nodes[0]
        mine = [p["partition_index"] for p in ps if p["replica_nodes"][0] == victim.node_id]
        assert mine, ps
        sigkill_broker(victim)
        wait_partitions(nodes[1], "elected", lambda ps: victim.node_id not in leaders(ps), 30)
        admin = AdminClient({"bootstrap.servers": bootstraps(nodes[1:])})
        wanted = [TopicPartition("elected", p) for p in mine]

        # While it is down its partitions cannot go back to it.
        result = admin.elect_leaders(ElectionType.PREFERRED, wanted).result(30)
        codes = {tp.partition: code(err) for tp, err in result.items() if err is not None}
        assert codes == {p: KafkaError.PREFERRED_LEADER_NOT_AVAILABLE for p in mine}, result

        victim.start()
        ps = wait_partitions(nodes[1], "elected", all_in_sync, 60)
        time.sleep(3)  # past any rebalance check: none runs with auto.leader.rebalance.enable=false
        ps = wait_partitions(nodes[1], "elected", all_in_sync, 60)
        assert all(leaders(ps)[p] != victim.node_id for p in mine), ps

        # Asked through every node (the request goes to the active controller).
        admin = AdminClient({"bootstrap.servers": bootstraps(nodes)})
        result = admin.elect_leaders(ElectionType.PREFERRED, wanted).result(30)
        assert all(err is None for err in result.values()), result
        ps = wait_partitions(nodes[1], "elected", balanced, 30)
        produce_with_confluent(victim.bootstrap, "elected", [b"led-%d" % i for i in range(30)])

        result = admin.elect_leaders(ElectionType.PREFERRED, wanted).result(30)
        codes = {tp.partition: code(err) for tp, err in result.items() if err is not None}
        assert codes == {p: KafkaError.ELECTION_NOT_NEEDED for p in mine}, result
    finally:
        stop_all(nodes)


class Lines(logging.Handler):
    """Keeps the log lines a client writes."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_a_consumer_reads_from_the_replica_in_its_rack(tmp_path):
    rack = {1: "east", 2: "west", 3: "north"}
    nodes = start_registered(
        tmp_path,
        SESSION_MS,
        extra=["--override", "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector"],
        per_node=lambda node_id: ["--override", f"broker.rack={rack[node_id]}"],
    )
    try:
        create_replicated(nodes[0], "near", partitions=1)
        ps = wait_partitions(nodes[0], "near", lambda ps: len(ps) == 1 and len(ps[0]["isr_nodes"]) == 3, 60)
        leader = ps[0]["leader_id"]
        follower = next(n for n in ps[0]["replica_nodes"] if n != leader)
        values = [b"near-%d" % i for i in range(300)]
        produce_with_confluent(bootstraps(nodes), "near", values)

        lines = Lines()
        logger = logging.getLogger("spate.rack-consumer")
        logger.propagate = False
        logger.addHandler(lines)
        logger.setLevel(logging.DEBUG)
        consumer = Consumer(
            {
                "bootstrap.servers": bootstraps(nodes),
                "group.id": "near-readers",
                "client.rack": rack[follower],
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "debug": "fetch",
                "logger": logger,
            }
        )
        read = []
        try:
            consumer.assign([TopicPartition("near", 0, 0)])
            deadline = time.monotonic() + 60
            while len(read) < len(values) and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=100, timeout=0.5):
                    assert m.error() is None, m.error()
                    read.append(m.value())
        finally:
            consumer.close()
        assert read == values
        # librdkafka says where it fetched from: the leader sent it to the follower in its rack.
        delegated = [l for l in lines.lines if "preferred replica updated" in l and f"to {follower} " in l]
        assert delegated, [l for l in lines.lines if "preferred" in l][:5] or lines.lines[-20:]
        fetched_from = [l for l in lines.lines if "Fetch topic near" in l and f"/{follower}:" in l]
        assert fetched_from, delegated[:5]
    finally:
        stop_all(nodes)
