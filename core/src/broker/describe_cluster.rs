//! DescribeCluster (key 60): the cluster id, the controller, and the brokers: with a controller
//! quorum, those it registered (unfenced; with v2's `include_fenced_brokers`, all, marked);
//! else this one.
//!
//! Differs from Kafka: the controller id is this node; without ACLs (no authorizer), authorized operations, when asked for, are every
//! operation a cluster supports, as Kafka answers without an authorizer.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

/// Kafka's `EndpointType` codes.
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

/// "Not requested", the schema's default for authorized operations.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Kafka's `AclOperation` codes a cluster supports: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const CLUSTER_OPERATIONS: &[u8] = &[5, 7, 8, 9, 10, 11, 12];

/// Versions served, and the adapter.
pub(super) const API: Api = api!(DescribeCluster, 0..=2, Broker::on_describe_cluster);

impl Broker {
    pub(super) fn on_describe_cluster(
        &mut self,
        ctx: &RequestContext,
        request: DescribeClusterRequest,
    ) {
        let mut response = DescribeClusterResponse::default()
            .with_cluster_id(StrBytes::from_string(self.cluster_id.clone()))
            .with_controller_id(BrokerId(self.controller_id()))
            .with_cluster_authorized_operations(OPERATIONS_NOT_REQUESTED);
        if ctx.version >= 1 {
            response.endpoint_type = ENDPOINT_BROKERS;
        }
        if ctx.version >= 1 && request.endpoint_type == ENDPOINT_CONTROLLERS {
            response.error_code = errors::UNSUPPORTED_ENDPOINT_TYPE;
            response.error_message = Some(StrBytes::from_static_str(
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
            ));
            return self.respond(ctx, &response);
        }
        // The registrations this node mirrors, as Metadata lists them (with the fenced ones);
        // a node that is its own quorum, itself.
        let brokers: Vec<_> = match self.brokers.is_empty() {
            true => vec![(self.config.node_id, self.own_broker())],
            false => self
                .brokers
                .iter()
                .map(|(&id, b)| (id, b.clone()))
                .collect(),
        };
        let include_fenced = ctx.version >= 2 && request.include_fenced_brokers;
        response.brokers = brokers
            .into_iter()
            .filter(|(_, b)| include_fenced || !b.fenced)
            .map(|(id, b)| {
                let mut broker = DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(id))
                    .with_host(StrBytes::from_string(b.host))
                    .with_port(i32::from(b.port))
                    .with_rack(b.rack.map(StrBytes::from_string));
                if ctx.version >= 2 {
                    broker.is_fenced = b.fenced;
                }
                broker
            })
            .collect();
        if request.include_cluster_authorized_operations {
            response.cluster_authorized_operations = CLUSTER_OPERATIONS
                .iter()
                .fold(0, |bits, &op| bits | (1 << op));
        }
        self.respond(ctx, &response);
    }
}
