//! Raft's rules as data tables, and a small deterministic network of nodes (cut links, drop,
//! duplicate and reorder messages, crash nodes back to what they stored) with Raft's safety
//! checkers run over seeds; the planted bugs show the checkers catch what they are for.

use super::log::{AppendError, RaftLog};
use super::*;

const TIMEOUT_MS: i64 = 1_000;

fn entry(term: Term, index: Index) -> Entry {
    Entry {
        term,
        index,
        data: vec![index as u8],
    }
}

/// A log of entries with these terms, at indexes 1, 2, ...
fn log_of(terms: &[Term]) -> Vec<Entry> {
    (1..).zip(terms).map(|(i, &t)| entry(t, i)).collect()
}

/// Node 1 of voters 1, 2, 3, started from a stored term, vote and log of these terms.
fn stored_node(term: Term, voted_for: Option<NodeId>, terms: &[Term]) -> RaftNode {
    let hard_state = HardState {
        term,
        voted_for,
        committed_index: 0,
    };
    let stored = Stored {
        hard_state,
        snapshot: None,
        entries: log_of(terms),
    };
    RaftNode::new(RaftConfig::new(1, vec![1, 2, 3], 1), stored, 0).unwrap()
}

/// A test application's state: the entries it applied, as bytes.
fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend(e.term.to_be_bytes());
        out.extend(e.index.to_be_bytes());
        out.extend((e.data.len() as u32).to_be_bytes());
        out.extend(&e.data);
    }
    out
}

fn decode(mut bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let term = u64::from_be_bytes(bytes[..8].try_into().unwrap());
        let index = u64::from_be_bytes(bytes[8..16].try_into().unwrap());
        let len = u32::from_be_bytes(bytes[16..20].try_into().unwrap()) as usize;
        out.push(Entry {
            term,
            index,
            data: bytes[20..20 + len].to_vec(),
        });
        bytes = &bytes[20 + len..];
    }
    out
}

/// One node of a network, with what it stored and what it applied.
struct Member {
    node: RaftNode,
    stored: Stored,
    applied: Vec<Entry>,
    /// Persists held back, when the test performs them itself.
    pending: VecDeque<Persist>,
}

struct Net {
    config: RaftConfig,
    members: BTreeMap<NodeId, Member>,
    now_ms: i64,
    /// Messages on the wire, each with when it arrives.
    in_flight: VecDeque<(i64, Message)>,
    /// Each message takes 0 to this many ms.
    delay_ms_max: i64,
    /// Links that drop every message, both ways.
    cut: BTreeSet<(NodeId, NodeId)>,
    rng: Rng,
    /// Percent of messages dropped, and duplicated; whether delivery order is shuffled.
    drop_percent: u64,
    duplicate_percent: u64,
    reorder: bool,
    /// Persists complete at once unless held (by the test, or by a slow disk: then each
    /// completes with `slow_persist_percent` chance at each look).
    hold_persists: bool,
    slow_persist_percent: u64,
    /// Every leader seen, by term (election safety).
    leaders: BTreeMap<Term, BTreeSet<NodeId>>,
    /// The first entry applied at each index, by any node before or after any crash, and the
    /// disagreements seen (state machine safety).
    applied_at: BTreeMap<Index, (NodeId, Entry)>,
    disagreements: Vec<String>,
}

impl Net {
    fn new(voters: &[NodeId], seed: u64) -> Net {
        let config = RaftConfig::new(0, voters.to_vec(), seed);
        let mut net = Net {
            config,
            members: BTreeMap::new(),
            now_ms: 0,
            in_flight: VecDeque::new(),
            delay_ms_max: 0,
            cut: BTreeSet::new(),
            rng: Rng::new(seed),
            drop_percent: 0,
            duplicate_percent: 0,
            reorder: false,
            hold_persists: false,
            slow_persist_percent: 0,
            leaders: BTreeMap::new(),
            applied_at: BTreeMap::new(),
            disagreements: Vec::new(),
        };
        for &id in voters {
            let node = RaftNode::new(net.config_of(id), Stored::default(), 0).unwrap();
            let member = Member {
                node,
                stored: Stored::default(),
                applied: Vec::new(),
                pending: VecDeque::new(),
            };
            net.members.insert(id, member);
        }
        net
    }

    fn config_of(&self, id: NodeId) -> RaftConfig {
        RaftConfig {
            node: id,
            ..self.config.clone()
        }
    }

    fn node(&self, id: NodeId) -> &RaftNode {
        &self.members[&id].node
    }

    fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(_, m)| m.node.role() == Role::Leader)
            .map(|(&id, _)| id)
            .collect();
        // The leader of the highest term (a deposed one may not know it yet).
        leaders.into_iter().max_by_key(|id| self.node(*id).term())
    }

    /// Collects every node's outputs: persists performed (or held), messages queued,
    /// committed entries recorded.
    fn drain(&mut self) {
        loop {
            let mut progress = false;
            let ids: Vec<NodeId> = self.members.keys().copied().collect();
            for id in ids {
                while let Some(output) = self.members.get_mut(&id).unwrap().node.poll_output() {
                    progress = true;
                    match output {
                        RaftOutput::Persist(persist) => {
                            let member = self.members.get_mut(&id).unwrap();
                            member.pending.push_back(persist);
                            if !self.hold_persists {
                                self.complete_persists(id);
                            }
                        }
                        RaftOutput::Send(message) => {
                            let delay =
                                (self.rng.next_u64() % (self.delay_ms_max as u64 + 1)) as i64;
                            self.in_flight.push_back((self.now_ms + delay, message))
                        }
                        RaftOutput::RestoreSnapshot(snapshot) => {
                            let entries = decode(&snapshot.data);
                            for entry in &entries {
                                self.note_applied(id, entry);
                            }
                            self.members.get_mut(&id).unwrap().applied = entries;
                        }
                        RaftOutput::Committed(entry) => {
                            self.note_applied(id, &entry);
                            self.members.get_mut(&id).unwrap().applied.push(entry)
                        }
                    }
                }
                let member = &self.members[&id];
                if member.node.role() == Role::Leader {
                    let term = member.node.term();
                    self.leaders.entry(term).or_default().insert(id);
                }
            }
            if !progress {
                return;
            }
        }
    }

    fn note_applied(&mut self, id: NodeId, entry: &Entry) {
        match self.applied_at.get(&entry.index) {
            Some((other, first)) if first != entry => self.disagreements.push(format!(
                "index {}: node {other} applied {first:?}, node {id} {entry:?}",
                entry.index
            )),
            Some(_) => {}
            None => {
                self.applied_at.insert(entry.index, (id, entry.clone()));
            }
        }
    }

    /// Every node snapshots what it applied, dropping its log before it.
    fn compact_all(&mut self) {
        for member in self.members.values_mut() {
            let index = member.node.applied_index();
            if index > member.node.snapshot_index() {
                let data = encode(&member.applied[..index as usize]);
                member.node.compact(index, data).unwrap();
            }
        }
        self.drain();
    }

    /// Stores what `id` asked to store, and tells it.
    fn complete_persists(&mut self, id: NodeId) {
        let member = self.members.get_mut(&id).unwrap();
        while let Some(persist) = member.pending.pop_front() {
            member.stored.apply(&persist);
            member.node.handle_persisted(persist.seq);
        }
    }

    /// Slow disks: each node's waiting persists complete with this chance per look.
    fn maybe_complete_persists(&mut self) {
        if self.slow_persist_percent == 0 {
            return;
        }
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        for id in ids {
            if self.rng.next_u64() % 100 < self.slow_persist_percent {
                self.complete_persists(id);
            }
        }
        self.drain();
    }

    /// Delivers one message that has arrived (any of them, when reordering); false if none.
    fn deliver_one(&mut self) -> bool {
        self.maybe_complete_persists();
        if let Err(violation) = self.check_acks_durable() {
            self.disagreements.push(violation);
        }
        let arrived: Vec<usize> = (0..self.in_flight.len())
            .filter(|&i| self.in_flight[i].0 <= self.now_ms)
            .collect();
        if arrived.is_empty() {
            return false;
        }
        let i = match self.reorder {
            true => arrived[(self.rng.next_u64() % arrived.len() as u64) as usize],
            false => arrived[0],
        };
        let (_, message) = self.in_flight.remove(i).expect("arrived");
        let (a, b) = (message.from.min(message.to), message.from.max(message.to));
        let dropped = self.cut.contains(&(a, b)) || self.rng.next_u64() % 100 < self.drop_percent;
        if !dropped && self.members.contains_key(&message.to) {
            if self.rng.next_u64() % 100 < self.duplicate_percent {
                self.in_flight.push_back((self.now_ms, message.clone()));
            }
            let now_ms = self.now_ms;
            let to = message.to;
            self.members
                .get_mut(&to)
                .unwrap()
                .node
                .handle_message(now_ms, message);
        }
        self.drain();
        true
    }

    /// Delivers every message that has arrived, and those they cause; a storm that never ends
    /// (two leaders answering each other) is a violation, and the wire is cleared.
    fn deliver_all(&mut self) {
        let mut bound = 100_000;
        while self.deliver_one() {
            bound -= 1;
            if bound == 0 {
                self.disagreements
                    .push(format!("messages never stop at {} ms", self.now_ms));
                self.in_flight.clear();
                return;
            }
        }
    }

    /// Advances time by `ms` in 10 ms steps, firing due timeouts and delivering messages.
    fn run(&mut self, ms: i64) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.now_ms += 10;
            let now_ms = self.now_ms;
            for member in self.members.values_mut() {
                if member.node.poll_timeout() <= now_ms {
                    member.node.handle_timeout(now_ms);
                }
            }
            self.drain();
            self.deliver_all();
            self.maybe_complete_persists();
        }
    }

    /// Runs until a leader is elected (bounded).
    fn elect(&mut self) -> NodeId {
        for _ in 0..100 {
            self.run(100);
            if let Some(leader) = self.leader() {
                return leader;
            }
        }
        panic!("no leader elected");
    }

    fn isolate(&mut self, id: NodeId) {
        for &other in self.members.keys() {
            if other != id {
                self.cut.insert((id.min(other), id.max(other)));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    /// The node restarts from what it stored; what it had not stored is gone.
    fn crash(&mut self, id: NodeId) {
        let config = self.config_of(id);
        let now_ms = self.now_ms;
        let member = self.members.get_mut(&id).unwrap();
        member.pending.clear();
        member.node = RaftNode::new(config, member.stored.clone(), now_ms).unwrap();
        // The application restores its state from the snapshot it stored.
        member.applied = member
            .stored
            .snapshot
            .as_ref()
            .map_or(Vec::new(), |s| decode(&s.data));
    }

    /// Proposes entries holding 0, 1, ... `count - 1` (each must be taken), then runs `ms`.
    fn propose_each(&mut self, count: u8, ms: i64) {
        for i in 0..count {
            assert!(self.propose(vec![i]), "proposal {i} refused");
        }
        self.run(ms);
    }

    /// Proposes through the current leader; returns whether one took it.
    fn propose(&mut self, data: Vec<u8>) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let taken = self
            .members
            .get_mut(&leader)
            .unwrap()
            .node
            .propose(data)
            .is_ok();
        self.drain();
        taken
    }

    // ---- checkers ----

    /// Election safety: at most one leader per term.
    fn check_one_leader_per_term(&self) -> Result<(), String> {
        match self.leaders.iter().find(|(_, ids)| ids.len() > 1) {
            Some((term, ids)) => Err(format!("term {term} had leaders {ids:?}")),
            None => Ok(()),
        }
    }

    /// State machine safety: no two nodes ever applied different entries at one index (across
    /// crashes and snapshots too), and each node applies indexes in order from 1.
    fn check_applied_agree(&self) -> Result<(), String> {
        if let Some(first) = self.disagreements.first() {
            return Err(first.clone());
        }
        for (&id, member) in &self.members {
            for (i, applied) in member.applied.iter().enumerate() {
                if applied.index != i as Index + 1 {
                    return Err(format!(
                        "node {id} applied index {} at {}",
                        applied.index,
                        i + 1
                    ));
                }
            }
        }
        Ok(())
    }

    /// A follower the leader counts as holding entries through its match index has them on
    /// its disk (an acknowledgement never comes from memory).
    fn check_acks_durable(&self) -> Result<(), String> {
        let Some(leader) = self.leader() else {
            return Ok(());
        };
        let node = self.node(leader);
        for (&peer, progress) in &node.progress {
            let member = &self.members[&peer];
            if member.node.term() != node.term() {
                continue;
            }
            let snapshot = member.stored.snapshot.as_ref().map_or(0, |s| s.index);
            for index in snapshot + 1..=progress.match_index {
                let Some(want) = node.term_at(index) else {
                    continue; // compacted at the leader
                };
                let stored = member.stored.entries.iter().find(|e| e.index == index);
                if stored.map(|e| e.term) != Some(want) {
                    return Err(format!(
                        "leader {leader} counts node {peer} through {}, but its disk has {stored:?} at {index}",
                        progress.match_index
                    ));
                }
            }
        }
        Ok(())
    }

    /// Leader completeness: the current leader's log holds every entry anyone applied.
    fn check_leader_has_applied(&self) -> Result<(), String> {
        let Some(leader) = self.leader() else {
            return Ok(());
        };
        let node = self.node(leader);
        for member in self.members.values() {
            // What the leader's snapshot covers is committed; agreement on it is checked apart.
            let after_snapshot = member
                .applied
                .iter()
                .filter(|e| e.index > node.snapshot_index());
            for applied in after_snapshot {
                if node.term_at(applied.index) != Some(applied.term) {
                    return Err(format!(
                        "leader {leader} (term {}) lacks applied entry {}@{}",
                        node.term(),
                        applied.index,
                        applied.term
                    ));
                }
            }
        }
        Ok(())
    }
}

#[test]
fn a_lone_voter_leads_and_commits_only_what_is_durable() {
    let mut net = Net::new(&[1], 7);
    net.hold_persists = true;
    net.run(3 * TIMEOUT_MS);
    assert_eq!(net.node(1).role(), Role::Leader);
    assert_eq!(net.node(1).term(), 1);
    net.complete_persists(1);
    net.drain();
    let before = net.members[&1].applied.len();
    assert!(net.propose(b"a".to_vec()));
    assert_eq!(net.members[&1].applied.len(), before, "not durable yet");
    net.complete_persists(1);
    net.drain();
    let applied = &net.members[&1].applied;
    assert_eq!(applied.last().map(|e| e.data.clone()), Some(b"a".to_vec()));
    // The leader's no-op opened its term, with no data.
    assert!(applied[0].data.is_empty());
}

#[test]
fn three_voters_elect_one_leader_and_all_apply_the_same_entries() {
    let mut net = Net::new(&[1, 2, 3], 11);
    let leader = net.elect();
    net.propose_each(20, 500);
    for (id, member) in &net.members {
        let data: Vec<Vec<u8>> = member
            .applied
            .iter()
            .filter(|e| !e.data.is_empty())
            .map(|e| e.data.clone())
            .collect();
        assert_eq!(
            data,
            (0..20u8).map(|i| vec![i]).collect::<Vec<_>>(),
            "node {id}"
        );
    }
    assert_eq!(net.node(leader).role(), Role::Leader);
    net.check_one_leader_per_term().unwrap();
}

/// Raft §5.4.1 and the one-vote-per-term rule, as data: (voter's log terms, whom it voted for
/// in term 2, the candidate's last log term and index) → granted.
#[test]
fn a_vote_goes_once_per_term_to_a_log_at_least_as_up_to_date() {
    type Case<'a> = (&'a [Term], Option<NodeId>, Term, Index, bool);
    let cases: &[Case] = &[
        (&[1, 1], None, 1, 2, true),  // same last term, same length
        (&[1, 1], None, 1, 3, true),  // longer
        (&[1, 1], None, 1, 1, false), // shorter
        (&[1, 2], None, 1, 5, false), // older last term, however long
        (&[1, 1], None, 2, 1, true),  // newer last term, however short
        (&[], None, 0, 0, true),      // both empty
        (&[1], Some(3), 1, 1, false), // voted for another in this term
        (&[1], Some(2), 1, 1, true),  // the same candidate asking again
    ];
    for (i, &(terms, voted_for, last_log_term, last_log_index, want)) in cases.iter().enumerate() {
        let mut node = stored_node(2, voted_for, terms);
        let vote = Message {
            from: 2,
            to: 1,
            term: 2,
            body: MessageBody::Vote {
                last_log_term,
                last_log_index,
                transfer: false,
            },
        };
        node.handle_message(0, vote);
        let mut granted = None;
        while let Some(output) = node.poll_output() {
            match output {
                RaftOutput::Persist(p) => node.handle_persisted(p.seq),
                RaftOutput::Send(Message {
                    body: MessageBody::VoteResponse { granted: g },
                    ..
                }) => granted = Some(g),
                _ => {}
            }
        }
        let granted = granted.expect("a vote response");
        assert_eq!(granted, want, "case {i}");
    }
}

/// Raft §5.4.2 (Figure 8), as data: the leader of `term` with these log terms and these
/// followers' durable match indexes commits through the expected index, never an entry of an
/// earlier term by counting replicas.
#[test]
fn a_leader_commits_what_a_majority_has_durable_and_only_of_its_own_term() {
    let cases: &[(&[Term], Term, [Index; 2], Index)] = &[
        (&[1, 1, 2], 2, [3, 0], 3), // a majority (leader + one) has index 3, of term 2
        (&[1, 1, 2], 2, [0, 0], 0), // only the leader
        (&[1, 1, 2], 2, [2, 2], 0), // a majority at 2, but 2 is of term 1
        (&[2, 2, 4], 4, [2, 3], 3), // highest majority index is 3, of term 4
        (&[1, 3, 3], 3, [1, 2], 2), // majority at 2, of term 3
    ];
    for (i, &(terms, term, followers, want)) in cases.iter().enumerate() {
        let mut node = stored_node(term, Some(1), terms);
        node.role = Role::Leader;
        node.leader = Some(1);
        for (peer, match_index) in [2, 3].into_iter().zip(followers) {
            let progress = Progress {
                match_index,
                next_index: match_index + 1,
                heard_ms: 0,
            };
            node.progress.insert(peer, progress);
        }
        node.advance_commit();
        assert_eq!(node.committed_index(), want, "case {i}");
    }
}

/// Raft §5.3, as data: (follower's log terms, committed, prev index and term, the leader's
/// entries' terms) → the follower's log after, or the error.
#[test]
fn appends_keep_matching_entries_replace_a_conflicting_suffix_and_never_a_commit() {
    type Case<'a> = (
        &'a [Term],
        Index,
        Index,
        Term,
        &'a [Term],
        Result<&'a [Term], AppendError>,
    );
    let cases: &[Case] = &[
        (&[1, 1], 0, 2, 1, &[2], Ok(&[1, 1, 2])),    // plain append
        (&[1, 1, 1], 0, 1, 1, &[1], Ok(&[1, 1, 1])), // already there: nothing cut
        (&[1, 1, 1], 0, 1, 1, &[2], Ok(&[1, 2])),    // conflict at 2: suffix replaced
        (&[1, 1], 0, 3, 1, &[2], Err(AppendError::Mismatch)), // a gap
        (&[1, 2], 0, 2, 1, &[3], Err(AppendError::Mismatch)), // prev of another term
        (
            &[1, 1, 1],
            2,
            1,
            1,
            &[2],
            Err(AppendError::RewritesCommitted(2)),
        ),
    ];
    for (i, (terms, committed, prev_index, prev_term, new_terms, want)) in cases.iter().enumerate()
    {
        let mut log = RaftLog::restored(0, 0, log_of(terms), *committed).unwrap();
        let entries: Vec<Entry> = (prev_index + 1..)
            .zip(new_terms.iter())
            .map(|(index, &term)| entry(term, index))
            .collect();
        let result = log.append_after(*prev_index, *prev_term, &entries);
        match want {
            Ok(after) => {
                assert!(result.is_ok(), "case {i}: {result:?}");
                let got: Vec<Term> = (1..=log.last_index())
                    .map(|x| log.term_at(x).unwrap())
                    .collect();
                assert_eq!(&got, after, "case {i}");
            }
            Err(error) => assert_eq!(result.as_ref().err(), Some(error), "case {i}"),
        }
    }
}

#[test]
fn answers_wait_until_the_vote_they_carry_is_durable() {
    let mut node =
        RaftNode::new(RaftConfig::new(1, vec![1, 2, 3], 1), Stored::default(), 0).unwrap();
    let vote = Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::Vote {
            last_log_term: 0,
            last_log_index: 0,
            transfer: false,
        },
    };
    node.handle_message(0, vote);
    let Some(RaftOutput::Persist(persist)) = node.poll_output() else {
        panic!("the vote is stored first");
    };
    assert_eq!(persist.hard_state.voted_for, Some(2));
    assert_eq!(
        node.poll_output(),
        None,
        "no answer before the vote is durable"
    );
    node.handle_persisted(persist.seq);
    assert!(matches!(
        node.poll_output(),
        Some(RaftOutput::Send(Message {
            body: MessageBody::VoteResponse { granted: true },
            ..
        }))
    ));
}

#[test]
fn pre_vote_keeps_a_returning_node_from_deposing_the_leader() {
    let mut net = Net::new(&[1, 2, 3], 5);
    let leader = net.elect();
    let term = net.node(leader).term();
    let outsider = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    net.isolate(outsider);
    net.run(10 * TIMEOUT_MS);
    assert_eq!(
        net.node(outsider).term(),
        term,
        "pre-votes do not raise the term"
    );
    net.heal();
    net.run(5 * TIMEOUT_MS);
    assert_eq!(net.leader(), Some(leader));
    assert_eq!(net.node(leader).term(), term);
}

#[test]
fn check_quorum_makes_a_cut_off_leader_step_down_and_the_rest_elect_another() {
    let mut net = Net::new(&[1, 2, 3], 9);
    let old = net.elect();
    let term = net.node(old).term();
    net.isolate(old);
    net.run(5 * TIMEOUT_MS);
    assert_ne!(net.node(old).role(), Role::Leader, "stepped down");
    let new = net.leader().expect("the majority elected a leader");
    assert_ne!(new, old);
    assert!(net.node(new).term() > term);
    net.heal();
    assert!(net.propose(b"after".to_vec()));
    net.run(TIMEOUT_MS);
    assert!(net.members[&old].applied.iter().any(|e| e.data == b"after"));
    net.check_one_leader_per_term().unwrap();
}

#[test]
fn a_restarted_node_keeps_its_term_vote_and_log() {
    let mut net = Net::new(&[1, 2, 3], 3);
    net.elect();
    net.propose_each(5, 500);
    let (term, last, voted_for) = (
        net.node(2).term(),
        net.node(2).last_index(),
        net.node(2).voted_for(),
    );
    net.crash(2);
    assert_eq!(net.node(2).term(), term);
    assert_eq!(net.node(2).voted_for(), voted_for);
    assert_eq!(net.node(2).last_index(), last);
    net.run(TIMEOUT_MS);
    assert_eq!(
        net.members[&2].applied.len() as Index,
        last,
        "re-applied from its log"
    );
}

/// Faults as data over seeds: cut links, drops, duplicates, reordering, crashes, then a quiet
/// phase. Checked on every seed: one leader per term, every node applies the same entries,
/// the leader has everything applied; and after the faults a proposal is applied everywhere.
fn swarm(seed: u64, voters: &[NodeId], planted: Option<RaftBug>) -> Result<(), String> {
    let mut net = Net::new(voters, seed);
    net.config.planted = planted;
    for member in net.members.values_mut() {
        member.node.config.planted = planted;
    }
    net.drop_percent = seed % 3 * 5;
    net.duplicate_percent = seed % 2 * 5;
    net.reorder = seed.is_multiple_of(2);
    net.delay_ms_max = (seed % 4) as i64 * 20;
    if !seed.is_multiple_of(3) {
        net.hold_persists = true;
        net.slow_persist_percent = 15;
    }
    let mut chooser = Rng::new(seed ^ 0x5eed);
    let mut pick = |n: usize| (chooser.next_u64() % n as u64) as usize;
    for round in 0..60u8 {
        match pick(7) {
            0 => {
                let id = voters[pick(voters.len())];
                net.isolate(id);
            }
            1 => net.heal(),
            2 => {
                let id = voters[pick(voters.len())];
                net.crash(id);
            }
            3 => {
                if let Some(leader) = net.leader() {
                    net.crash(leader);
                }
            }
            4 => net.compact_all(),
            5 => {
                if let Some(leader) = net.leader() {
                    let node = &mut net.members.get_mut(&leader).unwrap().node;
                    node.transfer_leadership(None).unwrap();
                    net.drain();
                }
            }
            _ => {}
        }
        net.propose(vec![round]);
        net.run(100 + pick(400) as i64);
        net.check_one_leader_per_term()?;
        net.check_applied_agree()?;
    }
    net.heal();
    net.drop_percent = 0;
    net.duplicate_percent = 0;
    net.run(5 * TIMEOUT_MS);
    net.check_leader_has_applied()?;
    if !net.propose(b"last".to_vec()) {
        return Err("no leader after the faults stopped".into());
    }
    net.run(2 * TIMEOUT_MS);
    for (id, member) in &net.members {
        if !member.applied.iter().any(|e| e.data == b"last") {
            return Err(format!("node {id} never applied the last proposal"));
        }
    }
    net.check_one_leader_per_term()?;
    net.check_applied_agree()
}

/// Even seeds run 3 voters, odd ones 5.
fn voters_for(seed: u64) -> &'static [NodeId] {
    match seed % 2 {
        0 => &[1, 2, 3],
        _ => &[1, 2, 3, 4, 5],
    }
}

#[test]
fn a_swarm_of_faults_keeps_raft_safe_and_live() {
    for seed in 1..=300 {
        let voters = voters_for(seed);
        if let Err(violation) = swarm(seed, voters, None) {
            panic!("seed {seed} with {} voters: {violation}", voters.len());
        }
    }
}

#[test]
fn the_checkers_catch_a_vote_granted_twice_a_commit_on_a_minority_and_an_ack_from_memory() {
    let bugs = [
        RaftBug::VoteTwice,
        RaftBug::CommitMinority,
        RaftBug::AckFromMemory,
    ];
    let caught = bugs.map(|bug| {
        let seeds = (1..=300).filter(|&seed| {
            let voters = voters_for(seed);
            swarm(seed, voters, Some(bug)).is_err()
        });
        (bug, seeds.count())
    });
    for (bug, seeds) in caught {
        println!("{bug:?}: caught on {seeds} of 300 seeds");
        assert!(seeds > 0, "{bug:?} caught on no seed");
    }
}

/// Snapshots in the log, as data: terms around the snapshot point, and appends whose entries
/// start before it (those are committed, so they match and are skipped).
#[test]
fn a_log_after_a_snapshot_knows_its_point_and_skips_what_it_covers() {
    // Snapshot through 3 (term 2), then entries 4, 5 of term 2 and 3.
    let mut log = RaftLog::restored(3, 2, vec![entry(2, 4), entry(3, 5)], 3).unwrap();
    assert_eq!(log.term_at(2), None, "compacted");
    assert_eq!(log.term_at(3), Some(2));
    assert_eq!(log.term_at(5), Some(3));
    assert_eq!((log.last_index(), log.last_term()), (5, 3));
    // A leader's append from index 1 carrying 2..6: 2 and 3 are in the snapshot, 4 and 5 match.
    let entries: Vec<Entry> = [(1, 2), (2, 3), (2, 4), (3, 5), (3, 6)]
        .iter()
        .map(|&(t, i)| entry(t, i))
        .collect();
    assert_eq!(log.append_after(1, 1, &entries), Ok(6));
    assert_eq!((log.last_index(), log.term_at(6)), (6, Some(3)));
    let refused = RaftLog::restored(3, 2, vec![entry(2, 5)], 0).err();
    assert!(refused.unwrap().contains("expected 4"));
}

#[test]
fn a_follower_behind_the_snapshot_catches_up_from_it() {
    let mut net = Net::new(&[1, 2, 3], 21);
    let leader = net.elect();
    let behind = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    net.isolate(behind);
    net.propose_each(20, 500);
    net.compact_all();
    assert!(net.node(leader).snapshot_index() > net.node(behind).last_index());
    net.heal();
    assert!(net.propose(b"after".to_vec()));
    net.run(2 * TIMEOUT_MS);
    let want = net.members[&leader].applied.clone();
    assert!(want.iter().any(|e| e.data == b"after"));
    assert_eq!(
        net.members[&behind].applied, want,
        "restored from the snapshot, then applied"
    );
    assert!(net.members[&behind].stored.snapshot.is_some());
    net.check_applied_agree().unwrap();
}

#[test]
fn a_restarted_node_starts_from_its_snapshot_and_the_entries_after_it() {
    let mut net = Net::new(&[1, 2, 3], 23);
    net.elect();
    net.propose_each(5, 500);
    net.compact_all();
    assert!(net.propose(b"later".to_vec()));
    net.run(500);
    let snapshot_index = net.node(2).snapshot_index();
    assert!(snapshot_index > 0);
    assert!(net.members[&2]
        .stored
        .entries
        .iter()
        .all(|e| e.index > snapshot_index));
    let before = net.members[&2].applied.clone();
    net.crash(2);
    assert_eq!(net.node(2).applied_index(), snapshot_index);
    net.run(TIMEOUT_MS);
    assert_eq!(net.members[&2].applied, before);
}

#[test]
fn a_snapshot_must_be_of_applied_entries_past_the_last_one() {
    let mut net = Net::new(&[1], 1);
    net.elect();
    let applied = net.node(1).applied_index();
    let node = &mut net.members.get_mut(&1).unwrap().node;
    assert!(node.compact(applied + 1, Vec::new()).is_err());
    assert!(node.compact(0, Vec::new()).is_err());
    assert!(node.compact(applied, Vec::new()).is_ok());
    assert!(node.compact(applied, Vec::new()).is_err());
}

#[test]
fn a_leader_hands_over_to_a_follower_that_stands_at_once() {
    let mut net = Net::new(&[1, 2, 3], 31);
    let old = net.elect();
    let term = net.node(old).term();
    let behind = [1, 2, 3].into_iter().find(|&id| id != old).unwrap();
    net.isolate(behind);
    net.propose_each(5, 300);
    net.heal();
    // Handed to the follower that lacks the last entries: it catches up first.
    let node = &mut net.members.get_mut(&old).unwrap().node;
    assert_eq!(node.transfer_leadership(Some(behind)), Ok(behind));
    assert_eq!(
        node.propose(b"during".to_vec()),
        Err(None),
        "proposals wait for the next leader"
    );
    net.drain();
    net.run(100); // far less than an election timeout
    assert_eq!(net.leader(), Some(behind));
    assert_eq!(net.node(behind).term(), term + 1);
    assert!(net.propose(b"after".to_vec()));
    net.run(300);
    for member in net.members.values() {
        let data: Vec<&[u8]> = member
            .applied
            .iter()
            .map(|e| e.data.as_slice())
            .filter(|d| !d.is_empty())
            .collect();
        assert_eq!(data, [&[0u8][..], &[1], &[2], &[3], &[4], b"after"]);
    }
    let lone = &mut Net::new(&[1], 1);
    lone.elect();
    let node = &mut lone.members.get_mut(&1).unwrap().node;
    assert!(node
        .transfer_leadership(None)
        .unwrap_err()
        .contains("no one"));
    assert!(node
        .transfer_leadership(Some(7))
        .unwrap_err()
        .contains("not another voter"));
}

#[test]
fn a_hand_over_the_follower_never_takes_ends_and_the_leader_leads_on() {
    let mut net = Net::new(&[1, 2, 3], 37);
    let leader = net.elect();
    let term = net.node(leader).term();
    let target = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    net.isolate(target); // TimeoutNow never reaches it
    let node = &mut net.members.get_mut(&leader).unwrap().node;
    node.transfer_leadership(Some(target)).unwrap();
    assert_eq!(node.propose(b"during".to_vec()), Err(None));
    net.drain();
    net.run(TIMEOUT_MS + 100);
    assert_eq!(net.leader(), Some(leader));
    assert_eq!(net.node(leader).term(), term);
    assert!(net.propose(b"later".to_vec()), "proposals taken again");
    net.run(500);
    let third = [1, 2, 3]
        .into_iter()
        .find(|&id| id != leader && id != target)
        .unwrap();
    assert!(net.members[&third]
        .applied
        .iter()
        .any(|e| e.data == b"later"));
}

#[test]
fn a_message_naming_terms_or_indexes_beyond_any_log_is_dropped() {
    let mut node =
        RaftNode::new(RaftConfig::new(1, vec![1, 2, 3], 1), Stored::default(), 0).unwrap();
    let huge = Snapshot {
        index: u64::MAX,
        term: 1,
        data: Vec::new(),
    };
    let messages = [
        (1, MessageBody::InstallSnapshot { snapshot: huge }),
        (u64::MAX, MessageBody::TimeoutNow { last_log_index: 0 }),
        (
            u64::MAX,
            MessageBody::Vote {
                last_log_term: 0,
                last_log_index: 0,
                transfer: true,
            },
        ),
        (
            1,
            MessageBody::AppendResponse {
                success: true,
                match_index: u64::MAX,
            },
        ),
    ];
    for (term, body) in messages {
        node.handle_message(
            0,
            Message {
                from: 2,
                to: 1,
                term,
                body,
            },
        );
        while node.poll_output().is_some() {}
        assert_eq!(
            (node.term(), node.last_index(), node.role()),
            (0, 0, Role::Follower)
        );
    }
}

#[test]
fn a_hand_over_that_arrives_after_the_leader_went_on_is_ignored() {
    let mut net = Net::new(&[1, 2, 3], 41);
    let leader = net.elect();
    net.propose_each(3, 300);
    let follower = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    let (term, last) = (net.node(follower).term(), net.node(follower).last_index());
    let hand_over = |last_log_index| Message {
        from: leader,
        to: follower,
        term,
        body: MessageBody::TimeoutNow { last_log_index },
    };
    let node = &mut net.members.get_mut(&follower).unwrap().node;
    node.handle_message(net.now_ms, hand_over(last - 1));
    assert_eq!(
        (node.role(), node.term()),
        (Role::Follower, term),
        "stale: ignored"
    );
    node.handle_message(net.now_ms, hand_over(last));
    assert_eq!(
        (node.role(), node.term()),
        (Role::Candidate, term + 1),
        "current: stands"
    );
}

impl Net {
    /// Adds node `id` as an observer (not among the voters), starting empty.
    fn add_observer_member(&mut self, id: NodeId) {
        let node = RaftNode::new(self.config_of(id), Stored::default(), self.now_ms).unwrap();
        let member = Member {
            node,
            stored: Stored::default(),
            applied: Vec::new(),
            pending: VecDeque::new(),
        };
        self.members.insert(id, member);
    }
}

/// KIP-595's observers (Spate's broker-only nodes): a leader told of one replicates every
/// entry to it, but it never counts for a commit or for check-quorum, and it never stands.
#[test]
fn an_observer_gets_every_entry_never_stands_and_never_counts_for_a_commit() {
    let mut net = Net::new(&[1, 2, 3], 21);
    net.add_observer_member(4);
    let leader = net.elect();
    net.members.get_mut(&leader).unwrap().node.add_observer(4);
    net.drain();
    assert!(net.node(leader).has_observer(4));
    // A leader takes only answers from an observer: an Append in its own term changes nothing.
    let forged = Message {
        from: 4,
        to: leader,
        term: net.node(leader).term(),
        body: MessageBody::Append {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![],
            committed_index: 0,
        },
    };
    let now_ms = net.now_ms;
    net.members
        .get_mut(&leader)
        .unwrap()
        .node
        .handle_message(now_ms, forged);
    net.drain();
    assert_eq!(
        net.node(leader).role(),
        Role::Leader,
        "an observer's Append is dropped"
    );
    net.propose_each(5, 500);
    let data = |net: &Net, id: NodeId| -> Vec<Vec<u8>> {
        net.members[&id]
            .applied
            .iter()
            .map(|e| e.data.clone())
            .collect()
    };
    assert_eq!(
        data(&net, 4),
        data(&net, leader),
        "the observer applied it all"
    );
    assert_eq!(net.node(4).leader(), Some(leader));
    assert_eq!(
        net.node(4).committed_index(),
        net.node(leader).committed_index()
    );

    // The other two voters away: the leader and the observer are no majority.
    let applied = net.members[&4].applied.len();
    let term = net.node(4).term();
    for voter in [1, 2, 3].into_iter().filter(|&v| v != leader) {
        for other in [1, 2, 3, 4] {
            if other != voter {
                net.cut.insert((voter.min(other), voter.max(other)));
            }
        }
    }
    assert!(net.propose(b"minority".to_vec()));
    net.run(5 * TIMEOUT_MS);
    assert_eq!(
        net.members[&4].applied.len(),
        applied,
        "nothing commits on the leader and an observer alone"
    );
    assert_ne!(
        net.node(leader).role(),
        Role::Leader,
        "check-quorum ignores observers"
    );
    assert_eq!(
        net.node(4).role(),
        Role::Follower,
        "an observer never stands"
    );
    assert_eq!(net.node(4).term(), term);
    assert_eq!(net.node(4).leader(), None, "a silent leader is forgotten");

    // Once healed, the voters elect a leader again; told of the observer, it catches up.
    net.heal();
    let leader = net.elect();
    assert!(
        !net.node(leader).has_observer(4),
        "a new leader knows no observer yet"
    );
    net.members.get_mut(&leader).unwrap().node.add_observer(4);
    net.drain();
    assert!(net.propose(b"after".to_vec()));
    net.run(1_000);
    assert!(net.members[&4].applied.iter().any(|e| e.data == b"after"));
    assert_eq!(data(&net, 4), data(&net, leader));
    net.check_one_leader_per_term().unwrap();
    net.check_applied_agree().unwrap();
    // An observer gone quiet for long is no longer replicated to.
    net.isolate(4);
    net.run((OBSERVER_SILENCE_TIMEOUTS + 2) * TIMEOUT_MS);
    let leader = net.leader().expect("the voters lead on");
    assert!(!net.node(leader).has_observer(4));
}
