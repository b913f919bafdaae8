//! The broker's settings (`Config`): Kafka's names, Kafka's defaults, set from the config file
//! and flags through [`Config::set`], which checks each against Kafka's definition
//! ([`crate::configs::broker`]) and keeps it as a static broker config for DescribeConfigs.

pub use crate::planted::PlantedBug;
use std::collections::BTreeMap;

/// Broker settings, with Kafka's names in the comments.
#[derive(Debug, Clone)]
pub struct Config {
    /// `node.id`
    pub node_id: i32,
    /// Host and port put in Metadata responses (`advertised.listeners`).
    pub advertised_host: String,
    pub advertised_port: i32,
    /// `auto.create.topics.enable`
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of a topic created without a count.
    pub num_partitions: i32,
    /// `default.replication.factor`
    pub default_replication_factor: i16,
    /// Tail cache per partition, in bytes.
    pub tail_cache_bytes_per_partition: usize,
    /// Tail cache of all partitions together, in bytes (`tail.cache.bytes`): past it the
    /// oldest cached batches of any partition go first (each partition keeps its newest).
    pub tail_cache_bytes: usize,
    /// Seeds topic and cluster ids.
    pub seed: u64,
    /// The data directory as the shell names it (`log.dirs`), for DescribeLogDirs and
    /// DescribeConfigs; the core never opens it.
    pub log_dir: String,
    /// Consumer group settings.
    pub groups: crate::groups::GroupConfig,
    /// `log.retention.check.interval.ms`: how often retention deletes old segments.
    pub retention_check_interval_ms: i64,
    /// Appended bytes waiting for their writes, across partitions, beyond which acks=0/1
    /// produces are held until their own batches are written (`unwritten.bytes.max`).
    pub unwritten_bytes_max: usize,
    /// A known bug switched on, so the simulator can show its checkers catch it. Never set in
    /// production.
    pub planted_bug: Option<PlantedBug>,
    /// This broker's shard, and how many there are (thread-per-core, see [`crate::shard`]):
    /// a shard serves the partitions it owns; shard 0 also the topics, groups and configs.
    pub shard: usize,
    pub shards: usize,
    /// `controller.quorum.voters`: the controller quorum's voters, each with the address of its
    /// controller listener (empty: a single node that is its own quorum, with no listener).
    pub controller_quorum: Vec<(crate::replica::NodeId, String)>,
    /// `broker.heartbeat.interval.ms`: how often a broker tells the active controller it is
    /// alive; `broker.session.timeout.ms`: how long the controller waits before fencing it.
    pub broker_heartbeat_interval_ms: i64,
    /// `metadata.snapshot.interval.versions`: the controller quorum snapshots its image (and
    /// rewrites its journal) every this many versions.
    pub quorum_snapshot_every: u64,
    pub broker_session_timeout_ms: i64,
    /// The controller's own elections: `leader.imbalance.check.interval.seconds`,
    /// `auto.leader.rebalance.enable`, `unclean.leader.election.enable`.
    pub elections: crate::controller::quorum::ElectionConfig,
    /// `replica.selector.class` is Kafka's `RackAwareReplicaSelector`: a leader sends a
    /// consumer that names its rack to an in-sync replica in that rack (KIP-392).
    pub rack_aware_reads: bool,
    /// `broker.rack`: where this broker is (a rack, a zone); placement puts a partition's
    /// replicas on different racks where it can.
    pub rack: Option<String>,
    /// Replication (Kafka's names): a follower not caught up for `replica.lag.time.max.ms`
    /// leaves the in-sync set; a follower's fetch waits up to `replica.fetch.wait.max.ms`
    /// for records, takes up to `replica.fetch.max.bytes` a partition and
    /// `replica.fetch.response.max.bytes` a fetch, waits `replica.fetch.backoff.ms` after an
    /// error and `replica.socket.timeout.ms` for an answer.
    pub replica_lag_time_max_ms: i64,
    pub replica_fetch_wait_max_ms: i32,
    pub replica_fetch_max_bytes: i32,
    pub replica_fetch_response_max_bytes: i32,
    pub replica_fetch_backoff_ms: i64,
    pub replica_socket_timeout_ms: i64,
    /// Log compaction (`log.cleaner.*`).
    pub cleaner: CleanerSettings,
    /// Every setting given in the config file or as a flag, by Kafka name, as given: the
    /// static broker configs DescribeConfigs reports and topics fall back to.
    pub static_configs: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            auto_create_topics: true,
            num_partitions: 1,
            default_replication_factor: 1,
            tail_cache_bytes_per_partition: 4 * 1024 * 1024,
            tail_cache_bytes: 256 * 1024 * 1024,
            seed: 0,
            log_dir: "./spate-data".into(),
            groups: crate::groups::GroupConfig::default(),
            retention_check_interval_ms: 300_000,
            unwritten_bytes_max: 64 * 1024 * 1024,
            planted_bug: None,
            shard: 0,
            shards: 1,
            controller_quorum: Vec::new(),
            broker_heartbeat_interval_ms: 2_000,
            quorum_snapshot_every: 1_000,
            broker_session_timeout_ms: 9_000,
            elections: Default::default(),
            rack_aware_reads: false,
            rack: None,
            replica_lag_time_max_ms: 30_000,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_backoff_ms: 1_000,
            replica_socket_timeout_ms: 30_000,
            static_configs: BTreeMap::new(),
            cleaner: CleanerSettings::default(),
        }
    }
}

/// The log cleaner's settings, Kafka's names: `log.cleaner.enable`; `log.cleaner.backoff.ms`,
/// how often it looks for a partition due a cleaning when it has none;
/// `log.cleaner.dedupe.buffer.size`, its key map's bound (each shard cleans one partition at a
/// time, with its even share); `log.cleaner.io.max.bytes.per.second`, the read and write rate it
/// keeps under (each shard its share).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerSettings {
    pub enable: bool,
    pub backoff_ms: i64,
    pub dedupe_buffer_bytes: usize,
    pub io_max_bytes_per_second: f64,
}

impl Default for CleanerSettings {
    fn default() -> Self {
        CleanerSettings {
            enable: true,
            backoff_ms: 15_000,
            dedupe_buffer_bytes: 128 * 1024 * 1024,
            io_max_bytes_per_second: f64::MAX,
        }
    }
}

impl Config {
    /// The configuration of one of `shards` shards. The memory bounds (`tail.cache.bytes`,
    /// `unwritten.bytes.max`) stay the broker's, as DescribeConfigs reports them; each shard
    /// keeps to its even share ([`Config::shard_share`]).
    pub fn for_shard(&self, shard: usize, shards: usize) -> Config {
        Config {
            shard,
            shards: shards.max(1),
            ..self.clone()
        }
    }

    /// Sets a broker config from the config file or a flag: checked against Kafka's definition
    /// (unknown keys and bad values are refused with a message naming them), applied where
    /// Spate acts on it, and kept as a static config.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        crate::configs::broker::check_static(key, value)?;
        let value = value.trim();
        // Checked above: integers parse, within their type's range.
        let int = || value.parse::<i64>().expect("checked");
        let bytes = || usize::try_from(int().max(0)).unwrap_or(usize::MAX);
        let groups = &mut self.groups;
        match key {
            "node.id" | "broker.id" => self.node_id = int() as i32,
            "auto.create.topics.enable" => {
                self.auto_create_topics = value.eq_ignore_ascii_case("true")
            }
            "num.partitions" => self.num_partitions = int() as i32,
            "default.replication.factor" => self.default_replication_factor = int() as i16,
            "log.dirs" | "log.dir" => self.log_dir = value.to_string(),
            "log.retention.check.interval.ms" => self.retention_check_interval_ms = int(),
            "log.cleaner.enable" => self.cleaner.enable = value.eq_ignore_ascii_case("true"),
            "log.cleaner.backoff.ms" => self.cleaner.backoff_ms = int(),
            "log.cleaner.dedupe.buffer.size" => self.cleaner.dedupe_buffer_bytes = bytes(),
            "log.cleaner.io.max.bytes.per.second" => {
                self.cleaner.io_max_bytes_per_second = value.parse().unwrap_or(f64::MAX)
            }
            "tail.cache.bytes" => self.tail_cache_bytes = bytes(),
            "tail.cache.bytes.per.partition" => self.tail_cache_bytes_per_partition = bytes(),
            "unwritten.bytes.max" => self.unwritten_bytes_max = bytes(),
            "group.initial.rebalance.delay.ms" => groups.initial_rebalance_delay_ms = int().max(0),
            "group.min.session.timeout.ms" => groups.min_session_timeout_ms = int() as i32,
            "group.max.session.timeout.ms" => groups.max_session_timeout_ms = int() as i32,
            "group.max.size" => groups.max_size = bytes(),
            "offsets.retention.minutes" => groups.offsets_retention_ms = int() * 60_000,
            "offsets.retention.check.interval.ms" => {
                groups.offsets_retention_check_interval_ms = int()
            }
            "offsets.topic.num.partitions" => groups.offsets_topic_partitions = int() as i32,
            "offsets.topic.replication.factor" => {
                groups.offsets_topic_replication_factor = int() as i16
            }
            "offset.metadata.max.bytes" => groups.offset_metadata_max_bytes = bytes(),
            "controller.quorum.voters" => self.controller_quorum = parse_voters(value)?,
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval_ms = int(),
            "broker.session.timeout.ms" => self.broker_session_timeout_ms = int(),
            "leader.imbalance.check.interval.seconds" => {
                self.elections.check_every_ms = int().saturating_mul(1000)
            }
            "auto.leader.rebalance.enable" => {
                self.elections.auto_rebalance = value.eq_ignore_ascii_case("true")
            }
            "unclean.leader.election.enable" => {
                self.elections.unclean = value.eq_ignore_ascii_case("true")
            }
            "broker.rack" => {
                if value.is_empty() || value.len() > 255 || value.contains(char::is_whitespace) {
                    return Err(format!(
                        "broker.rack '{value}': a rack is 1 to 255 characters without spaces"
                    ));
                }
                self.rack = Some(value.to_string())
            }
            "replica.selector.class" => {
                self.rack_aware_reads = match value.rsplit('.').next().unwrap_or_default() {
                    "RackAwareReplicaSelector" => true,
                    "LeaderSelector" | "" => false,
                    _ => {
                        return Err(format!(
                            "replica.selector.class '{value}': Spate knows \
                             org.apache.kafka.common.replica.RackAwareReplicaSelector and \
                             org.apache.kafka.common.replica.LeaderSelector"
                        ))
                    }
                }
            }
            "replica.lag.time.max.ms" => self.replica_lag_time_max_ms = int(),
            "replica.fetch.wait.max.ms" => self.replica_fetch_wait_max_ms = int() as i32,
            "replica.fetch.max.bytes" => self.replica_fetch_max_bytes = int() as i32,
            "replica.fetch.response.max.bytes" => {
                self.replica_fetch_response_max_bytes = int() as i32
            }
            "replica.fetch.backoff.ms" => self.replica_fetch_backoff_ms = int(),
            "replica.socket.timeout.ms" => self.replica_socket_timeout_ms = int(),
            "metadata.snapshot.interval.versions" => {
                self.quorum_snapshot_every = int().max(1) as u64
            }
            _ => {} // kept as a static config only
        }
        if key == "socket.request.max.bytes" && int() != super::REQUEST_BYTES_MAX as i64 {
            return Err(format!(
                "socket.request.max.bytes: Spate's limit is fixed at {}",
                super::REQUEST_BYTES_MAX
            ));
        }
        self.static_configs
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// This shard's share of a broker-wide bound.
    pub fn shard_share(&self, bound: usize) -> usize {
        (bound / self.shards.max(1)).max(1)
    }
}

/// `controller.quorum.voters` as Kafka writes it: `id@host:port` entries, comma-separated.
/// An error names the entry at fault.
pub fn parse_voters(value: &str) -> Result<Vec<(crate::replica::NodeId, String)>, String> {
    let mut voters: Vec<(crate::replica::NodeId, String)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| {
            format!("controller.quorum.voters: '{entry}' {why} (expected ID@HOST:PORT)")
        };
        let (id, address) = entry.split_once('@').ok_or_else(|| bad("has no '@'"))?;
        let id: crate::replica::NodeId = id
            .trim()
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| bad("does not start with a node id of 0 or more"))?;
        let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
        let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
        if host.is_empty() || !port_ok {
            return Err(bad("does not name a host and a port from 1 to 65535"));
        }
        if voters.iter().any(|(other, _)| *other == id) {
            return Err(bad("names a node id already listed"));
        }
        voters.push((id, address.to_string()));
    }
    voters.sort();
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::parse_voters;

    #[test]
    fn quorum_voters_read_as_kafka_writes_them_and_mistakes_are_named() {
        assert_eq!(
            parse_voters("2@127.0.0.1:9193, 1@localhost:9093").unwrap(),
            vec![(1, "localhost:9093".into()), (2, "127.0.0.1:9193".into())]
        );
        assert_eq!(parse_voters("").unwrap(), vec![]);
        for (bad, word) in [
            ("1@h:1,1@h:2", "already listed"),
            ("x@h:1", "node id"),
            ("-1@h:1", "node id"),
            ("1@h", "no port"),
            ("1h:9", "no '@'"),
            ("1@:9", "host and a port"),
            ("1@h:0", "host and a port"),
            ("1@h:70000", "host and a port"),
        ] {
            let error = parse_voters(bad).unwrap_err();
            assert!(
                error.contains(word) && error.contains(bad.rsplit(',').next().unwrap()),
                "{bad}: {error}"
            );
        }
    }
}
