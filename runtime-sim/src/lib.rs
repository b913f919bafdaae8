//! The simulated shell: one thread, virtual time, one seed. It drives the same `spate-core`
//! broker as production, with simulated clients speaking the Kafka protocol, a simulated network
//! (latency, loss, partitions) and a simulated disk (latency, crash loses unsynced writes, torn
//! writes, bit rot on read, full disk), and crashes and restarts the node.
//!
//! A run has three phases: faults (everything may go wrong), quiet (faults stop, the node is up,
//! producers finish what they started: liveness), and verify (a last crash and restart, then a
//! verifier reads every partition from the start). What the clients saw is the `History`; the
//! checkers in `sim-tests` judge it. Every event is folded into a trace hash: the same seed gives
//! the same hash.

mod client;
pub mod cluster;
pub mod disk;
mod disk_io;
mod faults;
mod group_client;
pub mod history;
pub mod rng;
mod timeline;

pub use faults::Faults;
pub use history::{Ack, History};

use bytes::Bytes;
use client::{Client, Micros, Role, Step};
use disk::SimDisk;
use disk_io::PendingIo;
use rng::Stream;
use spate_core::broker::{Broker, Config, PlantedBug};
use spate_core::io::{ConnId, IoOp, IoToken};
use spate_core::node::{home_shard, NodeOutput, PeerMessage, ShardNode};
use spate_core::shard::{self, Answer};
use std::collections::{BTreeMap, VecDeque};
use timeline::{Timeline, EPOCH_MS};

/// The consumer group the simulated group members form.
pub const GROUP: &str = "workers";
/// The workload's topic.
pub const TOPIC: &str = "events";
/// The compacted workload topic, when a seed has one (`Faults::compacted`).
pub const TABLE: &str = "table";
/// How soon the node's timer fires again when a deadline was left due (as in production).
pub(crate) const OVERDUE_RETRY_MS: i64 = 10;
/// Overdue-deadline reports kept in the history.
pub(crate) const OVERDUE_KEPT: usize = 10;
/// The verify phase must finish within this much virtual time.
const VERIFY_US: Micros = 30_000_000;

/// How a run is bounded and what it plants.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Virtual seconds of the fault phase.
    pub fault_secs: u64,
    /// Virtual seconds given to the quiet phase before liveness is judged.
    pub quiet_secs: u64,
    /// Events processed at most.
    pub steps_max: u64,
    pub planted_bug: Option<PlantedBug>,
    /// Faults on (the default) or a clean run.
    pub faults: bool,
    /// Print the node's log lines and the fault events as they happen.
    pub verbose: bool,
    /// A cluster run (`cluster.rs`): its node count, or `Some(0)` for one the seed picks;
    /// `None` runs the single node with its data-plane workload.
    pub nodes: Option<usize>,
}

impl Options {
    pub fn new(seed: u64) -> Options {
        Options {
            seed,
            fault_secs: 10,
            quiet_secs: 20,
            steps_max: 10_000_000,
            planted_bug: None,
            faults: true,
            verbose: false,
            nodes: None,
        }
    }

    /// A cluster run of seed `seed`, of as many nodes as the seed picks.
    pub fn cluster(seed: u64) -> Options {
        Options {
            nodes: Some(0),
            ..Options::new(seed)
        }
    }
}

/// A run's summary.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub virtual_us: Micros,
    pub crashes: u64,
    pub writes_kept: u64,
    pub writes_torn: u64,
    pub writes_lost: u64,
    /// Files created but not yet named durably that a crash took.
    pub files_lost: u64,
    pub bit_flips: u64,
    pub dropped_messages: u64,
    pub failed_writes: u64,
    pub requests: u64,
    pub log_lines: u64,
    /// Connections moved to the shard their requests go to, and messages between shards.
    pub migrations: u64,
    pub shard_messages: u64,
}

pub struct Outcome {
    pub faults: Faults,
    /// A cluster run's faults and counts.
    pub cluster: Option<(cluster::ClusterFaults, cluster::ClusterStats)>,
    pub history: History,
    pub stats: Stats,
    pub trace_hash: u64,
}

#[derive(Debug)]
enum Event {
    ClientTick {
        client: usize,
        generation: u64,
    },
    ToNode {
        conn: ConnId,
        frame: Bytes,
    },
    /// A response on the wire, sent by the node at `sent_at`.
    ToClient {
        conn: ConnId,
        frame: Bytes,
        sent_at: Micros,
    },
    ConnClosed {
        conn: ConnId,
    },
    IoDone {
        incarnation: u64,
        shard: usize,
        token: IoToken,
        io: PendingIo,
    },
    /// One shard node to another (requests and answers of split requests, wakes, the
    /// brokers' own messages).
    ToShard {
        incarnation: u64,
        from: usize,
        shard: usize,
        message: PeerMessage,
    },
    NodeTimer {
        incarnation: u64,
        generation: u64,
    },
    Crash,
    Restart,
    Partition {
        client: Option<usize>,
        heal_at: Micros,
    },
    DiskFull {
        until: Micros,
    },
    ClockJump {
        delta_ms: i64,
    },
    QuietPhase,
    FinalCrash,
    Verify,
    End,
}

impl Event {
    /// A number per kind, for the trace hash.
    fn tag(&self) -> u64 {
        match self {
            Event::ClientTick { .. } => 1,
            Event::ToNode { .. } => 2,
            Event::ToClient { .. } => 3,
            Event::ConnClosed { .. } => 4,
            Event::IoDone { .. } => 5,
            Event::NodeTimer { .. } => 6,
            Event::Crash => 7,
            Event::Restart => 8,
            Event::Partition { .. } => 9,
            Event::DiskFull { .. } => 10,
            Event::ClockJump { .. } => 11,
            Event::QuietPhase => 12,
            Event::FinalCrash => 13,
            Event::Verify => 14,
            Event::End => 15,
            Event::ToShard { .. } => 16,
        }
    }
}

#[derive(Debug)]
struct Conn {
    client: usize,
    incarnation: u64,
    open: bool,
    inbox: VecDeque<Bytes>,
    busy: bool,
    /// The API key of the request in the core, to know what its response acknowledges.
    in_core: i16,
    /// When the connection broke: responses sent before still arrive.
    closed_at: Option<Micros>,
    /// Messages in each direction keep their order, as on a TCP stream.
    to_node_at: Micros,
    to_client_at: Micros,
    /// The id the node knows it by: its remainder by the shard count is the shard serving it
    /// (it changes when the connection moves to another shard, as the socket does in
    /// production; the client does not see it).
    node_conn: ConnId,
    peer: String,
}

/// The node's shards, as production runs them: a `ShardNode` each (its broker and the router
/// of the connections it serves), their messages carried between them in order per pair.
struct Shards {
    nodes: Vec<ShardNode>,
}

impl Shards {
    fn control(&self) -> &Broker {
        self.nodes[shard::CONTROL_SHARD].broker()
    }

    /// A partition's high watermark, from the shard that owns it.
    fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.nodes[shard::owner(topic, partition, self.nodes.len())]
            .broker()
            .high_watermark(topic, partition)
    }
}

struct Node {
    broker: Option<Shards>,
    /// When the last message between each ordered pair of shards arrives: they keep order.
    shard_link_at: BTreeMap<(usize, usize), Micros>,
    incarnation: u64,
    clock_skew_ms: i64,
    timer_generation: u64,
    /// A deadline was still due after the last timeout (a core bug the checkers report).
    overdue: bool,
}

pub struct Sim {
    options: Options,
    faults: Faults,
    now: Micros,
    timeline: Timeline<Event>,
    net: Stream,
    io: Stream,
    chance: Stream,
    client_rngs: Vec<Stream>,
    node: Node,
    disk: SimDisk,
    clients: Vec<Client>,
    client_conn: Vec<Option<ConnId>>,
    client_generation: Vec<u64>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    /// Node-side connection ids, to the client's connection; and how many were handed out.
    node_conns: BTreeMap<ConnId, ConnId>,
    node_conns_made: u64,
    history: History,
    stats: Stats,
    /// Faults apply only in the fault phase.
    faulty: bool,
    partitioned: BTreeMap<Option<usize>, Micros>,
    disk_full_until: Micros,
    quiet_at: Micros,
    last_crash_at: Option<Micros>,
    done: bool,
}

impl Sim {
    pub fn new(options: Options) -> Sim {
        let faults = Faults::derive(options.seed, options.faults);
        let seed = options.seed;
        let mut sim = Sim {
            faults: faults.clone(),
            now: 0,
            timeline: Timeline::new(),
            net: Stream::derive(seed, "net"),
            io: Stream::derive(seed, "io"),
            chance: Stream::derive(seed, "chance"),
            client_rngs: Vec::new(),
            node: Node {
                broker: None,
                shard_link_at: BTreeMap::new(),
                incarnation: 0,
                clock_skew_ms: 0,
                timer_generation: 0,
                overdue: false,
            },
            disk: SimDisk::default(),
            clients: Vec::new(),
            client_conn: Vec::new(),
            client_generation: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            node_conns: BTreeMap::new(),
            node_conns_made: 0,
            history: History::default(),
            stats: Stats::default(),
            faulty: options.faults,
            partitioned: BTreeMap::new(),
            disk_full_until: 0,
            quiet_at: options.fault_secs * 1_000_000,
            last_crash_at: None,
            done: false,
            options,
        };
        sim.add_clients();
        sim.schedule_faults();
        sim
    }

    fn add_clients(&mut self) {
        let topic = TOPIC;
        let partitions = self.faults.partitions;
        let mut configs = match self.faults.segments {
            Some((segment_bytes, interval)) => vec![
                ("segment.bytes".to_string(), segment_bytes.to_string()),
                ("index.interval.bytes".to_string(), interval.to_string()),
            ],
            None => Vec::new(),
        };
        if let Some((messages, ms)) = self.faults.flush {
            configs.push(("flush.messages".to_string(), messages.to_string()));
            configs.push(("flush.ms".to_string(), ms.to_string()));
        }
        let mut topics = vec![(topic.to_string(), partitions, configs)];
        if let Some((segment_bytes, _)) = self.faults.compacted {
            let table = [
                ("cleanup.policy", "compact".to_string()),
                ("segment.bytes", segment_bytes.to_string()),
                ("index.interval.bytes", "512".to_string()),
                ("min.cleanable.dirty.ratio", "0.2".to_string()),
            ];
            let table = table.map(|(k, v)| (k.to_string(), v)).to_vec();
            topics.push((TABLE.to_string(), 1, table));
        }
        let mut roles = vec![Role::Admin {
            topics,
            created: 0,
            scratch: 0,
            scratch_exists: false,
        }];
        for &(acks, idempotent) in &self.faults.producers.clone() {
            roles.push(Client::producer(topic, partitions, acks, idempotent));
        }
        for _ in 0..self.faults.consumers {
            roles.push(Client::consumer(topic, partitions, false));
        }
        if let Some((_, keys)) = self.faults.compacted {
            roles.push(Client::keyed_producer(TABLE, -1, true, keys));
            roles.push(Client::consumer(TABLE, 1, false));
        }
        let mut starts = vec![0; roles.len()];
        for i in 0..self.faults.group_members {
            let member =
                group_client::GroupMember::new(GROUP, topic, partitions, i, &self.faults.group);
            roles.push(Role::GroupMember(member));
            starts.push(i as Micros * self.faults.group.join_stagger_us);
        }
        for (role, start_at) in roles.into_iter().zip(starts) {
            self.add_client(role, start_at);
        }
    }

    fn add_client(&mut self, role: Role, start_at: Micros) {
        let id = self.clients.len();
        self.clients.push(Client::new(id, role));
        self.client_rngs
            .push(Stream::derive(self.options.seed, &format!("client-{id}")));
        self.client_conn.push(None);
        self.client_generation.push(0);
        self.schedule_tick(id, start_at.saturating_sub(self.now));
    }

    fn schedule_faults(&mut self) {
        self.push(0, Event::Restart);
        let fault_us = self.quiet_at;
        let mut rng = Stream::derive(self.options.seed, "schedule");
        if self.faults.crash_mean_ms > 0 {
            let mut at = 0;
            loop {
                at += rng.range(
                    self.faults.crash_mean_ms / 2,
                    self.faults.crash_mean_ms * 3 / 2,
                ) * 1000;
                if at >= fault_us {
                    break;
                }
                self.push(at, Event::Crash);
            }
        }
        for _ in 0..self.faults.partitions_cut {
            let at = rng.range(0, fault_us);
            let heal_at = at + rng.range(100_000, 2_000_000);
            let client = if rng.chance(300) {
                None
            } else {
                Some(rng.range(0, self.clients.len() as u64 - 1) as usize)
            };
            self.push(at, Event::Partition { client, heal_at });
        }
        for _ in 0..self.faults.disk_full_windows {
            let at = rng.range(0, fault_us);
            let until = at + rng.range(100_000, 1_500_000);
            self.push(at, Event::DiskFull { until });
        }
        for _ in 0..self.faults.clock_jumps {
            let at = rng.range(0, fault_us);
            let delta_ms = rng.range(0, 10_000) as i64 - 5_000;
            self.push(at, Event::ClockJump { delta_ms });
        }
        self.push(fault_us, Event::QuietPhase);
        self.push(
            fault_us + self.options.quiet_secs * 1_000_000,
            Event::FinalCrash,
        );
    }

    fn push(&mut self, at: Micros, event: Event) {
        self.timeline.push(at, event);
    }

    fn schedule_tick(&mut self, client: usize, after: Micros) {
        self.client_generation[client] += 1;
        let generation = self.client_generation[client];
        self.push(self.now + after, Event::ClientTick { client, generation });
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::ClientTick { client, generation } => {
                if generation == self.client_generation[client] {
                    self.tick_client(client);
                }
            }
            Event::ToNode { conn, frame } => self.deliver_to_node(conn, frame),
            Event::ToClient {
                conn,
                frame,
                sent_at,
            } => self.deliver_to_client(conn, frame, sent_at),
            Event::ConnClosed { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    if self.client_conn[c.client] == Some(conn) {
                        self.client_conn[c.client] = None;
                        self.clients[c.client].on_reset();
                        self.schedule_tick(c.client, 10_000);
                    }
                }
            }
            Event::IoDone {
                incarnation,
                shard,
                token,
                io,
            } => self.io_done(incarnation, shard, token, io),
            Event::ToShard {
                incarnation,
                from,
                shard,
                message,
            } => {
                if incarnation == self.node.incarnation {
                    let now_ms = self.now_ms();
                    if let Some(node) = self.node.broker.as_mut() {
                        node.nodes[shard].handle_peer_message(now_ms, from, message);
                        self.drain();
                    }
                }
            }
            Event::NodeTimer {
                incarnation,
                generation,
            } => {
                if incarnation == self.node.incarnation && generation == self.node.timer_generation
                {
                    let now_ms = self.now_ms();
                    if let Some(node) = self.node.broker.as_mut() {
                        let mut overdue = Vec::new();
                        for (shard, node) in node.nodes.iter_mut().enumerate() {
                            node.handle_timeout(now_ms);
                            let kinds = node.overdue_deadlines(now_ms);
                            if !kinds.is_empty() {
                                overdue.push(format!(
                                    "shard {shard} at {:.3} s: {} still due after handle_timeout",
                                    self.now as f64 / 1e6,
                                    kinds.join(", ")
                                ));
                            }
                        }
                        self.node.overdue = !overdue.is_empty();
                        // The first few are enough to show the bug.
                        let room = OVERDUE_KEPT.saturating_sub(self.history.overdue.len());
                        self.history.overdue.extend(overdue.into_iter().take(room));
                        self.drain();
                    }
                }
            }
            Event::Crash => self.crash(),
            Event::Restart => self.restart(),
            Event::Partition { client, heal_at } if self.faulty => {
                self.timeline
                    .fold(&[client.map_or(u64::MAX, |c| c as u64), heal_at]);
                self.partitioned.insert(client, heal_at);
                let cut: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.open && client.is_none_or(|x| x == c.client))
                    .map(|(id, _)| *id)
                    .collect();
                for conn in cut {
                    self.break_conn(conn);
                }
            }
            Event::DiskFull { until } if self.faulty => {
                self.disk_full_until = self.disk_full_until.max(until)
            }
            Event::ClockJump { delta_ms } if self.faulty => {
                self.node.clock_skew_ms += delta_ms;
                self.arm_timer();
            }
            Event::Partition { .. } | Event::DiskFull { .. } | Event::ClockJump { .. } => {}
            Event::QuietPhase => self.quiet_phase(),
            Event::FinalCrash => self.final_crash(),
            Event::Verify => self.verify(),
            Event::End => self.done = true,
        }
    }

    fn now_ms(&self) -> i64 {
        EPOCH_MS + (self.now / 1000) as i64 + self.node.clock_skew_ms
    }

    fn is_cut(&self, client: usize) -> bool {
        self.partitioned
            .iter()
            .any(|(who, heal_at)| *heal_at > self.now && who.is_none_or(|c| c == client))
    }

    fn latency(&mut self) -> Micros {
        let (low, high) = self.faults.latency_us;
        let base = self.net.range(low, high);
        if self.faulty && self.net.chance(self.faults.latency_spike_per_mille) {
            base + self.net.range(10_000, 300_000)
        } else {
            base
        }
    }

    fn message_lost(&mut self) -> bool {
        self.faulty && self.net.chance(self.faults.drop_per_mille)
    }

    fn topics_ready(&self) -> bool {
        self.clients[0].topics_created()
    }

    // ---- clients ----

    fn tick_client(&mut self, client: usize) {
        let topics_ready = self.topics_ready();
        let step: Step = {
            let (clients, rngs) = (&mut self.clients, &mut self.client_rngs);
            clients[client].tick(self.now, &mut rngs[client], &mut self.history, topics_ready)
        };
        if step.reset {
            if let Some(conn) = self.client_conn[client].take() {
                self.close_conn(conn);
            }
        }
        if step.connect {
            self.connect(client);
        }
        if let Some((frame, expects_response)) = step.send {
            self.send_to_node(client, frame, expects_response);
        }
        if let Some(after) = step.wake_after_us {
            self.schedule_tick(client, after);
        }
    }

    fn connect(&mut self, client: usize) {
        if self.node.broker.is_none() || self.is_cut(client) {
            return;
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let incarnation = self.node.incarnation;
        self.conns.insert(
            conn,
            Conn {
                client,
                incarnation,
                open: true,
                inbox: VecDeque::new(),
                busy: false,
                in_core: -1,
                closed_at: None,
                to_node_at: 0,
                to_client_at: 0,
                node_conn: 0,
                peer: format!("10.0.0.{client}:40000"),
            },
        );
        self.client_conn[client] = Some(conn);
        self.clients[client].on_connected();
        // The shards take connections in turn, as shard 0's accept loop hands them out.
        let shards = self.faults.shards;
        let home = (self.node_conns_made % shards as u64) as usize;
        self.open_on(conn, home);
        let latency = self.latency();
        self.schedule_tick(client, latency);
    }

    fn send_to_node(&mut self, client: usize, frame: Bytes, _expects_response: bool) {
        let Some(conn) = self.client_conn[client] else {
            return;
        };
        self.stats.requests += 1;
        if self.message_lost() || self.is_cut(client) {
            self.stats.dropped_messages += 1;
            return self.break_conn(conn);
        }
        let latency = self.latency();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let at = (self.now + latency).max(c.to_node_at);
        c.to_node_at = at;
        self.push(at, Event::ToNode { conn, frame });
    }

    fn deliver_to_client(&mut self, conn: ConnId, frame: Bytes, sent_at: Micros) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let client = c.client;
        // Bytes the node sent before the connection broke (or the node lost power) are on the
        // wire and arrive, unless the client has already given up on the connection.
        let sent_while_open = c.open || c.closed_at.is_some_and(|closed| sent_at <= closed);
        if !sent_while_open || self.client_conn[client] != Some(conn) {
            return;
        }
        self.clients[client].on_response(frame, sent_at, &mut self.history);
        self.schedule_tick(client, 0);
    }

    /// The connection breaks: the node forgets it now, the client learns after a while.
    fn break_conn(&mut self, conn: ConnId) {
        self.close_conn(conn);
        let delay = self.latency() + self.net.range(0, 200_000);
        self.push(self.now + delay, Event::ConnClosed { conn });
    }

    fn close_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.open {
                c.open = false;
                c.closed_at = Some(self.now);
                if c.incarnation == self.node.incarnation {
                    let node_conn = c.node_conn;
                    self.node_conns.remove(&node_conn);
                    if let Some(node) = self.node.broker.as_mut() {
                        let home = home_shard(node_conn, node.nodes.len());
                        node.nodes[home].handle_connection_closed(node_conn);
                        self.drain();
                    }
                }
            }
        }
    }

    // ---- the node ----

    fn deliver_to_node(&mut self, conn: ConnId, frame: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.open || c.incarnation != self.node.incarnation || self.node.broker.is_none() {
            return;
        }
        c.inbox.push_back(frame);
        self.pump_conn(conn);
    }

    /// Hands the connection's next request to the core when none is in it, as the shell does.
    fn pump_conn(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.busy || !c.open {
            return;
        }
        let Some(frame) = c.inbox.pop_front() else {
            return;
        };
        c.busy = true;
        c.in_core = frame
            .get(0..2)
            .map_or(-1, |k| i16::from_be_bytes([k[0], k[1]]));
        let node_conn = c.node_conn;
        let now_ms = self.now_ms();
        if let Some(node) = self.node.broker.as_mut() {
            let home = home_shard(node_conn, node.nodes.len());
            node.nodes[home].handle_request(now_ms, node_conn, frame);
            self.drain();
        }
    }

    fn drain(&mut self) {
        loop {
            let next = self.node.broker.as_mut().and_then(|node| {
                node.nodes
                    .iter_mut()
                    .enumerate()
                    .find_map(|(shard, node)| node.poll_output().map(|o| (shard, o)))
            });
            let Some((shard, output)) = next else {
                break;
            };
            match output {
                NodeOutput::ToConnection { conn, answer } => self.answer(conn, answer),
                NodeOutput::Io(command) => self.start_io(shard, command.token, command.op),
                NodeOutput::ToShard { shard: to, message } => {
                    self.send_between_shards(shard, to, message)
                }
                NodeOutput::ToNode { node, .. } => self.history.problems.push(format!(
                    "the node sent a quorum message to node {node} without a quorum"
                )),
                NodeOutput::ToBroker { node, .. } => self.history.problems.push(format!(
                    "the node sent a request to broker {node} without a quorum"
                )),
                NodeOutput::Log { level, message } => {
                    self.stats.log_lines += 1;
                    if self.options.verbose {
                        eprintln!(
                            "{:>10.6} node shard {shard} {level:?}: {message}",
                            self.now as f64 / 1e6
                        );
                    }
                }
            }
        }
        self.arm_timer();
    }

    /// The node answered a connection's request (`node_conn`, as the node knows it).
    fn answer(&mut self, node_conn: ConnId, answer: Answer) {
        let Some(&conn) = self.node_conns.get(&node_conn) else {
            return; // the connection closed meanwhile
        };
        match answer {
            Answer::Respond(frame) => self.respond(conn, frame),
            Answer::NoResponse => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.busy = false;
                }
                self.between_requests(conn);
            }
            Answer::Close => {
                self.history
                    .problems
                    .push(format!("the broker closed connection {conn}"));
                self.break_conn(conn);
            }
        }
    }

    /// The connection has no request in the node: it may move to another shard (as the
    /// production shell moves the socket), then its next request goes in.
    fn between_requests(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (node_conn, open) = (c.node_conn, c.open);
        if open && c.incarnation == self.node.incarnation {
            let moved = self.node.broker.as_mut().and_then(|node| {
                let home = home_shard(node_conn, node.nodes.len());
                let to = node.nodes[home].poll_migration(node_conn)?;
                node.nodes[home].handle_connection_closed(node_conn);
                Some(to)
            });
            if let Some(to) = moved {
                self.stats.migrations += 1;
                self.node_conns.remove(&node_conn);
                self.open_on(conn, to);
                self.drain();
            }
        }
        self.pump_conn(conn);
    }

    /// The node opens the connection on shard `home`, under a new id of that shard.
    fn open_on(&mut self, conn: ConnId, home: usize) {
        let shards = self.faults.shards as u64;
        let node_conn = self.node_conns_made * shards + home as u64;
        self.node_conns_made += 1;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.node_conn = node_conn;
        let peer = c.peer.clone();
        self.node_conns.insert(node_conn, conn);
        if let Some(node) = self.node.broker.as_mut() {
            node.nodes[home].handle_connection_opened(node_conn, &peer);
            self.drain();
        }
    }

    /// A message from one shard to another, in order with the ones before it.
    fn send_between_shards(&mut self, from: usize, to: usize, message: PeerMessage) {
        self.stats.shard_messages += 1;
        let hop = self
            .net
            .range(self.faults.shard_hop_us.0, self.faults.shard_hop_us.1);
        let link = self.node.shard_link_at.entry((from, to)).or_insert(0);
        let at = (self.now + hop).max(*link);
        *link = at;
        let incarnation = self.node.incarnation;
        self.push(
            at,
            Event::ToShard {
                incarnation,
                from,
                shard: to,
                message,
            },
        );
    }

    fn respond(&mut self, conn: ConnId, frame: Bytes) {
        let lost = self.message_lost();
        let latency = self.latency();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.busy = false;
        if !c.open {
            return;
        }
        let cut = self
            .partitioned
            .iter()
            .any(|(who, heal_at)| *heal_at > self.now && who.is_none_or(|x| x == c.client));
        if lost || cut {
            self.stats.dropped_messages += 1;
            return self.break_conn(conn);
        }
        let at = (self.now + latency).max(c.to_client_at);
        c.to_client_at = at;
        // Produce, OffsetCommit, CreateTopics, DeleteTopics, CreatePartitions: answers that
        // promise durability.
        let acknowledges_a_write = matches!(c.in_core, 0 | 8 | 19 | 20 | 37);
        self.push(
            at,
            Event::ToClient {
                conn,
                frame,
                sent_at: self.now,
            },
        );
        if acknowledges_a_write
            && self.faulty
            && self.chance.chance(self.faults.crash_after_ack_per_mille)
        {
            self.push(self.now + 1, Event::Crash);
        }
        self.between_requests(conn);
    }

    fn arm_timer(&mut self) {
        let deadline = self
            .node
            .broker
            .as_ref()
            .and_then(|node| node.nodes.iter().filter_map(ShardNode::poll_timeout).min());
        let Some(mut deadline_ms) = deadline else {
            return;
        };
        if self.node.overdue {
            // As the production shell does: a deadline left due is retried at a bounded rate.
            deadline_ms = deadline_ms.max(self.now_ms() + OVERDUE_RETRY_MS);
        }
        self.node.timer_generation += 1;
        let wait_ms = (deadline_ms - self.now_ms()).max(0) as u64;
        let (incarnation, generation) = (self.node.incarnation, self.node.timer_generation);
        self.push(
            self.now + wait_ms * 1000,
            Event::NodeTimer {
                incarnation,
                generation,
            },
        );
    }

    fn disk_full(&self) -> bool {
        self.faulty && self.now < self.disk_full_until
    }

    fn start_io(&mut self, shard: usize, token: IoToken, op: IoOp) {
        if let IoOp::PersistQuorum { .. } = op {
            // The simulated node runs without a controller quorum (one node, its own).
            let problem = "the node wrote a quorum journal without a quorum".to_string();
            self.history.problems.push(problem);
        }
        let is_sync = matches!(op, IoOp::Sync { .. });
        let disk_full = self.disk_full();
        let (pending, latency) = disk_io::start(
            &mut self.disk,
            &mut self.io,
            &self.faults.disk_times(),
            disk_full,
            op,
        );
        if let PendingIo::FailedWrite { .. } = pending {
            self.stats.failed_writes += 1;
        }
        if is_sync && self.faulty && self.chance.chance(self.faults.crash_in_fsync_per_mille) {
            let at = self.now + self.chance.range(0, latency);
            self.push(at, Event::Crash);
        }
        let incarnation = self.node.incarnation;
        self.push(
            self.now + latency,
            Event::IoDone {
                incarnation,
                shard,
                token,
                io: pending,
            },
        );
    }

    fn io_done(&mut self, incarnation: u64, shard: usize, token: IoToken, io: PendingIo) {
        if incarnation != self.node.incarnation || self.node.broker.is_none() {
            return; // the node that asked crashed; the disk already decided what survived
        }
        let bitrot = self.faulty.then_some(self.faults.bitrot_per_mille);
        let (result, flipped) = disk_io::finish(&mut self.disk, &mut self.io, bitrot, io);
        self.stats.bit_flips += u64::from(flipped);
        let now_ms = self.now_ms();
        if let Some(node) = self.node.broker.as_mut() {
            node.nodes[shard].handle_io_done(now_ms, token, result);
        }
        self.drain();
    }

    fn crash(&mut self) {
        if self.node.broker.take().is_none() {
            return;
        }
        self.stats.crashes += 1;
        self.node.incarnation += 1;
        self.last_crash_at = Some(self.now);
        let open: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.open)
            .map(|(id, _)| *id)
            .collect();
        for conn in open {
            self.break_conn(conn);
        }
        let damage = self.disk.crash(&mut self.io);
        self.stats.writes_kept += damage.writes_kept;
        self.stats.writes_torn += damage.writes_torn;
        self.stats.writes_lost += damage.writes_lost;
        self.stats.files_lost += damage.files_lost;
        self.timeline.fold(&[
            damage.writes_kept,
            damage.writes_torn,
            damage.writes_lost,
            damage.files_lost,
        ]);
        let delay = self.chance.range(50_000, 1_000_000);
        self.push(self.now + delay, Event::Restart);
    }

    /// Starts the node from what the disk kept, as the production shell's start-up does.
    fn restart(&mut self) {
        if self.node.broker.is_some() {
            return;
        }
        let config = Config {
            auto_create_topics: false,
            seed: self.options.seed ^ self.node.incarnation,
            planted_bug: self.options.planted_bug,
            tail_cache_bytes_per_partition: self.faults.tail_cache_bytes,
            cleaner: spate_core::broker::CleanerSettings {
                backoff_ms: 200,
                ..Default::default()
            },
            groups: spate_core::groups::GroupConfig {
                initial_rebalance_delay_ms: self.faults.initial_rebalance_delay_ms,
                ..Default::default()
            },
            ..Config::default()
        };
        let shards = self.faults.shards;
        let now_ms = self.now_ms();
        let brokers: Vec<Broker> =
            match Broker::start_shards(&config, shards, &mut self.disk, now_ms) {
                Ok(started) => started.into_iter().map(|(broker, _)| broker).collect(),
                Err(error) => {
                    self.history
                        .problems
                        .push(format!("recovery failed: {error}"));
                    self.done = true;
                    return;
                }
            };
        let broker = Shards {
            nodes: brokers.into_iter().map(ShardNode::new).collect(),
        };
        self.node_conns.clear();
        self.node.shard_link_at.clear();
        if let Some(crashed_at) = self.last_crash_at.take() {
            let recovered = broker
                .control()
                .committed_offsets(GROUP)
                .into_iter()
                .map(|((_, p), o)| (p, o))
                .collect();
            self.history.recovered_commits.push((crashed_at, recovered));
        }
        let epochs = broker
            .nodes
            .iter()
            .flat_map(|n| n.broker().leader_epochs())
            .collect();
        self.history.start_epochs.push(epochs);
        self.node.broker = Some(broker);
        self.drain();
    }

    fn quiet_phase(&mut self) {
        self.faulty = false;
        self.partitioned.clear();
        self.node.clock_skew_ms = 0;
        for client in &mut self.clients {
            client.producing = false;
        }
        self.restart();
        self.arm_timer();
    }

    /// Judges liveness, then crashes and restarts the node one last time before verifying.
    fn final_crash(&mut self) {
        for (id, client) in self.clients.iter().enumerate() {
            if !client.is_idle() {
                self.history.liveness.push(format!(
                    "client {id} still busy {} virtual seconds into the quiet phase: {}",
                    self.options.quiet_secs,
                    client.describe()
                ));
            }
        }
        for client in &self.clients {
            if let (Role::Consumer(c), Some(broker)) = (&client.role, self.node.broker.as_ref()) {
                for partition in 0..c.partitions {
                    let hw = broker.high_watermark(&c.topic, partition).unwrap_or(0);
                    if c.next_offset[partition as usize] != hw {
                        self.history.liveness.push(format!(
                            "consumer {} at offset {} of {}-{partition}, high watermark {hw}",
                            client.id, c.next_offset[partition as usize], c.topic
                        ));
                    }
                }
            }
        }
        self.check_group_settled();
        self.crash();
        self.push(self.now + 1_100_000, Event::Verify);
    }

    /// At the end of the quiet phase the group must be Stable, with every member in the same
    /// generation and every partition owned by exactly one.
    fn check_group_settled(&mut self) {
        let members: Vec<&group_client::GroupMember> = self
            .clients
            .iter()
            .filter_map(|c| match &c.role {
                Role::GroupMember(m) => Some(m),
                _ => None,
            })
            .collect();
        if members.is_empty() {
            return;
        }
        let mut problems = Vec::new();
        let summary = self
            .node
            .broker
            .as_ref()
            .and_then(|b| b.control().group_summary(GROUP));
        match summary {
            Some(("Stable", generation, count)) => {
                if count != members.len() {
                    problems.push(format!(
                        "group '{GROUP}' is Stable with {count} members, {} are running",
                        members.len()
                    ));
                }
                if let Some(m) = members
                    .iter()
                    .find(|m| m.generation != generation || !m.is_settled())
                {
                    problems.push(format!(
                        "group '{GROUP}' is at generation {generation}, a member is at {} in {:?}",
                        m.generation, m.phase
                    ));
                }
            }
            other => problems.push(format!(
                "group '{GROUP}' is {other:?} at the end of the quiet phase, not Stable"
            )),
        }
        let mut owned: Vec<i32> = members
            .iter()
            .flat_map(|m| m.assigned.iter().copied())
            .collect();
        owned.sort();
        let all: Vec<i32> = (0..self.faults.partitions).collect();
        if owned != all {
            problems.push(format!(
                "group '{GROUP}' owns partitions {owned:?}, expected each of {all:?} once"
            ));
        }
        self.history.group_end.extend(problems);
    }

    fn verify(&mut self) {
        self.restart();
        if let Some(broker) = self.node.broker.as_ref() {
            for ((_, partition), offset) in broker.control().committed_offsets(GROUP) {
                self.history
                    .final_commits
                    .insert((GROUP.to_string(), partition), offset);
            }
        }
        if self.faults.compacted.is_some() {
            self.add_client(Client::consumer(TABLE, 1, true), self.now);
        }
        let role = Client::consumer(TOPIC, self.faults.partitions, true);
        self.add_client(role, self.now);
        self.push(self.now + VERIFY_US, Event::End);
    }
}

/// Runs one seed: on one node, or on a cluster (`Options::nodes`).
pub fn run(options: Options) -> Outcome {
    match options.nodes {
        Some(_) => cluster::run(options),
        None => Sim::new(options).run(),
    }
}

impl Sim {
    /// Runs until the verifier has read every partition to its high watermark (the End event
    /// is only the bound), and returns what happened.
    pub fn run(mut self) -> Outcome {
        while !self.done {
            let Some((at, event)) = self.timeline.pop() else {
                break;
            };
            self.now = at;
            self.stats.events += 1;
            self.timeline.fold(&[at, event.tag()]);
            if self.options.verbose
                && !matches!(
                    event,
                    Event::ClientTick { .. }
                        | Event::ToNode { .. }
                        | Event::ToClient { .. }
                        | Event::IoDone { .. }
                        | Event::NodeTimer { .. }
                )
            {
                eprintln!("{:>10.6} {event:?}", at as f64 / 1e6);
            }
            if self.stats.events > self.options.steps_max {
                self.history.liveness.push(format!(
                    "step budget of {} events exhausted",
                    self.options.steps_max
                ));
                break;
            }
            let verifying = matches!(event, Event::ClientTick { .. } | Event::ToClient { .. });
            if let Event::End = event {
                self.history
                    .liveness
                    .push("the verifier did not read every partition in time".into());
            }
            self.handle(event);
            if verifying && self.verified() {
                break;
            }
        }
        self.record_epoch_ends();
        self.stats.virtual_us = self.now;
        Outcome {
            faults: self.faults,
            cluster: None,
            history: self.history,
            stats: self.stats,
            trace_hash: self.timeline.trace_hash(),
        }
    }

    /// At the end, where each workload partition says each of its epochs ends (up to one
    /// past its current), for the epoch checker to hold against the batches read.
    fn record_epoch_ends(&mut self) {
        let Some(broker) = self.node.broker.as_ref() else {
            return;
        };
        for index in 0..self.faults.partitions {
            let owner = shard::owner(TOPIC, index, broker.nodes.len());
            let Some(partition) = broker.nodes[owner].broker().partition(TOPIC, index) else {
                continue;
            };
            let current = partition.replica.leader_epoch();
            let ends = (0..=current + 1)
                .map(|epoch| (epoch, partition.end_offset_for_epoch(epoch)))
                .collect();
            let key = (TOPIC.to_string(), index);
            self.history
                .epoch_ends
                .insert(key, (partition.high_watermark(), ends));
        }
    }

    /// Whether every verifier has read its topic to the high watermark.
    fn verified(&self) -> bool {
        let Some(Role::Consumer(last)) = self.clients.last().map(|c| &c.role) else {
            return false;
        };
        let Some(broker) = self.node.broker.as_ref() else {
            return false;
        };
        last.verifier
            && self.clients.iter().all(|client| match &client.role {
                Role::Consumer(c) if c.verifier => (0..c.partitions)
                    .all(|p| broker.high_watermark(&c.topic, p) == Some(c.next_offset[p as usize])),
                _ => true,
            })
    }
}
