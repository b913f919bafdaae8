//! The controller quorum's traffic between nodes (issue 15), on shard 0: the controller listener
//! takes other voters' connections, and this node keeps one connection to each other voter's
//! listener for what it sends. A frame is a 4-byte big-endian length, then a message as the
//! core encodes it (`spate_core::raft::codec`); the core checks every message it is given.
//!
//! Raft resends what matters (heartbeats, appends from where a follower is), so a frame for a
//! peer that cannot be reached is dropped rather than queued: a dead peer costs a refused
//! connect a while, not memory.

use crate::{log_line, now_ms, Shell};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use spate_core::io::Level;
use spate_core::replica::NodeId;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Largest quorum frame taken from a peer (a snapshot of the metadata image travels whole).
const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How long a connect may take, and how long after a failed one the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_AFTER: Duration = Duration::from_millis(200);
/// Frames waiting for a peer's connection beyond this are dropped.
const QUEUE_FRAMES_MAX: usize = 1024;

pub(crate) struct QuorumNet {
    /// A sender to each other voter's writer task.
    peers: BTreeMap<NodeId, LocalSender<Vec<u8>>>,
    shell: OnceCell<Rc<Shell>>,
}

impl QuorumNet {
    /// Starts a writer task for each other voter (`peers`: id and controller listener).
    pub(crate) fn start(peers: &[(NodeId, String)]) -> Rc<QuorumNet> {
        let mut senders = BTreeMap::new();
        for (id, address) in peers {
            let (sender, receiver) = local_channel::new_bounded(QUEUE_FRAMES_MAX);
            senders.insert(*id, sender);
            glommio::spawn_local(write_to_peer(*id, address.clone(), receiver)).detach();
        }
        Rc::new(QuorumNet {
            peers: senders,
            shell: OnceCell::new(),
        })
    }

    pub(crate) fn attach(&self, shell: Rc<Shell>) {
        let _ = self.shell.set(shell);
    }

    /// Queues `frame` for `node`; dropped when its queue is full (Raft resends).
    pub(crate) fn send(&self, node: NodeId, frame: Vec<u8>) {
        if let Some(sender) = self.peers.get(&node) {
            let _ = sender.try_send(frame);
        }
    }
}

/// Sends what the core has for one peer, connecting (again) as needed.
async fn write_to_peer(id: NodeId, address: String, frames: local_channel::LocalReceiver<Vec<u8>>) {
    let mut stream: Option<TcpStream> = None;
    let mut retry_at = std::time::Instant::now();
    let mut warned = false;
    while let Some(frame) = frames.recv().await {
        if stream.is_none() && std::time::Instant::now() >= retry_at {
            match connect(&address).await {
                Ok(connected) => {
                    if warned {
                        log_line(
                            Level::Info,
                            &format!("controller quorum: reached node {id} at {address}"),
                        );
                    }
                    warned = false;
                    stream = Some(connected);
                }
                Err(error) => {
                    if !warned {
                        log_line(
                            Level::Warn,
                            &format!("controller quorum: cannot reach node {id} at {address}: {error}; retrying"),
                        );
                        warned = true;
                    }
                    retry_at = std::time::Instant::now() + RECONNECT_AFTER;
                }
            }
        }
        let Some(open) = stream.as_mut() else {
            continue; // dropped: Raft resends
        };
        let mut bytes = Vec::with_capacity(4 + frame.len());
        bytes.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&frame);
        if open.write_all(&bytes).await.is_err() {
            stream = None;
        }
    }
}

async fn connect(address: &str) -> Result<TcpStream, String> {
    use std::net::ToSocketAddrs;
    // A name lookup may block: not on the shard's thread.
    let name = address.to_string();
    let resolved = glommio::executor()
        .spawn_blocking(move || name.to_socket_addrs().map(|mut a| a.next()))
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no address")?;
    let stream = TcpStream::connect_timeout(resolved, CONNECT_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Takes other voters' connections on the controller listener (a few per voter at most: a
/// peer reconnects after a failure; anything beyond is closed at once).
pub(crate) async fn accept_loop(net: Rc<QuorumNet>, listener: TcpListener) {
    let open = Rc::new(std::cell::Cell::new(0usize));
    let most = 4 * (net.peers.len() + 1);
    loop {
        match listener.accept().await {
            Ok(mut stream) if open.get() >= most => {
                let peer = peer_of(&stream);
                log_line(
                    Level::Warn,
                    &format!(
                        "controller listener: {most} connections open; closing one from {peer}"
                    ),
                );
                let _ = stream.close().await;
            }
            Ok(stream) => {
                open.set(open.get() + 1);
                let (net, open) = (net.clone(), open.clone());
                glommio::spawn_local(async move {
                    read_from_peer(net, stream).await;
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Err(error) => {
                log_line(
                    Level::Error,
                    &format!("controller listener: accept failed: {error}"),
                );
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Hands each frame a peer sends to the core, until the peer closes or sends a frame too big.
async fn read_from_peer(net: Rc<QuorumNet>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    loop {
        let mut size = [0u8; 4];
        if stream.read_exact(&mut size).await.is_err() {
            break;
        }
        let size = u32::from_be_bytes(size) as usize;
        if size > FRAME_BYTES_MAX {
            let peer = peer_of(&stream);
            log_line(
                Level::Warn,
                &format!("controller listener: {peer} sent a {size}-byte frame; closing"),
            );
            break;
        }
        // Grown as bytes arrive: a length alone reserves nothing.
        let mut frame = Vec::new();
        match (&mut stream)
            .take(size as u64)
            .read_to_end(&mut frame)
            .await
        {
            Ok(read) if read == size => {}
            _ => break,
        }
        if let Some(shell) = net.shell.get() {
            shell.on_quorum_frame(now_ms(), &frame);
        }
    }
    let _ = stream.close().await;
}

/// The peer's address, for a log line.
fn peer_of(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}
