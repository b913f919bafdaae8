//! `compaction`: what the log cleaner costs. One broker, one shard: a compacted topic is filled
//! with keyed updates (each key written many times), then the cleaner compacts it while a probe
//! producer writes small acks=all batches to another topic on the same shard. The report gives
//! the cleaning's throughput (MB of dirty log per second, from the broker's own log line) and
//! the probe's latency percentiles with the cleaner running beside the same probe measured just
//! before, with the cleaner idle, in the same run: read the ratio.

use crate::batch::Batch;
use crate::broker::Broker;
use crate::kafka::{Acks, Conn};
use crate::producer::{produce, Outcome, Spec};
use crate::stats::{Latency, Limits};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Options {
    pub run_dir: PathBuf,
    pub spate_bin: PathBuf,
    /// Bytes of keyed updates written before the cleaning.
    pub fill_bytes: u64,
    pub keys: usize,
    pub probe_secs: f64,
}

pub struct Report {
    pub options_line: String,
    pub dirty_bytes: u64,
    pub cleaned_bytes: u64,
    pub clean_ms: u64,
    pub cleaning_line: String,
    pub idle: Latency,
    pub busy: Latency,
    pub busy_while_cleaning_secs: f64,
}

const RECORDS_PER_BATCH: usize = 64;
/// The fill's records are stamped this far ahead, and the topic's min.compaction.lag.ms is as
/// long: the cleaner waits for twice this from the fill's start.
const LAG_MS: i64 = 10_000;
const VALUE_BYTES: usize = 1000;

/// Keyed batches: batch `i` holds keys `i*64 .. i*64+63` (mod `keys`), ~64 KiB each.
fn keyed_batches(keys: usize, timestamp: i64) -> Result<Vec<Batch>, String> {
    let batches = keys.div_ceil(RECORDS_PER_BATCH).max(1);
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    (0..batches)
        .map(|b| {
            let records: Vec<Record> = (0..RECORDS_PER_BATCH)
                .map(|r| Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: r as i64,
                    sequence: r as i32 - 1,
                    timestamp,
                    key: Some(Bytes::from(format!(
                        "key-{:08}",
                        (b * RECORDS_PER_BATCH + r) % keys
                    ))),
                    value: Some(value.clone()),
                    headers: Default::default(),
                })
                .collect();
            let mut out = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            };
            RecordBatchEncoder::encode(&mut out, &records, &options)
                .map_err(|e| format!("cannot encode a batch: {e}"))?;
            Ok(Batch {
                bytes: out.freeze(),
                records: RECORDS_PER_BATCH,
            })
        })
        .collect()
}

fn probe_spec(secs: f64) -> Result<Spec, String> {
    Ok(Spec {
        topic: "probe".into(),
        partition: 0,
        acks: Acks::All,
        in_flight: 1,
        batch: crate::batch::exact_batch(16 * 1024)?,
        limits: Limits {
            bytes: u64::MAX,
            secs,
        },
        rate: None,
    })
}

/// The broker's "cleaned offsets below" line after byte `since` of its log, if written yet.
fn cleaned_line(broker: &Broker, since: usize) -> Option<String> {
    broker
        .log_since(since)
        .lines()
        .find(|l| l.contains("table-0: cleaned offsets below"))
        .map(str::to_string)
}

/// The numbers of "... N segment(s) of B bytes into M of A bytes, R bytes read in T ms".
fn parse_cleaned(line: &str) -> Option<(u64, u64, u64)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |word: &str, skip: usize| -> Option<u64> {
        let at = words.iter().position(|w| *w == word)?;
        words.get(at + skip)?.trim_end_matches(',').parse().ok()
    };
    let before = words
        .windows(3)
        .find(|w| w[0] == "segment(s)" && w[1] == "of")
        .and_then(|w| w[2].parse().ok())?;
    let into = words.iter().position(|w| *w == "into")?;
    let after_bytes = words.get(into + 3)?.parse().ok()?;
    let ms = after("in", 1)?;
    Some((before, after_bytes, ms))
}

pub fn run(options: &Options) -> Result<Report, String> {
    let args: Vec<String> = ["--cores", "1", "--override", "log.cleaner.backoff.ms=100"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let broker = Broker::start(
        &options.spate_bin,
        &options.run_dir.join("node"),
        None,
        &args,
    )?;
    let mut admin = Conn::connect(broker.addr)?;
    admin.create_topic("probe", 1)?;
    let segment_bytes = (64u64 << 20).to_string();
    admin.create_topic_with(
        "table",
        1,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", &segment_bytes),
            // With the records' timestamps, the cleaning starts once the fill is done.
            ("min.compaction.lag.ms", &LAG_MS.to_string()),
        ],
    )?;
    // Warm the probe path, then measure it with the cleaner idle.
    let mut probe = Conn::connect(broker.addr)?;
    produce(&mut probe, &probe_spec(0.3)?)?;
    let idle = produce(&mut probe, &probe_spec(options.probe_secs)?)?;

    // Fill the compacted topic: every key written fill_bytes / (keys * 1 KiB) times. Every
    // record is stamped LAG_MS after now, so no segment is cleanable (min.compaction.lag.ms)
    // before the fill is done, and then all of them at once (but the active one).
    let since = broker.log_len();
    let fill_started = Instant::now();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
        + LAG_MS;
    let batches = keyed_batches(options.keys, stamp)?;
    let mut fill = Conn::connect(broker.addr)?;
    let mut written = 0u64;
    let mut i = 0usize;
    while written < options.fill_bytes {
        let batch = batches[i % batches.len()].clone();
        let batch_len = batch.bytes.len() as u64;
        let spec = Spec {
            topic: "table".into(),
            partition: 0,
            acks: Acks::Leader,
            in_flight: 8,
            batch,
            limits: Limits {
                // 16 batches a call, so the fill cycles through every key's batch.
                bytes: (options.fill_bytes - written).min(16 * batch_len),
                secs: 60.0,
            },
            rate: None,
        };
        let done = produce(&mut fill, &spec)?;
        written += done.throughput.bytes;
        i += 1;
    }
    if fill_started.elapsed() > Duration::from_millis(LAG_MS as u64) {
        return Err("the fill took longer than the compaction lag: lower --fill".into());
    }

    // The probe again, in slices, until the cleaning's line appears.
    let mut busy: Option<Outcome> = None;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    let mut busy_secs = 0.0;
    let line = loop {
        let slice = produce(&mut probe, &probe_spec(0.1)?)?;
        let cleaning = broker
            .log_since(since)
            .contains("table-0: cleaning, dirty offsets");
        if cleaning {
            busy_secs += slice.throughput.secs;
            match &mut busy {
                Some(total) => total.then(slice),
                None => busy = Some(slice),
            }
        }
        if let Some(line) = cleaned_line(&broker, since) {
            break line;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no cleaning finished within 600 s; broker log:\n{}",
                broker.log_tail(20)
            ));
        }
    };
    let (dirty_bytes, cleaned_bytes, clean_ms) =
        parse_cleaned(&line).ok_or(format!("cannot read the cleaning's line: {line}"))?;
    let busy = busy.ok_or("the cleaning finished before the probe saw it start")?;
    broker.stop()?;
    let mut options_line = String::new();
    let _ = write!(
        options_line,
        "fill {} MiB of 64-record keyed batches over {} keys (1 KiB values), segment.bytes 64 MiB; probe: 16 KiB acks=all batches, 1 in flight, to another topic on the same shard",
        options.fill_bytes >> 20,
        options.keys
    );
    Ok(Report {
        options_line,
        dirty_bytes,
        cleaned_bytes,
        clean_ms: clean_ms.max(1),
        cleaning_line: line,
        idle: idle.latency.summary(),
        busy: busy.latency.summary(),
        busy_while_cleaning_secs: busy_secs,
    })
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mb = |b: u64| b as f64 / 1e6;
        let _ = writeln!(out, "compaction: {}", self.options_line);
        let _ = writeln!(out, "  broker: {}", self.cleaning_line.trim());
        let _ = writeln!(
            out,
            "  cleaning: {:.1} MB of dirty log into {:.2} MB in {} ms: {:.0} MB/s of dirty log",
            mb(self.dirty_bytes),
            mb(self.cleaned_bytes),
            self.clean_ms,
            mb(self.dirty_bytes) / (self.clean_ms as f64 / 1000.0)
        );
        for (name, l) in [("cleaner idle", self.idle), ("cleaner running", self.busy)] {
            let _ = writeln!(
                out,
                "  probe, {name:<15}: {} batches, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
                l.count, l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
            );
        }
        let _ = writeln!(
            out,
            "  p99 running / idle: {:.2}x (probe ran {:.1} s during the cleaning)",
            self.busy.p99_ms / self.idle.p99_ms.max(1e-9),
            self.busy_while_cleaning_secs
        );
        out
    }
}
