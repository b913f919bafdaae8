//! The reference: a plain direct-I/O sequential log writer, with the same library and calls as
//! the broker (glommio's `DmaFile`: O_DIRECT through io_uring; see [`prime_iopoll_probe`] for
//! the one difference, on purpose).
//!
//! It does what a log must do and nothing more. Batches go back to back into one new file, one
//! write per batch, one write in flight. O_DIRECT wants 4096-byte aligned positions, lengths and
//! buffers, so a batch that does not end on a block boundary is padded with zeros, and the next
//! write starts again at that last partial block, carrying its bytes (exactly what the broker's
//! log does). Batches of 4 KiB or more are whole blocks and need no padding; a 1 KiB batch
//! costs a 4 KiB write. Each write copies the batch once into an aligned buffer, as the broker
//! must copy from its network buffer. The file is not preallocated: like a segment, it grows with
//! each write.
//!
//! Durability, three ways ([`Durability`]): an `fdatasync` after every write before the next
//! batch; none; or in the background, as the broker does under acks=1: a sync starts whenever a
//! write has completed since the last sync and none is in flight, and runs while writes go on.

use crate::batch::Batch;
use crate::stats::{Latency, Limits, Recorder, Throughput};
use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;

/// When the plain writer makes its writes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fdatasync after every write, before the next.
    PerBatch,
    /// fdatasync concurrently with the writes, one at a time, covering what was written.
    Background,
    /// Never.
    None,
}

pub struct PlainResult {
    pub throughput: Throughput,
    /// Bytes handed to the device, padding and rewritten partial blocks included.
    pub device_bytes: u64,
    /// fdatasync alone (fsync mode only).
    pub sync: Option<Latency>,
    /// The write alone.
    pub write: Latency,
    /// Write, then fdatasync if on: the time to make one batch durable.
    pub batch: Latency,
}

/// What the plain writer did, in a form that adds up over several runs.
pub struct PlainRun {
    pub throughput: Throughput,
    device_bytes: u64,
    durability: Durability,
    write: Recorder,
    sync: Recorder,
    batch: Recorder,
}

impl PlainRun {
    /// Adds a later run (the times add up).
    pub fn then(&mut self, other: PlainRun) {
        self.throughput.then(&other.throughput);
        self.device_bytes += other.device_bytes;
        self.write.merge(&other.write);
        self.sync.merge(&other.sync);
        self.batch.merge(&other.batch);
    }

    pub fn result(&self) -> PlainResult {
        PlainResult {
            throughput: self.throughput,
            device_bytes: self.device_bytes,
            sync: (self.durability != Durability::None).then(|| self.sync.summary()),
            write: self.write.summary(),
            batch: self.batch.summary(),
        }
    }
}

/// Lets glommio decide, once for this process, whether the disk under `dir` takes polled I/O,
/// by opening a file that holds data.
///
/// glommio decides on the first `DmaFile` it opens on a device, by reading its first block
/// through the IOPOLL ring, and keeps the answer for the device. When that file is empty the
/// kernel answers the read without reaching the device, so the probe succeeds even on a disk
/// without poll queues (`queue/io_poll` 0, as virtio disks); every later read and write of the
/// process then goes to the IOPOLL ring, where reads fail with EOPNOTSUPP and the executor
/// busy-polls for completions. The broker opens its segments empty and gets exactly that today;
/// the plain writer is primed here so that it measures the disk as glommio means to drive it.
pub fn prime_iopoll_probe(dir: &Path) -> Result<(), String> {
    let probe = dir.join("iopoll-probe");
    std::fs::write(&probe, vec![0x5au8; BLOCK])
        .map_err(|e| format!("cannot write {}: {e}", probe.display()))?;
    let path = probe.clone();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("iopoll-probe")
        .spawn(move || async move {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .dma_open(&path)
                .await
                .map_err(|e| format!("cannot open {} with O_DIRECT: {e}", path.display()))?;
            file.close()
                .await
                .map_err(|e| format!("cannot close {}: {e}", path.display()))
        })
        .map_err(|e| format!("cannot start a glommio executor: {e}"))?;
    let result = handle
        .join()
        .map_err(|_| "the probe's executor panicked".to_string())?;
    let _ = std::fs::remove_file(&probe);
    result
}

/// Writes `batch` repeatedly into a new file at `path` until `limits`, on its own glommio
/// executor, and removes the file afterwards.
pub fn run(
    path: &Path,
    batch: &Batch,
    durability: Durability,
    limits: Limits,
) -> Result<PlainRun, String> {
    run_concurrently(&[path.to_path_buf()], batch, durability, limits)
}

/// One writer per path, each on its own file, all concurrently on one glommio executor (as the
/// broker's partitions share its one executor); `limits.bytes` is split between them. Latencies
/// are merged; the throughput is the sum over the time the slowest took.
pub fn run_concurrently(
    paths: &[PathBuf],
    batch: &Batch,
    durability: Durability,
    limits: Limits,
) -> Result<PlainRun, String> {
    let paths_owned = paths.to_vec();
    let batch = batch.clone();
    let per_writer = Limits {
        bytes: (limits.bytes / paths.len().max(1) as u64).max(batch.bytes.len() as u64),
        secs: limits.secs,
    };
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("plain-writer")
        .spawn(move || async move {
            let writers: Vec<_> = paths_owned
                .into_iter()
                .map(|path| {
                    let batch = batch.clone();
                    glommio::spawn_local(async move {
                        write_log(&path, &batch, durability, per_writer).await
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for writer in writers {
                outcomes.push(writer.await?);
            }
            Ok::<_, String>(merge(outcomes, batch.records as u64, durability))
        })
        .map_err(|e| format!("cannot start a glommio executor for the plain writer: {e}"))?;
    let result = handle
        .join()
        .map_err(|_| "the plain writer's executor panicked".to_string())?;
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// What one writer did.
struct Outcome {
    logical: u64,
    device_bytes: u64,
    batches: u64,
    secs: f64,
    write: Recorder,
    sync: Recorder,
    batch: Recorder,
}

fn merge(outcomes: Vec<Outcome>, records_per_batch: u64, durability: Durability) -> PlainRun {
    let mut run = PlainRun {
        throughput: Throughput::default(),
        device_bytes: 0,
        durability,
        write: Recorder::new(),
        sync: Recorder::new(),
        batch: Recorder::new(),
    };
    for o in &outcomes {
        run.throughput.alongside(&Throughput {
            bytes: o.logical,
            batches: o.batches,
            records: o.batches * records_per_batch,
            secs: o.secs,
        });
        run.device_bytes += o.device_bytes;
        run.write.merge(&o.write);
        run.sync.merge(&o.sync);
        run.batch.merge(&o.batch);
    }
    run
}

/// The background syncs of one file: at most one in flight, each covering every write completed
/// before it started.
struct BackgroundSync {
    file: Rc<DmaFile>,
    written: Cell<u64>,
    synced: Cell<u64>,
    running: Cell<bool>,
    latency: RefCell<Recorder>,
    error: RefCell<Option<String>>,
}

impl BackgroundSync {
    /// A write up to `offset` completed: start syncing unless a sync is running (it will go on).
    fn written(self: &Rc<Self>, offset: u64) {
        self.written.set(offset);
        if !self.running.replace(true) {
            glommio::spawn_local(self.clone().sync_loop()).detach();
        }
    }

    async fn sync_loop(self: Rc<Self>) {
        while self.written.get() > self.synced.get() && self.error.borrow().is_none() {
            let target = self.written.get();
            let began = Instant::now();
            match self.file.fdatasync().await {
                Ok(()) => {
                    self.latency.borrow_mut().record(began.elapsed());
                    self.synced.set(target);
                }
                Err(e) => *self.error.borrow_mut() = Some(format!("fdatasync failed: {e}")),
            }
        }
        self.running.set(false);
    }

    /// Waits for the sync in flight, if any.
    async fn finish(&self) -> Result<(), String> {
        while self.running.get() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        self.error.borrow_mut().take().map_or(Ok(()), Err)
    }
}

async fn write_log(
    path: &Path,
    batch: &Batch,
    durability: Durability,
    limits: Limits,
) -> Result<Outcome, String> {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .dma_open(path)
        .await
        .map_err(|e| {
            format!(
                "cannot open {} with O_DIRECT: {e} (the --dir file system must support direct \
                 I/O; tmpfs does not)",
                path.display()
            )
        })?;
    let file = Rc::new(file);
    let background = Rc::new(BackgroundSync {
        file: file.clone(),
        written: Cell::new(0),
        synced: Cell::new(0),
        running: Cell::new(false),
        latency: RefCell::new(Recorder::new()),
        error: RefCell::new(None),
    });
    let source = &batch.bytes[..];
    let mut partial: Vec<u8> = Vec::with_capacity(BLOCK);
    let (mut logical, mut device_bytes, mut batches) = (0u64, 0u64, 0u64);
    let (mut write_latency, mut sync_latency, mut batch_latency) =
        (Recorder::new(), Recorder::new(), Recorder::new());
    let start = Instant::now();
    let deadline = limits.deadline(start);
    while logical < limits.bytes && Instant::now() < deadline {
        let position = logical - partial.len() as u64;
        let len = partial.len() + source.len();
        let padded = len.next_multiple_of(BLOCK);
        let mut buffer = file.alloc_dma_buffer(padded);
        let bytes = buffer.as_bytes_mut();
        bytes[..partial.len()].copy_from_slice(&partial);
        bytes[partial.len()..len].copy_from_slice(source);
        bytes[len..].fill(0);
        partial.clear();
        partial.extend_from_slice(&bytes[len / BLOCK * BLOCK..len]);

        let began = Instant::now();
        let written = file.write_at(buffer, position).await.map_err(|e| {
            format!(
                "write of {padded} bytes at {position} in {} failed: {e}",
                path.display()
            )
        })?;
        if written != padded {
            return Err(format!(
                "short write in {}: {written} of {padded} bytes",
                path.display()
            ));
        }
        write_latency.record(began.elapsed());
        logical += source.len() as u64;
        match durability {
            Durability::PerBatch => {
                let synced = Instant::now();
                file.fdatasync()
                    .await
                    .map_err(|e| format!("fdatasync of {} failed: {e}", path.display()))?;
                sync_latency.record(synced.elapsed());
            }
            Durability::Background => background.written(logical),
            Durability::None => {}
        }
        batch_latency.record(began.elapsed());
        device_bytes += padded as u64;
        batches += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    background
        .finish()
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    sync_latency.merge(&background.latency.borrow());
    drop(background);
    file.close_rc()
        .await
        .map_err(|e| format!("cannot close {}: {e}", path.display()))?;
    Ok(Outcome {
        logical,
        device_bytes,
        batches,
        secs,
        write: write_latency,
        sync: sync_latency,
        batch: batch_latency,
    })
}
