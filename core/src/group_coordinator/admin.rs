//! DescribeGroups (state, protocol, members and, once Stable, their assignments; an unknown
//! group is Dead with no error, as Kafka), ListGroups (filtered by state from v4 and by type
//! from v5; all groups here are "classic"), DeleteGroups (empty groups only, with tombstones for
//! the group and its offsets).

use super::GroupCoordinator;
use crate::api::RequestContext;
use crate::errors;
use crate::groups::{GroupState, OffsetsRecord};
use crate::io::Level;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

impl GroupCoordinator {
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
            match self.groups.get(group_id.0.as_str()) {
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
        self.reply(
            ctx,
            DescribeGroupsResponse::default().with_groups(described),
        );
    }

    pub(super) fn on_list_groups(&mut self, ctx: &RequestContext, request: ListGroupsRequest) {
        let states: Vec<String> = request
            .states_filter
            .iter()
            .map(|s| s.to_lowercase())
            .collect();
        let types: Vec<String> = request
            .types_filter
            .iter()
            .map(|s| s.to_lowercase())
            .collect();
        let groups = self
            .groups
            .values()
            .filter(|g| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
            .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
            .map(|g| {
                let mut listed = ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(g.group_id.clone())))
                    .with_protocol_type(StrBytes::from_string(
                        g.protocol_type.clone().unwrap_or_default(),
                    ));
                if ctx.version >= 4 {
                    listed.group_state = StrBytes::from_static_str(g.state.name());
                }
                if ctx.version >= 5 {
                    listed.group_type = StrBytes::from_static_str("classic");
                }
                listed
            })
            .collect();
        self.reply(ctx, ListGroupsResponse::default().with_groups(groups));
    }

    pub(super) fn on_delete_groups(&mut self, ctx: &RequestContext, request: DeleteGroupsRequest) {
        let mut results = Vec::new();
        for group_id in request.groups_names {
            let name = group_id.0.to_string();
            let code = match self.groups.get(&name) {
                _ if name.is_empty() => errors::INVALID_GROUP_ID,
                None => errors::GROUP_ID_NOT_FOUND,
                Some(group) if group.state != GroupState::Empty || !group.members.is_empty() => {
                    errors::NON_EMPTY_GROUP
                }
                Some(group) => {
                    let keys: Vec<(String, i32)> = group.offsets.keys().cloned().collect();
                    self.delete_offsets(&name, &keys, ctx.now_ms);
                    self.groups.remove(&name);
                    let tombstone = OffsetsRecord::Group {
                        group: name.clone(),
                        value: None,
                    };
                    self.append(&name, vec![tombstone], ctx.now_ms, None);
                    self.log(Level::Info, format!("deleted group '{name}'"));
                    errors::NONE
                }
            };
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(code),
            );
        }
        self.reply(ctx, DeleteGroupsResponse::default().with_results(results));
    }
}
