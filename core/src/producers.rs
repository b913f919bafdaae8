//! Idempotent producers: per partition, the sequence numbers each producer id has written, so a
//! retried batch is answered with its first offsets instead of being appended twice, and a gap
//! in the sequence is refused. Rebuilt from the batch headers when a log is recovered.

use crate::batch::BatchInfo;
use crate::errors;
use std::collections::{BTreeMap, VecDeque};

/// Kafka keeps the last five batches per producer: a client has at most five in flight.
const BATCHES_KEPT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WrittenBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<WrittenBatch>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or the next in sequence: append it.
    Append,
    /// Already written at these offsets (a retry): answer with them, append nothing.
    Duplicate { base_offset: i64, last_offset: i64 },
    /// Refuse the batch with this Kafka error code.
    Refuse(i16),
}

#[derive(Debug, Clone, Default)]
pub struct ProducerStates {
    producers: BTreeMap<i64, ProducerEntry>,
}

fn last_sequence(info: &BatchInfo) -> i32 {
    // Sequences wrap at i32::MAX, as Kafka's do.
    ((i64::from(info.base_sequence) + i64::from(info.last_offset_delta))
        % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStates {
    /// Checks a batch against what its producer wrote before.
    pub fn check(&self, info: &BatchInfo) -> SequenceCheck {
        if info.producer_id < 0 {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&info.producer_id) else {
            // No state: a new producer, or one whose state predates what the log holds.
            return SequenceCheck::Append;
        };
        if info.producer_epoch < entry.epoch {
            return SequenceCheck::Refuse(errors::INVALID_PRODUCER_EPOCH);
        }
        if info.producer_epoch > entry.epoch {
            return if info.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Refuse(errors::OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        let last = last_sequence(info);
        if let Some(done) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == info.base_sequence && b.last_sequence == last)
        {
            return SequenceCheck::Duplicate {
                base_offset: done.base_offset,
                last_offset: done.last_offset,
            };
        }
        let expected = entry.batches.back().map_or(0, |b| {
            if b.last_sequence == i32::MAX {
                0
            } else {
                b.last_sequence + 1
            }
        });
        if info.base_sequence == expected {
            SequenceCheck::Append
        } else {
            SequenceCheck::Refuse(errors::OUT_OF_ORDER_SEQUENCE_NUMBER)
        }
    }

    /// The last offset of the producer's last batch, if the log holds its state.
    pub fn last_offset(&self, producer_id: i64) -> Option<i64> {
        let entry = self.producers.get(&producer_id)?;
        entry.batches.back().map(|b| b.last_offset)
    }

    /// Records an appended batch (its `base_offset` already assigned).
    pub fn record(&mut self, info: &BatchInfo) {
        if info.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(info.producer_id).or_default();
        if info.producer_epoch != entry.epoch {
            entry.epoch = info.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(WrittenBatch {
            first_sequence: info.base_sequence,
            last_sequence: last_sequence(info),
            base_offset: info.base_offset,
            last_offset: info.last_offset(),
        });
        if entry.batches.len() > BATCHES_KEPT {
            entry.batches.pop_front();
        }
    }
}

impl ProducerStates {
    /// The log was cut back to `end`: batches at or after it are forgotten, and a producer
    /// with none left loses its state (its next batch is taken as a new producer's, as after
    /// its state expired).
    pub fn truncate_to(&mut self, end: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < end);
        }
        self.producers.retain(|_, entry| !entry.batches.is_empty());
    }

    /// The snapshot kept in a segment's index file, so a restart need not rescan the segments
    /// before the last one: per producer its id, epoch and last batches, big-endian.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        for (id, entry) in &self.producers {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_sequence.to_be_bytes());
                out.extend_from_slice(&b.last_sequence.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
    }

    /// Reads a snapshot written by [`ProducerStates::encode`]; `None` when it is malformed.
    pub fn decode(input: &mut &[u8]) -> Option<ProducerStates> {
        fn take<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
            let (head, rest) = input.split_first_chunk::<N>()?;
            *input = rest;
            Some(*head)
        }
        let count = u32::from_be_bytes(take(input)?);
        let mut producers = BTreeMap::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(take(input)?);
            let epoch = i16::from_be_bytes(take(input)?);
            let [batches] = take::<1>(input)?;
            if usize::from(batches) > BATCHES_KEPT {
                return None;
            }
            let mut entry = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
            };
            for _ in 0..batches {
                entry.batches.push_back(WrittenBatch {
                    first_sequence: i32::from_be_bytes(take(input)?),
                    last_sequence: i32::from_be_bytes(take(input)?),
                    base_offset: i64::from_be_bytes(take(input)?),
                    last_offset: i64::from_be_bytes(take(input)?),
                });
            }
            producers.insert(id, entry);
        }
        Some(ProducerStates { producers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_back_the_same_answers() {
        let mut states = ProducerStates::default();
        states.record(&batch(7, 0, 0, 3, 10));
        states.record(&batch(9, 2, 0, 1, 13));
        let mut bytes = Vec::new();
        states.encode(&mut bytes);
        let mut input = &bytes[..];
        let back = ProducerStates::decode(&mut input).unwrap();
        assert!(input.is_empty());
        assert_eq!(
            back.check(&batch(7, 0, 0, 3, -1)),
            SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        assert_eq!(back.check(&batch(9, 2, 1, 1, -1)), SequenceCheck::Append);
        assert!(ProducerStates::decode(&mut &bytes[..bytes.len() - 1]).is_none());
    }

    fn batch(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        records: i32,
        base_offset: i64,
    ) -> BatchInfo {
        BatchInfo {
            base_offset,
            size_bytes: 100,
            last_offset_delta: records - 1,
            records_count: records,
            base_timestamp: 0,
            max_timestamp: 0,
            partition_leader_epoch: 0,
            attributes: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut states = ProducerStates::default();
        let first = batch(7, 0, 0, 3, 10);
        assert_eq!(states.check(&first), SequenceCheck::Append);
        states.record(&first);
        assert_eq!(
            states.check(&batch(7, 0, 0, 3, -1)),
            SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        assert_eq!(states.check(&batch(7, 0, 3, 1, -1)), SequenceCheck::Append);
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let mut states = ProducerStates::default();
        states.record(&batch(7, 1, 0, 2, 0));
        assert_eq!(
            states.check(&batch(7, 1, 5, 1, -1)),
            SequenceCheck::Refuse(errors::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(
            states.check(&batch(7, 0, 2, 1, -1)),
            SequenceCheck::Refuse(errors::INVALID_PRODUCER_EPOCH)
        );
        assert_eq!(states.check(&batch(7, 2, 0, 1, -1)), SequenceCheck::Append);
        assert_eq!(
            states.check(&batch(7, 2, 1, 1, -1)),
            SequenceCheck::Refuse(errors::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
    }

    #[test]
    fn plain_producers_are_not_tracked() {
        let mut states = ProducerStates::default();
        let plain = batch(-1, -1, -1, 1, 0);
        states.record(&plain);
        assert_eq!(states.check(&plain), SequenceCheck::Append);
    }
}
