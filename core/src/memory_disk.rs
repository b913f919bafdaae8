//! A data directory held in memory, for tests and harnesses that need no crash model: files by
//! path relative to the data directory, the metadata file, and every I/O command performed at
//! once and durably. The simulator keeps its own disk, which models what a crash loses.

use crate::broker::StartupDisk;
use crate::io::{IoOp, IoResult, METADATA_FILE, QUORUM_JOURNAL};
use bytes::Bytes;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct MemoryDisk {
    pub files: BTreeMap<String, Vec<u8>>,
    /// The piece size start-up scans segments in (default: the production size); tests set
    /// it small so batches fall across pieces.
    pub scan_chunk_bytes: Option<usize>,
}

impl MemoryDisk {
    fn write_at(&mut self, path: String, position: u64, data: &[u8]) -> IoResult {
        let bytes = self.files.entry(path).or_default();
        let end = position as usize + data.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[position as usize..end].copy_from_slice(data);
        IoResult::Done
    }

    /// Performs an I/O command the way the production shell would, on the map.
    pub fn perform(&mut self, op: IoOp) -> IoResult {
        match op {
            IoOp::Write {
                file,
                position,
                data,
            } => self.write_at(file.relative_path(), position, &data),
            IoOp::Sync { .. } | IoOp::SyncDir { .. } => IoResult::Done,
            IoOp::PersistQuorum { data, replace } => {
                let journal = self.files.entry(QUORUM_JOURNAL.to_string()).or_default();
                if replace {
                    journal.clear();
                }
                journal.extend_from_slice(&data);
                IoResult::Done
            }
            IoOp::Read {
                file,
                position,
                len,
            } => {
                let path = file.relative_path();
                match self.files.get(&path) {
                    Some(bytes) if bytes.len() >= position as usize + len => IoResult::Data(
                        Bytes::copy_from_slice(&bytes[position as usize..position as usize + len]),
                    ),
                    _ => IoResult::Failed(format!(
                        "{path} ends before byte {}",
                        position as usize + len
                    )),
                }
            }
            IoOp::PersistMetadata { data } => {
                self.files.insert(METADATA_FILE.into(), data);
                IoResult::Done
            }
            IoOp::WriteFile { path, data } => {
                self.files.insert(path, data);
                IoResult::Done
            }
            IoOp::RemoveFiles { paths } => {
                for path in paths {
                    self.files.remove(&path);
                }
                IoResult::Done
            }
            IoOp::Truncate { remove, file, len } => {
                for path in remove {
                    self.files.remove(&path);
                }
                let path = file.relative_path();
                match self.files.get_mut(&path) {
                    Some(bytes) => {
                        bytes.truncate(len as usize);
                        IoResult::Done
                    }
                    None => IoResult::Failed(format!("cannot truncate {path}: no such file")),
                }
            }
            IoOp::WriteCleaned {
                file,
                position,
                data,
            } => self.write_at(file.cleaned_path(), position, &data),
            IoOp::SyncCleaned { .. } => IoResult::Done,
            IoOp::SwapCleaned { file, remove } => {
                let Some(data) = self.files.remove(&file.cleaned_path()) else {
                    return IoResult::Failed(format!("{}: no such file", file.cleaned_path()));
                };
                for path in remove {
                    self.files.remove(&path);
                }
                self.files.insert(file.segment.relative_path(), data);
                IoResult::Done
            }
            IoOp::RemoveTopicDir { topic_dir } => {
                self.files
                    .retain(|path, _| !path.starts_with(&format!("{topic_dir}/")));
                IoResult::Done
            }
        }
    }
}

impl StartupDisk for MemoryDisk {
    fn read_metadata(&mut self) -> Result<Option<Vec<u8>>, String> {
        Ok(self.files.get(METADATA_FILE).cloned())
    }
    fn write_metadata(&mut self, data: &[u8]) -> Result<(), String> {
        self.files.insert(METADATA_FILE.to_string(), data.to_vec());
        Ok(())
    }
    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.files.get(path).cloned())
    }
    fn read_at(&mut self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        Ok(read_range(
            self.files.get(path).map_or(&[], Vec::as_slice),
            offset,
            len,
        ))
    }
    fn scan_chunk_bytes(&self) -> usize {
        self.scan_chunk_bytes
            .unwrap_or(crate::broker::SCAN_CHUNK_BYTES)
    }
    fn file_len(&mut self, path: &str) -> Result<Option<u64>, String> {
        Ok(self.files.get(path).map(|f| f.len() as u64))
    }
    fn list_files(&mut self, dir: &str) -> Result<Vec<String>, String> {
        Ok(files_in(self.files.keys(), dir))
    }
    fn truncate_file(&mut self, path: &str, len: u64) -> Result<(), String> {
        if let Some(bytes) = self.files.get_mut(path) {
            bytes.truncate(len as usize);
        }
        Ok(())
    }
    fn sync_file(&mut self, _path: &str) -> Result<(), String> {
        Ok(())
    }
    fn remove_file(&mut self, path: &str) -> Result<(), String> {
        self.files.remove(path);
        Ok(())
    }
    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), String> {
        let data = self
            .files
            .remove(from)
            .ok_or(format!("{from}: no such file"))?;
        self.files.insert(to.to_string(), data);
        Ok(())
    }
    fn list_dirs(&mut self) -> Result<Vec<String>, String> {
        let mut dirs: Vec<String> = self
            .files
            .keys()
            .filter_map(|p| p.split_once('/').map(|(d, _)| d.to_string()))
            .collect();
        dirs.dedup();
        Ok(dirs)
    }
    fn remove_dir(&mut self, dir: &str) -> Result<(), String> {
        self.files
            .retain(|path, _| !path.starts_with(&format!("{dir}/")));
        Ok(())
    }
}

/// `StartupDisk::read_at` over a file held in memory: up to `len` bytes from `offset`.
pub fn read_range(data: &[u8], offset: u64, len: usize) -> Vec<u8> {
    let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
    data[start..start.saturating_add(len).min(data.len())].to_vec()
}

/// `StartupDisk::list_files` over paths held in memory: the names directly in `dir`.
pub fn files_in<'a>(paths: impl Iterator<Item = &'a String>, dir: &str) -> Vec<String> {
    let prefix = format!("{dir}/");
    paths
        .filter_map(|p| p.strip_prefix(&prefix))
        .filter(|name| !name.contains('/'))
        .map(str::to_string)
        .collect()
}
