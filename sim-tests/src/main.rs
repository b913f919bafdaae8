//! `spate-sim` (`just sim`): runs one seed or a swarm of seeds through the simulator and the
//! checkers, printing each seed's fault parameters, a summary, and for a failure the command
//! that replays it.

use clap::Parser;
use spate_runtime_sim::Options;
use spate_sim_tests::{planted_bug, replay_command, run_seed};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "spate-sim",
    about = "Deterministic simulation of a Spate broker under faults"
)]
struct Args {
    /// Run this one seed (verbose).
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a swarm of seeds, A..B (B excluded), printing one line per seed.
    #[arg(long, value_name = "A..B")]
    seeds: Option<String>,
    /// Virtual seconds of the fault phase [default: 10].
    #[arg(long)]
    virtual_secs: Option<u64>,
    /// Stop a run after this many events.
    #[arg(long)]
    steps: Option<u64>,
    /// Plant a known bug: ack-before-fsync, lose-last-batch, commit-before-flush,
    /// stuck-group-deadline, mislabel-split-fetch, skip-dir-sync or forget-leader-epochs; in a
    /// cluster, vote-twice, commit-minority, keep-fenced-leaders, hw-from-leader-alone,
    /// durable-before-fsync, elect-outside-in-sync, skip-truncation,
    /// clamp-epoch-ends or prefer-out-of-sync.
    #[arg(long)]
    buggify: Option<String>,
    /// No faults at all (a baseline run).
    #[arg(long)]
    no_faults: bool,
    /// Run a cluster of this many nodes (1 to 5; each a controller voter and a broker) under
    /// network partitions, lost and duplicated frames, crashes and clock jumps.
    #[arg(long, value_name = "N")]
    nodes: Option<usize>,
    /// Run a cluster of as many nodes as each seed picks (mostly 3 and 5).
    #[arg(long, conflicts_with = "nodes")]
    cluster: bool,
    /// Print the node's log and the fault events as they happen.
    #[arg(long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("spate-sim: {message}");
            ExitCode::from(2)
        }
    }
}

fn options(args: &Args, seed: u64) -> Result<Options, String> {
    let mut options = Options::new(seed);
    if let Some(secs) = args.virtual_secs {
        options.fault_secs = secs;
    }
    if let Some(steps) = args.steps {
        options.steps_max = steps;
    }
    options.planted_bug = args.buggify.as_deref().map(planted_bug).transpose()?;
    options.faults = !args.no_faults;
    options.verbose = args.verbose;
    options.nodes = match (args.nodes, args.cluster) {
        (Some(n), _) if !(1..=5).contains(&n) => {
            return Err(format!("--nodes {n}: the simulator runs 1 to 5 nodes"))
        }
        (Some(n), _) => Some(n),
        (None, true) => Some(0),
        (None, false) => None,
    };
    Ok(options)
}

fn run(args: Args) -> Result<bool, String> {
    let (from, to, verbose) = match (&args.seed, &args.seeds) {
        (Some(seed), _) => (*seed, *seed + 1, true),
        (None, Some(range)) => {
            let (a, b) = range
                .split_once("..")
                .ok_or_else(|| format!("--seeds {range}: expected A..B, e.g. 1..201"))?;
            let parse = |s: &str| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("--seeds {range}: '{s}' is not a number"))
            };
            (parse(a)?, parse(b)?, false)
        }
        (None, None) => return Err("give --seed N or --seeds A..B".into()),
    };
    let started = Instant::now();
    let (mut failed, mut virtual_us) = (Vec::new(), 0u64);
    for seed in from..to {
        let options = options(&args, seed)?;
        let (failing, outcome) = run_seed(options.clone());
        virtual_us += outcome.stats.virtual_us;
        let s = &outcome.stats;
        if let (true, Some((faults, counts))) = (verbose, &outcome.cluster) {
            println!("seed {seed}: a cluster, faults derived from the seed:\n{faults}");
            println!(
                "  ran {} events over {:.1} virtual s: {} crashes (writes kept/torn/lost {}/{}/{}), {} client requests",
                s.events, s.virtual_us as f64 / 1e6, s.crashes, s.writes_kept, s.writes_torn, s.writes_lost, s.requests
            );
            println!(
                "  {} quorum frames ({} lost, {} duplicated), {} controller terms with a leader, {} metadata entries committed",
                counts.frames, counts.frames_lost, counts.frames_duplicated, counts.controller_terms, counts.committed_index
            );
            println!(
                "  {} topic creations and {} partition additions acknowledged, {} partition leaderships chosen, {} leaders told to clients, {} connections closed on a lost leadership",
                counts.topics_acknowledged, counts.partitions_added, counts.leaderships, counts.leaders_told, counts.connections_closed
            );
            let h = &outcome.history;
            println!(
                "  ledger: {} records sent, {} acknowledged batches, {} offsets read, {} in the final log (read after every node lost power); {} replica fetches",
                h.sent.len(), h.acks.len(), h.observed.len(), h.final_log.len(), counts.peer_requests
            );
            println!("  trace hash {:016x}", outcome.trace_hash);
        } else if verbose {
            println!(
                "seed {seed}: faults derived from the seed:\n{}",
                outcome.faults
            );
            println!(
                "  ran {} events over {:.1} virtual s: {} requests, {} crashes (writes kept/torn/lost {}/{}/{}, unnamed files lost {}), {} bit flips, {} dropped messages, {} failed writes",
                s.events, s.virtual_us as f64 / 1e6, s.requests, s.crashes, s.writes_kept, s.writes_torn, s.writes_lost,
                s.files_lost, s.bit_flips, s.dropped_messages, s.failed_writes
            );
            if outcome.faults.shards > 1 {
                println!(
                    "  shards: {} messages between them, {} connections moved",
                    s.shard_messages, s.migrations
                );
            }
            let h = &outcome.history;
            println!(
                "  {} records sent, {} acknowledged batches, {} offsets read, {} in the final log, {} producer session resets",
                h.sent.len(), h.acks.len(), h.observed.len(), h.final_log.len(), h.sequence_resets
            );
            println!(
                "  group '{}': {} assignments handed out, {} commits acknowledged, {} committed offsets after the last restart",
                spate_runtime_sim::GROUP, h.assignments.len(), h.commits.len(), h.final_commits.len()
            );
            if std::env::var_os("SPATE_SIM_DEBUG").is_some() {
                println!("  recovered commits: {:?}", h.recovered_commits);
                println!(
                    "  commits: {:?}",
                    h.commits
                        .iter()
                        .map(|c| (c.partition, c.offset, c.at))
                        .collect::<Vec<_>>()
                );
            }
            println!("  trace hash {:016x}", outcome.trace_hash);
        }
        if failing.is_empty() {
            if !verbose {
                println!(
                    "seed {seed}: ok ({} events, trace {:016x})",
                    s.events, outcome.trace_hash
                );
            }
        } else {
            println!("seed {seed}: FAILED");
            for verdict in &failing {
                println!(
                    "  {} checker: {} violation(s)",
                    verdict.checker,
                    verdict.violations.len()
                );
                for violation in verdict.violations.iter().take(5) {
                    println!("    {violation}");
                }
            }
            println!(
                "  replay: {}",
                replay_command(&options, args.buggify.as_deref())
            );
            failed.push(seed);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let seeds = to - from;
    println!(
        "{} of {seeds} seeds passed in {wall:.1} s wall: {:.0} simulated s per wall s, {:.0} seeds per minute",
        seeds - failed.len() as u64,
        virtual_us as f64 / 1e6 / wall.max(1e-9),
        seeds as f64 * 60.0 / wall.max(1e-9)
    );
    if !failed.is_empty() {
        println!("failing seeds: {failed:?}");
    }
    Ok(failed.is_empty())
}
