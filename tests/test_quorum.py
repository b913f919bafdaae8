"""The controller quorum (issue 15): three `spate server` processes started with
--controller-quorum elect one leader over their controller listeners, replicate the metadata
log and commit the cluster id on every voter. A killed leader is replaced in a later epoch; the
voter that comes back catches up from its journal and the leader without deposing it (pre-vote).
Bad quorum settings are refused with a message that names the problem."""

from __future__ import annotations

import re
import time

import pytest

from conftest import Broker, free_port
from spate_helpers import describe, run_spate, sigkill_broker

VOTERS = 3


def quorum_of(cp) -> dict:
    """What `spate cluster quorum` printed."""
    out = cp.stdout
    leader = re.search(r"^LeaderId: (\S+)$", out, re.M)
    epoch = re.search(r"^LeaderEpoch: (\d+)$", out, re.M)
    hw = re.search(r"^HighWatermark: (\d+)$", out, re.M)
    voters = {int(v): (int(e), int(lag)) for v, e, lag in re.findall(r"^  (\d+) log end (\d+) lag (\d+)$", out, re.M)}
    return {
        "leader": None if not leader or leader.group(1) == "none" else int(leader.group(1)),
        "epoch": int(epoch.group(1)) if epoch else None,
        "high_watermark": int(hw.group(1)) if hw else None,
        "voters": voters,
    }


def ask(node: Broker) -> dict:
    cp = run_spate("cluster", "--bootstrap-server", node.bootstrap, "quorum")
    assert cp.returncode == 0, describe(cp)
    return quorum_of(cp)


def settled(nodes, timeout=30.0, not_leader=None, after_epoch=-1):
    """Waits until every running node names the same leader in the same epoch, and that leader
    reports every running voter caught up and everything in its log committed (a new leader's
    entry is replicated before its own journal write may have finished); returns (leader id, its
    answer)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        running = [n for n in nodes if n.alive()]
        answers = {n.node_id: ask(n) for n in running}
        seen = answers
        leaders = {(a["leader"], a["epoch"]) for a in answers.values()}
        if len(leaders) == 1:
            leader, epoch = leaders.pop()
            if leader is not None and leader != not_leader and epoch > after_epoch and leader in answers:
                view = answers[leader]
                running_ids = {n.node_id for n in running}
                caught_up = all(view["voters"].get(i, (0, 1))[1] == 0 for i in running_ids)
                own_end = view["voters"].get(leader, (None, 0))[0]
                if view["high_watermark"] and caught_up and view["high_watermark"] == own_end:
                    return leader, view
        time.sleep(0.3)
    pytest.fail(f"the quorum did not settle within {timeout:.0f}s: {seen}", pytrace=False)


def start_cluster(tmp_path, extra=(), per_node=lambda node_id: []):
    """Three voters; `per_node(node_id)` adds arguments of one node's own."""
    ports = [free_port() for _ in range(VOTERS)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{port}" for i, port in enumerate(ports))
    nodes = []
    for i in range(VOTERS):
        args = ["--node-id", str(i + 1), "--controller-quorum", voters, *extra, *per_node(i + 1)]
        node = Broker(tmp_path / f"node{i + 1}", args)
        node.node_id = i + 1
        nodes.append(node)
    for node in nodes:
        node.start()
    return nodes


def start_registered(tmp_path, session_ms: int | None = None, timeout: float = 30.0, extra=(), per_node=lambda node_id: []):
    """A cluster whose brokers heartbeat every 300 ms (and whose sessions last `session_ms`),
    once every node lists all three as registered."""
    extra = ["--override", "broker.heartbeat.interval.ms=300", *extra]
    if session_ms is not None:
        extra += ["--override", f"broker.session.timeout.ms={session_ms}"]
    nodes = start_cluster(tmp_path, extra, per_node)
    try:
        everyone = {n.node_id: n.port for n in nodes}
        for node in nodes:
            wait_listed(node, everyone, timeout)
    except BaseException:
        stop_all(nodes)
        raise
    return nodes


def stop_all(nodes):
    for node in nodes:
        if node.alive():
            node.stop()


@pytest.fixture
def cluster(tmp_path):
    nodes = start_cluster(tmp_path)
    yield nodes
    stop_all(nodes)


def cluster_view(node: Broker) -> tuple[dict, set, str | None]:
    """What `spate cluster describe` says on `node`: unfenced brokers (id -> port), fenced
    broker ids, and the Quorum line."""
    cp = run_spate("cluster", "--bootstrap-server", node.bootstrap, "describe")
    assert cp.returncode == 0, describe(cp)
    rows = re.findall(r"^  (\d+) [^:\s]+:(\d+)(?: rack: \S+)?(?: voter| broker-only)?( fenced)?$", cp.stdout, re.M)
    quorum = re.search(r"^Quorum: (.*)$", cp.stdout, re.M)
    live = {int(i): int(port) for i, port, fenced in rows if not fenced}
    fenced = {int(i) for i, _, f in rows if f}
    return live, fenced, quorum.group(1) if quorum else None


def listed(node: Broker) -> dict:
    """The unfenced brokers `spate cluster describe` lists on `node`: id -> port."""
    return cluster_view(node)[0]


def wait_listed(node: Broker, expected: dict, timeout: float) -> float:
    """Waits until `node` lists exactly `expected`; returns the seconds it took."""
    started = time.monotonic()
    seen = None
    while time.monotonic() < started + timeout:
        seen = listed(node)
        if seen == expected:
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"node {node.node_id} lists brokers {seen}, expected {expected} within {timeout:.0f}s", pytrace=False)


def test_brokers_register_a_silent_one_is_fenced_and_a_stopping_one_at_once(tmp_path):
    session_ms = 6000
    nodes = start_registered(tmp_path, session_ms)
    try:
        everyone = {n.node_id: n.port for n in nodes}
        # A crash: fenced once its session is over (after a new leader's grace, if it led).
        leader, view = settled(nodes)
        _, _, quorum_line = cluster_view(nodes[0])
        assert quorum_line == f"leader {leader}, epoch {view['epoch']}, voters 1,2,3", quorum_line
        sigkill_broker(nodes[2])
        wait_listed(nodes[0], {1: nodes[0].port, 2: nodes[1].port}, 3 * session_ms / 1000 + 10)
        assert cluster_view(nodes[0])[1] == {3}, "the crashed broker is listed as fenced"
        nodes[2].start()
        wait_listed(nodes[0], everyone, 30)
        wait_listed(nodes[2], everyone, 30)
        # A controlled shutdown (SIGTERM, exit 0) is fenced at once, not a session later.
        leader, _ = settled(nodes)
        stopping = nodes[leader - 1]  # the hardest case: it leads the quorum too
        stopping.stop()
        rest = [n for n in nodes if n is not stopping]
        took = wait_listed(rest[0], {n.node_id: n.port for n in rest}, session_ms / 1000)
        print(f"a stopping broker was fenced {took:.2f} s after its exit")
        assert took < session_ms / 1000, took
        new_leader, _ = settled(nodes, not_leader=leader)
        assert new_leader != leader
    finally:
        stop_all(nodes)


def test_three_voters_elect_one_leader_and_commit_the_cluster_id_everywhere(cluster):
    leader, view = settled(cluster)
    assert set(view["voters"]) == {1, 2, 3}, view
    assert view["epoch"] >= 1
    # The first leader committed its cluster id; every voter logs the same one.
    ids = set()
    for node in cluster:
        line = node.wait_for_log(r"controller quorum: cluster id \S+ committed", timeout=10)
        assert line, f"node {node.node_id} never logged the committed cluster id:\n{node.stderr_tail()}"
        ids.add(re.search(r"cluster id (\S+) committed", line).group(1))
    assert len(ids) == 1, ids
    committed = ids.pop()
    # Every node takes the quorum's cluster id (their new data directories each had their own)
    # and keeps it across a restart.
    for node in cluster:
        wait_cluster_id(node, committed)
    cluster[0].restart()
    wait_cluster_id(cluster[0], committed)
    assert "mixed with another cluster" not in cluster[0].stderr_text()


def wait_cluster_id(node: Broker, expected: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        cp = run_spate("cluster", "--bootstrap-server", node.bootstrap, "describe")
        assert cp.returncode == 0, describe(cp)
        seen = re.search(r"^Cluster ID: (\S+)$", cp.stdout, re.M).group(1)
        if seen == expected:
            return
        time.sleep(0.2)
    pytest.fail(f"node {node.node_id} reports cluster id {seen}, not the quorum's {expected}", pytrace=False)


def test_a_killed_leader_is_replaced_in_a_later_epoch_and_returns_as_a_follower(cluster):
    leader, view = settled(cluster)
    epoch = view["epoch"]
    high_watermark = view["high_watermark"]
    sigkill_broker(cluster[leader - 1])
    new_leader, new_view = settled(cluster, not_leader=leader, after_epoch=epoch)
    assert new_leader != leader and new_view["epoch"] > epoch, new_view
    assert new_view["high_watermark"] > high_watermark, "the new leader commits an entry of its own term"

    # The old leader comes back from its journal: it follows, and its return does not start an
    # election (pre-vote), so the epoch stays.
    cluster[leader - 1].start()
    back_leader, back_view = settled(cluster)
    assert (back_leader, back_view["epoch"]) == (new_leader, new_view["epoch"]), back_view
    assert back_view["voters"][leader][1] == 0, back_view
    assert cluster[leader - 1].wait_for_log(r"term [1-9]\d* from the journal", timeout=5), (
        "the restarted voter did not read its term from its journal:\n" + cluster[leader - 1].stderr_tail()
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--controller-quorum", "1@127.0.0.1:x"], ["controller.quorum.voters", "1@127.0.0.1:x", "port"]),
        (["--controller-quorum", "1@127.0.0.1:19999,1@127.0.0.1:19998"], ["already listed"]),
        (
            ["--node-id", "4", "--controller-quorum", "1@127.0.0.1:19999", "--controller-listener", "127.0.0.1:19998"],
            ["--controller-listener is for voters", "node 4", "broker only"],
        ),
        (
            [
                "--controller-quorum",
                "1@127.0.0.1:19999",
                "--override",
                "broker.session.timeout.ms=1000",
                "--override",
                "broker.heartbeat.interval.ms=2000",
            ],
            ["broker.session.timeout.ms (1000)", "longer than broker.heartbeat.interval.ms (2000)"],
        ),
        (
            ["--controller-quorum", "1@127.0.0.1:19999", "--controller-listener", "127.0.0.1:19998"],
            ["--controller-listener", "not this node's entry"],
        ),
        (["--controller-listener", "127.0.0.1:19998"], ["needs --controller-quorum"]),
    ],
)
def test_bad_quorum_settings_are_refused_with_a_clear_error(tmp_path, args, words):
    cp = run_spate(
        "server", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "d"), *args, timeout=20
    )
    assert cp.returncode != 0, describe(cp)
    for word in words:
        assert word in cp.stderr, describe(cp)
    assert "panicked" not in cp.stderr, describe(cp)
