//! Where records become committed, for the broker: after a partition's log writes or syncs, its
//! `Partition` moves the high watermark and hands back the requests whose records are now far
//! enough (`Waiter`s); here each goes to what it belongs to: a produce, an offset commit, a
//! group's new assignment. A partition that fails or goes away hands back all of its waiters,
//! each answered with the error.

use super::Broker;
use crate::errors;
use crate::partition::{Partition, Waiter};
use crate::topics::TopicId;

impl Broker {
    pub(super) fn partition_mut(
        &mut self,
        topic: TopicId,
        partition: i32,
    ) -> Option<&mut Partition> {
        let index = usize::try_from(partition).ok()?;
        self.topics
            .values_mut()
            .find(|t| t.id == topic)?
            .partitions
            .get_mut(index)
    }

    /// The partition's log wrote or synced: the high watermark follows (parked fetches are
    /// woken when it moves), and the waiters whose records are now far enough are told.
    pub(super) fn on_partition_progress(&mut self, now_ms: i64, topic: TopicId, partition: i32) {
        let Some(t) = self.topics.values_mut().find(|t| t.id == topic) else {
            return;
        };
        let policy = t.flush_policy();
        let Some(p) = t.partitions.get_mut(partition as usize) else {
            return;
        };
        if self.config.planted_bug == Some(super::PlantedBug::HighWatermarkFromLeaderAlone) {
            p.replica.plant_leader_alone();
        }
        let moved = p.handle_log_progress(&policy);
        self.poll_waiters(now_ms, topic, partition);
        // Followers copy what is written, committed or not.
        self.wake_parked(now_ms, !moved);
    }

    /// Tells the partition's waiters whose records are far enough.
    pub(super) fn poll_waiters(&mut self, now_ms: i64, topic: TopicId, partition: i32) {
        let ready = match self.partition_mut(topic, partition) {
            Some(p) => p.poll_ready(),
            None => return,
        };
        for waiter in ready {
            self.settle_waiter(now_ms, waiter, topic, partition, errors::NONE);
        }
    }

    /// The partition failed (`error`: KAFKA_STORAGE_ERROR) or is going away
    /// (UNKNOWN_TOPIC_OR_PARTITION): everything waiting on it is answered with the error.
    pub(super) fn fail_waiters(&mut self, now_ms: i64, topic: TopicId, partition: i32, error: i16) {
        let waiters = match self.partition_mut(topic, partition) {
            Some(p) => p.take_waiters(),
            None => return,
        };
        for waiter in waiters {
            self.settle_waiter(now_ms, waiter, topic, partition, error);
        }
    }

    fn settle_waiter(
        &mut self,
        now_ms: i64,
        waiter: Waiter,
        topic: TopicId,
        partition: i32,
        code: i16,
    ) {
        match waiter {
            Waiter::Produce(id) => self.on_produce_settled(id, topic, partition, code),
            Waiter::Group(id) => {
                self.groups.handle_stored(now_ms, id, code == errors::NONE);
                self.pump_groups();
            }
        }
    }
}
