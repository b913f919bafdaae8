//! What happened in a run, as the clients saw it: the checkers (in `sim-tests`) judge it.

use spate_core::topics::TopicId;
use std::collections::{BTreeMap, BTreeSet};

/// A produce the broker acknowledged: `payloads[i]` is at `base_offset + i`.
#[derive(Debug, Clone)]
pub struct Ack {
    pub client: usize,
    pub acks: i16,
    pub idempotent: bool,
    pub topic: String,
    pub partition: i32,
    pub base_offset: i64,
    pub payloads: Vec<String>,
}

/// What a group member was given in SyncGroup.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub client: usize,
    pub group: String,
    pub generation: i32,
    pub partitions: Vec<i32>,
}

/// An offset commit the coordinator acknowledged.
#[derive(Debug, Clone)]
pub struct Commit {
    pub client: usize,
    pub group: String,
    pub generation: i32,
    pub partition: i32,
    pub offset: i64,
    /// Virtual time of the acknowledgement.
    pub at: u64,
}

/// A committed offset a group member read with OffsetFetch, and when it asked.
#[derive(Debug, Clone)]
pub struct OffsetRead {
    pub client: usize,
    pub group: String,
    pub partition: i32,
    /// -1 when nothing was committed.
    pub offset: i64,
    pub sent_at: u64,
}

/// A partition's high watermark, and for each epoch asked the (epoch, end offset) it answered.
pub type EpochEnds = (i64, Vec<(i32, (i32, i64))>);

#[derive(Debug, Default)]
pub struct History {
    pub offset_reads: Vec<OffsetRead>,
    /// After each restart: when the crash happened, and the group's committed offsets as
    /// recovered, by partition.
    pub recovered_commits: Vec<(u64, BTreeMap<i32, i64>)>,
    pub assignments: Vec<Assignment>,
    pub commits: Vec<Commit>,
    /// Committed offsets as the coordinator had them after the last restart, by
    /// (group, partition), read by the verifier.
    pub final_commits: BTreeMap<(String, i32), i64>,
    /// Where the group stood at the end of the quiet phase (liveness of groups).
    pub group_end: Vec<String>,
    /// Every payload a producer sent (each is unique).
    pub sent: BTreeSet<String>,
    pub acks: Vec<Ack>,
    /// What was first read at each offset, and by which client.
    pub observed: BTreeMap<(String, i32, i64), (usize, String)>,
    /// An offset read as one payload and later as another.
    pub conflicts: Vec<String>,
    /// Everything the verifier read after the last crash and restart: the log as it ended.
    pub final_log: BTreeMap<(String, i32, i64), String>,
    /// Protocol-level problems the clients met: corrupt batches, gaps, undecodable answers.
    pub problems: Vec<String>,
    /// Deadlines a broker still reported due right after `handle_timeout` (the first few).
    pub overdue: Vec<String>,
    /// What was still pending when the quiet phase ended.
    pub liveness: Vec<String>,
    /// Times an idempotent producer had to start a new session.
    pub sequence_resets: u64,
    /// The topic id and leader epoch of every partition, by (topic, partition), as each
    /// start-up left them (the first start too), in order.
    pub start_epochs: Vec<BTreeMap<(String, i32), (TopicId, i32)>>,
    /// The leader epoch of each batch, by (topic, partition, base offset), as first read.
    pub batch_epochs: BTreeMap<(String, i32, i64), i32>,
    /// A batch read with one epoch and later with another.
    pub epoch_conflicts: Vec<String>,
    /// The batches of the final log (what the verifier read): epoch by base offset.
    pub final_batches: BTreeMap<(String, i32), BTreeMap<i64, i32>>,
    /// At the end: each partition's high watermark and, for each epoch asked, where the
    /// partition says it ends (OffsetForLeaderEpoch's answer: epoch, end offset).
    pub epoch_ends: BTreeMap<(String, i32), EpochEnds>,
    /// Cluster runs: each node seen leading the controller quorum, by Raft term.
    pub controller_leaders: BTreeMap<u64, BTreeSet<i32>>,
    /// Cluster runs: a broker-only node seen standing or leading (it never may).
    pub observers_standing: Vec<String>,
    /// Cluster runs: a committed metadata entry that differs between nodes, or that a
    /// controller leader does not hold; an acknowledged change missing at the end.
    pub metadata_conflicts: Vec<String>,
    /// Cluster runs: a partition leader a client was told of, or a node led as, that the
    /// controller did not choose (or two leaders of one partition epoch, or a fenced one).
    pub unchosen_leaders: Vec<String>,
    /// Cluster runs: what differed between the nodes once the faults had stopped.
    pub divergence: Vec<String>,
    /// Cluster runs: a consumer told a lower high watermark than it was told before.
    pub watermarks_back: Vec<String>,
    /// Cluster runs: a leader that counted a follower durable beyond the follower's disk.
    pub follower_durability: Vec<String>,
    /// Per (topic, partition, leader epoch): one past the highest base offset of a batch of
    /// that epoch any consumer read.
    pub epoch_reads: BTreeMap<(String, i32, i32), i64>,
    /// Cluster runs: a leader that answered OffsetForLeaderEpoch with an end below what a
    /// consumer had read of that epoch (KIP-320: the consumer would think it truncated).
    pub epoch_ends_short: Vec<String>,
}

impl History {
    /// A batch read at `base_offset` in `epoch`.
    pub fn observe_batch(
        &mut self,
        topic: &str,
        partition: i32,
        base_offset: i64,
        epoch: i32,
        verifier: bool,
    ) {
        if verifier {
            let batches = self
                .final_batches
                .entry((topic.to_string(), partition))
                .or_default();
            batches.insert(base_offset, epoch);
        }
        let read = self
            .epoch_reads
            .entry((topic.to_string(), partition, epoch))
            .or_insert(0);
        *read = (*read).max(base_offset + 1);
        let key = (topic.to_string(), partition, base_offset);
        match self.batch_epochs.get(&key) {
            Some(&first) if first != epoch => self.epoch_conflicts.push(format!(
                "{topic}-{partition}: the batch at {base_offset} was read in epoch {first}, later in epoch {epoch}"
            )),
            Some(_) => {}
            None => {
                self.batch_epochs.insert(key, epoch);
            }
        }
    }

    pub fn observe(
        &mut self,
        client: usize,
        topic: &str,
        partition: i32,
        offset: i64,
        payload: String,
        verifier: bool,
    ) {
        let key = (topic.to_string(), partition, offset);
        if verifier {
            self.final_log.insert(key.clone(), payload.clone());
        }
        match self.observed.get(&key) {
            Some((first, seen)) if *seen != payload => self.conflicts.push(format!(
                "{topic}-{partition} offset {offset}: client {first} read {seen:?}, client {client} read {payload:?}"
            )),
            Some(_) => {}
            None => {
                self.observed.insert(key, (client, payload));
            }
        }
    }
}
