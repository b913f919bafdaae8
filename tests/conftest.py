"""Shared fixtures for Spate's integration suite.

Every test talks to a real `spate server` process started from the binary named by
$SPATE_BIN (default: <repo>/target/release/spate), on a free port, with a fresh
data directory. At teardown the broker gets SIGTERM and must exit 0. $SPATE_SERVER_ARGS adds
flags to every broker a test starts without its own shard flags: `just test` runs the suite
again with `--cores 1`, so every client test runs against one shard as well as against the
default (one shard per CPU).

On a failing test, the tail of the broker's stderr is attached to the report.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SPATE_BIN = Path(os.environ.get("SPATE_BIN", REPO / "target" / "release" / "spate"))

SERVER_ARGS = os.environ.get("SPATE_SERVER_ARGS", "").split()

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0

# Every broker started in this session, so a crashed test run never leaks processes.
_ALL_BROKERS: list["Broker"] = []


def spate_bin() -> Path:
    if not SPATE_BIN.is_file() or not os.access(SPATE_BIN, os.X_OK):
        pytest.fail(
            f"spate binary not found or not executable at {SPATE_BIN}: "
            "build it with `cargo build --release -p spate` or point SPATE_BIN at it",
            pytrace=False,
        )
    return SPATE_BIN


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "<no output file>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty>"


class Broker:
    """One `spate server` process; stop() and restart() keep the port and data dir."""

    def __init__(self, workdir: Path, extra_args: list[str] | None = None):
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.extra_args = list(extra_args or [])
        if not {"--cores", "--cpu"} & set(self.extra_args):
            self.extra_args += SERVER_ARGS
        self.proc: subprocess.Popen | None = None
        self.generation = 0
        self.stderr_path = workdir / "broker-0.stderr"
        self.stdout_path = workdir / "broker-0.stdout"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "Broker":
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.stderr_path = self.workdir / f"broker-{self.generation}.stderr"
        self.stdout_path = self.workdir / f"broker-{self.generation}.stdout"
        self.generation += 1
        cmd = [
            str(spate_bin()),
            "server",
            "--listen",
            self.bootstrap,
            "--data-dir",
            str(self.data_dir),
            *self.extra_args,
        ]
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env
            )
        if self not in _ALL_BROKERS:
            _ALL_BROKERS.append(self)
        self._wait_ready(cmd)
        return self

    def _wait_ready(self, cmd: list[str]) -> None:
        ready_line = f"listening on {self.bootstrap}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(
                    f"broker exited with code {rc} before becoming ready\n"
                    f"command: {' '.join(cmd)}\n--- stderr tail ---\n{self.stderr_tail()}",
                    pytrace=False,
                )
            # Only the broker's own line says it is ready: a connection may still reach the
            # listening socket of the broker that stopped a moment ago (its io_uring is torn
            # down asynchronously), which then vanishes before this one binds.
            if ready_line in self._output():
                return
            time.sleep(0.05)
        self._kill()
        pytest.fail(
            f"broker did not print {ready_line!r} within "
            f"{READY_TIMEOUT_S:.0f}s\ncommand: {' '.join(cmd)}\n"
            f"--- stderr tail ---\n{self.stderr_tail()}",
            pytrace=False,
        )

    def stop(self) -> int:
        """SIGTERM the broker, wait for it, assert it exited 0. Returns the exit code."""
        assert self.proc is not None, "broker was never started"
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            pytest.fail(
                f"broker had already exited (code {rc}) before SIGTERM\n"
                f"--- stderr tail ---\n{self.stderr_tail()}",
                pytrace=False,
            )
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill()
            pytest.fail(
                f"broker did not exit within {STOP_TIMEOUT_S:.0f}s of SIGTERM\n"
                f"--- stderr tail ---\n{self.stderr_tail()}",
                pytrace=False,
            )
        assert rc == 0, (
            f"broker exited with code {rc} after SIGTERM (expected a clean 0)\n"
            f"--- stderr tail ---\n{self.stderr_tail()}"
        )
        return rc

    def restart(self) -> "Broker":
        """Clean stop (asserting exit 0), then start again on the same port and data dir."""
        self.stop()
        return self.start()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- output ----------------------------------------------------------------------------

    def _output(self) -> str:
        text = ""
        for p in (self.stderr_path, self.stdout_path):
            try:
                text += p.read_text(errors="replace")
            except FileNotFoundError:
                pass
        return text

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, lines: int = 60) -> str:
        return tail(self.stderr_path, lines)

    def wait_for_log(self, pattern: str, since: int = 0, timeout: float = 5.0) -> str | None:
        """Wait until stderr (from byte offset `since`) has a line matching `pattern`
        (case-insensitive regex); returns the line or None."""
        rx = re.compile(pattern, re.IGNORECASE)
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr_text()[since:]
            for line in text.splitlines():
                if rx.search(line):
                    return line
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def stderr_size(self) -> int:
        return len(self.stderr_text())


def _start_broker(workdir: Path, extra_args: list[str] | None = None) -> Broker:
    return Broker(workdir, extra_args).start()


@pytest.fixture
def broker(tmp_path):
    """A fresh broker for one test; SIGTERMed at teardown, must exit 0."""
    b = _start_broker(tmp_path / "broker")
    yield b
    if b.alive():
        b.stop()
    else:
        rc = b.proc.returncode if b.proc else None
        pytest.fail(
            f"broker died during the test (exit code {rc})\n"
            f"--- stderr tail ---\n{b.stderr_tail()}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory):
    """One broker shared by the tests of a module (e.g. a sequence of abuse)."""
    b = _start_broker(tmp_path_factory.mktemp("broker"))
    yield b
    if b.alive():
        b.stop()
    else:
        rc = b.proc.returncode if b.proc else None
        pytest.fail(
            f"broker died during the module (exit code {rc})\n"
            f"--- stderr tail ---\n{b.stderr_tail()}",
            pytrace=False,
        )


@pytest.fixture
def topic(request):
    return unique_topic(request.node.name.replace("[", "-").replace("]", "").replace("_", "-"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        funcargs = getattr(item, "funcargs", {}) or {}
        for name in ("broker", "module_broker"):
            b = funcargs.get(name)
            if isinstance(b, Broker):
                rep.sections.append(
                    (f"{name} stderr (tail, {b.stderr_path})", b.stderr_tail(80))
                )


def pytest_sessionfinish(session, exitstatus):
    for b in _ALL_BROKERS:
        b._kill()
