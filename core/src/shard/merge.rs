//! The shards' answers to a split request, put back together: one response with the
//! partitions in the order the client asked for them.

use super::Split;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::delete_records_response::DeleteRecordsTopicResult;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
use kafka_protocol::messages::list_offsets_response::ListOffsetsTopicResponse;
use kafka_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderTopicResult;
use kafka_protocol::messages::produce_response::TopicProduceResponse;
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsResponse, DescribeLogDirsResponse, FetchResponse, ListOffsetsResponse,
    OffsetForLeaderEpochResponse, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::collections::BTreeMap;

/// Decodes a response frame (length prefix included) of the split's API.
pub(super) fn decode_response<R: Decodable>(split: &Split, frame: &Bytes) -> Option<R> {
    let mut body = frame.slice(4.min(frame.len())..);
    ResponseHeader::decode(
        &mut body,
        split.api_key.response_header_version(split.version),
    )
    .ok()?;
    R::decode(&mut body, split.version).ok()
}

/// A response frame, length prefix included.
pub(super) fn encode_response<R: Encodable>(split: &Split, body: &R) -> Option<Bytes> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(split.correlation_id)
        .encode(
            &mut buf,
            split.api_key.response_header_version(split.version),
        )
        .ok()?;
    body.encode(&mut buf, split.version).ok()?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Some(buf.freeze())
}

/// Puts the partitions of several answers back in the client's order: `take` splits a topic
/// entry into its name and partitions, `build` makes one.
pub(super) fn in_order<T, P>(
    order: &[(TopicName, Vec<i32>)],
    topics: impl Iterator<Item = T>,
    take: impl Fn(T) -> (TopicName, Vec<P>),
    index: impl Fn(&P) -> i32,
    build: impl Fn(TopicName, Vec<P>) -> T,
) -> Vec<T> {
    let mut found: BTreeMap<(TopicName, i32), P> = BTreeMap::new();
    for topic in topics {
        let (name, partitions) = take(topic);
        for partition in partitions {
            found.insert((name.clone(), index(&partition)), partition);
        }
    }
    order
        .iter()
        .map(|(name, indexes)| {
            let partitions = indexes
                .iter()
                .filter_map(|&i| found.remove(&(name.clone(), i)))
                .collect();
            build(name.clone(), partitions)
        })
        .collect()
}

/// The client's response from every shard's answer; `None` if one does not decode.
/// (`mislabel_fetches`: the simulator's planted bug, see `Router::plant_mislabelled_fetches`.)
pub(super) fn merge(split: &Split, mislabel_fetches: bool) -> Option<Bytes> {
    macro_rules! answers {
        ($ty:ty) => {
            split
                .answers
                .iter()
                .map(|frame| decode_response::<$ty>(split, frame))
                .collect::<Option<Vec<$ty>>>()?
        };
    }
    let order = &split.order;
    // One answer from the parts' answers: their partitions in the client's order, the longest
    // throttle.
    macro_rules! merged {
        ($parts:expr, $ty:ty, $topic:ty, $topics:ident, $name:ident, $partitions:ident, $index:ident) => {{
            let parts: Vec<$ty> = $parts;
            let mut merged = <$ty>::default();
            merged.throttle_time_ms = parts.iter().map(|p| p.throttle_time_ms).max().unwrap_or(0);
            merged.$topics = in_order(
                order,
                parts.into_iter().flat_map(|p| p.$topics),
                |t| (t.$name, t.$partitions),
                |p| p.$index,
                |name, partitions| {
                    let mut topic = <$topic>::default();
                    topic.$name = name;
                    topic.$partitions = partitions;
                    topic
                },
            );
            merged
        }};
    }
    match split.api_key {
        ApiKey::Produce => {
            let parts = answers!(ProduceResponse);
            // The leaders the parts named (KIP-951), each once.
            let mut endpoints: Vec<_> = parts
                .iter()
                .flat_map(|p| p.node_endpoints.clone())
                .collect();
            endpoints.sort_by_key(|e| e.node_id.0);
            endpoints.dedup_by_key(|e| e.node_id.0);
            let mut merged = merged!(
                parts,
                ProduceResponse,
                TopicProduceResponse,
                responses,
                name,
                partition_responses,
                index
            );
            merged.node_endpoints = endpoints;
            encode_response(split, &merged)
        }
        ApiKey::Fetch => {
            let parts = answers!(FetchResponse);
            let error = parts.iter().map(|p| p.error_code).find(|&e| e != 0);
            let mut merged = merged!(
                parts,
                FetchResponse,
                FetchableTopicResponse,
                responses,
                topic,
                partitions,
                partition_index
            );
            merged.error_code = error.unwrap_or(0);
            if let Some(max_bytes) = split.fetch_max_bytes.filter(|m| *m > 0) {
                crate::batch::limit_fetch_records(
                    merged
                        .responses
                        .iter_mut()
                        .flat_map(|t| t.partitions.iter_mut())
                        .map(|p| (&mut p.records, usize::MAX)),
                    max_bytes as usize,
                );
            }
            if mislabel_fetches {
                for topic in &mut merged.responses {
                    let mut labels: Vec<i32> =
                        topic.partitions.iter().map(|p| p.partition_index).collect();
                    labels.rotate_left(1);
                    for (p, label) in topic.partitions.iter_mut().zip(labels) {
                        p.partition_index = label;
                    }
                }
            }
            encode_response(split, &merged)
        }
        ApiKey::ListOffsets => {
            let parts = answers!(ListOffsetsResponse);
            let merged = merged!(
                parts,
                ListOffsetsResponse,
                ListOffsetsTopicResponse,
                topics,
                name,
                partitions,
                partition_index
            );
            encode_response(split, &merged)
        }
        ApiKey::DeleteRecords => {
            let parts = answers!(DeleteRecordsResponse);
            let merged = merged!(
                parts,
                DeleteRecordsResponse,
                DeleteRecordsTopicResult,
                topics,
                name,
                partitions,
                partition_index
            );
            encode_response(split, &merged)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let parts = answers!(OffsetForLeaderEpochResponse);
            let merged = merged!(
                parts,
                OffsetForLeaderEpochResponse,
                OffsetForLeaderTopicResult,
                topics,
                topic,
                partitions,
                partition
            );
            encode_response(split, &merged)
        }
        ApiKey::DescribeLogDirs => {
            let parts = answers!(DescribeLogDirsResponse);
            let throttle = parts.iter().map(|p| p.throttle_time_ms).max().unwrap_or(0);
            let error = parts.iter().map(|p| p.error_code).find(|&e| e != 0);
            // One entry per log directory; a topic's partitions from every shard in one entry.
            let mut dirs: Vec<DescribeLogDirsResult> = Vec::new();
            for result in parts.into_iter().flat_map(|p| p.results) {
                let dir = match dirs.iter_mut().find(|d| d.log_dir == result.log_dir) {
                    Some(dir) => dir,
                    None => {
                        dirs.push(result.clone().with_topics(Vec::new()));
                        dirs.last_mut().expect("pushed")
                    }
                };
                for topic in result.topics {
                    match dir.topics.iter_mut().find(|t| t.name == topic.name) {
                        Some(t) => t.partitions.extend(topic.partitions),
                        None => dir.topics.push(topic),
                    }
                }
            }
            for dir in &mut dirs {
                for topic in &mut dir.topics {
                    topic.partitions.sort_by_key(|p| p.partition_index);
                }
                if !order.is_empty() {
                    let topics = std::mem::take(&mut dir.topics);
                    dir.topics = in_order(
                        order,
                        topics.into_iter(),
                        |t| (t.name, t.partitions),
                        |p| p.partition_index,
                        |name, partitions| {
                            DescribeLogDirsTopic::default()
                                .with_name(name)
                                .with_partitions(partitions)
                        },
                    );
                    dir.topics.retain(|t| !t.partitions.is_empty());
                }
            }
            encode_response(
                split,
                &DescribeLogDirsResponse::default()
                    .with_results(dirs)
                    .with_throttle_time_ms(throttle)
                    .with_error_code(error.unwrap_or(0)),
            )
        }
        other => unreachable!("{other:?} is not split"),
    }
}
