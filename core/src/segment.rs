//! One segment of a partition's log: the offsets and bytes it spans, its sparse index, and the
//! index file that lets a restart skip scanning it.
//!
//! The sparse index has one entry per `index.interval.bytes` of batches: the base offset of the
//! batch that starts there, its position, and the largest timestamp of every batch before it.
//! The first two columns are Kafka's offset index, the last is its time index turned around:
//! the first batch whose timestamp reaches T is at or after the last entry whose "largest before"
//! is below T, so one scan from there finds it. The segment's start is an implicit entry.
//!
//! The segment also keeps where each leader epoch of its batches starts (Kafka's
//! leader-epoch-checkpoint, kept per segment): the partition's epoch history is these, segment
//! after segment, so it is persisted with each index file and rebuilt by the scan of a segment
//! without one, and goes with the segments retention deletes or truncation cuts.
//!
//! The index file (`<base offset>.index`) is written once the segment is closed and durable, and
//! for the active segment at a clean shutdown. Format, big-endian: magic `SPIX`, version (u16),
//! base offset, next offset, logical bytes, max timestamp, its offset, time basis for
//! `segment.ms` (all i64/u64), entry count (u32) and entries (offset i64, position u64, max
//! timestamp before i64), the idempotent producers' state at the segment's end, the epoch
//! starts (count u32, then epoch i32 and start offset i64 each; version 2 on), then a CRC32C
//! of everything before it. A version 1 file (before epochs) reads as epoch 0 throughout.

use crate::batch::BatchInfo;
use crate::producers::ProducerStates;

const INDEX_MAGIC: &[u8; 4] = b"SPIX";
const INDEX_VERSION: u16 = 2;
/// Index files written before epochs were kept; every batch then was in epoch 0.
const INDEX_VERSION_WITHOUT_EPOCHS: u16 = 1;
const ENTRY_BYTES: usize = 24;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// Base offset of the batch that starts at `position`.
    pub offset: i64,
    pub position: u64,
    /// The largest timestamp of the batches before `position` (-1 for none).
    pub max_timestamp_before: i64,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub base_offset: i64,
    /// Offset after the last batch appended to it.
    pub next_offset: i64,
    /// Logical bytes: batches back to back, without the zero padding of the last block.
    pub bytes: u64,
    /// The largest timestamp of its batches and the last offset of the batch holding it.
    pub max_timestamp: i64,
    pub max_timestamp_offset: i64,
    /// The same over its batches below the high watermark (ListOffsets -3 answers only those).
    pub visible_max_timestamp: i64,
    pub visible_max_offset: i64,
    /// When the segment began, for `segment.ms` (the broker's time at its first append).
    pub started_ms: i64,
    index: Vec<IndexEntry>,
    bytes_since_entry: u64,
    /// (leader epoch, first offset in it) for each epoch its batches begin, in order.
    pub(crate) epochs: Vec<(i32, i64)>,
    /// Idempotent producers' state as of the segment's end, taken when it was rolled and kept
    /// until its index file is written.
    pub(crate) producers_at_end: Option<ProducerStates>,
    /// Whether its index file is durable (always true of segments loaded from one).
    pub(crate) sealed: bool,
    /// Write state: bytes handed out in writes, and the last partial block, rewritten by the
    /// next write (see `log/mod.rs`).
    pub(crate) submitted_bytes: u64,
    pub(crate) partial_block: Vec<u8>,
}

impl Segment {
    pub fn new(base_offset: i64, started_ms: i64) -> Self {
        Segment {
            base_offset,
            next_offset: base_offset,
            bytes: 0,
            max_timestamp: -1,
            max_timestamp_offset: -1,
            visible_max_timestamp: -1,
            visible_max_offset: -1,
            started_ms,
            index: Vec::new(),
            bytes_since_entry: 0,
            epochs: Vec::new(),
            producers_at_end: None,
            sealed: false,
            submitted_bytes: 0,
            partial_block: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Records a batch appended at the segment's end (its offsets already assigned).
    pub fn push(&mut self, info: &BatchInfo, index_interval_bytes: u64) {
        assert_eq!(info.base_offset, self.next_offset, "offsets are dense");
        if self.bytes > 0 && self.bytes_since_entry >= index_interval_bytes {
            self.index.push(IndexEntry {
                offset: info.base_offset,
                position: self.bytes,
                max_timestamp_before: self.max_timestamp,
            });
            self.bytes_since_entry = 0;
        }
        if info.max_timestamp > self.max_timestamp || self.max_timestamp_offset < 0 {
            self.max_timestamp = info.max_timestamp.max(self.max_timestamp);
            self.max_timestamp_offset = info.last_offset();
        }
        self.bytes += info.size_bytes as u64;
        self.bytes_since_entry += info.size_bytes as u64;
        self.next_offset = info.last_offset() + 1;
        // Epochs only grow along a log (a lower one read back is damage, and ignored).
        let epoch = info.partition_leader_epoch;
        if self.epochs.last().is_none_or(|&(last, _)| epoch > last) {
            self.epochs.push((epoch, info.base_offset));
        }
    }

    /// The indexed batch start at or before the batch holding `offset`.
    pub fn lookup(&self, offset: i64) -> IndexEntry {
        let at = self.index.partition_point(|e| e.offset <= offset);
        self.entry_before(at)
    }

    /// The indexed batch start from which a scan finds the first batch with a timestamp at or
    /// after `timestamp`.
    pub fn lookup_time(&self, timestamp: i64) -> IndexEntry {
        let at = self
            .index
            .partition_point(|e| e.max_timestamp_before < timestamp);
        self.entry_before(at)
    }

    fn entry_before(&self, at: usize) -> IndexEntry {
        match at {
            0 => IndexEntry {
                offset: self.base_offset,
                position: 0,
                max_timestamp_before: -1,
            },
            n => self.index[n - 1],
        }
    }

    /// Where to read to find the batch holding `offset` and the segment's largest timestamp
    /// before it: from the indexed batch start at or before it up to the next indexed one (or
    /// the segment's end), with the largest timestamp before that start.
    pub fn span_holding(&self, offset: i64) -> (IndexEntry, u64) {
        let at = self.index.partition_point(|e| e.offset <= offset);
        let end = self.index.get(at).map_or(self.bytes, |e| e.position);
        (self.entry_before(at), end)
    }

    /// Cuts the segment back to its first `position` bytes, which end where the batch at
    /// `offset` began: the index entries, epochs and timestamps of what is cut go, it is no
    /// longer sealed (it takes appends again), and `partial_block` is its bytes from the block
    /// boundary at or below `position` (what the next write rewrites).
    pub fn truncate_at(
        &mut self,
        offset: i64,
        position: u64,
        max_timestamp: (i64, i64),
        partial_block: Vec<u8>,
    ) {
        assert!(offset >= self.base_offset && position <= self.bytes);
        self.index.retain(|e| e.offset < offset);
        self.bytes_since_entry = position - self.index.last().map_or(0, |e| e.position);
        self.epochs.retain(|&(_, start)| start < offset);
        self.next_offset = offset;
        self.bytes = position;
        (self.max_timestamp, self.max_timestamp_offset) = max_timestamp;
        if self.visible_max_offset >= offset {
            // The high watermark comes back to the cut: everything left is visible.
            (self.visible_max_timestamp, self.visible_max_offset) = max_timestamp;
        }
        self.sealed = false;
        self.producers_at_end = None;
        self.submitted_bytes = position;
        self.partial_block = partial_block;
    }

    pub fn index_entries(&self) -> usize {
        self.index.len()
    }

    /// The index file's bytes, with the producers' state at the segment's end.
    pub fn encode_index(&self, producers: &ProducerStates) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.index.len() * ENTRY_BYTES);
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&INDEX_VERSION.to_be_bytes());
        for value in [
            self.base_offset,
            self.next_offset,
            self.bytes as i64,
            self.max_timestamp,
            self.max_timestamp_offset,
            self.started_ms,
        ] {
            out.extend_from_slice(&value.to_be_bytes());
        }
        out.extend_from_slice(&(self.index.len() as u32).to_be_bytes());
        for entry in &self.index {
            out.extend_from_slice(&entry.offset.to_be_bytes());
            out.extend_from_slice(&entry.position.to_be_bytes());
            out.extend_from_slice(&entry.max_timestamp_before.to_be_bytes());
        }
        producers.encode(&mut out);
        out.extend_from_slice(&(self.epochs.len() as u32).to_be_bytes());
        for &(epoch, start) in &self.epochs {
            out.extend_from_slice(&epoch.to_be_bytes());
            out.extend_from_slice(&start.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads an index file back; the error says why it cannot be trusted (then the segment is
    /// scanned instead). `base_offset` is the one its file name gives.
    pub fn decode_index(
        base_offset: i64,
        data: &[u8],
    ) -> Result<(Segment, ProducerStates), String> {
        let (body, crc) = data
            .split_last_chunk::<4>()
            .ok_or("index file is too short")?;
        if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
            return Err("index file checksum does not match".into());
        }
        let mut input = body;
        fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], String> {
            let (head, rest) = input
                .split_first_chunk::<N>()
                .ok_or("index file ends early")?;
            *input = rest;
            Ok(*head)
        }
        if &take::<4>(&mut input)? != INDEX_MAGIC {
            return Err("not an index file".into());
        }
        let version = u16::from_be_bytes(take(&mut input)?);
        if version != INDEX_VERSION && version != INDEX_VERSION_WITHOUT_EPOCHS {
            return Err(format!("index file version {version} is not known"));
        }
        let mut fields = [0i64; 6];
        for field in &mut fields {
            *field = i64::from_be_bytes(take(&mut input)?);
        }
        let [base, next, bytes, max_ts, max_ts_offset, started_ms] = fields;
        if base != base_offset || next < base || bytes < 0 || (bytes == 0) != (next == base) {
            return Err(format!(
                "index file describes offsets {base}..{next} in {bytes} bytes, for a segment at {base_offset}"
            ));
        }
        let count = u32::from_be_bytes(take(&mut input)?) as usize;
        if count > input.len() / ENTRY_BYTES {
            return Err("index file ends early".into());
        }
        let mut segment = Segment::new(base, started_ms);
        segment.next_offset = next;
        segment.bytes = bytes as u64;
        segment.max_timestamp = max_ts;
        segment.max_timestamp_offset = max_ts_offset;
        segment.visible_max_timestamp = max_ts;
        segment.visible_max_offset = max_ts_offset;
        segment.sealed = true;
        let mut previous = (base, 0u64);
        for _ in 0..count {
            let entry = IndexEntry {
                offset: i64::from_be_bytes(take(&mut input)?),
                position: u64::from_be_bytes(take(&mut input)?),
                max_timestamp_before: i64::from_be_bytes(take(&mut input)?),
            };
            if entry.offset <= previous.0
                || entry.offset >= next
                || entry.position <= previous.1
                || entry.position >= segment.bytes
            {
                return Err("index file entries are out of order".into());
            }
            previous = (entry.offset, entry.position);
            segment.index.push(entry);
        }
        segment.bytes_since_entry = segment.bytes - previous.1;
        let producers = ProducerStates::decode(&mut input).ok_or("index file ends early")?;
        if version == INDEX_VERSION_WITHOUT_EPOCHS {
            if next > base {
                segment.epochs.push((0, base));
            }
        } else {
            let count = u32::from_be_bytes(take(&mut input)?) as usize;
            if count > input.len() / 12 {
                return Err("index file ends early".into());
            }
            for _ in 0..count {
                let epoch = i32::from_be_bytes(take(&mut input)?);
                let start = i64::from_be_bytes(take(&mut input)?);
                let ordered = segment
                    .epochs
                    .last()
                    .is_none_or(|&(e, s)| e < epoch && s < start);
                if !ordered || epoch < 0 || start < base || start >= next.max(base + 1) {
                    return Err("index file epochs are out of order".into());
                }
                segment.epochs.push((epoch, start));
            }
            if (next > base) == segment.epochs.is_empty()
                || segment.epochs.first().is_some_and(|&(_, s)| s != base)
            {
                return Err("index file epochs do not cover its batches".into());
            }
        }
        if !input.is_empty() {
            return Err("index file has trailing bytes".into());
        }
        Ok((segment, producers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch;
    use crate::batch::tests::make_batch;

    fn push(segment: &mut Segment, values: &[&[u8]], timestamp: i64) {
        let bytes = make_batch(values, timestamp);
        let mut info = batch::validate(&bytes).unwrap();
        info.base_offset = segment.next_offset;
        segment.push(&info, 100);
    }

    #[test]
    fn the_sparse_index_finds_offsets_and_timestamps() {
        let mut segment = Segment::new(10, 0);
        for i in 0..20 {
            push(&mut segment, &[&[b'v'; 60]], 1_000 + i * 10);
        }
        assert!(segment.index_entries() > 3, "about one entry per 100 bytes");
        assert_eq!(segment.next_offset, 30);
        let at = segment.lookup(17);
        assert!(at.offset <= 17 && at.offset > 10);
        assert_eq!(segment.lookup(10).position, 0);
        assert_eq!(segment.lookup(9).position, 0);
        let t = segment.lookup_time(1_075);
        // The batch with timestamp 1,080 (offset 18) is at or after the entry.
        assert!(t.offset <= 18 && t.max_timestamp_before < 1_075);
        assert_eq!(segment.lookup_time(0).position, 0);
        assert_eq!(segment.max_timestamp, 1_190);
        assert_eq!(segment.max_timestamp_offset, 29);
    }

    #[test]
    fn the_index_file_reads_back_and_damage_is_refused() {
        let mut segment = Segment::new(10, 77);
        for i in 0..20 {
            push(&mut segment, &[&[b'v'; 60]], 1_000 + i);
        }
        let mut producers = ProducerStates::default();
        let bytes = make_batch(&[b"x"], 5);
        let mut info = batch::validate(&bytes).unwrap();
        info.producer_id = 4;
        info.base_sequence = 0;
        producers.record(&info);
        let file = segment.encode_index(&producers);
        let (back, _) = Segment::decode_index(10, &file).unwrap();
        assert_eq!(back.next_offset, 30);
        assert_eq!(back.bytes, segment.bytes);
        assert_eq!(back.started_ms, 77);
        assert_eq!(back.lookup(25), segment.lookup(25));
        assert!(back.sealed);
        for cut in [0, 4, file.len() / 2, file.len() - 1] {
            assert!(Segment::decode_index(10, &file[..cut]).is_err());
        }
        let mut flipped = file.clone();
        flipped[20] ^= 1;
        assert!(Segment::decode_index(10, &flipped).is_err());
        assert!(
            Segment::decode_index(11, &file)
                .unwrap_err()
                .contains("for a segment at 11"),
            "an index file under another segment's name"
        );
    }
    #[test]
    fn epochs_go_into_the_index_file_and_old_files_read_as_epoch_zero() {
        let mut segment = Segment::new(10, 0);
        for (i, epoch) in [0, 0, 2, 2, 5].into_iter().enumerate() {
            let bytes = make_batch(&[b"v"], 1_000 + i as i64);
            let mut info = batch::validate(&bytes).unwrap();
            info.base_offset = segment.next_offset;
            info.partition_leader_epoch = epoch;
            segment.push(&info, 100);
        }
        assert_eq!(segment.epochs, vec![(0, 10), (2, 12), (5, 14)]);
        let producers = ProducerStates::default();
        let file = segment.encode_index(&producers);
        let (back, _) = Segment::decode_index(10, &file).unwrap();
        assert_eq!(back.epochs, segment.epochs);
        // The same file as version 1 wrote it: no epoch section.
        let body = &file[..file.len() - 4];
        let epochs_bytes = 4 + 12 * segment.epochs.len();
        let mut old = body[..body.len() - epochs_bytes].to_vec();
        old[4..6].copy_from_slice(&1u16.to_be_bytes());
        let crc = crc32c::crc32c(&old);
        old.extend_from_slice(&crc.to_be_bytes());
        let (back, _) = Segment::decode_index(10, &old).unwrap();
        assert_eq!(back.epochs, vec![(0, 10)]);
        // Epochs out of order are damage.
        let mut bad = body.to_vec();
        let at = bad.len() - epochs_bytes + 4;
        bad[at..at + 4].copy_from_slice(&9i32.to_be_bytes());
        let crc = crc32c::crc32c(&bad);
        bad.extend_from_slice(&crc.to_be_bytes());
        assert!(Segment::decode_index(10, &bad)
            .unwrap_err()
            .contains("epochs"));
    }
}
