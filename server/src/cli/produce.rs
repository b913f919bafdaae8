//! `spate produce`: one record per line of standard input, after `kafka-console-producer.sh`.
//!
//! Records are batched per partition and sent when a partition's batch is full, or when standard
//! input has nothing more buffered (so an interactive line goes out at once, while piped input
//! travels in full batches).

use super::leaders::{by_leader, is_settling, Cluster, PartitionLeader};
use super::partitioner::{partition_for_key, Sticky};
use super::records::{encode_batch, Line};
use super::{parse_property, property_bool, unknown_property, ConnectArgs};
use crate::client::{kafka_error, topic_error_text};
use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A partition's batch is also cut when its keys and values reach this many bytes, which leaves
/// room for the batch's own overhead under the broker's default max.message.bytes (1 MiB).
const BATCH_BYTES_MAX: usize = 512 * 1024;
/// Longer lines are refused rather than buffered without bound.
const LINE_BYTES_MAX: usize = 32 * 1024 * 1024;
const STDIN_BUFFER_BYTES: usize = 64 * 1024;
/// Sends refused with a leadership error are retried this often after a metadata refresh.
const SEND_ATTEMPTS_MAX: u32 = 5;
const RETRY_BACKOFF: Duration = Duration::from_millis(250);

#[derive(Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic to produce to.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Split each line at the first SEP into key and value (a line without SEP is an error).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A Kafka console-producer property: parse.key=true splits keys off at key.separator
    /// (default tab), as --key-separator does (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Send every record to this partition (default: by key hash, keyless records spread).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Acknowledgements to wait for: all (= -1), 1 (the leader) or 0 (none).
    #[arg(
        long,
        value_name = "all|-1|1|0",
        default_value = "all",
        allow_hyphen_values = true,
        value_parser = parse_acks
    )]
    acks: i16,
    /// Most records per partition in one batch.
    #[arg(long, value_name = "N", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch_size: u32,
}

/// The properties `--property` takes, as Kafka's console producer (LineMessageReader) names
/// them.
const PROPERTIES: &[&str] = &["parse.key", "key.separator"];
/// Kafka's default key.separator.
const DEFAULT_KEY_SEPARATOR: &str = "\t";

/// How lines split into key and value: the separator, or `None` for value-only lines, and a
/// note for standard error when a setting has no effect.
fn key_separator(args: &ProduceArgs) -> Result<(Option<Vec<u8>>, Option<String>), String> {
    let mut parse_key = None;
    let mut property_separator = None;
    for (key, value) in &args.properties {
        match key.as_str() {
            "parse.key" => parse_key = Some(property_bool(key, value)?),
            "key.separator" => property_separator = Some(value.as_str()),
            _ => return Err(unknown_property("produce", key, PROPERTIES)),
        }
    }
    if property_separator == Some("") {
        return Err(
            "--property key.separator= is empty; give the separator, e.g. --property \
             key.separator=:"
                .into(),
        );
    }
    let separator = match (&args.key_separator, parse_key, property_separator) {
        (Some(sep), _, _) if sep.is_empty() => {
            return Err(
                "--key-separator must not be empty; give the separator, e.g. \
                        --key-separator :"
                    .into(),
            )
        }
        (Some(_), Some(false), _) => {
            return Err(
                "--key-separator splits keys but --property parse.key=false says not \
                        to; drop one of them"
                    .into(),
            )
        }
        (Some(sep), _, Some(other)) if sep != other => {
            return Err(format!(
                "--key-separator '{sep}' and --property key.separator={other} disagree; give \
                 one of them"
            ))
        }
        (Some(sep), _, _) => Some(sep.as_str()),
        (None, Some(true), sep) => Some(sep.unwrap_or(DEFAULT_KEY_SEPARATOR)),
        (None, _, Some(sep)) => {
            let note = format!(
                "note: --property key.separator={sep} has no effect without --property \
                 parse.key=true; lines are sent whole as values"
            );
            return Ok((None, Some(note)));
        }
        (None, _, None) => None,
    };
    Ok((separator.map(|sep| sep.as_bytes().to_vec()), None))
}

pub fn run(args: ProduceArgs) -> Result<(), String> {
    let (separator, note) = key_separator(&args)?;
    if let Some(note) = note {
        eprintln!("spate: {note}");
    }
    let mut cluster = Cluster::connect(&args.connect.bootstrap_server)?;
    let partitions = cluster.partitions(&args.topic, true)?;
    if let Some(partition) = args.partition {
        check_partition_exists(&args.topic, partition, &partitions)?;
    }
    let mut producer = Producer {
        cluster,
        topic: args.topic,
        partitions,
        fixed_partition: args.partition,
        acks: args.acks,
        batch_size: args.batch_size as usize,
        pending: BTreeMap::new(),
        sticky: Sticky::new(0),
    };
    let mut input = BufReader::with_capacity(STDIN_BUFFER_BYTES, io::stdin());
    let mut line = Vec::new();
    let mut line_number: u64 = 0;
    loop {
        line.clear();
        let limit = LINE_BYTES_MAX as u64 + 2; // room for "\r\n"
        let read = (&mut input)
            .take(limit)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        if read == 0 {
            break;
        }
        line_number += 1;
        let parsed = parse_line(&line, separator.as_deref(), line_number);
        let record = match parsed {
            Ok(record) => record,
            Err(e) => {
                // Everything before the bad line is sent; nothing after it.
                producer.flush()?;
                return Err(e);
            }
        };
        producer.add(record)?;
        if input.buffer().is_empty() {
            producer.flush()?;
        }
    }
    producer.flush()
}

fn check_partition_exists(
    topic: &str,
    partition: i32,
    partitions: &[PartitionLeader],
) -> Result<(), String> {
    if partitions.iter().any(|p| p.partition == partition) {
        return Ok(());
    }
    Err(format!(
        "partition {partition} does not exist in topic '{topic}' (it has {} partitions, 0 to {})",
        partitions.len(),
        partitions.len() as i64 - 1
    ))
}

/// Strips the line end and splits key from value.
fn parse_line(line: &[u8], separator: Option<&[u8]>, line_number: u64) -> Result<Line, String> {
    let mut text = line;
    if let Some(rest) = text.strip_suffix(b"\n") {
        text = rest.strip_suffix(b"\r").unwrap_or(rest);
    } else if text.len() > LINE_BYTES_MAX {
        return Err(format!(
            "line {line_number} is longer than {LINE_BYTES_MAX} bytes; split it or send it \
             another way"
        ));
    }
    let Some(separator) = separator else {
        return Ok(Line {
            key: None,
            value: Some(Bytes::copy_from_slice(text)),
        });
    };
    let at = find(text, separator).ok_or_else(|| {
        format!(
            "line {line_number} has no key separator '{}' (when keys are parsed every line must \
             be KEY{}VALUE)",
            String::from_utf8_lossy(separator).escape_debug(),
            String::from_utf8_lossy(separator).escape_debug()
        )
    })?;
    Ok(Line {
        key: Some(Bytes::copy_from_slice(&text[..at])),
        value: Some(Bytes::copy_from_slice(&text[at + separator.len()..])),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "all" | "-1" => Ok(-1),
        "1" => Ok(1),
        "0" => Ok(0),
        _ => Err(format!("expected all, -1, 1 or 0, got '{text}'")),
    }
}

struct PendingBatch {
    lines: Vec<Line>,
    bytes: usize,
}

struct Producer {
    cluster: Cluster,
    topic: String,
    partitions: Vec<PartitionLeader>,
    fixed_partition: Option<i32>,
    acks: i16,
    batch_size: usize,
    pending: BTreeMap<i32, PendingBatch>,
    sticky: Sticky,
}

impl Producer {
    fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    fn choose_partition(&self, line: &Line) -> i32 {
        let count = self.partition_count();
        match (self.fixed_partition, &line.key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => self.sticky.partition(count),
        }
    }

    fn add(&mut self, line: Line) -> Result<(), String> {
        let partition = self.choose_partition(&line);
        let size =
            line.key.as_ref().map_or(0, Bytes::len) + line.value.as_ref().map_or(0, Bytes::len);
        // A record that would take the batch past the byte bound starts the next batch.
        let overflows = self
            .pending
            .get(&partition)
            .is_some_and(|batch| batch.bytes + size > BATCH_BYTES_MAX);
        if overflows {
            self.send(&[partition])?;
        }
        let batch = self
            .pending
            .entry(partition)
            .or_insert_with(|| PendingBatch {
                lines: Vec::new(),
                bytes: 0,
            });
        batch.lines.push(line);
        batch.bytes += size;
        if batch.lines.len() >= self.batch_size {
            self.send(&[partition])?;
        }
        Ok(())
    }

    /// Sends every pending batch.
    fn flush(&mut self) -> Result<(), String> {
        let partitions: Vec<i32> = self.pending.keys().copied().collect();
        if partitions.is_empty() {
            return Ok(());
        }
        self.send(&partitions)
    }

    /// Sends the pending batches of `partitions`, one Produce request per leader, retrying
    /// those the broker refused because leadership moved.
    fn send(&mut self, partitions: &[i32]) -> Result<(), String> {
        let sticky = self.sticky.partition(self.partition_count());
        if partitions.contains(&sticky) {
            self.sticky.on_batch_sent(self.partition_count());
        }
        let mut remaining: Vec<i32> = partitions.to_vec();
        for attempt in 1..=SEND_ATTEMPTS_MAX {
            let mut refused = Vec::new();
            let leaders: BTreeMap<i32, i32> = self
                .partitions
                .iter()
                .map(|p| (p.partition, p.leader))
                .collect();
            let groups = by_leader(
                &remaining
                    .iter()
                    .map(|&partition| PartitionLeader {
                        partition,
                        leader: leaders.get(&partition).copied().unwrap_or(-1),
                    })
                    .collect::<Vec<_>>(),
            );
            for (leader, group) in groups {
                refused.extend(self.send_to_leader(leader, &group, attempt)?);
            }
            if refused.is_empty() {
                return Ok(());
            }
            thread::sleep(RETRY_BACKOFF);
            self.partitions = self.cluster.partitions(&self.topic, false)?;
            remaining = refused;
        }
        unreachable!("the last attempt refuses nothing: it succeeds or fails")
    }

    /// Sends to one leader; returns the partitions refused with a leadership error (their
    /// batches stay pending) when another attempt is allowed.
    fn send_to_leader(
        &mut self,
        leader: i32,
        partitions: &[i32],
        attempt: u32,
    ) -> Result<Vec<i32>, String> {
        let timestamp_ms = now_ms();
        let mut record_sets = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            let batch = &self.pending[&partition];
            record_sets.push((partition, encode_batch(&batch.lines, timestamp_ms)?));
        }
        let topic = self.topic.clone();
        let client = self.cluster.leader(leader)?;
        let response = client.produce(&topic, self.acks, record_sets);
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                self.cluster.forget(leader);
                return Err(e);
            }
        };
        let mut refused = Vec::new();
        for &partition in partitions {
            if let Some(response) = &response {
                let error_code = partition_result(response, &topic, partition)?;
                if is_settling(error_code) {
                    if attempt < SEND_ATTEMPTS_MAX {
                        refused.push(partition);
                        continue;
                    }
                    let what = format!(
                        "cannot produce to partition {topic}-{partition}: its leader did not \
                         settle within {SEND_ATTEMPTS_MAX} attempts"
                    );
                    return Err(kafka_error(error_code, &what, None));
                }
            }
            self.pending.remove(&partition);
        }
        Ok(refused)
    }
}

/// The error code the broker gave `partition`; an error if it is a final one.
fn partition_result(
    response: &ProduceResponse,
    topic: &str,
    partition: i32,
) -> Result<i16, String> {
    let answer = response
        .responses
        .iter()
        .filter(|t| t.name.as_str() == topic)
        .flat_map(|t| &t.partition_responses)
        .find(|p| p.index == partition)
        .ok_or_else(|| {
            format!("the broker's Produce response does not mention partition {topic}-{partition}")
        })?;
    let code = answer.error_code;
    if code == 0 || is_settling(code) {
        return Ok(code);
    }
    let what = match ResponseError::try_from_code(code) {
        Some(ResponseError::UnknownTopicOrPartition) => {
            topic_error_text(code, topic, "cannot produce to")
        }
        _ => format!("cannot produce to partition {topic}-{partition}"),
    };
    let mut broker_message = answer.error_message.as_deref().unwrap_or("").to_string();
    for record_error in &answer.record_errors {
        if let Some(message) = &record_error.batch_index_error_message {
            let index = record_error.batch_index;
            broker_message.push_str(&format!(" record {index}: {}", message.as_str()));
        }
    }
    Err(kafka_error(code, &what, Some(&broker_message)))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    fn parse(args: &[&str]) -> Result<ProduceArgs, clap::Error> {
        crate::cli::parse_subcommand(args)
    }

    fn value(line: &Line) -> &[u8] {
        line.value.as_deref().unwrap()
    }

    #[test]
    fn line_ends_are_stripped_and_empty_lines_are_empty_values() {
        assert_eq!(value(&parse_line(b"hello\n", None, 1).unwrap()), b"hello");
        assert_eq!(value(&parse_line(b"hello\r\n", None, 1).unwrap()), b"hello");
        assert_eq!(value(&parse_line(b"last", None, 1).unwrap()), b"last");
        assert_eq!(value(&parse_line(b"\n", None, 1).unwrap()), b"");
        assert_eq!(value(&parse_line(b"a\rb\n", None, 1).unwrap()), b"a\rb");
        assert_eq!(parse_line(b"x\n", None, 1).unwrap().key, None);
    }

    #[test]
    fn key_is_before_the_first_separator() {
        let line = parse_line(b"k1:v:1\n", Some(b":"), 1).unwrap();
        assert_eq!(line.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(value(&line), b"v:1");
        let line = parse_line(b"::\n", Some(b"::"), 1).unwrap();
        assert_eq!(line.key.as_deref(), Some(&b""[..]));
        assert_eq!(value(&line), b"");
        let line = parse_line(b"key=>value\r\n", Some(b"=>"), 1).unwrap();
        assert_eq!(line.key.as_deref(), Some(&b"key"[..]));
        assert_eq!(value(&line), b"value");
    }

    #[test]
    fn a_line_without_the_separator_names_its_number() {
        let error = parse_line(b"no separator\n", Some(b"\t"), 7).err().unwrap();
        assert!(error.contains("line 7"), "{error}");
        assert!(error.contains("'\\t'"), "{error}");
    }

    #[test]
    fn acks_accept_kafkas_spellings() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("-1"), Ok(-1));
        assert_eq!(parse_acks("1"), Ok(1));
        assert_eq!(parse_acks("0"), Ok(0));
        assert!(parse_acks("2").is_err());
    }

    #[test]
    fn arguments_parse_with_defaults() {
        let args = parse(&["spate", "produce", "--topic", "t"]).unwrap();
        assert_eq!(
            (args.acks, args.batch_size, args.partition),
            (-1, 500, None)
        );
        assert_eq!(args.key_separator, None);
        assert_eq!(args.connect.bootstrap_server, "127.0.0.1:9092");
        let args = parse(&[
            "spate",
            "produce",
            "--topic",
            "t",
            "--acks",
            "-1",
            "--partition",
            "2",
            "--key-separator",
            ":",
            "--batch-size",
            "10",
            "--bootstrap-server",
            "h:1",
        ])
        .unwrap();
        assert_eq!(
            (args.acks, args.batch_size, args.partition),
            (-1, 10, Some(2))
        );
        assert_eq!(args.key_separator.as_deref(), Some(":"));
        assert_eq!(
            parse(&["spate", "produce", "--topic", "t", "--acks", "0"])
                .unwrap()
                .acks,
            0
        );
        assert!(parse(&["spate", "produce"]).is_err());
        assert!(parse(&["spate", "produce", "--topic", "t", "--batch-size", "0"]).is_err());
        assert!(parse(&["spate", "produce", "--topic", "t", "--acks", "2"]).is_err());
    }

    #[test]
    fn missing_partition_is_named() {
        let partitions = [PartitionLeader {
            partition: 0,
            leader: 1,
        }];
        let error = check_partition_exists("t", 3, &partitions).unwrap_err();
        assert!(
            error.contains("partition 3 does not exist in topic 't'"),
            "{error}"
        );
        assert!(check_partition_exists("t", 0, &partitions).is_ok());
    }

    #[test]
    fn produce_errors_carry_the_kafka_name() {
        let response =
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_name(crate::client::topic_name("t"))
                .with_partition_responses(vec![
                    PartitionProduceResponse::default().with_index(0),
                    PartitionProduceResponse::default()
                        .with_index(1)
                        .with_error_code(ResponseError::MessageTooLarge.code()),
                    PartitionProduceResponse::default()
                        .with_index(2)
                        .with_error_code(ResponseError::NotLeaderOrFollower.code()),
                ])]);
        assert_eq!(partition_result(&response, "t", 0), Ok(0));
        let error = partition_result(&response, "t", 1).unwrap_err();
        assert!(
            error.starts_with("MESSAGE_TOO_LARGE: cannot produce to partition t-1"),
            "{error}"
        );
        assert_eq!(partition_result(&response, "t", 2), Ok(6));
        assert!(partition_result(&response, "t", 3).is_err());
    }

    fn separator_of(args: &[&str]) -> Result<(Option<Vec<u8>>, Option<String>), String> {
        let mut argv = vec!["spate", "produce", "--topic", "t"];
        argv.extend_from_slice(args);
        key_separator(&parse(&argv).unwrap())
    }

    #[test]
    fn parse_key_property_is_an_equivalent_of_key_separator() {
        let colon = Some(b":".to_vec());
        assert_eq!(
            separator_of(&["--key-separator", ":"]),
            Ok((colon.clone(), None))
        );
        assert_eq!(
            separator_of(&[
                "--property",
                "parse.key=true",
                "--property",
                "key.separator=:"
            ]),
            Ok((colon.clone(), None))
        );
        assert_eq!(
            separator_of(&[
                "--property",
                "key.separator=:",
                "--property",
                "parse.key=TRUE"
            ]),
            Ok((colon.clone(), None))
        );
        assert_eq!(
            separator_of(&["--property", "parse.key=true"]),
            Ok((Some(b"\t".to_vec()), None)),
            "Kafka's default separator is a tab"
        );
        assert_eq!(
            separator_of(&["--key-separator", ":", "--property", "key.separator=:"]),
            Ok((colon, None))
        );
        assert_eq!(separator_of(&[]), Ok((None, None)));
        assert_eq!(
            separator_of(&["--property", "parse.key=false"]),
            Ok((None, None))
        );
    }

    #[test]
    fn a_separator_without_parse_key_is_noted() {
        let (separator, note) = separator_of(&["--property", "key.separator=:"]).unwrap();
        assert_eq!(separator, None);
        assert!(note.unwrap().contains("parse.key=true"));
    }

    #[test]
    fn bad_or_conflicting_properties_are_named() {
        let error = separator_of(&["--property", "parse.keys=true"]).unwrap_err();
        assert!(error.contains("unknown property 'parse.keys'"), "{error}");
        assert!(error.contains("parse.key, key.separator"), "{error}");
        let error = separator_of(&["--property", "parse.key=yes"]).unwrap_err();
        assert!(error.contains("true or false"), "{error}");
        let error =
            separator_of(&["--key-separator", ":", "--property", "key.separator=;"]).unwrap_err();
        assert!(error.contains("disagree"), "{error}");
        let error =
            separator_of(&["--key-separator", ":", "--property", "parse.key=false"]).unwrap_err();
        assert!(error.contains("drop one"), "{error}");
        let error = separator_of(&[
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=",
        ])
        .unwrap_err();
        assert!(error.contains("empty"), "{error}");
        assert!(separator_of(&["--key-separator", ""]).is_err());
        assert!(parse(&[
            "spate",
            "produce",
            "--topic",
            "t",
            "--property",
            "parse.key"
        ])
        .is_err());
    }
}
