//! InitProducerId (key 22): producer ids for idempotent producers. Ids come from blocks reserved
//! in the durable metadata, so no id is handed out twice across restarts. Transactions are not
//! supported yet: a transactional id is refused with a clear error rather than left to hang.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::controller::MetadataRecord;
use crate::errors;
use crate::io::Level;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

/// Ids reserved per metadata write.
use crate::controller::PRODUCER_ID_BLOCK;

/// Versions served, and the adapter.
pub(super) const API: Api = api!(InitProducerId, 0..=5, Broker::on_init_producer_id);

impl Broker {
    pub(super) fn on_init_producer_id(
        &mut self,
        ctx: &RequestContext,
        request: InitProducerIdRequest,
    ) {
        let mut response = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if request.transactional_id.is_some() {
            self.log(Level::Warn, format!("conn {}: transactions are not supported yet (InitProducerId with a transactional id)", ctx.conn));
            response.error_code = errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
            return self.respond(ctx, &response);
        }
        // KIP-360: an idempotent producer may ask to bump its own epoch after an error.
        let (id, epoch) = match (request.producer_id.0, request.producer_epoch) {
            (id, epoch) if id >= 0 && (0..i16::MAX - 1).contains(&epoch) => (id, epoch + 1),
            _ => match self.allocate_producer_id() {
                Some(id) => (id, 0),
                None => {
                    // On a quorum: no block granted yet; the client retries (retriable).
                    response.error_code = match self.in_quorum() {
                        true => errors::COORDINATOR_LOAD_IN_PROGRESS,
                        false => errors::UNKNOWN_SERVER_ERROR,
                    };
                    return self.respond(ctx, &response);
                }
            },
        };
        response.producer_id = ProducerId(id);
        response.producer_epoch = epoch;
        self.pump_io();
        // A new block must be durable before an id from it is used.
        self.respond_after_metadata(ctx, &response);
    }

    /// The next producer id; a new block is reserved in the metadata first when this one is
    /// used up (the answer waits for it to be durable). `None` if the ids ran out.
    fn allocate_producer_id(&mut self) -> Option<i64> {
        if self.in_quorum() {
            // Blocks are granted by the active controller (see `quorum.rs`).
            return self.take_producer_id();
        }
        let limit = self.controller.as_ref()?.image().producer_id_limit;
        if self.next_producer_id >= limit {
            let limit = self.next_producer_id.checked_add(PRODUCER_ID_BLOCK)?;
            let record = MetadataRecord::ProducerIds { limit };
            self.append_metadata(vec![record]).ok()?;
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        Some(id)
    }
}
