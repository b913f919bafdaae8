//! Elections: the election timeout, pre-votes (asked at the next term without moving to it),
//! votes, and becoming leader. Votes are granted once per term, only to a log at least as up to
//! date, and only once the vote is durable (the answer is held until then).

use super::{MessageBody, Progress, RaftNode, Role, Term};
use crate::replica::NodeId;

impl RaftNode {
    /// No leader heard from in time: ask for pre-votes (a lone voter wins at once).
    pub(super) fn on_election_timeout(&mut self) {
        self.reset_election_deadline();
        if !self.is_voter() {
            // An observer never stands; a leader silent this long may be gone, so the
            // node looks for the leader again (its broker asks the voters in turn).
            self.leader = None;
            return;
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.config.node);
        if self.votes.len() >= self.majority() {
            return self.become_candidate(false);
        }
        let body = MessageBody::PreVote {
            last_log_term: self.log.last_term(),
            last_log_index: self.log.last_index(),
        };
        for peer in self.peers() {
            self.send_in_term(peer, self.term + 1, body.clone());
        }
    }

    /// Whether a leader was heard from within the minimum election timeout: its lease holds,
    /// and requests to replace it are ignored (check-quorum keeps the other side honest).
    fn in_lease(&self) -> bool {
        self.leader.is_some()
            && self
                .leader_heard_ms
                .is_some_and(|heard| self.now_ms - heard < self.config.election_timeout_ms)
    }

    pub(super) fn on_vote_request(&mut self, message: super::Message) {
        let (pre, last_log_term, last_log_index, transfer) = match message.body {
            MessageBody::PreVote {
                last_log_term,
                last_log_index,
            } => (true, last_log_term, last_log_index, false),
            MessageBody::Vote {
                last_log_term,
                last_log_index,
                transfer,
            } => (false, last_log_term, last_log_index, transfer),
            _ => unreachable!("only vote requests come here"),
        };
        let from = message.from;
        if message.term > self.term && self.in_lease() && !transfer {
            return;
        }
        let up_to_date = self.log.is_up_to_date(last_log_term, last_log_index);
        if pre {
            // A pre-vote changes nothing here: granted for a later term to an up-to-date log.
            let granted = message.term > self.term && up_to_date;
            let term = if granted { message.term } else { self.term };
            let body = MessageBody::PreVoteResponse { granted };
            return self.send_in_term(from, term, body);
        }
        if message.term > self.term {
            self.become_follower(message.term, None);
        }
        let mut granted = false;
        if message.term == self.term {
            let can_vote = self.voted_for == Some(from)
                || (self.voted_for.is_none() && self.leader.is_none())
                || self.planted_vote_twice();
            granted = can_vote && up_to_date;
        }
        if granted {
            if self.voted_for != Some(from) {
                self.voted_for = Some(from);
                self.state_changed();
            }
            self.reset_election_deadline();
        }
        self.send(from, MessageBody::VoteResponse { granted });
    }

    pub(super) fn on_pre_vote_response(&mut self, message: super::Message, granted: bool) {
        if !granted && message.term > self.term {
            return self.become_follower(message.term, None);
        }
        if self.role != Role::PreCandidate || message.term != self.term + 1 || !granted {
            return;
        }
        self.votes.insert(message.from);
        if self.votes.len() >= self.majority() {
            self.become_candidate(false);
        }
    }

    pub(super) fn on_vote_response(&mut self, message: super::Message, granted: bool) {
        if message.term > self.term {
            return self.become_follower(message.term, None);
        }
        if self.role != Role::Candidate || message.term != self.term || !granted {
            return;
        }
        self.votes.insert(message.from);
        if self.votes.len() >= self.majority() {
            self.become_leader();
        }
    }

    /// The leader of this term hands over: stand now, without pre-votes.
    pub(super) fn on_timeout_now(&mut self, message: super::Message) {
        let MessageBody::TimeoutNow { last_log_index } = message.body else {
            unreachable!("only hand-overs come here");
        };
        let from_leader = message.term == self.term && self.leader == Some(message.from);
        let current = last_log_index == self.log.last_index();
        if from_leader && current && self.role == Role::Follower && self.is_voter() {
            self.become_candidate(true);
        }
    }

    /// A pre-vote majority (or the leader's hand-over, `transfer`): a new term, with this
    /// node's own vote.
    fn become_candidate(&mut self, transfer: bool) {
        self.term += 1;
        self.voted_for = Some(self.config.node);
        self.state_changed();
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.config.node);
        self.reset_election_deadline();
        if self.votes.len() >= self.majority() {
            return self.become_leader();
        }
        let body = MessageBody::Vote {
            last_log_term: self.log.last_term(),
            last_log_index: self.log.last_index(),
            transfer,
        };
        for peer in self.peers() {
            self.send(peer, body.clone());
        }
    }

    /// A vote majority: lead, starting the term with an entry of no data (so that entries of
    /// earlier terms get committed with it, Raft §5.4.2).
    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.config.node);
        self.votes.clear();
        let next_index = self.log.last_index() + 1;
        let now_ms = self.now_ms;
        self.progress = self
            .peers()
            .into_iter()
            .map(|peer| {
                let progress = Progress {
                    match_index: 0,
                    next_index,
                    heard_ms: now_ms,
                };
                (peer, progress)
            })
            .collect();
        self.leader_heard_ms = Some(now_ms);
        self.quorum_check_ms = now_ms + self.config.election_timeout_ms;
        self.log.push(self.term, Vec::new());
        self.state_changed();
        self.on_heartbeat_timeout();
    }

    /// A message in `term` rather than the current one (pre-votes and their answers).
    fn send_in_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let seq = self.state_seq;
        let message = super::Message {
            from: self.config.node,
            to,
            term,
            body,
        };
        self.held.push_back((seq, message));
    }
}
