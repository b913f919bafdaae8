//! A small seeded generator (SplitMix64): every case is a pure function of its seed, so a run is
//! reproducible on any machine and a failing case replays from its seed alone.

pub struct Rng(u64);

/// Mixes two values into a seed (one SplitMix64 step over their combination).
pub fn mix(a: u64, b: u64) -> u64 {
    Rng(a ^ b.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15).next_u64()
}

/// FNV-1a, to turn a target's name into a seed component.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi as i128 - lo as i128 + 1) as u128;
        (lo as i128 + ((u128::from(self.next_u64()) * span) >> 64) as i128) as i64
    }

    /// True `percent` times in a hundred.
    pub fn percent(&mut self, percent: u32) -> bool {
        (self.below(100) as u32) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Random bytes, as many as `small_len(max)`.
    pub fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.small_len(max);
        self.bytes(n)
    }

    /// A length skewed towards small values: mostly under 16, sometimes up to `max`.
    pub fn small_len(&mut self, max: usize) -> usize {
        match self.below(8) {
            0..=4 => self.below(16.min(max + 1)),
            5 | 6 => self.below(128.min(max + 1)),
            _ => self.below(max + 1),
        }
    }
}
