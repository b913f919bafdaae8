//! LeaveGroup (key 13): members leave (v0-v2 one by member id, v3+ several, by member id or
//! `group.instance.id`), and the group rebalances without them.

use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

impl Broker {
    pub(super) fn on_leave_group(&mut self, ctx: &RequestContext, request: LeaveGroupRequest) {
        let group_id = request.group_id.0.to_string();
        if group_id.is_empty() {
            return self.respond(
                ctx,
                &LeaveGroupResponse::default().with_error_code(errors::INVALID_GROUP_ID),
            );
        }
        let leaving: Vec<(String, Option<String>)> = if ctx.version >= 3 {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|i| i.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let mut results = Vec::new();
        for (member_id, instance_id) in leaving {
            let code = self.leave(&group_id, &member_id, instance_id.as_deref(), ctx.now_ms);
            let mut result = MemberResponse::default()
                .with_member_id(member_id.clone().into())
                .with_error_code(code);
            result.group_instance_id = instance_id.map(Into::into);
            results.push(result);
        }
        let mut response = LeaveGroupResponse::default();
        if ctx.version >= 3 {
            response.members = results;
        } else {
            response.error_code = results.first().map_or(errors::NONE, |r| r.error_code);
        }
        self.respond(ctx, &response);
    }

    fn leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> i16 {
        let Some(group) = self.coordinator.groups.get(group_id) else {
            return errors::UNKNOWN_MEMBER_ID;
        };
        // v3+: a static member may leave by its instance id alone.
        let target = match (member_id.is_empty(), instance_id) {
            (true, Some(instance)) => match group.member_by_instance(instance) {
                Some(member) => member.member_id.clone(),
                None => return errors::UNKNOWN_MEMBER_ID,
            },
            _ => member_id.to_string(),
        };
        if group.pending_members.contains_key(&target) {
            self.remove_member(group_id, &target, now_ms, "left");
            return errors::NONE;
        }
        if let Err(code) = group.check_member(&target, instance_id) {
            return code;
        }
        self.remove_member(group_id, &target, now_ms, "left the group");
        errors::NONE
    }
}
