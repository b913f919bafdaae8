//! The metadata image: what the cluster's metadata says at one version, built by applying
//! [`MetadataRecord`]s in order. Every record is checked against the image before it changes
//! anything, so an image is always one the broker can serve: valid and unique names and ids,
//! partition counts within bounds, valid configs, a producer-id limit with room to grow.

use super::MetadataRecord;
use crate::replica::NodeId;
use crate::topics::{self, TopicId, PARTITIONS_MAX};
use std::collections::BTreeMap;

/// Where one partition lives: its replicas (the first is the preferred leader), its leader and
/// leader epoch, its in-sync replicas, and the partition epoch that numbers every change of
/// leader or in-sync set (Kafka's, which AlterPartition names so a stale ask is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub replicas: Vec<NodeId>,
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub in_sync: Vec<NodeId>,
    pub partition_epoch: i32,
}

impl PartitionImage {
    /// A new partition on `replicas`, led by the first in epoch 0, every replica in sync
    /// (all are empty), as Kafka creates one.
    pub fn placed(replicas: Vec<NodeId>) -> PartitionImage {
        let leader = replicas.first().copied().unwrap_or(NO_LEADER);
        PartitionImage {
            leader,
            leader_epoch: 0,
            in_sync: replicas.clone(),
            replicas,
            partition_epoch: 0,
        }
    }

    /// The record that makes a partition what this one is (snapshots, mirrors).
    pub fn as_record(&self, id: TopicId, partition: usize) -> MetadataRecord {
        MetadataRecord::PartitionChanged {
            id,
            partition: partition as i32,
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            in_sync: self.in_sync.clone(),
            partition_epoch: self.partition_epoch,
        }
    }

    /// The record that makes this partition led by `leader` with `in_sync`: a new leader (or
    /// none) begins a later leader epoch; the partition epoch always moves on.
    pub(super) fn change(
        &self,
        id: TopicId,
        partition: usize,
        leader: NodeId,
        in_sync: Vec<NodeId>,
    ) -> MetadataRecord {
        let leader_epoch = match leader == self.leader {
            true => self.leader_epoch,
            false => self.leader_epoch + 1,
        };
        self.change_in(id, partition, leader, leader_epoch, in_sync)
    }

    /// As `change`, in leader epoch `leader_epoch`.
    fn change_in(
        &self,
        id: TopicId,
        partition: usize,
        leader: NodeId,
        leader_epoch: i32,
        in_sync: Vec<NodeId>,
    ) -> MetadataRecord {
        MetadataRecord::PartitionChanged {
            id,
            partition: partition as i32,
            leader,
            leader_epoch,
            in_sync,
            partition_epoch: self.partition_epoch + 1,
        }
    }
}

/// One topic as the metadata has it; its logs live in their own files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: TopicId,
    pub partitions: Vec<PartitionImage>,
    /// The topic's own configs (overrides of what it inherits from the broker).
    pub configs: BTreeMap<String, String>,
    /// Log start offsets moved by DeleteRecords or retention; partitions not listed start at 0.
    pub log_start_offsets: BTreeMap<i32, i64>,
}

/// A registered broker: its incarnation (a new one at each start), where clients reach it, and
/// whether it is fenced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    pub incarnation: u64,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub fenced: bool,
}

impl BrokerImage {
    /// A broker as it registers: unfenced.
    pub fn registered(
        incarnation: u64,
        host: &str,
        port: u16,
        rack: Option<String>,
    ) -> BrokerImage {
        BrokerImage {
            incarnation,
            host: host.to_string(),
            port,
            rack,
            fenced: false,
        }
    }
}

/// Everything the cluster's metadata holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadataImage {
    pub cluster_id: String,
    /// Producer ids below this may have been handed out; a restarted broker starts above it.
    pub producer_id_limit: i64,
    /// By name.
    pub topics: BTreeMap<String, TopicImage>,
    /// Dynamic broker configs of this node, and the dynamic cluster-wide defaults.
    pub broker_configs: BTreeMap<String, String>,
    pub cluster_configs: BTreeMap<String, String>,
    /// The brokers registered with the controller quorum (none on a node that is its own).
    pub brokers: BTreeMap<NodeId, BrokerImage>,
    /// A node's own image: the quorum's committed versions it holds (0: none, or no quorum).
    pub quorum_index: u64,
}

/// A partition's leader while none of its in-sync replicas can lead (Kafka's -1).
pub const NO_LEADER: NodeId = -1;

impl MetadataImage {
    pub fn topic_by_id(&self, id: TopicId) -> Option<&TopicImage> {
        self.topics.values().find(|t| t.id == id)
    }

    fn name_of(&self, id: TopicId) -> Result<String, String> {
        self.topic_by_id(id)
            .map(|t| t.name.clone())
            .ok_or_else(|| format!("no topic with id {}", id.to_hex()))
    }

    /// Applies one record, or says why it does not fit this image (and changes nothing).
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), String> {
        match record {
            MetadataRecord::Cluster { id } => {
                if id.is_empty() || id.contains(char::is_whitespace) {
                    return Err(format!("cluster id '{id}' is not a valid id"));
                }
                self.cluster_id = id.clone();
            }
            MetadataRecord::ProducerIds { limit } => {
                check_producer_id_limit(*limit)?;
                if *limit < self.producer_id_limit {
                    return Err(format!(
                        "producer id limit {limit} is below the current {}",
                        self.producer_id_limit
                    ));
                }
                self.producer_id_limit = *limit;
            }
            MetadataRecord::ProducerIdBlock {
                node, start, limit, ..
            } => {
                check_producer_id_limit(*limit)?;
                if *start != self.producer_id_limit || *limit <= *start {
                    return Err(format!(
                        "producer id block {start}..{limit} for broker {node} does not begin at the limit {}",
                        self.producer_id_limit
                    ));
                }
                self.producer_id_limit = *limit;
            }
            MetadataRecord::TopicCreated {
                id,
                name,
                replicas,
                configs,
            } => {
                topics::validate_name(name)?;
                if self.topics.contains_key(name) {
                    return Err(format!("topic '{name}' exists"));
                }
                if self.topic_by_id(*id).is_some() {
                    return Err(format!("topic id {} is in use", id.to_hex()));
                }
                check_partition_count(name, replicas.len())?;
                check_replicas(name, replicas)?;
                check_topic_configs(name, configs)?;
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        partitions: replicas
                            .iter()
                            .cloned()
                            .map(PartitionImage::placed)
                            .collect(),
                        configs: configs.clone(),
                        log_start_offsets: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::PartitionsAdded { id, replicas } => {
                let name = self.name_of(*id)?;
                let topic = self.topics.get_mut(&name).expect("found by id");
                check_partition_count(&name, topic.partitions.len() + replicas.len())?;
                check_replicas(&name, replicas)?;
                if replicas.is_empty() {
                    return Err(format!("no partitions to add to topic '{name}'"));
                }
                let added = replicas.iter().cloned().map(PartitionImage::placed);
                topic.partitions.extend(added);
            }
            MetadataRecord::TopicDeleted { id } => {
                let name = self.name_of(*id)?;
                self.topics.remove(&name);
            }
            MetadataRecord::TopicConfigs { id, configs } => {
                let name = self.name_of(*id)?;
                check_topic_configs(&name, configs)?;
                self.topics.get_mut(&name).expect("found by id").configs = configs.clone();
            }
            MetadataRecord::BrokerConfigs { per_node, configs } => {
                crate::configs::broker::check_dynamic(configs, *per_node)
                    .map_err(|e| format!("dynamic broker configs: {e}"))?;
                match per_node {
                    true => self.broker_configs = configs.clone(),
                    false => self.cluster_configs = configs.clone(),
                }
            }
            MetadataRecord::LeaderChanged {
                id,
                partition,
                leader,
                leader_epoch,
            } => {
                let name = self.name_of(*id)?;
                let topic = self.topics.get_mut(&name).expect("found by id");
                let placed = usize::try_from(*partition)
                    .ok()
                    .and_then(|p| topic.partitions.get_mut(p))
                    .ok_or_else(|| format!("topic '{name}' has no partition {partition}"))?;
                if *leader != NO_LEADER && !placed.replicas.contains(leader) {
                    return Err(format!(
                        "{name}-{partition}: leader {leader} is not one of replicas {:?}",
                        placed.replicas
                    ));
                }
                if *leader_epoch <= placed.leader_epoch || *leader_epoch > LEADER_EPOCH_MAX {
                    return Err(format!(
                        "{name}-{partition}: leader epoch {leader_epoch} does not follow {}",
                        placed.leader_epoch
                    ));
                }
                placed.leader = *leader;
                placed.leader_epoch = *leader_epoch;
                placed.partition_epoch += 1;
                if *leader != NO_LEADER {
                    placed.in_sync = vec![*leader];
                }
            }
            MetadataRecord::PartitionChanged {
                id,
                partition,
                leader,
                leader_epoch,
                in_sync,
                partition_epoch,
            } => {
                let name = self.name_of(*id)?;
                let topic = self.topics.get_mut(&name).expect("found by id");
                let placed = usize::try_from(*partition)
                    .ok()
                    .and_then(|p| topic.partitions.get_mut(p))
                    .ok_or_else(|| format!("topic '{name}' has no partition {partition}"))?;
                check_partition_change(&name, *partition, placed, record)?;
                placed.leader = *leader;
                placed.leader_epoch = *leader_epoch;
                placed.in_sync.clone_from(in_sync);
                placed.partition_epoch = *partition_epoch;
            }
            MetadataRecord::BrokerRegistered {
                node,
                incarnation,
                host,
                port,
                rack,
            } => {
                let bad_rack = rack
                    .as_ref()
                    .is_some_and(|r| r.is_empty() || r.contains(char::is_whitespace));
                if *node < 0
                    || host.is_empty()
                    || host.contains(char::is_whitespace)
                    || *port == 0
                    || bad_rack
                {
                    return Err(format!(
                        "broker {node} at '{host}:{port}' (rack {rack:?}) is not a valid registration"
                    ));
                }
                let broker = BrokerImage::registered(*incarnation, host, *port, rack.clone());
                self.brokers.insert(*node, broker);
            }
            MetadataRecord::BrokerFencing { node, fenced } => {
                let broker = self
                    .brokers
                    .get_mut(node)
                    .ok_or_else(|| format!("broker {node} is not registered"))?;
                broker.fenced = *fenced;
            }
            MetadataRecord::LogStart {
                id,
                partition,
                offset,
            } => {
                let name = self.name_of(*id)?;
                let topic = self.topics.get_mut(&name).expect("found by id");
                if !(0..topic.partitions.len() as i32).contains(partition) {
                    return Err(format!("topic '{name}' has no partition {partition}"));
                }
                if *offset < 0 {
                    return Err(format!("{name}-{partition}: log start offset {offset}"));
                }
                let start = topic.log_start_offsets.entry(*partition).or_insert(0);
                *start = (*start).max(*offset);
            }
            MetadataRecord::QuorumApplied { index } => {
                if *index < self.quorum_index {
                    return Err(format!(
                        "quorum version {index} is below the {} already applied",
                        self.quorum_index
                    ));
                }
                self.quorum_index = *index;
            }
        }
        Ok(())
    }

    /// The records that make this image's cluster-wide part (cluster id, producer ids,
    /// topics, their partitions, leaders and configs, cluster-wide broker configs, registered
    /// brokers) what `target`'s is; what a node keeps for itself (its own broker configs, log
    /// start offsets, the quorum version it holds) is left alone. How a node mirrors the
    /// quorum's committed image into its own.
    pub fn changes_to(&self, target: &MetadataImage) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if !target.cluster_id.is_empty() && target.cluster_id != self.cluster_id {
            records.push(MetadataRecord::Cluster {
                id: target.cluster_id.clone(),
            });
        }
        if target.producer_id_limit > self.producer_id_limit {
            records.push(MetadataRecord::ProducerIds {
                limit: target.producer_id_limit,
            });
        }
        // Deletions first, so that a name taken again by a new topic is free.
        for topic in self.topics.values() {
            if target
                .topic_by_id(topic.id)
                .is_none_or(|t| t.name != topic.name)
            {
                records.push(MetadataRecord::TopicDeleted { id: topic.id });
            }
        }
        for topic in target.topics.values() {
            let id = topic.id;
            let replicas = |from: usize| {
                topic.partitions[from..]
                    .iter()
                    .map(|p| p.replicas.clone())
                    .collect()
            };
            let mine = self.topic_by_id(id).filter(|t| t.name == topic.name);
            let before = match mine {
                None => {
                    records.push(MetadataRecord::TopicCreated {
                        id,
                        name: topic.name.clone(),
                        replicas: replicas(0),
                        configs: topic.configs.clone(),
                    });
                    Vec::new()
                }
                Some(mine) => {
                    if topic.partitions.len() > mine.partitions.len() {
                        records.push(MetadataRecord::PartitionsAdded {
                            id,
                            replicas: replicas(mine.partitions.len()),
                        });
                    }
                    if topic.configs != mine.configs {
                        records.push(MetadataRecord::TopicConfigs {
                            id,
                            configs: topic.configs.clone(),
                        });
                    }
                    mine.partitions.clone()
                }
            };
            for (partition, placed) in topic.partitions.iter().enumerate() {
                let fresh = PartitionImage::placed(placed.replicas.clone());
                if before.get(partition).unwrap_or(&fresh) != placed {
                    records.push(placed.as_record(id, partition));
                }
            }
        }
        if target.cluster_configs != self.cluster_configs {
            records.push(MetadataRecord::BrokerConfigs {
                per_node: false,
                configs: target.cluster_configs.clone(),
            });
        }
        for (&node, broker) in &target.brokers {
            let mine = self.brokers.get(&node);
            let fenced_now = match mine {
                Some(m)
                    if (m.incarnation, &m.host, m.port, &m.rack)
                        == (broker.incarnation, &broker.host, broker.port, &broker.rack) =>
                {
                    m.fenced
                }
                _ => {
                    records.push(MetadataRecord::BrokerRegistered {
                        node,
                        incarnation: broker.incarnation,
                        host: broker.host.clone(),
                        port: broker.port,
                        rack: broker.rack.clone(),
                    });
                    false
                }
            };
            if broker.fenced != fenced_now {
                records.push(MetadataRecord::BrokerFencing {
                    node,
                    fenced: broker.fenced,
                });
            }
        }
        records
    }

    /// The records that build this image from an empty one: the snapshot the metadata file
    /// holds, in the order [`super::snapshot::encode`] writes them.
    pub fn snapshot(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if !self.cluster_id.is_empty() {
            records.push(MetadataRecord::Cluster {
                id: self.cluster_id.clone(),
            });
        }
        records.push(MetadataRecord::ProducerIds {
            limit: self.producer_id_limit,
        });
        for topic in self.topics.values() {
            records.push(MetadataRecord::TopicCreated {
                id: topic.id,
                name: topic.name.clone(),
                replicas: topic
                    .partitions
                    .iter()
                    .map(|p| p.replicas.clone())
                    .collect(),
                configs: topic.configs.clone(),
            });
            for (partition, placed) in topic.partitions.iter().enumerate() {
                // A partition as placed (the first replica leads, all in sync) needs none.
                if *placed != PartitionImage::placed(placed.replicas.clone()) {
                    records.push(placed.as_record(topic.id, partition));
                }
            }
            for (&partition, &offset) in &topic.log_start_offsets {
                records.push(MetadataRecord::LogStart {
                    id: topic.id,
                    partition,
                    offset,
                });
            }
        }
        for (&node, broker) in &self.brokers {
            records.push(MetadataRecord::BrokerRegistered {
                node,
                incarnation: broker.incarnation,
                host: broker.host.clone(),
                port: broker.port,
                rack: broker.rack.clone(),
            });
            if broker.fenced {
                records.push(MetadataRecord::BrokerFencing { node, fenced: true });
            }
        }
        for (per_node, configs) in [(true, &self.broker_configs), (false, &self.cluster_configs)] {
            if !configs.is_empty() {
                records.push(MetadataRecord::BrokerConfigs {
                    per_node,
                    configs: configs.clone(),
                });
            }
        }
        if self.quorum_index > 0 {
            records.push(MetadataRecord::QuorumApplied {
                index: self.quorum_index,
            });
        }
        records
    }

    /// The controller's elections when broker `node` is fenced or shuts down (KRaft's): it
    /// leaves every in-sync set it is in, and where it led, the first replica (in preference
    /// order) of the rest of the set that is unfenced leads in the next epoch. Where it was
    /// the last in-sync replica the partition has no leader and the set stays `[node]`: only
    /// that replica holds every committed record, so only it may lead again (Kafka's
    /// "last known leader", KIP-966), unless an unclean election is allowed.
    pub fn leaderships_lost(&self, node: NodeId) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for topic in self.topics.values() {
            for (partition, placed) in topic.partitions.iter().enumerate() {
                if !placed.in_sync.contains(&node) && placed.leader != node {
                    continue;
                }
                let rest: Vec<NodeId> = placed
                    .in_sync
                    .iter()
                    .copied()
                    .filter(|&m| m != node)
                    .collect();
                if rest.is_empty() && placed.leader != node {
                    continue; // leaderless already, waiting for it
                }
                let leader = match placed.leader == node {
                    true => self.first_live(&placed.replicas, &rest),
                    false => placed.leader,
                };
                let in_sync = match rest.is_empty() {
                    true => vec![node],
                    false => rest,
                };
                if placed.leader_epoch >= LEADER_EPOCH_MAX && leader != placed.leader {
                    continue; // an epoch at its limit stays (far beyond any cluster's life)
                }
                records.push(placed.change(topic.id, partition, leader, in_sync));
            }
        }
        records
    }

    /// The planted `ElectOutsideInSync`: where `node` led, a live replica outside the
    /// in-sync set leads if there is one (and joins the set it was not in).
    pub fn leaderships_lost_unclean(&self, node: NodeId) -> Vec<MetadataRecord> {
        let mut records = self.leaderships_lost(node);
        for record in &mut records {
            if let MetadataRecord::PartitionChanged {
                id,
                partition,
                leader,
                in_sync,
                ..
            } = record
            {
                let Some(placed) = self
                    .topic_by_id(*id)
                    .and_then(|t| t.partitions.get(*partition as usize))
                else {
                    continue;
                };
                if placed.leader != node {
                    continue;
                }
                // The worst choice: a live replica outside the set if there is one.
                let outside: Vec<NodeId> = placed
                    .replicas
                    .iter()
                    .copied()
                    .filter(|&r| r != node && !placed.in_sync.contains(&r))
                    .collect();
                let others: Vec<NodeId> = placed
                    .replicas
                    .iter()
                    .copied()
                    .filter(|&r| r != node)
                    .collect();
                let any = match self.first_live(&placed.replicas, &outside) {
                    NO_LEADER => self.first_live(&placed.replicas, &others),
                    found => found,
                };
                if any != NO_LEADER && any != *leader {
                    *leader = any;
                    if !in_sync.contains(&any) {
                        in_sync.retain(|&m| m != node);
                        in_sync.push(any);
                    }
                }
            }
        }
        records
    }

    /// The first of `replicas` that is in `candidates` and a registered, unfenced broker;
    /// none (-1) if no such replica.
    fn first_live(&self, replicas: &[NodeId], candidates: &[NodeId]) -> NodeId {
        let live = |n: &NodeId| self.brokers.get(n).is_some_and(|b| !b.fenced);
        replicas
            .iter()
            .copied()
            .find(|n| candidates.contains(n) && live(n))
            .unwrap_or(NO_LEADER)
    }

    /// The controller's elections when broker `node` returns (unfenced, or registered in a
    /// new life): it leads again, in the next epoch, every partition left without a leader
    /// whose in-sync set holds it, and every one it led in its earlier life.
    pub fn leaderships_regained(&self, node: NodeId) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for topic in self.topics.values() {
            for (partition, placed) in topic.partitions.iter().enumerate() {
                let returns = placed.leader == node
                    || (placed.leader == NO_LEADER && placed.in_sync.contains(&node));
                if returns && placed.leader_epoch < LEADER_EPOCH_MAX {
                    let epoch = placed.leader_epoch + 1;
                    let in_sync = placed.in_sync.clone();
                    records.push(placed.change_in(topic.id, partition, node, epoch, in_sync));
                }
            }
        }
        records
    }

    /// The records that begin a new leadership of every partition `node` leads, each in the
    /// epoch after its last: what a node that starts up appends before it serves, so that
    /// batches it writes from now on are told apart from those of its earlier life.
    pub fn new_leaderships(&self, node: NodeId) -> Result<Vec<MetadataRecord>, String> {
        let mut records = Vec::new();
        for topic in self.topics.values() {
            for (partition, placed) in topic.partitions.iter().enumerate() {
                if placed.leader != node {
                    continue;
                }
                let leader_epoch = placed.leader_epoch + 1;
                if leader_epoch > LEADER_EPOCH_MAX {
                    return Err(format!(
                        "{}-{partition}: leader epoch {} cannot rise further",
                        topic.name, placed.leader_epoch
                    ));
                }
                let in_sync = placed.in_sync.clone();
                records.push(placed.change_in(topic.id, partition, node, leader_epoch, in_sync));
            }
        }
        Ok(records)
    }

    /// Active controller: partition `partition` of topic `id`'s leader asks for the in-sync
    /// set `in_sync` (Kafka's AlterPartition), naming the leader epoch and partition epoch it
    /// holds. The change, or why it is refused: a stale ask (another leader or a later
    /// change since), or a set that is not the leader and unfenced replicas.
    pub fn alter_in_sync(
        &self,
        id: TopicId,
        partition: i32,
        leader: NodeId,
        leader_epoch: i32,
        partition_epoch: i32,
        in_sync: &[NodeId],
    ) -> Result<MetadataRecord, String> {
        let topic = self
            .topic_by_id(id)
            .ok_or_else(|| format!("no topic with id {}", id.to_hex()))?;
        let index = usize::try_from(partition).unwrap_or(usize::MAX);
        let placed = topic
            .partitions
            .get(index)
            .ok_or_else(|| format!("topic '{}' has no partition {partition}", topic.name))?;
        if (placed.leader, placed.leader_epoch, placed.partition_epoch)
            != (leader, leader_epoch, partition_epoch)
        {
            return Err(format!(
                "{}-{partition}: stale ask from {leader} in epochs {leader_epoch}/{partition_epoch}",
                topic.name
            ));
        }
        let live = |n: &NodeId| self.brokers.get(n).is_some_and(|b| !b.fenced);
        let added_fenced = in_sync
            .iter()
            .any(|n| !placed.in_sync.contains(n) && !live(n));
        if added_fenced || in_sync == placed.in_sync {
            return Err(format!(
                "{}-{partition}: in-sync set {in_sync:?} not taken",
                topic.name
            ));
        }
        let record = placed.change(id, index, leader, in_sync.to_vec());
        let mut check = placed.clone();
        check_partition_change(&topic.name, partition, &mut check, &record)?;
        Ok(record)
    }
}

/// Whether `record` (a `PartitionChanged`) may follow `placed`: the partition epoch moves on,
/// the leader epoch never goes back and moves on with a new leader, the in-sync set is
/// replicas without repeats and holds the leader (a leaderless partition keeps whom it waits
/// for).
fn check_partition_change(
    name: &str,
    partition: i32,
    placed: &mut PartitionImage,
    record: &MetadataRecord,
) -> Result<(), String> {
    let MetadataRecord::PartitionChanged {
        leader,
        leader_epoch,
        in_sync,
        partition_epoch,
        ..
    } = record
    else {
        return Err("not a partition change".into());
    };
    let at = format!("{name}-{partition}");
    if *leader != NO_LEADER && !placed.replicas.contains(leader) {
        return Err(format!(
            "{at}: leader {leader} is not one of replicas {:?}",
            placed.replicas
        ));
    }
    let epoch_ok = match *leader == placed.leader {
        true => *leader_epoch >= placed.leader_epoch,
        false => *leader_epoch > placed.leader_epoch,
    };
    if !epoch_ok || *leader_epoch > LEADER_EPOCH_MAX {
        return Err(format!(
            "{at}: leader epoch {leader_epoch} does not follow {}",
            placed.leader_epoch
        ));
    }
    if *partition_epoch <= placed.partition_epoch {
        return Err(format!(
            "{at}: partition epoch {partition_epoch} does not follow {}",
            placed.partition_epoch
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    let bad_set = in_sync.is_empty()
        || in_sync
            .iter()
            .any(|n| !placed.replicas.contains(n) || !seen.insert(*n))
        || (*leader != NO_LEADER && !in_sync.contains(leader));
    if bad_set {
        return Err(format!(
            "{at}: in-sync set {in_sync:?} of leader {leader} is not within replicas {:?}",
            placed.replicas
        ));
    }
    Ok(())
}

/// Leader epochs stay well inside i32 (the batch header's field), so one can always follow.
pub const LEADER_EPOCH_MAX: i32 = i32::MAX / 2;

pub(super) fn check_producer_id_limit(limit: i64) -> Result<(), String> {
    if !(0..=i64::MAX / 2).contains(&limit) {
        return Err(format!("producer id limit {limit} is out of range"));
    }
    Ok(())
}

fn check_partition_count(name: &str, count: usize) -> Result<(), String> {
    if !(1..=PARTITIONS_MAX as usize).contains(&count) {
        return Err(format!("topic '{name}' would have {count} partitions"));
    }
    Ok(())
}

fn check_replicas(name: &str, replicas: &[Vec<NodeId>]) -> Result<(), String> {
    for (partition, nodes) in replicas.iter().enumerate() {
        let mut seen = std::collections::BTreeSet::new();
        if nodes.is_empty() || nodes.iter().any(|&n| n < 0 || !seen.insert(n)) {
            return Err(format!(
                "topic '{name}' partition {partition}: bad replicas {nodes:?}"
            ));
        }
    }
    Ok(())
}

fn check_topic_configs(name: &str, configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in configs {
        crate::configs::topic::validate(key, value).map_err(|e| format!("topic '{name}': {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(name: &str, id: u8, partitions: usize) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            id: TopicId([id; 16]),
            name: name.into(),
            replicas: vec![vec![1]; partitions],
            configs: BTreeMap::new(),
        }
    }

    fn leader(id: TopicId, partition: i32, leader: NodeId, leader_epoch: i32) -> MetadataRecord {
        MetadataRecord::LeaderChanged {
            id,
            partition,
            leader,
            leader_epoch,
        }
    }

    /// Each row: records applied in order to an empty image, and which of them must be
    /// refused (by index), with a word of the message.
    #[test]
    fn records_apply_in_order_and_misfits_are_refused_without_change() {
        let id = TopicId([1; 16]);
        // (what, records, refused: (index, a word of the message))
        type Case<'a> = (&'a str, Vec<MetadataRecord>, Vec<(usize, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                "create twice",
                vec![created("t", 1, 2), created("t", 2, 1)],
                vec![(1, "exists")],
            ),
            (
                "same id",
                vec![created("t", 1, 2), created("u", 1, 1)],
                vec![(1, "in use")],
            ),
            ("bad name", vec![created("a/b", 1, 1)], vec![(0, "'/'")]),
            (
                "no partitions",
                vec![created("t", 1, 0)],
                vec![(0, "0 partitions")],
            ),
            (
                "too many",
                vec![
                    created("t", 1, 1),
                    MetadataRecord::PartitionsAdded {
                        id,
                        replicas: vec![vec![1]; PARTITIONS_MAX as usize],
                    },
                ],
                vec![(1, "10001 partitions")],
            ),
            (
                "delete unknown",
                vec![MetadataRecord::TopicDeleted { id }],
                vec![(0, "no topic with id")],
            ),
            (
                "log start of a partition that is not there",
                vec![
                    created("t", 1, 2),
                    MetadataRecord::LogStart {
                        id,
                        partition: 2,
                        offset: 5,
                    },
                ],
                vec![(1, "no partition 2")],
            ),
            (
                "leader epochs only rise, and a leader is a replica",
                vec![
                    created("t", 1, 1),
                    leader(id, 0, 1, 1),
                    leader(id, 0, 1, 1),
                    leader(id, 0, 2, 2),
                    leader(id, 1, 1, 2),
                    leader(id, 0, 1, LEADER_EPOCH_MAX + 1),
                ],
                vec![
                    (2, "does not follow 1"),
                    (3, "not one of replicas"),
                    (4, "no partition 1"),
                    (5, "does not follow"),
                ],
            ),
            (
                "producer ids go up only",
                vec![
                    MetadataRecord::ProducerIds { limit: 2000 },
                    MetadataRecord::ProducerIds { limit: 1000 },
                ],
                vec![(1, "below")],
            ),
            (
                "bad config",
                vec![
                    created("t", 1, 1),
                    MetadataRecord::TopicConfigs {
                        id,
                        configs: BTreeMap::from([("retention.ms".into(), "x".into())]),
                    },
                ],
                vec![(1, "retention.ms")],
            ),
            (
                "replica twice",
                vec![MetadataRecord::TopicCreated {
                    id,
                    name: "t".into(),
                    replicas: vec![vec![1, 1]],
                    configs: BTreeMap::new(),
                }],
                vec![(0, "bad replicas")],
            ),
        ];
        for (what, records, refused) in cases {
            let mut image = MetadataImage::default();
            for (i, record) in records.iter().enumerate() {
                let before = image.clone();
                let result = image.apply(record);
                match refused.iter().find(|(at, _)| *at == i) {
                    Some((_, word)) => {
                        let error = result.expect_err(what);
                        assert!(error.contains(word), "{what}: {error}");
                        assert_eq!(image, before, "{what}: a refused record changed the image");
                    }
                    None => result.unwrap_or_else(|e| panic!("{what}: record {i}: {e}")),
                }
            }
        }
    }

    #[test]
    fn a_snapshot_rebuilds_the_image() {
        let id = TopicId([1; 16]);
        let mut image = MetadataImage::default();
        let records = [
            MetadataRecord::Cluster { id: "c1".into() },
            created("t", 1, 2),
            created("u", 2, 1),
            MetadataRecord::PartitionsAdded {
                id,
                replicas: vec![vec![1]],
            },
            MetadataRecord::LogStart {
                id,
                partition: 2,
                offset: 7,
            },
            MetadataRecord::LogStart {
                id,
                partition: 2,
                offset: 3,
            },
            leader(id, 1, 1, 3),
            MetadataRecord::TopicConfigs {
                id,
                configs: BTreeMap::from([("retention.ms".into(), "5".into())]),
            },
            MetadataRecord::TopicDeleted {
                id: TopicId([2; 16]),
            },
            MetadataRecord::ProducerIds { limit: 1000 },
            MetadataRecord::BrokerConfigs {
                per_node: false,
                configs: BTreeMap::from([("log.retention.ms".into(), "9".into())]),
            },
        ];
        for record in &records {
            image.apply(record).unwrap();
        }
        let t = &image.topics["t"];
        assert_eq!(t.partitions.len(), 3);
        assert_eq!(t.log_start_offsets[&2], 7, "a log start never goes back");
        assert_eq!(t.partitions[1].leader_epoch, 3);
        let next = image.new_leaderships(1).unwrap();
        assert_eq!(
            next,
            vec![
                changed(id, 0, (1, 1), &[1], 1),
                changed(id, 1, (1, 4), &[1], 2),
                changed(id, 2, (1, 1), &[1], 1),
            ],
            "each partition node 1 leads, one epoch on"
        );
        assert_eq!(
            image.new_leaderships(2).unwrap(),
            vec![],
            "node 2 leads none"
        );
        assert!(!image.topics.contains_key("u"));
        let mut rebuilt = MetadataImage::default();
        for record in image.snapshot() {
            rebuilt.apply(&record).unwrap();
        }
        assert_eq!(rebuilt, image);
    }

    fn applied(mut image: MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        for record in records {
            image.apply(record).unwrap();
        }
        image
    }

    fn registered(node: NodeId, incarnation: u64) -> MetadataRecord {
        MetadataRecord::BrokerRegistered {
            node,
            incarnation,
            host: "h".into(),
            port: 9092,
            rack: None,
        }
    }

    /// A node mirrors the quorum's image: from what it holds, the records `changes_to` gives
    /// bring its cluster-wide part to the target's (topics created, grown, deleted and taken
    /// again under a new id, leaders, configs, brokers), and leave its own part alone.
    #[test]
    fn changes_to_brings_a_nodes_image_to_the_quorums() {
        let id = |b: u8| TopicId([b; 16]);
        let mine = applied(
            MetadataImage::default(),
            &[
                MetadataRecord::Cluster { id: "c".into() },
                created("kept", 1, 1),
                created("gone", 2, 1),
                created("renamed", 3, 1),
                registered(1, 7),
                registered(2, 7),
                MetadataRecord::LogStart {
                    id: id(1),
                    partition: 0,
                    offset: 9,
                },
                MetadataRecord::BrokerConfigs {
                    per_node: true,
                    configs: BTreeMap::from([("num.io.threads".into(), "4".into())]),
                },
                MetadataRecord::QuorumApplied { index: 3 },
            ],
        );
        let target = applied(
            mine.clone(),
            &[
                MetadataRecord::ProducerIds { limit: 5000 },
                MetadataRecord::PartitionsAdded {
                    id: id(1),
                    replicas: vec![vec![2, 1]],
                },
                leader(id(1), 1, NO_LEADER, 4),
                MetadataRecord::TopicConfigs {
                    id: id(1),
                    configs: BTreeMap::from([("retention.ms".into(), "5".into())]),
                },
                MetadataRecord::TopicDeleted { id: id(2) },
                MetadataRecord::TopicDeleted { id: id(3) },
                created("renamed", 4, 2),
                leader(id(4), 1, 1, 2),
                MetadataRecord::BrokerConfigs {
                    per_node: false,
                    configs: BTreeMap::from([("log.retention.ms".into(), "1".into())]),
                },
                registered(2, 8),
                MetadataRecord::BrokerFencing {
                    node: 1,
                    fenced: true,
                },
                registered(3, 1),
            ],
        );
        let records = mine.changes_to(&target);
        let mirrored = applied(mine.clone(), &records);
        assert_eq!(mirrored, target, "{records:?}");
        assert!(mine.changes_to(&mine).is_empty(), "nothing to change");
        // What the node keeps for itself is never taken from the quorum's image.
        let bare = MetadataImage {
            cluster_id: "c".into(),
            ..MetadataImage::default()
        };
        let kept = applied(mine.clone(), &mine.changes_to(&bare));
        assert_eq!(kept.broker_configs, mine.broker_configs);
        assert_eq!(kept.quorum_index, 3);
        assert!(kept.topics.is_empty());
    }

    fn changed(
        id: TopicId,
        partition: i32,
        (leader, leader_epoch): (NodeId, i32),
        in_sync: &[NodeId],
        partition_epoch: i32,
    ) -> MetadataRecord {
        MetadataRecord::PartitionChanged {
            id,
            partition,
            leader,
            leader_epoch,
            in_sync: in_sync.to_vec(),
            partition_epoch,
        }
    }

    /// The controller's elections on fencing and return (KRaft's, with KIP-966's last
    /// leader): a fenced broker leaves every in-sync set; where it led, the next in-sync
    /// replica leads in the next epoch; where it was the last in sync, the partition waits for
    /// it (no other replica has every committed record), and it alone leads again.
    #[test]
    fn fenced_brokers_leave_the_in_sync_sets_and_only_the_last_in_sync_leads_again() {
        let t = TopicId([1; 16]);
        let fenced = |node| MetadataRecord::BrokerFencing { node, fenced: true };
        let image = applied(
            MetadataImage::default(),
            &[
                MetadataRecord::TopicCreated {
                    id: t,
                    name: "t".into(),
                    replicas: vec![vec![1, 2], vec![2, 1]],
                    configs: BTreeMap::new(),
                },
                registered(1, 1),
                registered(2, 1),
            ],
        );
        assert_eq!(
            image.topics["t"].partitions[0].in_sync,
            vec![1, 2],
            "all in sync at first"
        );
        let lost = image.leaderships_lost(1);
        assert_eq!(
            lost,
            vec![
                changed(t, 0, (2, 1), &[2], 1),
                changed(t, 1, (2, 0), &[2], 1),
            ],
            "node 2 takes over partition 0; both sets lose node 1"
        );
        let image = applied(image, &[vec![fenced(1)], lost].concat());
        assert!(image.leaderships_lost(1).is_empty(), "in no set now");
        let lost = image.leaderships_lost(2);
        assert_eq!(
            lost,
            vec![
                changed(t, 0, (NO_LEADER, 2), &[2], 2),
                changed(t, 1, (NO_LEADER, 1), &[2], 2),
            ],
            "the last in sync: no leader, and the set keeps it"
        );
        let image = applied(image, &[vec![fenced(2)], lost].concat());
        assert!(
            image.leaderships_regained(1).is_empty(),
            "node 1 missed records committed without it"
        );
        let back = image.leaderships_regained(2);
        assert_eq!(
            back,
            vec![
                changed(t, 0, (2, 3), &[2], 3),
                changed(t, 1, (2, 2), &[2], 3),
            ]
        );
        let image = applied(image, &back);
        assert_eq!(image.topics["t"].partitions[0].leader, 2);
    }

    /// AlterPartition's checks: only the current leader in its current epochs changes the
    /// set, never to one without it or with a replica that is not a live broker.
    #[test]
    fn in_sync_changes_are_taken_only_from_the_current_leader_in_its_epochs() {
        let t = TopicId([1; 16]);
        let image = applied(
            MetadataImage::default(),
            &[
                MetadataRecord::TopicCreated {
                    id: t,
                    name: "t".into(),
                    replicas: vec![vec![1, 2, 3]],
                    configs: BTreeMap::new(),
                },
                registered(1, 1),
                registered(2, 1),
                registered(3, 1),
                MetadataRecord::BrokerFencing {
                    node: 3,
                    fenced: true,
                },
            ],
        );
        let shrink = image.alter_in_sync(t, 0, 1, 0, 0, &[1, 2]).unwrap();
        assert_eq!(shrink, changed(t, 0, (1, 0), &[1, 2], 1));
        let image = applied(image, &[shrink]);
        for (ask, word) in [
            ((2, 0, 1, vec![2]), "stale"),
            ((1, 0, 0, vec![1]), "stale"),
            ((1, 1, 1, vec![1]), "stale"),
            ((1, 0, 1, vec![1, 3]), "not taken"),
            ((1, 0, 1, vec![1, 2]), "not taken"),
            ((1, 0, 1, vec![2]), "within replicas"),
            ((1, 0, 1, vec![1, 4]), "not taken"),
        ] {
            let (leader, leader_epoch, partition_epoch, set) = ask;
            let error = image
                .alter_in_sync(t, 0, leader, leader_epoch, partition_epoch, &set)
                .unwrap_err();
            assert!(
                error.contains(word),
                "{ask:?}: {error}",
                ask = (leader, leader_epoch, partition_epoch, &set)
            );
        }
        let grow = image.alter_in_sync(t, 0, 1, 0, 1, &[1]).unwrap();
        assert_eq!(grow, changed(t, 0, (1, 0), &[1], 2));
    }
}
