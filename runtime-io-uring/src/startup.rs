//! Start-up: lock the data directory, and give the core's `Broker::start_up` the directory to
//! read and repair. Runs once before the listener opens, so it uses plain blocking file calls.

use spate_core::broker::StartupDisk;
use std::fs::{self, File, OpenOptions};
use std::path::Path;

const LOCK_FILE: &str = ".lock";

/// Holds an exclusive lock on the data directory for the broker's life: two brokers on one
/// directory would corrupt it.
pub(crate) fn lock_data_dir(data_dir: &Path) -> Result<File, String> {
    fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    lock.try_lock().map_err(|_| {
        format!(
            "data directory {} is in use by another spate server (use --data-dir DIR)",
            data_dir.display()
        )
    })?;
    Ok(lock)
}

/// The data directory as the core's start-up reads and repairs it, with plain blocking calls.
pub(crate) struct DataDir<'a>(pub &'a Path);

fn not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

fn sync_parent(path: &Path) -> Result<(), String> {
    let dir = path.parent().ok_or("a file path has a directory")?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

impl StartupDisk for DataDir<'_> {
    fn read_metadata(&mut self) -> Result<Option<Vec<u8>>, String> {
        self.read_file(spate_core::io::METADATA_FILE)
    }

    fn write_metadata(&mut self, data: &[u8]) -> Result<(), String> {
        crate::files::write_atomically(self.0, spate_core::io::METADATA_FILE, data)
    }

    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let path = self.0.join(path);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn read_at(&mut self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.0.join(path);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut data = Vec::with_capacity(len);
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.take(len as u64).read_to_end(&mut data))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(data)
    }

    fn file_len(&mut self, path: &str) -> Result<Option<u64>, String> {
        let path = self.0.join(path);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(format!("cannot stat {}: {e}", path.display())),
        }
    }

    fn list_files(&mut self, dir: &str) -> Result<Vec<String>, String> {
        let path = self.0.join(dir);
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(format!("cannot list {}: {e}", path.display())),
        };
        Ok(entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect())
    }

    fn truncate_file(&mut self, path: &str, len: u64) -> Result<(), String> {
        let path = self.0.join(path);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()))
            .map_err(|e| format!("cannot truncate {}: {e}", path.display()))
    }

    fn sync_file(&mut self, path: &str) -> Result<(), String> {
        let path = self.0.join(path);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("cannot sync {}: {e}", path.display()))
    }

    fn remove_file(&mut self, path: &str) -> Result<(), String> {
        let path = self.0.join(path);
        match fs::remove_file(&path) {
            Err(e) if !not_found(&e) => Err(format!("cannot remove {}: {e}", path.display())),
            _ => sync_parent(&path),
        }
    }

    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), String> {
        let (from, to) = (self.0.join(from), self.0.join(to));
        fs::rename(&from, &to)
            .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))?;
        sync_parent(&to)
    }

    fn list_dirs(&mut self) -> Result<Vec<String>, String> {
        Ok(fs::read_dir(self.0)
            .map_err(|e| format!("cannot list {}: {e}", self.0.display()))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect())
    }

    fn remove_dir(&mut self, dir: &str) -> Result<(), String> {
        fs::remove_dir_all(self.0.join(dir)).map_err(|e| format!("cannot remove {dir}: {e}"))
    }
}
