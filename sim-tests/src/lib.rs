//! The simulation suite: one checker per concern, run on every seed, over the `History` a run of
//! the simulator (`spate-runtime-sim`) produced.
//!
//! - durability: every record acknowledged under acks=all is in the final log, at its offset;
//! - order: offsets are dense, and every reader (before and after crashes) saw the same record at
//!   the same offset;
//! - no phantom data: nothing read that no producer sent, no corrupt batch served;
//! - exactly once: an idempotent acks=all producer's record is in the log at most once;
//! - liveness: after the faults stop, every producer's records are acknowledged, every consumer
//!   catches up, and the verifier reads everything within a bounded virtual time.

use spate_core::broker::PlantedBug;
use spate_runtime_sim::{History, Options, Outcome};
use std::collections::BTreeMap;

/// A checker's verdict: the violations it found (empty when the run is good).
pub struct Verdict {
    pub checker: &'static str,
    pub violations: Vec<String>,
}

pub fn check_durability(history: &History) -> Verdict {
    let mut violations = Vec::new();
    for ack in history.acks.iter().filter(|a| a.acks == -1) {
        for (i, payload) in ack.payloads.iter().enumerate() {
            let offset = ack.base_offset + i as i64;
            match history.final_log.get(&(ack.topic.clone(), ack.partition, offset)) {
                Some(found) if found == payload => {}
                Some(found) => violations.push(format!(
                    "acknowledged {payload:?} at {}-{} offset {offset}, found {found:?} there",
                    ack.topic, ack.partition
                )),
                None => violations.push(format!(
                    "acknowledged {payload:?} at {}-{} offset {offset} (producer {}), missing after recovery",
                    ack.topic, ack.partition, ack.client
                )),
            }
        }
    }
    Verdict {
        checker: "durability",
        violations,
    }
}

pub fn check_order(history: &History) -> Verdict {
    let mut violations = history.conflicts.clone();
    // Everything a consumer read was committed, so the final log must still hold it.
    for ((topic, partition, offset), (client, payload)) in &history.observed {
        match history.final_log.get(&(topic.clone(), *partition, *offset)) {
            Some(found) if found == payload => {}
            Some(found) => violations.push(format!(
                "{topic}-{partition} offset {offset}: client {client} read {payload:?}, the final log has {found:?}"
            )),
            None => violations.push(format!(
                "{topic}-{partition} offset {offset}: client {client} read {payload:?}, the final log lost it"
            )),
        }
    }
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for (topic, partition, offset) in history.final_log.keys() {
        let expected = next.entry((topic, *partition)).or_insert(0);
        if *offset != *expected {
            violations.push(format!(
                "{topic}-{partition}: offset {offset} follows {}: not dense",
                *expected - 1
            ));
        }
        *expected = offset + 1;
    }
    violations.extend(
        history
            .problems
            .iter()
            .filter(|p| p.contains("expected offset") || p.contains("out of range"))
            .cloned(),
    );
    Verdict {
        checker: "order",
        violations,
    }
}

pub fn check_no_phantoms(history: &History) -> Verdict {
    let mut violations: Vec<String> = history
        .final_log
        .values()
        .chain(history.observed.values().map(|(_, p)| p))
        .filter(|payload| !history.sent.contains(*payload))
        .map(|payload| format!("read {payload:?}, which no producer sent"))
        .collect();
    violations.dedup();
    violations.extend(
        history
            .problems
            .iter()
            .filter(|p| !(p.contains("expected offset") || p.contains("out of range")))
            .cloned(),
    );
    Verdict {
        checker: "no-phantom",
        violations,
    }
}

pub fn check_exactly_once(history: &History) -> Verdict {
    let idempotent: std::collections::BTreeSet<&String> = history
        .acks
        .iter()
        .filter(|a| a.acks == -1 && a.idempotent)
        .flat_map(|a| a.payloads.iter())
        .collect();
    let mut count: BTreeMap<&String, u32> = BTreeMap::new();
    for payload in history
        .final_log
        .values()
        .filter(|p| idempotent.contains(p))
    {
        *count.entry(payload).or_default() += 1;
    }
    let violations = count
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(payload, n)| format!("idempotent record {payload:?} is in the log {n} times"))
        .collect();
    Verdict {
        checker: "exactly-once",
        violations,
    }
}

pub fn check_liveness(history: &History) -> Verdict {
    Verdict {
        checker: "liveness",
        violations: history.liveness.clone(),
    }
}

/// Every checker's verdict on one run.
pub fn check(outcome: &Outcome) -> Vec<Verdict> {
    let h = &outcome.history;
    vec![
        check_durability(h),
        check_order(h),
        check_no_phantoms(h),
        check_exactly_once(h),
        check_liveness(h),
    ]
}

/// Runs one seed and checks it: the failing verdicts (empty when green) and the outcome.
pub fn run_seed(options: Options) -> (Vec<Verdict>, Outcome) {
    let outcome = spate_runtime_sim::run(options);
    let failing = check(&outcome)
        .into_iter()
        .filter(|v| !v.violations.is_empty())
        .collect();
    (failing, outcome)
}

/// The `--buggify` names of the planted bugs.
pub fn planted_bug(name: &str) -> Result<PlantedBug, String> {
    match name {
        "ack-before-fsync" => Ok(PlantedBug::AckBeforeFsync),
        "lose-last-batch" => Ok(PlantedBug::LoseLastBatchOnRecovery),
        other => Err(format!(
            "unknown planted bug '{other}': expected ack-before-fsync or lose-last-batch"
        )),
    }
}

/// The one command that replays a seed.
pub fn replay_command(options: &Options, buggify: Option<&str>) -> String {
    let mut command = format!("just sim --seed {}", options.seed);
    if let Some(bug) = buggify {
        command.push_str(&format!(" --buggify {bug}"));
    }
    if options.fault_secs != Options::new(0).fault_secs {
        command.push_str(&format!(" --virtual-secs {}", options.fault_secs));
    }
    command
}
