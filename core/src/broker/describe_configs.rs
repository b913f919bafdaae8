//! DescribeConfigs (key 32): a topic's configs (every key this broker knows, overrides as
//! TOPIC_CONFIG, the rest as DEFAULT_CONFIG, with Kafka's types and broker synonyms) and this
//! broker's settings (all read-only, under Kafka's names).
//!
//! Differs from Kafka: documentation is always null; a topic lists only the configs Spate knows
//! (`topics::TOPIC_CONFIGS`), not Kafka's full set; the broker lists the settings Spate has
//! plus the log defaults topics fall back to, not Kafka's few hundred.

use super::{Broker, RequestContext, REQUEST_BYTES_MAX};
use crate::errors;
use crate::topics::{self, ConfigType, TOPIC_CONFIGS, TOPIC_CONFIG_SPECS};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

/// Kafka's `ConfigResource.Type` codes.
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` codes.
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// One config as DescribeConfigs reports it; `synonyms` are (name, value, source), the entry's
/// own source first, as Kafka orders them.
struct Entry {
    name: String,
    value: String,
    read_only: bool,
    kind: ConfigType,
    synonyms: Vec<(String, String, i8)>,
}

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
            // The empty name is the cluster-wide dynamic defaults: Spate has none.
            RESOURCE_BROKER if name.is_empty() => Ok(Vec::new()),
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
        let entries = TOPIC_CONFIGS
            .iter()
            .zip(TOPIC_CONFIG_SPECS)
            .map(|(&(key, default), spec)| {
                assert_eq!(key, spec.key, "TOPIC_CONFIG_SPECS follows TOPIC_CONFIGS");
                let fallback = (
                    spec.broker_key.to_string(),
                    spec.broker_default.to_string(),
                    SOURCE_DEFAULT_CONFIG,
                );
                let (value, synonyms) = match topic.configs.get(key) {
                    Some(value) => (
                        value.clone(),
                        vec![
                            (key.to_string(), value.clone(), SOURCE_TOPIC_CONFIG),
                            fallback,
                        ],
                    ),
                    None => (default.to_string(), vec![fallback]),
                };
                Entry {
                    name: key.to_string(),
                    value,
                    read_only: false,
                    kind: spec.kind,
                    synonyms,
                }
            })
            .collect();
        Ok(entries)
    }

    /// This broker's settings, read-only: STATIC_BROKER_CONFIG where set away from Kafka's
    /// default, DEFAULT_CONFIG otherwise.
    fn broker_entries(&self) -> Vec<Entry> {
        let config = &self.config;
        let defaults = super::Config::default();
        let node_id = config.node_id.to_string();
        let listener = format!(
            "PLAINTEXT://{}:{}",
            config.advertised_host, config.advertised_port
        );
        let mut settings: Vec<(&str, String, ConfigType, bool)> = vec![
            ("node.id", node_id.clone(), ConfigType::Int, false),
            ("broker.id", node_id, ConfigType::Int, false),
            ("advertised.listeners", listener, ConfigType::String, false),
            (
                "log.dirs",
                config.log_dir.clone(),
                ConfigType::String,
                false,
            ),
            (
                "auto.create.topics.enable",
                config.auto_create_topics.to_string(),
                ConfigType::Boolean,
                config.auto_create_topics,
            ),
            (
                "num.partitions",
                config.num_partitions.to_string(),
                ConfigType::Int,
                config.num_partitions == 1,
            ),
            (
                "default.replication.factor",
                config.default_replication_factor.to_string(),
                ConfigType::Int,
                config.default_replication_factor == 1,
            ),
            // Spate's own setting; Kafka has no counterpart.
            (
                "tail.cache.bytes.per.partition",
                config.tail_cache_bytes_per_partition.to_string(),
                ConfigType::Long,
                config.tail_cache_bytes_per_partition == defaults.tail_cache_bytes_per_partition,
            ),
            (
                "tail.cache.bytes",
                config.tail_cache_bytes.to_string(),
                ConfigType::Long,
                config.tail_cache_bytes == defaults.tail_cache_bytes,
            ),
            (
                "unwritten.bytes.max",
                config.unwritten_bytes_max.to_string(),
                ConfigType::Long,
                config.unwritten_bytes_max == defaults.unwritten_bytes_max,
            ),
            (
                "socket.request.max.bytes",
                REQUEST_BYTES_MAX.to_string(),
                ConfigType::Int,
                true,
            ),
        ];
        for spec in TOPIC_CONFIG_SPECS {
            if !settings.iter().any(|(name, ..)| *name == spec.broker_key) {
                let value = spec.broker_default.to_string();
                settings.push((spec.broker_key, value, spec.broker_kind, true));
            }
        }
        settings.sort_by(|a, b| a.0.cmp(b.0));
        settings
            .into_iter()
            .map(|(name, value, kind, is_default)| {
                let source = if is_default {
                    SOURCE_DEFAULT_CONFIG
                } else {
                    SOURCE_STATIC_BROKER_CONFIG
                };
                Entry {
                    name: name.to_string(),
                    value: value.clone(),
                    read_only: true,
                    kind,
                    synonyms: vec![(name.to_string(), value, source)],
                }
            })
            .collect()
    }
}

fn encode_entry(entry: Entry, include_synonyms: bool) -> DescribeConfigsResourceResult {
    let source = entry.synonyms[0].2;
    let synonyms = if include_synonyms {
        entry
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(source)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(entry.name))
        .with_value(Some(StrBytes::from_string(entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(source)
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(entry.kind as i8)
        .with_documentation(None)
}
