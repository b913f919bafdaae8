//! IncrementalAlterConfigs (key 44): changes named topic configs one operation each: SET a
//! value, DELETE an override (back to the default), APPEND to or SUBTRACT from a list (starting
//! from the default when not overridden). The resulting overrides are validated, persisted with
//! the metadata and answered once durable; `validate_only` checks and changes nothing.
//!
//! Differs from Kafka: broker configs are read-only (refused with INVALID_CONFIG); only topic
//! and broker resources exist.

use super::alter_configs::{
    check_no_duplicate_keys, check_no_nulls, refuse_broker_alter, repeated_resource_error,
    repeated_resources, AlterError, AlterTarget,
};
use super::{Broker, RequestContext};
use crate::errors;
use crate::topics::{self, ConfigType};
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
        let name = match target {
            AlterTarget::Broker => {
                return refuse_broker_alter(resource.configs.iter().map(|c| c.name.as_str()))
            }
            AlterTarget::Topic(name) => name,
        };
        let mut configs = self.topics[&name].configs.clone();
        for op in &resource.configs {
            apply_op(&mut configs, op)?;
        }
        self.set_topic_configs(&name, configs, validate_only);
        Ok(())
    }
}

/// Applies one operation to a topic's overrides, validating the value it leaves.
fn apply_op(
    configs: &mut BTreeMap<String, String>,
    op: &AlterableConfig,
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
            let operation = if op.config_operation == OP_APPEND {
                "APPEND"
            } else {
                "SUBTRACT"
            };
            let spec = topics::config_spec(key).ok_or_else(|| {
                (
                    errors::INVALID_CONFIG,
                    format!("unknown topic config '{key}'"),
                )
            })?;
            if spec.kind != ConfigType::List {
                return Err((
                    errors::INVALID_CONFIG,
                    format!("Can't {operation} to key {key} because its type is not LIST."),
                ));
            }
            let current = configs
                .get(key)
                .map(String::as_str)
                .or_else(|| topics::config_default(key))
                .unwrap_or_default();
            let mut items: Vec<&str> = current.split(',').filter(|s| !s.is_empty()).collect();
            for item in given.split(',').filter(|s| !s.is_empty()) {
                if op.config_operation == OP_APPEND {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                } else {
                    items.retain(|existing| *existing != item);
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
    topics::validate_config(key, &value).map_err(|m| (errors::INVALID_CONFIG, m))?;
    configs.insert(key.to_string(), value);
    Ok(())
}
