//! Thread-per-core routing: which shard owns a partition, and the [`Router`] that splits a
//! client's request by owning shard and merges the shards' answers into one response.
//!
//! A connection is served by one shard, its requests may name partitions of any shard. The
//! router, one per shard, looks at each request frame: requests that name partitions (Produce,
//! Fetch, ListOffsets, DeleteRecords, OffsetForLeaderEpoch, DescribeLogDirs) go to the shards
//! that own them, everything else (metadata, groups, configs) to shard 0, the control shard.
//! A request whose partitions all live on one shard is forwarded as it came, and its answer
//! comes back as it is. Only a request spanning shards is decoded, re-encoded as one
//! sub-request per shard (same header, same correlation id), and answered once every shard has
//! answered, with the partitions in the order the client asked for them.
//!
//! A split Fetch waits for its first answer; that shard had enough data or its wait ran out,
//! so the router asks the other shards to answer at once ([`Routed::wake`]) instead of waiting
//! out their own `max_wait_ms`.

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
    ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::collections::{BTreeMap, BTreeSet};

use crate::io::ConnId;
pub use crate::io::ShardMessage;

/// The shard that runs the control plane: topics, groups, configs, producer ids.
pub const CONTROL_SHARD: usize = 0;

/// The shard that owns a partition among `shards`. A topic's partitions go round the shards
/// from a starting shard drawn from its name, so every topic spreads evenly; the group
/// coordinator's topic stays with the control shard.
pub fn owner(topic: &str, partition: i32, shards: usize) -> usize {
    if shards <= 1 || topic == crate::groups::OFFSETS_TOPIC {
        return CONTROL_SHARD;
    }
    // FNV-1a: fixed, so the same partition has the same owner in every run.
    let start = topic.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    ((start % shards as u64 + u64::from(partition.unsigned_abs())) % shards as u64) as usize
}

/// Whether requests of this API name partitions, and so go to the shards that own them.
pub fn is_partition_api(api_key: ApiKey) -> bool {
    matches!(
        api_key,
        ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::DeleteRecords
            | ApiKey::OffsetForLeaderEpoch
            | ApiKey::DescribeLogDirs
    )
}

/// What a shard's core said about a connection's request: the three answers of
/// [`crate::io::Output`] that concern a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A response frame, length prefix included.
    Respond(Bytes),
    /// acks=0: no response.
    NoResponse,
    Close,
}

/// Where a request goes: each shard with the frame (without its length prefix) to hand to
/// that shard's core as a request of the same connection.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Routed {
    pub to: Vec<(usize, Bytes)>,
    /// Shards to ask for their answer to this connection's Fetch now.
    pub wake: Vec<usize>,
    /// The client's answer, once it is complete.
    pub answer: Option<Answer>,
}

/// A request split across shards, waiting for their answers.
struct Split {
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    /// The (topic, partitions) the client asked for, in its order.
    order: Vec<(TopicName, Vec<i32>)>,
    waiting: BTreeSet<usize>,
    answers: Vec<Bytes>,
    no_response: bool,
    woken: bool,
    /// A shard closed the connection: the client was told, the other answers are dropped.
    closed: bool,
    /// A Fetch's `max_bytes`: the merged answer keeps to it (each part answers its share, but
    /// every part may return one batch beyond it; KIP-74 allows that to the first only).
    fetch_max_bytes: Option<i32>,
}

/// `$then!(request type, its topics field, a topic's name field, its partitions field, a
/// partition's index field)` for a request that names partitions (all but DescribeLogDirs, whose
/// partitions are bare numbers), else `$otherwise`.
macro_rules! with_partition_fields {
    ($api_key:expr, $then:ident, $otherwise:expr) => {
        match $api_key {
            ApiKey::Produce => $then!(ProduceRequest, topic_data, name, partition_data, index),
            ApiKey::Fetch => $then!(FetchRequest, topics, topic, partitions, partition),
            ApiKey::ListOffsets => {
                $then!(
                    ListOffsetsRequest,
                    topics,
                    name,
                    partitions,
                    partition_index
                )
            }
            ApiKey::DeleteRecords => {
                $then!(
                    DeleteRecordsRequest,
                    topics,
                    name,
                    partitions,
                    partition_index
                )
            }
            ApiKey::OffsetForLeaderEpoch => {
                $then!(
                    OffsetForLeaderEpochRequest,
                    topics,
                    topic,
                    partitions,
                    partition
                )
            }
            _ => $otherwise,
        }
    };
}

/// Partition requests in a row, all for one other shard, after which a connection moves to
/// that shard ([`Router::migration`]).
pub const MIGRATE_AFTER: u32 = 4;

/// One shard's router for the connections it serves (see the module comment).
pub struct Router {
    shards: usize,
    /// The simulator's planted bug `MislabelSplitFetch` (never in production).
    mislabel_split_fetches: bool,
    splits: BTreeMap<ConnId, Split>,
    /// Per connection, the shard its latest partition requests went to whole, and how many
    /// in a row.
    streaks: BTreeMap<ConnId, (usize, u32)>,
}

impl Router {
    pub fn new(shards: usize) -> Router {
        Router {
            shards: shards.max(1),
            mislabel_split_fetches: false,
            splits: BTreeMap::new(),
            streaks: BTreeMap::new(),
        }
    }

    /// A request frame (without its length prefix) read on `conn`: where it goes.
    pub fn route(&mut self, conn: ConnId, frame: Bytes) -> Routed {
        let whole = |shard| Routed {
            to: vec![(shard, frame.clone())],
            ..Routed::default()
        };
        if self.shards == 1 {
            return whole(CONTROL_SHARD);
        }
        let Some(parsed) = parse(&frame) else {
            // Malformed or unsupported: the control shard closes it with the reason.
            return whole(CONTROL_SHARD);
        };
        let (api_key, version, header, mut body) = parsed;
        // The (topic, partitions) a request names, in its order.
        macro_rules! order {
            ($ty:ty, $topics:ident, $name:ident, $parts:ident, $index:ident) => {
                self.split::<$ty>(&mut body, version, |r| {
                    r.$topics
                        .iter()
                        .map(|t| (t.$name.clone(), t.$parts.iter().map(|p| p.$index).collect()))
                        .collect()
                })
            };
        }
        let split = match api_key {
            ApiKey::DescribeLogDirs => {
                match DescribeLogDirsRequest::decode(&mut body.clone(), version) {
                    // Every partition: every shard describes its own.
                    Ok(request) if request.topics.is_none() => Ok(Plan {
                        parts: (0..self.shards).map(|s| (s, None)).collect(),
                        order: Vec::new(),
                    }),
                    _ => self.split::<DescribeLogDirsRequest>(&mut body, version, |r| {
                        r.topics
                            .iter()
                            .flatten()
                            .map(|t| (t.topic.clone(), t.partitions.clone()))
                            .collect()
                    }),
                }
            }
            _ => with_partition_fields!(api_key, order, return whole(CONTROL_SHARD)),
        };
        let plan = match split {
            Ok(plan) => plan,
            Err(()) => return whole(CONTROL_SHARD),
        };
        if plan.parts.len() == 1 {
            let shard = plan.parts[0].0;
            let streak = self.streaks.entry(conn).or_insert((shard, 0));
            *streak = match *streak {
                (same, n) if same == shard => (shard, n.saturating_add(1)),
                _ => (shard, 1),
            };
            return whole(shard);
        }
        self.streaks.remove(&conn);
        let parts: Option<Vec<(usize, Bytes)>> = plan
            .parts
            .into_iter()
            .map(|(shard, keep)| {
                let body = match keep {
                    None => body.clone(),
                    Some(keep) => subset(api_key, version, &body, &keep)?,
                };
                Some((shard, frame_of(&header, api_key, version, &body)?))
            })
            .collect();
        let Some(to) = parts else {
            // A request that decodes but does not encode again: the control shard answers it.
            return whole(CONTROL_SHARD);
        };
        let fetch_max_bytes = match api_key {
            ApiKey::Fetch => FetchRequest::decode(&mut body.clone(), version)
                .ok()
                .map(|r| r.max_bytes),
            _ => None,
        };
        self.splits.insert(
            conn,
            Split {
                api_key,
                version,
                correlation_id: header.correlation_id,
                order: plan.order,
                waiting: to.iter().map(|(shard, _)| *shard).collect(),
                answers: Vec::new(),
                no_response: false,
                woken: false,
                closed: false,
                fetch_max_bytes,
            },
        );
        Routed {
            to,
            ..Routed::default()
        }
    }

    /// What a shard's core answered to `conn`'s request.
    pub fn on_answer(&mut self, conn: ConnId, shard: usize, answer: Answer) -> Routed {
        let Some(split) = self.splits.get_mut(&conn) else {
            // A request forwarded whole: its answer is the client's.
            return Routed {
                answer: Some(answer),
                ..Routed::default()
            };
        };
        if !split.waiting.remove(&shard) {
            return Routed::default(); // not part of this split (a stale answer)
        }
        if split.closed {
            if split.waiting.is_empty() {
                self.splits.remove(&conn);
            }
            return Routed::default();
        }
        let mut wake = Vec::new();
        match answer {
            Answer::Close => {
                split.closed = true;
                if split.waiting.is_empty() {
                    self.splits.remove(&conn);
                }
                return Routed {
                    answer: Some(Answer::Close),
                    ..Routed::default()
                };
            }
            Answer::NoResponse => split.no_response = true,
            Answer::Respond(frame) => split.answers.push(frame),
        }
        if split.api_key == ApiKey::Fetch && !split.woken {
            split.woken = true;
            wake = split.waiting.iter().copied().collect();
        }
        if !split.waiting.is_empty() {
            return Routed {
                wake,
                ..Routed::default()
            };
        }
        let split = self.splits.remove(&conn).expect("present");
        let answer = if split.no_response {
            Answer::NoResponse
        } else {
            match merge(&split, self.mislabel_split_fetches) {
                Some(frame) => Answer::Respond(frame),
                None => Answer::Close,
            }
        };
        Routed {
            answer: Some(answer),
            ..Routed::default()
        }
    }

    /// Plants a bug for the simulator to catch: a split Fetch's merged answer shifts its
    /// partitions' labels by one within each topic.
    pub fn plant_mislabelled_fetches(&mut self) {
        self.mislabel_split_fetches = true;
    }

    /// The connection closed: its split request, if any, is forgotten.
    pub fn forget(&mut self, conn: ConnId) {
        self.splits.remove(&conn);
        self.streaks.remove(&conn);
    }

    /// Where the connection, served `here` and idle between requests, should move: its last
    /// [`MIGRATE_AFTER`] partition requests all went to one other shard, so served there they
    /// take no hop between executors. A producer to one partition moves to that partition's
    /// shard; a consumer of partitions on several shards stays.
    pub fn migration(&mut self, conn: ConnId, here: usize) -> Option<usize> {
        if self.splits.contains_key(&conn) {
            return None;
        }
        match self.streaks.get(&conn) {
            Some(&(shard, n)) if n >= MIGRATE_AFTER && shard != here => {
                self.streaks.remove(&conn);
                Some(shard)
            }
            _ => None,
        }
    }

    /// Plans a split: which shards get which partitions.
    fn split<R: Decodable>(
        &self,
        body: &mut Bytes,
        version: i16,
        partitions: impl Fn(&R) -> Vec<(TopicName, Vec<i32>)>,
    ) -> Result<Plan, ()> {
        let request = R::decode(&mut body.clone(), version).map_err(|_| ())?;
        let order = partitions(&request);
        let mut by_shard: BTreeMap<usize, PartitionSet> = BTreeMap::new();
        for (topic, indexes) in &order {
            for &index in indexes {
                by_shard
                    .entry(owner(topic.0.as_str(), index, self.shards))
                    .or_default()
                    .insert((topic.clone(), index));
            }
        }
        if by_shard.is_empty() {
            by_shard.insert(CONTROL_SHARD, BTreeSet::new());
        }
        Ok(Plan {
            parts: by_shard
                .into_iter()
                .map(|(shard, keep)| (shard, Some(keep)))
                .collect(),
            order,
        })
    }
}

/// Partitions by topic name and index.
type PartitionSet = BTreeSet<(TopicName, i32)>;

/// Which shards get which partitions (`None`: the request as it is).
struct Plan {
    parts: Vec<(usize, Option<PartitionSet>)>,
    order: Vec<(TopicName, Vec<i32>)>,
}

/// The API key, version, header and body of a request frame, if its header decodes.
fn parse(frame: &Bytes) -> Option<(ApiKey, i16, RequestHeader, Bytes)> {
    let raw = frame.get(0..4)?;
    let api_key = ApiKey::try_from(i16::from_be_bytes([raw[0], raw[1]])).ok()?;
    let version = i16::from_be_bytes([raw[2], raw[3]]);
    let (min, max) = crate::api::supported_versions(api_key)?;
    if !(min..=max).contains(&version) {
        return None;
    }
    let mut body = frame.clone();
    let header = RequestHeader::decode(&mut body, api_key.request_header_version(version)).ok()?;
    Some((api_key, version, header, body))
}

/// A request frame (without its length prefix) from a header and an encoded body.
fn frame_of(header: &RequestHeader, api_key: ApiKey, version: i16, body: &Bytes) -> Option<Bytes> {
    let mut buf = BytesMut::with_capacity(body.len() + 64);
    header
        .encode(&mut buf, api_key.request_header_version(version))
        .ok()?;
    buf.put_slice(body);
    Some(buf.freeze())
}

/// The request body keeping only the partitions of `keep`; topics left with none are dropped.
fn subset(api_key: ApiKey, version: i16, body: &Bytes, keep: &PartitionSet) -> Option<Bytes> {
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
trait PartLimits {
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

/// Decodes a response frame (length prefix included) of the split's API.
fn decode_response<R: Decodable>(split: &Split, frame: &Bytes) -> Option<R> {
    let mut body = frame.slice(4.min(frame.len())..);
    ResponseHeader::decode(
        &mut body,
        split.api_key.response_header_version(split.version),
    )
    .ok()?;
    R::decode(&mut body, split.version).ok()
}

/// A response frame, length prefix included.
fn encode_response<R: Encodable>(split: &Split, body: &R) -> Option<Bytes> {
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
fn in_order<T, P>(
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
fn merge(split: &Split, mislabel_fetches: bool) -> Option<Bytes> {
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
            let merged = merged!(
                parts,
                ProduceResponse,
                TopicProduceResponse,
                responses,
                name,
                partition_responses,
                index
            );
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsPartition;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::fetch_response::PartitionData;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::produce_response::PartitionProduceResponse;
    use kafka_protocol::protocol::StrBytes;

    const SHARDS: usize = 2;

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    /// Partitions of `topic` owned by `shard` (of [`SHARDS`]), from 0 up.
    fn owned(topic: &str, shard: usize, n: usize) -> Vec<i32> {
        (0..)
            .filter(|&p| owner(topic, p, SHARDS) == shard)
            .take(n)
            .collect()
    }

    fn request<R: Encodable>(
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &R,
    ) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("router-test")));
        let mut buf = BytesMut::new();
        body.encode(&mut buf, version).unwrap();
        frame_of(&header, api_key, version, &buf.freeze()).unwrap()
    }

    fn decode_request<R: Decodable>(frame: &Bytes) -> (RequestHeader, R) {
        let (api_key, version, header, mut body) = parse(frame).expect("a sub-request parses");
        assert_eq!(header.request_api_key, api_key as i16);
        (header, R::decode(&mut body, version).unwrap())
    }

    fn response<R: Encodable>(
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: &R,
    ) -> Answer {
        let split = Split {
            api_key,
            version,
            correlation_id,
            order: Vec::new(),
            waiting: BTreeSet::new(),
            answers: Vec::new(),
            no_response: false,
            woken: false,
            closed: false,
            fetch_max_bytes: None,
        };
        Answer::Respond(encode_response(&split, body).unwrap())
    }

    fn decode_answer<R: Decodable>(api_key: ApiKey, version: i16, answer: Answer) -> (i32, R) {
        let Answer::Respond(frame) = answer else {
            panic!("expected a response, got {answer:?}")
        };
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4, "length prefix");
        let mut body = frame.slice(4..);
        let header =
            ResponseHeader::decode(&mut body, api_key.response_header_version(version)).unwrap();
        (
            header.correlation_id,
            R::decode(&mut body, version).unwrap(),
        )
    }

    /// A Fetch of `partitions` of `topic` from `offset`, waiting up to `max_wait_ms` for a byte.
    pub(crate) fn fetch_request(
        topic: &str,
        partitions: &[i32],
        offset: i64,
        max_wait_ms: i32,
    ) -> FetchRequest {
        let partitions = partitions
            .iter()
            .map(|&p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect();
        FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(partitions)])
    }

    fn produce(topic: &str, partitions: &[i32], acks: i16) -> ProduceRequest {
        let data = partitions
            .iter()
            .map(|&p| {
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(Bytes::from(format!("records of {topic}-{p}"))))
            })
            .collect();
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(data)])
    }

    fn produce_answer(topic: &str, partitions: &[i32]) -> ProduceResponse {
        let responses = partitions
            .iter()
            .map(|&p| {
                PartitionProduceResponse::default()
                    .with_index(p)
                    .with_base_offset(1000 + i64::from(p))
            })
            .collect();
        ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(name(topic))
            .with_partition_responses(responses)])
    }

    #[test]
    fn owners_are_fixed_spread_a_topic_and_keep_the_offsets_topic_on_the_control_shard() {
        for p in 0..8 {
            assert_eq!(owner("orders", p, 1), 0);
            assert_eq!(owner(crate::groups::OFFSETS_TOPIC, p, 4), CONTROL_SHARD);
            assert_eq!(owner("orders", p, 4), owner("orders", p, 4));
        }
        // Consecutive partitions go round the shards: 8 partitions, 2 on each of 4 shards.
        let mut counts = [0; 4];
        for p in 0..8 {
            counts[owner("orders", p, 4)] += 1;
            assert_ne!(owner("orders", p, 4), owner("orders", p + 1, 4));
        }
        assert_eq!(counts, [2, 2, 2, 2]);
        // Different topics start on different shards.
        let starts: BTreeSet<usize> = (0..16)
            .map(|t| owner(&format!("topic-{t}"), 0, 4))
            .collect();
        assert!(starts.len() > 1, "{starts:?}");
    }

    #[test]
    fn a_request_for_one_shard_goes_as_it_came_and_its_answer_comes_back_as_it_is() {
        let mut router = Router::new(SHARDS);
        let on_one = owned("t", 1, 2);
        let frame = request(ApiKey::Produce, 9, 7, &produce("t", &on_one, -1));
        let routed = router.route(5, frame.clone());
        assert_eq!(routed.to, vec![(1, frame)]);
        let answer = response(ApiKey::Produce, 9, 7, &produce_answer("t", &on_one));
        assert_eq!(router.on_answer(5, 1, answer.clone()).answer, Some(answer));
        // Anything without partitions goes to the control shard.
        let metadata = request(
            ApiKey::Metadata,
            12,
            8,
            &kafka_protocol::messages::MetadataRequest::default(),
        );
        assert_eq!(router.route(5, metadata.clone()).to, vec![(0, metadata)]);
        // A frame that does not parse goes to the control shard, which closes with the reason.
        let junk = Bytes::from_static(&[0, 0, 0, 99, 1]);
        assert_eq!(router.route(5, junk.clone()).to, vec![(0, junk)]);
    }

    #[test]
    fn a_produce_over_two_shards_is_split_and_answered_in_the_clients_order() {
        let mut router = Router::new(SHARDS);
        let (a, b) = (owned("t", 0, 2), owned("t", 1, 2));
        // Interleaved, so the merged order cannot come from concatenation.
        let order = vec![b[0], a[0], b[1], a[1]];
        let frame = request(ApiKey::Produce, 9, 42, &produce("t", &order, -1));
        let routed = router.route(3, frame);
        assert_eq!(routed.to.len(), 2);
        for (shard, sub) in &routed.to {
            let (header, sub): (_, ProduceRequest) = decode_request(sub);
            assert_eq!(header.correlation_id, 42);
            assert_eq!(header.client_id.as_deref(), Some("router-test"));
            assert_eq!(sub.acks, -1);
            let parts: Vec<i32> = sub.topic_data[0]
                .partition_data
                .iter()
                .map(|p| p.index)
                .collect();
            let mine = if *shard == 0 { &a } else { &b };
            assert_eq!(&parts, mine, "shard {shard} gets its own partitions");
            for p in &sub.topic_data[0].partition_data {
                assert_eq!(
                    p.records.as_deref(),
                    Some(format!("records of t-{}", p.index).as_bytes())
                );
            }
        }
        // Shard 1 answers first: nothing for the client yet.
        let first = router.on_answer(
            3,
            1,
            response(ApiKey::Produce, 9, 42, &produce_answer("t", &b)),
        );
        assert_eq!(first, Routed::default());
        let done = router.on_answer(
            3,
            0,
            response(ApiKey::Produce, 9, 42, &produce_answer("t", &a)),
        );
        let (correlation_id, merged): (_, ProduceResponse) =
            decode_answer(ApiKey::Produce, 9, done.answer.unwrap());
        assert_eq!(correlation_id, 42);
        assert_eq!(merged.responses.len(), 1);
        let got: Vec<(i32, i64)> = merged.responses[0]
            .partition_responses
            .iter()
            .map(|p| (p.index, p.base_offset))
            .collect();
        assert_eq!(
            got,
            order
                .iter()
                .map(|&p| (p, 1000 + i64::from(p)))
                .collect::<Vec<_>>()
        );
        // The split is over: the next answer on the connection passes straight through.
        let stray = Answer::Respond(Bytes::from_static(b"\0\0\0\0"));
        assert_eq!(router.on_answer(3, 0, stray.clone()).answer, Some(stray));
    }

    #[test]
    fn a_split_acks_0_produce_gets_no_response_and_a_close_from_one_shard_closes_at_once() {
        let mut router = Router::new(SHARDS);
        let both = vec![owned("t", 0, 1)[0], owned("t", 1, 1)[0]];
        router.route(1, request(ApiKey::Produce, 9, 1, &produce("t", &both, 0)));
        assert_eq!(router.on_answer(1, 0, Answer::NoResponse).answer, None);
        assert_eq!(
            router.on_answer(1, 1, Answer::NoResponse).answer,
            Some(Answer::NoResponse)
        );

        router.route(2, request(ApiKey::Produce, 9, 2, &produce("t", &both, -1)));
        assert_eq!(
            router.on_answer(2, 1, Answer::Close).answer,
            Some(Answer::Close)
        );
        // The other shard's late answer is dropped, not sent on the closing connection.
        let late = response(ApiKey::Produce, 9, 2, &produce_answer("t", &both[..1]));
        assert_eq!(router.on_answer(2, 0, late), Routed::default());
        let next = Answer::NoResponse;
        assert_eq!(router.on_answer(2, 0, next.clone()).answer, Some(next));
    }

    #[test]
    fn a_split_fetch_wakes_the_other_shards_at_the_first_answer() {
        let mut router = Router::new(SHARDS);
        let (a, b) = (owned("t", 0, 1)[0], owned("t", 1, 1)[0]);
        let fetch = fetch_request("t", &[a, b], 3, 500);
        let routed = router.route(9, request(ApiKey::Fetch, 12, 5, &fetch));
        assert_eq!(routed.to.len(), 2);
        for (_, sub) in &routed.to {
            let (_, sub): (_, FetchRequest) = decode_request(sub);
            assert_eq!((sub.max_wait_ms, sub.min_bytes), (500, 1));
            assert_eq!(sub.topics[0].partitions.len(), 1);
            // Half the partitions, half the response limit: the merged answer stays within it.
            assert_eq!(sub.max_bytes, 1 << 19);
        }
        let batch = Bytes::from(crate::batch::tests::make_batch(&[b"v"], 0));
        let first = router.on_answer(9, 1, fetch_answer(b, batch.clone()));
        assert_eq!(first.wake, vec![0]);
        assert_eq!(first.answer, None);
        let done = router.on_answer(9, 0, fetch_answer(a, Bytes::new()));
        let (_, merged): (_, FetchResponse) =
            decode_answer(ApiKey::Fetch, 12, done.answer.unwrap());
        let parts = &merged.responses[0].partitions;
        assert_eq!(
            parts.iter().map(|p| p.partition_index).collect::<Vec<_>>(),
            vec![a, b]
        );
        assert_eq!(parts[1].records, Some(batch));
    }

    fn fetch_answer(partition: i32, records: Bytes) -> Answer {
        response(
            ApiKey::Fetch,
            12,
            5,
            &FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(name("t"))
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(partition)
                    .with_high_watermark(10)
                    .with_records(Some(records))])]),
        )
    }

    /// Issue 13: each shard may return a first batch beyond its share of `max_bytes` (a librdkafka
    /// consumer with `fetch.max.bytes` 1 MB got 1.84 MB and stalled). The merged answer keeps the
    /// first partition's batch whole and drops what does not fit after it (KIP-74).
    #[test]
    fn a_split_fetch_answer_keeps_to_the_requests_max_bytes() {
        let (a, b) = (owned("t", 0, 1)[0], owned("t", 1, 1)[0]);
        let big = Bytes::from(crate::batch::tests::make_batch(&[&[7u8; 700]], 0));
        let small = Bytes::from(crate::batch::tests::make_batch(&[b"v"], 0));
        let two = Bytes::from([small.clone(), small.clone()].concat());
        // (max_bytes, what the second partition keeps)
        let cases = [
            (big.len() + small.len() + 10, small.clone()),
            (big.len() - 100, Bytes::new()),
        ];
        for (max_bytes, kept) in cases {
            let mut router = Router::new(SHARDS);
            let mut fetch = fetch_request("t", &[a, b], 3, 0);
            fetch.max_bytes = max_bytes as i32;
            router.route(9, request(ApiKey::Fetch, 12, 5, &fetch));
            router.on_answer(9, 1, fetch_answer(b, two.clone()));
            let done = router.on_answer(9, 0, fetch_answer(a, big.clone()));
            let (_, merged): (_, FetchResponse) =
                decode_answer(ApiKey::Fetch, 12, done.answer.unwrap());
            let parts = &merged.responses[0].partitions;
            assert_eq!(
                parts[0].records,
                Some(big.clone()),
                "the first batch, whole"
            );
            assert_eq!(parts[1].records, Some(kept), "max_bytes {max_bytes}");
            assert_eq!(parts[1].high_watermark, 10, "offsets still answered");
        }
    }

    #[test]
    fn list_offsets_and_describe_log_dirs_merge_across_shards() {
        let mut router = Router::new(SHARDS);
        let (a, b) = (owned("x", 0, 1)[0], owned("y", 1, 1)[0]);
        let list = ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name("y"))
                .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(b)]),
            ListOffsetsTopic::default()
                .with_name(name("x"))
                .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(a)]),
        ]);
        let routed = router.route(4, request(ApiKey::ListOffsets, 7, 11, &list));
        assert_eq!(
            routed.to.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![0, 1]
        );
        let answer = |topic: &str, p: i32| {
            response(
                ApiKey::ListOffsets,
                7,
                11,
                &ListOffsetsResponse::default().with_topics(vec![
                    ListOffsetsTopicResponse::default()
                        .with_name(name(topic))
                        .with_partitions(vec![ListOffsetsPartitionResponse::default()
                            .with_partition_index(p)
                            .with_offset(i64::from(p) + 50)]),
                ]),
            )
        };
        assert_eq!(router.on_answer(4, 0, answer("x", a)).answer, None);
        let done = router.on_answer(4, 1, answer("y", b));
        let (_, merged): (_, ListOffsetsResponse) =
            decode_answer(ApiKey::ListOffsets, 7, done.answer.unwrap());
        let got: Vec<(String, i64)> = merged
            .topics
            .iter()
            .map(|t| (t.name.0.to_string(), t.partitions[0].offset))
            .collect();
        assert_eq!(
            got,
            vec![
                ("y".into(), i64::from(b) + 50),
                ("x".into(), i64::from(a) + 50)
            ]
        );

        // Every partition (topics null): every shard describes its own, one directory comes back.
        let routed = router.route(
            6,
            request(
                ApiKey::DescribeLogDirs,
                4,
                12,
                &DescribeLogDirsRequest::default().with_topics(None),
            ),
        );
        assert_eq!(routed.to.len(), SHARDS);
        let dir = |p: i32| {
            response(
                ApiKey::DescribeLogDirs,
                4,
                12,
                &DescribeLogDirsResponse::default().with_results(vec![
                    DescribeLogDirsResult::default()
                        .with_log_dir(StrBytes::from_static_str("/data"))
                        .with_topics(vec![DescribeLogDirsTopic::default()
                            .with_name(name("z"))
                            .with_partitions(vec![DescribeLogDirsPartition::default()
                                .with_partition_index(p)
                                .with_partition_size(100 * i64::from(p))])]),
                ]),
            )
        };
        assert_eq!(router.on_answer(6, 1, dir(1)).answer, None);
        let done = router.on_answer(6, 0, dir(0));
        let (_, merged): (_, DescribeLogDirsResponse) =
            decode_answer(ApiKey::DescribeLogDirs, 4, done.answer.unwrap());
        assert_eq!(merged.results.len(), 1);
        let topics = &merged.results[0].topics;
        assert_eq!(topics.len(), 1);
        let sizes: Vec<(i32, i64)> = topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        assert_eq!(sizes, vec![(0, 0), (1, 100)]);
    }

    #[test]
    fn a_connection_whose_partition_requests_go_to_one_other_shard_moves_there() {
        let mut router = Router::new(SHARDS);
        let (a, b) = (owned("t", 0, 1)[0], owned("t", 1, 1)[0]);
        let produce_to = |router: &mut Router, partitions: &[i32]| {
            router.route(
                1,
                request(ApiKey::Produce, 9, 1, &produce("t", partitions, -1)),
            );
        };
        for i in 1..=MIGRATE_AFTER {
            assert_eq!(router.migration(1, 0), None, "after {} requests", i - 1);
            produce_to(&mut router, &[b]);
            // Requests for the control shard do not break the streak.
            router.route(
                1,
                request(
                    ApiKey::Metadata,
                    12,
                    2,
                    &kafka_protocol::messages::MetadataRequest::default(),
                ),
            );
        }
        assert_eq!(router.migration(1, 1), None, "already on the owner");
        assert_eq!(router.migration(1, 0), Some(1));
        assert_eq!(router.migration(1, 0), None, "asked once");
        // A split request, or one for another shard, starts the count again.
        for _ in 0..MIGRATE_AFTER {
            produce_to(&mut router, &[b]);
        }
        produce_to(&mut router, &[a, b]);
        router.on_answer(1, 0, Answer::NoResponse);
        router.on_answer(1, 1, Answer::NoResponse);
        assert_eq!(router.migration(1, 0), None);
        for _ in 0..MIGRATE_AFTER {
            produce_to(&mut router, &[a]);
        }
        assert_eq!(router.migration(1, 1), Some(0));
    }

    #[test]
    fn a_forgotten_connection_drops_its_split() {
        let mut router = Router::new(SHARDS);
        let both = vec![owned("t", 0, 1)[0], owned("t", 1, 1)[0]];
        router.route(8, request(ApiKey::Produce, 9, 1, &produce("t", &both, -1)));
        router.forget(8);
        let answer = Answer::NoResponse;
        assert_eq!(router.on_answer(8, 0, answer.clone()).answer, Some(answer));
    }
}
