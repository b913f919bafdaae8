//! The broker's side of the group coordinator ([`crate::group_coordinator`]): group requests go
//! in, and what it asks for comes out: answers to encode, and records to append to
//! `__consumer_offsets`, whose commit (or failure) it is told through the partition's waiters.

use super::apis::{api, Api};
use super::{Broker, RequestContext};
use crate::group_coordinator::{GroupOutput, GroupReply, GroupRequest, Lookup};
use crate::groups::{self, OffsetsRecord, OFFSETS_TOPIC};
use crate::io::ConnId;
use crate::partition::{Until, Waiter};
use crate::topics::TopicId;
use bytes::BytesMut;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::BTreeMap;

/// The group APIs: versions served, and the adapters (each hands its request, decoded, to the
/// coordinator).
macro_rules! group_api {
    ($key:ident, $min:literal ..= $max:literal, $variant:ident) => {
        api!($key, $min..=$max, |broker: &mut Broker, ctx, request| {
            broker.on_group_request(ctx, GroupRequest::$variant(request))
        })
    };
}
pub(super) const OFFSET_COMMIT: Api = group_api!(OffsetCommit, 2..=8, OffsetCommit);
pub(super) const OFFSET_FETCH: Api = group_api!(OffsetFetch, 1..=8, OffsetFetch);
pub(super) const JOIN_GROUP: Api = group_api!(JoinGroup, 0..=9, Join);
pub(super) const HEARTBEAT: Api = group_api!(Heartbeat, 0..=4, Heartbeat);
pub(super) const LEAVE_GROUP: Api = group_api!(LeaveGroup, 0..=5, Leave);
pub(super) const SYNC_GROUP: Api = group_api!(SyncGroup, 0..=5, Sync);
pub(super) const DESCRIBE_GROUPS: Api = group_api!(DescribeGroups, 0..=5, DescribeGroups);
pub(super) const LIST_GROUPS: Api = group_api!(ListGroups, 0..=5, ListGroups);
pub(super) const DELETE_GROUPS: Api = group_api!(DeleteGroups, 0..=2, DeleteGroups);
pub(super) const OFFSET_DELETE: Api = group_api!(OffsetDelete, 0..=0, OffsetDelete);

impl Broker {
    /// A group request for the coordinator.
    pub(super) fn on_group_request(&mut self, ctx: &RequestContext, request: GroupRequest) {
        if let Some(reply) = self.refuse_foreign_group(&request, ctx.version) {
            return self.respond_group(ctx, reply);
        }
        if matches!(request, GroupRequest::Join(_)) {
            // Kafka creates `__consumer_offsets` when a group first needs it.
            self.ensure_offsets_topic();
        }
        let topics = &self.topics;
        let partitions = |name: &str| topics.get(name).map(|t| t.partitions.len() as i32);
        let lookup = Lookup {
            client_host: self.client_host(ctx.conn),
            partitions: &partitions,
        };
        self.groups.handle_request(ctx.clone(), request, &lookup);
        self.pump_groups();
    }

    /// Carries out what the coordinator asked for.
    pub(super) fn pump_groups(&mut self) {
        while let Some(output) = self.groups.poll_output() {
            match output {
                GroupOutput::Reply { ctx, reply } => self.respond_group(&ctx, reply),
                GroupOutput::Log { level, message } => self.log(level, message),
                GroupOutput::Append {
                    group,
                    records,
                    timestamp_ms,
                    wait,
                } => {
                    let appended = self.append_offsets_records(&group, records, timestamp_ms);
                    let Some(wait) = wait else { continue };
                    let waiting = appended.and_then(|(topic, partition, end)| {
                        let p = self.partition_mut(topic, partition)?;
                        p.wait_for(end, Until::Durable, Waiter::Group(wait));
                        Some(())
                    });
                    if waiting.is_none() {
                        self.groups.handle_stored(self.now_ms, wait, false);
                    }
                }
            }
        }
    }

    fn respond_group(&mut self, ctx: &RequestContext, reply: GroupReply) {
        match reply {
            GroupReply::Join(r) => self.respond(ctx, &r),
            GroupReply::Sync(r) => self.respond(ctx, &r),
            GroupReply::Heartbeat(r) => self.respond(ctx, &r),
            GroupReply::Leave(r) => self.respond(ctx, &r),
            GroupReply::OffsetCommit(r) => self.respond(ctx, &r),
            GroupReply::OffsetFetch(r) => self.respond(ctx, &r),
            GroupReply::OffsetDelete(r) => self.respond(ctx, &r),
            GroupReply::DescribeGroups(r) => self.respond(ctx, &r),
            GroupReply::ListGroups(r) => self.respond(ctx, &r),
            GroupReply::DeleteGroups(r) => self.respond(ctx, &r),
        }
    }

    pub(super) fn client_host(&self, conn: ConnId) -> String {
        self.conn_hosts
            .get(&conn)
            .cloned()
            .unwrap_or_else(|| "/unknown".into())
    }

    /// Creates `__consumer_offsets` on first use, as Kafka does.
    pub(super) fn ensure_offsets_topic(&mut self) {
        if !self.topics.contains_key(OFFSETS_TOPIC) {
            let partitions = self.config.groups.offsets_topic_partitions;
            let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
            // Kafka's default of three replicas, on as many brokers as there are.
            let factor = i32::from(self.config.groups.offsets_topic_replication_factor)
                .clamp(1, self.placeable_brokers().len().max(1) as i32);
            let Ok(replicas) = self.place_replicas(partitions, factor) else {
                return;
            };
            // On a quorum only the active controller creates it; FindCoordinator answers
            // COORDINATOR_NOT_AVAILABLE meanwhile and the client asks again.
            let _ = self.create_topic(OFFSETS_TOPIC, replicas, configs);
            self.pump_io();
        }
    }

    /// Appends records to the group's offsets partition; returns the end offset to wait for
    /// (one past the batch's last record). `None` when the partition cannot take writes.
    fn append_offsets_records(
        &mut self,
        group_id: &str,
        records: Vec<OffsetsRecord>,
        now_ms: i64,
    ) -> Option<(TopicId, i32, i64)> {
        if records.is_empty() {
            return None;
        }
        self.ensure_offsets_topic();
        let partition =
            groups::partition_for(group_id, self.config.groups.offsets_topic_partitions);
        let topic = self.topics.get_mut(OFFSETS_TOPIC)?;
        let id = topic.id;
        let leads = topic
            .partitions
            .get(partition as usize)
            .is_some_and(|p| p.replica.is_leader());
        if self.offline.contains(&(id, partition)) || !leads {
            return None;
        }
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let (key, value) = record.encode();
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    // The codec starts a new batch where offset - sequence changes: offset - 1
                    // keeps one batch whose base sequence is -1 (no producer id).
                    sequence: i as i32 - 1,
                    timestamp: now_ms,
                    key: Some(key),
                    value,
                    headers: Default::default(),
                }
            })
            .collect();
        let mut bytes = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut bytes, &records, &options).ok()?;
        let batches = crate::batch::validate_all_stored(&bytes).ok()?;
        let policy = topic.segment_policy();
        let state = topic.partitions.get_mut(partition as usize)?;
        let mut last_offset = -1;
        let mut position = 0;
        for info in &batches {
            let one = BytesMut::from(&bytes[position..position + info.size_bytes]);
            position += info.size_bytes;
            last_offset = state
                .append_as_leader(one, info, now_ms, false, &policy)
                .last_offset;
        }
        // Group records are synced at once, whether or not a request waits for them.
        state.log.want_durable(last_offset + 1);
        self.note_cached(position);
        self.dirty.insert((OFFSETS_TOPIC.to_string(), partition));
        self.pump_io();
        Some((id, partition, last_offset + 1))
    }
}
