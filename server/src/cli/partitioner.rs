//! Kafka's default partitioner, so `spate produce` puts a key where the Java client would:
//! keyed records go to `toPositive(murmur2(key)) % partitions`, keyless records stick to one
//! partition until its batch is full, then move on round-robin.

/// Kafka's `Utils.murmur2` (MurmurHash2, 32-bit, seed 0x9747b28c), bit for bit.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java's int arithmetic wraps; the length enters as a (32-bit) int.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows on MIN).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition Kafka's default partitioner picks for `key` among `partition_count`.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    assert!(partition_count > 0, "a topic has at least one partition");
    to_positive(murmur2(key)) % partition_count
}

/// Where keyless records go: one partition until its batch fills, then the next.
pub struct Sticky {
    current: i32,
}

impl Sticky {
    pub fn new(start: i32) -> Sticky {
        Sticky { current: start }
    }

    pub fn partition(&self, partition_count: i32) -> i32 {
        assert!(partition_count > 0, "a topic has at least one partition");
        self.current.rem_euclid(partition_count)
    }

    /// A batch of the current partition was sent: move on.
    pub fn on_batch_sent(&mut self, partition_count: i32) {
        self.current = (self.partition(partition_count) + 1) % partition_count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka_utils_test() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for &(data, expected) in cases {
            assert_eq!(
                murmur2(data),
                expected,
                "murmur2({:?})",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit() {
        assert_eq!(to_positive(-973_932_308), 1_173_551_340);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(-1), i32::MAX);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn keyed_records_pick_the_java_clients_partition() {
        // to_positive(murmur2("21")) == 1_173_551_340: % 3 == 0, % 7 == 3
        assert_eq!(partition_for_key(b"21", 3), 0);
        assert_eq!(partition_for_key(b"21", 7), 3);
        assert_eq!(partition_for_key(b"abc", 4), 479_470_107 % 4);
        for n in 1..20 {
            assert!((0..n).contains(&partition_for_key(b"key", n)));
        }
    }

    #[test]
    fn sticky_moves_round_robin_after_each_batch() {
        let mut sticky = Sticky::new(0);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(sticky.partition(3));
            sticky.on_batch_sent(3);
        }
        assert_eq!(seen, [0, 1, 2, 0]);
    }
}
