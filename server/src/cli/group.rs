//! `spate group list|describe|reset-offsets|delete`, after Kafka's `kafka-consumer-groups.sh`.
//!
//! Group requests (DescribeGroups, OffsetFetch, OffsetCommit, DeleteGroups) go to the group's
//! coordinator, as FindCoordinator names it; ListOffsets goes to each partition's leader. When
//! the cluster has a single broker, the bootstrap connection serves everything, whatever address
//! the broker advertises (as `produce` and `consume` do).

use super::{print_stdout, ConnectArgs};
use crate::client::{
    decode_guarded, kafka_error, topic_error_text, Client, CommittedOffsets, GroupCoordinator,
};
use bytes::Bytes;
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::{Decodable, Message};
use kafka_protocol::ResponseError;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

/// How long to wait for a coordinator that is loading or moving.
const COORDINATOR_WAIT: Duration = Duration::from_secs(10);
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// ListOffsets timestamps: the log end offset and the log start offset.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// What Kafka prints for a value that is not there.
const MISSING: &str = "-";
/// The protocol type of groups formed by Kafka consumers.
const CONSUMER_PROTOCOL: &str = "consumer";

#[derive(Args)]
pub struct GroupArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand)]
enum GroupCommand {
    /// List consumer groups, one per line, sorted.
    List(ListArgs),
    /// Show a group's committed offsets, log end offsets and lag per partition, and which
    /// member owns each partition (or, with --members or --state, the members or the state).
    Describe(DescribeArgs),
    /// Set a group's committed offsets (to the earliest, the latest or a given offset). A dry
    /// run unless --execute; refused while the group has members.
    ResetOffsets(ResetArgs),
    /// Delete a group and its committed offsets (refused while it has members).
    Delete(GroupSelector),
}

#[derive(Args)]
struct ListArgs {
    /// Print each group's state too (a GROUP<TAB>STATE table).
    #[arg(long)]
    state: bool,
}

/// A group named either as `--group G` or as a positional `G`.
#[derive(Args)]
struct GroupSelector {
    /// The consumer group.
    #[arg(long = "group", value_name = "GROUP")]
    group_flag: Option<String>,
    /// The consumer group (same as --group).
    #[arg(value_name = "GROUP", conflicts_with = "group_flag")]
    group: Option<String>,
}

impl GroupSelector {
    fn required(&self) -> Result<&str, String> {
        self.group_flag
            .as_deref()
            .or(self.group.as_deref())
            .ok_or_else(|| "no group given: use --group GROUP (or just GROUP)".to_string())
    }
}

#[derive(Args)]
struct DescribeArgs {
    #[command(flatten)]
    group: GroupSelector,
    /// List the group's members (CONSUMER-ID, HOST, CLIENT-ID, #PARTITIONS) instead.
    #[arg(long, conflicts_with = "state")]
    members: bool,
    /// Print the group's coordinator, assignment strategy, state and member count instead.
    #[arg(long)]
    state: bool,
}

#[derive(Args)]
struct ResetArgs {
    #[command(flatten)]
    group: GroupSelector,
    /// The partitions to reset: TOPIC (all its partitions) or TOPIC:P,P,... (repeatable).
    #[arg(long = "topic", value_name = "TOPIC[:P,P...]", value_parser = parse_topic_spec)]
    topics: Vec<TopicSpec>,
    /// Reset every partition the group has a committed offset for.
    #[arg(long, conflicts_with = "topics")]
    all_topics: bool,
    #[command(flatten)]
    target: TargetArgs,
    /// Commit the new offsets (without it, only print them).
    #[arg(long)]
    execute: bool,
    /// Only print the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// To the log start offset of each partition.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset of each partition.
    #[arg(long)]
    to_latest: bool,
    /// To OFFSET, brought within each partition's [earliest, latest] as Kafka does.
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    to_offset: Option<i64>,
}

/// Where `reset-offsets` moves each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
}

impl TargetArgs {
    fn target(&self) -> Target {
        match (self.to_earliest, self.to_latest, self.to_offset) {
            (true, _, _) => Target::Earliest,
            (_, true, _) => Target::Latest,
            (_, _, Some(offset)) => Target::Offset(offset),
            // clap requires exactly one of them.
            (false, false, None) => unreachable!("clap requires a --to-* option"),
        }
    }
}

/// `--topic T` (every partition of T) or `--topic T:0,2`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicSpec {
    topic: String,
    partitions: Option<Vec<i32>>,
}

fn parse_topic_spec(text: &str) -> Result<TopicSpec, String> {
    let (topic, partitions) = match text.split_once(':') {
        None => (text, None),
        Some((topic, list)) => (topic, Some(list)),
    };
    let topic = topic.trim();
    if topic.is_empty() {
        return Err(format!(
            "'{text}' names no topic: expected TOPIC or TOPIC:P,P..., e.g. --topic orders:0,2"
        ));
    }
    let Some(list) = partitions else {
        return Ok(TopicSpec {
            topic: topic.to_string(),
            partitions: None,
        });
    };
    let mut partitions = BTreeSet::new();
    for item in list.split(',') {
        let item = item.trim();
        match item.parse::<i32>() {
            Ok(p) if p >= 0 => {
                partitions.insert(p);
            }
            _ => {
                return Err(format!(
                    "'{item}' in '{text}' is not a partition number: expected TOPIC:P,P..., e.g. \
                     --topic {topic}:0,2"
                ))
            }
        }
    }
    Ok(TopicSpec {
        topic: topic.to_string(),
        partitions: Some(partitions.into_iter().collect()),
    })
}

pub fn run(args: GroupArgs) -> Result<(), String> {
    let mut session = Session::connect(&args.connect.bootstrap_server)?;
    match args.command {
        GroupCommand::List(list) => list_groups(&mut session, list.state),
        GroupCommand::Describe(describe) => {
            let group = describe.group.required()?;
            let mode = match (describe.members, describe.state) {
                (true, _) => DescribeMode::Members,
                (_, true) => DescribeMode::State,
                _ => DescribeMode::Offsets,
            };
            describe_group(&mut session, group, mode)
        }
        GroupCommand::ResetOffsets(reset) => reset_offsets(&mut session, &reset),
        GroupCommand::Delete(selector) => {
            let group = selector.required()?;
            delete_group(&mut session, group)?;
            print_stdout(format!("Deleted consumer group '{group}'.\n").as_bytes())
        }
    }
}

// ---- connections --------------------------------------------------------------------------

/// A group error code and the broker's message, if any.
type Refusal = (i16, Option<String>);
/// Per topic: partition -> leader, or why the topic cannot be used.
type TopicLeaders = BTreeMap<String, Result<BTreeMap<i32, i32>, String>>;
/// Per partition: an offset, or why it could not be read.
type PartitionOffsets = BTreeMap<(String, i32), Result<i64, String>>;

/// The bootstrap connection, plus connections to other brokers (coordinator, leaders) opened on
/// first use.
struct Session {
    bootstrap: Client,
    /// node id -> HOST:PORT, from the latest Metadata.
    brokers: BTreeMap<i32, String>,
    others: BTreeMap<i32, Client>,
    coordinator: Option<GroupCoordinator>,
}

impl Session {
    fn connect(bootstrap: &str) -> Result<Session, String> {
        let mut bootstrap = Client::connect(bootstrap)?;
        let metadata = bootstrap.metadata(Some(&[]), false)?;
        let brokers = metadata
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        Ok(Session {
            bootstrap,
            brokers,
            others: BTreeMap::new(),
            coordinator: None,
        })
    }

    /// The connection to broker `node_id` at `addr`; the bootstrap one in a single-broker
    /// cluster.
    fn broker(&mut self, node_id: i32, addr: &str) -> Result<&mut Client, String> {
        if self.brokers.len() <= 1 {
            return Ok(&mut self.bootstrap);
        }
        match self.others.entry(node_id) {
            Entry::Occupied(open) => Ok(open.into_mut()),
            Entry::Vacant(slot) => Ok(slot.insert(connect_broker(node_id, addr)?)),
        }
    }

    /// Every broker's connection, for requests each broker answers for itself (ListGroups).
    fn each_broker(&mut self) -> Result<Vec<&mut Client>, String> {
        if self.brokers.len() <= 1 {
            return Ok(vec![&mut self.bootstrap]);
        }
        for (&node_id, addr) in &self.brokers {
            if let Entry::Vacant(slot) = self.others.entry(node_id) {
                slot.insert(connect_broker(node_id, addr)?);
            }
        }
        let brokers = &self.brokers;
        Ok(self
            .others
            .iter_mut()
            .filter(|(node_id, _)| brokers.contains_key(node_id))
            .map(|(_, client)| client)
            .collect())
    }

    /// The coordinator of `group`, asked for until it is available (COORDINATOR_WAIT at most).
    fn find_coordinator(&mut self, group: &str) -> Result<GroupCoordinator, String> {
        let deadline = Instant::now() + COORDINATOR_WAIT;
        loop {
            let found = self.bootstrap.find_group_coordinator(group)?;
            if found.error_code == 0 {
                self.coordinator = Some(found.clone());
                return Ok(found);
            }
            if !is_coordinator_settling(found.error_code) || Instant::now() >= deadline {
                let what =
                    group_error_text(found.error_code, group, "cannot find the coordinator of");
                return Err(kafka_error(
                    found.error_code,
                    &what,
                    found.error_message.as_deref(),
                ));
            }
            thread::sleep(RETRY_BACKOFF);
        }
    }

    /// Runs `call` on the coordinator of `group`; while the answer is that the coordinator is
    /// loading or has moved, finds it again and retries (COORDINATOR_WAIT at most).
    fn group_call<T>(
        &mut self,
        group: &str,
        mut call: impl FnMut(&mut Client) -> Result<Result<T, Refusal>, String>,
    ) -> Result<Result<T, Refusal>, String> {
        let deadline = Instant::now() + COORDINATOR_WAIT;
        loop {
            let coordinator = match &self.coordinator {
                Some(coordinator) => coordinator.clone(),
                None => self.find_coordinator(group)?,
            };
            let addr = format!("{}:{}", coordinator.host, coordinator.port);
            let client = self.broker(coordinator.node_id, &addr)?;
            match call(client)? {
                Err((code, _)) if is_coordinator_settling(code) && Instant::now() < deadline => {
                    self.coordinator = None;
                    thread::sleep(RETRY_BACKOFF);
                }
                answer => return Ok(answer),
            }
        }
    }

    /// DescribeGroups for one group.
    fn describe(&mut self, group: &str) -> Result<DescribedGroup, String> {
        let answer = self.group_call(group, |client| {
            let response = client.describe_groups(&[group])?;
            let found = response
                .groups
                .into_iter()
                .find(|g| g.group_id.as_str() == group)
                .ok_or_else(|| {
                    format!("the broker's DescribeGroups response does not mention group '{group}'")
                })?;
            if found.error_code != 0 {
                let message = found.error_message.as_ref().map(|m| m.to_string());
                return Ok(Err((found.error_code, message)));
            }
            Ok(Ok(found))
        })?;
        answer.map_err(|(code, message)| {
            let what = group_error_text(code, group, "cannot describe");
            kafka_error(code, &what, message.as_deref())
        })
    }

    /// The group's committed offsets (OffsetFetch), by topic and partition.
    fn committed(&mut self, group: &str) -> Result<BTreeMap<(String, i32), i64>, String> {
        let answer = self.group_call(group, |client| {
            let committed: CommittedOffsets = client.committed_offsets(group)?;
            if committed.error_code != 0 {
                return Ok(Err((committed.error_code, None)));
            }
            Ok(Ok(committed.partitions))
        })?;
        let partitions = answer.map_err(|(code, message)| {
            let what = group_error_text(code, group, "cannot read the committed offsets of");
            kafka_error(code, &what, message.as_deref())
        })?;
        let mut offsets = BTreeMap::new();
        for p in partitions {
            if p.error_code != 0 {
                let what = format!(
                    "cannot read the committed offset of consumer group '{group}' for partition \
                     {}-{}",
                    p.topic, p.partition
                );
                return Err(kafka_error(p.error_code, &what, None));
            }
            if p.offset >= 0 {
                offsets.insert((p.topic, p.partition), p.offset);
            }
        }
        Ok(offsets)
    }

    /// Partition -> leader of each of `topics` (Metadata), or why the topic cannot be used.
    fn leaders(&mut self, topics: &[&str]) -> Result<TopicLeaders, String> {
        let metadata = self.bootstrap.metadata(Some(topics), false)?;
        self.brokers = metadata
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let mut leaders = BTreeMap::new();
        for &topic in topics {
            let found = metadata
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic));
            let answer = match found {
                None => Err(format!(
                    "the broker's Metadata response does not mention topic '{topic}'"
                )),
                Some(t) if t.error_code != 0 => {
                    let what = topic_error_text(t.error_code, topic, "cannot look up");
                    Err(kafka_error(t.error_code, &what, None))
                }
                Some(t) => Ok(t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, p.leader_id.0))
                    .collect()),
            };
            leaders.insert(topic.to_string(), answer);
        }
        Ok(leaders)
    }

    /// The offset of `timestamp` (LATEST or EARLIEST) in each of `wanted`, asked of each
    /// partition's leader, or why it could not be read.
    fn log_offsets(
        &mut self,
        wanted: &BTreeSet<(String, i32)>,
        timestamp: i64,
    ) -> Result<PartitionOffsets, String> {
        let which = if timestamp == EARLIEST {
            "earliest"
        } else {
            "log end"
        };
        let topics: BTreeSet<&str> = wanted.iter().map(|(t, _)| t.as_str()).collect();
        let mut result = BTreeMap::new();
        if topics.is_empty() {
            return Ok(result);
        }
        let topics: Vec<&str> = topics.into_iter().collect();
        let leaders = self.leaders(&topics)?;
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
        for (topic, partition) in wanted {
            let leader = match &leaders[topic] {
                Err(e) => Err(e.clone()),
                Ok(partitions) => match partitions.get(partition) {
                    None => Err(format!("topic '{topic}' has no partition {partition}")),
                    Some(&leader) if leader < 0 => {
                        Err(format!("partition {topic}-{partition} has no leader"))
                    }
                    Some(&leader) => Ok(leader),
                },
            };
            match leader {
                Ok(leader) => by_leader
                    .entry(leader)
                    .or_default()
                    .entry(topic.clone())
                    .or_default()
                    .push(*partition),
                Err(e) => {
                    result.insert((topic.clone(), *partition), Err(e));
                }
            }
        }
        for (leader, topics) in by_leader {
            let client = match self.brokers.get(&leader).cloned() {
                None => Err(format!(
                    "the leader, broker {leader}, is not among the brokers Metadata lists"
                )),
                Some(addr) => self.broker(leader, &addr),
            };
            let client = match client {
                Ok(client) => client,
                Err(e) => {
                    for (topic, partitions) in topics {
                        for p in partitions {
                            result.insert((topic.clone(), p), Err(e.clone()));
                        }
                    }
                    continue;
                }
            };
            for (topic, partitions) in topics {
                let response = client.list_offsets(&topic, &partitions, timestamp);
                for p in partitions {
                    let offset = match &response {
                        Err(e) => Err(e.clone()),
                        Ok(response) => {
                            let answer = response
                                .topics
                                .iter()
                                .filter(|t| t.name.as_str() == topic)
                                .flat_map(|t| &t.partitions)
                                .find(|a| a.partition_index == p);
                            match answer {
                                None => Err(format!(
                                    "the broker's ListOffsets response does not mention \
                                     partition {topic}-{p}"
                                )),
                                Some(a) if a.error_code != 0 => {
                                    let what = format!(
                                        "cannot read the {which} offset of partition {topic}-{p}"
                                    );
                                    Err(kafka_error(a.error_code, &what, None))
                                }
                                Some(a) if a.offset < 0 => Err(format!(
                                    "the broker answered ListOffsets for partition {topic}-{p} \
                                     with offset {}",
                                    a.offset
                                )),
                                Some(a) => Ok(a.offset),
                            }
                        }
                    };
                    result.insert((topic.clone(), p), offset);
                }
            }
        }
        Ok(result)
    }
}

fn connect_broker(node_id: i32, addr: &str) -> Result<Client, String> {
    Client::connect(addr).map_err(|e| format!("cannot reach broker {node_id} at {addr}: {e}"))
}

/// Errors that clear up as a coordinator finishes loading or settles on a broker.
fn is_coordinator_settling(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(ResponseError::CoordinatorLoadInProgress)
            | Some(ResponseError::CoordinatorNotAvailable)
            | Some(ResponseError::NotCoordinator)
    )
}

/// A group-level error code in words, e.g. "consumer group 'g' does not exist".
fn group_error_text(code: i16, group: &str, action: &str) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::GroupIdNotFound) => {
            format!("consumer group '{group}' does not exist")
        }
        Some(ResponseError::NonEmptyGroup) => {
            format!("consumer group '{group}' is not empty: stop its consumers first")
        }
        Some(ResponseError::InvalidGroupId) => format!("'{group}' is not a valid group id"),
        Some(ResponseError::GroupAuthorizationFailed) => {
            format!("not authorized to access consumer group '{group}'")
        }
        Some(ResponseError::CoordinatorLoadInProgress)
        | Some(ResponseError::CoordinatorNotAvailable)
        | Some(ResponseError::NotCoordinator) => format!(
            "the coordinator of consumer group '{group}' is not available (try again in a moment)"
        ),
        _ => format!("{action} consumer group '{group}'"),
    }
}

fn no_such_group(group: &str) -> String {
    format!(
        "consumer group '{group}' does not exist (`spate group list` shows the groups there are)"
    )
}

// ---- list ---------------------------------------------------------------------------------

fn list_groups(session: &mut Session, with_state: bool) -> Result<(), String> {
    // group -> state ("" until known)
    let mut groups: BTreeMap<String, String> = BTreeMap::new();
    for client in session.each_broker()? {
        let response = client.list_groups()?;
        let mut stateless = Vec::new();
        for listed in &response.groups {
            let protocol_type = listed.protocol_type.as_str();
            // As Kafka's --list: consumer groups, and "simple" ones (only committed offsets).
            if !protocol_type.is_empty() && protocol_type != CONSUMER_PROTOCOL {
                continue;
            }
            let id = listed.group_id.to_string();
            if with_state && listed.group_state.is_empty() {
                stateless.push(id.clone());
            }
            groups.insert(id, listed.group_state.to_string());
        }
        // Before ListGroups v4 the state is not listed: the same broker describes them.
        if !stateless.is_empty() {
            let ids: Vec<&str> = stateless.iter().map(String::as_str).collect();
            let response = client.describe_groups(&ids)?;
            for described in response.groups {
                if let Some(state) = groups.get_mut(described.group_id.as_str()) {
                    *state = described.group_state.to_string();
                }
            }
        }
    }
    print_stdout(format_list(&groups, with_state).as_bytes())
}

fn format_list(groups: &BTreeMap<String, String>, with_state: bool) -> String {
    let mut out = String::new();
    if with_state {
        out.push_str("GROUP\tSTATE\n");
    }
    for (group, state) in groups {
        out.push_str(group);
        if with_state {
            out.push('\t');
            out.push_str(if state.is_empty() { MISSING } else { state });
        }
        out.push('\n');
    }
    out
}

// ---- describe -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DescribeMode {
    Offsets,
    Members,
    State,
}

/// A member of a group, with the partitions assigned to it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    id: String,
    host: String,
    client_id: String,
    partitions: Vec<(String, i32)>,
}

/// One row of `describe`: a partition with a committed offset or an owner, or a member that
/// owns nothing (topic and partition missing).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OffsetRow {
    topic: Option<String>,
    partition: Option<i32>,
    current: Option<i64>,
    end: Option<i64>,
    owner: Option<(String, String, String)>,
}

fn describe_group(session: &mut Session, group: &str, mode: DescribeMode) -> Result<(), String> {
    let described = session.describe(group)?;
    let offsets = session.committed(group)?;
    let state = described.group_state.to_string();
    if state == "Dead" && offsets.is_empty() {
        return Err(no_such_group(group));
    }
    let is_consumer_group = described.protocol_type.as_str() == CONSUMER_PROTOCOL;
    let mut members: Vec<Member> = Vec::with_capacity(described.members.len());
    for m in &described.members {
        let partitions = if is_consumer_group {
            decode_assignment(&m.member_assignment).unwrap_or_else(|e| {
                eprintln!(
                    "spate: warning: cannot decode the assignment of member '{}': {e}",
                    m.member_id.as_str()
                );
                Vec::new()
            })
        } else {
            Vec::new()
        };
        members.push(Member {
            id: m.member_id.to_string(),
            host: m.client_host.to_string(),
            client_id: m.client_id.to_string(),
            partitions,
        });
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));

    if mode == DescribeMode::State {
        let coordinator = match &session.coordinator {
            Some(c) => format!("{}:{}  ({})", c.host, c.port, c.node_id),
            None => MISSING.to_string(),
        };
        let table = state_table(
            group,
            &coordinator,
            described.protocol_data.as_str(),
            &state,
            members.len(),
        );
        return print_stdout(table.as_bytes());
    }
    if let Some(note) = state_note(group, &state, members.is_empty()) {
        eprintln!("{note}");
    }
    let table = match mode {
        DescribeMode::Members => {
            if members.is_empty() {
                return Ok(());
            }
            members_table(group, &members)
        }
        _ => {
            let mut rows = offset_rows(&members, &offsets);
            if rows.is_empty() {
                return Ok(());
            }
            let wanted: BTreeSet<(String, i32)> = rows
                .iter()
                .filter_map(|r| Some((r.topic.clone()?, r.partition?)))
                .collect();
            let ends = session.log_offsets(&wanted, LATEST)?;
            for row in &mut rows {
                let (Some(topic), Some(partition)) = (&row.topic, row.partition) else {
                    continue;
                };
                match ends.get(&(topic.clone(), partition)) {
                    Some(Ok(end)) => row.end = Some(*end),
                    Some(Err(e)) => eprintln!("spate: warning: {e}"),
                    None => {}
                }
            }
            offsets_table(group, &rows)
        }
    };
    print_stdout(table.as_bytes())
}

/// What Kafka says about a group's state before the table, if anything.
fn state_note(group: &str, state: &str, no_members: bool) -> Option<String> {
    match state {
        "PreparingRebalance" | "CompletingRebalance" | "Assigning" | "Reconciling" => {
            Some(format!("Warning: Consumer group '{group}' is rebalancing."))
        }
        "Empty" | "Dead" => Some(format!("Consumer group '{group}' has no active members.")),
        _ if no_members => Some(format!("Consumer group '{group}' has no active members.")),
        _ => None,
    }
}

/// A member's assignment: the consumer protocol's i16 version, then a
/// ConsumerProtocolAssignment (read as the newest version this build knows when newer). An
/// empty assignment (a member between rebalances) owns nothing.
fn decode_assignment(bytes: &[u8]) -> Result<Vec<(String, i32)>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.len() < 2 {
        return Err(format!("{} byte(s), too short for a version", bytes.len()));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version < 0 {
        return Err(format!("negative version {version}"));
    }
    let version = version.min(ConsumerProtocolAssignment::VERSIONS.max);
    let mut body = Bytes::copy_from_slice(&bytes[2..]);
    let assignment = decode_guarded(|| ConsumerProtocolAssignment::decode(&mut body, version))?;
    let mut partitions: Vec<(String, i32)> = assignment
        .assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.to_string(), p)))
        .collect();
    partitions.sort();
    partitions.dedup();
    Ok(partitions)
}

/// One row per partition that is assigned or has a committed offset, sorted by topic and
/// partition, then one per member that owns no partition (as Kafka shows them).
fn offset_rows(members: &[Member], offsets: &BTreeMap<(String, i32), i64>) -> Vec<OffsetRow> {
    let mut rows = Vec::new();
    let mut owned = BTreeSet::new();
    for m in members {
        let owner = Some((m.id.clone(), m.host.clone(), m.client_id.clone()));
        if m.partitions.is_empty() {
            rows.push(OffsetRow {
                topic: None,
                partition: None,
                current: None,
                end: None,
                owner,
            });
            continue;
        }
        for (topic, partition) in &m.partitions {
            owned.insert((topic.clone(), *partition));
            rows.push(OffsetRow {
                topic: Some(topic.clone()),
                partition: Some(*partition),
                current: offsets.get(&(topic.clone(), *partition)).copied(),
                end: None,
                owner: owner.clone(),
            });
        }
    }
    for ((topic, partition), &offset) in offsets {
        if !owned.contains(&(topic.clone(), *partition)) {
            rows.push(OffsetRow {
                topic: Some(topic.clone()),
                partition: Some(*partition),
                current: Some(offset),
                end: None,
                owner: None,
            });
        }
    }
    rows.sort_by(|a, b| {
        let key = |r: &OffsetRow| {
            (
                r.topic.is_none(),
                r.topic.clone(),
                r.partition,
                r.owner.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    rows
}

/// Kafka's lag: the log end offset minus the committed offset, when both are known.
fn lag(current: Option<i64>, end: Option<i64>) -> Option<i64> {
    let current = current.filter(|&c| c >= 0)?;
    Some(end? - current)
}

fn or_missing<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| MISSING.to_string(), |v| v.to_string())
}

fn offsets_table(group: &str, rows: &[OffsetRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let (id, host, client) = match &r.owner {
                Some((id, host, client)) => (id.clone(), host.clone(), client.clone()),
                None => (MISSING.into(), MISSING.into(), MISSING.into()),
            };
            vec![
                group.to_string(),
                or_missing(r.topic.as_deref()),
                or_missing(r.partition),
                or_missing(r.current),
                or_missing(r.end),
                or_missing(lag(r.current, r.end)),
                id,
                host,
                client,
            ]
        })
        .collect();
    table(
        &[
            ("GROUP", 15),
            ("TOPIC", 15),
            ("PARTITION", 10),
            ("CURRENT-OFFSET", 15),
            ("LOG-END-OFFSET", 15),
            ("LAG", 15),
            ("CONSUMER-ID", 15),
            ("HOST", 15),
            ("CLIENT-ID", 0),
        ],
        &cells,
    )
}

fn members_table(group: &str, members: &[Member]) -> String {
    let cells: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                group.to_string(),
                m.id.clone(),
                m.host.clone(),
                m.client_id.clone(),
                m.partitions.len().to_string(),
            ]
        })
        .collect();
    table(
        &[
            ("GROUP", 15),
            ("CONSUMER-ID", 15),
            ("HOST", 15),
            ("CLIENT-ID", 15),
            ("#PARTITIONS", 0),
        ],
        &cells,
    )
}

fn state_table(
    group: &str,
    coordinator: &str,
    strategy: &str,
    state: &str,
    members: usize,
) -> String {
    let strategy = if strategy.is_empty() {
        MISSING
    } else {
        strategy
    };
    table(
        &[
            ("GROUP", 15),
            ("COORDINATOR (ID)", 25),
            ("ASSIGNMENT-STRATEGY", 20),
            ("STATE", 20),
            ("#MEMBERS", 0),
        ],
        &[vec![
            group.to_string(),
            coordinator.to_string(),
            strategy.to_string(),
            state.to_string(),
            members.to_string(),
        ]],
    )
}

/// Kafka's aligned table: a header, then the rows; each column as wide as its minimum, its
/// header and its widest cell, one space between columns, nothing after the last.
fn table(columns: &[(&str, usize)], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (header, min))| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([header.len(), *min])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let header: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(cell);
            let pad = widths.get(i).copied().unwrap_or(0);
            for _ in cell.chars().count()..pad {
                line.push(' ');
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

// ---- reset-offsets ------------------------------------------------------------------------

/// Kafka resets the offsets of a group only while no consumer is in it.
fn check_inactive(group: &str, state: &str) -> Result<(), String> {
    match state {
        "Empty" | "Dead" => Ok(()),
        _ => Err(format!(
            "consumer group '{group}' is active (state {state}): stop its consumers before \
             resetting offsets"
        )),
    }
}

/// The new offset of a partition whose log holds [earliest, latest), and a warning when
/// `--to-offset` had to be brought within it (as Kafka does).
fn new_offset(
    target: Target,
    earliest: i64,
    latest: i64,
    partition: &str,
) -> (i64, Option<String>) {
    match target {
        Target::Earliest => (earliest, None),
        Target::Latest => (latest, None),
        Target::Offset(offset) if offset > latest => (
            latest,
            Some(format!(
                "new offset {offset} is past the log end offset of partition {partition}: it \
                 will be {latest}"
            )),
        ),
        Target::Offset(offset) if offset < earliest => (
            earliest,
            Some(format!(
                "new offset {offset} is before the earliest offset of partition {partition}: it \
                 will be {earliest}"
            )),
        ),
        Target::Offset(offset) => (offset, None),
    }
}

fn reset_offsets(session: &mut Session, args: &ResetArgs) -> Result<(), String> {
    let group = args.group.required()?;
    if args.topics.is_empty() && !args.all_topics {
        return Err(
            "name the partitions to reset: --topic TOPIC[:P,P...] (repeatable) or --all-topics"
                .to_string(),
        );
    }
    let described = session.describe(group)?;
    check_inactive(group, described.group_state.as_str())?;

    let partitions: BTreeSet<(String, i32)> = if args.all_topics {
        let offsets = session.committed(group)?;
        if offsets.is_empty() {
            return Err(format!(
                "consumer group '{group}' has no committed offsets to reset: name the partitions \
                 with --topic TOPIC[:P,P...]"
            ));
        }
        offsets.into_keys().collect()
    } else {
        resolve_topics(session, &args.topics)?
    };

    let target = args.target.target();
    let earliest = match target {
        Target::Latest => BTreeMap::new(),
        _ => session.log_offsets(&partitions, EARLIEST)?,
    };
    let latest = match target {
        Target::Earliest => BTreeMap::new(),
        _ => session.log_offsets(&partitions, LATEST)?,
    };
    let read = |map: &PartitionOffsets, key: &(String, i32)| -> Result<i64, String> {
        match map.get(key) {
            Some(Ok(offset)) => Ok(*offset),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(0), // not asked for: this target does not need it
        }
    };
    let mut plan = Vec::with_capacity(partitions.len());
    for key in &partitions {
        let (topic, partition) = key;
        let start = read(&earliest, key)?;
        let end = read(&latest, key)?;
        let (offset, warning) = new_offset(target, start, end, &format!("{topic}-{partition}"));
        if let Some(warning) = warning {
            eprintln!("spate: warning: {warning}");
        }
        plan.push((topic.clone(), *partition, offset));
    }

    if args.execute {
        commit(session, group, &plan)?;
    }
    print_stdout(plan_table(group, &plan).as_bytes())?;
    if !args.execute {
        eprintln!("(dry run: add --execute to apply)");
    }
    Ok(())
}

/// The partitions `--topic` names, checked against Metadata.
fn resolve_topics(
    session: &mut Session,
    specs: &[TopicSpec],
) -> Result<BTreeSet<(String, i32)>, String> {
    let topics: BTreeSet<&str> = specs.iter().map(|s| s.topic.as_str()).collect();
    let topics: Vec<&str> = topics.into_iter().collect();
    let leaders = session.leaders(&topics)?;
    let mut partitions = BTreeSet::new();
    for spec in specs {
        let topic = &spec.topic;
        let known = leaders[topic].as_ref().map_err(|e| {
            format!("{e} (check the name: `spate topic list` shows the topics there are)")
        })?;
        match &spec.partitions {
            None => partitions.extend(known.keys().map(|&p| (topic.clone(), p))),
            Some(wanted) => {
                for &p in wanted {
                    if !known.contains_key(&p) {
                        return Err(format!(
                            "topic '{topic}' has no partition {p} (it has {} partition(s), 0 to \
                             {}; `spate topic describe --topic {topic}` shows them)",
                            known.len(),
                            known.len().saturating_sub(1)
                        ));
                    }
                    partitions.insert((topic.clone(), p));
                }
            }
        }
    }
    Ok(partitions)
}

fn commit(session: &mut Session, group: &str, plan: &[(String, i32, i64)]) -> Result<(), String> {
    let answer = session.group_call(group, |client| {
        let results = client.commit_offsets(group, plan)?;
        if let Some(&(_, _, code)) = results.iter().find(|r| is_coordinator_settling(r.2)) {
            return Ok(Err((code, None)));
        }
        Ok(Ok(results))
    })?;
    let results = answer.map_err(|(code, message)| {
        let what = group_error_text(code, group, "cannot commit the offsets of");
        kafka_error(code, &what, message.as_deref())
    })?;
    for (topic, partition, _) in plan {
        let code = results
            .iter()
            .find(|r| &r.0 == topic && r.1 == *partition)
            .map(|r| r.2)
            .ok_or_else(|| {
                format!(
                    "the broker's OffsetCommit response does not mention partition \
                     {topic}-{partition}"
                )
            })?;
        if code == 0 {
            continue;
        }
        let what = match ResponseError::try_from_code(code) {
            Some(ResponseError::UnknownMemberId)
            | Some(ResponseError::IllegalGeneration)
            | Some(ResponseError::RebalanceInProgress) => format!(
                "consumer group '{group}' became active: stop its consumers before resetting \
                 offsets"
            ),
            Some(ResponseError::UnknownTopicOrPartition) => {
                format!("partition {topic}-{partition} does not exist")
            }
            _ => format!(
                "cannot commit the new offset of partition {topic}-{partition} for consumer \
                 group '{group}'"
            ),
        };
        return Err(kafka_error(code, &what, None));
    }
    Ok(())
}

fn plan_table(group: &str, plan: &[(String, i32, i64)]) -> String {
    let cells: Vec<Vec<String>> = plan
        .iter()
        .map(|(topic, partition, offset)| {
            vec![
                group.to_string(),
                topic.clone(),
                partition.to_string(),
                offset.to_string(),
            ]
        })
        .collect();
    table(
        &[
            ("GROUP", 30),
            ("TOPIC", 30),
            ("PARTITION", 10),
            ("NEW-OFFSET", 0),
        ],
        &cells,
    )
}

// ---- delete -------------------------------------------------------------------------------

fn delete_group(session: &mut Session, group: &str) -> Result<(), String> {
    let answer = session.group_call(group, |client| {
        let response = client.delete_groups(&[group])?;
        let result = response
            .results
            .iter()
            .find(|r| r.group_id.as_str() == group)
            .ok_or_else(|| {
                format!("the broker's DeleteGroups response does not mention group '{group}'")
            })?;
        if result.error_code != 0 {
            return Ok(Err((result.error_code, None)));
        }
        Ok(Ok(()))
    })?;
    answer.map_err(|(code, message)| {
        let what = group_error_text(code, group, "cannot delete");
        kafka_error(code, &what, message.as_deref())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::Encodable;

    fn parse(args: &[&str]) -> Result<GroupArgs, clap::Error> {
        let mut argv = vec!["spate", "group"];
        argv.extend_from_slice(args);
        crate::cli::parse_subcommand(&argv)
    }

    fn reset(args: &[&str]) -> ResetArgs {
        let mut argv = vec!["reset-offsets"];
        argv.extend_from_slice(args);
        match parse(&argv).unwrap().command {
            GroupCommand::ResetOffsets(reset) => reset,
            _ => panic!("not a reset"),
        }
    }

    #[test]
    fn topic_specs_take_optional_partition_lists() {
        assert_eq!(
            parse_topic_spec("orders"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: None
            })
        );
        assert_eq!(
            parse_topic_spec("orders:2,0, 2"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: Some(vec![0, 2])
            })
        );
        let error = parse_topic_spec("orders:0,x").unwrap_err();
        assert!(
            error.contains("'x' in 'orders:0,x' is not a partition number"),
            "{error}"
        );
        assert!(parse_topic_spec("orders:").is_err());
        assert!(parse_topic_spec("orders:-1").is_err());
        assert!(parse_topic_spec(":0")
            .unwrap_err()
            .contains("names no topic"));
    }

    #[test]
    fn reset_takes_one_target_and_topics() {
        let args = reset(&["g", "--topic", "t:0,2", "--topic", "u", "--to-earliest"]);
        assert_eq!(args.group.required(), Ok("g"));
        assert_eq!(args.target.target(), Target::Earliest);
        assert_eq!(args.topics.len(), 2);
        assert_eq!(args.topics[0].partitions, Some(vec![0, 2]));
        assert!(!args.execute);

        let args = reset(&[
            "--group",
            "g",
            "--all-topics",
            "--to-offset",
            "5",
            "--execute",
        ]);
        assert_eq!(args.target.target(), Target::Offset(5));
        assert!(args.all_topics && args.execute);
        assert_eq!(
            reset(&["g", "--topic", "t", "--to-latest"]).target.target(),
            Target::Latest
        );

        // Exactly one target; --topic or --all-topics, not both; no negative offset.
        assert!(parse(&["reset-offsets", "g", "--topic", "t"]).is_err());
        assert!(parse(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--to-latest"
        ])
        .is_err());
        assert!(parse(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--all-topics",
            "--to-latest"
        ])
        .is_err());
        assert!(parse(&["reset-offsets", "g", "--topic", "t", "--to-offset", "-1"]).is_err());
        assert!(parse(&["reset-offsets", "g", "--topic", "t:x", "--to-latest"]).is_err());
        assert!(parse(&[
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-latest",
            "--execute",
            "--dry-run"
        ])
        .is_err());
    }

    #[test]
    fn group_is_positional_or_flag_and_bootstrap_is_shared() {
        let args = parse(&["describe", "g", "-b", "h:1"]).unwrap();
        assert_eq!(args.connect.bootstrap_server, "h:1");
        let GroupCommand::Describe(describe) = args.command else {
            panic!()
        };
        assert_eq!(describe.group.required(), Ok("g"));
        assert!(!describe.members && !describe.state);

        let args = parse(&["delete", "--group", "g"]).unwrap();
        assert_eq!(args.connect.bootstrap_server, "127.0.0.1:9092");
        let GroupCommand::Delete(selector) = args.command else {
            panic!()
        };
        assert_eq!(selector.required(), Ok("g"));

        assert!(parse(&["describe", "g", "--group", "h"]).is_err());
        assert!(parse(&["describe", "g", "--members", "--state"]).is_err());
        let GroupCommand::Describe(describe) = parse(&["describe"]).unwrap().command else {
            panic!()
        };
        assert!(describe
            .group
            .required()
            .unwrap_err()
            .contains("--group GROUP"));
        let GroupCommand::List(list) = parse(&["list", "--state"]).unwrap().command else {
            panic!()
        };
        assert!(list.state);
    }

    #[test]
    fn lag_needs_both_offsets() {
        assert_eq!(lag(Some(4), Some(10)), Some(6));
        assert_eq!(lag(Some(10), Some(10)), Some(0));
        assert_eq!(lag(None, Some(10)), None);
        assert_eq!(lag(Some(-1), Some(10)), None);
        assert_eq!(lag(Some(4), None), None);
        // A commit past the log end (after a truncation) shows as Kafka shows it.
        assert_eq!(lag(Some(12), Some(10)), Some(-2));
    }

    #[test]
    fn only_empty_or_dead_groups_can_be_reset() {
        assert_eq!(check_inactive("g", "Empty"), Ok(()));
        assert_eq!(check_inactive("g", "Dead"), Ok(()));
        for state in ["Stable", "PreparingRebalance", "CompletingRebalance"] {
            let error = check_inactive("g", state).unwrap_err();
            assert_eq!(
                error,
                format!(
                    "consumer group 'g' is active (state {state}): stop its consumers before \
                     resetting offsets"
                )
            );
        }
    }

    #[test]
    fn to_offset_is_brought_within_the_log() {
        assert_eq!(new_offset(Target::Earliest, 3, 10, "t-0"), (3, None));
        assert_eq!(new_offset(Target::Latest, 3, 10, "t-0"), (10, None));
        assert_eq!(new_offset(Target::Offset(5), 3, 10, "t-0"), (5, None));
        assert_eq!(new_offset(Target::Offset(10), 3, 10, "t-0"), (10, None));
        let (offset, warning) = new_offset(Target::Offset(99), 3, 10, "t-0");
        assert_eq!(offset, 10);
        assert!(warning
            .unwrap()
            .contains("past the log end offset of partition t-0"));
        let (offset, warning) = new_offset(Target::Offset(1), 3, 10, "t-0");
        assert_eq!(offset, 3);
        assert!(warning.unwrap().contains("before the earliest offset"));
    }

    fn member(id: &str, partitions: &[(&str, i32)]) -> Member {
        Member {
            id: id.into(),
            host: "/127.0.0.1".into(),
            client_id: format!("client-{id}"),
            partitions: partitions
                .iter()
                .map(|(t, p)| (t.to_string(), *p))
                .collect(),
        }
    }

    #[test]
    fn rows_cover_assigned_and_committed_partitions() {
        let members = [member("m1", &[("t", 1), ("t", 0)]), member("m2", &[])];
        let offsets = BTreeMap::from([(("t".to_string(), 0), 4), (("t".to_string(), 2), 7)]);
        let rows = offset_rows(&members, &offsets);
        let summary: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.topic.as_deref(),
                    r.partition,
                    r.current,
                    r.owner.as_ref().map(|o| o.0.as_str()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (Some("t"), Some(0), Some(4), Some("m1")),
                (Some("t"), Some(1), None, Some("m1")),
                (Some("t"), Some(2), Some(7), None),
                (None, None, None, Some("m2")),
            ]
        );
    }

    #[test]
    fn describe_table_is_aligned_like_kafka() {
        let rows = vec![
            OffsetRow {
                topic: Some("orders".into()),
                partition: Some(0),
                current: Some(4),
                end: Some(10),
                owner: Some((
                    "consumer-1-0123456789abcdef".into(),
                    "/127.0.0.1".into(),
                    "consumer-1".into(),
                )),
            },
            OffsetRow {
                topic: Some("orders".into()),
                partition: Some(1),
                current: None,
                end: Some(3),
                owner: None,
            },
        ];
        let out = offsets_table("g", &rows);
        let expected = "\
GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID                 HOST            CLIENT-ID
g               orders          0          4               10              6               consumer-1-0123456789abcdef /127.0.0.1      consumer-1
g               orders          1          -               3               -               -                           -               -
";
        assert_eq!(out, expected);
    }

    #[test]
    fn members_state_list_and_plan_tables() {
        let out = members_table("g", &[member("m1", &[("t", 0), ("t", 1)])]);
        assert_eq!(
            out,
            "GROUP           CONSUMER-ID     HOST            CLIENT-ID       #PARTITIONS\n\
             g               m1              /127.0.0.1      client-m1       2\n"
        );
        let out = state_table("g", "127.0.0.1:9092  (1)", "range", "Stable", 1);
        assert_eq!(
            out,
            "GROUP           COORDINATOR (ID)          ASSIGNMENT-STRATEGY  STATE                \
             #MEMBERS\n\
             g               127.0.0.1:9092  (1)       range                Stable               1\n"
        );
        assert!(state_table("g", "c", "", "Empty", 0).contains(" -  "));

        let groups = BTreeMap::from([
            ("b".to_string(), "Empty".to_string()),
            ("a".to_string(), "Stable".to_string()),
        ]);
        assert_eq!(format_list(&groups, false), "a\nb\n");
        assert_eq!(
            format_list(&groups, true),
            "GROUP\tSTATE\na\tStable\nb\tEmpty\n"
        );

        let out = plan_table("g", &[("t".into(), 0, 0), ("t".into(), 1, 12)]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "{:<30} {:<30} {:<10} NEW-OFFSET",
                "GROUP", "TOPIC", "PARTITION"
            )
        );
        assert_eq!(lines[2], format!("{:<30} {:<30} {:<10} 12", "g", "t", "1"));
    }

    #[test]
    fn state_notes_are_kafkas() {
        assert_eq!(
            state_note("g", "Empty", true).as_deref(),
            Some("Consumer group 'g' has no active members.")
        );
        assert_eq!(
            state_note("g", "PreparingRebalance", false).as_deref(),
            Some("Warning: Consumer group 'g' is rebalancing.")
        );
        assert_eq!(state_note("g", "Stable", false), None);
    }

    #[test]
    fn assignments_decode_with_their_version() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName("t".into()))
                .with_partitions(vec![2, 0]),
            TopicPartition::default()
                .with_topic(TopicName("a".into()))
                .with_partitions(vec![1]),
        ]);
        for version in [0i16, 1, 3] {
            let mut bytes = BytesMut::new();
            bytes.extend_from_slice(&version.to_be_bytes());
            assignment.encode(&mut bytes, version).unwrap();
            assert_eq!(
                decode_assignment(&bytes),
                Ok(vec![("a".into(), 1), ("t".into(), 0), ("t".into(), 2)])
            );
        }
        // A newer version is read as the newest known one (its fields come first).
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(&7i16.to_be_bytes());
        assignment.encode(&mut bytes, 3).unwrap();
        assert_eq!(decode_assignment(&bytes).unwrap().len(), 3);

        assert_eq!(decode_assignment(&[]), Ok(vec![]));
        assert!(decode_assignment(&[0]).is_err());
        assert!(decode_assignment(&[0xff, 0xff]).is_err());
        assert!(decode_assignment(&[0, 0, 0xff, 0xff, 0xff, 0x00]).is_err());
    }

    #[test]
    fn group_errors_name_the_problem() {
        assert_eq!(
            kafka_error(69, &group_error_text(69, "g", "cannot delete"), None),
            "GROUP_ID_NOT_FOUND: consumer group 'g' does not exist"
        );
        assert_eq!(
            kafka_error(68, &group_error_text(68, "g", "cannot delete"), None),
            "NON_EMPTY_GROUP: consumer group 'g' is not empty: stop its consumers first"
        );
        assert!(is_coordinator_settling(14));
        assert!(is_coordinator_settling(15));
        assert!(is_coordinator_settling(16));
        assert!(!is_coordinator_settling(69));
    }
}
