//! The fuzz loop: seeded cases, panics caught and attributed, failing inputs shrunk and reported
//! as hex, known bugs tallied instead of failing, and a watchdog that turns a hang into a report.

use super::rng::{hash_str, mix, Rng};
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// The seed of CI runs. `SPATE_FUZZ_SEED` picks another (a soak with fresh cases).
pub const DEFAULT_SEED: u64 = 0x5ba7_e0f0_2024_0004;

/// An input a target can run, describe and shrink.
pub trait Input: Clone + Send + 'static {
    /// Human-readable, with every byte in hex, for the report.
    fn describe(&self) -> String;
    /// Smaller variants to try when shrinking a failure, most aggressive first.
    fn shrink(&self) -> Vec<Self>;
    /// The input as a corpus file (`.hex`), when it can be one.
    fn corpus_text(&self) -> Option<String> {
        None
    }
}

/// A panic: its message and where it was raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panic {
    pub message: String,
    pub location: String,
}

impl Panic {
    /// `file:line` without the column, to tell distinct failures apart.
    fn site(&self) -> &str {
        match self.location.rfind(':') {
            Some(at) => &self.location[..at],
            None => &self.location,
        }
    }
}

/// A bug found by this harness in code it does not own, reported and not yet fixed: panics that
/// match it are counted rather than failing the run, so CI stays green until the fix lands.
/// Matching is by file and message, not line, as the files are being edited.
pub struct KnownBug {
    pub id: &'static str,
    pub file: &'static str,
    /// Every one of these is in the panic message.
    pub message: &'static [&'static str],
}

impl KnownBug {
    fn matches(&self, panic: &Panic) -> bool {
        panic.location.contains(self.file) && self.message.iter().all(|m| panic.message.contains(m))
    }
}

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<Panic>> = const { RefCell::new(None) };
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CAPTURING.with(Cell::get) {
                return default(info);
            }
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic payload>".into());
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_else(|| "<unknown>".into());
            CAUGHT.with(|c| {
                *c.borrow_mut() = Some(Panic {
                    message: clip(message),
                    location,
                })
            });
        }));
    });
}

/// Long panic messages (a 64 KiB string in an assert_eq) are cut for the report.
fn clip(mut message: String) -> String {
    const MAX: usize = 2_000;
    if message.len() > MAX {
        let mut at = MAX;
        while !message.is_char_boundary(at) {
            at -= 1;
        }
        let total = message.len();
        message.truncate(at);
        message.push_str(&format!("... ({total} bytes in all)"));
    }
    message
}

/// Runs `f`, turning a panic into its message and location (printed by nobody).
pub fn catch(f: impl FnOnce()) -> Result<(), Panic> {
    install_hook();
    CAPTURING.with(|c| c.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(false));
    result.map_err(|_| {
        CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or(Panic {
            message: "<panic without hook record>".into(),
            location: "<unknown>".into(),
        })
    })
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    let value = value.trim().replace('_', "");
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// How many cases a target runs: `default` in CI, or `SPATE_FUZZ_CASES / cost` for a soak.
pub fn cases(default: u64, cost: u64) -> u64 {
    env_u64("SPATE_FUZZ_CASES").map_or(default, |n| (n / cost).max(1))
}

pub fn base_seed() -> u64 {
    env_u64("SPATE_FUZZ_SEED").unwrap_or(DEFAULT_SEED)
}

/// The seed of one case of one target.
pub fn case_seed(target: &str, index: u64) -> u64 {
    mix(mix(base_seed(), hash_str(target)), index)
}

/// Bytes as hex, 32 to a line.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3 + bytes.len() / 32 + 1);
    for (i, chunk) in bytes.chunks(32).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (j, b) in chunk.iter().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{b:02x}");
        }
    }
    out
}

/// Hex for reports: like [`hex`], but runs of 32 or more equal bytes are written `[78 x 40000]`.
pub fn hex_compact(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut plain: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|&&b| b == bytes[i]).count();
        if run >= 32 {
            if !plain.is_empty() {
                out.push_str(&hex(&plain));
                out.push('\n');
                plain.clear();
            }
            let _ = writeln!(out, "[{:02x} x {run}]", bytes[i]);
            i += run;
        } else {
            plain.extend_from_slice(&bytes[i..i + run]);
            i += run;
        }
    }
    out.push_str(&hex(&plain));
    out.trim_end().to_string()
}

/// Parses a corpus `.hex` file: hex digit pairs, whitespace ignored, `#` starts a comment.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut digits = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for c in line.chars().filter(|c| !c.is_whitespace()) {
            digits.push(c.to_digit(16).ok_or_else(|| format!("not hex: {c:?}"))? as u8);
        }
    }
    if digits.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    Ok(digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
}

struct Failure<I> {
    panic: Panic,
    case: u64,
    seed: u64,
    input: I,
    shrunk: I,
}

/// Shrinks `input` while it still fails at the same place, within a budget.
fn shrink<I: Input>(input: &I, panic: &Panic, check: &dyn Fn(&I), progress: &AtomicU64) -> I {
    let started = Instant::now();
    let mut budget = 4_000u32;
    let mut best = input.clone();
    'outer: loop {
        for candidate in best.shrink() {
            if budget == 0 || started.elapsed() > Duration::from_secs(20) {
                break 'outer;
            }
            budget -= 1;
            progress.fetch_add(1, Ordering::Relaxed);
            if let Err(p) = catch(|| check(&candidate)) {
                if p.site() == panic.site() {
                    best = candidate;
                    continue 'outer;
                }
            }
        }
        break;
    }
    best
}

/// Aborts the process with a report when a case makes no progress for `SPATE_FUZZ_HANG_SECS`
/// (default 60): a hang in the broker would otherwise stall CI without saying which input.
struct Watchdog<I: Input> {
    progress: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    current: Arc<Mutex<Option<(u64, I)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<I: Input> Watchdog<I> {
    fn start(target: &str) -> Self {
        let progress = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let current: Arc<Mutex<Option<(u64, I)>>> = Arc::new(Mutex::new(None));
        let limit = Duration::from_secs(env_u64("SPATE_FUZZ_HANG_SECS").unwrap_or(60));
        let (p, d, c, target) = (
            progress.clone(),
            done.clone(),
            current.clone(),
            target.to_string(),
        );
        let thread = std::thread::spawn(move || {
            let mut last = (p.load(Ordering::Relaxed), Instant::now());
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let now = p.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() > limit {
                    let guard = c.lock().unwrap_or_else(|e| e.into_inner());
                    let (case, input) = match &*guard {
                        Some((case, input)) => (case.to_string(), input.describe()),
                        None => ("?".into(), "?".into()),
                    };
                    eprintln!(
                        "\nfuzz {target}: HANG: case {case} (seed {:#x}) made no progress for \
                         {limit:?}; replay with SPATE_FUZZ_CASE={target}:{case}\ninput:\n{input}",
                        base_seed()
                    );
                    std::process::abort();
                }
            }
        });
        Watchdog {
            progress,
            done,
            current,
            thread: Some(thread),
        }
    }
}

impl<I: Input> Drop for Watchdog<I> {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `cases` seeded cases of a target: each input is generated from its case seed and checked;
/// a panic is either a known bug (counted) or a failure (shrunk, reported, and the run fails at
/// the end with every distinct failure). `SPATE_FUZZ_CASE=<target>:<index>` runs one case.
pub fn run<I: Input>(
    target: &str,
    cases: u64,
    known: &[KnownBug],
    generate: impl Fn(&mut Rng) -> I,
    check: impl Fn(&I),
) {
    let only: Option<u64> = std::env::var("SPATE_FUZZ_CASE").ok().and_then(|v| {
        let (t, i) = v.split_once(':')?;
        if t == target {
            i.parse().ok()
        } else {
            Some(u64::MAX) // another target's case: run nothing here
        }
    });
    let range = match only {
        Some(u64::MAX) => 0..0,
        Some(i) => i..i + 1,
        None => 0..cases,
    };
    let watchdog: Watchdog<I> = Watchdog::start(target);
    let started = Instant::now();
    let mut failures: Vec<Failure<I>> = Vec::new();
    let mut known_hits = vec![0u64; known.len()];
    let mut run = 0u64;
    for case in range {
        let seed = case_seed(target, case);
        let input = generate(&mut Rng::new(seed));
        *watchdog.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((case, input.clone()));
        watchdog.progress.fetch_add(1, Ordering::Relaxed);
        run += 1;
        let Err(panic) = catch(|| check(&input)) else {
            continue;
        };
        if let Some(k) = known.iter().position(|k| k.matches(&panic)) {
            known_hits[k] += 1;
            continue;
        }
        if failures.iter().any(|f| f.panic.site() == panic.site()) {
            continue;
        }
        if only.is_some() {
            eprintln!(
                "case {case} panicked: {} at {}",
                panic.message, panic.location
            );
        }
        let shrunk = shrink(&input, &panic, &check, &watchdog.progress);
        failures.push(Failure {
            panic,
            case,
            seed,
            input,
            shrunk,
        });
        if failures.len() >= 8 {
            break;
        }
    }
    drop(watchdog);
    let secs = started.elapsed().as_secs_f64();
    let mut summary = format!(
        "fuzz {target}: {run} cases in {secs:.2} s ({:.0}/s), base seed {:#x}",
        run as f64 / secs.max(1e-9),
        base_seed()
    );
    for (bug, hits) in known.iter().zip(&known_hits) {
        if *hits > 0 {
            let _ = write!(summary, "; known bug {}: {hits} hits", bug.id);
        }
    }
    eprintln!("{summary}");
    if failures.is_empty() {
        return;
    }
    let mut report = format!("{summary}\n{} distinct failure(s):\n", failures.len());
    for f in &failures {
        let saved = save_failure(target, f);
        let _ = write!(
            report,
            "\n--- case {} (case seed {:#x}; replay: SPATE_FUZZ_CASE={target}:{}{})\n\
             panic: {}\n  at {}\nshrunk input:\n{}\n{}original input:\n{}\n",
            f.case,
            f.seed,
            f.case,
            if base_seed() == DEFAULT_SEED {
                String::new()
            } else {
                format!(" SPATE_FUZZ_SEED={:#x}", base_seed())
            },
            f.panic.message,
            f.panic.location,
            f.shrunk.describe(),
            saved.map_or(String::new(), |p| format!("(saved as {p})\n")),
            f.input.describe(),
        );
    }
    panic!("{report}");
}

/// Writes a shrunk failure as a corpus file under the target directory, ready to copy into
/// `core/fuzz-corpus/`.
fn save_failure<I: Input>(target: &str, f: &Failure<I>) -> Option<String> {
    let text = f.shrunk.corpus_text()?;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{target}-case{}.hex", f.case));
    let text = format!(
        "# {target} case {} (case seed {:#x}): {} at {}\n{text}",
        f.case,
        f.seed,
        f.panic.message.lines().next().unwrap_or(""),
        f.panic.location
    );
    std::fs::write(&path, text).ok()?;
    Some(path.display().to_string())
}

/// Byte-string shrink candidates: drop halves, quarters, ... down to single bytes, then zero
/// bytes one at a time (bounded, so long inputs stay cheap).
pub fn shrink_bytes(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let n = bytes.len();
    let mut chunk = n / 2;
    while chunk >= 1 {
        let mut at = 0;
        while at + chunk <= n && out.len() < 2_000 {
            let mut v = bytes[..at].to_vec();
            v.extend_from_slice(&bytes[at + chunk..]);
            out.push(v);
            at += chunk;
        }
        chunk /= 2;
    }
    for i in 0..n.min(256) {
        if bytes[i] != 0 {
            let mut v = bytes.to_vec();
            v[i] = 0;
            out.push(v);
        }
    }
    out
}
