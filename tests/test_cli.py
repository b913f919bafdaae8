"""The spate console tools: the README walk-through, keyed records, and error reporting."""

import re

from conftest import free_port
from spate_helpers import describe, run_spate


def test_readme_quickstart(broker):
    b = broker.bootstrap
    topic = "quickstart-events"

    cp = run_spate("topic", "create", "--topic", topic, "--bootstrap-server", b)
    assert cp.returncode == 0, describe(cp)
    assert f"Created topic {topic}." in cp.stdout, describe(cp)

    cp = run_spate("topic", "list", "--bootstrap-server", b)
    assert cp.returncode == 0, describe(cp)
    assert topic in cp.stdout.splitlines(), describe(cp)

    cp = run_spate("topic", "describe", "--topic", topic, "--bootstrap-server", b)
    assert cp.returncode == 0, describe(cp)
    assert f"Topic: {topic}" in cp.stdout, describe(cp)
    assert "PartitionCount: 1" in cp.stdout, describe(cp)
    assert "ReplicationFactor: 1" in cp.stdout, describe(cp)
    assert re.search(rf"Topic: {topic}\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1", cp.stdout), describe(cp)

    cp = run_spate("produce", "--topic", topic, "--bootstrap-server", b, input="hello\ntest\n")
    assert cp.returncode == 0, describe(cp)

    cp = run_spate(
        "consume", "--topic", topic, "--from-beginning", "--max-messages", "2", "--bootstrap-server", b
    )
    assert cp.returncode == 0, describe(cp)
    assert cp.stdout == "hello\ntest\n", describe(cp)


def test_describe_multi_partition_topic(broker, topic):
    b = broker.bootstrap
    cp = run_spate("topic", "create", "--topic", topic, "--partitions", "3", "--replication-factor", "1",
                   "--bootstrap-server", b)
    assert cp.returncode == 0, describe(cp)
    cp = run_spate("topic", "describe", "--topic", topic, "--bootstrap-server", b)
    assert cp.returncode == 0, describe(cp)
    assert re.search(rf"^Topic: {re.escape(topic)}\tTopicId: \S+\tPartitionCount: 3\tReplicationFactor: 1\t",
                     cp.stdout, re.M), describe(cp)
    for p in range(3):
        assert re.search(rf"^\tTopic: {re.escape(topic)}\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1\b",
                         cp.stdout, re.M), describe(cp)


def test_keyed_produce_and_print_key(broker, topic):
    b = broker.bootstrap
    cp = run_spate("produce", "--topic", topic, "--key-separator", ":", "--bootstrap-server", b,
                   input="k1:v1\nk2:v2:with:colons\n")
    assert cp.returncode == 0, describe(cp)

    cp = run_spate("consume", "--topic", topic, "--from-beginning", "--max-messages", "2", "--print-key",
                   "--bootstrap-server", b)
    assert cp.returncode == 0, describe(cp)
    # The separator splits at its first occurrence only.
    assert cp.stdout == "k1\tv1\nk2\tv2:with:colons\n", describe(cp)

    # Without --print-key only values are printed; --partition/--offset start mid-log.
    cp = run_spate("consume", "--topic", topic, "--partition", "0", "--offset", "1", "--max-messages", "1",
                   "--bootstrap-server", b)
    assert cp.returncode == 0, describe(cp)
    assert cp.stdout == "v2:with:colons\n", describe(cp)


def test_create_existing_topic_fails(broker, topic):
    b = broker.bootstrap
    cp = run_spate("topic", "create", "--topic", topic, "--bootstrap-server", b)
    assert cp.returncode == 0, describe(cp)
    cp = run_spate("topic", "create", "--topic", topic, "--bootstrap-server", b)
    assert cp.returncode != 0, describe(cp)
    assert "spate:" in cp.stderr, describe(cp)
    assert re.search(r"exist", cp.stderr, re.I), describe(cp)


def test_create_invalid_topic_name_fails(broker):
    b = broker.bootstrap
    cp = run_spate("topic", "create", "--topic", "bad/name", "--bootstrap-server", b)
    assert cp.returncode != 0, describe(cp)
    assert "spate:" in cp.stderr, describe(cp)
    # And it was not created.
    cp = run_spate("topic", "list", "--bootstrap-server", b)
    assert cp.returncode == 0, describe(cp)
    assert "bad/name" not in cp.stdout, describe(cp)


def test_no_broker_at_address_fails_with_address(tmp_path):
    port = free_port()  # nothing listens here
    addr = f"127.0.0.1:{port}"
    cp = run_spate("topic", "list", "--bootstrap-server", addr, timeout=60)
    assert cp.returncode != 0, describe(cp)
    assert "spate:" in cp.stderr, describe(cp)
    assert addr in cp.stderr, describe(cp)
