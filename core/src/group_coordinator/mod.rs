//! The group coordinator: Kafka's classic consumer-group protocol as a state machine of its own.
//!
//! Inputs: group requests (`handle_request`, already decoded), the time (`handle_now` with every
//! input, `handle_timeout` at `poll_timeout`), the fate of records it asked to store
//! (`handle_stored`), closed connections, and at start-up the records of `__consumer_offsets`
//! (`replay_partition`). Outputs (`poll_output`): answers to requests, records to append to the
//! group's partition of `__consumer_offsets`, log lines.
//!
//! For durability the coordinator is a client of its offsets partitions, as Kafka's is: it asks
//! for records to be appended (`GroupOutput::Append`) and is told when they are committed or
//! could not be (`handle_stored`). It never touches a log; the broker never looks inside a
//! group. An offset commit is applied and answered, and a new generation's assignment handed
//! out, only once its record is committed.
//!
//! Transitions follow Kafka's classic group protocol: a join moves the group to
//! PreparingRebalance; the rebalance completes when every member has rejoined (or the rebalance
//! timeout removes those that did not), answering every JoinGroup of the new generation and
//! moving to CompletingRebalance; the leader's SyncGroup hands out the assignment and makes the
//! group Stable. A member whose session expires is removed and the group rebalances.
//!
//! Files: `join.rs` (JoinGroup), `membership.rs` (rebalances, SyncGroup, Heartbeat, LeaveGroup,
//! expiry), `offsets.rs` (OffsetCommit, OffsetFetch, OffsetDelete, retention), `admin.rs`
//! (DescribeGroups, ListGroups, DeleteGroups), `records.rs` (what is stored, and its replay).

mod admin;
mod failover;
mod join;
mod membership;
mod offsets;
mod records;

pub use failover::error_reply;

use crate::api::RequestContext;
use crate::groups::{CommittedOffset, Group, GroupConfig, OffsetsRecord};
use crate::io::{ConnId, Level};
use crate::planted::PlantedBug;
use crate::rng::Rng;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use std::collections::{BTreeMap, VecDeque};

/// The group requests the coordinator answers, decoded.
#[derive(Debug)]
pub enum GroupRequest {
    Join(JoinGroupRequest),
    Sync(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    Leave(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    OffsetDelete(OffsetDeleteRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups(ListGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
}

/// An answer to one of the [`GroupRequest`]s, for the broker to encode.
#[derive(Debug)]
pub enum GroupReply {
    Join(JoinGroupResponse),
    Sync(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    Leave(LeaveGroupResponse),
    OffsetCommit(OffsetCommitResponse),
    OffsetFetch(OffsetFetchResponse),
    OffsetDelete(OffsetDeleteResponse),
    DescribeGroups(DescribeGroupsResponse),
    ListGroups(ListGroupsResponse),
    DeleteGroups(DeleteGroupsResponse),
}

macro_rules! reply_from {
    ($($variant:ident($response:ty)),* $(,)?) => {
        $(impl From<$response> for GroupReply {
            fn from(response: $response) -> Self {
                GroupReply::$variant(response)
            }
        })*
    };
}

reply_from!(
    Join(JoinGroupResponse),
    Sync(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    Leave(LeaveGroupResponse),
    OffsetCommit(OffsetCommitResponse),
    OffsetFetch(OffsetFetchResponse),
    OffsetDelete(OffsetDeleteResponse),
    DescribeGroups(DescribeGroupsResponse),
    ListGroups(ListGroupsResponse),
    DeleteGroups(DeleteGroupsResponse),
);

/// What the coordinator asks of the broker.
#[derive(Debug)]
pub enum GroupOutput {
    /// Answer the request of `ctx`.
    Reply {
        ctx: RequestContext,
        reply: GroupReply,
    },
    /// Append `records` to the group's partition of `__consumer_offsets` (created on first
    /// use). With a `wait`, call [`GroupCoordinator::handle_stored`] with it once they are
    /// committed, or at once if they cannot be appended.
    Append {
        group: String,
        records: Vec<OffsetsRecord>,
        timestamp_ms: i64,
        wait: Option<u64>,
    },
    Log {
        level: Level,
        message: String,
    },
}

/// What the coordinator needs from the rest of the broker to answer a request.
pub struct Lookup<'a> {
    /// The requesting connection's peer host, as DescribeGroups reports a member's.
    pub client_host: String,
    /// A topic's partition count, if the topic exists (OffsetCommit and OffsetDelete check it).
    pub partitions: &'a dyn Fn(&str) -> Option<i32>,
}

/// An OffsetCommit waiting for its records to be committed before it is applied and answered.
struct PendingCommit {
    ctx: RequestContext,
    group: String,
    offsets: Vec<((String, i32), CommittedOffset)>,
    response: OffsetCommitResponse,
    deadline_ms: i64,
}

pub struct GroupCoordinator {
    config: GroupConfig,
    planted_bug: Option<PlantedBug>,
    /// Member ids.
    rng: Rng,
    groups: BTreeMap<String, Group>,
    /// JoinGroup and SyncGroup requests waiting on the rebalance, by (group, member).
    joins: BTreeMap<(String, String), RequestContext>,
    syncs: BTreeMap<(String, String), RequestContext>,
    /// OffsetCommits waiting for their records, by wait id.
    commits: BTreeMap<u64, PendingCommit>,
    /// Groups whose new generation's assignment waits for its record to be committed before
    /// the SyncGroup answers go out (Kafka stores the group before it answers): the wait id
    /// and its deadline.
    sync_waits: BTreeMap<String, (u64, i64)>,
    /// Ids of the appends waited for (commits and sync waits).
    next_wait: u64,
    /// OffsetFetch requests held until their group's commits in flight are applied, so a new
    /// owner never reads an offset that an older commit is about to replace.
    offset_fetches: Vec<(RequestContext, OffsetFetchRequest)>,
    next_member_seq: u64,
    /// Groups replayed from the log get fresh session deadlines from the first `now` seen.
    sessions_need_start: bool,
    retention_check_at_ms: i64,
    /// The `now` of the last input; a later `now` below it is the wall clock stepping back.
    last_now_ms: Option<i64>,
    outputs: VecDeque<GroupOutput>,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, seed: u64, planted_bug: Option<PlantedBug>) -> Self {
        GroupCoordinator {
            config,
            planted_bug,
            // Its own stream, so member ids do not move the broker's topic ids.
            rng: Rng::new(seed ^ 0x6772_6f75_7073),
            groups: BTreeMap::new(),
            joins: BTreeMap::new(),
            syncs: BTreeMap::new(),
            commits: BTreeMap::new(),
            sync_waits: BTreeMap::new(),
            next_wait: 0,
            offset_fetches: Vec::new(),
            next_member_seq: 0,
            sessions_need_start: false,
            retention_check_at_ms: 0,
            last_now_ms: None,
            outputs: VecDeque::new(),
        }
    }

    // ---- inputs ----

    /// A group request arrived. Its answer comes out of `poll_output`, at once or when the
    /// rebalance or the store it waits for is done.
    pub fn handle_request(&mut self, ctx: RequestContext, request: GroupRequest, at: &Lookup) {
        match request {
            GroupRequest::Join(r) => self.on_join(&ctx, r, &at.client_host),
            GroupRequest::Sync(r) => self.on_sync(&ctx, r),
            GroupRequest::Heartbeat(r) => {
                let code = self.heartbeat(&ctx, &r);
                self.reply(&ctx, HeartbeatResponse::default().with_error_code(code));
            }
            GroupRequest::Leave(r) => self.on_leave(&ctx, r),
            GroupRequest::OffsetCommit(r) => self.on_offset_commit(&ctx, r, at.partitions),
            GroupRequest::OffsetFetch(r) => self.on_offset_fetch(&ctx, r),
            GroupRequest::OffsetDelete(r) => self.on_offset_delete(&ctx, r, at.partitions),
            GroupRequest::DescribeGroups(r) => self.on_describe_groups(&ctx, r),
            GroupRequest::ListGroups(r) => self.on_list_groups(&ctx, r),
            GroupRequest::DeleteGroups(r) => self.on_delete_groups(&ctx, r),
        }
    }

    /// The `now` of every input: keeps group timers running through a step back of the wall
    /// clock, and starts the sessions of recovered groups from the first time seen.
    pub fn handle_now(&mut self, now_ms: i64) {
        self.follow_clock_step_back(now_ms);
        if !self.sessions_need_start {
            return;
        }
        self.sessions_need_start = false;
        // Only the members replayed (start-up, or a coordinator taking over groups): the
        // sessions of the others run on.
        for group in self.groups.values_mut() {
            for member in group.members.values_mut() {
                if member.session_deadline_ms == i64::MAX {
                    member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
                }
            }
        }
        self.retention_check_at_ms = now_ms + self.config.offsets_retention_check_interval_ms;
    }

    /// Time reached `poll_timeout`: rebalance deadlines, expired sessions, offset retention,
    /// and stores that took too long.
    pub fn handle_timeout(&mut self, now_ms: i64) {
        self.expire_groups(now_ms);
        self.expire_offsets(now_ms);
        self.expire_commits(now_ms);
        self.expire_syncs(now_ms);
    }

    /// The connection closed: its waiting requests are dropped.
    pub fn handle_disconnect(&mut self, conn: ConnId) {
        self.joins.retain(|_, ctx| ctx.conn != conn);
        self.syncs.retain(|_, ctx| ctx.conn != conn);
        self.commits.retain(|_, c| c.ctx.conn != conn);
        self.offset_fetches.retain(|(ctx, _)| ctx.conn != conn);
    }

    /// The records of an `Append` with this `wait` are committed (`ok`), or could not be
    /// stored. A wait that timed out, or whose request went away, is gone already.
    pub fn handle_stored(&mut self, now_ms: i64, wait: u64, ok: bool) {
        if self.commits.contains_key(&wait) {
            self.on_commit_settled(now_ms, wait, ok);
        } else {
            self.on_sync_settled(now_ms, wait, ok);
        }
    }

    // ---- outputs ----

    pub fn poll_output(&mut self) -> Option<GroupOutput> {
        self.outputs.pop_front()
    }

    /// The earliest group timer: after `handle_timeout(now)` it is later than `now`.
    pub fn poll_timeout(&self) -> Option<i64> {
        let groups = self.groups.values().filter_map(Group::next_deadline_ms);
        let commits = self.commits.values().map(|c| c.deadline_ms);
        let syncs = self.sync_waits.values().map(|(_, deadline)| *deadline);
        let retention = (self.retention_check_at_ms > 0).then_some(self.retention_check_at_ms);
        groups.chain(commits).chain(syncs).chain(retention).min()
    }

    /// A group, if it exists.
    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    // ---- helpers ----

    fn reply(&mut self, ctx: &RequestContext, reply: impl Into<GroupReply>) {
        self.outputs.push_back(GroupOutput::Reply {
            ctx: ctx.clone(),
            reply: reply.into(),
        });
    }

    fn log(&mut self, level: Level, message: String) {
        self.outputs.push_back(GroupOutput::Log { level, message });
    }

    /// Asks for records to be appended to the group's offsets partition; `wait` is told their
    /// fate through `handle_stored`.
    fn append(
        &mut self,
        group_id: &str,
        records: Vec<OffsetsRecord>,
        now_ms: i64,
        wait: Option<u64>,
    ) {
        if records.is_empty() && wait.is_none() {
            return;
        }
        self.outputs.push_back(GroupOutput::Append {
            group: group_id.to_string(),
            records,
            timestamp_ms: now_ms,
            wait,
        });
    }

    fn next_wait_id(&mut self) -> u64 {
        self.next_wait += 1;
        self.next_wait
    }

    /// Kafka runs sessions, rebalance timeouts and its other group timers on a monotonic clock,
    /// so a step of the wall clock does not move them. The core is told wall time only: when
    /// `now` goes back, every group deadline goes back by as much, keeping the time each timer
    /// had left. Otherwise a step back of N seconds would keep a member that stopped
    /// heartbeating, and a rebalance waiting on it, alive N seconds past their timeouts. Time
    /// between the step and the next input is not counted (timers run that much late), and a
    /// step forward cannot be told from time passing (it ends timers early).
    fn follow_clock_step_back(&mut self, now_ms: i64) {
        let last_ms = self.last_now_ms.replace(now_ms);
        let Some(step_ms) = last_ms.map(|last| last - now_ms).filter(|step| *step > 0) else {
            return;
        };
        // Sessions of recovered members not started yet stay unstarted.
        let back = |deadline: &mut i64| {
            if *deadline != i64::MAX {
                *deadline -= step_ms;
            }
        };
        for group in self.groups.values_mut() {
            group
                .members
                .values_mut()
                .for_each(|m| back(&mut m.session_deadline_ms));
            group.pending_members.values_mut().for_each(back);
            if let Some(deadline_ms) = group.rebalance_deadline_ms.as_mut() {
                back(deadline_ms);
            }
        }
        for commit in self.commits.values_mut() {
            back(&mut commit.deadline_ms);
        }
        for (_, deadline_ms) in self.sync_waits.values_mut() {
            back(deadline_ms);
        }
        if self.retention_check_at_ms > 0 {
            back(&mut self.retention_check_at_ms);
        }
        self.log(
            Level::Warn,
            format!(
                "the clock stepped back {step_ms} ms; group timers keep the time they had left"
            ),
        );
    }
}
