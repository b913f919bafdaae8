//! FindCoordinator (key 10): the broker that coordinates a group (this one, or on a
//! controller quorum the leader of the group's `__consumer_offsets` partition, see
//! `group_routing.rs`). v4+ asks for several keys at once.
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
        let refusal = (request.key_type != KEY_TYPE_GROUP).then(|| {
            (
                errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                Some(StrBytes::from_static_str(NO_TRANSACTIONS)),
            )
        });
        // v0-3 name one key; v4+ several.
        let keys = match ctx.version >= 4 {
            true => request.coordinator_keys.clone(),
            false => vec![request.key.clone()],
        };
        let mut found: Vec<Coordinator> = keys
            .into_iter()
            .map(|key| {
                let answer = match &refusal {
                    Some((code, message)) => Err((*code, message.clone())),
                    None => self
                        .coordinator_of(key.as_str())
                        .map_err(|code| (code, None)),
                };
                let coordinator = Coordinator::default().with_key(key);
                match answer {
                    Ok((id, host, port)) => coordinator
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port)
                        .with_error_message(None),
                    Err((code, message)) => coordinator
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code)
                        .with_error_message(message),
                }
            })
            .collect();
        let mut response = FindCoordinatorResponse::default();
        if ctx.version >= 4 {
            response.coordinators = found;
        } else if let Some(one) = found.pop() {
            response.error_code = one.error_code;
            response.error_message = one.error_message;
            response.node_id = one.node_id;
            response.host = one.host;
            response.port = one.port;
        }
        self.respond(ctx, &response);
    }
}
