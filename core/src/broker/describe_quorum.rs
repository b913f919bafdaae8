//! DescribeQuorum (key 55): the controller quorum's state, as `kafka-metadata-quorum.sh
//! describe` reads it: the leader, its epoch (the Raft term), the high watermark (the committed
//! index), and how far each voter's log matches the leader's, and each observer's (a broker-only
//! node the leader replicates to).
//!
//! As in Kafka, only the leader describes the quorum: another voter answers
//! NOT_LEADER_OR_FOLLOWER (Spate adds the leader it knows, if any, so a tool can go there),
//! and a partition other than `__cluster_metadata-0` is UNKNOWN_TOPIC_OR_PARTITION. A node run
//! without `controller.quorum.voters` is its own quorum of one: it leads in epoch 0, with its
//! metadata versions as the log. Version 2's nodes are the voters' controller listeners.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;

/// Kafka's name for the metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Versions served, and the adapter.
pub(super) const API: Api = api!(DescribeQuorum, 0..=2, Broker::on_describe_quorum);

impl Broker {
    pub(super) fn on_describe_quorum(
        &mut self,
        ctx: &RequestContext,
        request: DescribeQuorumRequest,
    ) {
        let topics = request
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let state = self.quorum_state(ctx.version);
                        match (topic.topic_name.0.as_str(), p.partition_index) {
                            (METADATA_TOPIC, 0) => state,
                            _ => PartitionData::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION),
                        }
                    })
                    .collect();
                TopicData::default()
                    .with_topic_name(topic.topic_name)
                    .with_partitions(partitions)
            })
            .collect();
        let mut response = DescribeQuorumResponse::default().with_topics(topics);
        if ctx.version >= 2 {
            response.nodes = self.quorum_nodes();
        }
        self.respond(ctx, &response);
    }

    /// `__cluster_metadata-0` as this node sees it.
    fn quorum_state(&self, version: i16) -> PartitionData {
        let voter = |id: i32, log_end: i64, heard: Option<i64>| {
            let mut state = ReplicaState::default()
                .with_replica_id(BrokerId(id))
                .with_log_end_offset(log_end);
            if version >= 1 {
                state.last_fetch_timestamp = heard.unwrap_or(-1);
                state.last_caught_up_timestamp = heard.unwrap_or(-1);
            }
            state
        };
        let Some(seat) = self.quorum.as_ref() else {
            let node = self.config.node_id;
            let end = self.metadata_persisted as i64;
            return PartitionData::default()
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(0)
                .with_high_watermark(end)
                .with_current_voters(vec![voter(node, end, Some(self.now_ms))]);
        };
        let raft = seat.controller().raft();
        let term = i32::try_from(raft.term()).unwrap_or(i32::MAX);
        let leader = BrokerId(raft.leader().unwrap_or(-1));
        if raft.voter_progress(self.config.node_id).is_none() {
            return PartitionData::default()
                .with_error_code(errors::NOT_LEADER_OR_FOLLOWER)
                .with_leader_id(leader)
                .with_leader_epoch(term);
        }
        let voters = raft
            .voters()
            .iter()
            .map(|&id| {
                let (matched, heard) = raft.voter_progress(id).unwrap_or((0, None));
                voter(id, matched as i64, heard)
            })
            .collect();
        // Broker-only nodes the leader replicates to (KIP-595's observers).
        let observers = raft
            .observers()
            .into_iter()
            .map(|id| {
                let (matched, heard) = raft.voter_progress(id).unwrap_or((0, None));
                voter(id, matched as i64, heard)
            })
            .collect();
        PartitionData::default()
            .with_leader_id(leader)
            .with_leader_epoch(term)
            .with_high_watermark(raft.committed_index() as i64)
            .with_current_voters(voters)
            .with_observers(observers)
    }

    /// The voters and their controller listeners (version 2).
    fn quorum_nodes(&self) -> Vec<Node> {
        self.config
            .controller_quorum
            .iter()
            .filter_map(|(id, address)| {
                let (host, port) = address.rsplit_once(':')?;
                let listener = Listener::default()
                    .with_name(StrBytes::from_static_str("CONTROLLER"))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(port.parse().ok()?);
                Some(
                    Node::default()
                        .with_node_id(BrokerId(*id))
                        .with_listeners(vec![listener]),
                )
            })
            .collect()
    }
}
