//! `replication`: what replication costs. Three `spate server` processes on this machine form
//! one cluster (each a controller voter and a broker, one shard each); producers write to a
//! topic of replication factor 1 and to one of factor 3, with acks=all and with acks=1, one
//! producer per partition, each to its partition's leader. Rounds alternate the factors so a
//! drifting disk treats both alike; the report gives MB/s and latency per case and the ratios
//! of factor 3 to factor 1. On a small machine the three processes share the cores and the
//! disk: read the ratio, not the absolute figure.
//!
//! With acks=all a factor-3 batch is answered once both followers fetched it, wrote it and
//! fsynced it and fetched again (Spate's high watermark is the lowest durable offset over the
//! in-sync set); with acks=1 once the leader appended it.

use crate::batch::{exact_batch, Batch};
use crate::broker::Broker;
use crate::kafka::{Acks, Conn};
use crate::producer::{produce_at, Outcome, Spec};
use crate::stats::{Latency, Limits};
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Options {
    pub run_dir: PathBuf,
    pub spate_bin: PathBuf,
    pub secs: f64,
    pub partitions: usize,
    pub batch_bytes: usize,
    pub in_flight: usize,
    pub rounds: usize,
}

/// One case's result: replication factor, acks, MB/s, latency.
pub struct Case {
    pub factor: i16,
    pub acks: Acks,
    pub mb_per_sec: f64,
    pub latency: Latency,
}

pub struct Report {
    pub options_line: String,
    pub cases: Vec<Case>,
}

const NODES: usize = 3;

pub fn run(options: &Options) -> Result<Report, String> {
    let ports = (0..NODES)
        .map(|_| free_port())
        .collect::<Result<Vec<_>, _>>()?;
    let voters = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut brokers = Vec::new();
    for i in 0..NODES {
        let args = vec![
            "--node-id".to_string(),
            (i + 1).to_string(),
            "--controller-quorum".to_string(),
            voters.clone(),
            "--cores".to_string(),
            "1".to_string(),
        ];
        let dir = options.run_dir.join(format!("node{}", i + 1));
        brokers.push(Broker::start(&options.spate_bin, &dir, None, &args)?);
    }
    let addrs: Vec<SocketAddr> = brokers.iter().map(|b| b.addr).collect();
    let batch = exact_batch(options.batch_bytes)?;
    let mut cases: Vec<Case> = Vec::new();
    let mut totals: Vec<(i16, Acks, Outcome)> = Vec::new();
    for round in 0..options.rounds {
        for acks in [Acks::All, Acks::Leader] {
            for factor in [1i16, 3] {
                let topic = format!(
                    "rf{factor}-acks{}-r{round}",
                    match acks {
                        Acks::All => "all",
                        Acks::Leader => "1",
                    }
                );
                let leaders = create_and_place(&addrs, &topic, options.partitions, factor)?;
                let specs = leaders
                    .iter()
                    .enumerate()
                    .map(|(p, &leader)| {
                        let spec = Spec {
                            topic: topic.clone(),
                            partition: p as i32,
                            acks,
                            in_flight: options.in_flight,
                            batch: batch.clone(),
                            limits: Limits {
                                bytes: u64::MAX,
                                secs: options.secs,
                            },
                            rate: None,
                        };
                        (addrs[leader], spec)
                    })
                    .collect();
                let outcome = produce_at(specs)?;
                match totals
                    .iter_mut()
                    .find(|(f, a, _)| *f == factor && *a == acks)
                {
                    Some((_, _, total)) => total.then(outcome),
                    None => totals.push((factor, acks, outcome)),
                }
            }
        }
    }
    for (factor, acks, outcome) in totals {
        cases.push(Case {
            factor,
            acks,
            mb_per_sec: outcome.throughput.mb_per_sec(),
            latency: outcome.latency.summary(),
        });
    }
    for broker in brokers {
        broker.stop()?;
    }
    Ok(Report {
        options_line: format!(
            "{} nodes on this machine (one shard each), {} partitions with one producer each, batches of {} bytes, {} in flight, {} s per case, {} rounds",
            NODES, options.partitions, batch_len(&batch), options.in_flight, options.secs, options.rounds
        ),
        cases,
    })
}

fn batch_len(batch: &Batch) -> usize {
    batch.bytes.len()
}

fn acks_label(acks: Acks) -> &'static str {
    match acks {
        Acks::All => "acks=all",
        Acks::Leader => "acks=1",
    }
}

/// Creates the topic through whichever node takes it (the active controller, once all three
/// brokers registered), then waits until every partition has a leader and, replicated, all
/// its replicas in sync; returns each partition's leader as an index into `addrs`.
fn create_and_place(
    addrs: &[SocketAddr],
    topic: &str,
    partitions: usize,
    factor: i16,
) -> Result<Vec<usize>, String> {
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    'create: loop {
        for addr in addrs {
            match Conn::connect(*addr)
                .and_then(|mut c| c.create_replicated_topic(topic, partitions as i32, factor))
            {
                Ok(()) => break 'create,
                Err(e) => last = e,
            }
        }
        if Instant::now() > give_up {
            return Err(format!("cannot create {topic}: {last}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    loop {
        let seen = Conn::connect(addrs[0]).and_then(|mut c| c.partition_leaders(topic))?;
        let ready = seen.len() == partitions
            && seen.iter().all(|&(leader, isr)| {
                leader >= 1 && leader as usize <= addrs.len() && isr == factor as usize
            });
        if ready {
            return Ok(seen
                .iter()
                .map(|&(leader, _)| leader as usize - 1)
                .collect());
        }
        if Instant::now() > give_up {
            return Err(format!(
                "{topic} is not placed and in sync within 60 s: {seen:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl Report {
    fn case(&self, factor: i16, acks: Acks) -> Option<&Case> {
        self.cases
            .iter()
            .find(|c| c.factor == factor && c.acks == acks)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "replication: {}", self.options_line);
        let _ = writeln!(
            out,
            "{:<10} {:>6} {:>10} {:>10} {:>10} {:>10}",
            "acks", "factor", "MB/s", "p50 ms", "p99 ms", "p99.9 ms"
        );
        for c in &self.cases {
            let _ = writeln!(
                out,
                "{:<10} {:>6} {:>10.1} {:>10.2} {:>10.2} {:>10.2}",
                acks_label(c.acks),
                c.factor,
                c.mb_per_sec,
                c.latency.p50_ms,
                c.latency.p99_ms,
                c.latency.p999_ms
            );
        }
        for acks in [Acks::All, Acks::Leader] {
            if let (Some(one), Some(three)) = (self.case(1, acks), self.case(3, acks)) {
                let _ = writeln!(
                    out,
                    "{}: factor 3 / factor 1: throughput {:.2}x, p99 latency {:.2}x",
                    acks_label(acks),
                    three.mb_per_sec / one.mb_per_sec.max(f64::MIN_POSITIVE),
                    three.latency.p99_ms / one.latency.p99_ms.max(f64::MIN_POSITIVE)
                );
            }
        }
        out
    }
}
