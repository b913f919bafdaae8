//! ElectLeaders (key 43): `kafka-leader-election.sh`, the admin clients' `electLeaders`. The
//! active controller elects the preferred replica (type 0) or, for a leaderless partition, any
//! live replica (type 1, unclean) of each partition named, or of every partition when none is
//! named (whose results then leave out the partitions that needed no election, as Kafka's
//! do), and answers once the new leaders are committed and in this node's metadata. Other
//! brokers forward the request to it. A node that is its own controller has one replica per
//! partition: every election there is ELECTION_NOT_NEEDED.

use super::apis::{api, Api};
use super::metadata_log::NOT_ACTIVE;
use super::{Broker, RequestContext};
use crate::controller::elections::{Election, ElectionType};
use crate::errors;
use crate::io::Level;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// Versions served, and the adapter.
pub(super) const API: Api = api!(ElectLeaders, 0..=2, Broker::on_elect_leaders);

impl Broker {
    pub(super) fn on_elect_leaders(&mut self, ctx: &RequestContext, request: ElectLeadersRequest) {
        let kind = match ctx.version {
            0 => Some(ElectionType::Preferred),
            _ => ElectionType::from_kafka(request.election_type),
        };
        // Every partition named (in the order named, each once), or every partition.
        let named = request.topic_partitions.is_some();
        let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        match &request.topic_partitions {
            Some(topics) => {
                for topic in topics {
                    let partitions = wanted.entry(topic.topic.0.to_string()).or_default();
                    for &p in &topic.partitions {
                        if !partitions.contains(&p) {
                            partitions.push(p);
                        }
                    }
                }
            }
            None => {
                for topic in self.topics.values() {
                    let count = topic.partitions.len() as i32;
                    wanted.insert(topic.name.clone(), (0..count).collect());
                }
            }
        }
        // The election asked for, or why none is held here.
        let kind = match kind {
            None => Err((
                errors::INVALID_REQUEST,
                format!("unknown election type {}", request.election_type),
            )),
            Some(_) if self.in_quorum() && !self.is_active_controller() => {
                Err((errors::NOT_CONTROLLER, NOT_ACTIVE.to_string()))
            }
            Some(kind) => Ok(kind),
        };
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (name, partitions) in wanted {
            let mut partition_result = Vec::new();
            for partition in partitions {
                let outcome = match &kind {
                    Ok(kind) => self.election(&name, partition, *kind),
                    Err(refusal) => Err(refusal.clone()),
                };
                let (code, message) = match outcome {
                    Ok(Some(record)) => {
                        records.push(record);
                        (errors::NONE, None)
                    }
                    Ok(None) if !named => continue,
                    Ok(None) => (
                        errors::ELECTION_NOT_NEEDED,
                        Some("Leader election not needed for topic partition.".to_string()),
                    ),
                    Err((code, message)) => (code, Some(message)),
                };
                partition_result.push(
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error_code(code)
                        .with_error_message(message.map(StrBytes::from_string)),
                );
            }
            if !partition_result.is_empty() {
                results.push(
                    ReplicaElectionResult::default()
                        .with_topic(TopicName(StrBytes::from_string(name)))
                        .with_partition_result(partition_result),
                );
            }
        }
        if let (false, Ok(kind)) = (records.is_empty(), &kind) {
            let count = records.len();
            if self.append_metadata(records).is_ok() {
                self.log(
                    Level::Info,
                    format!("ElectLeaders ({kind:?}): {count} partition(s) get a new leader"),
                );
            }
        }
        self.pump_io();
        let error_code = match (&kind, ctx.version) {
            (Err((code, _)), 1..) => *code,
            _ => errors::NONE,
        };
        self.respond_after_metadata(
            ctx,
            &ElectLeadersResponse::default()
                .with_error_code(error_code)
                .with_replica_election_results(results),
        );
    }

    /// The election of `kind` for `name`-`partition`: the change that makes it (none if not
    /// needed), or the error code and message of why it cannot be.
    fn election(
        &self,
        name: &str,
        partition: i32,
        kind: ElectionType,
    ) -> Result<Option<crate::controller::MetadataRecord>, (i16, String)> {
        let unknown = || {
            Err((
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("{name}-{partition} does not exist"),
            ))
        };
        let Some(seat) = self.quorum.as_ref() else {
            // Its own controller: each partition's one replica leads it.
            let exists = self
                .topics
                .get(name)
                .is_some_and(|t| usize::try_from(partition).is_ok_and(|p| p < t.partitions.len()));
            return match exists {
                true => Ok(None),
                false => unknown(),
            };
        };
        let image = seat.controller().image();
        let Some(topic) = image.topics.get(name) else {
            return unknown();
        };
        match image.elect(topic.id, partition, kind) {
            Election::Elected(record) => Ok(Some(record)),
            Election::NotNeeded => Ok(None),
            Election::Unknown => unknown(),
            Election::NotAvailable => Err(match kind {
                ElectionType::Preferred => (
                    errors::PREFERRED_LEADER_NOT_AVAILABLE,
                    format!(
                        "{name}-{partition}: the preferred replica is not a live in-sync replica"
                    ),
                ),
                ElectionType::Unclean => (
                    errors::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                    format!("{name}-{partition}: no live replica can lead"),
                ),
            }),
        }
    }
}
