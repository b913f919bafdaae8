//! DeleteRecords (key 21): moves a partition's log start offset forward to the offset given
//! (-1: the high watermark), so offsets below it are no longer served (Fetch answers
//! OFFSET_OUT_OF_RANGE, ListOffsets earliest the new start). The new start is persisted with the
//! metadata and the answer waits for it to be durable, so it survives a restart.
//!
//! Differs from Kafka: the bytes below the start stay in the segment until segments roll and old
//! ones are deleted (issue 3); the request's timeout is not needed, as the one replica is this
//! node's disk.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::errors;
use crate::io::Level;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

/// The offset that means "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

/// Kafka's internal topics, whose records cannot be deleted.
const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Versions served, and the adapter.
pub(super) const API: Api = api!(DeleteRecords, 0..=2, Broker::on_delete_records);

impl Broker {
    pub(super) fn on_delete_records(
        &mut self,
        ctx: &RequestContext,
        request: DeleteRecordsRequest,
    ) {
        let mut moved = Vec::new();
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in &request.topics {
            let name = topic.name.0.as_str();
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for wanted in &topic.partitions {
                let mut result = DeleteRecordsPartitionResult::default()
                    .with_partition_index(wanted.partition_index)
                    .with_low_watermark(-1);
                match self.move_log_start(name, wanted.partition_index, wanted.offset) {
                    Ok((low_watermark, changed)) => {
                        result.low_watermark = low_watermark;
                        if changed {
                            let id = self.topics[name].id;
                            moved.push((id, wanted.partition_index, low_watermark));
                        }
                    }
                    Err(code) => result.error_code = code,
                }
                partitions.push(result);
            }
            topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        let response = DeleteRecordsResponse::default().with_topics(topics);
        if moved.is_empty() {
            return self.respond(ctx, &response);
        }
        if !self.is_control() {
            // The control shard persists this shard's log starts (see `shards.rs`).
            if let Some(answer) = self.encode_response(ctx, &response) {
                self.await_log_starts(moved, answer);
            }
            return;
        }
        self.append_log_starts(&moved);
        self.pump_io();
        self.respond_after_metadata(ctx, &response);
    }

    /// Moves one partition's log start; the new start (the low watermark) and whether it moved.
    fn move_log_start(
        &mut self,
        name: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(i64, bool), i16> {
        let Some(topic) = self.topics.get_mut(name) else {
            return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
        };
        if partition < 0 || partition as usize >= topic.partitions.len() {
            return Err(errors::UNKNOWN_TOPIC_OR_PARTITION);
        }
        let leads = topic.partitions[partition as usize].replica.is_leader();
        if crate::placement::owner(name, partition, self.config.shards) != self.config.shard
            || !leads
        {
            return Err(errors::NOT_LEADER_OR_FOLLOWER);
        }
        if self.offline.contains(&(topic.id, partition)) {
            return Err(errors::KAFKA_STORAGE_ERROR);
        }
        if INTERNAL_TOPICS.contains(&name) {
            return Err(errors::INVALID_TOPIC_EXCEPTION);
        }
        // Kafka refuses deletion where retention by deletion is off (compacted topics).
        if !topic.has_cleanup_policy("delete") {
            return Err(errors::POLICY_VIOLATION);
        }
        let state = &mut topic.partitions[partition as usize];
        let high_watermark = state.high_watermark();
        let target = if offset == HIGH_WATERMARK {
            high_watermark
        } else {
            offset
        };
        if target < 0 || target > high_watermark {
            return Err(errors::OFFSET_OUT_OF_RANGE);
        }
        let log = &mut state.log;
        let before = log.log_start_offset();
        log.advance_log_start(target);
        let after = log.log_start_offset();
        if after > before {
            self.log(
                Level::Info,
                format!("{name}-{partition}: log start offset moved from {before} to {after}"),
            );
        }
        Ok((after, after > before))
    }
}
