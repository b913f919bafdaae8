//! DeleteTopics (key 20): by name (v0-v5) or by name or id (v6+). The topic's directory is
//! removed once the metadata without it is durable.

use super::apis::{api, Api};
use super::metadata_log::NOT_ACTIVE;
use super::{Broker, RequestContext};
use crate::controller::MetadataRecord;
use crate::errors;
use crate::io::Level;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

/// Versions served, and the adapter.
pub(super) const API: Api = api!(DeleteTopics, 1..=6, Broker::on_delete_topics);

impl Broker {
    pub(super) fn on_delete_topics(&mut self, ctx: &RequestContext, request: DeleteTopicsRequest) {
        let wanted: Vec<(Option<String>, Uuid)> = if ctx.version >= 6 {
            request
                .topics
                .into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect()
        } else {
            request
                .topic_names
                .into_iter()
                .map(|n| (Some(n.0.to_string()), Uuid::nil()))
                .collect()
        };
        let mut responses = Vec::with_capacity(wanted.len());
        for (name, id) in wanted {
            let found = match &name {
                Some(name) => self.topics.get(name).map(|t| (t.name.clone(), t.id)),
                None => self
                    .topics
                    .values()
                    .find(|t| Uuid::from_bytes(t.id.0) == id)
                    .map(|t| (t.name.clone(), t.id)),
            };
            let mut result = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))));
            match found {
                None if name.is_some() => result.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION,
                None => {
                    result.error_code = errors::UNKNOWN_TOPIC_ID;
                    result.topic_id = id;
                }
                Some((name, topic_id)) => {
                    let record = MetadataRecord::TopicDeleted { id: topic_id };
                    if let Err(error) = self.append_metadata(vec![record]) {
                        result.error_code = match error == NOT_ACTIVE {
                            true => errors::NOT_CONTROLLER,
                            false => errors::UNKNOWN_SERVER_ERROR,
                        };
                        if ctx.version >= 5 {
                            result.error_message = Some(StrBytes::from_string(error));
                        }
                        responses.push(result);
                        continue;
                    }
                    self.log(Level::Info, format!("deleted topic '{name}'"));
                    result.name = Some(TopicName(StrBytes::from_string(name)));
                    if ctx.version >= 6 {
                        result.topic_id = Uuid::from_bytes(topic_id.0);
                    }
                }
            }
            if ctx.version >= 5 && result.error_code != errors::NONE {
                result.error_message = Some(StrBytes::from_static_str("unknown topic"));
            }
            responses.push(result);
        }
        self.pump_io();
        self.respond_after_metadata(
            ctx,
            &DeleteTopicsResponse::default().with_responses(responses),
        );
    }
}
