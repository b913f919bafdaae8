"""Durability across a clean restart: acks=all records survive SIGTERM + restart with the same
offsets and content, and new records continue the offsets where each partition left off."""

import time

from spate_helpers import consume_all_confluent, create_topic, produce_confluent

PARTITIONS = 2


def records(prefix: str, n: int):
    return [
        {"key": f"{prefix}-key-{i}".encode(), "value": f"{prefix}-value-{i}".encode() * (1 + i % 3),
         "headers": [("i", str(i).encode())], "timestamp": 1_700_000_000_000 + i}
        for i in range(n)
    ]


def snapshot(got):
    return {
        (p, m.offset()): (m.key(), m.value(), m.headers(), m.timestamp()[1])
        for p, msgs in got.items()
        for m in msgs
    }


def test_records_survive_restart_and_offsets_continue(broker, topic):
    create_topic(broker.bootstrap, topic, PARTITIONS)

    first = records("a", 500)
    reports = produce_confluent(broker.bootstrap, topic, first, acks="all")
    expected = {(p, off): (first[i]["key"], first[i]["value"], first[i]["headers"], first[i]["timestamp"])
                for i, p, off in reports}
    end = {p: sum(1 for _, rp, _ in reports if rp == p) for p in range(PARTITIONS)}
    assert all(end[p] > 0 for p in range(PARTITIONS)), f"records did not spread over both partitions: {end}"
    for p in range(PARTITIONS):
        assert sorted(off for _, rp, off in reports if rp == p) == list(range(end[p])), f"partition {p}"

    before = snapshot(consume_all_confluent(broker.bootstrap, topic, PARTITIONS, expected=500))
    assert before == expected

    port = broker.port
    broker.restart()  # asserts the SIGTERM exit code was 0
    assert broker.port == port

    after = snapshot(consume_all_confluent(broker.bootstrap, topic, PARTITIONS, expected=500))
    missing = sorted(set(expected) - set(after))
    assert not missing, f"{len(missing)} acknowledged records lost across restart, e.g. {missing[:5]}"
    assert after == expected

    second = records("b", 100)
    reports2 = produce_confluent(broker.bootstrap, topic, second, acks="all")
    for p in range(PARTITIONS):
        offs = [off for _, rp, off in reports2 if rp == p]
        assert offs == list(range(end[p], end[p] + len(offs))), (
            f"partition {p}: offsets after restart should continue from {end[p]}, got {offs[:10]}..."
        )
    expected.update({(p, off): (second[i]["key"], second[i]["value"], second[i]["headers"], second[i]["timestamp"])
                     for i, p, off in reports2})

    everything = snapshot(consume_all_confluent(broker.bootstrap, topic, PARTITIONS, expected=600))
    assert everything == expected


def test_a_data_directory_of_another_node_is_refused_and_left_unchanged(broker, topic):
    """meta.properties (Kafka's file) names the node and cluster a data directory belongs to;
    starting another node id on it fails with a message naming both, before anything changes."""
    from spate_helpers import run_spate

    create_topic(broker.bootstrap, topic, 1)
    produce_confluent(broker.bootstrap, topic, records("a", 10), acks="all")
    broker.stop()
    meta = (broker.data_dir / "meta.properties").read_text()
    assert "node.id=1" in meta and "version=1" in meta
    cluster = [line.split("=", 1)[1] for line in meta.splitlines() if line.startswith("cluster.id=")]
    assert len(cluster) == 1 and len(cluster[0]) == 22, meta
    before = sorted((p.relative_to(broker.data_dir), p.stat().st_size) for p in broker.data_dir.rglob("*") if p.is_file())

    cp = run_spate("server", "--data-dir", str(broker.data_dir), "--listen", "127.0.0.1:0", "--node-id", "2")
    assert cp.returncode != 0
    assert "belongs to node 1" in cp.stderr and "--node-id 1" in cp.stderr, cp.stderr
    after = sorted((p.relative_to(broker.data_dir), p.stat().st_size) for p in broker.data_dir.rglob("*") if p.is_file())
    assert after == before

    broker.start()  # the right node still starts, with its records
    got = consume_all_confluent(broker.bootstrap, topic, 1, expected=10)
    assert sum(len(m) for m in got.values()) == 10


def test_leader_epochs_rise_across_restarts_and_a_consumer_reads_on_without_truncation(broker, topic):
    """Each start-up leads the partition in the next leader epoch (as a KRaft broker that
    restarts does); batches carry it. A librdkafka consumer that stays up across the restart
    sees the new epoch, validates its position (KIP-320: OffsetForLeaderEpoch) and reads on from
    where it was: no record again, none skipped, no truncation reported."""
    from confluent_kafka import Consumer, TopicPartition

    create_topic(broker.bootstrap, topic, 1)
    produce_confluent(broker.bootstrap, topic, records("a", 5), acks="all")
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": f"{topic}-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": 500,
    })
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    problems = []

    def read_until(count, seconds):
        deadline = time.monotonic() + seconds
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                problems.append(str(msg.error()))
                continue
            got.append((msg.offset(), msg.leader_epoch(), msg.value()))

    try:
        read_until(5, 30)
        assert [(o, e) for o, e, _ in got] == [(i, 0) for i in range(5)], got
        broker.restart()
        produce_confluent(broker.bootstrap, topic, records("b", 5), acks="all")
        read_until(10, 60)
        time.sleep(1)  # anything read twice would come now
        read_until(11, 1)
    finally:
        consumer.close()
    assert [(o, e) for o, e, _ in got] == [(i, 0) for i in range(5)] + [(i, 1) for i in range(5, 10)], got
    assert [v for _, _, v in got[5:]] == [r["value"] for r in records("b", 5)]
    assert not [p for p in problems if "truncat" in p.lower()], problems

    # One more start-up: epoch 2, and the earlier batches keep theirs.
    broker.restart()
    produce_confluent(broker.bootstrap, topic, records("c", 1), acks="all")
    msgs = consume_all_confluent(broker.bootstrap, topic, 1, expected=11)
    assert [m.leader_epoch() for m in msgs[0]] == [0] * 5 + [1] * 5 + [2]
