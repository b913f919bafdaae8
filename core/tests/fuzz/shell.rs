//! A tiny in-test shell, like the Harness in `core/src/broker/tests.rs` but outside the crate: it
//! performs the broker's I/O on a map of byte vectors (at once, or held and completed later in
//! any order, sometimes failing), fires its timers in virtual time, restarts it from what the
//! "disk" holds, and checks every output against the interface contract in `core/src/io.rs`.

use super::requests;
use super::rng::Rng;
use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, FetchResponse, JoinGroupResponse, ResponseHeader};
use kafka_protocol::protocol::Decodable;
use spate_core::broker::{supported_versions, Broker, Config, STORAGE_RETRY_MS};
use spate_core::io::{ConnId, IoCommand, IoOp, IoResult, Output, METADATA_FILE};
use spate_core::log::{self, RecoveryReport, BLOCK_BYTES};
use spate_core::memory_disk::MemoryDisk;
use spate_core::shard::Answer;
use std::collections::{BTreeMap, BTreeSet};

/// `SPATE_FUZZ_STATS=1`: how each API's requests were answered, per target (to see that the
/// generators reach past the decoders).
static STATS: std::sync::Mutex<BTreeMap<(i16, &'static str), u64>> =
    std::sync::Mutex::new(BTreeMap::new());

fn stats_on() -> bool {
    std::env::var_os("SPATE_FUZZ_STATS").is_some()
}

/// Prints and clears the answer counts (tests run in parallel: counts mix across targets).
pub fn print_stats(target: &str) {
    if !stats_on() {
        return;
    }
    let stats = std::mem::take(&mut *STATS.lock().unwrap_or_else(|e| e.into_inner()));
    let mut line = format!("answers by API key after {target}:");
    for ((key, what), n) in stats {
        let name = ApiKey::try_from(key).map_or(format!("key {key}"), |k| format!("{k:?}"));
        line.push_str(&format!(" {name}/{what}={n}"));
    }
    eprintln!("{line}");
}

/// Longer than any wait a request can ask for (`i32::MAX` ms, about 25 days).
const SETTLE_MS_MAX: i64 = 40 * 24 * 60 * 60 * 1000;

/// What the shell knows of a request it handed to the broker.
struct Pending {
    /// The first 8 bytes of the frame: API key, version, correlation id.
    head: Vec<u8>,
    answers: u32,
}

/// What the last JoinGroup response told the member, for the group steps that follow.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    pub member_id: String,
    pub generation_id: i32,
    pub leader: bool,
}

pub struct Shell {
    pub broker: Broker,
    config: Config,
    pub files: BTreeMap<String, Vec<u8>>,
    pub metadata: Option<Vec<u8>>,
    pub now_ms: i64,
    /// Hold I/O commands instead of performing them at once.
    pub hold_io: bool,
    /// Fail this percentage of I/O commands (disk full, EIO).
    pub fail_io_percent: u32,
    held: Vec<IoCommand>,
    rng: Rng,
    conns: BTreeMap<ConnId, Pending>,
    /// Connections the shell closed, or that died with a restart.
    gone: BTreeSet<ConnId>,
    writes_in_flight: BTreeSet<String>,
    syncs_in_flight: BTreeSet<String>,
    metadata_in_flight: bool,
    pub membership: Membership,
    /// Every response frame, by connection (for tests that read answers).
    pub responses: BTreeMap<ConnId, Bytes>,
    /// How each connection's request was answered: "Respond", "NoResponse" or "Close".
    pub answered: BTreeMap<ConnId, &'static str>,
    /// `SPATE_FUZZ_TRACE=1`: print every input and output (for replaying one case).
    trace: bool,
}

impl Shell {
    /// A fresh broker on an empty data directory, its first metadata persisted.
    pub fn new(config: Config, io_seed: u64) -> Shell {
        let mut broker = Broker::new(config.clone());
        broker
            .recover_metadata(None)
            .expect("a fresh data directory");
        let mut shell = Shell {
            broker,
            config,
            files: BTreeMap::new(),
            metadata: None,
            now_ms: 1_700_000_000_000,
            hold_io: false,
            fail_io_percent: 0,
            held: Vec::new(),
            rng: Rng::new(io_seed),
            conns: BTreeMap::new(),
            gone: BTreeSet::new(),
            writes_in_flight: BTreeSet::new(),
            syncs_in_flight: BTreeSet::new(),
            metadata_in_flight: false,
            membership: Membership::default(),
            responses: BTreeMap::new(),
            answered: BTreeMap::new(),
            trace: std::env::var_os("SPATE_FUZZ_TRACE").is_some(),
        };
        shell.drain();
        shell
    }

    /// Hands a frame to the broker on a new connection and performs what comes out.
    pub fn request(&mut self, conn: ConnId, frame: &[u8]) {
        assert!(
            !self.conns.contains_key(&conn) && !self.gone.contains(&conn),
            "harness bug: connection {conn} reused"
        );
        self.conns.insert(
            conn,
            Pending {
                head: frame[..frame.len().min(8)].to_vec(),
                answers: 0,
            },
        );
        if self.trace {
            eprintln!("request on conn {conn}: {frame:02x?}");
        }
        self.broker.handle_connect(conn, "127.0.0.1:50000");
        self.broker
            .handle_request(self.now_ms, conn, Bytes::copy_from_slice(frame));
        self.drain();
    }

    /// Checks an answer the broker did not give, to a request it did not see (the router's
    /// merge of several shards' answers), as it checks the broker's own.
    pub fn check_answer(&mut self, conn: ConnId, request: &[u8], answer: &Answer) {
        self.conns.insert(
            conn,
            Pending {
                head: request[..request.len().min(8)].to_vec(),
                answers: 0,
            },
        );
        match answer {
            Answer::Respond(frame) => self.on_respond(conn, frame),
            Answer::NoResponse => drop(self.on_answer(conn, "NoResponse")),
            Answer::Close => drop(self.on_answer(conn, "Close")),
        }
    }

    pub fn disconnect(&mut self, conn: ConnId) {
        self.broker.handle_disconnect(conn);
        if self.conns.remove(&conn).is_some() {
            self.gone.insert(conn);
        }
        self.drain();
    }

    pub fn advance(&mut self, ms: i64) {
        self.now_ms += ms;
        self.handle_timeout();
    }

    /// The deadlines due now fire, and none is left due: one left due would make a shell fire
    /// its timer again at once, forever (issue 12).
    fn handle_timeout(&mut self) {
        self.broker.handle_timeout(self.now_ms);
        let overdue = self.broker.overdue_deadlines(self.now_ms);
        assert!(
            overdue.is_empty(),
            "deadlines still due after handle_timeout({}): {overdue:?}",
            self.now_ms
        );
        self.drain();
    }

    /// Takes every output, checking it; performs I/O at once unless it is held.
    pub fn drain(&mut self) -> usize {
        let mut count = 0usize;
        while let Some(output) = self.broker.poll_output() {
            if self.trace {
                eprintln!("  out: {output:?}");
            }
            count += 1;
            assert!(
                count < 1_000_000,
                "hang: the broker produced a million outputs for one input"
            );
            match output {
                Output::Respond { conn, frame } => self.on_respond(conn, &frame),
                Output::NoResponse { conn } => {
                    self.on_answer(conn, "NoResponse");
                }
                Output::Close { conn } => {
                    self.on_answer(conn, "Close");
                }
                Output::Io(command) => {
                    self.on_issue(&command);
                    if self.hold_io {
                        self.held.push(command);
                    } else {
                        self.complete(command);
                    }
                }
                Output::Log { message, .. } => {
                    assert!(!message.is_empty(), "an empty log line");
                }
                Output::ToShard { shard, message } => {
                    panic!("a single shard told shard {shard}: {message:?}")
                }
                Output::ToNode { node, .. } => {
                    panic!("a node without a quorum sent a quorum message to node {node}")
                }
                Output::ToBroker { node, .. } => {
                    panic!("a node without a quorum sent a request to broker {node}")
                }
            }
        }
        count
    }

    fn on_answer(&mut self, conn: ConnId, what: &str) -> Option<&Pending> {
        // A connection the shell closed may still get an answer that was queued behind the
        // metadata (the shell drops it); any other connection must have asked.
        if self.gone.contains(&conn) {
            return None;
        }
        let Some(pending) = self.conns.get_mut(&conn) else {
            panic!("{what} for connection {conn}, which sent no request");
        };
        if stats_on() && pending.head.len() >= 2 {
            let key = i16::from_be_bytes([pending.head[0], pending.head[1]]);
            let what: &'static str = match what {
                "Respond" => "Respond",
                "Close" => "Close",
                _ => "NoResponse",
            };
            *STATS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((key, what))
                .or_default() += 1;
        }
        pending.answers += 1;
        self.answered.insert(
            conn,
            match what {
                "Respond" => "Respond",
                "Close" => "Close",
                _ => "NoResponse",
            },
        );
        let pending = self.conns.get(&conn).expect("present");
        assert_eq!(
            pending.answers, 1,
            "a second answer ({what}) for the request on connection {conn}"
        );
        Some(pending)
    }

    fn on_respond(&mut self, conn: ConnId, frame: &Bytes) {
        assert!(
            frame.len() >= 4,
            "a response frame of {} bytes",
            frame.len()
        );
        let prefix = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
        assert_eq!(
            i64::from(prefix),
            frame.len() as i64 - 4,
            "a response's length prefix is not its length"
        );
        assert!(frame.len() >= 8, "a response without a correlation id");
        let Some(pending) = self.on_answer(conn, "Respond") else {
            return;
        };
        let head = pending.head.clone();
        self.responses.insert(conn, frame.clone());
        assert!(
            head.len() >= 8,
            "a response to a frame shorter than a header"
        );
        assert_eq!(
            frame[4..8],
            head[4..8],
            "the response's correlation id is not the request's"
        );
        let api = i16::from_be_bytes([head[0], head[1]]);
        let mut version = i16::from_be_bytes([head[2], head[3]]);
        let Ok(key) = ApiKey::try_from(api) else {
            panic!("a response to unknown API key {api}");
        };
        if key == ApiKey::ApiVersions {
            let (_, max) = supported_versions(key).expect("ApiVersions is served");
            if version > max {
                version = 0; // KIP-511: the fallback answer is in v0
            }
        }
        let mut body = frame.slice(4..);
        if let Err(e) =
            ResponseHeader::decode(&mut body, requests::response_header_version(key, version))
        {
            panic!("{key:?} v{version} response header does not decode: {e}");
        }
        if key == ApiKey::Fetch {
            let mut copy = body.clone();
            if let Ok(response) = FetchResponse::decode(&mut copy, version) {
                for partition in response.responses.iter().flat_map(|t| &t.partitions) {
                    let records = partition.records.as_deref().unwrap_or_default();
                    if let Err(e) = spate_core::batch::validate_all(records) {
                        panic!("a fetch served a record batch that does not validate: {e}");
                    }
                }
            }
        }
        if key == ApiKey::JoinGroup {
            if let Ok(response) = JoinGroupResponse::decode(&mut body.clone(), version) {
                match response.error_code {
                    0 => {
                        self.membership = Membership {
                            leader: response.leader == response.member_id,
                            member_id: response.member_id.to_string(),
                            generation_id: response.generation_id,
                        }
                    }
                    // MEMBER_ID_REQUIRED: join again with this id.
                    79 => self.membership.member_id = response.member_id.to_string(),
                    _ => {}
                }
            }
        }
        match requests::decode_response(key, version, &mut body) {
            Some(Err(e)) => panic!("{key:?} v{version} response does not decode: {e}"),
            Some(Ok(())) => assert_eq!(
                body.remaining(),
                0,
                "{key:?} v{version} response has trailing bytes"
            ),
            None => {}
        }
    }

    /// Checks a command as it is issued: alignment, one write and one sync per file at a time,
    /// one metadata persist at a time, and paths that stay inside the data directory.
    fn on_issue(&mut self, command: &IoCommand) {
        let safe = |dir: &str| {
            !dir.is_empty()
                && !dir.contains('/')
                && !dir.contains('\0')
                && dir != "."
                && dir != ".."
        };
        match &command.op {
            IoOp::Write {
                file,
                position,
                data,
            } => {
                assert!(
                    safe(&file.topic_dir),
                    "unsafe topic dir {:?}",
                    file.topic_dir
                );
                assert_eq!(position % BLOCK_BYTES, 0, "unaligned write position");
                assert_eq!(data.len() as u64 % BLOCK_BYTES, 0, "unaligned write length");
                assert!(!data.is_empty(), "an empty write");
                assert!(
                    self.writes_in_flight.insert(file.relative_path()),
                    "two writes in flight for {}",
                    file.relative_path()
                );
            }
            IoOp::Sync { file } => {
                assert!(
                    self.syncs_in_flight.insert(file.relative_path()),
                    "two syncs in flight for {}",
                    file.relative_path()
                );
            }
            IoOp::SyncDir { dir } => {
                assert!(dir.split('/').all(safe), "a sync of an unsafe dir {dir:?}")
            }
            IoOp::PersistQuorum { .. } => panic!("a node without a quorum wrote a quorum journal"),
            IoOp::Truncate { remove, file, .. } => assert!(
                remove
                    .iter()
                    .chain([&file.relative_path()])
                    .all(|p| p.split('/').all(safe)),
                "a truncation at an unsafe path"
            ),
            IoOp::Read { file, len, .. } => {
                assert!(
                    safe(&file.topic_dir),
                    "unsafe topic dir {:?}",
                    file.topic_dir
                );
                assert!(*len > 0, "an empty read");
            }
            IoOp::PersistMetadata { .. } => {
                assert!(!self.metadata_in_flight, "two metadata persists in flight");
                self.metadata_in_flight = true;
            }
            IoOp::RemoveTopicDir { topic_dir } => {
                assert!(safe(topic_dir), "removal of unsafe dir {topic_dir:?}");
            }
            IoOp::WriteFile { path, .. } => assert!(
                path.split('/').all(safe),
                "a file written at an unsafe path {path:?}"
            ),
            IoOp::RemoveFiles { paths } => {
                for path in paths {
                    assert!(
                        path.split('/').all(safe),
                        "removal of an unsafe path {path:?}"
                    );
                }
            }
            IoOp::WriteCleaned {
                file,
                position,
                data,
            } => {
                assert!(
                    file.cleaned_path().split('/').all(safe),
                    "unsafe cleaned file"
                );
                assert_eq!(position % BLOCK_BYTES, 0, "unaligned write position");
                assert_eq!(data.len() as u64 % BLOCK_BYTES, 0, "unaligned write length");
            }
            IoOp::SyncCleaned { file } => {
                assert!(
                    file.cleaned_path().split('/').all(safe),
                    "unsafe cleaned file"
                )
            }
            IoOp::SwapCleaned { file, remove } => assert!(
                remove
                    .iter()
                    .chain([&file.cleaned_path()])
                    .all(|p| p.split('/').all(safe)),
                "a swap at an unsafe path"
            ),
        }
    }

    fn complete(&mut self, command: IoCommand) {
        let result = self.perform(&command.op);
        if self.trace {
            eprintln!("io done: token {} -> {result:?}", command.token);
        }
        match &command.op {
            IoOp::Write { file, .. } => {
                self.writes_in_flight.remove(&file.relative_path());
            }
            IoOp::Sync { file } => {
                self.syncs_in_flight.remove(&file.relative_path());
            }
            IoOp::PersistMetadata { .. } => self.metadata_in_flight = false,
            _ => {}
        }
        self.broker
            .handle_io_done(self.now_ms, command.token, result);
    }

    /// A write of `data` at `position` of the file at `path` (created as needed), or the
    /// injected failure.
    fn write_at(&mut self, fail: bool, path: String, position: u64, data: &[u8]) -> IoResult {
        if fail {
            return IoResult::Failed("injected: no space left on device".into());
        }
        let bytes = self.files.entry(path).or_default();
        let (at, end) = (position as usize, position as usize + data.len());
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[at..end].copy_from_slice(data);
        IoResult::Done
    }

    fn perform(&mut self, op: &IoOp) -> IoResult {
        let fail = self.fail_io_percent > 0 && self.rng.percent(self.fail_io_percent);
        match op {
            IoOp::Write {
                file,
                position,
                data,
            } => self.write_at(fail, file.relative_path(), *position, data),
            IoOp::Sync { file } => {
                assert!(
                    self.files.contains_key(&file.relative_path()),
                    "a sync of {}, which was never written",
                    file.relative_path()
                );
                if fail {
                    return IoResult::Failed("injected: EIO on fdatasync".into());
                }
                IoResult::Done
            }
            IoOp::PersistQuorum { .. } => unreachable!("refused when issued"),
            IoOp::Truncate { remove, file, len } => {
                for path in remove {
                    self.files.remove(path);
                }
                match self.files.get_mut(&file.relative_path()) {
                    Some(bytes) => {
                        bytes.truncate(*len as usize);
                        IoResult::Done
                    }
                    None => IoResult::Failed(format!("no file {}", file.relative_path())),
                }
            }
            IoOp::SyncDir { dir } => {
                let prefix = format!("{dir}/");
                assert!(
                    self.files.keys().any(|path| path.starts_with(&prefix)),
                    "a sync of {dir}, where no file was written"
                );
                if fail {
                    return IoResult::Failed("injected: EIO on fsync of a directory".into());
                }
                IoResult::Done
            }
            IoOp::Read {
                file,
                position,
                len,
            } => {
                let path = file.relative_path();
                let bytes = self.files.get(&path).map_or(&[][..], Vec::as_slice);
                let end = *position as usize + len;
                assert!(
                    end <= bytes.len(),
                    "a read of {path} at {position}+{len} past its end {}",
                    bytes.len()
                );
                if fail {
                    return IoResult::Failed("injected: EIO on read".into());
                }
                IoResult::Data(Bytes::copy_from_slice(&bytes[*position as usize..end]))
            }
            IoOp::PersistMetadata { data } => {
                if fail {
                    return IoResult::Failed("injected: no space left on device".into());
                }
                self.metadata = Some(data.clone());
                IoResult::Done
            }
            IoOp::RemoveTopicDir { topic_dir } => {
                let prefix = format!("{topic_dir}/");
                self.files.retain(|path, _| !path.starts_with(&prefix));
                IoResult::Done
            }
            IoOp::WriteFile { path, data } => {
                if fail {
                    return IoResult::Failed("injected: no space left on device".into());
                }
                self.files.insert(path.clone(), data.clone());
                IoResult::Done
            }
            IoOp::RemoveFiles { paths } => {
                for path in paths {
                    self.files.remove(path);
                }
                IoResult::Done
            }
            IoOp::WriteCleaned {
                file,
                position,
                data,
            } => self.write_at(fail, file.cleaned_path(), *position, data),
            IoOp::SyncCleaned { file } => {
                assert!(
                    self.files.contains_key(&file.cleaned_path()),
                    "a sync of {}, which was never written",
                    file.cleaned_path()
                );
                IoResult::Done
            }
            IoOp::SwapCleaned { file, remove } => {
                let Some(data) = self.files.remove(&file.cleaned_path()) else {
                    panic!("a swap of {}, which was never written", file.cleaned_path());
                };
                for path in remove {
                    self.files.remove(path);
                }
                self.files.insert(file.segment.relative_path(), data);
                IoResult::Done
            }
        }
    }

    /// Completes up to `n` held commands, picked at random (completion order is the shell's).
    pub fn release(&mut self, n: usize) {
        for _ in 0..n {
            if self.held.is_empty() {
                break;
            }
            let at = self.rng.below(self.held.len());
            let command = self.held.swap_remove(at);
            self.complete(command);
            self.drain();
        }
    }

    /// Completes all I/O without failures and fires due timers until every request is
    /// answered and nothing is left to flush, then checks each request got exactly one answer.
    /// Time moves only to the broker's own deadlines (or by the storage back-off when it has
    /// none), and at most `SETTLE_MS_MAX` of virtual time: a request still unanswered by then
    /// never will be.
    pub fn settle(&mut self) {
        let (hold, fail) = (self.hold_io, self.fail_io_percent);
        self.hold_io = false;
        self.fail_io_percent = 0;
        let start = self.now_ms;
        let mut due_rounds = 0;
        for round in 0.. {
            // (The log cleaner looks for work every 15 s of virtual time: 230,400 rounds in
            // `SETTLE_MS_MAX`.)
            assert!(
                round < 300_000,
                "hang: still not settled after 300000 rounds of I/O and timers"
            );
            self.release(usize::MAX);
            self.drain();
            let done = self.held.is_empty()
                && !self.broker.is_flushing()
                && self.conns.values().all(|p| p.answers > 0);
            match self.broker.poll_timeout() {
                _ if done => break,
                Some(deadline) if deadline <= self.now_ms => {
                    due_rounds += 1;
                    assert!(
                        due_rounds < 1_000,
                        "hang: a deadline at {deadline} stays due at {} however often it fires",
                        self.now_ms
                    );
                }
                Some(deadline) => {
                    due_rounds = 0;
                    self.now_ms = deadline;
                }
                None => self.now_ms += STORAGE_RETRY_MS,
            }
            if self.now_ms - start > SETTLE_MS_MAX {
                let waiting: Vec<String> = self
                    .conns
                    .iter()
                    .filter(|(_, p)| p.answers == 0)
                    .map(|(conn, p)| {
                        let (key, version) = match p.head.get(..4) {
                            Some(h) => (
                                i16::from_be_bytes([h[0], h[1]]),
                                i16::from_be_bytes([h[2], h[3]]),
                            ),
                            None => (-1, -1),
                        };
                        let name = ApiKey::try_from(key)
                            .map_or(format!("key {key}"), |k| format!("{k:?}"));
                        format!("conn {conn} {name} v{version} (head {:02x?})", p.head)
                    })
                    .collect();
                panic!(
                    "not settled after {SETTLE_MS_MAX} ms of virtual time: unanswered: [{}]; \
                     flushing: {}; held I/O: {}",
                    waiting.join(", "),
                    self.broker.is_flushing(),
                    self.held.len()
                );
            }
            if self.trace {
                eprintln!("settle: timeout at {}", self.now_ms);
            }
            self.handle_timeout();
        }
        for (conn, pending) in &self.conns {
            assert_eq!(
                pending.answers, 1,
                "the request on connection {conn} (head {:02x?}) got {} answers once settled",
                pending.head, pending.answers
            );
        }
        self.hold_io = hold;
        self.fail_io_percent = fail;
    }

    /// A crash and restart from what the disk holds (every completed write, synced or not; the
    /// held commands are lost), optionally with garbage written over part of one segment. The
    /// restarted broker gets a new `Config::seed`, as the production shell draws one per start
    /// (`same_seed` keeps it: see the known bug `topic-id-reuse`).
    pub fn restart(&mut self, damage: Option<(usize, usize, Vec<u8>)>, same_seed: bool) {
        if !same_seed {
            self.config.seed = super::rng::mix(self.config.seed, 0x0072_6573_7461_7274);
        }
        self.held.clear();
        self.writes_in_flight.clear();
        self.syncs_in_flight.clear();
        self.metadata_in_flight = false;
        let conns = std::mem::take(&mut self.conns);
        self.gone.extend(conns.into_keys());
        if let Some((which, at, garbage)) = damage {
            // A damaged meta.properties refuses the start, as Kafka's does, naming it; like
            // the metadata file it is not among the files damage may hit.
            let damageable: Vec<String> = self
                .files
                .keys()
                .filter(|path| path.as_str() != spate_core::broker::META_PROPERTIES)
                .cloned()
                .collect();
            if !damageable.is_empty() {
                let path = damageable[which % damageable.len()].clone();
                let file = self.files.get_mut(&path).expect("listed");
                let at = at % (file.len() + 1);
                let end = (at + garbage.len()).min(file.len());
                file[at..end].copy_from_slice(&garbage[..end - at]);
                if at + garbage.len() > end {
                    file.extend_from_slice(&garbage[end - at..]);
                }
            }
        }
        self.boot()
            .expect("the broker reads back the metadata it wrote");
    }

    /// Starts a new broker from the "disk" (metadata and segment files) through the start-up
    /// calls a shell makes, truncating torn tails and removing orphan directories; an error
    /// from `recover_metadata` (a metadata file it refuses) is returned.
    pub fn boot(&mut self) -> Result<(), String> {
        self.responses.clear();
        let mut broker = Broker::new(self.config.clone());
        // Start-up scans segments in pieces: small ones put batches across their edges.
        let chunk = *self
            .rng
            .pick(&[1, 7, 512, 4096, spate_core::broker::SCAN_CHUNK_BYTES]);
        let mut disk = MemoryDisk {
            files: self.files.clone(),
            scan_chunk_bytes: Some(chunk),
        };
        if let Some(metadata) = &self.metadata {
            disk.files.insert(METADATA_FILE.into(), metadata.clone());
        }
        let report = broker.start_up(&mut disk, self.now_ms)?;
        for (file, scan) in &report.scanned {
            let path = file.relative_path();
            let data = self.files.get(&path).cloned().unwrap_or_default();
            check_recovery(&data, scan, file.base_offset);
            let kept = disk.files.get(&path).map_or(0, Vec::len);
            let expected = if scan.needs_truncate() {
                scan.valid_bytes
            } else {
                data.len() as u64
            };
            assert_eq!(kept as u64, expected, "{path} is cut as the report says");
        }
        disk.files.remove(METADATA_FILE);
        self.files = disk.files;
        self.broker = broker;
        self.drain();
        Ok(())
    }
}

/// What a recovery report must say about the bytes it was given.
pub fn check_recovery(data: &[u8], report: &RecoveryReport, base_offset: i64) {
    let valid = report.valid_bytes as usize;
    assert_eq!(report.file_bytes, data.len() as u64, "file_bytes");
    assert!(valid <= data.len(), "valid_bytes past the end of the file");
    let torn = data[valid..]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last as u64 + 1);
    assert_eq!(
        report.torn_bytes, torn,
        "torn_bytes is not the non-zero run after the valid end"
    );
    assert!(
        report.valid_bytes + report.torn_bytes <= report.file_bytes,
        "valid + torn bytes exceed the file"
    );
    if torn == 0 {
        assert!(
            report.stop_reason.is_none(),
            "a stop reason with no torn tail"
        );
    }
    assert_eq!(report.needs_truncate(), data.len() > valid);
    if valid == 0 {
        assert_eq!(report.batches, 0);
        assert_eq!(report.next_offset, base_offset);
        assert_eq!(report.last_batch_position, None);
    } else {
        assert_eq!(
            log::verify_read(&data[..valid], base_offset),
            Ok(report.batches),
            "the kept bytes are not whole batches with dense offsets"
        );
        let last = report.last_batch_position.expect("a last batch") as usize;
        let info = spate_core::batch::validate_stored(&data[last..valid]).expect("the last batch");
        assert_eq!(
            last + info.size_bytes,
            valid,
            "the last batch ends the valid bytes"
        );
        assert_eq!(report.next_offset, info.last_offset() + 1);
    }
}

impl Shell {
    /// The response to the request on `conn`, decoded as `R` at `version`.
    pub fn response<R: Decodable>(&self, conn: ConnId, key: ApiKey, version: i16) -> R {
        let frame = self
            .responses
            .get(&conn)
            .unwrap_or_else(|| panic!("no response on connection {conn}"));
        let mut body = frame.slice(4..);
        ResponseHeader::decode(&mut body, key.response_header_version(version))
            .expect("a response header");
        R::decode(&mut body, version).expect("a response body")
    }
}
