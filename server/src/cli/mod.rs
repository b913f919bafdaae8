//! The console tools: each subcommand in its own file, plus what they share.
pub mod cluster;
pub mod config;
pub mod consume;
pub mod dev_cluster;
pub mod group;
pub mod leaders;
pub mod partitioner;
pub mod produce;
pub mod records;
pub mod topic;

use crate::client::DEFAULT_BOOTSTRAP;
use clap::Args;
use std::io::{self, Write};

/// Where to find the cluster; every console tool takes it.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The broker to connect to first (HOST:PORT; a comma-separated list is tried in order).
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        value_name = "HOST:PORT",
        default_value = DEFAULT_BOOTSTRAP,
        global = true
    )]
    pub bootstrap_server: String,
}

/// What a failed write to standard output means: a closed pipe (`| head -1`) ends the command
/// quietly; anything else is an error.
pub enum OutputError {
    Closed,
    Failed(String),
}

impl From<io::Error> for OutputError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            OutputError::Closed
        } else {
            OutputError::Failed(format!("cannot write to standard output: {e}"))
        }
    }
}

/// Writes `text` to standard output and flushes it.
pub fn print_stdout(text: &[u8]) -> Result<(), String> {
    let mut out = io::stdout().lock();
    let result = out.write_all(text).and_then(|()| out.flush());
    match result.map_err(OutputError::from) {
        Ok(()) | Err(OutputError::Closed) => Ok(()),
        Err(OutputError::Failed(message)) => Err(message),
    }
}

/// Whether standard output is a pipe whose reader is gone (`| head -1` has exited). A consumer
/// waiting for records would otherwise notice only at its next write, which may never come.
pub fn stdout_closed() -> bool {
    let mut poll_fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0, // POLLERR and POLLHUP are reported regardless
        revents: 0,
    };
    // SAFETY: one valid, initialised pollfd and a zero timeout.
    let ready = unsafe { libc::poll(&mut poll_fd, 1, 0) };
    ready > 0 && poll_fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// `--property KEY=VALUE`, as Kafka's console tools take their reader and formatter settings.
pub fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "expected KEY=VALUE, e.g. --property parse.key=true, got '{text}'"
        )),
    }
}

/// A true/false property value, read as Kafka does (trimmed, any case).
pub fn property_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "--property {key}={value}: expected true or false, e.g. --property {key}=true"
        )),
    }
}

/// The error for a property this tool does not know, naming the ones it does.
pub fn unknown_property(tool: &str, key: &str, known: &[&str]) -> String {
    format!(
        "unknown property '{key}' for spate {tool}; the properties it knows are {}",
        known.join(", ")
    )
}

/// Tests: `argv` (`spate <name> ...`) parsed as the CLI parses subcommand `name`'s arguments.
#[cfg(test)]
pub fn parse_subcommand<A: clap::Args + clap::FromArgMatches>(
    argv: &[&str],
) -> Result<A, clap::Error> {
    // (A test's few names leak; clap wants them for the program's life.)
    let name: &'static str = Box::leak(argv.get(1).copied().unwrap_or_default().into());
    let command = clap::Command::new("spate").subcommand(A::augment_args(clap::Command::new(name)));
    let matches = command.try_get_matches_from(argv)?;
    let (_, sub) = matches.subcommand().expect("a subcommand is required");
    A::from_arg_matches(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_property("key.separator=="),
            Ok(("key.separator".into(), "=".into()))
        );
        assert_eq!(
            parse_property(" parse.key =true"),
            Ok(("parse.key".into(), "true".into()))
        );
        assert_eq!(
            parse_property("null.literal="),
            Ok(("null.literal".into(), String::new()))
        );
        assert!(parse_property("parse.key")
            .unwrap_err()
            .contains("KEY=VALUE"));
        assert!(parse_property("=x").is_err());
    }

    #[test]
    fn booleans_read_like_kafka_and_refuse_the_rest() {
        assert_eq!(property_bool("print.key", "true"), Ok(true));
        assert_eq!(property_bool("print.key", " TRUE "), Ok(true));
        assert_eq!(property_bool("print.key", "False"), Ok(false));
        let error = property_bool("print.key", "yes").unwrap_err();
        assert!(error.contains("print.key=yes"), "{error}");
        assert!(error.contains("true or false"), "{error}");
    }

    #[test]
    fn unknown_properties_name_the_known_ones() {
        let error = unknown_property("produce", "parse.keys", &["parse.key", "key.separator"]);
        assert_eq!(
            error,
            "unknown property 'parse.keys' for spate produce; the properties it knows are \
             parse.key, key.separator"
        );
    }
}
