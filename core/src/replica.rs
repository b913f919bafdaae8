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
    progress: BTreeMap<NodeId, Progress>,
    in_sync: BTreeSet<NodeId>,
    /// The flush policy shows records once written (relaxed), not once on disk.
    visible_on_write: bool,
    high_watermark: i64,
    durable_offset: i64,
}

impl Replica {
    /// A partition led by `node`, alone in its in-sync set, from `start` (its log's end when
    /// recovered): a single node.
    pub fn single(node: NodeId, start: i64) -> Replica {
        Replica::leader(node, 0, &[node], start)
    }

    /// The leader of `members` (all in sync) in `leader_epoch`, every member from `start`.
    pub fn leader(node: NodeId, leader_epoch: i32, members: &[NodeId], start: i64) -> Replica {
        assert!(members.contains(&node), "the leader is a member");
        let progress = members
            .iter()
            .map(|&m| {
                let at = Progress {
                    written: start,
                    durable: start,
                };
                (m, at)
            })
            .collect();
        Replica {
            node,
            role: Role::Leader,
            leader_epoch,
            progress,
            in_sync: members.iter().copied().collect(),
            visible_on_write: false,
            high_watermark: start,
            durable_offset: start,
        }
    }

    /// A replica of a partition `leader` leads (or that has no leader, -1) in `leader_epoch`.
    /// Until partitions are replicated (issue 16) it holds no data and serves nothing; its
    /// own progress stands in for the in-sync set the leader keeps.
    pub fn follower(node: NodeId, leader: NodeId, leader_epoch: i32, start: i64) -> Replica {
        Replica {
            role: Role::Follower { leader },
            ..Replica::leader(node, leader_epoch, &[node], start)
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
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    pub fn in_sync(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.in_sync.iter().copied()
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

    /// This node leads on in a later epoch (the controller began a new leadership: a
    /// restart, or a leader elected again). An epoch that is not later changes nothing.
    pub fn handle_leader_epoch(&mut self, leader_epoch: i32) {
        if self.role == Role::Leader {
            self.leader_epoch = self.leader_epoch.max(leader_epoch);
        }
    }

    /// The in-sync set changed (decided by the controller, with a partition epoch, once there
    /// is one). It always holds the leader.
    pub fn handle_in_sync(&mut self, in_sync: &[NodeId]) {
        assert!(in_sync.contains(&self.node), "the leader stays in sync");
        for &member in in_sync {
            self.progress.entry(member).or_default();
        }
        self.in_sync = in_sync.iter().copied().collect();
        self.recompute();
    }

    fn recompute(&mut self) {
        let lowest = |of: fn(&Progress) -> i64| {
            self.in_sync
                .iter()
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
