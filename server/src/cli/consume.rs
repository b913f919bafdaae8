//! `spate consume`: print a topic's records, one per line, after `kafka-console-consumer.sh`.
//!
//! Reads every partition (or one) from a start offset resolved once (ListOffsets for earliest
//! and latest), fetching from each partition's leader with a 500 ms wait, and stops after
//! `--max-messages` records or `--timeout-ms` without a new one; otherwise runs until killed.

use super::leaders::{by_leader, is_settling, Cluster, PartitionLeader};
use super::records::decode_fetched;
use super::{
    parse_property, property_bool, stdout_closed, unknown_property, ConnectArgs, OutputError,
};
use crate::client::{error_name, kafka_error, topic_error_text, Client};
use clap::Args;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::records::{Record, TimestampType};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, StdoutLock, Write};
use std::thread;
use std::time::{Duration, Instant};

const FETCH_WAIT_MS_MAX: u64 = 500;
/// Kafka's defaults: fetch.max.bytes and max.partition.fetch.bytes.
const FETCH_BYTES_MAX: i32 = 50 * 1024 * 1024;
const PARTITION_FETCH_BYTES_START: i32 = 1024 * 1024;
/// Consecutive rounds in which some partition's leader was unavailable before giving up.
const UNSETTLED_ROUNDS_MAX: u32 = 50;
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
const LIST_OFFSETS_LATEST: i64 = -1;
const LIST_OFFSETS_EARLIEST: i64 = -2;

#[derive(Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic to consume.
    #[arg(long, value_name = "TOPIC")]
    topic: String,
    /// Start at the earliest offset instead of the latest.
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Read only this partition (default: all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    partition: Option<i32>,
    /// Where to start in each partition read: an offset, earliest or latest (default: latest).
    #[arg(long, value_name = "N|earliest|latest", value_parser = parse_start)]
    offset: Option<Start>,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// Print each record's key before its value (null keys print `null`).
    #[arg(long)]
    print_key: bool,
    /// Print each record's timestamp first, as CreateTime:<ms>.
    #[arg(long)]
    print_timestamp: bool,
    /// Print each record's partition, as Partition:<p>.
    #[arg(long)]
    print_partition: bool,
    /// What separates the printed fields (timestamp, partition, key, value) [default: tab].
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A Kafka console-consumer formatter property, e.g. --property print.key=true (repeatable):
    /// print.key, print.value, print.timestamp, print.partition, print.offset, print.headers,
    /// key.separator, line.separator, headers.separator, null.literal.
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = parse_property)]
    properties: Vec<(String, String)>,
    /// Exit when no record arrived for this long.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Earliest,
    Latest,
    Offset(i64),
}

fn parse_start(text: &str) -> Result<Start, String> {
    match text {
        "earliest" => Ok(Start::Earliest),
        "latest" => Ok(Start::Latest),
        _ => match text.parse::<i64>() {
            Ok(offset) if offset >= 0 => Ok(Start::Offset(offset)),
            _ => Err(format!(
                "expected an offset (0 or more), earliest or latest, got '{text}'"
            )),
        },
    }
}

/// Where reading continues in one partition.
#[derive(Debug, Clone, Copy)]
struct Position {
    offset: i64,
    /// Grows when a single batch does not fit in a fetch.
    fetch_bytes_max: i32,
}

/// The properties `--property` takes, as Kafka's DefaultMessageFormatter names them.
const PROPERTIES: &[&str] = &[
    "print.key",
    "print.value",
    "print.timestamp",
    "print.partition",
    "print.offset",
    "print.headers",
    "key.separator",
    "line.separator",
    "headers.separator",
    "null.literal",
];

/// What to print of each record and how, as Kafka's DefaultMessageFormatter does: the fields
/// in the order timestamp, partition, offset, headers, key, value, separated by the key
/// separator and ended by the line separator.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Format {
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_headers: bool,
    print_key: bool,
    print_value: bool,
    key_separator: Vec<u8>,
    line_separator: Vec<u8>,
    headers_separator: Vec<u8>,
    null_literal: Vec<u8>,
}

impl Default for Format {
    /// Kafka's defaults: the value alone, a tab between fields, `null` for null.
    fn default() -> Self {
        Format {
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_headers: false,
            print_key: false,
            print_value: true,
            key_separator: b"\t".to_vec(),
            line_separator: b"\n".to_vec(),
            headers_separator: b",".to_vec(),
            null_literal: b"null".to_vec(),
        }
    }
}

/// The format from the flags and `--property` settings; a property that contradicts a flag
/// is an error rather than a silent winner.
fn format_of(args: &ConsumeArgs) -> Result<Format, String> {
    let mut format = Format {
        print_timestamp: args.print_timestamp,
        print_partition: args.print_partition,
        print_key: args.print_key,
        ..Format::default()
    };
    if let Some(separator) = &args.key_separator {
        format.key_separator = separator.clone().into_bytes();
    }
    let flags = [
        ("print.key", args.print_key, "--print-key"),
        ("print.timestamp", args.print_timestamp, "--print-timestamp"),
        ("print.partition", args.print_partition, "--print-partition"),
    ];
    for (key, value) in &args.properties {
        let flag = flags.iter().find(|(name, set, _)| name == key && *set);
        match key.as_str() {
            "print.key" | "print.value" | "print.timestamp" | "print.partition"
            | "print.offset" | "print.headers" => {
                let on = property_bool(key, value)?;
                if let (Some((_, _, flag)), false) = (flag, on) {
                    return Err(format!(
                        "{flag} and --property {key}={value} disagree; give one of them"
                    ));
                }
                let field = match key.as_str() {
                    "print.key" => &mut format.print_key,
                    "print.value" => &mut format.print_value,
                    "print.timestamp" => &mut format.print_timestamp,
                    "print.partition" => &mut format.print_partition,
                    "print.offset" => &mut format.print_offset,
                    _ => &mut format.print_headers,
                };
                *field = on;
            }
            "key.separator" => {
                if let Some(flag) = args.key_separator.as_ref().filter(|f| *f != value) {
                    return Err(format!(
                        "--key-separator '{flag}' and --property key.separator={value} \
                         disagree; give one of them"
                    ));
                }
                format.key_separator = value.clone().into_bytes();
            }
            "line.separator" => format.line_separator = value.clone().into_bytes(),
            "headers.separator" => format.headers_separator = value.clone().into_bytes(),
            "null.literal" => format.null_literal = value.clone().into_bytes(),
            _ => return Err(unknown_property("consume", key, PROPERTIES)),
        }
    }
    Ok(format)
}

pub fn run(args: ConsumeArgs) -> Result<(), String> {
    let format = format_of(&args)?;
    let topic = args.topic.clone();
    let mut cluster = Cluster::connect(&args.connect.bootstrap_server)?;
    let partitions = select(&args, cluster.partitions(&topic, false)?)?;
    let start = match (args.from_beginning, args.offset) {
        (true, _) => Start::Earliest,
        (false, Some(start)) => start,
        (false, None) => Start::Latest,
    };
    let positions = start_positions(&mut cluster, &topic, &partitions, start)?;
    let mut consumer = Consumer {
        cluster,
        topic,
        partitions,
        positions,
        printer: Printer {
            out: BufWriter::new(io::stdout().lock()),
            format,
        },
        printed: 0,
        max_messages: args.max_messages,
    };
    let timeout = args.timeout_ms.map(Duration::from_millis);
    match consumer.run(timeout) {
        Ok(()) => {
            eprintln!("Processed a total of {} messages", consumer.printed);
            Ok(())
        }
        Err(ConsumeError::OutputClosed) => Ok(()),
        Err(ConsumeError::Failed(message)) => Err(message),
    }
}

/// The partitions to read: all, or the one `--partition` names.
fn select(
    args: &ConsumeArgs,
    partitions: Vec<PartitionLeader>,
) -> Result<Vec<PartitionLeader>, String> {
    let Some(wanted) = args.partition else {
        return Ok(partitions);
    };
    let count = partitions.len();
    let selected: Vec<_> = partitions
        .into_iter()
        .filter(|p| p.partition == wanted)
        .collect();
    if selected.is_empty() {
        return Err(format!(
            "partition {wanted} does not exist in topic '{}' (it has {count} partitions, 0 to {})",
            args.topic,
            count as i64 - 1
        ));
    }
    Ok(selected)
}

fn start_positions(
    cluster: &mut Cluster,
    topic: &str,
    partitions: &[PartitionLeader],
    start: Start,
) -> Result<BTreeMap<i32, Position>, String> {
    let at = |offset| Position {
        offset,
        fetch_bytes_max: PARTITION_FETCH_BYTES_START,
    };
    let timestamp = match start {
        Start::Offset(offset) => {
            return Ok(partitions
                .iter()
                .map(|p| (p.partition, at(offset)))
                .collect())
        }
        Start::Earliest => LIST_OFFSETS_EARLIEST,
        Start::Latest => LIST_OFFSETS_LATEST,
    };
    let mut positions = BTreeMap::new();
    for (leader, group) in by_leader(partitions) {
        let client = cluster.leader(leader)?;
        for (partition, offset) in list_offsets(client, topic, &group, timestamp)? {
            positions.insert(partition, at(offset));
        }
    }
    Ok(positions)
}

/// The offsets of `timestamp` (-1 latest, -2 earliest) in `partitions`, one per partition.
fn list_offsets(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> Result<Vec<(i32, i64)>, String> {
    let response = client.list_offsets(topic, partitions, timestamp)?;
    let mut offsets = Vec::with_capacity(partitions.len());
    for &partition in partitions {
        let answer = response
            .topics
            .iter()
            .filter(|t| t.name.as_str() == topic)
            .flat_map(|t| &t.partitions)
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| {
                format!("the broker's ListOffsets response does not mention partition {topic}-{partition}")
            })?;
        if answer.error_code != 0 {
            let what = format!("cannot find the start offset of partition {topic}-{partition}");
            return Err(kafka_error(answer.error_code, &what, None));
        }
        if answer.offset < 0 {
            return Err(format!(
                "the broker answered ListOffsets for partition {topic}-{partition} with offset {}",
                answer.offset
            ));
        }
        offsets.push((partition, answer.offset));
    }
    Ok(offsets)
}

enum ConsumeError {
    /// Standard output was closed (`| head -1`): stop quietly.
    OutputClosed,
    Failed(String),
}

impl From<String> for ConsumeError {
    fn from(message: String) -> Self {
        ConsumeError::Failed(message)
    }
}

impl From<OutputError> for ConsumeError {
    fn from(e: OutputError) -> Self {
        match e {
            OutputError::Closed => ConsumeError::OutputClosed,
            OutputError::Failed(message) => ConsumeError::Failed(message),
        }
    }
}

/// What one round of fetches came to.
enum Round {
    Continue { got_records: bool, unsettled: bool },
    Done,
}

struct Consumer {
    cluster: Cluster,
    topic: String,
    partitions: Vec<PartitionLeader>,
    positions: BTreeMap<i32, Position>,
    printer: Printer,
    printed: u64,
    max_messages: Option<u64>,
}

impl Consumer {
    fn done(&self) -> bool {
        self.max_messages.is_some_and(|max| self.printed >= max)
    }

    fn run(&mut self, timeout: Option<Duration>) -> Result<(), ConsumeError> {
        let mut last_record = Instant::now();
        let mut unsettled_rounds = 0;
        while !self.done() {
            if stdout_closed() {
                return Err(ConsumeError::OutputClosed);
            }
            let wait_ms = match timeout {
                None => FETCH_WAIT_MS_MAX,
                Some(timeout) => {
                    let left = timeout.saturating_sub(last_record.elapsed());
                    if left.is_zero() {
                        return Ok(());
                    }
                    (left.as_millis() as u64).clamp(1, FETCH_WAIT_MS_MAX)
                }
            };
            match self.fetch_round(wait_ms as i32)? {
                Round::Done => return Ok(()),
                Round::Continue {
                    got_records,
                    unsettled,
                } => {
                    if got_records {
                        last_record = Instant::now();
                    }
                    if unsettled {
                        unsettled_rounds += 1;
                        if unsettled_rounds > UNSETTLED_ROUNDS_MAX {
                            return Err(format!(
                                "partitions of topic '{}' stayed without a leader; giving up",
                                self.topic
                            )
                            .into());
                        }
                        thread::sleep(RETRY_BACKOFF);
                        self.refresh_leaders()?;
                    } else {
                        unsettled_rounds = 0;
                    }
                }
            }
        }
        Ok(())
    }

    fn refresh_leaders(&mut self) -> Result<(), String> {
        let partitions = self.cluster.partitions(&self.topic, false)?;
        // Positions hold exactly the partitions being read.
        self.partitions = partitions
            .into_iter()
            .filter(|p| self.positions.contains_key(&p.partition))
            .collect();
        Ok(())
    }

    /// One fetch from each leader; prints what arrives.
    fn fetch_round(&mut self, wait_ms: i32) -> Result<Round, ConsumeError> {
        let mut got_records = false;
        let mut unsettled = false;
        for (leader, group) in by_leader(&self.partitions) {
            let request: Vec<(i32, i64, i32)> = group
                .iter()
                .map(|p| {
                    (
                        *p,
                        self.positions[p].offset,
                        self.positions[p].fetch_bytes_max,
                    )
                })
                .collect();
            let topic = self.topic.clone();
            let client = self.cluster.leader(leader)?;
            let response = match client.fetch(&topic, &request, wait_ms, FETCH_BYTES_MAX) {
                Ok(response) => response,
                Err(e) => {
                    self.cluster.forget(leader);
                    return Err(e.into());
                }
            };
            let answers = response
                .responses
                .into_iter()
                .filter(|t| t.topic.as_str() == topic)
                .flat_map(|t| t.partitions)
                .filter(|p| group.contains(&p.partition_index));
            for answer in answers {
                match self.on_partition_data(answer)? {
                    PartitionOutcome::Records(count) => got_records |= count > 0,
                    PartitionOutcome::Unsettled => unsettled = true,
                }
                if self.done() {
                    self.printer.flush()?;
                    return Ok(Round::Done);
                }
            }
            self.printer.flush()?;
        }
        Ok(Round::Continue {
            got_records,
            unsettled,
        })
    }

    fn on_partition_data(
        &mut self,
        answer: PartitionData,
    ) -> Result<PartitionOutcome, ConsumeError> {
        let partition = answer.partition_index;
        let topic = self.topic.clone();
        let position = self.positions[&partition];
        match answer.error_code {
            0 => {}
            code if is_settling(code) => return Ok(PartitionOutcome::Unsettled),
            code if code == ResponseError::OffsetOutOfRange.code() => {
                return Err(self.out_of_range(partition, position.offset).into());
            }
            code if code == ResponseError::UnknownTopicOrPartition.code() => {
                let what = topic_error_text(code, &topic, "cannot fetch from");
                return Err(kafka_error(code, &what, None).into());
            }
            code => {
                let what = format!("cannot fetch from partition {topic}-{partition}");
                return Err(kafka_error(code, &what, None).into());
            }
        }
        let data = answer.records.unwrap_or_default();
        let fetched =
            decode_fetched(data).map_err(|e| format!("partition {topic}-{partition}: {e}"))?;
        if fetched.batches.is_empty() && fetched.partial_tail {
            self.grow_fetch_size(partition)?;
            return Ok(PartitionOutcome::Records(0));
        }
        let mut count = 0;
        let mut next_offset = position.offset;
        for batch in &fetched.batches {
            for record in batch.records.iter().filter(|r| r.offset >= next_offset) {
                if self.done() {
                    break;
                }
                self.printer.print(partition, record)?;
                self.printed += 1;
                count += 1;
            }
            next_offset = next_offset.max(batch.next_offset);
        }
        let position = self
            .positions
            .get_mut(&partition)
            .expect("fetched partitions have positions");
        position.offset = next_offset;
        Ok(PartitionOutcome::Records(count))
    }

    /// A batch larger than the partition's fetch size came back cut: ask for more next time.
    fn grow_fetch_size(&mut self, partition: i32) -> Result<(), String> {
        let position = self
            .positions
            .get_mut(&partition)
            .expect("fetched partitions have positions");
        if position.fetch_bytes_max >= FETCH_BYTES_MAX {
            return Err(format!(
                "the record batch at offset {} of partition {}-{partition} does not fit in a \
                 {FETCH_BYTES_MAX}-byte fetch",
                position.offset, self.topic
            ));
        }
        position.fetch_bytes_max = position
            .fetch_bytes_max
            .saturating_mul(2)
            .min(FETCH_BYTES_MAX);
        Ok(())
    }

    /// Explains OFFSET_OUT_OF_RANGE with the offsets the partition does hold.
    fn out_of_range(&mut self, partition: i32, offset: i64) -> String {
        let topic = self.topic.clone();
        let leader = self
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .map(|p| p.leader);
        let mut range = String::new();
        if let Some(client) = leader.and_then(|leader| self.cluster.leader(leader).ok()) {
            let earliest = list_offsets(client, &topic, &[partition], LIST_OFFSETS_EARLIEST);
            let latest = list_offsets(client, &topic, &[partition], LIST_OFFSETS_LATEST);
            if let (Ok(earliest), Ok(latest)) = (earliest, latest) {
                range = format!(
                    "; it holds offsets from {} up to (not including) {}",
                    earliest[0].1, latest[0].1
                );
            }
        }
        format!(
            "{}: offset {offset} is out of range for partition {topic}-{partition}{range} (use \
             --from-beginning, or --offset earliest|latest|N)",
            error_name(ResponseError::OffsetOutOfRange.code())
        )
    }
}

enum PartitionOutcome {
    Records(u64),
    Unsettled,
}

/// Formats records the way Kafka's console consumer does.
struct Printer {
    out: BufWriter<StdoutLock<'static>>,
    format: Format,
}

impl Printer {
    fn print(&mut self, partition: i32, record: &Record) -> Result<(), OutputError> {
        let line = format_record(partition, record, &self.format);
        self.out.write_all(&line)?;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.out.flush()?;
        Ok(())
    }
}

/// One record as Kafka's DefaultMessageFormatter writes it: each printed field followed by the
/// key separator, except the last, which the line separator ends.
fn format_record(partition: i32, record: &Record, format: &Format) -> Vec<u8> {
    let mut fields: Vec<Vec<u8>> = Vec::with_capacity(6);
    if format.print_timestamp {
        let kind = match record.timestamp_type {
            TimestampType::Creation => "CreateTime",
            TimestampType::LogAppend => "LogAppendTime",
        };
        fields.push(format!("{kind}:{}", record.timestamp).into_bytes());
    }
    if format.print_partition {
        fields.push(format!("Partition:{partition}").into_bytes());
    }
    if format.print_offset {
        fields.push(format!("Offset:{}", record.offset).into_bytes());
    }
    if format.print_headers {
        let mut field = Vec::new();
        if record.headers.is_empty() {
            field.extend_from_slice(b"NO_HEADERS");
        }
        for (i, (key, value)) in record.headers.iter().enumerate() {
            if i > 0 {
                field.extend_from_slice(&format.headers_separator);
            }
            push_lossy(&mut field, Some(key.as_bytes()), &format.null_literal);
            field.push(b':');
            push_lossy(&mut field, value.as_deref(), &format.null_literal);
        }
        fields.push(field);
    }
    if format.print_key {
        let mut field = Vec::new();
        push_lossy(&mut field, record.key.as_deref(), &format.null_literal);
        fields.push(field);
    }
    if format.print_value {
        let mut field = Vec::new();
        push_lossy(&mut field, record.value.as_deref(), &format.null_literal);
        fields.push(field);
    }
    if fields.is_empty() {
        return Vec::new(); // Kafka prints nothing at all when every field is turned off
    }
    let mut line = Vec::with_capacity(fields.iter().map(Vec::len).sum::<usize>() + 16);
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.extend_from_slice(&format.key_separator);
        }
        line.extend_from_slice(field);
    }
    line.extend_from_slice(&format.line_separator);
    line
}

fn push_lossy(line: &mut Vec<u8>, bytes: Option<&[u8]>, null_literal: &[u8]) {
    match bytes {
        Some(bytes) => line.extend_from_slice(String::from_utf8_lossy(bytes).as_bytes()),
        None => line.extend_from_slice(null_literal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::indexmap::IndexMap;

    fn parse(args: &[&str]) -> Result<ConsumeArgs, clap::Error> {
        crate::cli::parse_subcommand(args)
    }

    fn record(key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1_700_000_000_123,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: IndexMap::new(),
        }
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    fn format(args: &[&str]) -> Result<Format, String> {
        let mut argv = vec!["spate", "consume", "--topic", "t"];
        argv.extend_from_slice(args);
        format_of(&parse(&argv).unwrap())
    }

    fn line(partition: i32, r: &Record, args: &[&str]) -> String {
        text(format_record(partition, r, &format(args).unwrap()))
    }

    #[test]
    fn plain_output_is_the_value() {
        let r = record(Some(b"k"), Some(b"hello"));
        assert_eq!(line(0, &r, &[]), "hello\n");
        let null = record(None, None);
        assert_eq!(line(0, &null, &[]), "null\n");
        assert_eq!(
            line(0, &null, &["--property", "null.literal=<none>"]),
            "<none>\n"
        );
    }

    #[test]
    fn fields_come_in_kafkas_order_separated_by_the_key_separator() {
        let r = record(None, Some(b"v"));
        assert_eq!(
            line(
                3,
                &r,
                &["--print-timestamp", "--print-partition", "--print-key"]
            ),
            "CreateTime:1700000000123\tPartition:3\tnull\tv\n"
        );
        let mut r = record(Some(b"k"), Some(b"v"));
        assert_eq!(
            line(0, &r, &["--print-key", "--key-separator", "::"]),
            "k::v\n"
        );
        // Kafka's DefaultMessageFormatter separates every field with key.separator.
        r.offset = 7;
        r.headers
            .insert("h1".into(), Some(Bytes::from_static(b"a")));
        r.headers.insert("h2".into(), None);
        let all = [
            "--property",
            "print.timestamp=true",
            "--property",
            "print.partition=true",
            "--property",
            "print.offset=true",
            "--property",
            "print.headers=true",
            "--property",
            "print.key=true",
            "--property",
            "key.separator=|",
        ];
        assert_eq!(
            line(2, &r, &all),
            "CreateTime:1700000000123|Partition:2|Offset:7|h1:a,h2:null|k|v\n"
        );
        let r = record(Some(b"k"), Some(b"v"));
        assert_eq!(
            line(
                0,
                &r,
                &[
                    "--property",
                    "print.headers=true",
                    "--property",
                    "line.separator=;"
                ]
            ),
            "NO_HEADERS\tv;"
        );
        assert_eq!(
            line(
                0,
                &r,
                &[
                    "--property",
                    "print.key=true",
                    "--property",
                    "print.value=false"
                ]
            ),
            "k\n"
        );
        assert_eq!(line(0, &r, &["--property", "print.value=false"]), "");
        let mut logged = record(None, Some(b"v"));
        logged.timestamp_type = TimestampType::LogAppend;
        assert_eq!(
            line(0, &logged, &["--print-timestamp"]),
            "LogAppendTime:1700000000123\tv\n"
        );
    }

    #[test]
    fn properties_are_equivalents_of_the_flags() {
        assert_eq!(
            format(&[
                "--property",
                "print.key=true",
                "--property",
                "key.separator=:"
            ]),
            format(&["--print-key", "--key-separator", ":"])
        );
        assert_eq!(
            format(&["--property", "print.timestamp=true"]),
            format(&["--print-timestamp"])
        );
        assert_eq!(
            format(&["--print-key", "--property", "print.key=true"]),
            format(&["--print-key"])
        );
    }

    #[test]
    fn bad_or_conflicting_properties_are_named() {
        let error = format(&["--property", "print.keys=true"]).unwrap_err();
        assert!(error.contains("unknown property 'print.keys'"), "{error}");
        assert!(error.contains("print.key, print.value"), "{error}");
        let error = format(&["--property", "print.key=1"]).unwrap_err();
        assert!(error.contains("true or false"), "{error}");
        let error = format(&["--print-key", "--property", "print.key=false"]).unwrap_err();
        assert!(
            error.contains("--print-key and --property print.key=false"),
            "{error}"
        );
        let error = format(&["--key-separator", ":", "--property", "key.separator=;"]).unwrap_err();
        assert!(error.contains("disagree"), "{error}");
    }

    #[test]
    fn invalid_utf8_prints_lossily() {
        let r = record(None, Some(b"a\xffb"));
        assert_eq!(line(0, &r, &[]), "a\u{fffd}b\n");
    }

    #[test]
    fn start_accepts_offsets_and_names() {
        assert_eq!(parse_start("earliest"), Ok(Start::Earliest));
        assert_eq!(parse_start("latest"), Ok(Start::Latest));
        assert_eq!(parse_start("42"), Ok(Start::Offset(42)));
        assert!(parse_start("-3").is_err());
        assert!(parse_start("soon").is_err());
    }

    #[test]
    fn arguments_parse_with_defaults() {
        let args = parse(&["spate", "consume", "--topic", "t"]).unwrap();
        assert!(!args.from_beginning && !args.print_key);
        assert_eq!(args.key_separator, None);
        assert_eq!(format_of(&args), Ok(Format::default()));
        assert_eq!(
            (args.max_messages, args.timeout_ms, args.offset),
            (None, None, None)
        );
        let args = parse(&[
            "spate",
            "consume",
            "--topic",
            "t",
            "--from-beginning",
            "--max-messages",
            "2",
            "--print-key",
            "--print-timestamp",
            "--print-partition",
            "--key-separator",
            ":",
            "--timeout-ms",
            "1000",
            "--partition",
            "1",
            "-b",
            "h:1",
        ])
        .unwrap();
        assert!(args.from_beginning && args.print_key && args.print_timestamp);
        assert_eq!(
            (args.max_messages, args.timeout_ms, args.partition),
            (Some(2), Some(1000), Some(1))
        );
        assert_eq!(args.connect.bootstrap_server, "h:1");
        assert!(parse(&[
            "spate",
            "consume",
            "--topic",
            "t",
            "--from-beginning",
            "--offset",
            "3"
        ])
        .is_err());
    }
}
