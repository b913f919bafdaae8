//! The broker under test: the real `spate server` as a child process on a free loopback port,
//! with its log in a file, and what /proc tells about it (resident memory, CPU time).

use crate::kafka::{check_produce_response, Acks, Conn, ProduceFrame};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The broker waits up to 30 s for writes in flight on SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    log_path: PathBuf,
}

impl Broker {
    /// Starts `bin server` on `data_dir` (created fresh by the broker) with the settings in
    /// `config` (a properties file), and waits until it accepts connections.
    pub fn start(
        bin: &Path,
        data_dir: &Path,
        config: Option<&Path>,
        placement: &[String],
    ) -> Result<Broker, String> {
        if !bin.is_file() {
            return Err(format!(
                "no broker binary at {} (build it with `cargo build --release -p spate`, or pass --spate-bin PATH)",
                bin.display()
            ));
        }
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log_path = data_dir.with_extension("log");
        // Appended to: a restarted broker keeps the earlier log.
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot duplicate the log file handle: {e}"))?;
        let mut command = Command::new(bin);
        command
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        command.args(placement);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut broker = Broker {
            child,
            addr,
            log_path,
        };
        broker.wait_ready()?;
        Ok(broker)
    }

    /// Starts the broker so that the first segment it opens may hold data: a first start writes
    /// one batch to a topic, and after a restart the first I/O is one more batch to that topic.
    /// If that is the first file the broker opens through glommio, glommio probes polled I/O on
    /// a non-empty file and gets the device's true answer, where an empty new file makes the
    /// probe pass on any disk (see `plain::prime_iopoll_probe`). Whether it is depends on the
    /// broker: a diagnostic, not a fix.
    pub fn start_primed(
        bin: &Path,
        data_dir: &Path,
        config: Option<&Path>,
        placement: &[String],
    ) -> Result<Broker, String> {
        const TOPIC: &str = "bench-prime";
        let batch = crate::batch::exact_batch(4096)?;
        let produce_one = |broker: &Broker| -> Result<(), String> {
            let mut conn = Conn::connect(broker.addr)?;
            let mut frame = ProduceFrame::new(TOPIC, 0, Acks::All, batch.bytes.clone())?;
            let id = conn.take_correlation_id();
            conn.send_frame(frame.with_id(id))?;
            check_produce_response(conn.read_frame()?, id)
        };
        let first = Broker::start(bin, data_dir, config, placement)?;
        Conn::connect(first.addr)?.create_topic(TOPIC, 1)?;
        produce_one(&first)?;
        first.stop()?;
        let broker = Broker::start(bin, data_dir, config, placement)?;
        produce_one(&broker)?;
        Ok(broker)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let give_up = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the broker exited during start-up ({status}); its log:\n{}",
                    self.log_tail(20)
                ));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > give_up {
                return Err(format!(
                    "the broker did not accept connections on {} within {} s; its log:\n{}",
                    self.addr,
                    START_TIMEOUT.as_secs(),
                    self.log_tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` lines of the broker's log.
    pub fn log_tail(&self, n: usize) -> String {
        let Ok(file) = File::open(&self.log_path) else {
            return "(no log)".into();
        };
        let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Bytes the broker has logged so far.
    pub fn log_len(&self) -> usize {
        std::fs::metadata(&self.log_path).map_or(0, |m| m.len() as usize)
    }

    /// What the broker logged after byte `since`.
    pub fn log_since(&self, since: usize) -> String {
        let text = std::fs::read(&self.log_path).unwrap_or_default();
        String::from_utf8_lossy(text.get(since..).unwrap_or_default()).into_owned()
    }

    /// Warnings and errors the broker logged.
    pub fn log_problems(&self) -> Vec<String> {
        let Ok(file) = File::open(&self.log_path) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect()
    }

    /// Resident memory now, in bytes.
    pub fn rss_bytes(&self) -> Result<u64, String> {
        rss_bytes(self.pid())
    }

    /// CPU time (user + system, all threads) used so far, in seconds.
    pub fn cpu_secs(&self) -> Result<f64, String> {
        cpu_secs(&format!("/proc/{}/stat", self.pid()))
    }

    /// Stops the broker with SIGTERM (a clean shutdown), or SIGKILL if it takes too long.
    pub fn stop(mut self) -> Result<(), String> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<(), String> {
        if self.child.try_wait().ok().flatten().is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.child.id())
            .map_err(|_| "broker pid out of range".to_string())?;
        // SAFETY: signalling our own child, which has not been reaped yet (checked above).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let give_up = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < give_up {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "the broker exited with {status} on SIGTERM; its log:\n{}",
                        self.log_tail(10)
                    ))
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("cannot wait for the broker: {e}")),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "the broker did not stop within {} s of SIGTERM and was killed",
            STOP_TIMEOUT.as_secs()
        ))
    }
}

impl Drop for Broker {
    /// Never leave a broker behind, even when a case fails half-way.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free loopback port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

/// VmRSS of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("no VmRSS line in {path}"))
}

/// utime + stime of a `/proc/.../stat` file, in seconds.
pub fn cpu_secs(stat_path: &str) -> Result<f64, String> {
    let stat =
        std::fs::read_to_string(stat_path).map_err(|e| format!("cannot read {stat_path}: {e}"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis are
    // state (3), ..., utime (14), stime (15).
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("malformed {stat_path}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("malformed {stat_path}"))
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((ticks(11)? + ticks(12)?) as f64 / hz)
}

/// CPU time of the broker's executor threads (`spate-shard-*`), in seconds. The rest of the
/// process's time is io_uring's kernel workers (`iou-wrk-*`, which perform the fdatasyncs and any
/// write the kernel cannot issue inline; they come and go, so they are counted as the remainder).
fn executor_cpu_secs(pid: u32) -> Result<f64, String> {
    let dir = format!("/proc/{pid}/task");
    let tasks = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {dir}: {e}"))?;
    let mut total = 0.0;
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.starts_with("spate-shard") {
            // A thread may exit between listing and reading; it then counts as "other".
            total += cpu_secs(&path.join("stat").to_string_lossy()).unwrap_or(0.0);
        }
    }
    Ok(total)
}

/// Measures the CPU the broker and this process use over a span of wall time.
pub struct CpuMeter<'a> {
    broker: &'a Broker,
    start: Instant,
    broker_start: f64,
    executor_start: f64,
    self_start: f64,
}

/// CPU used over a span, in percent of one core.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// The whole broker process.
    pub broker_pct: f64,
    /// The broker's executor thread(s) alone: near 100% per executor means CPU-bound.
    pub executor_pct: f64,
    /// This benchmark process (the clients).
    pub client_pct: f64,
    /// The wall time these shares are of.
    pub wall_secs: f64,
}

impl CpuUse {
    /// Adds a later span: shares weighted by their wall time.
    pub fn then(&mut self, other: &CpuUse) {
        let wall = self.wall_secs + other.wall_secs;
        if wall <= 0.0 {
            return;
        }
        let mix = |a: f64, b: f64| (a * self.wall_secs + b * other.wall_secs) / wall;
        self.broker_pct = mix(self.broker_pct, other.broker_pct);
        self.executor_pct = mix(self.executor_pct, other.executor_pct);
        self.client_pct = mix(self.client_pct, other.client_pct);
        self.wall_secs = wall;
    }
}

impl<'a> CpuMeter<'a> {
    pub fn start(broker: &'a Broker) -> Result<Self, String> {
        Ok(CpuMeter {
            broker,
            start: Instant::now(),
            broker_start: broker.cpu_secs()?,
            executor_start: executor_cpu_secs(broker.pid())?,
            self_start: cpu_secs("/proc/self/stat")?,
        })
    }

    pub fn stop(self) -> Result<CpuUse, String> {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        Ok(CpuUse {
            broker_pct: (self.broker.cpu_secs()? - self.broker_start) / wall * 100.0,
            executor_pct: (executor_cpu_secs(self.broker.pid())? - self.executor_start) / wall
                * 100.0,
            client_pct: (cpu_secs("/proc/self/stat")? - self.self_start) / wall * 100.0,
            wall_secs: wall,
        })
    }
}
