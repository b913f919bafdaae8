//! `spate server`: configuration and start-up. Settings come from defaults, then a Kafka-style
//! properties file (`--config`), then flags, each overriding the one before.

use clap::Args;
use spate_core::broker::Config;
use spate_runtime_io_uring::ServerConfig;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1:9092] (config: listen)
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Data directory [default: ./spate-data] (config: data.dir or log.dirs)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A properties file of `key=value` lines (Kafka's server.properties style): listen (or
    /// listeners), advertised.listener(s), data.dir (or log.dirs), cores, cpu, and Kafka's broker
    /// configs by their names: auto.create.topics.enable, num.partitions, node.id,
    /// log.retention.hours/ms, log.segment.bytes, group.initial.rebalance.delay.ms,
    /// group.min/max.session.timeout.ms, offsets.retention.minutes, ...; plus Spate's memory
    /// bounds tail.cache.bytes (all partitions, default 256 MiB), tail.cache.bytes.per.partition
    /// (4 MiB) and unwritten.bytes.max (64 MiB). Unknown keys are refused
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Any setting of the config file, as KEY=VALUE, over the file (repeatable), e.g.
    /// `--override group.initial.rebalance.delay.ms=0`
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Create unknown topics on Metadata and Produce [default: true] (config: auto.create.topics.enable)
    #[arg(long, value_name = "BOOL")]
    auto_create_topics: Option<bool>,
    /// Partitions of a topic created without a count [default: 1] (config: num.partitions)
    #[arg(long, value_name = "N")]
    num_partitions: Option<i32>,
    /// This broker's id [default: 1] (config: node.id)
    #[arg(long, value_name = "ID")]
    node_id: Option<i32>,
    /// Host:port given to clients in Metadata [default: the listen address] (config: advertised.listener)
    #[arg(long, value_name = "HOST:PORT")]
    advertised_listener: Option<String>,
    /// Shards: one io_uring executor each, pinned to the first N CPUs the process may use
    /// [default: one per such CPU] (config: cores)
    #[arg(long, value_name = "N")]
    cores: Option<usize>,
    /// Run one shard, pinned to this CPU (config: cpu); not with --cores above 1
    #[arg(long, value_name = "CPU")]
    cpu: Option<usize>,
    /// The controller quorum's voters, each with its controller listener, as
    /// `1@HOST:PORT,2@HOST:PORT,3@HOST:PORT`; this node (--node-id) must be one of them
    /// [default: none, a single node that is its own quorum] (config: controller.quorum.voters)
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    controller_quorum: Option<String>,
    /// Where this node takes the quorum's traffic; must be its own entry in --controller-quorum
    /// [default: that entry] (config: controller.listener)
    #[arg(long, value_name = "HOST:PORT")]
    controller_listener: Option<String>,
}

/// The settings after the file and the flags are applied, still as text where they came as text.
struct Settings {
    listen: String,
    data_dir: PathBuf,
    advertised: Option<String>,
    cores: Option<usize>,
    cpu: Option<usize>,
    controller_listener: Option<String>,
    broker: Config,
}

pub fn run(args: ServerArgs) -> Result<(), String> {
    let settings = settings(args)?;
    let listen = resolve(&settings.listen, "--listen")?;
    let mut broker = settings.broker;
    let (host, port) = match &settings.advertised {
        Some(advertised) => split_host_port(advertised, "--advertised-listener")?,
        None => (listen.ip().to_string(), listen.port()),
    };
    broker.advertised_host = host;
    broker.advertised_port = i32::from(port);
    broker.seed = os_seed();
    broker.log_dir = settings.data_dir.display().to_string();
    // What the broker reports as its static configs: where it really listens and stores.
    broker
        .static_configs
        .insert("log.dirs".into(), broker.log_dir.clone());
    broker
        .static_configs
        .insert("listeners".into(), format!("PLAINTEXT://{listen}"));
    let shard_cpus = match (settings.cpu, settings.cores) {
        (Some(_), Some(cores)) if cores > 1 => {
            return Err(format!(
                "--cpu pins a single shard, but --cores asks for {cores}; use one of them"
            ))
        }
        (Some(cpu), _) => vec![Some(cpu)],
        (None, cores) => spate_runtime_io_uring::shard_cpus(cores)?,
    };
    let controller_listen = controller_listener(&broker, settings.controller_listener)?;
    spate_runtime_io_uring::run(ServerConfig {
        listen,
        data_dir: settings.data_dir,
        broker,
        shard_cpus,
        controller_listen,
    })
}

fn settings(args: ServerArgs) -> Result<Settings, String> {
    let mut settings = Settings {
        listen: "127.0.0.1:9092".into(),
        data_dir: PathBuf::from("./spate-data"),
        advertised: None,
        cores: None,
        cpu: None,
        controller_listener: None,
        broker: Config::default(),
    };
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let where_ = format!("{} line {}", path.display(), number + 1);
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("{where_}: expected key=value, got '{line}'"))?;
            apply(&mut settings, key.trim(), value.trim()).map_err(|e| format!("{where_}: {e}"))?;
        }
    }
    for item in &args.overrides {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("--override {item}: expected KEY=VALUE"))?;
        apply(&mut settings, key.trim(), value.trim()).map_err(|e| format!("--override: {e}"))?;
    }
    if let Some(listen) = args.listen {
        settings.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        settings.data_dir = dir;
    }
    if let Some(value) = args.auto_create_topics {
        apply(
            &mut settings,
            "auto.create.topics.enable",
            &value.to_string(),
        )
        .map_err(|e| format!("--auto-create-topics: {e}"))?;
    }
    if let Some(value) = args.num_partitions {
        apply(&mut settings, "num.partitions", &value.to_string())
            .map_err(|e| format!("--num-partitions: {e}"))?;
    }
    if let Some(value) = args.node_id {
        apply(&mut settings, "node.id", &value.to_string())
            .map_err(|e| format!("--node-id: {e}"))?;
    }
    if let Some(value) = args.advertised_listener {
        settings.advertised = Some(value);
    }
    if let Some(cores) = args.cores {
        apply(&mut settings, "cores", &cores.to_string()).map_err(|e| format!("--cores: {e}"))?;
    }
    if args.cpu.is_some() {
        settings.cpu = args.cpu;
    }
    if let Some(voters) = args.controller_quorum {
        apply(&mut settings, "controller.quorum.voters", &voters)
            .map_err(|e| format!("--controller-quorum: {e}"))?;
    }
    if let Some(listener) = args.controller_listener {
        settings.controller_listener = Some(listener);
    }
    Ok(settings)
}

/// Applies one setting from the properties file or a flag; the error names the key and what it
/// expects. Kafka's broker configs go to the core (`Config::set`), which checks them against
/// Kafka's definitions; the rest say where the shell listens, stores and runs.
fn apply(settings: &mut Settings, key: &str, value: &str) -> Result<(), String> {
    fn parse<T: std::str::FromStr>(key: &str, value: &str, expected: &str) -> Result<T, String> {
        value
            .parse()
            .map_err(|_| format!("{key}: expected {expected}, got '{value}'"))
    }
    match key {
        "listen" => settings.listen = value.to_string(),
        "listeners" => {
            settings.listen = value.trim_start_matches("PLAINTEXT://").to_string();
            settings.broker.set(key, value)?;
        }
        "advertised.listener" | "advertised.listeners" => {
            settings.advertised = Some(value.trim_start_matches("PLAINTEXT://").to_string())
        }
        "data.dir" => settings.data_dir = PathBuf::from(value),
        "controller.listener" => settings.controller_listener = Some(value.to_string()),
        "log.dirs" | "log.dir" => {
            settings.data_dir = PathBuf::from(value);
            settings.broker.set(key, value)?;
        }
        "cpu" => settings.cpu = Some(parse(key, value, "a CPU number")?),
        "cores" => {
            let cores: usize = parse(key, value, "a number of shards")?;
            if cores == 0 {
                return Err(format!("{key}: must be at least 1, got 0"));
            }
            settings.cores = Some(cores);
        }
        _ => settings.broker.set(key, value)?,
    }
    Ok(())
}

/// Where this node takes the quorum's traffic: its own entry among the voters, which a given
/// `--controller-listener` must match. None without a quorum, and on a broker-only node (not
/// a voter).
fn controller_listener(
    broker: &Config,
    given: Option<String>,
) -> Result<Option<SocketAddr>, String> {
    let node = broker.node_id;
    if broker.controller_quorum.is_empty() {
        return match given {
            Some(_) => Err("--controller-listener needs --controller-quorum (the voters)".into()),
            None => Ok(None),
        };
    }
    if broker.broker_session_timeout_ms <= broker.broker_heartbeat_interval_ms {
        return Err(format!(
            "broker.session.timeout.ms ({}) must be longer than broker.heartbeat.interval.ms ({}), or brokers are fenced between heartbeats",
            broker.broker_session_timeout_ms, broker.broker_heartbeat_interval_ms
        ));
    }
    let Some((_, own)) = broker.controller_quorum.iter().find(|(id, _)| *id == node) else {
        // A broker-only node: an observer of the quorum, reached over the connections it
        // opens to the voters, so it has no controller listener.
        return match given {
            Some(_) => Err(format!(
                "--controller-listener is for voters; node {node} (--node-id) is not among the controller quorum's voters, so it runs as a broker only"
            )),
            None => Ok(None),
        };
    };
    let own = resolve(own, "--controller-quorum")?;
    if let Some(given) = given {
        let given = resolve(&given, "--controller-listener")?;
        if given != own {
            return Err(format!(
                "--controller-listener {given} is not this node's entry in --controller-quorum ({node}@{own})"
            ));
        }
    }
    Ok(Some(own))
}

fn resolve(address: &str, flag: &str) -> Result<SocketAddr, String> {
    address
        .to_socket_addrs()
        .map_err(|e| format!("{flag} {address}: {e} (expected HOST:PORT, e.g. 127.0.0.1:9092)"))?
        .next()
        .ok_or_else(|| format!("{flag} {address}: no address found"))
}

fn split_host_port(address: &str, flag: &str) -> Result<(String, u16), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("{flag} {address}: expected HOST:PORT"))?;
    let port = port
        .parse()
        .map_err(|_| format!("{flag} {address}: '{port}' is not a port number"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The seed for topic and cluster ids: the only randomness the core gets, drawn here.
fn os_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}
