//! DescribeTopicPartitions (key 75, KIP-966): topics and their partitions, as Metadata
//! describes them plus the eligible leader replicas, a page at a time. Topics go in name order
//! from the request's cursor (every topic when the request names none); a page holds at most
//! `response_partition_limit` partitions (bounded by `max.request.partition.size.limit`,
//! 2000), and `next_cursor` says where the next page starts. As Kafka: a named topic that does
//! not exist is answered UNKNOWN_TOPIC_OR_PARTITION, and a cursor outside the named topics, or
//! with a negative partition, is an INVALID_REQUEST for every topic.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeSet;
use uuid::Uuid;

/// `max.request.partition.size.limit`: the most partitions one answer holds.
pub const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;

/// The authorized-operations field when they were not asked for (Kafka's INT32_MIN).
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

/// Versions served, and the adapter.
pub(super) const API: Api = api!(
    DescribeTopicPartitions,
    0..=0,
    Broker::on_describe_topic_partitions
);

impl Broker {
    pub(super) fn on_describe_topic_partitions(
        &mut self,
        ctx: &RequestContext,
        request: DescribeTopicPartitionsRequest,
    ) {
        let response = match self.describe_topic_partitions(&request) {
            Ok(response) => response,
            Err(code) => {
                let topics = request
                    .topics
                    .iter()
                    .map(|t| unknown_topic(t.name.0.as_str(), code))
                    .collect();
                DescribeTopicPartitionsResponse::default().with_topics(topics)
            }
        };
        self.respond(ctx, &response);
    }

    fn describe_topic_partitions(
        &self,
        request: &DescribeTopicPartitionsRequest,
    ) -> Result<DescribeTopicPartitionsResponse, i16> {
        let all_topics = request.topics.is_empty();
        let (cursor_topic, cursor_partition) = match &request.cursor {
            Some(c) => (c.topic_name.0.as_str(), c.partition_index),
            None => ("", 0),
        };
        if cursor_partition < 0 {
            return Err(errors::INVALID_REQUEST);
        }
        // Sorted and deduplicated, from the cursor's topic on.
        let names: BTreeSet<&str> = match all_topics {
            true => self.topics.keys().map(String::as_str).collect(),
            false => request.topics.iter().map(|t| t.name.0.as_str()).collect(),
        };
        let names: Vec<&str> = names.into_iter().filter(|n| *n >= cursor_topic).collect();
        if request.cursor.is_some() && !all_topics && !names.contains(&cursor_topic) {
            return Err(errors::INVALID_REQUEST);
        }
        let limit = request
            .response_partition_limit
            .clamp(1, PARTITIONS_PER_RESPONSE_MAX);
        let mut remaining = limit;
        let mut response = DescribeTopicPartitionsResponse::default().with_next_cursor(None);
        for (i, name) in names.iter().enumerate() {
            if remaining == 0 {
                response.next_cursor = Some(cursor(name, 0));
                break;
            }
            let Some(topic) = self.topics.get(*name) else {
                if !all_topics {
                    response
                        .topics
                        .push(unknown_topic(name, errors::UNKNOWN_TOPIC_OR_PARTITION));
                }
                continue;
            };
            let count = topic.partitions.len() as i32;
            let first = if *name == cursor_topic {
                cursor_partition
            } else {
                0
            };
            let end = count.min(first.saturating_add(remaining));
            let partitions: Vec<_> = (first.min(end)..end)
                .map(|index| {
                    let view = self.partition_view(topic, index);
                    DescribeTopicPartitionsResponsePartition::default()
                        .with_error_code(view.error_code)
                        .with_partition_index(index)
                        .with_leader_id(view.leader)
                        .with_leader_epoch(view.leader_epoch)
                        .with_replica_nodes(view.replicas)
                        .with_isr_nodes(view.in_sync)
                        // No eligible leader replicas: every replica is in sync.
                        .with_eligible_leader_replicas(Some(Vec::new()))
                        .with_last_known_elr(Some(Vec::new()))
                        .with_offline_replicas(view.offline)
                })
                .collect();
            remaining -= partitions.len() as i32;
            response.topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
                    .with_topic_id(Uuid::from_bytes(topic.id.0))
                    .with_is_internal(topic.is_internal())
                    .with_partitions(partitions)
                    .with_topic_authorized_operations(OPERATIONS_NOT_ASKED),
            );
            if end < count {
                response.next_cursor = Some(cursor(name, end));
                break;
            }
            // A page that ends with a topic's last partition continues with the next topic.
            if remaining == 0 && i + 1 < names.len() {
                response.next_cursor = Some(cursor(names[i + 1], 0));
                break;
            }
        }
        Ok(response)
    }
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_index(partition)
}

fn unknown_topic(name: &str, code: i16) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(code)
        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
        .with_topic_id(Uuid::nil())
        .with_is_internal(name == crate::groups::OFFSETS_TOPIC)
        .with_topic_authorized_operations(OPERATIONS_NOT_ASKED)
}
