//! `Partition`: one partition's log (local storage), its replication state (`Replica`), and
//! the requests waiting for its records to be committed, joined. This is the one place where
//! records become committed: the log reports how far it has written and synced, the replica
//! turns every in-sync member's progress into the high watermark (what consumers see) and the
//! durable offset (what acks=all waits for), the log is told the high watermark, and the
//! waiters whose records are now committed come out of `poll_ready`. A produce with acks=all,
//! an offset commit and a group's new assignment all wait through here; backpressure on
//! acks=0/1 produces waits for the write alone.

use crate::log::{FlushPolicy, PartitionLog};
use crate::replica::{NodeId, Progress, Replica, Role};

/// A change of a partition the controller made (`PartitionChanged`): its leader (-1: none),
/// leader epoch, in-sync set, and partition epoch (unknown in records written before
/// partitions were replicated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub in_sync: Vec<NodeId>,
    pub partition_epoch: Option<i32>,
}
use std::collections::BTreeSet;

/// How committed records must be before a waiter is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Written to this node's log file (produce backpressure).
    Written,
    /// On the disk of every in-sync member (acks=all, offset commits, group assignments).
    Durable,
}

/// What waits for a partition's records, by the broker's id for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Waiter {
    Produce(u64),
    /// A group coordinator's records (an offset commit, a new generation's assignment), by the
    /// coordinator's id for the append.
    Group(u64),
}

#[derive(Debug)]
pub struct Partition {
    pub log: PartitionLog,
    pub replica: Replica,
    /// The nodes the controller placed it on (the first is the preferred leader).
    pub replicas: Vec<NodeId>,
    /// Follower: the high watermark the leader last reported.
    leader_high_watermark: i64,
    /// This node led in this epoch before a restart (`forget_leadership`): it never leads in
    /// it again, whatever replayed metadata of that epoch says.
    forgotten_epoch: i32,
    /// (end offset, waiter): told once every record below the end offset is so far.
    written_waiters: BTreeSet<(i64, Waiter)>,
    durable_waiters: BTreeSet<(i64, Waiter)>,
}

impl Partition {
    /// A partition this node leads alone in `leader_epoch` (a single-node cluster), from its
    /// log as it is (recovered, or new).
    #[cfg(test)]
    pub fn single(node: NodeId, leader_epoch: i32, log: PartitionLog) -> Partition {
        let replica = Replica::leader(node, leader_epoch, &[node], log.high_watermark());
        Partition::new(log, replica)
    }

    /// A partition as the controller placed it (led here, elsewhere, or nowhere), as this
    /// node `node` holds it, with its log as it is (recovered, or new).
    pub fn placed(
        node: NodeId,
        placed: &crate::controller::PartitionImage,
        log: PartitionLog,
        now_ms: i64,
    ) -> Partition {
        let mut partition = Partition::new(log, Replica::follower(node, -1, -1, 0));
        partition.replicas = placed.replicas.clone();
        partition.replica =
            partition.replica_for(placed.leader, placed.leader_epoch, &placed.in_sync, now_ms);
        partition
            .replica
            .handle_partition_epoch(placed.partition_epoch);
        partition
    }

    /// This partition as it is placed, over `log` (recovered at start-up). `alone`: this
    /// node is the only replica there is (a cluster of one), so everything its disk kept
    /// is committed; on a cluster, what the recovered log holds past the log start may be
    /// records no other replica has, and the high watermark is learnt again (from the
    /// leader, or as leader from the in-sync set).
    pub fn with_log(&self, log: PartitionLog, now_ms: i64, alone: bool) -> Partition {
        let in_sync: Vec<NodeId> = self.replica.in_sync().collect();
        let leader = self.replica.leader_node().unwrap_or(-1);
        let trusted = match alone {
            true => log.high_watermark(),
            false => log.log_start_offset(),
        };
        let placeholder = Replica::follower(self.replica.node(), -1, -1, trusted);
        let mut partition = Partition::new(log, placeholder);
        partition.replicas = self.replicas.clone();
        partition.forgotten_epoch = self.forgotten_epoch;
        partition.replica =
            partition.replica_for(leader, self.replica.leader_epoch(), &in_sync, now_ms);
        partition
            .replica
            .handle_partition_epoch(self.replica.partition_epoch());
        partition
    }

    /// At start-up on a controller quorum: this node's leadership in `epoch` (and before)
    /// ended with the crash, and the controller moves it when this node registers in its new
    /// life. Metadata of that epoch replayed after start-up (a later in-sync set, say) never
    /// makes it lead again: a node back from the dead would answer with its recovered log,
    /// which may end past what was committed.
    pub fn forget_leadership_through(&mut self, epoch: i32) {
        self.forgotten_epoch = self.forgotten_epoch.max(epoch);
    }

    fn replica_for(
        &self,
        leader: NodeId,
        leader_epoch: i32,
        in_sync: &[NodeId],
        now_ms: i64,
    ) -> Replica {
        let node = self.replica.node();
        let role = match leader == node {
            true => Role::Leader,
            false => Role::Follower { leader },
        };
        // What this replica knows is committed (never what its log merely holds).
        let start = self
            .replica
            .high_watermark()
            .clamp(self.log.log_start_offset(), self.log.high_watermark());
        let leads = role == Role::Leader;
        let mut replica = Replica::placed(
            node,
            role,
            leader_epoch,
            &self.replicas,
            in_sync,
            start,
            now_ms,
        );
        if leads {
            replica.handle_epoch_start(self.log.log_end_offset());
        }
        replica
    }

    /// The controller changed the partition: a new leadership (`leader`, maybe this node,
    /// maybe none, in a later `leader_epoch`), or a new in-sync set under the same one; an
    /// older change changes nothing. Returns whether this node stopped leading (what waits on
    /// it must be told).
    pub fn handle_change(&mut self, mut change: Change, now_ms: i64) -> bool {
        let node = self.replica.node();
        if change.leader == node && change.leader_epoch <= self.forgotten_epoch {
            change.leader = -1; // a leadership that ended with a crash
        }
        let was_leader = self.replica.is_leader();
        let epoch = self.replica.leader_epoch();
        let stale = change
            .partition_epoch
            .is_some_and(|e| e <= self.replica.partition_epoch());
        if change.leader_epoch < epoch || stale {
            return false;
        }
        if let Some(partition_epoch) = change.partition_epoch {
            self.replica.handle_partition_epoch(partition_epoch);
        }
        let leader = (change.leader >= 0).then_some(change.leader);
        let new_leadership = change.leader_epoch > epoch || self.replica.leader_node() != leader;
        if !new_leadership || (was_leader && change.leader == node) {
            // The same leadership (or this node leads on in a later epoch): the in-sync set
            // is what changed, if anything.
            self.replica.handle_leader_epoch(change.leader_epoch);
            if was_leader {
                self.replica.handle_in_sync(&change.in_sync);
            }
            return false;
        }
        let partition_epoch = self.replica.partition_epoch();
        self.replica =
            self.replica_for(change.leader, change.leader_epoch, &change.in_sync, now_ms);
        self.replica.handle_partition_epoch(partition_epoch);
        // What an earlier leader said is committed says nothing of the new one's log.
        self.leader_high_watermark = self.replica.high_watermark();
        was_leader
    }

    /// Follower: the log was cut back to `end` to match its leader's.
    pub fn handle_truncated(&mut self, end: i64) {
        self.replica.handle_truncated(end);
        self.leader_high_watermark = self.leader_high_watermark.min(end);
    }

    /// Compatibility with callers that know only the leadership (tests).
    #[cfg(test)]
    pub fn handle_leadership(&mut self, leader: NodeId, leader_epoch: i32) -> bool {
        let change = Change {
            leader,
            leader_epoch,
            in_sync: vec![leader],
            partition_epoch: None,
        };
        self.handle_change(change, 0)
    }

    pub fn new(log: PartitionLog, replica: Replica) -> Partition {
        Partition {
            replicas: vec![replica.node()],
            leader_high_watermark: 0,
            forgotten_epoch: -1,
            log,
            replica,
            written_waiters: BTreeSet::new(),
            durable_waiters: BTreeSet::new(),
        }
    }

    /// Where `epoch`'s records end (OffsetForLeaderEpoch), by Kafka's rules: the leader's
    /// current epoch ends at the high watermark (Kafka answers the log end; Spate what is
    /// committed, which is all a consumer can have read of this epoch), an older one where
    /// the next begins in the log's epoch history, an unknown one at (-1, -1).
    ///
    /// An older epoch's end is never cut to this leader's high watermark: a new leader's lags
    /// behind its predecessor's until its followers fetch, and a consumer that read up to the
    /// predecessor's would be told its records were truncated (librdkafka then seeks back
    /// and drops what it had fetched beyond, records its application never saw).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let history = self.epoch_history();
        // The current epoch never ends before it began (a new leader's high watermark may
        // still be below its epoch's start, KIP-207).
        let began = history.last().map_or(0, |&(_, start)| start);
        let end = self.high_watermark().max(began);
        crate::log::end_offset_for_epoch(&history, epoch, end)
    }

    /// Where `epoch`'s records end in this leader's log, for a follower checking its own
    /// (KIP-320): as `end_offset_for_epoch`, but the current epoch ends at the log end (the
    /// follower copies records before they are committed).
    pub fn epoch_end_for_replica(&self, epoch: i32) -> (i32, i64) {
        let history = self.epoch_history();
        crate::log::end_offset_for_epoch(&history, epoch, self.log.log_end_offset())
    }

    /// The leader epoch of the record at `offset`, as ListOffsets reports it (KIP-320): the
    /// epoch whose batches hold it; at the log end, the current one.
    pub fn epoch_at(&self, offset: i64) -> i32 {
        let history = self.epoch_history();
        let holding = history.iter().rev().find(|&&(_, start)| start <= offset);
        holding.or(history.first()).map_or(-1, |&(epoch, _)| epoch)
    }

    /// The log's epoch history with the current leadership last: it begins where the log
    /// ended when it began (as Kafka assigns it at election), batches of it or not.
    fn epoch_history(&self) -> Vec<(i32, i64)> {
        let current = self.replica.leader_epoch();
        let mut history = self.log.epoch_history();
        if history.last().is_none_or(|&(last, _)| last < current) {
            let start = history
                .last()
                .map_or(self.log.log_start_offset(), |_| self.log.log_end_offset());
            history.push((current, start));
        }
        history
    }

    /// Appends a producer's batch as this partition's leader, in the replica's leader epoch.
    pub fn append_as_leader(
        &mut self,
        bytes: bytes::BytesMut,
        info: &crate::batch::BatchInfo,
        now_ms: i64,
        log_append_time: bool,
        policy: &crate::log::SegmentPolicy,
    ) -> crate::log::Appended {
        let epoch = self.replica.leader_epoch();
        self.log
            .append_as_leader(bytes, info, epoch, now_ms, log_append_time, policy)
    }

    /// What consumers may read.
    pub fn high_watermark(&self) -> i64 {
        self.replica.high_watermark()
    }

    /// The log wrote or synced: the replica takes this node's progress, the log the high
    /// watermark that follows. Returns whether the high watermark moved (parked fetches may
    /// now have records).
    pub fn handle_log_progress(&mut self, policy: &FlushPolicy) -> bool {
        self.replica.handle_flush_policy(!policy.is_immediate());
        self.replica.handle_local_progress(Progress {
            written: self.log.written_offset(),
            durable: self.log.flushed_offset(),
        });
        if !self.replica.is_leader() {
            self.replica
                .handle_leader_high_watermark(self.leader_high_watermark);
        }
        let target = self
            .log
            .batch_end_at_or_below(self.replica.high_watermark());
        self.log.set_high_watermark(target)
    }

    /// Follower: the high watermark its leader reported in its last fetch answer (taken once
    /// this replica holds the records, see `handle_log_progress`).
    pub fn handle_leader_high_watermark(&mut self, offset: i64) {
        self.leader_high_watermark = self.leader_high_watermark.max(offset);
    }

    /// `waiter` is told (by `poll_ready`) once every record below `end_offset` is so far. A
    /// durable waiter makes the next sync round take this partition whatever its flush policy.
    pub fn wait_for(&mut self, end_offset: i64, until: Until, waiter: Waiter) {
        match until {
            Until::Written => self.written_waiters.insert((end_offset, waiter)),
            Until::Durable => {
                self.log.want_durable(end_offset);
                self.durable_waiters.insert((end_offset, waiter))
            }
        };
    }

    /// The waiters whose records are now far enough, in offset order.
    pub fn poll_ready(&mut self) -> Vec<Waiter> {
        let written = self.log.written_offset();
        let durable = self.replica.durable_offset();
        let mut ready = take_up_to(&mut self.written_waiters, written);
        ready.extend(take_up_to(&mut self.durable_waiters, durable));
        ready
    }

    /// Every waiter, ready or not: the partition failed (offline) or is going away.
    pub fn take_waiters(&mut self) -> Vec<Waiter> {
        let written = std::mem::take(&mut self.written_waiters);
        let durable = std::mem::take(&mut self.durable_waiters);
        written.into_iter().chain(durable).map(|(_, w)| w).collect()
    }

    /// Whether any request waits on this partition.
    pub fn has_waiters(&self) -> bool {
        !self.written_waiters.is_empty() || !self.durable_waiters.is_empty()
    }
}

/// Removes and returns the waiters with an end offset at or below `offset`.
fn take_up_to(waiters: &mut BTreeSet<(i64, Waiter)>, offset: i64) -> Vec<Waiter> {
    let later = waiters.split_off(&(offset.saturating_add(1), Waiter::Produce(0)));
    std::mem::replace(waiters, later)
        .into_iter()
        .map(|(_, w)| w)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::make_batch;
    use crate::log::SegmentPolicy;

    /// Leaderships as the controller hands them out: a later epoch always wins, an older one
    /// changes nothing, and only losing the leadership is reported (waiters must be told).
    #[test]
    fn leaderships_follow_the_controllers_epochs() {
        let log = PartitionLog::new(1 << 20);
        let placed = crate::controller::PartitionImage {
            leader: 2,
            ..crate::controller::PartitionImage::placed(vec![2, 1])
        };
        let mut p = Partition::placed(1, &placed, log, 0);
        assert!(!p.replica.is_leader(), "led by node 2");
        assert!(!p.handle_leadership(1, 2), "gaining is not losing");
        assert!(p.replica.is_leader());
        assert_eq!(p.replica.leader_epoch(), 2);
        assert!(!p.handle_leadership(2, 1), "an older epoch changes nothing");
        assert!(p.replica.is_leader());
        assert!(!p.handle_leadership(1, 3), "leading on in a later epoch");
        assert_eq!((p.replica.is_leader(), p.replica.leader_epoch()), (true, 3));
        assert!(p.handle_leadership(-1, 4), "lost: no leader");
        assert_eq!(
            p.replica.role(),
            crate::replica::Role::Follower { leader: -1 }
        );
        assert!(
            !p.handle_leadership(-1, 4),
            "the same again changes nothing"
        );
    }

    fn append(partition: &mut Partition, count: usize) -> i64 {
        let values: Vec<&[u8]> = vec![b"v"; count];
        let batch = make_batch(&values, 5);
        let info = crate::batch::validate(&batch).unwrap();
        let appended = partition.append_as_leader(
            bytes::BytesMut::from(&batch[..]),
            &info,
            0,
            false,
            &SegmentPolicy::default(),
        );
        appended.last_offset + 1
    }

    fn write_all(partition: &mut Partition) {
        while partition.log.poll_write().is_some() {
            partition.log.handle_write_done();
        }
    }

    fn sync(partition: &mut Partition) {
        partition
            .log
            .poll_sync(0, &FlushPolicy::IMMEDIATE, true)
            .expect("something to sync");
        partition.log.handle_sync_done();
    }

    #[test]
    fn waiters_are_told_once_their_records_are_written_or_durable() {
        let mut p = Partition::single(1, 0, PartitionLog::new(1 << 20));
        let end = append(&mut p, 3);
        p.wait_for(end, Until::Durable, Waiter::Produce(1));
        p.wait_for(end, Until::Written, Waiter::Produce(2));
        p.wait_for(end, Until::Durable, Waiter::Group(7));
        assert!(p.poll_ready().is_empty());
        write_all(&mut p);
        assert!(!p.handle_log_progress(&FlushPolicy::IMMEDIATE));
        assert_eq!(p.poll_ready(), vec![Waiter::Produce(2)]);
        assert_eq!(p.high_watermark(), 0, "visible only once durable");
        sync(&mut p);
        assert!(p.handle_log_progress(&FlushPolicy::IMMEDIATE));
        assert_eq!(p.high_watermark(), 3);
        assert_eq!(p.log.high_watermark(), 3, "the log serves up to it");
        assert_eq!(p.poll_ready(), vec![Waiter::Produce(1), Waiter::Group(7)]);
        assert!(!p.has_waiters());
    }

    #[test]
    fn a_relaxed_flush_policy_shows_written_records_but_acks_all_still_waits_for_the_disk() {
        let mut p = Partition::single(1, 0, PartitionLog::new(1 << 20));
        let relaxed = FlushPolicy {
            messages: 100,
            ms: 1000,
        };
        let end = append(&mut p, 2);
        p.wait_for(end, Until::Durable, Waiter::Produce(1));
        write_all(&mut p);
        assert!(p.handle_log_progress(&relaxed));
        assert_eq!(p.high_watermark(), 2);
        assert!(p.poll_ready().is_empty(), "acks=all waits for the fsync");
        sync(&mut p);
        p.handle_log_progress(&relaxed);
        assert_eq!(p.poll_ready(), vec![Waiter::Produce(1)]);
    }

    #[test]
    fn a_failing_partition_gives_back_every_waiter() {
        let mut p = Partition::single(1, 0, PartitionLog::new(1 << 20));
        let end = append(&mut p, 1);
        p.wait_for(end, Until::Durable, Waiter::Group(3));
        p.wait_for(end + 5, Until::Written, Waiter::Produce(4));
        let mut all = p.take_waiters();
        all.sort();
        assert_eq!(all, vec![Waiter::Produce(4), Waiter::Group(3)]);
        assert!(!p.has_waiters());
    }
    /// OffsetForLeaderEpoch by Kafka's rules, with the leader's current epoch ending at the
    /// high watermark even before a batch of it is written.
    #[test]
    fn epochs_end_where_the_next_begins_and_the_current_at_the_high_watermark() {
        let mut p = Partition::single(1, 0, PartitionLog::new(1 << 20));
        assert_eq!(p.end_offset_for_epoch(0), (0, 0), "an empty log's epoch");
        append(&mut p, 2);
        write_all(&mut p);
        sync(&mut p);
        p.handle_log_progress(&FlushPolicy::IMMEDIATE);
        // A new leadership (epoch 4) on the same log.
        let start = p.log.log_end_offset();
        let log = std::mem::replace(&mut p.log, PartitionLog::new(1));
        let mut p = Partition::new(log, Replica::leader(1, 4, &[1], start));
        assert_eq!(p.end_offset_for_epoch(4), (4, 2));
        assert_eq!(
            p.end_offset_for_epoch(0),
            (0, 2),
            "epoch 0 ended where 4 began"
        );
        assert_eq!(
            p.end_offset_for_epoch(2),
            (0, 2),
            "no epoch 2: the one before it"
        );
        assert_eq!(p.end_offset_for_epoch(5), (-1, -1));
        append(&mut p, 3);
        write_all(&mut p);
        sync(&mut p);
        p.handle_log_progress(&FlushPolicy::IMMEDIATE);
        assert_eq!(p.log.epoch_history(), vec![(0, 0), (4, 2)]);
        assert_eq!(p.end_offset_for_epoch(4), (4, 5));
        assert_eq!(p.end_offset_for_epoch(3), (0, 2));
        let epochs: Vec<i32> = (0..=6).map(|offset| p.epoch_at(offset)).collect();
        assert_eq!(
            epochs,
            [0, 0, 4, 4, 4, 4, 4],
            "the epoch holding each offset"
        );
    }

    /// A new leader whose high watermark still lags its predecessor's answers where an older
    /// epoch ends in its log, not at its high watermark: a consumer may have read that far
    /// from the old leader.
    #[test]
    fn an_older_epoch_ends_where_the_next_began_even_above_a_new_leaders_high_watermark() {
        let mut p = Partition::single(1, 0, PartitionLog::new(1 << 20));
        append(&mut p, 10);
        write_all(&mut p);
        sync(&mut p);
        let log = std::mem::replace(&mut p.log, PartitionLog::new(1));
        // Elected in epoch 5 holding epoch 0's records up to 10; it knows them committed up
        // to 6 so far.
        let p = Partition::new(log, Replica::leader(1, 5, &[1, 2], 6));
        assert_eq!(p.high_watermark(), 6);
        assert_eq!(p.end_offset_for_epoch(0), (0, 10));
        assert_eq!(p.end_offset_for_epoch(5), (5, 10), "not before it began");
    }
}
