//! What every simulated run is driven by: its events in order of virtual time (and, at one
//! time, in the order they were scheduled), and the trace hash every event handled and every
//! crash's damage is folded into (FNV-1a), so the same seed gives the same hash.

use crate::client::Micros;
use std::collections::BTreeMap;

/// Every node's wall clock at virtual time zero, before its own skew (a date in 2023, in
/// Kafka's milliseconds).
pub(crate) const EPOCH_MS: i64 = 1_700_000_000_000;

pub(crate) struct Timeline<E> {
    queue: BTreeMap<(Micros, u64), E>,
    next_seq: u64,
    trace: u64,
}

impl<E> Timeline<E> {
    pub(crate) fn new() -> Timeline<E> {
        Timeline {
            queue: BTreeMap::new(),
            next_seq: 0,
            trace: 0xcbf2_9ce4_8422_2325,
        }
    }

    pub(crate) fn push(&mut self, at: Micros, event: E) {
        self.queue.insert((at, self.next_seq), event);
        self.next_seq += 1;
    }

    /// The next event and its time.
    pub(crate) fn pop(&mut self) -> Option<(Micros, E)> {
        self.queue.pop_first().map(|((at, _), event)| (at, event))
    }

    pub(crate) fn fold(&mut self, values: &[u64]) {
        for value in values {
            for byte in value.to_le_bytes() {
                self.trace = (self.trace ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }

    pub(crate) fn trace_hash(&self) -> u64 {
        self.trace
    }
}
