//! OffsetCommit (key 8): committed offsets are written to `__consumer_offsets` and answered once
//! flushed, then served by OffsetFetch. Members of a managed group commit with their generation;
//! an empty group (or none) takes "simple" commits with generation -1, as Kafka's admin tools
//! and manually assigned consumers use.

use super::coordinator::PendingCommit;
use super::{Broker, RequestContext};
use crate::errors;
use crate::groups::{CommittedOffset, GroupState, OffsetsRecord};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

/// How long a commit may wait for its flush before it is answered COORDINATOR_NOT_AVAILABLE.
const COMMIT_TIMEOUT_MS: i64 = 5_000;

impl Broker {
    pub(super) fn on_offset_commit(&mut self, ctx: &RequestContext, request: OffsetCommitRequest) {
        let group_id = request.group_id.0.to_string();
        let group_error = self.validate_commit(ctx, &request);
        let mut response = OffsetCommitResponse::default();
        let mut records = Vec::new();
        let mut offsets = Vec::new();
        for topic in &request.topics {
            let mut topic_response =
                OffsetCommitResponseTopic::default().with_name(topic.name.clone());
            let known = self
                .topics
                .get(topic.name.0.as_str())
                .map(|t| t.partitions.len() as i32);
            for partition in &topic.partitions {
                let metadata = partition
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let code = match known {
                    _ if group_error != errors::NONE => group_error,
                    Some(count) if (0..count).contains(&partition.partition_index) => {
                        if metadata.len() > self.config.groups.offset_metadata_max_bytes {
                            errors::OFFSET_METADATA_TOO_LARGE
                        } else {
                            errors::NONE
                        }
                    }
                    _ => errors::UNKNOWN_TOPIC_OR_PARTITION,
                };
                if code == errors::NONE {
                    let value = CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: if ctx.version >= 6 {
                            partition.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata,
                        commit_timestamp_ms: ctx.now_ms,
                    };
                    let key = (topic.name.0.to_string(), partition.partition_index);
                    records.push(OffsetsRecord::Offset {
                        group: group_id.clone(),
                        topic: key.0.clone(),
                        partition: key.1,
                        value: Some(value.clone()),
                    });
                    offsets.push((key, value));
                }
                topic_response.partitions.push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code),
                );
            }
            response.topics.push(topic_response);
        }
        if records.is_empty() {
            return self.respond(ctx, &response);
        }
        match self.append_offsets_records(&group_id, records, ctx.now_ms) {
            Some(wait) => {
                let commit = PendingCommit {
                    ctx: ctx.clone(),
                    group: group_id,
                    offsets,
                    response,
                    deadline_ms: ctx.now_ms + COMMIT_TIMEOUT_MS,
                };
                self.wait_for_commit(commit, wait);
            }
            None => {
                for topic in &mut response.topics {
                    for p in &mut topic.partitions {
                        if p.error_code == errors::NONE {
                            p.error_code = errors::COORDINATOR_NOT_AVAILABLE;
                        }
                    }
                }
                self.respond(ctx, &response);
            }
        }
    }

    /// Kafka's `validateOffsetCommit`: the error for every partition, or NONE.
    fn validate_commit(&mut self, ctx: &RequestContext, request: &OffsetCommitRequest) -> i16 {
        let group_id = request.group_id.0.as_str();
        // Kafka's offset records hold strings of at most i16::MAX bytes.
        if group_id.is_empty() || group_id.len() > i16::MAX as usize {
            return errors::INVALID_GROUP_ID;
        }
        let generation = request.generation_id_or_member_epoch;
        let member_id = request.member_id.as_str();
        let instance = request
            .group_instance_id
            .as_ref()
            .map(|i| i.as_str())
            .filter(|_| ctx.version >= 7);
        let managed = generation >= 0 || !member_id.is_empty() || instance.is_some();
        let Some(group) = self.coordinator.groups.get_mut(group_id) else {
            // No such group: a simple commit creates it; a member's commit is from a generation
            // this coordinator does not know.
            return if managed {
                errors::ILLEGAL_GENERATION
            } else {
                errors::NONE
            };
        };
        if !managed {
            return if group.members.is_empty() {
                errors::NONE
            } else {
                errors::UNKNOWN_MEMBER_ID
            };
        }
        if let Err(code) = group.check_member(member_id, instance) {
            return code;
        }
        let member = group.members.get_mut(member_id).expect("checked");
        if generation != group.generation_id {
            return errors::ILLEGAL_GENERATION;
        }
        member.session_deadline_ms = ctx.now_ms + i64::from(member.session_timeout_ms);
        if group.state == GroupState::CompletingRebalance {
            return errors::REBALANCE_IN_PROGRESS;
        }
        errors::NONE
    }
}
