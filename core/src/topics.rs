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

/// A topic as persisted: everything but the logs, which live in their own files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub id: TopicId,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
    /// Log start offsets moved by DeleteRecords; partitions not listed start at 0.
    pub log_start_offsets: BTreeMap<i32, i64>,
}

const METADATA_MAGIC: &str = "spate-metadata v1";

/// Everything the broker persists besides the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataImage {
    pub cluster_id: String,
    /// Producer ids below this may have been handed out; a restarted broker starts above it.
    pub producer_id_limit: i64,
    pub topics: Vec<TopicRecord>,
    /// Dynamic broker configs of this broker, and the dynamic cluster-wide defaults.
    pub broker_configs: BTreeMap<String, String>,
    pub cluster_configs: BTreeMap<String, String>,
}

/// The persisted metadata: a small text file, one topic a line, tab-separated, each followed by
/// a `start` line per partition whose log start offset is above 0 (files without `start` lines,
/// from before DeleteRecords, read as all partitions starting at 0), then a `broker_config` or
/// `cluster_config` line per dynamic broker config.
pub fn encode_metadata(image: &MetadataImage) -> Vec<u8> {
    let mut out = format!(
        "{METADATA_MAGIC}\ncluster\t{}\nproducer_ids\t{}\n",
        image.cluster_id, image.producer_id_limit
    );
    for topic in &image.topics {
        out.push_str(&format!(
            "topic\t{}\t{}\t{}",
            topic.id.to_hex(),
            topic.name,
            topic.partitions
        ));
        for (key, value) in &topic.configs {
            out.push_str(&format!("\t{key}={value}"));
        }
        out.push('\n');
        for (partition, offset) in &topic.log_start_offsets {
            out.push_str(&format!(
                "start\t{}\t{partition}\t{offset}\n",
                topic.id.to_hex()
            ));
        }
    }
    for (tag, configs) in [
        ("broker_config", &image.broker_configs),
        ("cluster_config", &image.cluster_configs),
    ] {
        for (key, value) in configs {
            out.push_str(&format!("{tag}\t{key}={value}\n"));
        }
    }
    out.into_bytes()
}

/// Checks a decoded metadata image before the broker trusts it: valid and unique names and ids,
/// partition counts within bounds, valid configs, a producer-id limit with room to grow. A
/// damaged or hand-edited file is refused with a message, never half-loaded.
pub fn check_metadata(image: &MetadataImage) -> Result<(), String> {
    if !(0..=i64::MAX / 2).contains(&image.producer_id_limit) {
        return Err(format!(
            "metadata: producer id limit {} is out of range",
            image.producer_id_limit
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    let mut ids = std::collections::BTreeSet::new();
    for topic in &image.topics {
        validate_name(&topic.name).map_err(|e| format!("metadata: {e}"))?;
        if !names.insert(&topic.name) {
            return Err(format!("metadata: topic '{}' appears twice", topic.name));
        }
        if !ids.insert(topic.id) {
            return Err(format!(
                "metadata: topic id {} appears twice",
                topic.id.to_hex()
            ));
        }
        if !(1..=PARTITIONS_MAX).contains(&topic.partitions) {
            return Err(format!(
                "metadata: topic '{}' has {} partitions",
                topic.name, topic.partitions
            ));
        }
        for (key, value) in &topic.configs {
            crate::configs::topic::validate(key, value)
                .map_err(|e| format!("metadata: topic '{}': {e}", topic.name))?;
        }
    }
    for (configs, per_broker) in [
        (&image.broker_configs, true),
        (&image.cluster_configs, false),
    ] {
        crate::configs::broker::check_dynamic(configs, per_broker)
            .map_err(|e| format!("metadata: dynamic broker configs: {e}"))?;
    }
    Ok(())
}

/// Reads what [`encode_metadata`] wrote; an error names the line that is wrong.
pub fn decode_metadata(data: &[u8]) -> Result<MetadataImage, String> {
    let text = std::str::from_utf8(data).map_err(|_| "metadata file is not UTF-8".to_string())?;
    let mut lines = text.lines();
    if lines.next() != Some(METADATA_MAGIC) {
        return Err(format!(
            "metadata file does not start with '{METADATA_MAGIC}'"
        ));
    }
    let mut cluster_id = None;
    let mut producer_id_limit = 0;
    let mut topics = Vec::new();
    let (mut broker_configs, mut cluster_configs) = (BTreeMap::new(), BTreeMap::new());
    for (number, line) in lines.enumerate() {
        let bad = || format!("metadata file line {}: cannot parse '{line}'", number + 2);
        let mut fields = line.split('\t');
        match fields.next() {
            Some("cluster") => cluster_id = Some(fields.next().ok_or_else(bad)?.to_string()),
            Some("producer_ids") => {
                producer_id_limit = fields.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?
            }
            Some("topic") => {
                let id = fields.next().and_then(TopicId::from_hex).ok_or_else(bad)?;
                let name = fields.next().ok_or_else(bad)?.to_string();
                let partitions = fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let mut configs = BTreeMap::new();
                for field in fields {
                    let (key, value) = field.split_once('=').ok_or_else(bad)?;
                    configs.insert(key.to_string(), value.to_string());
                }
                topics.push(TopicRecord {
                    name,
                    id,
                    partitions,
                    configs,
                    log_start_offsets: BTreeMap::new(),
                });
            }
            Some("start") => {
                let id = fields.next().and_then(TopicId::from_hex).ok_or_else(bad)?;
                let partition: i32 = fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let offset: i64 = fields.next().and_then(|o| o.parse().ok()).ok_or_else(bad)?;
                // A start line follows its topic's line.
                let topic = topics.iter_mut().find(|t| t.id == id).ok_or_else(bad)?;
                if !(0..topic.partitions).contains(&partition) || offset < 0 {
                    return Err(bad());
                }
                topic.log_start_offsets.insert(partition, offset);
            }
            Some(tag @ ("broker_config" | "cluster_config")) => {
                let (key, value) = fields
                    .next()
                    .and_then(|f| f.split_once('='))
                    .ok_or_else(bad)?;
                let configs = match tag {
                    "broker_config" => &mut broker_configs,
                    _ => &mut cluster_configs,
                };
                configs.insert(key.to_string(), value.to_string());
            }
            Some("") => {}
            _ => return Err(bad()),
        }
    }
    let cluster_id = cluster_id.ok_or_else(|| "metadata file has no cluster line".to_string())?;
    Ok(MetadataImage {
        cluster_id,
        producer_id_limit,
        topics,
        broker_configs,
        cluster_configs,
    })
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

    #[test]
    fn metadata_round_trips() {
        let topics = vec![TopicRecord {
            name: "orders".into(),
            id: TopicId([7; 16]),
            partitions: 3,
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
            log_start_offsets: BTreeMap::from([(2, 17)]),
        }];
        let image = MetadataImage {
            cluster_id: "abc".into(),
            producer_id_limit: 2000,
            topics,
            broker_configs: BTreeMap::from([("num.io.threads".to_string(), "4".to_string())]),
            cluster_configs: BTreeMap::from([("log.retention.ms".to_string(), "9".to_string())]),
        };
        let bytes = encode_metadata(&image);
        assert_eq!(decode_metadata(&bytes).unwrap(), image);
        assert!(decode_metadata(b"garbage").is_err());
        assert!(decode_metadata(b"spate-metadata v1\ncluster\tx\ntopic\tzz\n").is_err());
    }

    #[test]
    fn metadata_without_start_lines_reads_as_log_start_zero() {
        let id = TopicId([7; 16]).to_hex();
        let old = format!("spate-metadata v1\ncluster\tabc\nproducer_ids\t0\ntopic\t{id}\tt\t2\n");
        let image = decode_metadata(old.as_bytes()).unwrap();
        assert!(image.topics[0].log_start_offsets.is_empty());
        let orphan = format!("{old}start\t{}\t0\t5\n", TopicId([8; 16]).to_hex());
        assert!(
            decode_metadata(orphan.as_bytes()).is_err(),
            "a start line needs its topic"
        );
        let out_of_range = format!("{old}start\t{id}\t2\t5\n");
        assert!(decode_metadata(out_of_range.as_bytes()).is_err());
    }
}
