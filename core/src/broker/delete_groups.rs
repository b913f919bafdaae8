//! DeleteGroups (key 42): removes empty groups and their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members is refused with NON_EMPTY_GROUP.

use super::{Broker, RequestContext};
use crate::errors;
use crate::groups::{GroupState, OffsetsRecord};
use crate::io::Level;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

impl Broker {
    pub(super) fn on_delete_groups(&mut self, ctx: &RequestContext, request: DeleteGroupsRequest) {
        let mut results = Vec::new();
        for group_id in request.groups_names {
            let name = group_id.0.to_string();
            let code = match self.coordinator.groups.get(&name) {
                _ if name.is_empty() => errors::INVALID_GROUP_ID,
                None => errors::GROUP_ID_NOT_FOUND,
                Some(group) if group.state != GroupState::Empty || !group.members.is_empty() => {
                    errors::NON_EMPTY_GROUP
                }
                Some(group) => {
                    let keys: Vec<(String, i32)> = group.offsets.keys().cloned().collect();
                    self.delete_offsets(&name, &keys, ctx.now_ms);
                    self.coordinator.groups.remove(&name);
                    let tombstone = OffsetsRecord::Group {
                        group: name.clone(),
                        value: None,
                    };
                    self.append_offsets_records(&name, vec![tombstone], ctx.now_ms);
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
        self.respond(ctx, &DeleteGroupsResponse::default().with_results(results));
    }
}
