//! `ShardNode`: one shard of a node, as both shells run it: its broker (the partitions it owns;
//! on the control shard also topics, groups and configs), the router of the connections it
//! serves, and what it tells the other shards. A shell only moves its outputs: answers to its
//! connections, messages to other shards (in order per pair of shards), I/O to perform, log
//! lines; and its inputs back in. So production and the simulator run the same composition:
//! requests split across shards, answers gathered at the connection's home shard, woken
//! fetches, and connections that move to the shard their requests go to.
//!
//! A connection's home is the shard that serves its socket: its id modulo the shard count
//! ([`home_shard`]), so any shard knows where an answer goes. Call order for a shell, as for
//! the broker (`io.rs`): an input (`handle_*`), then every output (`poll_output`) until none,
//! then arm a timer for `poll_timeout`; between two requests of a connection, ask
//! `poll_migration` whether it should move.

use crate::broker::Broker;
use crate::io::{ConnId, IoCommand, IoResult, IoToken, Level, Output, ShardMessage};
use crate::shard::{Answer, Routed, Router, CONTROL_SHARD};
use bytes::Bytes;
use std::collections::VecDeque;

/// What one shard tells another besides its broker's own messages: the traffic of the
/// connections whose requests span shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    /// To the control shard: a connection opened from `peer` (group members are described
    /// with their host).
    Connect { conn: ConnId, peer: String },
    /// To the owning shard: a request (or its part) for its partitions.
    Request { conn: ConnId, frame: Bytes },
    /// To the connection's home shard: what shard `from` answered.
    Answer {
        conn: ConnId,
        from: usize,
        answer: Answer,
    },
    /// To a shard holding part of a split Fetch: answer it now.
    Wake { conn: ConnId },
    /// To every other shard: the connection closed.
    Disconnect { conn: ConnId },
    /// One broker to another ([`Output::ToShard`]).
    Core(ShardMessage),
}

/// What a shard node asks its shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOutput {
    /// What one of this shard's connections hears: a response frame (length prefix
    /// included), nothing (acks=0), or the connection closes.
    ToConnection {
        conn: ConnId,
        answer: Answer,
    },
    /// A message for another shard; between two shards they must arrive in order.
    ToShard {
        shard: usize,
        message: PeerMessage,
    },
    Io(IoCommand),
    Log {
        level: Level,
        message: String,
    },
    /// A controller quorum message for another node (only from the control shard).
    ToNode {
        node: crate::replica::NodeId,
        frame: Vec<u8>,
    },
    /// A Kafka request for another node's client listener (a follower's fetch), on this
    /// shard's connection to it (see [`Output::ToBroker`]).
    ToBroker {
        node: crate::replica::NodeId,
        address: String,
        frame: Bytes,
    },
}

/// The shard that serves a connection's socket.
pub fn home_shard(conn: ConnId, shards: usize) -> usize {
    (conn % shards.max(1) as u64) as usize
}

pub struct ShardNode {
    shard: usize,
    shards: usize,
    broker: Broker,
    router: Router,
    outputs: VecDeque<NodeOutput>,
    now_ms: i64,
}

impl ShardNode {
    /// The node of the shard `broker` was started for (`Config::shard` of `Config::shards`).
    pub fn new(broker: Broker) -> ShardNode {
        let (shard, shards) = (broker.shard(), broker.shards());
        let mut router = Router::new(shards);
        if broker.planted_bug() == Some(crate::broker::PlantedBug::MislabelSplitFetch) {
            router.plant_mislabelled_fetches();
        }
        let mut node = ShardNode {
            shard,
            shards,
            broker,
            router,
            outputs: VecDeque::new(),
            now_ms: 0,
        };
        node.pump();
        node
    }

    // ---- getters ----

    pub fn shard(&self) -> usize {
        self.shard
    }
    pub fn broker(&self) -> &Broker {
        &self.broker
    }
    pub fn poll_timeout(&self) -> Option<i64> {
        self.broker.poll_timeout()
    }
    pub fn overdue_deadlines(&self, now_ms: i64) -> Vec<&'static str> {
        self.broker.overdue_deadlines(now_ms)
    }
    pub fn is_flushing(&self) -> bool {
        self.broker.is_flushing()
    }

    // ---- inputs ----

    /// One of this shard's connections opened, from `peer` (an address as the shell writes
    /// it).
    pub fn handle_connection_opened(&mut self, conn: ConnId, peer: &str) {
        self.assert_home(conn);
        match self.shard {
            CONTROL_SHARD => self.broker.handle_connect(conn, peer),
            _ => self.send(
                CONTROL_SHARD,
                PeerMessage::Connect {
                    conn,
                    peer: peer.to_string(),
                },
            ),
        }
        self.pump();
    }

    /// A request frame (without its length prefix) read on one of this shard's connections.
    /// The shell hands a connection's next request only once this one is answered.
    pub fn handle_request(&mut self, now_ms: i64, conn: ConnId, frame: Bytes) {
        self.assert_home(conn);
        self.now_ms = self.now_ms.max(now_ms);
        let routed = self.router.route(conn, frame);
        self.forward(conn, routed);
        self.pump();
    }

    /// One of this shard's connections closed (or moved away): its waiting requests are
    /// dropped, here and on every shard.
    pub fn handle_connection_closed(&mut self, conn: ConnId) {
        self.assert_home(conn);
        self.router.forget(conn);
        self.broker.handle_disconnect(conn);
        let here = self.shard;
        for shard in (0..self.shards).filter(|&s| s != here) {
            self.send(shard, PeerMessage::Disconnect { conn });
        }
        self.pump();
    }

    /// What another shard sent this one.
    /// A controller quorum message another node sent (control shard only).
    pub fn handle_quorum_frame(&mut self, now_ms: i64, frame: &[u8]) {
        self.now_ms = self.now_ms.max(now_ms);
        self.broker.handle_quorum_frame(self.now_ms, frame);
        self.pump();
    }

    /// An answer from another node on this shard's connection to it (see
    /// [`NodeOutput::ToBroker`]), without its length prefix.
    pub fn handle_broker_response(
        &mut self,
        now_ms: i64,
        node: crate::replica::NodeId,
        frame: Bytes,
    ) {
        self.now_ms = self.now_ms.max(now_ms);
        self.broker.handle_broker_response(self.now_ms, node, frame);
        self.pump();
    }

    /// This shard's connection to another node closed, or could not be opened.
    pub fn handle_broker_disconnected(&mut self, now_ms: i64, node: crate::replica::NodeId) {
        self.now_ms = self.now_ms.max(now_ms);
        self.broker.handle_broker_disconnected(self.now_ms, node);
        self.pump();
    }

    pub fn handle_peer_message(&mut self, now_ms: i64, from: usize, message: PeerMessage) {
        assert_ne!(from, self.shard, "a shard told itself {message:?}");
        self.now_ms = self.now_ms.max(now_ms);
        match message {
            PeerMessage::Connect { conn, peer } => self.broker.handle_connect(conn, &peer),
            PeerMessage::Request { conn, frame } => {
                self.broker.handle_request(self.now_ms, conn, frame)
            }
            PeerMessage::Answer { conn, from, answer } => self.on_answer(conn, from, answer),
            PeerMessage::Wake { conn } => self.broker.wake_fetch(self.now_ms, conn),
            PeerMessage::Disconnect { conn } => self.broker.handle_disconnect(conn),
            PeerMessage::Core(message) => self.broker.handle_shard_message(self.now_ms, message),
        }
        self.pump();
    }

    pub fn handle_io_done(&mut self, now_ms: i64, token: IoToken, result: IoResult) {
        self.now_ms = self.now_ms.max(now_ms);
        self.broker.handle_io_done(now_ms, token, result);
        self.pump();
    }

    /// The time from `poll_timeout` has come.
    pub fn handle_timeout(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.broker.handle_timeout(now_ms);
        self.pump();
    }

    /// Starts a clean shutdown (see [`Broker::begin_shutdown`]); on the control shard it
    /// reaches every shard.
    pub fn begin_shutdown(&mut self) {
        self.broker.begin_shutdown();
        self.pump();
    }

    // ---- outputs ----

    pub fn poll_output(&mut self) -> Option<NodeOutput> {
        self.outputs.pop_front()
    }

    /// Between two requests of one of this shard's connections: the shard it should move
    /// to, its last partition requests all having gone there (`Router::migration`). The
    /// shell then closes it here (`handle_connection_closed`) and opens it there under an id
    /// of that shard.
    pub fn poll_migration(&mut self, conn: ConnId) -> Option<usize> {
        self.router.migration(conn, self.shard)
    }

    // ---- the composition ----

    fn assert_home(&self, conn: ConnId) {
        assert_eq!(
            home_shard(conn, self.shards),
            self.shard,
            "connection {conn} is not served by shard {}",
            self.shard
        );
    }

    fn send(&mut self, shard: usize, message: PeerMessage) {
        self.outputs
            .push_back(NodeOutput::ToShard { shard, message });
    }

    /// Moves the broker's outputs out: its answers go to the router of the connection's home
    /// shard (this one's, or over a message).
    fn pump(&mut self) {
        while let Some(output) = self.broker.poll_output() {
            match output {
                Output::Respond { conn, frame } => self.answer(conn, Answer::Respond(frame)),
                Output::NoResponse { conn } => self.answer(conn, Answer::NoResponse),
                Output::Close { conn } => self.answer(conn, Answer::Close),
                Output::Io(command) => self.outputs.push_back(NodeOutput::Io(command)),
                Output::Log { level, message } => {
                    self.outputs.push_back(NodeOutput::Log { level, message })
                }
                Output::ToShard { shard, message } => self.send(shard, PeerMessage::Core(message)),
                Output::ToNode { node, frame } => {
                    self.outputs.push_back(NodeOutput::ToNode { node, frame })
                }
                Output::ToBroker {
                    node,
                    address,
                    frame,
                } => self.outputs.push_back(NodeOutput::ToBroker {
                    node,
                    address,
                    frame,
                }),
            }
        }
    }

    /// This shard's broker answered a request of `conn`.
    fn answer(&mut self, conn: ConnId, answer: Answer) {
        let home = home_shard(conn, self.shards);
        if home == self.shard {
            return self.on_answer(conn, self.shard, answer);
        }
        let from = self.shard;
        self.send(home, PeerMessage::Answer { conn, from, answer });
    }

    /// A shard's answer to a request of one of this shard's connections.
    fn on_answer(&mut self, conn: ConnId, from: usize, answer: Answer) {
        let routed = self.router.on_answer(conn, from, answer);
        self.forward(conn, routed);
    }

    /// Sends a request's parts to their shards, wakes fetches, or answers the connection.
    fn forward(&mut self, conn: ConnId, routed: Routed) {
        for (shard, frame) in routed.to {
            match shard == self.shard {
                true => self.broker.handle_request(self.now_ms, conn, frame),
                false => self.send(shard, PeerMessage::Request { conn, frame }),
            }
        }
        for shard in routed.wake {
            match shard == self.shard {
                true => self.broker.wake_fetch(self.now_ms, conn),
                false => self.send(shard, PeerMessage::Wake { conn }),
            }
        }
        if let Some(answer) = routed.answer {
            self.outputs
                .push_back(NodeOutput::ToConnection { conn, answer });
        }
    }
}
