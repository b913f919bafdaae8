//! Start-up: lock the data directory, read what the disk kept and hand it to the core, and carry
//! out what recovery decided (truncate torn tails, remove orphaned directories). Runs once before
//! the listener opens, so it uses plain blocking file calls.

use crate::log_line;
use spate_core::broker::Broker;
use spate_core::io::Level;
use std::fs::{self, File, OpenOptions};
use std::path::Path;

pub(crate) const METADATA_FILE: &str = "metadata";
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

pub(crate) fn recover(broker: &mut Broker, data_dir: &Path) -> Result<(), String> {
    let metadata_path = data_dir.join(METADATA_FILE);
    let metadata = match fs::read(&metadata_path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", metadata_path.display())),
    };
    let to_load = broker
        .recover_metadata(metadata.as_deref())
        .map_err(|e| format!("{}: {e}", metadata_path.display()))?;
    for segment in &to_load {
        let path = data_dir.join(segment.relative_path());
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read segment {}: {e}", path.display())),
        };
        let report = broker.recover_partition(segment, &data);
        if report.needs_truncate() {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            file.set_len(report.valid_bytes)
                .map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
            file.sync_all()
                .map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
        } else if !data.is_empty() {
            // Writes that reached the file before a crash may not be durable yet: sync before
            // counting them as flushed.
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
        }
    }
    let found: Vec<String> = fs::read_dir(data_dir)
        .map_err(|e| format!("cannot list {}: {e}", data_dir.display()))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    for orphan in broker.orphan_dirs(&found) {
        log_line(
            Level::Info,
            &format!("removing directory of a deleted topic: {orphan}"),
        );
        fs::remove_dir_all(data_dir.join(&orphan))
            .map_err(|e| format!("cannot remove {orphan}: {e}"))?;
    }
    Ok(())
}
