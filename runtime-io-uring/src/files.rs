//! Files: segment files opened with O_DIRECT through glommio's `DmaFile` (io_uring), and the
//! metadata file and directory removals, which are rare and go to a blocking thread.

use glommio::io::{DmaFile, OpenOptions};
use spate_core::io::{IoOp, IoResult, SegmentFile};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Largest single direct read: glommio can hang on reads above the device's `max_sectors_kb`
/// (its issue #635), so reads go in chunks no larger than this.
const READ_CHUNK_BYTES: usize = 128 * 1024;

pub(crate) struct Files {
    data_dir: PathBuf,
    open: RefCell<BTreeMap<PathBuf, Rc<DmaFile>>>,
}

impl Files {
    pub(crate) fn new(data_dir: PathBuf) -> Self {
        Files {
            data_dir,
            open: RefCell::new(BTreeMap::new()),
        }
    }

    /// Lets glommio decide, once per process and device, whether the data directory's disk takes
    /// polled I/O, by opening a file that holds data before any segment. glommio probes with
    /// the first `DmaFile` it opens on a device; an empty file (a new segment) answers the probe
    /// without reaching the device, so a disk without poll queues (`queue/io_poll` 0, as virtio
    /// disks) is taken as pollable, and every later direct read then fails with EOPNOTSUPP.
    /// Every shard primes its own executor, with its own file.
    pub(crate) async fn prime_poll_probe(&self, shard: usize) -> Result<(), String> {
        let probe = self.data_dir.join(format!(".io-probe-{shard}"));
        std::fs::write(&probe, vec![0x5a; spate_core::log::BLOCK_BYTES as usize])
            .map_err(|e| format!("cannot write {}: {e}", probe.display()))?;
        let file = OpenOptions::new()
            .read(true)
            .dma_open(&probe)
            .await
            .map_err(|e| format!("cannot open {} with O_DIRECT: {e}", probe.display()))?;
        let _ = file.close().await;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    pub(crate) async fn perform(&self, op: IoOp) -> IoResult {
        let outcome = match op {
            IoOp::Write {
                file,
                position,
                data,
            } => self.write(&file, position, &data).await,
            IoOp::Sync { file } => self.sync(&file).await,
            IoOp::SyncDir { dir } => self.sync_dir(&dir).await,
            IoOp::Read {
                file,
                position,
                len,
            } => return self.read(&file, position, len).await,
            IoOp::PersistMetadata { data } => self.persist_metadata(data).await,
            IoOp::RemoveTopicDir { topic_dir } => self.remove_dir(&topic_dir).await,
            IoOp::WriteFile { path, data } => self.write_file(path, data).await,
            IoOp::RemoveFiles { paths } => self.remove_files(paths).await,
            IoOp::Truncate { remove, file, len } => self.truncate(remove, &file, len).await,
            IoOp::PersistQuorum { data, replace } => self.persist_quorum(data, replace).await,
            IoOp::WriteCleaned {
                file,
                position,
                data,
            } => self.write_at(&file.cleaned_path(), position, &data).await,
            IoOp::SyncCleaned { file } => self.sync_at(&file.cleaned_path()).await,
            IoOp::SwapCleaned { file, remove } => self.swap_cleaned(&file, remove).await,
        };
        match outcome {
            Ok(()) => IoResult::Done,
            Err(error) => IoResult::Failed(error),
        }
    }

    async fn file(&self, segment: &SegmentFile) -> Result<Rc<DmaFile>, String> {
        self.file_at(&segment.relative_path()).await
    }

    /// The file at `relative` (to the data directory), opened with O_DIRECT (and created) once
    /// and kept open.
    async fn file_at(&self, relative: &str) -> Result<Rc<DmaFile>, String> {
        let path = self.data_dir.join(relative);
        if let Some(file) = self.open.borrow().get(&path) {
            return Ok(file.clone());
        }
        // A new file's name is made durable by the core's `SyncDir` before its data counts.
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let file = Rc::new(file);
        self.open.borrow_mut().insert(path, file.clone());
        Ok(file)
    }

    async fn write(&self, segment: &SegmentFile, position: u64, data: &[u8]) -> Result<(), String> {
        self.write_at(&segment.relative_path(), position, data)
            .await
    }

    async fn write_at(&self, relative: &str, position: u64, data: &[u8]) -> Result<(), String> {
        let file = self.file_at(relative).await?;
        let mut buffer = file.alloc_dma_buffer(data.len());
        buffer.as_bytes_mut().copy_from_slice(data);
        let written = file.write_at(buffer, position).await.map_err(|e| {
            format!(
                "write of {} bytes at {position} in {} failed: {e}",
                data.len(),
                relative
            )
        })?;
        if written != data.len() {
            return Err(format!(
                "short write in {}: {written} of {} bytes",
                relative,
                data.len()
            ));
        }
        Ok(())
    }

    async fn sync(&self, segment: &SegmentFile) -> Result<(), String> {
        self.sync_at(&segment.relative_path()).await
    }

    async fn sync_at(&self, relative: &str) -> Result<(), String> {
        let file = self.file_at(relative).await?;
        file.fdatasync()
            .await
            .map_err(|e| format!("fdatasync of {relative} failed: {e}"))
    }

    /// A cleaning's swap (see `IoOp::SwapCleaned`): every file it renames or removes is
    /// closed first, so later reads open the new files.
    async fn swap_cleaned(
        &self,
        file: &spate_core::io::CleanedFile,
        remove: Vec<String>,
    ) -> Result<(), String> {
        let cleaned = self.data_dir.join(file.cleaned_path());
        let swap = self.data_dir.join(file.swap_path());
        let target = self.data_dir.join(file.segment.relative_path());
        let mut closed: Vec<PathBuf> = remove.iter().map(|p| self.data_dir.join(p)).collect();
        closed.extend([cleaned.clone(), target.clone()]);
        self.open
            .borrow_mut()
            .retain(|path, _| !closed.contains(path));
        let removed: Vec<PathBuf> = remove.iter().map(|p| self.data_dir.join(p)).collect();
        glommio::executor()
            .spawn_blocking(move || {
                let dir = target.parent().ok_or("a segment has a directory")?;
                let rename = |from: &Path, to: &Path| {
                    std::fs::rename(from, to).map_err(|e| {
                        format!("cannot rename {} to {}: {e}", from.display(), to.display())
                    })
                };
                let sync_dir = || {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
                };
                rename(&cleaned, &swap)?;
                sync_dir()?;
                for path in &removed {
                    match std::fs::remove_file(path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(format!("cannot remove {}: {e}", path.display()))
                        }
                        _ => {}
                    }
                }
                rename(&swap, &target)?;
                sync_dir()
            })
            .await
    }

    /// Syncs `dir` and the directories above it up to the data directory (once per new
    /// segment, so off the ring, on the blocking pool).
    async fn sync_dir(&self, dir: &str) -> Result<(), String> {
        let data_dir = self.data_dir.clone();
        let dir = data_dir.join(dir);
        glommio::executor()
            .spawn_blocking(move || sync_dirs(&data_dir, &dir))
            .await
    }

    async fn read(&self, segment: &SegmentFile, position: u64, len: usize) -> IoResult {
        let file = match self.file(segment).await {
            Ok(file) => file,
            Err(error) => return IoResult::Failed(error),
        };
        let mut out = bytes::BytesMut::with_capacity(len);
        while out.len() < len {
            let at = position + out.len() as u64;
            let chunk = (len - out.len()).min(READ_CHUNK_BYTES);
            match file.read_at(at, chunk).await {
                Ok(read) if read.is_empty() => {
                    return IoResult::Failed(format!(
                        "{} ends before byte {at}",
                        segment.relative_path()
                    ))
                }
                Ok(read) => out.extend_from_slice(&read),
                Err(e) => {
                    return IoResult::Failed(format!(
                        "read of {chunk} bytes at {at} in {} failed: {e}",
                        segment.relative_path()
                    ))
                }
            }
        }
        IoResult::Data(out.freeze())
    }

    async fn persist_metadata(&self, data: Vec<u8>) -> Result<(), String> {
        let dir = self.data_dir.clone();
        glommio::executor()
            .spawn_blocking(move || write_atomically(&dir, spate_core::io::METADATA_FILE, &data))
            .await
    }

    /// The controller quorum's journal: appended and synced, or replaced whole.
    async fn persist_quorum(&self, data: Vec<u8>, replace: bool) -> Result<(), String> {
        let dir = self.data_dir.clone();
        glommio::executor()
            .spawn_blocking(move || {
                let name = spate_core::io::QUORUM_JOURNAL;
                if replace {
                    return write_atomically(&dir, name, &data);
                }
                use std::io::Write;
                let path = dir.join(name);
                let fail = |what: &str, e: std::io::Error| {
                    format!("cannot {what} {}: {e}", path.display())
                };
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| fail("open", e))?;
                file.write_all(&data).map_err(|e| fail("append to", e))?;
                file.sync_data().map_err(|e| fail("sync", e))
            })
            .await
    }

    async fn write_file(&self, path: String, data: Vec<u8>) -> Result<(), String> {
        let target = self.data_dir.join(&path);
        glommio::executor()
            .spawn_blocking(move || {
                let dir = target.parent().ok_or("a file path has a directory")?;
                let name = target
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or("a file path has a name")?;
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                write_atomically(dir, name, &data)
            })
            .await
    }

    async fn remove_files(&self, paths: Vec<String>) -> Result<(), String> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| self.data_dir.join(p)).collect();
        self.open
            .borrow_mut()
            .retain(|file, _| !paths.contains(file));
        glommio::executor()
            .spawn_blocking(move || {
                for path in &paths {
                    match std::fs::remove_file(path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(format!("cannot remove {}: {e}", path.display()))
                        }
                        _ => {}
                    }
                }
                let dirs: std::collections::BTreeSet<&Path> =
                    paths.iter().filter_map(|p| p.parent()).collect();
                for dir in dirs {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
                }
                Ok(())
            })
            .await
    }

    /// Run-time truncation: the later segments' files go (in order), then the segment is cut
    /// and synced.
    async fn truncate(
        &self,
        remove: Vec<String>,
        file: &SegmentFile,
        len: u64,
    ) -> Result<(), String> {
        self.remove_files(remove).await?;
        let path = self.data_dir.join(file.relative_path());
        glommio::executor()
            .spawn_blocking(move || {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()))
                    .map_err(|e| format!("cannot truncate {} to {len}: {e}", path.display()))
            })
            .await
    }

    async fn remove_dir(&self, topic_dir: &str) -> Result<(), String> {
        let path = self.data_dir.join(topic_dir);
        self.open
            .borrow_mut()
            .retain(|file, _| !file.starts_with(&path));
        glommio::executor()
            .spawn_blocking(move || match std::fs::remove_dir_all(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot remove {}: {e}", path.display()))
                }
                _ => Ok(()),
            })
            .await
    }
}

/// Syncs `dir` and every directory above it up to and including `data_dir`.
fn sync_dirs(data_dir: &Path, dir: &Path) -> Result<(), String> {
    let mut dir = Some(dir);
    while let Some(d) = dir {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", d.display()))?;
        if d == data_dir {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Replaces `dir/name` so that a crash leaves either the old or the new content: write a
/// temporary file, sync it, rename it over, sync the directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", target.display());
    let mut file = std::fs::File::create(&tmp).map_err(|e| fail("create temporary file for", e))?;
    file.write_all(data).map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("sync", e))?;
    std::fs::rename(&tmp, &target).map_err(|e| fail("rename into place", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("sync the directory of", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn segment(base_offset: i64) -> SegmentFile {
        SegmentFile {
            topic_dir: "t.00".into(),
            partition: 0,
            base_offset,
        }
    }

    /// Writes create segment files, `SyncDir` syncs their directories, and `Truncate` removes
    /// the later files in order and cuts the segment, on a real data directory.
    #[test]
    fn truncation_removes_later_segments_and_cuts_the_file() {
        let dir = std::env::temp_dir().join(format!("spate-files-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data_dir = dir.clone();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let files = Files::new(data_dir.clone());
                for base in [0, 10] {
                    let write = IoOp::Write {
                        file: segment(base),
                        position: 0,
                        data: Bytes::from(vec![7u8; 4096]),
                    };
                    assert_eq!(files.perform(write).await, IoResult::Done);
                }
                let sync = IoOp::SyncDir {
                    dir: "t.00/0".into(),
                };
                assert_eq!(files.perform(sync).await, IoResult::Done);
                let truncate = IoOp::Truncate {
                    remove: vec![segment(10).relative_path(), segment(10).index_path()],
                    file: segment(0),
                    len: 100,
                };
                assert_eq!(files.perform(truncate).await, IoResult::Done);
                let cut = data_dir.join(segment(0).relative_path());
                assert_eq!(std::fs::metadata(&cut).unwrap().len(), 100);
                assert!(!data_dir.join(segment(10).relative_path()).exists());
                let missing = IoOp::Truncate {
                    remove: Vec::new(),
                    file: segment(20),
                    len: 0,
                };
                match files.perform(missing).await {
                    IoResult::Failed(error) => assert!(error.contains("cannot truncate")),
                    other => panic!("truncating a missing file: {other:?}"),
                }
            })
            .unwrap()
            .join()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
