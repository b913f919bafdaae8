//! Which node coordinates a group: on a controller quorum, the broker that leads the group's
//! partition of `__consumer_offsets` (as Kafka places group coordinators), so a group's
//! offsets and membership are written where they are read back. FindCoordinator names it; a
//! group request that reaches another node is answered NOT_COORDINATOR and the client asks
//! FindCoordinator again. A node that is its own quorum coordinates every group.

use super::Broker;
use crate::controller::image::NO_LEADER;
use crate::errors;
use crate::group_coordinator::{GroupReply, GroupRequest};
use crate::groups::{self, OFFSETS_TOPIC};

impl Broker {
    /// The coordinator of `group` as (id, host, port), or the error to answer
    /// (COORDINATOR_NOT_AVAILABLE while `__consumer_offsets` is being created or the group's
    /// partition has no leader).
    pub(super) fn coordinator_of(&mut self, group: &str) -> Result<(i32, String, i32), i16> {
        // Kafka creates `__consumer_offsets` when a group first needs it.
        self.ensure_offsets_topic();
        if !self.in_quorum() {
            let host = self.config.advertised_host.clone();
            return Ok((self.config.node_id, host, self.config.advertised_port));
        }
        let leader = self
            .offsets_leader(group)
            .ok_or(errors::COORDINATOR_NOT_AVAILABLE)?;
        self.listed_brokers()
            .into_iter()
            .find(|(id, _)| *id == leader)
            .map(|(id, broker)| (id, broker.host, i32::from(broker.port)))
            .ok_or(errors::COORDINATOR_NOT_AVAILABLE)
    }

    /// The leader of `group`'s partition of `__consumer_offsets`, if it has one.
    fn offsets_leader(&self, group: &str) -> Option<i32> {
        let topic = self.topics.get(OFFSETS_TOPIC)?;
        let partition = groups::partition_for(group, self.config.groups.offsets_topic_partitions);
        let leader = self.partition_view(topic, partition).leader.0;
        (leader != NO_LEADER).then_some(leader)
    }

    /// NOT_COORDINATOR, in the request's own response, when the request names a group this
    /// node does not coordinate (on a quorum). Requests over several groups (DescribeGroups,
    /// DeleteGroups, ListGroups) answer for what this node has, as Kafka's brokers do.
    pub(super) fn refuse_foreign_group(
        &self,
        request: &GroupRequest,
        version: i16,
    ) -> Option<GroupReply> {
        if !self.in_quorum() {
            return None;
        }
        let group = match request {
            GroupRequest::Join(r) => r.group_id.as_str(),
            GroupRequest::Sync(r) => r.group_id.as_str(),
            GroupRequest::Heartbeat(r) => r.group_id.as_str(),
            GroupRequest::Leave(r) => r.group_id.as_str(),
            GroupRequest::OffsetCommit(r) => r.group_id.as_str(),
            GroupRequest::OffsetDelete(r) => r.group_id.as_str(),
            GroupRequest::OffsetFetch(r) if version >= 8 => r.groups.first()?.group_id.as_str(),
            GroupRequest::OffsetFetch(r) => r.group_id.as_str(),
            _ => return None,
        };
        let leads = self.offsets_leader(group) == Some(self.config.node_id);
        let partition = groups::partition_for(group, self.config.groups.offsets_topic_partitions);
        if group.is_empty() || (leads && !self.group_loads.contains_key(&partition)) {
            return None;
        }
        let partition = groups::partition_for(group, self.config.groups.offsets_topic_partitions);
        let code = match self.group_loads.contains_key(&partition) {
            true => errors::COORDINATOR_LOAD_IN_PROGRESS,
            false => errors::NOT_COORDINATOR,
        };
        crate::group_coordinator::error_reply(request, version, code)
    }
}
