//! `spate-bench`: Spate's benchmarks, run against the real broker binary over the Kafka protocol.
//!
//! - `storage`: a plain direct-I/O writer (the machine's raw figures) beside the broker, batch
//!   size by batch size, with and without an fsync per batch; concurrent acks=all producers;
//!   loopback TCP as a second reference.
//! - `memory`: the broker's resident memory under sustained produce and consume load, beside its
//!   configured tail cache.
//! - `replication`: a 3-node cluster on this machine, replication factor 3 beside 1, acks=all
//!   and acks=1, as ratios.
//!
//! Modules: `batch` (exact-size record batches), `plain` (the reference writer), `kafka` (the
//! client), `producer` (load), `broker` (the child process and /proc), `tcp` (loopback
//! reference), `storage` and `memory` (the two benchmarks), `report` (tables and JSON), `stats`
//! (histograms), `machine` (what it ran on).

mod batch;
mod broker;
mod compaction;
mod kafka;
mod machine;
mod memory;
mod plain;
mod producer;
mod replication;
mod report;
mod stats;
mod storage;
mod tcp;

use clap::{Args, Parser, Subcommand};
use report::Json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "spate-bench",
    about = "Spate's benchmarks: storage (the broker beside a plain direct-I/O writer on the same \
             disk) and memory (RSS under load)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The broker's produce throughput and latency beside a plain O_DIRECT writer on the same
    /// disk, per batch size, with and without an fsync per batch; concurrent acks=all producers;
    /// loopback TCP as a second reference.
    Storage(StorageArgs),
    /// The broker's resident memory (VmRSS, sampled every 100 ms) under sustained produce and
    /// tail-consume load, beside its configured tail cache.
    Memory(MemoryArgs),
    /// Replication's cost: three brokers on this machine as one cluster, producers to a topic
    /// of replication factor 3 beside one of factor 1, acks=all and acks=1
    Replication(ReplicationArgs),
    /// The log cleaner: its throughput (MB/s of dirty log) and the p99 of acks=all produces
    /// on the same shard while it cleans, beside the same produces with it idle
    Compaction(CompactionArgs),
}

#[derive(Args)]
struct CompactionArgs {
    #[command(flatten)]
    common: Common,
    /// Bytes of keyed updates to compact
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "512M")]
    fill: u64,
    /// Distinct keys the updates cycle over
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    keys: usize,
    /// Seconds of the probe with the cleaner idle
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    probe_secs: f64,
}

#[derive(Args)]
struct ReplicationArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds per case and round
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    secs: f64,
    /// Partitions, each with one producer to its leader
    #[arg(long, value_name = "N", default_value_t = 3)]
    partitions: usize,
    /// Batch size of the producers
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "64K")]
    batch: u64,
    /// Requests in flight per producer
    #[arg(long, value_name = "N", default_value_t = 1)]
    in_flight: usize,
    /// Rounds, each running every case once (factors alternate)
    #[arg(long, value_name = "N", default_value_t = 2)]
    rounds: usize,
}

#[derive(Args)]
struct Common {
    /// Directory on the disk to measure; the plain writer's file and the broker's data dir are
    /// created side by side in a fresh run-* directory inside [default: target/bench-data]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The broker binary [default: target/release/spate, beside this binary]
    #[arg(long, value_name = "PATH")]
    spate_bin: Option<PathBuf>,
    /// Pin the broker's executor to this CPU (spate server --cpu)
    #[arg(long, value_name = "CPU", conflicts_with = "broker_cores")]
    broker_cpu: Option<usize>,
    /// Run the broker with N shards (spate server --cores N)
    #[arg(long, value_name = "N")]
    broker_cores: Option<usize>,
    /// Keep the run directory (broker data and log) afterwards
    #[arg(long)]
    keep: bool,
    /// Also write the results as JSON to FILE ("-" for standard output)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

impl Common {
    /// The broker's placement flags.
    fn broker_args(&self) -> Vec<String> {
        match (self.broker_cpu, self.broker_cores) {
            (Some(cpu), _) => vec!["--cpu".into(), cpu.to_string()],
            (None, Some(cores)) => vec!["--cores".into(), cores.to_string()],
            (None, None) => Vec::new(),
        }
    }
}

#[derive(Args)]
struct StorageArgs {
    #[command(flatten)]
    common: Common,
    /// A smoke run of about 20 s: an eighth of the bytes, at most 1 s per case
    #[arg(long)]
    quick: bool,
    /// Bytes per case, e.g. 256M [default: 32M for 1 KiB batches, 256M for 16 KiB, 512M for
    /// 64 KiB, 1G above; an eighth with --quick]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    bytes: Option<u64>,
    /// At most this many seconds per case [default: 5, or 1 with --quick]
    #[arg(long, value_name = "SECS")]
    case_secs: Option<f64>,
    /// Batch sizes, each exactly this many bytes of ~1 KiB records
    #[arg(long, value_name = "SIZES", value_delimiter = ',', value_parser = parse_size,
          default_value = "1K,16K,64K,1M")]
    sizes: Vec<u64>,
    /// Requests in flight per connection without fsync (acks=1)
    #[arg(long, value_name = "N", default_value_t = 8)]
    pipeline: usize,
    /// Requests in flight per connection with fsync (acks=all); 1 is the per-batch fsync case
    #[arg(long, value_name = "N", default_value_t = 1)]
    acks_all_in_flight: usize,
    /// Rounds per case, alternating plain and spate (a shared disk drifts; alternating exposes
    /// both to the same drift)
    #[arg(long, value_name = "N", default_value_t = 3)]
    rounds: usize,
    /// Connections (one partition each) in the concurrent acks=all case
    #[arg(long, value_name = "N", default_value_t = 8)]
    producers: usize,
    /// Batch sizes of the concurrent acks=all case
    #[arg(long, value_name = "SIZES", value_delimiter = ',', value_parser = parse_size,
          default_value = "16K,64K")]
    concurrent_sizes: Vec<u64>,
    /// Skip the concurrent producers
    #[arg(long)]
    no_concurrent: bool,
    /// Skip the loopback TCP reference
    #[arg(long)]
    no_tcp: bool,
    /// Let glommio probe polled I/O on the plain writer's first file, which is empty, as the
    /// broker's segments are: on a disk without poll queues this puts the plain writer on the
    /// IOPOLL ring too (see docs/PERFORMANCE.md)
    #[arg(long)]
    plain_empty_probe: bool,
    /// Start the broker, write one batch, restart it and write one more before the cases, so
    /// that glommio's polled-I/O probe in the broker may see a segment holding data (a
    /// diagnostic that depends on the order in which the broker opens files: see
    /// docs/PERFORMANCE.md)
    #[arg(long)]
    prime_broker: bool,
}

#[derive(Args)]
struct MemoryArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds of load
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    secs: f64,
    /// Partitions, each with one producer and one consumer
    #[arg(long, value_name = "N", default_value_t = 8)]
    partitions: usize,
    /// Batch size of the producers
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "64K")]
    batch: u64,
    /// Requests in flight per producer (acks=1)
    #[arg(long, value_name = "N", default_value_t = 4)]
    in_flight: usize,
    /// Total produce rate in MB/s (10^6 bytes); 0 for as fast as the broker takes it
    #[arg(long, value_name = "MB_PER_SEC", default_value_t = 200.0)]
    rate: f64,
    /// Start the broker with this tail.cache.bytes.per.partition [default: the broker's own]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    tail_cache: Option<u64>,
    /// Start the broker, write one batch, restart it and write one more before the load, so
    /// that glommio's polled-I/O probe in the broker may see a segment holding data (a
    /// diagnostic that depends on the order in which the broker opens files: see
    /// docs/PERFORMANCE.md)
    #[arg(long)]
    prime_broker: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("spate-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Storage(args) => {
            if args.sizes.is_empty() {
                return Err("--sizes needs at least one batch size".into());
            }
            // Everything that can be refused is checked before the run directory exists.
            let spate_bin = spate_bin(&args.common)?;
            let sizes = batch_sizes(&args.sizes)?;
            let concurrent_sizes = if args.no_concurrent {
                Vec::new()
            } else {
                batch_sizes(&args.concurrent_sizes)?
            };
            let run_dir = RunDir::create(&args.common)?;
            let quick = args.quick;
            let options = storage::Options {
                run_dir: run_dir.path.clone(),
                spate_bin,
                broker_args: args.common.broker_args(),
                sizes,
                bytes: args.bytes,
                case_secs: args.case_secs.unwrap_or(if quick { 1.0 } else { 5.0 }),
                quick,
                pipeline: args.pipeline.max(1),
                acks_all_in_flight: args.acks_all_in_flight.max(1),
                rounds: args.rounds.max(1),
                producers: args.producers.max(1),
                concurrent_sizes,
                tcp: !args.no_tcp,
                plain_empty_probe: args.plain_empty_probe,
                prime_broker: args.prime_broker,
            };
            eprintln!(
                "spate-bench storage: broker {}, data in {}",
                options.spate_bin.display(),
                options.run_dir.display()
            );
            let report = run_dir.finish(storage::run(&options))?;
            print!("{}", report.render());
            write_json(args.common.json.as_deref(), &report.json())
        }
        Command::Memory(args) => {
            if args.partitions == 0 || args.secs <= 0.0 {
                return Err("--partitions and --secs must be positive".into());
            }
            let spate_bin = spate_bin(&args.common)?;
            let batch_bytes = batch_sizes(&[args.batch])?[0];
            let run_dir = RunDir::create(&args.common)?;
            let options = memory::Options {
                run_dir: run_dir.path.clone(),
                spate_bin,
                broker_args: args.common.broker_args(),
                secs: args.secs,
                partitions: args.partitions,
                batch_bytes,
                in_flight: args.in_flight.max(1),
                rate: (args.rate > 0.0).then_some(args.rate * 1e6),
                tail_cache: args.tail_cache,
                prime_broker: args.prime_broker,
            };
            eprintln!(
                "spate-bench memory: broker {}, data in {}",
                options.spate_bin.display(),
                options.run_dir.display()
            );
            let report = run_dir.finish(memory::run(&options))?;
            print!("{}", report.render());
            write_json(args.common.json.as_deref(), &report.json())
        }
        Command::Replication(args) => {
            if args.partitions == 0 || args.secs <= 0.0 {
                return Err("--partitions and --secs must be positive".into());
            }
            let spate_bin = spate_bin(&args.common)?;
            let batch_bytes = batch_sizes(&[args.batch])?[0];
            let run_dir = RunDir::create(&args.common)?;
            let options = replication::Options {
                run_dir: run_dir.path.clone(),
                spate_bin,
                secs: args.secs,
                partitions: args.partitions,
                batch_bytes,
                in_flight: args.in_flight.max(1),
                rounds: args.rounds.max(1),
            };
            eprintln!(
                "spate-bench replication: broker {}, data in {}",
                options.spate_bin.display(),
                options.run_dir.display()
            );
            let report = run_dir.finish(replication::run(&options))?;
            print!("{}", report.render());
            Ok(())
        }
        Command::Compaction(args) => {
            if args.keys == 0 || args.probe_secs <= 0.0 {
                return Err("--keys and --probe-secs must be positive".into());
            }
            let spate_bin = spate_bin(&args.common)?;
            let run_dir = RunDir::create(&args.common)?;
            let options = compaction::Options {
                run_dir: run_dir.path.clone(),
                spate_bin,
                fill_bytes: args.fill,
                keys: args.keys,
                probe_secs: args.probe_secs,
            };
            eprintln!(
                "spate-bench compaction: broker {}, data in {}",
                options.spate_bin.display(),
                options.run_dir.display()
            );
            let report = run_dir.finish(compaction::run(&options))?;
            print!("{}", report.render());
            Ok(())
        }
    }
}

/// This run's directory under `--dir`; removed afterwards unless `--keep` or the run failed.
struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    fn create(common: &Common) -> Result<RunDir, String> {
        let base = match &common.dir {
            Some(dir) => dir.clone(),
            None => beside_exe(&["..", "bench-data"]).unwrap_or_else(|| "target/bench-data".into()),
        };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = base.join(format!("run-{stamp}-{}", std::process::id()));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let path = path.canonicalize().unwrap_or(path);
        Ok(RunDir {
            path,
            keep: common.keep,
        })
    }

    fn finish<T>(self, result: Result<T, String>) -> Result<T, String> {
        match &result {
            Err(_) => eprintln!(
                "spate-bench: kept {} (the broker's log is spate.log there)",
                self.path.display()
            ),
            Ok(_) if self.keep => eprintln!("spate-bench: kept {}", self.path.display()),
            Ok(_) => {
                if let Err(e) = std::fs::remove_dir_all(&self.path) {
                    eprintln!("spate-bench: cannot remove {}: {e}", self.path.display());
                }
            }
        }
        result
    }
}

/// A path relative to the directory of this executable (target/release).
fn beside_exe(parts: &[&str]) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut path = exe.parent()?.to_path_buf();
    for part in parts {
        if *part == ".." {
            path = path.parent()?.to_path_buf();
        } else {
            path.push(part);
        }
    }
    Some(path)
}

fn spate_bin(common: &Common) -> Result<PathBuf, String> {
    let bin = match &common.spate_bin {
        Some(bin) => bin.clone(),
        None => beside_exe(&["spate"]).unwrap_or_else(|| "target/release/spate".into()),
    };
    if !bin.is_file() {
        return Err(format!(
            "no broker binary at {} (build it with `cargo build --release -p spate`, or pass \
             --spate-bin PATH)",
            bin.display()
        ));
    }
    Ok(bin.canonicalize().unwrap_or(bin))
}

fn batch_sizes(sizes: &[u64]) -> Result<Vec<usize>, String> {
    sizes
        .iter()
        .map(|&size| match usize::try_from(size) {
            Ok(s) if (128..=64 * 1024 * 1024).contains(&s) => Ok(s),
            _ => Err(format!("batch size {size} is outside 128 bytes to 64 MiB")),
        })
        .collect()
}

/// `4096`, `16K`, `16KiB`, `1M`, `1MiB`, `2G` (binary units).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size (e.g. 4096, 16K, 1M, 2G)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("'{text}': unknown unit '{unit}' (use K, M or G)")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

fn write_json(path: Option<&Path>, json: &Json) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let text = json.to_pretty();
    if path == Path::new("-") {
        print!("{text}");
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("spate-bench: results in {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("16K"), Ok(16 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("K").is_err());
    }
}
