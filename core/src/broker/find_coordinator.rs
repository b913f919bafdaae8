//! FindCoordinator (key 10): this broker coordinates every group (and would every transaction).
//! v4+ asks for several keys at once.

use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

const KEY_TYPE_GROUP: i8 = 0;

impl Broker {
    pub(super) fn on_find_coordinator(
        &mut self,
        ctx: &RequestContext,
        request: FindCoordinatorRequest,
    ) {
        let node = BrokerId(self.config.node_id);
        let host = StrBytes::from_string(self.config.advertised_host.clone());
        let port = self.config.advertised_port;
        // Transactions are not served yet: their coordinator is not available.
        let error = if request.key_type == KEY_TYPE_GROUP {
            errors::NONE
        } else {
            errors::COORDINATOR_NOT_AVAILABLE
        };
        if error == errors::NONE {
            self.ensure_offsets_topic();
        }
        let mut response = FindCoordinatorResponse::default();
        if ctx.version >= 4 {
            response.coordinators = request
                .coordinator_keys
                .into_iter()
                .map(|key| {
                    Coordinator::default()
                        .with_key(key)
                        .with_node_id(if error == errors::NONE {
                            node
                        } else {
                            BrokerId(-1)
                        })
                        .with_host(if error == errors::NONE {
                            host.clone()
                        } else {
                            StrBytes::default()
                        })
                        .with_port(if error == errors::NONE { port } else { -1 })
                        .with_error_code(error)
                })
                .collect();
        } else if error == errors::NONE {
            response.node_id = node;
            response.host = host;
            response.port = port;
        } else {
            response.error_code = error;
            response.node_id = BrokerId(-1);
            response.port = -1;
        }
        self.respond(ctx, &response);
    }
}
