//! Metadata (key 3): the broker, and the topics asked for, auto-creating unknown ones when
//! allowed (`auto.create.topics.enable` and the request's own flag).

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::controller::image::NO_LEADER;
use crate::controller::PartitionImage;
use crate::errors;
use crate::topics::{self, Topic};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use uuid::Uuid;

/// A partition's leader and replicas, as the controller placed them.
pub(super) struct PartitionView {
    pub error_code: i16,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub replicas: Vec<BrokerId>,
    pub in_sync: Vec<BrokerId>,
    pub offline: Vec<BrokerId>,
}

/// Versions served, and the adapter.
pub(super) const API: Api = api!(Metadata, 0..=12, Broker::on_metadata);

impl Broker {
    pub(super) fn on_metadata(&mut self, ctx: &RequestContext, request: MetadataRequest) {
        // Before v4 there is no flag and Kafka auto-creates.
        let allow_create = self.config.auto_create_topics
            && (ctx.version < 4 || request.allow_auto_topic_creation);
        let topics = match request.topics {
            // v0 sends an empty list for "all topics"; later versions send null.
            None => self
                .topics
                .values()
                .map(|t| self.describe_topic(ctx.version, t))
                .collect(),
            Some(list) if list.is_empty() && ctx.version == 0 => self
                .topics
                .values()
                .map(|t| self.describe_topic(ctx.version, t))
                .collect(),
            Some(list) => list
                .into_iter()
                .map(|wanted| {
                    self.metadata_for(
                        ctx,
                        wanted.name.map(|n| n.0.to_string()),
                        wanted.topic_id,
                        allow_create,
                    )
                })
                .collect(),
        };
        let brokers = self
            .listed_brokers()
            .into_iter()
            .map(|(id, broker)| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(broker.host))
                    .with_port(i32::from(broker.port))
                    .with_rack(broker.rack.map(StrBytes::from_string))
            })
            .collect();
        let mut response = MetadataResponse::default()
            .with_brokers(brokers)
            .with_topics(topics);
        if ctx.version >= 1 {
            response.controller_id = BrokerId(self.controller_id());
        }
        if ctx.version >= 2 {
            response.cluster_id = Some(StrBytes::from_string(self.cluster_id.clone()));
        }
        if self.config.shards > 1 {
            // A topic created here is served by other shards too: the client hears of it
            // once they all have it (at once when nothing was created).
            return self.respond_after_metadata(ctx, &response);
        }
        self.respond(ctx, &response);
    }

    fn metadata_for(
        &mut self,
        ctx: &RequestContext,
        name: Option<String>,
        id: Uuid,
        allow_create: bool,
    ) -> MetadataResponseTopic {
        let name = match name {
            Some(name) => name,
            None => {
                // v10+: lookup by topic id.
                let found = self
                    .topics
                    .values()
                    .find(|t| Uuid::from_bytes(t.id.0) == id);
                return match found {
                    Some(topic) => self.describe_topic(ctx.version, topic),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(id)
                        .with_error_code(errors::UNKNOWN_TOPIC_ID),
                };
            }
        };
        if !self.topics.contains_key(&name) {
            let unknown = |code| {
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                    .with_error_code(code)
            };
            if topics::validate_name(&name).is_err() {
                return unknown(errors::INVALID_TOPIC_EXCEPTION);
            }
            if !allow_create {
                return unknown(errors::UNKNOWN_TOPIC_OR_PARTITION);
            }
            let replicas = self.default_placement(self.config.num_partitions);
            match self.create_topic(&name, replicas, BTreeMap::new()) {
                Ok(_) => self.pump_io(),
                // Kafka's answer while a topic is being created; the client asks again. A
                // node that is not the active controller cannot create it.
                Err(_) if self.in_quorum() => return unknown(errors::UNKNOWN_TOPIC_OR_PARTITION),
                Err(_) => return unknown(errors::UNKNOWN_SERVER_ERROR),
            }
            if !self.topics.contains_key(&name) {
                return unknown(errors::LEADER_NOT_AVAILABLE);
            }
        }
        self.describe_topic(ctx.version, &self.topics[&name])
    }

    /// The brokers clients may use, as (id, host, port): on a quorum, the registered brokers
    /// that are not fenced (this node alone until it knows of any); else this node.
    pub(super) fn listed_brokers(&self) -> Vec<(i32, crate::controller::BrokerImage)> {
        self.live_brokers(&self.brokers)
    }

    /// The controller clients send topic changes to: the quorum's active controller (-1 while
    /// there is none), or this node.
    pub(super) fn controller_id(&self) -> i32 {
        match &self.quorum {
            Some(seat) => seat.controller().raft().leader().unwrap_or(-1),
            None => self.config.node_id,
        }
    }

    /// Where a partition's replicas are, as Metadata and DescribeTopicPartitions report it.
    /// The controller's assignment, with this node's replica offline where its storage failed.
    pub(super) fn partition_view(&self, topic: &Topic, index: i32) -> PartitionView {
        let node = self.config.node_id;
        let placed = self
            .controller
            .as_ref()
            .and_then(|c| c.image().topics.get(&topic.name))
            .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
            .cloned()
            .unwrap_or_else(|| {
                // A shard without the controller: this node leads alone, in the epoch its copy
                // of the partition runs in.
                let epoch = topic
                    .partitions
                    .get(index as usize)
                    .map(|p| p.replica.leader_epoch());
                PartitionImage {
                    leader_epoch: epoch.unwrap_or(0),
                    ..PartitionImage::placed(vec![node])
                }
            });
        let offline = self.offline.contains(&(topic.id, index));
        let ids = |nodes: &[i32]| nodes.iter().copied().map(BrokerId).collect::<Vec<_>>();
        // Replicas on fenced brokers are offline, and this node's where its storage failed.
        let fenced = |n: &i32| self.brokers.get(n).is_some_and(|b| b.fenced);
        let mut offline_replicas: Vec<i32> =
            placed.replicas.iter().copied().filter(fenced).collect();
        if offline && !offline_replicas.contains(&node) {
            offline_replicas.push(node);
        }
        PartitionView {
            error_code: match (offline, placed.leader) {
                (true, _) => errors::KAFKA_STORAGE_ERROR,
                (false, NO_LEADER) => errors::LEADER_NOT_AVAILABLE,
                (false, _) => errors::NONE,
            },
            leader: BrokerId(placed.leader),
            leader_epoch: placed.leader_epoch,
            replicas: ids(&placed.replicas),
            in_sync: ids(&placed.in_sync),
            offline: ids(&offline_replicas),
        }
    }

    fn describe_topic(&self, version: i16, topic: &Topic) -> MetadataResponseTopic {
        let partitions = (0..topic.partitions.len() as i32)
            .map(|index| {
                let view = self.partition_view(topic, index);
                let mut partition = MetadataResponsePartition::default()
                    .with_error_code(view.error_code)
                    .with_partition_index(index)
                    .with_leader_id(view.leader)
                    .with_replica_nodes(view.replicas)
                    .with_isr_nodes(view.in_sync)
                    .with_offline_replicas(view.offline);
                if version >= 7 {
                    partition.leader_epoch = view.leader_epoch;
                }
                partition
            })
            .collect();
        let mut response = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
            .with_is_internal(topic.is_internal())
            .with_partitions(partitions);
        if version >= 10 {
            response.topic_id = Uuid::from_bytes(topic.id.0);
        }
        response
    }
}
