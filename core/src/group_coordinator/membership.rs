//! Rebalances and membership: a rebalance's start and end, SyncGroup (the leader's assignment
//! handed out once it is stored), Heartbeat, LeaveGroup, and the expiry of sessions and
//! rebalance timeouts.

use super::GroupCoordinator;
use crate::api::RequestContext;
use crate::errors;
use crate::groups::GroupState;
use crate::io::Level;
use crate::planted::PlantedBug;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

/// How long the leader's SyncGroup waits for the assignment to be stored.
const SYNC_STORE_TIMEOUT_MS: i32 = 5_000;

impl GroupCoordinator {
    /// Moves a group to PreparingRebalance: pending syncs are told to rejoin, and a deadline is
    /// set (the initial delay for an empty group, else the longest rebalance timeout).
    pub(super) fn prepare_rebalance(&mut self, group_id: &str, now_ms: i64, reason: &str) {
        let initial_delay = self.config.initial_rebalance_delay_ms;
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.state == GroupState::PreparingRebalance {
            return;
        }
        let was_empty = group.state == GroupState::Empty;
        let longest = group
            .members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0);
        group.initial_rebalance = was_empty;
        group.rebalance_deadline_ms =
            Some(now_ms + if was_empty { initial_delay } else { longest });
        group.state = GroupState::PreparingRebalance;
        let generation = group.generation_id;
        let waiting: Vec<(String, String)> = self
            .syncs
            .keys()
            .filter(|(g, _)| g == group_id)
            .cloned()
            .collect();
        for key in waiting {
            let ctx = self.syncs.remove(&key).expect("listed above");
            self.reply(
                &ctx,
                SyncGroupResponse::default().with_error_code(errors::REBALANCE_IN_PROGRESS),
            );
        }
        // An assignment still being stored belongs to the generation this rebalance ends; its
        // syncs were just told to rejoin. Its flush must not answer the next generation's syncs
        // (Kafka hands out a stored assignment only if its generation is still current).
        self.sync_waits.remove(group_id);
        self.log(
            Level::Info,
            format!("group '{group_id}' (generation {generation}) is rebalancing: {reason}"),
        );
    }

    /// Completes the rebalance once every member has rejoined (not during the initial delay).
    pub(super) fn maybe_complete_join(&mut self, group_id: &str, now_ms: i64) {
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        if group.state != GroupState::PreparingRebalance || group.initial_rebalance {
            return;
        }
        let all_joined = group.pending_members.is_empty()
            && group
                .members
                .keys()
                .all(|m| self.joins.contains_key(&(group_id.to_string(), m.clone())));
        if all_joined {
            self.complete_join(group_id, now_ms);
        }
    }

    /// Ends PreparingRebalance: members that did not rejoin are dropped, a new generation starts,
    /// and every waiting JoinGroup is answered (the leader gets the members and their metadata).
    pub(super) fn complete_join(&mut self, group_id: &str, now_ms: i64) {
        let joined: Vec<String> = self
            .joins
            .keys()
            .filter(|(g, _)| g == group_id)
            .map(|(_, m)| m.clone())
            .collect();
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        group.members.retain(|id, _| joined.contains(id));
        group.pending_members.clear();
        group.rebalance_deadline_ms = None;
        group.initial_rebalance = false;
        group.generation_id += 1;
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol_name = None;
            group.leader = None;
            group.empty_since_ms = now_ms;
            let generation = group.generation_id;
            self.log(
                Level::Info,
                format!("group '{group_id}' is empty at generation {generation}"),
            );
            self.persist_group(group_id, now_ms, None);
            return;
        }
        group.protocol_name = group.select_protocol();
        if !group
            .leader
            .as_ref()
            .is_some_and(|l| group.members.contains_key(l))
        {
            group.leader = group
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.member_id.clone());
        }
        group.state = GroupState::CompletingRebalance;
        for member in group.members.values_mut() {
            member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        }
        let group = group.clone();
        let protocol = group.protocol_name.clone().unwrap_or_default();
        self.log(
            Level::Info,
            format!(
                "group '{group_id}' generation {} with {} member(s), protocol {protocol}",
                group.generation_id,
                group.members.len()
            ),
        );
        for member_id in group.members.keys() {
            let Some(ctx) = self
                .joins
                .remove(&(group_id.to_string(), member_id.clone()))
            else {
                continue;
            };
            let response = self.join_response(&group, member_id, ctx.version);
            self.reply(&ctx, response);
        }
    }

    /// Removes a member (left, expired or fenced) and moves the group on.
    pub(super) fn remove_member(
        &mut self,
        group_id: &str,
        member_id: &str,
        now_ms: i64,
        reason: &str,
    ) {
        let key = (group_id.to_string(), member_id.to_string());
        // A request the member left waiting is answered, as Kafka does, never left to hang.
        if let Some(ctx) = self.joins.remove(&key) {
            let response =
                super::join::join_error(errors::UNKNOWN_MEMBER_ID, member_id, ctx.version);
            self.reply(&ctx, response);
        }
        if let Some(ctx) = self.syncs.remove(&key) {
            self.reply(
                &ctx,
                SyncGroupResponse::default().with_error_code(errors::UNKNOWN_MEMBER_ID),
            );
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.members.remove(member_id).is_none() {
            group.pending_members.remove(member_id);
            return self.maybe_complete_join(group_id, now_ms);
        }
        if group.leader.as_deref() == Some(member_id) {
            group.leader = None;
        }
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group_id, now_ms, &format!("member {member_id} {reason}"))
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(group_id, now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
        // A rebalance with nobody left completes at once: the group becomes Empty.
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        if group.members.is_empty()
            && group.state == GroupState::PreparingRebalance
            && !group.initial_rebalance
        {
            self.complete_join(group_id, now_ms);
        }
    }

    /// Rebalance deadlines, expired sessions and offset retention.
    pub(super) fn expire_groups(&mut self, now_ms: i64) {
        let group_ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in group_ids {
            let Some(group) = self.groups.get_mut(&group_id) else {
                continue;
            };
            let expired_pending: Vec<String> = group
                .pending_members
                .iter()
                .filter(|(_, at)| **at <= now_ms)
                .map(|(id, _)| id.clone())
                .collect();
            for id in &expired_pending {
                group.pending_members.remove(id);
            }
            if group.state == GroupState::PreparingRebalance
                && group.rebalance_deadline_ms.is_some_and(|d| d <= now_ms)
            {
                self.complete_join(&group_id, now_ms);
                continue;
            }
            let Some(group) = self.groups.get_mut(&group_id) else {
                continue;
            };
            // A member waiting in JoinGroup or SyncGroup is alive (the rebalance timeout bounds
            // its wait): its session is renewed, as Kafka's heartbeat expiry keeps a member
            // awaiting join or sync, so the session deadline moves past `now` rather than staying
            // due (issue 12: a due deadline that never moved made the shard spin and recurse).
            let mut expired: Vec<String> = Vec::new();
            for member in group.members.values_mut() {
                if member.session_deadline_ms > now_ms {
                    continue;
                }
                let key = (group_id.clone(), member.member_id.clone());
                let parked = self.joins.contains_key(&key) || self.syncs.contains_key(&key);
                if parked && self.planted_bug != Some(PlantedBug::StuckGroupDeadline) {
                    member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
                } else if !parked {
                    expired.push(member.member_id.clone());
                }
            }
            for member_id in expired {
                self.log(
                    Level::Info,
                    format!("group '{group_id}': session of member {member_id} expired"),
                );
                self.remove_member(&group_id, &member_id, now_ms, "session expired");
            }
            if !expired_pending.is_empty() {
                self.maybe_complete_join(&group_id, now_ms);
            }
        }
    }

    // ---- SyncGroup ----

    pub(super) fn on_sync(&mut self, ctx: &RequestContext, request: SyncGroupRequest) {
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let fail = |code: i16| SyncGroupResponse::default().with_error_code(code);
        let storing = self.sync_in_flight(&group_id);
        let Some(group) = self.groups.get_mut(&group_id) else {
            return self.reply(ctx, fail(errors::UNKNOWN_MEMBER_ID));
        };
        let instance_id = request
            .group_instance_id
            .as_deref()
            .filter(|_| ctx.version >= 3);
        if let Err(code) = group.check_member(&member_id, instance_id) {
            return self.reply(ctx, fail(code));
        }
        let member = group.members.get_mut(&member_id).expect("checked");
        if request.generation_id != group.generation_id {
            return self.reply(ctx, fail(errors::ILLEGAL_GENERATION));
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
            return self.reply(ctx, fail(errors::INCONSISTENT_GROUP_PROTOCOL));
        }
        member.session_deadline_ms = ctx.now_ms + i64::from(member.session_timeout_ms);
        match group.state {
            GroupState::Empty | GroupState::Dead => {
                self.reply(ctx, fail(errors::UNKNOWN_MEMBER_ID))
            }
            GroupState::PreparingRebalance => self.reply(ctx, fail(errors::REBALANCE_IN_PROGRESS)),
            GroupState::Stable if storing => {
                // The assignment is not durable yet: answer with the others once it is.
                self.syncs
                    .insert((group_id.clone(), member_id.clone()), ctx.clone());
            }
            GroupState::Stable => {
                let response = self.sync_response(&group_id, &member_id, ctx.version);
                self.reply(ctx, response);
            }
            GroupState::CompletingRebalance => {
                self.syncs
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
                    self.store_assignment(&group_id, ctx.now_ms);
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
        let group = &self.groups[group_id];
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

    /// The group's new assignment is stored; its SyncGroup answers wait until it is committed
    /// (a failed store fails them).
    pub(super) fn store_assignment(&mut self, group_id: &str, now_ms: i64) {
        let id = self.next_wait_id();
        let deadline_ms = now_ms + i64::from(SYNC_STORE_TIMEOUT_MS);
        self.sync_waits
            .insert(group_id.to_string(), (id, deadline_ms));
        if !self.persist_group(group_id, now_ms, Some(id)) {
            self.on_sync_settled(now_ms, id, false);
        }
    }

    /// A group's new assignment is committed (`ok`), or could not be stored: its members are
    /// answered, or told COORDINATOR_NOT_AVAILABLE and the group rebalances, as Kafka does when
    /// it cannot store a group. A wait a rebalance ended is gone already.
    pub(super) fn on_sync_settled(&mut self, now_ms: i64, id: u64, ok: bool) {
        let Some(group_id) = self
            .sync_waits
            .iter()
            .find(|(_, (wait, _))| *wait == id)
            .map(|(group, _)| group.clone())
        else {
            return;
        };
        self.sync_waits.remove(&group_id);
        let waiting: Vec<(String, String)> = self
            .syncs
            .keys()
            .filter(|(g, _)| *g == group_id)
            .cloned()
            .collect();
        for key in waiting {
            let ctx = self.syncs.remove(&key).expect("listed above");
            let response = match ok {
                true => self.sync_response(&group_id, &key.1, ctx.version),
                false => {
                    SyncGroupResponse::default().with_error_code(errors::COORDINATOR_NOT_AVAILABLE)
                }
            };
            self.reply(&ctx, response);
        }
        if !ok {
            self.prepare_rebalance(&group_id, now_ms, "its assignment could not be stored");
        }
    }

    /// Assignments whose store took too long fail.
    pub(super) fn expire_syncs(&mut self, now_ms: i64) {
        let due: Vec<u64> = self
            .sync_waits
            .values()
            .filter(|(_, deadline_ms)| *deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.on_sync_settled(now_ms, id, false);
        }
    }

    /// Whether the group's new assignment waits for its flush.
    pub(super) fn sync_in_flight(&self, group_id: &str) -> bool {
        self.sync_waits.contains_key(group_id)
    }

    // ---- Heartbeat and LeaveGroup ----

    pub(super) fn heartbeat(&mut self, ctx: &RequestContext, request: &HeartbeatRequest) -> i16 {
        if request.group_id.0.is_empty() {
            return errors::INVALID_GROUP_ID;
        }
        let Some(group) = self.groups.get_mut(request.group_id.0.as_str()) else {
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

    pub(super) fn on_leave(&mut self, ctx: &RequestContext, request: LeaveGroupRequest) {
        let group_id = request.group_id.0.to_string();
        if group_id.is_empty() {
            return self.reply(
                ctx,
                LeaveGroupResponse::default().with_error_code(errors::INVALID_GROUP_ID),
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
        self.reply(ctx, response);
    }

    pub(super) fn leave(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> i16 {
        let Some(group) = self.groups.get(group_id) else {
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
