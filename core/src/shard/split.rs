//! A request spanning shards, taken apart: its header read, the partitions of each shard kept
//! in a sub-request of the same API, version and correlation id.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsRequest, DescribeLogDirsRequest, FetchRequest, ListOffsetsRequest,
    OffsetForLeaderEpochRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::collections::BTreeSet;

/// Partitions by topic name and index.
pub(super) type PartitionSet = BTreeSet<(TopicName, i32)>;

/// Which shards get which partitions (`None`: the request as it is).
pub(super) struct Plan {
    pub(super) parts: Vec<(usize, Option<PartitionSet>)>,
    pub(super) order: Vec<(TopicName, Vec<i32>)>,
}

/// The API key, version, header and body of a request frame, if its header decodes.
pub(super) fn parse(frame: &Bytes) -> Option<(ApiKey, i16, RequestHeader, Bytes)> {
    let raw = frame.get(0..4)?;
    let api_key = ApiKey::try_from(i16::from_be_bytes([raw[0], raw[1]])).ok()?;
    let version = i16::from_be_bytes([raw[2], raw[3]]);
    let (min, max) = crate::broker::supported_versions(api_key)?;
    if !(min..=max).contains(&version) {
        return None;
    }
    let mut body = frame.clone();
    let header = RequestHeader::decode(&mut body, api_key.request_header_version(version)).ok()?;
    Some((api_key, version, header, body))
}

/// A request frame (without its length prefix) from a header and an encoded body.
pub(super) fn frame_of(
    header: &RequestHeader,
    api_key: ApiKey,
    version: i16,
    body: &Bytes,
) -> Option<Bytes> {
    let mut buf = BytesMut::with_capacity(body.len() + 64);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .ok()?;
    buf.put_slice(body);
    Some(buf.freeze())
}

/// The request body keeping only the partitions of `keep`; topics left with none are dropped.
pub(super) fn subset(
    api_key: ApiKey,
    version: i16,
    body: &Bytes,
    keep: &PartitionSet,
) -> Option<Bytes> {
    let kept = |topic: &TopicName, index: i32| keep.contains(&(topic.clone(), index));
    fn encode<R: Encodable>(request: &R, version: i16) -> Option<Bytes> {
        let mut buf = BytesMut::new();
        request.encode(&mut buf, version).ok()?;
        Some(buf.freeze())
    }
    let mut body = body.clone();
    // The request with only the kept partitions; topics left with none are dropped.
    macro_rules! keep {
        ($ty:ty, $topics:ident, $name:ident, $parts:ident, $index:ident) => {{
            let mut r = <$ty>::decode(&mut body, version).ok()?;
            let count = |r: &$ty| r.$topics.iter().map(|t| t.$parts.len()).sum::<usize>();
            let all = count(&r);
            for t in &mut r.$topics {
                t.$parts.retain(|p| kept(&t.$name, p.$index));
            }
            r.$topics.retain(|t| !t.$parts.is_empty());
            let part = count(&r);
            r.limit_to_share(part, all);
            encode(&r, version)
        }};
    }
    match api_key {
        ApiKey::DescribeLogDirs => {
            let mut r = DescribeLogDirsRequest::decode(&mut body, version).ok()?;
            if let Some(topics) = r.topics.as_mut() {
                for t in topics.iter_mut() {
                    t.partitions.retain(|&p| kept(&t.topic, p));
                }
                topics.retain(|t| !t.partitions.is_empty());
            }
            encode(&r, version)
        }
        _ => with_partition_fields!(api_key, keep, None),
    }
}

/// A request's limits when it is one shard's part of a request for `all` partitions, `part`
/// of them here.
pub(super) trait PartLimits {
    fn limit_to_share(&mut self, _part: usize, _all: usize) {}
}

impl PartLimits for ProduceRequest {}
impl PartLimits for ListOffsetsRequest {}
impl PartLimits for DeleteRecordsRequest {}
impl PartLimits for OffsetForLeaderEpochRequest {}

/// A Fetch's `max_bytes` is shared by its parts in proportion to their partitions, so that the
/// shards read about what the merged answer may carry (which `merge` then keeps to: a client
/// sizes its receive buffer by it).
impl PartLimits for FetchRequest {
    fn limit_to_share(&mut self, part: usize, all: usize) {
        let share = i64::from(self.max_bytes.max(0)) * part as i64 / all.max(1) as i64;
        self.max_bytes = share.clamp(1, i64::from(i32::MAX)) as i32;
    }
}
