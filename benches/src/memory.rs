//! `spate-bench memory`: the broker's resident memory under sustained produce and tail-consume
//! load, beside the memory it is configured to cache.
//!
//! The broker starts on a fresh data dir; its RSS a second later is the fixed overhead. Then one
//! topic with N partitions gets, per partition, a producer (acks=1, a few requests in flight,
//! optionally throttled) and a consumer fetching from where it left off, which stays at the tail.
//! VmRSS is sampled from /proc every 100 ms for the whole load.

use crate::batch;
use crate::broker::{Broker, CpuMeter};
use crate::kafka::{walk_batches, Acks, Conn};
use crate::machine::Machine;
use crate::producer::{self, Spec};
use crate::report::MemoryReport;
use crate::stats::Limits;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "bench-memory";
const TAIL_CACHE_KEY: &str = "tail.cache.bytes.per.partition";
/// The broker's default when it does not report the setting.
const TAIL_CACHE_DEFAULT: u64 = 4 * 1024 * 1024;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Kafka's default max.partition.fetch.bytes.
const FETCH_MAX_BYTES: i32 = 1024 * 1024;
const FETCH_MAX_WAIT_MS: i32 = 100;
const KAFKA_STORAGE_ERROR: i16 = 56;

pub struct Options {
    pub run_dir: PathBuf,
    pub spate_bin: PathBuf,
    pub broker_args: Vec<String>,
    pub secs: f64,
    pub partitions: usize,
    pub batch_bytes: usize,
    pub in_flight: usize,
    /// Total produce rate in bytes per second, if throttled.
    pub rate: Option<f64>,
    /// Passed to the broker as `tail.cache.bytes.per.partition`, if set.
    pub tail_cache: Option<u64>,
    /// Start the broker with [`Broker::start_primed`].
    pub prime_broker: bool,
}

pub fn run(options: &Options) -> Result<MemoryReport, String> {
    let machine = Machine::probe(&options.run_dir);
    let config = match options.tail_cache {
        Some(bytes) => {
            let path = options.run_dir.join("broker.properties");
            std::fs::write(&path, format!("{TAIL_CACHE_KEY}={bytes}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    let data_dir = options.run_dir.join("spate");
    let broker = if options.prime_broker {
        Broker::start_primed(
            &options.spate_bin,
            &data_dir,
            config.as_deref(),
            &options.broker_args,
        )?
    } else {
        Broker::start(
            &options.spate_bin,
            &data_dir,
            config.as_deref(),
            &options.broker_args,
        )?
    };
    let outcome = load(options, &broker, machine);
    let problems = broker.log_problems();
    let stopped = broker.stop();
    let mut report = outcome?;
    stopped?;
    report.broker_problems = problems;
    Ok(report)
}

fn load(options: &Options, broker: &Broker, machine: Machine) -> Result<MemoryReport, String> {
    eprintln!("  broker started (pid {}); settling for 1 s", broker.pid());
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = broker.rss_bytes()?;
    let mut admin = Conn::connect(broker.addr)?;
    let reported = admin
        .broker_config(1, TAIL_CACHE_KEY)
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    let tail_cache_total = admin
        .broker_config(1, "tail.cache.bytes")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<u64>().ok());
    let tail_cache_per_partition = reported
        .or(options.tail_cache)
        .unwrap_or(TAIL_CACHE_DEFAULT);
    admin.create_topic(TOPIC, options.partitions as i32)?;

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let pid = broker.pid();
        std::thread::spawn(move || sample_rss(pid, &stop))
    };
    let consumers: Vec<_> = (0..options.partitions)
        .map(|partition| {
            let conn = Conn::connect(broker.addr)?;
            let stop = stop.clone();
            Ok(std::thread::spawn(move || {
                consume(conn, partition as i32, &stop)
            }))
        })
        .collect::<Result<_, String>>()?;

    eprintln!(
        "  load for {:.0} s: {} producers and {} consumers",
        options.secs, options.partitions, options.partitions
    );
    let batch = batch::exact_batch(options.batch_bytes)?;
    let specs = (0..options.partitions)
        .map(|partition| Spec {
            topic: TOPIC.to_string(),
            partition: partition as i32,
            acks: Acks::Leader,
            in_flight: options.in_flight,
            batch: batch.clone(),
            limits: Limits {
                bytes: u64::MAX,
                secs: options.secs,
            },
            rate: options.rate.map(|r| r / options.partitions as f64),
        })
        .collect();
    let started = Instant::now();
    let meter = CpuMeter::start(broker)?;
    let produced = producer::produce_concurrently(broker.addr, specs);
    let cpu = meter.stop();
    let consumed_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);

    let (mut consumed_bytes, mut consumed_offsets) = (0, 0i64);
    let (mut storage_errors, mut skipped_records) = (0, 0i64);
    let mut consumer_error = None;
    for consumer in consumers {
        match consumer.join() {
            Ok(Ok(consumed)) => {
                consumed_bytes += consumed.bytes;
                consumed_offsets += consumed.offset;
                storage_errors += consumed.storage_errors;
                skipped_records += consumed.skipped_records;
            }
            Ok(Err(e)) => {
                consumer_error.get_or_insert(e);
            }
            Err(_) => {
                consumer_error.get_or_insert("a consumer thread panicked".into());
            }
        }
    }
    let samples = sampler
        .join()
        .map_err(|_| "the RSS sampler panicked".to_string())??;
    let produced = produced?;
    let cpu = cpu?;
    if let Some(e) = consumer_error {
        return Err(e);
    }
    if samples.is_empty() {
        return Err("no RSS samples were taken".into());
    }
    admin.delete_topic(TOPIC)?;
    Ok(MemoryReport {
        machine,
        broker_bin: options.spate_bin.display().to_string(),
        secs: options.secs,
        partitions: options.partitions,
        batch_bytes: options.batch_bytes,
        in_flight: options.in_flight,
        rate_limit: options.rate,
        tail_cache_per_partition,
        tail_cache_reported: reported.is_some(),
        tail_cache_total,
        idle_rss,
        max_rss: samples.iter().copied().max().unwrap_or(0),
        mean_rss: samples.iter().sum::<u64>() as f64 / samples.len() as f64,
        last_rss: samples.last().copied().unwrap_or(0),
        samples: samples.len(),
        consumer_lag_records: produced.throughput.records as i64 - consumed_offsets,
        produced: produced.throughput,
        produce_latency: produced.latency.summary(),
        consumed_bytes,
        consumed_secs,
        storage_errors,
        skipped_records,
        cpu,
        broker_problems: Vec::new(),
    })
}

/// VmRSS every 100 ms until `stop`.
fn sample_rss(pid: u32, stop: &AtomicBool) -> Result<Vec<u64>, String> {
    let mut samples = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        samples.push(crate::broker::rss_bytes(pid)?);
        next += SAMPLE_EVERY;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(samples)
}

/// What one tail consumer read.
struct Consumed {
    bytes: u64,
    /// The offset it reached.
    offset: i64,
    /// Fetches answered KAFKA_STORAGE_ERROR (a read from disk that failed), after which the
    /// consumer skipped to the high watermark, and the records it skipped so.
    storage_errors: u64,
    skipped_records: i64,
}

/// Fetches one partition from offset 0 onwards until `stop`. A consumer that fell out of the
/// tail cache reads from disk; if that read fails (KAFKA_STORAGE_ERROR), it skips to the high
/// watermark, as a consumer with auto.offset.reset=latest would after losing its position, and
/// the failures are counted and reported.
fn consume(mut conn: Conn, partition: i32, stop: &AtomicBool) -> Result<Consumed, String> {
    let mut consumed = Consumed {
        bytes: 0,
        offset: 0,
        storage_errors: 0,
        skipped_records: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let offset = consumed.offset;
        let response = conn.fetch(TOPIC, partition, offset, FETCH_MAX_WAIT_MS, FETCH_MAX_BYTES)?;
        for data in response.responses.iter().flat_map(|t| t.partitions.iter()) {
            match data.error_code {
                0 => {}
                KAFKA_STORAGE_ERROR if data.high_watermark > offset => {
                    consumed.storage_errors += 1;
                    consumed.skipped_records += data.high_watermark - offset;
                    consumed.offset = data.high_watermark;
                    continue;
                }
                code => {
                    return Err(format!(
                        "Fetch of {TOPIC}-{partition} at offset {offset}: Kafka error {code}"
                    ))
                }
            }
            if let Some((next, whole)) = data.records.as_deref().and_then(walk_batches) {
                consumed.offset = next;
                consumed.bytes += whole as u64;
            }
        }
    }
    Ok(consumed)
}
