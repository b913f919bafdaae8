//! The production shell: it performs what the `spate-core` broker decides, on glommio (io_uring).
//!
//! It owns the sockets, the files and the clock, and nothing else: frames are read and handed to
//! the core, outputs are performed (responses written, I/O commands run on O_DIRECT files,
//! messages carried to other shards), and completions are handed back. The core never waits;
//! this shell never decides: each shard runs a [`ShardNode`], the same composition of broker
//! and router the simulator runs.
//!
//! Thread-per-core: one glommio executor per shard, each pinned to its own CPU (`--cores N`,
//! default one per CPU the process may use). Each shard runs its own broker over the partitions
//! it owns and routes its connections' requests (`spate_core::shard`); shard 0 accepts and
//! hands new connections to the shards in turn. Shards talk over glommio's shared channels
//! ([`shards`]); see docs/ARCHITECTURE.md, "Thread-per-core".

mod broker_net;
mod files;
mod net;
mod quorum_net;
mod shards;
mod startup;

use shards::ShardMsg;
use spate_core::broker::{Broker, Config};
use spate_core::io::{ConnId, IoCommand, Level};
use spate_core::node::{NodeOutput, PeerMessage, ShardNode};
use spate_core::shard::Answer;
use std::cell::{Cell, OnceCell, RefCell};
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
    /// Where this node takes the controller quorum's traffic (`controller.listener`), when it
    /// is a voter of one (`broker.controller_quorum`).
    pub controller_listen: Option<SocketAddr>,
}

/// The CPUs for `cores` shards, one each: the first `cores` CPUs this process may run on (its
/// affinity, as `taskset` or a container's cpuset leave it). `None` is one shard per such CPU,
/// bounded by the CPU quota `available_parallelism` reports.
pub fn shard_cpus(cores: Option<usize>) -> Result<Vec<Option<usize>>, String> {
    let allowed = allowed_cpus()?;
    let cores = match cores {
        Some(0) => return Err("--cores: must be at least 1".into()),
        Some(cores) => cores,
        None => {
            let quota = std::thread::available_parallelism().map_or(1, |n| n.get());
            quota.min(allowed.len()).max(1)
        }
    };
    if cores > allowed.len() {
        return Err(format!(
            "--cores {cores}: this process may run on {} CPU{} ({})",
            allowed.len(),
            if allowed.len() == 1 { "" } else { "s" },
            list_cpus(&allowed)
        ));
    }
    Ok(allowed.into_iter().take(cores).map(Some).collect())
}

/// The CPUs this process may run on, from `Cpus_allowed_list` in /proc/self/status
/// (e.g. `0-3,8`).
fn allowed_cpus() -> Result<Vec<usize>, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status for the CPUs to use: {e}"))?;
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .ok_or("no Cpus_allowed_list in /proc/self/status")?;
    parse_cpu_list(list.trim()).ok_or_else(|| format!("cannot read the CPU list '{}'", list.trim()))
}

fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(first.parse::<usize>().ok()?..=last.parse().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    (!cpus.is_empty()).then_some(cpus)
}

fn list_cpus(cpus: &[usize]) -> String {
    let names: Vec<String> = cpus.iter().map(usize::to_string).collect();
    format!("CPU {}", names.join(", "))
}

/// What a connection's task is told to do after it handed a request to the core.
pub(crate) enum ConnEvent {
    Respond(bytes::Bytes),
    NoResponse,
    Close,
}

/// What a connection's task tells its shard.
pub(crate) enum ConnNews {
    Open { conn: ConnId, peer: String },
    Request { conn: ConnId, frame: bytes::Bytes },
    Closed { conn: ConnId },
}

/// One shard: its node (the broker of the partitions it owns, on shard 0 also topics, groups
/// and configs, and the router of its connections' requests) and the files it performs I/O on.
struct Shell {
    node: RefCell<ShardNode>,
    files: files::Files,
    /// The earliest deadline a timer task sleeps until (`i64::MAX`: none).
    timer_at: Cell<i64>,
    /// The core left a deadline due after its last timeout: the next timer waits at least
    /// [`OVERDUE_RETRY_MS`].
    overdue: Cell<bool>,
    /// This shard's connections, and the channels to the other shards.
    net: Rc<net::Net>,
    /// Shard 0 of a controller quorum voter: the connections to the other voters.
    quorum: OnceCell<Rc<quorum_net::QuorumNet>>,
    /// This shard's connections to other brokers (its followers' fetches).
    brokers: Rc<broker_net::BrokerNet>,
}

/// How soon a timer fires again when the core left a deadline due after its timeout.
const OVERDUE_RETRY_MS: i64 = 10;

/// Spawns a task that first runs on a later turn of the executor, never on the caller's stack:
/// glommio's `spawn_local` polls a new task at once, so a task spawned from a callback that the
/// task itself calls again (a timer that fires at once, an I/O that completes at once) would
/// otherwise nest one level deeper each turn until the stack overflows (issue 12).
pub(crate) fn spawn_later(task: impl std::future::Future<Output = ()> + 'static) {
    glommio::spawn_local(async move {
        futures_lite::future::yield_now().await;
        task.await
    })
    .detach();
}

/// Milliseconds since the Unix epoch: the `now` the core is given.
pub(crate) fn now_ms() -> i64 {
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
            let output = self.node.borrow_mut().poll_output();
            let Some(output) = output else { break };
            match output {
                NodeOutput::ToConnection { conn, answer } => self.net.deliver(
                    conn,
                    match answer {
                        Answer::Respond(frame) => ConnEvent::Respond(frame),
                        Answer::NoResponse => ConnEvent::NoResponse,
                        Answer::Close => ConnEvent::Close,
                    },
                ),
                NodeOutput::ToShard { shard, message } => {
                    self.net.send_to(shard, ShardMsg::Peer(message))
                }
                NodeOutput::Io(command) => {
                    let shell = self.clone();
                    spawn_later(async move { shell.perform(command).await });
                }
                NodeOutput::Log { level, message } => log_line(level, &message),
                NodeOutput::ToNode { node, frame } => {
                    if let Some(quorum) = self.quorum.get() {
                        quorum.send(node, frame);
                    }
                }
                NodeOutput::ToBroker {
                    node,
                    address,
                    frame,
                } => self.brokers.send(node, address, frame),
            }
        }
        self.arm_timer();
    }

    /// Makes sure a timer wakes this shard at the core's next deadline. Every input ends in
    /// `drain`, and only an input adds a deadline, so arming here misses none. A deadline more
    /// than a second away is checked again after a second (a wall-clock step moves deadlines).
    ///
    /// The timer's task never runs on this stack ([`spawn_later`]), and a deadline the core left
    /// due after its timeout (a core bug, which the core logs once) is retried only every
    /// [`OVERDUE_RETRY_MS`], so such a bug cannot make the shard recurse or spin.
    fn arm_timer(self: &Rc<Self>) {
        let Some(mut deadline) = self.node.borrow().poll_timeout() else {
            return;
        };
        if self.overdue.get() {
            deadline = deadline.max(now_ms() + OVERDUE_RETRY_MS);
        }
        if deadline >= self.timer_at.get() {
            return; // a timer already wakes the shard by then
        }
        self.timer_at.set(deadline);
        let shell = self.clone();
        spawn_later(async move {
            let wait_ms = (deadline - now_ms()).clamp(0, 1_000) as u64;
            glommio::timer::sleep(Duration::from_millis(wait_ms)).await;
            shell.on_timer();
        });
    }

    /// A timer went off: the core's due deadlines fire, and the next one is armed.
    fn on_timer(self: &Rc<Self>) {
        self.timer_at.set(i64::MAX);
        let now = now_ms();
        let due = self
            .node
            .borrow()
            .poll_timeout()
            .is_some_and(|deadline| deadline <= now);
        if due {
            let mut node = self.node.borrow_mut();
            node.handle_timeout(now);
            self.overdue.set(!node.overdue_deadlines(now).is_empty());
        } else {
            self.overdue.set(false);
        }
        self.drain();
    }

    /// A connection of this shard opened, sent a request, or closed.
    fn on_connection(self: &Rc<Self>, event: ConnNews) {
        {
            let mut node = self.node.borrow_mut();
            match event {
                ConnNews::Open { conn, peer } => node.handle_connection_opened(conn, &peer),
                ConnNews::Request { conn, frame } => node.handle_request(now_ms(), conn, frame),
                ConnNews::Closed { conn } => node.handle_connection_closed(conn),
            }
        }
        self.drain();
    }

    /// A controller quorum message from another node.
    pub(crate) fn on_quorum_frame(self: &Rc<Self>, now_ms: i64, frame: &[u8]) {
        self.node.borrow_mut().handle_quorum_frame(now_ms, frame);
        self.drain();
    }

    /// An answer from another broker on this shard's connection to it.
    pub(crate) fn on_broker_response(
        self: &Rc<Self>,
        node: spate_core::replica::NodeId,
        frame: bytes::Bytes,
    ) {
        self.node
            .borrow_mut()
            .handle_broker_response(now_ms(), node, frame);
        self.drain();
    }

    /// This shard's connection to another broker closed or could not be opened.
    pub(crate) fn on_broker_disconnected(self: &Rc<Self>, node: spate_core::replica::NodeId) {
        self.node
            .borrow_mut()
            .handle_broker_disconnected(now_ms(), node);
        self.drain();
    }

    /// What another shard sent this one.
    fn on_peer_message(self: &Rc<Self>, from: usize, message: PeerMessage) {
        self.node
            .borrow_mut()
            .handle_peer_message(now_ms(), from, message);
        self.drain();
    }

    /// Between two requests: the shard one of this shard's connections should move to.
    fn migration(&self, conn: ConnId) -> Option<usize> {
        self.node.borrow_mut().poll_migration(conn)
    }

    async fn perform(self: Rc<Self>, command: IoCommand) {
        let result = self.files.perform(command.op).await;
        self.node
            .borrow_mut()
            .handle_io_done(now_ms(), command.token, result);
        self.drain();
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
    // Bind first: a port in use fails fast, before the data directory is touched. Clients that
    // connect during recovery wait in the listen backlog.
    let listener = net::bind(config.listen)?;
    let controller_listener = match config.controller_listen {
        Some(address) => Some(net::bind(address).map_err(|e| format!("controller listener: {e}"))?),
        None => None,
    };
    let _lock = startup::lock_data_dir(&config.data_dir)?;
    // Start-up reads and repairs the data directory with blocking calls, before any executor.
    let mut brokers: Vec<Option<Broker>> = Broker::start_shards(
        &config.broker,
        shards,
        &mut startup::DataDir(&config.data_dir),
        now_ms(),
    )?
    .into_iter()
    .map(|(broker, _)| Some(broker))
    .collect();
    let mut endpoints = shards::mesh(shards);
    // The other shards first; they run until the process ends with shard 0.
    for shard in (1..shards).rev() {
        let ends = endpoints.pop().expect("one set of ends per shard");
        let broker = brokers[shard].take().expect("started up");
        let data_dir = config.data_dir.clone();
        glommio::LocalExecutorBuilder::new(placement(cpus[shard]))
            .spin_before_park(idle_poll(shards))
            .name(&format!("spate-shard-{shard}"))
            .spawn(move || async move {
                match Shell::start(shard, shards, broker, data_dir, ends).await {
                    Ok(_shell) => std::future::pending::<()>().await,
                    Err(error) => log_line(Level::Error, &format!("shard {shard}: {error}")),
                }
            })
            .map_err(|e| format!("cannot start the io_uring executor of shard {shard}: {e}"))?;
    }
    let ends = endpoints.pop().expect("shard 0's ends");
    let broker = brokers[0].take().expect("started up");
    let handle = glommio::LocalExecutorBuilder::new(placement(cpus[0]))
        .spin_before_park(idle_poll(shards))
        .name("spate-shard-0")
        .spawn(move || async move {
            serve(
                config,
                shards,
                broker,
                ends,
                (listener, controller_listener),
                stop,
            )
            .await
        })
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

impl Shell {
    /// Starts a shard on its executor: its channels, its timers, its broker's first outputs.
    async fn start(
        shard: usize,
        shards: usize,
        broker: Broker,
        data_dir: PathBuf,
        ends: shards::Endpoints,
    ) -> Result<Rc<Shell>, String> {
        let files = files::Files::new(data_dir);
        files.prime_poll_probe(shard).await?;
        let net = net::Net::start(shard, shards, ends);
        let shell = Rc::new(Shell {
            node: RefCell::new(ShardNode::new(broker)),
            files,
            timer_at: Cell::new(i64::MAX),
            overdue: Cell::new(false),
            net: net.clone(),
            quorum: OnceCell::new(),
            brokers: Rc::new(broker_net::BrokerNet::default()),
        });
        net.attach(shell.clone());
        shell.brokers.attach(&shell);
        shell.drain();
        Ok(shell)
    }
}

async fn serve(
    config: ServerConfig,
    shards: usize,
    broker: Broker,
    ends: shards::Endpoints,
    (listener, controller_listener): (std::net::TcpListener, Option<std::net::TcpListener>),
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let listener = net::listener(listener);
    let node_id = config.broker.node_id;
    let peers: Vec<_> = config
        .broker
        .controller_quorum
        .iter()
        .filter(|(id, _)| *id != node_id)
        .cloned()
        .collect();
    let shell = Shell::start(0, shards, broker, config.data_dir.clone(), ends).await?;
    if !config.broker.controller_quorum.is_empty() {
        let quorum = quorum_net::QuorumNet::start(node_id, &peers);
        quorum.attach(shell.clone());
        let _ = shell.quorum.set(quorum.clone());
        match controller_listener {
            Some(controller_listener) => {
                let address = controller_listener
                    .local_addr()
                    .map_err(|e| e.to_string())?;
                log_line(
                    Level::Info,
                    &format!(
                        "controller listener on {address}, voters {:?}",
                        config.broker.controller_quorum
                    ),
                );
                let listener = net::listener(controller_listener);
                glommio::spawn_local(quorum_net::accept_loop(quorum, listener)).detach();
            }
            // A broker-only node: it reaches the voters, and they answer on its connections.
            None => log_line(
                Level::Info,
                &format!(
                    "a broker-only node of the cluster: no controller listener, voters {:?}",
                    config.broker.controller_quorum
                ),
            ),
        }
        shell.drain();
    }
    let net = shell.net.clone();
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    log_line(
        Level::Info,
        &format!(
            "spate listening on {address}, data in {}, cluster id {}, {shards} shard{}",
            config.data_dir.display(),
            shell.node.borrow().broker().cluster_id(),
            if shards == 1 { "" } else { "s" },
        ),
    );
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
    shell.node.borrow_mut().begin_shutdown();
    shell.drain();
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while shell.node.borrow().is_flushing() && std::time::Instant::now() < give_up {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    if shell.node.borrow().is_flushing() {
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
    fn cpu_lists_read_as_the_kernel_writes_them() {
        assert_eq!(super::parse_cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(
            super::parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(super::parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(super::parse_cpu_list(""), None);
        assert_eq!(super::parse_cpu_list("x"), None);
        let allowed = super::allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        assert_eq!(super::shard_cpus(None).unwrap().len(), {
            let quota = std::thread::available_parallelism().map_or(1, |n| n.get());
            quota.min(allowed.len())
        });
        assert!(super::shard_cpus(Some(allowed.len() + 1)).is_err());
    }

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
