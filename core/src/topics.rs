//! The topic table: names, ids, partition counts and per-topic configuration, with Kafka's rules
//! for names and configs, and the durable form the table is persisted in.

use crate::partition::Partition;
use std::collections::BTreeMap;

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;
/// Partitions a topic may have on this broker; more is refused with INVALID_PARTITIONS.
pub const PARTITIONS_MAX: i32 = 10_000;

/// A 128-bit topic id, as Kafka's UUIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
    pub fn from_hex(hex: &str) -> Option<TopicId> {
        if hex.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(TopicId(id))
    }
}

/// Kafka's topic name rules: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name '{name}' is not allowed"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!(
            "topic name is {} characters long, the limit is {TOPIC_NAME_BYTES_MAX}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains '{bad}': only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

pub struct Topic {
    pub name: String,
    pub id: TopicId,
    /// The topic's own configs (overrides of what it inherits).
    pub configs: BTreeMap<String, String>,
    /// What each config is when the topic does not override it: the broker's settings
    /// (dynamic or static) or Kafka's defaults ([`crate::configs::broker::BrokerConfigs`]).
    pub inherited: BTreeMap<String, String>,
    pub partitions: Vec<Partition>,
    /// The metadata version that created this topic or last added partitions to it: no data of
    /// the topic is written to disk before that version is persisted, so a crash never leaves
    /// data without its topic or partition.
    pub created_in_version: u64,
}

impl Topic {
    /// The topic's own directory under the data directory: the id keeps a deleted topic's files
    /// apart from a new topic of the same name.
    pub fn dir_name(&self) -> String {
        format!("{}.{}", self.name, self.id.to_hex())
    }

    pub fn new(
        name: &str,
        id: TopicId,
        configs: BTreeMap<String, String>,
        inherited: BTreeMap<String, String>,
        partitions: Vec<Partition>,
        created_in_version: u64,
    ) -> Topic {
        Topic {
            name: name.to_string(),
            id,
            configs,
            inherited,
            partitions,
            created_in_version,
        }
    }

    /// The topic's value of a config: its own, else what it inherits, else Kafka's default.
    pub fn config(&self, key: &str) -> &str {
        self.configs
            .get(key)
            .or_else(|| self.inherited.get(key))
            .map(String::as_str)
            .or_else(|| crate::configs::topic::default_of(key))
            .unwrap_or_else(|| panic!("unknown topic config key {key}"))
    }

    /// A numeric config (validated when set; an inherited value out of range reads as the
    /// nearest one, as a LONG parse of a huge INT would).
    pub fn config_i64(&self, key: &str) -> i64 {
        let value = self.config(key).trim();
        value.parse().unwrap_or_else(|_| {
            crate::configs::topic::default_of(key)
                .and_then(crate::configs::as_i64)
                .unwrap_or(0)
        })
    }

    /// Whether `cleanup.policy` lists `policy` (`delete`: retention by time and size, and
    /// DeleteRecords; none of them: keep everything, KIP-1161).
    pub fn has_cleanup_policy(&self, policy: &str) -> bool {
        crate::configs::list_items(self.config("cleanup.policy")).contains(&policy)
    }

    /// How this topic's partitions are compacted, with a key map of at most `map_bytes`.
    pub fn cleaner_config(&self, map_bytes: usize) -> crate::log::CleanerConfig {
        let ratio = self.config("min.cleanable.dirty.ratio").trim().parse();
        crate::log::CleanerConfig {
            policy: crate::log::compact::CompactionPolicy {
                min_dirty_ratio: ratio.unwrap_or(0.5),
                min_lag_ms: self.config_i64("min.compaction.lag.ms"),
                max_lag_ms: self.config_i64("max.compaction.lag.ms"),
            },
            delete_retention_ms: self.config_i64("delete.retention.ms"),
            map_bytes,
            segment_bytes: self.config_i64("segment.bytes").max(1) as u64,
            index_interval_bytes: self.config_i64("index.interval.bytes").max(0) as u64,
        }
    }

    /// How this topic's segments are cut and indexed.
    pub fn segment_policy(&self) -> crate::log::SegmentPolicy {
        crate::log::SegmentPolicy {
            segment_bytes: self.config_i64("segment.bytes").max(1) as u64,
            segment_ms: self.config_i64("segment.ms"),
            index_interval_bytes: self.config_i64("index.interval.bytes").max(0) as u64,
        }
    }

    /// When the topic's records are fsynced (`flush.messages`, `flush.ms`).
    pub fn flush_policy(&self) -> crate::log::FlushPolicy {
        crate::log::FlushPolicy {
            messages: self.config_i64("flush.messages"),
            ms: self.config_i64("flush.ms"),
        }
    }

    pub fn is_internal(&self) -> bool {
        self.name.starts_with("__")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_name("quickstart-events").is_ok());
        assert!(validate_name("a.b_c-D9").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("..").is_err());
        assert!(validate_name("bad/name").unwrap_err().contains('/'));
        assert!(validate_name(&"x".repeat(250)).is_err());
        assert!(validate_name(&"x".repeat(249)).is_ok());
    }
}
