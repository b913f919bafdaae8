//! `spate dev-cluster`: a local cluster for newcomers, in one command. Starts N `spate server`
//! processes on 127.0.0.1 (node i: clients on BASE+100*(i-1), its controller listener one port
//! above), each a voter of the controller quorum with its data under one directory, prints
//! where they are, and stops them all (SIGTERM, a controlled shutdown) on Ctrl-C or SIGTERM.
//! If a node exits by itself, the others are stopped and the command fails naming its log.

use clap::Args;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Args)]
pub struct DevClusterArgs {
    /// How many nodes (each a broker and a controller voter).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=5))]
    nodes: u16,
    /// Where the nodes keep their data: DIR/node-N, with each node's log in DIR/node-N.log.
    #[arg(long, default_value = "./spate-cluster")]
    data_dir: PathBuf,
    /// Node 1's client port; node N's is this plus 100*(N-1), its controller port one above.
    #[arg(long, default_value_t = 9092, value_parser = clap::value_parser!(u16).range(1..=65000))]
    base_port: u16,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Node {
    id: u16,
    client: u16,
    controller: u16,
    log: PathBuf,
    child: Child,
}

pub fn run(args: DevClusterArgs) -> Result<(), String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the spate binary to start nodes with: {e}"))?;
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        format!(
            "cannot create the cluster's data directory {}: {e}",
            args.data_dir.display()
        )
    })?;
    let ports: Vec<(u16, u16, u16)> = (1..=args.nodes)
        .map(|id| {
            let client = args.base_port + 100 * (id - 1);
            (id, client, client + 1)
        })
        .collect();
    let quorum: Vec<String> = ports
        .iter()
        .map(|(id, _, controller)| format!("{id}@127.0.0.1:{controller}"))
        .collect();
    let quorum = quorum.join(",");
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let mut nodes = Vec::new();
    for &(id, client, controller) in &ports {
        match start_node(&exe, &args.data_dir, &quorum, id, client, controller) {
            Ok(node) => nodes.push(node),
            Err(error) => {
                stop_all(&mut nodes);
                return Err(error);
            }
        }
    }
    let bootstrap: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.client))
        .collect();
    let mut out = format!(
        "spate dev-cluster: {} node(s), data in {}\n",
        nodes.len(),
        args.data_dir.display()
    );
    for node in &nodes {
        out.push_str(&format!(
            "  node {}: clients 127.0.0.1:{}, controller 127.0.0.1:{}, log {}\n",
            node.id,
            node.client,
            node.controller,
            node.log.display()
        ));
    }
    out.push_str(&format!(
        "bootstrap servers: {}\ntry: spate cluster --bootstrap-server {} describe\nCtrl-C stops the cluster.\n",
        bootstrap.join(","),
        bootstrap[0]
    ));
    crate::cli::print_stdout(out.as_bytes())?;
    let outcome = watch(&mut nodes);
    stop_all(&mut nodes);
    outcome
}

fn start_node(
    exe: &Path,
    data_dir: &Path,
    quorum: &str,
    id: u16,
    client: u16,
    controller: u16,
) -> Result<Node, String> {
    let dir = data_dir.join(format!("node-{id}"));
    let log = data_dir.join(format!("node-{id}.log"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot open node {id}'s log {}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("cannot open node {id}'s log {}: {e}", log.display()))?;
    let child = Command::new(exe)
        .arg("server")
        .args(["--node-id", &id.to_string()])
        .args(["--listen", &format!("127.0.0.1:{client}")])
        .args(["--controller-quorum", quorum])
        .arg("--data-dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start node {id}: {e}"))?;
    Ok(Node {
        id,
        client,
        controller,
        log,
        child,
    })
}

/// Until a signal asks to stop (Ok) or a node exits by itself (an error naming its log).
fn watch(nodes: &mut [Node]) -> Result<(), String> {
    while !STOP.load(Ordering::SeqCst) {
        for node in nodes.iter_mut() {
            if let Ok(Some(status)) = node.child.try_wait() {
                return Err(format!(
                    "node {} exited ({status}); its log is {}",
                    node.id,
                    node.log.display()
                ));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// A controlled shutdown of every node still running, and a wait for each.
fn stop_all(nodes: &mut [Node]) {
    for node in nodes.iter_mut() {
        if let Ok(None) = node.child.try_wait() {
            if let Ok(pid) = i32::try_from(node.child.id()) {
                // SAFETY: kill(2) on our own child's pid.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
    }
    for node in nodes.iter_mut() {
        let _ = node.child.wait();
    }
}
