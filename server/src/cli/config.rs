//! `spate config describe|alter`, after Kafka's `kafka-configs.sh`: the configs of one broker,
//! of the cluster-wide broker defaults (the broker resource with the empty name, which most
//! clients cannot address) and of topics, read with DescribeConfigs and changed with
//! IncrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT).
//!
//! Differs from Kafka: `describe` without `--all` shows every config not at Kafka's default
//! (static broker settings too, and what a topic inherits), not only dynamic ones; `alter`
//! prints each changed config's value before and after.

use super::{print_stdout, ConnectArgs};
use crate::client::{Client, ConfigChange, ConfigOp, ConfigResource, CONFIG_SOURCE_DEFAULT};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

#[derive(Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the configs of a broker, of the cluster-wide broker defaults or of a topic.
    ///
    /// One `KEY=VALUE (SOURCE)` line per config, sorted by name, the source in Kafka's words:
    /// DYNAMIC_TOPIC_CONFIG (a topic's override), DYNAMIC_BROKER_CONFIG (set at run time for
    /// this broker), DYNAMIC_DEFAULT_BROKER_CONFIG (set at run time as the cluster-wide
    /// default), STATIC_BROKER_CONFIG (the broker's config file or flags) or DEFAULT_CONFIG
    /// (Kafka's default). Read-only broker configs are marked `read-only`; sensitive values
    /// print as `(sensitive)`, unset ones as `null`.
    ///
    /// Without --all only the configs set somewhere are printed, i.e. every config not at
    /// DEFAULT_CONFIG: a broker's dynamic and static settings, a topic's overrides and what
    /// it inherits from broker settings. (Kafka's kafka-configs.sh shows only dynamic configs
    /// here.) --broker-defaults lists the dynamic cluster-wide defaults alone.
    Describe(DescribeArgs),
    /// Change the configs of a broker, of the cluster-wide broker defaults or of a topic.
    ///
    /// Every change goes in one IncrementalAlterConfigs request, applied as a whole or not at
    /// all. Values with commas (list configs) go in square brackets, as with kafka-configs.sh:
    /// --add-config cleanup.policy=[compact,delete]. Prints each changed config's value and
    /// source before and after; a refusal prints the broker's error code and message and
    /// exits non-zero.
    Alter(AlterArgs),
}

/// What a command reads or changes: exactly one of these.
#[derive(Args)]
struct TargetArgs {
    /// A broker's configs, by node id (`spate cluster describe` lists the brokers).
    #[arg(long, value_name = "ID", value_parser = parse_broker_id)]
    broker: Option<i32>,
    /// The cluster-wide defaults every broker falls back to (dynamic broker configs only).
    #[arg(long)]
    broker_defaults: bool,
    /// A topic's configs.
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,
}

const TARGETS: &str =
    "--broker ID (one broker), --broker-defaults (the cluster-wide defaults) or --topic TOPIC";

impl TargetArgs {
    fn resource(&self) -> Result<ConfigResource, String> {
        let given: Vec<&str> = [
            self.broker.map(|_| "--broker"),
            self.broker_defaults.then_some("--broker-defaults"),
            self.topic.as_ref().map(|_| "--topic"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match (self.broker, self.broker_defaults, &self.topic) {
            (Some(id), false, None) => Ok(ConfigResource::Broker(id)),
            (None, true, None) => Ok(ConfigResource::BrokerDefaults),
            (None, false, Some(topic)) if topic.trim().is_empty() => Err(
                "--topic names no topic: give its name, e.g. --topic orders (`spate topic \
                 list` shows the topics there are)"
                    .to_string(),
            ),
            (None, false, Some(topic)) => Ok(ConfigResource::Topic(topic.clone())),
            (None, false, None) => Err(format!(
                "no config target given: use exactly one of {TARGETS}"
            )),
            _ => Err(format!(
                "{} given together: use exactly one of {TARGETS}",
                given.join(" and ")
            )),
        }
    }
}

#[derive(Args)]
struct DescribeArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Print every config, those at Kafka's default (DEFAULT_CONFIG) included.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct AlterArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Set configs, e.g. --add-config log.retention.ms=60000,num.io.threads=4; a value with
    /// commas goes in square brackets: cleanup.policy=[compact,delete] (repeatable).
    #[arg(long = "add-config", value_name = "KEY=VALUE[,...]", value_parser = parse_config_list)]
    add_configs: Vec<ConfigList>,
    /// Remove configs set at this level, so they fall back again, e.g. --delete-config
    /// log.retention.ms,num.io.threads (repeatable).
    #[arg(long = "delete-config", value_name = "KEY[,...]", value_parser = parse_key_list)]
    delete_configs: Vec<KeyList>,
    /// Add values to a list config, e.g. --append-config cleanup.policy=compact, or several:
    /// cleanup.policy=[compact,delete] (repeatable).
    #[arg(long = "append-config", value_name = "KEY=VALUE[,...]", value_parser = parse_config_list)]
    append_configs: Vec<ConfigList>,
    /// Remove values from a list config, e.g. --subtract-config cleanup.policy=delete
    /// (repeatable).
    #[arg(long = "subtract-config", value_name = "KEY=VALUE[,...]", value_parser = parse_config_list)]
    subtract_configs: Vec<ConfigList>,
    /// Only check the change with the broker; change nothing.
    #[arg(long)]
    validate_only: bool,
}

/// The `KEY=VALUE` pairs of one `--add-config` (or append, subtract) argument.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConfigList(Vec<(String, String)>);

/// The keys of one `--delete-config` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyList(Vec<String>);

pub fn run(args: ConfigArgs) -> Result<(), String> {
    let bootstrap = &args.connect.bootstrap_server;
    match args.command {
        ConfigCommand::Describe(describe) => {
            let resource = describe.target.resource()?;
            let mut client = connect_for(bootstrap, &resource)?;
            describe_configs(&mut client, &resource, describe.all)
        }
        ConfigCommand::Alter(alter) => {
            let resource = alter.target.resource()?;
            let changes = changes(&alter)?;
            let mut client = connect_for(bootstrap, &resource)?;
            alter_configs(&mut client, &resource, &changes, alter.validate_only)
        }
    }
}

/// A connection to the broker that answers for `resource`. A broker's own configs are
/// described and changed by that broker alone (as Kafka's AdminClient sends them), so
/// `--broker ID` goes to the broker with that id; anything else to the controller.
fn connect_for(bootstrap: &str, resource: &ConfigResource) -> Result<Client, String> {
    let ConfigResource::Broker(id) = *resource else {
        // Topic configs and the cluster-wide defaults are the controller's.
        return Client::connect_controller(bootstrap);
    };
    let mut client = Client::connect(bootstrap)?;
    let metadata = client.metadata(Some(&[]), false)?;
    let brokers = &metadata.brokers;
    match brokers.iter().find(|b| b.node_id.0 == id) {
        // One broker: the one connected to.
        Some(_) if brokers.len() == 1 => Ok(client),
        Some(broker) => Client::connect(&crate::client::broker_address(&broker.host, broker.port)),
        None => {
            let mut ids: Vec<i32> = brokers.iter().map(|b| b.node_id.0).collect();
            ids.sort_unstable();
            let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
            Err(format!(
                "broker {id} is not in the cluster, whose brokers are {} (`spate cluster \
                 describe` lists them; --broker-defaults names the cluster-wide defaults)",
                match ids.is_empty() {
                    true => "unknown".to_string(),
                    false => ids.join(", "),
                }
            ))
        }
    }
}

fn describe_configs(
    client: &mut Client,
    resource: &ConfigResource,
    all: bool,
) -> Result<(), String> {
    let entries = client.describe_configs(resource, None)?;
    let out = describe_lines(&entries, all);
    if out.is_empty() {
        let note = match resource {
            ConfigResource::BrokerDefaults => "no cluster-wide broker defaults are set".to_string(),
            _ if all => format!("the broker reported no configs for {resource}"),
            _ => {
                format!("every config of {resource} is at Kafka's default (--all prints them all)")
            }
        };
        eprintln!("spate: note: {note}");
    }
    print_stdout(out.as_bytes())
}

/// `KEY=VALUE (SOURCE)` lines sorted by name: every config with `all`, else those not at
/// DEFAULT_CONFIG.
fn describe_lines(entries: &[DescribeConfigsResourceResult], all: bool) -> String {
    let mut shown: Vec<&DescribeConfigsResourceResult> = entries
        .iter()
        .filter(|e| all || e.config_source != CONFIG_SOURCE_DEFAULT)
        .collect();
    shown.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for entry in shown {
        let _ = writeln!(out, "{}={}", entry.name.as_str(), value_and_source(entry));
    }
    out
}

/// `VALUE (SOURCE)`, with `, read-only` for a config that cannot change at run time.
fn value_and_source(entry: &DescribeConfigsResourceResult) -> String {
    let value = match (&entry.value, entry.is_sensitive) {
        (_, true) => "(sensitive)",
        (Some(value), false) => value.as_str(),
        (None, false) => "null",
    };
    source_suffixed(value, entry)
}

/// [`value_and_source`] where an empty value shows as `""`, for a line that does not start
/// with `KEY=`.
fn quoted_value_and_source(entry: &DescribeConfigsResourceResult) -> String {
    match (&entry.value, entry.is_sensitive) {
        (Some(value), false) if value.is_empty() => source_suffixed("\"\"", entry),
        _ => value_and_source(entry),
    }
}

fn source_suffixed(value: &str, entry: &DescribeConfigsResourceResult) -> String {
    let read_only = match entry.read_only {
        true => ", read-only",
        false => "",
    };
    format!("{value} ({}{read_only})", source_name(entry.config_source))
}

/// Kafka's name for a DescribeConfigs config source (`ConfigEntry.ConfigSource`).
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "DYNAMIC_CLIENT_METRICS_CONFIG",
        8 => "DYNAMIC_GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// The changes an alter asks for, in the order SET, DELETE, APPEND, SUBTRACT; refuses an
/// alter that asks nothing or names a config twice.
fn changes(args: &AlterArgs) -> Result<Vec<ConfigChange>, String> {
    let pairs = |lists: &[ConfigList], op: ConfigOp| -> Vec<ConfigChange> {
        lists
            .iter()
            .flat_map(|list| list.0.iter())
            .map(|(key, value)| ConfigChange::new(key, op, Some(value)))
            .collect()
    };
    let mut changes = pairs(&args.add_configs, ConfigOp::Set);
    changes.extend(
        args.delete_configs
            .iter()
            .flat_map(|list| list.0.iter())
            .map(|key| ConfigChange::new(key, ConfigOp::Delete, None)),
    );
    changes.extend(pairs(&args.append_configs, ConfigOp::Append));
    changes.extend(pairs(&args.subtract_configs, ConfigOp::Subtract));
    if changes.is_empty() {
        return Err(
            "nothing to alter: give --add-config KEY=VALUE, --delete-config KEY, \
                    --append-config KEY=VALUE or --subtract-config KEY=VALUE"
                .to_string(),
        );
    }
    let mut seen: BTreeMap<&str, ConfigOp> = BTreeMap::new();
    for change in &changes {
        if let Some(first) = seen.insert(&change.name, change.op) {
            let (first, second) = (op_flag(first), op_flag(change.op));
            let how = match first == second {
                true => format!("twice by {first}"),
                false => format!("by both {first} and {second}"),
            };
            return Err(format!(
                "config '{}' is named {how}; name each config once per alter",
                change.name
            ));
        }
    }
    Ok(changes)
}

fn op_flag(op: ConfigOp) -> &'static str {
    match op {
        ConfigOp::Set => "--add-config",
        ConfigOp::Delete => "--delete-config",
        ConfigOp::Append => "--append-config",
        ConfigOp::Subtract => "--subtract-config",
    }
}

fn alter_configs(
    client: &mut Client,
    resource: &ConfigResource,
    changes: &[ConfigChange],
    validate_only: bool,
) -> Result<(), String> {
    let mut keys: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
    keys.dedup();
    // The values before and after, to print what changed. The alter is what matters: if
    // describing fails, the changes asked for are printed instead.
    let before = client.describe_configs(resource, Some(&keys)).ok();
    client.alter_configs(resource, changes, validate_only)?;
    let after = match validate_only {
        true => None,
        false => client.describe_configs(resource, Some(&keys)).ok(),
    };
    let out = alter_report(resource, changes, validate_only, before, after);
    print_stdout(out.as_bytes())
}

/// What an alter did: each config's value and source before and after when both are known,
/// else the changes asked for (sensitive values hidden).
fn alter_report(
    resource: &ConfigResource,
    changes: &[ConfigChange],
    validate_only: bool,
    before: Option<Vec<DescribeConfigsResourceResult>>,
    after: Option<Vec<DescribeConfigsResourceResult>>,
) -> String {
    let by_name = |entries: Vec<DescribeConfigsResourceResult>| -> BTreeMap<String, _> {
        entries
            .into_iter()
            .map(|e| (e.name.to_string(), e))
            .collect()
    };
    let before = before.map(by_name);
    let after = after.map(by_name);
    let sensitive: BTreeSet<&str> = [&before, &after]
        .into_iter()
        .flatten()
        .flat_map(|entries| entries.values())
        .filter(|e| e.is_sensitive)
        .map(|e| e.name.as_str())
        .collect();
    let mut out = String::new();
    let subject = match resource {
        ConfigResource::BrokerDefaults => "default config for brokers in the cluster".to_string(),
        ConfigResource::Broker(id) => format!("config for broker {id}"),
        ConfigResource::Topic(name) => format!("config for topic {name}"),
    };
    if validate_only {
        let _ = writeln!(
            out,
            "Validated updating {subject}; nothing was changed (--validate-only):"
        );
    } else {
        let _ = writeln!(out, "Completed updating {subject}:");
    }
    let (Some(before), Some(after), false) = (&before, &after, validate_only) else {
        for change in changes {
            let value = match sensitive.contains(change.name.as_str()) {
                true => "(sensitive)",
                false => change.value.as_deref().unwrap_or_default(),
            };
            let name = &change.name;
            let _ = match change.op {
                ConfigOp::Set => writeln!(out, "  set {name}={value}"),
                ConfigOp::Delete => writeln!(out, "  delete {name}"),
                ConfigOp::Append => writeln!(out, "  append {value} to {name}"),
                ConfigOp::Subtract => writeln!(out, "  subtract {value} from {name}"),
            };
        }
        return out;
    };
    let mut done = BTreeSet::new();
    for change in changes {
        let name = change.name.as_str();
        if !done.insert(name) {
            continue;
        }
        let state = |entries: &BTreeMap<String, DescribeConfigsResourceResult>| {
            entries
                .get(name)
                .map_or_else(|| "(not set)".to_string(), quoted_value_and_source)
        };
        let (old, new) = (state(before), state(after));
        let _ = match old == new {
            true => writeln!(out, "  {name}: unchanged, {new}"),
            false => writeln!(out, "  {name}: {old} -> {new}"),
        };
    }
    out
}

/// A broker's node id; the cluster-wide defaults have their own flag.
fn parse_broker_id(text: &str) -> Result<i32, String> {
    match text.trim().parse::<i32>() {
        Ok(id) if id >= 0 => Ok(id),
        _ => Err(format!(
            "expected a broker's node id, a number such as 1 (`spate cluster describe` lists \
             them), got '{text}'; --broker-defaults names the cluster-wide defaults"
        )),
    }
}

/// `KEY=VALUE[,KEY=VALUE...]`, as kafka-configs.sh reads `--add-config`: pairs split at commas
/// outside square brackets, keys and values trimmed, and a value wholly in brackets (a list
/// with commas, `cleanup.policy=[compact,delete]`) unwrapped.
fn parse_config_list(text: &str) -> Result<ConfigList, String> {
    let mut pairs = Vec::new();
    for piece in split_outside_brackets(text)? {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let Some((key, value)) = piece.split_once('=') else {
            return Err(format!(
                "'{piece}' is not KEY=VALUE; a value with commas goes in square brackets, \
                 e.g. cleanup.policy=[compact,delete]"
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.contains(['[', ']']) {
            return Err(format!(
                "'{piece}' names no config before '='; expected KEY=VALUE, e.g. \
                 retention.ms=60000"
            ));
        }
        let value = value.trim();
        let value = match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            Some(inner) if !inner.contains(['[', ']']) => inner.trim(),
            _ => value,
        };
        pairs.push((key.to_string(), value.to_string()));
    }
    if pairs.is_empty() {
        return Err("names no config; expected KEY=VALUE, e.g. retention.ms=60000".to_string());
    }
    Ok(ConfigList(pairs))
}

/// Splits at the commas outside square brackets; unbalanced brackets are an error.
fn split_outside_brackets(text: &str) -> Result<Vec<&str>, String> {
    let mut pieces = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (at, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => {
                return Err(format!(
                    "']' without '[' in '{text}'; a list value goes in square brackets, e.g. \
                     cleanup.policy=[compact,delete]"
                ))
            }
            ']' => depth -= 1,
            ',' if depth == 0 => {
                pieces.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(format!(
            "'[' without ']' in '{text}'; a list value goes in square brackets, e.g. \
             cleanup.policy=[compact,delete]"
        ));
    }
    pieces.push(&text[start..]);
    Ok(pieces)
}

/// `KEY[,KEY...]` for `--delete-config`.
fn parse_key_list(text: &str) -> Result<KeyList, String> {
    let keys: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err("names no config; give its name, e.g. --delete-config retention.ms".into());
    }
    if let Some(key) = keys.iter().find(|k| k.contains('=')) {
        return Err(format!(
            "'{key}' is not a config name; --delete-config takes names only, e.g. \
             --delete-config retention.ms"
        ));
    }
    Ok(KeyList(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_parse(args: &[&str]) -> Result<ConfigArgs, clap::Error> {
        let mut argv = vec!["spate", "config"];
        argv.extend_from_slice(args);
        crate::cli::parse_subcommand(&argv)
    }

    fn alter(args: &[&str]) -> AlterArgs {
        let mut argv = vec!["alter"];
        argv.extend_from_slice(args);
        match try_parse(&argv).unwrap().command {
            ConfigCommand::Alter(alter) => alter,
            ConfigCommand::Describe(_) => panic!("not an alter"),
        }
    }

    fn describe_target(args: &[&str]) -> Result<ConfigResource, String> {
        let mut argv = vec!["describe"];
        argv.extend_from_slice(args);
        match try_parse(&argv).unwrap().command {
            ConfigCommand::Describe(describe) => describe.target.resource(),
            ConfigCommand::Alter(_) => panic!("not a describe"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> ConfigList {
        ConfigList(
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn exactly_one_target_is_named() {
        assert_eq!(
            describe_target(&["--broker", "1"]),
            Ok(ConfigResource::Broker(1))
        );
        assert_eq!(
            describe_target(&["--broker-defaults"]),
            Ok(ConfigResource::BrokerDefaults)
        );
        assert_eq!(
            describe_target(&["--topic", "t", "--all"]),
            Ok(ConfigResource::Topic("t".into()))
        );
        let error = describe_target(&[]).unwrap_err();
        assert!(error.starts_with("no config target given"), "{error}");
        assert!(error.contains("--broker-defaults"), "{error}");
        let error = describe_target(&["--broker", "1", "--topic", "t"]).unwrap_err();
        assert!(
            error.starts_with("--broker and --topic given together: use exactly one of"),
            "{error}"
        );
        let error = describe_target(&["--broker-defaults", "--topic", "t"]).unwrap_err();
        assert!(
            error.starts_with("--broker-defaults and --topic"),
            "{error}"
        );
        let error = describe_target(&["--topic", " "]).unwrap_err();
        assert!(error.contains("names no topic"), "{error}");
        let error = try_parse(&["describe", "--broker", ""]).err().unwrap();
        assert!(error.to_string().contains("--broker-defaults"), "{error}");
        assert!(try_parse(&["describe", "--broker", "-1"]).is_err());
        assert!(try_parse(&["describe", "--broker", "x"]).is_err());
        let args = try_parse(&["describe", "--broker", "1", "-b", "h:1"]).unwrap();
        assert_eq!(args.connect.bootstrap_server, "h:1");
    }

    #[test]
    fn config_lists_split_at_commas_outside_brackets() {
        assert_eq!(
            parse_config_list("a=1, b = 2 ,c="),
            Ok(pairs(&[("a", "1"), ("b", "2"), ("c", "")]))
        );
        assert_eq!(
            parse_config_list("cleanup.policy=[compact,delete],retention.ms=5"),
            Ok(pairs(&[
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", "5")
            ]))
        );
        assert_eq!(
            parse_config_list("cleanup.policy=[ compact , delete ]"),
            Ok(pairs(&[("cleanup.policy", "compact , delete")]))
        );
        assert_eq!(
            parse_config_list("x=[]"),
            Ok(pairs(&[("x", "")])),
            "brackets around nothing: the empty list"
        );
        assert_eq!(
            parse_config_list("sasl.jaas.config=[a required u=\"x\",p=\"y\";]"),
            Ok(pairs(&[(
                "sasl.jaas.config",
                "a required u=\"x\",p=\"y\";"
            )]))
        );
        assert_eq!(
            parse_config_list("a=b=c,"),
            Ok(pairs(&[("a", "b=c")])),
            "the first '=' ends the key; a trailing comma is harmless"
        );
        let error = parse_config_list("cleanup.policy=compact,delete").unwrap_err();
        assert!(error.starts_with("'delete' is not KEY=VALUE"), "{error}");
        assert!(error.contains("[compact,delete]"), "{error}");
        assert!(parse_config_list("a=[1,2")
            .unwrap_err()
            .starts_with("'[' without ']'"));
        assert!(parse_config_list("a=1]")
            .unwrap_err()
            .starts_with("']' without '['"));
        assert!(parse_config_list("=1")
            .unwrap_err()
            .contains("names no config"));
        assert!(parse_config_list(" , ")
            .unwrap_err()
            .contains("names no config"));
    }

    #[test]
    fn key_lists_split_at_commas() {
        assert_eq!(
            parse_key_list("a, b,"),
            Ok(KeyList(vec!["a".into(), "b".into()]))
        );
        assert!(parse_key_list("").unwrap_err().contains("names no config"));
        assert!(parse_key_list("a=1")
            .unwrap_err()
            .contains("takes names only"));
    }

    #[test]
    fn alter_collects_every_operation_in_order() {
        let args = alter(&[
            "--broker-defaults",
            "--subtract-config",
            "log.cleanup.policy=delete",
            "--add-config",
            "log.retention.ms=5,num.io.threads=4",
            "--delete-config",
            "log.segment.bytes",
            "--append-config",
            "metric.reporters=[a,b]",
            "--add-config",
            "message.max.bytes=100",
            "--validate-only",
        ]);
        assert!(args.validate_only);
        assert_eq!(args.target.resource(), Ok(ConfigResource::BrokerDefaults));
        let changes = changes(&args).unwrap();
        let summary: Vec<(&str, ConfigOp, Option<&str>)> = changes
            .iter()
            .map(|c| (c.name.as_str(), c.op, c.value.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("log.retention.ms", ConfigOp::Set, Some("5")),
                ("num.io.threads", ConfigOp::Set, Some("4")),
                ("message.max.bytes", ConfigOp::Set, Some("100")),
                ("log.segment.bytes", ConfigOp::Delete, None),
                ("metric.reporters", ConfigOp::Append, Some("a,b")),
                ("log.cleanup.policy", ConfigOp::Subtract, Some("delete")),
            ]
        );
    }

    #[test]
    fn alter_refuses_nothing_to_do_and_a_config_named_twice() {
        let error = changes(&alter(&["--topic", "t"])).unwrap_err();
        assert!(error.starts_with("nothing to alter"), "{error}");
        let error = changes(&alter(&[
            "--topic",
            "t",
            "--add-config",
            "retention.ms=5",
            "--delete-config",
            "retention.ms",
        ]))
        .unwrap_err();
        assert_eq!(
            error,
            "config 'retention.ms' is named by both --add-config and --delete-config; name \
             each config once per alter"
        );
        let error = changes(&alter(&["--topic", "t", "--add-config", "a=1,a=2"])).unwrap_err();
        assert!(
            error.contains("'a' is named twice by --add-config"),
            "{error}"
        );
        assert!(try_parse(&["alter", "--topic", "t", "--add-config", "a"]).is_err());
    }

    fn entry(name: &str, value: Option<&str>, source: i8) -> DescribeConfigsResourceResult {
        DescribeConfigsResourceResult::default()
            .with_name(name.to_string().into())
            .with_value(value.map(|v| v.to_string().into()))
            .with_config_source(source)
    }

    #[test]
    fn describe_prints_sorted_lines_with_kafkas_source_names() {
        let entries = vec![
            entry("num.io.threads", Some("4"), 2),
            entry("log.retention.ms", Some("123456"), 3),
            entry("group.max.size", Some("2147483647"), 5).with_read_only(true),
            entry("log.dirs", Some("/d"), 4).with_read_only(true),
            entry("ssl.key.password", None, 2).with_is_sensitive(true),
            entry("log.roll.ms", None, 5),
        ];
        assert_eq!(
            describe_lines(&entries, false),
            "log.dirs=/d (STATIC_BROKER_CONFIG, read-only)\n\
             log.retention.ms=123456 (DYNAMIC_DEFAULT_BROKER_CONFIG)\n\
             num.io.threads=4 (DYNAMIC_BROKER_CONFIG)\n\
             ssl.key.password=(sensitive) (DYNAMIC_BROKER_CONFIG)\n"
        );
        let all = describe_lines(&entries, true);
        assert!(
            all.starts_with("group.max.size=2147483647 (DEFAULT_CONFIG, read-only)\n"),
            "{all}"
        );
        assert!(all.contains("log.roll.ms=null (DEFAULT_CONFIG)\n"), "{all}");
        assert_eq!(all.lines().count(), 6);
        assert_eq!(
            describe_lines(&[entry("retention.ms", Some("5"), 1)], false),
            "retention.ms=5 (DYNAMIC_TOPIC_CONFIG)\n"
        );
        assert_eq!(source_name(0), "UNKNOWN");
    }

    #[test]
    fn alter_reports_each_config_before_and_after() {
        let changes = [
            ConfigChange::new("num.io.threads", ConfigOp::Set, Some("4")),
            ConfigChange::new("log.retention.ms", ConfigOp::Delete, None),
            ConfigChange::new("background.threads", ConfigOp::Set, Some("10")),
        ];
        let before = vec![
            entry("num.io.threads", Some("8"), 5),
            entry("log.retention.ms", Some("5"), 2),
            entry("background.threads", Some("10"), 5),
        ];
        let after = vec![
            entry("num.io.threads", Some("4"), 2),
            entry("background.threads", Some("10"), 5),
        ];
        let report = alter_report(
            &ConfigResource::Broker(1),
            &changes,
            false,
            Some(before.clone()),
            Some(after),
        );
        assert_eq!(
            report,
            "Completed updating config for broker 1:\n\
             \x20 num.io.threads: 8 (DEFAULT_CONFIG) -> 4 (DYNAMIC_BROKER_CONFIG)\n\
             \x20 log.retention.ms: 5 (DYNAMIC_BROKER_CONFIG) -> (not set)\n\
             \x20 background.threads: unchanged, 10 (DEFAULT_CONFIG)\n"
        );
        // Validation, or no describe: the changes asked for, secrets hidden.
        let changes = [
            ConfigChange::new("cleanup.policy", ConfigOp::Append, Some("compact")),
            ConfigChange::new("segment.ms", ConfigOp::Delete, None),
            ConfigChange::new("secret", ConfigOp::Set, Some("hunter2")),
            ConfigChange::new("cleanup.x", ConfigOp::Subtract, Some("delete")),
        ];
        let before = vec![entry("secret", None, 2).with_is_sensitive(true)];
        let report = alter_report(
            &ConfigResource::BrokerDefaults,
            &changes,
            true,
            Some(before),
            None,
        );
        assert_eq!(
            report,
            "Validated updating default config for brokers in the cluster; nothing was changed \
             (--validate-only):\n\
             \x20 append compact to cleanup.policy\n\
             \x20 delete segment.ms\n\
             \x20 set secret=(sensitive)\n\
             \x20 subtract delete from cleanup.x\n"
        );
        let subtract = [ConfigChange::new(
            "cleanup.policy",
            ConfigOp::Subtract,
            Some("compact,delete"),
        )];
        let report = alter_report(
            &ConfigResource::Topic("t".into()),
            &subtract,
            false,
            Some(vec![entry("cleanup.policy", Some("compact,delete"), 1)]),
            Some(vec![entry("cleanup.policy", Some(""), 1)]),
        );
        assert_eq!(
            report,
            "Completed updating config for topic t:\n  cleanup.policy: compact,delete \
             (DYNAMIC_TOPIC_CONFIG) -> \"\" (DYNAMIC_TOPIC_CONFIG)\n",
            "the empty list shows as \"\""
        );
        let report = alter_report(
            &ConfigResource::Topic("t".into()),
            &changes[1..2],
            false,
            None,
            None,
        );
        assert_eq!(
            report,
            "Completed updating config for topic t:\n  delete segment.ms\n"
        );
    }
}
