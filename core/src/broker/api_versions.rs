//! ApiVersions (key 18): the versions this broker serves, with the KIP-511 fallback.

use super::{Broker, RequestContext};
use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;

/// Every API served, with the version range advertised. Produce advertises v0 as Kafka 4 does,
/// because librdkafka disables compression unless Produce's minimum is 0 (KAFKA-18659); v0-v2
/// requests are refused when they arrive.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // Answered as Kafka answers them without an authorizer or SASL (see security.rs).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

pub fn supported_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// Kafka's UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

impl Broker {
    pub(super) fn on_api_versions(&mut self, ctx: &RequestContext, body: &mut Bytes) {
        let api_keys = SUPPORTED_APIS
            .iter()
            .map(|&(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(key as i16)
                    .with_min_version(min)
                    .with_max_version(max)
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
