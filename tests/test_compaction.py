"""Compacted topics (issue 17). What exists so far: Kafka's produce-time rule that every record
of a topic whose cleanup.policy includes compact has a key."""

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def test_a_record_without_a_key_is_refused_by_a_compacted_topic(broker, topic):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    new = NewTopic(topic, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"})
    assert admin.create_topics([new])[topic].result(timeout=30) is None

    outcomes = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    for key in [None, b"k"]:
        producer.produce(topic, key=key, value=b"v", on_delivery=lambda err, msg: outcomes.append((msg.key(), err)))
        producer.flush(30)
    assert len(outcomes) == 2, outcomes
    refused, taken = outcomes
    assert refused[1] is not None and refused[1].code() == KafkaError.INVALID_RECORD, refused
    assert taken == (b"k", None), taken

    # A compressed batch is read too: one keyless record among keyed ones refuses the batch.
    outcomes.clear()
    gz = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "gzip", "linger.ms": 50})
    for key in [b"a", None, b"b"]:
        gz.produce(topic, key=key, value=b"v", on_delivery=lambda err, msg: outcomes.append((msg.key(), err)))
    gz.flush(30)
    assert len(outcomes) == 3 and all(err is not None and err.code() == KafkaError.INVALID_RECORD for _, err in outcomes), outcomes


# ---- the log cleaner ----------------------------------------------------------------------

import asyncio
import random
import time

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

from conftest import _start_broker
from spate_helpers import run_spate

KEYS = 1000
SEGMENT_MS = 1500


def _produce_updates(bootstrap, topic, start, count, delivered):
    """`count` updates over KEYS keys, value "<key>:<i>"; `delivered` maps key -> (offset,
    value) of its latest acknowledged update."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "enable.idempotence": True})
    errors = []

    def done(err, msg):
        if err is not None:
            errors.append(err)
            return
        key = msg.key().decode()
        previous = delivered.get(key)
        if previous is None or previous[0] < msg.offset():
            delivered[key] = (msg.offset(), msg.value().decode())

    for i in range(start, start + count):
        key = f"k{i % KEYS}"
        while True:
            try:
                producer.produce(topic, key=key, value=f"{key}:{i}", on_delivery=done)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0
    assert not errors, errors[:3]


def _read_all(bootstrap, topic):
    """Every record from the beginning to the end: [(offset, key, value)]."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{random.random()}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    records = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return records
                raise AssertionError(msg.error())
            records.append((msg.offset(), msg.key().decode(), msg.value().decode()))
    finally:
        consumer.close()
    raise AssertionError(f"no end of partition within 60 s; {len(records)} records read")


def _read_all_kafka_python(bootstrap, topic):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=10_000)
    tp = KTopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    records = []
    try:
        while consumer.position(tp) < end:
            batch = consumer.poll(timeout_ms=1000)
            for msg in batch.get(tp, []):
                records.append((msg.offset, msg.key.decode(), msg.value.decode()))
            assert len(records) <= 200_000
    finally:
        consumer.close()
    return records


async def _read_all_aiokafka(bootstrap, topic):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = ATopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records = []
        while await consumer.position(tp) < end:
            batches = await asyncio.wait_for(consumer.getmany(tp, timeout_ms=1000), 30)
            for msg in batches.get(tp, []):
                records.append((msg.offset, msg.key.decode(), msg.value.decode()))
        return records
    finally:
        await consumer.stop()


def _roll_and_mark(bootstrap, topic, delivered, i):
    """Lets the active segment age past segment.ms, then updates k0 once more: the append rolls
    the segment, so every earlier update is in a closed (cleanable) one."""
    time.sleep(SEGMENT_MS / 1000 + 0.5)
    _produce_updates(bootstrap, topic, i, 1, delivered)


def _check_latest(records, delivered):
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    latest = {}
    for offset, key, value in records:
        latest[key] = (offset, value)
    # Every key's latest acknowledged value, at the offset its produce was acknowledged with.
    assert latest == delivered


def _check_cleaned(records, delivered, cleaned):
    """The log of 1,000 keys after a cleaning: one record per key in the cleaned segments, and
    the active segment (never cleaned, as Kafka's) with only the last update of k0."""
    assert len(records) == KEYS + 1, (len(records), cleaned)
    assert [k for _, k, _ in records[-1:]] == ["k0"]
    assert len({k for _, k, _ in records[:-1]}) == KEYS
    _check_latest(records, delivered)


def test_a_compacted_topic_keeps_the_latest_value_of_each_key_through_a_kill_while_cleaning(tmp_path):
    broker = _start_broker(tmp_path / "broker", ["--override", "log.cleaner.backoff.ms=200",
                                                  "--override", "log.cleaner.io.max.bytes.per.second=1000000"])
    topic = "table"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    config = {"cleanup.policy": "compact", "segment.bytes": str(256 * 1024),
              "segment.ms": str(SEGMENT_MS), "min.cleanable.dirty.ratio": "0.1"}
    new = NewTopic(topic, num_partitions=1, replication_factor=1, config=config)
    assert admin.create_topics([new])[topic].result(timeout=30) is None

    delivered = {}
    _produce_updates(broker.bootstrap, topic, 0, 100_000, delivered)
    _roll_and_mark(broker.bootstrap, topic, delivered, 100_000)
    assert len(delivered) == KEYS
    mark = delivered["k0"][0]
    cleaned = broker.wait_for_log(rf"table-0: cleaned offsets below {mark} ", timeout=60)
    assert cleaned, broker.stderr_tail()
    records = _read_all(broker.bootstrap, topic)
    _check_cleaned(records, delivered, cleaned)
    # `spate topic describe` shows each compacted partition's dirty ratio: nothing closed is
    # left dirty after the cleaning.
    described = run_spate("topic", "describe", "--topic", topic, "--bootstrap-server", broker.bootstrap)
    assert described.returncode == 0, described.stderr
    assert "\tPartition: 0\t" in described.stdout and "\tDirtyRatio: 0.00" in described.stdout, described.stdout
    # kafka-python and aiokafka read the cleaned log the same way (batches without records
    # where whole batches went, holes inside the kept ones).
    assert _read_all_kafka_python(broker.bootstrap, topic) == records
    assert asyncio.run(_read_all_aiokafka(broker.bootstrap, topic)) == records

    # More updates, and a SIGKILL while the cleaner works on them (its I/O is rate-bound, so a
    # cleaning takes seconds).
    since = broker.stderr_size()
    _produce_updates(broker.bootstrap, topic, 200_000, 100_000, delivered)
    _roll_and_mark(broker.bootstrap, topic, delivered, 300_000)
    mark = delivered["k0"][0]
    began = broker.wait_for_log(r"table-0: cleaning, dirty offsets", since=since, timeout=60)
    assert began, broker.stderr_tail()
    time.sleep(random.uniform(0.2, 1.5))
    finished_before_kill = broker.wait_for_log(rf"table-0: cleaned offsets below {mark} ", since=since, timeout=0)
    broker._kill()
    broker.start()
    # Nothing acknowledged is lost, whatever the kill interrupted.
    _check_latest(_read_all(broker.bootstrap, topic), delivered)
    # The restarted broker cleans the rest, from where its cleaner checkpoint says the last
    # finished cleaning ended.
    cleaned = finished_before_kill or broker.wait_for_log(rf"table-0: cleaned offsets below {mark} ", timeout=60)
    assert cleaned, broker.stderr_tail()
    records = _read_all(broker.bootstrap, topic)
    _check_cleaned(records, delivered, cleaned)
    leftovers = [p.name for p in (broker.data_dir).rglob("*") if p.suffix in (".cleaned", ".swap")]
    assert leftovers == []
    broker.stop()
