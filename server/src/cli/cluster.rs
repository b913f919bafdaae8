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
    /// Print the cluster id, the controller and the brokers.
    Describe,
}

/// What `describe` prints.
#[derive(Debug, PartialEq, Eq)]
struct ClusterDescription {
    cluster_id: Option<String>,
    controller_id: i32,
    /// (node id, host, port, rack)
    brokers: Vec<(i32, String, i32, Option<String>)>,
}

pub fn run(args: ClusterArgs) -> Result<(), String> {
    let mut client = Client::connect(&args.connect.bootstrap_server)?;
    match args.command {
        ClusterCommand::Describe => {
            let description = describe(&mut client)?;
            print_stdout(format_description(&description).as_bytes())
        }
    }
}

fn describe(client: &mut Client) -> Result<ClusterDescription, String> {
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
                    (b.broker_id.0, b.host.to_string(), b.port, rack)
                })
                .collect(),
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
                (b.node_id.0, b.host.to_string(), b.port, rack)
            })
            .collect(),
    })
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
    out.push_str("Brokers:\n");
    let mut brokers: Vec<_> = description.brokers.iter().collect();
    brokers.sort_by_key(|b| b.0);
    for (id, host, port, rack) in brokers {
        let _ = write!(out, "  {id} {host}:{port}");
        if let Some(rack) = rack {
            let _ = write!(out, " rack: {rack}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_prints_id_controller_and_sorted_brokers() {
        let description = ClusterDescription {
            cluster_id: Some("DHAhzrMXRFLJ9KnjZyZXtG".into()),
            controller_id: 1,
            brokers: vec![
                (2, "10.0.0.2".into(), 9092, Some("r2".into())),
                (1, "127.0.0.1".into(), 9092, None),
            ],
        };
        assert_eq!(
            format_description(&description),
            "Cluster ID: DHAhzrMXRFLJ9KnjZyZXtG\nController: 1\nBrokers:\n  1 127.0.0.1:9092\n  \
             2 10.0.0.2:9092 rack: r2\n"
        );
    }

    #[test]
    fn no_controller_and_no_id_are_said_so() {
        let description = ClusterDescription {
            cluster_id: None,
            controller_id: -1,
            brokers: vec![],
        };
        assert_eq!(
            format_description(&description),
            "Cluster ID: none\nController: none\nBrokers:\n"
        );
    }

    #[test]
    fn describe_is_the_one_subcommand() {
        let parse = crate::cli::parse_subcommand::<ClusterArgs>;
        let args = parse(&["spate", "cluster", "describe", "-b", "h:1"]).unwrap();
        assert!(matches!(args.command, ClusterCommand::Describe));
        assert_eq!(args.connect.bootstrap_server, "h:1");
        assert!(parse(&["spate", "cluster"]).is_err());
    }
}
