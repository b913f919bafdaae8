"""Kafka's per-topic flush policy (flush.messages, flush.ms) against the real broker.

Spate syncs every write at once by default (group-committed) and shows consumers only synced
records. A relaxed policy shows records once they are written to the device, as Kafka does with
its page cache: a process crash keeps them, and acks=all still waits for its fsync."""

from __future__ import annotations

import time

from spate_helpers import consume_all_confluent, create_topic, produce_confluent, sigkill_broker

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

TIMEOUT = 30


def describe(bootstrap: str, topic: str) -> dict:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (future,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)]).values()
    return future.result(timeout=TIMEOUT)


def test_default_policy_is_reported_as_a_default(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    configs = describe(broker.bootstrap, topic)
    assert configs["flush.messages"].value == "1"
    assert configs["flush.messages"].is_default
    assert configs["flush.ms"].value == "9223372036854775807"


def test_relaxed_policy_shows_acks_1_records_at_once_and_a_crash_keeps_them(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    entries = [
        ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
        for key, value in (("flush.messages", "1000000"), ("flush.ms", "600000"))
    ]
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    (future,) = admin.incremental_alter_configs([resource]).values()
    future.result(timeout=TIMEOUT)
    configs = describe(broker.bootstrap, topic)
    assert configs["flush.messages"].value == "1000000"
    assert configs["flush.ms"].value == "600000"

    # Neither threshold is reached (100 records, ten minutes), yet consumers see them: a relaxed
    # policy makes written records visible without waiting for their fsync.
    records = [{"value": f"lazy-{i}".encode()} for i in range(100)]
    started = time.monotonic()
    produce_confluent(broker.bootstrap, topic, records, acks="1")
    got = consume_all_confluent(broker.bootstrap, topic, 1, 100, timeout=TIMEOUT)
    assert time.monotonic() - started < 60
    assert [m.value() for m in got[0]] == [r["value"] for r in records]

    # acks=all waits for its fsync whatever the policy says, and is answered.
    reports = produce_confluent(broker.bootstrap, topic, [{"value": b"durable"}], acks="all")
    assert reports == [(0, 0, 100)]

    # A process crash keeps what was written: the device has it.
    sigkill_broker(broker)
    broker.start()
    got = consume_all_confluent(broker.bootstrap, topic, 1, 101, timeout=TIMEOUT)
    assert [m.value() for m in got[0]] == [r["value"] for r in records] + [b"durable"]
    assert [m.offset() for m in got[0]] == list(range(101))
