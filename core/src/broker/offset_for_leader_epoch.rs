//! OffsetForLeaderEpoch (key 23): where a leader epoch's records end, for consumers checking
//! for log truncation after a leader change (KIP-320).
//!
//! Every record is in leader epoch 0 (one node, no elections yet), so epoch 0 ends at the end
//! of the log and any other epoch is unknown. Differs from Kafka: the end offset is the high
//! watermark, not the log end offset, since records above it are not yet durable and a crash
//! could take them back; a consumer never reads above it, so the check is unchanged.

use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

/// The only leader epoch so far.
const LEADER_EPOCH: i32 = 0;
/// Kafka's answer for an epoch it has no record of.
const UNDEFINED_EPOCH: i32 = -1;
const UNDEFINED_EPOCH_OFFSET: i64 = -1;

impl Broker {
    pub(super) fn on_offset_for_leader_epoch(
        &mut self,
        ctx: &RequestContext,
        request: OffsetForLeaderEpochRequest,
    ) {
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let partitions = topic
                .partitions
                .iter()
                .map(|wanted| {
                    let mut result = EpochEndOffset::default()
                        .with_partition(wanted.partition)
                        .with_leader_epoch(UNDEFINED_EPOCH)
                        .with_end_offset(UNDEFINED_EPOCH_OFFSET);
                    match self.epoch_end_offset(
                        topic.topic.0.as_str(),
                        wanted.partition,
                        wanted.current_leader_epoch,
                        wanted.leader_epoch,
                    ) {
                        Ok(Some(end_offset)) => {
                            result.leader_epoch = LEADER_EPOCH;
                            result.end_offset = end_offset;
                        }
                        Ok(None) => {}
                        Err(code) => result.error_code = code,
                    }
                    result
                })
                .collect();
            topics.push(
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic.topic.clone())
                    .with_partitions(partitions),
            );
        }
        self.respond(
            ctx,
            &OffsetForLeaderEpochResponse::default().with_topics(topics),
        );
    }

    /// The end offset of `epoch` in the partition (`None` for an epoch it never had), after
    /// Kafka's check of the requester's current epoch (-1: no check).
    fn epoch_end_offset(
        &self,
        name: &str,
        partition: i32,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<Option<i64>, i16> {
        let topic = self
            .topics
            .get(name)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        let log = topic
            .partitions
            .get(partition as usize)
            .filter(|_| partition >= 0)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        if !self.owns(name, partition) {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        if self.offline.contains(&(topic.id, partition)) {
            return Err(errors::KAFKA_STORAGE_ERROR);
        }
        // Epoch 0 is the first, so no requester is behind it (FENCED_LEADER_EPOCH) yet.
        if current_leader_epoch > LEADER_EPOCH {
            return Err(errors::UNKNOWN_LEADER_EPOCH);
        }
        Ok((epoch == LEADER_EPOCH).then(|| log.high_watermark()))
    }
}
