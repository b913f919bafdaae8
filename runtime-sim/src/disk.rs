//! A simulated disk that outlives the node: writes land in a volatile view at once and become
//! durable only when a sync issued after them completes. A crash keeps each unsynced write
//! whole, torn at a sector boundary, or not at all, by chance, in any combination, as a real
//! disk with a volatile cache may. A file a write created keeps its name through a crash only
//! once a sync of its directory issued after its creation completed; without one, a crash
//! loses it whole, synced bytes and all, or not, by chance.

use crate::rng::Stream;
use bytes::Bytes;
use spate_core::broker::StartupDisk;
use spate_core::memory_disk;
use std::collections::BTreeMap;

/// Granularity at which a torn write is cut.
const SECTOR_BYTES: usize = 512;
pub const METADATA_PATH: &str = "metadata";

#[derive(Debug, Clone)]
struct PendingWrite {
    id: u64,
    position: usize,
    data: Bytes,
    completed: bool,
}

#[derive(Debug, Clone)]
struct SimFile {
    durable: Vec<u8>,
    pending: Vec<PendingWrite>,
    /// Whether its name (its directory entry) is durable.
    named: bool,
}

fn apply(target: &mut Vec<u8>, position: usize, data: &[u8]) {
    let end = position + data.len();
    if target.len() < end {
        target.resize(end, 0);
    }
    target[position..end].copy_from_slice(data);
}

/// What a crash did, for the run's summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct CrashDamage {
    pub writes_kept: u64,
    pub writes_torn: u64,
    pub writes_lost: u64,
    pub files_lost: u64,
}

#[derive(Debug, Default)]
pub struct SimDisk {
    files: BTreeMap<String, SimFile>,
    metadata_durable: Option<Vec<u8>>,
    metadata_pending: Option<Vec<u8>>,
    next_write: u64,
    /// Syncs in flight: the writes each will make durable.
    syncs: BTreeMap<u64, (String, Vec<u64>)>,
    /// Directory syncs in flight: the files each will name durably.
    dir_syncs: BTreeMap<u64, Vec<String>>,
}

impl SimDisk {
    /// Starts a write; it is visible (but not durable) once `complete_write` is called.
    pub fn start_write(&mut self, path: &str, position: u64, data: Bytes) -> u64 {
        let id = self.next_write;
        self.next_write += 1;
        let file = self.files.entry(path.to_string()).or_insert(SimFile {
            durable: Vec::new(),
            pending: Vec::new(),
            named: false,
        });
        file.pending.push(PendingWrite {
            id,
            position: position as usize,
            data,
            completed: false,
        });
        id
    }

    pub fn complete_write(&mut self, path: &str, id: u64) {
        if let Some(write) = self
            .files
            .get_mut(path)
            .and_then(|f| f.pending.iter_mut().find(|w| w.id == id))
        {
            write.completed = true;
        }
    }

    /// Abandons a write that failed (disk full): it never reaches the media.
    pub fn fail_write(&mut self, path: &str, id: u64) {
        if let Some(file) = self.files.get_mut(path) {
            file.pending.retain(|w| w.id != id);
        }
    }

    /// Starts a sync: it covers the writes completed by now.
    pub fn start_sync(&mut self, path: &str) -> u64 {
        let id = self.next_write;
        self.next_write += 1;
        let covered = self
            .files
            .get(path)
            .map(|f| {
                f.pending
                    .iter()
                    .filter(|w| w.completed)
                    .map(|w| w.id)
                    .collect()
            })
            .unwrap_or_default();
        self.syncs.insert(id, (path.to_string(), covered));
        id
    }

    pub fn complete_sync(&mut self, id: u64) {
        let Some((path, covered)) = self.syncs.remove(&id) else {
            return;
        };
        let Some(file) = self.files.get_mut(&path) else {
            return;
        };
        let (durable, rest): (Vec<_>, Vec<_>) = file
            .pending
            .drain(..)
            .partition(|w| covered.contains(&w.id));
        file.pending = rest;
        for write in durable {
            apply(&mut file.durable, write.position, &write.data);
        }
    }

    /// Starts a sync of directory `dir`: it names durably the files created in it (or below)
    /// by now.
    pub fn start_dir_sync(&mut self, dir: &str) -> u64 {
        let id = self.next_write;
        self.next_write += 1;
        let prefix = format!("{dir}/");
        let covered = self
            .files
            .iter()
            .filter(|(path, file)| !file.named && path.starts_with(&prefix))
            .map(|(path, _)| path.clone())
            .collect();
        self.dir_syncs.insert(id, covered);
        id
    }

    pub fn complete_dir_sync(&mut self, id: u64) {
        for path in self.dir_syncs.remove(&id).unwrap_or_default() {
            if let Some(file) = self.files.get_mut(&path) {
                file.named = true;
            }
        }
    }

    /// What a reader sees now: durable bytes with completed writes on top.
    pub fn view(&self, path: &str) -> Vec<u8> {
        let Some(file) = self.files.get(path) else {
            return Vec::new();
        };
        let mut bytes = file.durable.clone();
        for write in file.pending.iter().filter(|w| w.completed) {
            apply(&mut bytes, write.position, &write.data);
        }
        bytes
    }

    pub fn read(&self, path: &str, position: u64, len: usize) -> Option<Vec<u8>> {
        let view = self.view(path);
        let start = position as usize;
        view.get(start..start + len).map(<[u8]>::to_vec)
    }

    /// Durable bytes only: what a restarted node finds.
    pub fn durable(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(|f| f.durable.as_slice())
    }

    /// Cut a file at run time and sync it: what was written becomes durable, then the file
    /// ends at `len`.
    pub fn cut(&mut self, path: &str, len: u64) -> bool {
        let Some(file) = self.files.get_mut(path) else {
            return false;
        };
        for write in file.pending.drain(..) {
            if write.completed {
                apply(&mut file.durable, write.position, &write.data);
            }
        }
        file.durable.truncate(len as usize);
        true
    }

    pub fn truncate(&mut self, path: &str, len: u64) {
        if let Some(file) = self.files.get_mut(path) {
            file.durable.truncate(len as usize);
        }
    }

    pub fn start_metadata(&mut self, data: Vec<u8>) {
        self.metadata_pending = Some(data);
    }

    /// The rename made the new metadata durable.
    pub fn complete_metadata(&mut self) {
        if let Some(data) = self.metadata_pending.take() {
            self.metadata_durable = Some(data);
        }
    }

    pub fn metadata(&self) -> Option<&[u8]> {
        self.metadata_durable.as_deref()
    }

    /// A whole file made durable at once (written to a temporary file, synced, renamed).
    pub fn put_file(&mut self, path: &str, data: Vec<u8>) {
        self.files.insert(
            path.to_string(),
            SimFile {
                durable: data,
                pending: Vec::new(),
                named: true,
            },
        );
    }

    pub fn remove_file(&mut self, path: &str) {
        self.files.remove(path);
    }

    /// Renames a file over `to` and syncs the directory: the new name is durable, the old one
    /// gone. Returns false when there is no such file.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        let Some(mut file) = self.files.remove(from) else {
            return false;
        };
        file.named = true;
        self.files.insert(to.to_string(), file);
        true
    }

    pub fn remove_dir(&mut self, dir: &str) {
        let prefix = format!("{dir}/");
        self.files.retain(|path, _| !path.starts_with(&prefix));
    }

    /// Top-level directories holding files.
    pub fn dirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = self
            .files
            .keys()
            .filter_map(|p| p.split_once('/').map(|(d, _)| d.to_string()))
            .collect();
        dirs.dedup();
        dirs
    }

    /// Power loss: every unsynced write is kept, torn or lost by chance; syncs in flight are lost.
    pub fn crash(&mut self, rng: &mut Stream) -> CrashDamage {
        let mut damage = CrashDamage::default();
        // A file whose name was never synced is gone, or made it to the disk anyway (what a
        // restart finds is on the disk).
        self.files.retain(|_, file| {
            let kept = file.named || rng.chance(500);
            file.named = true;
            damage.files_lost += u64::from(!kept);
            kept
        });
        for file in self.files.values_mut() {
            for write in file.pending.drain(..) {
                match rng.next_u64() % 10 {
                    0..=2 => {
                        apply(&mut file.durable, write.position, &write.data);
                        damage.writes_kept += 1;
                    }
                    3..=4 => {
                        let sectors = write.data.len().div_ceil(SECTOR_BYTES);
                        let kept = (rng.next_u64() as usize % sectors.max(1)) * SECTOR_BYTES;
                        apply(
                            &mut file.durable,
                            write.position,
                            &write.data[..kept.min(write.data.len())],
                        );
                        damage.writes_torn += 1;
                    }
                    _ => damage.writes_lost += 1,
                }
            }
        }
        self.syncs.clear();
        self.dir_syncs.clear();
        // The metadata is replaced by rename: a crash leaves the old or the new file, whole.
        if let Some(data) = self.metadata_pending.take() {
            if rng.chance(500) {
                self.metadata_durable = Some(data);
            }
        }
        damage
    }
}

/// A restarted node sees only durable bytes; the simulated disk has nothing unsynced then, so
/// a sync at start-up has nothing to do.
impl StartupDisk for SimDisk {
    fn read_metadata(&mut self) -> Result<Option<Vec<u8>>, String> {
        Ok(self.metadata().map(<[u8]>::to_vec))
    }

    fn write_metadata(&mut self, data: &[u8]) -> Result<(), String> {
        self.start_metadata(data.to_vec());
        self.complete_metadata();
        Ok(())
    }

    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.durable(path).map(<[u8]>::to_vec))
    }

    fn read_at(&mut self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        Ok(memory_disk::read_range(
            self.durable(path).unwrap_or_default(),
            offset,
            len,
        ))
    }

    /// Small pieces, so that batches fall across them in the simulator's scans.
    fn scan_chunk_bytes(&self) -> usize {
        8 * 1024
    }

    fn file_len(&mut self, path: &str) -> Result<Option<u64>, String> {
        Ok(self.durable(path).map(|d| d.len() as u64))
    }

    fn list_files(&mut self, dir: &str) -> Result<Vec<String>, String> {
        Ok(memory_disk::files_in(self.files.keys(), dir))
    }

    fn truncate_file(&mut self, path: &str, len: u64) -> Result<(), String> {
        self.truncate(path, len);
        Ok(())
    }

    fn sync_file(&mut self, _path: &str) -> Result<(), String> {
        Ok(())
    }

    fn remove_file(&mut self, path: &str) -> Result<(), String> {
        SimDisk::remove_file(self, path);
        Ok(())
    }

    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), String> {
        match self.rename(from, to) {
            true => Ok(()),
            false => Err(format!("{from}: no such file")),
        }
    }
    fn list_dirs(&mut self) -> Result<Vec<String>, String> {
        Ok(self.dirs())
    }

    fn remove_dir(&mut self, dir: &str) -> Result<(), String> {
        SimDisk::remove_dir(self, dir);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_synced_writes_are_sure_to_survive_a_crash() {
        let mut disk = SimDisk::default();
        let w1 = disk.start_write("d/f", 0, Bytes::from_static(b"aaaa"));
        disk.complete_write("d/f", w1);
        let sync = disk.start_sync("d/f");
        let name = disk.start_dir_sync("d");
        let w2 = disk.start_write("d/f", 4, Bytes::from_static(b"bbbb"));
        disk.complete_write("d/f", w2);
        disk.complete_sync(sync);
        disk.complete_dir_sync(name);
        assert_eq!(disk.view("d/f"), b"aaaabbbb");
        assert_eq!(disk.durable("d/f").unwrap(), b"aaaa");
        let mut lost = 0;
        for seed in 0..50 {
            let mut copy = SimDisk {
                files: disk.files.clone(),
                ..SimDisk::default()
            };
            copy.crash(&mut Stream::derive(seed, "disk"));
            let durable = copy.durable("d/f").expect("a named file survives");
            assert_eq!(&durable[..4], b"aaaa", "the synced write always survives");
            lost += usize::from(durable.len() == 4);
        }
        assert!(lost > 0, "an unsynced write is sometimes lost");
    }

    #[test]
    fn a_file_whose_directory_was_never_synced_may_vanish_in_a_crash() {
        let mut disk = SimDisk::default();
        let write = disk.start_write("d/f", 0, Bytes::from_static(b"aaaa"));
        disk.complete_write("d/f", write);
        let sync = disk.start_sync("d/f");
        disk.complete_sync(sync);
        let mut vanished = 0;
        let mut kept = 0;
        for seed in 0..50 {
            let mut copy = SimDisk {
                files: disk.files.clone(),
                ..SimDisk::default()
            };
            let damage = copy.crash(&mut Stream::derive(seed, "disk"));
            match copy.durable("d/f") {
                None => {
                    vanished += 1;
                    assert_eq!(damage.files_lost, 1);
                }
                Some(durable) => {
                    kept += 1;
                    assert_eq!(durable, b"aaaa", "a file that stays keeps its synced bytes");
                }
            }
        }
        assert!(vanished > 0 && kept > 0, "vanished {vanished}, kept {kept}");
    }
}
