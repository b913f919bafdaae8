//! AlterConfigs (key 33, the legacy form): replaces a topic's whole set of overrides, or the
//! dynamic configs of this broker or of the cluster default (the empty broker name), with the
//! set given (keys left out go back to what they fall back to). Values are validated as Kafka
//! does (topic configs: INVALID_CONFIG; broker configs: INVALID_REQUEST, and "Cannot update
//! these configs dynamically" for read-only ones); the change is persisted with the metadata,
//! acted on at once (topics inherit the broker's new settings) and answered once durable;
//! `validate_only` checks and changes nothing. Also the helpers IncrementalAlterConfigs shares.
//!
//! Differs from Kafka: only topic and broker resources exist.

use super::apis::{api, Api};
use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{Broker, RequestContext};
use crate::controller::MetadataRecord;
use crate::errors;
use crate::io::Level;
use crate::topics;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};

/// An error code and its message, answered for one resource.
pub(super) type AlterError = (i16, String);

/// What an alter names, once checked.
pub(super) enum AlterTarget {
    /// An existing topic, by name.
    Topic(String),
    /// This broker (`per_broker`), or the cluster-wide defaults.
    Broker { per_broker: bool },
}

/// Versions served, and the adapter.
pub(super) const API: Api = api!(AlterConfigs, 0..=2, Broker::on_alter_configs);

impl Broker {
    pub(super) fn on_alter_configs(&mut self, ctx: &RequestContext, request: AlterConfigsRequest) {
        let repeated = repeated_resources(
            request
                .resources
                .iter()
                .map(|r| (r.resource_type, r.resource_name.as_str())),
        );
        let mut responses = Vec::with_capacity(request.resources.len());
        for (index, resource) in request.resources.iter().enumerate() {
            let outcome = if repeated.contains(&index) {
                Err(repeated_resource_error())
            } else {
                self.replace_configs(resource, request.validate_only)
            };
            let (code, message) = outcome.err().unwrap_or((errors::NONE, String::new()));
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone())
                    .with_error_code(code)
                    .with_error_message(
                        (code != errors::NONE).then(|| StrBytes::from_string(message)),
                    ),
            );
        }
        self.pump_io();
        self.respond_after_metadata(
            ctx,
            &AlterConfigsResponse::default().with_responses(responses),
        );
    }

    fn replace_configs(
        &mut self,
        resource: &AlterConfigsResource,
        validate_only: bool,
    ) -> Result<(), AlterError> {
        let nulls: Vec<&str> = resource
            .configs
            .iter()
            .filter(|c| c.value.is_none())
            .map(|c| c.name.as_str())
            .collect();
        check_no_nulls(&nulls)?;
        let keys = resource.configs.iter().map(|c| c.name.as_str());
        check_no_duplicate_keys(keys)?;
        let configs: BTreeMap<String, String> = resource
            .configs
            .iter()
            .map(|c| {
                let value = c.value.as_ref().expect("no nulls");
                (c.name.to_string(), value.to_string())
            })
            .collect();
        match self.alter_target(resource.resource_type, resource.resource_name.as_str())? {
            AlterTarget::Broker { per_broker } => {
                self.set_dynamic_broker_configs(per_broker, configs, validate_only)
            }
            AlterTarget::Topic(name) => self.set_topic_configs(&name, configs, validate_only),
        }
    }

    /// Checks what an alter names: an existing topic, or this broker.
    pub(super) fn alter_target(
        &self,
        resource_type: i8,
        name: &str,
    ) -> Result<AlterTarget, AlterError> {
        match resource_type {
            RESOURCE_TOPIC => {
                topics::validate_name(name).map_err(|m| (errors::INVALID_TOPIC_EXCEPTION, m))?;
                if !self.topics.contains_key(name) {
                    return Err((
                        errors::UNKNOWN_TOPIC_OR_PARTITION,
                        format!("topic '{name}' does not exist"),
                    ));
                }
                Ok(AlterTarget::Topic(name.to_string()))
            }
            RESOURCE_BROKER => self.check_broker_name(name).map(|()| AlterTarget::Broker {
                per_broker: !name.is_empty(),
            }),
            other => Err((
                errors::INVALID_REQUEST,
                format!("Unsupported resource type: {other}"),
            )),
        }
    }

    /// Validates and installs a topic's overrides. A change bumps the metadata version: the
    /// answer waits for it to be durable, and produce reads the new values at once.
    pub(super) fn set_topic_configs(
        &mut self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AlterError> {
        let topic = self.topics.get(name).expect("checked by alter_target");
        let inherited = |key: &str| {
            topic.inherited.get(key).cloned().unwrap_or_else(|| {
                crate::configs::topic::default_of(key)
                    .unwrap_or_default()
                    .to_string()
            })
        };
        crate::configs::topic::validate_all(&configs, inherited)
            .map_err(|m| (errors::INVALID_CONFIG, m))?;
        if validate_only || topic.configs == configs {
            return Ok(());
        }
        let described: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let record = MetadataRecord::TopicConfigs {
            id: topic.id,
            configs,
        };
        self.append_metadata(vec![record]).map_err(refused)?;
        self.log(
            Level::Info,
            format!("topic '{name}' configs are now [{}]", described.join(", ")),
        );
        Ok(())
    }

    /// Validates and installs the dynamic configs of this broker (`per_broker`) or of the
    /// cluster default; topics inherit the new settings at once, and the change is persisted
    /// with the metadata (the answer waits for it).
    pub(super) fn set_dynamic_broker_configs(
        &mut self,
        per_broker: bool,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AlterError> {
        // Kafka's broker wraps these in InvalidRequestException (KAFKA-13609).
        crate::configs::broker::check_dynamic(&configs, per_broker)
            .map_err(|m| (errors::INVALID_REQUEST, m))?;
        let current = match per_broker {
            true => &self.broker_configs.dynamic_node,
            false => &self.broker_configs.dynamic_default,
        };
        if validate_only || *current == configs {
            return Ok(());
        }
        let described: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let record = MetadataRecord::BrokerConfigs {
            per_node: per_broker,
            configs,
        };
        self.append_metadata(vec![record]).map_err(refused)?;
        let scope = match per_broker {
            true => format!("broker {}", self.config.node_id),
            false => "the cluster default".to_string(),
        };
        self.log(
            Level::Info,
            format!(
                "dynamic configs of {scope} are now [{}]",
                described.join(", ")
            ),
        );
        Ok(())
    }
}

/// Indexes of resources named more than once: Kafka refuses every copy.
pub(super) fn repeated_resources<'a>(
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> BTreeSet<usize> {
    let mut seen: BTreeMap<(i8, &str), Vec<usize>> = BTreeMap::new();
    for (index, resource) in resources.enumerate() {
        seen.entry(resource).or_default().push(index);
    }
    seen.into_values()
        .filter(|indexes| indexes.len() > 1)
        .flatten()
        .collect()
}

pub(super) fn repeated_resource_error() -> AlterError {
    (
        errors::INVALID_REQUEST,
        "Each resource must appear at most once.".into(),
    )
}

pub(super) fn check_no_nulls(names: &[&str]) -> Result<(), AlterError> {
    if names.is_empty() {
        return Ok(());
    }
    Err((
        errors::INVALID_REQUEST,
        format!("Null value not supported for : {}", names.join(", ")),
    ))
}

pub(super) fn check_no_duplicate_keys<'a>(
    keys: impl Iterator<Item = &'a str>,
) -> Result<(), AlterError> {
    let mut seen = BTreeSet::new();
    for key in keys {
        if !seen.insert(key) {
            return Err((
                errors::INVALID_REQUEST,
                format!("Error due to duplicate config keys: {key}"),
            ));
        }
    }
    Ok(())
}

/// The answer when the controller refuses a change: NOT_CONTROLLER on a node of a quorum that
/// is not its active controller (the client asks the controller Metadata names).
fn refused(error: String) -> AlterError {
    match error == super::metadata_log::NOT_ACTIVE {
        true => (errors::NOT_CONTROLLER, error),
        false => (
            errors::UNKNOWN_SERVER_ERROR,
            format!("the controller refused the change: {error}"),
        ),
    }
}
