//! JoinGroup: a member joins (or rejoins) its group for the next generation. New members
//! without an id get one with MEMBER_ID_REQUIRED first (KIP-394, v4+); static members
//! (`group.instance.id`, KIP-345) keep their place across restarts and replace their old id.
//! The answer waits for the rebalance to complete (see `membership.rs`).

use super::GroupCoordinator;
use crate::api::RequestContext;
use crate::errors;
use crate::groups::{Group, GroupState, Member};
use crate::io::Level;
use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

impl GroupCoordinator {
    pub(super) fn on_join(
        &mut self,
        ctx: &RequestContext,
        request: JoinGroupRequest,
        client_host: &str,
    ) {
        let now = ctx.now_ms;
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let instance_id = request
            .group_instance_id
            .as_ref()
            .map(|s| s.to_string())
            .filter(|_| ctx.version >= 5);
        let protocol_type = request.protocol_type.to_string();
        let protocols: Vec<(String, Bytes)> = request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect();
        let fail = |code: i16| join_error(code, &member_id, ctx.version);
        // Kafka's group records hold strings of at most i16::MAX bytes.
        if group_id.is_empty() || group_id.len() > i16::MAX as usize {
            return self.reply(ctx, fail(errors::INVALID_GROUP_ID));
        }
        let limits = &self.config;
        if request.session_timeout_ms < limits.min_session_timeout_ms
            || request.session_timeout_ms > limits.max_session_timeout_ms
        {
            return self.reply(ctx, fail(errors::INVALID_SESSION_TIMEOUT));
        }
        // Everything stored in the group's record must fit its i16-length strings.
        let too_long = |s: &str| s.len() > i16::MAX as usize;
        if too_long(&protocol_type)
            || protocols.iter().any(|(name, _)| too_long(name))
            || instance_id.as_deref().is_some_and(too_long)
        {
            return self.reply(ctx, fail(errors::INVALID_REQUEST));
        }
        let group = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(&group_id, now));
        if !group.supports(&protocol_type, &protocols) {
            return self.reply(ctx, fail(errors::INCONSISTENT_GROUP_PROTOCOL));
        }
        // Before v4 a JoinGroup's rebalance timeout is its session timeout.
        let rebalance_timeout_ms = if ctx.version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        };
        let joining = Member {
            member_id: member_id.clone(),
            group_instance_id: instance_id.clone(),
            client_id: ctx.client_id.clone(),
            client_host: client_host.to_string(),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms,
            protocols,
            assignment: Bytes::new(),
            session_deadline_ms: now + i64::from(request.session_timeout_ms),
            joined_seq: 0,
        };
        if member_id.is_empty() {
            self.join_unknown_member(ctx, &group_id, joining, &protocol_type);
        } else {
            self.join_known_member(ctx, &group_id, joining, &protocol_type);
        }
    }

    pub(super) fn join_unknown_member(
        &mut self,
        ctx: &RequestContext,
        group_id: &str,
        mut joining: Member,
        protocol_type: &str,
    ) {
        let now = ctx.now_ms;
        let new_id = self.new_member_id(&ctx.client_id);
        let group = self
            .groups
            .get_mut(group_id)
            .expect("created by the caller");
        if group.members.len() >= self.config.max_size {
            let response = join_error(errors::GROUP_MAX_SIZE_REACHED, "", ctx.version);
            return self.reply(ctx, response);
        }
        if let Some(instance) = joining.group_instance_id.clone() {
            if let Some(old) = group.member_by_instance(&instance).cloned() {
                return self.replace_static_member(ctx, group_id, old, joining, new_id);
            }
        } else if ctx.version >= 4 {
            // KIP-394: hand out the id and wait for the member to come back with it.
            group
                .pending_members
                .insert(new_id.clone(), now + i64::from(joining.session_timeout_ms));
            let response = join_error(errors::MEMBER_ID_REQUIRED, &new_id, ctx.version);
            return self.reply(ctx, response);
        }
        joining.member_id = new_id;
        self.add_member_and_rebalance(ctx, group_id, joining, protocol_type);
    }

    pub(super) fn join_known_member(
        &mut self,
        ctx: &RequestContext,
        group_id: &str,
        joining: Member,
        protocol_type: &str,
    ) {
        let member_id = joining.member_id.clone();
        let group = self
            .groups
            .get_mut(group_id)
            .expect("created by the caller");
        if group.pending_members.remove(&member_id).is_some() {
            return self.add_member_and_rebalance(ctx, group_id, joining, protocol_type);
        }
        if let Err(code) = group.check_member(&member_id, joining.group_instance_id.as_deref()) {
            let response = join_error(code, &member_id, ctx.version);
            return self.reply(ctx, response);
        }
        let existing = group.members[&member_id].clone();
        let same_metadata = existing.protocols == joining.protocols;
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        let state = group.state;
        let member = group.members.get_mut(&member_id).expect("found above");
        member.protocols = joining.protocols;
        member.session_timeout_ms = joining.session_timeout_ms;
        member.rebalance_timeout_ms = joining.rebalance_timeout_ms;
        member.session_deadline_ms = joining.session_deadline_ms;
        match state {
            // Nothing changed: answer with the current generation, no rebalance (as Kafka).
            GroupState::CompletingRebalance | GroupState::Stable
                if same_metadata && (state == GroupState::CompletingRebalance || !is_leader) =>
            {
                let group = self.groups[group_id].clone();
                let response = self.join_response(&group, &member_id, ctx.version);
                self.reply(ctx, response);
            }
            _ => {
                self.joins
                    .insert((group_id.to_string(), member_id.clone()), ctx.clone());
                let reason = if same_metadata {
                    "the leader rejoined"
                } else {
                    "a member's subscription changed"
                };
                self.prepare_rebalance(group_id, ctx.now_ms, &format!("{reason} ({member_id})"));
                self.maybe_complete_join(group_id, ctx.now_ms);
            }
        }
    }

    pub(super) fn add_member_and_rebalance(
        &mut self,
        ctx: &RequestContext,
        group_id: &str,
        mut joining: Member,
        protocol_type: &str,
    ) {
        joining.joined_seq = self.next_join_seq();
        let member_id = joining.member_id.clone();
        let group = self
            .groups
            .get_mut(group_id)
            .expect("created by the caller");
        if group.members.is_empty() {
            group.protocol_type = Some(protocol_type.to_string());
        }
        group.members.insert(member_id.clone(), joining);
        self.joins
            .insert((group_id.to_string(), member_id.clone()), ctx.clone());
        self.prepare_rebalance(group_id, ctx.now_ms, &format!("member {member_id} joined"));
        self.maybe_complete_join(group_id, ctx.now_ms);
    }

    /// A static member came back with a new process: it takes over the old member's place (and
    /// assignment); the old id is fenced. No rebalance unless the group is rebalancing anyway
    /// or the member's subscription changed.
    pub(super) fn replace_static_member(
        &mut self,
        ctx: &RequestContext,
        group_id: &str,
        old: Member,
        mut joining: Member,
        new_id: String,
    ) {
        let old_key = (group_id.to_string(), old.member_id.clone());
        if let Some(old_join) = self.joins.remove(&old_key) {
            let fenced = join_error(errors::FENCED_INSTANCE_ID, &old.member_id, old_join.version);
            self.reply(&old_join, fenced);
        }
        if let Some(old_sync) = self.syncs.remove(&old_key) {
            let fenced = SyncGroupResponse::default().with_error_code(errors::FENCED_INSTANCE_ID);
            self.reply(&old_sync, fenced);
        }
        let same_metadata = old.protocols == joining.protocols;
        joining.member_id = new_id.clone();
        joining.joined_seq = old.joined_seq;
        joining.assignment = old.assignment.clone();
        let group = self
            .groups
            .get_mut(group_id)
            .expect("created by the caller");
        group.members.remove(&old.member_id);
        group.members.insert(new_id.clone(), joining);
        let was_leader = group.leader.as_deref() == Some(old.member_id.as_str());
        if was_leader {
            group.leader = Some(new_id.clone());
        }
        let state = group.state;
        self.log(
            Level::Info,
            format!(
                "group '{group_id}': static member {} replaced {} with {new_id}",
                old.group_instance_id.unwrap_or_default(),
                old.member_id
            ),
        );
        // No rebalance: the member gets its assignment back from SyncGroup. A returning leader
        // is told the old leader id (before v9), so it takes the follower path and does not
        // assign a Stable group again; from v9 it gets the members with skip_assignment, as
        // Kafka's `updateStaticMemberAndRebalance` answers.
        if state == GroupState::Stable && same_metadata {
            let group = self.groups[group_id].clone();
            let mut response = self.join_response(&group, &new_id, ctx.version);
            if was_leader && ctx.version >= 9 {
                response.skip_assignment = true;
            } else if was_leader {
                response.leader = StrBytes::from_string(old.member_id.clone());
                response.members.clear();
            }
            self.persist_group(group_id, ctx.now_ms, None);
            return self.reply(ctx, response);
        }
        self.joins
            .insert((group_id.to_string(), new_id.clone()), ctx.clone());
        self.prepare_rebalance(
            group_id,
            ctx.now_ms,
            &format!("static member {new_id} rejoined"),
        );
        self.maybe_complete_join(group_id, ctx.now_ms);
    }

    /// The JoinGroup answer for `member_id` in the group's current generation.
    pub(super) fn join_response(
        &self,
        group: &Group,
        member_id: &str,
        version: i16,
    ) -> JoinGroupResponse {
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let leader = group.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            group
                .members
                .values()
                .map(|m| {
                    let mut entry = JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id.clone()))
                        .with_metadata(m.metadata_for(&protocol));
                    if version >= 5 {
                        entry.group_instance_id =
                            m.group_instance_id.clone().map(StrBytes::from_string);
                    }
                    entry
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut response = JoinGroupResponse::default()
            .with_generation_id(group.generation_id)
            .with_protocol_name(Some(StrBytes::from_string(protocol)))
            .with_leader(StrBytes::from_string(leader))
            .with_member_id(StrBytes::from_string(member_id.to_string()))
            .with_members(members);
        if version >= 7 {
            response.protocol_type = group.protocol_type.clone().map(StrBytes::from_string);
        }
        response
    }

    /// A new member id, as Kafka makes them: the client id, a dash, a random UUID.
    pub(super) fn new_member_id(&mut self, client_id: &str) -> String {
        let bytes = self.rng.bytes16();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // Kafka's records hold strings of at most i16::MAX bytes: keep the client id part short.
        let client_id: String = client_id.chars().take(256).collect();
        format!(
            "{client_id}-{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    pub(super) fn next_join_seq(&mut self) -> u64 {
        self.next_member_seq += 1;
        self.next_member_seq
    }
}

/// A JoinGroup error answer, as Kafka's `joinError`: no generation, and no protocol name (null
/// from v7, where it is nullable).
pub(super) fn join_error(code: i16, member_id: &str, version: i16) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_protocol_name((version < 7).then(StrBytes::default))
}
