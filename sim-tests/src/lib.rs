//! The simulation suite: one checker per concern, run on every seed, over the `History` a run of
//! the simulator (`spate-runtime-sim`) produced.
//!
//! - durability: every record acknowledged under acks=all is in the final log, at its offset;
//! - order: offsets are dense, and every reader (before and after crashes) saw the same record at
//!   the same offset;
//! - no phantom data: nothing read that no producer sent, no corrupt batch served;
//! - exactly once: an idempotent acks=all producer's record is in the log at most once;
//! - deadlines: after `handle_timeout(now)` no deadline of the broker is still due at `now`;
//! - leader epochs: each start-up leads in a later epoch, batches keep theirs and never go
//!   back in the log, and OffsetForLeaderEpoch's answers match the batches read;
//! - high watermarks (clusters): what a consumer is told never goes back across failovers;
//! - follower durability (clusters): a leader counts a follower durable only as far as the
//!   follower's disk holds;
//! - liveness: after the faults stop, every producer's records are acknowledged, every consumer
//!   catches up, and the verifier reads everything within a bounded virtual time.

use spate_core::broker::PlantedBug;
use spate_runtime_sim::{History, Options, Outcome, TABLE};
use std::collections::BTreeMap;

/// A checker's verdict: the violations it found (empty when the run is good).
pub struct Verdict {
    pub checker: &'static str,
    pub violations: Vec<String>,
}

/// A compacted topic's record key, which its payload ends with (`...|k<n>`).
fn key_of(payload: &str) -> Option<&str> {
    payload.split_once('|').map(|(_, key)| key)
}

/// For each (topic, partition, key) of a compacted topic, the last offset the final log holds
/// a record of it at: a record below it may have been cleaned away.
fn latest_kept(history: &History) -> BTreeMap<(&str, i32, &str), i64> {
    let mut latest = BTreeMap::new();
    for ((topic, partition, offset), payload) in &history.final_log {
        if let Some(key) = key_of(payload).filter(|_| topic == TABLE) {
            latest.insert((topic.as_str(), *partition, key), *offset);
        }
    }
    latest
}

/// Whether a record missing from the final log of a compacted topic was cleaned away
/// legitimately: the log holds a later record of its key.
fn superseded(
    latest: &BTreeMap<(&str, i32, &str), i64>,
    (topic, partition, offset): (&str, i32, i64),
    payload: &str,
) -> bool {
    topic == TABLE
        && key_of(payload).is_some_and(|key| {
            latest
                .get(&(topic, partition, key))
                .is_some_and(|&at| at > offset)
        })
}

/// Durability, and for the compacted topic the cleaner's promise: every key's latest
/// acknowledged record is in the final log (at its offset), or a later record of its key is;
/// an earlier one may be gone only when a later record of its key stays.
pub fn check_durability(history: &History) -> Verdict {
    let mut violations = Vec::new();
    let latest = latest_kept(history);
    for ack in history.acks.iter().filter(|a| a.acks == -1) {
        for (i, payload) in ack.payloads.iter().enumerate() {
            let offset = ack.base_offset + i as i64;
            match history.final_log.get(&(ack.topic.clone(), ack.partition, offset)) {
                Some(found) if found == payload => {}
                None if superseded(&latest, (&ack.topic, ack.partition, offset), payload) => {}
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

/// `relaxed_flush`: the workload topic has a relaxed flush policy, under which consumers see
/// records before their fsync, so a crash of this disk (which loses what was not synced) may
/// take back records they read; only density is checked then (durability still checks acks=all).
pub fn check_order(history: &History, relaxed_flush: bool) -> Verdict {
    let mut violations = if relaxed_flush {
        Vec::new()
    } else {
        history.conflicts.clone()
    };
    // Everything a consumer read was committed, so the final log must still hold it (or, in
    // the compacted topic, a later record of its key).
    let latest = latest_kept(history);
    let observed = history.observed.iter().filter(|_| !relaxed_flush);
    for ((topic, partition, offset), (client, payload)) in observed {
        match history.final_log.get(&(topic.clone(), *partition, *offset)) {
            Some(found) if found == payload => {}
            None if superseded(&latest, (topic, *partition, *offset), payload) => {}
            Some(found) => violations.push(format!(
                "{topic}-{partition} offset {offset}: client {client} read {payload:?}, the final log has {found:?}"
            )),
            None => violations.push(format!(
                "{topic}-{partition} offset {offset}: client {client} read {payload:?}, the final log lost it"
            )),
        }
    }
    // (A compacted topic's records are dense batch by batch, which its readers check.)
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for (topic, partition, offset) in history.final_log.keys().filter(|k| k.0 != TABLE) {
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
            // Under a relaxed flush policy a crash may take back what a consumer (or a group's
            // commit) had reached, leaving it past the end: expected, not a violation.
            .filter(|p| {
                p.contains("expected offset") || (p.contains("out of range") && !relaxed_flush)
            })
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

/// Within one generation of a group, no partition is assigned to two members.
pub fn check_group_assignments(history: &History) -> Verdict {
    let mut owners: BTreeMap<(&str, i32, i32), usize> = BTreeMap::new();
    let mut violations = Vec::new();
    for a in &history.assignments {
        for partition in &a.partitions {
            match owners.insert((&a.group, a.generation, *partition), a.client) {
                Some(other) if other != a.client => violations.push(format!(
                    "group '{}' generation {}: partition {partition} assigned to clients {other} and {}",
                    a.group, a.generation, a.client
                )),
                _ => {}
            }
        }
    }
    Verdict {
        checker: "group-assignment",
        violations,
    }
}

/// Committed offsets never go backwards (nothing resets them in the simulation), and the
/// coordinator's offsets after the last restart are the last ones it acknowledged.
pub fn check_group_commits(history: &History) -> Verdict {
    let mut violations = Vec::new();
    let mut commits: Vec<&spate_runtime_sim::history::Commit> = history.commits.iter().collect();
    // A generation's commits are applied before the next generation's; within one, the owner
    // commits one request at a time.
    commits.sort_by_key(|c| (c.generation, c.at));
    let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for c in commits {
        let previous = last.insert((&c.group, c.partition), c.offset);
        if let Some(previous) = previous.filter(|p| *p > c.offset) {
            violations.push(format!(
                "group '{}' partition {}: committed offset went back from {previous} to {} (generation {})",
                c.group, c.partition, c.offset, c.generation
            ));
        }
    }
    for ((group, partition), offset) in last {
        match history.final_commits.get(&(group.to_string(), partition)) {
            Some(found) if *found == offset => {}
            found => violations.push(format!(
                "group '{group}' partition {partition}: last acknowledged commit {offset}, after restart {found:?}"
            )),
        }
    }
    // A commit acknowledged before a crash is recovered after it (the durability of commits).
    for (crashed_at, recovered) in &history.recovered_commits {
        let mut acknowledged: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for c in history.commits.iter().filter(|c| c.at < *crashed_at) {
            let entry = acknowledged
                .entry((&c.group, c.partition))
                .or_insert(c.offset);
            *entry = (*entry).max(c.offset);
        }
        for ((group, partition), offset) in acknowledged {
            let found = recovered.get(&partition).copied();
            if found.is_none_or(|f| f < offset) {
                violations.push(format!(
                    "group '{group}' partition {partition}: commit {offset} acknowledged before the crash at {:.3} s, recovered {found:?}",
                    *crashed_at as f64 / 1e6
                ));
            }
        }
    }
    // A committed offset read is never older than a commit acknowledged before the read began.
    for read in &history.offset_reads {
        let acknowledged = history
            .commits
            .iter()
            .filter(|c| {
                c.group == read.group && c.partition == read.partition && c.at < read.sent_at
            })
            .map(|c| c.offset)
            .max();
        if let Some(acknowledged) = acknowledged.filter(|a| *a > read.offset) {
            violations.push(format!(
                "group '{}' partition {}: client {} read committed offset {} after {acknowledged} was acknowledged",
                read.group, read.partition, read.client, read.offset
            ));
        }
    }
    violations.extend(history.group_end.iter().cloned());
    Verdict {
        checker: "group-commits",
        violations,
    }
}

/// After `handle_timeout(now)` no deadline is at or before `now`: one left due makes a shell
/// fire its timer again at once, forever (issue 12).
pub fn check_deadlines(history: &History) -> Verdict {
    Verdict {
        checker: "deadlines",
        violations: history.overdue.clone(),
    }
}

/// Leader epochs across crashes (KIP-101, KIP-320): every start-up leads each partition in a
/// later epoch than the last; a batch keeps the epoch it was written in; the final log's
/// epochs never go back and are epochs the node led in; and where the partition says each
/// epoch ends (OffsetForLeaderEpoch) is where the batches read show the next one begins.
/// `relaxed_flush`: records read before their fsync may be rewritten after a crash, so a
/// batch's epoch may change then.
pub fn check_leader_epochs(history: &History, relaxed_flush: bool) -> Verdict {
    let mut violations = Vec::new();
    if !relaxed_flush {
        violations.extend(history.epoch_conflicts.iter().cloned());
    }
    // The epochs each partition was led in (0 at creation), for topics that kept their id.
    let mut led: BTreeMap<&(String, i32), Vec<i32>> = BTreeMap::new();
    for (start, epochs) in history.start_epochs.iter().enumerate() {
        for (key, &(id, epoch)) in epochs {
            let before = start.checked_sub(1).map(|b| &history.start_epochs[b]);
            match before.and_then(|b| b.get(key)) {
                Some(&(same, last)) if same == id && epoch <= last => violations.push(format!(
                    "{}-{}: start-up {start} leads in epoch {epoch}, the one before led in {last}",
                    key.0, key.1
                )),
                Some(&(same, _)) if same == id => {}
                _ => {
                    led.insert(key, vec![0]); // (re)created since
                }
            }
            led.entry(key).or_insert_with(|| vec![0]).push(epoch);
        }
    }
    for (key, batches) in &history.final_batches {
        let (topic, partition) = key;
        let mut last = None;
        for (&base, &epoch) in batches {
            if last.is_some_and(|(_, e)| epoch < e) {
                let (at, e) = last.unwrap();
                violations.push(format!(
                    "{topic}-{partition}: the batch at {base} is in epoch {epoch}, after one at {at} in epoch {e}"
                ));
            }
            // On a cluster the controller chooses the epochs (the chosen-leaders checker).
            let single_node = !history.start_epochs.is_empty();
            if single_node && !led.get(key).is_some_and(|epochs| epochs.contains(&epoch)) {
                violations.push(format!(
                    "{topic}-{partition}: the batch at {base} is in epoch {epoch}, which no start-up led in"
                ));
            }
            last = Some((base, epoch));
        }
    }
    for (key, (high_watermark, ends)) in &history.epoch_ends {
        let (topic, partition) = key;
        // Where each epoch begins, as the final log shows it, and the current one last (at the
        // log end when it has no batch yet).
        let mut begins: Vec<(i32, i64)> = Vec::new();
        for (&base, &epoch) in history.final_batches.get(key).into_iter().flatten() {
            if begins.last().is_none_or(|&(e, _)| epoch > e) {
                begins.push((epoch, base));
            }
        }
        // The epochs asked run from 0 to one past the current.
        let Some(&(current, _)) = ends.iter().rev().nth(1) else {
            continue;
        };
        if begins.last().is_none_or(|&(e, _)| e < current) {
            begins.push((current, *high_watermark));
        }
        let oldest_read = begins.first().map_or(current, |&(e, _)| e);
        for &(asked, answer) in ends {
            let expected = if asked > current {
                (-1, -1)
            } else if asked == current {
                // Never before it began (a new leader's high watermark may lag its start).
                let began = begins.last().map_or(0, |&(_, start)| start);
                (current, (*high_watermark).max(began))
            } else if asked < oldest_read {
                continue; // its batches may be below the log start, unread
            } else {
                let floor = begins.iter().rev().find(|&&(e, _)| e <= asked);
                let next = begins.iter().find(|&&(e, _)| e > asked);
                match (floor, next) {
                    (Some(&(e, _)), Some(&(_, start))) => (e, start),
                    _ => continue,
                }
            };
            if answer != expected {
                violations.push(format!(
                    "{topic}-{partition}: epoch {asked} ends at {answer:?} by the broker, at {expected:?} by the batches read"
                ));
            }
        }
    }
    Verdict {
        checker: "leader-epochs",
        violations,
    }
}

/// Cluster runs: no Raft term had two controller leaders, and no broker-only node stood.
pub fn check_controller_leaders(history: &History) -> Verdict {
    let mut violations: Vec<String> = history
        .controller_leaders
        .iter()
        .filter(|(_, leaders)| leaders.len() > 1)
        .map(|(term, leaders)| format!("term {term} had controller leaders {leaders:?}"))
        .collect();
    violations.extend(history.observers_standing.iter().cloned());
    Verdict {
        checker: "one-controller-leader-per-term",
        violations,
    }
}

/// Cluster runs: every node committed the same metadata entries, every new controller leader
/// held all entries committed before it, and every acknowledged change is in the end state.
pub fn check_committed_metadata(history: &History) -> Verdict {
    Verdict {
        checker: "committed-metadata",
        violations: history.metadata_conflicts.clone(),
    }
}

/// Cluster runs: clients were told of, and nodes led as, only the partition leaders the
/// controller chose, one per partition epoch, never a fenced broker.
pub fn check_chosen_leaders(history: &History) -> Verdict {
    Verdict {
        checker: "chosen-leaders",
        violations: history.unchosen_leaders.clone(),
    }
}

/// Cluster runs: once the faults stopped, every node converged to the same metadata.
pub fn check_convergence(history: &History) -> Verdict {
    Verdict {
        checker: "convergence",
        violations: history.divergence.clone(),
    }
}

/// Cluster runs: the high watermark a consumer is told never goes back, across failovers.
pub fn check_high_watermarks(history: &History) -> Verdict {
    Verdict {
        checker: "high-watermarks",
        violations: history.watermarks_back.clone(),
    }
}

/// Cluster runs: a partition leader never counts a follower of its epoch as holding on disk
/// more than the follower's disk holds (acks=all rests on it).
pub fn check_follower_durability(history: &History) -> Verdict {
    Verdict {
        checker: "follower-durability",
        violations: history.follower_durability.clone(),
    }
}

/// Cluster runs: a leader never tells a consumer (OffsetForLeaderEpoch, KIP-320) that an
/// older epoch ends below what the consumer read of it.
pub fn check_epoch_ends(history: &History) -> Verdict {
    Verdict {
        checker: "epoch-ends",
        violations: history.epoch_ends_short.clone(),
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
        check_order(h, outcome.faults.flush.is_some()),
        check_no_phantoms(h),
        check_exactly_once(h),
        check_group_assignments(h),
        check_group_commits(h),
        check_deadlines(h),
        check_leader_epochs(h, outcome.faults.flush.is_some()),
        check_liveness(h),
        check_controller_leaders(h),
        check_committed_metadata(h),
        check_chosen_leaders(h),
        check_convergence(h),
        check_high_watermarks(h),
        check_follower_durability(h),
        check_epoch_ends(h),
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
        "commit-before-flush" => Ok(PlantedBug::CommitBeforeFlush),
        "stuck-group-deadline" => Ok(PlantedBug::StuckGroupDeadline),
        "skip-dir-sync" => Ok(PlantedBug::SkipDirSync),
        "mislabel-split-fetch" => Ok(PlantedBug::MislabelSplitFetch),
        "forget-leader-epochs" => Ok(PlantedBug::ForgetLeaderEpochs),
        "vote-twice" => Ok(PlantedBug::VoteTwice),
        "commit-minority" => Ok(PlantedBug::CommitMinority),
        "keep-fenced-leaders" => Ok(PlantedBug::KeepFencedLeaders),
        "hw-from-leader-alone" => Ok(PlantedBug::HighWatermarkFromLeaderAlone),
        "durable-before-fsync" => Ok(PlantedBug::DurableBeforeFsync),
        "elect-outside-in-sync" => Ok(PlantedBug::ElectOutsideInSync),
        "prefer-out-of-sync" => Ok(PlantedBug::PreferOutOfSync),
        "skip-truncation" => Ok(PlantedBug::SkipTruncation),
        "clamp-epoch-ends" => Ok(PlantedBug::ClampEpochEnds),
        "swap-unsynced-cleaning" => Ok(PlantedBug::SwapUnsyncedCleaning),
        other => Err(format!(
            "unknown planted bug '{other}': expected ack-before-fsync, lose-last-batch, commit-before-flush, stuck-group-deadline, mislabel-split-fetch, skip-dir-sync, forget-leader-epochs, swap-unsynced-cleaning, or for clusters vote-twice, commit-minority, keep-fenced-leaders, hw-from-leader-alone, durable-before-fsync, elect-outside-in-sync, skip-truncation, clamp-epoch-ends or prefer-out-of-sync"
        )),
    }
}

/// The one command that replays a seed.
pub fn replay_command(options: &Options, buggify: Option<&str>) -> String {
    let mut command = format!("just sim --seed {}", options.seed);
    match options.nodes {
        Some(0) => command.push_str(" --cluster"),
        Some(nodes) => command.push_str(&format!(" --nodes {nodes}")),
        None => {}
    }
    if let Some(bug) = buggify {
        command.push_str(&format!(" --buggify {bug}"));
    }
    if options.fault_secs != Options::new(0).fault_secs {
        command.push_str(&format!(" --virtual-secs {}", options.fault_secs));
    }
    command
}
