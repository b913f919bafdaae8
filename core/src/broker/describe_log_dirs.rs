//! DescribeLogDirs (key 35): the one data directory, with the size in bytes of each partition
//! asked for (null: every partition).
//!
//! A compacted topic's partitions carry their dirty ratio in a tagged field Kafka does not
//! define (`log::compact::DIRTY_RATIO_TAG`), for `spate topic describe`.
//!
//! Differs from Kafka: a partition's size counts every appended batch, flushed or not (the
//! segment's logical size, without the block padding on disk); the volume's total and usable
//! bytes (v4) are -1, unknown, since the core never looks at the disk.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::topics::Topic;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// Versions served, and the adapter.
pub(super) const API: Api = api!(DescribeLogDirs, 1..=4, Broker::on_describe_log_dirs);

impl Broker {
    pub(super) fn on_describe_log_dirs(
        &mut self,
        ctx: &RequestContext,
        request: DescribeLogDirsRequest,
    ) {
        // Each shard describes the partitions it owns (the router merges them).
        let (shard, shards) = (self.config.shard, self.config.shards);
        let owned =
            |topic: &Topic, p: i32| crate::placement::owner(&topic.name, p, shards) == shard;
        let topics: Vec<DescribeLogDirsTopic> = match &request.topics {
            None => self
                .topics
                .values()
                .map(|topic| {
                    let all = 0..topic.partitions.len() as i32;
                    describe_partitions(topic, all.filter(|&p| owned(topic, p)))
                })
                .filter(|t| shards == 1 || !t.partitions.is_empty())
                .collect(),
            // Unknown topics and partitions are left out, as Kafka does.
            Some(wanted) => wanted
                .iter()
                .filter_map(|w| {
                    let topic = self.topics.get(w.topic.0.as_str())?;
                    let mine = w.partitions.iter().copied().filter(|&p| owned(topic, p));
                    Some(describe_partitions(topic, mine))
                })
                .collect(),
        };
        let result = DescribeLogDirsResult::default()
            .with_log_dir(StrBytes::from_string(self.config.log_dir.clone()))
            .with_topics(topics)
            .with_total_bytes(-1)
            .with_usable_bytes(-1);
        self.respond(
            ctx,
            &DescribeLogDirsResponse::default().with_results(vec![result]),
        );
    }
}

fn describe_partitions(
    topic: &Topic,
    partitions: impl Iterator<Item = i32>,
) -> DescribeLogDirsTopic {
    let partitions = partitions
        .filter_map(|index| {
            let log = &topic.partitions.get(usize::try_from(index).ok()?)?.log;
            let mut partition = DescribeLogDirsPartition::default()
                .with_partition_index(index)
                .with_partition_size(log.size_bytes() as i64)
                .with_offset_lag(0)
                .with_is_future_key(false);
            if topic.has_cleanup_policy("compact") {
                let ratio = log.dirty_ratio().to_be_bytes();
                partition.unknown_tagged_fields.insert(
                    crate::log::compact::DIRTY_RATIO_TAG,
                    bytes::Bytes::copy_from_slice(&ratio),
                );
            }
            Some(partition)
        })
        .collect();
    DescribeLogDirsTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
        .with_partitions(partitions)
}
