//! A shard's connections to other brokers' client listeners (issue 16): what its followers
//! fetch from their leaders. One connection per node, opened when the core first sends to it
//! and again after it closes; each frame the core hands over is a whole Kafka request (length
//! prefix included), and each answer read goes back to the core without its prefix.
//!
//! The core keeps at most one request in flight per node and times it out itself, so this
//! shell queues little and decides nothing: a connection that cannot be opened, or that
//! closes, is reported (`handle_broker_disconnected`) and the core backs off before it sends
//! again.

use crate::{log_line, Shell};
use bytes::Bytes;
use futures_lite::io::WriteHalf;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use spate_core::io::Level;
use spate_core::replica::NodeId;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};

/// Largest answer taken from a broker: a fetch answer is bounded by
/// `replica.fetch.response.max.bytes`, but its first batch may be larger.
const FRAME_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Requests waiting for a connection beyond this are dropped (the core resends).
const QUEUE_FRAMES_MAX: usize = 16;

struct Peer {
    address: String,
    sender: LocalSender<Bytes>,
}

#[derive(Default)]
pub(crate) struct BrokerNet {
    peers: RefCell<BTreeMap<NodeId, Peer>>,
    shell: OnceCell<Weak<Shell>>,
}

impl BrokerNet {
    pub(crate) fn attach(&self, shell: &Rc<Shell>) {
        let _ = self.shell.set(Rc::downgrade(shell));
    }

    /// Queues a request for node `node` at `address`, connecting as needed; a node that moved
    /// to another address gets a new connection.
    pub(crate) fn send(self: &Rc<Self>, node: NodeId, address: String, frame: Bytes) {
        let mut peers = self.peers.borrow_mut();
        let stale = peers.get(&node).is_some_and(|p| p.address != address);
        if stale {
            peers.remove(&node); // its writer ends once its channel closes
        }
        let peer = peers.entry(node).or_insert_with(|| {
            let (sender, receiver) = local_channel::new_bounded(QUEUE_FRAMES_MAX);
            let net = self.clone();
            let task = write_to(net, node, address.clone(), receiver);
            glommio::spawn_local(task).detach();
            Peer { address, sender }
        });
        if peer.sender.try_send(frame).is_err() {
            drop(peers);
            self.disconnected(node);
        }
    }

    fn disconnected(&self, node: NodeId) {
        if let Some(shell) = self.shell.get().and_then(Weak::upgrade) {
            crate::spawn_later(async move { shell.on_broker_disconnected(node) });
        }
    }

    fn answered(&self, node: NodeId, frame: Bytes) {
        if let Some(shell) = self.shell.get().and_then(Weak::upgrade) {
            shell.on_broker_response(node, frame);
        }
    }
}

/// Writes the core's requests for one node, connecting (again) whenever the connection is
/// down; a reader task hands the answers back.
async fn write_to(net: Rc<BrokerNet>, node: NodeId, address: String, frames: LocalReceiver<Bytes>) {
    let mut stream: Option<(WriteHalf<TcpStream>, Rc<Cell<bool>>)> = None;
    let mut warned = false;
    while let Some(frame) = frames.recv().await {
        if stream.as_ref().is_some_and(|(_, closed)| closed.get()) {
            stream = None;
        }
        if stream.is_none() {
            match crate::quorum_net::connect(&address).await {
                Ok(connected) => {
                    if warned {
                        log_line(
                            Level::Info,
                            &format!("replication: reached node {node} at {address}"),
                        );
                    }
                    warned = false;
                    let (reader, writer) = futures_lite::io::split(connected);
                    let closed = Rc::new(Cell::new(false));
                    let task = read_answers(net.clone(), node, reader, closed.clone());
                    glommio::spawn_local(task).detach();
                    stream = Some((writer, closed));
                }
                Err(error) => {
                    if !warned {
                        log_line(
                            Level::Warn,
                            &format!("replication: cannot reach node {node} at {address}: {error}; retrying"),
                        );
                        warned = true;
                    }
                    net.disconnected(node);
                    continue;
                }
            }
        }
        let Some((writer, _)) = stream.as_mut() else {
            continue;
        };
        if writer.write_all(&frame).await.is_err() {
            let _ = writer.close().await;
            stream = None;
            net.disconnected(node);
        }
    }
    if let Some((mut writer, _)) = stream {
        let _ = writer.close().await;
    }
}

/// Hands each answer read to the core, until the connection closes (which is reported).
async fn read_answers<R: AsyncRead + Unpin>(
    net: Rc<BrokerNet>,
    node: NodeId,
    mut reader: R,
    closed: Rc<Cell<bool>>,
) {
    loop {
        let mut size = [0u8; 4];
        if reader.read_exact(&mut size).await.is_err() {
            break;
        }
        let size = u32::from_be_bytes(size) as usize;
        if size > FRAME_BYTES_MAX {
            log_line(
                Level::Warn,
                &format!("replication: node {node} sent a {size}-byte answer; closing"),
            );
            break;
        }
        let mut frame = Vec::new();
        match (&mut reader)
            .take(size as u64)
            .read_to_end(&mut frame)
            .await
        {
            Ok(read) if read == size => net.answered(node, Bytes::from(frame)),
            _ => break,
        }
    }
    closed.set(true);
    net.disconnected(node);
}
