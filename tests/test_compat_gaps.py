"""Behaviours real clients' own integration tests found wrong (issue 13), each with the client
that found it:

1. ListOffsets for the largest timestamp (KIP-734) answers the record holding it, not one past
   its batch (confluent-kafka and kafka-python admin clients);
2. CreateTopics takes explicit replica assignments and every Kafka topic config, validated with
   Kafka's messages (confluent-kafka);
3. dynamic broker configs: AlterConfigs on this broker or the cluster default, persisted,
   described with their source, inherited by topics; read-only ones refused (confluent-kafka);
4. IncrementalAlterConfigs SUBTRACT of the last cleanup.policy leaves the empty list;
5. a second consumer started with a live member's group.instance.id fences the old one, which
   stops with FENCED_INSTANCE_ID instead of rejoining in a loop (confluent-kafka);
6. Fetch keeps the whole response within the request's max_bytes, across partitions and
   shards, so a librdkafka consumer sized to fetch.max.bytes never gets an oversized answer;
7. DescribeTopicPartitions (KIP-966) pages through topics with its cursor (kafka-python);
8. successful CreateTopics results carry a null error message (kafka-python);
9. the group settings users tune (group.initial.rebalance.delay.ms,
   group.min/max.session.timeout.ms) are broker configs (confluent-kafka).
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
    OffsetSpec,
)
from kafka import KafkaAdminClient
from kafka.admin import NewTopic as KafkaPythonNewTopic
from kafka.admin import OffsetSpec as KafkaPythonOffsetSpec
from kafka.structs import TopicPartition as KafkaPythonTopicPartition

from conftest import _start_broker
from spate_helpers import create_topic, produce_confluent

TIMEOUT = 30


@pytest.fixture
def kp_admin(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
    yield admin
    admin.close()


# ---- 1. ListOffsets -3 ---------------------------------------------------------------------


def produce_one_batch(bootstrap: str, topic: str, timestamps: list[int]) -> None:
    """The records in one batch (a single flush after a long linger), with these timestamps."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1000, "acks": "all"})
    delivered = []
    for i, ts in enumerate(timestamps):
        p.produce(topic, f"r{i}".encode(), partition=0, timestamp=ts,
                  on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    assert p.flush(TIMEOUT) == 0
    assert [e for e, _ in delivered] == [None] * len(timestamps)
    assert sorted(o for _, o in delivered) == list(range(len(timestamps)))


def test_list_offsets_max_timestamp_is_the_record_that_has_it(broker, topic, kp_admin):
    create_topic(broker.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 60_000
    produce_one_batch(broker.bootstrap, topic, [base, base + 2_000, base + 1_000])
    tp = TopicPartition(topic, 0)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    found = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(timeout=TIMEOUT)
    assert (found.offset, found.timestamp) == (1, base + 2_000)

    kp_tp = KafkaPythonTopicPartition(topic, 0)
    answer = kp_admin.list_partition_offsets({kp_tp: KafkaPythonOffsetSpec.MAX_TIMESTAMP})[kp_tp]
    assert (answer.offset, answer.timestamp) == (1, base + 2_000)


# ---- 5. static membership fencing ----------------------------------------------------------


def static_consumer(bootstrap: str, group: str, name: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.instance.id": "the-instance",
            "client.id": name,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def test_a_second_consumer_with_the_same_instance_id_fences_the_first(broker, topic):
    create_topic(broker.bootstrap, topic, 2)
    group = f"static-{uuid.uuid4().hex[:8]}"
    first_errors: list[KafkaError] = []
    first = static_consumer(broker.bootstrap, group, "first")
    second = None
    try:
        first.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT
        while not first.assignment():
            first.poll(0.2)
            assert time.monotonic() < deadline, "the first instance never got an assignment"
        second = static_consumer(broker.bootstrap, group, "second")
        second.subscribe([topic])
        # librdkafka stops the old one with a fatal error (_FATAL, naming the fencing).
        def fenced():
            return [e for e in first_errors if e.code() == KafkaError._FATAL]

        deadline = time.monotonic() + TIMEOUT
        while not fenced() and time.monotonic() < deadline:
            for c in (first, second):
                m = c.poll(0.2)
                if c is first and m is not None and m.error() is not None:
                    first_errors.append(m.error())
        assert fenced(), f"the old instance was never fenced: {first_errors}"
        assert "fenced" in fenced()[0].str().lower(), fenced()[0]
        # The new instance keeps its place: no replacement loop between the two.
        deadline = time.monotonic() + TIMEOUT
        while not second.assignment() and time.monotonic() < deadline:
            second.poll(0.2)
        assert len(second.assignment()) == 2
        for _ in range(15):
            second.poll(0.2)
        assert len(second.assignment()) == 2
        replaced = broker.stderr_text().count("replaced")
        assert replaced == 1, f"static member replaced {replaced} times:\n{broker.stderr_tail()}"
    finally:
        first.close()
        if second is not None:
            second.close()


# ---- 6. Fetch's response-wide max_bytes -----------------------------------------------------

RECORD_BYTES = 600_000


def test_a_consumer_sized_to_fetch_max_bytes_reads_large_records_from_many_partitions(broker, topic):
    partitions = 4
    create_topic(broker.bootstrap, topic, partitions)
    produce_confluent(
        broker.bootstrap,
        topic,
        [
            {"value": bytes([i]) * RECORD_BYTES, "partition": i % partitions}
            for i in range(3 * partitions)
        ],
    )
    # librdkafka refuses any response over receive.message.max.bytes, which may be as small as
    # fetch.max.bytes + 512: Kafka keeps a Fetch within max_bytes (KIP-74).
    c = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"big-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 1_048_576,
            "receive.message.max.bytes": 1_048_576 + 512,
        }
    )
    errors = []
    got = set()
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + 60
        while len(got) < 3 * partitions and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                errors.append(str(m.error()))
                continue
            assert len(m.value()) == RECORD_BYTES
            got.add((m.partition(), m.offset()))
    finally:
        c.close()
    assert not errors, errors[:3]
    assert len(got) == 3 * partitions


# ---- 7. DescribeTopicPartitions -------------------------------------------------------------


def test_describe_topic_partitions_pages_with_its_cursor(broker, kp_admin):
    prefix = f"dtp-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    for name, count in zip(names, (3, 2, 1)):
        create_topic(broker.bootstrap, name, count)
    seen = []
    cursor = None
    pages = 0
    while True:
        page = kp_admin.describe_topic_partitions(names, response_partition_limit=2, cursor=cursor)
        pages += 1
        for t in page["topics"]:
            assert t["error_code"] == 0
            for p in t["partitions"]:
                assert p["leader_id"] == 1 and p["isr_nodes"] == [1] and p["replica_nodes"] == [1]
                seen.append((t["name"], p["partition_index"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert seen == [(names[0], 0), (names[0], 1), (names[0], 2), (names[1], 0), (names[1], 1), (names[2], 0)]
    missing = kp_admin.describe_topic_partitions([f"{prefix}-none"])
    assert missing["topics"][0]["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION


# ---- 8. null error messages -----------------------------------------------------------------


def test_successful_create_topics_has_a_null_error_message(broker, topic, kp_admin):
    result = kp_admin.create_topics([KafkaPythonNewTopic(topic, 1, 1)])
    [created] = result["topics"]
    assert created["error_code"] == 0
    assert created["error_message"] is None


# ---- 2. CreateTopics: replica assignments and Kafka's topic configs --------------------------


def create_result(admin: AdminClient, topic: NewTopic):
    """None on success, else the KafkaError."""
    try:
        admin.create_topics([topic], operation_timeout=TIMEOUT)[topic.topic].result(timeout=TIMEOUT)
        return None
    except Exception as e:  # noqa: BLE001 - the KafkaException carries the broker's error
        return e.args[0]


def describe_topic_configs(admin: AdminClient, topic: str) -> dict:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)


def test_create_topics_with_replica_assignments_and_kafkas_topic_configs(broker, topic):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assigned = NewTopic(
        topic,
        num_partitions=3,
        replica_assignment=[[1], [1], [1]],
        config={"delete.retention.ms": "100", "min.cleanable.dirty.ratio": "0.1",
                "segment.jitter.ms": "5", "preallocate": "true"},
    )
    assert create_result(admin, assigned) is None
    md = admin.list_topics(topic=topic, timeout=TIMEOUT)
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]
    configs = describe_topic_configs(admin, topic)
    assert configs["delete.retention.ms"].value == "100"
    assert configs["min.cleanable.dirty.ratio"].value == "0.1"
    assert configs["delete.retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["unclean.leader.election.enable"].value == "false"

    refused = {
        "no such broker": ([[1], [2]], "includes broker 2, but no such broker is registered"),
        "a broker twice": ([[1, 1]], "includes the broker 1 more than once"),
    }
    for why, (assignment, message) in refused.items():
        error = create_result(admin, NewTopic(f"{topic}-x", len(assignment), replica_assignment=assignment))
        assert error is not None, why
        assert error.code() == KafkaError.INVALID_REPLICA_ASSIGNMENT, (why, error)
        assert message in error.str(), (why, error.str())
    # librdkafka checks list lengths itself; kafka-python sends them as they are.
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        result = kp.create_topics(
            [KafkaPythonNewTopic(f"{topic}-e", -1, -1, replica_assignments={0: [1], 1: []})],
            raise_errors=False,
        )
        [answer] = result["topics"]
        assert answer["error_code"] == KafkaError.INVALID_REPLICA_ASSIGNMENT
        assert "empty replica list" in answer["error_message"]
    finally:
        kp.close()
    error = create_result(admin, NewTopic(f"{topic}-y", 1, 1, config={"min.cleanable.dirty.ratio": "2"}))
    assert error.code() == KafkaError.INVALID_CONFIG
    assert "Invalid value 2.0 for configuration min.cleanable.dirty.ratio: Value must be no more than 1" in error.str()
    error = create_result(admin, NewTopic(f"{topic}-z", 1, 1, config={"message.format.version": "3.0"}))
    assert error.code() == KafkaError.INVALID_CONFIG
    assert "Unknown topic config name: message.format.version" in error.str()


# ---- 3 and 4. dynamic broker configs; list operations -----------------------------------------


def alter(admin: AdminClient, resource: ConfigResource):
    return admin.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT)


def broker_resource(name: str, *entries: ConfigEntry) -> ConfigResource:
    return ConfigResource(ConfigResource.Type.BROKER, name, incremental_configs=list(entries))


def test_dynamic_broker_configs_are_kept_described_and_acted_on(tmp_path):
    broker = _start_broker(tmp_path / "broker")
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = f"dyn-{uuid.uuid4().hex[:8]}"
        create_topic(broker.bootstrap, topic, 1)
        set_op = AlterConfigOpType.SET
        # (The cluster-wide default, the empty broker name, is what `spate config alter
        # --broker-defaults` sets: these clients refuse an empty name.)
        alter(admin, broker_resource(
            "1",
            ConfigEntry("sasl.kerberos.min.time.before.relogin", "1000", incremental_operation=set_op),
            ConfigEntry("log.retention.ms", "123456", incremental_operation=set_op),
        ))
        with pytest.raises(Exception) as refused:
            alter(admin, broker_resource("1", ConfigEntry("group.max.size", "5", incremental_operation=set_op)))
        assert refused.value.args[0].code() == KafkaError.INVALID_REQUEST
        assert "Cannot update these configs dynamically" in refused.value.args[0].str()

        def check():
            node = ConfigResource(ConfigResource.Type.BROKER, "1")
            configs = admin.describe_configs([node])[node].result(timeout=TIMEOUT)
            relogin = configs["sasl.kerberos.min.time.before.relogin"]
            assert (relogin.value, relogin.source) == ("1000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
            assert not relogin.is_read_only and configs["group.max.size"].is_read_only
            retention = configs["log.retention.ms"]
            assert (retention.value, retention.source) == ("123456", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
            # The topic inherits the broker's setting.
            inherited = describe_topic_configs(admin, topic)["retention.ms"]
            assert (inherited.value, inherited.source) == ("123456", ConfigSource.DYNAMIC_BROKER_CONFIG.value)

        check()
        broker.restart()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        check()

        # 4: subtracting the last cleanup.policy leaves the empty list (keep everything).
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)])
        alter(admin, resource)
        assert describe_topic_configs(admin, topic)["cleanup.policy"].value == ""
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
        alter(admin, resource)
        assert describe_topic_configs(admin, topic)["cleanup.policy"].value == "compact"
    finally:
        if broker.alive():
            broker.stop()


# ---- 9. group settings as broker configs -----------------------------------------------------


def test_group_settings_are_broker_configs(tmp_path):
    broker = _start_broker(
        tmp_path / "broker",
        ["--override", "group.initial.rebalance.delay.ms=0",
         "--override", "group.min.session.timeout.ms=1000"],
    )
    try:
        topic = f"groups-{uuid.uuid4().hex[:8]}"
        create_topic(broker.bootstrap, topic, 2)

        def member(name: str, **extra) -> Consumer:
            conf = {"bootstrap.servers": broker.bootstrap, "group.id": "quick", "client.id": name,
                    "session.timeout.ms": 3000, "heartbeat.interval.ms": 500,
                    "auto.offset.reset": "earliest", "enable.auto.commit": False}
            conf.update(extra)
            return Consumer(conf)

        # A 3 s session (below Kafka's default minimum of 6 s) is allowed, and with no initial
        # delay the group forms at once.
        first = member("first", **{"max.poll.interval.ms": 6000})
        started = time.monotonic()
        first.subscribe([topic])
        while not first.assignment():
            first.poll(0.05)
            assert time.monotonic() - started < 10, "no assignment"
        formed = time.monotonic() - started
        assert formed < 2.5, f"the group took {formed:.2f} s to form (initial delay not 0?)"
        second = member("second")
        second.subscribe([topic])
        # The first stops polling past its max.poll.interval.ms: it leaves, the second takes all.
        deadline = time.monotonic() + 30
        while len(second.assignment()) != 2 and time.monotonic() < deadline:
            second.poll(0.2)
        assert len(second.assignment()) == 2
        first.close()
        second.close()

        # A pattern subscription whose topic a producer then auto-creates gets it promptly:
        # the consumer's metadata refresh finds it and the group rebalances with no delay.
        pattern_topic = f"pat-{uuid.uuid4().hex[:8]}"
        watcher = member("watcher", **{"group.id": "patterns", "topic.metadata.refresh.interval.ms": 1000})
        watcher.subscribe([f"^{pattern_topic}.*"])
        for _ in range(5):
            watcher.poll(0.1)
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        producer.produce(pattern_topic, b"first")
        assert producer.flush(TIMEOUT) == 0
        created = time.monotonic()
        got = None
        while got is None and time.monotonic() - created < 15:
            m = watcher.poll(0.2)
            if m is not None and m.error() is None:
                got = m
        assert got is not None and got.value() == b"first", "the pattern never picked up the topic"
        assert {tp.topic for tp in watcher.assignment()} == {pattern_topic}
        watcher.close()

        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        node = ConfigResource(ConfigResource.Type.BROKER, "1")
        configs = admin.describe_configs([node])[node].result(timeout=TIMEOUT)
        delay = configs["group.initial.rebalance.delay.ms"]
        assert (delay.value, delay.source, delay.is_read_only) == ("0", ConfigSource.STATIC_BROKER_CONFIG.value, True)
    finally:
        if broker.alive():
            broker.stop()
