"""Admin APIs (issue 4) against a real broker: confluent-kafka's AdminClient (topics, partitions,
configs, records, cluster) and kafka-python's KafkaAdminClient (topics, configs)."""

from __future__ import annotations

import time

import pytest

from spate_helpers import create_topic, produce_confluent

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

try:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KpConfigResource
    from kafka.admin import ConfigResourceType as KpConfigResourceType
    from kafka.admin import NewTopic as KpNewTopic
except ImportError as e:  # a missing client is a failure, never a skip
    pytest.fail(f"kafka-python is not importable ({e}); pip install 'kafka-python>=3,<4'", pytrace=False)

TIMEOUT = 30


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def only_result(futures: dict):
    """The result of the one future in an AdminClient answer."""
    assert len(futures) == 1, futures
    return next(iter(futures.values())).result(timeout=TIMEOUT)


def kafka_error(futures: dict) -> KafkaError:
    """The KafkaError the one future failed with (fails the test if it succeeded)."""
    with pytest.raises(KafkaException) as info:
        only_result(futures)
    return info.value.args[0]


def topic_configs(client: AdminClient, topic: str) -> dict:
    return only_result(client.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]))


def partition_count(client: AdminClient, topic: str) -> int:
    return len(client.list_topics(topic=topic, timeout=10).topics[topic].partitions)


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{topic}"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()


def first_offset_read_from(bootstrap: str, topic: str, offset: int) -> int:
    """Assigns partition 0 at `offset` (resetting to earliest when out of range) and returns the
    offset of the first record read."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"first-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, offset)])
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return msg.offset()
        pytest.fail(f"no record read from {topic} at offset {offset} within {TIMEOUT}s", pytrace=False)
    finally:
        consumer.close()


# ---- confluent-kafka AdminClient ----------------------------------------------------------


def test_confluent_creates_and_deletes_topics(broker, topic):
    client = admin(broker)
    create_topic(broker.bootstrap, topic, 2)
    assert topic in client.list_topics(timeout=10).topics
    assert only_result(client.delete_topics([topic], operation_timeout=TIMEOUT)) is None
    deadline = time.monotonic() + TIMEOUT
    while topic in client.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"{topic} still listed after DeleteTopics"
        time.sleep(0.2)


def test_confluent_create_partitions_grows_a_topic_and_refuses_to_shrink_it(broker, topic):
    client = admin(broker)
    create_topic(broker.bootstrap, topic, 1)
    assert only_result(client.create_partitions([NewPartitions(topic, 3)])) is None
    assert partition_count(client, topic) == 3
    produce_confluent(broker.bootstrap, topic, [{"value": b"new", "partition": 2}])
    assert watermarks(broker.bootstrap, topic, 2) == (0, 1)

    error = kafka_error(client.create_partitions([NewPartitions(topic, 2)]))
    assert error.code() == KafkaError.INVALID_PARTITIONS
    assert "currently has 3 partition(s); 2 would not be an increase" in error.str()
    error = kafka_error(client.create_partitions([NewPartitions(topic, 3)]))
    assert error.code() == KafkaError.INVALID_PARTITIONS
    assert only_result(client.create_partitions([NewPartitions(topic, 5)], validate_only=True)) is None
    assert partition_count(client, topic) == 3, "validate_only changed nothing"

    broker.restart()
    assert partition_count(admin(broker), topic) == 3


def test_confluent_describe_configs_reports_topic_defaults_and_overrides(broker, topic):
    client = admin(broker)
    created = only_result(
        client.create_topics(
            [NewTopic(topic, 1, 1, config={"retention.ms": "3600000"})], operation_timeout=TIMEOUT
        )
    )
    assert created is None
    configs = topic_configs(client, topic)
    assert {"cleanup.policy", "max.message.bytes", "retention.ms", "segment.bytes"} <= set(configs)
    override = configs["retention.ms"]
    assert (override.value, override.source) == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    default = configs["max.message.bytes"]
    assert (default.value, default.source) == ("1048588", ConfigSource.DEFAULT_CONFIG.value)
    assert not any(entry.is_read_only for entry in configs.values())

    missing = kafka_error(client.describe_configs([ConfigResource(ResourceType.TOPIC, topic + "-nope")]))
    assert missing.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_confluent_describe_configs_reports_the_broker_with_kafkas_dynamic_split(broker):
    client = admin(broker)  # kept alive until its futures resolve
    configs = only_result(client.describe_configs([ConfigResource(ResourceType.BROKER, "1")]))
    assert configs["node.id"].value == "1"
    assert configs["num.partitions"].value == "1"
    assert configs["auto.create.topics.enable"].value == "true"
    assert configs["message.max.bytes"].value == "1048588"
    assert "log.dirs" in configs
    # Read-only unless Kafka may change it at run time (DynamicBrokerConfig).
    assert configs["node.id"].is_read_only and configs["group.max.size"].is_read_only
    assert not configs["log.retention.ms"].is_read_only
    assert not configs["message.max.bytes"].is_read_only


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")  # the legacy API is the subject
def test_confluent_alter_configs_replaces_the_overrides_and_they_survive_restart(broker, topic):
    client = admin(broker)
    create_topic(broker.bootstrap, topic, 1)
    first = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "1000", "segment.ms": "2000"})
    assert only_result(client.alter_configs([first])) is None
    second = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.ms": "5000"})
    assert only_result(client.alter_configs([second])) is None
    configs = topic_configs(client, topic)
    assert configs["segment.ms"].value == "5000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value, "the whole set was replaced"

    invalid = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "soon"})
    error = kafka_error(client.alter_configs([invalid]))
    assert error.code() == KafkaError.INVALID_CONFIG
    assert "retention.ms" in error.str()

    broker.restart()
    client = admin(broker)
    configs = topic_configs(client, topic)
    assert (configs["segment.ms"].value, configs["segment.ms"].source) == (
        "5000",
        ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
    )


def test_confluent_incremental_alter_configs_sets_appends_and_deletes(broker, topic):
    client = admin(broker)
    create_topic(broker.bootstrap, topic, 1)

    def alter(*entries, validate_only=False):
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=list(entries))
        return client.incremental_alter_configs([resource], validate_only=validate_only)

    set_retention = ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET)
    append_compact = ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)
    assert only_result(alter(set_retention, append_compact)) is None
    configs = topic_configs(client, topic)
    assert configs["retention.ms"].value == "60000"
    assert configs["cleanup.policy"].value == "delete,compact"

    delete_retention = ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)
    assert only_result(alter(delete_retention)) is None
    assert topic_configs(client, topic)["retention.ms"].value == "604800000"

    dry_run = ConfigEntry("segment.ms", "1000", incremental_operation=AlterConfigOpType.SET)
    assert only_result(alter(dry_run, validate_only=True)) is None
    assert topic_configs(client, topic)["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    not_a_list = ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND)
    assert kafka_error(alter(not_a_list)).code() == KafkaError.INVALID_CONFIG


def test_confluent_read_only_broker_config_alters_are_refused_at_once(broker):
    client = admin(broker)
    entry = ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)
    started = time.monotonic()
    error = kafka_error(
        client.incremental_alter_configs([ConfigResource(ResourceType.BROKER, "1", incremental_configs=[entry])])
    )
    # Kafka's answer: INVALID_REQUEST from the broker's validation.
    assert error.code() == KafkaError.INVALID_REQUEST
    assert "Cannot update these configs dynamically: Set(num.partitions)" in error.str()
    assert time.monotonic() - started < 10, "answered, not timed out"


def test_confluent_an_altered_max_message_bytes_is_enforced(broker, topic):
    client = admin(broker)
    create_topic(broker.bootstrap, topic, 1)
    entry = ConfigEntry("max.message.bytes", "1000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    assert only_result(client.incremental_alter_configs([resource])) is None
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 20000})
    errors = []
    producer.produce(topic, b"x" * 5000, partition=0, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(TIMEOUT)
    assert len(errors) == 1 and errors[0] is not None, errors
    assert errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_confluent_delete_records_moves_the_low_watermark_and_survives_restart(broker, topic):
    client = admin(broker)
    create_topic(broker.bootstrap, topic, 1)
    produce_confluent(broker.bootstrap, topic, [{"value": b"%d" % i} for i in range(10)])
    deleted = only_result(client.delete_records([TopicPartition(topic, 0, 4)]))
    assert deleted.low_watermark == 4
    assert watermarks(broker.bootstrap, topic) == (4, 10)
    assert first_offset_read_from(broker.bootstrap, topic, 1) == 4, "below the log start: reset to it"

    broker.restart()
    assert watermarks(broker.bootstrap, topic) == (4, 10)
    client = admin(broker)
    beyond = kafka_error(client.delete_records([TopicPartition(topic, 0, 11)]))
    assert beyond.code() == KafkaError.OFFSET_OUT_OF_RANGE
    everything = only_result(client.delete_records([TopicPartition(topic, 0, -1)]))
    assert everything.low_watermark == 10


def test_confluent_describe_cluster_names_the_one_broker(broker):
    client = admin(broker)  # kept alive until its future resolves
    cluster = client.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    assert cluster.cluster_id
    assert cluster.controller.id == 1
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(1, broker.host, broker.port)]
    assert cluster.cluster_id in broker.stderr_text(), "the cluster id the broker logged"


# ---- kafka-python KafkaAdminClient ---------------------------------------------------------


def test_kafka_python_creates_describes_and_deletes_topics(broker, topic):
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=TIMEOUT * 1000)
    try:
        client.create_topics(
            [KpNewTopic(topic, 2, 1, topic_configs={"retention.ms": "120000"})], timeout_ms=TIMEOUT * 1000
        )
        assert topic in client.list_topics()

        resource = KpConfigResource(KpConfigResourceType.TOPIC, topic)
        modified = client.describe_configs([resource])["topic"][topic]
        assert set(modified) == {"retention.ms"}, "only the override is modified"
        assert modified["retention.ms"]["value"] == "120000"
        assert modified["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        everything = client.describe_configs([resource], config_filter="all")["topic"][topic]
        assert everything["segment.bytes"]["value"] == "1073741824"
        assert everything["segment.bytes"]["config_source"] == "DEFAULT_CONFIG"

        brokers = client.describe_configs(
            [KpConfigResource(KpConfigResourceType.BROKER, "1")], config_filter="all"
        )["broker"]["1"]
        assert brokers["num.partitions"]["value"] == "1"

        client.delete_topics([topic], timeout_ms=TIMEOUT * 1000)
        deadline = time.monotonic() + TIMEOUT
        while topic in client.list_topics():
            assert time.monotonic() < deadline, f"{topic} still listed after delete_topics"
            time.sleep(0.2)
    finally:
        client.close()
