//! Log compaction run over a partition's files (issue 17, step 2). As with writes, the log
//! decides every step and the shell performs it (see [`CleanStep`]); one step is in flight at a
//! time, and each is at most [`CLEAN_IO_BYTES`] of reading or writing, so a cleaning never holds
//! up the shard for longer than one piece.
//!
//! 1. *Map*: the dirty part (from where the last cleaning ended to [`CleaningDue::end`]) is read
//!    in pieces into a [`KeyMap`], until it ends or the map is full (`map_bytes`; another pass
//!    takes the rest).
//! 2. *Clean*: the segments from the first up to the last one the map reached are read again,
//!    a group of consecutive segments (at most `segment.bytes` together, so small cleaned
//!    segments merge) at a time. Each batch is cleaned ([`compact::clean_batch`]); a run of
//!    batches removed whole becomes one [`compact::hole_batch`] per leader epoch, so the log
//!    stays dense batch by batch and every reader and check that walks batches (recovery scans,
//!    disk reads, followers' appends, the epoch history) works unchanged. The group's batches
//!    are written to `<base>-<end>.cleaned` (removed first, so no bytes of an older attempt
//!    stay), which is then synced.
//! 3. *Swap*: the shell renames it `<base>-<end>.swap` and syncs the directory (the commit
//!    point), removes the group's segment files, and renames it `<base>.log` (directory synced).
//!    A crash before the commit leaves the old segments (start-up removes `.cleaned` files);
//!    after it, start-up finishes the swap. Never a mix of old and new, never a gap.
//! 4. The log puts the cleaned segment in place of the group's (its index file is written by
//!    the usual seal), drops cached and read-ahead bytes of the old ones, and counts a rewrite:
//!    a disk read planned against the old files and failing is known stale
//!    ([`PartitionLog::read_is_stale`]); one that succeeds read checked batches of the log.

use super::compact::{self, BatchRules, Cleaned, CleaningDue, CompactionPolicy, KeyMap};
use super::*;

/// A cleaning reads a segment file, and writes its cleaned file, this much at a time.
pub const CLEAN_IO_BYTES: usize = 1024 * 1024;

/// What a cleaning works to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    pub policy: CompactionPolicy,
    /// `delete.retention.ms`: how long a tombstone stays once its segment was cleaned.
    pub delete_retention_ms: i64,
    /// `log.cleaner.dedupe.buffer.size` (this cleaning's share): the key map's bound.
    pub map_bytes: usize,
    /// `segment.bytes`: consecutive segments are cleaned into one up to this size.
    pub segment_bytes: u64,
    pub index_interval_bytes: u64,
}

/// The segments from `base_offset` below `end` cleaned into one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanedRange {
    pub base_offset: i64,
    pub end: i64,
}

/// The next thing a cleaning needs done; completions go back through
/// [`PartitionLog::handle_cleaning_read`] (a `Read`) and [`PartitionLog::handle_cleaning_done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanStep {
    /// Remove the range's cleaned file if a crash or an abandoned cleaning left one.
    Begin(CleanedRange),
    /// Read `len` bytes at `position` of the segment file starting at `segment_base_offset`.
    Read {
        segment_base_offset: i64,
        position: u64,
        len: usize,
    },
    /// Write `data` at `position` (both block-aligned) in the range's cleaned file.
    Write {
        range: CleanedRange,
        position: u64,
        data: Bytes,
    },
    /// fdatasync the range's cleaned file.
    Sync(CleanedRange),
    /// Swap the cleaned file in for the segments starting at `replaced` (see the module doc).
    Swap {
        range: CleanedRange,
        replaced: Vec<i64>,
    },
}

/// What a finished cleaning did, for its log line and the cleaner's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleaningSummary {
    /// Offsets from `first_dirty` below `mapped_to` were mapped; segments below `cleaned_to`
    /// were rewritten.
    pub first_dirty: i64,
    pub mapped_to: i64,
    pub cleaned_to: i64,
    pub keys: usize,
    pub bytes_read: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub segments_before: usize,
    pub segments_after: usize,
}

/// Where a span of a segment file is read from.
#[derive(Debug)]
struct Span {
    segment: i64,
    position: u64,
    end: u64,
    /// The base offset of the batch at `position`, and the segment's epoch history: the
    /// fields a batch's CRC does not cover are checked against them, as every disk read's are.
    offset: i64,
    epochs: Vec<(i32, i64)>,
}

impl Span {
    fn of(segment: &Segment, from: crate::segment::IndexEntry) -> Span {
        Span {
            segment: segment.base_offset,
            position: from.position,
            end: segment.bytes,
            offset: from.offset,
            epochs: segment.epochs.clone(),
        }
    }
}

/// Segment files read batch by batch, in pieces.
#[derive(Debug, Default)]
struct Cursor {
    spans: VecDeque<Span>,
    /// The batch at the front position is longer than a piece: the next read takes it whole.
    needed: usize,
}

impl Cursor {
    fn next_read(&self) -> Option<CleanStep> {
        let span = self.spans.front()?;
        let len = CLEAN_IO_BYTES
            .max(self.needed)
            .min((span.end - span.position) as usize);
        Some(CleanStep::Read {
            segment_base_offset: span.segment,
            position: span.position,
            len,
        })
    }

    /// Walks the whole batches of `data`, read at the front span's position: `each` gets every
    /// one and says whether to go on. Returns whether the walk stopped there.
    fn walk(
        &mut self,
        data: &[u8],
        mut each: impl FnMut(&[u8], &BatchInfo) -> Result<bool, String>,
    ) -> Result<bool, String> {
        let Some(span) = self.spans.front_mut() else {
            return Err("a cleaning read with nothing to read".into());
        };
        let segment = span.segment;
        let data = &data[..data.len().min((span.end - span.position) as usize)];
        let mut at = 0usize;
        self.needed = 0;
        while at < data.len() {
            let byte = span.position + at as u64;
            match batch::validate_stored(&data[at..]) {
                Ok(info) => {
                    let epoch = span
                        .epochs
                        .iter()
                        .rev()
                        .find(|&&(_, start)| start <= info.base_offset)
                        .map(|&(e, _)| e);
                    if info.base_offset != span.offset
                        || epoch.is_some_and(|e| e != info.partition_leader_epoch)
                    {
                        return Err(format!(
                            "segment {segment} at byte {byte}: a batch at offset {} in epoch {}, where the log has one at {} in epoch {epoch:?}",
                            info.base_offset, info.partition_leader_epoch, span.offset
                        ));
                    }
                    let bytes = &data[at..at + info.size_bytes];
                    at += info.size_bytes;
                    span.offset = info.last_offset() + 1;
                    if !each(bytes, &info)? {
                        span.position += at as u64;
                        return Ok(true);
                    }
                }
                Err(batch::BatchError::Truncated { needed, .. })
                    if (byte + needed as u64) <= span.end =>
                {
                    if at == 0 {
                        self.needed = needed;
                    }
                    break;
                }
                Err(error) => return Err(format!("segment {segment} at byte {byte}: {error}")),
            }
        }
        if at == 0 && self.needed == 0 {
            return Err(format!(
                "segment {segment}: nothing readable at byte {}",
                span.position
            ));
        }
        span.position += at as u64;
        if span.position >= span.end {
            self.spans.pop_front();
        }
        Ok(false)
    }
}

/// One group of segments being cleaned into one file.
#[derive(Debug)]
struct GroupWork {
    range: CleanedRange,
    replaced: Vec<i64>,
    begun: bool,
    cursor: Cursor,
    /// Cleaned bytes not yet written, from `out_position` (block-aligned) in the file.
    out: Vec<u8>,
    out_position: u64,
    /// The cleaned segment as its batches are written.
    segment: Segment,
    /// Removed batches not yet covered: (first offset, last offset, leader epoch).
    hole: Option<(i64, i64, i32)>,
    finished: bool,
    synced: bool,
    swapping: bool,
    bytes_before: u64,
}

#[derive(Debug)]
enum Phase {
    Map(Cursor),
    Clean {
        groups: VecDeque<Vec<(i64, u64)>>,
        group: Option<Box<GroupWork>>,
    },
}

/// A cleaning in progress (see the module doc).
#[derive(Debug)]
pub(super) struct Cleaning {
    config: CleanerConfig,
    now_ms: i64,
    map: KeyMap,
    phase: Phase,
    in_flight: bool,
    /// Segments below it may be rewritten: none of them is sealed meanwhile.
    pub(super) horizon: i64,
    summary: CleaningSummary,
}

impl PartitionLog {
    /// Where the part of the log not yet cleaned begins (everything below it was cleaned at
    /// least once since the broker started).
    pub fn first_dirty_offset(&self) -> i64 {
        self.cleaned_offset.max(self.segments[0].base_offset)
    }

    /// The segments as the cleaning plan sees them.
    pub fn segment_summaries(&self) -> Vec<compact::SegmentSummary> {
        self.segments
            .iter()
            .map(|s| compact::SegmentSummary {
                base_offset: s.base_offset,
                next_offset: s.next_offset,
                bytes: s.bytes,
                max_timestamp: s.max_timestamp,
            })
            .collect()
    }

    /// Whether a cleaning is due by `policy` (see [`compact::cleaning_due`]), over durable
    /// segments only.
    pub fn cleaning_due(&self, now_ms: i64, policy: CompactionPolicy) -> Option<CleaningDue> {
        compact::cleaning_due(
            &self.segment_summaries(),
            self.first_dirty_offset(),
            self.high_watermark.min(self.flushed_offset),
            now_ms,
            policy,
        )
    }

    /// The dirty ratio the cleaner sees now (`spate topic describe`): the share of the closed
    /// segments' bytes not yet cleaned.
    pub fn dirty_ratio(&self) -> f64 {
        let first_dirty = self.first_dirty_offset();
        let closed = self.segments.iter().take(self.segments.len() - 1);
        let (mut clean, mut dirty) = (0, 0);
        for s in closed {
            match s.next_offset <= first_dirty {
                true => clean += s.bytes,
                false => dirty += s.bytes,
            }
        }
        compact::dirty_ratio(clean, dirty)
    }

    /// Recovery: the cleaner's checkpoint said the log was cleaned below `offset` (a
    /// checkpoint beyond the recovered log counts up to its end).
    pub fn recover_cleaned_offset(&mut self, offset: i64) {
        self.cleaned_offset = offset.clamp(self.log_start_offset, self.log_end_offset);
    }

    pub fn is_cleaning(&self) -> bool {
        self.cleaning.is_some()
    }

    pub fn is_swapping(&self) -> bool {
        self.swapping().is_some()
    }

    /// Whether a cleaning's swap is changing the files.
    pub(super) fn swapping(&self) -> Option<CleanedRange> {
        match &self.cleaning.as_ref()?.phase {
            Phase::Clean {
                group: Some(group), ..
            } if group.swapping => Some(group.range),
            _ => None,
        }
    }

    /// Starts a cleaning if one is due and the log allows it (no truncation, no earlier
    /// cleaning's step still in flight, the segments to clean durable with no seal in flight).
    pub fn begin_cleaning(&mut self, now_ms: i64, config: CleanerConfig) -> Option<CleaningDue> {
        if self.cleaning.is_some() || self.orphan_clean_steps > 0 || self.truncating() {
            return None;
        }
        let due = self.cleaning_due(now_ms, config.policy)?;
        if self.seal_in_flight.is_some_and(|base| base < due.end) {
            return None;
        }
        let first_dirty = due.first_dirty;
        let spans = self
            .segments
            .iter()
            .filter(|s| s.next_offset > first_dirty && s.next_offset <= due.end)
            .map(|s| Span::of(s, s.lookup(first_dirty.max(s.base_offset))))
            .filter(|span| span.position < span.end)
            .collect::<VecDeque<_>>();
        if spans.is_empty() {
            return None;
        }
        self.cleaning = Some(Cleaning {
            config,
            now_ms,
            map: KeyMap::new(config.map_bytes),
            phase: Phase::Map(Cursor { spans, needed: 0 }),
            in_flight: false,
            horizon: due.end,
            summary: CleaningSummary {
                first_dirty,
                ..CleaningSummary::default()
            },
        });
        Some(due)
    }

    /// Gives up a cleaning that has not begun its swap (a truncation, a failed step); its
    /// cleaned file is removed by the next cleaning's [`CleanStep::Begin`] or at start-up.
    pub fn abandon_cleaning(&mut self) {
        if self.swapping().is_some() {
            return;
        }
        if let Some(cleaning) = self.cleaning.take() {
            self.orphan_clean_steps += usize::from(cleaning.in_flight);
        }
    }

    /// The cleaning's next step, if one may start now.
    pub fn poll_cleaning(&mut self) -> Option<CleanStep> {
        let cleaning = self.cleaning.as_mut()?;
        if cleaning.in_flight {
            return None;
        }
        let step = match &mut cleaning.phase {
            Phase::Map(cursor) => cursor.next_read()?,
            Phase::Clean { group, .. } => {
                let group = group.as_mut()?;
                group.next_step()?
            }
        };
        cleaning.in_flight = true;
        Some(step)
    }

    /// A cleaning step is done: whether it belonged to a cleaning abandoned meanwhile (no
    /// other can begin until its last step is done), to be ignored.
    pub fn orphan_clean_step_done(&mut self) -> bool {
        if self.orphan_clean_steps == 0 {
            return false;
        }
        self.orphan_clean_steps -= 1;
        true
    }

    /// The bytes of a cleaning's read. An error means the segment does not hold the batches the
    /// log expects: the caller abandons the cleaning.
    pub fn handle_cleaning_read(&mut self, data: &[u8]) -> Result<(), String> {
        let producers = &self.producers;
        let cleaning = self.cleaning.as_mut().ok_or("no cleaning")?;
        cleaning.in_flight = false;
        cleaning.summary.bytes_read += data.len() as u64;
        let (map, now_ms, config) = (&mut cleaning.map, cleaning.now_ms, cleaning.config);
        let first_dirty = cleaning.summary.first_dirty;
        match &mut cleaning.phase {
            Phase::Map(cursor) => {
                let full = cursor.walk(data, |bytes, info| {
                    if info.last_offset() < first_dirty {
                        return Ok(true);
                    }
                    map.add_batch(bytes)
                })?;
                if full || cursor.spans.is_empty() {
                    self.end_map();
                }
            }
            Phase::Clean { group, .. } => {
                let group = group.as_mut().ok_or("no group being cleaned")?;
                let map = &cleaning.map;
                let mut cursor = std::mem::take(&mut group.cursor);
                let walked = cursor.walk(data, |bytes, info| {
                    let rules = BatchRules {
                        drop_tombstones: info.last_offset() < first_dirty
                            && info.max_timestamp
                                < now_ms.saturating_sub(config.delete_retention_ms),
                        keep_if_empty: info.producer_id >= 0
                            && producers.last_offset(info.producer_id) == Some(info.last_offset()),
                    };
                    match compact::clean_batch(bytes, map, rules)? {
                        Cleaned::Whole => group.emit(bytes, config.index_interval_bytes)?,
                        Cleaned::Rewritten(cleaned) => {
                            group.emit(&cleaned, config.index_interval_bytes)?
                        }
                        Cleaned::Removed => group.remove(info, config.index_interval_bytes)?,
                    }
                    Ok(true)
                });
                group.cursor = cursor;
                walked?;
                if group.cursor.spans.is_empty() && !group.finished {
                    group.finish(config.index_interval_bytes)?;
                }
            }
        }
        Ok(())
    }

    /// The map is done: plan the groups of segments to rewrite, from the first segment up to
    /// the last one the map reached.
    fn end_map(&mut self) {
        let cleaning = self.cleaning.as_mut().expect("cleaning");
        let mapped_to = cleaning.map.end().unwrap_or(cleaning.summary.first_dirty);
        cleaning.summary.mapped_to = mapped_to;
        cleaning.summary.keys = cleaning.map.len();
        let mut groups: VecDeque<Vec<(i64, u64)>> = VecDeque::new();
        let mut group_bytes = 0u64;
        for segment in self.segments.iter().take(self.segments.len() - 1) {
            if segment.base_offset >= mapped_to {
                break;
            }
            let fits = group_bytes + segment.bytes <= cleaning.config.segment_bytes;
            match groups.back_mut() {
                Some(group) if fits => group.push((segment.base_offset, segment.bytes)),
                _ => {
                    groups.push_back(vec![(segment.base_offset, segment.bytes)]);
                    group_bytes = 0;
                }
            }
            group_bytes += segment.bytes;
            cleaning.summary.segments_before += 1;
        }
        cleaning.phase = Phase::Clean {
            groups,
            group: None,
        };
        self.next_group();
    }

    /// Starts cleaning the next group, or ends the cleaning when none is left.
    fn next_group(&mut self) {
        let cleaning = self.cleaning.as_mut().expect("cleaning");
        let Phase::Clean { groups, group } = &mut cleaning.phase else {
            unreachable!("groups follow the map");
        };
        *group = None;
        let Some(bases) = groups.pop_front() else {
            return;
        };
        let first = segment_at(&self.segments, bases[0].0);
        let last = segment_at(&self.segments, bases[bases.len() - 1].0);
        let started_ms = self.segments[first].started_ms;
        let end = self.segments[last].next_offset;
        let spans: VecDeque<_> = (first..=last)
            .map(|i| &self.segments[i])
            .filter(|s| s.bytes > 0)
            .map(|s| Span::of(s, s.lookup(s.base_offset)))
            .collect();
        // (Closed segments are never empty; an empty group would have nothing to read.)
        let finished = spans.is_empty() && bases[0].0 == end;
        let Phase::Clean { group, .. } = &mut cleaning.phase else {
            unreachable!("groups follow the map");
        };
        *group = Some(Box::new(GroupWork {
            range: CleanedRange {
                base_offset: bases[0].0,
                end,
            },
            replaced: bases.iter().map(|&(base, _)| base).collect(),
            begun: false,
            cursor: Cursor { spans, needed: 0 },
            out: Vec::new(),
            out_position: 0,
            segment: Segment::new(bases[0].0, started_ms),
            hole: None,
            finished,
            synced: false,
            swapping: false,
            bytes_before: bases.iter().map(|&(_, bytes)| bytes).sum(),
        }));
    }

    /// A cleaning's `Begin`, `Write`, `Sync` or `Swap` is done. Returns the summary once the
    /// whole cleaning is.
    pub fn handle_cleaning_done(&mut self) -> Option<CleaningSummary> {
        let cleaning = self.cleaning.as_mut()?;
        cleaning.in_flight = false;
        let Phase::Clean {
            group: Some(group), ..
        } = &mut cleaning.phase
        else {
            return None;
        };
        if !group.swapping {
            return None;
        }
        let range = group.range;
        let replaced = std::mem::take(&mut group.replaced);
        let segment = std::mem::replace(&mut group.segment, Segment::new(0, 0));
        cleaning.summary.bytes_before += group.bytes_before;
        cleaning.summary.bytes_after += segment.bytes;
        cleaning.summary.segments_after += 1;
        cleaning.summary.cleaned_to = range.end;
        self.install_cleaned(segment, &replaced);
        self.next_group();
        let cleaning = self.cleaning.as_ref().expect("cleaning");
        let done = matches!(&cleaning.phase, Phase::Clean { group: None, .. });
        if !done {
            return None;
        }
        let summary = cleaning.summary;
        self.cleaned_offset = self.cleaned_offset.max(summary.mapped_to);
        self.cleaning = None;
        Some(summary)
    }

    /// Puts the cleaned segment in place of the segments starting at `replaced`.
    fn install_cleaned(&mut self, mut segment: Segment, replaced: &[i64]) {
        let first = self.segment_index(replaced[0]);
        let count = replaced.len();
        debug_assert!(self.segments[first].base_offset == replaced[0]);
        let end = self.segments[first + count - 1].next_offset;
        debug_assert_eq!(segment.next_offset, end);
        let mut producers = self.producers.clone();
        producers.truncate_to(end);
        segment.producers_at_end = Some(producers);
        segment.visible_max_timestamp = segment.max_timestamp;
        segment.visible_max_offset = segment.max_timestamp_offset;
        segment.submitted_bytes = segment.bytes;
        let (base, bytes) = (segment.base_offset, segment.bytes);
        let position = |p: &mut Position| {
            if replaced.contains(&p.0) {
                *p = (base, bytes);
            }
        };
        position(&mut self.written_position);
        position(&mut self.flushed_position);
        position(&mut self.visible_position);
        self.segments.drain(first..first + count);
        self.segments.insert(first, segment);
        while self.tail.front().is_some_and(|c| c.base_offset < end) {
            let dropped = self.tail.pop_front().expect("not empty");
            self.tail_bytes -= dropped.bytes.len();
        }
        if self
            .read_ahead
            .as_ref()
            .is_some_and(|r| replaced.contains(&r.segment_base_offset))
        {
            self.read_ahead = None;
        }
        self.truncations += 1;
        self.check_invariants();
    }

    /// Whether a disk read that failed, or brought bytes that are not the batches it expected,
    /// was planned against files a cleaning (or a truncation) has changed since: the reader
    /// asks again instead of reporting damage.
    pub fn read_is_stale(&self, read: &DiskRead) -> bool {
        read.truncations != self.truncations
            || self.swapping().is_some_and(|r| {
                read.segment_base_offset >= r.base_offset && read.segment_base_offset < r.end
            })
    }
}

/// Where the segment starting at `base_offset` is.
fn segment_at(segments: &VecDeque<Segment>, base_offset: i64) -> usize {
    segments
        .partition_point(|s| s.base_offset <= base_offset)
        .saturating_sub(1)
}

impl GroupWork {
    fn next_step(&mut self) -> Option<CleanStep> {
        if !self.begun {
            self.begun = true;
            return Some(CleanStep::Begin(self.range));
        }
        let whole = align_down(self.out.len() as u64) as usize;
        if whole >= CLEAN_IO_BYTES || (self.finished && !self.out.is_empty()) {
            let len = match self.finished {
                true => align_up(self.out.len() as u64) as usize,
                false => whole,
            };
            self.out.resize(len.max(self.out.len()), 0);
            let data = Bytes::copy_from_slice(&self.out[..len]);
            self.out.drain(..len);
            let position = self.out_position;
            self.out_position += len as u64;
            return Some(CleanStep::Write {
                range: self.range,
                position,
                data,
            });
        }
        if !self.finished {
            return self.cursor.next_read();
        }
        if !self.synced {
            self.synced = true;
            return Some(CleanStep::Sync(self.range));
        }
        if self.swapping {
            return None; // done; the log moves on
        }
        self.swapping = true;
        Some(CleanStep::Swap {
            range: self.range,
            replaced: self.replaced.clone(),
        })
    }

    /// A kept batch: written after the removed ones before it are covered.
    fn emit(&mut self, bytes: &[u8], index_interval_bytes: u64) -> Result<(), String> {
        self.close_hole(index_interval_bytes)?;
        let info = batch::validate_stored(bytes).map_err(|e| e.to_string())?;
        self.push(bytes, &info, index_interval_bytes)
    }

    fn push(
        &mut self,
        bytes: &[u8],
        info: &BatchInfo,
        index_interval_bytes: u64,
    ) -> Result<(), String> {
        if info.base_offset != self.segment.next_offset {
            return Err(format!(
                "batch at {} follows offsets up to {}",
                info.base_offset, self.segment.next_offset
            ));
        }
        self.segment.push(info, index_interval_bytes);
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// A batch removed whole: its offsets join the hole before it, or start one.
    fn remove(&mut self, info: &BatchInfo, index_interval_bytes: u64) -> Result<(), String> {
        let epoch = info.partition_leader_epoch;
        match &mut self.hole {
            Some((first, last, e))
                if *e == epoch
                    && *last + 1 == info.base_offset
                    && info.last_offset() - *first <= i64::from(i32::MAX) =>
            {
                *last = info.last_offset();
            }
            _ => {
                self.close_hole(index_interval_bytes)?;
                self.hole = Some((info.base_offset, info.last_offset(), epoch));
            }
        }
        Ok(())
    }

    fn close_hole(&mut self, index_interval_bytes: u64) -> Result<(), String> {
        if let Some((first, last, epoch)) = self.hole.take() {
            let bytes = compact::hole_batch(first, last, epoch);
            let info = batch::validate_stored(&bytes).map_err(|e| e.to_string())?;
            self.push(&bytes, &info, index_interval_bytes)?;
        }
        Ok(())
    }

    /// Every batch of the group is read: the cleaned segment must end where the group did.
    fn finish(&mut self, index_interval_bytes: u64) -> Result<(), String> {
        self.close_hole(index_interval_bytes)?;
        if self.segment.next_offset != self.range.end {
            return Err(format!(
                "segments {}..{} cleaned end at {}",
                self.range.base_offset, self.range.end, self.segment.next_offset
            ));
        }
        self.finished = true;
        Ok(())
    }
}
