//! The Raft log as the node sees it: every entry, which of them are durable (`stable_index`),
//! committed and applied. Entries live in memory; the shell stores what `poll_output` asks it to
//! (snapshots that bound the log come next).

use super::{Entry, Index, Term};

#[derive(Debug, Default)]
pub(super) struct RaftLog {
    /// Entry `i` at position `i - 1`.
    entries: Vec<Entry>,
    /// Everything at or below is on this node's disk.
    pub(super) stable_index: Index,
    /// Everything at or below is committed (known to be on a majority's disk).
    pub(super) committed_index: Index,
    /// Everything at or below has been handed out as committed.
    pub(super) applied_index: Index,
    /// The lowest index changed since the last persist began, if any.
    unstable_from: Option<Index>,
    /// The persist in flight stores entries through this index (lowered by a truncation).
    in_flight_through: Option<Index>,
}

/// Why entries from a leader cannot be taken.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AppendError {
    /// The entry before them is missing or of another term: the leader must go back.
    Mismatch,
    /// They would replace a committed entry: a leader broke Raft's rules (or a bug).
    RewritesCommitted(Index),
}

impl RaftLog {
    /// A log holding `entries` (as stored), all of them durable.
    pub(super) fn restored(entries: Vec<Entry>, committed_index: Index) -> RaftLog {
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!(
                entry.index,
                i as Index + 1,
                "stored entries are dense from 1"
            );
        }
        let stable_index = entries.len() as Index;
        RaftLog {
            entries,
            stable_index,
            committed_index: committed_index.min(stable_index),
            applied_index: 0,
            unstable_from: None,
            in_flight_through: None,
        }
    }

    pub(super) fn last_index(&self) -> Index {
        self.entries.len() as Index
    }

    pub(super) fn last_term(&self) -> Term {
        self.entries.last().map_or(0, |e| e.term)
    }

    /// The term of entry `index` (0 for index 0, `None` past the end).
    pub(super) fn term_at(&self, index: Index) -> Option<Term> {
        match index {
            0 => Some(0),
            i => self.entries.get(i as usize - 1).map(|e| e.term),
        }
    }

    /// Whether a log ending at (`last_term`, `last_index`) is at least as up to date as this one
    /// (Raft §5.4.1): a later last term, or the same and at least as long.
    pub(super) fn is_up_to_date(&self, last_term: Term, last_index: Index) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Entries from `from`, at most `count_max` of them.
    pub(super) fn slice(&self, from: Index, count_max: usize) -> Vec<Entry> {
        let start = (from.max(1) - 1) as usize;
        self.entries
            .iter()
            .skip(start)
            .take(count_max)
            .cloned()
            .collect()
    }

    /// Appends a new entry in `term` (as leader); returns its index.
    pub(super) fn push(&mut self, term: Term, data: Vec<u8>) -> Index {
        let index = self.last_index() + 1;
        self.entries.push(Entry { term, index, data });
        self.mark_unstable(index);
        index
    }

    /// A leader's entries following (`prev_index`, `prev_term`): those already here are kept,
    /// a conflicting suffix is cut, the rest appended (Raft §5.3). Returns the last index the
    /// leader's message vouches for.
    pub(super) fn append_after(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        entries: &[Entry],
    ) -> Result<Index, AppendError> {
        if self.term_at(prev_index) != Some(prev_term) {
            return Err(AppendError::Mismatch);
        }
        for (i, entry) in entries.iter().enumerate() {
            if entry.index != prev_index + 1 + i as Index {
                return Err(AppendError::Mismatch); // not dense: a malformed message
            }
        }
        let conflict = entries
            .iter()
            .find(|e| self.term_at(e.index) != Some(e.term));
        if let Some(first) = conflict {
            if first.index <= self.committed_index {
                return Err(AppendError::RewritesCommitted(first.index));
            }
            self.truncate_after(first.index - 1);
            let skip = (first.index - prev_index - 1) as usize;
            self.entries.extend(entries[skip..].iter().cloned());
            self.mark_unstable(first.index);
        }
        Ok(prev_index + entries.len() as Index)
    }

    fn truncate_after(&mut self, index: Index) {
        self.entries.truncate(index as usize);
        self.stable_index = self.stable_index.min(index);
        self.in_flight_through = self.in_flight_through.map(|t| t.min(index));
        self.mark_unstable(index + 1);
    }

    /// What the next persist stores: the index to cut the stored log after (minus one) and the
    /// entries from there, if any changed. One persist is in flight at a time.
    pub(super) fn begin_persist(&mut self) -> (Option<Index>, Vec<Entry>) {
        assert!(self.in_flight_through.is_none(), "one persist at a time");
        let from = self.unstable_from.take();
        let entries = from.map_or(Vec::new(), |from| self.slice(from, usize::MAX));
        self.in_flight_through = Some(self.last_index());
        (from, entries)
    }

    /// The persist begun last is on disk.
    pub(super) fn end_persist(&mut self) {
        if let Some(through) = self.in_flight_through.take() {
            self.stable_index = self.stable_index.max(through);
        }
    }

    /// Whether entries changed since the last persist began.
    pub(super) fn has_unstable(&self) -> bool {
        self.unstable_from.is_some()
    }

    fn mark_unstable(&mut self, index: Index) {
        self.unstable_from = Some(self.unstable_from.map_or(index, |u| u.min(index)));
    }

    /// Commits through `index` (never back); returns whether it moved.
    pub(super) fn commit_to(&mut self, index: Index) -> bool {
        let index = index.min(self.last_index());
        if index > self.committed_index {
            self.committed_index = index;
            return true;
        }
        false
    }

    /// The next committed and durable entry not yet handed out.
    pub(super) fn next_to_apply(&mut self) -> Option<Entry> {
        let ready = self.committed_index.min(self.stable_index);
        if self.applied_index >= ready {
            return None;
        }
        self.applied_index += 1;
        Some(self.entries[self.applied_index as usize - 1].clone())
    }
}
