//! `spate cluster describe`: the cluster id, the controller and the brokers, as Kafka's
//! `kafka-cluster.sh cluster-id` and the AdminClient's `describeCluster` report them.
//!
//! Asks DescribeCluster (v0); a broker without it (Kafka before 2.8) is asked Metadata instead,
//! which carries the same three things.

use super::{print_stdout, ConnectArgs};
use crate::client::Client;
use clap::{Args, Subcommand};
use kafka_protocol::messages::ApiKey;
use std::fmt::Write as _;

#[derive(Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print the cluster id, the controller, the controller quorum's leader, epoch and voters,
    /// and the brokers, each with its role in a cluster (voter, or broker-only) and fenced
    /// ones marked.
    Describe,
    /// Print the controller quorum (DescribeQuorum, as kafka-metadata-quorum.sh describe
    /// --status): its leader and epoch, the committed index, and each voter's and observer's
    /// (broker-only node's) log end. Only the leader knows their progress; a follower names
    /// the leader.
    Quorum,
}

/// What `describe` prints.
#[derive(Debug, PartialEq, Eq)]
struct ClusterDescription {
    cluster_id: Option<String>,
    controller_id: i32,
    /// (node id, host, port, rack, fenced)
    brokers: Vec<(i32, String, i32, Option<String>, bool)>,
    /// The controller quorum's leader, epoch and voters, when the cluster has a quorum of
    /// several (DescribeQuorum v2 names its voters).
    quorum: Option<(i32, i32, Vec<i32>)>,
}

pub fn run(args: ClusterArgs) -> Result<(), String> {
    let mut client = Client::connect(&args.connect.bootstrap_server)?;
    match args.command {
        ClusterCommand::Describe => {
            let description = describe(&mut client)?;
            print_stdout(format_description(&description).as_bytes())
        }
        ClusterCommand::Quorum => {
            let quorum = describe_quorum(&mut client)?;
            print_stdout(format_quorum(&quorum).as_bytes())
        }
    }
}

/// What `quorum` prints.
#[derive(Debug, PartialEq, Eq)]
struct QuorumDescription {
    leader: i32,
    epoch: i32,
    /// The committed index and each voter's (id, log end), when the leader answered.
    progress: Option<(i64, Vec<(i32, i64)>)>,
    /// Each observer's (id, log end), when the leader answered.
    observers: Vec<(i32, i64)>,
}

/// Sends DescribeQuorum for the metadata log, `__cluster_metadata-0`, at `version`.
fn send_describe_quorum(
    client: &mut Client,
    version: i16,
) -> Result<kafka_protocol::messages::DescribeQuorumResponse, String> {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::DescribeQuorumRequest;
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(crate::client::topic_name("__cluster_metadata"))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    client.send(&request, version)
}

fn describe_quorum(client: &mut Client) -> Result<QuorumDescription, String> {
    let Some(max) = client.max_version(ApiKey::DescribeQuorum) else {
        return Err(
            "the broker does not support DescribeQuorum (it has no controller quorum)".into(),
        );
    };
    let response = send_describe_quorum(client, max.min(1))?;
    if response.error_code != 0 {
        return Err(crate::client::kafka_error(
            response.error_code,
            "DescribeQuorum",
            None,
        ));
    }
    let partition = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or("DescribeQuorum answered no partition")?;
    let progress = match partition.error_code {
        0 => {
            let voters = partition
                .current_voters
                .iter()
                .map(|v| (v.replica_id.0, v.log_end_offset))
                .collect();
            Some((partition.high_watermark, voters))
        }
        6 => None, // NOT_LEADER_OR_FOLLOWER: a follower, which names the leader
        code => return Err(crate::client::kafka_error(code, "DescribeQuorum", None)),
    };
    let observers = partition
        .observers
        .iter()
        .map(|o| (o.replica_id.0, o.log_end_offset))
        .collect();
    Ok(QuorumDescription {
        leader: partition.leader_id.0,
        epoch: partition.leader_epoch,
        progress,
        observers,
    })
}

fn format_quorum(quorum: &QuorumDescription) -> String {
    let mut out = String::new();
    match quorum.leader {
        id if id < 0 => out.push_str("LeaderId: none\n"),
        id => {
            let _ = writeln!(out, "LeaderId: {id}");
        }
    }
    let _ = writeln!(out, "LeaderEpoch: {}", quorum.epoch);
    match &quorum.progress {
        Some((high_watermark, voters)) => {
            let _ = writeln!(out, "HighWatermark: {high_watermark}");
            out.push_str("Voters:\n");
            for (id, log_end) in voters {
                let lag = (high_watermark - log_end).max(0);
                let _ = writeln!(out, "  {id} log end {log_end} lag {lag}");
            }
            if !quorum.observers.is_empty() {
                out.push_str(
                    "Observers:
",
                );
                for (id, log_end) in &quorum.observers {
                    let lag = (high_watermark - log_end).max(0);
                    let _ = writeln!(out, "  {id} log end {log_end} lag {lag}");
                }
            }
        }
        None => out.push_str("(answered by a follower: ask the leader for the voters' progress)\n"),
    }
    out
}

fn describe(client: &mut Client) -> Result<ClusterDescription, String> {
    let quorum = quorum_of(client);
    if client.max_version(ApiKey::DescribeCluster).is_some() {
        let response = client.describe_cluster()?;
        return Ok(ClusterDescription {
            cluster_id: Some(response.cluster_id.to_string()),
            controller_id: response.controller_id.0,
            brokers: response
                .brokers
                .iter()
                .map(|b| {
                    let rack = b.rack.as_ref().map(|r| r.to_string());
                    (b.broker_id.0, b.host.to_string(), b.port, rack, b.is_fenced)
                })
                .collect(),
            quorum,
        });
    }
    let response = client.metadata(Some(&[]), false)?;
    Ok(ClusterDescription {
        cluster_id: response.cluster_id.as_ref().map(|id| id.to_string()),
        controller_id: response.controller_id.0,
        brokers: response
            .brokers
            .iter()
            .map(|b| {
                let rack = b.rack.as_ref().map(|r| r.to_string());
                (b.node_id.0, b.host.to_string(), b.port, rack, false)
            })
            .collect(),
        quorum,
    })
}

/// The controller quorum's leader, epoch and voters, from DescribeQuorum v2 (which names the
/// voters, from any of them); `None` for a broker without it or a quorum of one.
fn quorum_of(client: &mut Client) -> Option<(i32, i32, Vec<i32>)> {
    if client.max_version(ApiKey::DescribeQuorum)? < 2 {
        return None;
    }
    let response = send_describe_quorum(client, 2).ok()?;
    let partition = response.topics.first()?.partitions.first()?;
    let mut voters: Vec<i32> = response.nodes.iter().map(|n| n.node_id.0).collect();
    voters.sort();
    (voters.len() > 1).then_some((partition.leader_id.0, partition.leader_epoch, voters))
}

fn format_description(description: &ClusterDescription) -> String {
    let mut out = String::new();
    let cluster_id = description.cluster_id.as_deref().unwrap_or("none");
    let _ = writeln!(out, "Cluster ID: {cluster_id}");
    match description.controller_id {
        id if id < 0 => out.push_str("Controller: none\n"),
        id => {
            let _ = writeln!(out, "Controller: {id}");
        }
    }
    if let Some((leader, epoch, voters)) = &description.quorum {
        let voters: Vec<String> = voters.iter().map(i32::to_string).collect();
        let leader = match *leader {
            id if id < 0 => "none".to_string(),
            id => id.to_string(),
        };
        let _ = writeln!(
            out,
            "Quorum: leader {leader}, epoch {epoch}, voters {}",
            voters.join(",")
        );
    }
    out.push_str("Brokers:\n");
    let mut brokers: Vec<_> = description.brokers.iter().collect();
    brokers.sort_by_key(|b| b.0);
    for (id, host, port, rack, fenced) in brokers {
        let _ = write!(out, "  {id} {host}:{port}");
        if let Some(rack) = rack {
            let _ = write!(out, " rack: {rack}");
        }
        if let Some((_, _, voters)) = &description.quorum {
            out.push_str(match voters.contains(id) {
                true => " voter",
                false => " broker-only",
            });
        }
        if *fenced {
            out.push_str(" fenced");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_prints_the_leader_and_each_voters_lag() {
        let from_leader = QuorumDescription {
            leader: 2,
            epoch: 5,
            progress: Some((10, vec![(1, 10), (2, 11), (3, 7)])),
            observers: vec![(4, 9)],
        };
        assert_eq!(
            format_quorum(&from_leader),
            "LeaderId: 2\nLeaderEpoch: 5\nHighWatermark: 10\nVoters:\n  1 log end 10 lag 0\n  \
             2 log end 11 lag 0\n  3 log end 7 lag 3\nObservers:\n  4 log end 9 lag 1\n"
        );
        let from_follower = QuorumDescription {
            leader: -1,
            epoch: 6,
            progress: None,
            observers: vec![],
        };
        assert!(format_quorum(&from_follower).starts_with("LeaderId: none\nLeaderEpoch: 6\n("));
    }

    #[test]
    fn describe_prints_id_controller_and_sorted_brokers() {
        let description = ClusterDescription {
            cluster_id: Some("DHAhzrMXRFLJ9KnjZyZXtG".into()),
            controller_id: 1,
            brokers: vec![
                (2, "10.0.0.2".into(), 9092, Some("r2".into()), false),
                (1, "127.0.0.1".into(), 9092, None, false),
            ],
            quorum: None,
        };
        assert_eq!(
            format_description(&description),
            "Cluster ID: DHAhzrMXRFLJ9KnjZyZXtG\nController: 1\nBrokers:\n  1 127.0.0.1:9092\n  \
             2 10.0.0.2:9092 rack: r2\n"
        );
        let quorum = ClusterDescription {
            brokers: vec![
                (3, "h".into(), 3, None, true),
                (1, "h".into(), 1, None, false),
                (4, "h".into(), 4, None, false),
            ],
            quorum: Some((1, 4, vec![1, 2, 3])),
            ..description
        };
        assert_eq!(
            format_description(&quorum),
            "Cluster ID: DHAhzrMXRFLJ9KnjZyZXtG\nController: 1\nQuorum: leader 1, epoch 4, voters 1,2,3\n\
             Brokers:\n  1 h:1 voter\n  3 h:3 voter fenced\n  4 h:4 broker-only\n"
        );
    }

    #[test]
    fn no_controller_and_no_id_are_said_so() {
        let description = ClusterDescription {
            cluster_id: None,
            controller_id: -1,
            brokers: vec![],
            quorum: None,
        };
        assert_eq!(
            format_description(&description),
            "Cluster ID: none\nController: none\nBrokers:\n"
        );
    }

    #[test]
    fn describe_parses_and_a_subcommand_is_needed() {
        let parse = crate::cli::parse_subcommand::<ClusterArgs>;
        let args = parse(&["spate", "cluster", "describe", "-b", "h:1"]).unwrap();
        assert!(matches!(args.command, ClusterCommand::Describe));
        assert_eq!(args.connect.bootstrap_server, "h:1");
        assert!(parse(&["spate", "cluster"]).is_err());
    }
}
