//! Consumer groups: the state of one group, with Kafka's own state names, and the records that
//! make groups and committed offsets durable in the internal `__consumer_offsets` topic.
//!
//! The coordinator's request handlers live in `group_coordinator/`; this module holds
//! the data and the rules that need no request to apply: membership, protocol selection,
//! deadlines, and the record format (Kafka's own key and value schemas, so tools that read
//! `__consumer_offsets` understand it).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Group settings, with Kafka's names and defaults (but one offsets partition: see below).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions`. Kafka's default is 50 to spread groups over brokers; with
    /// one broker a single partition serves as well and keeps start-up to one file.
    pub offsets_topic_partitions: i32,
    /// `offsets.topic.replication.factor`: on a cluster, the offsets topic is placed on this
    /// many brokers (fewer if fewer are registered when it is created), so a group's
    /// coordinator can fail over.
    pub offsets_topic_replication_factor: i16,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
    /// `offsets.retention.minutes`, in milliseconds
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            offsets_topic_partitions: 1,
            offsets_topic_replication_factor: 3,
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: usize::MAX,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// Kafka's group states; the names are what DescribeGroups and ListGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A committed offset, as Kafka's OffsetCommitValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The protocols the member supports, in its order of preference, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// The session expires if no heartbeat (or join, sync) comes by then.
    pub session_deadline_ms: i64,
    /// Order of joining: the first member to join leads.
    pub joined_seq: u64,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED (KIP-394), not joined yet, with their
    /// deadline.
    pub pending_members: BTreeMap<String, i64>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// When the current rebalance must end (PreparingRebalance).
    pub rebalance_deadline_ms: Option<i64>,
    /// The first rebalance of an empty group waits this long for more members to arrive
    /// (`group.initial.rebalance.delay.ms`); later joins within the delay do not end it early.
    pub initial_rebalance: bool,
    /// When the group last became empty (offsets of an empty group expire from then).
    pub empty_since_ms: i64,
}

impl Group {
    pub fn new(group_id: &str, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            offsets: BTreeMap::new(),
            rebalance_deadline_ms: None,
            initial_rebalance: false,
            empty_since_ms: now_ms,
        }
    }

    /// Kafka's check of the member a request comes from: a `group.instance.id` that belongs
    /// to another member id is a fenced instance (a newer process with the same instance id
    /// took its place: FENCED_INSTANCE_ID, so the old one stops instead of rejoining), checked
    /// before the member id is looked up (UNKNOWN_MEMBER_ID).
    pub fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(owner) = instance_id.and_then(|i| self.member_by_instance(i)) {
            if owner.member_id != member_id {
                return Err(crate::errors::FENCED_INSTANCE_ID);
            }
        }
        match self.members.contains_key(member_id) {
            true => Ok(()),
            false => Err(crate::errors::UNKNOWN_MEMBER_ID),
        }
    }

    pub fn member_by_instance(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.group_instance_id.as_deref() == Some(instance_id))
    }

    /// The protocol every member supports, chosen by vote: each member votes for the first of
    /// its protocols that all support, as Kafka's `selectProtocol`.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n))
            {
                *votes.entry(name).or_default() += 1;
            }
        }
        // Most votes wins; ties go to the first member's preference order.
        candidates
            .into_iter()
            .max_by_key(|name| {
                (
                    votes.get(name).copied().unwrap_or(0),
                    std::cmp::Reverse(first.protocols.iter().position(|(n, _)| n == *name)),
                )
            })
            .cloned()
    }

    /// Whether a joining member's protocols can work with the group's (same type, and at least
    /// one protocol in common with every member).
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// The topics the members subscribe to, for the consumer protocol (OffsetDelete refuses to
    /// delete offsets of a subscribed topic).
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = Vec::new();
        for member in self.members.values() {
            let mut metadata = member.metadata_for(protocol);
            if metadata.len() < 2 {
                return None;
            }
            let version = metadata.get_i16();
            use kafka_protocol::protocol::Decodable;
            let subscription = kafka_protocol::messages::ConsumerProtocolSubscription::decode(
                &mut metadata,
                version.clamp(0, 3),
            )
            .ok()?;
            topics.extend(subscription.topics.into_iter().map(|t| t.to_string()));
        }
        topics.sort();
        topics.dedup();
        Some(topics)
    }

    /// The earliest time something must happen to this group on its own.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let sessions = self.members.values().map(|m| m.session_deadline_ms);
        let pending = self.pending_members.values().copied();
        sessions
            .chain(pending)
            .chain(self.rebalance_deadline_ms)
            .min()
    }
}

// ---- the __consumer_offsets record format (Kafka's schemas) ----

/// A record of the offsets topic, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    /// OffsetCommitKey v1 → OffsetCommitValue v3, or a tombstone (None).
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    /// GroupMetadataKey v2 → GroupMetadataValue v3, or a tombstone (None).
    Group {
        group: String,
        value: Option<GroupSnapshot>,
    },
}

/// What GroupMetadataValue carries: enough to bring a Stable group back after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub timestamp_ms: i64,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

fn put_string(buf: &mut BytesMut, s: &str) {
    // Callers bound every string (group ids are refused past this, member ids are short).
    assert!(
        s.len() <= i16::MAX as usize,
        "a string of {} bytes is longer than a record allows",
        s.len()
    );
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

fn get_i16(buf: &mut &[u8]) -> Result<i16, String> {
    buf.try_get_i16()
        .map_err(|_| "record ends early".to_string())
}

fn get_i32(buf: &mut &[u8]) -> Result<i32, String> {
    buf.try_get_i32()
        .map_err(|_| "record ends early".to_string())
}

fn get_i64(buf: &mut &[u8]) -> Result<i64, String> {
    buf.try_get_i64()
        .map_err(|_| "record ends early".to_string())
}

fn get_nullable_string(buf: &mut &[u8]) -> Result<Option<String>, String> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    if buf.len() < len {
        return Err("string runs past the record".into());
    }
    let s =
        String::from_utf8(buf[..len].to_vec()).map_err(|_| "string is not UTF-8".to_string())?;
    buf.advance(len);
    Ok(Some(s))
}

fn get_string(buf: &mut &[u8]) -> Result<String, String> {
    get_nullable_string(buf)?.ok_or_else(|| "null where a string is required".to_string())
}

fn get_bytes(buf: &mut &[u8]) -> Result<Bytes, String> {
    let len = get_i32(buf)?;
    if len < 0 || buf.len() < len as usize {
        return Err("bytes run past the record".into());
    }
    let b = Bytes::copy_from_slice(&buf[..len as usize]);
    buf.advance(len as usize);
    Ok(b)
}

impl OffsetsRecord {
    /// The record's key and value (None for a tombstone).
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                key.put_i16(1);
                put_string(&mut key, group);
                put_string(&mut key, topic);
                key.put_i32(*partition);
                let value = value.as_ref().map(|v| {
                    let mut buf = BytesMut::new();
                    buf.put_i16(3);
                    buf.put_i64(v.offset);
                    buf.put_i32(v.leader_epoch);
                    put_string(&mut buf, &v.metadata);
                    buf.put_i64(v.commit_timestamp_ms);
                    buf.freeze()
                });
                (key.freeze(), value)
            }
            OffsetsRecord::Group { group, value } => {
                key.put_i16(2);
                put_string(&mut key, group);
                let value = value.as_ref().map(|g| {
                    let mut buf = BytesMut::new();
                    buf.put_i16(3);
                    put_string(&mut buf, &g.protocol_type);
                    buf.put_i32(g.generation_id);
                    put_nullable_string(&mut buf, g.protocol_name.as_deref());
                    put_nullable_string(&mut buf, g.leader.as_deref());
                    buf.put_i64(g.timestamp_ms);
                    buf.put_i32(g.members.len() as i32);
                    for m in &g.members {
                        put_string(&mut buf, &m.member_id);
                        put_nullable_string(&mut buf, m.group_instance_id.as_deref());
                        put_string(&mut buf, &m.client_id);
                        put_string(&mut buf, &m.client_host);
                        buf.put_i32(m.rebalance_timeout_ms);
                        buf.put_i32(m.session_timeout_ms);
                        put_bytes(&mut buf, &m.subscription);
                        put_bytes(&mut buf, &m.assignment);
                    }
                    buf.freeze()
                });
                (key.freeze(), value)
            }
        }
    }

    /// Reads a record written by [`OffsetsRecord::encode`] (or by Kafka, for these versions).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<OffsetsRecord, String> {
        let mut key = key;
        match get_i16(&mut key)? {
            0 | 1 => {
                let group = get_string(&mut key)?;
                let topic = get_string(&mut key)?;
                let partition = get_i32(&mut key)?;
                let value = match value {
                    None => None,
                    Some(mut v) => {
                        let version = get_i16(&mut v)?;
                        if !(1..=3).contains(&version) {
                            return Err(format!("unknown offset commit value version {version}"));
                        }
                        let offset = get_i64(&mut v)?;
                        let leader_epoch = if version >= 3 { get_i32(&mut v)? } else { -1 };
                        let metadata = get_string(&mut v)?;
                        let commit_timestamp_ms = get_i64(&mut v)?;
                        Some(CommittedOffset {
                            offset,
                            leader_epoch,
                            metadata,
                            commit_timestamp_ms,
                        })
                    }
                };
                Ok(OffsetsRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            2 => {
                let group = get_string(&mut key)?;
                let value = match value {
                    None => None,
                    Some(mut v) => {
                        let version = get_i16(&mut v)?;
                        if version != 3 {
                            return Err(format!(
                                "unsupported group metadata value version {version}"
                            ));
                        }
                        let protocol_type = get_string(&mut v)?;
                        let generation_id = get_i32(&mut v)?;
                        let protocol_name = get_nullable_string(&mut v)?;
                        let leader = get_nullable_string(&mut v)?;
                        let timestamp_ms = get_i64(&mut v)?;
                        let count = get_i32(&mut v)?;
                        let mut members = Vec::new();
                        for _ in 0..count.max(0) {
                            members.push(MemberSnapshot {
                                member_id: get_string(&mut v)?,
                                group_instance_id: get_nullable_string(&mut v)?,
                                client_id: get_string(&mut v)?,
                                client_host: get_string(&mut v)?,
                                rebalance_timeout_ms: get_i32(&mut v)?,
                                session_timeout_ms: get_i32(&mut v)?,
                                subscription: get_bytes(&mut v)?,
                                assignment: get_bytes(&mut v)?,
                            });
                        }
                        Some(GroupSnapshot {
                            protocol_type,
                            generation_id,
                            protocol_name,
                            leader,
                            timestamp_ms,
                            members,
                        })
                    }
                };
                Ok(OffsetsRecord::Group { group, value })
            }
            other => Err(format!("unknown offsets topic key version {other}")),
        }
    }
}

/// The offsets-topic partition holding a group, as Kafka: `abs(groupId.hashCode) % partitions`.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in group_id.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    // Kafka's Utils.abs maps i32::MIN to 0.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str], seq: u64) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::new()))
                .collect(),
            assignment: Bytes::new(),
            session_deadline_ms: 0,
            joined_seq: seq,
        }
    }

    #[test]
    fn the_protocol_all_members_support_wins_by_vote() {
        let mut group = Group::new("g", 0);
        group.protocol_type = Some("consumer".into());
        group
            .members
            .insert("a".into(), member("a", &["range", "cooperative-sticky"], 0));
        group
            .members
            .insert("b".into(), member("b", &["cooperative-sticky", "range"], 1));
        group
            .members
            .insert("c".into(), member("c", &["cooperative-sticky"], 2));
        assert_eq!(
            group.select_protocol().as_deref(),
            Some("cooperative-sticky")
        );
        assert!(group.supports("consumer", &[("cooperative-sticky".into(), Bytes::new())]));
        assert!(!group.supports("consumer", &[("roundrobin".into(), Bytes::new())]));
        assert!(!group.supports("connect", &[("cooperative-sticky".into(), Bytes::new())]));
    }

    #[test]
    fn offsets_records_round_trip_in_kafkas_format() {
        let commit = OffsetsRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
            value: Some(CommittedOffset {
                offset: 42,
                leader_epoch: 0,
                metadata: "m".into(),
                commit_timestamp_ms: 7,
            }),
        };
        let (key, value) = commit.encode();
        assert_eq!(&key[..2], &1i16.to_be_bytes());
        assert_eq!(
            OffsetsRecord::decode(&key, value.as_deref()).unwrap(),
            commit
        );
        let group = OffsetsRecord::Group {
            group: "g".into(),
            value: Some(GroupSnapshot {
                protocol_type: "consumer".into(),
                generation_id: 5,
                protocol_name: Some("range".into()),
                leader: Some("m1".into()),
                timestamp_ms: 9,
                members: vec![MemberSnapshot {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    rebalance_timeout_ms: 1,
                    session_timeout_ms: 2,
                    subscription: Bytes::from_static(b"s"),
                    assignment: Bytes::from_static(b"a"),
                }],
            }),
        };
        let (key, value) = group.encode();
        assert_eq!(
            OffsetsRecord::decode(&key, value.as_deref()).unwrap(),
            group
        );
        let tombstone = OffsetsRecord::Group {
            group: "g".into(),
            value: None,
        };
        let (key, value) = tombstone.encode();
        assert_eq!(
            OffsetsRecord::decode(&key, value.as_deref()).unwrap(),
            tombstone
        );
        assert!(OffsetsRecord::decode(&[0, 9], None).is_err());
        assert!(OffsetsRecord::decode(&[0, 1, 0, 5, b'a'], None).is_err());
    }

    #[test]
    fn groups_map_to_partitions_as_kafka_does() {
        // Java: "my-group".hashCode() == -1906497762; abs % 50 == 12.
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(partition_for("anything", 1), 0);
    }
}
