//! FindCoordinator (key 10): this broker coordinates every group. v4+ asks for several keys
//! at once.
//!
//! Transactions are not served yet. A transaction coordinator lookup answers
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED with a message saying so: clients treat that error as
//! fatal (librdkafka, the Java client and kafka-python fail `init_transactions` at once),
//! whereas COORDINATOR_NOT_AVAILABLE would have them retry until their timeout.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

const KEY_TYPE_GROUP: i8 = 0;

const NO_TRANSACTIONS: &str =
    "transactions are not supported by this Spate broker yet; use an idempotent producer (enable.idempotence=true) without transactional.id";

/// Versions served, and the adapter.
pub(super) const API: Api = api!(FindCoordinator, 0..=4, Broker::on_find_coordinator);

impl Broker {
    pub(super) fn on_find_coordinator(
        &mut self,
        ctx: &RequestContext,
        request: FindCoordinatorRequest,
    ) {
        let node = BrokerId(self.config.node_id);
        let host = StrBytes::from_string(self.config.advertised_host.clone());
        let port = self.config.advertised_port;
        let refusal = (request.key_type != KEY_TYPE_GROUP).then(|| {
            (
                errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                Some(StrBytes::from_static_str(NO_TRANSACTIONS)),
            )
        });
        if refusal.is_none() {
            self.ensure_offsets_topic();
        }
        let mut response = FindCoordinatorResponse::default();
        if ctx.version >= 4 {
            response.coordinators = request
                .coordinator_keys
                .into_iter()
                .map(|key| {
                    let coordinator = Coordinator::default().with_key(key);
                    match &refusal {
                        None => coordinator
                            .with_node_id(node)
                            .with_host(host.clone())
                            .with_port(port)
                            .with_error_message(None),
                        Some((code, message)) => coordinator
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(*code)
                            .with_error_message(message.clone()),
                    }
                })
                .collect();
        } else if let Some((code, message)) = refusal {
            response.error_code = code;
            response.error_message = message;
            response.node_id = BrokerId(-1);
            response.port = -1;
        } else {
            response.node_id = node;
            response.host = host;
            response.port = port;
            response.error_message = None;
        }
        self.respond(ctx, &response);
    }
}
