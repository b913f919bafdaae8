//! The broker configs Spate knows, as Kafka 4.1 defines them, and the value each takes from its
//! sources: a dynamic value for this broker, a dynamic cluster-wide default (both changed with
//! AlterConfigs / IncrementalAlterConfigs and kept in the metadata), the static value from the
//! config file or flags, Kafka's default, in that order (Kafka's `DynamicBrokerConfig`).
//!
//! Which configs may change at run time is Kafka's list (`DynamicBrokerConfig.AllDynamicConfigs`):
//! everything else is read-only, and an alter naming it gets Kafka's INVALID_REQUEST "Cannot
//! update these configs dynamically". Spate acts on the dynamic values topics fall back to (the
//! `log.*` settings, `message.max.bytes`, `min.insync.replicas`, `compression.type`, ...); the
//! others (thread counts, SASL and SSL settings, connection limits) are validated, kept and
//! described, and tune nothing Spate has.

use super::topic::{self, TopicConfig};
use super::{Check, ConfigDef, ConfigType, INT_MAX, LONG_MAX};
use std::collections::BTreeMap;

/// Whether and where a broker config may change at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    ReadOnly,
    /// Dynamic, per broker or as the cluster-wide default.
    ClusterWide,
    /// Dynamic for one broker only (listeners, SASL, SSL).
    PerBroker,
    /// Dynamic per listener only (`listener.name.<l>.` prefix): key and trust stores.
    PerListener,
}

#[derive(Debug, Clone, Copy)]
pub struct BrokerConfig {
    pub def: ConfigDef,
    pub mode: Mode,
}

/// Kafka's `ConfigSource` codes, as DescribeConfigs reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    TopicConfig = 1,
    DynamicBroker = 2,
    DynamicDefault = 3,
    Static = 4,
    Default = 5,
}

const fn b(
    name: &'static str,
    kind: ConfigType,
    default: Option<&'static str>,
    check: Check,
    mode: Mode,
) -> BrokerConfig {
    BrokerConfig {
        def: ConfigDef::new(name, kind, default, check),
        mode,
    }
}

use Check::{Any, AtLeast};
use ConfigType::{Boolean, Class, Double, Int, List, Long, Password, Short, String as Str};
use Mode::{ClusterWide as Dyn, PerBroker, PerListener, ReadOnly};

/// Every broker config Spate knows, by name.
pub const BROKER_CONFIGS: &[BrokerConfig] = &[
    b("advertised.listeners", Str, None, Any, ReadOnly),
    b(
        "auto.create.topics.enable",
        Boolean,
        Some("true"),
        Any,
        ReadOnly,
    ),
    b("background.threads", Int, Some("10"), AtLeast(1), Dyn),
    b("broker.id", Int, Some("-1"), Any, ReadOnly),
    b(
        "compression.gzip.level",
        Int,
        Some("-1"),
        Check::GzipLevel,
        Dyn,
    ),
    b(
        "compression.lz4.level",
        Int,
        Some("9"),
        Check::Between(1, 17),
        Dyn,
    ),
    b(
        "compression.type",
        Str,
        Some("producer"),
        Check::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        Dyn,
    ),
    b(
        "compression.zstd.level",
        Int,
        Some("3"),
        Check::Between(-131_072, 22),
        Dyn,
    ),
    b("controller.listener.names", Str, None, Any, ReadOnly),
    b(
        "controller.quorum.bootstrap.servers",
        List,
        Some(""),
        Any,
        ReadOnly,
    ),
    b("controller.quorum.voters", List, Some(""), Any, ReadOnly),
    b("default.replication.factor", Int, Some("1"), Any, ReadOnly),
    b("delete.topic.enable", Boolean, Some("true"), Any, ReadOnly),
    b(
        "follower.replication.throttled.rate",
        Long,
        Some(LONG_MAX),
        AtLeast(0),
        Dyn,
    ),
    b(
        "group.initial.rebalance.delay.ms",
        Int,
        Some("3000"),
        Any,
        ReadOnly,
    ),
    b(
        "group.max.session.timeout.ms",
        Int,
        Some("1800000"),
        Any,
        ReadOnly,
    ),
    b("group.max.size", Int, Some(INT_MAX), AtLeast(1), ReadOnly),
    b(
        "group.min.session.timeout.ms",
        Int,
        Some("6000"),
        Any,
        ReadOnly,
    ),
    b("inter.broker.listener.name", Str, None, Any, ReadOnly),
    b(
        "leader.replication.throttled.rate",
        Long,
        Some(LONG_MAX),
        AtLeast(0),
        Dyn,
    ),
    b(
        "listener.security.protocol.map",
        Str,
        Some("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"),
        Any,
        PerBroker,
    ),
    b("listeners", Str, Some("PLAINTEXT://:9092"), Any, PerBroker),
    b(
        "log.cleaner.backoff.ms",
        Long,
        Some("15000"),
        AtLeast(0),
        Dyn,
    ),
    b(
        "log.cleaner.dedupe.buffer.size",
        Long,
        Some("134217728"),
        Any,
        Dyn,
    ),
    b(
        "log.cleaner.delete.retention.ms",
        Long,
        Some("86400000"),
        AtLeast(0),
        Dyn,
    ),
    b(
        "log.cleaner.io.buffer.load.factor",
        Double,
        Some("0.9"),
        Any,
        Dyn,
    ),
    b(
        "log.cleaner.io.buffer.size",
        Int,
        Some("524288"),
        AtLeast(0),
        Dyn,
    ),
    b(
        "log.cleaner.io.max.bytes.per.second",
        Double,
        Some("1.7976931348623157E308"),
        Any,
        Dyn,
    ),
    b(
        "log.cleaner.max.compaction.lag.ms",
        Long,
        Some(LONG_MAX),
        AtLeast(1),
        Dyn,
    ),
    b(
        "log.cleaner.min.cleanable.ratio",
        Double,
        Some("0.5"),
        Check::Ratio,
        Dyn,
    ),
    b(
        "log.cleaner.min.compaction.lag.ms",
        Long,
        Some("0"),
        AtLeast(0),
        Dyn,
    ),
    b("log.cleaner.threads", Int, Some("1"), AtLeast(0), Dyn),
    b(
        "log.cleanup.policy",
        List,
        Some("delete"),
        Check::ListOf(&["compact", "delete"]),
        Dyn,
    ),
    b("log.dir", Str, Some("/tmp/kafka-logs"), Any, ReadOnly),
    b("log.dirs", Str, None, Any, ReadOnly),
    // Spate syncs every write by default (group-committed): see `log::FlushPolicy`.
    b(
        "log.flush.interval.messages",
        Long,
        Some("1"),
        AtLeast(1),
        Dyn,
    ),
    b("log.flush.interval.ms", Long, None, Any, Dyn),
    b(
        "log.flush.scheduler.interval.ms",
        Long,
        Some(LONG_MAX),
        Any,
        ReadOnly,
    ),
    b(
        "log.index.interval.bytes",
        Int,
        Some("4096"),
        AtLeast(0),
        Dyn,
    ),
    b(
        "log.index.size.max.bytes",
        Int,
        Some("10485760"),
        AtLeast(4),
        Dyn,
    ),
    b(
        "log.local.retention.bytes",
        Long,
        Some("-2"),
        AtLeast(-2),
        Dyn,
    ),
    b("log.local.retention.ms", Long, Some("-2"), AtLeast(-2), Dyn),
    b(
        "log.message.timestamp.after.max.ms",
        Long,
        Some("3600000"),
        AtLeast(0),
        Dyn,
    ),
    b(
        "log.message.timestamp.before.max.ms",
        Long,
        Some(LONG_MAX),
        AtLeast(0),
        Dyn,
    ),
    b(
        "log.message.timestamp.type",
        Str,
        Some("CreateTime"),
        Check::OneOf(&["CreateTime", "LogAppendTime"]),
        Dyn,
    ),
    b("log.preallocate", Boolean, Some("false"), Any, Dyn),
    b("log.retention.bytes", Long, Some("-1"), Any, Dyn),
    b(
        "log.retention.check.interval.ms",
        Long,
        Some("300000"),
        AtLeast(1),
        ReadOnly,
    ),
    b("log.retention.hours", Int, Some("168"), Any, ReadOnly),
    b("log.retention.minutes", Int, None, Any, ReadOnly),
    b("log.retention.ms", Long, None, Any, Dyn),
    b("log.roll.hours", Int, Some("168"), AtLeast(1), ReadOnly),
    b(
        "log.roll.jitter.hours",
        Int,
        Some("0"),
        AtLeast(0),
        ReadOnly,
    ),
    b("log.roll.jitter.ms", Long, None, Any, Dyn),
    b("log.roll.ms", Long, None, Any, Dyn),
    b(
        "log.segment.bytes",
        Int,
        Some("1073741824"),
        AtLeast(14),
        Dyn,
    ),
    b(
        "log.segment.delete.delay.ms",
        Long,
        Some("60000"),
        AtLeast(0),
        Dyn,
    ),
    b(
        "max.connection.creation.rate",
        Int,
        Some(INT_MAX),
        AtLeast(0),
        Dyn,
    ),
    b("max.connections", Int, Some(INT_MAX), AtLeast(0), Dyn),
    b(
        "max.connections.per.ip",
        Int,
        Some(INT_MAX),
        AtLeast(0),
        Dyn,
    ),
    b("max.connections.per.ip.overrides", Str, Some(""), Any, Dyn),
    b("message.max.bytes", Int, Some("1048588"), AtLeast(0), Dyn),
    b("metric.reporters", List, Some(""), Any, Dyn),
    b("min.insync.replicas", Int, Some("1"), AtLeast(1), Dyn),
    b("node.id", Int, Some("-1"), Any, ReadOnly),
    b("num.io.threads", Int, Some("8"), AtLeast(1), Dyn),
    b("num.network.threads", Int, Some("3"), AtLeast(1), Dyn),
    // Kafka's default is 1 too; the broker's `--num-partitions` sets it.
    b("num.partitions", Int, Some("1"), AtLeast(1), ReadOnly),
    b(
        "num.recovery.threads.per.data.dir",
        Int,
        Some("2"),
        AtLeast(1),
        Dyn,
    ),
    b("num.replica.fetchers", Int, Some("1"), Any, Dyn),
    b(
        "offset.metadata.max.bytes",
        Int,
        Some("4096"),
        Any,
        ReadOnly,
    ),
    b(
        "offsets.retention.check.interval.ms",
        Long,
        Some("600000"),
        AtLeast(1),
        ReadOnly,
    ),
    b(
        "offsets.retention.minutes",
        Int,
        Some("10080"),
        AtLeast(1),
        ReadOnly,
    ),
    // Kafka's default is 50 partitions, to spread groups over brokers; one serves one node.
    b(
        "offsets.topic.num.partitions",
        Int,
        Some("1"),
        AtLeast(1),
        ReadOnly,
    ),
    b(
        "offsets.topic.replication.factor",
        Short,
        Some("3"),
        AtLeast(1),
        ReadOnly,
    ),
    b(
        "principal.builder.class",
        Class,
        Some("org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder"),
        Any,
        PerBroker,
    ),
    b("process.roles", List, Some(""), Any, ReadOnly),
    b(
        "producer.id.expiration.ms",
        Int,
        Some("86400000"),
        AtLeast(1),
        Dyn,
    ),
    b(
        "replica.alter.log.dirs.io.max.bytes.per.second",
        Long,
        Some(LONG_MAX),
        AtLeast(0),
        Dyn,
    ),
    b(
        "sasl.enabled.mechanisms",
        List,
        Some("GSSAPI"),
        Any,
        PerBroker,
    ),
    b("sasl.jaas.config", Password, None, Any, PerBroker),
    b(
        "sasl.kerberos.kinit.cmd",
        Str,
        Some("/usr/bin/kinit"),
        Any,
        PerBroker,
    ),
    b(
        "sasl.kerberos.min.time.before.relogin",
        Long,
        Some("60000"),
        Any,
        PerBroker,
    ),
    b(
        "sasl.kerberos.principal.to.local.rules",
        List,
        Some("DEFAULT"),
        Any,
        PerBroker,
    ),
    b("sasl.kerberos.service.name", Str, None, Any, PerBroker),
    b(
        "sasl.kerberos.ticket.renew.jitter",
        Double,
        Some("0.05"),
        Any,
        PerBroker,
    ),
    b(
        "sasl.kerberos.ticket.renew.window.factor",
        Double,
        Some("0.8"),
        Any,
        PerBroker,
    ),
    b(
        "sasl.login.refresh.buffer.seconds",
        Short,
        Some("300"),
        Any,
        PerBroker,
    ),
    b(
        "sasl.login.refresh.min.period.seconds",
        Short,
        Some("60"),
        Any,
        PerBroker,
    ),
    b(
        "sasl.login.refresh.window.factor",
        Double,
        Some("0.8"),
        Any,
        PerBroker,
    ),
    b(
        "sasl.login.refresh.window.jitter",
        Double,
        Some("0.05"),
        Any,
        PerBroker,
    ),
    b(
        "sasl.mechanism.inter.broker.protocol",
        Str,
        Some("GSSAPI"),
        Any,
        PerBroker,
    ),
    b(
        "share.coordinator.state.topic.min.isr",
        Short,
        Some("2"),
        AtLeast(1),
        ReadOnly,
    ),
    b(
        "share.coordinator.state.topic.replication.factor",
        Short,
        Some("3"),
        AtLeast(1),
        ReadOnly,
    ),
    b(
        "socket.receive.buffer.bytes",
        Int,
        Some("102400"),
        Any,
        ReadOnly,
    ),
    b(
        "socket.request.max.bytes",
        Int,
        Some("104857600"),
        AtLeast(1),
        ReadOnly,
    ),
    b(
        "socket.send.buffer.bytes",
        Int,
        Some("102400"),
        Any,
        ReadOnly,
    ),
    b("ssl.cipher.suites", List, Some(""), Any, PerBroker),
    b(
        "ssl.client.auth",
        Str,
        Some("none"),
        Check::OneOf(&["required", "requested", "none"]),
        PerBroker,
    ),
    b(
        "ssl.enabled.protocols",
        List,
        Some("TLSv1.2,TLSv1.3"),
        Any,
        PerBroker,
    ),
    b(
        "ssl.endpoint.identification.algorithm",
        Str,
        Some("https"),
        Any,
        PerBroker,
    ),
    b("ssl.engine.factory.class", Class, None, Any, PerBroker),
    b("ssl.key.password", Password, None, Any, PerListener),
    b(
        "ssl.keymanager.algorithm",
        Str,
        Some("SunX509"),
        Any,
        PerBroker,
    ),
    b(
        "ssl.keystore.certificate.chain",
        Password,
        None,
        Any,
        PerListener,
    ),
    b("ssl.keystore.key", Password, None, Any, PerListener),
    b("ssl.keystore.location", Str, None, Any, PerListener),
    b("ssl.keystore.password", Password, None, Any, PerListener),
    b("ssl.keystore.type", Str, Some("JKS"), Any, PerListener),
    b("ssl.protocol", Str, Some("TLSv1.3"), Any, PerBroker),
    b("ssl.provider", Str, None, Any, PerBroker),
    b(
        "ssl.secure.random.implementation",
        Str,
        None,
        Any,
        PerBroker,
    ),
    b(
        "ssl.trustmanager.algorithm",
        Str,
        Some("PKIX"),
        Any,
        PerBroker,
    ),
    b(
        "ssl.truststore.certificates",
        Password,
        None,
        Any,
        PerListener,
    ),
    b("ssl.truststore.location", Str, None, Any, PerListener),
    b("ssl.truststore.password", Password, None, Any, PerListener),
    b("ssl.truststore.type", Str, Some("JKS"), Any, PerListener),
    // Spate's own memory bounds (see docs/ARCHITECTURE.md, "Memory").
    b(
        "tail.cache.bytes",
        Long,
        Some("268435456"),
        AtLeast(0),
        ReadOnly,
    ),
    b(
        "tail.cache.bytes.per.partition",
        Long,
        Some("4194304"),
        AtLeast(0),
        ReadOnly,
    ),
    b(
        "transaction.partition.verification.enable",
        Boolean,
        Some("true"),
        Any,
        Dyn,
    ),
    b(
        "transaction.state.log.min.isr",
        Int,
        Some("2"),
        AtLeast(1),
        ReadOnly,
    ),
    b(
        "transaction.state.log.replication.factor",
        Short,
        Some("3"),
        AtLeast(1),
        ReadOnly,
    ),
    b(
        "unclean.leader.election.enable",
        Boolean,
        Some("false"),
        Any,
        Dyn,
    ),
    b(
        "unwritten.bytes.max",
        Long,
        Some("67108864"),
        AtLeast(1),
        ReadOnly,
    ),
];

pub fn find(name: &str) -> Option<&'static BrokerConfig> {
    BROKER_CONFIGS.iter().find(|c| c.def.name == name)
}

/// The broker configs that are set, by source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerConfigs {
    /// From the config file and flags, validated at start-up.
    pub static_values: BTreeMap<String, String>,
    /// Dynamic values for this broker (AlterConfigs on the broker's id).
    pub dynamic_node: BTreeMap<String, String>,
    /// Dynamic cluster-wide defaults (AlterConfigs on the empty broker name).
    pub dynamic_default: BTreeMap<String, String>,
}

/// What a dynamic change of broker configs is checked against: Kafka's errors, as
/// `DynamicBrokerConfig.validateConfigs` raises them (INVALID_REQUEST on the broker path).
pub fn check_dynamic(values: &BTreeMap<String, String>, per_broker: bool) -> Result<(), String> {
    let names = |filter: &dyn Fn(&str) -> bool| -> Vec<&str> {
        values
            .keys()
            .map(String::as_str)
            .filter(|k| filter(k))
            .collect()
    };
    let read_only = names(&|k| find(k).is_some_and(|c| c.mode == Mode::ReadOnly));
    if !read_only.is_empty() {
        return Err(format!(
            "Cannot update these configs dynamically: Set({})",
            read_only.join(", ")
        ));
    }
    let listener_only = names(&|k| find(k).is_some_and(|c| c.mode == Mode::PerListener));
    if !listener_only.is_empty() {
        return Err(format!(
            "These security configs can be dynamically updated only per-listener using the \
             listener prefix: Set({})",
            listener_only.join(", ")
        ));
    }
    for (key, value) in values {
        // Keys Kafka does not define are kept as given (Kafka accepts custom broker configs).
        match find(key).or_else(|| listener_config(key)) {
            Some(config) => config.def.validate(value)?,
            None => super::check_storable(key, value)?,
        }
    }
    if !per_broker {
        let per_broker_only = names(&|k| {
            find(k).is_some_and(|c| c.mode == Mode::PerBroker) || k.starts_with("listener.name.")
        });
        if !per_broker_only.is_empty() {
            return Err(format!(
                "Cannot update these configs at default cluster level, broker id must be \
                 specified: Set({})",
                per_broker_only.join(", ")
            ));
        }
    }
    Ok(())
}

/// A `listener.name.<listener>.<config>` key's config.
fn listener_config(key: &str) -> Option<&'static BrokerConfig> {
    let rest = key.strip_prefix("listener.name.")?;
    let (_, name) = rest.split_once('.')?;
    find(name).or_else(|| find(&format!("ssl.{}", name.strip_prefix("ssl.")?)))
}

impl BrokerConfigs {
    /// The value of a broker config from the highest source that sets it, or its default.
    pub fn value(&self, name: &str) -> Option<(String, Source)> {
        self.sources(name).into_iter().next()
    }

    /// Every source that sets the config, highest first, then its default (if not null).
    pub fn sources(&self, name: &str) -> Vec<(String, Source)> {
        let mut found: Vec<(String, Source)> = [
            (&self.dynamic_node, Source::DynamicBroker),
            (&self.dynamic_default, Source::DynamicDefault),
            (&self.static_values, Source::Static),
        ]
        .into_iter()
        .filter_map(|(values, source)| values.get(name).map(|v| (v.clone(), source)))
        .collect();
        if let Some(default) = find(name).and_then(|c| c.def.default) {
            found.push((default.to_string(), Source::Default));
        }
        found
    }

    /// What a topic config is when the topic does not override it: the first of its broker
    /// synonyms that a source sets (converted to the topic's unit), else the first synonym's
    /// default, else the topic config's own default; with the synonym and source it came from.
    pub fn topic_fallback(&self, config: &TopicConfig) -> (String, Option<&'static str>, Source) {
        let set = config.synonyms.iter().find_map(|&(name, unit)| {
            let (value, source) = self.value(name).filter(|(_, s)| *s != Source::Default)?;
            Some((unit.convert(&value), Some(name), source))
        });
        let default = || {
            config.synonyms.iter().find_map(|&(name, unit)| {
                let value = find(name)?.def.default?;
                Some((unit.convert(value), Some(name), Source::Default))
            })
        };
        set.or_else(default).unwrap_or_else(|| {
            let value = config.def.default.unwrap_or_default().to_string();
            (value, None, Source::Default)
        })
    }

    /// Every topic config's fallback value, by name (what topics inherit).
    pub fn topic_fallbacks(&self) -> BTreeMap<String, String> {
        topic::TOPIC_CONFIGS
            .iter()
            .map(|c| (c.def.name.to_string(), self.topic_fallback(c).0))
            .collect()
    }
}

/// Checks one static setting (config file or flag) against Kafka's definition; unknown keys
/// are refused, so a misspelt setting does not go unnoticed.
pub fn check_static(key: &str, value: &str) -> Result<(), String> {
    let config = find(key).ok_or_else(|| format!("unknown setting '{key}'"))?;
    config.def.validate(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_every_default_is_valid() {
        let names: Vec<&str> = BROKER_CONFIGS.iter().map(|c| c.def.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        for config in BROKER_CONFIGS {
            if let Some(default) = config.def.default {
                assert_eq!(config.def.validate(default), Ok(()), "{}", config.def.name);
            }
        }
        // Every broker setting a topic config falls back to is known, with the topic's type
        // (or an integer where the unit converts).
        for topic in topic::TOPIC_CONFIGS {
            for (name, _) in topic.synonyms {
                assert!(find(name).is_some(), "{name}");
            }
        }
    }

    #[test]
    fn dynamic_changes_follow_kafkas_rules() {
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(
            check_dynamic(&one("log.retention.ms", "1000"), true),
            Ok(())
        );
        assert_eq!(check_dynamic(&one("num.io.threads", "4"), false), Ok(()));
        assert_eq!(
            check_dynamic(&one("sasl.kerberos.min.time.before.relogin", "1000"), true),
            Ok(())
        );
        assert_eq!(
            check_dynamic(&one("group.max.size", "5"), true),
            Err("Cannot update these configs dynamically: Set(group.max.size)".into())
        );
        assert!(
            check_dynamic(&one("sasl.kerberos.min.time.before.relogin", "1"), false)
                .unwrap_err()
                .starts_with("Cannot update these configs at default cluster level")
        );
        assert!(check_dynamic(&one("ssl.keystore.location", "/x"), true)
            .unwrap_err()
            .contains("per-listener"));
        assert_eq!(
            check_dynamic(&one("num.io.threads", "0"), true),
            Err(
                "Invalid value 0 for configuration num.io.threads: Value must be at least 1".into()
            )
        );
        assert_eq!(check_dynamic(&one("my.custom.setting", "x"), true), Ok(()));
    }

    #[test]
    fn a_topic_falls_back_to_the_highest_source_of_its_first_synonym_that_is_set() {
        let retention = topic::find("retention.ms").unwrap();
        let mut configs = BrokerConfigs::default();
        assert_eq!(
            configs.topic_fallback(retention),
            (
                "604800000".into(),
                Some("log.retention.hours"),
                Source::Default
            )
        );
        configs
            .static_values
            .insert("log.retention.hours".into(), "1".into());
        assert_eq!(
            configs.topic_fallback(retention),
            (
                "3600000".into(),
                Some("log.retention.hours"),
                Source::Static
            )
        );
        configs
            .dynamic_default
            .insert("log.retention.ms".into(), "5000".into());
        assert_eq!(
            configs.topic_fallback(retention),
            (
                "5000".into(),
                Some("log.retention.ms"),
                Source::DynamicDefault
            )
        );
        configs
            .dynamic_node
            .insert("log.retention.ms".into(), "7000".into());
        assert_eq!(
            configs.topic_fallback(retention),
            (
                "7000".into(),
                Some("log.retention.ms"),
                Source::DynamicBroker
            )
        );
        let throttled = topic::find("leader.replication.throttled.replicas").unwrap();
        assert_eq!(
            configs.topic_fallback(throttled),
            (String::new(), None, Source::Default)
        );
    }
}
