//! What every room is told about the Kafka request it serves. The APIs served and their
//! versions are declared by their adapters and collected in `broker/apis.rs`.

use crate::io::ConnId;
use kafka_protocol::messages::ApiKey;

/// The request a handler answers: where the response goes and how to encode it.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub conn: ConnId,
    pub api_key: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    pub now_ms: i64,
}
