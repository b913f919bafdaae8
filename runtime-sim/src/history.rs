//! What happened in a run, as the clients saw it: the checkers (in `sim-tests`) judge it.

use std::collections::{BTreeMap, BTreeSet};

/// A produce the broker acknowledged: `payloads[i]` is at `base_offset + i`.
#[derive(Debug, Clone)]
pub struct Ack {
    pub client: usize,
    pub acks: i16,
    pub idempotent: bool,
    pub topic: String,
    pub partition: i32,
    pub base_offset: i64,
    pub payloads: Vec<String>,
}

#[derive(Debug, Default)]
pub struct History {
    /// Every payload a producer sent (each is unique).
    pub sent: BTreeSet<String>,
    pub acks: Vec<Ack>,
    /// What was first read at each offset, and by which client.
    pub observed: BTreeMap<(String, i32, i64), (usize, String)>,
    /// An offset read as one payload and later as another.
    pub conflicts: Vec<String>,
    /// Everything the verifier read after the last crash and restart: the log as it ended.
    pub final_log: BTreeMap<(String, i32, i64), String>,
    /// Protocol-level problems the clients met: corrupt batches, gaps, undecodable answers.
    pub problems: Vec<String>,
    /// What was still pending when the quiet phase ended.
    pub liveness: Vec<String>,
    /// Times an idempotent producer had to start a new session.
    pub sequence_resets: u64,
}

impl History {
    pub fn observe(
        &mut self,
        client: usize,
        topic: &str,
        partition: i32,
        offset: i64,
        payload: String,
        verifier: bool,
    ) {
        let key = (topic.to_string(), partition, offset);
        if verifier {
            self.final_log.insert(key.clone(), payload.clone());
        }
        match self.observed.get(&key) {
            Some((first, seen)) if *seen != payload => self.conflicts.push(format!(
                "{topic}-{partition} offset {offset}: client {first} read {seen:?}, client {client} read {payload:?}"
            )),
            Some(_) => {}
            None => {
                self.observed.insert(key, (client, payload));
            }
        }
    }
}
