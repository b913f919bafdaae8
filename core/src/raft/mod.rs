//! Raft, as a pure state machine: the consensus under the controller quorum's metadata log
//! (issue 15; KRaft runs Kafka's the same way, KIP-595). No clock, no socket, no disk: time comes
//! in as `now` (ms), randomness from the seed, and everything to store or send comes out as data.
//!
//! Inputs: `handle_message(now, message)`, `handle_timeout(now)` at `poll_timeout()`,
//! `handle_persisted(seq)` once a `Persist` is on disk, and the commands `propose(data)`,
//! `compact(index, data)` (a snapshot) and `transfer_leadership(to)` (a hand-over).
//! Outputs, from `poll_output()`: `Persist` (the term and vote, and log entries from an index on,
//! replacing what is stored from there), `Send` (a message to a peer), `Committed` (the next
//! entry committed and durable here, in order). A message goes out only once the state it speaks
//! for is durable: a vote is never granted, nor an entry acknowledged, from memory.
//!
//! Beyond the Raft paper: **pre-vote** (§9.6 of Ongaro's thesis: a node cut off asks whether it
//! could win before raising its term, so it does not depose a healthy leader when it returns) and
//! **check-quorum** (a leader that has not heard from a majority within an election timeout
//! steps down; a follower that heard from a leader within the minimum election timeout ignores
//! votes, so a leader's lease is respected).
//!
//! Snapshots (KIP-630's role): the application hands the node its state through an applied
//! index (`compact`), the log before it is dropped once the snapshot is stored, and a follower
//! that needs entries the leader no longer has is sent the snapshot (`RestoreSnapshot` hands it
//! to the application there once stored).
//!
//! Files: `log.rs` (the snapshot point, the entries and their indexes), `election.rs`
//! (timeouts, pre-votes, votes), `replication.rs` (appends, snapshots, their answers, the
//! commit rule), `codec.rs` (messages and stored records as bytes), `tests.rs`.

pub mod codec;
mod election;
mod log;
mod replication;
#[cfg(test)]
mod tests;

use crate::replica::NodeId;
use crate::rng::Rng;
use log::RaftLog;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub type Term = u64;
pub type Index = u64;

/// One entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub term: Term,
    pub index: Index,
    pub data: Vec<u8>,
}

/// The application's state through `index` (whose entry is of `term`), standing for every
/// entry up to it: the log before it is dropped, and a follower too far behind gets it whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub index: Index,
    pub term: Term,
    pub data: Vec<u8>,
}

/// What a node stored, to start from: the hard state, the latest snapshot (whose state the
/// application restores itself) and the entries after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Stored {
    /// What storing `persist` makes of this (the shells' stores and the tests' share it).
    pub fn apply(&mut self, persist: &Persist) {
        if let Some(snapshot) = &persist.snapshot {
            self.entries.retain(|e| e.index > snapshot.index);
            self.snapshot = Some(snapshot.clone());
        }
        self.hard_state = persist.hard_state;
        if let Some(from) = persist.entries_from {
            self.entries.retain(|e| e.index < from);
            self.entries.extend(persist.entries.iter().cloned());
        }
    }
}

/// What must survive a crash besides the log: the current term and the vote cast in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<NodeId>,
    pub committed_index: Index,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: MessageBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    /// Would you vote for me in `term` (the message's term, not yet the sender's)?
    PreVote {
        last_log_term: Term,
        last_log_index: Index,
    },
    PreVoteResponse {
        granted: bool,
    },
    /// `transfer`: the leader handed over to this candidate (`TimeoutNow`), so a voter's lease
    /// on that leader does not hold the vote back.
    Vote {
        last_log_term: Term,
        last_log_index: Index,
        transfer: bool,
    },
    VoteResponse {
        granted: bool,
    },
    /// Entries after (`prev_log_index`, `prev_log_term`); empty as a heartbeat.
    Append {
        prev_log_index: Index,
        prev_log_term: Term,
        entries: Vec<Entry>,
        committed_index: Index,
    },
    /// `match_index`: the follower's log matches the leader's through it (success); on a
    /// mismatch, the follower's last index, so the leader can go back at once.
    AppendResponse {
        success: bool,
        match_index: Index,
    },
    /// The leader's snapshot, for a follower that needs entries the leader no longer has;
    /// answered with an `AppendResponse` through its index. Sent whole (the metadata image is
    /// small); chunks as KIP-630's FetchSnapshot would come with larger images.
    InstallSnapshot {
        snapshot: Snapshot,
    },
    /// The leader hands over: stand for election now (Raft thesis §3.10; KRaft's
    /// EndQuorumEpoch on a controlled shutdown plays this part).
    /// `last_log_index`: the leader's log when it asked; a follower whose log is not exactly
    /// that (the hand-over expired and the leader went on) ignores it.
    TimeoutNow {
        last_log_index: Index,
    },
}

/// Storage asked of the shell: store the snapshot (if any) and drop stored entries through its
/// index; set the hard state; cut the stored log after `entries_from - 1` and append `entries`
/// (no entries and no cut when `entries_from` is `None`), as [`Stored::apply`] does; then call
/// `handle_persisted(seq)`. **All of it or none** survives a crash: a hard state stored without
/// the cut that goes with it could name as committed an entry the cut removes
/// (`codec::encode_persist` writes one record under one checksum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    pub seq: u64,
    pub snapshot: Option<Snapshot>,
    pub hard_state: HardState,
    pub entries_from: Option<Index>,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftOutput {
    Persist(Persist),
    Send(Message),
    Committed(Entry),
    /// A leader's snapshot is durable here: the application replaces its state with it; the
    /// entries committed next follow its index.
    RestoreSnapshot(Snapshot),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// A node's settings. Election timeouts are drawn from [`election_timeout_ms`,
/// 2 × `election_timeout_ms`) with the seed.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    pub node: NodeId,
    pub voters: Vec<NodeId>,
    pub election_timeout_ms: i64,
    pub heartbeat_interval_ms: i64,
    /// Entries per Append message, at most.
    pub append_entries_max: usize,
    pub seed: u64,
    /// A known bug switched on, for the checkers to catch (never in production).
    pub planted: Option<RaftBug>,
}

/// Bugs a test plants to show that its checkers catch them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftBug {
    /// Grant a vote in a term already voted in, to anyone with an up-to-date log.
    VoteTwice,
    /// Commit what a minority (one fewer than a majority) has durable.
    CommitMinority,
    /// Acknowledge appended entries before they are durable.
    AckFromMemory,
}

impl RaftConfig {
    /// Kafka's defaults: `controller.quorum.election.timeout.ms` 1000, fetch every 500 ms or
    /// less; Spate heartbeats every 200 ms.
    pub fn new(node: NodeId, voters: Vec<NodeId>, seed: u64) -> RaftConfig {
        RaftConfig {
            node,
            voters,
            election_timeout_ms: 1_000,
            heartbeat_interval_ms: 200,
            append_entries_max: 256,
            seed,
            planted: None,
        }
    }
}

/// A leader replicates to this many peers at most (voters and observers).
const OBSERVERS_MAX: usize = 1_024;
/// An observer silent for this many election timeouts is no longer replicated to.
pub const OBSERVER_SILENCE_TIMEOUTS: i64 = 3;

/// Terms and indexes a peer may name: far beyond any real log, and far enough below
/// `u64::MAX` that `+ 1` never wraps. A message naming more is dropped.
const BOUND: u64 = u64::MAX / 4;

fn within_bounds(message: &Message) -> bool {
    let entries_ok =
        |entries: &[Entry]| entries.iter().all(|e| e.term <= BOUND && e.index <= BOUND);
    message.term <= BOUND
        && match &message.body {
            MessageBody::PreVote {
                last_log_term,
                last_log_index,
            }
            | MessageBody::Vote {
                last_log_term,
                last_log_index,
                ..
            } => *last_log_term <= BOUND && *last_log_index <= BOUND,
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                committed_index,
            } => {
                *prev_log_index <= BOUND
                    && *prev_log_term <= BOUND
                    && *committed_index <= BOUND
                    && entries_ok(entries)
            }
            MessageBody::AppendResponse { match_index, .. } => *match_index <= BOUND,
            MessageBody::InstallSnapshot { snapshot } => {
                snapshot.index <= BOUND && snapshot.term <= BOUND
            }
            MessageBody::PreVoteResponse { .. }
            | MessageBody::VoteResponse { .. }
            | MessageBody::TimeoutNow { .. } => true,
        }
}

/// What the leader knows of a follower.
#[derive(Debug, Clone, Copy)]
struct Progress {
    match_index: Index,
    next_index: Index,
    /// When it last answered in this term (check-quorum).
    heard_ms: i64,
}

pub struct RaftNode {
    config: RaftConfig,
    rng: Rng,
    role: Role,
    term: Term,
    voted_for: Option<NodeId>,
    leader: Option<NodeId>,
    log: RaftLog,
    /// Votes (or pre-votes) received in the current election.
    votes: BTreeSet<NodeId>,
    /// The leader's view of each other voter.
    progress: BTreeMap<NodeId, Progress>,
    /// Follower: when an election starts; leader: when the next heartbeat is due.
    election_deadline_ms: i64,
    heartbeat_deadline_ms: i64,
    /// Leader: when check-quorum looks next.
    quorum_check_ms: i64,
    /// Leader: handing over to this follower, until this time (proposals wait meanwhile).
    transfer: Option<(NodeId, i64)>,
    /// When a leader was last heard from (or this node became one).
    leader_heard_ms: Option<i64>,
    /// Bumped on every change to the hard state or the log; `persisted_seq` is the last durable.
    state_seq: u64,
    persisted_seq: u64,
    /// The persist handed out and not yet done.
    persisting: Option<u64>,
    /// Messages waiting for the state they speak for to be durable.
    held: VecDeque<(u64, Message)>,
    /// The latest snapshot, kept for followers that need it; whether it is yet to be stored;
    /// a leader's snapshot to hand the application once stored (with its persist seq).
    snapshot: Option<Snapshot>,
    snapshot_unstored: bool,
    restore: Option<(u64, Snapshot)>,
    outputs: VecDeque<RaftOutput>,
    now_ms: i64,
}

impl RaftNode {
    /// A node starting from what it stored (nothing, the first time), at `now_ms`. Stored
    /// entries that do not follow the snapshot are refused, naming the problem.
    pub fn new(config: RaftConfig, stored: Stored, now_ms: i64) -> Result<RaftNode, String> {
        if !config.voters.windows(2).all(|w| w[0] < w[1]) {
            return Err(format!(
                "voters {:?} must be sorted and distinct",
                config.voters
            ));
        }
        if config.election_timeout_ms <= config.heartbeat_interval_ms {
            return Err("the election timeout must be longer than the heartbeat interval".into());
        }
        let rng = Rng::new(config.seed ^ 0x7261_6674 ^ config.node as u64);
        let (snapshot_index, snapshot_term) = stored
            .snapshot
            .as_ref()
            .map_or((0, 0), |s| (s.index, s.term));
        let committed = stored.hard_state.committed_index;
        let log = RaftLog::restored(snapshot_index, snapshot_term, stored.entries, committed)?;
        let mut node = RaftNode {
            config,
            rng,
            role: Role::Follower,
            term: stored.hard_state.term,
            voted_for: stored.hard_state.voted_for,
            leader: None,
            log,
            votes: BTreeSet::new(),
            progress: BTreeMap::new(),
            election_deadline_ms: 0,
            heartbeat_deadline_ms: 0,
            quorum_check_ms: 0,
            transfer: None,
            leader_heard_ms: None,
            state_seq: 0,
            persisted_seq: 0,
            persisting: None,
            held: VecDeque::new(),
            snapshot: stored.snapshot,
            snapshot_unstored: false,
            restore: None,
            outputs: VecDeque::new(),
            now_ms,
        };
        node.reset_election_deadline();
        Ok(node)
    }

    // ---- getters ----

    pub fn node(&self) -> NodeId {
        self.config.node
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }
    pub fn committed_index(&self) -> Index {
        self.log.committed_index
    }
    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }
    pub fn term_at(&self, index: Index) -> Option<Term> {
        self.log.term_at(index)
    }
    /// Entry `index`, if this node's log holds it (for checkers).
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.log.entry(index)
    }
    /// Everything through this index has been handed to the application (or restored).
    pub fn applied_index(&self) -> Index {
        self.log.applied_index
    }
    /// The index the log starts after: entries through it are in the snapshot.
    pub fn snapshot_index(&self) -> Index {
        self.log.snapshot_index
    }

    fn is_voter(&self) -> bool {
        self.config.voters.contains(&self.config.node)
    }

    fn majority(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }

    fn planted_vote_twice(&self) -> bool {
        self.config.planted == Some(RaftBug::VoteTwice)
    }

    /// How many voters must have an entry durable for it to commit.
    fn planted_commit_quorum(&self) -> usize {
        match self.config.planted {
            Some(RaftBug::CommitMinority) => (self.majority() - 1).max(1),
            _ => self.majority(),
        }
    }

    /// Whether this leader is handing leadership over (proposals are refused meanwhile).
    pub fn is_transferring(&self) -> bool {
        self.role == Role::Leader && self.transfer.is_some()
    }

    pub fn voters(&self) -> &[NodeId] {
        &self.config.voters
    }

    /// Leader: how far a voter's log is known to match this one (this node: its last index),
    /// and when it last answered (ms); `None` when not leading.
    pub fn voter_progress(&self, voter: NodeId) -> Option<(Index, Option<i64>)> {
        if self.role != Role::Leader {
            return None;
        }
        if voter == self.config.node {
            return Some((self.log.last_index(), Some(self.now_ms)));
        }
        let progress = self.progress.get(&voter)?;
        Some((progress.match_index, Some(progress.heard_ms)))
    }

    /// Leader: the observers it replicates to, in id order.
    pub fn observers(&self) -> Vec<NodeId> {
        let voters = &self.config.voters;
        self.progress
            .keys()
            .copied()
            .filter(|id| !voters.contains(id))
            .collect()
    }

    /// Whether `node` is an observer this leader replicates to.
    pub fn has_observer(&self, node: NodeId) -> bool {
        !self.config.voters.contains(&node) && self.progress.contains_key(&node)
    }

    /// Leader: replicate to `node`, a node that is not a voter (a broker-only node, KIP-595's
    /// observer), from now on. It never counts for a commit or an election; it is dropped
    /// once it has not answered for [`OBSERVER_SILENCE_TIMEOUTS`] election timeouts, and a
    /// new leader knows of it only once it asks again.
    pub fn add_observer(&mut self, node: NodeId) {
        let known = node == self.config.node
            || self.config.voters.contains(&node)
            || self.progress.contains_key(&node);
        if self.role != Role::Leader || known || self.progress.len() >= OBSERVERS_MAX {
            return;
        }
        let progress = Progress {
            match_index: 0,
            next_index: self.log.last_index() + 1,
            heard_ms: self.now_ms,
        };
        self.progress.insert(node, progress);
        self.send_append(node);
        self.pump();
    }

    fn peers(&self) -> Vec<NodeId> {
        let me = self.config.node;
        self.config
            .voters
            .iter()
            .copied()
            .filter(|&v| v != me)
            .collect()
    }

    // ---- inputs ----

    /// A message from a peer. Anything a peer sends is checked; a bad message is dropped.
    pub fn handle_message(&mut self, now_ms: i64, message: Message) {
        self.now_ms = self.now_ms.max(now_ms);
        // Voters, and on a leader the observers it replicates to: their answers only (an
        // observer never appends, stands or hands over).
        let from_observer = self.role == Role::Leader
            && self.progress.contains_key(&message.from)
            && matches!(message.body, MessageBody::AppendResponse { .. });
        let from_peer = message.from != self.config.node
            && (self.config.voters.contains(&message.from) || from_observer);
        if message.to != self.config.node || !from_peer || !within_bounds(&message) {
            return;
        }
        match message.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.on_vote_request(message),
            MessageBody::PreVoteResponse { granted } => self.on_pre_vote_response(message, granted),
            MessageBody::VoteResponse { granted } => self.on_vote_response(message, granted),
            MessageBody::Append { .. } => self.on_append(message),
            MessageBody::AppendResponse { .. } => self.on_append_response(message),
            MessageBody::InstallSnapshot { .. } => self.on_install_snapshot(message),
            MessageBody::TimeoutNow { .. } => self.on_timeout_now(message),
        }
        self.pump();
    }

    /// Time passed: an election, a heartbeat or a quorum check may be due.
    pub fn handle_timeout(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
        match self.role {
            Role::Leader => {
                if self.transfer.is_some_and(|(_, until)| self.now_ms >= until) {
                    self.transfer = None; // the follower did not take over: lead on
                }
                if self.now_ms >= self.quorum_check_ms {
                    self.on_quorum_check_timeout();
                }
                if self.role == Role::Leader && self.now_ms >= self.heartbeat_deadline_ms {
                    self.on_heartbeat_timeout();
                }
            }
            _ => {
                if self.now_ms >= self.election_deadline_ms {
                    self.on_election_timeout();
                }
            }
        }
        self.pump();
    }

    /// The persist numbered `seq` is on disk: what waited for it may go out.
    pub fn handle_persisted(&mut self, seq: u64) {
        if self.persisting != Some(seq) {
            return;
        }
        self.persisting = None;
        self.persisted_seq = seq;
        self.log.end_persist();
        if self.role == Role::Leader {
            self.advance_commit();
        }
        self.pump();
    }

    /// Command: append `data` to the log, if this node leads. Returns the entry's index, or the
    /// leader to ask instead (if known).
    pub fn propose(&mut self, data: Vec<u8>) -> Result<Index, Option<NodeId>> {
        if self.role != Role::Leader {
            return Err(self.leader);
        }
        if self.transfer.is_some() {
            return Err(None); // handing over: the next leader takes it
        }
        let index = self.log.push(self.term, data);
        self.state_changed();
        self.broadcast_append();
        self.pump();
        Ok(index)
    }

    /// Command: hand leadership to `to` (or the most up-to-date follower), as before a
    /// controlled shutdown: proposals are refused meanwhile, the follower is brought up to date
    /// and told to stand at once. If it has not taken over within an election timeout, this
    /// node leads on. Returns the follower chosen.
    pub fn transfer_leadership(&mut self, to: Option<NodeId>) -> Result<NodeId, String> {
        if self.role != Role::Leader {
            return Err(format!("node {} does not lead", self.config.node));
        }
        let target = match to {
            Some(peer)
                if self.progress.contains_key(&peer) && self.config.voters.contains(&peer) =>
            {
                peer
            }
            Some(peer) => return Err(format!("node {peer} is not another voter")),
            None => {
                let best = self
                    .progress
                    .iter()
                    .filter(|(id, _)| self.config.voters.contains(id))
                    .max_by_key(|(id, p)| (p.match_index, -**id));
                *best.ok_or("a lone voter has no one to hand over to")?.0
            }
        };
        self.transfer = Some((target, self.now_ms + self.config.election_timeout_ms));
        self.continue_transfer(target);
        self.pump();
        Ok(target)
    }

    /// Command: the application's state through `index` (applied already) is `data`; the
    /// log before it goes, once the snapshot is stored. Refused for an index not applied yet or
    /// not past the current snapshot.
    pub fn compact(&mut self, index: Index, data: Vec<u8>) -> Result<(), String> {
        if index > self.log.applied_index || index <= self.log.snapshot_index {
            return Err(format!(
                "cannot snapshot at {index}: applied through {}, snapshot at {}",
                self.log.applied_index, self.log.snapshot_index
            ));
        }
        self.log.compact(index);
        let term = self.log.snapshot_term;
        self.snapshot = Some(Snapshot { index, term, data });
        self.snapshot_unstored = true;
        self.state_changed();
        self.pump();
        Ok(())
    }

    // ---- outputs ----

    pub fn poll_output(&mut self) -> Option<RaftOutput> {
        self.outputs.pop_front()
    }

    /// When `handle_timeout` is due next.
    pub fn poll_timeout(&self) -> i64 {
        match self.role {
            Role::Leader => {
                let transfer = self.transfer.map_or(i64::MAX, |(_, until)| until);
                self.heartbeat_deadline_ms
                    .min(self.quorum_check_ms)
                    .min(transfer)
            }
            _ => self.election_deadline_ms,
        }
    }

    // ---- shared by the handlers ----

    /// The hard state or the log changed: it must be stored before messages that follow go out.
    fn state_changed(&mut self) {
        self.state_seq += 1;
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            committed_index: self.log.committed_index,
        }
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        let message = Message {
            from: self.config.node,
            to,
            term: self.term,
            body,
        };
        self.held.push_back((self.state_seq, message));
    }

    /// A leader's message to a follower goes out at once: the leader's term and vote were
    /// durable before it could win, and it counts its own entries only once they are durable
    /// (thesis §10.2.1), so a slow fsync here does not starve the followers' leases.
    fn send_now(&mut self, to: NodeId, body: MessageBody) {
        let message = Message {
            from: self.config.node,
            to,
            term: self.term,
            body,
        };
        self.outputs.push_back(RaftOutput::Send(message));
    }

    /// Hands out a persist if state changed and none is in flight, the messages whose state is
    /// durable, and the entries committed and durable here.
    fn pump(&mut self) {
        if self.persisting.is_none() && self.state_seq > self.persisted_seq {
            let (entries_from, entries) = self.log.begin_persist();
            let seq = self.state_seq;
            self.persisting = Some(seq);
            let snapshot = match std::mem::take(&mut self.snapshot_unstored) {
                true => self.snapshot.clone(),
                false => None,
            };
            self.outputs.push_back(RaftOutput::Persist(Persist {
                seq,
                snapshot,
                hard_state: self.hard_state(),
                entries_from,
                entries,
            }));
        }
        if self
            .restore
            .as_ref()
            .is_some_and(|(seq, _)| *seq <= self.persisted_seq)
        {
            let (_, snapshot) = self.restore.take().expect("checked");
            self.outputs
                .push_back(RaftOutput::RestoreSnapshot(snapshot));
        }
        while self
            .held
            .front()
            .is_some_and(|(seq, _)| *seq <= self.persisted_seq)
        {
            let (_, message) = self.held.pop_front().expect("checked");
            self.outputs.push_back(RaftOutput::Send(message));
        }
        while self.restore.is_none() {
            let Some(entry) = self.log.next_to_apply() else {
                break;
            };
            self.outputs.push_back(RaftOutput::Committed(entry));
        }
    }

    /// Moves to `term` as a follower of `leader` (if known); a new term clears the vote.
    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.state_changed();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        self.transfer = None;
        if leader.is_some() {
            self.leader_heard_ms = Some(self.now_ms);
        }
        self.reset_election_deadline();
    }

    fn reset_election_deadline(&mut self) {
        let timeout = self.config.election_timeout_ms;
        let jitter = self.rng.next_u64() % timeout.max(1) as u64;
        self.election_deadline_ms = self.now_ms + timeout + jitter as i64;
    }
}
