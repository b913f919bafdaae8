//! DescribeConfigs (key 32): a topic's configs (all of Kafka's, the topic's own as TOPIC_CONFIG,
//! the rest from the broker setting they fall back to, with its source), and the broker's
//! (every config Spate knows, each from its highest source: dynamic for this broker, dynamic
//! cluster default, static, default; read-only unless Kafka may change it at run time; the
//! empty broker name lists the dynamic cluster defaults alone). Passwords are sensitive: null.
//!
//! Differs from Kafka: documentation is always null; the broker lists the configs Spate knows
//! (`configs::broker`), not Kafka's few hundred.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::configs::broker::{self as broker_configs, Source, BROKER_CONFIGS};
use crate::configs::topic::TOPIC_CONFIGS;
use crate::configs::ConfigType;
use crate::errors;
use crate::topics;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

/// Kafka's `ConfigResource.Type` codes.
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;

/// One config as DescribeConfigs reports it; `synonyms` are (name, value, source), the entry's
/// own source first, as Kafka orders them.
struct Entry {
    name: String,
    value: Option<String>,
    source: Source,
    read_only: bool,
    kind: ConfigType,
    synonyms: Vec<(String, Option<String>, Source)>,
}

/// Versions served, and the adapter.
pub(super) const API: Api = api!(DescribeConfigs, 1..=4, Broker::on_describe_configs);

impl Broker {
    pub(super) fn on_describe_configs(
        &mut self,
        ctx: &RequestContext,
        request: DescribeConfigsRequest,
    ) {
        let results = request
            .resources
            .iter()
            .map(|resource| self.describe_resource(resource, request.include_synonyms))
            .collect();
        self.respond(
            ctx,
            &DescribeConfigsResponse::default().with_results(results),
        );
    }

    fn describe_resource(
        &self,
        resource: &DescribeConfigsResource,
        include_synonyms: bool,
    ) -> DescribeConfigsResult {
        let name = resource.resource_name.as_str();
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone())
            .with_error_message(None);
        let entries = match resource.resource_type {
            RESOURCE_TOPIC => self.topic_entries(name),
            RESOURCE_BROKER if name.is_empty() => Ok(self.cluster_default_entries()),
            RESOURCE_BROKER => self.check_broker_name(name).map(|()| self.broker_entries()),
            other => Err((
                errors::INVALID_REQUEST,
                format!("Unsupported resource type: {other}"),
            )),
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = Some(StrBytes::from_string(message));
                return result;
            }
        };
        // Null or empty keys ask for everything; unknown keys are left out, as Kafka does.
        let wanted = resource
            .configuration_keys
            .as_ref()
            .filter(|k| !k.is_empty());
        result.configs = entries
            .into_iter()
            .filter(|e| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name)))
            .map(|e| encode_entry(e, include_synonyms))
            .collect();
        result
    }

    /// A broker resource names this node, or is empty for the cluster-wide defaults.
    pub(super) fn check_broker_name(&self, name: &str) -> Result<(), (i16, String)> {
        if name.is_empty() {
            return Ok(());
        }
        let node_id = self.config.node_id;
        match name.parse::<i32>() {
            Ok(id) if id == node_id => Ok(()),
            Ok(_) => Err((
                errors::INVALID_REQUEST,
                format!(
                    "Unexpected broker id, expected {node_id} or empty string, but received {name}"
                ),
            )),
            Err(_) => Err((
                errors::INVALID_REQUEST,
                format!("Broker id must be an integer, but it is: {name}"),
            )),
        }
    }

    fn topic_entries(&self, name: &str) -> Result<Vec<Entry>, (i16, String)> {
        topics::validate_name(name).map_err(|m| (errors::INVALID_TOPIC_EXCEPTION, m))?;
        let topic = self.topics.get(name).ok_or_else(|| {
            (
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic '{name}' does not exist"),
            )
        })?;
        let configs = &self.broker_configs;
        let entries = TOPIC_CONFIGS
            .iter()
            .map(|config| {
                let key = config.def.name;
                // The broker settings it falls back to, each from every source that sets it.
                let mut synonyms: Vec<(String, Option<String>, Source)> = config
                    .synonyms
                    .iter()
                    .flat_map(|(synonym, _)| {
                        configs
                            .sources(synonym)
                            .into_iter()
                            .map(|(value, source)| (synonym.to_string(), Some(value), source))
                    })
                    .collect();
                let (value, source) = match topic.configs.get(key) {
                    Some(value) => {
                        synonyms.insert(
                            0,
                            (key.to_string(), Some(value.clone()), Source::TopicConfig),
                        );
                        (value.clone(), Source::TopicConfig)
                    }
                    None => {
                        let (value, _, source) = configs.topic_fallback(config);
                        (value, source)
                    }
                };
                Entry {
                    name: key.to_string(),
                    value: Some(value),
                    source,
                    read_only: false,
                    kind: config.def.kind,
                    synonyms,
                }
            })
            .collect();
        Ok(entries)
    }

    /// Every broker config Spate knows, from its highest source; and dynamic ones Kafka does
    /// not define, as set.
    fn broker_entries(&self) -> Vec<Entry> {
        let configs = &self.broker_configs;
        let known = BROKER_CONFIGS.iter().map(|c| (c.def.name, Some(*c)));
        let custom = configs
            .dynamic_node
            .keys()
            .chain(configs.dynamic_default.keys())
            .filter(|k| broker_configs::find(k).is_none())
            .map(|k| (k.as_str(), None));
        let mut entries: Vec<Entry> = known
            .chain(custom)
            .map(|(name, config)| {
                let synonyms: Vec<(String, Option<String>, Source)> = configs
                    .sources(name)
                    .into_iter()
                    .map(|(value, source)| (name.to_string(), Some(value), source))
                    .collect();
                let (value, source) = synonyms
                    .first()
                    .map_or((None, Source::Default), |(_, v, s)| (v.clone(), *s));
                Entry {
                    name: name.to_string(),
                    value,
                    source,
                    read_only: config.is_some_and(|c| c.mode == broker_configs::Mode::ReadOnly),
                    kind: config.map_or(ConfigType::String, |c| c.def.kind),
                    synonyms,
                }
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        entries
    }

    /// The dynamic cluster-wide defaults alone (the broker resource with the empty name).
    fn cluster_default_entries(&self) -> Vec<Entry> {
        self.broker_configs
            .dynamic_default
            .iter()
            .map(|(name, value)| {
                let config = broker_configs::find(name);
                let source = Source::DynamicDefault;
                Entry {
                    name: name.clone(),
                    value: Some(value.clone()),
                    source,
                    read_only: false,
                    kind: config.map_or(ConfigType::String, |c| c.def.kind),
                    synonyms: vec![(name.clone(), Some(value.clone()), source)],
                }
            })
            .collect()
    }
}

fn encode_entry(entry: Entry, include_synonyms: bool) -> DescribeConfigsResourceResult {
    // Passwords are never shown, as Kafka.
    let sensitive = entry.kind == ConfigType::Password;
    let shown = |value: Option<String>| match sensitive {
        true => None,
        false => value.map(StrBytes::from_string),
    };
    let synonyms = if include_synonyms {
        entry
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name))
                    .with_value(shown(value))
                    .with_source(source as i8)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(entry.name))
        .with_value(shown(entry.value))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source as i8)
        .with_is_sensitive(sensitive)
        .with_synonyms(synonyms)
        .with_config_type(entry.kind as i8)
        .with_documentation(None)
}
