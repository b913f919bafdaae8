//! ListGroups (key 16): every group with its protocol type and state, filtered by state (v4+)
//! and by type (v5+; all groups here are "classic").

use super::{Broker, RequestContext};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

impl Broker {
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
            .coordinator
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
        self.respond(ctx, &ListGroupsResponse::default().with_groups(groups));
    }
}
