//! The production shell: it performs what the `spate-core` broker decides, on glommio (io_uring).
//!
//! It owns the sockets, the files and the clock, and nothing else: frames are read and handed to
//! the core, outputs are performed (responses written, I/O commands run on O_DIRECT files), and
//! completions are handed back. The core never waits; this shell never decides.
//!
//! Thread-per-core: one glommio executor per shard, each pinned to its own CPU (`--cores N`).
//! Every shard serves connections: shard 0 accepts and hands each new connection to the shards
//! in turn, and a shard reads its connections' frames and writes their responses. The core's
//! broker state machine runs on shard 0, which owns every partition for now; the other shards
//! reach it over glommio's shared channels ([`shards`]). Moving partitions to their own shards
//! is the next step (docs/ARCHITECTURE.md, "Thread-per-core").

mod files;
mod net;
mod shards;
mod startup;

use spate_core::broker::{Broker, Config};
use spate_core::io::{ConnId, IoCommand, Level, Output};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Everything `spate server` needs to run.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub broker: Config,
    /// The shards: one executor each, pinned to the CPU given (`None`: not pinned). Shard 0
    /// runs the core.
    pub shard_cpus: Vec<Option<usize>>,
}

/// The CPUs for `cores` shards: the first `cores` online CPUs, by number. `None` is one shard,
/// not pinned: until partitions live on their own shards, more shards only add a hop between
/// executors to every request (docs/ARCHITECTURE.md, "Thread-per-core").
pub fn shard_cpus(cores: Option<usize>) -> Result<Vec<Option<usize>>, String> {
    let Some(cores) = cores else {
        return Ok(vec![None]);
    };
    let mut online: Vec<usize> = glommio::CpuSet::online()
        .map_err(|e| format!("cannot list the CPUs: {e}"))?
        .into_iter()
        .map(|location| location.cpu)
        .collect();
    online.sort_unstable();
    online.dedup();
    if cores == 0 {
        return Err("--cores: must be at least 1".into());
    }
    if cores > online.len() {
        return Err(format!(
            "--cores {cores}: this machine has {} online CPUs",
            online.len()
        ));
    }
    Ok(online.into_iter().take(cores).map(Some).collect())
}

/// What a connection's task is told to do after it handed a request to the core.
pub(crate) enum ConnEvent {
    Respond(bytes::Bytes),
    NoResponse,
    Close,
}

/// The core's shard: the broker and the files it performs I/O on.
struct Shell {
    broker: RefCell<Broker>,
    files: files::Files,
    /// Shard 0's connections, and the way to the other shards' ones.
    net: Rc<net::Net>,
}

/// Milliseconds since the Unix epoch: the `now` the core is given.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One log line on stderr: UTC time, level, message.
pub fn log_line(level: Level, message: &str) {
    let level = match level {
        Level::Info => "INFO ",
        Level::Warn => "WARN ",
        Level::Error => "ERROR",
    };
    eprintln!("{} {level} {message}", utc_timestamp(now_ms()));
}

/// `2026-11-22T06:04:05.123Z` from milliseconds since the epoch (Hinnant's civil-from-days).
fn utc_timestamp(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

impl Shell {
    /// Performs every output the core has queued.
    fn drain(self: &Rc<Self>) {
        loop {
            let output = self.broker.borrow_mut().poll_output();
            let Some(output) = output else { break };
            match output {
                Output::Respond { conn, frame } => self.send(conn, ConnEvent::Respond(frame)),
                Output::NoResponse { conn } => self.send(conn, ConnEvent::NoResponse),
                Output::Close { conn } => self.send(conn, ConnEvent::Close),
                Output::Io(command) => {
                    let shell = self.clone();
                    glommio::spawn_local(async move { shell.perform(command).await }).detach();
                }
                Output::Log { level, message } => log_line(level, &message),
            }
        }
    }

    fn send(&self, conn: ConnId, event: ConnEvent) {
        self.net.deliver(conn, event);
    }

    /// A connection's news, from this shard or another.
    fn on_net(self: &Rc<Self>, message: shards::ShardMsg) {
        use shards::ShardMsg;
        {
            let mut broker = self.broker.borrow_mut();
            match message {
                ShardMsg::Connect { conn, peer } => broker.handle_connect(conn, &peer),
                ShardMsg::Request { conn, frame } => broker.handle_request(now_ms(), conn, frame),
                ShardMsg::Disconnect { conn } => broker.handle_disconnect(conn),
                ShardMsg::Connection(_) | ShardMsg::Event { .. } => {
                    unreachable!("Net::receive keeps connections and events")
                }
            }
        }
        self.drain();
    }

    async fn perform(self: Rc<Self>, command: IoCommand) {
        let result = self.files.perform(command.op).await;
        self.broker
            .borrow_mut()
            .handle_io_done(now_ms(), command.token, result);
        self.drain();
    }

    /// Fires the core's deadlines (acks=all timeouts, fetch waits) with a 5 ms resolution.
    async fn run_timers(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(Duration::from_millis(5)).await;
            let now = now_ms();
            let due = self
                .broker
                .borrow()
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now);
            if due {
                self.broker.borrow_mut().handle_timeout(now);
                self.drain();
            }
        }
    }
}

/// Runs the broker until SIGTERM or SIGINT, then shuts down cleanly: stops accepting, lets the
/// writes in flight finish and sync, and returns.
pub fn run(config: ServerConfig) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    let cpus = match config.shard_cpus.is_empty() {
        true => vec![None],
        false => config.shard_cpus.clone(),
    };
    let shards = cpus.len();
    let mut endpoints = shards::mesh(shards);
    // The other shards first, so that shard 0's channels find them; they serve connections
    // until the process ends with shard 0.
    for shard in (1..shards).rev() {
        let ends = endpoints.pop().expect("one set of ends per shard");
        glommio::LocalExecutorBuilder::new(placement(cpus[shard]))
            .spin_before_park(idle_poll(shards))
            .name(&format!("spate-shard-{shard}"))
            .spawn(move || async move {
                let _net = net::Net::start(shard, shards, ends);
                std::future::pending::<()>().await
            })
            .map_err(|e| format!("cannot start the io_uring executor of shard {shard}: {e}"))?;
    }
    let ends = endpoints.pop().expect("shard 0's ends");
    let handle = glommio::LocalExecutorBuilder::new(placement(cpus[0]))
        .spin_before_park(idle_poll(shards))
        .name("spate-shard-0")
        .spawn(move || async move { serve(config, shards, ends, stop).await })
        .map_err(|e| format!("cannot start the io_uring executor: {e}"))?;
    handle
        .join()
        .map_err(|_| "the executor thread panicked".to_string())?
}

/// How long an executor with peers polls before it sleeps. Waking a sleeping executor from
/// another thread costs a round trip of 250-340 us (p50) on the 2-vCPU development VM, and
/// 23 us when the peer polls for 50 us first (docs/PERFORMANCE.md, "Thread-per-core"); a single
/// shard has no peers to wait for and sleeps at once.
fn idle_poll(shards: usize) -> Duration {
    match shards {
        1 => Duration::ZERO,
        _ => Duration::from_micros(100),
    }
}

fn placement(cpu: Option<usize>) -> glommio::Placement {
    match cpu {
        Some(cpu) => glommio::Placement::Fixed(cpu),
        None => glommio::Placement::Unbound,
    }
}

async fn serve(
    config: ServerConfig,
    shards: usize,
    ends: shards::Endpoints,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    // Bind first: a port in use fails fast, before the data directory is touched. Clients that
    // connect during recovery wait in the listen backlog.
    let listener = net::listen(config.listen)?;
    let _lock = startup::lock_data_dir(&config.data_dir)?;
    let files = files::Files::new(config.data_dir.clone());
    files.prime_poll_probe().await?;
    let mut broker = Broker::new(config.broker.clone());
    broker.start_up(&mut startup::DataDir(&config.data_dir), now_ms())?;
    let net = net::Net::start(0, shards, ends);
    let shell = Rc::new(Shell {
        broker: RefCell::new(broker),
        files,
        net: net.clone(),
    });
    net.attach_core(shell.clone());
    shell.drain();
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    log_line(
        Level::Info,
        &format!(
            "spate listening on {address}, data in {}, cluster id {}, {shards} shard{}",
            config.data_dir.display(),
            shell.broker.borrow().cluster_id(),
            if shards == 1 { "" } else { "s" },
        ),
    );
    glommio::spawn_local(shell.clone().run_timers()).detach();
    // The accept loop is its own task, polled only when its socket wakes it. (Racing it against
    // the stop check in one task re-polled the pending accept every 50 ms, and each poll left
    // another waker clone with the listener: after ~32,767 polls, about 27 minutes, glommio's
    // task reference count overflowed and the executor hung.)
    glommio::spawn_local(net::accept_loop(net, listener)).detach();
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    log_line(
        Level::Info,
        "shutting down: finishing writes in flight, then writing the checkpoint",
    );
    shell.broker.borrow_mut().begin_shutdown();
    shell.drain();
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while shell.broker.borrow().is_flushing() && std::time::Instant::now() < give_up {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    if shell.broker.borrow().is_flushing() {
        log_line(
            Level::Warn,
            "shutdown: some writes did not finish within 30 s; recovery will check them",
        );
    }
    log_line(Level::Info, "stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_utc_iso8601() {
        assert_eq!(super::utc_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::utc_timestamp(1_795_327_332_291),
            "2026-11-22T06:02:12.291Z"
        );
        assert_eq!(
            super::utc_timestamp(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
