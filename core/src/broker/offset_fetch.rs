//! OffsetFetch (key 9): a group's committed offsets (-1 where none), for the partitions asked
//! for or all of them; v8+ asks for several groups at once. While a commit of the group waits for
//! its flush, the answer waits for it too: offsets read are never about to be replaced.

use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// (offset, leader epoch, metadata) per topic and partition.
type Found = BTreeMap<String, Vec<(i32, i64, i32, Option<String>)>>;

impl Broker {
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
            self.coordinator.offset_fetches.push((ctx.clone(), request));
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
        self.respond(ctx, &response);
    }

    /// The group's committed offsets for `wanted` (all of them when None).
    fn committed(&self, group_id: &str, wanted: Option<Vec<(String, Vec<i32>)>>) -> (i16, Found) {
        if group_id.is_empty() {
            return (errors::INVALID_GROUP_ID, Found::new());
        }
        let group = self.coordinator.groups.get(group_id);
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
}
