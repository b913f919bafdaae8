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
use super::ConfigDef;
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

mod table;
pub use table::BROKER_CONFIGS;

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
