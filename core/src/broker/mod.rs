//! The broker as one state machine: Kafka requests in, responses and I/O commands out. It
//! composes the rooms of a node: the topic table with each partition (`Partition`: log, replica,
//! waiters), the controller (control shard), the group coordinator, and the requests in flight.
//!
//! Inputs (`handle_*`) and outputs (`poll_*`) are listed in [`crate::io`]. Each Kafka API has an
//! adapter file here declaring its versions beside its `on_<api>` handler, collected in
//! `apis.rs` (ApiVersions and dispatch); `storage.rs` hands out writes and syncs, `retention.rs`
//! deletes segments, `shutdown.rs` checkpoints at a clean stop, `waiters.rs` settles what waited
//! for committed records. Time enters as `now_ms` (milliseconds since the Unix epoch, as Kafka
//! timestamps are); randomness (topic and cluster ids) comes from the seed in [`Config`].

mod alter_configs;
mod api_versions;
mod apis;
mod cleaner;
mod config;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod describe_quorum;
mod describe_topic_partitions;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod forwarding;
mod group_loading;
mod group_routing;
mod groups;
mod identity;
mod incremental_alter_configs;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod metadata_log;
mod offset_for_leader_epoch;
mod produce;
mod quorum;
mod recovery;
mod replication;
mod retention;
mod security;
mod shards;
mod shutdown;
mod storage;
mod waiters;

pub use apis::{check_frame_size, supported_versions, Api, REQUEST_BYTES_MAX, SUPPORTED_APIS};
pub use config::{CleanerSettings, Config, PlantedBug};
pub use identity::{Identity, META_PROPERTIES};
pub use recovery::{StartupDisk, StartupReport, SCAN_CHUNK_BYTES};

use crate::api::RequestContext;
use crate::controller::{assignment, Controller, MetadataRecord, PartitionImage};
use crate::errors;
use crate::group_coordinator::GroupCoordinator;
use crate::io::{ConnId, IoCommand, IoOp, IoResult, IoToken, Level, Output};
use crate::rng::Rng;
use crate::topics::{Topic, TopicId};
use bytes::Bytes;
use shutdown::ShutdownState;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How long a partition whose write failed (disk full, say) waits before writing again.
pub const STORAGE_RETRY_MS: i64 = 1_000;

/// What an in-flight I/O command was for.
#[derive(Debug, Clone)]
enum InFlight {
    Write {
        topic: TopicId,
        partition: i32,
    },
    /// One segment's fsync of a partition's sync (see `sync_round`).
    Sync {
        topic: TopicId,
        partition: i32,
    },
    /// A closed segment's index file.
    Seal {
        topic: TopicId,
        partition: i32,
    },
    /// The active segment's index file at a clean shutdown, as of this log end.
    Checkpoint {
        topic: TopicId,
        partition: i32,
        log_end: i64,
    },
    CleanShutdownMark,
    RemoveSegments,
    Read {
        fetch: u64,
        slot: usize,
    },
    /// A read of an offsets partition whose groups this node is loading.
    GroupLoad {
        partition: i32,
        seq: u64,
    },
    TimestampRead {
        list: u64,
        slot: usize,
    },
    Metadata {
        version: u64,
    },
    RemoveDir,
    /// The data directory's `meta.properties`.
    Identity,
    /// The controller quorum's journal, up to the persist numbered `seq`.
    Quorum {
        seq: u64,
    },
    /// A follower's truncation: the bytes around the cut, then its files.
    TruncateRead {
        topic: TopicId,
        partition: i32,
    },
    Truncate {
        topic: TopicId,
        partition: i32,
    },
    /// A step of a partition's cleaning (log compaction).
    Clean {
        topic: TopicId,
        partition: i32,
    },
    /// Where a partition's last cleaning ended ([`crate::io::CLEANER_CHECKPOINT`]).
    CleanerCheckpoint,
}

pub struct Broker {
    config: Config,
    cluster_id: String,
    rng: Rng,
    topics: BTreeMap<String, Topic>,
    /// Partitions whose storage failed: they answer KAFKA_STORAGE_ERROR.
    offline: BTreeSet<(TopicId, i32)>,
    /// Offline partitions whose failed write is retried at the given time.
    storage_retry_at: BTreeMap<(TopicId, i32), i64>,
    /// Partitions with appended data not yet flushed, or a closed segment to seal.
    dirty: BTreeSet<(String, i32)>,
    /// Group commit: the partitions of the flush window being synced, with their fsyncs still
    /// in flight. The next window starts when this one is done, and takes every partition
    /// written meanwhile.
    sync_round: BTreeMap<(TopicId, i32), usize>,
    /// Partitions of the round whose fsync failed.
    sync_failed: BTreeSet<(TopicId, i32)>,
    /// When retention runs next (0: at the first timeout).
    next_retention_ms: i64,
    /// Whether a deadline left due after `handle_timeout` was logged (once per broker).
    overdue_logged: bool,
    /// Set by `begin_shutdown`: requests are refused, and every partition's active segment
    /// gets its index file, then the clean-shutdown mark is written.
    shutdown: Option<ShutdownState>,
    /// The controller of the cluster's metadata (the control shard's; see `metadata_log.rs`).
    controller: Option<Controller>,
    /// The control shard's seat in the controller quorum, when this node is a voter of one
    /// (see `quorum.rs`).
    quorum: Option<quorum::QuorumSeat>,
    /// The cluster id `meta.properties` is to say once the write in flight is done.
    identity_next: Option<String>,
    /// The metadata version this broker runs on, and the highest one durable.
    metadata_version: u64,
    metadata_persisted: u64,
    /// After a failed metadata write: when it is tried again.
    metadata_retry_at: Option<i64>,
    /// Responses and directory removals waiting for a metadata version to be durable.
    after_metadata: Vec<(u64, Output)>,
    /// Control, in a quorum: the highest quorum version this node appended, and responses
    /// waiting until the node's metadata holds a quorum version (then as `after_metadata`).
    quorum_appended: u64,
    after_quorum: Vec<(u64, Output)>,
    /// Requests forwarded to the active controller, and served for other brokers.
    forwarding: forwarding::Forwarding,
    /// The brokers the quorum registered, as this node's metadata mirrors them (every shard).
    brokers: BTreeMap<crate::replica::NodeId, crate::controller::BrokerImage>,
    in_flight: BTreeMap<IoToken, InFlight>,
    next_token: IoToken,
    /// Produces waiting for their records to be committed (or written), by id.
    produces: BTreeMap<u64, produce::PendingProduce>,
    next_produce: u64,
    fetches: BTreeMap<u64, fetch::PendingFetch>,
    next_fetch: u64,
    outputs: VecDeque<Output>,
    /// Producer ids are handed out from a block reserved in the metadata.
    next_producer_id: i64,
    /// Log start offsets read from the metadata at start-up, applied as each partition recovers.
    recovered_log_starts: BTreeMap<(TopicId, i32), i64>,
    /// ListOffsets requests waiting for batches read from disk.
    list_offsets: BTreeMap<u64, list_offsets::PendingListOffsets>,
    /// The group coordinator (see [`crate::group_coordinator`] and `groups.rs`).
    groups: GroupCoordinator,
    /// Peer addresses the shell told us of, for DescribeGroups' client host.
    conn_hosts: BTreeMap<ConnId, String>,
    /// The time of the latest input that carried one (flush policy decisions use it).
    now_ms: i64,
    /// The tail cache's size across partitions when last summed, plus the bytes appended
    /// since: an upper bound, summed again only once it passes `tail_cache_bytes`.
    tail_cache_estimate: usize,
    /// Thread-per-core state (see `shards.rs`).
    sharding: shards::Sharding,
    /// Broker configs by source (static from the config file, dynamic from AlterConfigs).
    broker_configs: crate::configs::broker::BrokerConfigs,
    /// Partition replication: this shard's fetchers, truncations and in-sync asks (see
    /// `replication.rs`).
    replication: replication::Replication,
    /// Log compaction: the partition this shard cleans.
    cleaner: cleaner::CleanerState,
    /// Offsets partitions whose groups this node is loading, having become their leader
    /// (see `group_loading.rs`), and the number of the last load begun.
    group_loads: BTreeMap<i32, group_loading::GroupLoad>,
    next_group_load: u64,
}

impl Broker {
    /// A broker with no topics. Call [`Broker::recover_metadata`] before serving when a data
    /// directory already exists.
    pub fn new(config: Config) -> Self {
        let mut rng = Rng::new(config.seed);
        let cluster_id = rng.cluster_id();
        // What this broker is, whether or not the config file said it.
        let mut static_configs = config.static_configs.clone();
        let listener = format!(
            "PLAINTEXT://{}:{}",
            config.advertised_host, config.advertised_port
        );
        for (key, value) in [
            ("node.id", config.node_id.to_string()),
            ("broker.id", config.node_id.to_string()),
            ("advertised.listeners", listener),
            ("log.dirs", config.log_dir.clone()),
        ] {
            static_configs.entry(key.to_string()).or_insert(value);
        }
        let controller = (config.shard == crate::placement::CONTROL_SHARD)
            .then(|| Controller::new_cluster(config.node_id, cluster_id.clone()));
        let groups = GroupCoordinator::new(config.groups.clone(), config.seed, config.planted_bug);
        Broker {
            groups,
            config,
            cluster_id,
            rng,
            topics: BTreeMap::new(),
            offline: BTreeSet::new(),
            storage_retry_at: BTreeMap::new(),
            dirty: BTreeSet::new(),
            sync_round: BTreeMap::new(),
            sync_failed: BTreeSet::new(),
            next_retention_ms: 0,
            overdue_logged: false,
            shutdown: None,
            // Version 1 is the empty table of a fresh data directory; it is persisted first.
            controller,
            metadata_version: 1,
            metadata_persisted: 0,
            metadata_retry_at: None,
            after_metadata: Vec::new(),
            quorum_appended: 0,
            after_quorum: Vec::new(),
            brokers: BTreeMap::new(),
            forwarding: Default::default(),
            quorum: None,
            identity_next: None,
            in_flight: BTreeMap::new(),
            next_token: 1,
            produces: BTreeMap::new(),
            next_produce: 1,
            fetches: BTreeMap::new(),
            next_fetch: 1,
            outputs: VecDeque::new(),
            next_producer_id: 0,
            recovered_log_starts: BTreeMap::new(),
            list_offsets: BTreeMap::new(),
            conn_hosts: BTreeMap::new(),
            now_ms: 0,
            tail_cache_estimate: 0,
            sharding: shards::Sharding::default(),
            replication: Default::default(),
            cleaner: Default::default(),
            group_loads: BTreeMap::new(),
            next_group_load: 0,
            broker_configs: crate::configs::broker::BrokerConfigs {
                static_values: static_configs,
                ..Default::default()
            },
        }
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The bug the simulator planted, if any (never in production).
    pub fn planted_bug(&self) -> Option<PlantedBug> {
        self.config.planted_bug
    }

    /// This broker's shard, and how many there are.
    pub fn shard(&self) -> usize {
        self.config.shard
    }
    pub fn shards(&self) -> usize {
        self.config.shards.max(1)
    }

    /// A group's state name, generation and member count, if the group exists.
    pub fn group_summary(&self, group_id: &str) -> Option<(&'static str, i32, usize)> {
        let group = self.groups.group(group_id)?;
        Some((group.state.name(), group.generation_id, group.members.len()))
    }

    /// A group's committed offsets, by (topic, partition).
    pub fn committed_offsets(&self, group_id: &str) -> BTreeMap<(String, i32), i64> {
        let Some(group) = self.groups.group(group_id) else {
            return BTreeMap::new();
        };
        group
            .offsets
            .iter()
            .map(|(key, o)| (key.clone(), o.offset))
            .collect()
    }

    /// A partition's high watermark, if the topic and partition exist.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partition(topic, partition).map(|p| p.high_watermark())
    }

    /// A partition, if the topic and partition exist (only the shard that serves it has its
    /// log).
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&crate::partition::Partition> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(index)
    }

    /// The topic id and leader epoch of each partition this shard serves, by (topic,
    /// partition).
    pub fn leader_epochs(&self) -> BTreeMap<(String, i32), (TopicId, i32)> {
        let mut epochs = BTreeMap::new();
        for topic in self.topics.values() {
            for (index, partition) in topic.partitions.iter().enumerate() {
                if self.owns(&topic.name, index as i32) {
                    let epoch = partition.replica.leader_epoch();
                    epochs.insert((topic.name.clone(), index as i32), (topic.id, epoch));
                }
            }
        }
        epochs
    }

    /// The partitions this shard leads: (topic id, topic, partition, leader epoch).
    pub fn led_partitions(&self) -> Vec<(TopicId, String, i32, i32)> {
        let mut led = Vec::new();
        for topic in self.topics.values() {
            for (index, partition) in topic.partitions.iter().enumerate() {
                if partition.replica.is_leader() && self.owns(&topic.name, index as i32) {
                    let epoch = partition.replica.leader_epoch();
                    led.push((topic.id, topic.name.clone(), index as i32, epoch));
                }
            }
        }
        led
    }

    // ---- inputs ----

    /// A whole request frame (without its length prefix) arrived on `conn`.
    pub fn handle_request(&mut self, now_ms: i64, conn: ConnId, frame: Bytes) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.shutdown.is_some() {
            // Clients reconnect and retry elsewhere; one log line said the broker stops.
            self.handle_disconnect(conn);
            return self.outputs.push_back(Output::Close { conn });
        }
        if self.next_retention_ms == 0 {
            self.next_retention_ms = now_ms + self.config.retention_check_interval_ms.max(1);
        }
        self.start_cleaner_clock(now_ms);
        self.groups.handle_now(now_ms);
        self.pump_groups();
        self.on_frame(now_ms, conn, frame);
    }

    /// An I/O command finished.
    pub fn handle_io_done(&mut self, now_ms: i64, token: IoToken, result: IoResult) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(what) = self.in_flight.remove(&token) else {
            return self.log(
                Level::Error,
                format!("completion for unknown I/O token {token}"),
            );
        };
        match what {
            InFlight::Write { topic, partition } => {
                self.on_write_done(now_ms, topic, partition, result)
            }
            InFlight::Sync { topic, partition } => {
                self.on_sync_done(now_ms, topic, partition, result)
            }
            InFlight::Seal { topic, partition } => self.on_seal_done(topic, partition, result),
            InFlight::Checkpoint {
                topic,
                partition,
                log_end,
            } => self.on_checkpoint_done(topic, partition, log_end, result),
            InFlight::CleanShutdownMark => self.on_mark_done(result),
            InFlight::CleanerCheckpoint => {
                if let IoResult::Failed(error) = result {
                    self.log(
                        Level::Warn,
                        format!("cannot write a cleaner checkpoint: {error}; the next start cleans the whole log once"),
                    );
                }
            }
            InFlight::RemoveSegments => {
                if let IoResult::Failed(error) = result {
                    self.log(
                        Level::Warn,
                        format!("could not remove a deleted segment: {error}"),
                    );
                }
            }
            InFlight::Read { fetch, slot } => self.on_read_done(now_ms, fetch, slot, result),
            InFlight::GroupLoad { partition, seq } => {
                self.on_group_load_read(partition, seq, result)
            }
            InFlight::TimestampRead { list, slot } => {
                self.on_timestamp_read_done(list, slot, result)
            }
            InFlight::Metadata { version } => self.on_metadata_persisted(version, result),
            InFlight::Identity => self.on_identity_written(result),
            InFlight::Quorum { seq } => self.on_quorum_persisted(seq, result),
            InFlight::TruncateRead { topic, partition } => {
                self.on_truncate_read(topic, partition, result)
            }
            InFlight::Truncate { topic, partition } => {
                self.on_truncate_done(now_ms, topic, partition, result)
            }
            InFlight::Clean { topic, partition } => {
                self.on_clean_done(now_ms, topic, partition, result)
            }
            InFlight::RemoveDir => {
                if let IoResult::Failed(error) = result {
                    self.log(
                        Level::Warn,
                        format!("could not remove a deleted topic's directory: {error}"),
                    );
                }
            }
        }
        self.pump_io();
        self.pump_replication(now_ms);
        self.pump_group_loads();
    }

    /// Time has reached a deadline from [`Broker::poll_timeout`].
    pub fn handle_timeout(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.groups.handle_now(now_ms);
        self.retry_storage(now_ms);
        if self.next_retention_ms == 0 || now_ms >= self.next_retention_ms {
            if self.next_retention_ms > 0 {
                self.apply_retention(now_ms);
            }
            self.next_retention_ms = now_ms + self.config.retention_check_interval_ms.max(1);
        }
        self.groups.handle_timeout(now_ms);
        self.pump_groups();
        self.expire_produces(now_ms);
        self.expire_fetches(now_ms);
        self.pump_cleaner(now_ms);
        self.replication_timeout(now_ms);
        self.quorum_timeout(now_ms);
        if self.metadata_retry_at.is_some_and(|at| at <= now_ms) {
            self.metadata_retry_at = None;
        }
        self.pump_io();
        let overdue = self.overdue_deadlines(now_ms);
        if !overdue.is_empty() && !self.overdue_logged {
            self.overdue_logged = true;
            self.log(
                Level::Error,
                format!(
                    "internal: deadlines still due after the timeout at {now_ms} ms: {} \
                     (logged once; the shell retries them at a bounded rate)",
                    overdue.join(", ")
                ),
            );
        }
    }

    /// The connection closed: its waiting requests are dropped (their writes still complete).
    pub fn handle_disconnect(&mut self, conn: ConnId) {
        self.forget_forwards(conn);
        self.produces.retain(|_, p| p.conn() != conn);
        self.fetches.retain(|_, f| f.conn() != conn);
        self.list_offsets.retain(|_, l| l.conn() != conn);
        self.groups.handle_disconnect(conn);
        self.conn_hosts.remove(&conn);
    }

    /// A connection opened from `peer` (an address as the shell writes it): group members are
    /// described with it.
    pub fn handle_connect(&mut self, conn: ConnId, peer: &str) {
        self.conn_hosts.insert(
            conn,
            format!("/{}", peer.rsplit_once(':').map_or(peer, |(host, _)| host)),
        );
    }

    // ---- outputs ----

    pub fn poll_output(&mut self) -> Option<Output> {
        let output = self.outputs.pop_front()?;
        Some(self.route_forwarded(output))
    }

    /// The earliest deadline of a waiting request, if any. After `handle_timeout(now)` it is
    /// later than `now`: every deadline due then was consumed (the shells and the simulator
    /// check this, see [`Broker::overdue_deadlines`]).
    pub fn poll_timeout(&self) -> Option<i64> {
        self.deadlines().into_iter().filter_map(|(_, d)| d).min()
    }

    /// The kinds of deadline at or before `now`: empty right after `handle_timeout(now)`,
    /// unless a bug leaves one due (which would make a shell fire its timer again at once).
    pub fn overdue_deadlines(&self, now_ms: i64) -> Vec<&'static str> {
        self.deadlines()
            .into_iter()
            .filter(|(_, d)| d.is_some_and(|d| d <= now_ms))
            .map(|(name, _)| name)
            .collect()
    }

    /// Each kind of deadline with its earliest instance.
    fn deadlines(&self) -> [(&'static str, Option<i64>); 10] {
        [
            (
                "produce timeout",
                self.produces.values().map(|p| p.deadline_ms()).min(),
            ),
            (
                "fetch max wait",
                self.fetches
                    .values()
                    .filter_map(|f| f.parked_deadline_ms())
                    .min(),
            ),
            (
                "storage retry",
                self.storage_retry_at.values().copied().min(),
            ),
            ("group timers", self.groups.poll_timeout()),
            ("flush.ms", self.flush_deadline_ms()),
            (
                "retention check",
                (self.next_retention_ms > 0).then_some(self.next_retention_ms),
            ),
            (
                "controller quorum",
                self.quorum.as_ref().and_then(|q| q.deadline()),
            ),
            ("metadata retry", self.metadata_retry_at),
            ("replication", self.replication.deadline()),
            ("log cleaner", self.cleaner_deadline()),
        ]
    }

    /// Memory held for reads, in bytes: every partition's tail cache and read-ahead.
    pub fn cached_bytes(&self) -> usize {
        self.topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.log.cached_bytes())
            .sum()
    }

    // ---- helpers shared by the handlers ----

    fn log(&mut self, level: Level, message: String) {
        self.outputs.push_back(Output::Log { level, message });
    }

    /// Control: creates a topic with its partitions on `replicas` (the controller's next
    /// version); its data waits for that version to be durable before it is written. The
    /// controller's refusal if it refused (on a quorum: this node is not the active
    /// controller, or the topic was created meanwhile).
    fn create_topic(
        &mut self,
        name: &str,
        replicas: Vec<Vec<crate::replica::NodeId>>,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicId, String> {
        // Ids are drawn from the seed; a restart with the same seed must not reuse one.
        let mut id = TopicId(self.rng.bytes16());
        while self.topics.values().any(|t| t.id == id) {
            id = TopicId(self.rng.bytes16());
        }
        let partitions = replicas.len();
        let factor = replicas.first().map_or(1, Vec::len);
        let ask = self
            .in_quorum()
            .then(|| crate::controller::quorum::CreateTopicAsk {
                name: name.to_string(),
                partitions: partitions as i32,
                replication_factor: factor as i32,
                configs: configs.clone(),
            });
        let record = MetadataRecord::TopicCreated {
            id,
            name: name.to_string(),
            replicas,
            configs,
        };
        if let Err(error) = self.append_metadata(vec![record]) {
            if let Some(ask) = ask.filter(|_| error == metadata_log::NOT_ACTIVE) {
                // The active controller creates it; this node sees it once committed.
                self.ask_controller(ask.encode());
            }
            return Err(error);
        }
        let copies = match factor {
            1 => String::new(),
            n => format!(" and replication factor {n}"),
        };
        self.log(
            Level::Info,
            format!(
                "created topic '{name}' with {partitions} partition(s){copies}, id {}",
                id.to_hex()
            ),
        );
        Ok(id)
    }

    /// The brokers new partitions may be placed on, with their racks: the unfenced ones the
    /// active controller knows of (its own image, which may hold changes not yet mirrored).
    fn placeable_brokers(&self) -> Vec<(crate::replica::NodeId, Option<String>)> {
        let brokers = match self.quorum.as_ref().map(|s| s.controller()) {
            Some(c) if c.is_active() => &c.image().brokers,
            _ => &self.brokers,
        };
        self.live_brokers(brokers)
            .into_iter()
            .map(|(id, broker)| (id, broker.rack))
            .collect()
    }

    /// The unfenced brokers of `brokers`, by id; this node alone where none is known (a node
    /// that is its own quorum, or before any registration).
    fn live_brokers(
        &self,
        brokers: &BTreeMap<crate::replica::NodeId, crate::controller::BrokerImage>,
    ) -> Vec<(crate::replica::NodeId, crate::controller::BrokerImage)> {
        let live: Vec<_> = brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(&id, b)| (id, b.clone()))
            .collect();
        match live.is_empty() {
            true => vec![(self.config.node_id, self.own_broker())],
            false => live,
        }
    }

    /// This node as a broker of its own (a node without a quorum lists itself).
    fn own_broker(&self) -> crate::controller::BrokerImage {
        let port = u16::try_from(self.config.advertised_port).unwrap_or(0);
        let host = &self.config.advertised_host;
        crate::controller::BrokerImage::registered(0, host, port, self.config.rack.clone())
    }

    /// Places `partitions` new partitions with `factor` replicas each over the live brokers
    /// (`controller::assignment`: leaders spread evenly, replicas over racks where brokers
    /// name them). INVALID_REPLICATION_FACTOR when there are fewer brokers than the factor.
    fn place_replicas(
        &mut self,
        partitions: i32,
        factor: i32,
    ) -> Result<Vec<Vec<crate::replica::NodeId>>, (i16, String)> {
        let brokers = self.placeable_brokers();
        let count = brokers.len();
        if factor < 1 || factor as usize > count {
            return Err((
                errors::INVALID_REPLICATION_FACTOR,
                format!("Replication factor: {factor} larger than available brokers: {count}."),
            ));
        }
        let start = (self.rng.next_u64() % count as u64) as usize;
        let shift = (self.rng.next_u64() % count as u64) as usize;
        let partitions = partitions.max(0) as usize;
        Ok(assignment::assign(
            &brokers,
            partitions,
            factor as usize,
            start,
            shift,
        ))
    }

    /// The placement of a topic created without being asked for (auto-creation, internal
    /// topics): the default replication factor, or as many brokers as there are if fewer.
    fn default_placement(&mut self, partitions: i32) -> Vec<Vec<crate::replica::NodeId>> {
        let factor = i32::from(self.config.default_replication_factor)
            .clamp(1, self.placeable_brokers().len() as i32);
        self.place_replicas(partitions, factor)
            .expect("a factor within the brokers")
    }

    /// Every topic inherits the broker's current settings (after a dynamic broker config
    /// changed, or the control shard's metadata brought new ones).
    fn refresh_topic_fallbacks(&mut self) {
        let fallbacks = self.broker_configs.topic_fallbacks();
        for topic in self.topics.values_mut() {
            topic.inherited = fallbacks.clone();
        }
    }

    fn partition_log_mut(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Option<&mut crate::log::PartitionLog> {
        let index = usize::try_from(partition).ok()?;
        let partition = self.topics.get_mut(topic)?.partitions.get_mut(index)?;
        Some(&mut partition.log)
    }

    /// Takes a deleted topic out of the table: requests waiting on its partitions are answered
    /// UNKNOWN_TOPIC_OR_PARTITION, and nothing of it is written or retried any more.
    fn remove_topic(&mut self, now_ms: i64, name: &str) -> Topic {
        let (id, partitions) = {
            let topic = &self.topics[name];
            (topic.id, topic.partitions.len() as i32)
        };
        for partition in 0..partitions {
            self.fail_waiters(now_ms, id, partition, errors::UNKNOWN_TOPIC_OR_PARTITION);
        }
        self.replication.forget_topic(id);
        self.dirty.retain(|(n, _)| n != name);
        self.offline.retain(|(topic, _)| *topic != id);
        self.storage_retry_at.retain(|(topic, _), _| *topic != id);
        self.topics.remove(name).expect("named by the caller")
    }

    /// A new, empty partition placed as `placed` says (led here, elsewhere, or nowhere).
    fn new_partition(&self, placed: &PartitionImage) -> crate::partition::Partition {
        let log = crate::log::PartitionLog::new(self.config.tail_cache_bytes_per_partition);
        crate::partition::Partition::placed(self.config.node_id, placed, log, self.now_ms)
    }

    /// Whether this node runs on a controller quorum (else it is a cluster of one).
    fn in_quorum(&self) -> bool {
        !self.config.controller_quorum.is_empty()
    }

    fn topic_by_id_mut(&mut self, id: TopicId) -> Option<&mut Topic> {
        self.topics.values_mut().find(|t| t.id == id)
    }

    /// Performs what waited for a metadata version that every shard now has.
    fn release_after_metadata(&mut self) {
        let version = self.metadata_visible();
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .after_metadata
            .drain(..)
            .partition(|(v, _)| *v <= version);
        self.after_metadata = waiting;
        for (_, output) in ready {
            match output {
                Output::Io(IoCommand {
                    op: op @ IoOp::RemoveFiles { .. },
                    ..
                }) => self.issue(op, InFlight::RemoveSegments),
                Output::Io(IoCommand { op, .. }) => self.issue(op, InFlight::RemoveDir),
                other => self.outputs.push_back(other),
            }
        }
    }
}

#[cfg(test)]
mod sharded_tests;
#[cfg(test)]
mod tests;
