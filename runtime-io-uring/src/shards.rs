//! The channels between shards: one bounded glommio shared channel for each ordered pair of
//! shards, so every shard can reach every other one without locks.
//!
//! Each shard sends through a local, unbounded outbox per peer (the core's output loop cannot
//! wait), and one task per peer moves the outbox into the shared channel, waiting while the
//! peer is behind. Messages between two shards arrive in the order they were sent.

use crate::net::Net;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::net::AcceptedTcpStream;
use spate_core::node::PeerMessage;
use std::rc::Rc;

/// Messages between shards in flight at once, per ordered pair, before the sender waits.
const CHANNEL_CAPACITY: usize = 1024;

/// What one shard tells another.
pub(crate) enum ShardMsg {
    /// A connection accepted on shard 0, for this shard to serve.
    Connection(AcceptedTcpStream),
    /// A connection moved here from another shard (`Router::migration`), idle between requests.
    Moved(std::os::fd::OwnedFd),
    /// What the core of one shard tells another's ([`spate_core::node::NodeOutput::ToShard`]).
    Peer(PeerMessage),
}

/// One shard's ends of the mesh: a sender to every other shard and a receiver from each.
pub(crate) struct Endpoints {
    to: Vec<Option<SharedSender<ShardMsg>>>,
    from: Vec<Option<SharedReceiver<ShardMsg>>>,
}

/// The ends of a full mesh of `shards` shards, indexed by shard.
pub(crate) fn mesh(shards: usize) -> Vec<Endpoints> {
    let mut endpoints: Vec<Endpoints> = (0..shards)
        .map(|_| Endpoints {
            to: (0..shards).map(|_| None).collect(),
            from: (0..shards).map(|_| None).collect(),
        })
        .collect();
    for sender in 0..shards {
        for receiver in (0..shards).filter(|&r| r != sender) {
            let (tx, rx) = shared_channel::new_bounded(CHANNEL_CAPACITY);
            endpoints[sender].to[receiver] = Some(tx);
            endpoints[receiver].from[sender] = Some(rx);
        }
    }
    endpoints
}

impl Endpoints {
    /// Connects the senders, each in its own task that drains a local outbox into it, and
    /// returns the outboxes, indexed by shard (`None` for this shard).
    pub(crate) fn start_senders(&mut self) -> Vec<Option<LocalSender<ShardMsg>>> {
        self.to
            .iter_mut()
            .map(|sender| {
                let sender = sender.take()?;
                let (outbox, pending) = local_channel::new_unbounded();
                glommio::spawn_local(async move {
                    // Connecting waits for the peer to connect its receiver, so every shard
                    // connects all its ends at once, in separate tasks.
                    let sender = sender.connect().await;
                    while let Some(message) = pending.recv().await {
                        if sender.send(message).await.is_err() {
                            break; // the peer's executor has ended: the process is stopping
                        }
                    }
                })
                .detach();
                Some(outbox)
            })
            .collect()
    }

    /// Connects the receivers, each in its own task that hands what arrives to `net`.
    pub(crate) fn start_receivers(&mut self, net: &Rc<Net>) {
        for (from, receiver) in self.from.iter_mut().enumerate() {
            let Some(receiver) = receiver.take() else {
                continue;
            };
            let net = net.clone();
            glommio::spawn_local(async move {
                let receiver = receiver.connect().await;
                while let Some(message) = receiver.recv().await {
                    net.receive(from, message);
                }
            })
            .detach();
        }
    }
}
