//! How a broker runs on the controller's metadata ([`crate::controller`]): the one place its
//! topic table changes. The control shard appends records to its controller and applies them
//! at once (the next request sees them; a topic's data waits for the version to be durable);
//! the other shards apply the same records, in the same order, once the controller publishes
//! them. Handlers never change the table themselves.

use super::{Broker, InFlight, Output};
use crate::controller::image::NO_LEADER;
use crate::controller::quorum::AppendError;
use crate::controller::{BrokerImage, MetadataRecord, PartitionImage};
use crate::errors;
use crate::io::{IoCommand, IoOp, IoResult, Level, ShardMessage};
use crate::replica::NodeId;
use crate::topics::{Topic, TopicId};

/// Wait before writing the metadata again after a write failed.
const METADATA_RETRY_MS: i64 = 500;

/// Why a change was refused on a node that is not the active controller.
pub(super) const NOT_ACTIVE: &str = "this node is not the active controller";

/// Whether a record changes the cluster (the quorum's business) rather than this node alone.
fn is_cluster_wide(record: &MetadataRecord) -> bool {
    !matches!(
        record,
        MetadataRecord::LogStart { .. }
            | MetadataRecord::BrokerConfigs { per_node: true, .. }
            | MetadataRecord::Cluster { .. }
            | MetadataRecord::QuorumApplied { .. }
    )
}

impl Broker {
    /// Control: appends `records` to the controller as one version and applies them here.
    /// A record that does not fit is a bug of the caller, which checked the request: it is
    /// logged and nothing changes.
    ///
    /// On a controller quorum, changes to the cluster (topics, their configs, producer ids,
    /// cluster-wide broker configs) go to the quorum instead, which only the active
    /// controller takes; this node applies them once they are committed and mirrored (see
    /// [`Broker::mirror_quorum`]), and `respond_after_metadata` waits for that. What is this
    /// node's own (log starts, its own broker configs, the cluster id it took) stays here.
    pub(super) fn append_metadata(&mut self, records: Vec<MetadataRecord>) -> Result<u64, String> {
        if self.in_quorum() && records.iter().any(is_cluster_wide) {
            return self.append_to_quorum(records);
        }
        self.append_local(records)
    }

    /// Control: appends `records` to this node's own metadata.
    fn append_local(&mut self, records: Vec<MetadataRecord>) -> Result<u64, String> {
        let Some(controller) = self.controller.as_mut() else {
            return Err("only the control shard changes the metadata".into());
        };
        match controller.append(records.clone()) {
            Ok(version) => {
                self.metadata_version = version;
                self.apply_metadata_records(version, &records);
                Ok(version)
            }
            Err(error) => {
                self.log(
                    Level::Error,
                    format!("metadata change refused by the controller: {error}"),
                );
                Err(error)
            }
        }
    }

    fn append_to_quorum(&mut self, records: Vec<MetadataRecord>) -> Result<u64, String> {
        let Some(seat) = self.quorum.as_mut() else {
            return Err("this node is not a controller of the quorum".into());
        };
        match seat.controller_mut().append(records) {
            Ok(index) => {
                self.quorum_appended = self.quorum_appended.max(index);
                self.pump_quorum();
                Ok(self.metadata_version)
            }
            Err(error) => {
                let error = match error {
                    AppendError::Refused(why) => why,
                    AppendError::NotLeader(_) | AppendError::NotReady => NOT_ACTIVE.to_string(),
                };
                Err(error)
            }
        }
    }

    /// Control, on a quorum: whether this node is the active controller (takes changes).
    pub(super) fn is_active_controller(&self) -> bool {
        self.quorum
            .as_ref()
            .is_some_and(|s| s.controller().is_active())
    }

    /// Control, on a quorum: makes this node's metadata what the quorum committed (its
    /// cluster-wide part), as one version that also records the quorum version it holds.
    /// Nothing is mirrored from a quorum of another cluster, nor from behind what this node
    /// holds (after a restart the journal may know less committed than was mirrored).
    pub(super) fn mirror_quorum(&mut self) {
        let (Some(seat), Some(controller)) = (self.quorum.as_ref(), self.controller.as_ref())
        else {
            return;
        };
        let (committed, applied) = (
            seat.controller().committed_image(),
            seat.controller().applied_index(),
        );
        let mine = controller.image();
        // While `meta.properties` is being written (a new directory taking the cluster's id),
        // nothing is mirrored: a crash then leaves the file and a metadata without topics,
        // which start-up settles, never topics of a cluster the file does not name.
        let identity_pending = self.identity_next.is_some()
            || self
                .in_flight
                .values()
                .any(|f| matches!(f, InFlight::Identity));
        if applied <= mine.quorum_index
            || committed.cluster_id.is_empty()
            || committed.cluster_id != self.cluster_id
            || identity_pending
        {
            return;
        }
        let mut records = mine.changes_to(committed);
        records.push(MetadataRecord::QuorumApplied { index: applied });
        if let Ok(version) = self.append_local(records) {
            let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.after_quorum)
                .into_iter()
                .partition(|(index, _)| *index <= applied);
            self.after_quorum = waiting;
            self.after_metadata
                .extend(ready.into_iter().map(|(_, output)| (version, output)));
        }
    }

    /// Control, on a quorum: the quorum versions from `index` on that this node appended may
    /// never commit (leadership moved). Whoever waits for them cannot be told whether their
    /// change happened: their connections close, and clients retry.
    pub(super) fn abandon_quorum_waiters(&mut self, index: u64) {
        for (waited, output) in &mut self.after_quorum {
            if *waited >= index {
                if let Output::Respond { conn, .. } = output {
                    *output = Output::Close { conn: *conn };
                }
            }
        }
    }

    /// Changes the topic table as `records` (of metadata version `version`) say.
    fn apply_metadata_records(&mut self, version: u64, records: &[MetadataRecord]) {
        for record in records {
            match record {
                MetadataRecord::Cluster { id } => self.cluster_id = id.clone(),
                MetadataRecord::ProducerIds { .. }
                | MetadataRecord::ProducerIdBlock { .. }
                | MetadataRecord::QuorumApplied { .. } => {}
                MetadataRecord::TopicCreated {
                    id,
                    name,
                    replicas,
                    configs,
                } => {
                    let partitions = replicas
                        .iter()
                        .map(|r| self.new_partition(&PartitionImage::placed(r.clone())))
                        .collect();
                    let inherited = self.broker_configs.topic_fallbacks();
                    let topic =
                        Topic::new(name, *id, configs.clone(), inherited, partitions, version);
                    self.topics.insert(name.clone(), topic);
                }
                MetadataRecord::PartitionsAdded { id, replicas } => {
                    let added: Vec<_> = replicas
                        .iter()
                        .map(|r| self.new_partition(&PartitionImage::placed(r.clone())))
                        .collect();
                    if let Some(topic) = self.topic_by_id_mut(*id) {
                        topic.partitions.extend(added);
                        topic.created_in_version = version;
                    }
                }
                MetadataRecord::TopicDeleted { id } => {
                    if let Some(name) = self.topic_name(*id) {
                        let topic = self.remove_topic(self.now_ms, &name);
                        if self.is_control() {
                            // The directory goes once the deletion is durable: a crash
                            // before that finds the topic and its data.
                            let op = IoOp::RemoveTopicDir {
                                topic_dir: topic.dir_name(),
                            };
                            let remove = Output::Io(IoCommand { token: 0, op });
                            self.after_metadata.push((version, remove));
                        }
                    }
                }
                MetadataRecord::TopicConfigs { id, configs } => {
                    if let Some(topic) = self.topic_by_id_mut(*id) {
                        topic.configs = configs.clone();
                    }
                }
                MetadataRecord::BrokerConfigs { per_node, configs } => {
                    match per_node {
                        true => self.broker_configs.dynamic_node = configs.clone(),
                        false => self.broker_configs.dynamic_default = configs.clone(),
                    }
                    self.refresh_topic_fallbacks();
                }
                MetadataRecord::LeaderChanged {
                    id,
                    partition,
                    leader,
                    leader_epoch,
                } => {
                    let in_sync = vec![*leader];
                    self.change_partition(*id, *partition, *leader, *leader_epoch, in_sync, None)
                }
                MetadataRecord::PartitionChanged {
                    id,
                    partition,
                    leader,
                    leader_epoch,
                    in_sync,
                    partition_epoch,
                } => self.change_partition(
                    *id,
                    *partition,
                    *leader,
                    *leader_epoch,
                    in_sync.clone(),
                    Some(*partition_epoch),
                ),
                MetadataRecord::BrokerRegistered {
                    node,
                    incarnation,
                    host,
                    port,
                    rack,
                } => {
                    let broker = BrokerImage::registered(*incarnation, host, *port, rack.clone());
                    let earlier = self.brokers.insert(*node, broker);
                    if earlier.is_some_and(|b| b.incarnation != *incarnation) {
                        // A fetch sent to its earlier life is never answered by this one:
                        // without this, the next fetch would wait out the socket timeout.
                        self.replication.forget_broker_life(*node);
                    }
                }
                MetadataRecord::BrokerFencing { node, fenced } => {
                    if let Some(broker) = self.brokers.get_mut(node) {
                        broker.fenced = *fenced;
                    }
                }
                MetadataRecord::LogStart {
                    id,
                    partition,
                    offset,
                } => {
                    // The partition's own shard moved it already; what waits for it being
                    // durable looks here.
                    let start = self
                        .sharding
                        .committed_log_starts
                        .entry((*id, *partition))
                        .or_insert(0);
                    *start = (*start).max(*offset);
                }
            }
        }
        // Leaders may have changed: followers fetch from the new ones.
        self.pump_replication(self.now_ms);
    }

    /// A partition's new leadership or in-sync set: this node leads it (in a later epoch,
    /// or on with another set), or another node or none does, and what waited for this
    /// node's leadership is told NOT_LEADER_OR_FOLLOWER so clients go to the new leader.
    fn change_partition(
        &mut self,
        id: TopicId,
        partition: i32,
        leader: NodeId,
        leader_epoch: i32,
        in_sync: Vec<NodeId>,
        partition_epoch: Option<i32>,
    ) {
        let node = self.config.node_id;
        let now_ms = self.now_ms;
        let found = self
            .topic_by_id_mut(id)
            .and_then(|t| t.partitions.get_mut(usize::try_from(partition).ok()?));
        let Some(placed) = found else {
            return;
        };
        let before = (placed.replica.leader_epoch(), placed.replica.is_leader());
        let change = crate::partition::Change {
            leader,
            leader_epoch,
            in_sync,
            partition_epoch,
        };
        if placed.handle_change(change, now_ms) {
            self.fail_waiters(self.now_ms, id, partition, errors::NOT_LEADER_OR_FOLLOWER);
        }
        self.on_partition_progress(now_ms, id, partition);
        let name = self.topic_name(id).unwrap_or_default();
        let new_leadership = before != (leader_epoch, leader == node);
        if new_leadership && self.owns(&name, partition) && name == crate::groups::OFFSETS_TOPIC {
            self.on_offsets_leadership(partition, leader == node);
        }
        if new_leadership && self.owns(&name, partition) {
            let led = match leader {
                NO_LEADER => "has no leader".to_string(),
                other if other == node => "is led by this node".to_string(),
                other => format!("is led by node {other}"),
            };
            self.log(
                Level::Info,
                format!("{name}-{partition} {led} in epoch {leader_epoch}"),
            );
        }
    }

    pub(super) fn topic_name(&self, id: TopicId) -> Option<String> {
        self.topics
            .values()
            .find(|t| t.id == id)
            .map(|t| t.name.clone())
    }

    /// Control: the log starts of partitions moved (DeleteRecords, retention, another
    /// shard's), as one version; what waits for them to be durable waits for it.
    pub(super) fn append_log_starts(&mut self, starts: &[(TopicId, i32, i64)]) -> u64 {
        let records = starts
            .iter()
            .filter(|(id, _, _)| self.topics.values().any(|t| t.id == *id))
            .map(|&(id, partition, offset)| MetadataRecord::LogStart {
                id,
                partition,
                offset,
            })
            .collect();
        // Only a deleted topic's partitions are left out, so the records fit.
        self.append_metadata(records)
            .unwrap_or(self.metadata_version)
    }

    /// Control: hands out the persist of the latest metadata version, if one is due.
    pub(super) fn pump_metadata(&mut self) {
        if self.metadata_retry_at.is_some() {
            return;
        }
        let Some((version, data)) = self.controller.as_mut().and_then(|c| c.poll_persist()) else {
            return;
        };
        self.issue(
            IoOp::PersistMetadata { data },
            InFlight::Metadata { version },
        );
    }

    /// Control: the persist of `version` ended. Once durable, the version is committed: the
    /// other shards get its records, and what waited for it goes out once they run on it.
    pub(super) fn on_metadata_persisted(&mut self, version: u64, result: IoResult) {
        let Some(controller) = self.controller.as_mut() else {
            return;
        };
        let durable = matches!(result, IoResult::Done);
        controller.handle_persisted(version, durable);
        if let IoResult::Failed(error) = result {
            // Retried a little later; topic changes stay unacknowledged meanwhile.
            self.metadata_retry_at = Some(self.now_ms + METADATA_RETRY_MS);
            return self.log(
                Level::Error,
                format!("cannot persist metadata: {error}; retrying in {METADATA_RETRY_MS} ms"),
            );
        }
        self.metadata_persisted = controller.committed_version();
        while let Some((version, records)) = controller.poll_published() {
            for shard in (0..self.config.shards).filter(|&s| s != self.config.shard) {
                self.outputs.push_back(super::Output::ToShard {
                    shard,
                    message: ShardMessage::Metadata {
                        version,
                        records: records.clone(),
                    },
                });
            }
        }
        self.release_after_metadata();
    }

    /// Another shard: the controller's records up to `version`, committed.
    pub(super) fn apply_published(&mut self, version: u64, records: &[MetadataRecord]) {
        self.apply_metadata_records(version, records);
        self.metadata_version = version;
        self.metadata_persisted = version;
    }

    /// The topic table of the metadata file read at start-up (version 1 on every shard). A
    /// node whose metadata mirrors a quorum leads none of its partitions yet: the epochs in
    /// the file may be ones its earlier life wrote in, and it leads again once the controller
    /// begins a new leadership for this life (when it registers).
    pub(super) fn load_image(&mut self, image: &crate::controller::MetadataImage) {
        self.cluster_id = image.cluster_id.clone();
        self.broker_configs.dynamic_node = image.broker_configs.clone();
        self.broker_configs.dynamic_default = image.cluster_configs.clone();
        self.brokers = image.brokers.clone();
        let inherited = self.broker_configs.topic_fallbacks();
        let waits = image.quorum_index > 0;
        for topic in image.topics.values() {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| match waits && p.leader == self.config.node_id {
                    true => {
                        let mut partition = self.new_partition(&PartitionImage {
                            leader: NO_LEADER,
                            ..p.clone()
                        });
                        partition.forget_leadership_through(p.leader_epoch);
                        partition
                    }
                    false => self.new_partition(p),
                })
                .collect();
            let configs = topic.configs.clone();
            let loaded = Topic::new(
                &topic.name,
                topic.id,
                configs,
                inherited.clone(),
                partitions,
                0,
            );
            self.topics.insert(topic.name.clone(), loaded);
            for (&partition, &offset) in &topic.log_start_offsets {
                self.recovered_log_starts
                    .insert((topic.id, partition), offset);
            }
        }
    }
}
