//! What the coordinator stores in `__consumer_offsets`, and its replay at start-up: a group's
//! membership on each new generation's assignment and when it empties (Kafka's group metadata
//! record), committed offsets and their tombstones.

use super::GroupCoordinator;
use crate::batch;
use crate::groups::{
    Group, GroupSnapshot, GroupState, Member, MemberSnapshot, OffsetsRecord, OFFSETS_TOPIC,
};
use crate::io::Level;
use bytes::Bytes;

impl GroupCoordinator {
    /// Records the group's membership so a restart brings it back (Kafka writes it on each new
    /// generation's assignment, and when the group empties); `wait` is told once it is
    /// committed. False if there is no such group.
    pub(super) fn persist_group(&mut self, group_id: &str, now_ms: i64, wait: Option<u64>) -> bool {
        let Some(group) = self.groups.get(group_id) else {
            return false;
        };
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
        self.append(group_id, vec![record], now_ms, wait);
        true
    }

    /// Replays records of an offsets partition (read at start-up, or by a new coordinator
    /// taking its groups over); returns how many.
    pub fn replay_partition(&mut self, data: &[u8]) -> usize {
        let mut position = 0;
        let mut replayed = 0usize;
        while position < data.len() {
            let Ok(info) = batch::validate_stored(&data[position..]) else {
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
            self.sessions_need_start = true;
        }
        replayed
    }

    /// How many groups the coordinator holds.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub(super) fn apply_offsets_record(&mut self, record: OffsetsRecord, timestamp_ms: i64) {
        match record {
            OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let entry = self
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
                self.groups.remove(&group);
            }
            OffsetsRecord::Group {
                group,
                value: Some(snapshot),
            } => {
                let entry = self
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
