//! The group coordinator's machinery shared by the group APIs: the groups, the requests waiting
//! on a rebalance (JoinGroup, SyncGroup), rebalance and session deadlines driven by `now`, and
//! the durable record of groups and committed offsets in `__consumer_offsets`.
//!
//! Transitions follow Kafka's classic group protocol: a join moves the group to
//! PreparingRebalance; the rebalance completes when every member has rejoined (or the rebalance
//! timeout removes those that did not), answering every JoinGroup of the new generation and
//! moving to CompletingRebalance; the leader's SyncGroup hands out the assignment and makes the
//! group Stable. A member whose session expires is removed and the group rebalances.

use super::{Broker, PlantedBug, RequestContext};
use crate::batch;
use crate::errors;
use crate::groups::{
    self, CommittedOffset, Group, GroupSnapshot, GroupState, Member, MemberSnapshot, OffsetsRecord,
    OFFSETS_TOPIC,
};
use crate::io::{ConnId, Level};
use crate::partition::{Until, Waiter};
use crate::topics::TopicId;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, OffsetCommitResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::BTreeMap;

/// An OffsetCommit waiting for its records to be committed (durable) before it is applied and
/// answered; its offsets partition tells it (`Waiter::OffsetCommit`).
pub(super) struct PendingCommit {
    pub ctx: RequestContext,
    pub group: String,
    pub offsets: Vec<((String, i32), CommittedOffset)>,
    pub response: OffsetCommitResponse,
    pub deadline_ms: i64,
}

#[derive(Default)]
pub(super) struct Coordinator {
    pub groups: BTreeMap<String, Group>,
    /// JoinGroup and SyncGroup requests waiting on the rebalance, by (group, member).
    pub joins: BTreeMap<(String, String), RequestContext>,
    pub syncs: BTreeMap<(String, String), RequestContext>,
    /// OffsetCommits waiting for their records, by id.
    pub commits: BTreeMap<u64, PendingCommit>,
    /// Groups whose new generation's assignment waits for its record to be committed before
    /// the SyncGroup answers go out (Kafka stores the group before it answers): the wait's id
    /// (`Waiter::GroupSync`) and its deadline.
    pub sync_waits: BTreeMap<String, (u64, i64)>,
    /// Ids of commits and sync waits.
    next_wait: u64,
    /// OffsetFetch requests held until their group's commits in flight are applied, so a new
    /// owner never reads an offset that an older commit is about to replace.
    pub offset_fetches: Vec<(RequestContext, kafka_protocol::messages::OffsetFetchRequest)>,
    next_member_seq: u64,
    /// Groups replayed from the log get fresh session deadlines from the first `now` seen.
    pub sessions_need_start: bool,
    pub retention_check_at_ms: i64,
    /// The `now` of the last request or timeout; a later `now` below it is the wall clock
    /// stepping back.
    last_now_ms: Option<i64>,
}

impl Broker {
    /// Called with the `now` of every request and timeout: keeps group timers running through
    /// a step back of the wall clock, and starts the sessions of recovered groups from the first
    /// time the broker is told of.
    pub(super) fn start_group_sessions(&mut self, now_ms: i64) {
        self.follow_clock_step_back(now_ms);
        if !self.coordinator.sessions_need_start {
            return;
        }
        self.coordinator.sessions_need_start = false;
        for group in self.coordinator.groups.values_mut() {
            for member in group.members.values_mut() {
                member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
            }
        }
        self.coordinator.retention_check_at_ms =
            now_ms + self.config.groups.offsets_retention_check_interval_ms;
    }

    /// Kafka runs sessions, rebalance timeouts and its other group timers on a monotonic clock,
    /// so a step of the wall clock does not move them. The core is told wall time only: when
    /// `now` goes back, every group deadline goes back by as much, keeping the time each timer
    /// had left. Otherwise a step back of N seconds would keep a member that stopped
    /// heartbeating, and a rebalance waiting on it, alive N seconds past their timeouts. Time
    /// between the step and the next input is not counted (timers run that much late), and a
    /// step forward cannot be told from time passing (it ends timers early).
    fn follow_clock_step_back(&mut self, now_ms: i64) {
        let last_ms = self.coordinator.last_now_ms.replace(now_ms);
        let Some(step_ms) = last_ms.map(|last| last - now_ms).filter(|step| *step > 0) else {
            return;
        };
        // Sessions of recovered members not started yet stay unstarted.
        let back = |deadline: &mut i64| {
            if *deadline != i64::MAX {
                *deadline -= step_ms;
            }
        };
        let coordinator = &mut self.coordinator;
        for group in coordinator.groups.values_mut() {
            group
                .members
                .values_mut()
                .for_each(|m| back(&mut m.session_deadline_ms));
            group.pending_members.values_mut().for_each(back);
            if let Some(deadline_ms) = group.rebalance_deadline_ms.as_mut() {
                back(deadline_ms);
            }
        }
        for commit in coordinator.commits.values_mut() {
            back(&mut commit.deadline_ms);
        }
        for (_, deadline_ms) in coordinator.sync_waits.values_mut() {
            back(deadline_ms);
        }
        if coordinator.retention_check_at_ms > 0 {
            back(&mut coordinator.retention_check_at_ms);
        }
        self.log(
            Level::Warn,
            format!(
                "the clock stepped back {step_ms} ms; group timers keep the time they had left"
            ),
        );
    }

    pub(super) fn group_deadline_ms(&self) -> Option<i64> {
        let groups = self
            .coordinator
            .groups
            .values()
            .filter_map(Group::next_deadline_ms)
            .min();
        let commits = self
            .coordinator
            .commits
            .values()
            .map(|c| c.deadline_ms)
            .min();
        let syncs = self
            .coordinator
            .sync_waits
            .values()
            .map(|(_, deadline)| *deadline)
            .min();
        let retention = (self.coordinator.retention_check_at_ms > 0)
            .then_some(self.coordinator.retention_check_at_ms);
        groups
            .into_iter()
            .chain(commits)
            .chain(syncs)
            .chain(retention)
            .min()
    }

    pub(super) fn drop_group_requests(&mut self, conn: ConnId) {
        self.coordinator.joins.retain(|_, ctx| ctx.conn != conn);
        self.coordinator.syncs.retain(|_, ctx| ctx.conn != conn);
        self.coordinator.commits.retain(|_, c| c.ctx.conn != conn);
        self.coordinator
            .offset_fetches
            .retain(|(ctx, _)| ctx.conn != conn);
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
        self.coordinator.next_member_seq += 1;
        self.coordinator.next_member_seq
    }

    pub(super) fn client_host(&self, conn: ConnId) -> String {
        self.conn_hosts
            .get(&conn)
            .cloned()
            .unwrap_or_else(|| "/unknown".into())
    }

    /// Creates `__consumer_offsets` on first use, as Kafka does.
    pub(super) fn ensure_offsets_topic(&mut self) {
        if !self.topics.contains_key(OFFSETS_TOPIC) {
            let partitions = self.config.groups.offsets_topic_partitions;
            let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
            self.create_topic(OFFSETS_TOPIC, partitions, configs);
            self.pump_io();
        }
    }

    // ---- rebalancing ----

    /// Moves a group to PreparingRebalance: pending syncs are told to rejoin, and a deadline is
    /// set (the initial delay for an empty group, else the longest rebalance timeout).
    pub(super) fn prepare_rebalance(&mut self, group_id: &str, now_ms: i64, reason: &str) {
        let initial_delay = self.config.groups.initial_rebalance_delay_ms;
        let Some(group) = self.coordinator.groups.get_mut(group_id) else {
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
            .coordinator
            .syncs
            .keys()
            .filter(|(g, _)| g == group_id)
            .cloned()
            .collect();
        for key in waiting {
            let ctx = self.coordinator.syncs.remove(&key).expect("listed above");
            self.respond(
                &ctx,
                &SyncGroupResponse::default().with_error_code(errors::REBALANCE_IN_PROGRESS),
            );
        }
        // An assignment still being stored belongs to the generation this rebalance ends; its
        // syncs were just told to rejoin. Its flush must not answer the next generation's syncs
        // (Kafka hands out a stored assignment only if its generation is still current).
        self.coordinator.sync_waits.remove(group_id);
        self.log(
            Level::Info,
            format!("group '{group_id}' (generation {generation}) is rebalancing: {reason}"),
        );
    }

    /// Completes the rebalance once every member has rejoined (not during the initial delay).
    pub(super) fn maybe_complete_join(&mut self, group_id: &str, now_ms: i64) {
        let Some(group) = self.coordinator.groups.get(group_id) else {
            return;
        };
        if group.state != GroupState::PreparingRebalance || group.initial_rebalance {
            return;
        }
        let all_joined = group.pending_members.is_empty()
            && group.members.keys().all(|m| {
                self.coordinator
                    .joins
                    .contains_key(&(group_id.to_string(), m.clone()))
            });
        if all_joined {
            self.complete_join(group_id, now_ms);
        }
    }

    /// Ends PreparingRebalance: members that did not rejoin are dropped, a new generation starts,
    /// and every waiting JoinGroup is answered (the leader gets the members and their metadata).
    pub(super) fn complete_join(&mut self, group_id: &str, now_ms: i64) {
        let joined: Vec<String> = self
            .coordinator
            .joins
            .keys()
            .filter(|(g, _)| g == group_id)
            .map(|(_, m)| m.clone())
            .collect();
        let Some(group) = self.coordinator.groups.get_mut(group_id) else {
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
            self.persist_group(group_id, now_ms);
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
                .coordinator
                .joins
                .remove(&(group_id.to_string(), member_id.clone()))
            else {
                continue;
            };
            let response = self.join_response(&group, member_id, ctx.version);
            self.respond(&ctx, &response);
        }
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
        if let Some(ctx) = self.coordinator.joins.remove(&key) {
            let response =
                super::join_group::join_error(errors::UNKNOWN_MEMBER_ID, member_id, ctx.version);
            self.respond(&ctx, &response);
        }
        if let Some(ctx) = self.coordinator.syncs.remove(&key) {
            self.respond(
                &ctx,
                &SyncGroupResponse::default().with_error_code(errors::UNKNOWN_MEMBER_ID),
            );
        }
        let Some(group) = self.coordinator.groups.get_mut(group_id) else {
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
        let Some(group) = self.coordinator.groups.get(group_id) else {
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
        let group_ids: Vec<String> = self.coordinator.groups.keys().cloned().collect();
        for group_id in group_ids {
            let Some(group) = self.coordinator.groups.get_mut(&group_id) else {
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
            let Some(group) = self.coordinator.groups.get_mut(&group_id) else {
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
                let parked = self.coordinator.joins.contains_key(&key)
                    || self.coordinator.syncs.contains_key(&key);
                if parked && self.config.planted_bug != Some(PlantedBug::StuckGroupDeadline) {
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
        self.expire_offsets(now_ms);
        self.expire_commits(now_ms);
        self.expire_syncs(now_ms);
    }

    /// `offsets.retention.minutes`: the offsets of a group with no members expire once the
    /// retention has passed since the group emptied (or since the commit, if later).
    fn expire_offsets(&mut self, now_ms: i64) {
        let check_at = self.coordinator.retention_check_at_ms;
        if check_at == 0 || now_ms < check_at {
            if check_at == 0 {
                self.coordinator.retention_check_at_ms =
                    now_ms + self.config.groups.offsets_retention_check_interval_ms;
            }
            return;
        }
        self.coordinator.retention_check_at_ms =
            now_ms + self.config.groups.offsets_retention_check_interval_ms;
        let retention = self.config.groups.offsets_retention_ms;
        // (group, offsets that expired, whether the group goes too)
        type Expired = (String, Vec<(String, i32)>, bool);
        let mut expired: Vec<Expired> = Vec::new();
        for group in self.coordinator.groups.values() {
            if group.state != GroupState::Empty {
                continue;
            }
            let gone: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, o)| {
                    o.commit_timestamp_ms.max(group.empty_since_ms) + retention <= now_ms
                })
                .map(|(key, _)| key.clone())
                .collect();
            let drop_group = gone.len() == group.offsets.len();
            if !gone.is_empty() || drop_group {
                expired.push((group.group_id.clone(), gone, drop_group));
            }
        }
        for (group_id, gone, drop_group) in expired {
            self.log(
                Level::Info,
                format!(
                    "group '{group_id}': {} committed offset(s) expired",
                    gone.len()
                ),
            );
            self.delete_offsets(&group_id, &gone, now_ms);
            if drop_group {
                self.coordinator.groups.remove(&group_id);
                self.append_offsets_records(
                    &group_id,
                    vec![OffsetsRecord::Group {
                        group: group_id.clone(),
                        value: None,
                    }],
                    now_ms,
                );
            }
        }
    }

    // ---- durability ----

    /// Appends records to the group's offsets partition; returns where the batch's last record
    /// went, to wait for its flush. `None` when the partition cannot take writes.
    pub(super) fn append_offsets_records(
        &mut self,
        group_id: &str,
        records: Vec<OffsetsRecord>,
        now_ms: i64,
    ) -> Option<(TopicId, i32, i64)> {
        if records.is_empty() {
            return None;
        }
        self.ensure_offsets_topic();
        let partition =
            groups::partition_for(group_id, self.config.groups.offsets_topic_partitions);
        let topic = self.topics.get_mut(OFFSETS_TOPIC)?;
        let id = topic.id;
        if self.offline.contains(&(id, partition)) {
            return None;
        }
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let (key, value) = record.encode();
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    // The codec starts a new batch where offset - sequence changes: offset - 1
                    // keeps one batch whose base sequence is -1 (no producer id).
                    sequence: i as i32 - 1,
                    timestamp: now_ms,
                    key: Some(key),
                    value,
                    headers: Default::default(),
                }
            })
            .collect();
        let mut bytes = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut bytes, &records, &options).ok()?;
        let batches = batch::validate_all(&bytes).ok()?;
        let policy = topic.segment_policy();
        let state = topic.partitions.get_mut(partition as usize)?;
        let mut last_offset = -1;
        let mut position = 0;
        for info in &batches {
            let one = BytesMut::from(&bytes[position..position + info.size_bytes]);
            position += info.size_bytes;
            last_offset = state
                .append_as_leader(one, info, now_ms, false, &policy)
                .last_offset;
        }
        // Group records are synced at once, whether or not a request waits for them.
        state.log.want_durable(last_offset + 1);
        self.note_cached(position);
        self.dirty.insert((OFFSETS_TOPIC.to_string(), partition));
        self.pump_io();
        Some((id, partition, last_offset))
    }

    /// Records the group's membership so a restart brings it back (Kafka writes it on each new
    /// generation's assignment, and when the group empties).
    pub(super) fn persist_group(
        &mut self,
        group_id: &str,
        now_ms: i64,
    ) -> Option<(TopicId, i32, i64)> {
        let group = self.coordinator.groups.get(group_id)?;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let snapshot = GroupSnapshot {
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            generation_id: group.generation_id,
            protocol_name: group.protocol_name.clone(),
            leader: group.leader.clone(),
            timestamp_ms: now_ms,
            members: group
                .members
                .values()
                .map(|m| MemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        let record = OffsetsRecord::Group {
            group: group_id.to_string(),
            value: Some(snapshot),
        };
        self.append_offsets_records(group_id, vec![record], now_ms)
    }

    /// Removes committed offsets and writes their tombstones.
    pub(super) fn delete_offsets(&mut self, group_id: &str, keys: &[(String, i32)], now_ms: i64) {
        let Some(group) = self.coordinator.groups.get_mut(group_id) else {
            return;
        };
        let records: Vec<OffsetsRecord> = keys
            .iter()
            .filter(|key| group.offsets.remove(*key).is_some())
            .map(|(topic, partition)| OffsetsRecord::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition: *partition,
                value: None,
            })
            .collect();
        self.append_offsets_records(group_id, records, now_ms);
    }

    /// An OffsetCommit's records were appended to the offsets partition: it waits until they
    /// are committed (or, with the planted bug, is applied at once).
    pub(super) fn wait_for_commit(&mut self, commit: PendingCommit, wait: (TopicId, i32, i64)) {
        let id = self.next_wait_id();
        let (topic, partition, last_offset) = wait;
        self.coordinator.commits.insert(id, commit);
        if self.config.planted_bug == Some(super::PlantedBug::CommitBeforeFlush) {
            let now_ms = self.now_ms;
            return self.on_commit_settled(now_ms, id, true);
        }
        if let Some(p) = self.partition_mut(topic, partition) {
            p.wait_for(last_offset + 1, Until::Durable, Waiter::OffsetCommit(id));
        }
    }

    /// An OffsetCommit's records are committed (`ok`), or their partition failed: it is
    /// applied and answered, or answered COORDINATOR_NOT_AVAILABLE (retriable), as Kafka maps
    /// append failures. OffsetFetches held for its group go on.
    pub(super) fn on_commit_settled(&mut self, now_ms: i64, id: u64, ok: bool) {
        let Some(mut commit) = self.coordinator.commits.remove(&id) else {
            return; // timed out already, or its connection closed
        };
        if ok {
            let group = self
                .coordinator
                .groups
                .entry(commit.group.clone())
                .or_insert_with(|| Group::new(&commit.group, now_ms));
            for (key, offset) in commit.offsets {
                group.offsets.insert(key, offset);
            }
        } else {
            for topic in &mut commit.response.topics {
                for p in &mut topic.partitions {
                    if p.error_code == errors::NONE {
                        p.error_code = errors::COORDINATOR_NOT_AVAILABLE;
                    }
                }
            }
        }
        self.respond(&commit.ctx, &commit.response);
        let held = std::mem::take(&mut self.coordinator.offset_fetches);
        for (ctx, request) in held {
            self.on_offset_fetch(&ctx, request);
        }
    }

    /// OffsetCommits whose records took too long are answered as failed.
    fn expire_commits(&mut self, now_ms: i64) {
        let due: Vec<u64> = self
            .coordinator
            .commits
            .iter()
            .filter(|(_, c)| c.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.on_commit_settled(now_ms, id, false);
        }
    }

    /// A group's new assignment was appended: its SyncGroup answers wait until it is
    /// committed (a failed append fails them at once).
    pub(super) fn wait_for_sync(
        &mut self,
        group_id: &str,
        wait: Option<(TopicId, i32, i64)>,
        deadline_ms: i64,
    ) {
        let id = self.next_wait_id();
        self.coordinator
            .sync_waits
            .insert(group_id.to_string(), (id, deadline_ms));
        let partition = wait.and_then(|(topic, partition, last_offset)| {
            let p = self.partition_mut(topic, partition)?;
            p.wait_for(last_offset + 1, Until::Durable, Waiter::GroupSync(id));
            Some(())
        });
        if partition.is_none() {
            let now_ms = self.now_ms;
            self.on_sync_settled(now_ms, id, false);
        }
    }

    /// A group's new assignment is committed (`ok`), or could not be stored: its members are
    /// answered, or told COORDINATOR_NOT_AVAILABLE and the group rebalances, as Kafka does when
    /// it cannot store a group. A wait a rebalance ended is gone already.
    pub(super) fn on_sync_settled(&mut self, now_ms: i64, id: u64, ok: bool) {
        let Some(group_id) = self
            .coordinator
            .sync_waits
            .iter()
            .find(|(_, (wait, _))| *wait == id)
            .map(|(group, _)| group.clone())
        else {
            return;
        };
        self.coordinator.sync_waits.remove(&group_id);
        let waiting: Vec<(String, String)> = self
            .coordinator
            .syncs
            .keys()
            .filter(|(g, _)| *g == group_id)
            .cloned()
            .collect();
        for key in waiting {
            let ctx = self.coordinator.syncs.remove(&key).expect("listed above");
            let response = match ok {
                true => self.sync_response(&group_id, &key.1, ctx.version),
                false => {
                    SyncGroupResponse::default().with_error_code(errors::COORDINATOR_NOT_AVAILABLE)
                }
            };
            self.respond(&ctx, &response);
        }
        if !ok {
            self.prepare_rebalance(&group_id, now_ms, "its assignment could not be stored");
        }
    }

    /// Assignments whose store took too long fail.
    fn expire_syncs(&mut self, now_ms: i64) {
        let due: Vec<u64> = self
            .coordinator
            .sync_waits
            .values()
            .filter(|(_, deadline_ms)| *deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.on_sync_settled(now_ms, id, false);
        }
    }

    fn next_wait_id(&mut self) -> u64 {
        self.coordinator.next_wait += 1;
        self.coordinator.next_wait
    }

    /// Whether the group's new assignment waits for its flush.
    pub(super) fn sync_in_flight(&self, group_id: &str) -> bool {
        self.coordinator.sync_waits.contains_key(group_id)
    }

    /// Whether a commit of this group waits for its flush.
    pub(super) fn commit_in_flight(&self, group_id: &str) -> bool {
        self.coordinator
            .commits
            .values()
            .any(|c| c.group == group_id)
    }

    /// Replays the records of an offsets partition read at start-up.
    pub(super) fn replay_offsets_partition(&mut self, data: &[u8]) {
        let mut position = 0;
        let mut replayed = 0usize;
        while position < data.len() {
            let Ok(info) = batch::validate(&data[position..]) else {
                break;
            };
            let mut one = Bytes::copy_from_slice(&data[position..position + info.size_bytes]);
            position += info.size_bytes;
            let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut one) else {
                continue;
            };
            for record in set.records {
                let Some(key) = record.key else { continue };
                match OffsetsRecord::decode(&key, record.value.as_deref()) {
                    Ok(decoded) => {
                        self.apply_offsets_record(decoded, record.timestamp);
                        replayed += 1;
                    }
                    Err(error) => self.log(
                        Level::Warn,
                        format!("{OFFSETS_TOPIC}: skipping a record: {error}"),
                    ),
                }
            }
        }
        if replayed > 0 {
            self.coordinator.sessions_need_start = true;
            let groups = self.coordinator.groups.len();
            self.log(
                Level::Info,
                format!("replayed {replayed} group record(s): {groups} group(s)"),
            );
        }
    }

    fn apply_offsets_record(&mut self, record: OffsetsRecord, timestamp_ms: i64) {
        match record {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let entry = self
                    .coordinator
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, timestamp_ms));
                match value {
                    Some(offset) => {
                        entry.offsets.insert((topic, partition), offset);
                    }
                    None => {
                        entry.offsets.remove(&(topic, partition));
                    }
                }
            }
            OffsetsRecord::Group { group, value: None } => {
                self.coordinator.groups.remove(&group);
            }
            OffsetsRecord::Group {
                group,
                value: Some(snapshot),
            } => {
                let entry = self
                    .coordinator
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, timestamp_ms));
                entry.generation_id = snapshot.generation_id;
                entry.protocol_type = Some(snapshot.protocol_type).filter(|t| !t.is_empty());
                entry.protocol_name = snapshot.protocol_name.clone();
                entry.leader = snapshot.leader;
                entry.members.clear();
                let protocol = snapshot.protocol_name.unwrap_or_default();
                for (seq, m) in snapshot.members.into_iter().enumerate() {
                    entry.members.insert(
                        m.member_id.clone(),
                        Member {
                            member_id: m.member_id,
                            group_instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            session_timeout_ms: m.session_timeout_ms,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            protocols: vec![(protocol.clone(), m.subscription)],
                            assignment: m.assignment,
                            session_deadline_ms: i64::MAX,
                            joined_seq: seq as u64,
                        },
                    );
                }
                entry.state = if entry.members.is_empty() {
                    GroupState::Empty
                } else {
                    GroupState::Stable
                };
                entry.empty_since_ms = timestamp_ms;
            }
        }
    }
}
