//! What the numbers were measured on: CPUs, memory, kernel, and the device and file system under
//! the benchmark directory.

use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_bytes: u64,
    pub kernel: String,
    /// The mount holding the benchmark directory: device, mount point, file system type.
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    /// The block device's model, rotational flag and I/O scheduler, where sysfs tells.
    pub disk: String,
}

impl Machine {
    pub fn probe(dir: &Path) -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024);
        let (device, mount_point, fs_type) = mount_of(dir, &read("/proc/mounts"));
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_bytes,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            disk: disk_description(&device),
            device,
            mount_point,
            fs_type,
        }
    }
}

/// The longest mount point that contains `dir`.
fn mount_of(dir: &Path, mounts: &str) -> (String, String, String) {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            dir.starts_with(point)
                .then(|| (device.to_string(), point.to_string(), fs.to_string()))
        })
        .max_by_key(|(_, point, _)| point.len())
        .unwrap_or_else(|| ("?".into(), "?".into(), "?".into()))
}

/// "virtio disk, non-rotational, scheduler mq-deadline" from sysfs, for a /dev/ device.
fn disk_description(device: &str) -> String {
    let Some(name) = device.strip_prefix("/dev/") else {
        return String::new();
    };
    // A partition (vda1, nvme0n1p1) reports through its parent disk.
    let base = Path::new("/sys/class/block").join(name);
    let disk = match std::fs::canonicalize(&base) {
        Ok(path) if path.join("partition").exists() => {
            path.parent().map(|p| p.to_path_buf()).unwrap_or(path)
        }
        Ok(path) => path,
        Err(_) => return String::new(),
    };
    let read = |rel: &str| {
        std::fs::read_to_string(disk.join(rel))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mut parts = Vec::new();
    let model = read("device/model");
    if !model.is_empty() {
        parts.push(model);
    } else if name.starts_with("vd") {
        parts.push("virtio block device".into());
    }
    match read("queue/rotational").as_str() {
        "0" => parts.push("non-rotational".into()),
        "1" => parts.push("rotational (as reported; virtual disks often say so)".into()),
        _ => {}
    }
    match read("queue/io_poll").as_str() {
        "0" => parts.push("no poll queues (io_poll 0)".into()),
        "1" => parts.push("poll queues (io_poll 1)".into()),
        _ => {}
    }
    let scheduler = read("queue/scheduler");
    if let Some(active) = scheduler
        .split_whitespace()
        .find(|s| s.starts_with('['))
        .map(|s| s.trim_matches(['[', ']']))
    {
        parts.push(format!("scheduler {active}"));
    }
    parts.join(", ")
}
