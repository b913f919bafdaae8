//! Results as the benchmarks hand them over, and their two renderings: readable tables and JSON.

use crate::broker::CpuUse;
use crate::machine::Machine;
use crate::plain::PlainResult;
use crate::stats::{Latency, Throughput};
use crate::tcp::TcpResult;

/// The throughput target: Spate at or above this share of the plain writer at batches of
/// [`THROUGHPUT_TARGET_MIN_BATCH`] bytes and more.
pub const THROUGHPUT_TARGET: f64 = 0.90;
pub const THROUGHPUT_TARGET_MIN_BATCH: usize = 64 * 1024;
/// The latency target: acks=all p99 under concurrent producers at most this many times the
/// plain writer's fdatasync p99.
pub const LATENCY_TARGET: f64 = 2.0;

/// Spate, measured through the Kafka protocol.
pub struct SpateResult {
    pub throughput: Throughput,
    /// Produce request latency, send to response.
    pub latency: Latency,
    pub cpu: CpuUse,
}

/// One batch size in one mode: the plain writer beside Spate.
pub struct Pair {
    pub batch_bytes: usize,
    pub fsync: bool,
    /// Spate's requests in flight per connection.
    pub in_flight: usize,
    pub plain: PlainResult,
    /// Without fsync per batch: the plain writer with fdatasync in the background, as the broker
    /// does behind acks=1.
    pub plain_background: Option<PlainResult>,
    pub spate: SpateResult,
}

impl Pair {
    pub fn throughput_ratio(&self) -> f64 {
        ratio(
            self.spate.throughput.mb_per_sec(),
            self.plain.throughput.mb_per_sec(),
        )
    }
}

/// Several producers with acks=all at once.
pub struct Concurrent {
    pub batch_bytes: usize,
    pub producers: usize,
    pub spate: SpateResult,
    /// The single plain writer with fdatasync per batch, at the same batch size.
    pub plain_sync: Latency,
    pub plain_batch: Latency,
    pub plain_throughput: Throughput,
    /// As many plain writers as producers, one file each, fdatasync per batch, concurrently.
    pub plain_many: PlainResult,
}

impl Concurrent {
    /// The target's ratio: Spate's p99 over the single plain writer's fdatasync p99.
    pub fn p99_ratio(&self) -> f64 {
        ratio(self.spate.latency.p99_ms, self.plain_sync.p99_ms)
    }
    /// Spate's p99 over the p99 of write+fdatasync with as many plain writers on as many files.
    pub fn p99_ratio_many(&self) -> f64 {
        ratio(self.spate.latency.p99_ms, self.plain_many.batch.p99_ms)
    }
}

pub struct TcpRow {
    pub batch_bytes: usize,
    pub result: TcpResult,
}

pub struct StorageReport {
    pub machine: Machine,
    pub dir: String,
    pub broker_bin: String,
    pub record_bytes: usize,
    pub pipeline: usize,
    pub rounds: usize,
    pub plain_empty_probe: bool,
    pub prime_broker: bool,
    pub case_secs: f64,
    pub pairs: Vec<Pair>,
    pub concurrent: Vec<Concurrent>,
    pub tcp: Vec<TcpRow>,
    /// WARN and ERROR lines from the broker's log.
    pub broker_problems: Vec<String>,
}

pub struct MemoryReport {
    pub machine: Machine,
    pub broker_bin: String,
    pub secs: f64,
    pub partitions: usize,
    pub batch_bytes: usize,
    pub in_flight: usize,
    pub rate_limit: Option<f64>,
    pub tail_cache_per_partition: u64,
    /// Whether the broker itself reported the tail cache size (DescribeConfigs).
    pub tail_cache_reported: bool,
    /// The bound on the tail cache of all partitions together (`tail.cache.bytes`), if the
    /// broker reports one.
    pub tail_cache_total: Option<u64>,
    pub idle_rss: u64,
    pub max_rss: u64,
    pub mean_rss: f64,
    pub last_rss: u64,
    pub samples: usize,
    pub produced: Throughput,
    pub produce_latency: Latency,
    pub consumed_bytes: u64,
    pub consumed_secs: f64,
    /// Offsets the consumers were behind the producers when the load stopped.
    pub consumer_lag_records: i64,
    /// Fetches answered KAFKA_STORAGE_ERROR, and the records the consumers skipped after them.
    pub storage_errors: u64,
    pub skipped_records: i64,
    pub cpu: CpuUse,
    pub broker_problems: Vec<String>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

// ---- formatting helpers ---------------------------------------------------------------------

pub fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes & ((1 << 20) - 1) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes & 1023 == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

/// Thousands separators, no decimals.
fn count(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mbs(n: f64) -> String {
    if n >= 100.0 {
        format!("{n:.0}")
    } else if n >= 10.0 {
        format!("{n:.1}")
    } else {
        format!("{n:.2}")
    }
}

fn ms(n: f64) -> String {
    if n >= 100.0 {
        format!("{n:.0}")
    } else if n >= 10.0 {
        format!("{n:.1}")
    } else {
        format!("{n:.3}")
    }
}

fn times(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}x")
    } else {
        "-".into()
    }
}

fn pct(x: f64) -> String {
    format!("{x:.0}%")
}

fn cpu_cell(cpu: &CpuUse) -> String {
    format!("{} ({})", pct(cpu.broker_pct), pct(cpu.executor_pct))
}

/// A table with a header row, columns padded to their widest cell (first column left-aligned,
/// the others right-aligned), and optional separator lines.
struct Table {
    rows: Vec<Option<Vec<String>>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![Some(header.iter().map(|s| s.to_string()).collect())],
        }
    }
    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(Some(cells));
    }
    fn separator(&mut self) {
        self.rows.push(None);
    }
    fn render(&self, out: &mut String) {
        let columns = self.rows.iter().flatten().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in self.rows.iter().flatten() {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let total: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
        for (n, row) in self.rows.iter().enumerate() {
            let Some(row) = row else {
                out.push_str(&format!("  {}\n", "-".repeat(total)));
                continue;
            };
            let mut line = String::from(" ");
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                let pad = width - cell.chars().count();
                line.push(' ');
                if i == 0 {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push(' ');
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
            if n == 0 {
                out.push_str(&format!("  {}\n", "-".repeat(total)));
            }
        }
    }
}

fn machine_lines(m: &Machine, out: &mut String) {
    out.push_str(&format!(
        "machine: {} CPUs ({}), {} RAM, Linux {}\n",
        m.cpus,
        m.cpu_model,
        mib(m.memory_bytes as f64),
        m.kernel
    ));
    out.push_str(&format!(
        "disk:    {} ({}) mounted at {}{}\n",
        m.device,
        m.fs_type,
        m.mount_point,
        if m.disk.is_empty() {
            String::new()
        } else {
            format!("; {}", m.disk)
        }
    ));
}

// ---- the storage report -----------------------------------------------------------------------

impl StorageReport {
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("\nSpate storage benchmark\n");
        machine_lines(&self.machine, &mut out);
        out.push_str(&format!(
            "data:    {} (plain file and broker data dir side by side)\n",
            self.dir
        ));
        out.push_str(&format!(
            "broker:  {}{}\n",
            self.broker_bin,
            if self.prime_broker {
                " (--prime-broker: restarted so that its first segment open holds data)"
            } else {
                ""
            }
        ));
        out.push_str(&format!(
            "records: ~{} B each, a batch of B bytes holds B/{} records (a 1 KiB batch one); \
             batches are exactly B bytes\n",
            self.record_bytes, self.record_bytes
        ));
        out.push_str(
            "units:   MB = 10^6 bytes of batches (padding not counted); latency in ms; CPU in % of \
             one core\n",
        );
        out.push_str(if self.plain_empty_probe {
            "plain:   glommio DmaFile, polled-I/O probe left to an empty file as the broker does \
             (--plain-empty-probe)\n"
        } else {
            "plain:   glommio DmaFile (O_DIRECT, io_uring), polled-I/O probe primed with a file \
             holding data\n"
        });
        out.push_str(&format!(
            "method:  each case stops at its byte budget or after {:.0} s, in {} round(s) that \
             alternate plain and spate and add up\n",
            self.case_secs, self.rounds
        ));

        for fsync in [true, false] {
            let pairs: Vec<&Pair> = self.pairs.iter().filter(|p| p.fsync == fsync).collect();
            if pairs.is_empty() {
                continue;
            }
            if fsync {
                let in_flight = pairs[0].in_flight;
                out.push_str(&format!(
                    "\n[1] Durable per batch. plain: O_DIRECT write + fdatasync per batch. \
                     spate: Produce acks=all (answered after fdatasync), {in_flight} request{} in \
                     flight.\n",
                    if in_flight == 1 { "" } else { "s" }
                ));
            } else {
                out.push_str(&format!(
                    "\n[2] No fsync per batch. plain: O_DIRECT writes only. plain+bg sync: the same \
                     with fdatasync running in the background (one at a time, as the broker does). \
                     spate: Produce acks=1, {} requests in flight (the broker still writes and \
                     fsyncs in the background); its latency includes the wait behind the requests \
                     ahead, so it is not compared with a single write's.\n",
                    self.pipeline
                ));
            }
            let mut table = Table::new(&[
                "batch / writer",
                "MB/s",
                "records/s",
                "p50",
                "p99",
                "p99.9",
                "max",
                "latency of",
                "CPU broker (executor)",
                "CPU bench",
            ]);
            for (i, pair) in pairs.iter().enumerate() {
                if i > 0 {
                    table.separator();
                }
                let plain = &pair.plain;
                let t = &plain.throughput;
                let latency_row =
                    |label: String, l: &Latency, what: &str, t: Option<&Throughput>| {
                        vec![
                            label,
                            t.map_or(String::new(), |t| mbs(t.mb_per_sec())),
                            t.map_or(String::new(), |t| count(t.records_per_sec())),
                            ms(l.p50_ms),
                            ms(l.p99_ms),
                            ms(l.p999_ms),
                            ms(l.max_ms),
                            what.to_string(),
                            String::new(),
                            String::new(),
                        ]
                    };
                let size = size_label(pair.batch_bytes);
                match &plain.sync {
                    Some(sync) => {
                        table.row(latency_row(
                            format!("{size}  plain"),
                            sync,
                            "fdatasync",
                            Some(t),
                        ));
                        table.row(latency_row(
                            String::new(),
                            &plain.batch,
                            "write+fdatasync",
                            None,
                        ));
                    }
                    None => {
                        table.row(latency_row(
                            format!("{size}  plain"),
                            &plain.write,
                            "write",
                            Some(t),
                        ));
                        if let Some(bg) = &pair.plain_background {
                            table.row(latency_row(
                                "       plain+bg sync".into(),
                                &bg.write,
                                "write",
                                Some(&bg.throughput),
                            ));
                            if let Some(sync) = &bg.sync {
                                table.row(latency_row(
                                    String::new(),
                                    sync,
                                    "background fdatasync",
                                    None,
                                ));
                            }
                        }
                    }
                }
                let s = &pair.spate;
                let mut row = latency_row(
                    "       spate".into(),
                    &s.latency,
                    "produce request",
                    Some(&s.throughput),
                );
                row[8] = cpu_cell(&s.cpu);
                row[9] = pct(s.cpu.client_pct);
                table.row(row);
                // Latency ratios only where both sides have one operation in flight: with
                // acks=1 a request waits behind the others in flight, a plain write does not.
                let comparable = pair.in_flight == 1;
                let reference = plain.sync.as_ref().unwrap_or(&plain.write);
                let latency_ratio = |a: f64, b: f64| {
                    if comparable {
                        times(ratio(a, b))
                    } else {
                        String::new()
                    }
                };
                table.row(vec![
                    "       spate/plain".into(),
                    times(pair.throughput_ratio()),
                    times(ratio(s.throughput.records_per_sec(), t.records_per_sec())),
                    latency_ratio(s.latency.p50_ms, reference.p50_ms),
                    latency_ratio(s.latency.p99_ms, reference.p99_ms),
                    latency_ratio(s.latency.p999_ms, reference.p999_ms),
                    String::new(),
                    if comparable {
                        format!("vs {}", if fsync { "fdatasync" } else { "write" })
                    } else {
                        String::new()
                    },
                    String::new(),
                    String::new(),
                ]);
                if let Some(bg) = &pair.plain_background {
                    table.row(vec![
                        "       spate/plain+bg".into(),
                        times(ratio(s.throughput.mb_per_sec(), bg.throughput.mb_per_sec())),
                        times(ratio(
                            s.throughput.records_per_sec(),
                            bg.throughput.records_per_sec(),
                        )),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ]);
                }
            }
            table.render(&mut out);
        }

        if !self.concurrent.is_empty() {
            out.push_str(
                "\n[3] Concurrent producers, acks=all: one connection per partition, 1 request in \
                 flight each, latency send to response. Beside: the single plain writer of [1] \
                 (fdatasync p99, the target's reference), and as many plain writers as producers, \
                 one file each, concurrently (write+fdatasync per batch).\n",
            );
            let mut table = Table::new(&[
                "batch x producers",
                "MB/s",
                "records/s",
                "p50",
                "p99",
                "p99.9",
                "max",
                "p99 / 1-file fdatasync p99",
                "p99 / N-file p99",
                "CPU broker (executor)",
            ]);
            for c in &self.concurrent {
                let s = &c.spate;
                let many = &c.plain_many;
                let size = size_label(c.batch_bytes);
                table.row(vec![
                    format!("{size} x {}  spate", c.producers),
                    mbs(s.throughput.mb_per_sec()),
                    count(s.throughput.records_per_sec()),
                    ms(s.latency.p50_ms),
                    ms(s.latency.p99_ms),
                    ms(s.latency.p999_ms),
                    ms(s.latency.max_ms),
                    format!(
                        "{} {}",
                        times(c.p99_ratio()),
                        verdict(shown(c.p99_ratio(), 100.0) <= LATENCY_TARGET, "")
                    ),
                    times(c.p99_ratio_many()),
                    cpu_cell(&s.cpu),
                ]);
                table.row(vec![
                    format!("{size} x {}  plain, N files", c.producers),
                    mbs(many.throughput.mb_per_sec()),
                    count(many.throughput.records_per_sec()),
                    ms(many.batch.p50_ms),
                    ms(many.batch.p99_ms),
                    ms(many.batch.p999_ms),
                    ms(many.batch.max_ms),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                table.row(vec![
                    format!("{size}      plain, 1 file, fdatasync"),
                    mbs(c.plain_throughput.mb_per_sec()),
                    count(c.plain_throughput.records_per_sec()),
                    ms(c.plain_sync.p50_ms),
                    ms(c.plain_sync.p99_ms),
                    ms(c.plain_sync.p999_ms),
                    ms(c.plain_sync.max_ms),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                table.separator();
            }
            table.rows.pop();
            table.render(&mut out);
        }

        if !self.tcp.is_empty() {
            out.push_str(
                "\n[4] Loopback TCP, no broker, no disk: the same batches, 4-byte framed. \
                 streaming = back to back; ping-pong = one in flight, 8-byte answer.\n",
            );
            let mut table = Table::new(&[
                "batch",
                "streaming MB/s",
                "ping-pong MB/s",
                "round trip p50",
                "p99",
                "p99.9",
            ]);
            for row in &self.tcp {
                let r = &row.result;
                table.row(vec![
                    size_label(row.batch_bytes),
                    mbs(r.stream.mb_per_sec()),
                    mbs(r.ping_pong.mb_per_sec()),
                    ms(r.round_trip.p50_ms),
                    ms(r.round_trip.p99_ms),
                    ms(r.round_trip.p999_ms),
                ]);
            }
            table.render(&mut out);
        }

        out.push_str("\nTargets\n");
        let mut table = Table::new(&["check", "measured", "target", "verdict"]);
        for pair in self
            .pairs
            .iter()
            .filter(|p| p.batch_bytes >= THROUGHPUT_TARGET_MIN_BATCH)
        {
            let r = pair.throughput_ratio();
            table.row(vec![
                format!(
                    "throughput {} {}",
                    size_label(pair.batch_bytes),
                    if pair.fsync {
                        "acks=all vs write+fdatasync"
                    } else {
                        "acks=1 vs write"
                    }
                ),
                format!("{:.0}% of plain", r * 100.0),
                format!(">= {:.0}%", THROUGHPUT_TARGET * 100.0),
                verdict(shown(r, 100.0) >= THROUGHPUT_TARGET, ""),
            ]);
        }
        for c in &self.concurrent {
            let r = c.p99_ratio();
            table.row(vec![
                format!(
                    "acks=all p99, {} producers x {}",
                    c.producers,
                    size_label(c.batch_bytes)
                ),
                format!("{} of 1-file fdatasync p99", times(r)),
                format!("<= {LATENCY_TARGET:.0}x"),
                verdict(shown(r, 100.0) <= LATENCY_TARGET, ""),
            ]);
        }
        table.render(&mut out);

        if !self.broker_problems.is_empty() {
            out.push_str(&format!(
                "\nThe broker logged {} warning(s)/error(s); the first:\n",
                self.broker_problems.len()
            ));
            for line in self.broker_problems.iter().take(5) {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out
    }

    pub fn json(&self) -> Json {
        Json::obj([
            ("benchmark", Json::str("storage")),
            ("machine", machine_json(&self.machine)),
            ("dir", Json::str(&self.dir)),
            ("broker_bin", Json::str(&self.broker_bin)),
            ("record_bytes", Json::num(self.record_bytes as f64)),
            ("pipeline", Json::num(self.pipeline as f64)),
            ("rounds", Json::num(self.rounds as f64)),
            ("plain_empty_probe", Json::Bool(self.plain_empty_probe)),
            ("prime_broker", Json::Bool(self.prime_broker)),
            ("case_secs", Json::num(self.case_secs)),
            (
                "pairs",
                Json::Arr(
                    self.pairs
                        .iter()
                        .map(|p| {
                            Json::obj([
                                ("batch_bytes", Json::num(p.batch_bytes as f64)),
                                ("fsync", Json::Bool(p.fsync)),
                                ("in_flight", Json::num(p.in_flight as f64)),
                                (
                                    "plain",
                                    Json::obj([
                                        ("throughput", throughput_json(&p.plain.throughput)),
                                        ("device_bytes", Json::num(p.plain.device_bytes as f64)),
                                        (
                                            "fdatasync_ms",
                                            p.plain.sync.as_ref().map_or(Json::Null, latency_json),
                                        ),
                                        ("write_ms", latency_json(&p.plain.write)),
                                        ("batch_ms", latency_json(&p.plain.batch)),
                                    ]),
                                ),
                                (
                                    "plain_background_sync",
                                    p.plain_background.as_ref().map_or(Json::Null, |bg| {
                                        Json::obj([
                                            ("throughput", throughput_json(&bg.throughput)),
                                            ("write_ms", latency_json(&bg.write)),
                                            (
                                                "fdatasync_ms",
                                                bg.sync.as_ref().map_or(Json::Null, latency_json),
                                            ),
                                        ])
                                    }),
                                ),
                                ("spate", spate_json(&p.spate)),
                                ("throughput_ratio", Json::num(p.throughput_ratio())),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "concurrent",
                Json::Arr(
                    self.concurrent
                        .iter()
                        .map(|c| {
                            Json::obj([
                                ("batch_bytes", Json::num(c.batch_bytes as f64)),
                                ("producers", Json::num(c.producers as f64)),
                                ("spate", spate_json(&c.spate)),
                                ("plain_fdatasync_ms", latency_json(&c.plain_sync)),
                                ("plain_batch_ms", latency_json(&c.plain_batch)),
                                ("plain_throughput", throughput_json(&c.plain_throughput)),
                                (
                                    "plain_many_files",
                                    Json::obj([
                                        ("throughput", throughput_json(&c.plain_many.throughput)),
                                        ("batch_ms", latency_json(&c.plain_many.batch)),
                                        (
                                            "fdatasync_ms",
                                            c.plain_many
                                                .sync
                                                .as_ref()
                                                .map_or(Json::Null, latency_json),
                                        ),
                                    ]),
                                ),
                                ("p99_ratio", Json::num(c.p99_ratio())),
                                ("p99_ratio_many_files", Json::num(c.p99_ratio_many())),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "tcp",
                Json::Arr(
                    self.tcp
                        .iter()
                        .map(|t| {
                            Json::obj([
                                ("batch_bytes", Json::num(t.batch_bytes as f64)),
                                ("streaming", throughput_json(&t.result.stream)),
                                ("ping_pong", throughput_json(&t.result.ping_pong)),
                                ("round_trip_ms", latency_json(&t.result.round_trip)),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "broker_problems",
                Json::Arr(self.broker_problems.iter().map(|l| Json::str(l)).collect()),
            ),
        ])
    }
}

/// `x` rounded as the tables print it (`scale` 100: two decimals, or a whole percent), so that a
/// verdict never contradicts the number beside it.
fn shown(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

fn verdict(ok: bool, suffix: &str) -> String {
    let word = if ok { "met" } else { "MISSED" };
    if suffix.is_empty() {
        word.into()
    } else {
        format!("{word} ({suffix})")
    }
}

// ---- the memory report ------------------------------------------------------------------------

impl MemoryReport {
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("\nSpate memory benchmark\n");
        machine_lines(&self.machine, &mut out);
        out.push_str(&format!("broker:  {}\n", self.broker_bin));
        out.push_str(&format!(
            "load:    {:.0} s; {} partitions, one producer (acks=1, {} in flight, {} batches{}) and \
             one tail consumer (Fetch) per partition\n",
            self.secs,
            self.partitions,
            self.in_flight,
            size_label(self.batch_bytes),
            match self.rate_limit {
                Some(rate) => format!(", {} MB/s in total at most", mbs(rate / 1e6)),
                None => ", unthrottled".into(),
            }
        ));
        let per_partition = self.tail_cache_per_partition * self.partitions as u64;
        let cache = self
            .tail_cache_total
            .map_or(per_partition, |total| total.min(per_partition));
        let mut table = Table::new(&["measure", "value"]);
        table.row(vec![
            "idle RSS after start (fixed overhead)".into(),
            mib(self.idle_rss as f64),
        ]);
        table.row(vec!["RSS under load, max".into(), mib(self.max_rss as f64)]);
        table.row(vec!["RSS under load, mean".into(), mib(self.mean_rss)]);
        table.row(vec![
            "RSS at the end of the load".into(),
            mib(self.last_rss as f64),
        ]);
        table.row(vec![
            format!(
                "configured tail cache: {} partitions x {}{}{}",
                self.partitions,
                mib(self.tail_cache_per_partition as f64),
                if self.tail_cache_reported {
                    ""
                } else {
                    " (assumed: not reported)"
                },
                self.tail_cache_total.map_or(String::new(), |t| format!(
                    ", at most {} in all",
                    mib(t as f64)
                ))
            ),
            mib(cache as f64),
        ]);
        table.row(vec![
            "max RSS - idle RSS".into(),
            mib(self.max_rss.saturating_sub(self.idle_rss) as f64),
        ]);
        table.row(vec![
            "(max RSS - idle RSS) / configured cache".into(),
            times(ratio(
                self.max_rss.saturating_sub(self.idle_rss) as f64,
                cache as f64,
            )),
        ]);
        table.row(vec![
            "RSS samples (every 100 ms)".into(),
            count(self.samples as f64),
        ]);
        table.separator();
        table.row(vec![
            "produced".into(),
            format!(
                "{} MB/s, {} records/s",
                mbs(self.produced.mb_per_sec()),
                count(self.produced.records_per_sec())
            ),
        ]);
        table.row(vec![
            "produce latency p50 / p99 / p99.9".into(),
            format!(
                "{} / {} / {} ms",
                ms(self.produce_latency.p50_ms),
                ms(self.produce_latency.p99_ms),
                ms(self.produce_latency.p999_ms)
            ),
        ]);
        table.row(vec![
            "consumed".into(),
            format!(
                "{} MB/s",
                mbs(ratio(self.consumed_bytes as f64, self.consumed_secs) / 1e6)
            ),
        ]);
        table.row(vec![
            "consumer lag when the load stopped".into(),
            format!("{} records", count(self.consumer_lag_records as f64)),
        ]);
        table.row(vec![
            "fetches failed with KAFKA_STORAGE_ERROR".into(),
            if self.storage_errors == 0 {
                "0".into()
            } else {
                format!(
                    "{} (records skipped to the tail after them: {})",
                    count(self.storage_errors as f64),
                    count(self.skipped_records as f64)
                )
            },
        ]);
        table.row(vec![
            "CPU broker (executor) / bench".into(),
            format!("{} / {}", cpu_cell(&self.cpu), pct(self.cpu.client_pct)),
        ]);
        table.render(&mut out);
        if !self.broker_problems.is_empty() {
            out.push_str(&format!(
                "\nThe broker logged {} warning(s)/error(s); the first:\n",
                self.broker_problems.len()
            ));
            for line in self.broker_problems.iter().take(5) {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out
    }

    pub fn json(&self) -> Json {
        Json::obj([
            ("benchmark", Json::str("memory")),
            ("machine", machine_json(&self.machine)),
            ("broker_bin", Json::str(&self.broker_bin)),
            ("secs", Json::num(self.secs)),
            ("partitions", Json::num(self.partitions as f64)),
            ("batch_bytes", Json::num(self.batch_bytes as f64)),
            ("in_flight", Json::num(self.in_flight as f64)),
            (
                "rate_limit_bytes_per_sec",
                self.rate_limit.map_or(Json::Null, Json::num),
            ),
            (
                "tail_cache_bytes_per_partition",
                Json::num(self.tail_cache_per_partition as f64),
            ),
            ("tail_cache_reported", Json::Bool(self.tail_cache_reported)),
            (
                "tail_cache_bytes_total",
                self.tail_cache_total
                    .map_or(Json::Null, |t| Json::num(t as f64)),
            ),
            ("idle_rss_bytes", Json::num(self.idle_rss as f64)),
            ("max_rss_bytes", Json::num(self.max_rss as f64)),
            ("mean_rss_bytes", Json::num(self.mean_rss)),
            ("last_rss_bytes", Json::num(self.last_rss as f64)),
            ("samples", Json::num(self.samples as f64)),
            ("produced", throughput_json(&self.produced)),
            ("produce_latency_ms", latency_json(&self.produce_latency)),
            ("consumed_bytes", Json::num(self.consumed_bytes as f64)),
            ("consumed_secs", Json::num(self.consumed_secs)),
            (
                "consumer_lag_records",
                Json::num(self.consumer_lag_records as f64),
            ),
            (
                "fetch_storage_errors",
                Json::num(self.storage_errors as f64),
            ),
            ("skipped_records", Json::num(self.skipped_records as f64)),
            ("cpu_broker_pct", Json::num(self.cpu.broker_pct)),
            ("cpu_broker_executor_pct", Json::num(self.cpu.executor_pct)),
            ("cpu_bench_pct", Json::num(self.cpu.client_pct)),
            (
                "broker_problems",
                Json::Arr(self.broker_problems.iter().map(|l| Json::str(l)).collect()),
            ),
        ])
    }
}

// ---- JSON -----------------------------------------------------------------------------------

/// Just enough JSON to write the results.
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn obj<const N: usize>(fields: [(&str, Json); N]) -> Json {
        Json::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }
    fn str(s: &str) -> Json {
        Json::Str(s.to_string())
    }
    fn num(n: f64) -> Json {
        Json::Num(n)
    }

    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, indent: usize) {
        let pad = |out: &mut String, n: usize| out.push_str(&"  ".repeat(n));
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) if n.is_finite() => {
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    out.push_str(&format!("{n:.0}"));
                } else {
                    out.push_str(&format!("{n}"));
                }
            }
            Json::Num(_) => out.push_str("null"),
            Json::Str(s) => write_string(out, s),
            Json::Arr(items) if items.is_empty() => out.push_str("[]"),
            Json::Arr(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    pad(out, indent + 1);
                    item.write(out, indent + 1);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push_str("{\n");
                for (i, (key, value)) in fields.iter().enumerate() {
                    pad(out, indent + 1);
                    write_string(out, key);
                    out.push_str(": ");
                    value.write(out, indent + 1);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push('}');
            }
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn latency_json(l: &Latency) -> Json {
    Json::obj([
        ("count", Json::num(l.count as f64)),
        ("p50", Json::num(l.p50_ms)),
        ("p99", Json::num(l.p99_ms)),
        ("p999", Json::num(l.p999_ms)),
        ("max", Json::num(l.max_ms)),
        ("mean", Json::num(l.mean_ms)),
    ])
}

fn throughput_json(t: &Throughput) -> Json {
    Json::obj([
        ("bytes", Json::num(t.bytes as f64)),
        ("batches", Json::num(t.batches as f64)),
        ("records", Json::num(t.records as f64)),
        ("secs", Json::num(t.secs)),
        ("mb_per_sec", Json::num(t.mb_per_sec())),
        ("records_per_sec", Json::num(t.records_per_sec())),
    ])
}

fn spate_json(s: &SpateResult) -> Json {
    Json::obj([
        ("throughput", throughput_json(&s.throughput)),
        ("request_ms", latency_json(&s.latency)),
        ("cpu_broker_pct", Json::num(s.cpu.broker_pct)),
        ("cpu_broker_executor_pct", Json::num(s.cpu.executor_pct)),
        ("cpu_bench_pct", Json::num(s.cpu.client_pct)),
    ])
}

fn machine_json(m: &Machine) -> Json {
    Json::obj([
        ("cpus", Json::num(m.cpus as f64)),
        ("cpu_model", Json::str(&m.cpu_model)),
        ("memory_bytes", Json::num(m.memory_bytes as f64)),
        ("kernel", Json::str(&m.kernel)),
        ("device", Json::str(&m.device)),
        ("mount_point", Json::str(&m.mount_point)),
        ("fs_type", Json::str(&m.fs_type)),
        ("disk", Json::str(&m.disk)),
    ])
}
