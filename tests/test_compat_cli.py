"""The spate console tools against Kafka's habits: `--property` settings of the console producer
and consumer, the consumer's output format, `topic describe` configs, `topic alter` (partitions
and configs) and `cluster describe`. Results are checked through confluent-kafka, not through
spate itself."""

from __future__ import annotations

import re
import time

from conftest import free_port
from spate_helpers import consume_all_confluent, create_topic, describe, produce_confluent, run_spate

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

TIMEOUT = 30


def spate(broker, *args, input=None):
    return run_spate(*args, "--bootstrap-server", broker.bootstrap, input=input)


def ok(cp) -> str:
    assert cp.returncode == 0, describe(cp)
    return cp.stdout


def refused(cp, *phrases: str, usage: bool = False) -> str:
    """The command failed with a `spate: ...` line (clap's `error: ...` for a usage error)
    naming each of `phrases`."""
    assert cp.returncode != 0, describe(cp)
    assert cp.stderr.startswith("error: " if usage else "spate: "), describe(cp)
    for phrase in phrases:
        assert phrase in cp.stderr, f"{phrase!r} missing\n{describe(cp)}"
    return cp.stderr


def topic_configs(broker, topic: str) -> dict:
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = client.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
    [future] = futures.values()
    return future.result(timeout=TIMEOUT)


def overrides(broker, topic: str) -> dict:
    return {
        name: entry.value
        for name, entry in topic_configs(broker, topic).items()
        if entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    }


def partition_count(broker, topic: str) -> int:
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    return len(client.list_topics(topic=topic, timeout=TIMEOUT).topics[topic].partitions)


# ---- spate produce --property --------------------------------------------------------------


def test_produce_parse_key_properties_split_keys(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    ok(spate(broker, "produce", "--topic", topic, "--property", "parse.key=true", "--property", "key.separator=:",
             input="k1:v1\nk2:v:2\n:no key\n"))
    # parse.key alone splits at Kafka's default separator, a tab.
    ok(spate(broker, "produce", "--topic", topic, "--property", "parse.key=true", input="k3\tv3\n"))
    # The flag and the properties may be given together when they agree.
    ok(spate(broker, "produce", "--topic", topic, "--key-separator", "=>", "--property", "key.separator==>",
             input="k4=>v4\n"))
    got = consume_all_confluent(broker.bootstrap, topic, 1, expected=5)[0]
    assert [(m.key(), m.value()) for m in got] == [
        (b"k1", b"v1"), (b"k2", b"v:2"), (b"", b"no key"), (b"k3", b"v3"), (b"k4", b"v4")
    ]


def test_produce_refuses_unknown_and_malformed_properties(broker, topic):
    error = refused(spate(broker, "produce", "--topic", topic, "--property", "ignore.errors=true", input="x\n"),
                    "unknown property 'ignore.errors'", "parse.key, key.separator")
    assert "\n" == error[-1] and error.count("\n") == 1, "one line"
    refused(spate(broker, "produce", "--topic", topic, "--property", "parse.key=yes", input="x\n"),
            "parse.key=yes", "true or false")
    refused(spate(broker, "produce", "--topic", topic, "--property", "parse.key", input="x\n"), "KEY=VALUE",
            usage=True)
    refused(spate(broker, "produce", "--topic", topic, "--key-separator", ":", "--property", "key.separator=;",
                  input="x\n"), "disagree")
    # None of the option errors even connected: the topic was not auto-created.
    client = AdminClient({"bootstrap.servers": broker.bootstrap, "allow.auto.create.topics": False})
    assert topic not in client.list_topics(timeout=TIMEOUT).topics
    # A line without the separator stops at that line: the topic exists now, empty.
    refused(spate(broker, "produce", "--topic", topic, "--property", "parse.key=true", input="no tab here\n"),
            "line 1 has no key separator '\\t'")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"wm-{topic}"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT) == (0, 0)
    finally:
        consumer.close()


def test_produce_key_separator_without_parse_key_is_noted(broker, topic):
    cp = spate(broker, "produce", "--topic", topic, "--property", "key.separator=:", input="a:b\n")
    ok(cp)
    assert "has no effect without --property parse.key=true" in cp.stderr, describe(cp)
    [m] = consume_all_confluent(broker.bootstrap, topic, 1, expected=1)[0]
    assert (m.key(), m.value()) == (None, b"a:b"), "sent whole, as Kafka does"


# ---- spate consume: Kafka's output format --------------------------------------------------


def produce_known(broker, topic):
    base = 1_700_000_000_000
    records = [
        {"key": b"k0", "value": b"v0", "timestamp": base, "partition": 0, "headers": [("h1", b"a"), ("h2", None)]},
        {"key": None, "value": b"v1", "timestamp": base + 1, "partition": 0},
        {"key": b"k2", "value": None, "timestamp": base + 2, "partition": 0},
        {"key": b"k3", "value": b"", "timestamp": base + 3, "partition": 0},
        {"key": b"q0", "value": b"w0", "timestamp": base + 10, "partition": 1},
        {"key": b"q1", "value": b"w1", "timestamp": base + 11, "partition": 1},
        {"key": b"q2", "value": b"w2", "timestamp": base + 12, "partition": 1},
    ]
    create_topic(broker.bootstrap, topic, 2)
    produce_confluent(broker.bootstrap, topic, records)
    return base


def consume(broker, topic, *args):
    return ok(spate(broker, "consume", "--topic", topic, "--timeout-ms", "5000", *args))


def test_consume_prints_like_kafka_console_consumer(broker, topic):
    base = produce_known(broker, topic)
    p0 = ["--partition", "0", "--from-beginning", "--max-messages", "4"]
    expected = [
        f"CreateTime:{base}\tk0\tv0",
        f"CreateTime:{base + 1}\tnull\tv1",
        f"CreateTime:{base + 2}\tk2\tnull",
        f"CreateTime:{base + 3}\tk3\t",
    ]
    assert consume(broker, topic, *p0, "--print-timestamp", "--print-key").splitlines() == expected
    as_properties = consume(broker, topic, *p0, "--property", "print.timestamp=true", "--property", "print.key=true")
    assert as_properties.splitlines() == expected

    # Kafka separates every printed field with key.separator, not just key from value.
    colon = consume(broker, topic, *p0, "--property", "print.key=true", "--property", "key.separator=:",
                    "--property", "print.timestamp=true")
    assert colon.splitlines() == [line.replace("\t", ":") for line in expected]
    assert consume(broker, topic, *p0, "--print-key", "--key-separator", ":", "--print-timestamp") == colon

    everything = consume(broker, topic, *p0, "--property", "print.partition=true", "--property", "print.offset=true",
                         "--property", "print.headers=true", "--property", "print.key=true",
                         "--property", "null.literal=<null>")
    assert everything.splitlines() == [
        "Partition:0\tOffset:0\th1:a,h2:<null>\tk0\tv0",
        "Partition:0\tOffset:1\tNO_HEADERS\t<null>\tv1",
        "Partition:0\tOffset:2\tNO_HEADERS\tk2\t<null>",
        "Partition:0\tOffset:3\tNO_HEADERS\tk3\t",
    ]
    keys_only = consume(broker, topic, *p0, "--property", "print.key=true", "--property", "print.value=false")
    assert keys_only.splitlines() == ["k0", "null", "k2", "k3"]


def test_consume_partition_and_offset(broker, topic):
    produce_known(broker, topic)
    out = consume(broker, topic, "--partition", "1", "--offset", "1", "--max-messages", "2", "--print-key")
    assert out == "q1\tw1\nq2\tw2\n"
    out = consume(broker, topic, "--partition", "1", "--offset", "earliest", "--max-messages", "1",
                  "--property", "print.partition=true")
    assert out == "Partition:1\tw0\n"
    refused(spate(broker, "consume", "--topic", topic, "--partition", "5", "--from-beginning"),
            "partition 5 does not exist", "0 to 1")
    refused(spate(broker, "consume", "--topic", topic, "--property", "print.keys=true"),
            "unknown property 'print.keys'", "print.key, print.value")
    refused(spate(broker, "consume", "--topic", topic, "--print-key", "--property", "print.key=false"),
            "--print-key and --property print.key=false disagree")


# ---- spate topic describe / alter ----------------------------------------------------------


def test_topic_describe_shows_the_config_overrides(broker, topic):
    ok(spate(broker, "topic", "create", "--topic", topic, "--partitions", "2", "--config", "retention.ms=60000",
             "--config", "cleanup.policy=compact"))
    plain = topic + "-plain"
    ok(spate(broker, "topic", "create", "--topic", plain))
    out = ok(spate(broker, "topic", "describe", "--topic", topic))
    assert re.search(
        rf"^Topic: {re.escape(topic)}\tTopicId: \S{{22}}\tPartitionCount: 2\tReplicationFactor: 1\t"
        r"Configs: cleanup.policy=compact,retention.ms=60000$",
        out, re.M,
    ), out
    assert re.search(rf"^Topic: {re.escape(plain)}\t.*\tConfigs: $", ok(spate(broker, "topic", "describe", plain)),
                     re.M)

    # Every topic at once, each with its own overrides.
    everything = ok(spate(broker, "topic", "describe"))
    heads = [line for line in everything.splitlines() if line.startswith("Topic: ")]
    assert [h.split("\t")[0] for h in heads] == [f"Topic: {topic}", f"Topic: {plain}"]
    assert heads[0].endswith("Configs: cleanup.policy=compact,retention.ms=60000")
    assert heads[1].endswith("Configs: ")

    refused(spate(broker, "topic", "describe", "--topic", topic + "-missing"), "does not exist", "spate topic list")


def test_topic_alter_partitions(broker, topic):
    ok(spate(broker, "topic", "create", "--topic", topic))
    out = ok(spate(broker, "topic", "alter", "--topic", topic, "--partitions", "3"))
    assert out == f"Topic {topic} now has 3 partitions.\n"
    assert partition_count(broker, topic) == 3
    assert "PartitionCount: 3\t" in ok(spate(broker, "topic", "describe", topic))
    [(_, partition, offset)] = produce_confluent(broker.bootstrap, topic, [{"value": b"x", "partition": 2}])
    assert (partition, offset) == (2, 0)

    for fewer in ("2", "3"):
        refused(spate(broker, "topic", "alter", "--topic", topic, "--partitions", fewer),
                "INVALID_PARTITIONS", f"cannot give topic '{topic}' {fewer} partitions", "3 partition(s)",
                "never removed")
    assert partition_count(broker, topic) == 3
    refused(spate(broker, "topic", "alter", "--topic", topic + "-missing", "--partitions", "5"),
            "UNKNOWN_TOPIC_OR_PARTITION", "does not exist", "spate topic list")


def test_topic_alter_configs(broker, topic):
    ok(spate(broker, "topic", "create", "--topic", topic))
    out = ok(spate(broker, "topic", "alter", "--topic", topic, "--config", "retention.ms=1000",
                   "--config", "segment.ms=2000"))
    assert out == f"Completed updating config for topic {topic}.\n"
    assert overrides(broker, topic) == {"retention.ms": "1000", "segment.ms": "2000"}

    ok(spate(broker, "topic", "alter", topic, "--delete-config", "retention.ms", "--config", "segment.ms=3000"))
    assert overrides(broker, topic) == {"segment.ms": "3000"}
    assert topic_configs(broker, topic)["retention.ms"].value == "604800000", "back to the default"
    assert "Configs: segment.ms=3000" in ok(spate(broker, "topic", "describe", topic))

    refused(spate(broker, "topic", "alter", topic, "--config", "retention.ms=soon"),
            "INVALID_CONFIG", f"topic '{topic}'", "Invalid value soon for configuration retention.ms", "spate topic describe")
    refused(spate(broker, "topic", "alter", topic, "--config", "no.such.config=1"), "INVALID_CONFIG", "no.such.config")
    refused(spate(broker, "topic", "alter", topic, "--config", "retention.ms"), "KEY=VALUE", usage=True)
    refused(spate(broker, "topic", "alter", topic), "nothing to alter", "--partitions N", "--config KEY=VALUE")
    refused(spate(broker, "topic", "alter", topic, "--config", "a.b=1", "--delete-config", "a.b"),
            "'a.b' is both set")
    assert overrides(broker, topic) == {"segment.ms": "3000"}

    # Partitions and configs together: a refused config leaves the partitions alone too.
    refused(spate(broker, "topic", "alter", topic, "--partitions", "4", "--config", "retention.ms=soon"),
            "INVALID_CONFIG")
    assert partition_count(broker, topic) == 1
    out = ok(spate(broker, "topic", "alter", topic, "--partitions", "4", "--config", "retention.ms=5000"))
    assert out == f"Completed updating config for topic {topic}.\nTopic {topic} now has 4 partitions.\n"
    assert partition_count(broker, topic) == 4
    assert overrides(broker, topic) == {"segment.ms": "3000", "retention.ms": "5000"}


# ---- spate cluster describe ----------------------------------------------------------------


def test_cluster_describe(broker):
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    cluster = client.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    out = ok(spate(broker, "cluster", "describe"))
    assert out == f"Cluster ID: {cluster.cluster_id}\nController: 1\nBrokers:\n  1 {broker.host}:{broker.port}\n"
    assert cluster.cluster_id in broker.stderr_text()


def test_cluster_describe_without_a_broker_names_the_fix():
    addr = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    cp = run_spate("cluster", "describe", "--bootstrap-server", addr)
    refused(cp, f"cannot connect to {addr}", "--bootstrap-server")
    assert time.monotonic() - started < 20
