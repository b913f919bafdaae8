//! ApiVersions (key 18): the versions this broker serves, with the KIP-511 fallback.

use super::apis::{supported_versions, Api, SUPPORTED_APIS};
use super::{Broker, RequestContext};
use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;

/// Kafka's UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// Versions served, and the adapter: the body is read by the handler, which answers any version.
pub(super) const API: Api = Api {
    key: ApiKey::ApiVersions,
    min: 0,
    max: 4,
    handle: |broker, ctx, body| {
        broker.on_api_versions(ctx, body);
        Ok(())
    },
};

impl Broker {
    pub(super) fn on_api_versions(&mut self, ctx: &RequestContext, body: &mut Bytes) {
        let api_keys = SUPPORTED_APIS
            .iter()
            .map(|api| {
                ApiVersion::default()
                    .with_api_key(api.key as i16)
                    .with_min_version(api.min)
                    .with_max_version(api.max)
            })
            .collect();
        let (_, max) = supported_versions(ApiKey::ApiVersions).expect("ApiVersions is supported");
        if ctx.version > max {
            // KIP-511: answer in v0, which every client can read, so it can retry with a version we know.
            let response = ApiVersionsResponse::default()
                .with_error_code(UNSUPPORTED_VERSION)
                .with_api_keys(api_keys);
            let ctx = RequestContext {
                version: 0,
                ..ctx.clone()
            };
            return self.respond(&ctx, &response);
        }
        // The body (client software name and version, v3+) is informational; a malformed one
        // still gets the version list, as Kafka answers INVALID_REQUEST with it.
        let error_code = match ApiVersionsRequest::decode(body, ctx.version) {
            Ok(_) => 0,
            Err(_) => 42, // INVALID_REQUEST
        };
        let response = ApiVersionsResponse::default()
            .with_error_code(error_code)
            .with_api_keys(api_keys);
        self.respond(ctx, &response);
    }
}
