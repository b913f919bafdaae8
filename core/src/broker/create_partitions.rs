//! CreatePartitions (key 37): raises a topic's partition count with new, empty partitions, and
//! answers once the new metadata is durable. No data reaches the new partitions' files before
//! then (the topic's writes wait for that metadata version, as a new topic's do).
//!
//! Differs from Kafka: manual replica assignments are refused (INVALID_REPLICA_ASSIGNMENT)
//! rather than checked against the one broker; an unknown topic's error carries a message.

use super::apis::{api, Api};
use super::metadata_log::NOT_ACTIVE;
use super::{Broker, RequestContext};
use crate::controller::MetadataRecord;
use crate::errors;
use crate::io::Level;
use crate::topics::PARTITIONS_MAX;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// Versions served, and the adapter.
pub(super) const API: Api = api!(CreatePartitions, 0..=3, Broker::on_create_partitions);

impl Broker {
    pub(super) fn on_create_partitions(
        &mut self,
        ctx: &RequestContext,
        request: CreatePartitionsRequest,
    ) {
        let mut times_named: BTreeMap<&str, usize> = BTreeMap::new();
        for topic in &request.topics {
            *times_named.entry(topic.name.0.as_str()).or_default() += 1;
        }
        let mut results = Vec::with_capacity(request.topics.len());
        for wanted in &request.topics {
            let name = wanted.name.0.as_str();
            let outcome = if self.in_quorum() && !self.is_active_controller() {
                Err((errors::NOT_CONTROLLER, NOT_ACTIVE.to_string()))
            } else if times_named[name] > 1 {
                Err((errors::INVALID_REQUEST, "Duplicate topic name.".to_string()))
            } else {
                self.check_partition_count(wanted)
            };
            let mut result = CreatePartitionsTopicResult::default().with_name(wanted.name.clone());
            match outcome {
                Ok(()) if !request.validate_only => self.add_partitions(name, wanted.count),
                Ok(()) => {}
                Err((code, message)) => {
                    result.error_code = code;
                    result.error_message = Some(StrBytes::from_string(message));
                }
            }
            results.push(result);
        }
        self.pump_io();
        self.respond_after_metadata(
            ctx,
            &CreatePartitionsResponse::default().with_results(results),
        );
    }

    /// Whether the topic may grow to `wanted.count` partitions, with Kafka's messages.
    fn check_partition_count(&self, wanted: &CreatePartitionsTopic) -> Result<(), (i16, String)> {
        let name = wanted.name.0.as_str();
        let Some(topic) = self.topics.get(name) else {
            return Err((
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            ));
        };
        let current = topic.partitions.len() as i32;
        let count = wanted.count;
        if count < current {
            return Err((
                errors::INVALID_PARTITIONS,
                format!(
                    "The topic {name} currently has {current} partition(s); {count} would not be an increase."
                ),
            ));
        }
        if count == current {
            return Err((
                errors::INVALID_PARTITIONS,
                format!("Topic already has {current} partition(s)."),
            ));
        }
        if count > PARTITIONS_MAX {
            return Err((
                errors::INVALID_PARTITIONS,
                format!("number of partitions must be between 1 and {PARTITIONS_MAX}, got {count}"),
            ));
        }
        // An empty list places nothing; the codec's default is one.
        if wanted.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            return Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                "manual replica assignment is not supported yet".into(),
            ));
        }
        Ok(())
    }

    /// Control: grows the topic to `count` partitions on this node (the controller's next
    /// version); their data waits for that version to be durable before it is written.
    fn add_partitions(&mut self, name: &str, count: i32) {
        let topic = &self.topics[name];
        let (id, before) = (topic.id, topic.partitions.len() as i32);
        let factor = topic.partitions.first().map_or(1, |p| p.replicas.len()) as i32;
        // As many replicas as the topic's partitions have, or as there are brokers now.
        let factor = factor.min(self.placeable_brokers().len() as i32);
        let Ok(replicas) = self.place_replicas(count - before, factor) else {
            return;
        };
        let record = MetadataRecord::PartitionsAdded { id, replicas };
        if self.append_metadata(vec![record]).is_ok() {
            self.log(
                Level::Info,
                format!("topic '{name}' now has {count} partition(s), was {before}"),
            );
        }
    }
}
