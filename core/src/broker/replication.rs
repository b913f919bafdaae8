//! Partition replication (issue 16), for the broker: followers copy their leaders' logs, the
//! leader turns what they hold into the high watermark, and in-sync set changes go to the
//! controller.
//!
//! **Followers fetch with Kafka's own Fetch** (v12, `replica_id` = the follower's node id) from
//! the leader's client listener, as Kafka's replica fetchers do: the leader serves them
//! through the path consumers take (the router splits a fetch over shards, the tail cache and
//! the disk reads serve it, a fetch with nothing new waits in the long poll), and `kcat` or a
//! packet capture reads the traffic. Each shard fetches the partitions it owns, over one
//! connection per leader node (the shell's): a node pair has as many connections as shards,
//! and with the same shard count on both sides (the usual case) a follower shard's fetch is
//! served by the leader shard that owns the same partitions, so no replicated byte crosses a
//! core on either side.
//!
//! **A follower's fetch offset is what it holds on disk**: it fetches again only once the
//! records of the last answer are fsynced, so the leader reads each follower's durable offset
//! from its fetch, and the high watermark (the lowest durable offset over the in-sync set)
//! means "on disk on every in-sync replica". One fetch per leader is in flight at a time; an
//! answer that does not match it (late, duplicated) is dropped.
//!
//! **Divergence** (KIP-320): a fetch names the epoch of the follower's last batch; a leader
//! that does not have that epoch ending at or after the fetch offset answers with where its
//! log diverges, and the follower truncates there (Kafka's rules, see
//! [`truncation_point`]) before it fetches again.
//!
//! **In-sync changes** (Kafka's AlterPartition): the leader asks the active controller for a
//! set without a follower that has not caught up for `replica.lag.time.max.ms`, or with one
//! that holds everything committed again; the ask names its leader and partition epochs, and
//! the leader learns the answer from the committed metadata (it asks again if none comes).

use super::{Broker, InFlight, Output};
use crate::batch;
use crate::controller::quorum::AlterInSyncAsk;
use crate::errors;
use crate::io::{IoOp, IoResult, Level, SegmentFile, ShardMessage};
use crate::log::Truncation;
use crate::replica::{NodeId, Role};
use crate::topics::TopicId;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::{BTreeMap, BTreeSet};

/// The Fetch version followers send: the first with KIP-320's divergence in the answer.
const REPLICA_FETCH_VERSION: i16 = 12;
/// An in-sync change asked for and not yet seen in the metadata is asked again after this.
const ASK_AGAIN_MS: i64 = 2_000;
/// How often a leader checks its followers' lag, at least.
const IN_SYNC_CHECK_MS: i64 = 1_000;

/// This shard's replication state.
#[derive(Default)]
pub(super) struct Replication {
    fetchers: BTreeMap<NodeId, Fetcher>,
    next_correlation: i32,
    /// In-sync changes asked of the controller: (the set, the partition epoch then, when).
    asked: BTreeMap<(TopicId, i32), (Vec<NodeId>, i32, i64)>,
    /// Partitions whose log is being cut back to the offset.
    pub(super) truncating: BTreeMap<(TopicId, i32), i64>,
    /// Partitions whose last answer was an error (the leader does not know them yet, or no
    /// longer leads them): left out of fetches until then, as Kafka delays a partition
    /// (`replica.fetch.backoff.ms`), while the others of their leader go on. A new leader or
    /// epoch ends the delay: (until, leader, leader epoch).
    delayed: BTreeMap<(TopicId, i32), (i64, NodeId, i32)>,
    next_in_sync_check_ms: i64,
}

/// The fetches of the partitions led by one node.
#[derive(Default)]
struct Fetcher {
    in_flight: Option<SentFetch>,
    /// After an error: no fetch before this.
    retry_at: Option<i64>,
}

struct SentFetch {
    correlation: i32,
    deadline_ms: i64,
    /// What each partition asked: (topic name, partition) → (topic id, leader epoch, offset).
    partitions: BTreeMap<(String, i32), (TopicId, i32, i64)>,
}

impl Replication {
    /// A deleted topic's partitions are no longer truncated or asked about.
    pub(super) fn forget_topic(&mut self, id: TopicId) {
        self.truncating.retain(|(topic, _), _| *topic != id);
        self.asked.retain(|(topic, _), _| *topic != id);
        self.delayed.retain(|(topic, _), _| *topic != id);
    }

    /// Broker `node` started a new life: a fetch in flight to the earlier one is given up
    /// (a late answer no longer matches), and the next goes at once.
    pub(super) fn forget_broker_life(&mut self, node: NodeId) {
        self.fetchers.remove(&node);
    }

    /// The earliest deadline of the replication: an answer overdue, a retry, the lag check.
    pub(super) fn deadline(&self) -> Option<i64> {
        let fetchers = self.fetchers.values().filter_map(|f| match &f.in_flight {
            Some(sent) => Some(sent.deadline_ms),
            None => f.retry_at,
        });
        let check = (self.next_in_sync_check_ms > 0).then_some(self.next_in_sync_check_ms);
        let delayed = self.delayed.values().map(|&(at, ..)| at);
        fetchers.chain(check).chain(delayed).min()
    }
}

/// Where a follower cuts its log when its leader says the follower's log diverges after
/// (`epoch`, `end_offset`) (Kafka's `AbstractFetcherThread.getOffsetTruncationState`): with
/// the follower's own epoch history and log end. Where the follower has that epoch, at the
/// smaller end; where it has only an earlier one, at that one's end (its next fetch names it,
/// and the leader checks again); with no epoch at or below it, at the leader's end.
pub fn truncation_point(history: &[(i32, i64)], log_end: i64, epoch: i32, end_offset: i64) -> i64 {
    if epoch < 0 || end_offset < 0 {
        // The leader has no epoch at or below the follower's last: nothing of the follower's
        // log is known to match, beyond where the leader's log starts.
        return end_offset.max(0).min(log_end);
    }
    let (own_epoch, own_end) = crate::log::end_offset_for_epoch(history, epoch, log_end);
    match own_epoch {
        e if e < 0 => end_offset.min(log_end),
        e if e == epoch => end_offset.min(own_end).min(log_end),
        _ => own_end.min(log_end),
    }
}

impl Broker {
    // ---- the follower's side ----

    /// Sends a fetch to every leader with none in flight, for the partitions this shard
    /// follows from it, once the last records of each are on disk. A partition still writing
    /// or syncing what it copied holds the fetch back until it is done (every I/O completion
    /// pumps again): were it left out, it could only join the next fetch after this one,
    /// which the leader parks up to `replica.fetch.wait.max.ms` when nothing else is new,
    /// and acks=all would wait that long. Partitions that cannot take records (offline) are
    /// left out.
    pub(super) fn pump_replication(&mut self, now_ms: i64) {
        if !self.in_quorum() || self.shutdown.is_some() {
            return;
        }
        let node = self.config.node_id;
        let mut by_leader: BTreeMap<NodeId, Vec<(String, i32)>> = BTreeMap::new();
        let mut held: BTreeSet<NodeId> = BTreeSet::new();
        for topic in self.topics.values() {
            for (index, partition) in topic.partitions.iter().enumerate() {
                let Role::Follower { leader } = partition.replica.role() else {
                    continue;
                };
                let index = index as i32;
                if leader < 0 || leader == node || !self.owns(&topic.name, index) {
                    continue;
                }
                let busy = self
                    .replication
                    .fetchers
                    .get(&leader)
                    .is_some_and(|f| f.in_flight.is_some() || f.retry_at.is_some());
                let epoch = partition.replica.leader_epoch();
                let delayed = self
                    .replication
                    .delayed
                    .get(&(topic.id, index))
                    .is_some_and(|&(_, from, in_epoch)| from == leader && in_epoch == epoch);
                if busy || delayed || !self.is_writable(topic, index) {
                    continue;
                }
                let log = &partition.log;
                let settled = !self.replication.truncating.contains_key(&(topic.id, index))
                    && match self.config.planted_bug {
                        // Planted: on as soon as the copy is written, its fsync still to come.
                        Some(super::PlantedBug::DurableBeforeFsync) => {
                            log.written_offset() == log.log_end_offset()
                        }
                        _ => log.is_quiet() && log.flushed_offset() == log.log_end_offset(),
                    };
                match settled {
                    true => by_leader
                        .entry(leader)
                        .or_default()
                        .push((topic.name.clone(), index)),
                    false => {
                        held.insert(leader);
                    }
                }
            }
        }
        for (leader, partitions) in by_leader {
            if !held.contains(&leader) {
                self.send_replica_fetch(now_ms, leader, &partitions);
            }
        }
    }

    fn send_replica_fetch(&mut self, now_ms: i64, leader: NodeId, partitions: &[(String, i32)]) {
        let Some(broker) = self.brokers.get(&leader).filter(|b| !b.fenced) else {
            return; // not reachable until the metadata names it
        };
        let address = format!("{}:{}", broker.host, broker.port);
        let mut sent = BTreeMap::new();
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (name, index) in partitions {
            let topic = &self.topics[name];
            let partition = &topic.partitions[*index as usize];
            let log = &partition.log;
            let epoch = partition.replica.leader_epoch();
            sent.insert(
                (name.clone(), *index),
                (topic.id, epoch, log.log_end_offset()),
            );
            let fetch = FetchPartition::default()
                .with_partition(*index)
                .with_current_leader_epoch(epoch)
                .with_fetch_offset(log.log_end_offset())
                .with_last_fetched_epoch(match self.config.planted_bug {
                    Some(super::PlantedBug::SkipTruncation) => -1,
                    _ => log.latest_epoch().unwrap_or(-1),
                })
                .with_log_start_offset(log.log_start_offset())
                .with_partition_max_bytes(self.config.replica_fetch_max_bytes);
            match topics.last_mut().filter(|t| t.topic.0.as_str() == name) {
                Some(t) => t.partitions.push(fetch),
                None => topics.push(
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(name.clone())))
                        .with_partitions(vec![fetch]),
                ),
            }
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(self.config.node_id))
            .with_max_wait_ms(self.config.replica_fetch_wait_max_ms)
            .with_min_bytes(1)
            .with_max_bytes(self.config.replica_fetch_response_max_bytes)
            .with_session_epoch(-1)
            .with_topics(topics);
        let correlation = self.replication.next_correlation;
        self.replication.next_correlation = correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Fetch as i16)
            .with_request_api_version(REPLICA_FETCH_VERSION)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_string(format!(
                "spate-replica-{}",
                self.config.node_id
            ))));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        let version = REPLICA_FETCH_VERSION;
        let encoded = header
            .encode(&mut buf, ApiKey::Fetch.request_header_version(version))
            .and_then(|()| request.encode(&mut buf, version));
        if let Err(error) = encoded {
            return self.log(
                Level::Error,
                format!("cannot encode a replica fetch: {error}"),
            );
        }
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        let wait = i64::from(self.config.replica_fetch_wait_max_ms.max(0));
        let fetcher = self.replication.fetchers.entry(leader).or_default();
        fetcher.in_flight = Some(SentFetch {
            correlation,
            deadline_ms: now_ms + wait + self.config.replica_socket_timeout_ms.max(1),
            partitions: sent,
        });
        self.outputs.push_back(Output::ToBroker {
            node: leader,
            address,
            frame: buf.freeze(),
        });
    }

    /// An answer from node `node` on this shard's connection to it (the frame without its
    /// length prefix). One that is not the answer to the fetch in flight is dropped.
    pub fn handle_broker_response(&mut self, now_ms: i64, node: NodeId, frame: Bytes) {
        self.now_ms = self.now_ms.max(now_ms);
        let version = REPLICA_FETCH_VERSION;
        let mut body = frame;
        let Ok(header) =
            ResponseHeader::decode(&mut body, ApiKey::Fetch.response_header_version(version))
        else {
            return self.log(
                Level::Warn,
                format!("node {node} sent an unreadable answer"),
            );
        };
        let fetcher = self.replication.fetchers.entry(node).or_default();
        let matches = fetcher
            .in_flight
            .as_ref()
            .is_some_and(|s| s.correlation == header.correlation_id);
        if !matches {
            return;
        }
        let sent = fetcher.in_flight.take().expect("matched above");
        let response = match FetchResponse::decode(&mut body, version) {
            Ok(response) => response,
            Err(error) => {
                self.back_off(now_ms, node);
                return self.log(
                    Level::Warn,
                    format!(
                        "node {node} sent a replica fetch answer that does not decode: {error}"
                    ),
                );
            }
        };
        if response.error_code != errors::NONE {
            self.back_off(now_ms, node);
        }
        let backoff = self.config.replica_fetch_backoff_ms.clamp(1, 1_000);
        for topic in response.responses {
            let name = topic.topic.0.to_string();
            for data in topic.partitions {
                let key = (name.clone(), data.partition_index);
                let Some(&(id, epoch, offset)) = sent.partitions.get(&key) else {
                    continue;
                };
                let index = data.partition_index;
                if !self.take_replica_data(now_ms, node, id, &name, epoch, offset, data) {
                    self.replication
                        .delayed
                        .insert((id, index), (now_ms + backoff, node, epoch));
                }
            }
        }
        self.pump_io();
        self.pump_replication(now_ms);
    }

    /// The connection to node `node` closed or could not be opened: the fetch in flight is
    /// lost, and the next waits a little.
    pub fn handle_broker_disconnected(&mut self, now_ms: i64, node: NodeId) {
        self.now_ms = self.now_ms.max(now_ms);
        if let Some(fetcher) = self.replication.fetchers.get_mut(&node) {
            if fetcher.in_flight.take().is_some() {
                self.back_off(now_ms, node);
            }
        }
    }

    fn back_off(&mut self, now_ms: i64, node: NodeId) {
        let backoff = self.config.replica_fetch_backoff_ms.clamp(1, 1_000);
        let fetcher = self.replication.fetchers.entry(node).or_default();
        fetcher.retry_at = Some(now_ms + backoff);
    }

    /// One partition of a replica fetch's answer: records appended, a divergence truncated,
    /// or an error. Returns whether it went well.
    #[allow(clippy::too_many_arguments)]
    fn take_replica_data(
        &mut self,
        now_ms: i64,
        leader: NodeId,
        id: TopicId,
        name: &str,
        epoch: i32,
        offset: i64,
        data: kafka_protocol::messages::fetch_response::PartitionData,
    ) -> bool {
        let index = data.partition_index;
        let policy = match self.topics.get(name).filter(|t| t.id == id) {
            Some(topic) => topic.segment_policy(),
            None => return true, // deleted meanwhile
        };
        let Some(partition) = self.partition_mut(id, index) else {
            return true;
        };
        // The partition moved on since the fetch went out (another leader or epoch, a cut):
        // the answer is for a log that is not there any more.
        let current = partition.replica.role() == (Role::Follower { leader })
            && partition.replica.leader_epoch() == epoch
            && partition.log.log_end_offset() == offset;
        if !current {
            return true;
        }
        if data.error_code != errors::NONE {
            if data.error_code == errors::OFFSET_OUT_OF_RANGE {
                self.log(
                    Level::Warn,
                    format!(
                        "{name}-{index}: offset {offset} is out of the range of leader {leader}'s log \
                         (which starts at {}); this replica waits",
                        data.log_start_offset
                    ),
                );
            }
            return false;
        }
        let diverging = data.diverging_epoch;
        if diverging.epoch >= 0 || diverging.end_offset >= 0 {
            let history = partition.log.epoch_history();
            let end = partition.log.log_end_offset();
            let cut = truncation_point(&history, end, diverging.epoch, diverging.end_offset);
            self.start_truncation(id, name, index, cut);
            return true;
        }
        let records = data.records.unwrap_or_default();
        let mut position = 0;
        let mut appended = 0usize;
        while position < records.len() {
            let Ok(mut info) = batch::validate_stored(&records[position..]) else {
                break; // a batch cut short by the size limit comes whole next time
            };
            let mut bytes = records.slice(position..position + info.size_bytes);
            position += info.size_bytes;
            let end = partition.log.log_end_offset();
            if info.last_offset() < end {
                continue;
            }
            if info.base_offset < end && info.records_count == 0 && info.producer_id < 0 {
                // A cleaning on the leader covered removed batches, some of which this log
                // holds, with one batch without records: the rest of it is copied as such.
                let hole = crate::log::compact::hole_batch(
                    end,
                    info.last_offset(),
                    info.partition_leader_epoch,
                );
                bytes = bytes::Bytes::from(hole);
                info = batch::validate_stored(&bytes).expect("a hole batch is sound");
            }
            if info.base_offset != end || info.partition_leader_epoch > epoch {
                self.log(
                    Level::Error,
                    format!(
                        "{name}-{index}: leader {leader} sent a batch at {} (epoch {}), expected one at {end} (epoch at most {epoch})",
                        info.base_offset, info.partition_leader_epoch
                    ),
                );
                return false;
            }
            partition
                .log
                .append_as_follower(bytes, &info, now_ms, &policy);
            appended += info.size_bytes;
        }
        let end = partition.log.log_end_offset();
        if appended > 0 {
            // What a follower copies is made durable at once: its next fetch says so.
            partition.log.want_durable(end);
        }
        partition.handle_leader_high_watermark(data.high_watermark);
        if appended > 0 {
            self.dirty.insert((name.to_string(), index));
            self.note_cached(appended);
        }
        self.on_partition_progress(now_ms, id, index);
        true
    }

    // ---- truncation ----

    /// Whether partition `index` of topic `id` is being cut back here.
    pub(super) fn replication_truncates(&self, id: TopicId, index: i32) -> bool {
        self.replication.truncating.contains_key(&(id, index))
    }

    /// Starts cutting a follower's log back to `offset` (the batch holding it whole).
    fn start_truncation(&mut self, id: TopicId, name: &str, index: i32, offset: i64) {
        let Some(partition) = self.partition_mut(id, index) else {
            return;
        };
        let high_watermark = partition.high_watermark();
        let plan = partition.log.truncate_to(offset);
        if offset < high_watermark {
            // Only an unclean election takes committed records away.
            self.log(
                Level::Error,
                format!(
                    "{name}-{index}: truncating to {offset}, below the high watermark {high_watermark}: \
                     the leader does not have records this replica saw committed"
                ),
            );
        }
        let dir = self.topics[name].dir_name();
        let file = |base_offset| SegmentFile {
            topic_dir: dir.clone(),
            partition: index,
            base_offset,
        };
        match plan {
            Ok(Truncation::Nothing) => {}
            Ok(Truncation::Read(read)) => {
                self.replication.truncating.insert((id, index), offset);
                let op = IoOp::Read {
                    file: file(read.segment_base_offset),
                    position: read.position,
                    len: read.len,
                };
                self.issue(
                    op,
                    InFlight::TruncateRead {
                        topic: id,
                        partition: index,
                    },
                );
            }
            Ok(Truncation::Files(files)) => {
                self.replication.truncating.insert((id, index), offset);
                self.issue_truncate_files(id, index, &dir, files);
            }
            Err(error) => self.log(Level::Warn, format!("{name}-{index}: {error}")),
        }
    }

    fn issue_truncate_files(
        &mut self,
        id: TopicId,
        index: i32,
        dir: &str,
        files: crate::log::TruncateFiles,
    ) {
        let file = |base_offset| SegmentFile {
            topic_dir: dir.to_string(),
            partition: index,
            base_offset,
        };
        let mut remove = Vec::new();
        for base in &files.removed_segments {
            remove.push(file(*base).relative_path());
            remove.push(file(*base).index_path());
        }
        remove.push(file(files.segment_base_offset).index_path());
        let op = IoOp::Truncate {
            remove,
            file: file(files.segment_base_offset),
            len: files.len,
        };
        self.issue(
            op,
            InFlight::Truncate {
                topic: id,
                partition: index,
            },
        );
    }

    /// The bytes around a truncation's cut were read.
    pub(super) fn on_truncate_read(&mut self, id: TopicId, index: i32, result: IoResult) {
        let Some(name) = self.topic_name(id) else {
            self.replication.truncating.remove(&(id, index));
            return;
        };
        let files = match result {
            IoResult::Data(data) => match self.partition_mut(id, index) {
                Some(p) => p.log.handle_truncate_read(&data),
                None => return,
            },
            other => {
                let error = match other {
                    IoResult::Failed(error) => error,
                    _ => "no data".to_string(),
                };
                if let Some(p) = self.partition_mut(id, index) {
                    p.log.abandon_truncation();
                }
                self.replication.truncating.remove(&(id, index));
                return self.log(
                    Level::Error,
                    format!("{name}-{index}: truncation read failed: {error}"),
                );
            }
        };
        match files {
            Ok(files) => {
                let dir = self.topics[&name].dir_name();
                self.issue_truncate_files(id, index, &dir, files);
            }
            Err(error) => {
                self.replication.truncating.remove(&(id, index));
                self.log(Level::Error, format!("{name}-{index}: {error}"));
            }
        }
    }

    /// A truncation's files are changed: the follower fetches again from its new end.
    pub(super) fn on_truncate_done(
        &mut self,
        now_ms: i64,
        id: TopicId,
        index: i32,
        result: IoResult,
    ) {
        let offset = self.replication.truncating.remove(&(id, index));
        let name = self.topic_name(id).unwrap_or_default();
        let Some(partition) = self.partition_mut(id, index) else {
            return;
        };
        partition.log.handle_truncate_done();
        let end = partition.log.log_end_offset();
        partition.handle_truncated(end);
        if let IoResult::Failed(error) = result {
            // The files may be part way: the partition stops until a restart scans them.
            self.offline.insert((id, index));
            return self.log(
                Level::Error,
                format!("{name}-{index}: truncation failed, partition offline: {error}"),
            );
        }
        self.log(
            Level::Info,
            format!(
                "{name}-{index}: truncated to {end} (asked {}) to follow its leader",
                offset.unwrap_or(end)
            ),
        );
        self.pump_replication(now_ms);
    }

    // ---- the leader's side ----

    /// A leader's follower fetched: asks the controller for another in-sync set if the lag
    /// rule says so (and this ask is not already on its way).
    pub(super) fn check_in_sync(&mut self, now_ms: i64, id: TopicId, index: i32) {
        let lag_ms = self.config.replica_lag_time_max_ms;
        let node = self.config.node_id;
        let fenced: std::collections::BTreeSet<NodeId> = self
            .brokers
            .iter()
            .filter(|(_, b)| b.fenced)
            .map(|(&n, _)| n)
            .collect();
        let last_ask = self.replication.asked.get(&(id, index)).cloned();
        let Some(partition) = self.partition_mut(id, index) else {
            return;
        };
        // A fenced member cannot be added (the controller refuses): it counts no longer.
        partition.replica.drop_pending(|m| fenced.contains(&m));
        // A fenced broker is never asked into the set (the controller refuses it).
        let current: Vec<NodeId> = partition.replica.in_sync().collect();
        let wanted = partition
            .replica
            .wanted_in_sync(now_ms, lag_ms)
            .map(|set| {
                set.into_iter()
                    .filter(|m| current.contains(m) || !fenced.contains(m))
                    .collect::<Vec<_>>()
            })
            .filter(|set| {
                let mut a = set.clone();
                let mut b = current.clone();
                a.sort_unstable();
                b.sort_unstable();
                a != b
            });
        let pending = partition.replica.pending_adds().next().is_some();
        let in_sync = match (wanted, last_ask) {
            (Some(in_sync), _) => in_sync,
            // An add still counted for the high watermark is asked again until the
            // partition epoch moves on (it commits, or another change makes it stale).
            (None, Some((set, epoch, _)))
                if pending && epoch == partition.replica.partition_epoch() =>
            {
                set
            }
            (None, _) => return,
        };
        partition.replica.handle_asked(&in_sync);
        let ask = AlterInSyncAsk {
            topic: id,
            partition: index,
            leader: node,
            leader_epoch: partition.replica.leader_epoch(),
            partition_epoch: partition.replica.partition_epoch(),
            in_sync,
        };
        let again = self
            .replication
            .asked
            .get(&(id, index))
            .is_some_and(|(set, epoch, at)| {
                *set == ask.in_sync && *epoch == ask.partition_epoch && now_ms < at + ASK_AGAIN_MS
            });
        if again {
            return;
        }
        self.replication.asked.insert(
            (id, index),
            (ask.in_sync.clone(), ask.partition_epoch, now_ms),
        );
        let name = self.topic_name(id).unwrap_or_default();
        self.log(
            Level::Info,
            format!(
                "{name}-{index}: asking the controller for in-sync replicas {:?} (leader epoch {}, partition epoch {})",
                ask.in_sync, ask.leader_epoch, ask.partition_epoch
            ),
        );
        match self.is_control() {
            true => self.send_alter_in_sync(&ask),
            false => self.outputs.push_back(Output::ToShard {
                shard: crate::placement::CONTROL_SHARD,
                message: ShardMessage::AlterInSync(ask),
            }),
        }
    }

    /// Control shard: an in-sync change for the active controller, this node or another.
    pub(super) fn send_alter_in_sync(&mut self, ask: &AlterInSyncAsk) {
        let active = self
            .quorum
            .as_ref()
            .is_some_and(|s| s.controller().is_active());
        if active {
            self.take_alter_in_sync(ask);
        } else {
            self.ask_controller(ask.encode());
        }
    }

    /// Active controller: a leader's in-sync change, appended if current.
    pub(super) fn take_alter_in_sync(&mut self, ask: &AlterInSyncAsk) {
        let Some(seat) = self.quorum.as_mut() else {
            return;
        };
        if let Err(error) = seat.controller_mut().handle_alter_in_sync(ask) {
            let message = format!("controller: in-sync change refused: {error:?}");
            self.log(Level::Info, message);
        }
        self.pump_quorum();
    }

    /// Every `IN_SYNC_CHECK_MS` (at most half the lag time): leaders look for followers
    /// that stopped keeping up; fetches whose answer is overdue are given up.
    pub(super) fn replication_timeout(&mut self, now_ms: i64) {
        if !self.in_quorum() {
            return;
        }
        for fetcher in self.replication.fetchers.values_mut() {
            if fetcher
                .in_flight
                .as_ref()
                .is_some_and(|s| s.deadline_ms <= now_ms)
            {
                fetcher.in_flight = None;
            }
            if fetcher.retry_at.is_some_and(|at| at <= now_ms) {
                fetcher.retry_at = None;
            }
        }
        self.replication.delayed.retain(|_, (at, ..)| *at > now_ms);
        if now_ms >= self.replication.next_in_sync_check_ms {
            let every = (self.config.replica_lag_time_max_ms / 2).clamp(1, IN_SYNC_CHECK_MS);
            self.replication.next_in_sync_check_ms = now_ms + every;
            let led: Vec<(TopicId, i32)> = self
                .topics
                .values()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .enumerate()
                        .filter(|(i, p)| {
                            p.replica.is_leader()
                                && p.replica.replicas().len() > 1
                                && self.owns(&t.name, *i as i32)
                        })
                        .map(move |(i, _)| (t.id, i as i32))
                })
                .collect();
            for (id, index) in led {
                self.check_in_sync(now_ms, id, index);
            }
        }
        self.pump_replication(now_ms);
    }
}
