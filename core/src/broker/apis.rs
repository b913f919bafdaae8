//! The Kafka adapters, collected: every API this broker serves, with the version range its
//! adapter file declares beside its handler. The one table ([`SUPPORTED_APIS`]) is both what
//! ApiVersions advertises and what a request is dispatched by, so adding an API is one adapter
//! file with its `API` constant and one line here.
//!
//! Also here: the request frame's way in (header, version check, dispatch) and the response's way
//! out (header and body encoded into a frame).

use super::{alter_configs, describe_cluster, describe_configs, describe_log_dirs};
use super::{api_versions, create_partitions, create_topics, delete_records, delete_topics};
use super::{describe_quorum, describe_topic_partitions, elect_leaders, fetch};
use super::{find_coordinator, groups};
use super::{incremental_alter_configs, init_producer_id, list_offsets, metadata};
use super::{offset_for_leader_epoch, produce, security, Broker};
use crate::api::RequestContext;
use crate::io::{ConnId, Output};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

/// Kafka's `socket.request.max.bytes` default: larger frames close the connection.
pub const REQUEST_BYTES_MAX: usize = 100 * 1024 * 1024;

/// Why a frame's length prefix is refused; the connection is closed.
pub fn check_frame_size(size: i32) -> Result<usize, String> {
    if size < 0 {
        return Err(format!("negative frame size {size}"));
    }
    let size = size as usize;
    if size > REQUEST_BYTES_MAX {
        return Err(format!(
            "frame size {size} exceeds socket.request.max.bytes ({REQUEST_BYTES_MAX})"
        ));
    }
    if size < 8 {
        return Err(format!(
            "frame size {size} is too small for a request header"
        ));
    }
    Ok(size)
}

/// One served API: its key, the versions advertised, and its adapter (decode the body, hand it
/// to the handler; an error closes the connection as a malformed request).
#[derive(Clone, Copy)]
pub struct Api {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
    pub(super) handle: fn(&mut Broker, &RequestContext, &mut Bytes) -> Result<(), String>,
}

/// An [`Api`] whose adapter decodes the request at the context's version and calls `$handler`
/// with (broker, context, request).
macro_rules! api {
    ($key:ident, $min:literal ..= $max:literal, $handler:expr) => {
        $crate::broker::apis::Api {
            key: kafka_protocol::messages::ApiKey::$key,
            min: $min,
            max: $max,
            handle: |broker, ctx, body| {
                let request = $crate::broker::apis::decode(body, ctx.version)?;
                ($handler)(broker, ctx, request);
                Ok(())
            },
        }
    };
}
pub(super) use api;

/// A request body at `version`, or why it does not decode.
pub(super) fn decode<T: Decodable>(body: &mut Bytes, version: i16) -> Result<T, String> {
    T::decode(body, version).map_err(|e| e.to_string())
}

/// Every API served. Security APIs are answered as Kafka answers them without an authorizer or
/// SASL (see security.rs).
pub const SUPPORTED_APIS: &[Api] = &[
    produce::API,
    fetch::API,
    list_offsets::API,
    metadata::API,
    describe_topic_partitions::API,
    api_versions::API,
    create_topics::API,
    delete_topics::API,
    init_producer_id::API,
    delete_records::API,
    offset_for_leader_epoch::API,
    describe_configs::API,
    alter_configs::API,
    describe_log_dirs::API,
    create_partitions::API,
    incremental_alter_configs::API,
    describe_cluster::API,
    describe_quorum::API,
    elect_leaders::API,
    find_coordinator::API,
    groups::OFFSET_COMMIT,
    groups::OFFSET_FETCH,
    groups::JOIN_GROUP,
    groups::HEARTBEAT,
    groups::LEAVE_GROUP,
    groups::SYNC_GROUP,
    groups::DESCRIBE_GROUPS,
    groups::LIST_GROUPS,
    groups::DELETE_GROUPS,
    groups::OFFSET_DELETE,
    security::DESCRIBE_ACLS,
    security::CREATE_ACLS,
    security::DELETE_ACLS,
    security::SASL_HANDSHAKE,
    security::SASL_AUTHENTICATE,
];

fn served(api_key: ApiKey) -> Option<&'static Api> {
    SUPPORTED_APIS.iter().find(|api| api.key == api_key)
}

/// The versions advertised for `api_key`, if it is served.
pub fn supported_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    served(api_key).map(|api| (api.min, api.max))
}

impl Broker {
    /// A request frame: its header read, its version checked, its adapter called. Anything
    /// malformed or unsupported closes the connection, as Kafka does for requests it cannot parse.
    pub(super) fn on_frame(&mut self, now_ms: i64, conn: ConnId, mut frame: Bytes) {
        let whole = frame.clone();
        let Some((api_key_raw, version)) = frame.get(0..4).map(|b| {
            (
                i16::from_be_bytes([b[0], b[1]]),
                i16::from_be_bytes([b[2], b[3]]),
            )
        }) else {
            return self.close(conn, "request shorter than its header".into());
        };
        let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
            return self.close(conn, format!("unknown API key {api_key_raw}"));
        };
        let header =
            match RequestHeader::decode(&mut frame, api_key.request_header_version(version)) {
                Ok(header) => header,
                Err(error) => {
                    return self.close(
                        conn,
                        format!("malformed {api_key:?} request header: {error}"),
                    )
                }
            };
        let ctx = RequestContext {
            conn,
            api_key,
            version,
            correlation_id: header.correlation_id,
            client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
            now_ms,
        };
        let Some(api) = served(api_key) else {
            return self.close(
                conn,
                format!("{api_key:?} (key {api_key_raw}) is not implemented"),
            );
        };
        // ApiVersions answers any version (KIP-511): its adapter answers unknown ones in v0.
        let (min, max) = (api.min, api.max);
        if api_key != ApiKey::ApiVersions && !(min..=max).contains(&version) {
            return self.close(
                conn,
                format!("{api_key:?} v{version} is not supported (supported: v{min} to v{max})"),
            );
        }
        if !self.is_control() && !crate::placement::is_partition_api(api_key) {
            return self.close(
                conn,
                format!(
                    "malformed {api_key:?} v{version} request: shard {} serves partition requests only; the router sends the rest to shard 0",
                    self.config.shard
                ),
            );
        }
        if self.forward_to_controller(conn, api_key, version, &whole, &frame) {
            return;
        }
        if let Err(error) = (api.handle)(self, &ctx, &mut frame) {
            self.close(
                conn,
                format!("malformed {api_key:?} v{version} request: {error}"),
            );
        }
    }

    pub(super) fn close(&mut self, conn: ConnId, reason: String) {
        self.log(
            crate::io::Level::Warn,
            format!("conn {conn}: closing: {reason}"),
        );
        self.handle_disconnect(conn);
        self.outputs.push_back(Output::Close { conn });
    }

    /// Encodes a response frame (length prefix, header, body) for the request in `ctx`.
    pub(super) fn encode_response<R: Encodable + HeaderVersion>(
        &mut self,
        ctx: &RequestContext,
        body: &R,
    ) -> Option<Output> {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0);
        let header = ResponseHeader::default().with_correlation_id(ctx.correlation_id);
        let encoded = header
            .encode(&mut buf, R::header_version(ctx.version))
            .and_then(|()| body.encode(&mut buf, ctx.version));
        if let Err(error) = encoded {
            // A response we cannot encode is our bug; the client must not hang on it.
            self.close(
                ctx.conn,
                format!(
                    "cannot encode {:?} v{} response: {error}",
                    ctx.api_key, ctx.version
                ),
            );
            return None;
        }
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        Some(Output::Respond {
            conn: ctx.conn,
            frame: buf.freeze(),
        })
    }

    pub(super) fn respond<R: Encodable + HeaderVersion>(&mut self, ctx: &RequestContext, body: &R) {
        if let Some(output) = self.encode_response(ctx, body) {
            self.outputs.push_back(output);
        }
    }

    /// Sends the response once the current metadata version is durable.
    pub(super) fn respond_after_metadata<R: Encodable + HeaderVersion>(
        &mut self,
        ctx: &RequestContext,
        body: &R,
    ) {
        if let Some(output) = self.encode_response(ctx, body) {
            if self.quorum_appended > self.mirrored_quorum_index() {
                // A change the quorum has not committed, or this node not yet mirrored.
                self.after_quorum.push((self.quorum_appended, output));
            } else if self.metadata_visible() >= self.metadata_version {
                self.outputs.push_back(output);
            } else {
                self.after_metadata.push((self.metadata_version, output));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_is_served_by_one_adapter_with_a_valid_range() {
        for (i, api) in SUPPORTED_APIS.iter().enumerate() {
            assert!(
                api.min <= api.max,
                "{:?}: v{} to v{}",
                api.key,
                api.min,
                api.max
            );
            assert!(
                SUPPORTED_APIS[i + 1..]
                    .iter()
                    .all(|other| other.key != api.key),
                "{:?} has two adapters",
                api.key
            );
            assert_eq!(supported_versions(api.key), Some((api.min, api.max)));
        }
        assert_eq!(supported_versions(ApiKey::EndTxn), None);
    }
}
