"""Group timers with real librdkafka consumers (issue 12).

A consumer joins a group that already has a member, and the first member's application is slow
to poll (its rebalance callback runs only from poll), so it rejoins only after the newcomer has
waited in JoinGroup longer than its session timeout, though well within the rebalance timeout
(`max.poll.interval.ms`). The broker used to keep the newcomer's passed session deadline as its
next deadline without ever acting on it: the shard's timer fired again at once, forever, nesting
deeper each time until the process aborted with a stack overflow, taking every client's
connection with it. Now the waiting member's session is renewed (as Kafka does for a member
awaiting its join), the group completes the rebalance, and both members consume.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer

from spate_helpers import create_topic, produce_confluent

PARTITIONS = 4


def consumer(bootstrap: str, group: str, name: str) -> Consumer:
    # The settings of the scenario in issue 12.
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "session.timeout.ms": 6000,
            "max.poll.interval.ms": 20000,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )


def test_a_member_slow_to_poll_while_another_waits_in_join_past_its_session(broker, topic):
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce_confluent(
        broker.bootstrap,
        topic,
        [{"value": f"v{i}".encode(), "partition": i % PARTITIONS} for i in range(40)],
    )
    group = f"slow-poll-{uuid.uuid4().hex[:8]}"
    first = consumer(broker.bootstrap, group, "first")
    second = consumer(broker.bootstrap, group, "second")
    try:
        first.subscribe([topic])
        deadline = time.monotonic() + 30
        while not first.assignment():
            first.poll(0.2)
            assert time.monotonic() < deadline, "the first member never got an assignment"
        assert len(first.assignment()) == PARTITIONS

        # The second joins; the first is polled only between the second's 10 s polls, so it
        # rejoins about 10 s later while the second waits in JoinGroup (session 6 s).
        second.subscribe([topic])
        got_first, got_second = [], []
        started = time.monotonic()
        while time.monotonic() - started < 45 and not (first.assignment() and second.assignment()):
            message = first.poll(0)
            if message is not None and message.error() is None:
                got_first.append(message.value())
            message = second.poll(10)
            if message is not None and message.error() is None:
                got_second.append(message.value())
            assert broker.alive(), (
                f"the broker died during the rebalance (exit {broker.proc.returncode})\n"
                f"{broker.stderr_tail()}"
            )
        waited = time.monotonic() - started
        assert first.assignment() and second.assignment(), (
            f"after {waited:.0f} s: first {first.assignment()}, second {second.assignment()}"
        )
        owned = {tp.partition for tp in first.assignment()} | {
            tp.partition for tp in second.assignment()
        }
        assert owned == set(range(PARTITIONS))
        assert len(first.assignment()) + len(second.assignment()) == PARTITIONS

        # Both go on consuming; the broker keeps serving.
        deadline = time.monotonic() + 20
        while len(set(got_first) | set(got_second)) < 40 and time.monotonic() < deadline:
            for c, into in ((first, got_first), (second, got_second)):
                m = c.poll(0.2)
                if m is not None and m.error() is None:
                    into.append(m.value())
        assert got_second, "the second member consumed nothing"
        assert len(set(got_first) | set(got_second)) == 40
        assert "still due" not in broker.stderr_text(), broker.stderr_tail()
        assert broker.alive()
    finally:
        first.close()
        second.close()
