//! Coordinator failover: on a controller quorum a group is coordinated by the leader of its
//! partition of `__consumer_offsets`. A broker that stops leading such a partition unloads its
//! groups (`unload`): their waiting requests are answered NOT_COORDINATOR and the clients find
//! the new coordinator, which loads the groups from its copy of the log (the broker reads it
//! and feeds `replay_partition`), answering COORDINATOR_LOAD_IN_PROGRESS meanwhile
//! (`error_reply`).

use super::join::join_error;
use super::{GroupCoordinator, GroupReply, GroupRequest};
use crate::errors;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    HeartbeatResponse, LeaveGroupResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, SyncGroupResponse,
};

impl GroupCoordinator {
    /// Forgets the groups `gone` picks (this node stopped coordinating them). Their requests
    /// waiting on a rebalance, a commit or an offset fetch are answered NOT_COORDINATOR, so
    /// their clients look for the new coordinator. Returns how many groups went.
    pub fn unload(&mut self, gone: impl Fn(&str) -> bool) -> usize {
        let before = self.groups.len();
        self.groups.retain(|id, _| !gone(id));
        let code = errors::NOT_COORDINATOR;
        let joins: Vec<_> = self.joins.extract_if(.., |(g, _), _| gone(g)).collect();
        for ((_, member), ctx) in joins {
            self.reply(&ctx, join_error(code, &member, ctx.version));
        }
        let syncs: Vec<_> = self.syncs.extract_if(.., |(g, _), _| gone(g)).collect();
        for (_, ctx) in syncs {
            self.reply(&ctx, SyncGroupResponse::default().with_error_code(code));
        }
        let commits: Vec<_> = self.commits.extract_if(.., |_, c| gone(&c.group)).collect();
        for (_, commit) in commits {
            let mut response = commit.response;
            for topic in &mut response.topics {
                for partition in &mut topic.partitions {
                    partition.error_code = code;
                }
            }
            self.reply(&commit.ctx, response);
        }
        self.sync_waits.retain(|g, _| !gone(g));
        let fetches = std::mem::take(&mut self.offset_fetches);
        for (ctx, request) in fetches {
            let names_gone = match ctx.version >= 8 {
                true => request.groups.iter().any(|g| gone(g.group_id.as_str())),
                false => gone(request.group_id.as_str()),
            };
            if !names_gone {
                self.offset_fetches.push((ctx, request));
                continue;
            }
            let request = GroupRequest::OffsetFetch(request);
            if let Some(reply) = error_reply(&request, ctx.version, code) {
                self.reply(&ctx, reply);
            }
        }
        before - self.groups.len()
    }
}

/// The answer to a request about one group that this node cannot serve: `code`
/// (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS) in the request's own response. `None`
/// for requests over several groups, which each node answers for what it has.
pub fn error_reply(request: &GroupRequest, version: i16, code: i16) -> Option<GroupReply> {
    Some(match request {
        GroupRequest::Join(r) => GroupReply::Join(join_error(code, r.member_id.as_str(), version)),
        GroupRequest::Sync(_) => {
            GroupReply::Sync(SyncGroupResponse::default().with_error_code(code))
        }
        GroupRequest::Heartbeat(_) => {
            GroupReply::Heartbeat(HeartbeatResponse::default().with_error_code(code))
        }
        GroupRequest::Leave(_) => {
            GroupReply::Leave(LeaveGroupResponse::default().with_error_code(code))
        }
        GroupRequest::OffsetDelete(_) => {
            GroupReply::OffsetDelete(OffsetDeleteResponse::default().with_error_code(code))
        }
        GroupRequest::OffsetCommit(r) => {
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect();
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            GroupReply::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
        }
        GroupRequest::OffsetFetch(r) => {
            let mut response = OffsetFetchResponse::default().with_error_code(code);
            if version >= 8 {
                response.groups = r
                    .groups
                    .iter()
                    .map(|g| {
                        OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(code)
                    })
                    .collect();
            }
            GroupReply::OffsetFetch(response)
        }
        _ => return None,
    })
}
