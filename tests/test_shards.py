"""Thread-per-core: a broker started with `--cores 2` runs two executors, hands connections to
both, and serves every request of every connection as one shard would: produce, consume,
groups, a clean restart. Configuration mistakes are refused with a message naming them."""

import os
import threading

import pytest
from conftest import _start_broker
from confluent_kafka import Consumer, Producer
from kafka import KafkaConsumer, KafkaProducer
from spate_helpers import consume_all_confluent, create_topic, run_spate

PARTITIONS = 4

pytestmark = pytest.mark.skipif(
    (os.cpu_count() or 1) < 2, reason="--cores 2 needs two CPUs to pin its executors to"
)


@pytest.fixture
def sharded(tmp_path):
    b = _start_broker(tmp_path / "broker", ["--cores", "2"])
    yield b
    if b.alive():
        b.stop()
    else:
        pytest.fail(f"broker died during the test\n--- stderr tail ---\n{b.stderr_tail()}", pytrace=False)


def test_two_shards_serve_many_connections_exactly_once(sharded, topic):
    assert sharded.wait_for_log(r"listening on .* 2 shards", timeout=10), sharded.stderr_tail()
    create_topic(sharded.bootstrap, topic, PARTITIONS)

    # Four producers at once, two libraries: their connections land on both shards.
    per_producer = 300
    errors = []

    def confluent_producer(n):
        p = Producer({"bootstrap.servers": sharded.bootstrap, "acks": "all", "linger.ms": 2})
        for i in range(per_producer):
            p.produce(topic, key=f"c{n}-{i}".encode(), value=f"c{n}-{i}".encode(),
                      on_delivery=lambda err, msg: err and errors.append(str(err)))
            p.poll(0)
        assert p.flush(30) == 0

    def kafka_python_producer(n):
        p = KafkaProducer(bootstrap_servers=sharded.bootstrap, acks="all")
        futures = [p.send(topic, key=f"k{n}-{i}".encode(), value=f"k{n}-{i}".encode())
                   for i in range(per_producer)]
        for f in futures:
            f.get(timeout=30)
        p.close()

    threads = [threading.Thread(target=confluent_producer, args=(n,)) for n in range(2)]
    threads += [threading.Thread(target=kafka_python_producer, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    total = 4 * per_producer

    got = consume_all_confluent(sharded.bootstrap, topic, PARTITIONS, expected=total)
    values = sorted(m.value() for msgs in got.values() for m in msgs)
    expected = sorted(f"{lib}{n}-{i}".encode() for lib in "ck" for n in range(2) for i in range(per_producer))
    assert values == expected
    for p, msgs in got.items():
        assert [m.offset() for m in msgs] == list(range(len(msgs))), f"partition {p} offsets"

    # A consumer group of two members (their coordinator connections may sit on either shard)
    # splits the partitions and reads every record once; its commits are fetched back.
    group = f"{topic}-group"
    consumed = []
    lock = threading.Lock()

    def member():
        c = KafkaConsumer(topic, bootstrap_servers=sharded.bootstrap, group_id=group,
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          consumer_timeout_ms=8000)
        for record in c:
            with lock:
                consumed.append(record.value)
            c.commit()
        c.close()

    members = [threading.Thread(target=member) for _ in range(2)]
    for m in members:
        m.start()
    for m in members:
        m.join(90)
    assert sorted(consumed) == expected, f"group consumed {len(consumed)} of {total}"

    c = Consumer({"bootstrap.servers": sharded.bootstrap, "group.id": group})
    from confluent_kafka import TopicPartition
    committed = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    c.close()
    assert {tp.partition: tp.offset for tp in committed} == {p: len(got[p]) for p in range(PARTITIONS)}


def test_two_shards_restart_cleanly_and_keep_the_records(sharded, topic):
    create_topic(sharded.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": sharded.bootstrap, "acks": "all"})
    for i in range(200):
        p.produce(topic, value=str(i).encode(), partition=i % 2)
    assert p.flush(30) == 0
    # Hold connections open on both shards while the broker stops.
    idle = [Consumer({"bootstrap.servers": sharded.bootstrap, "group.id": f"idle-{n}"}) for n in range(3)]
    for c in idle:
        c.list_topics(timeout=10)
    sharded.restart()  # asserts a clean exit 0 within the stop timeout
    for c in idle:
        c.close()
    got = consume_all_confluent(sharded.bootstrap, topic, 2, expected=200)
    assert sorted(int(m.value()) for msgs in got.values() for m in msgs) == list(range(200))


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--cores", "0"], "must be at least 1"),
        (["--cores", "2", "--cpu", "1"], "--cpu pins a single shard"),
        (["--cores", "100000"], "this process may run on"),
    ],
)
def test_bad_shard_settings_are_refused_with_a_message(tmp_path, args, problem):
    cp = run_spate("server", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0", *args)
    assert cp.returncode != 0
    assert problem in cp.stderr, cp.stderr
