//! A node's I/O commands on its simulated disk, as every simulated node performs them: what a
//! command does when it starts (a write lands in the volatile view, a sync is issued), how long
//! it takes, and what it does and reports when it completes.

use crate::client::Micros;
use crate::disk::SimDisk;
use crate::rng::Stream;
use bytes::Bytes;
use spate_core::io::{IoOp, IoResult, QUORUM_JOURNAL};

const NO_SPACE: &str = "No space left on device (os error 28)";

/// What an I/O command does when it completes.
#[derive(Debug)]
pub(crate) enum PendingIo {
    Write {
        path: String,
        id: u64,
    },
    FailedWrite {
        path: String,
        id: Option<u64>,
    },
    Sync {
        id: u64,
    },
    DirSync {
        id: u64,
    },
    Cut {
        path: String,
        len: u64,
    },
    Read {
        path: String,
        position: u64,
        len: usize,
    },
    Metadata,
    FailedMetadata,
    WriteFile {
        path: String,
        data: Vec<u8>,
    },
    FailedFile,
    RemoveFiles {
        paths: Vec<String>,
    },
    RemoveDir {
        dir: String,
    },
    /// A cleaning's swap: renamed to its swap path when it started (the commit); the old
    /// segments removed and the swap file renamed into place when it completes.
    Swap {
        swap: String,
        remove: Vec<String>,
        target: String,
    },
    FailedSwap(String),
    /// An append to the quorum journal, then its fdatasync: durable once done; a crash before
    /// keeps it, tears it or loses it.
    JournalAppend {
        id: u64,
    },
}

/// How long a simulated disk takes: a write, an fsync, a read (each a range, drawn per command).
#[derive(Debug, Clone, Copy)]
pub struct DiskTimes {
    pub write_us: (Micros, Micros),
    pub fsync_us: (Micros, Micros),
    pub read_us: (Micros, Micros),
}

/// Starts `op` on `disk`: what completes it, and after how long. `disk_full`: writes fail.
pub(crate) fn start(
    disk: &mut SimDisk,
    io: &mut Stream,
    faults: &DiskTimes,
    disk_full: bool,
    op: IoOp,
) -> (PendingIo, Micros) {
    let fsync = |io: &mut Stream| io.range(faults.fsync_us.0, faults.fsync_us.1);
    match op {
        IoOp::Write {
            file,
            position,
            data,
        } => {
            let latency = io.range(faults.write_us.0, faults.write_us.1);
            (
                start_write(disk, disk_full, file.relative_path(), position, data),
                latency,
            )
        }
        IoOp::Sync { file } => {
            let id = disk.start_sync(&file.relative_path());
            (PendingIo::Sync { id }, fsync(io))
        }
        IoOp::Truncate { remove, file, len } => {
            // The removals happen at once, the cut on completion: a crash in between leaves
            // the first steps done.
            for path in &remove {
                disk.remove_file(path);
            }
            let path = file.relative_path();
            (PendingIo::Cut { path, len }, fsync(io))
        }
        IoOp::SyncDir { dir } => {
            let id = disk.start_dir_sync(&dir);
            (PendingIo::DirSync { id }, fsync(io))
        }
        IoOp::Read {
            file,
            position,
            len,
        } => {
            let latency = io.range(faults.read_us.0, faults.read_us.1);
            let path = file.relative_path();
            (
                PendingIo::Read {
                    path,
                    position,
                    len,
                },
                latency,
            )
        }
        IoOp::PersistMetadata { data } => {
            let latency = io.range(faults.fsync_us.0, faults.fsync_us.1 * 2);
            if disk_full {
                (PendingIo::FailedMetadata, latency)
            } else {
                disk.start_metadata(data);
                (PendingIo::Metadata, latency)
            }
        }
        IoOp::RemoveTopicDir { topic_dir } => (
            PendingIo::RemoveDir { dir: topic_dir },
            io.range(100, 1_000),
        ),
        IoOp::WriteFile { path, data } => {
            let latency = io.range(faults.fsync_us.0, faults.fsync_us.1 * 2);
            match disk_full {
                true => (PendingIo::FailedFile, latency),
                false => (PendingIo::WriteFile { path, data }, latency),
            }
        }
        IoOp::RemoveFiles { paths } => (PendingIo::RemoveFiles { paths }, io.range(100, 1_000)),
        IoOp::WriteCleaned {
            file,
            position,
            data,
        } => {
            let latency = io.range(faults.write_us.0, faults.write_us.1);
            (
                start_write(disk, disk_full, file.cleaned_path(), position, data),
                latency,
            )
        }
        IoOp::SyncCleaned { file } => {
            let id = disk.start_sync(&file.cleaned_path());
            (PendingIo::Sync { id }, fsync(io))
        }
        IoOp::SwapCleaned { file, remove } => {
            let (cleaned, swap) = (file.cleaned_path(), file.swap_path());
            let pending = match disk.rename(&cleaned, &swap) {
                true => PendingIo::Swap {
                    swap,
                    remove,
                    target: file.segment.relative_path(),
                },
                false => PendingIo::FailedSwap(format!("{cleaned}: no such file")),
            };
            (pending, fsync(io))
        }
        IoOp::PersistQuorum { data, replace } => {
            let latency = io.range(faults.fsync_us.0, faults.fsync_us.1 * 2);
            let path = QUORUM_JOURNAL.to_string();
            match (disk_full, replace) {
                (true, _) => (PendingIo::FailedFile, latency),
                (false, true) => (PendingIo::WriteFile { path, data }, latency),
                (false, false) => {
                    let end = disk.view(&path).len() as u64;
                    let id = disk.start_write(&path, end, Bytes::from(data));
                    (PendingIo::JournalAppend { id }, latency)
                }
            }
        }
    }
}

/// A write landing in the volatile view of the file at `path`, or failing (`disk_full`).
fn start_write(
    disk: &mut SimDisk,
    disk_full: bool,
    path: String,
    position: u64,
    data: Bytes,
) -> PendingIo {
    match disk_full {
        true => PendingIo::FailedWrite { path, id: None },
        false => {
            let id = disk.start_write(&path, position, data);
            PendingIo::Write { path, id }
        }
    }
}

/// Completes `pending` on `disk`: the result the node hears, and whether a read came back
/// with a bit flipped (`bitrot_per_mille` of reads; `None` outside the fault phase).
pub(crate) fn finish(
    disk: &mut SimDisk,
    io: &mut Stream,
    bitrot_per_mille: Option<u64>,
    pending: PendingIo,
) -> (IoResult, bool) {
    let mut flipped = false;
    let result = match pending {
        PendingIo::Write { path, id } => {
            disk.complete_write(&path, id);
            IoResult::Done
        }
        PendingIo::FailedWrite { path, id } => {
            if let Some(id) = id {
                disk.fail_write(&path, id);
            }
            IoResult::Failed(NO_SPACE.into())
        }
        PendingIo::Sync { id } => {
            disk.complete_sync(id);
            IoResult::Done
        }
        PendingIo::Cut { path, len } => match disk.cut(&path, len) {
            true => IoResult::Done,
            false => IoResult::Failed(format!("cannot truncate {path}: no such file")),
        },
        PendingIo::DirSync { id } => {
            disk.complete_dir_sync(id);
            IoResult::Done
        }
        PendingIo::Read {
            path,
            position,
            len,
        } => match disk.read(&path, position, len) {
            Some(mut data) => {
                if bitrot_per_mille.is_some_and(|rate| !data.is_empty() && io.chance(rate)) {
                    let bit = io.range(0, data.len() as u64 * 8 - 1);
                    data[(bit / 8) as usize] ^= 1 << (bit % 8);
                    flipped = true;
                }
                IoResult::Data(Bytes::from(data))
            }
            None => IoResult::Failed(format!("{path}: short read at {position}")),
        },
        PendingIo::Metadata => {
            disk.complete_metadata();
            IoResult::Done
        }
        PendingIo::FailedMetadata => IoResult::Failed(NO_SPACE.into()),
        PendingIo::RemoveDir { dir } => {
            disk.remove_dir(&dir);
            IoResult::Done
        }
        // Written to a temporary file and renamed: durable and whole once done, absent if the
        // node crashed first.
        PendingIo::WriteFile { path, data } => {
            disk.put_file(&path, data);
            IoResult::Done
        }
        PendingIo::FailedFile => IoResult::Failed("no space left on device (simulated)".into()),
        PendingIo::RemoveFiles { paths } => {
            for path in paths {
                disk.remove_file(&path);
            }
            IoResult::Done
        }
        PendingIo::Swap {
            swap,
            remove,
            target,
        } => {
            for path in remove {
                disk.remove_file(&path);
            }
            match disk.rename(&swap, &target) {
                true => IoResult::Done,
                false => IoResult::Failed(format!("{swap}: no such file")),
            }
        }
        PendingIo::FailedSwap(error) => IoResult::Failed(error),
        PendingIo::JournalAppend { id } => {
            disk.complete_write(QUORUM_JOURNAL, id);
            let sync = disk.start_sync(QUORUM_JOURNAL);
            disk.complete_sync(sync);
            IoResult::Done
        }
    };
    (result, flipped)
}
