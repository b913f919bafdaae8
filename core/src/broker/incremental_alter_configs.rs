//! IncrementalAlterConfigs (key 44): changes named configs one operation each: SET a value,
//! DELETE an override (back to what it falls back to), APPEND to or SUBTRACT from a LIST. On a
//! topic a list starts from the topic's override or Kafka's default; on a broker from the
//! dynamic value of that scope or Kafka's default; subtracting the last value leaves the empty
//! list (for `cleanup.policy`: keep everything, KIP-1161). The result is validated as
//! AlterConfigs validates it, persisted with the metadata, acted on at once and answered once
//! durable; `validate_only` checks and changes nothing.
//!
//! Differs from Kafka: only topic and broker resources exist.

use super::alter_configs::{
    check_no_duplicate_keys, check_no_nulls, repeated_resource_error, repeated_resources,
    AlterError, AlterTarget,
};
use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::configs::{self, ConfigType};
use crate::errors;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// Kafka's `AlterConfigOp.OpType` codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Versions served, and the adapter.
pub(super) const API: Api = api!(
    IncrementalAlterConfigs,
    0..=1,
    Broker::on_incremental_alter_configs
);

impl Broker {
    pub(super) fn on_incremental_alter_configs(
        &mut self,
        ctx: &RequestContext,
        request: IncrementalAlterConfigsRequest,
    ) {
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
                self.alter_incrementally(resource, request.validate_only)
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
            &IncrementalAlterConfigsResponse::default().with_responses(responses),
        );
    }

    fn alter_incrementally(
        &mut self,
        resource: &AlterConfigsResource,
        validate_only: bool,
    ) -> Result<(), AlterError> {
        let nulls: Vec<&str> = resource
            .configs
            .iter()
            .filter(|c| c.config_operation != OP_DELETE && c.value.is_none())
            .map(|c| c.name.as_str())
            .collect();
        check_no_nulls(&nulls)?;
        check_no_duplicate_keys(resource.configs.iter().map(|c| c.name.as_str()))?;
        let target = self.alter_target(resource.resource_type, resource.resource_name.as_str())?;
        match target {
            AlterTarget::Broker { per_broker } => {
                let mut configs = match per_broker {
                    true => self.broker_configs.dynamic_node.clone(),
                    false => self.broker_configs.dynamic_default.clone(),
                };
                for op in &resource.configs {
                    apply_op(&mut configs, op, Scope::Broker)?;
                }
                self.set_dynamic_broker_configs(per_broker, configs, validate_only)
            }
            AlterTarget::Topic(name) => {
                let mut configs = self.topics[&name].configs.clone();
                for op in &resource.configs {
                    apply_op(&mut configs, op, Scope::Topic)?;
                }
                self.set_topic_configs(&name, configs, validate_only)
            }
        }
    }
}

/// What an operation changes: its messages and list defaults differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Topic,
    Broker,
}

/// Applies one operation to a set of overrides (validated afterwards, as a whole).
fn apply_op(
    configs: &mut BTreeMap<String, String>,
    op: &AlterableConfig,
    scope: Scope,
) -> Result<(), AlterError> {
    let key = op.name.as_str();
    let given = op.value.as_ref().map(|v| v.as_str()).unwrap_or_default();
    let value = match op.config_operation {
        OP_SET => given.to_string(),
        OP_DELETE => {
            // Deleting an override that is not there (or an unknown key) changes nothing.
            configs.remove(key);
            return Ok(());
        }
        OP_APPEND | OP_SUBTRACT => {
            let append = op.config_operation == OP_APPEND;
            let def = list_def(key, append, scope)?;
            let current = configs
                .get(key)
                .map(String::as_str)
                .or(def.default)
                .unwrap_or_default();
            let mut items: Vec<&str> = current.split(',').filter(|s| !s.is_empty()).collect();
            for item in java_split(given) {
                if append && !items.contains(&item) {
                    items.push(item);
                } else if !append {
                    if let Some(at) = items.iter().position(|i| *i == item) {
                        items.remove(at);
                    }
                }
            }
            items.join(",")
        }
        other => {
            return Err((
                errors::INVALID_REQUEST,
                format!("Unknown alter config operation type {other} for {key}"),
            ))
        }
    };
    configs.insert(key.to_string(), value);
    Ok(())
}

/// The definition of a LIST config, which alone may be appended to or subtracted from; the
/// errors are Kafka's (the controller's for topics, the broker's for broker configs).
fn list_def(key: &str, append: bool, scope: Scope) -> Result<configs::ConfigDef, AlterError> {
    let def = match scope {
        Scope::Topic => configs::topic::find(key).map(|c| c.def),
        Scope::Broker => configs::broker::find(key).map(|c| c.def),
    };
    let operation = if append { "APPEND" } else { "SUBTRACT" };
    match (def, scope) {
        (Some(def), _) if def.kind == ConfigType::List => Ok(def),
        (_, Scope::Topic) => Err((
            errors::INVALID_CONFIG,
            format!("Can't {operation} to key {key} because its type is not LIST."),
        )),
        (None, Scope::Broker) => Err((
            errors::INVALID_CONFIG,
            format!("Unknown config name: {key}"),
        )),
        (Some(_), Scope::Broker) => Err((
            errors::INVALID_CONFIG,
            format!(
                "Config value {} is not allowed for config key: {key}",
                operation.to_lowercase()
            ),
        )),
    }
}

/// Java's `String.split(",")`: trailing empty pieces dropped, but "" is one empty piece.
fn java_split(value: &str) -> Vec<&str> {
    if value.is_empty() {
        return vec![""];
    }
    let mut pieces: Vec<&str> = value.split(',').collect();
    while pieces.len() > 1 && pieces.last() == Some(&"") {
        pieces.pop();
    }
    pieces
}
