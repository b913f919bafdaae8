use super::*;
use crate::groups::GroupState;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;

const DELAY_MS: i64 = 3_000;

fn join(h: &mut Harness, conn: ConnId, group: &str, member: &str) {
    join_as(h, conn, group, member, None);
}

/// A JoinGroup v7, with a `group.instance.id` for a static member.
fn join_as(h: &mut Harness, conn: ConnId, group: &str, member: &str, instance: Option<&str>) {
    let protocol = JoinGroupRequestProtocol::default()
        .with_name(StrBytes::from_static_str("range"))
        .with_metadata(subscription(&["t"]));
    let request = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS as i32)
        .with_rebalance_timeout_ms(20_000)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_group_instance_id(instance.map(|i| StrBytes::from_string(i.into())))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![protocol]);
    h.send(conn, ApiKey::JoinGroup, 7, &request);
}

/// A ConsumerProtocolSubscription v0 for `topics`, as the Java client and librdkafka send.
fn subscription(topics: &[&str]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&0i16.to_be_bytes());
    let subscription = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.to_string()))
            .collect(),
    );
    subscription.encode(&mut buf, 0).unwrap();
    buf.freeze()
}

fn joined(h: &mut Harness, conn: ConnId) -> JoinGroupResponse {
    h.response(conn, ApiKey::JoinGroup, 7)
}

/// Joins with the KIP-394 round trip; returns the member id.
fn join_new(h: &mut Harness, conn: ConnId, group: &str) -> String {
    join(h, conn, group, "");
    let first = joined(h, conn);
    assert_eq!(first.error_code, errors::MEMBER_ID_REQUIRED);
    let member = first.member_id.to_string();
    assert!(!member.is_empty());
    join(h, conn, group, &member);
    member
}

fn sync(
    h: &mut Harness,
    conn: ConnId,
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &[u8])],
) {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(m.to_string()))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        );
    h.send(conn, ApiKey::SyncGroup, 5, &request);
}

fn heartbeat(h: &mut Harness, conn: ConnId, group: &str, member: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.into()));
    h.send(conn, ApiKey::Heartbeat, 4, &request);
    h.response::<HeartbeatResponse>(conn, ApiKey::Heartbeat, 4)
        .error_code
}

fn advance(h: &mut Harness, ms: i64) {
    h.now_ms += ms;
    h.handle_timeout();
}

fn synced(h: &mut Harness, conn: ConnId) -> SyncGroupResponse {
    h.response(conn, ApiKey::SyncGroup, 5)
}

/// The session timeout `join` asks for.
const SESSION_TIMEOUT_MS: i64 = 10_000;

/// Issue 12: a member parked in JoinGroup longer than its session timeout (while another
/// takes up to its rebalance timeout to rejoin, as a librdkafka consumer does whose
/// application is slow to poll) kept its passed session deadline in `poll_timeout` while
/// `handle_timeout` skipped it: the shard's timer fired again at once, forever, and the
/// production shell recursed until its stack overflowed. Its session is renewed instead.
#[test]
fn a_member_waiting_in_join_longer_than_its_session_keeps_deadlines_in_the_future() {
    let mut h = Harness::new(Config::default());
    let a = join_new(&mut h, 1, "g");
    advance(&mut h, DELAY_MS);
    assert_eq!(joined(&mut h, 1).generation_id, 1);
    sync(&mut h, 1, "g", &a, 1, &[(&a, b"a")]);
    assert_eq!(synced(&mut h, 1).error_code, errors::NONE);
    // b joins and waits; a keeps heartbeating but takes 15 s (rebalance timeout 20 s,
    // b's session 10 s) to rejoin.
    let b = join_new(&mut h, 2, "g");
    for _ in 0..15 {
        advance(&mut h, 1_000); // checks that no deadline is left due
        let deadline = h.broker.poll_timeout().expect("the rebalance deadline");
        assert!(deadline > h.now_ms, "deadline {deadline} at {}", h.now_ms);
        assert_eq!(
            heartbeat(&mut h, 1, "g", &a, 1),
            errors::REBALANCE_IN_PROGRESS
        );
    }
    assert!(!h.has_response(2), "b waits for a to rejoin");
    join(&mut h, 1, "g", &a);
    let (ja, jb) = (joined(&mut h, 1), joined(&mut h, 2));
    assert_eq!((ja.error_code, jb.error_code), (errors::NONE, errors::NONE));
    assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
    assert_eq!(ja.members.len(), 2, "b is still a member");
    assert_eq!(jb.member_id.to_string(), b);
}

// Group liveness found by the simulator: timers through a step back of the wall clock (seed
// 791: the quiet phase undid 13 s of clock jumps, and a member from before a restart outlived
// the quiet phase), and the store of a generation a rebalance ended (seed 1524).
#[test]
fn a_member_that_never_rejoins_is_dropped_on_time_after_the_clock_steps_back() {
    let mut h = Harness::new(Config::default());
    let a = join_new(&mut h, 1, "g");
    let b = join_new(&mut h, 2, "g");
    advance(&mut h, 3_000);
    assert_eq!(joined(&mut h, 1).generation_id, 1);
    assert_eq!(joined(&mut h, 2).generation_id, 1);
    sync(&mut h, 2, "g", &b, 1, &[]);
    sync(&mut h, 1, "g", &a, 1, &[(&a, b"a"), (&b, b"b")]);
    assert_eq!(synced(&mut h, 1).error_code, errors::NONE);
    assert_eq!(synced(&mut h, 2).error_code, errors::NONE);
    // The clock jumps 13 s ahead, the broker restarts with both members, the leader
    // rejoins and b never comes back.
    h.now_ms += 13_000;
    let mut h = h.restart(Config::default());
    join(&mut h, 1, "g", &a);
    assert_eq!(
        h.broker.groups.group("g").unwrap().state,
        GroupState::PreparingRebalance
    );
    // The clock is corrected: 13 s back, seen by the next input. Timers keep the time they
    // had left.
    h.now_ms -= 13_000;
    advance(&mut h, 0);
    advance(&mut h, SESSION_TIMEOUT_MS - 100);
    assert!(!h.has_response(1), "b's session has 100 ms left");
    advance(&mut h, 200);
    let response = joined(&mut h, 1);
    assert_eq!(
        (
            response.error_code,
            response.generation_id,
            response.members.len()
        ),
        (errors::NONE, 2, 1),
        "b expired after its session timeout, not 13 s later"
    );
    let group = &h.broker.groups.group("g").unwrap();
    assert_eq!(group.members.keys().collect::<Vec<_>>(), vec![&a]);
}

#[test]
fn storing_an_ended_generation_does_not_answer_the_next_generations_syncs() {
    let mut h = Harness::new(Config::default());
    let a = join_new(&mut h, 1, "g");
    advance(&mut h, 3_000);
    assert_eq!(joined(&mut h, 1).generation_id, 1);
    // a's assignment for generation 1 is being stored when b joins.
    h.hold_io = true;
    sync(&mut h, 1, "g", &a, 1, &[(&a, b"all")]);
    let b = join_new(&mut h, 2, "g");
    assert_eq!(synced(&mut h, 1).error_code, errors::REBALANCE_IN_PROGRESS);
    join(&mut h, 1, "g", &a);
    assert_eq!(joined(&mut h, 1).generation_id, 2);
    assert_eq!(joined(&mut h, 2).generation_id, 2);
    // b's sync for generation 2 waits for the leader's, not for generation 1's store.
    sync(&mut h, 2, "g", &b, 2, &[]);
    h.release_io();
    assert!(
        !h.has_response(2),
        "generation 1's store answered b before the leader assigned generation 2"
    );
    sync(&mut h, 1, "g", &a, 2, &[(&a, b"half a"), (&b, b"half b")]);
    assert_eq!(&synced(&mut h, 1).assignment[..], b"half a");
    assert_eq!(&synced(&mut h, 2).assignment[..], b"half b");
}

/// An OffsetCommit of `offset` for `t-0`.
pub(super) fn commit_request(
    group: &str,
    member: &str,
    generation: i32,
    offset: i64,
) -> OffsetCommitRequest {
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(offset);
    let topic = OffsetCommitRequestTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partitions(vec![partition]);
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_topics(vec![topic])
}

/// An OffsetFetch (v7) of `t-0`.
pub(super) fn committed_request(group: &str) -> OffsetFetchRequest {
    let topic = OffsetFetchRequestTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partition_indexes(vec![0]);
    OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(Some(vec![topic]))
}

fn commit(h: &mut Harness, group: &str, member: &str, generation: i32, offset: i64) -> i16 {
    let request = commit_request(group, member, generation, offset);
    h.send(7, ApiKey::OffsetCommit, 8, &request);
    let response: OffsetCommitResponse = h.response(7, ApiKey::OffsetCommit, 8);
    response.topics[0].partitions[0].error_code
}

fn committed(h: &mut Harness, group: &str) -> i64 {
    h.send(7, ApiKey::OffsetFetch, 7, &committed_request(group));
    let response: OffsetFetchResponse = h.response(7, ApiKey::OffsetFetch, 7);
    response.topics[0].partitions[0].committed_offset
}

/// Two members join, the first rebalance waits the initial delay, the leader assigns.
fn stable_group_of_two(h: &mut Harness) -> (String, String, i32) {
    let a = join_new(h, 1, "g");
    let b = join_new(h, 2, "g");
    assert!(
        !h.has_response(1) && !h.has_response(2),
        "the first rebalance waits the initial delay"
    );
    advance(h, DELAY_MS);
    let (ja, jb) = (joined(h, 1), joined(h, 2));
    assert_eq!((ja.error_code, jb.error_code), (errors::NONE, errors::NONE));
    assert_eq!(ja.generation_id, 1);
    assert_eq!(ja.leader.as_str(), a, "the first member to join leads");
    assert_eq!(ja.members.len(), 2, "the leader gets every member");
    assert!(jb.members.is_empty(), "followers get none");
    sync(h, 2, "g", &b, 1, &[]);
    assert!(
        !h.has_response(2),
        "a follower's sync waits for the leader's"
    );
    sync(h, 1, "g", &a, 1, &[(&a, b"for-a"), (&b, b"for-b")]);
    let sa: SyncGroupResponse = h.response(1, ApiKey::SyncGroup, 5);
    let sb: SyncGroupResponse = h.response(2, ApiKey::SyncGroup, 5);
    assert_eq!(
        (&sa.assignment[..], &sb.assignment[..]),
        (&b"for-a"[..], &b"for-b"[..])
    );
    (a, b, 1)
}

/// Issue 13: a second process started with a live member's `group.instance.id` takes its
/// place, and the old one is told FENCED_INSTANCE_ID on every request (so it stops), not
/// UNKNOWN_MEMBER_ID (on which it rejoined and replaced the new one, over and over).
#[test]
fn a_static_member_replaced_by_a_new_process_is_fenced_everywhere() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    join_as(&mut h, 1, "g", "", Some("instance-1"));
    advance(&mut h, DELAY_MS);
    let first = joined(&mut h, 1);
    assert_eq!((first.error_code, first.generation_id), (errors::NONE, 1));
    let old = first.member_id.to_string();
    sync(&mut h, 1, "g", &old, 1, &[(&old, b"a")]);
    assert_eq!(synced(&mut h, 1).error_code, errors::NONE);

    join_as(&mut h, 2, "g", "", Some("instance-1"));
    let new = joined(&mut h, 2);
    assert_eq!(new.error_code, errors::NONE);
    assert_ne!(new.member_id.to_string(), old);

    let instance = Some(StrBytes::from_static_str("instance-1"));
    let group = GroupId(StrBytes::from_static_str("g"));
    let old_id = StrBytes::from_string(old.clone());
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(group.clone())
        .with_generation_id(1)
        .with_member_id(old_id.clone())
        .with_group_instance_id(instance.clone());
    h.send(1, ApiKey::Heartbeat, 4, &heartbeat);
    let answer: HeartbeatResponse = h.response(1, ApiKey::Heartbeat, 4);
    assert_eq!(answer.error_code, errors::FENCED_INSTANCE_ID, "heartbeat");

    let sync_request = SyncGroupRequest::default()
        .with_group_id(group.clone())
        .with_generation_id(1)
        .with_member_id(old_id.clone())
        .with_group_instance_id(instance.clone());
    h.send(1, ApiKey::SyncGroup, 5, &sync_request);
    assert_eq!(
        synced(&mut h, 1).error_code,
        errors::FENCED_INSTANCE_ID,
        "sync"
    );

    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(1);
    let commit = OffsetCommitRequest::default()
        .with_group_id(group.clone())
        .with_generation_id_or_member_epoch(1)
        .with_member_id(old_id.clone())
        .with_group_instance_id(instance.clone())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![partition])]);
    h.send(1, ApiKey::OffsetCommit, 8, &commit);
    let answer: OffsetCommitResponse = h.response(1, ApiKey::OffsetCommit, 8);
    assert_eq!(
        answer.topics[0].partitions[0].error_code,
        errors::FENCED_INSTANCE_ID,
        "commit"
    );

    join_as(&mut h, 1, "g", &old, Some("instance-1"));
    assert_eq!(
        joined(&mut h, 1).error_code,
        errors::FENCED_INSTANCE_ID,
        "join"
    );

    let leave = LeaveGroupRequest::default()
        .with_group_id(group)
        .with_members(vec![leave_group_request::MemberIdentity::default()
            .with_member_id(old_id)
            .with_group_instance_id(instance)]);
    h.send(1, ApiKey::LeaveGroup, 4, &leave);
    let answer: LeaveGroupResponse = h.response(1, ApiKey::LeaveGroup, 4);
    assert_eq!(
        answer.members[0].error_code,
        errors::FENCED_INSTANCE_ID,
        "leave"
    );
    // The new member is untouched: still in the group, which never rebalanced.
    let g = &h.broker.groups.group("g").unwrap();
    assert_eq!((g.state, g.generation_id), (GroupState::Stable, 1));
    assert!(g.members.contains_key(new.member_id.as_str()));
}

#[test]
fn members_join_sync_and_become_stable() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (a, b, generation) = stable_group_of_two(&mut h);
    assert_eq!(heartbeat(&mut h, 1, "g", &a, generation), errors::NONE);
    assert_eq!(heartbeat(&mut h, 2, "g", &b, generation), errors::NONE);
    assert_eq!(
        h.broker.groups.group("g").unwrap().state,
        GroupState::Stable
    );
}

#[test]
fn sync_answers_wait_until_the_new_generation_is_durable() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let a = join_new(&mut h, 1, "g");
    advance(&mut h, DELAY_MS);
    assert_eq!(joined(&mut h, 1).generation_id, 1);
    h.hold_io = true;
    sync(&mut h, 1, "g", &a, 1, &[(&a, b"mine")]);
    assert!(
        !h.has_response(1),
        "the assignment waits for the group record's flush"
    );
    h.release_io();
    let response: SyncGroupResponse = h.response(1, ApiKey::SyncGroup, 5);
    assert_eq!(&response.assignment[..], b"mine");
}

#[test]
fn bad_group_requests_get_kafkas_errors() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (a, _, generation) = stable_group_of_two(&mut h);
    assert_eq!(
        heartbeat(&mut h, 1, "g", "nobody", generation),
        errors::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        heartbeat(&mut h, 1, "g", &a, generation + 5),
        errors::ILLEGAL_GENERATION
    );
    assert_eq!(
        heartbeat(&mut h, 1, "", &a, generation),
        errors::INVALID_GROUP_ID
    );
    assert_eq!(
        commit(&mut h, "g", &a, generation + 1, 5),
        errors::ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut h, "g", "nobody", generation, 5),
        errors::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        commit(&mut h, "g", "", -1, 5),
        errors::UNKNOWN_MEMBER_ID,
        "only members commit to an active group"
    );
    join(&mut h, 3, "", "");
    assert_eq!(joined(&mut h, 3).error_code, errors::INVALID_GROUP_ID);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![
        GroupId(StrBytes::from_static_str("g")),
        GroupId(StrBytes::from_static_str("unknown")),
    ]);
    h.send(7, ApiKey::DeleteGroups, 2, &delete);
    let response: DeleteGroupsResponse = h.response(7, ApiKey::DeleteGroups, 2);
    assert_eq!(response.results[0].error_code, errors::NON_EMPTY_GROUP);
    assert_eq!(response.results[1].error_code, errors::GROUP_ID_NOT_FOUND);
}

#[test]
fn an_expired_session_rebalances_the_rest_and_the_last_one_out_empties_the_group() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (a, b, generation) = stable_group_of_two(&mut h);
    advance(&mut h, 6_000);
    assert_eq!(heartbeat(&mut h, 1, "g", &a, generation), errors::NONE);
    advance(&mut h, 5_000); // b has not heartbeated for 11 s > 10 s session
    assert_eq!(
        heartbeat(&mut h, 1, "g", &a, generation),
        errors::REBALANCE_IN_PROGRESS
    );
    assert!(!h.broker.groups.group("g").unwrap().members.contains_key(&b));
    join(&mut h, 1, "g", &a);
    let rejoined = joined(&mut h, 1);
    assert_eq!(
        (rejoined.error_code, rejoined.generation_id),
        (errors::NONE, 2),
        "a alone completes the rebalance"
    );
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_string(a.clone()));
    h.send(1, ApiKey::LeaveGroup, 2, &leave);
    assert_eq!(
        h.response::<LeaveGroupResponse>(1, ApiKey::LeaveGroup, 2)
            .error_code,
        errors::NONE
    );
    assert_eq!(h.broker.groups.group("g").unwrap().state, GroupState::Empty);
}

#[test]
fn commits_are_durable_and_survive_a_restart_with_the_group() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (a, _, generation) = stable_group_of_two(&mut h);
    h.hold_io = true;
    let partition = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(42);
    let topic = OffsetCommitRequestTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("t")))
        .with_partitions(vec![partition]);
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(a.clone()))
        .with_topics(vec![topic]);
    h.send(7, ApiKey::OffsetCommit, 8, &request);
    assert!(
        !h.has_response(7),
        "a commit is answered once its record is flushed"
    );
    h.release_io();
    let response: OffsetCommitResponse = h.response(7, ApiKey::OffsetCommit, 8);
    assert_eq!(response.topics[0].partitions[0].error_code, errors::NONE);
    assert_eq!(committed(&mut h, "g"), 42);
    let mut h = h.restart(Config::default());
    assert_eq!(
        committed(&mut h, "g"),
        42,
        "offsets are replayed from __consumer_offsets"
    );
    let group = &h.broker.groups.group("g").unwrap();
    assert_eq!(
        (group.state, group.generation_id, group.members.len()),
        (GroupState::Stable, 1, 2)
    );
    assert_eq!(
        heartbeat(&mut h, 1, "g", &a, generation),
        errors::NONE,
        "members carry on after a restart"
    );
}

#[test]
fn simple_commits_work_without_members_and_expire_with_retention() {
    let config = Config {
        groups: crate::groups::GroupConfig {
            offsets_retention_ms: 60_000,
            offsets_retention_check_interval_ms: 1_000,
            ..Default::default()
        },
        ..Config::default()
    };
    let mut h = Harness::new(config);
    h.create_topic("t", 1);
    assert_eq!(commit(&mut h, "solo", "", -1, 7), errors::NONE);
    assert_eq!(committed(&mut h, "solo"), 7);
    assert_eq!(committed(&mut h, "nobody"), -1);
    advance(&mut h, 30_000);
    advance(&mut h, 29_000);
    assert_eq!(
        committed(&mut h, "solo"),
        7,
        "not yet: 59 s after the commit"
    );
    advance(&mut h, 2_000);
    assert_eq!(
        committed(&mut h, "solo"),
        -1,
        "expired after offsets.retention"
    );
    assert!(h.broker.groups.group("solo").is_none());
}

#[test]
fn offset_delete_refuses_a_subscribed_topic() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.create_topic("other", 1);
    let (a, _, generation) = stable_group_of_two(&mut h);
    assert_eq!(commit(&mut h, "g", &a, generation, 3), errors::NONE);
    let topic = |name: &'static str| {
        kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(name)))
            .with_partitions(vec![kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestPartition::default()])
    };
    let request = OffsetDeleteRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_topics(vec![topic("t"), topic("other")]);
    h.send(7, ApiKey::OffsetDelete, 0, &request);
    let response: OffsetDeleteResponse = h.response(7, ApiKey::OffsetDelete, 0);
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        errors::GROUP_SUBSCRIBED_TO_TOPIC
    );
    assert_eq!(response.topics[1].partitions[0].error_code, errors::NONE);
    assert_eq!(committed(&mut h, "g"), 3);
}

#[test]
fn list_and_describe_groups_use_kafkas_state_names() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    stable_group_of_two(&mut h);
    h.send(7, ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let listed: ListGroupsResponse = h.response(7, ApiKey::ListGroups, 4);
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_state.as_str(), "Stable");
    let request = DescribeGroupsRequest::default().with_groups(vec![
        GroupId(StrBytes::from_static_str("g")),
        GroupId(StrBytes::from_static_str("none")),
    ]);
    h.send(7, ApiKey::DescribeGroups, 5, &request);
    let described: DescribeGroupsResponse = h.response(7, ApiKey::DescribeGroups, 5);
    assert_eq!(described.groups[0].members.len(), 2);
    assert_eq!(described.groups[0].protocol_data.as_str(), "range");
    assert_eq!(described.groups[1].group_state.as_str(), "Dead");
}
