//! Replication: the leader's appends (entries after the follower's last known match, or none
//! as a heartbeat), the follower's answers, and the commit rule: an entry is committed once a
//! majority of voters has it on disk and it is of the leader's current term (Raft §5.4.2; the
//! leader counts its own log only as far as it is durable).

use super::log::AppendError;
use super::{Index, Message, MessageBody, RaftNode, Role};
use crate::replica::NodeId;

impl RaftNode {
    pub(super) fn on_heartbeat_timeout(&mut self) {
        self.heartbeat_deadline_ms = self.now_ms + self.config.heartbeat_interval_ms;
        self.broadcast_append();
    }

    /// Check-quorum: a leader not heard from by a majority within an election timeout steps
    /// down, so a leader cut off from the others stops taking writes it cannot commit.
    pub(super) fn on_quorum_check_timeout(&mut self) {
        let since = self.now_ms - self.config.election_timeout_ms;
        self.quorum_check_ms = self.now_ms + self.config.election_timeout_ms;
        let voters = &self.config.voters;
        let heard = 1 + self
            .progress
            .iter()
            .filter(|(id, p)| voters.contains(id) && p.heard_ms >= since)
            .count();
        // Observers gone quiet are no longer replicated to (they ask again when back).
        let silent =
            self.now_ms - super::OBSERVER_SILENCE_TIMEOUTS * self.config.election_timeout_ms;
        self.progress
            .retain(|id, p| voters.contains(id) || p.heard_ms >= silent);
        if heard < self.majority() {
            let term = self.term;
            self.become_follower(term, None);
        } else {
            self.leader_heard_ms = Some(self.now_ms);
        }
    }

    /// To every voter and observer.
    pub(super) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_append(peer);
        }
    }

    /// Entries from the follower's next index (none if it has them all), after the entry
    /// before it. The next index moves on at once; a mismatch answer moves it back.
    pub(super) fn send_append(&mut self, peer: NodeId) {
        let Some(progress) = self.progress.get(&peer).copied() else {
            return;
        };
        if progress.next_index <= self.log.snapshot_index {
            return self.send_snapshot(peer);
        }
        let prev_log_index = progress.next_index - 1;
        let prev_log_term = self
            .log
            .term_at(prev_log_index)
            .expect("next index within the log");
        let entries = self
            .log
            .slice(progress.next_index, self.config.append_entries_max);
        let sent = entries.len() as Index;
        let body = MessageBody::Append {
            prev_log_index,
            prev_log_term,
            entries,
            committed_index: self.log.committed_index,
        };
        self.send_now(peer, body);
        if let Some(progress) = self.progress.get_mut(&peer) {
            progress.next_index += sent;
        }
    }

    /// The follower needs entries the snapshot replaced: it gets the snapshot.
    fn send_snapshot(&mut self, peer: NodeId) {
        let snapshot = self
            .snapshot
            .clone()
            .expect("a compacted log has its snapshot");
        let next_index = snapshot.index + 1;
        self.send_now(peer, MessageBody::InstallSnapshot { snapshot });
        if let Some(progress) = self.progress.get_mut(&peer) {
            progress.next_index = next_index;
        }
    }

    /// An append or a snapshot from `from` in `term`: a stale leader is told the current term
    /// (so it steps down) and refused; otherwise this node follows it, its election put off.
    fn follow(&mut self, from: NodeId, term: super::Term) -> bool {
        if term < self.term {
            let last = self.log.last_index();
            self.send(from, append_response(false, last));
            return false;
        }
        if term > self.term || self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(term, Some(from));
        } else {
            self.leader_heard_ms = Some(self.now_ms);
            self.reset_election_deadline();
        }
        true
    }

    pub(super) fn on_install_snapshot(&mut self, message: Message) {
        let MessageBody::InstallSnapshot { snapshot } = message.body else {
            unreachable!("only snapshots come here");
        };
        let from = message.from;
        if !self.follow(from, message.term) {
            return;
        }
        if snapshot.index > self.log.committed_index {
            self.log.install(snapshot.index, snapshot.term);
            self.snapshot = Some(snapshot.clone());
            self.snapshot_unstored = true;
            self.state_changed();
            self.restore = Some((self.state_seq, snapshot.clone()));
        }
        // Everything through the snapshot is here now, or was committed here already.
        let matched = self.log.committed_index;
        self.send(from, append_response(true, matched));
    }

    pub(super) fn on_append(&mut self, message: Message) {
        let MessageBody::Append {
            prev_log_index,
            prev_log_term,
            entries,
            committed_index,
        } = message.body
        else {
            unreachable!("only appends come here");
        };
        let from = message.from;
        if !self.follow(from, message.term) {
            return;
        }
        match self
            .log
            .append_after(prev_log_index, prev_log_term, &entries)
        {
            Ok(last_new) => {
                if self.log.has_unstable() {
                    self.state_changed();
                }
                self.log.commit_to(committed_index.min(last_new));
                let ack = append_response(true, last_new);
                match self.config.planted {
                    Some(super::RaftBug::AckFromMemory) => self.send_now(from, ack),
                    _ => self.send(from, ack),
                }
            }
            Err(AppendError::Mismatch) => {
                let hint = self.log.last_index().min(prev_log_index.saturating_sub(1));
                self.send(from, append_response(false, hint));
            }
            // Only a leader that broke Raft's rules asks this: taking it would lose a commit.
            Err(AppendError::RewritesCommitted(_)) => {}
        }
    }

    pub(super) fn on_append_response(&mut self, message: Message) {
        let MessageBody::AppendResponse {
            success,
            match_index,
        } = message.body
        else {
            unreachable!("only append responses come here");
        };
        if message.term > self.term {
            return self.become_follower(message.term, None);
        }
        if self.role != Role::Leader || message.term != self.term {
            return;
        }
        let last = self.log.last_index();
        let now_ms = self.now_ms;
        let Some(progress) = self.progress.get_mut(&message.from) else {
            return;
        };
        progress.heard_ms = now_ms;
        if match_index > last {
            return; // more than this leader ever sent: a bad message
        }
        if success {
            progress.match_index = progress.match_index.max(match_index);
            progress.next_index = progress.next_index.max(match_index + 1);
            let behind = progress.next_index <= last;
            self.advance_commit();
            if self.transfer.is_some_and(|(to, _)| to == message.from) {
                return self.continue_transfer(message.from);
            }
            if behind {
                self.send_append(message.from);
            }
        } else {
            // Back to just after what the follower may have, never below what it matched.
            let next = (match_index + 1).min(progress.next_index);
            progress.next_index = next.max(progress.match_index + 1);
            self.send_append(message.from);
        }
    }

    /// A hand-over: the follower gets what it lacks, then `TimeoutNow` once it has everything.
    pub(super) fn continue_transfer(&mut self, target: NodeId) {
        let Some(progress) = self.progress.get(&target).copied() else {
            return;
        };
        if progress.match_index == self.log.last_index() {
            let last_log_index = self.log.last_index();
            self.send_now(target, MessageBody::TimeoutNow { last_log_index });
        } else if progress.next_index <= self.log.last_index() {
            self.send_append(target);
        }
    }

    /// Commits the highest index a majority of voters has durable, if of the current term.
    pub(super) fn advance_commit(&mut self) {
        let me = self.config.node;
        let mut matched: Vec<Index> = self
            .config
            .voters
            .iter()
            .map(|&voter| match voter == me {
                true => self.log.stable_index,
                false => self.progress.get(&voter).map_or(0, |p| p.match_index),
            })
            .collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let quorum = self.planted_commit_quorum();
        let candidate = matched[quorum - 1];
        if self.log.term_at(candidate) == Some(self.term) && self.log.commit_to(candidate) {
            self.broadcast_append();
        }
    }
}

fn append_response(success: bool, match_index: Index) -> MessageBody {
    MessageBody::AppendResponse {
        success,
        match_index,
    }
}
