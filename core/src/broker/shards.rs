//! Thread-per-core: a broker that is one shard of several (see [`crate::shard`]).
//!
//! Every shard runs a whole `Broker` over the same topic table, and serves the partitions
//! [`crate::placement::owner`] gives it: their logs, writes, flush rounds, reads and retention.
//! Shard 0, the control shard, also runs the controller (topics, configs, producer ids: see
//! `metadata_log.rs`) and the groups (their offsets topic is its own), and it alone writes the
//! metadata file. The records of each version it makes durable go to the other shards
//! ([`ShardMessage::Metadata`]); they apply them, and an answer
//! that waited for the version (CreateTopics, say) goes out only once every shard runs on it,
//! so a client that was told a topic exists finds it on every shard.
//!
//! The other shards keep no metadata of their own. A DeleteRecords on one of their partitions
//! sends the new log start to the control shard, which persists it with the metadata; the
//! answer waits for a version that carries it. A clean shutdown writes the clean-shutdown mark
//! only once every shard has checkpointed its partitions.

use super::{Broker, InFlight, Output};
use crate::io::ConnId;
use crate::io::ShardMessage;
use crate::placement::{owner, CONTROL_SHARD};
use crate::topics::TopicId;
use std::collections::{BTreeMap, BTreeSet};

/// What waits on a non-control shard for its log starts to be persisted: a DeleteRecords
/// answer, or the removal of segments retention deleted.
struct AwaitedLogStarts {
    starts: Vec<(TopicId, i32, i64)>,
    then: Output,
}

/// What a broker keeps because it is one shard of several.
#[derive(Default)]
pub(super) struct Sharding {
    /// Control: the metadata version each other shard runs on (1, the version every shard
    /// loads at start-up, until it says otherwise).
    applied: BTreeMap<usize, u64>,
    /// The log starts the committed metadata has (see `metadata_log.rs`): what waits for a
    /// moved start to be durable is released by them.
    pub(super) committed_log_starts: BTreeMap<(TopicId, i32), i64>,
    /// Control: shards that finished their part of a clean shutdown, and whether cleanly.
    shut_down: BTreeMap<usize, bool>,
    /// Other shards: what waits for log starts to be persisted.
    awaited_log_starts: Vec<AwaitedLogStarts>,
}

impl Broker {
    /// Starts every shard's broker up on the data directory, one after another: each recovers
    /// the partitions it owns, and the control shard goes last, since it removes the
    /// clean-shutdown mark and what deleted topics left behind. The brokers and their reports
    /// come back indexed by shard; an error names the shard.
    pub fn start_shards(
        config: &super::Config,
        shards: usize,
        disk: &mut impl super::StartupDisk,
        now_ms: i64,
    ) -> Result<Vec<(Broker, super::StartupReport)>, String> {
        let shards = shards.max(1);
        let mut started: Vec<Option<(Broker, super::StartupReport)>> =
            (0..shards).map(|_| None).collect();
        for shard in (1..shards).chain([CONTROL_SHARD]) {
            let mut broker = Broker::new(config.for_shard(shard, shards));
            let report = broker
                .start_up(disk, now_ms)
                .map_err(|error| match shards {
                    1 => error,
                    _ => format!("shard {shard}: {error}"),
                })?;
            started[shard] = Some((broker, report));
        }
        Ok(started
            .into_iter()
            .map(|s| s.expect("every shard started"))
            .collect())
    }

    pub(super) fn is_control(&self) -> bool {
        self.config.shard == CONTROL_SHARD
    }

    /// Whether this shard serves the partition.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        owner(topic, partition, self.config.shards) == self.config.shard
    }

    /// The metadata version every shard runs on: answers that wait for a version go out once
    /// it is here.
    pub(super) fn metadata_visible(&self) -> u64 {
        (0..self.config.shards)
            .filter(|&s| s != self.config.shard)
            .map(|s| self.sharding.applied.get(&s).copied().unwrap_or(1))
            .fold(self.metadata_persisted, u64::min)
    }

    /// Start-up: log starts of partitions another shard recovers are that shard's business.
    pub(super) fn forget_foreign_log_starts(&mut self) {
        self.recovered_log_starts.clear();
        if !self.is_control() {
            // The control shard writes the metadata; the others run on what it wrote.
            self.metadata_persisted = self.metadata_version;
        }
    }

    /// Another shard's broker told this one something ([`Output::ToShard`]).
    pub fn handle_shard_message(&mut self, now_ms: i64, message: ShardMessage) {
        self.now_ms = self.now_ms.max(now_ms);
        match message {
            ShardMessage::Metadata { version, records } => self.apply_metadata(version, &records),
            ShardMessage::MetadataApplied { shard, version } => {
                let applied = self.sharding.applied.entry(shard).or_insert(1);
                *applied = (*applied).max(version);
                self.release_after_metadata();
            }
            ShardMessage::LogStartMoved {
                topic,
                partition,
                offset,
            } => {
                self.append_log_starts(&[(topic, partition, offset)]);
            }
            ShardMessage::AlterInSync(ask) => self.send_alter_in_sync(&ask),
            ShardMessage::BeginShutdown => self.begin_shutdown(),
            ShardMessage::ShutDown { shard, clean } => {
                self.sharding.shut_down.insert(shard, clean);
            }
        }
        self.pump_io();
        self.pump_replication(self.now_ms);
    }

    /// Whether every other shard finished its part of a clean shutdown, and all cleanly.
    pub(super) fn peers_shut_down(&self) -> Option<bool> {
        let peers = self.config.shards.saturating_sub(1);
        (self.sharding.shut_down.len() >= peers)
            .then(|| self.sharding.shut_down.values().all(|&clean| clean))
    }

    /// A non-control shard finished its part of a clean shutdown.
    pub(super) fn report_shut_down(&mut self, clean: bool) {
        self.outputs.push_back(Output::ToShard {
            shard: CONTROL_SHARD,
            message: ShardMessage::ShutDown {
                shard: self.config.shard,
                clean,
            },
        });
    }

    /// Control: the other shards stop too.
    pub(super) fn share_shutdown(&mut self) {
        if !self.is_control() {
            return;
        }
        for shard in 1..self.config.shards {
            self.outputs.push_back(Output::ToShard {
                shard,
                message: ShardMessage::BeginShutdown,
            });
        }
    }

    /// A non-control shard moved log starts (DeleteRecords, retention): the control shard
    /// persists them, and `then` (the answer, the segment removal) waits for a metadata
    /// version that has them.
    pub(super) fn await_log_starts(&mut self, starts: Vec<(TopicId, i32, i64)>, then: Output) {
        for &(topic, partition, offset) in &starts {
            self.outputs.push_back(Output::ToShard {
                shard: CONTROL_SHARD,
                message: ShardMessage::LogStartMoved {
                    topic,
                    partition,
                    offset,
                },
            });
        }
        self.sharding
            .awaited_log_starts
            .push(AwaitedLogStarts { starts, then });
    }

    /// A non-control shard takes the controller's records up to version `version`: topics
    /// created or deleted, partitions added, configs changed, log starts made durable.
    fn apply_metadata(&mut self, version: u64, records: &[crate::controller::MetadataRecord]) {
        if self.is_control() {
            return;
        }
        self.apply_published(version, records);
        let topic_ids: BTreeSet<TopicId> = self.topics.values().map(|t| t.id).collect();
        let starts = &self.sharding.committed_log_starts;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.sharding.awaited_log_starts)
                .into_iter()
                .partition(|awaited| {
                    awaited.starts.iter().all(|&(id, partition, offset)| {
                        // A deleted topic's records are gone anyway.
                        !topic_ids.contains(&id)
                            || starts.get(&(id, partition)).is_some_and(|&s| s >= offset)
                    })
                });
        self.sharding.awaited_log_starts = waiting;
        for awaited in ready {
            match awaited.then {
                Output::Io(command) => self.issue(command.op, InFlight::RemoveSegments),
                answer => self.outputs.push_back(answer),
            }
        }
        self.outputs.push_back(Output::ToShard {
            shard: CONTROL_SHARD,
            message: ShardMessage::MetadataApplied {
                shard: self.config.shard,
                version,
            },
        });
    }

    /// The connection's split Fetch is answered now with what this shard has, instead of
    /// waiting out its `max_wait_ms`: another shard already answered its part.
    pub fn wake_fetch(&mut self, now_ms: i64, conn: ConnId) {
        self.now_ms = self.now_ms.max(now_ms);
        self.hurry_fetches(conn, now_ms);
        self.pump_io();
    }
}
