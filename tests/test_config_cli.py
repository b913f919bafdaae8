"""`spate config describe|alter`, after Kafka's kafka-configs.sh: dynamic broker configs for one
broker and for the cluster-wide default (the broker resource with the empty name, which
confluent-kafka and kafka-python cannot address), topic configs, list operations, refusals and
argument errors. What the broker holds is cross-checked with confluent-kafka's AdminClient."""

from __future__ import annotations

from conftest import free_port
from spate_helpers import create_topic, describe, run_spate

from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

TIMEOUT = 30


def spate(broker, *args):
    return run_spate("config", *args, "--bootstrap-server", broker.bootstrap)


def ok(cp) -> str:
    assert cp.returncode == 0, describe(cp)
    return cp.stdout


def refused(cp, *phrases: str, usage: bool = False) -> str:
    """The command failed with one `spate: ...` line (clap's `error: ...` for a usage error,
    exit 2) naming each of `phrases`."""
    assert cp.returncode == (2 if usage else 1), describe(cp)
    assert cp.stderr.startswith("error: " if usage else "spate: "), describe(cp)
    for phrase in phrases:
        assert phrase in cp.stderr, f"{phrase!r} missing\n{describe(cp)}"
    if not usage:
        assert cp.stderr.count("\n") == 1, f"one line\n{describe(cp)}"
    assert cp.stdout == "", describe(cp)
    return cp.stderr


def lines(text: str) -> dict[str, str]:
    """`KEY=VALUE (SOURCE)` lines as {KEY: "VALUE (SOURCE)"}."""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition("=")
        assert key and rest, f"not KEY=VALUE (SOURCE): {line!r}"
        assert key not in out, f"{key} listed twice"
        out[key] = rest
    return out


def confluent_configs(broker, resource_type, name: str) -> dict:
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    [future] = client.describe_configs([ConfigResource(resource_type, name)]).values()
    return future.result(timeout=TIMEOUT)


def broker_config(broker, key: str):
    entry = confluent_configs(broker, ResourceType.BROKER, "1")[key]
    return entry.value, entry.source


def topic_config(broker, topic: str, key: str):
    entry = confluent_configs(broker, ResourceType.TOPIC, topic)[key]
    return entry.value, entry.source


DEFAULT = ConfigSource.DEFAULT_CONFIG.value
DYNAMIC_BROKER = ConfigSource.DYNAMIC_BROKER_CONFIG.value
DYNAMIC_DEFAULT = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
TOPIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value


# ---- broker configs: the cluster-wide default and one broker -----------------------------


def test_cluster_default_and_broker_configs_are_set_and_described_with_their_sources(broker, topic):
    out = ok(spate(broker, "alter", "--broker-defaults", "--add-config", "log.retention.ms=123456"))
    assert out == (
        "Completed updating default config for brokers in the cluster:\n"
        "  log.retention.ms: (not set) -> 123456 (DYNAMIC_DEFAULT_BROKER_CONFIG)\n"
    )
    out = ok(spate(broker, "alter", "--broker", "1", "--add-config", "num.io.threads=4"))
    assert out == (
        "Completed updating config for broker 1:\n"
        "  num.io.threads: 8 (DEFAULT_CONFIG) -> 4 (DYNAMIC_BROKER_CONFIG)\n"
    )

    # The cluster default scope lists its dynamic configs alone.
    assert ok(spate(broker, "describe", "--broker-defaults")) == (
        "log.retention.ms=123456 (DYNAMIC_DEFAULT_BROKER_CONFIG)\n"
    )
    # The broker: every config not at Kafka's default, sorted, each from its highest source.
    text = ok(spate(broker, "describe", "--broker", "1"))
    assert text.splitlines() == sorted(text.splitlines())
    configs = lines(text)
    assert configs["log.retention.ms"] == "123456 (DYNAMIC_DEFAULT_BROKER_CONFIG)"
    assert configs["num.io.threads"] == "4 (DYNAMIC_BROKER_CONFIG)"
    assert configs["log.dirs"] == f"{broker.data_dir} (STATIC_BROKER_CONFIG, read-only)"
    assert not [line for line in text.splitlines() if "DEFAULT_CONFIG" in line.replace("DYNAMIC_DEFAULT", "")]
    # --all adds the rest, read-only ones marked.
    every = lines(ok(spate(broker, "describe", "--broker", "1", "--all")))
    assert every["group.max.size"] == "2147483647 (DEFAULT_CONFIG, read-only)"
    assert every["background.threads"] == "10 (DEFAULT_CONFIG)"
    assert every["log.retention.ms"] == configs["log.retention.ms"]
    assert set(configs) < set(every)

    # confluent-kafka sees the same values and sources.
    assert broker_config(broker, "log.retention.ms") == ("123456", DYNAMIC_DEFAULT)
    assert broker_config(broker, "num.io.threads") == ("4", DYNAMIC_BROKER)
    # A topic without an override inherits the cluster default, and says so.
    create_topic(broker.bootstrap, topic, 1)
    topic_configs = lines(ok(spate(broker, "describe", "--topic", topic)))
    assert topic_configs == {"retention.ms": "123456 (DYNAMIC_DEFAULT_BROKER_CONFIG)"}
    assert topic_config(broker, topic, "retention.ms") == ("123456", DYNAMIC_DEFAULT)

    # Dynamic configs are kept across a restart.
    broker.restart()
    assert ok(spate(broker, "describe", "--broker-defaults")) == (
        "log.retention.ms=123456 (DYNAMIC_DEFAULT_BROKER_CONFIG)\n"
    )
    assert lines(ok(spate(broker, "describe", "--broker", "1")))["num.io.threads"] == "4 (DYNAMIC_BROKER_CONFIG)"


def test_a_broker_value_wins_over_the_cluster_default_and_deleting_falls_back(broker):
    ok(spate(broker, "alter", "--broker-defaults", "--add-config", "log.retention.ms=5000,log.cleaner.threads=2"))
    ok(spate(broker, "alter", "--broker", "1", "--add-config", "log.retention.ms=7000,num.io.threads=4"))
    configs = lines(ok(spate(broker, "describe", "--broker", "1")))
    assert configs["log.retention.ms"] == "7000 (DYNAMIC_BROKER_CONFIG)"
    assert configs["log.cleaner.threads"] == "2 (DYNAMIC_DEFAULT_BROKER_CONFIG)"

    # Deleting the broker's own value falls back to the cluster default, then to Kafka's.
    out = ok(spate(broker, "alter", "--broker", "1", "--delete-config", "log.retention.ms,num.io.threads"))
    assert out == (
        "Completed updating config for broker 1:\n"
        "  log.retention.ms: 7000 (DYNAMIC_BROKER_CONFIG) -> 5000 (DYNAMIC_DEFAULT_BROKER_CONFIG)\n"
        "  num.io.threads: 4 (DYNAMIC_BROKER_CONFIG) -> 8 (DEFAULT_CONFIG)\n"
    )
    assert broker_config(broker, "log.retention.ms") == ("5000", DYNAMIC_DEFAULT)
    assert broker_config(broker, "num.io.threads") == ("8", DEFAULT)

    out = ok(spate(broker, "alter", "--broker-defaults", "--delete-config", "log.retention.ms",
                   "--delete-config", "log.cleaner.threads"))
    assert out == (
        "Completed updating default config for brokers in the cluster:\n"
        "  log.retention.ms: 5000 (DYNAMIC_DEFAULT_BROKER_CONFIG) -> (not set)\n"
        "  log.cleaner.threads: 2 (DYNAMIC_DEFAULT_BROKER_CONFIG) -> (not set)\n"
    )
    cp = spate(broker, "describe", "--broker-defaults")
    assert ok(cp) == "" and "no cluster-wide broker defaults are set" in cp.stderr, describe(cp)
    value, source = broker_config(broker, "log.retention.ms")
    assert source == DEFAULT, (value, source)
    assert "log.retention.ms" not in lines(ok(spate(broker, "describe", "--broker", "1")))


def test_validate_only_checks_and_changes_nothing(broker):
    out = ok(spate(broker, "alter", "--broker-defaults", "--add-config", "log.retention.ms=99", "--validate-only"))
    assert out == (
        "Validated updating default config for brokers in the cluster; nothing was changed (--validate-only):\n"
        "  set log.retention.ms=99\n"
    )
    assert ok(spate(broker, "describe", "--broker-defaults")) == ""
    refused(spate(broker, "alter", "--broker", "1", "--add-config", "num.io.threads=0", "--validate-only"),
            "INVALID_REQUEST: cannot change the configs of broker 1",
            "Invalid value 0 for configuration num.io.threads")
    assert broker_config(broker, "num.io.threads") == ("8", DEFAULT)


def test_read_only_broker_configs_are_refused_with_the_brokers_message(broker):
    for target in (["--broker", "1"], ["--broker-defaults"]):
        error = refused(spate(broker, "alter", *target, "--add-config", "group.max.size=5"),
                        "INVALID_REQUEST: cannot change the configs of ",
                        "Cannot update these configs dynamically: Set(group.max.size)",
                        "read-only", "--all")
        assert "Traceback" not in error and "panicked" not in error
    # One refused config refuses the whole request.
    refused(spate(broker, "alter", "--broker", "1", "--add-config", "num.io.threads=4,group.max.size=5"),
            "Set(group.max.size)")
    assert broker_config(broker, "num.io.threads") == ("8", DEFAULT)
    assert broker_config(broker, "group.max.size") == ("2147483647", DEFAULT)
    # Per-broker configs cannot be cluster defaults.
    refused(spate(broker, "alter", "--broker-defaults", "--add-config", "sasl.kerberos.service.name=kafka"),
            "INVALID_REQUEST", "broker id must be specified")


def test_sensitive_values_are_never_printed(broker):
    out = ok(spate(broker, "alter", "--broker", "1", "--add-config", "sasl.jaas.config=[secret-value]"))
    assert "secret-value" not in out and "(sensitive) (DYNAMIC_BROKER_CONFIG)" in out, out
    text = ok(spate(broker, "describe", "--broker", "1"))
    assert "sasl.jaas.config=(sensitive) (DYNAMIC_BROKER_CONFIG)\n" in text
    assert "secret-value" not in text + ok(spate(broker, "describe", "--broker", "1", "--all"))


# ---- topic configs ---------------------------------------------------------------------------


def test_topic_configs_are_altered_described_and_deleted(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    cp = spate(broker, "describe", "--topic", topic)
    assert ok(cp) == "" and "at Kafka's default" in cp.stderr, describe(cp)

    out = ok(spate(broker, "alter", "--topic", topic, "--add-config", "retention.ms=60000, segment.ms=3600000"))
    assert out == (
        f"Completed updating config for topic {topic}:\n"
        "  retention.ms: 604800000 (DEFAULT_CONFIG) -> 60000 (DYNAMIC_TOPIC_CONFIG)\n"
        "  segment.ms: 604800000 (DEFAULT_CONFIG) -> 3600000 (DYNAMIC_TOPIC_CONFIG)\n"
    )
    assert ok(spate(broker, "describe", "--topic", topic)) == (
        "retention.ms=60000 (DYNAMIC_TOPIC_CONFIG)\nsegment.ms=3600000 (DYNAMIC_TOPIC_CONFIG)\n"
    )
    assert topic_config(broker, topic, "retention.ms") == ("60000", TOPIC)
    every = lines(ok(spate(broker, "describe", "--topic", topic, "--all")))
    assert every["cleanup.policy"] == "delete (DEFAULT_CONFIG)"
    assert len(every) > 10

    out = ok(spate(broker, "alter", "--topic", topic, "--delete-config", "segment.ms"))
    assert "segment.ms: 3600000 (DYNAMIC_TOPIC_CONFIG) -> 604800000 (DEFAULT_CONFIG)" in out, out
    assert topic_config(broker, topic, "segment.ms") == ("604800000", DEFAULT)
    assert topic_config(broker, topic, "retention.ms") == ("60000", TOPIC)

    # The broker's refusals, by name, with where to look.
    refused(spate(broker, "alter", "--topic", topic, "--add-config", "retention.ms=soon"),
            "INVALID_CONFIG: cannot change the configs of topic", "retention.ms",
            f"spate config describe --topic {topic} --all")
    refused(spate(broker, "alter", "--topic", "no-such-topic", "--add-config", "retention.ms=1"),
            "UNKNOWN_TOPIC_OR_PARTITION", "'no-such-topic'", "spate topic list")
    refused(spate(broker, "describe", "--topic", "no-such-topic"),
            "UNKNOWN_TOPIC_OR_PARTITION: cannot describe the configs of topic 'no-such-topic'", "spate topic list")
    assert topic_config(broker, topic, "retention.ms") == ("60000", TOPIC)


def test_list_configs_take_brackets_append_and_subtract(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    out = ok(spate(broker, "alter", "--topic", topic, "--add-config", "cleanup.policy=[compact,delete],retention.ms=1000"))
    assert "cleanup.policy: delete (DEFAULT_CONFIG) -> compact,delete (DYNAMIC_TOPIC_CONFIG)" in out, out
    assert topic_config(broker, topic, "cleanup.policy") == ("compact,delete", TOPIC)
    assert topic_config(broker, topic, "retention.ms") == ("1000", TOPIC)

    out = ok(spate(broker, "alter", "--topic", topic, "--subtract-config", "cleanup.policy=delete"))
    assert out.endswith("  cleanup.policy: compact,delete (DYNAMIC_TOPIC_CONFIG) -> compact (DYNAMIC_TOPIC_CONFIG)\n"), out
    assert topic_config(broker, topic, "cleanup.policy") == ("compact", TOPIC)
    ok(spate(broker, "alter", "--topic", topic, "--append-config", "cleanup.policy=delete"))
    assert topic_config(broker, topic, "cleanup.policy") == ("compact,delete", TOPIC)
    # Appending what is there changes nothing.
    out = ok(spate(broker, "alter", "--topic", topic, "--append-config", "cleanup.policy=compact"))
    assert "cleanup.policy: unchanged, compact,delete (DYNAMIC_TOPIC_CONFIG)" in out, out
    # Subtracting every value leaves the empty list (KIP-1161).
    out = ok(spate(broker, "alter", "--topic", topic, "--subtract-config", "cleanup.policy=[compact,delete]"))
    assert 'cleanup.policy: compact,delete (DYNAMIC_TOPIC_CONFIG) -> "" (DYNAMIC_TOPIC_CONFIG)' in out, out
    assert topic_config(broker, topic, "cleanup.policy") == ("", TOPIC)

    refused(spate(broker, "alter", "--topic", topic, "--append-config", "retention.ms=5"),
            "INVALID_CONFIG", "because its type is not LIST")
    # A broker's list config too, at the cluster default.
    out = ok(spate(broker, "alter", "--broker-defaults", "--append-config", "log.cleanup.policy=compact"))
    assert "log.cleanup.policy: (not set) -> delete,compact (DYNAMIC_DEFAULT_BROKER_CONFIG)" in out, out
    ok(spate(broker, "alter", "--broker-defaults", "--subtract-config", "log.cleanup.policy=delete"))
    assert ok(spate(broker, "describe", "--broker-defaults")) == "log.cleanup.policy=compact (DYNAMIC_DEFAULT_BROKER_CONFIG)\n"
    assert broker_config(broker, "log.cleanup.policy") == ("compact", DYNAMIC_DEFAULT)


# ---- argument errors -------------------------------------------------------------------------


def test_bad_arguments_are_refused_clearly_and_change_nothing(broker, topic):
    create_topic(broker.bootstrap, topic, 1)
    refused(spate(broker, "describe"), "no config target given", "--broker ID", "--broker-defaults", "--topic TOPIC")
    refused(spate(broker, "alter", "--add-config", "log.retention.ms=1"), "no config target given")
    refused(spate(broker, "alter", "--broker", "1", "--topic", topic, "--add-config", "retention.ms=1"),
            "--broker and --topic given together", "exactly one of")
    refused(spate(broker, "describe", "--broker-defaults", "--broker", "1"),
            "--broker and --broker-defaults given together")
    refused(spate(broker, "alter", "--topic", topic), "nothing to alter", "--add-config KEY=VALUE",
            "--delete-config KEY")
    refused(spate(broker, "alter", "--topic", topic, "--add-config", "retention.ms=1", "--delete-config",
                  "retention.ms"), "'retention.ms' is named by both --add-config and --delete-config")
    refused(spate(broker, "describe", "--broker", "7"), "broker 7 is not in the cluster", "brokers are 1",
            "spate cluster describe")
    refused(spate(broker, "describe", "--topic", ""), "--topic names no topic")

    # Usage errors, from the argument parser.
    refused(spate(broker, "alter", "--topic", topic, "--add-config", "cleanup.policy=compact,delete"),
            "'delete' is not KEY=VALUE", "square brackets", "cleanup.policy=[compact,delete]", usage=True)
    refused(spate(broker, "alter", "--topic", topic, "--add-config", "cleanup.policy=[compact,delete"),
            "'[' without ']'", usage=True)
    refused(spate(broker, "alter", "--topic", topic, "--delete-config", "retention.ms=1"),
            "takes names only", usage=True)
    refused(spate(broker, "describe", "--broker", "one"), "node id", "--broker-defaults", usage=True)
    refused(spate(broker, "describe", "--broker", ""), "--broker-defaults", usage=True)
    refused(spate(broker, "alter", "--broker", "1", "--add-config"), "--add-config", usage=True)

    # Nothing changed on the way.
    assert ok(spate(broker, "describe", "--topic", topic)) == ""
    assert ok(spate(broker, "describe", "--broker-defaults")) == ""

    # No broker there: the connection error names the fix.
    cp = run_spate("config", "describe", "--broker-defaults", "--bootstrap-server", f"127.0.0.1:{free_port()}")
    refused(cp, "cannot connect to", "--bootstrap-server")
