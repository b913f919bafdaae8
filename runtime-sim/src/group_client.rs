//! A simulated consumer-group member, following the classic consumer protocol the way the Java
//! client and librdkafka do: JoinGroup (with the KIP-394 member-id round), the leader computes
//! a range assignment, SyncGroup, OffsetFetch, then fetch, commit every half second and
//! heartbeat every second; REBALANCE_IN_PROGRESS means rejoin, UNKNOWN_MEMBER_ID means start
//! over. Under faults it also leaves the group (a static member just stops, KIP-345), stalls
//! past its session timeout as a hung process would, or is slow to rejoin a rebalance while it
//! keeps heartbeating, as a consumer whose application is slow to poll
//! (`max.poll.interval.ms`, the rebalance timeout). Its timeouts and habits come from the
//! seed's [`GroupProfile`].

use crate::client::Micros;
use crate::faults::GroupProfile;
use crate::history::{Assignment, Commit, History, OffsetRead};
use crate::rng::Stream;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use spate_core::errors;
use std::collections::BTreeMap;

const HEARTBEAT_US: Micros = 1_000_000;
const COMMIT_US: Micros = 500_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Joining,
    /// Told a rebalance is on: rejoin now, or (slow to poll) later.
    Rebalancing,
    /// Heartbeating, but rejoining only at `at`: the application has not polled yet.
    RejoinAt {
        at: Micros,
    },
    Syncing,
    FetchingOffsets,
    Consuming,
    /// Not talking to the broker until then (left the group, or hung).
    Paused {
        until: Micros,
    },
}

/// The request a member wants to send next.
pub enum GroupRequest {
    Join(JoinGroupRequest),
    Sync(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    Leave(LeaveGroupRequest),
    OffsetFetch(OffsetFetchRequest),
    Commit(OffsetCommitRequest),
    Fetch(FetchRequest),
}

#[derive(Debug, Clone)]
pub struct GroupMember {
    pub group: String,
    pub topic: String,
    pub partitions: i32,
    pub member_id: String,
    /// `group.instance.id`, for a static member.
    pub instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    slow_rejoin_per_mille: u64,
    pub generation: i32,
    pub phase: Phase,
    leader_members: Vec<String>,
    pub assigned: Vec<i32>,
    pub positions: BTreeMap<i32, i64>,
    committed: BTreeMap<i32, i64>,
    last_heartbeat: Micros,
    last_commit: Micros,
    /// What the commit in flight carries, recorded when it is acknowledged.
    commit_in_flight: Vec<(i32, i64)>,
    offset_fetch_sent_at: Micros,
}

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

impl GroupMember {
    pub fn new(
        group: &str,
        topic: &str,
        partitions: i32,
        index: usize,
        profile: &GroupProfile,
    ) -> GroupMember {
        GroupMember {
            group: group.to_string(),
            topic: topic.to_string(),
            partitions,
            member_id: String::new(),
            instance_id: profile
                .static_members
                .then(|| format!("{group}-instance-{index}")),
            session_timeout_ms: profile.session_timeout_ms,
            rebalance_timeout_ms: profile.rebalance_timeout_ms,
            slow_rejoin_per_mille: profile.slow_rejoin_per_mille,
            generation: -1,
            phase: Phase::Joining,
            leader_members: Vec::new(),
            assigned: Vec::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            last_heartbeat: 0,
            last_commit: 0,
            commit_in_flight: Vec::new(),
            offset_fetch_sent_at: 0,
        }
    }

    fn subscription(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        ConsumerProtocolSubscription::default()
            .with_topics(vec![StrBytes::from_string(self.topic.clone())])
            .encode(&mut buf, 0)
            .expect("subscription encodes");
        buf.freeze()
    }

    fn assignment(&self, partitions: Vec<i32>) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(0);
        let topic = AssignedPartitions::default()
            .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
            .with_partitions(partitions);
        ConsumerProtocolAssignment::default()
            .with_assigned_partitions(vec![topic])
            .encode(&mut buf, 0)
            .expect("assignment encodes");
        buf.freeze()
    }

    /// The range assignor: members in id order get contiguous runs of partitions.
    fn range_assignment(&self) -> Vec<SyncGroupRequestAssignment> {
        let mut members = self.leader_members.clone();
        members.sort();
        let count = members.len() as i32;
        let (per, extra) = (self.partitions / count, self.partitions % count);
        let mut next = 0;
        members
            .iter()
            .enumerate()
            .map(|(i, member)| {
                let take = per + i32::from((i as i32) < extra);
                let partitions = (next..next + take).collect();
                next += take;
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from_string(member.clone()))
                    .with_assignment(self.assignment(partitions))
            })
            .collect()
    }

    pub fn is_settled(&self) -> bool {
        self.phase == Phase::Consuming
    }

    /// The next request, if any; `faulty` allows leaving and stalling.
    pub fn next_request(
        &mut self,
        now: Micros,
        rng: &mut Stream,
        faulty: bool,
    ) -> Option<GroupRequest> {
        if let Phase::Paused { until } = self.phase {
            if now < until {
                return None;
            }
            self.phase = Phase::Joining;
        }
        if faulty && self.phase == Phase::Consuming {
            if rng.chance(2) {
                // Stop, and come back later: a dynamic member leaves and returns as a new one;
                // a static member sends no LeaveGroup and returns into its old place.
                let member = MemberIdentity::default()
                    .with_member_id(StrBytes::from_string(self.member_id.clone()))
                    .with_group_instance_id(self.instance_id.clone().map(StrBytes::from_string));
                let request = LeaveGroupRequest::default()
                    .with_group_id(group_id(&self.group))
                    .with_members(vec![member]);
                self.reset(now + rng.range(100_000, 3_000_000));
                return match self.instance_id {
                    Some(_) => None,
                    None => Some(GroupRequest::Leave(request)),
                };
            }
            if rng.chance(2) {
                // Hang past the session timeout: the coordinator must expire this member.
                let session_us = self.session_timeout_ms as Micros * 1_000;
                self.phase = Phase::Paused {
                    until: now + session_us + rng.range(1_000_000, 5_000_000),
                };
                return None;
            }
        }
        if self.phase == Phase::Rebalancing {
            self.phase = Phase::Joining;
            if faulty && rng.chance(self.slow_rejoin_per_mille) {
                let rebalance_us = self.rebalance_timeout_ms as Micros * 1_000;
                self.phase = Phase::RejoinAt {
                    at: now + rng.range(0, rebalance_us * 3 / 2),
                };
            }
        }
        if let Phase::RejoinAt { at } = self.phase {
            // Once the faults stop, a slow member polls within 8 s (longer than a 6 s session,
            // shorter than the quiet phase), so the group settles in the quiet phase.
            let at = if faulty { at } else { at.min(now + 8_000_000) };
            self.phase = match now >= at {
                true => Phase::Joining,
                false => Phase::RejoinAt { at },
            };
        }
        match self.phase {
            Phase::Paused { .. } | Phase::Rebalancing => None,
            Phase::Joining => {
                let protocol = JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(self.subscription());
                Some(GroupRequest::Join(
                    JoinGroupRequest::default()
                        .with_group_id(group_id(&self.group))
                        .with_session_timeout_ms(self.session_timeout_ms)
                        .with_rebalance_timeout_ms(self.rebalance_timeout_ms)
                        .with_member_id(StrBytes::from_string(self.member_id.clone()))
                        .with_group_instance_id(self.instance_id())
                        .with_protocol_type(StrBytes::from_static_str("consumer"))
                        .with_protocols(vec![protocol]),
                ))
            }
            Phase::RejoinAt { .. } if now >= self.last_heartbeat + HEARTBEAT_US => {
                self.last_heartbeat = now;
                Some(self.heartbeat())
            }
            Phase::RejoinAt { .. } => None,
            Phase::Syncing => {
                let assignments = if self.leader_members.is_empty() {
                    Vec::new()
                } else {
                    self.range_assignment()
                };
                Some(GroupRequest::Sync(
                    SyncGroupRequest::default()
                        .with_group_id(group_id(&self.group))
                        .with_generation_id(self.generation)
                        .with_member_id(StrBytes::from_string(self.member_id.clone()))
                        .with_group_instance_id(self.instance_id())
                        .with_assignments(assignments),
                ))
            }
            Phase::FetchingOffsets => {
                self.offset_fetch_sent_at = now;
                let topic = OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_partition_indexes(self.assigned.clone());
                Some(GroupRequest::OffsetFetch(
                    OffsetFetchRequest::default()
                        .with_group_id(group_id(&self.group))
                        .with_topics(Some(vec![topic])),
                ))
            }
            Phase::Consuming if now >= self.last_heartbeat + HEARTBEAT_US => {
                self.last_heartbeat = now;
                Some(self.heartbeat())
            }
            Phase::Consuming
                if now >= self.last_commit + COMMIT_US
                    && self
                        .positions
                        .iter()
                        .any(|(p, o)| self.committed.get(p) != Some(o)) =>
            {
                self.last_commit = now;
                self.commit_in_flight = self.positions.iter().map(|(p, o)| (*p, *o)).collect();
                let partitions = self
                    .commit_in_flight
                    .iter()
                    .map(|(p, o)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(*o)
                    })
                    .collect();
                let topic = OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_partitions(partitions);
                Some(GroupRequest::Commit(
                    OffsetCommitRequest::default()
                        .with_group_id(group_id(&self.group))
                        .with_generation_id_or_member_epoch(self.generation)
                        .with_member_id(StrBytes::from_string(self.member_id.clone()))
                        .with_group_instance_id(self.instance_id())
                        .with_topics(vec![topic]),
                ))
            }
            Phase::Consuming if self.assigned.is_empty() => None,
            Phase::Consuming => {
                let partitions = self
                    .assigned
                    .iter()
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(self.positions[p])
                            .with_partition_max_bytes(64 * 1024)
                    })
                    .collect();
                let topic = FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_partitions(partitions);
                Some(GroupRequest::Fetch(
                    FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_wait_ms(rng.range(0, 300) as i32)
                        .with_min_bytes(1)
                        .with_max_bytes(1 << 20)
                        .with_topics(vec![topic]),
                ))
            }
        }
    }

    fn instance_id(&self) -> Option<StrBytes> {
        self.instance_id.clone().map(StrBytes::from_string)
    }

    fn heartbeat(&self) -> GroupRequest {
        GroupRequest::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(group_id(&self.group))
                .with_generation_id(self.generation)
                .with_member_id(StrBytes::from_string(self.member_id.clone()))
                .with_group_instance_id(self.instance_id()),
        )
    }

    /// Forgets the membership: the next join is as a new member.
    fn reset(&mut self, pause_until: Micros) {
        self.member_id.clear();
        self.generation = -1;
        self.assigned.clear();
        self.positions.clear();
        self.phase = Phase::Paused { until: pause_until };
    }

    fn rejoin(&mut self, code: i16) {
        if matches!(code, errors::UNKNOWN_MEMBER_ID | errors::FENCED_INSTANCE_ID) {
            self.member_id.clear();
        }
        self.assigned.clear();
        self.positions.clear();
        self.phase = match (code, self.phase) {
            // Still heartbeating until the application polls.
            (errors::REBALANCE_IN_PROGRESS, Phase::RejoinAt { at }) => Phase::RejoinAt { at },
            (errors::REBALANCE_IN_PROGRESS, _) => Phase::Rebalancing,
            _ => Phase::Joining,
        };
    }

    pub fn on_join(&mut self, response: JoinGroupResponse) {
        match response.error_code {
            errors::NONE => {
                self.member_id = response.member_id.to_string();
                self.generation = response.generation_id;
                self.leader_members = response
                    .members
                    .iter()
                    .map(|m| m.member_id.to_string())
                    .collect();
                self.phase = Phase::Syncing;
            }
            errors::MEMBER_ID_REQUIRED => self.member_id = response.member_id.to_string(),
            code => self.rejoin(code),
        }
    }

    pub fn on_sync(&mut self, response: SyncGroupResponse, client: usize, history: &mut History) {
        if response.error_code != errors::NONE {
            return self.rejoin(response.error_code);
        }
        let mut bytes = response.assignment.clone();
        let mut assigned = Vec::new();
        if bytes.len() >= 2 {
            let version = bytes.get_i16();
            if let Ok(assignment) =
                ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3))
            {
                assigned = assignment
                    .assigned_partitions
                    .into_iter()
                    .flat_map(|t| t.partitions)
                    .collect();
            }
        }
        assigned.sort();
        history.assignments.push(Assignment {
            client,
            group: self.group.clone(),
            generation: self.generation,
            partitions: assigned.clone(),
        });
        self.assigned = assigned;
        self.phase = Phase::FetchingOffsets;
    }

    pub fn on_heartbeat(&mut self, response: HeartbeatResponse) {
        if response.error_code != errors::NONE {
            self.rejoin(response.error_code);
        }
    }

    pub fn on_offset_fetch(
        &mut self,
        response: OffsetFetchResponse,
        client: usize,
        history: &mut History,
    ) {
        if response.error_code != errors::NONE {
            return self.rejoin(response.error_code);
        }
        self.positions.clear();
        for topic in response.topics {
            for partition in topic.partitions {
                history.offset_reads.push(OffsetRead {
                    client,
                    group: self.group.clone(),
                    partition: partition.partition_index,
                    offset: partition.committed_offset,
                    sent_at: self.offset_fetch_sent_at,
                });
                let offset = partition.committed_offset.max(0);
                self.positions.insert(partition.partition_index, offset);
                self.committed.insert(partition.partition_index, offset);
            }
        }
        for p in &self.assigned {
            self.positions.entry(*p).or_insert(0);
        }
        self.phase = Phase::Consuming;
    }

    pub fn on_commit(
        &mut self,
        response: OffsetCommitResponse,
        client: usize,
        now: Micros,
        history: &mut History,
    ) {
        let mut rejoin = None;
        for topic in response.topics {
            for partition in topic.partitions {
                let sent = self
                    .commit_in_flight
                    .iter()
                    .find(|(p, _)| *p == partition.partition_index)
                    .map(|(_, o)| *o);
                match (partition.error_code, sent) {
                    (errors::NONE, Some(offset)) => {
                        self.committed.insert(partition.partition_index, offset);
                        history.commits.push(Commit {
                            client,
                            group: self.group.clone(),
                            generation: self.generation,
                            partition: partition.partition_index,
                            offset,
                            at: now,
                        });
                    }
                    (errors::NONE, None) => {}
                    (errors::COORDINATOR_NOT_AVAILABLE, _) => {}
                    (code, _) => rejoin = Some(code),
                }
            }
        }
        self.commit_in_flight.clear();
        if let Some(code) = rejoin {
            self.rejoin(code);
        }
    }
}
