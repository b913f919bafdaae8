# Spate recipes. `just --list` shows them all.

set shell := ["bash", "-euo", "pipefail", "-c"]

spate_bin := justfile_directory() / "target" / "release" / "spate"

# List the recipes.
default:
    @just --list

# Build the release binaries.
build:
    cargo build --release

# Unit tests, then the integration suite against the real broker binary: once as it starts
# by default (one shard per CPU), once with a single shard (`--cores 1`; the leader-killing
# replication test then runs 5 rounds instead of 20).
test:
    cargo build --release --workspace --bins
    cargo test --release --workspace
    SPATE_BIN="{{spate_bin}}" python3 -m pytest -q tests/
    SPATE_BIN="{{spate_bin}}" SPATE_SERVER_ARGS="--cores 1" SPATE_KILL_ROUNDS=5 python3 -m pytest -q tests/

# Only the Python integration suite (expects an already-built binary); extra args go to pytest.
test-integration *ARGS:
    SPATE_BIN="{{spate_bin}}" python3 -m pytest -q tests/ {{ARGS}}

# Run the broker, e.g. `just run --listen 127.0.0.1:9092 --data-dir ./spate-data`.
run *ARGS:
    cargo run --release -p spate -- server {{ARGS}}

# A local cluster of brokers on 127.0.0.1, data in ./spate-cluster, until Ctrl-C: `just cluster`,
# `just cluster --nodes 5` (the ports and logs are printed).
cluster *ARGS:
    cargo build --release -p spate
    "{{spate_bin}}" dev-cluster {{ARGS}}

# The deterministic simulator: `just sim --seed N`, `just sim --seeds 1..201`,
# `just sim --seed N --buggify ack-before-fsync`, `just sim --seed N --verbose`; clusters of
# nodes: `just sim --seeds 1..201 --cluster`, `just sim --seed N --nodes 5`.
sim *ARGS:
    cargo run --release -q -p spate-sim-tests --bin spate-sim -- {{ARGS}}

# `storage`: the broker beside a plain direct-I/O writer on the same disk (~2 min, `--quick`
# ~20 s); `memory`: the broker's RSS under load (`--secs N`). Options: `just bench storage
# --help`; results and method: docs/PERFORMANCE.md.

# Benchmarks against the release broker: `just bench storage`, `just bench memory`,
# `just bench replication` (a 3-node cluster, replication factor 3 beside 1), `just bench compaction`.
bench *ARGS:
    cargo build --release -p spate -p spate-bench
    "{{justfile_directory()}}/target/release/spate-bench" {{ARGS}}

# Format all Rust code.
fmt:
    cargo fmt --all

# Formatting check and clippy with warnings as errors.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
