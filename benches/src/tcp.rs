//! The second reference: plain loopback TCP moving the same batches, with no broker and no
//! disk. A sender thread and a receiver thread, each batch framed by a 4-byte size as Kafka
//! frames requests.
//!
//! - streaming: the sender writes batches back to back; the receiver reads them (the ceiling for
//!   a pipelined producer);
//! - ping-pong: one batch in flight; the receiver answers each with 8 bytes (the floor of a
//!   request's round trip, the part of acks=all latency that is not the broker).

use crate::batch::Batch;
use crate::stats::{Latency, Limits, Recorder, Throughput};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Instant;

pub struct TcpResult {
    pub stream: Throughput,
    pub ping_pong: Throughput,
    pub round_trip: Latency,
}

pub fn run(batch: &Batch, limits: Limits) -> Result<TcpResult, String> {
    let frame = framed(batch);
    let stream = streaming(&frame, batch, limits)?;
    let (ping_pong, round_trip) = ping_pong(&frame, batch, limits)?;
    Ok(TcpResult {
        stream,
        ping_pong,
        round_trip: round_trip.summary(),
    })
}

fn framed(batch: &Batch) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + batch.bytes.len());
    frame.extend_from_slice(&(batch.bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(&batch.bytes);
    frame
}

/// A connected pair: the sender's end, and the receiver thread running `serve` on the other.
fn pair<F>(serve: F) -> Result<(TcpStream, JoinHandle<Result<(), String>>), String>
where
    F: FnOnce(TcpStream) -> Result<(), String> + Send + 'static,
{
    let fail = |e: std::io::Error| format!("loopback TCP: {e}");
    let listener = TcpListener::bind("127.0.0.1:0").map_err(fail)?;
    let addr = listener.local_addr().map_err(fail)?;
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().map_err(fail)?;
        stream.set_nodelay(true).map_err(fail)?;
        serve(stream)
    });
    let sender = TcpStream::connect(addr).map_err(fail)?;
    sender.set_nodelay(true).map_err(fail)?;
    Ok((sender, receiver))
}

/// Reads one framed batch into `buf`; false at a clean end of stream.
fn read_batch(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool, String> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(format!("loopback TCP receive: {e}")),
    }
    buf.resize(u32::from_be_bytes(size) as usize, 0);
    stream
        .read_exact(buf)
        .map_err(|e| format!("loopback TCP receive: {e}"))?;
    Ok(true)
}

fn join(receiver: JoinHandle<Result<(), String>>) -> Result<(), String> {
    receiver
        .join()
        .map_err(|_| "the loopback receiver panicked".to_string())?
}

fn streaming(frame: &[u8], batch: &Batch, limits: Limits) -> Result<Throughput, String> {
    let (mut sender, receiver) = pair(|mut stream| {
        let mut buf = Vec::new();
        while read_batch(&mut stream, &mut buf)? {}
        Ok(())
    })?;
    let start = Instant::now();
    let deadline = limits.deadline(start);
    let mut batches = 0u64;
    while batches * (batch.bytes.len() as u64) < limits.bytes && Instant::now() < deadline {
        sender
            .write_all(frame)
            .map_err(|e| format!("loopback TCP send: {e}"))?;
        batches += 1;
    }
    drop(sender);
    join(receiver)?;
    Ok(Throughput {
        bytes: batches * batch.bytes.len() as u64,
        batches,
        records: batches * batch.records as u64,
        secs: start.elapsed().as_secs_f64(),
    })
}

fn ping_pong(
    frame: &[u8],
    batch: &Batch,
    limits: Limits,
) -> Result<(Throughput, Recorder), String> {
    let (mut sender, receiver) = pair(|mut stream| {
        let mut buf = Vec::new();
        while read_batch(&mut stream, &mut buf)? {
            stream
                .write_all(&[0u8; 8])
                .map_err(|e| format!("loopback TCP answer: {e}"))?;
        }
        Ok(())
    })?;
    let mut round_trip = Recorder::new();
    let start = Instant::now();
    let deadline = limits.deadline(start);
    let mut batches = 0u64;
    let mut answer = [0u8; 8];
    while batches * (batch.bytes.len() as u64) < limits.bytes && Instant::now() < deadline {
        let sent = Instant::now();
        sender
            .write_all(frame)
            .and_then(|()| sender.read_exact(&mut answer))
            .map_err(|e| format!("loopback TCP ping-pong: {e}"))?;
        round_trip.record(sent.elapsed());
        batches += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(sender);
    join(receiver)?;
    Ok((
        Throughput {
            bytes: batches * batch.bytes.len() as u64,
            batches,
            records: batches * batch.records as u64,
            secs,
        },
        round_trip,
    ))
}
