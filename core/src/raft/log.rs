//! The Raft log as the node sees it: a snapshot standing for every entry through its index,
//! then the entries after it; which of them are durable (`stable_index`), committed and
//! applied. Entries live in memory; the shell stores what `poll_output` asks it to.

use super::{Entry, Index, Term};

#[derive(Debug, Default)]
pub(super) struct RaftLog {
    /// The last index and term the snapshot stands for (0, 0 without one).
    pub(super) snapshot_index: Index,
    pub(super) snapshot_term: Term,
    /// Entry `snapshot_index + 1 + i` at position `i`.
    entries: Vec<Entry>,
    /// Everything at or below is on this node's disk.
    pub(super) stable_index: Index,
    /// Everything at or below is committed (known to be on a majority's disk).
    pub(super) committed_index: Index,
    /// Everything at or below has been handed out as committed (or is in the snapshot).
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
    /// A log as stored: a snapshot through (`snapshot_index`, `snapshot_term`), whose state the
    /// application has, and the entries after it, all durable. Stored entries that do not
    /// follow the snapshot densely are refused.
    pub(super) fn restored(
        snapshot_index: Index,
        snapshot_term: Term,
        entries: Vec<Entry>,
        committed_index: Index,
    ) -> Result<RaftLog, String> {
        for (i, entry) in entries.iter().enumerate() {
            let want = snapshot_index + 1 + i as Index;
            if entry.index != want {
                return Err(format!(
                    "stored Raft entry {i} has index {}, expected {want}",
                    entry.index
                ));
            }
        }
        let last_index = snapshot_index + entries.len() as Index;
        Ok(RaftLog {
            snapshot_index,
            snapshot_term,
            entries,
            stable_index: last_index,
            committed_index: committed_index.clamp(snapshot_index, last_index),
            applied_index: snapshot_index,
            unstable_from: None,
            in_flight_through: None,
        })
    }

    pub(super) fn last_index(&self) -> Index {
        self.snapshot_index + self.entries.len() as Index
    }

    pub(super) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// The term of entry `index`: the snapshot's at its index, `None` before it (compacted) or
    /// past the end.
    pub(super) fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        let position = index.checked_sub(self.snapshot_index + 1)?;
        self.entries.get(position as usize).map(|e| e.term)
    }

    /// Entry `index`, if the log holds it (not compacted into the snapshot, not past the end).
    pub(super) fn entry(&self, index: Index) -> Option<&Entry> {
        let position = index.checked_sub(self.snapshot_index + 1)?;
        self.entries.get(position as usize)
    }

    /// Whether a log ending at (`last_term`, `last_index`) is at least as up to date as this one
    /// (Raft §5.4.1): a later last term, or the same and at least as long.
    pub(super) fn is_up_to_date(&self, last_term: Term, last_index: Index) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Entries from `from` (after the snapshot), at most `count_max` of them.
    pub(super) fn slice(&self, from: Index, count_max: usize) -> Vec<Entry> {
        assert!(
            from > self.snapshot_index,
            "entries before the snapshot are gone"
        );
        let start = (from - self.snapshot_index - 1) as usize;
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
    /// a conflicting suffix is cut, the rest appended (Raft §5.3). Entries the snapshot covers
    /// are committed, so they match. Returns the last index the leader's message vouches for.
    pub(super) fn append_after(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        entries: &[Entry],
    ) -> Result<Index, AppendError> {
        for (i, entry) in entries.iter().enumerate() {
            if entry.index != prev_index + 1 + i as Index {
                return Err(AppendError::Mismatch); // not dense: a malformed message
            }
        }
        let vouched = prev_index + entries.len() as Index;
        let (prev_index, prev_term, entries) = if prev_index < self.snapshot_index {
            let skip = (self.snapshot_index - prev_index) as usize;
            let rest = entries.get(skip..).unwrap_or(&[]);
            (self.snapshot_index, self.snapshot_term, rest)
        } else {
            (prev_index, prev_term, entries)
        };
        if self.term_at(prev_index) != Some(prev_term) {
            return Err(AppendError::Mismatch);
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
        Ok(vouched)
    }

    fn truncate_after(&mut self, index: Index) {
        assert!(index >= self.snapshot_index, "the snapshot is committed");
        self.entries
            .truncate((index - self.snapshot_index) as usize);
        self.stable_index = self.stable_index.min(index);
        self.in_flight_through = self.in_flight_through.map(|t| t.min(index));
        self.mark_unstable(index + 1);
    }

    /// Drops the entries through `index`, which the application's snapshot now stands for.
    pub(super) fn compact(&mut self, index: Index) {
        assert!(index > self.snapshot_index && index <= self.applied_index);
        let term = self.term_at(index).expect("applied entries are in the log");
        self.entries.drain(..(index - self.snapshot_index) as usize);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }

    /// A leader's snapshot through (`index`, `term`) replaces what this log has through it:
    /// entries after it are kept if the log holds its last entry, else all are dropped.
    pub(super) fn install(&mut self, index: Index, term: Term) {
        assert!(
            index > self.committed_index,
            "an older snapshot is ignored by the caller"
        );
        if self.term_at(index) == Some(term) {
            self.entries.drain(..(index - self.snapshot_index) as usize);
        } else {
            self.entries.clear();
        }
        self.snapshot_index = index;
        self.snapshot_term = term;
        self.committed_index = index;
        self.applied_index = index;
        // Durable once the snapshot is; then so is what was kept after it.
        self.stable_index = self.stable_index.min(index.saturating_sub(1));
        self.in_flight_through = self
            .in_flight_through
            .map(|t| t.min(index.saturating_sub(1)));
        self.mark_unstable(index + 1);
    }

    /// What the next persist stores: the index to cut the stored log after (minus one) and the
    /// entries from there, if any changed. One persist is in flight at a time.
    pub(super) fn begin_persist(&mut self) -> (Option<Index>, Vec<Entry>) {
        assert!(self.in_flight_through.is_none(), "one persist at a time");
        let from = self
            .unstable_from
            .take()
            .map(|f| f.max(self.snapshot_index + 1));
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
        let position = (self.applied_index - self.snapshot_index - 1) as usize;
        Some(self.entries[position].clone())
    }
}
