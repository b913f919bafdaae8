//! Thread-per-core routing: the [`Router`] that splits a client's request by owning shard
//! ([`crate::placement`]) and merges the shards' answers into one response.
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

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsRequest, DescribeLogDirsRequest, FetchRequest, ListOffsetsRequest,
    OffsetForLeaderEpochRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::Decodable;
use std::collections::{BTreeMap, BTreeSet};

use crate::io::ConnId;
pub use crate::io::ShardMessage;
pub use crate::placement::{is_partition_api, owner, CONTROL_SHARD};

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

mod merge;
mod split;

use merge::merge;
use split::{frame_of, parse, subset, PartitionSet, Plan};
#[cfg(test)]
pub(crate) mod tests;
