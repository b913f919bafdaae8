//! The security APIs of a broker without an authorizer and without SASL, answered as Kafka
//! answers them on such a listener, so clients fail at once with a named error instead of
//! waiting or seeing the connection drop:
//! - DescribeAcls (key 29), CreateAcls (key 30), DeleteAcls (key 31): SECURITY_DISABLED,
//!   "No Authorizer is configured on the broker".
//! - SaslHandshake (key 17), SaslAuthenticate (key 36): ILLEGAL_SASL_STATE; the listener is
//!   PLAINTEXT, so a client configured for SASL learns that it is talking to the wrong listener.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";
const NO_SASL: &str =
    "this listener is PLAINTEXT and does not use SASL; connect with security.protocol=PLAINTEXT";

fn message(text: &'static str) -> Option<StrBytes> {
    Some(StrBytes::from_static_str(text))
}

/// Versions served, and the adapters.
pub(super) const DESCRIBE_ACLS: Api = api!(DescribeAcls, 1..=3, Broker::on_describe_acls);
pub(super) const CREATE_ACLS: Api = api!(CreateAcls, 1..=3, Broker::on_create_acls);
pub(super) const DELETE_ACLS: Api = api!(DeleteAcls, 1..=3, Broker::on_delete_acls);
pub(super) const SASL_HANDSHAKE: Api = api!(SaslHandshake, 0..=1, Broker::on_sasl_handshake);
pub(super) const SASL_AUTHENTICATE: Api =
    api!(SaslAuthenticate, 0..=2, Broker::on_sasl_authenticate);

impl Broker {
    pub(super) fn on_describe_acls(&mut self, ctx: &RequestContext, _: DescribeAclsRequest) {
        let response = DescribeAclsResponse::default()
            .with_error_code(errors::SECURITY_DISABLED)
            .with_error_message(message(NO_AUTHORIZER));
        self.respond(ctx, &response);
    }

    pub(super) fn on_create_acls(&mut self, ctx: &RequestContext, request: CreateAclsRequest) {
        let results = request
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(errors::SECURITY_DISABLED)
                    .with_error_message(message(NO_AUTHORIZER))
            })
            .collect();
        self.respond(ctx, &CreateAclsResponse::default().with_results(results));
    }

    pub(super) fn on_delete_acls(&mut self, ctx: &RequestContext, request: DeleteAclsRequest) {
        let results = request
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(errors::SECURITY_DISABLED)
                    .with_error_message(message(NO_AUTHORIZER))
            })
            .collect();
        self.respond(
            ctx,
            &DeleteAclsResponse::default().with_filter_results(results),
        );
    }

    pub(super) fn on_sasl_handshake(&mut self, ctx: &RequestContext, _: SaslHandshakeRequest) {
        // No mechanisms are enabled on this listener.
        let response = SaslHandshakeResponse::default().with_error_code(errors::ILLEGAL_SASL_STATE);
        self.respond(ctx, &response);
    }

    pub(super) fn on_sasl_authenticate(
        &mut self,
        ctx: &RequestContext,
        _: SaslAuthenticateRequest,
    ) {
        let response = SaslAuthenticateResponse::default()
            .with_error_code(errors::ILLEGAL_SASL_STATE)
            .with_error_message(message(NO_SASL));
        self.respond(ctx, &response);
    }
}
