//! `Replica`: what a partition's replication decides, as a pure state machine. Its role
//! (leader or follower), the leader epoch, the in-sync set and how far each member has got: the
//! offset it has written and the offset it has on disk. From them come the two offsets that
//! make records "committed":
//!
//! - the high watermark: what consumers may read, the lowest offset every in-sync member has
//!   (on disk, or only written when the flush policy shows records once written);
//! - the durable offset: what acks=all and the group coordinator wait for, the lowest offset
//!   every in-sync member has on disk. Kafka acknowledges from the followers' memory; Spate
//!   waits for their disks, so losing power on every replica at once loses nothing
//!   acknowledged.
//!
//! A single node is the case where the in-sync set is the node itself: the high watermark is
//! its flushed offset (or written offset under a relaxed flush policy), as before replication.
//! Both offsets only move forward while the leader epoch stands: a member that joins the set
//! behind them does not take them back (Kafka adds only members caught up to the high
//! watermark).

use std::collections::{BTreeMap, BTreeSet};

/// A broker's id (`node.id`).
pub type NodeId = i32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower { leader: NodeId },
}

/// How far one member has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Records below this are in the member's log (written, maybe not on disk).
    pub written: i64,
    /// Records below this are on the member's disk.
    pub durable: i64,
}

#[derive(Debug, Clone)]
pub struct Replica {
    node: NodeId,
    role: Role,
    leader_epoch: i32,
    /// Numbers the controller's changes of leader and in-sync set (-1: not known, a log
    /// written before partitions were replicated).
    partition_epoch: i32,
    /// Every replica the partition is placed on, in preference order.
    replicas: Vec<NodeId>,
    progress: BTreeMap<NodeId, Progress>,
    in_sync: BTreeSet<NodeId>,
    /// The flush policy shows records once written (relaxed), not once on disk.
    /// Leader: members it asked the controller to add, not yet seen in a change. Until the
    /// partition epoch moves on such an ask may still commit, so the high watermark counts
    /// them already (Kafka's maximal in-sync set): a member never joins behind it.
    pending_adds: BTreeSet<NodeId>,
    visible_on_write: bool,
    /// The planted `HighWatermarkFromLeaderAlone`: the high watermark ignores the followers.
    leader_alone: bool,
    high_watermark: i64,
    durable_offset: i64,
    /// Leader: where this leadership's records begin (the log end when it began); a
    /// follower rejoins the in-sync set only once it holds them (Kafka's rule).
    epoch_start: i64,
    /// Leader: per follower, when it was last caught up to the log end, and its last fetch
    /// (when, and the leader's log end then), as Kafka's `Replica` keeps them.
    caught_up_ms: BTreeMap<NodeId, i64>,
    last_fetch: BTreeMap<NodeId, (i64, i64)>,
}

impl Replica {
    /// A partition led by `node`, alone in its in-sync set, from `start` (its log's end when
    /// recovered): a single node.
    pub fn single(node: NodeId, start: i64) -> Replica {
        Replica::leader(node, 0, &[node], start)
    }

    /// The leader of `members` (all in sync) in `leader_epoch`, every member from `start`.
    pub fn leader(node: NodeId, leader_epoch: i32, members: &[NodeId], start: i64) -> Replica {
        Replica::placed(node, Role::Leader, leader_epoch, members, members, start, 0)
    }

    /// A replica of a partition `leader` leads (or that has no leader, -1) in `leader_epoch`:
    /// it copies the leader's log, and knows the high watermark the leader tells it.
    pub fn follower(node: NodeId, leader: NodeId, leader_epoch: i32, start: i64) -> Replica {
        Replica::placed(
            node,
            Role::Follower { leader },
            leader_epoch,
            &[node],
            &[node],
            start,
            0,
        )
    }

    /// This node's replica of a partition on `replicas` with the in-sync set `in_sync`, in
    /// `role`, from `start` (its log's high watermark), at time `now_ms`. A leader counts
    /// the in-sync members as holding everything below `start` (they hold every committed
    /// record) and gives each follower a whole lag time from now to show it keeps up.
    pub fn placed(
        node: NodeId,
        role: Role,
        leader_epoch: i32,
        replicas: &[NodeId],
        in_sync: &[NodeId],
        start: i64,
        now_ms: i64,
    ) -> Replica {
        let mut in_sync: BTreeSet<NodeId> = in_sync.iter().copied().collect();
        let mut replicas = replicas.to_vec();
        if !replicas.contains(&node) {
            replicas.push(node);
        }
        if role == Role::Leader {
            in_sync.insert(node);
        } else {
            // A follower's own progress stands for its "set": the high watermark it serves
            // is the leader's, bounded by what it has.
            in_sync = BTreeSet::from([node]);
        }
        let progress = replicas
            .iter()
            .map(|&m| {
                let from = match in_sync.contains(&m) {
                    true => start,
                    false => 0,
                };
                let at = Progress {
                    written: from,
                    durable: from,
                };
                (m, at)
            })
            .collect();
        Replica {
            node,
            role,
            leader_epoch,
            partition_epoch: -1,
            caught_up_ms: replicas.iter().map(|&m| (m, now_ms)).collect(),
            last_fetch: BTreeMap::new(),
            replicas,
            progress,
            in_sync,
            pending_adds: BTreeSet::new(),
            visible_on_write: false,
            leader_alone: false,
            high_watermark: start,
            durable_offset: start,
            epoch_start: start,
        }
    }

    // ---- getters ----

    pub fn node(&self) -> NodeId {
        self.node
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    /// The node that leads, if any (this one when leading).
    pub fn leader_node(&self) -> Option<NodeId> {
        match self.role {
            Role::Leader => Some(self.node),
            Role::Follower { leader } => (leader >= 0).then_some(leader),
        }
    }
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }
    /// Leader: how far it believes `member` has got (the simulator holds this against the
    /// member's own disk).
    pub fn member_progress(&self, member: NodeId) -> Option<Progress> {
        self.is_leader()
            .then(|| self.progress.get(&member).copied())?
    }

    pub fn replicas(&self) -> &[NodeId] {
        &self.replicas
    }
    pub fn in_sync(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.in_sync.iter().copied()
    }
    pub fn in_sync_count(&self) -> usize {
        self.in_sync.len()
    }
    pub fn progress(&self, member: NodeId) -> Option<Progress> {
        self.progress.get(&member).copied()
    }
    /// What consumers may read: below it, every in-sync member has the records (on disk, or
    /// written under a relaxed flush policy).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }
    /// What acks=all and offset commits wait for: below it, every in-sync member has the
    /// records on disk.
    pub fn durable_offset(&self) -> i64 {
        self.durable_offset
    }

    // ---- inputs ----

    /// Whether the flush policy makes written records visible before they are on disk.
    /// Leader: its log ends at `offset` as the leadership begins (Kafka's leader epoch start
    /// offset). Followers rejoin the in-sync set once they hold it, and consumers are served
    /// once the high watermark reaches it (KIP-207: what an earlier leader showed them is
    /// below it, so the high watermark they see never goes back).
    pub fn handle_epoch_start(&mut self, offset: i64) {
        self.epoch_start = self.epoch_start.max(offset);
    }

    /// Leader: whether consumers may be served (see `handle_epoch_start`).
    pub fn serves_consumers(&self) -> bool {
        self.is_leader() && self.high_watermark >= self.epoch_start
    }

    /// Plants the simulator's `HighWatermarkFromLeaderAlone` bug. Never in production.
    pub fn plant_leader_alone(&mut self) {
        self.leader_alone = true;
    }

    pub fn handle_flush_policy(&mut self, visible_on_write: bool) {
        self.visible_on_write = visible_on_write;
        self.recompute();
    }

    /// This node's log has got this far.
    pub fn handle_local_progress(&mut self, progress: Progress) {
        self.handle_member_progress(self.node, progress);
    }

    /// A member has got this far (for a follower: what its fetch said). A member's progress
    /// never goes back within an epoch; an older report is ignored.
    pub fn handle_member_progress(&mut self, member: NodeId, progress: Progress) {
        assert!(
            progress.durable <= progress.written,
            "on disk {} beyond written {}",
            progress.durable,
            progress.written
        );
        let Some(known) = self.progress.get_mut(&member) else {
            return; // not a replica of this partition (a stale report)
        };
        known.written = known.written.max(progress.written);
        known.durable = known.durable.max(progress.durable);
        self.recompute();
    }

    /// Leader: follower `member` fetched from `fetch_offset`, which its log holds on disk
    /// (a follower fetches on only once what it fetched is durable) and which the leader
    /// found on its own log's epochs; the leader's log ended at `leader_end` then. Kafka's
    /// rule for "caught up": the fetch reached the log end, or the end of the fetch before.
    pub fn handle_fetch(
        &mut self,
        member: NodeId,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) {
        if !self.is_leader() || member == self.node || !self.progress.contains_key(&member) {
            return;
        }
        let (last_ms, last_end) = self
            .last_fetch
            .get(&member)
            .copied()
            .unwrap_or((0, i64::MAX));
        let caught_up = self.caught_up_ms.entry(member).or_insert(0);
        if fetch_offset >= leader_end {
            *caught_up = (*caught_up).max(now_ms);
        } else if fetch_offset >= last_end {
            *caught_up = (*caught_up).max(last_ms);
        }
        self.last_fetch.insert(member, (now_ms, leader_end));
        let at = fetch_offset.min(leader_end);
        self.handle_member_progress(
            member,
            Progress {
                written: at,
                durable: at,
            },
        );
    }

    /// Leader: the in-sync set it should ask the controller for at `now_ms`, if another: a
    /// member not caught up for `lag_ms` leaves (`replica.lag.time.max.ms`); a replica that
    /// has on disk everything committed and this leadership's start returns.
    pub fn wanted_in_sync(&self, now_ms: i64, lag_ms: i64) -> Option<Vec<NodeId>> {
        if !self.is_leader() {
            return None;
        }
        let wanted: Vec<NodeId> = self
            .replicas
            .iter()
            .copied()
            .filter(|&m| {
                if m == self.node {
                    return true;
                }
                let caught_up = self.caught_up_ms.get(&m).copied().unwrap_or(0);
                let lagging = now_ms.saturating_sub(caught_up) > lag_ms;
                match self.in_sync.contains(&m) {
                    true => !lagging,
                    false => {
                        let durable = self.progress.get(&m).map_or(0, |p| p.durable);
                        !lagging
                            && durable >= self.high_watermark
                            && durable >= self.epoch_start
                            && self.last_fetch.contains_key(&m)
                    }
                }
            })
            .collect();
        let now: Vec<NodeId> = self
            .replicas
            .iter()
            .copied()
            .filter(|m| self.in_sync.contains(m))
            .collect();
        (wanted != now).then_some(wanted)
    }

    /// The controller changed the partition in `partition_epoch` (-1: unknown) without a new
    /// leadership: the replicas and the in-sync set (which holds the leader) are these now.
    /// Committed offsets never go back for it: a member that joins behind them does not
    /// take them back (Kafka adds only members caught up to the high watermark).
    pub fn handle_in_sync(&mut self, in_sync: &[NodeId]) {
        if !self.is_leader() {
            return;
        }
        assert!(in_sync.contains(&self.node), "the leader stays in sync");
        for &member in in_sync {
            self.progress.entry(member).or_default();
            if !self.replicas.contains(&member) {
                self.replicas.push(member);
            }
        }
        self.in_sync = in_sync.iter().copied().collect();
        self.recompute();
    }

    /// The partition epoch the controller's latest change of this partition had.
    pub fn handle_partition_epoch(&mut self, partition_epoch: i32) {
        if partition_epoch > self.partition_epoch {
            // Asks of the epoch before can no longer commit.
            self.pending_adds.clear();
        }
        self.partition_epoch = self.partition_epoch.max(partition_epoch);
    }

    /// Leader: it asks the controller for `in_sync`; the members that adds count for the
    /// high watermark from now on (see `pending_adds`).
    pub fn handle_asked(&mut self, in_sync: &[NodeId]) {
        let adds = in_sync.iter().filter(|m| !self.in_sync.contains(m));
        self.pending_adds.extend(adds);
    }

    /// Leader: members asked to be added that the controller can no longer add (fenced).
    pub fn drop_pending(&mut self, gone: impl Fn(NodeId) -> bool) {
        self.pending_adds.retain(|&m| !gone(m));
        self.recompute();
    }

    /// Leader: members asked to be added, not yet seen in a change.
    pub fn pending_adds(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.pending_adds.iter().copied()
    }

    /// This node leads on in a later epoch (the controller began a new leadership: a
    /// restart, or a leader elected again). An epoch that is not later changes nothing.
    pub fn handle_leader_epoch(&mut self, leader_epoch: i32) {
        if self.role == Role::Leader && leader_epoch > self.leader_epoch {
            self.leader_epoch = leader_epoch;
        }
    }

    /// Follower: the leader says records below `offset` are committed; this replica serves
    /// them once it has them too (the caller bounds it to a batch end of its own log).
    pub fn handle_leader_high_watermark(&mut self, offset: i64) {
        if self.is_leader() {
            return;
        }
        let local = self.progress[&self.node];
        let offset = offset.min(local.written);
        self.high_watermark = self.high_watermark.max(offset);
        self.durable_offset = self.durable_offset.max(offset.min(local.durable));
        self.check_invariants();
    }

    /// Follower: the log was cut back to `offset` (it held records its leader does not):
    /// what this replica knows of its own progress goes back with it. Committed offsets
    /// never do: a cut below them is refused by the caller.
    pub fn handle_truncated(&mut self, offset: i64) {
        let local = self
            .progress
            .get_mut(&self.node)
            .expect("a replica's own progress");
        local.written = local.written.min(offset);
        local.durable = local.durable.min(offset);
        self.high_watermark = self.high_watermark.min(offset);
        self.durable_offset = self.durable_offset.min(offset);
    }

    fn recompute(&mut self) {
        if !self.is_leader() {
            return self.check_invariants();
        }
        let lowest = |of: fn(&Progress) -> i64| {
            self.in_sync
                .iter()
                .chain(self.pending_adds.iter())
                .filter(|&&m| !self.leader_alone || m == self.node)
                .map(|m| of(&self.progress[m]))
                .min()
                .expect("the in-sync set holds the leader")
        };
        let durable = lowest(|p| p.durable);
        let visible = match self.visible_on_write {
            true => lowest(|p| p.written),
            false => durable,
        };
        self.durable_offset = self.durable_offset.max(durable);
        self.high_watermark = self.high_watermark.max(visible);
        self.check_invariants();
    }

    fn check_invariants(&self) {
        assert!(self.in_sync.contains(&self.node));
        let local = self.progress[&self.node];
        assert!(
            self.durable_offset <= local.durable,
            "the durable offset {} passed this node's disk {}",
            self.durable_offset,
            local.durable
        );
        assert!(self.high_watermark <= local.written);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(written: i64, durable: i64) -> Progress {
        Progress { written, durable }
    }

    /// The high watermark and durable offset over an in-sync set, as data: members with their
    /// (written, durable) offsets, the in-sync set, the flush policy, and what must come out.
    #[test]
    fn committed_offsets_are_the_lowest_over_the_in_sync_set() {
        struct Case {
            name: &'static str,
            members: &'static [(NodeId, (i64, i64))],
            in_sync: &'static [NodeId],
            visible_on_write: bool,
            high_watermark: i64,
            durable: i64,
        }
        let cases = [
            Case {
                name: "single node: its flushed offset",
                members: &[(1, (10, 7))],
                in_sync: &[1],
                visible_on_write: false,
                high_watermark: 7,
                durable: 7,
            },
            Case {
                name: "single node, relaxed flush: its written offset is visible",
                members: &[(1, (10, 7))],
                in_sync: &[1],
                visible_on_write: true,
                high_watermark: 10,
                durable: 7,
            },
            Case {
                name: "three in sync: the slowest disk",
                members: &[(1, (10, 10)), (2, (9, 8)), (3, (10, 6))],
                in_sync: &[1, 2, 3],
                visible_on_write: false,
                high_watermark: 6,
                durable: 6,
            },
            Case {
                name: "three in sync, relaxed: the slowest log, but acks=all waits for disks",
                members: &[(1, (10, 10)), (2, (9, 8)), (3, (10, 6))],
                in_sync: &[1, 2, 3],
                visible_on_write: true,
                high_watermark: 9,
                durable: 6,
            },
            Case {
                name: "a member out of sync is not waited for",
                members: &[(1, (10, 10)), (2, (9, 9)), (3, (2, 2))],
                in_sync: &[1, 2],
                visible_on_write: false,
                high_watermark: 9,
                durable: 9,
            },
        ];
        for case in cases {
            let ids: Vec<NodeId> = case.members.iter().map(|(id, _)| *id).collect();
            let mut replica = Replica::leader(1, 3, &ids, 0);
            replica.handle_in_sync(case.in_sync);
            replica.handle_flush_policy(case.visible_on_write);
            for &(member, (written, durable)) in case.members {
                replica.handle_member_progress(member, at(written, durable));
            }
            assert_eq!(
                (replica.high_watermark(), replica.durable_offset()),
                (case.high_watermark, case.durable),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn committed_offsets_never_go_back_within_an_epoch() {
        let mut replica = Replica::leader(1, 0, &[1, 2], 0);
        replica.handle_local_progress(at(10, 10));
        replica.handle_member_progress(2, at(8, 8));
        assert_eq!(replica.high_watermark(), 8);
        // An old report of member 2, and a member joining the set behind.
        replica.handle_member_progress(2, at(3, 3));
        assert_eq!(replica.progress(2), Some(at(8, 8)));
        replica.handle_in_sync(&[1, 2, 3]);
        assert_eq!((replica.high_watermark(), replica.durable_offset()), (8, 8));
        replica.handle_member_progress(3, at(12, 12));
        replica.handle_member_progress(2, at(12, 11));
        replica.handle_local_progress(at(12, 12));
        assert_eq!(
            (replica.high_watermark(), replica.durable_offset()),
            (11, 11)
        );
    }

    #[test]
    fn a_single_node_starts_at_its_recovered_end() {
        let replica = Replica::single(1, 42);
        assert_eq!(replica.role(), Role::Leader);
        assert_eq!(
            (replica.high_watermark(), replica.durable_offset()),
            (42, 42)
        );
        assert_eq!(replica.in_sync().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    #[should_panic(expected = "the leader stays in sync")]
    fn the_leader_never_leaves_its_in_sync_set() {
        Replica::single(1, 0).handle_in_sync(&[2]);
    }
}
