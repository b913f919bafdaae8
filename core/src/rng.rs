//! A small seeded generator (SplitMix64) for ids. The seed comes from the shell: the production
//! shell draws it from the OS, the simulator from its run seed, so the core stays deterministic.

pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 16 random bytes shaped as a version-4 UUID, as Kafka's topic ids are.
    pub fn bytes16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        out[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        out[6] = (out[6] & 0x0f) | 0x40;
        out[8] = (out[8] & 0x3f) | 0x80;
        out
    }

    /// A cluster id in Kafka's form: a UUID in 22 characters of URL-safe base64.
    pub fn cluster_id(&mut self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = self.bytes16();
        let mut bits = u128::from_be_bytes(bytes);
        let mut out = Vec::with_capacity(22);
        // 22 characters of 6 bits cover 132 bits: the first takes the top 2 bits padded, as base64 does.
        let mut chars = [0u8; 22];
        for c in chars.iter_mut().rev() {
            *c = ALPHABET[(bits & 63) as usize];
            bits >>= 6;
        }
        out.extend_from_slice(&chars);
        String::from_utf8(out).expect("alphabet is ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.bytes16(), b.bytes16());
        assert_ne!(a.bytes16(), Rng::new(8).bytes16());
        assert_eq!(a.cluster_id().len(), 22);
    }
}
