//! Committed offsets: OffsetCommit (applied and answered once its records are committed),
//! OffsetFetch (held while a commit of its group is in flight, so offsets read are never about
//! to be replaced), OffsetDelete, and `offsets.retention.minutes`. Members of a managed group
//! commit with their generation; an empty group (or none) takes "simple" commits with
//! generation -1, as Kafka's admin tools and manually assigned consumers use.

use super::{GroupCoordinator, PendingCommit};
use crate::api::RequestContext;
use crate::errors;
use crate::groups::{CommittedOffset, Group, GroupState, OffsetsRecord};
use crate::io::Level;
use crate::planted::PlantedBug;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// How long a commit may wait for its records before it is answered COORDINATOR_NOT_AVAILABLE.
const COMMIT_TIMEOUT_MS: i64 = 5_000;

/// (offset, leader epoch, metadata) per topic and partition.
type Found = BTreeMap<String, Vec<(i32, i64, i32, Option<String>)>>;

impl GroupCoordinator {
    pub(super) fn on_offset_commit(
        &mut self,
        ctx: &RequestContext,
        request: OffsetCommitRequest,
        partitions: &dyn Fn(&str) -> Option<i32>,
    ) {
        let group_id = request.group_id.0.to_string();
        let group_error = self.validate_commit(ctx, &request);
        let mut response = OffsetCommitResponse::default();
        let mut records = Vec::new();
        let mut offsets = Vec::new();
        for topic in &request.topics {
            let mut topic_response =
                OffsetCommitResponseTopic::default().with_name(topic.name.clone());
            let known = partitions(topic.name.0.as_str());
            for partition in &topic.partitions {
                let metadata = partition
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let code = match known {
                    _ if group_error != errors::NONE => group_error,
                    Some(count) if (0..count).contains(&partition.partition_index) => {
                        if metadata.len() > self.config.offset_metadata_max_bytes {
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
            return self.reply(ctx, response);
        }
        let id = self.next_wait_id();
        let commit = PendingCommit {
            ctx: ctx.clone(),
            group: group_id.clone(),
            offsets,
            response,
            deadline_ms: ctx.now_ms + COMMIT_TIMEOUT_MS,
        };
        self.commits.insert(id, commit);
        if self.planted_bug == Some(PlantedBug::CommitBeforeFlush) {
            self.append(&group_id, records, ctx.now_ms, None);
            return self.on_commit_settled(ctx.now_ms, id, true);
        }
        self.append(&group_id, records, ctx.now_ms, Some(id));
    }

    /// Kafka's `validateOffsetCommit`: the error for every partition, or NONE.
    pub(super) fn validate_commit(
        &mut self,
        ctx: &RequestContext,
        request: &OffsetCommitRequest,
    ) -> i16 {
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
        let Some(group) = self.groups.get_mut(group_id) else {
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

    /// An OffsetCommit's records are committed (`ok`), or their partition failed: it is
    /// applied and answered, or answered COORDINATOR_NOT_AVAILABLE (retriable), as Kafka maps
    /// append failures. OffsetFetches held for its group go on.
    pub(super) fn on_commit_settled(&mut self, now_ms: i64, id: u64, ok: bool) {
        let Some(mut commit) = self.commits.remove(&id) else {
            return; // timed out already, or its connection closed
        };
        if ok {
            let group = self
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
        self.reply(&commit.ctx, commit.response);
        let held = std::mem::take(&mut self.offset_fetches);
        for (ctx, request) in held {
            self.on_offset_fetch(&ctx, request);
        }
    }

    /// OffsetCommits whose records took too long are answered as failed.
    pub(super) fn expire_commits(&mut self, now_ms: i64) {
        let due: Vec<u64> = self
            .commits
            .iter()
            .filter(|(_, c)| c.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.on_commit_settled(now_ms, id, false);
        }
    }

    /// Whether a commit of this group waits for its flush.
    pub(super) fn commit_in_flight(&self, group_id: &str) -> bool {
        self.commits.values().any(|c| c.group == group_id)
    }

    pub(super) fn on_offset_fetch(&mut self, ctx: &RequestContext, request: OffsetFetchRequest) {
        let groups: Vec<&str> = if ctx.version >= 8 {
            request
                .groups
                .iter()
                .map(|g| g.group_id.0.as_str())
                .collect()
        } else {
            vec![request.group_id.0.as_str()]
        };
        if groups.iter().any(|g| self.commit_in_flight(g)) {
            // Answered when the commit is applied (see `on_commit_settled`).
            self.offset_fetches.push((ctx.clone(), request));
            return;
        }
        let mut response = OffsetFetchResponse::default();
        if ctx.version >= 8 {
            for group in &request.groups {
                let wanted = group.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect::<Vec<_>>()
                });
                let (code, found) = self.committed(group.group_id.0.as_str(), wanted);
                let topics = found
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(StrBytes::from_string(name)))
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|(p, offset, epoch, metadata)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(metadata.map(StrBytes::from_string))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                response.groups.push(
                    OffsetFetchResponseGroup::default()
                        .with_group_id(group.group_id.clone())
                        .with_error_code(code)
                        .with_topics(topics),
                );
            }
        } else {
            let wanted = request.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect::<Vec<_>>()
            });
            let (code, found) = self.committed(request.group_id.0.as_str(), wanted);
            response.topics = found
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, offset, epoch, metadata)| {
                                    let mut entry = OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_metadata(metadata.map(StrBytes::from_string));
                                    if ctx.version >= 5 {
                                        entry.committed_leader_epoch = epoch;
                                    }
                                    entry
                                })
                                .collect(),
                        )
                })
                .collect();
            if ctx.version >= 2 {
                response.error_code = code;
            }
        }
        self.reply(ctx, response);
    }

    /// The group's committed offsets for `wanted` (all of them when None).
    pub(super) fn committed(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> (i16, Found) {
        if group_id.is_empty() {
            return (errors::INVALID_GROUP_ID, Found::new());
        }
        let group = self.groups.get(group_id);
        let mut found = Found::new();
        match wanted {
            None => {
                if let Some(group) = group {
                    for ((topic, partition), offset) in &group.offsets {
                        found.entry(topic.clone()).or_default().push((
                            *partition,
                            offset.offset,
                            offset.leader_epoch,
                            Some(offset.metadata.clone()),
                        ));
                    }
                }
            }
            Some(wanted) => {
                for (topic, partitions) in wanted {
                    let entries = found.entry(topic.clone()).or_default();
                    for partition in partitions {
                        let committed =
                            group.and_then(|g| g.offsets.get(&(topic.clone(), partition)));
                        entries.push(match committed {
                            Some(o) => (
                                partition,
                                o.offset,
                                o.leader_epoch,
                                Some(o.metadata.clone()),
                            ),
                            None => (partition, -1, -1, Some(String::new())),
                        });
                    }
                }
            }
        }
        (errors::NONE, found)
    }

    pub(super) fn on_offset_delete(
        &mut self,
        ctx: &RequestContext,
        request: OffsetDeleteRequest,
        partitions: &dyn Fn(&str) -> Option<i32>,
    ) {
        let group_id = request.group_id.0.to_string();
        let Some(group) = self.groups.get(&group_id) else {
            let code = if group_id.is_empty() {
                errors::INVALID_GROUP_ID
            } else {
                errors::GROUP_ID_NOT_FOUND
            };
            return self.reply(ctx, OffsetDeleteResponse::default().with_error_code(code));
        };
        let subscribed = group.subscribed_topics();
        if !group.members.is_empty() && subscribed.is_none() && group.state != GroupState::Empty {
            // A non-consumer group with members: Kafka cannot tell what it uses.
            return self.reply(
                ctx,
                OffsetDeleteResponse::default().with_error_code(errors::NON_EMPTY_GROUP),
            );
        }
        let subscribed = subscribed.unwrap_or_default();
        let mut response = OffsetDeleteResponse::default();
        let mut deleted = Vec::new();
        for topic in request.topics {
            let name = topic.name.0.to_string();
            let mut topic_response =
                OffsetDeleteResponseTopic::default().with_name(topic.name.clone());
            for partition in topic.partitions {
                let code = if partitions(&name).is_none() {
                    errors::UNKNOWN_TOPIC_OR_PARTITION
                } else if subscribed.contains(&name) {
                    errors::GROUP_SUBSCRIBED_TO_TOPIC
                } else {
                    deleted.push((name.clone(), partition.partition_index));
                    errors::NONE
                };
                topic_response.partitions.push(
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code),
                );
            }
            response.topics.push(topic_response);
        }
        self.delete_offsets(&group_id, &deleted, ctx.now_ms);
        self.reply(ctx, response);
    }

    /// Removes committed offsets and writes their tombstones.
    pub(super) fn delete_offsets(&mut self, group_id: &str, keys: &[(String, i32)], now_ms: i64) {
        let Some(group) = self.groups.get_mut(group_id) else {
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
        self.append(group_id, records, now_ms, None);
    }

    /// `offsets.retention.minutes`: the offsets of a group with no members expire once the
    /// retention has passed since the group emptied (or since the commit, if later).
    pub(super) fn expire_offsets(&mut self, now_ms: i64) {
        let check_at = self.retention_check_at_ms;
        if check_at == 0 || now_ms < check_at {
            if check_at == 0 {
                self.retention_check_at_ms =
                    now_ms + self.config.offsets_retention_check_interval_ms;
            }
            return;
        }
        self.retention_check_at_ms = now_ms + self.config.offsets_retention_check_interval_ms;
        let retention = self.config.offsets_retention_ms;
        // (group, offsets that expired, whether the group goes too)
        type Expired = (String, Vec<(String, i32)>, bool);
        let mut expired: Vec<Expired> = Vec::new();
        for group in self.groups.values() {
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
                self.groups.remove(&group_id);
                let tombstone = OffsetsRecord::Group {
                    group: group_id.clone(),
                    value: None,
                };
                self.append(&group_id, vec![tombstone], now_ms, None);
            }
        }
    }
}
