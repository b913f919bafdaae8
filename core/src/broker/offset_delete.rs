//! OffsetDelete (key 47): deletes a group's committed offsets for some partitions, unless the
//! group's members subscribe to the topic (GROUP_SUBSCRIBED_TO_TOPIC).

use super::{Broker, RequestContext};
use crate::errors;
use crate::groups::GroupState;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

impl Broker {
    pub(super) fn on_offset_delete(&mut self, ctx: &RequestContext, request: OffsetDeleteRequest) {
        let group_id = request.group_id.0.to_string();
        let Some(group) = self.coordinator.groups.get(&group_id) else {
            let code = if group_id.is_empty() {
                errors::INVALID_GROUP_ID
            } else {
                errors::GROUP_ID_NOT_FOUND
            };
            return self.respond(ctx, &OffsetDeleteResponse::default().with_error_code(code));
        };
        let subscribed = group.subscribed_topics();
        if !group.members.is_empty() && subscribed.is_none() && group.state != GroupState::Empty {
            // A non-consumer group with members: Kafka cannot tell what it uses.
            return self.respond(
                ctx,
                &OffsetDeleteResponse::default().with_error_code(errors::NON_EMPTY_GROUP),
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
                let code = if !self.topics.contains_key(&name) {
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
        self.respond(ctx, &response);
    }
}
