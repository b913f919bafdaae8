//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3, v7+), or the first offset
//! whose batch has a timestamp at or after T.

use super::{Broker, RequestContext};
use crate::errors;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

impl Broker {
    pub(super) fn on_list_offsets(&mut self, ctx: &RequestContext, request: ListOffsetsRequest) {
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in request.topics {
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for wanted in topic.partitions {
                let mut result = ListOffsetsPartitionResponse::default()
                    .with_partition_index(wanted.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1);
                let log = self
                    .topics
                    .get(topic.name.0.as_str())
                    .filter(|_| wanted.partition_index >= 0)
                    .and_then(|t| {
                        t.partitions
                            .get(wanted.partition_index as usize)
                            .map(|log| (t.id, log))
                    });
                match log {
                    None => result.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION,
                    Some((id, _)) if self.offline.contains(&(id, wanted.partition_index)) => {
                        result.error_code = errors::KAFKA_STORAGE_ERROR
                    }
                    Some((_, log)) => {
                        let found = match wanted.timestamp {
                            LATEST => Some((-1, log.high_watermark())),
                            EARLIEST => Some((-1, log.log_start_offset())),
                            MAX_TIMESTAMP => log.max_timestamp(),
                            t if t >= 0 => {
                                log.offset_for_timestamp(t).map(|(offset, ts)| (ts, offset))
                            }
                            _ => {
                                result.error_code = errors::INVALID_REQUEST;
                                None
                            }
                        };
                        if let Some((timestamp, offset)) = found {
                            result.timestamp = timestamp;
                            result.offset = offset;
                            if ctx.version >= 4 {
                                result.leader_epoch = 0;
                            }
                        }
                    }
                }
                partitions.push(result);
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        self.respond(ctx, &ListOffsetsResponse::default().with_topics(topics));
    }
}
