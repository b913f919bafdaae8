//! Raft's bytes: messages between controller voters, and what a node stores (hard state,
//! snapshot, entries), the same for both shells. Everything read from a peer or a disk is
//! checked: a length past the end, an unknown kind or a bad checksum is an error naming it,
//! never a panic or an allocation the bytes cannot back.
//!
//! A message: version (1 byte, 0), kind (1), from (i32), to (i32), term (u64), then its body.
//! A stored record is one whole `Persist`: its length (u32), a CRC32C of the length, a CRC32C of
//! the body, the body; a torn last record (a crash during its write) reads as the end.

use super::{Entry, HardState, Message, MessageBody, Persist, Snapshot};
use crate::replica::NodeId;

const VERSION: u8 = 0;

/// Bytes of one entry besides its data: term, index, data length.
const ENTRY_HEADER_BYTES: usize = 8 + 8 + 4;

pub fn encode_message(message: &Message, out: &mut Vec<u8>) {
    out.push(VERSION);
    let (kind, body) = match &message.body {
        MessageBody::PreVote { .. } => (1, &message.body),
        MessageBody::PreVoteResponse { .. } => (2, &message.body),
        MessageBody::Vote { .. } => (3, &message.body),
        MessageBody::VoteResponse { .. } => (4, &message.body),
        MessageBody::Append { .. } => (5, &message.body),
        MessageBody::AppendResponse { .. } => (6, &message.body),
        MessageBody::InstallSnapshot { .. } => (7, &message.body),
        MessageBody::TimeoutNow { .. } => (8, &message.body),
    };
    out.push(kind);
    out.extend(message.from.to_be_bytes());
    out.extend(message.to.to_be_bytes());
    out.extend(message.term.to_be_bytes());
    match body {
        MessageBody::PreVote {
            last_log_term,
            last_log_index,
        } => {
            out.extend(last_log_term.to_be_bytes());
            out.extend(last_log_index.to_be_bytes());
        }
        MessageBody::Vote {
            last_log_term,
            last_log_index,
            transfer,
        } => {
            out.extend(last_log_term.to_be_bytes());
            out.extend(last_log_index.to_be_bytes());
            out.push(u8::from(*transfer));
        }
        MessageBody::PreVoteResponse { granted } | MessageBody::VoteResponse { granted } => {
            out.push(u8::from(*granted))
        }
        MessageBody::Append {
            prev_log_index,
            prev_log_term,
            entries,
            committed_index,
        } => {
            out.extend(prev_log_index.to_be_bytes());
            out.extend(prev_log_term.to_be_bytes());
            out.extend(committed_index.to_be_bytes());
            out.extend((entries.len() as u32).to_be_bytes());
            for entry in entries {
                encode_entry(entry, out);
            }
        }
        MessageBody::AppendResponse {
            success,
            match_index,
        } => {
            out.push(u8::from(*success));
            out.extend(match_index.to_be_bytes());
        }
        MessageBody::InstallSnapshot { snapshot } => encode_snapshot(snapshot, out),
        MessageBody::TimeoutNow { last_log_index } => out.extend(last_log_index.to_be_bytes()),
    }
}

pub fn decode_message(bytes: &[u8]) -> Result<Message, String> {
    let mut r = Reader { bytes, at: 0 };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(format!("Raft message version {version} is not {VERSION}"));
    }
    let kind = r.u8("kind")?;
    let from = r.i32("from")? as NodeId;
    let to = r.i32("to")? as NodeId;
    let term = r.u64("term")?;
    let body = match kind {
        1 | 3 => {
            let last_log_term = r.u64("last log term")?;
            let last_log_index = r.u64("last log index")?;
            match kind {
                1 => MessageBody::PreVote {
                    last_log_term,
                    last_log_index,
                },
                _ => MessageBody::Vote {
                    last_log_term,
                    last_log_index,
                    transfer: r.bool("transfer")?,
                },
            }
        }
        2 => MessageBody::PreVoteResponse {
            granted: r.bool("granted")?,
        },
        4 => MessageBody::VoteResponse {
            granted: r.bool("granted")?,
        },
        5 => {
            let prev_log_index = r.u64("prev log index")?;
            let prev_log_term = r.u64("prev log term")?;
            let committed_index = r.u64("committed index")?;
            let count = r.u32("entry count")? as usize;
            if count > r.left() / ENTRY_HEADER_BYTES {
                return Err(format!("{count} entries cannot fit in {} bytes", r.left()));
            }
            let entries = (0..count)
                .map(|_| decode_entry(&mut r))
                .collect::<Result<_, _>>()?;
            MessageBody::Append {
                prev_log_index,
                prev_log_term,
                entries,
                committed_index,
            }
        }
        6 => MessageBody::AppendResponse {
            success: r.bool("success")?,
            match_index: r.u64("match index")?,
        },
        7 => MessageBody::InstallSnapshot {
            snapshot: decode_snapshot(&mut r)?,
        },
        8 => MessageBody::TimeoutNow {
            last_log_index: r.u64("last log index")?,
        },
        other => return Err(format!("unknown Raft message kind {other}")),
    };
    r.finish("message")?;
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

/// One stored record: a whole [`Persist`], so that a crash keeps all of it or none (its hard
/// state never without the cut and entries that go with it).
pub fn encode_persist(persist: &Persist, out: &mut Vec<u8>) {
    let mut body = Vec::new();
    body.extend(persist.seq.to_be_bytes());
    let hard_state = &persist.hard_state;
    body.extend(hard_state.term.to_be_bytes());
    body.extend(hard_state.voted_for.unwrap_or(-1).to_be_bytes());
    body.extend(hard_state.committed_index.to_be_bytes());
    match &persist.snapshot {
        Some(snapshot) => {
            body.push(1);
            encode_snapshot(snapshot, &mut body);
        }
        None => body.push(0),
    }
    body.extend(persist.entries_from.unwrap_or(0).to_be_bytes());
    body.extend((persist.entries.len() as u32).to_be_bytes());
    for entry in &persist.entries {
        encode_entry(entry, &mut body);
    }
    let len = (body.len() as u32).to_be_bytes();
    out.extend(len);
    out.extend(crc32c::crc32c(&len).to_be_bytes());
    out.extend(crc32c::crc32c(&body).to_be_bytes());
    out.extend(body);
}

/// The persists of a stored file, in order (replay them with [`super::Stored::apply`]). A
/// record the file ends inside (a crash during its write) ends the file; a length that fails its
/// own checksum, a body that fails its checksum before the last record, or a record that does
/// not parse, is an error naming where.
pub fn decode_persists(bytes: &[u8]) -> Result<Vec<Persist>, String> {
    let mut persists = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + 12) else {
            break; // torn header
        };
        let len_bytes: [u8; 4] = header[..4].try_into().expect("4 bytes");
        let len_crc = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
        if crc32c::crc32c(&len_bytes) != len_crc {
            return Err(format!(
                "Raft record at byte {at}: its length fails its checksum"
            ));
        }
        let len = u32::from_be_bytes(len_bytes) as usize;
        let crc = u32::from_be_bytes(header[8..].try_into().expect("4 bytes"));
        let Some(body) = bytes.get(at + 12..at + 12 + len) else {
            break; // torn body
        };
        if crc32c::crc32c(body) != crc {
            if at + 12 + len == bytes.len() {
                break; // the last record, torn
            }
            return Err(format!("Raft record at byte {at} fails its checksum"));
        }
        persists.push(decode_persist(body).map_err(|e| format!("Raft record at byte {at}: {e}"))?);
        at += 12 + len;
    }
    Ok(persists)
}

fn decode_persist(body: &[u8]) -> Result<Persist, String> {
    let mut r = Reader { bytes: body, at: 0 };
    let seq = r.u64("seq")?;
    let term = r.u64("term")?;
    let voted_for = r.i32("voted for")?;
    let committed_index = r.u64("committed index")?;
    let snapshot = match r.u8("snapshot flag")? {
        0 => None,
        1 => Some(decode_snapshot(&mut r)?),
        other => return Err(format!("snapshot flag {other} is not 0 or 1")),
    };
    let entries_from = match r.u64("entries from")? {
        0 => None,
        from => Some(from),
    };
    let count = r.u32("entry count")? as usize;
    if count > r.left() / ENTRY_HEADER_BYTES {
        return Err(format!("{count} entries cannot fit in {} bytes", r.left()));
    }
    let entries = (0..count)
        .map(|_| decode_entry(&mut r))
        .collect::<Result<_, _>>()?;
    r.finish("record")?;
    Ok(Persist {
        seq,
        snapshot,
        hard_state: HardState {
            term,
            voted_for: (voted_for >= 0).then_some(voted_for),
            committed_index,
        },
        entries_from,
        entries,
    })
}

fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    put_numbered_bytes(entry.term, entry.index, &entry.data, out);
}

fn decode_entry(r: &mut Reader) -> Result<Entry, String> {
    let (term, index, data) = take_numbered_bytes(r, "entry")?;
    Ok(Entry { term, index, data })
}

fn encode_snapshot(snapshot: &Snapshot, out: &mut Vec<u8>) {
    put_numbered_bytes(snapshot.index, snapshot.term, &snapshot.data, out);
}

fn decode_snapshot(r: &mut Reader) -> Result<Snapshot, String> {
    let (index, term, data) = take_numbered_bytes(r, "snapshot")?;
    Ok(Snapshot { index, term, data })
}

/// Two numbers, then bytes with their length: the shape of an entry and of a snapshot.
fn put_numbered_bytes(first: u64, second: u64, data: &[u8], out: &mut Vec<u8>) {
    out.extend(first.to_be_bytes());
    out.extend(second.to_be_bytes());
    out.extend((data.len() as u32).to_be_bytes());
    out.extend(data);
}

fn take_numbered_bytes(r: &mut Reader, what: &str) -> Result<(u64, u64, Vec<u8>), String> {
    let first = r.u64(what)?;
    let second = r.u64(what)?;
    let len = r.u32(what)? as usize;
    let data = r.take(len, what)?.to_vec();
    Ok((first, second, data))
}

/// Reads big-endian fields, naming the one that runs past the end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "{what}: {n} bytes wanted at byte {}, {} left",
                self.at,
                self.left()
            ));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn bool(&mut self, what: &str) -> Result<bool, String> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("{what}: {other} is not a boolean")),
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn i32(&mut self, what: &str) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_be_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    fn finish(&self, what: &str) -> Result<(), String> {
        match self.left() {
            0 => Ok(()),
            n => Err(format!("{n} bytes after the end of the {what}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn messages() -> Vec<Message> {
        let entry = |term, index, data: &[u8]| Entry {
            term,
            index,
            data: data.to_vec(),
        };
        let snapshot = Snapshot {
            index: 9,
            term: 3,
            data: b"image".to_vec(),
        };
        let bodies = vec![
            MessageBody::PreVote {
                last_log_term: 2,
                last_log_index: 7,
            },
            MessageBody::PreVoteResponse { granted: true },
            MessageBody::Vote {
                last_log_term: 2,
                last_log_index: 7,
                transfer: true,
            },
            MessageBody::VoteResponse { granted: false },
            MessageBody::Append {
                prev_log_index: 4,
                prev_log_term: 2,
                entries: vec![entry(2, 5, b""), entry(3, 6, b"topic created")],
                committed_index: 4,
            },
            MessageBody::AppendResponse {
                success: true,
                match_index: 6,
            },
            MessageBody::InstallSnapshot { snapshot },
            MessageBody::TimeoutNow { last_log_index: 9 },
        ];
        bodies
            .into_iter()
            .map(|body| Message {
                from: 1,
                to: 3,
                term: 5,
                body,
            })
            .collect()
    }

    #[test]
    fn every_message_reads_back_as_written_and_every_cut_is_an_error() {
        for message in messages() {
            let mut bytes = Vec::new();
            encode_message(&message, &mut bytes);
            assert_eq!(decode_message(&bytes), Ok(message.clone()));
            for cut in 0..bytes.len() {
                assert!(
                    decode_message(&bytes[..cut]).is_err(),
                    "{message:?} cut at {cut}"
                );
            }
            bytes.push(0);
            assert!(decode_message(&bytes)
                .unwrap_err()
                .contains("after the end"));
        }
    }

    #[test]
    fn random_and_mutated_bytes_are_errors_or_messages_never_panics() {
        let mut rng = Rng::new(42);
        let encoded: Vec<Vec<u8>> = messages()
            .iter()
            .map(|m| {
                let mut bytes = Vec::new();
                encode_message(m, &mut bytes);
                bytes
            })
            .collect();
        for round in 0..20_000u64 {
            let mut bytes = encoded[(round % encoded.len() as u64) as usize].clone();
            for _ in 0..1 + rng.next_u64() % 4 {
                let at = (rng.next_u64() % bytes.len() as u64) as usize;
                bytes[at] = rng.next_u64() as u8;
            }
            let _ = decode_message(&bytes);
        }
        // A count that the bytes cannot back is refused before anything is allocated.
        let mut bomb = Vec::new();
        encode_message(&messages()[4], &mut bomb);
        bomb[42..46].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_message(&bomb).unwrap_err().contains("cannot fit"));
    }

    #[test]
    fn persists_read_back_a_torn_tail_ends_them_and_damage_is_named() {
        let entry = |term, index| Entry {
            term,
            index,
            data: vec![index as u8],
        };
        let persists = vec![
            Persist {
                seq: 1,
                snapshot: None,
                hard_state: HardState {
                    term: 1,
                    voted_for: Some(2),
                    committed_index: 0,
                },
                entries_from: Some(1),
                entries: vec![entry(1, 1), entry(1, 2), entry(1, 3)],
            },
            Persist {
                seq: 2,
                snapshot: Some(Snapshot {
                    index: 1,
                    term: 1,
                    data: b"image".to_vec(),
                }),
                hard_state: HardState {
                    term: 2,
                    voted_for: None,
                    committed_index: 2,
                },
                entries_from: Some(2),
                entries: vec![entry(2, 2)],
            },
        ];
        let mut bytes = Vec::new();
        for persist in &persists {
            encode_persist(persist, &mut bytes);
        }
        assert_eq!(decode_persists(&bytes), Ok(persists.clone()));
        // Replayed, the second replaces the first's suffix: all or none of each.
        let mut stored = super::super::Stored::default();
        for persist in &decode_persists(&bytes).unwrap() {
            stored.apply(persist);
        }
        assert_eq!(stored.entries, vec![entry(2, 2)]);
        assert_eq!(stored.hard_state.committed_index, 2);
        // A cut anywhere inside the last record: the first reads, none of the second.
        let mut first = Vec::new();
        encode_persist(&persists[0], &mut first);
        for cut in first.len()..bytes.len() {
            assert_eq!(
                decode_persists(&bytes[..cut]).unwrap(),
                persists[..1].to_vec()
            );
        }
        // A flipped bit in the first record's body, or in its length, is named.
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert!(decode_persists(&bad)
            .unwrap_err()
            .contains("fails its checksum"));
        let mut bad = bytes.clone();
        bad[1] ^= 0x40;
        assert!(decode_persists(&bad).unwrap_err().contains("length fails"));
    }
}
