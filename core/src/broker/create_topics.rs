//! CreateTopics (key 19): validates each topic (name, partitions or a manual replica assignment,
//! replication factor, configs) with Kafka's errors and messages, and answers once the new
//! metadata is durable.

use super::apis::{api, Api};
use super::metadata_log::NOT_ACTIVE;
use super::{Broker, RequestContext};
use crate::configs::broker::Source;
use crate::configs::topic::TOPIC_CONFIGS;
use crate::errors;
use crate::replica::NodeId;
use crate::topics::{self, PARTITIONS_MAX};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Where a new topic's partitions go: as the request assigned them, or spread by the
/// controller.
enum Placing {
    Assigned(Vec<Vec<NodeId>>),
    Spread { partitions: i32, factor: i32 },
}

/// Versions served, and the adapter.
pub(super) const API: Api = api!(CreateTopics, 2..=7, Broker::on_create_topics);

impl Broker {
    pub(super) fn on_create_topics(&mut self, ctx: &RequestContext, request: CreateTopicsRequest) {
        let mut results = Vec::with_capacity(request.topics.len());
        let mut seen = std::collections::BTreeSet::new();
        for wanted in request.topics {
            let name = wanted.name.0.to_string();
            let duplicate = !seen.insert(name.clone());
            let checked =
                self.check_new_topic(&wanted, duplicate)
                    .and_then(|(placing, configs)| {
                        let replicas = match placing {
                            Placing::Assigned(replicas) => replicas,
                            Placing::Spread { partitions, factor } => {
                                self.place_replicas(partitions, factor)?
                            }
                        };
                        Ok((replicas, configs))
                    });
            let result = match checked {
                Err((code, message)) => CreatableTopicResult::default()
                    .with_name(wanted.name.clone())
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
                Ok((replicas, configs)) => {
                    // Success has a null message (the generated default is "", which
                    // clients show as an error).
                    let mut result = CreatableTopicResult::default()
                        .with_name(wanted.name.clone())
                        .with_error_message(None);
                    let (partitions, factor) = (replicas.len() as i32, replicas[0].len() as i16);
                    if !request.validate_only {
                        match self.create_topic(&name, replicas, configs.clone()) {
                            Ok(id) => result.topic_id = Uuid::from_bytes(id.0),
                            Err(error) => {
                                let code = match error.contains(" exists") {
                                    true => errors::TOPIC_ALREADY_EXISTS,
                                    false => errors::UNKNOWN_SERVER_ERROR,
                                };
                                result.error_code = code;
                                result.error_message = Some(StrBytes::from_string(format!(
                                    "the controller refused the topic: {error}"
                                )));
                            }
                        }
                    }
                    if ctx.version >= 5 {
                        result.num_partitions = partitions;
                        result.replication_factor = factor;
                        result.configs = Some(self.describe_new_topic_configs(&configs));
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

    /// Where the partitions of a topic that may be created go and its configs, or the error
    /// to answer.
    fn check_new_topic(
        &self,
        wanted: &CreatableTopic,
        duplicate: bool,
    ) -> Result<(Placing, BTreeMap<String, String>), (i16, String)> {
        let name = wanted.name.0.as_str();
        if self.in_quorum() && !self.is_active_controller() {
            return Err((errors::NOT_CONTROLLER, NOT_ACTIVE.to_string()));
        }
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
            let replicas = self.check_assignment(wanted)?;
            let configs = self.check_new_topic_configs(wanted)?;
            return Ok((Placing::Assigned(replicas), configs));
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
        if factor < 1 {
            return Err((
                errors::INVALID_REPLICATION_FACTOR,
                format!("Replication factor must be larger than 0, or -1 to use the default value; got {factor}."),
            ));
        }
        let configs = self.check_new_topic_configs(wanted)?;
        let factor = i32::from(factor);
        Ok((Placing::Spread { partitions, factor }, configs))
    }

    /// A manual replica assignment (a list of broker ids per partition, the first the
    /// preferred leader), checked as Kafka's controller does; the replicas by partition.
    fn check_assignment(&self, wanted: &CreatableTopic) -> Result<Vec<Vec<NodeId>>, (i16, String)> {
        if wanted.replication_factor != -1 {
            return Err((
                errors::INVALID_REPLICATION_FACTOR,
                "A manual partition assignment was specified, but replication factor was not \
                 set to -1."
                    .into(),
            ));
        }
        if wanted.num_partitions != -1 {
            return Err((
                errors::INVALID_PARTITIONS,
                "A manual partition assignment was specified, but numPartitions was not set \
                 to -1."
                    .into(),
            ));
        }
        let bad = |message: String| (errors::INVALID_REPLICA_ASSIGNMENT, message);
        let mut seen = BTreeMap::new();
        let mut factor: Option<usize> = None;
        let registered = self.assignable_brokers();
        for assignment in &wanted.assignments {
            let index = assignment.partition_index;
            let ordered: Vec<NodeId> = assignment.broker_ids.iter().map(|b| b.0).collect();
            if seen.insert(index, ordered.clone()).is_some() {
                return Err(bad(format!(
                    "Found multiple manual partition assignments for partition {index}"
                )));
            }
            let mut brokers = ordered;
            if brokers.is_empty() {
                return Err(bad(
                    "The manual partition assignment includes an empty replica list.".into(),
                ));
            }
            brokers.sort_unstable();
            for (i, &broker) in brokers.iter().enumerate() {
                if !registered.contains(&broker) {
                    return Err(bad(format!(
                        "The manual partition assignment includes broker {broker}, but no \
                         such broker is registered."
                    )));
                }
                if i > 0 && brokers[i - 1] == broker {
                    return Err(bad(format!(
                        "The manual partition assignment includes the broker {broker} more \
                         than once."
                    )));
                }
            }
            if let Some(factor) = factor.filter(|f| *f != brokers.len()) {
                return Err(bad(format!(
                    "The manual partition assignment includes a partition with {} replica(s), \
                     but this is not consistent with previous partitions, which have {factor} \
                     replica(s).",
                    brokers.len()
                )));
            }
            factor = Some(brokers.len());
        }
        let count = seen.len() as i32;
        if seen.keys().copied().ne(0..count) {
            return Err(bad(
                "partitions should be a consecutive 0-based integer sequence".into(),
            ));
        }
        if count > PARTITIONS_MAX {
            return Err((
                errors::INVALID_PARTITIONS,
                format!("number of partitions must be between 1 and {PARTITIONS_MAX}, got {count}"),
            ));
        }
        Ok(seen.into_values().collect())
    }

    /// The brokers a manual assignment may name: every registered one (fenced or not, as
    /// Kafka's controller allows); a node that is its own quorum, itself.
    fn assignable_brokers(&self) -> Vec<NodeId> {
        match self.brokers.is_empty() {
            true => vec![self.config.node_id],
            false => self.brokers.keys().copied().collect(),
        }
    }

    /// The configs of a new topic, each checked as Kafka does (INVALID_CONFIG).
    fn check_new_topic_configs(
        &self,
        wanted: &CreatableTopic,
    ) -> Result<BTreeMap<String, String>, (i16, String)> {
        let nulls: Vec<&str> = wanted
            .configs
            .iter()
            .filter(|c| c.value.is_none())
            .map(|c| c.name.as_str())
            .collect();
        if !nulls.is_empty() {
            return Err((
                errors::INVALID_CONFIG,
                format!(
                    "Null value not supported for topic configs: {}",
                    nulls.join(",")
                ),
            ));
        }
        let configs: BTreeMap<String, String> = wanted
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    c.value.as_ref().expect("no nulls").to_string(),
                )
            })
            .collect();
        let fallbacks = self.broker_configs.topic_fallbacks();
        let fallback = |key: &str| fallbacks.get(key).cloned().unwrap_or_default();
        crate::configs::topic::validate_all(&configs, fallback)
            .map_err(|m| (errors::INVALID_CONFIG, m))?;
        Ok(configs)
    }

    /// Every config of a new topic, as CreateTopics v5+ reports them.
    fn describe_new_topic_configs(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<CreatableTopicConfigs> {
        TOPIC_CONFIGS
            .iter()
            .map(|config| {
                let key = config.def.name;
                let (value, source) = match overrides.get(key) {
                    Some(value) => (value.clone(), Source::TopicConfig),
                    None => {
                        let (value, _, source) = self.broker_configs.topic_fallback(config);
                        (value, source)
                    }
                };
                CreatableTopicConfigs::default()
                    .with_name(StrBytes::from_static_str(key))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_config_source(source as i8)
            })
            .collect()
    }
}
