//! DescribeGroups (key 15): state, protocol and members (with their subscription and, once
//! Stable, their assignment). An unknown group is described as Dead with no error, as Kafka.

use super::{Broker, RequestContext};
use crate::errors;
use crate::groups::GroupState;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

impl Broker {
    pub(super) fn on_describe_groups(
        &mut self,
        ctx: &RequestContext,
        request: DescribeGroupsRequest,
    ) {
        let mut described = Vec::new();
        for group_id in request.groups {
            let mut entry = DescribedGroup::default().with_group_id(group_id.clone());
            if group_id.0.is_empty() {
                entry.error_code = errors::INVALID_GROUP_ID;
                described.push(entry);
                continue;
            }
            match self.coordinator.groups.get(group_id.0.as_str()) {
                None => entry.group_state = StrBytes::from_static_str(GroupState::Dead.name()),
                Some(group) => {
                    let protocol = group.protocol_name.clone().unwrap_or_default();
                    entry.group_state = StrBytes::from_static_str(group.state.name());
                    entry.protocol_type =
                        StrBytes::from_string(group.protocol_type.clone().unwrap_or_default());
                    entry.protocol_data = StrBytes::from_string(protocol.clone());
                    entry.members = group
                        .members
                        .values()
                        .map(|m| {
                            let mut member = DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id.clone()))
                                .with_client_id(StrBytes::from_string(m.client_id.clone()))
                                .with_client_host(StrBytes::from_string(m.client_host.clone()))
                                .with_member_metadata(m.metadata_for(&protocol));
                            if group.state == GroupState::Stable {
                                member.member_assignment = m.assignment.clone();
                            }
                            if ctx.version >= 4 {
                                member.group_instance_id =
                                    m.group_instance_id.clone().map(StrBytes::from_string);
                            }
                            member
                        })
                        .collect();
                }
            }
            described.push(entry);
        }
        self.respond(
            ctx,
            &DescribeGroupsResponse::default().with_groups(described),
        );
    }
}
