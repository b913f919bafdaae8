//! The controller quorum (issue 15, KRaft's role): the metadata log replicated by Raft among the
//! controller voters. Each entry is one version: the records of one [`QuorumController::append`]
//! ([`super::records`] bytes); a version is its entry's index. Pure like the rest of the core:
//! the shell carries its `Send`s between nodes, stores its `Persist`s and hands back what
//! arrives, with time passed in.
//!
//! - **The leader** checks each append against its image (everything committed, and its own
//!   appends not yet committed, as KRaft's active controller does) and proposes it. It takes
//!   appends only once the first entry of its term is committed, so that its image holds all
//!   that earlier leaders committed. When it stops leading, what it appended and did not see
//!   committed is reported abandoned (it may still commit under the next leader, or not: a
//!   caller retries, as a Kafka client does after NOT_CONTROLLER) and its image goes back to
//!   the committed one.
//! - **Every node** applies committed entries in order to its committed image and publishes
//!   them ([`QuorumController::poll_published`]) for the brokers that run on the metadata:
//!   nothing uncommitted is ever published, so no broker acts on a change a crash could undo.
//! - **Snapshots**: every `snapshot_every` entries the committed image becomes the Raft
//!   snapshot (its records, as the log's entries are), which bounds the log; a node too far
//!   behind gets it whole, and publishes it as a new image.

use super::image::NO_LEADER;
use super::records::{decode_records, encode_records};
use super::{MetadataImage, MetadataRecord, PRODUCER_ID_BLOCK};
use crate::raft::{Index, Message, Persist, RaftConfig, RaftNode, RaftOutput, Role, Stored, Term};
use crate::replica::NodeId;
use std::collections::{BTreeMap, VecDeque};

/// What the brokers that run on the metadata are given, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The whole image at `index`: at start-up, and when a snapshot replaced the state.
    Image { index: Index, image: MetadataImage },
    /// The committed records of the version at `index`.
    Records {
        index: Index,
        records: Vec<MetadataRecord>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumOutput {
    /// Store this (all or none), then call `handle_persisted(seq)`.
    Persist(Persist),
    Send(Message),
    /// The version appended at this index was not seen committed before this node stopped
    /// leading; whoever waits for it is told to retry.
    Abandoned(Index),
    /// Something to log: a committed entry that could not be read or applied.
    Error(String),
}

/// Why an append was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// This node does not lead; the leader, if known (Kafka's NOT_CONTROLLER).
    NotLeader(Option<NodeId>),
    /// This node leads but has not yet seen its term's first entry committed.
    NotReady,
    /// A record does not fit the image; nothing was appended.
    Refused(String),
}

/// A broker's heartbeat to the active controller (KRaft's BrokerHeartbeat, with the
/// registration folded in): who it is, this life of it, where clients reach it and its rack,
/// and whether it is shutting down (a controlled shutdown: fence it now, not a session later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub node: NodeId,
    pub incarnation: u64,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub shutting_down: bool,
    /// The broker has no producer ids left to hand out: the controller grants it a block.
    pub wants_producer_ids: bool,
}

/// The first byte of a heartbeat's frame (a Raft message's is its codec version, 0).
pub const HEARTBEAT_TAG: u8 = 0xb7;
/// A broker's host name, at most (DNS names are at most 253 bytes).
const HOST_BYTES_MAX: usize = 255;

/// A heartbeat's flags: shutting down, wants producer ids, and a rack follows the host.
const SHUTTING_DOWN: u8 = 1;
const WANTS_PRODUCER_IDS: u8 = 2;
const HAS_RACK: u8 = 4;

impl Heartbeat {
    /// The tag, node, incarnation, port and flags; then the host, as the rest of the frame, or
    /// (with a rack) the host after its length and the rack as the rest. A heartbeat without
    /// a rack reads as heartbeats did before racks.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![HEARTBEAT_TAG];
        out.extend_from_slice(&self.node.to_be_bytes());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.port.to_be_bytes());
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        let flags = flag(self.shutting_down, SHUTTING_DOWN)
            | flag(self.wants_producer_ids, WANTS_PRODUCER_IDS)
            | flag(self.rack.is_some(), HAS_RACK);
        out.push(flags);
        match &self.rack {
            None => out.extend_from_slice(self.host.as_bytes()),
            Some(rack) => {
                let host_len = u16::try_from(self.host.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&host_len.to_be_bytes());
                out.extend_from_slice(&self.host.as_bytes()[..usize::from(host_len)]);
                out.extend_from_slice(rack.as_bytes());
            }
        }
        out
    }

    /// Reads what [`Heartbeat::encode`] wrote; `None` for anything else.
    pub fn decode(frame: &[u8]) -> Option<Heartbeat> {
        let (&tag, rest) = frame.split_first()?;
        if tag != HEARTBEAT_TAG || rest.len() < 15 {
            return None;
        }
        let flags = rest[14];
        if flags > SHUTTING_DOWN | WANTS_PRODUCER_IDS | HAS_RACK {
            return None;
        }
        let (host, rack) = match flags & HAS_RACK {
            0 => (&rest[15..], None),
            _ => {
                let len = rest.get(15..17)?;
                let host_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let (host, rack) = rest[17..].split_at_checked(host_len)?;
                let rack = std::str::from_utf8(rack).ok()?;
                if rack.is_empty() || rack.len() > HOST_BYTES_MAX {
                    return None;
                }
                (host, Some(rack.to_string()))
            }
        };
        if host.len() > HOST_BYTES_MAX {
            return None;
        }
        Some(Heartbeat {
            node: i32::from_be_bytes(rest[..4].try_into().ok()?),
            incarnation: u64::from_be_bytes(rest[4..12].try_into().ok()?),
            port: u16::from_be_bytes(rest[12..14].try_into().ok()?),
            shutting_down: flags & SHUTTING_DOWN != 0,
            wants_producer_ids: flags & WANTS_PRODUCER_IDS != 0,
            host: std::str::from_utf8(host).ok()?.to_string(),
            rack,
        })
    }
}

/// A broker asks the active controller to create a topic it needs and may not create itself
/// (auto-creation, `__consumer_offsets`; Kafka's brokers forward the same to their
/// controller). The controller places it; the broker sees it once it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopicAsk {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub configs: BTreeMap<String, String>,
}

/// The first byte of a [`CreateTopicAsk`]'s frame.
pub const CREATE_TOPIC_TAG: u8 = 0xb8;

impl CreateTopicAsk {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CREATE_TOPIC_TAG];
        out.extend_from_slice(&self.partitions.to_be_bytes());
        out.extend_from_slice(&self.replication_factor.to_be_bytes());
        let texts = std::iter::once(self.name.as_str()).chain(
            self.configs
                .iter()
                .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
        );
        for text in texts {
            let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&text.as_bytes()[..usize::from(len)]);
        }
        out
    }

    /// Reads what [`CreateTopicAsk::encode`] wrote; `None` for anything else.
    pub fn decode(frame: &[u8]) -> Option<CreateTopicAsk> {
        let (&tag, rest) = frame.split_first()?;
        if tag != CREATE_TOPIC_TAG || rest.len() < 8 {
            return None;
        }
        let partitions = i32::from_be_bytes(rest[..4].try_into().ok()?);
        let replication_factor = i32::from_be_bytes(rest[4..8].try_into().ok()?);
        let mut input = &rest[8..];
        let mut texts = Vec::new();
        while !input.is_empty() {
            let len = usize::from(u16::from_be_bytes(input.get(..2)?.try_into().ok()?));
            let text = std::str::from_utf8(input.get(2..2 + len)?).ok()?;
            texts.push(text.to_string());
            input = &input[2 + len..];
        }
        if texts.len() % 2 != 1 {
            return None;
        }
        let name = texts.remove(0);
        let mut pairs = texts.into_iter();
        let mut configs = BTreeMap::new();
        while let (Some(key), Some(value)) = (pairs.next(), pairs.next()) {
            configs.insert(key, value);
        }
        Some(CreateTopicAsk {
            name,
            partitions,
            replication_factor,
            configs,
        })
    }
}

/// A partition's leader asks the active controller for another in-sync set (Kafka's
/// AlterPartition), naming the leader epoch and partition epoch it holds so that an ask made
/// before a later change is refused. The leader sees the answer in the committed metadata
/// and asks again if it does not come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterInSyncAsk {
    pub topic: crate::topics::TopicId,
    pub partition: i32,
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub in_sync: Vec<NodeId>,
}

/// The first byte of an [`AlterInSyncAsk`]'s frame.
pub const ALTER_IN_SYNC_TAG: u8 = 0xbc;

impl AlterInSyncAsk {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![ALTER_IN_SYNC_TAG];
        out.extend_from_slice(&self.topic.0);
        for value in [
            self.partition,
            self.leader,
            self.leader_epoch,
            self.partition_epoch,
        ] {
            out.extend_from_slice(&value.to_be_bytes());
        }
        for member in &self.in_sync {
            out.extend_from_slice(&member.to_be_bytes());
        }
        out
    }

    /// Reads what [`AlterInSyncAsk::encode`] wrote; `None` for anything else.
    pub fn decode(frame: &[u8]) -> Option<AlterInSyncAsk> {
        let (&tag, rest) = frame.split_first()?;
        if tag != ALTER_IN_SYNC_TAG || rest.len() < 32 || (rest.len() - 32) % 4 != 0 {
            return None;
        }
        let topic = crate::topics::TopicId(rest[..16].try_into().ok()?);
        let mut numbers = rest[16..]
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes(c.try_into().expect("four bytes")));
        let mut next = || numbers.next();
        let (partition, leader, leader_epoch, partition_epoch) =
            (next()?, next()?, next()?, next()?);
        Some(AlterInSyncAsk {
            topic,
            partition,
            leader,
            leader_epoch,
            partition_epoch,
            in_sync: numbers.collect(),
        })
    }
}

/// Bugs a test plants to show that its checkers catch them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuorumBug {
    /// The leader publishes an append at once instead of once it is committed.
    PublishOnAppend,
    /// The active controller never fences a broker whose session ended.
    NeverFence,
    /// A fenced broker keeps leading its partitions: clients are sent to a broker that is gone
    /// (or back in a life that must not write in the old epoch).
    KeepFencedLeaders,
    /// A leader that goes is replaced by any live replica, in the in-sync set or not.
    ElectOutsideInSync,
    /// The automatic rebalance makes a partition's preferred replica its leader whenever that
    /// replica is live, in the in-sync set or not.
    PreferOutOfSync,
}

/// The controller's own elections (see `elections`), looked for every `check_every_ms`
/// (`leader.imbalance.check.interval.seconds`): the preferred replicas lead again if
/// `auto_rebalance` (`auto.leader.rebalance.enable`), and leaderless partitions are led by a
/// live replica outside the in-sync set where the topic allows it, `unclean` being the static
/// `unclean.leader.election.enable` (fencing and returns look for those at once as well).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionConfig {
    pub check_every_ms: i64,
    pub auto_rebalance: bool,
    pub unclean: bool,
}

impl Default for ElectionConfig {
    /// Kafka's: a rebalance every 300 s, no unclean elections.
    fn default() -> ElectionConfig {
        ElectionConfig {
            check_every_ms: 300_000,
            auto_rebalance: true,
            unclean: false,
        }
    }
}

pub struct QuorumController {
    raft: RaftNode,
    /// Every committed record applied, through `applied`.
    committed: MetadataImage,
    applied: Index,
    /// The leader's image: `committed` and then `pending`; `committed` when not leading.
    image: MetadataImage,
    /// The leader's appends not yet seen committed: (index, records); whether the image holds
    /// any of them (else it is the committed one).
    pending: VecDeque<(Index, Vec<MetadataRecord>)>,
    diverged: bool,
    /// The term this node leads in and the index of that term's first entry.
    leading: Option<(Term, Index)>,
    published: VecDeque<Published>,
    outputs: VecDeque<QuorumOutput>,
    /// Entries between snapshots.
    snapshot_every: u64,
    planted: Option<QuorumBug>,
    /// Active controller: when each broker was last heard from (KRaft's
    /// BrokerHeartbeatManager); a broker unheard for `session_timeout_ms` is fenced.
    sessions: BTreeMap<NodeId, i64>,
    session_timeout_ms: i64,
    elections: ElectionConfig,
    /// Active controller: when it looks for partitions to give back to their preferred leader.
    next_rebalance_ms: Option<i64>,
    now_ms: i64,
    /// Set when a snapshot from the leader could not be read: nothing more is applied.
    broken: Option<String>,
}

impl QuorumController {
    /// A voter starting from what it stored: its committed image is the snapshot and the
    /// stored entries up to the stored commit index, published first as one image.
    pub fn new(
        config: RaftConfig,
        stored: Stored,
        now_ms: i64,
        snapshot_every: u64,
        planted: Option<QuorumBug>,
    ) -> Result<QuorumController, String> {
        let mut committed = MetadataImage::default();
        let mut applied = 0;
        if let Some(snapshot) = &stored.snapshot {
            committed = image_of(&snapshot.data)
                .map_err(|e| format!("the controller's snapshot at {}: {e}", snapshot.index))?;
            applied = snapshot.index;
        }
        let through = stored.hard_state.committed_index;
        for entry in stored.entries.iter().filter(|e| e.index <= through) {
            if entry.index <= applied {
                continue;
            }
            for record in decode_records(&entry.data).or_else(|e| empty_or(&entry.data, e))? {
                committed
                    .apply(&record)
                    .map_err(|e| format!("the controller's entry {}: {e}", entry.index))?;
            }
            applied = entry.index;
        }
        let raft = RaftNode::new(config, stored, now_ms)?;
        let published = VecDeque::from([Published::Image {
            index: applied,
            image: committed.clone(),
        }]);
        Ok(QuorumController {
            raft,
            image: committed.clone(),
            committed,
            applied,
            pending: VecDeque::new(),
            diverged: false,
            leading: None,
            published,
            outputs: VecDeque::new(),
            snapshot_every: snapshot_every.max(1),
            planted,
            sessions: BTreeMap::new(),
            session_timeout_ms: 9_000,
            elections: ElectionConfig::default(),
            next_rebalance_ms: None,
            now_ms,
            broken: None,
        })
    }

    /// Brokers unheard for this long are fenced (`broker.session.timeout.ms`, Kafka's 9 s).
    pub fn with_session_timeout(mut self, session_timeout_ms: i64) -> QuorumController {
        self.session_timeout_ms = session_timeout_ms.max(1);
        self
    }

    /// Its own elections (`auto.leader.rebalance.enable`, `unclean.leader.election.enable`).
    pub fn with_elections(mut self, elections: ElectionConfig) -> QuorumController {
        self.elections = ElectionConfig {
            check_every_ms: elections.check_every_ms.max(1),
            ..elections
        };
        self
    }

    // ---- getters ----

    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// The leader's image (with its appends not yet committed); the committed one elsewhere.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn committed_image(&self) -> &MetadataImage {
        &self.committed
    }

    /// The index of the last committed version applied here.
    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// Whether this node leads and takes appends (not while it hands leadership over).
    pub fn is_active(&self) -> bool {
        self.broken.is_none()
            && self
                .leading
                .is_some_and(|(_, first)| self.applied >= first && self.raft.role() == Role::Leader)
            && !self.raft.is_transferring()
    }

    // ---- inputs ----

    pub fn handle_message(&mut self, now_ms: i64, message: Message) {
        self.now_ms = self.now_ms.max(now_ms);
        self.raft.handle_message(now_ms, message);
        self.drain();
    }

    pub fn handle_timeout(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.raft.poll_timeout() <= now_ms {
            self.raft.handle_timeout(now_ms);
        }
        self.drain();
        self.expire_sessions();
        self.rebalance();
    }

    /// Active controller: a broker says it is alive. Registers it (again, after a restart or
    /// a move), unfences it if it was fenced, or fences it at once if it is shutting down.
    pub fn handle_heartbeat(
        &mut self,
        now_ms: i64,
        heartbeat: Heartbeat,
    ) -> Result<(), AppendError> {
        self.now_ms = self.now_ms.max(now_ms);
        if !self.is_active() {
            return Err(match self.raft.role() {
                Role::Leader => AppendError::NotReady,
                _ => AppendError::NotLeader(self.raft.leader()),
            });
        }
        let node = heartbeat.node;
        if node < 0 || heartbeat.host.len() > HOST_BYTES_MAX {
            return Err(AppendError::Refused(format!(
                "node {node} cannot be a broker of this quorum"
            )));
        }
        // A broker-only node (not a voter) is replicated to as an observer from now on.
        self.raft.add_observer(node);
        self.drain();
        let known = self.image.brokers.get(&node);
        let same = known.is_some_and(|b| {
            (b.incarnation, b.host.as_str(), b.port, &b.rack)
                == (
                    heartbeat.incarnation,
                    heartbeat.host.as_str(),
                    heartbeat.port,
                    &heartbeat.rack,
                )
        });
        let fenced = known.is_some_and(|b| b.fenced);
        let mut records = Vec::new();
        if heartbeat.shutting_down {
            self.sessions.remove(&node);
            if same && !fenced {
                records.push(MetadataRecord::BrokerFencing { node, fenced: true });
                records.extend(self.leaderships_lost(node));
            }
        } else {
            self.sessions.insert(node, self.now_ms);
            if !same {
                // A new life (a restart) had none of its earlier life's records in memory: it
                // leaves every in-sync set first (KIP-903), other in-sync replicas lead where
                // it led, and it leads again only where it alone holds every committed record.
                let new_life = known.is_some_and(|b| b.incarnation != heartbeat.incarnation);
                let mut next = self.image.clone();
                let mut change = |record: MetadataRecord, records: &mut Vec<MetadataRecord>| {
                    // Each fits the image the ones before it left.
                    let _ = next.apply(&record);
                    records.push(record);
                };
                if new_life {
                    for record in self.leaderships_lost_in(&self.image.clone(), node) {
                        // Where it is the last in sync it leads on (in the next epoch, below).
                        let kept = matches!(&record, MetadataRecord::PartitionChanged {
                            leader: NO_LEADER, in_sync, ..
                        } if in_sync[..] == [node]);
                        if !kept {
                            change(record, &mut records);
                        }
                    }
                }
                change(
                    MetadataRecord::BrokerRegistered {
                        node,
                        incarnation: heartbeat.incarnation,
                        host: heartbeat.host,
                        port: heartbeat.port,
                        rack: heartbeat.rack,
                    },
                    &mut records,
                );
                let regained = next.leaderships_regained(node);
                records.extend(regained);
            } else if fenced {
                records.push(MetadataRecord::BrokerFencing {
                    node,
                    fenced: false,
                });
                records.extend(self.image.leaderships_regained(node));
            }
            if heartbeat.wants_producer_ids {
                let start = self.image.producer_id_limit;
                records.push(MetadataRecord::ProducerIdBlock {
                    node,
                    incarnation: heartbeat.incarnation,
                    start,
                    limit: start.saturating_add(PRODUCER_ID_BLOCK),
                });
            }
        }
        match records.is_empty() {
            true => Ok(()),
            false => {
                let records = self.with_unclean_elections(records);
                self.append(records).map(|_| ())
            }
        }
    }

    /// Active controller: a partition's leader asks for another in-sync set. Appended when
    /// the ask is current and the set fits (see `MetadataImage::alter_in_sync`); the reason
    /// otherwise (the leader sees the metadata and asks again if it still wants it).
    pub fn handle_alter_in_sync(&mut self, ask: &AlterInSyncAsk) -> Result<(), AppendError> {
        if !self.is_active() {
            return Err(AppendError::NotLeader(self.raft.leader()));
        }
        let record = self
            .image
            .alter_in_sync(
                ask.topic,
                ask.partition,
                ask.leader,
                ask.leader_epoch,
                ask.partition_epoch,
                &ask.in_sync,
            )
            .map_err(AppendError::Refused)?;
        self.append(vec![record]).map(|_| ())
    }

    pub fn handle_persisted(&mut self, seq: u64) {
        self.raft.handle_persisted(seq);
        self.drain();
    }

    /// Appends `records` as one version, if this node leads and is ready: each is checked
    /// against the image as the ones before it left it, and if one does not fit none is
    /// appended. Returns the version's index; it is published once committed.
    pub fn append(&mut self, records: Vec<MetadataRecord>) -> Result<Index, AppendError> {
        if self.raft.role() != Role::Leader {
            return Err(AppendError::NotLeader(self.raft.leader()));
        }
        if !self.is_active() {
            return Err(AppendError::NotReady);
        }
        let mut next = self.image.clone();
        for record in &records {
            next.apply(record).map_err(AppendError::Refused)?;
        }
        let index = self
            .raft
            .propose(encode_records(&records))
            .map_err(AppendError::NotLeader)?;
        self.image = next;
        self.diverged = true;
        if self.planted == Some(QuorumBug::PublishOnAppend) {
            self.published.push_back(Published::Records {
                index,
                records: records.clone(),
            });
        }
        self.pending.push_back((index, records));
        self.drain();
        Ok(index)
    }

    /// Hands leadership to another voter (a controlled shutdown), if this node leads.
    pub fn transfer_leadership(&mut self, to: Option<NodeId>) -> Result<NodeId, String> {
        let result = self.raft.transfer_leadership(to);
        self.drain();
        result
    }

    // ---- outputs ----

    pub fn poll_output(&mut self) -> Option<QuorumOutput> {
        self.outputs.pop_front()
    }

    pub fn poll_published(&mut self) -> Option<Published> {
        self.published.pop_front()
    }

    pub fn poll_timeout(&self) -> i64 {
        let rebalance = match self.is_active() {
            true => self.next_rebalance_ms.unwrap_or(i64::MAX),
            false => i64::MAX,
        };
        self.raft
            .poll_timeout()
            .min(self.session_deadline())
            .min(rebalance)
    }

    /// When the first unfenced broker's session ends (active controller only).
    fn session_deadline(&self) -> i64 {
        if !self.is_active() {
            return i64::MAX;
        }
        let unfenced = self.image.brokers.iter().filter(|(_, b)| !b.fenced);
        unfenced
            .map(|(node, _)| {
                self.sessions
                    .get(node)
                    .map_or(i64::MAX, |heard| heard + self.session_timeout_ms + 1)
            })
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The elections when `node` is fenced (none under the planted `KeepFencedLeaders`).
    fn leaderships_lost(&self, node: NodeId) -> Vec<MetadataRecord> {
        self.leaderships_lost_in(&self.image, node)
    }

    fn leaderships_lost_in(&self, image: &MetadataImage, node: NodeId) -> Vec<MetadataRecord> {
        match self.planted {
            Some(QuorumBug::KeepFencedLeaders) => Vec::new(),
            Some(QuorumBug::ElectOutsideInSync) => image.leaderships_lost_unclean(node),
            _ => image.leaderships_lost(node),
        }
    }

    /// Active controller: fences the brokers whose session ended. A broker it has no time for
    /// (it just became active) gets a whole session from now, as KRaft's new controller does.
    fn expire_sessions(&mut self) {
        if !self.is_active() {
            self.sessions.clear();
            return;
        }
        if self.planted == Some(QuorumBug::NeverFence) {
            return;
        }
        let now = self.now_ms;
        let mut expired = Vec::new();
        // Each broker's elections see the ones before (two fenced together may share a
        // partition's in-sync set).
        let mut next = self.image.clone();
        for (&node, broker) in &self.image.brokers {
            let heard = *self.sessions.entry(node).or_insert(now);
            if !broker.fenced && now > heard + self.session_timeout_ms {
                let mut records = vec![MetadataRecord::BrokerFencing { node, fenced: true }];
                records.extend(self.leaderships_lost_in(&next, node));
                for record in &records {
                    // Each fits the image the ones before it left.
                    let _ = next.apply(record);
                }
                expired.extend(records);
            }
        }
        if !expired.is_empty() {
            // Each fits: the brokers are registered and unfenced in the image.
            // The image the fencings leave is `next`: unclean elections where it allows them.
            expired.extend(next.unclean_elections(self.elections.unclean));
            let _ = self.append(expired);
        }
    }

    /// `records`, then the unclean elections the image they leave allows (partitions whose
    /// last in-sync replica they fence, of topics that allow it).
    fn with_unclean_elections(&self, mut records: Vec<MetadataRecord>) -> Vec<MetadataRecord> {
        let mut next = self.image.clone();
        for record in &records {
            if next.apply(record).is_err() {
                return records; // the append refuses them; nothing to add
            }
        }
        records.extend(next.unclean_elections(self.elections.unclean));
        records
    }

    /// Active controller, every `check_every_ms`: the preferred replicas that are live
    /// and in sync lead again, and leaderless partitions get an unclean leader where their
    /// topic allows it. The first look is a whole interval after it became active.
    fn rebalance(&mut self) {
        if !self.is_active() {
            self.next_rebalance_ms = None;
            return;
        }
        let now = self.now_ms;
        let every = self.elections.check_every_ms;
        match self.next_rebalance_ms {
            None => self.next_rebalance_ms = Some(now.saturating_add(every)),
            Some(at) if at <= now => {
                self.next_rebalance_ms = Some(now.saturating_add(every));
                let preferred = match (self.elections.auto_rebalance, self.planted) {
                    (false, _) => Vec::new(),
                    (true, Some(QuorumBug::PreferOutOfSync)) => {
                        self.image.preferred_elections_out_of_sync()
                    }
                    (true, _) => self.image.preferred_elections(),
                };
                let records = self.with_unclean_elections(preferred);
                if !records.is_empty() {
                    let _ = self.append(records);
                }
            }
            Some(_) => {}
        }
    }

    // ---- internals ----

    fn drain(&mut self) {
        while let Some(output) = self.raft.poll_output() {
            match output {
                RaftOutput::Persist(persist) => {
                    self.outputs.push_back(QuorumOutput::Persist(persist))
                }
                RaftOutput::Send(message) => self.outputs.push_back(QuorumOutput::Send(message)),
                RaftOutput::Committed(entry) if entry.index <= self.applied => {}
                RaftOutput::Committed(_) if self.broken.is_some() => {}
                RaftOutput::Committed(entry) => self.on_committed(entry.index, &entry.data),
                RaftOutput::RestoreSnapshot(snapshot) => match image_of(&snapshot.data) {
                    Ok(image) => {
                        self.committed = image;
                        self.applied = snapshot.index;
                        self.abandon_pending();
                        self.image.clone_from(&self.committed);
                        self.published.push_back(Published::Image {
                            index: snapshot.index,
                            image: self.committed.clone(),
                        });
                    }
                    Err(error) => {
                        // Entries after it would apply to the wrong image: apply nothing more.
                        self.broken = Some(format!(
                            "the leader's snapshot at {} cannot be read: {error}; this node applies no more of the metadata log",
                            snapshot.index
                        ));
                        let broken = self.broken.clone().expect("set");
                        self.outputs.push_back(QuorumOutput::Error(broken));
                    }
                },
            }
        }
        self.follow_role();
        self.start_sessions();
        if self.applied >= self.raft.snapshot_index() + self.snapshot_every {
            let data = encode_records(&self.committed.snapshot());
            if self.raft.compact(self.applied, data).is_ok() {
                self.drain();
            }
        }
    }

    fn on_committed(&mut self, index: Index, data: &[u8]) {
        self.applied = index;
        let records = match decode_records(data) {
            Ok(records) => records,
            Err(_) if data.is_empty() => Vec::new(), // a leader's first entry of its term
            Err(error) => {
                let error = format!("the controller's entry {index}: {error}");
                return self.outputs.push_back(QuorumOutput::Error(error));
            }
        };
        let ours = self.pending.front().is_some_and(|(at, _)| *at == index);
        if !ours {
            self.abandon_pending();
        }
        for record in &records {
            if let Err(error) = self.committed.apply(record) {
                let error = format!("the controller's entry {index}: {error}");
                self.outputs.push_back(QuorumOutput::Error(error));
            } else if !ours {
                // Not leading: the image follows the committed one record by record.
                self.image
                    .apply(record)
                    .expect("the image is the committed one");
            }
        }
        if ours {
            self.pending.pop_front(); // already in the image
            self.diverged = !self.pending.is_empty();
            if self.planted == Some(QuorumBug::PublishOnAppend) {
                return; // published when appended
            }
        }
        if !records.is_empty() {
            self.published
                .push_back(Published::Records { index, records });
        }
    }

    /// Active controller: every registered broker it has no time for (it just became
    /// active) gets a whole session from now, as KRaft's new controller gives it; a
    /// controller that is not active keeps none.
    fn start_sessions(&mut self) {
        if !self.is_active() {
            return self.sessions.clear();
        }
        for &node in self.image.brokers.keys() {
            self.sessions.entry(node).or_insert(self.now_ms);
        }
    }

    /// Notes a new term of leading, or the end of one.
    fn follow_role(&mut self) {
        let term = self.raft.term();
        match self.raft.role() {
            Role::Leader if self.leading.is_none_or(|(t, _)| t != term) => {
                // The term's first entry is the last one: nothing was proposed since.
                self.leading = Some((term, self.raft.last_index()));
            }
            Role::Leader => {}
            _ => {
                self.leading = None;
                self.sessions.clear();
                self.abandon_pending();
            }
        }
    }

    /// Drops the appends not seen committed; the image goes back to the committed one.
    fn abandon_pending(&mut self) {
        for (index, _) in self.pending.drain(..) {
            self.outputs.push_back(QuorumOutput::Abandoned(index));
        }
        if std::mem::take(&mut self.diverged) {
            self.image.clone_from(&self.committed);
        }
    }
}

/// The image a snapshot's records build.
fn image_of(data: &[u8]) -> Result<MetadataImage, String> {
    let mut image = MetadataImage::default();
    for record in decode_records(data)? {
        image.apply(&record)?;
    }
    Ok(image)
}

/// A leader's first entry of its term is empty: no records.
fn empty_or(data: &[u8], error: String) -> Result<Vec<MetadataRecord>, String> {
    match data.is_empty() {
        true => Ok(Vec::new()),
        false => Err(error),
    }
}
