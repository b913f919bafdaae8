//! Byte-level mutations of valid encodings: the kinds of damage that find decoder bugs (bit flips,
//! truncation, insertion, deletion, splicing) and the kinds that find allocation and bounds bugs
//! (length and count fields replaced by huge, negative or off-by-one values).

use super::rng::Rng;

/// Interesting 32-bit values for lengths, counts and offsets.
pub const I32_SPECIAL: &[i32] = &[
    i32::MAX,
    i32::MAX - 1,
    i32::MIN,
    -1,
    -2,
    0,
    1,
    0x7fff,
    0x8000,
    0xffff,
    0x0100_0000,
    0x7fff_fff0,
];

pub const I16_SPECIAL: &[i16] = &[i16::MAX, i16::MIN, -1, -2, 0, 1, 0x7f, 0x80, 0xff];

/// Unsigned varints (compact lengths are N+1): zero (null), huge, and over-long encodings.
const VARINT_SPECIAL: &[&[u8]] = &[
    &[0x00],
    &[0xff, 0xff, 0xff, 0xff, 0x07], // i32::MAX
    &[0xff, 0xff, 0xff, 0xff, 0x0f], // u32::MAX
    &[0x80, 0x80, 0x80, 0x80, 0x08], // 2^31
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], // 2^63 - 1
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ], // too long
    &[0x80, 0x80, 0x80], // unterminated
    &[0x81, 0x00],       // non-minimal 1
];

/// Applies 1 to 4 random mutations. Positions before `keep` (a header the caller wants
/// mostly intact) are mutated only a fifth of the time.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, keep: usize, donor: Option<&[u8]>) {
    let rounds = 1 + rng.below(4) * rng.below(2);
    for _ in 0..rounds {
        mutate_once(rng, data, keep, donor);
    }
}

fn position(rng: &mut Rng, len: usize, keep: usize) -> usize {
    if len == 0 {
        return 0;
    }
    if keep < len && rng.percent(80) {
        keep + rng.below(len - keep)
    } else {
        rng.below(len)
    }
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, keep: usize, donor: Option<&[u8]>) {
    let len = data.len();
    match rng.below(14) {
        // Bit flip.
        0 | 1 if len > 0 => {
            let at = position(rng, len, keep);
            data[at] ^= 1 << rng.below(8);
        }
        // A byte set to an interesting or random value.
        2 if len > 0 => {
            let at = position(rng, len, keep);
            let random = rng.next_u64() as u8;
            data[at] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff, random]);
        }
        // Truncation.
        3 if len > 0 => {
            let at = position(rng, len, keep);
            data.truncate(at);
        }
        // Insert random bytes.
        4 => {
            let at = position(rng, len + 1, keep).min(len);
            let n = 1 + rng.small_len(64);
            let bytes = rng.bytes(n);
            data.splice(at..at, bytes);
        }
        // Delete a range.
        5 if len > 0 => {
            let at = position(rng, len, keep);
            let n = (1 + rng.small_len(32)).min(len - at);
            data.drain(at..at + n);
        }
        // Duplicate a range in place.
        6 if len > 0 => {
            let at = position(rng, len, keep);
            let n = (1 + rng.small_len(64)).min(len - at);
            let copy = data[at..at + n].to_vec();
            data.splice(at..at, copy);
        }
        // A 32-bit field set to an interesting value.
        7 if len >= 4 => {
            let at = position(rng, len - 3, keep);
            let v = *rng.pick(I32_SPECIAL);
            data[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        // A 16-bit field set to an interesting value.
        8 if len >= 2 => {
            let at = position(rng, len - 1, keep);
            let v = *rng.pick(I16_SPECIAL);
            data[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        // A byte replaced by a varint bomb.
        9 if len > 0 => {
            let at = position(rng, len, keep);
            let v = *rng.pick(VARINT_SPECIAL);
            data.splice(at..at + 1, v.iter().copied());
        }
        // Length-targeted: a field whose value looks like a length or count of what follows.
        10 | 11 => mutate_length(rng, data, keep),
        // Splice in part of another valid encoding.
        12 if donor.is_some_and(|d| !d.is_empty()) => {
            let donor = donor.expect("checked");
            let from = rng.below(donor.len());
            let n = (1 + rng.small_len(128)).min(donor.len() - from);
            let at = position(rng, len + 1, keep).min(len);
            let end = (at + rng.below(n + 1)).min(len);
            data.splice(at..end, donor[from..from + n].iter().copied());
        }
        // Random tail.
        _ => {
            let at = position(rng, len + 1, keep).min(len);
            data.truncate(at);
            let n = rng.small_len(64);
            data.extend(rng.bytes(n));
        }
    }
}

/// Finds fields that look like lengths (big-endian i32 or i16 no larger than what follows, or a
/// one-byte unsigned varint no larger than what follows plus one) and sets one to a huge,
/// negative or off-by-one value.
fn mutate_length(rng: &mut Rng, data: &mut Vec<u8>, keep: usize) {
    let len = data.len();
    // One list per width, so the rarer 32-bit lengths are not drowned by the one-byte ones.
    let mut candidates: [Vec<usize>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for at in keep.min(len)..len {
        let rest = (len - at) as i64;
        if at + 4 <= len {
            let v = i64::from(i32::from_be_bytes([
                data[at],
                data[at + 1],
                data[at + 2],
                data[at + 3],
            ]));
            if (0..=rest).contains(&v) {
                candidates[0].push(at);
            }
        }
        if at + 2 <= len {
            let v = i64::from(i16::from_be_bytes([data[at], data[at + 1]]));
            if (1..=rest).contains(&v) {
                candidates[1].push(at);
            }
        }
        if (1..=rest + 1).contains(&i64::from(data[at])) && data[at] < 0x80 {
            candidates[2].push(at);
        }
    }
    let kinds: Vec<usize> = (0..3).filter(|&k| !candidates[k].is_empty()).collect();
    if kinds.is_empty() {
        return mutate_once(rng, data, 0, None);
    }
    let kind = *rng.pick(&kinds);
    let at = *rng.pick(&candidates[kind]);
    let width = [4, 2, 1][kind];
    match width {
        4 => {
            let old = i32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            let v = *rng.pick(&[
                i32::MAX,
                i32::MIN,
                -1,
                -2,
                old.wrapping_add(1),
                old.wrapping_sub(1),
                (len - at) as i32,
                0x7fff_fff0,
            ]);
            data[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        2 => {
            let old = i16::from_be_bytes([data[at], data[at + 1]]);
            let v = *rng.pick(&[
                i16::MAX,
                i16::MIN,
                -1,
                -2,
                old.wrapping_add(1),
                old.wrapping_sub(1),
            ]);
            data[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        _ => {
            let old = data[at];
            match rng.below(4) {
                0 => data[at] = old.wrapping_add(1),
                1 => data[at] = old.wrapping_sub(1),
                _ => {
                    let v = *rng.pick(VARINT_SPECIAL);
                    data.splice(at..at + 1, v.iter().copied());
                }
            }
        }
    }
}
