//! `spate`: the broker (`spate server`) and the console tools a Kafka user expects
//! (`spate topic`, `spate produce`, `spate consume`, `spate cluster`, `spate group`,
//! `spate config`).

mod cli;
mod client;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "spate",
    version,
    about = "Spate: a Kafka-compatible streaming platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (data in ./spate-data, listening on 127.0.0.1:9092 by default).
    Server(serve::ServerArgs),
    /// Create, list, describe, alter and delete topics.
    Topic(cli::topic::TopicArgs),
    /// Produce records to a topic, one per line of standard input.
    Produce(cli::produce::ProduceArgs),
    /// Consume records from a topic and print them, one per line.
    Consume(cli::consume::ConsumeArgs),
    /// Describe the cluster: its id, controller and brokers.
    Cluster(cli::cluster::ClusterArgs),
    /// List, describe, reset the offsets of and delete consumer groups.
    Group(cli::group::GroupArgs),
    /// Describe and alter the configs of a broker, of the cluster-wide broker defaults or of a
    /// topic (as Kafka's kafka-configs.sh).
    Config(cli::config::ConfigArgs),
    /// Start a local cluster of brokers on 127.0.0.1 (3 by default), until Ctrl-C.
    DevCluster(cli::dev_cluster::DevClusterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => serve::run(args),
        Command::Topic(args) => cli::topic::run(args),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => cli::consume::run(args),
        Command::Cluster(args) => cli::cluster::run(args),
        Command::Group(args) => cli::group::run(args),
        Command::Config(args) => cli::config::run(args),
        Command::DevCluster(args) => cli::dev_cluster::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("spate: {message}");
            ExitCode::FAILURE
        }
    }
}
