//! SyncGroup (key 14): after a rebalance the leader sends every member's assignment; each
//! member's SyncGroup is answered with its own once the leader's has arrived. The group is then
//! Stable and its membership is written to `__consumer_offsets`; the answers go out once that
//! record is flushed.

use super::{Broker, RequestContext};
use crate::errors;
use crate::groups::GroupState;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

/// How long the leader's SyncGroup waits for the assignment to be stored.
const SYNC_STORE_TIMEOUT_MS: i32 = 5_000;
use kafka_protocol::protocol::StrBytes;

impl Broker {
    pub(super) fn on_sync_group(&mut self, ctx: &RequestContext, request: SyncGroupRequest) {
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let fail = |code: i16| SyncGroupResponse::default().with_error_code(code);
        let storing = self.sync_in_flight(&group_id);
        let Some(group) = self.coordinator.groups.get_mut(&group_id) else {
            return self.respond(ctx, &fail(errors::UNKNOWN_MEMBER_ID));
        };
        let instance_id = request
            .group_instance_id
            .as_deref()
            .filter(|_| ctx.version >= 3);
        if let Err(code) = group.check_member(&member_id, instance_id) {
            return self.respond(ctx, &fail(code));
        }
        let member = group.members.get_mut(&member_id).expect("checked");
        if request.generation_id != group.generation_id {
            return self.respond(ctx, &fail(errors::ILLEGAL_GENERATION));
        }
        let type_mismatch = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t.as_str()) != group.protocol_type.as_deref());
        let name_mismatch = request
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n.as_str()) != group.protocol_name.as_deref());
        if type_mismatch || name_mismatch {
            return self.respond(ctx, &fail(errors::INCONSISTENT_GROUP_PROTOCOL));
        }
        member.session_deadline_ms = ctx.now_ms + i64::from(member.session_timeout_ms);
        match group.state {
            GroupState::Empty | GroupState::Dead => {
                self.respond(ctx, &fail(errors::UNKNOWN_MEMBER_ID))
            }
            GroupState::PreparingRebalance => {
                self.respond(ctx, &fail(errors::REBALANCE_IN_PROGRESS))
            }
            GroupState::Stable if storing => {
                // The assignment is not durable yet: answer with the others once it is.
                self.coordinator
                    .syncs
                    .insert((group_id.clone(), member_id.clone()), ctx.clone());
            }
            GroupState::Stable => {
                let response = self.sync_response(&group_id, &member_id, ctx.version);
                self.respond(ctx, &response);
            }
            GroupState::CompletingRebalance => {
                self.coordinator
                    .syncs
                    .insert((group_id.clone(), member_id.clone()), ctx.clone());
                let is_leader = group.leader.as_deref() == Some(member_id.as_str());
                if is_leader {
                    for member in group.members.values_mut() {
                        member.assignment = request
                            .assignments
                            .iter()
                            .find(|a| a.member_id.as_str() == member.member_id)
                            .map(|a| a.assignment.clone())
                            .unwrap_or_default();
                    }
                    group.state = GroupState::Stable;
                    // The assignment goes out once the new generation is durable, so a crash
                    // never lets a generation number be handed out twice (as Kafka stores the
                    // group before answering).
                    let wait = self.persist_group(&group_id, ctx.now_ms);
                    let deadline_ms = ctx.now_ms + i64::from(SYNC_STORE_TIMEOUT_MS);
                    self.wait_for_sync(&group_id, wait, deadline_ms);
                }
            }
        }
    }

    pub(super) fn sync_response(
        &self,
        group_id: &str,
        member_id: &str,
        version: i16,
    ) -> SyncGroupResponse {
        let group = &self.coordinator.groups[group_id];
        let assignment = group
            .members
            .get(member_id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default();
        let mut response = SyncGroupResponse::default().with_assignment(assignment);
        if version >= 5 {
            response.protocol_type = group.protocol_type.clone().map(StrBytes::from_string);
            response.protocol_name = group.protocol_name.clone().map(StrBytes::from_string);
        }
        response
    }
}
