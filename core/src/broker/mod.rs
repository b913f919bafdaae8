//! The broker as one state machine: Kafka requests in, responses and I/O commands out.
//!
//! Inputs (`handle_*`) and outputs (`poll_*`) are listed in [`crate::io`]. Each Kafka API has its
//! own file here with one `on_<api>` handler. Time enters as `now_ms` (milliseconds since the
//! Unix epoch, as Kafka timestamps are); randomness (topic and cluster ids) comes from the seed in
//! [`Config`].

mod alter_configs;
mod api_versions;
mod config;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_log_dirs;
mod describe_topic_partitions;
mod fetch;
mod find_coordinator;
mod groups;
mod incremental_alter_configs;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod metadata_log;
mod offset_for_leader_epoch;
mod produce;
mod recovery;
mod security;
mod shards;
mod waiters;

pub use crate::api::{supported_versions, SUPPORTED_APIS};
pub use config::{Config, PlantedBug};
pub use recovery::{StartupDisk, StartupReport, SCAN_CHUNK_BYTES};

use crate::api::RequestContext;
use crate::controller::{Controller, MetadataRecord};
use crate::errors;
use crate::group_coordinator::{GroupCoordinator, GroupRequest};
use crate::io::{ConnId, IoCommand, IoOp, IoResult, IoToken, Level, Output, SegmentFile};
use crate::rng::Rng;
use crate::topics::{Topic, TopicId};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Kafka's `socket.request.max.bytes` default: larger frames close the connection.
pub const REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;

/// How long a partition whose write failed (disk full, say) waits before writing again.
pub const STORAGE_RETRY_MS: i64 = 1_000;

/// Why a frame's length prefix is refused; the connection is closed.
pub fn check_frame_size(size: i32) -> Result<usize, String> {
    if size < 0 {
        return Err(format!("negative frame size {size}"));
    }
    let size = size as usize;
    if size > REQUEST_BYTES_MAX {
        return Err(format!(
            "frame size {size} exceeds socket.request.max.bytes ({REQUEST_BYTES_MAX})"
        ));
    }
    if size < 8 {
        return Err(format!(
            "frame size {size} is too small for a request header"
        ));
    }
    Ok(size)
}

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
    TimestampRead {
        list: u64,
        slot: usize,
    },
    Metadata {
        version: u64,
    },
    RemoveDir,
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
    /// The metadata version this broker runs on, and the highest one durable.
    metadata_version: u64,
    metadata_persisted: u64,
    /// Responses and directory removals waiting for a metadata version to be durable.
    after_metadata: Vec<(u64, Output)>,
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
}

/// A clean shutdown in progress.
#[derive(Debug, Default)]
struct ShutdownState {
    /// Partitions whose active segment's index file is written, as of this log end.
    checkpointed: BTreeMap<(TopicId, i32), i64>,
    in_flight: BTreeSet<(TopicId, i32)>,
    mark: MarkState,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum MarkState {
    #[default]
    NotYet,
    Writing,
    Written,
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
        let controller = (config.shard == crate::shard::CONTROL_SHARD)
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
            after_metadata: Vec::new(),
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
        let index = usize::try_from(partition).ok()?;
        Some(
            self.topics
                .get(topic)?
                .partitions
                .get(index)?
                .high_watermark(),
        )
    }

    // ---- inputs ----

    /// A whole request frame (without its length prefix) arrived on `conn`.
    pub fn handle_request(&mut self, now_ms: i64, conn: ConnId, mut frame: Bytes) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.shutdown.is_some() {
            // Clients reconnect and retry elsewhere; one log line said the broker stops.
            self.handle_disconnect(conn);
            return self.outputs.push_back(Output::Close { conn });
        }
        if self.next_retention_ms == 0 {
            self.next_retention_ms = now_ms + self.config.retention_check_interval_ms.max(1);
        }
        let Some((api_key_raw, version)) = frame.get(0..4).map(|b| {
            (
                i16::from_be_bytes([b[0], b[1]]),
                i16::from_be_bytes([b[2], b[3]]),
            )
        }) else {
            return self.close(conn, "request shorter than its header".into());
        };
        self.groups.handle_now(now_ms);
        self.pump_groups();
        let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
            return self.close(conn, format!("unknown API key {api_key_raw}"));
        };
        let header_version = api_key.request_header_version(version);
        let header = match RequestHeader::decode(&mut frame, header_version) {
            Ok(header) => header,
            Err(error) => {
                return self.close(
                    conn,
                    format!("malformed {api_key:?} request header: {error}"),
                )
            }
        };
        let ctx = RequestContext {
            conn,
            api_key,
            version,
            correlation_id: header.correlation_id,
            client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
            now_ms,
        };
        let supported = supported_versions(api_key);
        if api_key == ApiKey::ApiVersions {
            // ApiVersions answers any version (KIP-511): unknown ones get UNSUPPORTED_VERSION in v0.
            return self.on_api_versions(&ctx, &mut frame);
        }
        match supported {
            Some((min, max)) if (min..=max).contains(&version) => {}
            Some((min, max)) => {
                return self.close(
                    conn,
                    format!(
                        "{api_key:?} v{version} is not supported (supported: v{min} to v{max})"
                    ),
                )
            }
            None => {
                return self.close(
                    conn,
                    format!("{api_key:?} (key {api_key_raw}) is not implemented"),
                )
            }
        }
        if let Err(error) = self.dispatch(&ctx, &mut frame) {
            self.close(
                conn,
                format!("malformed {api_key:?} v{version} request: {error}"),
            );
        }
    }

    fn dispatch(&mut self, ctx: &RequestContext, body: &mut Bytes) -> Result<(), String> {
        fn decode<T: Decodable>(body: &mut Bytes, version: i16) -> Result<T, String> {
            T::decode(body, version).map_err(|e| e.to_string())
        }
        let group = |broker: &mut Broker, request| broker.on_group_request(ctx, request);
        if !self.is_control() && !crate::shard::is_partition_api(ctx.api_key) {
            return Err(format!(
                "shard {} serves partition requests only; the router sends the rest to shard 0",
                self.config.shard
            ));
        }
        match ctx.api_key {
            ApiKey::Produce if ctx.version < 3 => {
                return Err(
                    "Produce v0-v2 (message formats v0 and v1) are not supported; use v3 or later"
                        .into(),
                )
            }
            ApiKey::Produce => self.on_produce(ctx, decode(body, ctx.version)?),
            ApiKey::Fetch => self.on_fetch(ctx, decode(body, ctx.version)?),
            ApiKey::ListOffsets => self.on_list_offsets(ctx, decode(body, ctx.version)?),
            ApiKey::Metadata => self.on_metadata(ctx, decode(body, ctx.version)?),
            ApiKey::DescribeTopicPartitions => {
                self.on_describe_topic_partitions(ctx, decode(body, ctx.version)?)
            }
            ApiKey::CreateTopics => self.on_create_topics(ctx, decode(body, ctx.version)?),
            ApiKey::DeleteTopics => self.on_delete_topics(ctx, decode(body, ctx.version)?),
            ApiKey::InitProducerId => self.on_init_producer_id(ctx, decode(body, ctx.version)?),
            ApiKey::DeleteRecords => self.on_delete_records(ctx, decode(body, ctx.version)?),
            ApiKey::OffsetForLeaderEpoch => {
                self.on_offset_for_leader_epoch(ctx, decode(body, ctx.version)?)
            }
            ApiKey::DescribeConfigs => self.on_describe_configs(ctx, decode(body, ctx.version)?),
            ApiKey::AlterConfigs => self.on_alter_configs(ctx, decode(body, ctx.version)?),
            ApiKey::DescribeLogDirs => self.on_describe_log_dirs(ctx, decode(body, ctx.version)?),
            ApiKey::CreatePartitions => self.on_create_partitions(ctx, decode(body, ctx.version)?),
            ApiKey::IncrementalAlterConfigs => {
                self.on_incremental_alter_configs(ctx, decode(body, ctx.version)?)
            }
            ApiKey::DescribeCluster => self.on_describe_cluster(ctx, decode(body, ctx.version)?),
            ApiKey::FindCoordinator => self.on_find_coordinator(ctx, decode(body, ctx.version)?),
            ApiKey::JoinGroup => group(self, GroupRequest::Join(decode(body, ctx.version)?)),
            ApiKey::SyncGroup => group(self, GroupRequest::Sync(decode(body, ctx.version)?)),
            ApiKey::Heartbeat => group(self, GroupRequest::Heartbeat(decode(body, ctx.version)?)),
            ApiKey::LeaveGroup => group(self, GroupRequest::Leave(decode(body, ctx.version)?)),
            ApiKey::OffsetCommit => {
                group(self, GroupRequest::OffsetCommit(decode(body, ctx.version)?))
            }
            ApiKey::OffsetFetch => {
                group(self, GroupRequest::OffsetFetch(decode(body, ctx.version)?))
            }
            ApiKey::OffsetDelete => {
                group(self, GroupRequest::OffsetDelete(decode(body, ctx.version)?))
            }
            ApiKey::ListGroups => group(self, GroupRequest::ListGroups(decode(body, ctx.version)?)),
            ApiKey::DescribeGroups => group(
                self,
                GroupRequest::DescribeGroups(decode(body, ctx.version)?),
            ),
            ApiKey::DeleteGroups => {
                group(self, GroupRequest::DeleteGroups(decode(body, ctx.version)?))
            }
            ApiKey::DescribeAcls => self.on_describe_acls(ctx, decode(body, ctx.version)?),
            ApiKey::CreateAcls => self.on_create_acls(ctx, decode(body, ctx.version)?),
            ApiKey::DeleteAcls => self.on_delete_acls(ctx, decode(body, ctx.version)?),
            ApiKey::SaslHandshake => self.on_sasl_handshake(ctx, decode(body, ctx.version)?),
            ApiKey::SaslAuthenticate => self.on_sasl_authenticate(ctx, decode(body, ctx.version)?),
            other => unreachable!("{other:?} is advertised but has no handler"),
        }
        Ok(())
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
            InFlight::CleanShutdownMark => {
                if let IoResult::Failed(error) = result {
                    self.log(
                        Level::Warn,
                        format!("cannot write the clean-shutdown mark: {error}; the next start scans the active segments"),
                    );
                }
                if let Some(shutdown) = self.shutdown.as_mut() {
                    shutdown.mark = MarkState::Written;
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
            InFlight::TimestampRead { list, slot } => {
                self.on_timestamp_read_done(list, slot, result)
            }
            InFlight::Metadata { version } => self.on_metadata_persisted(version, result),
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
        self.outputs.pop_front()
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
    fn deadlines(&self) -> [(&'static str, Option<i64>); 6] {
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
        ]
    }

    /// When `flush.ms` makes a partition's sync due, if the next round could take it then.
    fn flush_deadline_ms(&self) -> Option<i64> {
        if !self.sync_round.is_empty() {
            return None; // the round's end starts the next one
        }
        self.dirty
            .iter()
            .filter_map(|(name, partition)| {
                let topic = self.topics.get(name)?;
                let log = &topic.partitions.get(*partition as usize)?.log;
                self.is_writable(topic, *partition)
                    .then(|| log.sync_deadline(&topic.flush_policy()))
                    .flatten()
            })
            .min()
    }

    /// Whether any data or metadata is still waiting to be written and synced, or, once
    /// `begin_shutdown` was called, the clean-shutdown checkpoint is not yet written.
    pub fn is_flushing(&self) -> bool {
        !self.dirty.is_empty()
            || self.metadata_persisted < self.metadata_version
            || !self.in_flight.is_empty()
            || self
                .shutdown
                .as_ref()
                .is_some_and(|s| s.mark != MarkState::Written)
    }

    /// Starts a clean shutdown: new requests are refused (their connections closed), writes in
    /// flight finish, and once every partition is flushed its active segment's index file and
    /// then the clean-shutdown mark are written, so the next start need not scan. The shell
    /// waits for `is_flushing` to turn false.
    pub fn begin_shutdown(&mut self) {
        if self.shutdown.is_none() {
            self.shutdown = Some(ShutdownState::default());
            self.share_shutdown();
            self.pump_io();
        }
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

    fn close(&mut self, conn: ConnId, reason: String) {
        self.log(Level::Warn, format!("conn {conn}: closing: {reason}"));
        self.handle_disconnect(conn);
        self.outputs.push_back(Output::Close { conn });
    }

    /// Encodes a response frame (length prefix, header, body) for the request in `ctx`.
    fn encode_response<R: Encodable + HeaderVersion>(
        &mut self,
        ctx: &RequestContext,
        body: &R,
    ) -> Option<Output> {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0);
        let header = ResponseHeader::default().with_correlation_id(ctx.correlation_id);
        let encoded = header
            .encode(&mut buf, R::header_version(ctx.version))
            .and_then(|()| body.encode(&mut buf, ctx.version));
        if let Err(error) = encoded {
            // A response we cannot encode is our bug; the client must not hang on it.
            self.close(
                ctx.conn,
                format!(
                    "cannot encode {:?} v{} response: {error}",
                    ctx.api_key, ctx.version
                ),
            );
            return None;
        }
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        Some(Output::Respond {
            conn: ctx.conn,
            frame: buf.freeze(),
        })
    }

    fn respond<R: Encodable + HeaderVersion>(&mut self, ctx: &RequestContext, body: &R) {
        if let Some(output) = self.encode_response(ctx, body) {
            self.outputs.push_back(output);
        }
    }

    /// Sends the response once the current metadata version is durable.
    fn respond_after_metadata<R: Encodable + HeaderVersion>(
        &mut self,
        ctx: &RequestContext,
        body: &R,
    ) {
        if let Some(output) = self.encode_response(ctx, body) {
            if self.metadata_visible() >= self.metadata_version {
                self.outputs.push_back(output);
            } else {
                self.after_metadata.push((self.metadata_version, output));
            }
        }
    }

    fn issue(&mut self, op: IoOp, what: InFlight) {
        let token = self.next_token;
        self.next_token += 1;
        self.in_flight.insert(token, what);
        self.outputs.push_back(Output::Io(IoCommand { token, op }));
    }

    /// Control: creates a topic on this node (the controller's next version); its data waits
    /// for that version to be durable before it is written. `None` if the controller refused
    /// it (logged; the caller checked the request, so this is a bug).
    fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Option<TopicId> {
        // Ids are drawn from the seed; a restart with the same seed must not reuse one.
        let mut id = TopicId(self.rng.bytes16());
        while self.topics.values().any(|t| t.id == id) {
            id = TopicId(self.rng.bytes16());
        }
        let record = MetadataRecord::TopicCreated {
            id,
            name: name.to_string(),
            replicas: vec![vec![self.config.node_id]; partitions.max(0) as usize],
            configs,
        };
        self.append_metadata(vec![record]).ok()?;
        self.log(
            Level::Info,
            format!(
                "created topic '{name}' with {partitions} partition(s), id {}",
                id.to_hex()
            ),
        );
        Some(id)
    }

    /// Every topic inherits the broker's current settings (after a dynamic broker config
    /// changed, or the control shard's metadata brought new ones).
    fn refresh_topic_fallbacks(&mut self) {
        let fallbacks = self.broker_configs.topic_fallbacks();
        for topic in self.topics.values_mut() {
            topic.inherited = fallbacks.clone();
        }
    }

    /// Batches were appended (`bytes` of them): keeps the tail cache of all partitions within
    /// `tail_cache_bytes`, evicting the oldest batches of any partition first.
    pub(super) fn note_cached(&mut self, bytes: usize) {
        self.tail_cache_estimate += bytes;
        let bound = self.config.shard_share(self.config.tail_cache_bytes);
        if self.tail_cache_estimate <= bound {
            return;
        }
        // Per-partition limits and retention evict too: sum what is really cached.
        let logs = || {
            self.topics
                .values()
                .flat_map(|t| t.partitions.iter().map(|p| &p.log))
        };
        let mut total: usize = logs().map(crate::log::PartitionLog::tail_bytes).sum();
        while total > bound {
            let oldest = self
                .topics
                .values_mut()
                .flat_map(|t| t.partitions.iter_mut().map(|p| &mut p.log))
                .filter_map(|log| Some((log.oldest_evictable_ms()?, log)))
                .min_by_key(|(appended_ms, _)| *appended_ms);
            let Some((_, log)) = oldest else {
                break; // every partition is down to its newest batch
            };
            total -= log.evict_oldest_cached();
        }
        self.tail_cache_estimate = total;
    }

    /// Hands out every write, sync, seal and metadata persist that may start now.
    fn pump_io(&mut self) {
        self.pump_metadata();
        let dirty: Vec<(String, i32)> = self.dirty.iter().cloned().collect();
        for (name, partition) in &dirty {
            self.pump_partition(name, *partition);
        }
        if self.sync_round.is_empty() {
            self.start_sync_round(&dirty);
        }
        if self.shutdown.is_some() {
            self.pump_shutdown();
        }
    }

    /// The partition's log, its topic id and directory, if it may do I/O now.
    fn writable_log(&self, name: &str, partition: i32) -> Option<(TopicId, String)> {
        let topic = self.topics.get(name)?;
        self.is_writable(topic, partition)
            .then(|| (topic.id, topic.dir_name()))
    }

    /// Whether the partition may do I/O now: its topic's metadata is durable, and it is online.
    fn is_writable(&self, topic: &Topic, partition: i32) -> bool {
        topic.created_in_version <= self.metadata_persisted
            && !self.offline.contains(&(topic.id, partition))
    }

    fn pump_partition(&mut self, name: &str, partition: i32) {
        let key = (name.to_string(), partition);
        if !self.topics.contains_key(name) {
            self.dirty.remove(&key);
            return;
        }
        let Some((id, dir)) = self.writable_log(name, partition) else {
            return;
        };
        let topic = self.topics.get_mut(name).expect("checked");
        let log = &mut topic.partitions[partition as usize].log;
        let write = log.poll_write();
        let seal = log.poll_seal();
        if !log.is_dirty() && !log.wants_seal() {
            self.dirty.remove(&key);
        }
        let file = |base_offset| SegmentFile {
            topic_dir: dir.clone(),
            partition,
            base_offset,
        };
        if let Some(write) = write {
            self.issue(
                IoOp::Write {
                    file: file(write.segment_base_offset),
                    position: write.position,
                    data: write.data,
                },
                InFlight::Write {
                    topic: id,
                    partition,
                },
            );
        }
        if let Some((base, data)) = seal {
            self.issue(
                IoOp::WriteFile {
                    path: file(base).index_path(),
                    data,
                },
                InFlight::Seal {
                    topic: id,
                    partition,
                },
            );
        }
    }

    /// Group commit: one flush window syncs every partition with written, unflushed data, all
    /// at once; each partition's produces are answered as soon as its own fsyncs are done.
    /// Partitions whose flush policy does not want a sync yet wait for a later round.
    fn start_sync_round(&mut self, candidates: &[(String, i32)]) {
        let force = self.shutdown.is_some();
        for (name, partition) in candidates {
            let Some((id, dir)) = self.writable_log(name, *partition) else {
                continue;
            };
            let topic = self.topics.get_mut(name.as_str()).expect("writable");
            let policy = topic.flush_policy();
            let log = &mut topic.partitions[*partition as usize].log;
            let Some(round) = log.poll_sync(self.now_ms, &policy, force) else {
                continue;
            };
            let segments = round.segments;
            let name_files =
                round.name_files && self.config.planted_bug != Some(PlantedBug::SkipDirSync);
            if segments.is_empty() {
                // Nothing new reached a file since the last sync (a rewrite after a failure).
                log.handle_sync_done();
                let now_ms = self.now_ms;
                self.on_partition_progress(now_ms, id, *partition);
                continue;
            }
            self.sync_round
                .insert((id, *partition), segments.len() + usize::from(name_files));
            if name_files {
                self.issue(
                    IoOp::SyncDir {
                        dir: crate::io::partition_dir(&dir, *partition),
                    },
                    InFlight::Sync {
                        topic: id,
                        partition: *partition,
                    },
                );
            }
            for base_offset in segments {
                let file = SegmentFile {
                    topic_dir: dir.clone(),
                    partition: *partition,
                    base_offset,
                };
                self.issue(
                    IoOp::Sync { file },
                    InFlight::Sync {
                        topic: id,
                        partition: *partition,
                    },
                );
            }
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
        self.dirty.retain(|(n, _)| n != name);
        self.offline.retain(|(topic, _)| *topic != id);
        self.storage_retry_at.retain(|(topic, _), _| *topic != id);
        self.topics.remove(name).expect("named by the caller")
    }

    /// A new, empty partition this node leads alone.
    fn new_partition(&self) -> crate::partition::Partition {
        let log = crate::log::PartitionLog::new(self.config.tail_cache_bytes_per_partition);
        crate::partition::Partition::single(self.config.node_id, log)
    }

    fn topic_by_id_mut(&mut self, id: TopicId) -> Option<&mut Topic> {
        self.topics.values_mut().find(|t| t.id == id)
    }

    fn on_write_done(&mut self, now_ms: i64, id: TopicId, partition: i32, result: IoResult) {
        let Some(topic) = self.topic_by_id_mut(id) else {
            return;
        };
        let name = topic.name.clone();
        let log = &mut topic.partitions[partition as usize].log;
        match result {
            IoResult::Failed(error) => {
                log.handle_write_failed();
                // Disk full and the like: answer KAFKA_STORAGE_ERROR meanwhile, then try again.
                self.storage_retry_at
                    .insert((id, partition), now_ms + STORAGE_RETRY_MS);
                let retry = format!("{error}; retrying in {STORAGE_RETRY_MS} ms");
                self.take_offline(now_ms, id, &name, partition, &retry);
            }
            _ => {
                log.handle_write_done();
                self.on_partition_progress(now_ms, id, partition);
            }
        }
    }

    fn on_sync_done(&mut self, now_ms: i64, id: TopicId, partition: i32, result: IoResult) {
        let key = (id, partition);
        if let IoResult::Failed(error) = &result {
            self.sync_failed.insert(key);
            if let Some(name) = self
                .topics
                .values()
                .find(|t| t.id == id)
                .map(|t| t.name.clone())
            {
                // After a failed fsync nothing is known about what reached the disk: the
                // partition stays offline until a restart recovers it from what is there.
                let error = format!("{error}; offline until restart");
                self.take_offline(now_ms, id, &name, partition, &error);
            }
        }
        let Some(left) = self.sync_round.get_mut(&key) else {
            return;
        };
        *left -= 1;
        if *left > 0 {
            return;
        }
        self.sync_round.remove(&key);
        if self.sync_failed.remove(&key) {
            return;
        }
        let Some(topic) = self.topic_by_id_mut(id) else {
            return;
        };
        let log = &mut topic.partitions[partition as usize].log;
        log.handle_sync_done();
        if log.wants_seal() {
            let name = topic.name.clone();
            self.dirty.insert((name, partition));
        }
        // A sync moves the flushed offset, which acks=all produces and commits wait on.
        self.on_partition_progress(now_ms, id, partition);
    }

    fn on_seal_done(&mut self, id: TopicId, partition: i32, result: IoResult) {
        let Some(topic) = self.topic_by_id_mut(id) else {
            return;
        };
        let name = topic.name.clone();
        topic.partitions[partition as usize]
            .log
            .handle_seal_done(result == IoResult::Done);
        if let IoResult::Failed(error) = result {
            self.log(
                Level::Warn,
                format!("{name}-{partition}: cannot write a segment's index file: {error}; a restart will scan the segment"),
            );
        }
    }

    /// Deletes the segments retention no longer keeps, in every partition. The new log start
    /// offsets are persisted in the metadata before any file is removed, so a crash never
    /// leaves a partition whose offsets restart lower.
    fn apply_retention(&mut self, now_ms: i64) {
        let mut removals = Vec::new();
        let mut rolled = Vec::new();
        for topic in self.topics.values_mut() {
            if !topic.has_cleanup_policy("delete") {
                continue; // compacted topics (the offsets topic) keep every segment
            }
            let retention_ms = topic.config_i64("retention.ms");
            let retention_bytes = topic.config_i64("retention.bytes");
            let dir = topic.dir_name();
            for (partition, log) in topic.partitions.iter_mut().map(|p| &mut p.log).enumerate() {
                let start = log.log_start_offset();
                let segments = log.segment_bases().len();
                let deleted = log.apply_retention(now_ms, retention_ms, retention_bytes);
                if log.segment_bases().len() > segments - deleted.len() {
                    rolled.push((topic.name.clone(), partition as i32));
                }
                if deleted.is_empty() {
                    continue;
                }
                let paths = deleted
                    .iter()
                    .flat_map(|&base_offset| {
                        let file = SegmentFile {
                            topic_dir: dir.clone(),
                            partition: partition as i32,
                            base_offset,
                        };
                        [file.relative_path(), file.index_path()]
                    })
                    .collect();
                removals.push((
                    format!(
                        "{}-{partition}: retention deleted {} segment(s); log start {start} -> {}",
                        topic.name,
                        deleted.len(),
                        log.log_start_offset()
                    ),
                    paths,
                    (topic.id, partition as i32, log.log_start_offset()),
                ));
            }
        }
        self.dirty.extend(rolled);
        if removals.is_empty() {
            return;
        }
        if !self.is_control() {
            // The control shard persists the new log starts; the files go once it has.
            for (message, paths, start) in removals {
                self.log(Level::Info, message);
                let remove = Output::Io(IoCommand {
                    token: 0,
                    op: IoOp::RemoveFiles { paths },
                });
                self.await_log_starts(vec![start], remove);
            }
            return;
        }
        let starts: Vec<(TopicId, i32, i64)> = removals.iter().map(|(_, _, s)| *s).collect();
        let version = self.append_log_starts(&starts);
        for (message, paths, _) in removals {
            self.log(Level::Info, message);
            self.after_metadata.push((
                version,
                Output::Io(IoCommand {
                    token: 0,
                    op: IoOp::RemoveFiles { paths },
                }),
            ));
        }
    }

    /// At a clean shutdown: each flushed partition's active segment gets its index file, then
    /// the mark that says they are all current.
    fn pump_shutdown(&mut self) {
        // Partitions with nothing to write are current at once; then the rest.
        self.checkpoint_partitions();
        self.checkpoint_partitions();
    }

    fn checkpoint_partitions(&mut self) {
        if !self.offline.is_empty() {
            // A partition that cannot write cannot checkpoint: the next start scans.
            let shutdown = self.shutdown.as_mut().expect("shutting down");
            if shutdown.mark != MarkState::Written {
                shutdown.mark = MarkState::Written;
                if !self.is_control() {
                    self.report_shut_down(false);
                }
            }
            return;
        }
        let mut checkpoints = Vec::new();
        let mut all_current =
            self.dirty.is_empty() && self.metadata_persisted >= self.metadata_version;
        let shutdown = self.shutdown.as_ref().expect("shutting down");
        for topic in self.topics.values() {
            for (partition, log) in topic.partitions.iter().map(|p| &p.log).enumerate() {
                let key = (topic.id, partition as i32);
                if shutdown.checkpointed.get(&key) == Some(&log.log_end_offset()) {
                    continue;
                }
                all_current = false;
                if shutdown.in_flight.contains(&key) || self.offline.contains(&key) {
                    continue;
                }
                if let Some((base_offset, data)) = log.checkpoint_index() {
                    let file = SegmentFile {
                        topic_dir: topic.dir_name(),
                        partition: partition as i32,
                        base_offset,
                    };
                    checkpoints.push((key, file.index_path(), data, log.log_end_offset()));
                } else if !log.is_dirty() {
                    // An empty active segment: the segments before it are sealed.
                    checkpoints.push((key, String::new(), Vec::new(), log.log_end_offset()));
                }
            }
        }
        for (key, path, data, log_end) in checkpoints {
            let shutdown = self.shutdown.as_mut().expect("shutting down");
            if path.is_empty() {
                shutdown.checkpointed.insert(key, log_end);
                continue;
            }
            shutdown.in_flight.insert(key);
            self.issue(
                IoOp::WriteFile { path, data },
                InFlight::Checkpoint {
                    topic: key.0,
                    partition: key.1,
                    log_end,
                },
            );
        }
        let shutdown = self.shutdown.as_ref().expect("shutting down");
        if all_current && shutdown.mark == MarkState::NotYet && self.in_flight.is_empty() {
            if !self.is_control() {
                // The control shard writes the one mark once every shard is here.
                self.shutdown.as_mut().expect("shutting down").mark = MarkState::Written;
                return self.report_shut_down(true);
            }
            match self.peers_shut_down() {
                None => return, // other shards are still writing
                Some(false) => {
                    // Another shard could not checkpoint: the next start scans.
                    self.shutdown.as_mut().expect("shutting down").mark = MarkState::Written;
                    return;
                }
                Some(true) => {}
            }
            self.shutdown.as_mut().expect("shutting down").mark = MarkState::Writing;
            self.issue(
                IoOp::WriteFile {
                    path: crate::io::CLEAN_SHUTDOWN_FILE.into(),
                    data: b"spate clean shutdown\n".to_vec(),
                },
                InFlight::CleanShutdownMark,
            );
        }
    }

    fn on_checkpoint_done(&mut self, id: TopicId, partition: i32, log_end: i64, result: IoResult) {
        let shutdown = self.shutdown.as_mut().expect("only written at shutdown");
        shutdown.in_flight.remove(&(id, partition));
        match result {
            IoResult::Done => {
                shutdown.checkpointed.insert((id, partition), log_end);
            }
            _ => {
                // Without its index file the segment is scanned at the next start: no mark.
                shutdown.mark = MarkState::Written;
                self.log(
                    Level::Warn,
                    "cannot write an index file at shutdown; the next start scans the active segments".into(),
                );
            }
        }
    }

    /// A partition whose storage failed stops taking produces; the others carry on.
    fn take_offline(&mut self, now_ms: i64, id: TopicId, name: &str, partition: i32, error: &str) {
        self.log(
            Level::Error,
            format!("partition {name}-{partition} is offline: storage error: {error}"),
        );
        self.offline.insert((id, partition));
        self.dirty.remove(&(name.to_string(), partition));
        self.fail_waiters(now_ms, id, partition, errors::KAFKA_STORAGE_ERROR);
    }

    /// Brings back partitions whose failed write is due for another try.
    fn retry_storage(&mut self, now_ms: i64) {
        let due: Vec<(TopicId, i32)> = self
            .storage_retry_at
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(key, _)| *key)
            .collect();
        for (id, partition) in due {
            self.storage_retry_at.remove(&(id, partition));
            self.offline.remove(&(id, partition));
            if let Some(topic) = self.topics.values().find(|t| t.id == id) {
                let name = topic.name.clone();
                self.log(
                    Level::Info,
                    format!("partition {name}-{partition}: retrying the failed write"),
                );
                self.dirty.insert((name, partition));
            }
        }
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
