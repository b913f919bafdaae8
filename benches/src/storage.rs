//! `spate-bench storage`: the plain writer and the broker, case by case on the same disk.
//!
//! For each mode (fsync per batch, then not) and each batch size, the plain writer runs, then
//! the broker gets the same batches on a fresh single-partition topic, which is deleted after the
//! run (as the plain file is) so every run starts on an empty file. A case is split into rounds
//! (3 by default) that alternate plain and spate, and the rounds add up: a virtual or shared disk
//! drifts by 2-3x within seconds, and alternating exposes both writers to the same drift. Then the
//! concurrent producers, then the loopback TCP reference. One broker serves every case.

use crate::batch::{self, Batch};
use crate::broker::{Broker, CpuMeter, CpuUse};
use crate::kafka::{check_produce_response, Acks, Conn, ProduceFrame};
use crate::machine::Machine;
use crate::plain::{self, Durability, PlainResult, PlainRun};
use crate::producer::{self, Outcome, Spec};
use crate::report::{size_label, Concurrent, Pair, SpateResult, StorageReport, TcpRow};
use crate::stats::Limits;
use crate::tcp;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Options {
    /// A fresh directory for this run: the plain file and the broker's data dir go inside.
    pub run_dir: PathBuf,
    pub spate_bin: PathBuf,
    pub broker_args: Vec<String>,
    pub sizes: Vec<usize>,
    /// Bytes per case; `None` picks by batch size.
    pub bytes: Option<u64>,
    pub case_secs: f64,
    pub quick: bool,
    pub pipeline: usize,
    /// Requests in flight per connection with acks=all (1: the per-batch fsync case).
    pub acks_all_in_flight: usize,
    /// Each case runs in this many slices, alternating plain and spate.
    pub rounds: usize,
    pub producers: usize,
    pub concurrent_sizes: Vec<usize>,
    pub tcp: bool,
    /// Leave glommio's polled-I/O probe to the plain writer's first (empty) file, as the broker
    /// does, instead of priming it with a file that holds data.
    pub plain_empty_probe: bool,
    /// Start the broker so that glommio's polled-I/O probe sees a segment holding data (see
    /// [`Broker::start_primed`]).
    pub prime_broker: bool,
}

impl Options {
    /// The byte budget of a case: enough for a few seconds at full speed on a fast disk, fewer for
    /// small batches, which are slow per byte. `--bytes` overrides it; `--quick` divides it by 8.
    fn limits(&self, batch_bytes: usize) -> Limits {
        const MIB: u64 = 1024 * 1024;
        let default = match batch_bytes {
            0..=4096 => 32 * MIB,
            4097..=16384 => 256 * MIB,
            16385..=65536 => 512 * MIB,
            _ => 1024 * MIB,
        };
        let bytes = self
            .bytes
            .unwrap_or(if self.quick { default / 8 } else { default });
        Limits {
            bytes: bytes.max(batch_bytes as u64),
            secs: self.case_secs,
        }
    }
}

pub fn run(options: &Options) -> Result<StorageReport, String> {
    let machine = Machine::probe(&options.run_dir);
    if !options.plain_empty_probe {
        plain::prime_iopoll_probe(&options.run_dir)?;
    }
    let data_dir = options.run_dir.join("spate");
    let broker = if options.prime_broker {
        Broker::start_primed(&options.spate_bin, &data_dir, None, &options.broker_args)?
    } else {
        Broker::start(&options.spate_bin, &data_dir, None, &options.broker_args)?
    };
    let outcome = run_cases(options, &broker);
    // Read the log before stopping: shutdown lines are not the benchmark's business.
    let problems = broker.log_problems();
    let stopped = broker.stop();
    let (pairs, concurrent, tcp) = outcome?;
    stopped?;
    Ok(StorageReport {
        machine,
        dir: options.run_dir.display().to_string(),
        broker_bin: options.spate_bin.display().to_string(),
        record_bytes: batch::RECORD_BYTES,
        pipeline: options.pipeline,
        rounds: options.rounds,
        plain_empty_probe: options.plain_empty_probe,
        prime_broker: options.prime_broker,
        case_secs: options.case_secs,
        pairs,
        concurrent,
        tcp,
        broker_problems: problems,
    })
}

type Cases = (Vec<Pair>, Vec<Concurrent>, Vec<TcpRow>);

/// Spate's side of a case, adding up over rounds.
struct SpateRun {
    outcome: Outcome,
    cpu: CpuUse,
}

impl SpateRun {
    fn then(&mut self, other: SpateRun) {
        self.outcome.then(other.outcome);
        self.cpu.then(&other.cpu);
    }
    fn result(&self) -> SpateResult {
        SpateResult {
            throughput: self.outcome.throughput,
            latency: self.outcome.latency.summary(),
            cpu: self.cpu,
        }
    }
}

/// Adds `next` to what the earlier rounds gathered.
fn accumulate<T>(total: &mut Option<T>, next: T, then: impl FnOnce(&mut T, T)) {
    match total {
        Some(total) => then(total, next),
        None => *total = Some(next),
    }
}

fn run_cases(options: &Options, broker: &Broker) -> Result<Cases, String> {
    let mut admin = Conn::connect(broker.addr)?;
    let plain_path = options.run_dir.join("plain.log");
    let rounds = options.rounds.max(1);
    let mut pairs = Vec::new();
    for fsync in [true, false] {
        for &size in &options.sizes {
            let batch = batch::exact_batch(size)?;
            let limits = options.limits(size).slice(rounds);
            let (acks, in_flight) = if fsync {
                (Acks::All, options.acks_all_in_flight)
            } else {
                (Acks::Leader, options.pipeline)
            };
            let topic = format!("bench-{}-{size}", if fsync { "acks-all" } else { "acks-1" });
            let label = format!(
                "{} {}",
                size_label(size),
                if fsync { "fsync" } else { "no fsync" }
            );
            progress(&format!("{label}, {rounds} round(s) of plain then spate"));
            let durability = if fsync {
                Durability::PerBatch
            } else {
                Durability::None
            };
            let (mut plain, mut background, mut spate) = (None, None, None);
            for round in 0..rounds {
                let topic = format!("{topic}-{round}");
                quiesce(&options.run_dir)?;
                let run = plain::run(&plain_path, &batch, durability, limits)?;
                accumulate(&mut plain, run, PlainRun::then);
                if !fsync {
                    // The broker fsyncs behind acks=1 writes; so does this reference.
                    quiesce(&options.run_dir)?;
                    let run = plain::run(&plain_path, &batch, Durability::Background, limits)?;
                    accumulate(&mut background, run, PlainRun::then);
                }
                accumulate(
                    &mut spate,
                    spate_case(
                        broker,
                        &mut admin,
                        &options.run_dir,
                        &topic,
                        &batch,
                        acks,
                        in_flight,
                        limits,
                    )?,
                    SpateRun::then,
                );
            }
            let (plain, spate) = (plain.expect("rounds >= 1"), spate.expect("rounds >= 1"));
            let (plain, spate) = (plain.result(), spate.result());
            progress_done(&plain, &spate);
            pairs.push(Pair {
                batch_bytes: size,
                fsync,
                in_flight,
                plain,
                plain_background: background.map(|b| b.result()),
                spate,
            });
        }
    }

    let mut concurrent = Vec::new();
    for &size in &options.concurrent_sizes {
        let batch = batch::exact_batch(size)?;
        let limits = options.limits(size).slice(rounds);
        let producers = options.producers;
        progress(&format!(
            "{} x {producers} acks=all, {rounds} round(s) of plain then spate",
            size_label(size)
        ));
        let paths: Vec<PathBuf> = (0..producers)
            .map(|i| options.run_dir.join(format!("plain-{i}.log")))
            .collect();
        let known_single = pairs
            .iter()
            .find(|p| p.fsync && p.batch_bytes == size)
            .map(|p| {
                (
                    p.plain.sync.unwrap_or_default(),
                    p.plain.batch,
                    p.plain.throughput,
                )
            });
        let (mut single, mut many, mut spate) = (None, None, None);
        for round in 0..rounds {
            if known_single.is_none() {
                quiesce(&options.run_dir)?;
                let run = plain::run(&plain_path, &batch, Durability::PerBatch, limits)?;
                accumulate(&mut single, run, PlainRun::then);
            }
            quiesce(&options.run_dir)?;
            accumulate(
                &mut many,
                plain::run_concurrently(&paths, &batch, Durability::PerBatch, limits)?,
                PlainRun::then,
            );
            let topic = format!("bench-concurrent-{size}-{round}");
            accumulate(
                &mut spate,
                concurrent_case(
                    broker,
                    &mut admin,
                    &options.run_dir,
                    &topic,
                    &batch,
                    producers,
                    limits,
                )?,
                SpateRun::then,
            );
        }
        let (plain_sync, plain_batch, plain_throughput) = match (known_single, single) {
            (Some(known), _) => known,
            (None, Some(single)) => {
                let r = single.result();
                (r.sync.unwrap_or_default(), r.batch, r.throughput)
            }
            (None, None) => unreachable!("rounds >= 1"),
        };
        let plain_many = many.expect("rounds >= 1").result();
        let spate = spate.expect("rounds >= 1").result();
        progress_done(&plain_many, &spate);
        concurrent.push(Concurrent {
            batch_bytes: size,
            producers,
            spate,
            plain_sync,
            plain_batch,
            plain_throughput,
            plain_many,
        });
    }

    let mut tcp_rows = Vec::new();
    if options.tcp {
        for &size in &options.sizes {
            progress(&format!("loopback TCP {}", size_label(size)));
            let batch = batch::exact_batch(size)?;
            // The network is not what is being measured: a short run is enough.
            let limits = options.limits(size);
            let limits = Limits {
                bytes: limits.bytes,
                secs: limits.secs.min(1.0),
            };
            let result = tcp::run(&batch, limits)?;
            eprintln!(
                "{:>8.1} MB/s streaming, round trip p50 {:.3} ms",
                result.stream.mb_per_sec(),
                result.round_trip.p50_ms
            );
            tcp_rows.push(TcpRow {
                batch_bytes: size,
                result,
            });
        }
    }
    Ok((pairs, concurrent, tcp_rows))
}

/// One producer on a fresh topic; the topic is deleted afterwards.
#[allow(clippy::too_many_arguments)]
fn spate_case(
    broker: &Broker,
    admin: &mut Conn,
    run_dir: &Path,
    topic: &str,
    batch: &Batch,
    acks: Acks,
    in_flight: usize,
    limits: Limits,
) -> Result<SpateRun, String> {
    admin.create_topic(topic, 1)?;
    quiesce(run_dir)?;
    let mut conn = Conn::connect(broker.addr)?;
    let spec = Spec {
        topic: topic.to_string(),
        partition: 0,
        acks,
        in_flight,
        batch: batch.clone(),
        limits,
        rate: None,
    };
    let meter = CpuMeter::start(broker)?;
    let outcome = producer::produce(&mut conn, &spec)?;
    let cpu = meter.stop()?;
    if acks != Acks::All {
        // Let the background writes and fsyncs finish before the next case: an acks=all request
        // behind them is answered once everything before it is flushed. Not timed.
        let mut frame = ProduceFrame::new(topic, 0, Acks::All, batch.bytes.clone())?;
        let id = conn.take_correlation_id();
        conn.send_frame(frame.with_id(id))?;
        check_produce_response(conn.read_frame()?, id)?;
    }
    drop(conn);
    admin.delete_topic(topic)?;
    wait_removed(run_dir, topic)?;
    Ok(SpateRun { outcome, cpu })
}

/// One acks=all producer per partition of a fresh topic, concurrently; the topic is deleted
/// afterwards.
fn concurrent_case(
    broker: &Broker,
    admin: &mut Conn,
    run_dir: &Path,
    topic: &str,
    batch: &Batch,
    producers: usize,
    limits: Limits,
) -> Result<SpateRun, String> {
    admin.create_topic(topic, producers as i32)?;
    quiesce(run_dir)?;
    let specs = (0..producers)
        .map(|partition| Spec {
            topic: topic.to_string(),
            partition: partition as i32,
            acks: Acks::All,
            in_flight: 1,
            batch: batch.clone(),
            limits: Limits {
                bytes: (limits.bytes / producers as u64).max(batch.bytes.len() as u64),
                secs: limits.secs,
            },
            rate: None,
        })
        .collect();
    let meter = CpuMeter::start(broker)?;
    let outcome = producer::produce_concurrently(broker.addr, specs)?;
    let cpu = meter.stop()?;
    admin.delete_topic(topic)?;
    wait_removed(run_dir, topic)?;
    Ok(SpateRun { outcome, cpu })
}

/// Lets the file system settle before a timed run: syncfs commits the journal, so the freeing
/// of a deleted file or topic and the metadata of topic creation are not paid for by the next
/// run's first fdatasyncs.
fn quiesce(run_dir: &Path) -> Result<(), String> {
    let dir = std::fs::File::open(run_dir)
        .map_err(|e| format!("cannot open {}: {e}", run_dir.display()))?;
    // SAFETY: syncfs on a descriptor we own and keep open for the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("syncfs on {} failed: {e}", run_dir.display()));
    }
    Ok(())
}

/// Waits until the broker has removed a deleted topic's directory: it answers DeleteTopics once
/// the metadata change is durable and removes the files afterwards, which must not overlap the
/// next run.
fn wait_removed(run_dir: &Path, topic: &str) -> Result<(), String> {
    let data_dir = run_dir.join("spate");
    let prefix = format!("{topic}.");
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let entries = std::fs::read_dir(&data_dir)
            .map_err(|e| format!("cannot list {}: {e}", data_dir.display()))?;
        let present = entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with(&prefix));
        if !present {
            return Ok(());
        }
        if Instant::now() > give_up {
            return Err(format!(
                "the broker did not remove the files of deleted topic '{topic}' within 60 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn progress(what: &str) {
    eprint!("  {what:<52} ");
}

fn progress_done(plain: &PlainResult, spate: &SpateResult) {
    let latency = plain.sync.as_ref().unwrap_or(&plain.write);
    eprintln!(
        "plain {:.1} MB/s p99 {:.3} ms | spate {:.1} MB/s p99 {:.3} ms",
        plain.throughput.mb_per_sec(),
        latency.p99_ms,
        spate.throughput.mb_per_sec(),
        spate.latency.p99_ms,
    );
}
