//! CreateTopics (key 19): validates each topic (name, partitions, replication factor, configs)
//! and answers once the new metadata is durable.

use super::{Broker, RequestContext};
use crate::errors;
use crate::topics::{self, PARTITIONS_MAX, TOPIC_CONFIGS};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Kafka's `ConfigSource` values for DescribeConfigs-like answers.
const CONFIG_SOURCE_TOPIC: i8 = 1;
const CONFIG_SOURCE_DEFAULT: i8 = 5;

impl Broker {
    pub(super) fn on_create_topics(&mut self, ctx: &RequestContext, request: CreateTopicsRequest) {
        let mut results = Vec::with_capacity(request.topics.len());
        let mut seen = std::collections::BTreeSet::new();
        for wanted in request.topics {
            let name = wanted.name.0.to_string();
            let duplicate = !seen.insert(name.clone());
            let result = match self.check_new_topic(&wanted, duplicate) {
                Err((code, message)) => CreatableTopicResult::default()
                    .with_name(wanted.name.clone())
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
                Ok((partitions, configs)) => {
                    // Success has a null message (the generated default is "", which
                    // clients show as an error).
                    let mut result = CreatableTopicResult::default()
                        .with_name(wanted.name.clone())
                        .with_error_message(None);
                    if !request.validate_only {
                        let id = self.create_topic(&name, partitions, configs.clone());
                        result.topic_id = Uuid::from_bytes(id.0);
                    }
                    if ctx.version >= 5 {
                        result.num_partitions = partitions;
                        result.replication_factor = 1;
                        result.configs = Some(describe_configs(&configs));
                    }
                    result
                }
            };
            results.push(result);
        }
        if ctx.version < 7 {
            results.iter_mut().for_each(|r| r.topic_id = Uuid::nil());
        }
        if ctx.version < 1 {
            results.iter_mut().for_each(|r| r.error_message = None);
        }
        self.pump_io();
        self.respond_after_metadata(ctx, &CreateTopicsResponse::default().with_topics(results));
    }

    /// The partition count and configs of a topic that may be created, or the error to answer.
    fn check_new_topic(
        &self,
        wanted: &CreatableTopic,
        duplicate: bool,
    ) -> Result<(i32, BTreeMap<String, String>), (i16, String)> {
        let name = wanted.name.0.as_str();
        if duplicate {
            return Err((
                errors::INVALID_REQUEST,
                format!("topic '{name}' appears more than once in the request"),
            ));
        }
        topics::validate_name(name).map_err(|m| (errors::INVALID_TOPIC_EXCEPTION, m))?;
        if self.topics.contains_key(name) {
            return Err((
                errors::TOPIC_ALREADY_EXISTS,
                format!("topic '{name}' already exists"),
            ));
        }
        if !wanted.assignments.is_empty() {
            return Err((
                errors::INVALID_REPLICA_ASSIGNMENT,
                "manual replica assignment is not supported yet".into(),
            ));
        }
        let partitions = if wanted.num_partitions == -1 {
            self.config.num_partitions
        } else {
            wanted.num_partitions
        };
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Err((
                errors::INVALID_PARTITIONS,
                format!(
                    "number of partitions must be between 1 and {PARTITIONS_MAX}, got {partitions}"
                ),
            ));
        }
        let factor = if wanted.replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            wanted.replication_factor
        };
        if factor != 1 {
            return Err((
                errors::INVALID_REPLICATION_FACTOR,
                format!("replication factor {factor} is larger than the 1 available broker"),
            ));
        }
        let mut configs = BTreeMap::new();
        for config in &wanted.configs {
            let key = config.name.as_str();
            let Some(value) = config.value.as_ref() else {
                continue;
            };
            if value.as_str().contains(['\t', '\n']) {
                return Err((
                    errors::INVALID_CONFIG,
                    format!("value of {key} contains a tab or newline"),
                ));
            }
            topics::validate_config(key, value.as_str())
                .map_err(|m| (errors::INVALID_CONFIG, m))?;
            configs.insert(key.to_string(), value.to_string());
        }
        Ok((partitions, configs))
    }
}

fn describe_configs(overrides: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|&(key, default)| {
            let (value, source) = match overrides.get(key) {
                Some(value) => (value.clone(), CONFIG_SOURCE_TOPIC),
                None => (default.to_string(), CONFIG_SOURCE_DEFAULT),
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(key))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source)
        })
        .collect()
}
