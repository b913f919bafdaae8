//! The controller quorum's traffic between nodes (issue 15), on shard 0: the controller listener
//! takes other nodes' connections, and this node keeps one connection to each voter's listener
//! for what it sends. A frame is a 4-byte big-endian length, then a message as the core encodes
//! it (`spate_core::raft::codec`); the core checks every message it is given.
//!
//! Each connection opens with a hello frame naming the node that opened it. A broker-only node
//! (an observer of the quorum) has no listener: voters answer it over the connection it opened,
//! so a voter routes frames for a node it has no address for to the connection that node's
//! hello came on, and every node reads what comes back on the connections it opened.
//!
//! Raft resends what matters (heartbeats, appends from where a follower is), so a frame for a
//! peer that cannot be reached is dropped rather than queued: a dead peer costs a refused
//! connect a while, not memory.

use crate::{log_line, now_ms, Shell};
use futures_lite::io::WriteHalf;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use spate_core::io::Level;
use spate_core::replica::NodeId;
use std::cell::{Cell, OnceCell, RefCell};
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
/// The first frame on every connection: this tag, then the opening node's id (4 bytes, big
/// endian). No core message starts with it.
const HELLO_TAG: u8 = 0xbb;
/// Connections from broker-only nodes a voter takes, at most.
const BROKER_ONLY_CONNECTIONS_MAX: usize = 256;

/// Per node without a listener: the writer of the connection it opened, and that
/// connection's number.
type Answers = BTreeMap<NodeId, (LocalSender<Vec<u8>>, u64)>;

pub(crate) struct QuorumNet {
    /// A sender to each voter's writer task (which connects to its listener).
    peers: BTreeMap<NodeId, LocalSender<Vec<u8>>>,
    /// Nodes without a listener (broker-only nodes), by the connection their hello came on:
    /// a sender to that connection's writer, and the connection's number.
    answers: RefCell<Answers>,
    connections: Cell<u64>,
    node: NodeId,
    shell: OnceCell<Rc<Shell>>,
}

impl QuorumNet {
    /// Starts a writer task for each other voter (`peers`: id and controller listener);
    /// `node` is this node's id, named in every connection's hello.
    pub(crate) fn start(node: NodeId, peers: &[(NodeId, String)]) -> Rc<QuorumNet> {
        let mut senders = BTreeMap::new();
        let mut receivers = Vec::new();
        for (id, address) in peers {
            let (sender, receiver) = local_channel::new_bounded(QUEUE_FRAMES_MAX);
            senders.insert(*id, sender);
            receivers.push((*id, address.clone(), receiver));
        }
        let net = Rc::new(QuorumNet {
            peers: senders,
            answers: RefCell::new(BTreeMap::new()),
            connections: Cell::new(0),
            node,
            shell: OnceCell::new(),
        });
        for (id, address, receiver) in receivers {
            glommio::spawn_local(write_to_peer(net.clone(), id, address, receiver)).detach();
        }
        net
    }

    pub(crate) fn attach(&self, shell: Rc<Shell>) {
        let _ = self.shell.set(shell);
    }

    /// Queues `frame` for `node`; dropped when its queue is full or it cannot be reached
    /// (Raft resends).
    pub(crate) fn send(&self, node: NodeId, frame: Vec<u8>) {
        if let Some(sender) = self.peers.get(&node) {
            let _ = sender.try_send(frame);
        } else if let Some((sender, _)) = self.answers.borrow().get(&node) {
            let _ = sender.try_send(frame);
        }
    }

    fn hello(&self) -> Vec<u8> {
        let mut frame = vec![HELLO_TAG];
        frame.extend_from_slice(&self.node.to_be_bytes());
        frame
    }
}

fn framed(frame: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + frame.len());
    bytes.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    bytes.extend_from_slice(frame);
    bytes
}

/// Sends what the core has for one voter, connecting (again) as needed; what the voter
/// sends back on the connection goes to the core too.
async fn write_to_peer(
    net: Rc<QuorumNet>,
    id: NodeId,
    address: String,
    frames: LocalReceiver<Vec<u8>>,
) {
    let mut stream: Option<WriteHalf<TcpStream>> = None;
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
                    let (reader, mut writer) = futures_lite::io::split(connected);
                    if writer.write_all(&framed(&net.hello())).await.is_ok() {
                        glommio::spawn_local(read_frames(net.clone(), reader)).detach();
                        stream = Some(writer);
                    }
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
        if open.write_all(&framed(&frame)).await.is_err() {
            let _ = open.close().await;
            stream = None;
        }
    }
}

/// Writes frames for a node over the connection it opened, until it closes.
async fn answer_to(mut writer: WriteHalf<TcpStream>, frames: LocalReceiver<Vec<u8>>) {
    while let Some(frame) = frames.recv().await {
        if writer.write_all(&framed(&frame)).await.is_err() {
            break;
        }
    }
    let _ = writer.close().await;
}

pub(crate) async fn connect(address: &str) -> Result<TcpStream, String> {
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

/// Takes other nodes' connections on the controller listener (a few per voter at most, as a
/// peer reconnects after a failure, and room for broker-only nodes; anything beyond is closed
/// at once).
pub(crate) async fn accept_loop(net: Rc<QuorumNet>, listener: TcpListener) {
    let open = Rc::new(std::cell::Cell::new(0usize));
    let most = 4 * (net.peers.len() + 1) + BROKER_ONLY_CONNECTIONS_MAX;
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

/// A connection a node opened to this one: its hello first (a node this one has no address
/// for is answered over it from now on), then each frame to the core. (`peer` is only for
/// log lines.)
async fn read_from_peer(net: Rc<QuorumNet>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let peer = peer_of(&stream);
    let (mut reader, writer) = futures_lite::io::split(stream);
    let hello = match read_frame(&mut reader).await {
        Ok(Some(frame)) => frame,
        Ok(None) => return,
        Err(problem) => {
            return log_line(
                Level::Warn,
                &format!("controller listener: {peer} {problem}; closing"),
            )
        }
    };
    let Some(node) = parse_hello(&hello) else {
        // A peer from before hellos (a rolling upgrade): its frames are read as they come,
        // and it is answered over its own listener, as then.
        if let Some(shell) = net.shell.get() {
            shell.on_quorum_frame(now_ms(), &hello);
        }
        return read_frames(net.clone(), reader).await;
    };
    let number = net.connections.get() + 1;
    net.connections.set(number);
    if !net.peers.contains_key(&node) && node != net.node {
        let (sender, receiver) = local_channel::new_bounded(QUEUE_FRAMES_MAX);
        glommio::spawn_local(answer_to(writer, receiver)).detach();
        net.answers.borrow_mut().insert(node, (sender, number));
    }
    read_frames(net.clone(), reader).await;
    let mut answers = net.answers.borrow_mut();
    if answers.get(&node).is_some_and(|(_, n)| *n == number) {
        answers.remove(&node);
    }
}

/// Hands each frame read to the core, until the connection closes or sends a frame too big.
async fn read_frames<R: AsyncRead + Unpin>(net: Rc<QuorumNet>, mut reader: R) {
    loop {
        match read_frame(&mut reader).await {
            Ok(Some(frame)) => {
                if let Some(shell) = net.shell.get() {
                    shell.on_quorum_frame(now_ms(), &frame);
                }
            }
            Ok(None) => break,
            Err(problem) => {
                log_line(
                    Level::Warn,
                    &format!("controller quorum: a peer {problem}; closing"),
                );
                break;
            }
        }
    }
}

/// The next frame, `None` at the end of the stream.
async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Vec<u8>>, String> {
    let mut size = [0u8; 4];
    if reader.read_exact(&mut size).await.is_err() {
        return Ok(None);
    }
    let size = u32::from_be_bytes(size) as usize;
    if size > FRAME_BYTES_MAX {
        return Err(format!("sent a {size}-byte frame"));
    }
    // Grown as bytes arrive: a length alone reserves nothing.
    let mut frame = Vec::new();
    match reader.take(size as u64).read_to_end(&mut frame).await {
        Ok(read) if read == size => Ok(Some(frame)),
        _ => Ok(None),
    }
}

fn parse_hello(frame: &[u8]) -> Option<NodeId> {
    match frame {
        [HELLO_TAG, id @ ..] => Some(NodeId::from_be_bytes(id.try_into().ok()?)),
        _ => None,
    }
}

/// The peer's address, for a log line.
fn peer_of(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}
