//! Heartbeat (key 12): keeps a member's session alive and tells it when to rejoin
//! (REBALANCE_IN_PROGRESS), with Kafka's answers for unknown members and stale generations.

use super::{Broker, RequestContext};
use crate::errors;
use crate::groups::GroupState;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

impl Broker {
    pub(super) fn on_heartbeat(&mut self, ctx: &RequestContext, request: HeartbeatRequest) {
        let code = self.heartbeat(ctx, &request);
        self.respond(ctx, &HeartbeatResponse::default().with_error_code(code));
    }

    fn heartbeat(&mut self, ctx: &RequestContext, request: &HeartbeatRequest) -> i16 {
        if request.group_id.0.is_empty() {
            return errors::INVALID_GROUP_ID;
        }
        let Some(group) = self.coordinator.groups.get_mut(request.group_id.0.as_str()) else {
            return errors::UNKNOWN_MEMBER_ID;
        };
        let instance_id = request
            .group_instance_id
            .as_deref()
            .filter(|_| ctx.version >= 3);
        if let Err(code) = group.check_member(request.member_id.as_str(), instance_id) {
            return code;
        }
        let member = group
            .members
            .get_mut(request.member_id.as_str())
            .expect("checked");
        if request.generation_id != group.generation_id {
            return errors::ILLEGAL_GENERATION;
        }
        member.session_deadline_ms = ctx.now_ms + i64::from(member.session_timeout_ms);
        match group.state {
            GroupState::Empty | GroupState::Dead => errors::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => errors::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => errors::NONE,
        }
    }
}
