"""Crash test against the real broker: SIGKILL it at random moments while a confluent-kafka
producer (acks=all) is writing, restart it on the same data directory and port, and check after
every round that nothing acknowledged was lost, moved, reordered or duplicated.

The seed is printed (and can be forced with SPATE_CRASH_SEED=N) so a failure replays the same
kill delays; the rounds (SPATE_CRASH_ROUNDS, default 24) cycle through three producer modes:

- ``idem``:   enable.idempotence=true (max.in.flight 5, librdkafka's maximum for idempotence);
- ``plain1``: enable.idempotence=false, max.in.flight.requests.per.connection=1;
- ``plain5``: enable.idempotence=false, max.in.flight.requests.per.connection=5.

One round: a fresh producer writes unique values (``<round>:<mode>:<partition>:<seq>``, ``seq``
increasing per partition over the whole test) round-robin over 3 partitions; after a random
0.05-1.0 s the broker gets SIGKILL while requests are in flight; the producer keeps producing
while the broker is down; the broker is restarted (it must be ready within the fixture's normal
timeout and never log a panic or an ERROR line); the producer writes a little more, then
flushes. message.timeout.ms is short (5 s) so every round ends: a record whose delivery failed
is simply not acknowledged. Then the whole log is read back from offset 0 and checked. A fatal
producer error (for an idempotent producer, OUT_OF_ORDER_SEQUENCE_NUMBER: the broker's sequence
state disagrees with what it acknowledged, as when acknowledged batches are lost) fails the round,
after the log checks so the failure names the lost records. After a SIGKILL the test waits until
the port can be bound again before restarting (see `spate_helpers.sigkill_broker`). About 1.7 s
per round on a 2-core machine, ~40 s for the default 24 rounds.

What may be asserted, and why (every check holds for a correct single-node broker whose
acks=all answer means "fsynced"):

1. Dense offsets, from 0 to the high watermark, in every partition (the broker assigns offsets;
   a crash must not leave a hole or a repeat).
2. Every acknowledged record is in the log at exactly the offset its delivery report gave, with
   its value (durability: acks=all was answered only after fsync, so SIGKILL cannot take it back;
   and it checks, across all earlier rounds, that recovery never moves a record).
3. No phantom data: every value in the log is one the test produced.
4. Per partition, the delivery reports of one producer arrive with strictly increasing offsets
   (one connection per broker incarnation, requests answered in order, appended in order).
5. ``idem`` rounds: every value of the round appears at most once in the log, acknowledged or
   not, and the round's values appear in strictly increasing ``seq`` order per partition. The
   broker dedupes a retried batch by (producer id, epoch, sequence), using producer state
   rebuilt from batch headers on recovery, and refuses out-of-order sequences; librdkafka never
   re-sends a message whose delivery it reported failed. So a batch that was written before the
   kill but not acknowledged, then retried after the restart, must be answered as a duplicate,
   not appended twice. Acknowledged values hence appear exactly once.
6. ``plain1``/``plain5`` rounds: only at-least-once for acknowledged values. Without idempotence
   a batch written (even fsynced) before the kill, but not acknowledged, is retried after the
   restart and legitimately appended a second time; the delivery report then names the second
   copy's offset (checked by 2). Unacknowledged values may appear any number of times.
7. ``idem`` and ``plain1`` rounds: acknowledged values appear in the log in produce order per
   partition (their reported offsets increase with ``seq``). Kafka promises this for idempotent
   producers and for max.in.flight=1; with ``plain5`` a retried batch may legitimately land after
   a later one, so order is not asserted there.
"""

from __future__ import annotations

import gc
import os
import random
import re
import time
from collections import Counter

from spate_helpers import create_topic, sigkill_broker

import confluent_kafka
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

PARTITIONS = 3
MODES = ("idem", "plain1", "plain5")
ROUNDS = int(os.environ.get("SPATE_CRASH_ROUNDS", "24"))
# Records per second the producer aims at (all partitions together): enough that several
# batches are in flight at the kill, few enough that reading the whole log back every round
# stays cheap on a 2-core machine.
RATE = 3000
AFTER_RESTART_S = 0.2
MESSAGE_TIMEOUT_MS = 5000

VALUE_RX = re.compile(r"^(\d+):(idem|plain1|plain5):(\d+):(\d+)$")


def producer_config(bootstrap: str, mode: str) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": mode == "idem",
        "max.in.flight.requests.per.connection": 1 if mode == "plain1" else 5,
        "linger.ms": 2,
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
        "request.timeout.ms": 3000,
        "socket.timeout.ms": 3000,
        "retry.backoff.ms": 20,
        "retry.backoff.max.ms": 100,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 100,
        "topic.metadata.refresh.interval.ms": 1000,
        "log_level": 2,  # the connection-refused noise while the broker is down is expected
    }


def is_fatal(err: KafkaError) -> bool:
    return err.fatal() or err.code() == KafkaError._FATAL


class Round:
    """One producer session: what it sent and what came back."""

    def __init__(self, index: int, mode: str, next_seq: dict[int, int]):
        self.index = index
        self.mode = mode
        self.next_seq = next_seq  # shared across rounds, advanced here
        self.sent: set[bytes] = set()
        self.acked: list[tuple[int, int, bytes]] = []  # (partition, offset, value) in callback order
        self.failed: Counter = Counter()
        self.fatal = None  # a fatal producer error (idempotence: sequence desync with the broker)
        self.rr = 0

    def value(self, partition: int) -> bytes:
        seq = self.next_seq[partition]
        self.next_seq[partition] = seq + 1
        return f"{self.index:03d}:{self.mode}:{partition}:{seq:09d}".encode()

    def on_error(self, err):
        if err.fatal() and self.fatal is None:
            self.fatal = err

    def guard(self, fn, *args):
        """Call a producer method; a fatal error (raised by produce, poll or flush) is recorded
        and ends the round's producing, so the log checks still run and say what was lost."""
        try:
            return fn(*args)
        except KafkaException as e:
            if not is_fatal(e.args[0]):
                raise
            self.fatal = self.fatal or e.args[0]
            return None

    def on_delivery(self, err, msg):
        if err is not None:
            self.failed[err.name()] += 1
        else:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))

    def produce_for(self, producer: Producer, topic: str, seconds: float) -> None:
        """Produce at about RATE records/s for `seconds`, serving delivery reports."""
        start = time.monotonic()
        end = start + seconds
        sent_here = 0
        while self.fatal is None:
            now = time.monotonic()
            if now >= end:
                break
            due = int((now - start) * RATE) + 1
            while sent_here < due:
                p = self.rr % PARTITIONS
                v = self.value(p)
                try:
                    producer.produce(topic, value=v, partition=p, on_delivery=self.on_delivery)
                except BufferError:
                    self.next_seq[p] -= 1  # not handed over: this value was never sent
                    break
                except KafkaException as e:
                    self.next_seq[p] -= 1
                    if not is_fatal(e.args[0]):
                        raise
                    self.fatal = self.fatal or e.args[0]
                    return
                self.rr += 1
                self.sent.add(v)
                sent_here += 1
            self.guard(producer.poll, 0.002)


def read_log(bootstrap: str, topic: str, timeout: float = 30.0) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition, from offset 0 to the high watermark."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"crash-verify-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 20,
            "log_level": 2,
        }
    )
    try:
        marks = {}
        for p in range(PARTITIONS):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            assert low == 0, f"partition {p}: log start offset {low}, expected 0"
            marks[p] = high
        c.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(PARTITIONS)])
        got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        errors = []
        deadline = time.monotonic() + timeout
        while any(len(got[p]) < marks[p] for p in range(PARTITIONS)):
            assert time.monotonic() < deadline, (
                f"read {[len(got[p]) for p in range(PARTITIONS)]} of {marks} records within {timeout}s"
            )
            for m in c.consume(num_messages=10000, timeout=0.2):
                if m.error() is not None:
                    errors.append(str(m.error()))
                    continue
                got[m.partition()].append((m.offset(), m.value()))
            assert not errors, f"consumer errors: {errors[:5]}"
        return got
    finally:
        c.close()


def check_log(log, rounds: list[Round]) -> None:
    acked_total = 0
    for p in range(PARTITIONS):
        offsets = [o for o, _ in log[p]]
        assert offsets == list(range(len(offsets))), (
            f"partition {p}: offsets not dense from 0: first break at "
            f"{next(i for i, o in enumerate(offsets) if o != i)} "
            f"(around: {offsets[max(0, next(i for i, o in enumerate(offsets) if o != i) - 3):][:6]})"
        )

    values_at = {p: [v for _, v in log[p]] for p in range(PARTITIONS)}
    counts = Counter(v for p in range(PARTITIONS) for v in values_at[p])
    produced = set().union(*(r.sent for r in rounds))
    phantoms = [v for v in counts if v not in produced]
    assert not phantoms, f"{len(phantoms)} values in the log that no producer sent, e.g. {phantoms[:3]}"

    for r in rounds:
        last_offset = {p: -1 for p in range(PARTITIONS)}
        for p, off, v in r.acked:
            acked_total += 1
            assert off < len(values_at[p]), (
                f"round {r.index} ({r.mode}): acknowledged {v!r} at {p}/{off} is lost: "
                f"partition {p} ends at {len(values_at[p])}"
            )
            assert values_at[p][off] == v, (
                f"round {r.index} ({r.mode}): acknowledged {v!r} at {p}/{off}, "
                f"but the log holds {values_at[p][off]!r} there"
            )
            assert off > last_offset[p], (
                f"round {r.index} ({r.mode}): delivery reports for partition {p} went from offset "
                f"{last_offset[p]} back to {off}"
            )
            last_offset[p] = off
            assert VALUE_RX.match(v.decode()).group(3) == str(p)

        if r.mode in ("idem", "plain1"):
            for p in range(PARTITIONS):
                by_seq = sorted(
                    ((int(VALUE_RX.match(v.decode()).group(4)), off) for pp, off, v in r.acked if pp == p)
                )
                offs = [off for _, off in by_seq]
                assert offs == sorted(offs), (
                    f"round {r.index} ({r.mode}): acknowledged records of partition {p} are not in "
                    f"produce order in the log: (seq, offset) {by_seq[:20]}"
                )

        if r.mode == "idem":
            dups = sorted(v for v in r.sent if counts[v] > 1)
            assert not dups, (
                f"round {r.index} (idempotent): {len(dups)} values written more than once, e.g. "
                f"{[(d, counts[d], [(p, i) for p in range(PARTITIONS) for i, x in enumerate(values_at[p]) if x == d]) for d in dups[:3]]}"
            )
            prefix = f"{r.index:03d}:idem:".encode()
            for p in range(PARTITIONS):
                seqs = [
                    (off, int(VALUE_RX.match(v.decode()).group(4)))
                    for off, v in enumerate(values_at[p])
                    if v.startswith(prefix)
                ]
                bad = [(a, b) for a, b in zip(seqs, seqs[1:]) if b[1] <= a[1]]
                assert not bad, (
                    f"round {r.index} (idempotent): partition {p} holds the round's values out of "
                    f"sequence order, (offset, seq) pairs: {bad[:5]}"
                )
        else:
            missing = [v for _, _, v in r.acked if counts[v] < 1]
            assert not missing, f"round {r.index} ({r.mode}): acknowledged values missing: {missing[:5]}"


def check_output(text: str, what: str) -> None:
    bad = [line for line in text.splitlines() if re.search(r"panick|\bERROR\b", line)]
    assert not bad, f"{what} logged a panic or an ERROR:\n" + "\n".join(bad[:20])


def test_sigkill_during_acks_all_produce(broker, topic):
    seed = int(os.environ.get("SPATE_CRASH_SEED", random.randrange(1 << 32)))
    print(f"\ncrash test seed {seed} (replay with SPATE_CRASH_SEED={seed}), {ROUNDS} rounds")
    rng = random.Random(seed)
    create_topic(broker.bootstrap, topic, PARTITIONS)

    test_start = time.monotonic()
    next_seq = {p: 0 for p in range(PARTITIONS)}
    rounds: list[Round] = []
    torn = 0
    for i in range(ROUNDS):
        mode = MODES[i % len(MODES)]
        r = Round(i, mode, next_seq)
        rounds.append(r)
        delay = rng.uniform(0.05, 1.0)

        producer = Producer({**producer_config(broker.bootstrap, mode), "error_cb": r.on_error})
        r.produce_for(producer, topic, delay)
        sigkill_broker(broker)
        killed_stderr = broker.stderr_text()
        check_output(killed_stderr, f"broker incarnation {broker.generation - 1} (before SIGKILL)")

        # The producer keeps going while the broker is down: these queue up and go to the new
        # incarnation, as do the retries of whatever was in flight at the kill.
        r.produce_for(producer, topic, 0.05)
        t = time.monotonic()
        broker.start()  # fails the test unless ready within the normal timeout
        restart_s = time.monotonic() - t
        # start() may return on the first accepted connection; the ready line follows start-up's
        # log lines (a torn-tail WARN, say).
        assert broker.wait_for_log(r"listening on", timeout=10), broker.stderr_tail()
        startup = broker.stderr_text()
        check_output(startup, f"broker incarnation {broker.generation - 1} (restart after round {i})")
        torn += len(re.findall(r"\bWARN\b.*\btorn\b", startup))

        r.produce_for(producer, topic, AFTER_RESTART_S)
        left = r.guard(producer.flush, MESSAGE_TIMEOUT_MS / 1000 + 5)
        assert left == 0 or r.fatal, f"round {i}: {left} records neither delivered nor failed after the flush"
        del producer
        gc.collect()

        t = time.monotonic()
        log = read_log(broker.bootstrap, topic)
        read_s = time.monotonic() - t
        check_log(log, rounds)
        in_log = sum(1 for p in range(PARTITIONS) for _, v in log[p] if v in r.sent)
        print(
            f"round {i:2d} {mode:6s} kill at {delay:.3f}s: sent {len(r.sent)}, acked {len(r.acked)}, "
            f"failed {dict(r.failed) or 0}, in log {in_log} ({in_log - len(r.acked):+d}); "
            f"restart {restart_s:.2f}s, log "
            f"{[len(log[p]) for p in range(PARTITIONS)]} read in {read_s:.2f}s"
        )
        # After the log checks, which say more precisely what went wrong if anything was lost.
        assert r.fatal is None, (
            f"round {i} ({mode}): the producer hit a fatal error, which for an idempotent producer "
            f"means the broker's sequence state disagrees with what it acknowledged: {r.fatal}"
        )
        assert r.acked, f"round {i}: nothing was acknowledged in the whole round"

    # A last clean restart, and one more full check: the fixture's teardown SIGTERMs and
    # asserts exit 0.
    broker.restart()
    assert broker.wait_for_log(r"listening on", timeout=10), broker.stderr_tail()
    check_output(broker.stderr_text(), "broker after the final clean restart")
    assert not re.search(r"\bWARN\b.*\btorn\b", broker.stderr_text()), (
        "a clean restart after a clean stop truncated a tail:\n" + broker.stderr_tail()
    )
    check_log(read_log(broker.bootstrap, topic), rounds)

    elapsed = time.monotonic() - test_start
    acked = sum(len(r.acked) for r in rounds)
    print(f"{ROUNDS} rounds, {acked} records acknowledged, {torn} torn-tail warnings, {elapsed:.1f}s")
    assert acked > 0
