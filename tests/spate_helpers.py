"""Helpers shared by the integration tests (client construction, consume-all loops, CLI runner)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

try:
    import confluent_kafka  # noqa: F401
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:  # a missing client is a failure, never a skip
    pytest.fail(
        f"confluent-kafka is not importable ({e}); install it with pip install 'confluent-kafka>=2,<3'",
        pytrace=False,
    )

from conftest import spate_bin


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"required tool `{name}` is not on PATH ({hint})", pytrace=False)
    return path


def create_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0) -> None:
    """Create a topic with the confluent AdminClient and assert it succeeded."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    assert set(futures) == {topic}
    try:
        assert futures[topic].result(timeout=timeout) is None
    except KafkaException as e:
        pytest.fail(f"CreateTopics({topic!r}, partitions={partitions}) failed: {e}", pytrace=False)
    # The topic must now be visible in metadata with the partition count we asked for.
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            if all(p.leader == 1 for p in t.partitions.values()):
                return
        if time.monotonic() > deadline:
            pytest.fail(
                f"topic {topic!r} not visible with {partitions} partitions led by node 1 "
                f"{timeout:.0f}s after CreateTopics: {t and (t.error, {i: p.leader for i, p in t.partitions.items()})}",
                pytrace=False,
            )
        time.sleep(0.2)


def produce_confluent(bootstrap: str, topic: str, records, acks: str = "all", timeout: float = 60.0):
    """Produce `records` (iterable of dicts with key/value/headers/timestamp) and return the
    delivery reports as a list of (index, partition, offset), in record order.
    Fails the test on any delivery error."""
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "linger.ms": 5,
            "enable.idempotence": False,
            "message.timeout.ms": int(timeout * 1000),
        }
    )
    reports: dict[int, tuple[int, int]] = {}
    errors: list[str] = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append(f"record {i}: {err}")
            else:
                reports[i] = (msg.partition(), msg.offset())

        return cb

    n = 0
    for i, r in enumerate(records):
        kwargs = {"value": r.get("value"), "key": r.get("key"), "on_delivery": on_delivery(i)}
        if r.get("headers") is not None:
            kwargs["headers"] = r["headers"]
        if r.get("timestamp") is not None:
            kwargs["timestamp"] = r["timestamp"]
        if r.get("partition") is not None:
            kwargs["partition"] = r["partition"]
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        n += 1
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} of {n} records still undelivered after {timeout}s flush"
    assert not errors, f"{len(errors)} delivery errors, first ones: {errors[:5]}"
    assert len(reports) == n, f"got {len(reports)} delivery reports for {n} records"
    return [(i, *reports[i]) for i in range(n)]


def consume_all_confluent(
    bootstrap: str, topic: str, partitions: int, expected: int, timeout: float = 60.0, group: str | None = None
):
    """Read every partition from the beginning (manual assignment) until `expected` records
    arrived (or timeout). Returns {partition: [Message, ...]} in arrival order."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"verify-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    try:
        c.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(partitions)])
        got: dict[int, list] = {p: [] for p in range(partitions)}
        count = 0
        errors = []
        deadline = time.monotonic() + timeout
        while count < expected and time.monotonic() < deadline:
            batch = c.consume(num_messages=1000, timeout=0.5)
            for m in batch:
                if m.error() is not None:
                    errors.append(str(m.error()))
                    continue
                got.setdefault(m.partition(), []).append(m)
                count += 1
        assert not errors, f"consumer errors: {errors[:5]}"
        assert count == expected, (
            f"consumed {count} of {expected} records from {topic!r} within {timeout:.0f}s "
            f"(per partition: { {p: len(v) for p, v in got.items()} })"
        )
        # Linger briefly: nothing beyond the expected records may show up.
        extra = [m for m in c.consume(num_messages=100, timeout=0.5) if m.error() is None]
        assert not extra, f"{len(extra)} unexpected extra records, first at {extra[0].partition()}/{extra[0].offset()}"
        return got
    finally:
        c.close()


def run_spate(*args: str, input: str | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run the spate CLI; returns the CompletedProcess (text mode). Fails on a hang."""
    cmd = [str(spate_bin()), *args]
    try:
        return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"`{' '.join(cmd)}` did not finish within {timeout:.0f}s\n"
            f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}",
            pytrace=False,
        )


def describe(cp: subprocess.CompletedProcess) -> str:
    return f"exit={cp.returncode}\n--- stdout ---\n{cp.stdout}\n--- stderr ---\n{cp.stderr}"


def port_is_free(host: str, port: int) -> bool:
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def sigkill_broker(broker, port_timeout: float = 5.0) -> None:
    """SIGKILL a running `Broker` (a crash: no shutdown path runs), reap it, and wait until its
    port can be bound again, so that `broker.start()` can follow at once.

    The wait is needed: after SIGKILL the io_uring shell's listening socket outlives the reaped
    process by a few (5-20) ms, still in LISTEN and even accepting connections (the ring is torn
    down asynchronously and its pending accept holds the socket). A broker started on the same
    port in that window exits with "Address already in use", and conftest's readiness check can
    mistake the dying listener for the new broker."""
    assert broker.alive(), (
        f"broker died on its own before the SIGKILL (exit {broker.proc.returncode})\n"
        f"{broker.stderr_tail()}"
    )
    broker.proc.kill()
    broker.proc.wait(timeout=10)
    deadline = time.monotonic() + port_timeout
    while not port_is_free(broker.host, broker.port):
        if time.monotonic() > deadline:
            pytest.fail(
                f"port {broker.port} still bound {port_timeout:.0f}s after the broker was killed",
                pytrace=False,
            )
        time.sleep(0.005)
