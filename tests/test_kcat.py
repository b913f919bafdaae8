"""kcat (librdkafka's command-line client): metadata listing, plain and keyed produce/consume."""

import re
import subprocess

import pytest

from spate_helpers import require_tool


@pytest.fixture(scope="module")
def kcat():
    return require_tool("kcat", "install it with `apt-get install kcat`")


def run_kcat(kcat, args, input=None, timeout=30):
    cmd = [kcat, *args]
    try:
        cp = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"`{' '.join(cmd)}` hung for {timeout}s; stdout={e.stdout!r} stderr={e.stderr!r}", pytrace=False)
    assert cp.returncode == 0, f"`{' '.join(cmd)}` exited {cp.returncode}\nstdout:\n{cp.stdout}\nstderr:\n{cp.stderr}"
    return cp


def test_kcat_produce_list_consume(broker, topic, kcat):
    b = broker.bootstrap
    lines = [f"line {i} " + "x" * (i % 17) for i in range(200)] + ["last line"]
    sent = lines
    run_kcat(kcat, ["-P", "-b", b, "-t", topic], input="\n".join(lines) + "\n")

    md = run_kcat(kcat, ["-L", "-b", b]).stdout
    assert re.search(rf"^\s*broker 1 at {re.escape(b)}\b", md, re.M), f"broker 1 at {b} not in metadata:\n{md}"
    assert re.search(rf'^\s*topic "{re.escape(topic)}" with 1 partitions', md, re.M), f"topic {topic} missing:\n{md}"
    assert re.search(r"^\s*partition 0, leader 1, replicas: 1, isrs: 1", md, re.M), f"partition 0 line missing:\n{md}"

    out = run_kcat(kcat, ["-C", "-b", b, "-t", topic, "-o", "beginning", "-e", "-q"]).stdout
    assert out.splitlines() == sent


def test_kcat_keyed_produce_and_format(broker, topic, kcat):
    b = broker.bootstrap
    pairs = [(f"k{i}", f"v{i}") for i in range(50)] + [("same", "a"), ("same", "b"), ("", "empty-key")]
    data = "".join(f"{k}:{v}\n" for k, v in pairs)
    run_kcat(kcat, ["-P", "-b", b, "-t", topic, "-K:"], input=data)

    out = run_kcat(kcat, ["-C", "-b", b, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k=%s\n"]).stdout
    assert out.splitlines() == [f"{k}={v}" for k, v in pairs]

    # Offsets and partition as kcat sees them: single auto-created partition, dense from 0.
    out = run_kcat(kcat, ["-C", "-b", b, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p:%o\n"]).stdout
    assert out.splitlines() == [f"0:{i}" for i in range(len(pairs))]
