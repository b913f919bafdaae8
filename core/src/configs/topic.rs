//! Every topic config of Kafka 4.1 (`LogConfig`), with the broker settings each falls back to
//! when a topic does not override it (its synonyms, highest priority first).
//!
//! Spate acts on: `cleanup.policy` (delete: retention; an empty policy keeps everything),
//! `flush.messages`, `flush.ms`, `index.interval.bytes`, `max.message.bytes`,
//! `message.timestamp.type`, `message.timestamp.before.max.ms` / `after.max.ms`,
//! `min.insync.replicas`, `retention.bytes`, `retention.ms`, `segment.bytes`, `segment.ms`. The
//! others are validated, stored and described, waiting for the features they tune (compaction,
//! replication, tiered storage). Differences from Kafka: `flush.messages` defaults to 1 (Spate
//! syncs every write, group-committed: see `log::FlushPolicy`), and `segment.bytes` keeps Kafka
//! 4.0's minimum of 14 bytes rather than 4.1's 1 MiB, which small-segment tests rely on.

use super::{Check, ConfigDef, ConfigType, LONG_MAX};
use std::collections::BTreeMap;

/// How a broker setting converts to its topic config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Same,
    /// Hours (`log.retention.hours`) to milliseconds.
    Hours,
    Minutes,
}

impl Unit {
    /// The topic config's value from the broker setting's.
    pub fn convert(self, value: &str) -> String {
        let factor = match self {
            Unit::Same => return value.trim().to_string(),
            Unit::Hours => 3_600_000,
            Unit::Minutes => 60_000,
        };
        super::as_i64(value)
            .map(|v| v.saturating_mul(factor).to_string())
            .unwrap_or_else(|| value.to_string())
    }
}

/// A topic config and the broker settings it falls back to.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfig {
    pub def: ConfigDef,
    pub synonyms: &'static [(&'static str, Unit)],
}

const fn topic(
    name: &'static str,
    kind: ConfigType,
    default: &'static str,
    check: Check,
    synonyms: &'static [(&'static str, Unit)],
) -> TopicConfig {
    TopicConfig {
        def: ConfigDef::new(name, kind, Some(default), check),
        synonyms,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, String as Str};
use Unit::{Hours, Minutes, Same};

/// Kafka's topic configs, by name.
pub const TOPIC_CONFIGS: &[TopicConfig] = &[
    topic(
        "cleanup.policy",
        List,
        "delete",
        Check::ListOf(&["compact", "delete"]),
        &[("log.cleanup.policy", Same)],
    ),
    topic(
        "compression.gzip.level",
        Int,
        "-1",
        Check::GzipLevel,
        &[("compression.gzip.level", Same)],
    ),
    topic(
        "compression.lz4.level",
        Int,
        "9",
        Check::Between(1, 17),
        &[("compression.lz4.level", Same)],
    ),
    topic(
        "compression.type",
        Str,
        "producer",
        Check::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        &[("compression.type", Same)],
    ),
    topic(
        "compression.zstd.level",
        Int,
        "3",
        Check::Between(-131_072, 22),
        &[("compression.zstd.level", Same)],
    ),
    topic(
        "delete.retention.ms",
        Long,
        "86400000",
        Check::AtLeast(0),
        &[("log.cleaner.delete.retention.ms", Same)],
    ),
    topic(
        "file.delete.delay.ms",
        Long,
        "60000",
        Check::AtLeast(0),
        &[("log.segment.delete.delay.ms", Same)],
    ),
    topic(
        "flush.messages",
        Long,
        "1",
        Check::AtLeast(1),
        &[("log.flush.interval.messages", Same)],
    ),
    topic(
        "flush.ms",
        Long,
        LONG_MAX,
        Check::AtLeast(0),
        &[
            ("log.flush.interval.ms", Same),
            ("log.flush.scheduler.interval.ms", Same),
        ],
    ),
    topic(
        "follower.replication.throttled.replicas",
        List,
        "",
        Check::ThrottledReplicas,
        &[],
    ),
    topic(
        "index.interval.bytes",
        Int,
        "4096",
        Check::AtLeast(0),
        &[("log.index.interval.bytes", Same)],
    ),
    topic(
        "leader.replication.throttled.replicas",
        List,
        "",
        Check::ThrottledReplicas,
        &[],
    ),
    topic(
        "local.retention.bytes",
        Long,
        "-2",
        Check::AtLeast(-2),
        &[("log.local.retention.bytes", Same)],
    ),
    topic(
        "local.retention.ms",
        Long,
        "-2",
        Check::AtLeast(-2),
        &[("log.local.retention.ms", Same)],
    ),
    topic(
        "max.compaction.lag.ms",
        Long,
        LONG_MAX,
        Check::AtLeast(1),
        &[("log.cleaner.max.compaction.lag.ms", Same)],
    ),
    topic(
        "max.message.bytes",
        Int,
        "1048588",
        Check::AtLeast(0),
        &[("message.max.bytes", Same)],
    ),
    topic(
        "message.timestamp.after.max.ms",
        Long,
        "3600000",
        Check::AtLeast(0),
        &[("log.message.timestamp.after.max.ms", Same)],
    ),
    topic(
        "message.timestamp.before.max.ms",
        Long,
        LONG_MAX,
        Check::AtLeast(0),
        &[("log.message.timestamp.before.max.ms", Same)],
    ),
    topic(
        "message.timestamp.type",
        Str,
        "CreateTime",
        Check::OneOf(&["CreateTime", "LogAppendTime"]),
        &[("log.message.timestamp.type", Same)],
    ),
    topic(
        "min.cleanable.dirty.ratio",
        Double,
        "0.5",
        Check::Ratio,
        &[("log.cleaner.min.cleanable.ratio", Same)],
    ),
    topic(
        "min.compaction.lag.ms",
        Long,
        "0",
        Check::AtLeast(0),
        &[("log.cleaner.min.compaction.lag.ms", Same)],
    ),
    topic(
        "min.insync.replicas",
        Int,
        "1",
        Check::AtLeast(1),
        &[("min.insync.replicas", Same)],
    ),
    topic(
        "preallocate",
        Boolean,
        "false",
        Check::Any,
        &[("log.preallocate", Same)],
    ),
    topic("remote.log.copy.disable", Boolean, "false", Check::Any, &[]),
    topic(
        "remote.log.delete.on.disable",
        Boolean,
        "false",
        Check::Any,
        &[],
    ),
    topic("remote.storage.enable", Boolean, "false", Check::Any, &[]),
    topic(
        "retention.bytes",
        Long,
        "-1",
        Check::Any,
        &[("log.retention.bytes", Same)],
    ),
    topic(
        "retention.ms",
        Long,
        "604800000",
        Check::AtLeast(-1),
        &[
            ("log.retention.ms", Same),
            ("log.retention.minutes", Minutes),
            ("log.retention.hours", Hours),
        ],
    ),
    topic(
        "segment.bytes",
        Int,
        "1073741824",
        Check::AtLeast(14),
        &[("log.segment.bytes", Same)],
    ),
    topic(
        "segment.index.bytes",
        Int,
        "10485760",
        Check::AtLeast(4),
        &[("log.index.size.max.bytes", Same)],
    ),
    topic(
        "segment.jitter.ms",
        Long,
        "0",
        Check::AtLeast(0),
        &[
            ("log.roll.jitter.ms", Same),
            ("log.roll.jitter.hours", Hours),
        ],
    ),
    topic(
        "segment.ms",
        Long,
        "604800000",
        Check::AtLeast(1),
        &[("log.roll.ms", Same), ("log.roll.hours", Hours)],
    ),
    topic(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Check::Any,
        &[("unclean.leader.election.enable", Same)],
    ),
];

pub fn find(name: &str) -> Option<&'static TopicConfig> {
    TOPIC_CONFIGS.iter().find(|c| c.def.name == name)
}

/// Kafka's default of a topic config, `None` for an unknown key.
pub fn default_of(name: &str) -> Option<&'static str> {
    find(name).and_then(|c| c.def.default)
}

/// Checks one `key=value` topic config; the error is Kafka's message.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let config = find(key).ok_or_else(|| format!("Unknown topic config name: {key}"))?;
    config.def.validate(value)?;
    if key == "remote.storage.enable" && value.trim().eq_ignore_ascii_case("true") {
        // Spate has no tiered storage: Kafka's answer when it is disabled on the broker.
        return Err(
            "Tiered Storage functionality is disabled in the broker. Topic cannot be \
                    configured with remote log storage."
                .into(),
        );
    }
    Ok(())
}

/// Checks a topic's whole set of overrides: each value, then the rules across configs, with
/// `fallback` giving the value of a config the topic does not override.
pub fn validate_all(
    overrides: &BTreeMap<String, String>,
    fallback: impl Fn(&str) -> String,
) -> Result<(), String> {
    for (key, value) in overrides {
        validate(key, value)?;
    }
    let value = |key: &str| overrides.get(key).cloned().unwrap_or_else(|| fallback(key));
    let (min_lag, max_lag) = (
        value("min.compaction.lag.ms"),
        value("max.compaction.lag.ms"),
    );
    if super::as_i64(&min_lag) > super::as_i64(&max_lag) {
        return Err(format!(
            "conflict topic config setting min.compaction.lag.ms ({min_lag}) > \
             max.compaction.lag.ms ({max_lag})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_by_name_and_every_default_is_valid() {
        let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|c| c.def.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        for config in TOPIC_CONFIGS {
            let default = config
                .def
                .default
                .expect("every topic config has a default");
            assert_eq!(config.def.validate(default), Ok(()), "{}", config.def.name);
        }
        assert_eq!(TOPIC_CONFIGS.len(), 33, "Kafka 4.1's topic configs");
    }

    #[test]
    fn topic_configs_are_validated_as_kafka_does() {
        assert!(validate("delete.retention.ms", "100").is_ok());
        assert!(validate("min.cleanable.dirty.ratio", "0.1").is_ok());
        assert_eq!(
            validate("message.format.version", "3.0"),
            Err("Unknown topic config name: message.format.version".into())
        );
        assert!(validate("remote.storage.enable", "true")
            .unwrap_err()
            .contains("Tiered Storage"));
        assert!(validate("remote.storage.enable", "false").is_ok());
        assert!(
            validate("cleanup.policy", "").is_ok(),
            "KIP-1161: keep everything"
        );
        let overrides = BTreeMap::from([
            ("min.compaction.lag.ms".to_string(), "10".to_string()),
            ("max.compaction.lag.ms".to_string(), "5".to_string()),
        ]);
        let fallback = |key: &str| default_of(key).unwrap_or_default().to_string();
        assert_eq!(
            validate_all(&overrides, fallback),
            Err("conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)".into())
        );
    }

    #[test]
    fn broker_settings_convert_to_milliseconds() {
        assert_eq!(Unit::Hours.convert("168"), "604800000");
        assert_eq!(Unit::Minutes.convert("1"), "60000");
        assert_eq!(Unit::Same.convert(" 5 "), "5");
    }
}
