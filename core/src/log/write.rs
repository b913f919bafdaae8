//! The way out to the disk: the writes a log hands the shell (`poll_write`, block-aligned, one
//! in flight), the syncs it asks for (`poll_sync`, by flush policy and by what waits on them),
//! the index files of rolled segments (`poll_seal`) and of the active one at a clean shutdown
//! (`checkpoint_index`), and what their completion or failure changes.

use super::{align_down, align_up, FlushPolicy, PartitionLog, PendingWrite, SegmentWrite};
use super::{SyncRound, WRITE_BYTES_MAX};
use bytes::Bytes;

impl PartitionLog {
    /// The next write to hand to the shell, if appended bytes wait and no write is in flight:
    /// the waiting batches of the oldest segment with any, up to [`WRITE_BYTES_MAX`].
    pub fn poll_write(&mut self) -> Option<SegmentWrite> {
        if self.write_in_flight.is_some() || self.truncating() {
            return None;
        }
        if let Some(retry) = self.failed_write.take() {
            let write = retry.write.clone();
            self.write_in_flight = Some(retry);
            return Some(write);
        }
        let &(segment_base, _, _) = self.unwritten.front()?;
        let mut taken = 0usize;
        let count = self
            .unwritten
            .iter()
            .take_while(|(s, _, b)| {
                let fits = taken == 0 || taken + b.len() <= WRITE_BYTES_MAX;
                taken += b.len();
                *s == segment_base && fits
            })
            .count();
        let index = self.segment_index(segment_base);
        let segment = &mut self.segments[index];
        assert_eq!(
            segment.base_offset, segment_base,
            "a segment with unwritten data"
        );
        let position = align_down(segment.submitted_bytes);
        let pending: usize = self
            .unwritten
            .iter()
            .take(count)
            .map(|(_, _, b)| b.len())
            .sum();
        let logical_len = segment.partial_block.len() + pending;
        let batch_bytes = pending;
        let mut data = Vec::with_capacity(align_up(logical_len as u64) as usize);
        data.extend_from_slice(&segment.partial_block);
        let mut end_offset = self.written_offset;
        for (_, end, bytes) in self.unwritten.drain(..count) {
            data.extend_from_slice(&bytes);
            end_offset = end;
        }
        let logical_end = position + logical_len as u64;
        assert!(
            logical_end <= segment.bytes,
            "every appended byte is submitted once"
        );
        let partial_start = (align_down(logical_end) - position) as usize;
        segment.partial_block = data[partial_start..].to_vec();
        data.resize(align_up(logical_len as u64) as usize, 0);
        segment.submitted_bytes = logical_end;
        let write = SegmentWrite {
            segment_base_offset: segment_base,
            position,
            data: Bytes::from(data),
        };
        self.write_in_flight = Some(PendingWrite {
            end_offset,
            segment: segment_base,
            logical_end,
            batch_bytes,
            write: write.clone(),
        });
        Some(write)
    }

    /// The write handed out last is on disk (not yet durable).
    pub fn handle_write_done(&mut self) {
        let done = self.write_in_flight.take().expect("a write was in flight");
        assert!(done.end_offset >= self.written_offset);
        self.written_offset = done.end_offset;
        self.written_position = (done.segment, done.logical_end);
        self.unwritten_bytes -= done.batch_bytes;
        self.unsynced.insert(done.segment);
    }

    /// Appended bytes not yet written to their segment file (queued, or in a write).
    pub fn unwritten_bytes(&self) -> usize {
        self.unwritten_bytes
    }

    /// A waiter needs every record below `end_offset` fsynced: the next sync round takes this
    /// partition whatever its flush policy says.
    pub fn want_durable(&mut self, end_offset: i64) {
        self.durable_wanted = self.durable_wanted.max(end_offset);
    }

    /// Whether the flush policy (or a waiter, or a rolled segment) wants a sync now.
    fn sync_due(&self, now_ms: i64, policy: &FlushPolicy) -> bool {
        let rolled_unflushed = self
            .segments
            .iter()
            .rev()
            .nth(1)
            .is_some_and(|closed| closed.next_offset > self.flushed_offset);
        policy.is_immediate()
            || self.durable_wanted > self.flushed_offset
            || self.written_offset - self.flushed_offset >= policy.messages
            || self
                .unflushed_since_ms
                .is_some_and(|since| now_ms.saturating_sub(since) >= policy.ms)
            || rolled_unflushed
    }

    /// When `flush.ms` makes a sync due, if a sync could start then (written records wait and
    /// no sync is in flight); `None` under the immediate policy, which syncs without waiting.
    pub fn sync_deadline(&self, policy: &FlushPolicy) -> Option<i64> {
        if policy.is_immediate()
            || self.sync_in_flight.is_some()
            || self.written_offset <= self.flushed_offset
        {
            return None;
        }
        self.unflushed_since_ms
            .map(|since| since.saturating_add(policy.ms))
    }

    /// The write handed out last failed; the next `poll_write` hands it out again. Later
    /// appends wait behind it, so the file never has a hole.
    pub fn handle_write_failed(&mut self) {
        let failed = self.write_in_flight.take().expect("a write was in flight");
        self.failed_write = Some(failed);
    }

    /// The segments to fsync now, if something is written that is not flushed, no sync is in
    /// flight, and the flush policy wants it (or `force`, at a clean shutdown). The sync, once
    /// every one of them is done, covers every write completed before it was asked for.
    pub fn poll_sync(
        &mut self,
        now_ms: i64,
        policy: &FlushPolicy,
        force: bool,
    ) -> Option<SyncRound> {
        if self.sync_in_flight.is_some()
            || self.truncating()
            || self.written_offset <= self.flushed_offset
            || !(force || self.sync_due(now_ms, policy))
        {
            return None;
        }
        self.sync_in_flight = Some((self.written_offset, self.written_position, now_ms));
        let segments: Vec<i64> = std::mem::take(&mut self.unsynced).into_iter().collect();
        self.naming = segments
            .iter()
            .copied()
            .filter(|base| self.unnamed.contains(base))
            .collect();
        Some(SyncRound {
            name_files: !self.naming.is_empty(),
            segments,
        })
    }

    /// The sync asked for last is done.
    pub fn handle_sync_done(&mut self) {
        let (target, position, started_ms) =
            self.sync_in_flight.take().expect("a sync was in flight");
        for base in std::mem::take(&mut self.naming) {
            self.unnamed.remove(&base);
        }
        assert!(target >= self.flushed_offset);
        self.flushed_offset = target;
        self.flushed_position = position;
        // What is still unflushed was appended after the sync started (at the earliest).
        self.unflushed_since_ms = (self.flushed_offset < self.log_end_offset).then_some(started_ms);
        self.check_invariants();
    }

    /// The partition's replication decided the high watermark is `offset` (a batch end this
    /// log has written): the records below it become visible. Returns whether it moved; it
    /// never goes back.
    pub fn set_high_watermark(&mut self, offset: i64) -> bool {
        assert!(
            offset <= self.written_offset,
            "high watermark {offset} beyond the written offset {}",
            self.written_offset
        );
        if offset <= self.high_watermark {
            return false;
        }
        let mut visible_end = self.high_watermark;
        while let Some(&(last, timestamp, segment, end_bytes)) = self.invisible.front() {
            if last >= offset {
                break;
            }
            self.invisible.pop_front();
            visible_end = last + 1;
            self.visible_position = (segment, end_bytes);
            let index = self.segment_index(segment);
            let segment = &mut self.segments[index];
            if timestamp > segment.visible_max_timestamp || segment.visible_max_offset < 0 {
                segment.visible_max_timestamp = timestamp.max(segment.visible_max_timestamp);
                segment.visible_max_offset = last;
            }
        }
        assert_eq!(visible_end, offset, "the high watermark is a batch end");
        self.high_watermark = offset;
        self.check_invariants();
        true
    }

    /// Whether writes or syncs are waiting or in flight.
    pub fn is_dirty(&self) -> bool {
        self.flushed_offset < self.log_end_offset
    }

    /// The index file to write for a closed segment that is now durable, if there is one and no
    /// other is being written: (segment base, file bytes).
    pub fn poll_seal(&mut self) -> Option<(i64, Vec<u8>)> {
        if self.seal_in_flight.is_some() || self.truncating() {
            return None;
        }
        let segment = self.next_to_seal()?;
        let producers = segment.producers_at_end.as_ref().expect("checked above");
        let (base, data) = (segment.base_offset, segment.encode_index(producers));
        self.seal_in_flight = Some(base);
        Some((base, data))
    }

    /// The index file from `poll_seal` is durable, or could not be written (then the segment
    /// stays unsealed, and a restart scans it).
    pub fn handle_seal_done(&mut self, ok: bool) {
        let base = self.seal_in_flight.take().expect("a seal was in flight");
        let index = self.segment_index(base);
        if let Some(segment) = self
            .segments
            .get_mut(index)
            .filter(|s| s.base_offset == base)
        {
            segment.producers_at_end = None;
            segment.sealed = ok;
        }
    }

    /// The active segment's index file for a clean shutdown, once everything is flushed: the
    /// next start loads it instead of scanning. `None` while data is unflushed or when the
    /// active segment is empty.
    pub fn checkpoint_index(&self) -> Option<(i64, Vec<u8>)> {
        let active = self.segments.back().expect("never empty");
        if self.is_dirty() || active.is_empty() || self.seal_in_flight.is_some() {
            return None;
        }
        Some((active.base_offset, active.encode_index(&self.producers)))
    }
}
