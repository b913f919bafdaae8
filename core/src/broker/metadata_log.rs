//! How a broker runs on the controller's metadata ([`crate::controller`]): the one place its
//! topic table changes. The control shard appends records to its controller and applies them
//! at once (the next request sees them; a topic's data waits for the version to be durable);
//! the other shards apply the same records, in the same order, once the controller publishes
//! them. Handlers never change the table themselves.

use super::{Broker, InFlight};
use crate::controller::MetadataRecord;
use crate::io::{IoOp, IoResult, Level, ShardMessage};
use crate::topics::{Topic, TopicId};

impl Broker {
    /// Control: appends `records` to the controller as one version and applies them here.
    /// A record that does not fit is a bug of the caller, which checked the request: it is
    /// logged and nothing changes.
    pub(super) fn append_metadata(&mut self, records: Vec<MetadataRecord>) -> Result<u64, String> {
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

    /// Changes the topic table as `records` (of metadata version `version`) say.
    fn apply_metadata_records(&mut self, version: u64, records: &[MetadataRecord]) {
        for record in records {
            match record {
                MetadataRecord::Cluster { id } => self.cluster_id = id.clone(),
                MetadataRecord::ProducerIds { .. } => {}
                MetadataRecord::TopicCreated {
                    id,
                    name,
                    replicas,
                    configs,
                } => {
                    let partitions = replicas.iter().map(|_| self.new_partition(0)).collect();
                    let inherited = self.broker_configs.topic_fallbacks();
                    let topic =
                        Topic::new(name, *id, configs.clone(), inherited, partitions, version);
                    self.topics.insert(name.clone(), topic);
                }
                MetadataRecord::PartitionsAdded { id, replicas } => {
                    let added: Vec<_> = replicas.iter().map(|_| self.new_partition(0)).collect();
                    if let Some(topic) = self.topic_by_id_mut(*id) {
                        topic.partitions.extend(added);
                        topic.created_in_version = version;
                    }
                }
                MetadataRecord::TopicDeleted { id } => {
                    if let Some(name) = self.topic_name(*id) {
                        self.remove_topic(self.now_ms, &name);
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
                    let node = self.config.node_id;
                    let found = self
                        .topic_by_id_mut(*id)
                        .and_then(|t| t.partitions.get_mut(usize::try_from(*partition).ok()?));
                    match found {
                        Some(p) if *leader == node => p.replica.handle_leader_epoch(*leader_epoch),
                        // Following another node's leader comes with replication.
                        Some(_) => self.log(
                            Level::Warn,
                            format!("partition {partition} is now led by node {leader}, which this node cannot follow yet"),
                        ),
                        None => {}
                    }
                }
                // Registrations are read from the quorum's image (DescribeCluster).
                MetadataRecord::BrokerRegistered { .. } | MetadataRecord::BrokerFencing { .. } => {}
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
            // Retried on the next pump; topic changes stay unacknowledged meanwhile.
            return self.log(Level::Error, format!("cannot persist metadata: {error}"));
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

    /// The topic table of the metadata file read at start-up (version 1 on every shard).
    pub(super) fn load_image(&mut self, image: &crate::controller::MetadataImage) {
        self.cluster_id = image.cluster_id.clone();
        self.broker_configs.dynamic_node = image.broker_configs.clone();
        self.broker_configs.dynamic_default = image.cluster_configs.clone();
        let inherited = self.broker_configs.topic_fallbacks();
        for topic in image.topics.values() {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| self.new_partition(p.leader_epoch))
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
