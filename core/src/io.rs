//! The core's interface to a shell: what leaves the core (outputs and I/O commands, as data) and
//! what comes back (I/O completions).
//!
//! A shell drives a [`crate::broker::Broker`] in this order:
//! 1. `handle_request` for each frame read, `handle_io_done` for each completed command,
//!    `handle_timeout` when the time from `poll_timeout` has come, `handle_disconnect` when a
//!    connection closes;
//! 2. after each of those, `poll_output` until it returns `None`, performing every output.
//!
//! I/O commands for one file are never in flight twice at once (the core waits for a write's
//! completion before the next write or sync of that file), so a shell may run any number of
//! commands concurrently without ordering them.

use bytes::Bytes;

/// A client connection, named by the shell.
pub type ConnId = u64;

/// Names a command so its completion can be matched.
pub type IoToken = u64;

/// A segment file: `<data dir>/<topic_dir>/<partition>/<base offset, 20 digits>.log`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentFile {
    pub topic_dir: String,
    pub partition: i32,
    pub base_offset: i64,
}

impl SegmentFile {
    pub fn relative_path(&self) -> String {
        format!("{}/{:020}.log", self.dir(), self.base_offset)
    }

    /// The segment's index file (see [`crate::segment`]).
    pub fn index_path(&self) -> String {
        format!("{}/{:020}.index", self.dir(), self.base_offset)
    }

    /// The partition's directory.
    pub fn dir(&self) -> String {
        partition_dir(&self.topic_dir, self.partition)
    }
}

pub fn partition_dir(topic_dir: &str, partition: i32) -> String {
    format!("{topic_dir}/{partition}")
}

/// What a file name in a partition directory is: a segment's log or index file, by base offset.
pub fn parse_segment_name(name: &str) -> Option<(i64, bool)> {
    let (stem, is_index) = match name.rsplit_once('.')? {
        (stem, "log") => (stem, false),
        (stem, "index") => (stem, true),
        _ => return None,
    };
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, is_index))
}

/// A cleaning's output (log compaction, see `log/cleaner.rs`): the partition's segments from
/// `segment.base_offset` below `end` cleaned into one file, `<base>-<end>.cleaned` while it is
/// written and `<base>-<end>.swap` once the swap that puts it in their place has committed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CleanedFile {
    pub segment: SegmentFile,
    pub end: i64,
}

impl CleanedFile {
    pub fn cleaned_path(&self) -> String {
        self.path("cleaned")
    }

    pub fn swap_path(&self) -> String {
        self.path("swap")
    }

    fn path(&self, suffix: &str) -> String {
        let base = self.segment.base_offset;
        format!(
            "{}/{base:020}-{:020}.{suffix}",
            self.segment.dir(),
            self.end
        )
    }
}

/// What a file name in a partition directory is, if a cleaning's: (base offset, end, whether
/// it is a committed swap rather than a file being written).
pub fn parse_cleaned_name(name: &str) -> Option<(i64, i64, bool)> {
    let (stem, swap) = match name.rsplit_once('.')? {
        (stem, "cleaned") => (stem, false),
        (stem, "swap") => (stem, true),
        _ => return None,
    };
    let (base, end) = stem.split_once('-')?;
    let number = |s: &str| {
        (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
    };
    Some((number(base)?, number(end)?, swap))
}

/// Where a partition's last cleaning ended (log compaction), in its directory: `cleaned <offset>`.
/// Kafka's `cleaner-offset-checkpoint`, one per partition; written atomically (`WriteFile`).
pub const CLEANER_CHECKPOINT: &str = "cleaner-offset";

/// The metadata file (see [`crate::topics`]), in the data directory.
pub const METADATA_FILE: &str = "metadata";

/// The file a clean shutdown leaves, saying every partition's index files are current.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

/// An I/O operation the shell performs for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoOp {
    /// Write `data` at `position` (both block-aligned, for O_DIRECT), creating the file and its
    /// directories if needed (their names are made durable by a later `SyncDir`).
    Write {
        file: SegmentFile,
        position: u64,
        data: Bytes,
    },
    /// fdatasync the file.
    Sync { file: SegmentFile },
    /// fsync the directory `dir` (relative to the data directory) and every one above it up to
    /// the data directory, so that the files and directories created in them survive a crash.
    /// A new segment's bytes are durable only once its name is.
    SyncDir { dir: String },
    /// Read `len` bytes at `position` (any alignment; the shell widens it for O_DIRECT).
    Read {
        file: SegmentFile,
        position: u64,
        len: usize,
    },
    /// Replace the metadata file atomically and durably (write, fsync, rename, fsync the dir).
    PersistMetadata { data: Vec<u8> },
    /// Remove a topic's directory and everything in it.
    RemoveTopicDir { topic_dir: String },
    /// Replace a small file (an index file, the clean-shutdown mark) atomically and durably, as
    /// `PersistMetadata` does. `path` is relative to the data directory.
    WriteFile { path: String, data: Vec<u8> },
    /// Remove files (a deleted segment's log and index), in order, durably; a missing file is
    /// not an error.
    RemoveFiles { paths: Vec<String> },
    /// Run-time truncation (see `log/truncate.rs`): remove `remove` in order as `RemoveFiles`
    /// does, then cut `file` to `len` bytes and sync it. A crash may stop it after any step.
    Truncate {
        remove: Vec<String>,
        file: SegmentFile,
        len: u64,
    },
    /// Log compaction: write `data` at `position` in a cleaned file, as `Write` does.
    WriteCleaned {
        file: CleanedFile,
        position: u64,
        data: Bytes,
    },
    /// fdatasync a cleaned file.
    SyncCleaned { file: CleanedFile },
    /// Put a cleaned (and synced) file in place of the segments it replaces: rename it to its
    /// swap path and fsync the directory (the commit point), remove `remove` in order, rename
    /// the swap file to the log path of `file.segment`, fsync the directory. A crash may stop
    /// it after any step; start-up finishes a swap that committed.
    SwapCleaned {
        file: CleanedFile,
        remove: Vec<String>,
    },
    /// The controller quorum's journal ([`QUORUM_JOURNAL`]): append `data` and fdatasync, or
    /// (`replace`) replace the whole file with it atomically and durably, as `PersistMetadata`.
    PersistQuorum { data: Vec<u8>, replace: bool },
}

/// The controller quorum's journal, in the data directory: the Raft state this node stored,
/// as records (`raft::codec::encode_persist`), replayed in order at start-up.
pub const QUORUM_JOURNAL: &str = "quorum-journal";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoCommand {
    pub token: IoToken,
    pub op: IoOp,
}

/// How an I/O command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoResult {
    Done,
    /// The bytes of a `Read`.
    Data(Bytes),
    Failed(String),
}

/// Severity of a log line the core asks the shell to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the shell must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this response frame (length prefix included) on the connection.
    Respond {
        conn: ConnId,
        frame: Bytes,
    },
    /// The request on this connection gets no response (acks=0): read the next one.
    NoResponse {
        conn: ConnId,
    },
    /// Close the connection; Kafka closes where it cannot answer.
    Close {
        conn: ConnId,
    },
    Io(IoCommand),
    Log {
        level: Level,
        message: String,
    },
    /// Thread-per-core: hand this to shard `shard`'s broker
    /// ([`crate::broker::Broker::handle_shard_message`]), in order.
    ToShard {
        shard: usize,
        message: ShardMessage,
    },
    /// A controller quorum message for node `node`, as bytes (`raft::codec`): the shell sends
    /// it on its connection to that node's controller listener, or drops it (Raft resends).
    ToNode {
        node: crate::replica::NodeId,
        frame: Vec<u8>,
    },
    /// A Kafka request (length prefix included) for broker `node`'s client listener at
    /// `address` (`host:port`): a follower's fetch. The shell keeps one connection per node
    /// for the shard, opening it as needed, and hands each answer back
    /// (`Broker::handle_broker_response`); a connection that closes or cannot be opened is
    /// told too (`Broker::handle_broker_disconnected`).
    ToBroker {
        node: crate::replica::NodeId,
        address: String,
        frame: Bytes,
    },
}

/// What one shard's broker tells another's (besides requests and their answers, which go
/// through the shard `Router`). Between two shards they arrive in the order they were sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardMessage {
    /// Control shard to the others: metadata version `version` is committed; here are the
    /// controller's records since the last one. Topics, partitions, configs and log start
    /// offsets follow them.
    Metadata {
        version: u64,
        records: Vec<crate::controller::MetadataRecord>,
    },
    /// To the control shard: this shard runs on `version` now.
    MetadataApplied { shard: usize, version: u64 },
    /// To the control shard: DeleteRecords moved a partition's log start here; persist it with
    /// the metadata (the answer waits for a version that has it).
    LogStartMoved {
        topic: crate::topics::TopicId,
        partition: i32,
        offset: i64,
    },
    /// To the control shard: a partition leader's in-sync change for the active controller.
    AlterInSync(crate::controller::quorum::AlterInSyncAsk),
    /// Control shard to the others: the broker is stopping (see `Broker::begin_shutdown`).
    BeginShutdown,
    /// To the control shard: this shard's writes are done and its partitions checkpointed
    /// (`clean`), or some could not be (an offline partition), so the next start must scan.
    ShutDown { shard: usize, clean: bool },
}
