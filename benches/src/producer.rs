//! Producers: the same batch sent again and again to one partition over one connection, with a
//! fixed number of requests in flight, and several such producers at once.
//!
//! With one request in flight a producer sends, waits for the answer, sends again: with acks=all
//! each request's latency is the broker's append + write + fdatasync + response. With more in
//! flight the producer keeps that many requests sent ahead (Kafka's
//! `max.in.flight.requests.per.connection`); their latency then includes the wait behind the
//! requests ahead of them, since the broker serves a connection's requests in order.

use crate::batch::Batch;
use crate::kafka::{check_produce_response, Acks, Conn, ProduceFrame};
use crate::stats::{Limits, Recorder, Throughput};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// What one producer does.
#[derive(Clone)]
pub struct Spec {
    pub topic: String,
    pub partition: i32,
    pub acks: Acks,
    pub in_flight: usize,
    pub batch: Batch,
    pub limits: Limits,
    /// Bytes per second to stay under, if any.
    pub rate: Option<f64>,
}

/// What producers achieved.
pub struct Outcome {
    pub throughput: Throughput,
    pub latency: Recorder,
}

impl Outcome {
    /// Adds a later run (the times add up).
    pub fn then(&mut self, other: Outcome) {
        self.throughput.then(&other.throughput);
        self.latency.merge(&other.latency);
    }
}

/// Runs one producer on `conn` until its limits.
pub fn produce(conn: &mut Conn, spec: &Spec) -> Result<Outcome, String> {
    let mut frame = ProduceFrame::new(
        &spec.topic,
        spec.partition,
        spec.acks,
        spec.batch.bytes.clone(),
    )?;
    let batch_bytes = spec.batch.bytes.len() as u64;
    let mut in_flight: VecDeque<(i32, Instant)> = VecDeque::with_capacity(spec.in_flight);
    let mut latency = Recorder::new();
    let (mut sent_bytes, mut acked) = (0u64, 0u64);
    let start = Instant::now();
    let deadline = spec.limits.deadline(start);
    loop {
        while in_flight.len() < spec.in_flight.max(1)
            && sent_bytes < spec.limits.bytes
            && Instant::now() < deadline
        {
            if let Some(rate) = spec.rate {
                let due = start + Duration::from_secs_f64(sent_bytes as f64 / rate);
                let now = Instant::now();
                if due > now {
                    if !in_flight.is_empty() {
                        break; // collect an answer meanwhile
                    }
                    std::thread::sleep(due - now);
                }
            }
            let id = conn.take_correlation_id();
            conn.send_frame(frame.with_id(id))?;
            in_flight.push_back((id, Instant::now()));
            sent_bytes += batch_bytes;
        }
        let Some((id, sent)) = in_flight.pop_front() else {
            break;
        };
        let body = conn.read_frame()?;
        latency.record(sent.elapsed());
        check_produce_response(body, id)?;
        acked += 1;
    }
    Ok(Outcome {
        throughput: Throughput {
            bytes: acked * batch_bytes,
            batches: acked,
            records: acked * spec.batch.records as u64,
            secs: start.elapsed().as_secs_f64(),
        },
        latency,
    })
}

/// Runs one producer per spec, each on its own connection and thread, started together. The
/// throughput is the sum over the time the slowest took.
pub fn produce_concurrently(addr: SocketAddr, specs: Vec<Spec>) -> Result<Outcome, String> {
    produce_at(specs.into_iter().map(|spec| (addr, spec)).collect())
}

/// As `produce_concurrently`, each producer to its own broker (a partition's leader).
pub fn produce_at(specs: Vec<(SocketAddr, Spec)>) -> Result<Outcome, String> {
    // Connect first, so a failure cannot leave threads waiting at the barrier.
    let conns = specs
        .iter()
        .map(|(addr, _)| Conn::connect(*addr))
        .collect::<Result<Vec<_>, _>>()?;
    let specs: Vec<Spec> = specs.into_iter().map(|(_, spec)| spec).collect();
    let barrier = Arc::new(Barrier::new(specs.len()));
    let handles: Vec<_> = conns
        .into_iter()
        .zip(specs)
        .map(|(mut conn, spec)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                produce(&mut conn, &spec)
            })
        })
        .collect();
    let mut total = Outcome {
        throughput: Throughput::default(),
        latency: Recorder::new(),
    };
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(outcome)) => {
                total.throughput.alongside(&outcome.throughput);
                total.latency.merge(&outcome.latency);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert("a producer thread panicked".to_string());
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}
