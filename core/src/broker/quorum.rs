//! The control shard's seat in the controller quorum (issue 15), when `controller.quorum.voters`
//! names this node: the [`QuorumController`] with its journal and its messages. Messages from
//! other voters come in as bytes ([`Broker::handle_quorum_frame`]) and go out as
//! [`Output::ToNode`]; what Raft stores goes to the journal file ([`QUORUM_JOURNAL`]) by
//! `IoOp::PersistQuorum`, appended record by record and rewritten whole after a snapshot; its
//! deadlines are the broker's.
//!
//! What runs on it: the voters elect a leader, replicate and commit; the first leader commits
//! the cluster id; the active controller takes the cluster's changes (topics, configs,
//! producer ids, registrations, leaders), and every voter mirrors what is committed into its
//! own metadata, which its broker runs on (`metadata_log.rs`).

use super::{Broker, InFlight, Output};
use crate::controller::quorum::{
    AlterInSyncAsk, AppendError, CreateTopicAsk, Heartbeat, Published, QuorumController,
    QuorumOutput,
};
use crate::controller::{MetadataRecord, PRODUCER_ID_BLOCK};
use crate::io::{IoOp, IoResult, Level, QUORUM_JOURNAL};
use crate::raft::{codec, Persist, RaftBug, RaftConfig, Stored};
use std::collections::VecDeque;

/// Wait before writing the journal again after a write failed.
const RETRY_MS: i64 = 500;
/// How long a controlled shutdown waits for the quorum to fence this broker and elect another
/// leader before it stops anyway.
const SHUTDOWN_SETTLE_MS: i64 = 5_000;

/// How often a broker-only node that knows no leader asks the next voter.
const SEEK_LEADER_MS: i64 = 250;

pub(super) struct QuorumSeat {
    controller: QuorumController,
    /// What the journal holds once the write in flight is done (to rewrite it whole).
    stored: Stored,
    /// The persist to write and whether its write is issued; whether the journal must be
    /// rewritten whole (at start, and after a failed write, whose bytes may be half there).
    writing: Option<(Persist, bool)>,
    rewrite: bool,
    retry_at: Option<i64>,
    /// This life of the broker (a new one at each start), and when it heartbeats next.
    incarnation: u64,
    next_heartbeat_ms: i64,
    /// A controlled shutdown began: heartbeats say so, and the controller fences this broker.
    /// The shutdown waits (until this time at most) for the fencing to commit and for the
    /// quorum's leadership to move on.
    shutting_down: bool,
    settle_until: i64,
    /// Producer-id blocks the controller granted this life, as (next, limit); whether the
    /// heartbeats ask for another (once fewer than half a block is left).
    producer_ids: VecDeque<(i64, i64)>,
    wants_producer_ids: bool,
    /// The leader the last heartbeat went to: a new one hears from this broker at once.
    heard_by: Option<crate::replica::NodeId>,
    /// A broker-only node without a leader: the voter (by position) its last heartbeat asked.
    asked_voter: usize,
}

impl QuorumSeat {
    /// When the quorum needs the time next.
    pub(super) fn deadline(&self) -> Option<i64> {
        let quorum = self.controller.poll_timeout().min(self.next_heartbeat_ms);
        Some(self.retry_at.map_or(quorum, |r| r.min(quorum)))
    }

    pub(super) fn controller(&self) -> &QuorumController {
        &self.controller
    }

    pub(super) fn controller_mut(&mut self) -> &mut QuorumController {
        &mut self.controller
    }
}

impl Broker {
    /// Start-up of the control shard of a voter: the quorum from what its journal holds (a
    /// torn last record, from a crash mid-write, is dropped and the journal rewritten).
    pub(super) fn start_quorum(
        &mut self,
        journal: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<(), String> {
        let node = self.config.node_id;
        let voters: Vec<_> = self
            .config
            .controller_quorum
            .iter()
            .map(|(id, _)| *id)
            .collect();
        if !self.is_control() || voters.is_empty() {
            return Ok(());
        }
        // A node that is not a voter is a broker-only node: an observer of the quorum, which
        // the leader replicates to once it hears from it, and which never stands.
        let role = match voters.contains(&node) {
            true => "a voter and a broker",
            false => "a broker only (an observer)",
        };
        let mut stored = Stored::default();
        let persists = codec::decode_persists(journal.unwrap_or_default())
            .map_err(|e| format!("{QUORUM_JOURNAL}: {e}"))?;
        for persist in &persists {
            stored.apply(persist);
        }
        let first_asked = (self.rng.next_u64() % voters.len() as u64) as usize;
        let mut config = RaftConfig::new(node, voters, self.config.seed);
        config.planted = match self.config.planted_bug {
            Some(super::PlantedBug::VoteTwice) => Some(RaftBug::VoteTwice),
            Some(super::PlantedBug::CommitMinority) => Some(RaftBug::CommitMinority),
            _ => None,
        };
        // Versions between snapshots of the quorum's image; the journal is rewritten at each.
        let snapshot_every = self.config.quorum_snapshot_every.max(1);
        let planted = match self.config.planted_bug {
            Some(super::PlantedBug::KeepFencedLeaders) => {
                Some(crate::controller::quorum::QuorumBug::KeepFencedLeaders)
            }
            Some(super::PlantedBug::ElectOutsideInSync) => {
                Some(crate::controller::quorum::QuorumBug::ElectOutsideInSync)
            }
            Some(super::PlantedBug::PreferOutOfSync) => {
                Some(crate::controller::quorum::QuorumBug::PreferOutOfSync)
            }
            _ => None,
        };
        let controller =
            QuorumController::new(config, stored.clone(), now_ms, snapshot_every, planted)
                .map_err(|e| format!("{QUORUM_JOURNAL}: {e}"))?
                .with_session_timeout(self.config.broker_session_timeout_ms)
                .with_elections(self.config.elections);
        self.log(
            Level::Info,
            format!(
                "controller quorum: node {node}, {role}, of voters {:?}, term {} from the journal",
                self.config.controller_quorum, stored.hard_state.term
            ),
        );
        self.quorum = Some(QuorumSeat {
            controller,
            stored,
            writing: None,
            // The journal is rewritten once at start: a torn tail goes.
            rewrite: true,
            retry_at: None,
            incarnation: self.rng.next_u64(),
            next_heartbeat_ms: now_ms,
            shutting_down: false,
            settle_until: 0,
            producer_ids: VecDeque::new(),
            // Asked for at once, so the first producer need not wait.
            wants_producer_ids: true,
            heard_by: None,
            asked_voter: first_asked,
        });
        self.pump_quorum();
        Ok(())
    }

    /// This node's seat in the controller quorum, if it is a voter (the control shard): for
    /// the simulator's checkers and tools that read the Raft state.
    pub fn quorum_controller(&self) -> Option<&QuorumController> {
        self.quorum.as_ref().map(|seat| &seat.controller)
    }

    /// The metadata this node serves from (its mirror of the quorum's committed image on a
    /// cluster node); the control shard only.
    pub fn metadata_image(&self) -> Option<&crate::controller::MetadataImage> {
        self.controller.as_ref().map(|c| c.image())
    }

    /// A controller quorum message from another node (its bytes, as the shell read them).
    /// Anything that does not decode is dropped: the sender resends what matters.
    pub fn handle_quorum_frame(&mut self, now_ms: i64, frame: &[u8]) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.quorum.is_none() {
            return;
        }
        if self.handle_forwarding_frame(now_ms, frame) {
            return self.pump_quorum();
        }
        let Some(seat) = self.quorum.as_mut() else {
            return;
        };
        if let Some(heartbeat) = Heartbeat::decode(frame) {
            // Only the active controller takes it; the broker sends the next to the leader.
            let _ = seat.controller.handle_heartbeat(now_ms, heartbeat);
        } else if let Some(ask) = CreateTopicAsk::decode(frame) {
            self.create_asked_topic(ask);
        } else if let Some(ask) = AlterInSyncAsk::decode(frame) {
            self.take_alter_in_sync(&ask);
        } else if let Ok(message) = codec::decode_message(frame) {
            seat.controller.handle_message(now_ms, message);
        }
        self.pump_quorum();
    }

    /// Sends `frame` to the active controller, if another node is known to lead (a node that
    /// leads took the change itself).
    pub(super) fn ask_controller(&mut self, frame: Vec<u8>) {
        let leader = self
            .quorum
            .as_ref()
            .and_then(|s| s.controller.raft().leader());
        if let Some(node) = leader.filter(|&l| l != self.config.node_id) {
            self.outputs.push_back(Output::ToNode { node, frame });
        }
    }

    /// Active controller: another broker needs a topic (auto-creation, `__consumer_offsets`).
    /// Created unless it exists or is being created; a bad ask is logged and dropped.
    fn create_asked_topic(&mut self, ask: CreateTopicAsk) {
        let Some(seat) = self.quorum.as_ref() else {
            return;
        };
        if !seat.controller.is_active() || seat.controller.image().topics.contains_key(&ask.name) {
            return;
        }
        let brokers = self.placeable_brokers().len() as i32;
        let factor = ask.replication_factor.clamp(1, brokers.max(1));
        let partitions = ask.partitions.clamp(1, crate::topics::PARTITIONS_MAX);
        let Ok(replicas) = self.place_replicas(partitions, factor) else {
            return;
        };
        if let Err(error) = self.create_topic(&ask.name, replicas, ask.configs) {
            self.log(
                Level::Warn,
                format!(
                    "controller quorum: a broker asked for topic '{}': {error}",
                    ask.name
                ),
            );
        }
        self.pump_io();
    }

    /// Tells the active controller this broker is alive (or shutting down): itself, when it
    /// is the leader, else over the leader's connection. Without a known leader, nothing.
    fn heartbeat(&mut self, now_ms: i64) {
        let node = self.config.node_id;
        let (host, port) = (
            self.config.advertised_host.clone(),
            self.config.advertised_port,
        );
        let interval = self.config.broker_heartbeat_interval_ms.max(1);
        let Some(seat) = self.quorum.as_mut() else {
            return;
        };
        seat.next_heartbeat_ms = now_ms + interval;
        let heartbeat = Heartbeat {
            rack: self.config.rack.clone(),
            node,
            incarnation: seat.incarnation,
            host,
            port: u16::try_from(port).unwrap_or(0),
            shutting_down: seat.shutting_down,
            wants_producer_ids: seat.wants_producer_ids && !seat.shutting_down,
        };
        let raft = seat.controller.raft();
        let mut leader = raft.leader();
        if leader.is_none() && !raft.voters().contains(&node) {
            // A broker-only node that knows no leader asks the voters in turn: the leader
            // answers by replicating to it (the others drop the heartbeat).
            let voters = raft.voters();
            seat.asked_voter = (seat.asked_voter + 1) % voters.len().max(1);
            leader = voters.get(seat.asked_voter).copied();
            // Sooner than a heartbeat interval: a broker without a leader is not served.
            seat.next_heartbeat_ms = now_ms + interval.min(SEEK_LEADER_MS);
        }
        seat.heard_by = leader;
        match leader {
            Some(leader) if leader == node => {
                if let Err(AppendError::NotReady) =
                    seat.controller.handle_heartbeat(now_ms, heartbeat)
                {
                    // Leading, but not yet active: told again once it is (the next pump).
                    seat.heard_by = None;
                }
            }
            Some(leader) => self.outputs.push_back(Output::ToNode {
                node: leader,
                frame: heartbeat.encode(),
            }),
            None => {}
        }
    }

    /// The next producer id of the blocks the controller granted this broker; `None` while it
    /// has none (the next heartbeat, sent at once, asks for one).
    pub(super) fn take_producer_id(&mut self) -> Option<i64> {
        let seat = self.quorum.as_mut()?;
        let id = loop {
            match seat.producer_ids.front_mut() {
                Some((next, limit)) if *next < *limit => {
                    *next += 1;
                    break Some(*next - 1);
                }
                Some(_) => {
                    seat.producer_ids.pop_front();
                }
                None => break None,
            }
        };
        let left: i64 = seat
            .producer_ids
            .iter()
            .map(|(next, limit)| limit - next)
            .sum();
        if left < PRODUCER_ID_BLOCK / 2 && !seat.wants_producer_ids {
            seat.wants_producer_ids = true;
            self.heartbeat(self.now_ms);
            self.pump_quorum();
        }
        id
    }

    /// A controlled shutdown: the controller hears it at once (and fences this broker), and a
    /// leading voter hands the quorum to another, so no election waits for a timeout.
    pub(super) fn quorum_shutdown(&mut self) {
        let Some(seat) = self.quorum.as_mut() else {
            return;
        };
        seat.shutting_down = true;
        seat.settle_until = self.now_ms + SHUTDOWN_SETTLE_MS;
        self.heartbeat(self.now_ms);
        if let Some(seat) = self.quorum.as_mut() {
            let _ = seat.controller.transfer_leadership(None);
        }
        self.pump_quorum();
    }

    /// A controlled shutdown is still telling the quorum: this broker's fencing is not yet
    /// committed, or this node still leads (bounded by [`SHUTDOWN_SETTLE_MS`]).
    pub(super) fn quorum_settling(&self) -> bool {
        let Some(seat) = self.quorum.as_ref().filter(|s| s.shutting_down) else {
            return false;
        };
        let me = seat
            .controller
            .committed_image()
            .brokers
            .get(&self.config.node_id);
        let fenced = me.is_none_or(|b| b.fenced || b.incarnation != seat.incarnation);
        let raft = seat.controller.raft();
        // Leading matters only while there is another voter to hand over to.
        let leads = raft.leader() == Some(self.config.node_id) && raft.voters().len() > 1;
        (!fenced || leads) && self.now_ms < seat.settle_until
    }

    pub(super) fn quorum_timeout(&mut self, now_ms: i64) {
        let Some(seat) = self.quorum.as_mut() else {
            return;
        };
        if seat.retry_at.is_some_and(|at| at <= now_ms) {
            seat.retry_at = None;
        }
        if seat.controller.poll_timeout() <= now_ms {
            seat.controller.handle_timeout(now_ms);
        }
        if seat.next_heartbeat_ms <= now_ms {
            self.heartbeat(now_ms);
        }
        self.pump_quorum();
    }

    /// The journal write of persist `seq` ended.
    pub(super) fn on_quorum_persisted(&mut self, seq: u64, result: IoResult) {
        let Some(seat) = self.quorum.as_mut() else {
            return;
        };
        let Some((persist, _)) = seat.writing.take_if(|(p, _)| p.seq == seq) else {
            return;
        };
        match result {
            IoResult::Failed(error) => {
                seat.rewrite = true;
                seat.writing = Some((persist, false));
                seat.retry_at = Some(self.now_ms + RETRY_MS);
                self.log(
                    Level::Error,
                    format!("cannot write {QUORUM_JOURNAL}: {error}; retrying"),
                );
            }
            _ => {
                seat.stored.apply(&persist);
                seat.controller.handle_persisted(seq);
            }
        }
        self.pump_quorum();
    }

    /// Performs what the quorum asks for: messages out, journal writes, published versions.
    pub(super) fn pump_quorum(&mut self) {
        // (A broker-only node with no leader asks the voters in turn, a heartbeat interval
        // apart: not a new leader.)
        let new_leader = self.quorum.as_ref().is_some_and(|s| {
            let leader = s.controller.raft().leader();
            leader.is_some() && s.heard_by != leader
        });
        if new_leader {
            // A new leader hears from this broker at once, not a heartbeat interval later.
            self.heartbeat(self.now_ms);
        }
        let Some(seat) = self.quorum.as_mut() else {
            return;
        };
        let mut logs = Vec::new();
        let mut adopt = None;
        let mut abandoned = None;
        // The first leader names the cluster, with this node's id.
        if seat.controller.is_active() && seat.controller.image().cluster_id.is_empty() {
            let id = self.cluster_id.clone();
            if let Err(AppendError::Refused(error)) =
                seat.controller.append(vec![MetadataRecord::Cluster { id }])
            {
                logs.push((Level::Error, format!("controller quorum: {error}")));
            }
        }
        while let Some(output) = seat.controller.poll_output() {
            match output {
                QuorumOutput::Send(message) => {
                    let mut frame = Vec::new();
                    codec::encode_message(&message, &mut frame);
                    self.outputs.push_back(Output::ToNode {
                        node: message.to,
                        frame,
                    });
                }
                // Raft hands out one at a time, the next once this one is done.
                QuorumOutput::Persist(persist) => seat.writing = Some((persist, false)),
                QuorumOutput::Abandoned(index) => {
                    abandoned = Some(abandoned.map_or(index, |a: u64| a.min(index)));
                    logs.push((
                        Level::Info,
                        format!("controller quorum: version {index} was not committed before leadership moved"),
                    ));
                }
                QuorumOutput::Error(error) => {
                    logs.push((Level::Error, format!("controller quorum: {error}")))
                }
            }
        }
        while let Some(published) = seat.controller.poll_published() {
            let (index, cluster) = match &published {
                Published::Image { index, image } => {
                    logs.push((
                        Level::Info,
                        format!(
                            "controller quorum: the metadata image of version {index} (a snapshot)"
                        ),
                    ));
                    (*index, Some(image.cluster_id.clone()))
                }
                Published::Records { index, records } => {
                    let (node, life) = (self.config.node_id, seat.incarnation);
                    for record in records {
                        if let MetadataRecord::ProducerIdBlock {
                            node: to,
                            incarnation,
                            start,
                            limit,
                        } = *record
                        {
                            if (to, incarnation) == (node, life) {
                                seat.producer_ids.push_back((start, limit));
                                seat.wants_producer_ids = false;
                            }
                        }
                    }
                    let id = records.iter().find_map(|r| match r {
                        MetadataRecord::Cluster { id } => Some(id.clone()),
                        _ => None,
                    });
                    (*index, id)
                }
            };
            let Some(id) = cluster.filter(|id| !id.is_empty()) else {
                continue;
            };
            logs.push((
                Level::Info,
                format!("controller quorum: cluster id {id} committed (version {index})"),
            ));
            if id != self.cluster_id {
                adopt = Some(id);
            }
        }
        let write = match &mut seat.writing {
            Some((persist, issued)) if !*issued && seat.retry_at.is_none() => {
                *issued = true;
                Some(persist.clone())
            }
            _ => None,
        };
        for (level, message) in logs {
            self.log(level, message);
        }
        if let Some(persist) = write {
            self.write_journal(persist);
        }
        if let Some(index) = abandoned {
            self.abandon_quorum_waiters(index);
        }
        if let Some(id) = adopt {
            self.adopt_cluster_id(id);
        }
        self.mirror_quorum();
    }

    /// The quorum's cluster id is not the one this node's data directory was started with. A
    /// directory with no topics takes it (its metadata and `meta.properties`; a crash between
    /// the two writes is settled at the next start, see `check_cluster_identity`, and nothing
    /// more is mirrored until the file is written, so no topic lands in between); one with
    /// topics keeps serving them and says it is not of this cluster.
    fn adopt_cluster_id(&mut self, id: String) {
        let own = self.cluster_id.clone();
        if !self.topics.is_empty() {
            return self.log(
                Level::Error,
                format!("controller quorum: the cluster's id is {id}, but this node's data directory holds topics of cluster {own}: it does not take the cluster's id"),
            );
        }
        self.log(
            Level::Info,
            format!("controller quorum: this node takes the cluster's id {id} (its new data directory had {own})"),
        );
        if self
            .append_metadata(vec![MetadataRecord::Cluster { id: id.clone() }])
            .is_ok()
        {
            self.write_identity(id);
        }
    }

    /// Writes `persist` to the journal: appended, or (after a snapshot or a failed write) the
    /// whole journal rewritten as one record of everything stored.
    fn write_journal(&mut self, persist: Persist) {
        let seat = self.quorum.as_mut().expect("called with a seat");
        let replace = seat.rewrite || persist.snapshot.is_some();
        let mut data = Vec::new();
        if replace {
            let mut whole = seat.stored.clone();
            whole.apply(&persist);
            let from = whole.entries.first().map(|e| e.index);
            let record = Persist {
                seq: persist.seq,
                snapshot: whole.snapshot,
                hard_state: whole.hard_state,
                entries_from: from,
                entries: whole.entries,
            };
            codec::encode_persist(&record, &mut data);
            seat.rewrite = false;
        } else {
            codec::encode_persist(&persist, &mut data);
        }
        let seq = persist.seq;
        self.issue(
            IoOp::PersistQuorum { data, replace },
            InFlight::Quorum { seq },
        );
    }
}
