//! OffsetForLeaderEpoch (key 23): where a leader epoch's records end, for consumers checking
//! for log truncation after a leader change (KIP-320), answered from the partition's epoch
//! history by Kafka's rules (`Partition::end_offset_for_epoch`), after Kafka's check of the
//! requester's current leader epoch (older: FENCED_LEADER_EPOCH, newer: UNKNOWN_LEADER_EPOCH).
//! Differs from Kafka: the current epoch ends at the high watermark (or where it began, if
//! later), not the log end offset, since records above it are not yet durable and a crash
//! could take them back; a consumer never reads above it, so the check is unchanged. Older
//! epochs end where the next began, above the high watermark or not: a new leader's high
//! watermark lags its predecessor's, whose consumers may have read that far.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

/// The requester does not say which epoch it thinks is current.
const NO_EPOCH: i32 = -1;

/// Versions served, and the adapter.
pub(super) const API: Api = api!(
    OffsetForLeaderEpoch,
    2..=4,
    Broker::on_offset_for_leader_epoch
);

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
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    match self.epoch_end_offset(
                        topic.topic.0.as_str(),
                        wanted.partition,
                        wanted.current_leader_epoch,
                        wanted.leader_epoch,
                    ) {
                        Ok((epoch, end_offset)) => {
                            result.leader_epoch = epoch;
                            result.end_offset = end_offset;
                        }
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

    /// (epoch, end offset) of `epoch` in the partition ((-1, -1) for one it never had),
    /// after Kafka's check of the requester's current epoch (-1: no check): the error code
    /// OffsetForLeaderEpoch answers otherwise.
    pub fn epoch_end_offset(
        &self,
        name: &str,
        partition: i32,
        current_leader_epoch: i32,
        epoch: i32,
    ) -> Result<(i32, i64), i16> {
        let topic = self
            .topics
            .get(name)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        let state = topic
            .partitions
            .get(partition as usize)
            .filter(|_| partition >= 0)
            .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
        if !self.owns(name, partition) || !state.replica.is_leader() {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        if self.offline.contains(&(topic.id, partition)) {
            return Err(errors::KAFKA_STORAGE_ERROR);
        }
        check_current_epoch(current_leader_epoch, state.replica.leader_epoch())?;
        let (found, end) = state.end_offset_for_epoch(epoch);
        if self.config.planted_bug == Some(super::PlantedBug::ClampEpochEnds) {
            return Ok((found, end.min(state.high_watermark())));
        }
        Ok((found, end))
    }
}

/// Kafka's check of the leader epoch a requester believes current (Fetch v9+, ListOffsets
/// v4+, OffsetForLeaderEpoch v2+; -1: no check): an older one is fenced (its metadata is
/// stale: it refreshes and, with KIP-320, validates its position), a newer one is unknown
/// here yet.
pub(super) fn check_current_epoch(current: i32, leader_epoch: i32) -> Result<(), i16> {
    match current {
        NO_EPOCH => Ok(()),
        c if c < leader_epoch => Err(errors::FENCED_LEADER_EPOCH),
        c if c > leader_epoch => Err(errors::UNKNOWN_LEADER_EPOCH),
        _ => Ok(()),
    }
}
