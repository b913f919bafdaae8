//! `spate topic create|list|describe|alter|delete`, after Kafka's `kafka-topics.sh` (and
//! `kafka-configs.sh --alter` for config overrides).

use super::{print_stdout, ConnectArgs};
use crate::client::{kafka_error, topic_error_text, Client, NewTopic, CONFIG_SOURCE_TOPIC};
use clap::{Args, Subcommand};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{ApiKey, DescribeConfigsResponse};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

#[derive(Args)]
pub struct TopicArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topic names, one per line, sorted (internal topics are left out).
    List,
    /// Describe a topic's partitions, leaders, replicas and config overrides (all topics when
    /// none is named).
    Describe(TopicSelector),
    /// Add partitions to a topic, or set and delete its config overrides.
    Alter(AlterArgs),
    /// Delete a topic.
    Delete(TopicSelector),
}

/// A topic named either as `--topic T` or as a positional `T`.
#[derive(Args)]
struct TopicSelector {
    /// The topic.
    #[arg(long = "topic", value_name = "TOPIC")]
    topic_flag: Option<String>,
    /// The topic (same as --topic).
    #[arg(value_name = "TOPIC", conflicts_with = "topic_flag")]
    topic: Option<String>,
}

impl TopicSelector {
    fn name(&self) -> Option<&str> {
        self.topic_flag.as_deref().or(self.topic.as_deref())
    }

    fn required(&self) -> Result<&str, String> {
        self.name()
            .ok_or_else(|| "no topic given: use --topic TOPIC (or just TOPIC)".to_string())
    }
}

#[derive(Args)]
struct CreateArgs {
    #[command(flatten)]
    topic: TopicSelector,
    /// Number of partitions (default: the broker's num.partitions).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Replication factor (default: the broker's default.replication.factor).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i16).range(1..))]
    replication_factor: Option<i16>,
    /// A topic config override, e.g. --config retention.ms=60000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
    configs: Vec<(String, String)>,
}

#[derive(Args)]
struct AlterArgs {
    #[command(flatten)]
    topic: TopicSelector,
    /// The new number of partitions (partitions can be added, never removed).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Set a config override, e.g. --config retention.ms=60000 (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
    configs: Vec<(String, String)>,
    /// Remove a config override, so the broker's default applies again (repeatable).
    #[arg(long = "delete-config", value_name = "KEY")]
    delete_configs: Vec<String>,
}

pub fn run(args: TopicArgs) -> Result<(), String> {
    let bootstrap = &args.connect.bootstrap_server;
    // Topic changes go to the controller; reads to the bootstrap broker.
    let changes = matches!(
        args.command,
        TopicCommand::Create(_) | TopicCommand::Alter(_) | TopicCommand::Delete(_)
    );
    let mut client = match changes {
        true => Client::connect_controller(bootstrap)?,
        false => Client::connect(bootstrap)?,
    };
    match args.command {
        TopicCommand::Create(create) => create_topic(&mut client, create),
        TopicCommand::List => list_topics(&mut client),
        TopicCommand::Describe(selector) => describe_topics(&mut client, selector.name()),
        TopicCommand::Alter(alter) => alter_topic(&mut client, alter),
        TopicCommand::Delete(selector) => {
            let name = selector.required()?;
            client.delete_topic(name)?;
            print_stdout(format!("Deleted topic {name}.\n").as_bytes())
        }
    }
}

fn create_topic(client: &mut Client, args: CreateArgs) -> Result<(), String> {
    let name = args.topic.required()?.to_string();
    let topic = NewTopic {
        name,
        // -1 asks for the broker's default.
        partitions: args.partitions.unwrap_or(-1),
        replication_factor: args.replication_factor.unwrap_or(-1),
        configs: args.configs,
    };
    client.create_topic(&topic)?;
    print_stdout(format!("Created topic {}.\n", topic.name).as_bytes())
}

fn list_topics(client: &mut Client) -> Result<(), String> {
    let metadata = client.metadata(None, false)?;
    let mut names: Vec<&str> = metadata
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .filter_map(|t| t.name.as_ref().map(|n| n.as_str()))
        .filter(|name| !name.starts_with("__"))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut out = String::new();
    for name in names {
        out.push_str(name);
        out.push('\n');
    }
    print_stdout(out.as_bytes())
}

fn describe_topics(client: &mut Client, name: Option<&str>) -> Result<(), String> {
    let names = name.map(|n| [n]);
    let metadata = client.metadata(names.as_ref().map(|n| &n[..]), false)?;
    let mut topics: Vec<&MetadataResponseTopic> = match name {
        Some(name) => {
            let topic = metadata
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == name))
                .ok_or_else(|| {
                    format!("the broker's Metadata response does not mention topic '{name}'")
                })?;
            if topic.error_code != 0 {
                let what = topic_error_text(topic.error_code, name, "cannot describe");
                let error = kafka_error(topic.error_code, &what, None);
                if topic.error_code == ResponseError::UnknownTopicOrPartition.code() {
                    return Err(format!(
                        "{error} (check the name: `spate topic list` shows the topics there are)"
                    ));
                }
                return Err(error);
            }
            vec![topic]
        }
        None => metadata
            .topics
            .iter()
            .filter(|t| t.error_code == 0 && !t.is_internal)
            .filter(|t| t.name.as_ref().is_some_and(|n| !n.starts_with("__")))
            .collect(),
    };
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.as_str()))
        .collect();
    let mut overrides = BTreeMap::new();
    // A broker without DescribeConfigs (Kafka before 0.11) leaves the configs blank.
    if !names.is_empty() && client.max_version(ApiKey::DescribeConfigs).is_some() {
        let response = client.describe_topic_configs(&names)?;
        overrides = topic_overrides(&response, name)?;
    }
    let dirty = dirty_ratios(client, &names)?;
    let mut out = String::new();
    for topic in topics {
        let name = topic.name.as_ref().map_or("", |n| n.as_str());
        let configs = overrides.get(name).map_or(&[][..], Vec::as_slice);
        let empty = BTreeMap::new();
        describe_topic(&mut out, topic, configs, dirty.get(name).unwrap_or(&empty));
    }
    print_stdout(out.as_bytes())
}

/// The dirty ratio of each compacted partition the broker asked holds (Spate's tagged field in
/// DescribeLogDirs; other brokers, and partitions on other brokers, show none), by topic.
fn dirty_ratios(
    client: &mut Client,
    names: &[&str],
) -> Result<BTreeMap<String, BTreeMap<i32, f64>>, String> {
    use kafka_protocol::messages::DescribeLogDirsRequest;
    let mut ratios: BTreeMap<String, BTreeMap<i32, f64>> = BTreeMap::new();
    let Some(max) = client.max_version(ApiKey::DescribeLogDirs) else {
        return Ok(ratios);
    };
    if names.is_empty() || max < 2 {
        return Ok(ratios); // tagged fields come with the flexible versions
    }
    let response = client.send(
        &DescribeLogDirsRequest::default().with_topics(None),
        max.min(4),
    )?;
    for topic in response.results.iter().flat_map(|r| &r.topics) {
        if !names.contains(&topic.name.as_str()) {
            continue;
        }
        for p in &topic.partitions {
            let tag = spate_core::log::compact::DIRTY_RATIO_TAG;
            let Some(bytes) = p.unknown_tagged_fields.get(&tag) else {
                continue;
            };
            if let Ok(raw) = <[u8; 8]>::try_from(&bytes[..]) {
                let entry = ratios.entry(topic.name.to_string()).or_default();
                entry.insert(p.partition_index, f64::from_be_bytes(raw));
            }
        }
    }
    Ok(ratios)
}

/// Each topic's config overrides (source DYNAMIC_TOPIC_CONFIG), sorted by name. An error for
/// the one topic asked for is the command's error; with all topics, a topic that could not be
/// described (deleted meanwhile) just shows none.
fn topic_overrides(
    response: &DescribeConfigsResponse,
    asked: Option<&str>,
) -> Result<BTreeMap<String, Vec<(String, String)>>, String> {
    let mut overrides = BTreeMap::new();
    for result in &response.results {
        let topic = result.resource_name.as_str();
        if result.error_code != 0 {
            if asked == Some(topic) {
                let what = topic_error_text(result.error_code, topic, "cannot read the configs of");
                return Err(kafka_error(
                    result.error_code,
                    &what,
                    result.error_message.as_deref(),
                ));
            }
            continue;
        }
        let mut configs: Vec<(String, String)> = result
            .configs
            .iter()
            .filter(|c| c.config_source == CONFIG_SOURCE_TOPIC)
            .map(|c| {
                let value = match (&c.value, c.is_sensitive) {
                    (_, true) => "<sensitive>".to_string(),
                    (Some(value), false) => value.to_string(),
                    (None, false) => "null".to_string(),
                };
                (c.name.to_string(), value)
            })
            .collect();
        configs.sort();
        overrides.insert(topic.to_string(), configs);
    }
    Ok(overrides)
}

/// Appends Kafka's `--describe` lines for one topic.
/// `dirty`: the dirty ratio of the compacted partitions known (shown after the replicas).
fn describe_topic(
    out: &mut String,
    topic: &MetadataResponseTopic,
    configs: &[(String, String)],
    dirty: &BTreeMap<i32, f64>,
) {
    let name = topic.name.as_ref().map_or("", |n| n.as_str());
    let mut partitions: Vec<_> = topic.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let replication_factor = partitions.first().map_or(0, |p| p.replica_nodes.len());
    let topic_id = kafka_uuid_string(topic.topic_id.as_bytes());
    let configs = configs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    let _ = writeln!(
        out,
        "Topic: {name}\tTopicId: {topic_id}\tPartitionCount: {}\tReplicationFactor: \
         {replication_factor}\tConfigs: {configs}",
        partitions.len()
    );
    for p in partitions {
        let leader = match p.leader_id.0 {
            id if id < 0 => "none".to_string(),
            id => id.to_string(),
        };
        let replicas = join_ids(p.replica_nodes.iter().map(|b| b.0));
        let isr = join_ids(p.isr_nodes.iter().map(|b| b.0));
        let _ = write!(
            out,
            "\tTopic: {name}\tPartition: {}\tLeader: {leader}\tReplicas: {replicas}\tIsr: {isr}",
            p.partition_index
        );
        // As kafka-topics.sh: the replicas on brokers that are down, when there are any.
        if !p.offline_replicas.is_empty() {
            let offline = join_ids(p.offline_replicas.iter().map(|b| b.0));
            let _ = write!(out, "\tOffline: {offline}");
        }
        if let Some(ratio) = dirty.get(&p.partition_index) {
            let _ = write!(out, "\tDirtyRatio: {ratio:.2}");
        }
        out.push('\n');
    }
}

fn alter_topic(client: &mut Client, args: AlterArgs) -> Result<(), String> {
    let name = args.topic.required()?.to_string();
    check_alter(&args)?;
    let alter_configs = !args.configs.is_empty() || !args.delete_configs.is_empty();
    // Both at once: check both first, so a refusal of either changes nothing.
    if let (Some(count), true) = (args.partitions, alter_configs) {
        client.alter_topic_configs(&name, &args.configs, &args.delete_configs, true)?;
        client.create_partitions(&name, count, true)?;
    }
    let mut out = String::new();
    if alter_configs {
        client.alter_topic_configs(&name, &args.configs, &args.delete_configs, false)?;
        let _ = writeln!(out, "Completed updating config for topic {name}.");
    }
    if let Some(count) = args.partitions {
        client.create_partitions(&name, count, false)?;
        let _ = writeln!(out, "Topic {name} now has {count} partitions.");
    }
    print_stdout(out.as_bytes())
}

/// Refuses an alter that asks nothing, or sets and deletes the same key.
fn check_alter(args: &AlterArgs) -> Result<(), String> {
    if args.partitions.is_none() && args.configs.is_empty() && args.delete_configs.is_empty() {
        return Err(
            "nothing to alter: give --partitions N, --config KEY=VALUE or --delete-config KEY"
                .to_string(),
        );
    }
    let deleted: BTreeSet<&str> = args.delete_configs.iter().map(String::as_str).collect();
    if let Some((key, _)) = args
        .configs
        .iter()
        .find(|(k, _)| deleted.contains(k.as_str()))
    {
        return Err(format!(
            "config '{key}' is both set (--config) and deleted (--delete-config); give one"
        ));
    }
    if let Some(key) = args.delete_configs.iter().find(|k| k.trim().is_empty()) {
        return Err(format!(
            "--delete-config '{key}' names no config; give its name, e.g. --delete-config \
             retention.ms"
        ));
    }
    Ok(())
}

fn join_ids(ids: impl Iterator<Item = i32>) -> String {
    ids.map(|id| id.to_string()).collect::<Vec<_>>().join(",")
}

/// Kafka prints a `Uuid` as its 16 bytes in URL-safe base64 without padding (22 characters).
fn kafka_uuid_string(bytes: &[u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
        }
    }
    out
}

fn parse_config(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "expected KEY=VALUE, e.g. retention.ms=60000, got '{text}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::MetadataResponsePartition;
    use kafka_protocol::messages::{BrokerId, TopicName};

    fn parse(args: &[&str]) -> TopicArgs {
        crate::cli::parse_subcommand(args).unwrap()
    }

    #[test]
    fn create_takes_the_topic_as_flag_or_positional() {
        let args = parse(&[
            "spate",
            "topic",
            "create",
            "--topic",
            "t",
            "--partitions",
            "3",
        ]);
        let TopicCommand::Create(create) = args.command else {
            panic!()
        };
        assert_eq!(create.topic.required(), Ok("t"));
        assert_eq!(create.partitions, Some(3));
        assert_eq!(create.replication_factor, None);
        assert_eq!(args.connect.bootstrap_server, "127.0.0.1:9092");

        let args = parse(&[
            "spate",
            "topic",
            "create",
            "t2",
            "--config",
            "retention.ms=5",
            "--config",
            "cleanup.policy=compact",
            "--bootstrap-server",
            "h:1",
            "--replication-factor",
            "1",
        ]);
        let TopicCommand::Create(create) = args.command else {
            panic!()
        };
        assert_eq!(create.topic.required(), Ok("t2"));
        assert_eq!(create.replication_factor, Some(1));
        assert_eq!(
            create.configs,
            [
                ("retention.ms".to_string(), "5".to_string()),
                ("cleanup.policy".to_string(), "compact".to_string())
            ]
        );
        assert_eq!(args.connect.bootstrap_server, "h:1");
    }

    #[test]
    fn bad_arguments_are_rejected() {
        assert!(crate::cli::parse_subcommand::<TopicArgs>(&[
            "spate",
            "topic",
            "create",
            "t",
            "--partitions",
            "0"
        ])
        .is_err());
        assert!(crate::cli::parse_subcommand::<TopicArgs>(&[
            "spate", "topic", "create", "t", "--config", "x"
        ])
        .is_err());
        assert!(crate::cli::parse_subcommand::<TopicArgs>(&[
            "spate", "topic", "delete", "a", "--topic", "b"
        ])
        .is_err());
        let args = parse(&["spate", "topic", "delete"]);
        let TopicCommand::Delete(selector) = args.command else {
            panic!()
        };
        assert!(selector.required().unwrap_err().contains("--topic"));
    }

    #[test]
    fn describe_prints_kafka_style_lines() {
        let partition = |index: i32, leader: i32| {
            let offline = match leader {
                -1 => vec![BrokerId(1)],
                _ => vec![],
            };
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(BrokerId(leader))
                .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                .with_isr_nodes(vec![BrokerId(1)])
                .with_offline_replicas(offline)
        };
        let topic = MetadataResponseTopic::default()
            .with_name(Some(TopicName("t".into())))
            .with_partitions(vec![partition(1, -1), partition(0, 1)]);
        let mut out = String::new();
        describe_topic(&mut out, &topic, &[], &BTreeMap::new());
        assert_eq!(
            out,
            "Topic: t\tTopicId: AAAAAAAAAAAAAAAAAAAAAA\tPartitionCount: 2\tReplicationFactor: 2\t\
             Configs: \n\
             \tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1\n\
             \tTopic: t\tPartition: 1\tLeader: none\tReplicas: 1,2\tIsr: 1\tOffline: 1\n"
        );
        // A compacted partition's dirty ratio follows, where the broker reported one.
        let mut out = String::new();
        describe_topic(&mut out, &topic, &[], &BTreeMap::from([(0, 0.4271)]));
        assert!(
            out.contains("\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1\tDirtyRatio: 0.43\n")
        );
        assert!(
            out.contains("\tOffline: 1\n"),
            "none for partition 1: {out}"
        );
    }

    #[test]
    fn topic_ids_print_as_kafka_base64() {
        // Kafka's Uuid.toString: URL-safe base64 of the 16 bytes, no padding.
        let bytes: [u8; 16] = [
            0xfb, 0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
            0x0c, 0xfe,
        ];
        let text = kafka_uuid_string(&bytes);
        assert_eq!(text.len(), 22);
        assert_eq!(text, "-_8AAQIDBAUGBwgJCgsM_g");
        assert_eq!(kafka_uuid_string(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    fn alter_args(args: &[&str]) -> AlterArgs {
        let mut argv = vec!["spate", "topic", "alter"];
        argv.extend_from_slice(args);
        let TopicCommand::Alter(alter) = parse(&argv).command else {
            panic!("not an alter")
        };
        alter
    }

    #[test]
    fn alter_takes_partitions_configs_and_deletions() {
        let alter = alter_args(&[
            "--topic",
            "t",
            "--partitions",
            "4",
            "--config",
            "retention.ms=1000",
            "--delete-config",
            "segment.ms",
            "--delete-config",
            "cleanup.policy",
        ]);
        assert_eq!(alter.topic.required(), Ok("t"));
        assert_eq!(alter.partitions, Some(4));
        assert_eq!(
            alter.configs,
            [("retention.ms".to_string(), "1000".to_string())]
        );
        assert_eq!(alter.delete_configs, ["segment.ms", "cleanup.policy"]);
        assert_eq!(check_alter(&alter), Ok(()));
        assert!(crate::cli::parse_subcommand::<TopicArgs>(&[
            "spate",
            "topic",
            "alter",
            "t",
            "--partitions",
            "0"
        ])
        .is_err());
    }

    #[test]
    fn alter_refuses_nothing_to_do_and_contradictions() {
        let error = check_alter(&alter_args(&["t"])).unwrap_err();
        assert!(error.starts_with("nothing to alter"), "{error}");
        assert!(error.contains("--partitions N"), "{error}");
        let error = check_alter(&alter_args(&[
            "t",
            "--config",
            "retention.ms=5",
            "--delete-config",
            "retention.ms",
        ]))
        .unwrap_err();
        assert!(error.contains("'retention.ms' is both set"), "{error}");
        let error = check_alter(&alter_args(&["t", "--delete-config", ""])).unwrap_err();
        assert!(error.contains("names no config"), "{error}");
    }

    #[test]
    fn describe_lists_only_topic_overrides_sorted() {
        use kafka_protocol::messages::describe_configs_response::{
            DescribeConfigsResourceResult, DescribeConfigsResult,
        };
        let entry = |name: &str, value: &str, source: i8| {
            DescribeConfigsResourceResult::default()
                .with_name(name.to_string().into())
                .with_value(Some(value.to_string().into()))
                .with_config_source(source)
        };
        let response = DescribeConfigsResponse::default().with_results(vec![
            DescribeConfigsResult::default()
                .with_resource_type(2)
                .with_resource_name("t".into())
                .with_configs(vec![
                    entry("segment.ms", "5000", CONFIG_SOURCE_TOPIC),
                    entry("max.message.bytes", "1048588", 5),
                    entry("cleanup.policy", "compact", CONFIG_SOURCE_TOPIC),
                ]),
            DescribeConfigsResult::default()
                .with_resource_type(2)
                .with_resource_name("gone".into())
                .with_error_code(3),
        ]);
        let overrides = topic_overrides(&response, None).unwrap();
        let expected = vec![
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.ms".to_string(), "5000".to_string()),
        ];
        assert_eq!(overrides["t"], expected);
        assert!(!overrides.contains_key("gone"));
        let error = topic_overrides(&response, Some("gone")).unwrap_err();
        assert!(
            error.starts_with("UNKNOWN_TOPIC_OR_PARTITION: topic 'gone' does not exist"),
            "{error}"
        );

        let topic = MetadataResponseTopic::default()
            .with_name(Some(TopicName("t".into())))
            .with_partitions(vec![MetadataResponsePartition::default()
                .with_leader_id(BrokerId(1))
                .with_replica_nodes(vec![BrokerId(1)])
                .with_isr_nodes(vec![BrokerId(1)])]);
        let mut out = String::new();
        describe_topic(&mut out, &topic, &expected, &BTreeMap::new());
        assert!(
            out.starts_with(
                "Topic: t\tTopicId: AAAAAAAAAAAAAAAAAAAAAA\tPartitionCount: 1\t\
                 ReplicationFactor: 1\tConfigs: cleanup.policy=compact,segment.ms=5000\n"
            ),
            "{out}"
        );
    }
}
