//! Recovery: a partition's log rebuilt at start-up from its segments' index files and, where
//! one is missing or stale, a scan of the segment file.

use super::*;

/// What recovery found in a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes of whole, valid, contiguous batches from the start of the file.
    pub valid_bytes: u64,
    /// Bytes in the file.
    pub file_bytes: u64,
    /// Non-zero bytes after the valid end: a torn or corrupt tail (zero padding is expected).
    pub torn_bytes: u64,
    /// Why the scan stopped before the end of the file, when it was not clean padding.
    pub stop_reason: Option<String>,
    pub batches: usize,
    pub next_offset: i64,
    /// Where the last valid batch starts, if there is one.
    pub last_batch_position: Option<u64>,
    /// Batches whose leader epoch is above any the metadata allows (damage outside the CRC).
    pub damaged_epochs: usize,
}

impl RecoveryReport {
    /// The file must be cut back to `valid_bytes` before new writes go after it.
    pub fn needs_truncate(&self) -> bool {
        self.file_bytes > self.valid_bytes
    }
}

/// A batch larger than this is not one the broker wrote (it is over `socket.request.max.bytes`):
/// a recovery scan takes its length field for damage instead of reading that much.
pub const SCAN_BATCH_BYTES_MAX: usize = 100 * 1024 * 1024;

/// A recovery scan of one segment file in progress (see [`PartitionLog::begin_scan`]).
#[derive(Debug)]
pub struct SegmentScan {
    segment: Segment,
    index_interval_bytes: u64,
    /// Where the valid batches end so far: the next chunk starts here.
    position: u64,
    /// Bytes the batch at `position` needs, when the last chunk cut it.
    needed: usize,
    stopped: bool,
    stop_reason: Option<String>,
    batches: usize,
    last_batch_position: Option<u64>,
    /// The bytes from the block boundary at or below `position` up to it.
    tail_block: Vec<u8>,
    damaged_epochs: usize,
}

impl SegmentScan {
    /// The next piece of the file to feed, as (position, at least this many bytes), or `None`
    /// when the scan is over. `file_bytes` is the file's length.
    pub fn wants(&self, file_bytes: u64) -> Option<(u64, usize)> {
        (!self.stopped && self.position < file_bytes).then_some((self.position, self.needed))
    }

    /// Where the valid batches end so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub(super) fn stop(&mut self, reason: String) {
        self.stopped = true;
        self.stop_reason = Some(reason);
    }
}

/// The length of `bytes` up to and including its last non-zero byte.
pub fn last_nonzero_end(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last as u64 + 1)
}

impl PartitionLog {
    // ---- recovery ----

    /// Adds a closed segment loaded from its index file (with the producers' state at its end)
    /// while recovering. It must start where the log ends.
    pub fn recover_sealed(&mut self, segment: Segment, producers: ProducerStates) {
        assert_eq!(
            segment.base_offset, self.log_end_offset,
            "segments are dense"
        );
        self.close_recovered();
        self.unnamed.remove(&segment.base_offset);
        // The tail cache holds batches up to the log end, back to back: what an earlier
        // segment's scan put there is no longer at the end.
        self.tail.clear();
        self.tail_bytes = 0;
        self.log_end_offset = segment.next_offset;
        self.written_position = (segment.base_offset, segment.bytes);
        self.producers = producers;
        self.segments.push_back(segment);
        self.mark_recovered();
    }

    /// Rebuilds a segment from its file's bytes while recovering: scans batches from the start,
    /// validating length, CRC and offset continuity, and stops at the first that fails. What
    /// follows is a torn or corrupt tail, which the shell truncates (see the report). The
    /// segment must start where the log ends; what it keeps counts as flushed once the shell has
    /// synced the truncated file. The whole file at once; start-up reads it in pieces with
    /// [`PartitionLog::begin_scan`] instead.
    pub fn recover_segment(
        &mut self,
        base_offset: i64,
        data: &[u8],
        index_interval_bytes: u64,
    ) -> RecoveryReport {
        let mut scan = self.begin_scan(base_offset, index_interval_bytes);
        self.scan_chunk(&mut scan, data, true);
        let valid = scan.position as usize;
        let torn_bytes = last_nonzero_end(&data[valid..]);
        self.finish_scan(scan, data.len() as u64, torn_bytes)
    }

    /// Starts rebuilding a segment from its file, read in pieces (so start-up memory does not
    /// grow with `segment.bytes`): feed [`PartitionLog::scan_chunk`] what
    /// [`SegmentScan::wants`] asks for, then call [`PartitionLog::finish_scan`].
    pub fn begin_scan(&mut self, base_offset: i64, index_interval_bytes: u64) -> SegmentScan {
        assert_eq!(base_offset, self.log_end_offset, "segments are dense");
        self.close_recovered();
        self.unnamed.remove(&base_offset);
        SegmentScan {
            segment: Segment::new(base_offset, 0),
            index_interval_bytes,
            position: 0,
            needed: 0,
            stopped: false,
            stop_reason: None,
            batches: 0,
            last_batch_position: None,
            tail_block: Vec::new(),
            damaged_epochs: 0,
        }
    }

    /// Scans `chunk`, the file's bytes from `scan.position()` on; `eof` when the file ends with
    /// it. Whole valid batches are taken; a batch cut by the chunk's end is asked for again
    /// (whole) unless the file ends there.
    pub fn scan_chunk(&mut self, scan: &mut SegmentScan, chunk: &[u8], eof: bool) {
        let chunk_start = scan.position;
        let mut at = 0usize;
        scan.needed = 0;
        while at < chunk.len() && !scan.stopped {
            let rest = &chunk[at..];
            let position = chunk_start + at as u64;
            if rest.len() >= batch::LOG_OVERHEAD_BYTES
                && rest[..batch::LOG_OVERHEAD_BYTES].iter().all(|&b| b == 0)
            {
                scan.stopped = true; // zero padding after the logical end
                break;
            }
            match batch::validate_stored(rest) {
                Ok(mut info) if info.base_offset == scan.segment.next_offset => {
                    if info.partition_leader_epoch > self.epoch_bound {
                        // Damage outside the CRC: the history keeps the epoch before it (a
                        // read of this batch from disk then fails its epoch check).
                        scan.damaged_epochs += 1;
                        let before = scan.segment.epochs.last().map(|&(e, _)| e);
                        info.partition_leader_epoch = before.or(self.latest_epoch()).unwrap_or(0);
                    }
                    scan.segment.push(&info, scan.index_interval_bytes);
                    self.producers.record(&info);
                    let bytes = Bytes::copy_from_slice(&rest[..info.size_bytes]);
                    self.cache(&info, bytes, i64::MIN);
                    scan.last_batch_position = Some(position);
                    scan.batches += 1;
                    at += info.size_bytes;
                }
                Ok(info) => {
                    scan.stop(format!(
                        "batch at byte {position} has base offset {}, expected {}",
                        info.base_offset, scan.segment.next_offset
                    ));
                }
                Err(batch::BatchError::Truncated { needed, .. })
                    if !eof && needed <= SCAN_BATCH_BYTES_MAX =>
                {
                    scan.needed = needed;
                    break;
                }
                Err(error) => scan.stop(format!("at byte {position}: {error}")),
            }
        }
        if eof && scan.needed == 0 {
            scan.stopped = true;
        }
        // Keep the bytes of the block the valid end falls in: the next write rewrites it.
        let end = chunk_start + at as u64;
        let block = align_down(end);
        if block >= chunk_start {
            scan.tail_block = chunk[(block - chunk_start) as usize..at].to_vec();
        } else {
            scan.tail_block.extend_from_slice(&chunk[..at]);
        }
        scan.position = end;
    }

    /// Ends a scan: the segment keeps its valid batches. `file_bytes` is the file's length and
    /// `torn_bytes` the non-zero bytes after the valid end (see [`RecoveryReport`]).
    pub fn finish_scan(
        &mut self,
        scan: SegmentScan,
        file_bytes: u64,
        torn_bytes: u64,
    ) -> RecoveryReport {
        let SegmentScan {
            mut segment,
            position: valid_bytes,
            stop_reason,
            batches,
            last_batch_position,
            tail_block,
            damaged_epochs,
            ..
        } = scan;
        let base_offset = segment.base_offset;
        segment.submitted_bytes = valid_bytes;
        segment.partial_block = tail_block;
        self.log_end_offset = segment.next_offset;
        self.written_position = (base_offset, valid_bytes);
        self.segments.push_back(segment);
        self.mark_recovered();
        RecoveryReport {
            valid_bytes,
            file_bytes,
            torn_bytes,
            stop_reason: stop_reason.filter(|_| torn_bytes > 0),
            batches,
            next_offset: self.log_end_offset,
            last_batch_position,
            damaged_epochs,
        }
    }

    /// Ends recovery: a log whose last segment is sealed (loaded from its index file) starts a
    /// new active segment, since the sealed one's partial last block was not read. `now_ms`
    /// starts the active segment's `segment.ms` clock (record timestamps are the producers', so
    /// they do not decide when a segment is old).
    pub fn finish_recovery(&mut self, now_ms: i64) {
        let last = self.segments.back_mut().expect("never empty");
        if last.sealed {
            let base = self.log_end_offset;
            self.segments.push_back(Segment::new(base, now_ms));
            self.unnamed.insert(base);
        } else {
            last.started_ms = now_ms;
        }
        self.check_invariants();
    }

    /// Before a recovered segment is added: the empty active segment the log was created with
    /// goes, and a scanned segment that is now closed keeps the producers' state at its end,
    /// for its index file (written once the broker runs).
    pub(super) fn close_recovered(&mut self) {
        if self
            .segments
            .back()
            .is_some_and(|s| s.is_empty() && !s.sealed)
        {
            self.segments.pop_back();
        }
        let producers = self.producers.clone();
        if let Some(last) = self.segments.back_mut().filter(|s| !s.sealed) {
            last.producers_at_end = Some(producers);
        }
    }

    /// Whether a closed segment waits for its index file.
    pub fn wants_seal(&self) -> bool {
        self.seal_in_flight.is_none() && self.next_to_seal().is_some()
    }

    /// The first closed, durable segment without its index file.
    pub(super) fn next_to_seal(&self) -> Option<&Segment> {
        let active = self.segments.len() - 1;
        // A cleaning may rewrite the segments below its horizon: they wait for their index.
        let horizon = self.cleaning.as_ref().map_or(i64::MIN, |c| c.horizon);
        self.segments.iter().take(active).find(|s| {
            !s.sealed
                && s.producers_at_end.is_some()
                && s.next_offset <= self.flushed_offset
                && s.base_offset >= horizon
        })
    }

    pub(super) fn mark_recovered(&mut self) {
        self.written_offset = self.log_end_offset;
        self.flushed_offset = self.log_end_offset;
        self.high_watermark = self.log_end_offset;
        self.flushed_position = self.written_position;
        self.visible_position = self.written_position;
        self.durable_wanted = self.log_end_offset;
        self.unflushed_since_ms = None;
        for segment in &mut self.segments {
            segment.visible_max_timestamp = segment.max_timestamp;
            segment.visible_max_offset = segment.max_timestamp_offset;
        }
    }
}
