//! The simulator with several nodes (1 to 5): one cluster of `spate server`s, each node a
//! voter of the controller quorum and a broker (Kafka's combined mode), with its own simulated
//! disk, its own clock and its own shards, driving the same `spate-core` as production. The
//! nodes' quorum frames travel over simulated links that lose, duplicate, delay and reorder
//! them, and that faults cut: a node cut off, the cluster split into two sides, a link lost
//! one way. Nodes crash (their disks keep what was synced) and restart, and their clocks jump.
//! Simulated clients create topics and partitions through any node and ask any node for
//! metadata.
//!
//! After every event the nodes it touched are probed and their state is held against what
//! was seen before (the history's cluster fields, judged by the checkers in `sim-tests`):
//! - at most one controller leader per Raft term;
//! - a committed metadata entry is the same on every node, and every controller leader holds
//!   every entry committed before it (nothing committed is lost or changed);
//! - no two leaders of one partition epoch, no fenced broker leading in a committed image,
//!   no node leading and no client told of a leader that the controller did not choose;
//! - once the faults stop (the quiet phase), every node converges to the same metadata, every
//!   broker is back and unfenced, every partition has a leader, and every acknowledged topic
//!   creation and partition count is there (liveness and durability of metadata).

use crate::client::{encode_request, Client, Micros, Role};
use crate::disk::SimDisk;
use crate::disk_io::{self, DiskTimes, PendingIo};
use crate::history::History;
use crate::rng::Stream;
use crate::timeline::{Timeline, EPOCH_MS};
use crate::{Faults, Options, Outcome, Stats};
use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use spate_core::broker::{Broker, Config};
use spate_core::controller::image::NO_LEADER;
use spate_core::controller::records::encode_records;
use spate_core::controller::MetadataImage;
use spate_core::errors;
use spate_core::io::{ConnId, IoOp, IoToken};
use spate_core::node::{home_shard, NodeOutput, PeerMessage, ShardNode};
use spate_core::raft::Role as RaftRole;
use spate_core::shard::{Answer, CONTROL_SHARD};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A client gives up on a request it has no answer to after this long.
const REQUEST_TIMEOUT_US: Micros = 8_000_000;
/// Violations of one kind kept in the history, at most.
const KEPT: usize = 20;
/// The topic-creating client stops this long before the end, so that the last changes settle.
const ADMIN_STOP_BEFORE_END_US: Micros = 8_000_000;
/// The replicated topic the data clients produce to and consume from.
const LEDGER: &str = "ledger";
/// After the final power loss, the verifier has this long to read every partition.
const VERIFY_US: Micros = 30_000_000;

/// A cluster run's fault parameters, all derived from its seed.
#[derive(Debug, Clone)]
pub struct ClusterFaults {
    pub nodes: usize,
    /// The last `observers` nodes are broker-only (not voters: observers of the quorum).
    pub observers: usize,
    /// Brokers name this many racks (`broker.rack`, node i on rack i mod racks); 0: none.
    pub racks: usize,
    pub shards: usize,
    /// One way, between nodes and between a client and a node.
    pub latency_us: (Micros, Micros),
    pub latency_spike_per_mille: u64,
    /// Quorum frames between nodes lost, and sent twice.
    pub drop_per_mille: u64,
    pub duplicate_per_mille: u64,
    /// Mean time between crashes (of a node chosen at random); 0 for none.
    pub crash_mean_ms: u64,
    /// Link faults: a node cut off from the others, the nodes split into two sides, a link
    /// lost one way.
    pub isolations: u32,
    pub splits: u32,
    pub one_way_cuts: u32,
    pub clock_jumps: u32,
    /// Crashes of a node while its quorum journal append is in flight, per thousand appends.
    pub crash_in_append_per_mille: u64,
    pub session_timeout_ms: i64,
    /// `broker.heartbeat.interval.ms`: a third of the session (the server refuses a session
    /// not longer than the interval; Kafka's defaults are 9 s and 2 s).
    pub heartbeat_interval_ms: i64,
    /// `metadata.snapshot.interval.versions`: small values make nodes catch up from snapshots.
    pub snapshot_every: u64,
    pub disk: DiskTimes,
    pub shard_hop_us: (Micros, Micros),
    /// The ledger topic: partitions, replication factor, `min.insync.replicas`.
    pub ledger_partitions: i32,
    pub ledger_replicas: i16,
    pub ledger_min_insync: i16,
    /// Every node loses power at once (and restarts) this many times in the fault phase.
    pub power_losses: u32,
    /// `leader.imbalance.check.interval.seconds`, in ms: how often the active controller
    /// gives partitions back to their preferred replicas (the longest is beyond the run).
    pub leader_rebalance_ms: i64,
}

impl ClusterFaults {
    /// `nodes`: the cluster's size, or one the seed picks (mostly 3 and 5).
    pub fn derive(seed: u64, nodes: Option<usize>, faults: bool) -> ClusterFaults {
        let mut rng = Stream::derive(seed, "cluster-faults");
        let nodes = nodes.unwrap_or(*rng.pick(&[3, 3, 3, 5, 5, 2, 4]));
        let latency_low = rng.range(100, 1_000);
        let observers = match nodes >= 3 {
            true => *rng.pick(&[0, 0, 1]),
            false => 0,
        };
        let racks = *rng.pick(&[0, 0, 2, 3]);
        let mut drawn = ClusterFaults {
            nodes,
            observers,
            racks,
            shards: *rng.pick(&[1, 1, 2]),
            latency_us: (latency_low, latency_low + rng.range(0, 4_000)),
            latency_spike_per_mille: rng.range(0, 30),
            drop_per_mille: *rng.pick(&[0, 5, 20, 60]),
            duplicate_per_mille: *rng.pick(&[0, 5, 30]),
            crash_mean_ms: *rng.pick(&[0, 1_500, 3_000, 6_000]),
            isolations: rng.range(0, 3) as u32,
            splits: rng.range(0, 3) as u32,
            one_way_cuts: rng.range(0, 3) as u32,
            clock_jumps: rng.range(0, 3) as u32,
            crash_in_append_per_mille: *rng.pick(&[0, 2, 10]),
            session_timeout_ms: *rng.pick(&[2_000, 3_000, 6_000]),
            heartbeat_interval_ms: 0,
            snapshot_every: *rng.pick(&[4, 20, 1_000]),
            disk: DiskTimes {
                write_us: (20, 400),
                fsync_us: (100, rng.range(500, 5_000)),
                read_us: (20, 300),
            },
            shard_hop_us: (5, 50),
            ledger_partitions: 0,
            ledger_replicas: 0,
            ledger_min_insync: 0,
            power_losses: 0,
            leader_rebalance_ms: 0,
        };
        drawn.heartbeat_interval_ms = drawn.session_timeout_ms / 3;
        drawn.ledger_partitions = rng.range(1, 2) as i32;
        // Mostly three replicas (or all nodes when fewer), sometimes any factor up to five.
        let most = nodes.min(5) as u64;
        drawn.ledger_replicas = match rng.chance(600) {
            true => nodes.min(3) as i16,
            false => rng.range(1, most) as i16,
        };
        drawn.ledger_min_insync = rng.range(1, drawn.ledger_replicas as u64) as i16;
        drawn.power_losses = *rng.pick(&[0, 0, 1, 2]);
        drawn.leader_rebalance_ms = *rng.pick(&[1_000, 2_500, 300_000]);
        if !faults {
            drawn.latency_spike_per_mille = 0;
            drawn.drop_per_mille = 0;
            drawn.duplicate_per_mille = 0;
            drawn.crash_mean_ms = 0;
            (drawn.isolations, drawn.splits, drawn.one_way_cuts) = (0, 0, 0);
            drawn.clock_jumps = 0;
            drawn.crash_in_append_per_mille = 0;
            drawn.power_losses = 0;
        }
        drawn
    }
}

impl fmt::Display for ClusterFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  {} nodes ({} voters and brokers, {} broker-only) of {} shard(s) on {} racks, broker session timeout {} ms, a quorum snapshot every {} versions",
            self.nodes, self.nodes - self.observers, self.observers, self.shards, self.racks, self.session_timeout_ms, self.snapshot_every
        )?;
        writeln!(
            f,
            "  links: latency {}-{} us (spikes {}‰), frames lost {}‰, duplicated {}‰",
            self.latency_us.0,
            self.latency_us.1,
            self.latency_spike_per_mille,
            self.drop_per_mille,
            self.duplicate_per_mille
        )?;
        writeln!(
            f,
            "  topic {LEDGER}: {} partition(s), replication factor {}, min.insync.replicas {}; {} power losses of every node; preferred leaders restored every {} ms",
            self.ledger_partitions, self.ledger_replicas, self.ledger_min_insync, self.power_losses, self.leader_rebalance_ms
        )?;
        write!(
            f,
            "  crashes every ~{} ms (half of them the controller leader's), {}‰ of journal appends, {} nodes cut off, {} splits, {} one-way cuts, {} clock jumps; fsync {}-{} us",
            self.crash_mean_ms,
            self.crash_in_append_per_mille,
            self.isolations,
            self.splits,
            self.one_way_cuts,
            self.clock_jumps,
            self.disk.fsync_us.0,
            self.disk.fsync_us.1
        )
    }
}

#[derive(Debug)]
enum Event {
    NodeTimer {
        node: usize,
        incarnation: u64,
        generation: u64,
    },
    IoDone {
        node: usize,
        incarnation: u64,
        shard: usize,
        token: IoToken,
        io: PendingIo,
    },
    ToShard {
        node: usize,
        incarnation: u64,
        from: usize,
        shard: usize,
        message: PeerMessage,
    },
    /// A quorum frame on the link from node `from` to node `to`.
    Frame {
        from: usize,
        to: usize,
        frame: Vec<u8>,
    },
    /// A node loses power (`None`: whichever node leads the controller quorum then, if any).
    Crash {
        node: Option<usize>,
    },
    Restart {
        node: usize,
    },
    /// These directed links lose everything until `heal_at`.
    Cut {
        links: Vec<(usize, usize)>,
        heal_at: Micros,
    },
    ClockJump {
        node: usize,
        delta_ms: i64,
    },
    /// The node leading the controller quorum then is cut off from the others until `heal_at`.
    IsolateLeader {
        heal_at: Micros,
    },
    ClientTick {
        client: usize,
        generation: u64,
    },
    /// A client's request arrives at a node, on the connection it opened there.
    Request {
        client: usize,
        node: usize,
        incarnation: u64,
        conn: ConnId,
        frame: Bytes,
    },
    Response {
        client: usize,
        attempt: u64,
        frame: Bytes,
    },
    /// The client's connection broke (its node crashed).
    Reset {
        client: usize,
        attempt: u64,
    },
    /// A follower's request (shard `shard` of node `from` in its life `incarnation`) on the
    /// link to node `to`.
    PeerRequest {
        from: usize,
        shard: usize,
        incarnation: u64,
        to: usize,
        frame: Bytes,
    },
    /// Its answer, back to that shard of node `to` (from node `from`).
    PeerResponse {
        to: usize,
        shard: usize,
        incarnation: u64,
        from: usize,
        frame: Bytes,
    },
    /// That shard's connection to node `peer` broke (the peer crashed or refused).
    PeerReset {
        node: usize,
        shard: usize,
        incarnation: u64,
        peer: usize,
    },
    QuietPhase,
    /// Every node loses power at once (`forced`: in the quiet phase too).
    PowerLoss {
        forced: bool,
    },
    /// The data clients stop producing.
    Drain,
    /// The end of the quiet phase: liveness and convergence are judged, then every node
    /// loses power and the verifier reads the ledger after the restart.
    End,
    /// The verifier's time is up.
    Verified,
}

impl Event {
    fn tag(&self) -> u64 {
        match self {
            Event::NodeTimer { node, .. } => 1 + 100 * *node as u64,
            Event::IoDone { node, .. } => 2 + 100 * *node as u64,
            Event::ToShard { node, .. } => 3 + 100 * *node as u64,
            Event::Frame { from, to, .. } => 4 + 100 * *from as u64 + 1_000 * *to as u64,
            Event::Crash { node } => 5 + 100 * node.map_or(99, |n| n as u64),
            Event::Restart { node } => 6 + 100 * *node as u64,
            Event::Cut { .. } => 7,
            Event::ClockJump { node, .. } => 8 + 100 * *node as u64,
            Event::ClientTick { client, .. } => 9 + 100 * *client as u64,
            Event::Request { client, .. } => 10 + 100 * *client as u64,
            Event::Response { client, .. } => 11 + 100 * *client as u64,
            Event::Reset { client, .. } => 12 + 100 * *client as u64,
            Event::IsolateLeader { .. } => 15,
            Event::PeerRequest { from, to, .. } => 16 + 100 * *from as u64 + 1_000 * *to as u64,
            Event::PeerResponse { to, from, .. } => 17 + 100 * *from as u64 + 1_000 * *to as u64,
            Event::PeerReset { node, peer, .. } => 18 + 100 * *peer as u64 + 1_000 * *node as u64,
            Event::QuietPhase => 13,
            Event::End => 14,
            Event::PowerLoss { .. } => 19,
            Event::Verified => 20,
            Event::Drain => 21,
        }
    }

    /// The node an event touches (to probe after it).
    fn node(&self) -> Option<usize> {
        match self {
            Event::NodeTimer { node, .. }
            | Event::IoDone { node, .. }
            | Event::ToShard { node, .. }
            | Event::Restart { node }
            | Event::ClockJump { node, .. }
            | Event::Request { node, .. } => Some(*node),
            Event::Frame { to, .. } => Some(*to),
            Event::PeerRequest { to, .. } | Event::PeerResponse { to, .. } => Some(*to),
            Event::PeerReset { node, .. } => Some(*node),
            _ => None,
        }
    }
}

/// One node: its disk (which outlives it), and while it runs, its shards.
struct SimNode {
    id: i32,
    disk: SimDisk,
    shards: Option<Vec<ShardNode>>,
    incarnation: u64,
    clock_skew_ms: i64,
    timer_generation: u64,
    overdue: bool,
    shard_link_at: BTreeMap<(usize, usize), Micros>,
    /// Client connections open on it: (client, the client's attempt).
    conns: BTreeMap<ConnId, (usize, u64)>,
    /// Other nodes' followers' connections open on it: (node, shard, that node's life).
    peer_conns: BTreeMap<ConnId, (usize, usize, u64)>,
    conns_made: u64,
    /// Its committed quorum entries were checked through this index (since its start).
    checked_through: u64,
    /// At the last probe: the quorum version its committed image was of, and the term it
    /// led in (`u64::MAX` when not leading).
    probed: (u64, u64),
}

impl SimNode {
    fn control(&self) -> Option<&Broker> {
        self.shards.as_ref().map(|s| s[CONTROL_SHARD].broker())
    }
}

#[derive(Debug)]
enum Work {
    /// Creates the ledger first, then topics `t0`, `t1`, … (and sometimes adds a partition
    /// to one it created).
    Admin { next_topic: u32 },
    /// Asks for all topics' metadata.
    Watcher,
    /// A data client of the single-node simulator (`client.rs`), producing to or consuming
    /// from the ledger; each request goes to the leader of its partition as the committed
    /// metadata names it (now and then to any node).
    Kafka(Box<Client>),
}

#[derive(Debug)]
struct Waiting {
    attempt: u64,
    node: usize,
    conn: ConnId,
    incarnation: u64,
    api: ApiKey,
    /// CreateTopics: the topic and its partition count; CreatePartitions: the new count.
    topic: Option<(String, i32)>,
}

struct SimClient {
    work: Work,
    waiting: Option<Waiting>,
    attempts: u64,
    generation: u64,
    rng: Stream,
}

/// A cluster run's own counts, beside the shared `Stats`.
#[derive(Debug, Default, Clone)]
pub struct ClusterStats {
    pub frames: u64,
    pub frames_lost: u64,
    pub frames_duplicated: u64,
    pub topics_acknowledged: u64,
    pub partitions_added: u64,
    pub leaders_told: u64,
    pub controller_terms: u64,
    pub committed_index: u64,
    pub leaderships: u64,
    /// Client connections a node closed: their change was appended by a controller that lost
    /// its leadership before it committed.
    pub connections_closed: u64,
    /// Followers' requests to their leaders (replica fetches).
    pub peer_requests: u64,
}

pub struct ClusterSim {
    options: Options,
    faults: ClusterFaults,
    now: Micros,
    timeline: Timeline<Event>,
    net: Stream,
    io: Stream,
    chance: Stream,
    nodes: Vec<SimNode>,
    clients: Vec<SimClient>,
    /// Directed links cut, until when.
    cuts: Vec<(usize, usize, Micros)>,
    faulty: bool,
    end_at: Micros,
    history: History,
    stats: Stats,
    cluster_stats: ClusterStats,
    /// Every committed quorum entry seen: index → (term, hash of its bytes, the node seen on).
    committed: BTreeMap<u64, (u64, u64, i32)>,
    /// The committed image's hash at each quorum version, and the node it was first seen on.
    images: BTreeMap<u64, (u64, i32)>,
    /// The leader the controller chose for each (topic id, partition, leader epoch).
    chosen: BTreeMap<(u128, i32, i32), i32>,
    /// Topics whose creation was acknowledged, with the partition count acknowledged last.
    acknowledged: BTreeMap<String, i32>,
    /// The ledger's creation was acknowledged.
    ledger_ready: bool,
    /// The latest leader each committed image seen names, by (topic, partition): (epoch, leader).
    leaders: BTreeMap<(String, i32), (i32, i32)>,
    /// The highest high watermark each consumer was told, by (client, partition).
    /// Short epoch ends already reported: (node, partition, its epoch, the epoch asked).
    epoch_ends_told: BTreeSet<(i32, i32, i32, i32)>,
    watermarks: BTreeMap<(usize, i32), i64>,
    /// The final power loss happened; the verifier is reading.
    verifying: bool,
    /// Debugging: the last ledger state printed per (node, partition).
    traced: BTreeMap<(usize, i32), String>,
    done: bool,
}

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in bytes {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn topic_key(id: &spate_core::topics::TopicId) -> u128 {
    u128::from_be_bytes(id.0)
}

impl ClusterSim {
    pub fn new(options: Options) -> ClusterSim {
        let seed = options.seed;
        let faults = ClusterFaults::derive(seed, options.nodes.filter(|&n| n > 0), options.faults);
        let nodes = (0..faults.nodes)
            .map(|i| SimNode {
                id: i as i32 + 1,
                disk: SimDisk::default(),
                shards: None,
                incarnation: 0,
                clock_skew_ms: 0,
                timer_generation: 0,
                overdue: false,
                shard_link_at: BTreeMap::new(),
                conns: BTreeMap::new(),
                peer_conns: BTreeMap::new(),
                conns_made: 0,
                checked_through: 0,
                probed: (u64::MAX, u64::MAX),
            })
            .collect();
        let quiet_at = options.fault_secs * 1_000_000;
        let mut sim = ClusterSim {
            net: Stream::derive(seed, "net"),
            io: Stream::derive(seed, "io"),
            chance: Stream::derive(seed, "chance"),
            now: 0,
            timeline: Timeline::new(),
            nodes,
            clients: Vec::new(),
            cuts: Vec::new(),
            faulty: options.faults,
            end_at: quiet_at + options.quiet_secs * 1_000_000,
            history: History::default(),
            stats: Stats::default(),
            cluster_stats: ClusterStats::default(),
            committed: BTreeMap::new(),
            chosen: BTreeMap::new(),
            images: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            ledger_ready: false,
            leaders: BTreeMap::new(),
            watermarks: BTreeMap::new(),
            epoch_ends_told: BTreeSet::new(),
            verifying: false,
            traced: BTreeMap::new(),
            done: false,
            faults,
            options,
        };
        for (i, work) in [Work::Admin { next_topic: 0 }, Work::Watcher, Work::Watcher]
            .into_iter()
            .enumerate()
        {
            sim.clients.push(SimClient {
                work,
                waiting: None,
                attempts: 0,
                generation: 0,
                rng: Stream::derive(seed, &format!("cluster-client-{i}")),
            });
            sim.schedule_tick(i, 500_000 + i as Micros * 100_000);
        }
        // Two idempotent acks=all producers and a consumer on the ledger.
        let partitions = sim.faults.ledger_partitions;
        for role in [
            Client::producer(LEDGER, partitions, -1, true),
            Client::producer(LEDGER, partitions, -1, true),
            Client::consumer(LEDGER, partitions, false),
        ] {
            sim.add_kafka_client(role, 700_000);
        }
        sim.schedule_faults(quiet_at);
        sim
    }

    fn schedule_faults(&mut self, quiet_at: Micros) {
        for node in 0..self.nodes.len() {
            self.push(0, Event::Restart { node });
        }
        let mut rng = Stream::derive(self.options.seed, "cluster-schedule");
        let n = self.nodes.len();
        if self.faults.crash_mean_ms > 0 {
            let mut at = 0;
            loop {
                let mean = self.faults.crash_mean_ms;
                at += rng.range(mean / 2, mean * 3 / 2) * 1_000;
                if at >= quiet_at {
                    break;
                }
                // Half the crashes hit the controller leader: they force elections.
                let node = match rng.chance(500) {
                    true => None,
                    false => Some(rng.range(0, n as u64 - 1) as usize),
                };
                self.push(at, Event::Crash { node });
            }
        }
        let cut = |rng: &mut Stream, sim: &mut ClusterSim, links: Vec<(usize, usize)>| {
            let at = rng.range(0, quiet_at);
            let heal_at = at + rng.range(200_000, 4_000_000);
            sim.push(at, Event::Cut { links, heal_at });
        };
        for _ in 0..self.faults.isolations {
            if rng.chance(500) {
                let at = rng.range(0, quiet_at);
                let heal_at = at + rng.range(200_000, 4_000_000);
                self.push(at, Event::IsolateLeader { heal_at });
                continue;
            }
            let alone = rng.range(0, n as u64 - 1) as usize;
            let links = (0..n)
                .filter(|&o| o != alone)
                .flat_map(|o| [(alone, o), (o, alone)])
                .collect();
            cut(&mut rng, self, links);
        }
        for _ in 0..self.faults.splits {
            let side: Vec<bool> = (0..n).map(|_| rng.chance(500)).collect();
            let links = (0..n)
                .flat_map(|a| (0..n).map(move |b| (a, b)))
                .filter(|&(a, b)| side[a] != side[b])
                .collect();
            cut(&mut rng, self, links);
        }
        for _ in 0..self.faults.one_way_cuts {
            if n > 1 {
                let from = rng.range(0, n as u64 - 1) as usize;
                let to = (from + 1 + rng.range(0, n as u64 - 2) as usize) % n;
                cut(&mut rng, self, vec![(from, to)]);
            }
        }
        for _ in 0..self.faults.power_losses {
            let at = rng.range(1_000_000, quiet_at);
            self.push(at, Event::PowerLoss { forced: false });
        }
        for _ in 0..self.faults.clock_jumps {
            let at = rng.range(0, quiet_at);
            let node = rng.range(0, n as u64 - 1) as usize;
            let delta_ms = rng.range(0, 10_000) as i64 - 5_000;
            self.push(at, Event::ClockJump { node, delta_ms });
        }
        self.push(quiet_at, Event::QuietPhase);
        self.push(self.end_at, Event::End);
    }

    fn push(&mut self, at: Micros, event: Event) {
        self.timeline.push(at, event);
    }

    fn now_ms(&self, node: usize) -> i64 {
        EPOCH_MS + (self.now / 1_000) as i64 + self.nodes[node].clock_skew_ms
    }

    fn latency(&mut self) -> Micros {
        let (low, high) = self.faults.latency_us;
        let base = self.net.range(low, high);
        if self.faulty && self.net.chance(self.faults.latency_spike_per_mille) {
            base + self.net.range(10_000, 500_000)
        } else {
            base
        }
    }

    /// Runs to the end and returns what happened.
    pub fn run(mut self) -> Outcome {
        while !self.done {
            let Some((at, event)) = self.timeline.pop() else {
                break;
            };
            self.now = at;
            self.stats.events += 1;
            self.timeline.fold(&[at, event.tag()]);
            if self.options.verbose
                && matches!(
                    event,
                    Event::Crash { .. }
                        | Event::Restart { .. }
                        | Event::Cut { .. }
                        | Event::IsolateLeader { .. }
                        | Event::ClockJump { .. }
                        | Event::QuietPhase
                        | Event::PowerLoss { .. }
                        | Event::End
                        | Event::Verified
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
            let touched = event.node();
            let answered = matches!(event, Event::Response { .. });
            self.handle(event);
            if let Some(node) = touched {
                self.probe(node);
            }
            if self.verifying && answered && self.verified() {
                break;
            }
        }
        self.stats.virtual_us = self.now;
        self.cluster_stats.controller_terms = self.history.controller_leaders.len() as u64;
        self.cluster_stats.committed_index = self.committed.keys().last().copied().unwrap_or(0);
        self.cluster_stats.leaderships = self.chosen.len() as u64;
        Outcome {
            faults: Faults::derive(self.options.seed, false),
            cluster: Some((self.faults, self.cluster_stats)),
            history: self.history,
            stats: self.stats,
            trace_hash: self.timeline.trace_hash(),
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::NodeTimer {
                node,
                incarnation,
                generation,
            } => {
                let n = &self.nodes[node];
                if n.incarnation != incarnation || n.timer_generation != generation {
                    return;
                }
                let now_ms = self.now_ms(node);
                let Some(shards) = self.nodes[node].shards.as_mut() else {
                    return;
                };
                let mut overdue = Vec::new();
                for (shard, s) in shards.iter_mut().enumerate() {
                    s.handle_timeout(now_ms);
                    let kinds = s.overdue_deadlines(now_ms);
                    if !kinds.is_empty() {
                        overdue.push(format!(
                            "node {} shard {shard} at {:.3} s: {} still due after handle_timeout",
                            node + 1,
                            self.now as f64 / 1e6,
                            kinds.join(", ")
                        ));
                    }
                }
                self.nodes[node].overdue = !overdue.is_empty();
                let room = crate::OVERDUE_KEPT.saturating_sub(self.history.overdue.len());
                self.history.overdue.extend(overdue.into_iter().take(room));
                self.drain(node);
            }
            Event::IoDone {
                node,
                incarnation,
                shard,
                token,
                io,
            } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].shards.is_none()
                {
                    return; // the node that asked crashed; its disk already decided
                }
                let (result, _) =
                    disk_io::finish(&mut self.nodes[node].disk, &mut self.io, None, io);
                let now_ms = self.now_ms(node);
                if let Some(shards) = self.nodes[node].shards.as_mut() {
                    shards[shard].handle_io_done(now_ms, token, result);
                }
                self.drain(node);
            }
            Event::ToShard {
                node,
                incarnation,
                from,
                shard,
                message,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return;
                }
                let now_ms = self.now_ms(node);
                if let Some(shards) = self.nodes[node].shards.as_mut() {
                    shards[shard].handle_peer_message(now_ms, from, message);
                    self.drain(node);
                }
            }
            Event::Frame { to, frame, .. } => {
                let now_ms = self.now_ms(to);
                if let Some(shards) = self.nodes[to].shards.as_mut() {
                    shards[CONTROL_SHARD].handle_quorum_frame(now_ms, &frame);
                    self.drain(to);
                }
            }
            Event::Crash { node } => {
                if let Some(node) = node.or_else(|| self.controller_leader()) {
                    if self.faulty {
                        self.crash(node);
                    }
                }
            }
            Event::PowerLoss { forced } => {
                if self.faulty || forced {
                    for node in 0..self.nodes.len() {
                        self.crash(node);
                    }
                }
            }
            Event::IsolateLeader { heal_at } => {
                if let (true, Some(alone)) = (self.faulty, self.controller_leader()) {
                    let n = self.nodes.len();
                    self.cuts.extend(
                        (0..n)
                            .filter(|&o| o != alone)
                            .flat_map(|o| [(alone, o, heal_at), (o, alone, heal_at)]),
                    );
                }
            }
            Event::Restart { node } => self.restart(node),
            Event::Cut { links, heal_at } => {
                if self.faulty {
                    let folded: Vec<u64> = links.iter().map(|&(a, b)| (a * 8 + b) as u64).collect();
                    self.timeline.fold(&folded);
                    self.cuts
                        .extend(links.into_iter().map(|(a, b)| (a, b, heal_at)));
                }
            }
            Event::ClockJump { node, delta_ms } => {
                if self.faulty {
                    self.nodes[node].clock_skew_ms += delta_ms;
                    self.arm_timer(node);
                }
            }
            Event::ClientTick { client, generation } => {
                if self.clients[client].generation == generation {
                    self.tick_client(client);
                }
            }
            Event::Request {
                client: _,
                node,
                incarnation,
                conn,
                frame,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return; // the Reset is on its way
                }
                let now_ms = self.now_ms(node);
                if let Some(shards) = self.nodes[node].shards.as_mut() {
                    let home = home_shard(conn, shards.len());
                    shards[home].handle_request(now_ms, conn, frame);
                    self.drain(node);
                }
            }
            Event::Response {
                client,
                attempt,
                frame,
            } => self.on_response(client, attempt, frame),
            Event::PeerRequest {
                from,
                shard,
                incarnation,
                to,
                frame,
            } => self.on_peer_request(from, shard, incarnation, to, frame),
            Event::PeerResponse {
                to,
                shard,
                incarnation,
                from,
                frame,
            } => {
                let now_ms = self.now_ms(to);
                let n = &mut self.nodes[to];
                if n.incarnation == incarnation {
                    if let Some(shards) = n.shards.as_mut() {
                        shards[shard].handle_broker_response(now_ms, from as i32 + 1, frame);
                        self.drain(to);
                    }
                }
            }
            Event::PeerReset {
                node,
                shard,
                incarnation,
                peer,
            } => {
                let now_ms = self.now_ms(node);
                let n = &mut self.nodes[node];
                if n.incarnation == incarnation {
                    if let Some(shards) = n.shards.as_mut() {
                        shards[shard].handle_broker_disconnected(now_ms, peer as i32 + 1);
                        self.drain(node);
                    }
                }
            }
            Event::Reset { client, attempt } => {
                if self.clients[client]
                    .waiting
                    .as_ref()
                    .is_some_and(|w| w.attempt == attempt)
                {
                    self.clients[client].waiting = None;
                    if let Work::Kafka(kafka) = &mut self.clients[client].work {
                        kafka.on_reset();
                    }
                    self.schedule_tick(client, 100_000);
                }
            }
            Event::QuietPhase => {
                self.faulty = false;
                self.cuts.clear();
                for node in 0..self.nodes.len() {
                    self.restart(node);
                }
                // The data clients go on through half the quiet phase (so every run writes
                // to a healthy cluster too), then drain.
                let drain_at = self.now + self.options.quiet_secs * 1_000_000 / 2;
                self.push(drain_at, Event::Drain);
                // Once the cluster is back, every node loses power at once while the
                // producers write: acknowledged records must be on every in-sync disk.
                let at = self.now + self.chance.range(2_000_000, 5_000_000);
                self.push(at, Event::PowerLoss { forced: true });
            }
            Event::Drain => {
                for c in &mut self.clients {
                    if let Work::Kafka(kafka) = &mut c.work {
                        kafka.producing = false;
                    }
                }
            }
            Event::End => {
                self.converged();
                self.ledger_settled();
                // Every node loses power at once: what was acknowledged under acks=all is on
                // every in-sync replica's disk, so the verifier reads all of it after.
                for node in 0..self.nodes.len() {
                    self.crash(node);
                }
                self.verifying = true;
                let role = Client::consumer(LEDGER, self.faults.ledger_partitions, true);
                self.add_kafka_client(role, 1_500_000);
                self.push(self.now + VERIFY_US, Event::Verified);
            }
            Event::Verified => {
                let state = match self.clients.last().map(|c| &c.work) {
                    Some(Work::Kafka(kafka)) => kafka.describe(),
                    _ => String::new(),
                };
                self.history.liveness.push(format!(
                    "the verifier did not read every ledger partition in time: {state}; leaders {:?}",
                    self.leaders.range((LEDGER.to_string(), 0)..(LEDGER.to_string(), i32::MAX)).collect::<Vec<_>>()
                ));
                self.done = true;
            }
        }
    }

    // ---- nodes ----

    fn config(&self, node: usize) -> Config {
        let n = &self.nodes[node];
        Config {
            node_id: n.id,
            seed: self
                .options
                .seed
                .wrapping_mul(31)
                .wrapping_add(n.incarnation * 8 + node as u64),
            advertised_port: 9092 + 100 * node as i32,
            controller_quorum: (0..self.nodes.len() - self.faults.observers)
                .map(|v| (v as i32 + 1, format!("127.0.0.1:{}", 9093 + 100 * v)))
                .collect(),
            broker_session_timeout_ms: self.faults.session_timeout_ms,
            broker_heartbeat_interval_ms: self.faults.heartbeat_interval_ms,
            quorum_snapshot_every: self.faults.snapshot_every,
            auto_create_topics: false,
            planted_bug: self.options.planted_bug,
            rack: (self.faults.racks > 0).then(|| format!("rack-{}", node % self.faults.racks)),
            // A lost fetch is found out within seconds, and a lagging follower leaves the
            // in-sync set within the run.
            replica_socket_timeout_ms: 2_000,
            replica_lag_time_max_ms: 5_000,
            replica_fetch_backoff_ms: 200,
            elections: spate_core::controller::quorum::ElectionConfig {
                check_every_ms: self.faults.leader_rebalance_ms,
                ..Default::default()
            },
            ..Config::default()
        }
    }

    fn restart(&mut self, node: usize) {
        if self.nodes[node].shards.is_some() {
            return;
        }
        let config = self.config(node);
        let now_ms = self.now_ms(node);
        let shards = self.faults.shards;
        let n = &mut self.nodes[node];
        match Broker::start_shards(&config, shards, &mut n.disk, now_ms) {
            Ok(started) => {
                n.shards = Some(
                    started
                        .into_iter()
                        .map(|(broker, _)| ShardNode::new(broker))
                        .collect(),
                );
                n.shard_link_at.clear();
                n.checked_through = 0;
                n.probed = (u64::MAX, u64::MAX);
                self.drain(node);
            }
            Err(error) => {
                self.history
                    .problems
                    .push(format!("node {} failed to start: {error}", node + 1));
                self.done = true;
            }
        }
    }

    fn crash(&mut self, node: usize) {
        if self.nodes[node].shards.take().is_none() {
            return;
        }
        self.stats.crashes += 1;
        let n = &mut self.nodes[node];
        n.incarnation += 1;
        let broken: Vec<(usize, u64)> = std::mem::take(&mut n.conns).into_values().collect();
        let peers: Vec<(usize, usize, u64)> =
            std::mem::take(&mut n.peer_conns).into_values().collect();
        for (to, shard, incarnation) in peers {
            let at = self.now + self.latency();
            let peer = node;
            self.push(
                at,
                Event::PeerReset {
                    node: to,
                    shard,
                    incarnation,
                    peer,
                },
            );
        }
        let n = &mut self.nodes[node];
        let damage = n.disk.crash(&mut self.io);
        self.stats.writes_kept += damage.writes_kept;
        self.stats.writes_torn += damage.writes_torn;
        self.stats.writes_lost += damage.writes_lost;
        self.timeline
            .fold(&[damage.writes_kept, damage.writes_torn, damage.writes_lost]);
        for (client, attempt) in broken {
            let at = self.now + self.latency();
            self.push(at, Event::Reset { client, attempt });
        }
        let delay = self.chance.range(100_000, 3_000_000);
        self.push(self.now + delay, Event::Restart { node });
    }

    fn drain(&mut self, node: usize) {
        loop {
            let next = self.nodes[node].shards.as_mut().and_then(|shards| {
                shards
                    .iter_mut()
                    .enumerate()
                    .find_map(|(shard, s)| s.poll_output().map(|o| (shard, o)))
            });
            let Some((shard, output)) = next else {
                break;
            };
            match output {
                NodeOutput::ToConnection { conn, answer } => self.answer(node, shard, conn, answer),
                NodeOutput::Io(command) => self.start_io(node, shard, command.token, command.op),
                NodeOutput::ToShard { shard: to, message } => {
                    self.stats.shard_messages += 1;
                    let hop = self
                        .net
                        .range(self.faults.shard_hop_us.0, self.faults.shard_hop_us.1);
                    let n = &mut self.nodes[node];
                    let link = n.shard_link_at.entry((shard, to)).or_insert(0);
                    let at = (self.now + hop).max(*link);
                    *link = at;
                    let incarnation = n.incarnation;
                    self.push(
                        at,
                        Event::ToShard {
                            node,
                            incarnation,
                            from: shard,
                            shard: to,
                            message,
                        },
                    );
                }
                NodeOutput::ToNode { node: to, frame } => self.send_frame(node, to, frame),
                NodeOutput::ToBroker {
                    node: to, frame, ..
                } => self.send_peer_request(node, shard, to, frame),
                NodeOutput::Log { level, message } => {
                    self.stats.log_lines += 1;
                    if self.options.verbose {
                        eprintln!(
                            "{:>10.6} node {} shard {shard} {level:?}: {message}",
                            self.now as f64 / 1e6,
                            node + 1
                        );
                    }
                }
            }
        }
        self.arm_timer(node);
    }

    /// A quorum frame on the link between two nodes: lost while the link is cut or by chance,
    /// sometimes sent twice, each copy delayed on its own (so frames may overtake each other).
    fn send_frame(&mut self, from: usize, to_id: i32, frame: Vec<u8>) {
        let Some(to) = usize::try_from(to_id - 1)
            .ok()
            .filter(|&t| t < self.nodes.len())
        else {
            self.history.problems.push(format!(
                "node {} sent a frame to unknown node {to_id}",
                from + 1
            ));
            return;
        };
        self.cluster_stats.frames += 1;
        let cut = self
            .cuts
            .iter()
            .any(|&(a, b, heal_at)| (a, b) == (from, to) && heal_at > self.now);
        if cut || (self.faulty && self.net.chance(self.faults.drop_per_mille)) {
            self.cluster_stats.frames_lost += 1;
            return;
        }
        let copies = match self.faulty && self.net.chance(self.faults.duplicate_per_mille) {
            true => 2,
            false => 1,
        };
        self.cluster_stats.frames_duplicated += copies - 1;
        for _ in 0..copies {
            let at = self.now + self.latency();
            let frame = frame.clone();
            self.push(at, Event::Frame { from, to, frame });
        }
    }

    /// A follower's request to another node: lost while the link is cut or by chance (the
    /// follower's timeout finds out), else it arrives on a connection of its own there.
    fn send_peer_request(&mut self, from: usize, shard: usize, to_id: i32, frame: Bytes) {
        let Some(to) = usize::try_from(to_id - 1)
            .ok()
            .filter(|&t| t < self.nodes.len() && t != from)
        else {
            self.history.problems.push(format!(
                "node {} sent a request to unknown broker {to_id}",
                from + 1
            ));
            return;
        };
        self.cluster_stats.peer_requests += 1;
        if self.link_lost(from, to) {
            self.cluster_stats.frames_lost += 1;
            return;
        }
        let incarnation = self.nodes[from].incarnation;
        let at = self.now + self.latency();
        self.push(
            at,
            Event::PeerRequest {
                from,
                shard,
                incarnation,
                to,
                frame,
            },
        );
    }

    /// Whether a frame from `from` to `to` is lost now: the link is cut, or by chance.
    fn link_lost(&mut self, from: usize, to: usize) -> bool {
        let cut = self
            .cuts
            .iter()
            .any(|&(a, b, heal_at)| (a, b) == (from, to) && heal_at > self.now);
        cut || (self.faulty && self.net.chance(self.faults.drop_per_mille))
    }

    fn on_peer_request(
        &mut self,
        from: usize,
        shard: usize,
        incarnation: u64,
        to: usize,
        frame: Bytes,
    ) {
        let now_ms = self.now_ms(to);
        let n = &mut self.nodes[to];
        let Some(shards) = n.shards.as_mut() else {
            // Connection refused.
            let at = self.now + self.latency();
            let peer = to;
            let node = from;
            return self.push(
                at,
                Event::PeerReset {
                    node,
                    shard,
                    incarnation,
                    peer,
                },
            );
        };
        let home = (n.conns_made % shards.len() as u64) as usize;
        let conn = n.conns_made * shards.len() as u64 + home as u64;
        n.conns_made += 1;
        n.peer_conns.insert(conn, (from, shard, incarnation));
        shards[home].handle_connection_opened(conn, &format!("10.0.0.{}:9092", from + 1));
        shards[home].handle_request(now_ms, conn, frame.slice(4..));
        self.drain(to);
    }

    fn on_peer_answer(&mut self, node: usize, shard: usize, conn: ConnId, answer: Answer) {
        let Some((to, to_shard, incarnation)) = self.nodes[node].peer_conns.remove(&conn) else {
            return;
        };
        let at = self.now + self.latency();
        match answer {
            Answer::Respond(frame) if !self.link_lost(node, to) => self.push(
                at,
                Event::PeerResponse {
                    to,
                    shard: to_shard,
                    incarnation,
                    from: node,
                    frame: frame.slice(4..),
                },
            ),
            Answer::Respond(_) => self.cluster_stats.frames_lost += 1,
            Answer::Close | Answer::NoResponse => self.push(
                at,
                Event::PeerReset {
                    node: to,
                    shard: to_shard,
                    incarnation,
                    peer: node,
                },
            ),
        }
        if let Some(shards) = self.nodes[node].shards.as_mut() {
            shards[shard].handle_connection_closed(conn);
        }
    }

    fn start_io(&mut self, node: usize, shard: usize, token: IoToken, op: IoOp) {
        // Power lost while the quorum journal takes a vote or entries: the moment Raft's
        // promises rest on.
        let appends = matches!(op, IoOp::PersistQuorum { replace: false, .. });
        if appends && self.faulty && self.chance.chance(self.faults.crash_in_append_per_mille) {
            let at = self.now + self.chance.range(0, 2_000);
            self.push(at, Event::Crash { node: Some(node) });
        }
        let n = &mut self.nodes[node];
        let (pending, latency) =
            disk_io::start(&mut n.disk, &mut self.io, &self.faults.disk, false, op);
        let incarnation = n.incarnation;
        self.push(
            self.now + latency,
            Event::IoDone {
                node,
                incarnation,
                shard,
                token,
                io: pending,
            },
        );
    }

    fn arm_timer(&mut self, node: usize) {
        let now_ms = self.now_ms(node);
        let n = &mut self.nodes[node];
        let Some(mut deadline_ms) = n
            .shards
            .as_ref()
            .and_then(|s| s.iter().filter_map(ShardNode::poll_timeout).min())
        else {
            return;
        };
        if n.overdue {
            deadline_ms = deadline_ms.max(now_ms + crate::OVERDUE_RETRY_MS);
        }
        n.timer_generation += 1;
        let wait_ms = (deadline_ms - now_ms).max(0) as u64;
        let (incarnation, generation) = (n.incarnation, n.timer_generation);
        self.push(
            self.now + wait_ms * 1_000,
            Event::NodeTimer {
                node,
                incarnation,
                generation,
            },
        );
    }

    /// A node answered a client's request: the answer travels back, the client closes the
    /// connection (one request per connection).
    fn answer(&mut self, node: usize, shard: usize, conn: ConnId, answer: Answer) {
        if self.nodes[node].peer_conns.contains_key(&conn) {
            return self.on_peer_answer(node, shard, conn, answer);
        }
        let Some((client, attempt)) = self.nodes[node].conns.remove(&conn) else {
            return;
        };
        match answer {
            Answer::Respond(frame) => {
                let at = self.now + self.latency();
                self.push(
                    at,
                    Event::Response {
                        client,
                        attempt,
                        frame,
                    },
                );
            }
            // A change whose quorum append may never commit (leadership moved) cannot be
            // answered either way: the node closes the connection and the client retries.
            Answer::Close => {
                self.cluster_stats.connections_closed += 1;
                let at = self.now + self.latency();
                self.push(at, Event::Reset { client, attempt });
            }
            Answer::NoResponse => {
                self.history.problems.push(format!(
                    "node {} left client {client}'s request unanswered",
                    node + 1
                ));
                let at = self.now + self.latency();
                self.push(at, Event::Reset { client, attempt });
            }
        }
        if let Some(shards) = self.nodes[node].shards.as_mut() {
            shards[shard].handle_connection_closed(conn);
        }
    }

    // ---- clients ----

    fn schedule_tick(&mut self, client: usize, after: Micros) {
        let c = &mut self.clients[client];
        c.generation += 1;
        let generation = c.generation;
        self.push(self.now + after, Event::ClientTick { client, generation });
    }

    /// The client gives up on the connection of its request in flight, if any.
    fn close_waiting(&mut self, client: usize) {
        if let Some(waiting) = self.clients[client].waiting.take() {
            let n = &mut self.nodes[waiting.node];
            if n.conns.remove(&waiting.conn).is_some() && n.incarnation == waiting.incarnation {
                if let Some(shards) = n.shards.as_mut() {
                    let home = home_shard(waiting.conn, shards.len());
                    shards[home].handle_connection_closed(waiting.conn);
                    self.drain(waiting.node);
                }
            }
        }
    }

    fn add_kafka_client(&mut self, role: Role, after: Micros) {
        let id = self.clients.len();
        let mut kafka = Client::new(id, role);
        kafka.on_connected(); // each request opens a connection of its own
        self.clients.push(SimClient {
            work: Work::Kafka(Box::new(kafka)),
            waiting: None,
            attempts: 0,
            generation: 0,
            rng: Stream::derive(self.options.seed, &format!("cluster-client-{id}")),
        });
        self.schedule_tick(id, after);
    }

    /// The node a data client's request goes to: the leader of its partition (a consumer's:
    /// of one drawn at random) as the latest committed metadata seen names it; now and then,
    /// or with no leader known, any node (which answers NOT_LEADER_OR_FOLLOWER).
    fn route(&mut self, client: usize, partition: Option<i32>) -> usize {
        let n = self.nodes.len() as u64;
        let partitions = self.faults.ledger_partitions as u64;
        let rng = &mut self.clients[client].rng;
        let any = rng.range(0, n - 1) as usize;
        let partition = partition.unwrap_or_else(|| rng.range(0, partitions - 1) as i32);
        if rng.chance(50) {
            return any;
        }
        match self.leaders.get(&(LEDGER.to_string(), partition)) {
            Some(&(_, leader)) if leader > 0 && (leader as usize) <= self.nodes.len() => {
                leader as usize - 1
            }
            _ => any,
        }
    }

    fn tick_kafka(&mut self, client: usize) {
        let (now, ready) = (self.now, self.ledger_ready);
        let c = &mut self.clients[client];
        let Work::Kafka(kafka) = &mut c.work else {
            return;
        };
        // A connection per request: there is always one to send on.
        kafka.on_connected();
        let step = kafka.tick(now, &mut c.rng, &mut self.history, ready);
        let target = kafka.target_partition();
        if step.reset {
            self.close_waiting(client);
        }
        if let Some((frame, expects_response)) = step.send {
            let node = self.route(client, target);
            if !self.open_request(client, node, frame, ApiKey::Produce, None) {
                // Refused: the client's request is lost, as with a broken connection.
                if let Work::Kafka(kafka) = &mut self.clients[client].work {
                    kafka.on_reset();
                }
            } else if !expects_response {
                self.clients[client].waiting = None;
            }
        }
        self.schedule_tick(client, step.wake_after_us.unwrap_or(100_000));
    }

    fn tick_client(&mut self, client: usize) {
        if matches!(self.clients[client].work, Work::Kafka(_)) {
            return self.tick_kafka(client);
        }
        // No answer in time: the client gives up on the connection and tries again.
        self.close_waiting(client);
        let admin_done = self.now + ADMIN_STOP_BEFORE_END_US > self.end_at;
        let c = &mut self.clients[client];
        let node = c.rng.range(0, self.nodes.len() as u64 - 1) as usize;
        let (api, frame, topic) = match &mut c.work {
            Work::Admin { .. } if admin_done => return,
            Work::Admin { .. } if !self.ledger_ready => {
                let configs = vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_string(
                        self.faults.ledger_min_insync.to_string(),
                    )))];
                let partitions = self.faults.ledger_partitions;
                let request = CreateTopicsRequest::default()
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str(LEDGER)))
                        .with_num_partitions(partitions)
                        .with_replication_factor(self.faults.ledger_replicas)
                        .with_configs(configs)])
                    .with_timeout_ms(30_000);
                let frame = frame_of(client, c.attempts, ApiKey::CreateTopics, &request);
                let topic = Some((LEDGER.to_string(), partitions));
                (ApiKey::CreateTopics, frame, topic)
            }
            Work::Admin { next_topic } => {
                let grow = self
                    .acknowledged
                    .iter()
                    .filter(|(name, _)| name.as_str() != LEDGER)
                    .nth(c.rng.range(0, self.acknowledged.len().max(1) as u64 - 1) as usize)
                    .filter(|_| c.rng.chance(250))
                    .map(|(name, &count)| (name.clone(), count + 1));
                match grow {
                    Some((name, count)) => {
                        let request = CreatePartitionsRequest::default()
                            .with_topics(vec![CreatePartitionsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name.clone())))
                                .with_count(count)])
                            .with_timeout_ms(30_000);
                        let frame =
                            frame_of(client, c.attempts, ApiKey::CreatePartitions, &request);
                        (ApiKey::CreatePartitions, frame, Some((name, count)))
                    }
                    None => {
                        let name = format!("t{next_topic}");
                        let partitions = c.rng.range(1, 3) as i32;
                        let most = self.nodes.len().min(3) as u64;
                        let factor = match c.rng.chance(100) {
                            true => self.nodes.len() as i16 + 1,
                            false => c.rng.range(1, most) as i16,
                        };
                        let request = CreateTopicsRequest::default()
                            .with_topics(vec![CreatableTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name.clone())))
                                .with_num_partitions(partitions)
                                .with_replication_factor(factor)])
                            .with_timeout_ms(30_000);
                        let frame = frame_of(client, c.attempts, ApiKey::CreateTopics, &request);
                        (ApiKey::CreateTopics, frame, Some((name, partitions)))
                    }
                }
            }
            Work::Watcher => {
                let request = MetadataRequest::default()
                    .with_topics(None)
                    .with_allow_auto_topic_creation(false);
                let frame = frame_of(client, c.attempts, ApiKey::Metadata, &request);
                (ApiKey::Metadata, frame, None)
            }
            Work::Kafka(_) => return,
        };
        if self.open_request(client, node, frame, api, topic) {
            self.schedule_tick(client, REQUEST_TIMEOUT_US);
        } else {
            // Connection refused: try again soon.
            self.schedule_tick(client, 100_000);
        }
    }

    /// Opens a connection from `client` to `node` and sends `frame` on it; false when the
    /// node is down (connection refused).
    fn open_request(
        &mut self,
        client: usize,
        node: usize,
        frame: Bytes,
        api: ApiKey,
        topic: Option<(String, i32)>,
    ) -> bool {
        let c = &mut self.clients[client];
        c.attempts += 1;
        let attempt = c.attempts;
        self.stats.requests += 1;
        let n = &mut self.nodes[node];
        let Some(shards) = n.shards.as_mut() else {
            return false;
        };
        let home = (n.conns_made % shards.len() as u64) as usize;
        let conn = n.conns_made * shards.len() as u64 + home as u64;
        n.conns_made += 1;
        n.conns.insert(conn, (client, attempt));
        shards[home].handle_connection_opened(conn, &format!("10.0.1.{client}:50000"));
        let incarnation = n.incarnation;
        self.clients[client].waiting = Some(Waiting {
            attempt,
            node,
            conn,
            incarnation,
            api,
            topic,
        });
        self.drain(node);
        let at = self.now + self.latency();
        self.push(
            at,
            Event::Request {
                client,
                node,
                incarnation,
                conn,
                frame,
            },
        );
        true
    }

    fn on_response(&mut self, client: usize, attempt: u64, frame: Bytes) {
        let Some(waiting) = self.clients[client]
            .waiting
            .take_if(|w| w.attempt == attempt)
        else {
            return; // an answer to a request given up on
        };
        if let Work::Kafka(kafka) = &mut self.clients[client].work {
            let acked = self.history.acks.len();
            kafka.on_response(frame, self.now, &mut self.history);
            if self.options.verbose {
                for ack in &self.history.acks[acked..] {
                    eprintln!(
                        "{:>10.6} node {} acknowledged {}-{} at {} to client {client}",
                        self.now as f64 / 1e6,
                        waiting.node + 1,
                        ack.topic,
                        ack.partition,
                        ack.base_offset
                    );
                }
            }
            self.check_watermarks(client, waiting.node);
            let think = self.clients[client].rng.range(1_000, 20_000);
            return self.schedule_tick(client, think);
        }
        let version = version_of(waiting.api);
        let mut body = frame.slice(4..);
        let decoded =
            ResponseHeader::decode(&mut body, waiting.api.response_header_version(version))
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    self.on_body(client, version, &mut body, &waiting)
                        .map_err(|e| e.to_string())
                });
        if let Err(e) = decoded {
            self.history.problems.push(format!(
                "client {client}: undecodable {:?} response from node {}: {e}",
                waiting.api,
                waiting.node + 1
            ));
        }
        let think = self.clients[client].rng.range(20_000, 300_000);
        self.schedule_tick(client, think);
    }

    fn on_body(
        &mut self,
        client: usize,
        version: i16,
        body: &mut Bytes,
        waiting: &Waiting,
    ) -> anyhow::Result<()> {
        match waiting.api {
            ApiKey::CreateTopics => {
                let response = CreateTopicsResponse::decode(body, version)?;
                let code = response.topics.first().map_or(-1, |t| t.error_code);
                let (name, partitions) = waiting.topic.clone().unwrap_or_default();
                let Work::Admin { next_topic } = &mut self.clients[client].work else {
                    return Ok(());
                };
                if name == LEDGER {
                    if self.options.verbose {
                        eprintln!(
                            "{:>10.6} creating {LEDGER}: error {code}",
                            self.now as f64 / 1e6
                        );
                    }
                    if code == errors::NONE || code == errors::TOPIC_ALREADY_EXISTS {
                        self.ledger_ready = true;
                        self.acknowledged.insert(name, partitions);
                    }
                    return Ok(());
                }
                match code {
                    errors::NONE => {
                        self.cluster_stats.topics_acknowledged += 1;
                        self.acknowledged.insert(name, partitions);
                        *next_topic += 1;
                    }
                    errors::TOPIC_ALREADY_EXISTS | errors::INVALID_REPLICATION_FACTOR => {
                        *next_topic += 1
                    }
                    _ => {} // tried again (NOT_CONTROLLER, REQUEST_TIMED_OUT, …)
                }
            }
            ApiKey::CreatePartitions => {
                let response = CreatePartitionsResponse::decode(body, version)?;
                let code = response.results.first().map_or(-1, |t| t.error_code);
                if code == errors::NONE {
                    if let Some((name, count)) = waiting.topic.clone() {
                        self.cluster_stats.partitions_added += 1;
                        let known = self.acknowledged.entry(name).or_insert(0);
                        *known = (*known).max(count);
                    }
                }
            }
            _ => {
                let response = MetadataResponse::decode(body, version)?;
                for topic in &response.topics {
                    let name = topic
                        .name
                        .as_ref()
                        .map_or("?", |n| n.0.as_str())
                        .to_string();
                    let id = u128::from_be_bytes(*topic.topic_id.as_bytes());
                    for p in &topic.partitions {
                        if p.leader_id.0 < 0 {
                            continue;
                        }
                        self.cluster_stats.leaders_told += 1;
                        let key = (id, p.partition_index, p.leader_epoch);
                        let kept = self.history.unchosen_leaders.len() < KEPT;
                        if self.chosen.get(&key) != Some(&p.leader_id.0) && kept {
                            self.history.unchosen_leaders.push(format!(
                                "node {} told a client that broker {} leads {name}-{} in epoch {}; the controller chose {:?}",
                                waiting.node + 1,
                                p.leader_id.0,
                                p.partition_index,
                                p.leader_epoch,
                                self.chosen.get(&key)
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A consumer is never told a lower high watermark than before (KIP-207's promise, kept
    /// by Fetch too: a new leader answers no consumer until its high watermark reaches the
    /// start of its epoch).
    fn check_watermarks(&mut self, client: usize, node: usize) {
        let Work::Kafka(kafka) = &self.clients[client].work else {
            return;
        };
        let Some((_, watermarks)) = kafka.consumer_state() else {
            return;
        };
        for (partition, &hw) in watermarks.iter().enumerate() {
            let seen = self
                .watermarks
                .entry((client, partition as i32))
                .or_insert(0);
            if hw < *seen && self.history.watermarks_back.len() < KEPT {
                self.history.watermarks_back.push(format!(
                    "client {client} was told high watermark {hw} of {LEDGER}-{partition} at {:.3} s by node {} after {}",
                    self.now as f64 / 1e6,
                    node + 1,
                    *seen
                ));
            }
            if hw > *seen && self.options.verbose {
                eprintln!(
                    "{:>10.6} client {client} told high watermark {hw} of {LEDGER}-{partition} by node {}",
                    self.now as f64 / 1e6,
                    node + 1
                );
            }
            *seen = (*seen).max(hw);
        }
    }

    /// The end of the quiet phase: the ledger's producers and consumer are done, and every
    /// replica of each partition holds what its leader holds (liveness of replication).
    fn ledger_settled(&mut self) {
        let mut problems = Vec::new();
        for c in &self.clients {
            if let Work::Kafka(kafka) = &c.work {
                if !kafka.is_idle() {
                    problems.push(format!(
                        "client still busy at the end of the quiet phase: {}",
                        kafka.describe()
                    ));
                }
            }
        }
        self.history.liveness.append(&mut problems);
        // The replicas themselves: every one holds what its leader holds (convergence).
        let image = self
            .nodes
            .iter()
            .find_map(|n| n.control()?.quorum_controller())
            .map(|q| q.committed_image().clone());
        if let Some(topic) = image.as_ref().and_then(|i| i.topics.get(LEDGER)) {
            for (p, placed) in topic.partitions.iter().enumerate() {
                let state = |node: i32| {
                    let n = self.nodes.get(usize::try_from(node - 1).ok()?)?;
                    n.shards.as_ref()?.iter().find_map(|s| {
                        let broker = s.broker();
                        let partition = broker.partition(LEDGER, p as i32)?;
                        broker.owns(LEDGER, p as i32).then_some(())?;
                        Some((
                            partition.log.log_end_offset(),
                            partition.high_watermark(),
                            partition.log.epoch_history(),
                        ))
                    })
                };
                let Some(leader) = state(placed.leader) else {
                    problems.push(format!(
                        "{LEDGER}-{p}: its leader {} serves nothing",
                        placed.leader
                    ));
                    continue;
                };
                if leader.0 != leader.1 {
                    problems.push(format!(
                        "{LEDGER}-{p}: leader {} ends at {}, its high watermark is {}",
                        placed.leader, leader.0, leader.1
                    ));
                }
                for &replica in &placed.replicas {
                    match state(replica) {
                        Some(s) if s.0 == leader.0 && s.2 == leader.2 => {}
                        other => problems.push(format!(
                            "{LEDGER}-{p}: replica {replica} has (end, high watermark, epochs) {other:?}, leader {} has {leader:?}",
                            placed.leader
                        )),
                    }
                }
                if placed.in_sync.len() != placed.replicas.len() {
                    problems.push(format!(
                        "{LEDGER}-{p}: in sync {:?} of replicas {:?} after the faults",
                        placed.in_sync, placed.replicas
                    ));
                }
            }
        } else if self.ledger_ready {
            problems.push(format!("{LEDGER} is not in the committed metadata"));
        }
        self.history.divergence.extend(problems);
    }

    /// Whether the verifier has read every ledger partition to its leader's high watermark.
    fn verified(&self) -> bool {
        if !self.ledger_ready {
            return true; // never created (the quorum was slow to form): nothing to read
        }
        let Some(SimClient {
            work: Work::Kafka(kafka),
            ..
        }) = self.clients.last()
        else {
            return false;
        };
        let Some((next, _)) = kafka.consumer_state() else {
            return false;
        };
        (0..self.faults.ledger_partitions).all(|p| {
            let Some(&(_, leader)) = self.leaders.get(&(LEDGER.to_string(), p)) else {
                return false;
            };
            let hw = usize::try_from(leader - 1)
                .ok()
                .and_then(|i| self.nodes.get(i))
                .and_then(|n| n.shards.as_ref())
                .and_then(|shards| {
                    shards.iter().find_map(|s| {
                        let partition = s.broker().partition(LEDGER, p)?;
                        s.broker().owns(LEDGER, p).then_some(())?;
                        partition
                            .replica
                            .serves_consumers()
                            .then(|| partition.high_watermark())
                    })
                });
            hw.is_some_and(|hw| hw == next[p as usize])
        })
    }

    /// A leader never believes a follower of its epoch holds on disk more than the
    /// follower's disk does (what acks=all counts on): the follower's flushed offset never
    /// falls below what it reported, within one leadership.
    fn check_follower_durability(&mut self) {
        for p in 0..self.faults.ledger_partitions {
            for leader in &self.nodes {
                let Some(led) = replica_of(leader, p).filter(|r| r.replica.is_leader()) else {
                    continue;
                };
                for follower in &self.nodes {
                    let Some(f) = replica_of(follower, p) else {
                        continue;
                    };
                    let same = f.replica.leader_node() == Some(leader.id)
                        && f.replica.leader_epoch() == led.replica.leader_epoch();
                    let believed = led.replica.member_progress(follower.id);
                    if let (true, Some(believed)) = (same, believed) {
                        let flushed = f.log.flushed_offset();
                        if believed.durable > flushed
                            && self.history.follower_durability.len() < KEPT
                        {
                            self.history.follower_durability.push(format!(
                                "at {:.3} s node {} leading {LEDGER}-{p} in epoch {} counts node {} durable to {}, its disk holds {flushed}",
                                self.now as f64 / 1e6,
                                leader.id,
                                led.replica.leader_epoch(),
                                follower.id,
                                believed.durable
                            ));
                        }
                    }
                }
            }
        }
    }

    /// KIP-320: a leader asked where an older epoch ends (as a consumer asks after a leader
    /// change) never answers below a batch of that epoch some consumer read; librdkafka
    /// would seek back there and drop what it had fetched beyond.
    fn check_epoch_ends(&mut self, node: usize) {
        let Some(shards) = self.nodes[node].shards.as_ref() else {
            return;
        };
        let mut short = Vec::new();
        for s in shards {
            let b = s.broker();
            for p in 0..self.faults.ledger_partitions {
                let Some(current) = b
                    .partition(LEDGER, p)
                    .filter(|r| b.owns(LEDGER, p) && r.replica.is_leader())
                    .map(|r| r.replica.leader_epoch())
                else {
                    continue;
                };
                let read = self
                    .history
                    .epoch_reads
                    .range((LEDGER.to_string(), p, i32::MIN)..(LEDGER.to_string(), p, current));
                for (&(_, _, epoch), &read_to) in read {
                    let Ok((_, end)) = b.epoch_end_offset(LEDGER, p, current, epoch) else {
                        continue;
                    };
                    let key = (self.nodes[node].id, p, current, epoch);
                    if end < read_to && self.epoch_ends_told.insert(key) {
                        short.push(format!(
                            "at {:.3} s node {} leading {LEDGER}-{p} in epoch {current} says epoch {epoch} ends at {end}; a consumer read a batch of it at {}",
                            self.now as f64 / 1e6,
                            self.nodes[node].id,
                            read_to - 1
                        ));
                    }
                }
            }
        }
        let room = KEPT.saturating_sub(self.history.epoch_ends_short.len());
        self.history
            .epoch_ends_short
            .extend(short.into_iter().take(room));
    }

    /// Debugging (`SPATE_SIM_TRACE_LEDGER=1 --verbose`): each change of a node's ledger
    /// replicas (role, epochs, log end, flushed and high watermark, epoch history).
    fn trace_ledger(&mut self, node: usize) {
        let Some(shards) = self.nodes[node].shards.as_ref() else {
            return;
        };
        let image = self.nodes[node]
            .control()
            .and_then(|c| c.quorum_controller())
            .map(|q| q.committed_image());
        for p in 0..self.faults.ledger_partitions {
            let placed = image
                .and_then(|i| i.topics.get(LEDGER))
                .and_then(|t| t.partitions.get(p as usize))
                .map(|pl| {
                    (
                        pl.leader,
                        pl.leader_epoch,
                        pl.in_sync.clone(),
                        pl.partition_epoch,
                    )
                });
            for s in shards {
                let b = s.broker();
                let Some(part) = b.partition(LEDGER, p).filter(|_| b.owns(LEDGER, p)) else {
                    continue;
                };
                let state = format!(
                    "committed {placed:?}; leader {:?} epoch {} in sync {:?} end {} flushed {} hw {} epochs {:?}",
                    part.replica.leader_node(),
                    part.replica.leader_epoch(),
                    part.replica.in_sync().collect::<Vec<_>>(),
                    part.log.log_end_offset(),
                    part.log.flushed_offset(),
                    part.high_watermark(),
                    part.log.epoch_history()
                );
                let key = (node, p);
                if self.traced.get(&key) != Some(&state) {
                    eprintln!(
                        "{:>10.6} node {} {LEDGER}-{p}: {state}",
                        self.now as f64 / 1e6,
                        node + 1
                    );
                    self.traced.insert(key, state);
                }
            }
        }
    }

    // ---- the checkers' probes ----

    /// Reads node `node`'s quorum and metadata state after an event and holds it against
    /// what was seen before.
    fn probe(&mut self, node: usize) {
        let n = &self.nodes[node];
        let id = n.id;
        let Some(control) = n.control() else {
            return;
        };
        let Some(quorum) = control.quorum_controller() else {
            return;
        };
        let raft = quorum.raft();
        let term = raft.term();
        if raft.role() == RaftRole::Leader {
            self.history
                .controller_leaders
                .entry(term)
                .or_default()
                .insert(id);
        }
        let observer = !raft.voters().contains(&id);
        if observer
            && raft.role() != RaftRole::Follower
            && self.history.observers_standing.len() < KEPT
        {
            self.history.observers_standing.push(format!(
                "broker-only node {id} is {:?} in term {term}",
                raft.role()
            ));
        }
        // Committed entries: the same on every node.
        let committed_index = raft.committed_index();
        let mut conflicts = Vec::new();
        for index in n.checked_through + 1..=committed_index {
            let Some(entry) = raft.entry(index) else {
                continue; // in the snapshot
            };
            let seen = (entry.term, fnv(&entry.data, entry.term));
            match self.committed.get(&index) {
                None => {
                    self.committed.insert(index, (seen.0, seen.1, id));
                }
                Some(&(term0, hash0, by)) if (term0, hash0) != seen => conflicts.push(format!(
                    "committed entry {index}: of term {term0} on node {by}, of term {} (other bytes) on node {id}",
                    seen.0
                )),
                Some(_) => {}
            }
        }
        // A leader, new in its term, holds every entry committed anywhere before.
        let new_leadership = raft.role() == RaftRole::Leader && n.probed.1 != term;
        if new_leadership {
            let last_committed = self.committed.keys().last().copied().unwrap_or(0);
            if raft.last_index() < last_committed {
                conflicts.push(format!(
                    "node {id} leads term {term} with a log through {}, but entry {last_committed} was committed",
                    raft.last_index()
                ));
            }
            for index in raft.snapshot_index() + 1..=raft.last_index().min(last_committed) {
                let (Some(entry), Some(&(term0, hash0, by))) =
                    (raft.entry(index), self.committed.get(&index))
                else {
                    continue;
                };
                if (entry.term, fnv(&entry.data, entry.term)) != (term0, hash0) {
                    conflicts.push(format!(
                        "node {id} leads term {term} with entry {index} of term {}, but node {by} committed one of term {term0} there",
                        entry.term
                    ));
                }
            }
        }
        // Leaders the controller chose, from each committed image.
        let applied = quorum.applied_index();
        let mut unchosen = Vec::new();
        if applied != n.probed.0 {
            let image = quorum.committed_image();
            Self::record_chosen(&mut self.chosen, image, id, &mut unchosen);
            for topic in image.topics.values() {
                for (p, placed) in topic.partitions.iter().enumerate() {
                    let key = (topic.name.clone(), p as i32);
                    let known = self.leaders.entry(key).or_insert((-1, NO_LEADER));
                    if placed.leader_epoch >= known.0 {
                        *known = (placed.leader_epoch, placed.leader);
                    }
                }
            }
            // The whole image at each version is the same on every node (entries a snapshot
            // replaced are checked this way too).
            let hash = fnv(&encode_records(&image.snapshot()), applied);
            match self.images.get(&applied) {
                None => {
                    self.images.insert(applied, (hash, id));
                }
                Some(&(hash0, by)) if hash0 != hash => conflicts.push(format!(
                    "the metadata of version {applied} on node {id} differs from node {by}'s"
                )),
                Some(_) => {}
            }
        }
        // A node leads only where the controller chose it.
        for s in self.nodes[node].shards.iter().flatten() {
            for (topic_id, name, partition, epoch) in s.broker().led_partitions() {
                let key = (topic_key(&topic_id), partition, epoch);
                if self.chosen.get(&key) != Some(&id) {
                    unchosen.push(format!(
                        "node {id} leads {name}-{partition} in epoch {epoch}; the controller chose {:?}",
                        self.chosen.get(&key)
                    ));
                }
            }
        }
        if self.options.verbose && std::env::var_os("SPATE_SIM_TRACE_LEDGER").is_some() {
            self.trace_ledger(node);
        }
        self.check_follower_durability();
        self.check_epoch_ends(node);
        let n = &mut self.nodes[node];
        n.checked_through = n.checked_through.max(committed_index);
        n.probed = (applied, if raft_leads(n) { term } else { u64::MAX });
        // The first few of a kind are enough to show a bug.
        let room = KEPT.saturating_sub(self.history.metadata_conflicts.len());
        self.history
            .metadata_conflicts
            .extend(conflicts.into_iter().take(room));
        let room = KEPT.saturating_sub(self.history.unchosen_leaders.len());
        self.history
            .unchosen_leaders
            .extend(unchosen.into_iter().take(room));
    }

    fn record_chosen(
        chosen: &mut BTreeMap<(u128, i32, i32), i32>,
        image: &MetadataImage,
        node: i32,
        problems: &mut Vec<String>,
    ) {
        for topic in image.topics.values() {
            for (p, placed) in topic.partitions.iter().enumerate() {
                if placed.leader == NO_LEADER {
                    continue;
                }
                if image.brokers.get(&placed.leader).is_some_and(|b| b.fenced) {
                    problems.push(format!(
                        "node {node}'s committed metadata has fenced broker {} leading {}-{p} in epoch {}",
                        placed.leader, topic.name, placed.leader_epoch
                    ));
                }
                let key = (topic_key(&topic.id), p as i32, placed.leader_epoch);
                let earlier = *chosen.entry(key).or_insert(placed.leader);
                if earlier != placed.leader {
                    problems.push(format!(
                        "{}-{p} in epoch {}: led by {earlier} and by {} in committed metadata",
                        topic.name, placed.leader_epoch, placed.leader
                    ));
                }
            }
        }
    }

    /// At the end: every node up, and all with the same metadata, every broker registered
    /// and unfenced, every partition led, every acknowledged change there.
    fn converged(&mut self) {
        let mut problems = Vec::new();
        let mut images: Vec<(i32, &MetadataImage, u64)> = Vec::new();
        for n in &self.nodes {
            let Some(control) = n.control() else {
                problems.push(format!("node {} is down at the end", n.id));
                continue;
            };
            let (Some(quorum), Some(mirrored)) =
                (control.quorum_controller(), control.metadata_image())
            else {
                problems.push(format!("node {} has no controller quorum seat", n.id));
                continue;
            };
            let committed = quorum.committed_image();
            if mirrored.quorum_index != quorum.applied_index()
                || !committed.changes_to(mirrored).is_empty()
            {
                problems.push(format!(
                    "node {} serves metadata of version {} but has applied version {} of the quorum",
                    n.id,
                    mirrored.quorum_index,
                    quorum.applied_index()
                ));
            }
            images.push((n.id, committed, quorum.applied_index()));
        }
        if let Some(&(first, image, version)) = images.first() {
            for &(id, other, other_version) in &images[1..] {
                let differs = image.changes_to(other);
                if !differs.is_empty() || version != other_version {
                    problems.push(format!(
                        "node {id} (version {other_version}) does not have node {first}'s metadata (version {version}): {:?}",
                        differs.iter().take(3).collect::<Vec<_>>()
                    ));
                }
            }
            if image.brokers.len() != self.nodes.len() || image.brokers.values().any(|b| b.fenced) {
                problems.push(format!(
                    "not every broker is registered and unfenced: {:?}",
                    image
                        .brokers
                        .iter()
                        .map(|(id, b)| (*id, b.fenced))
                        .collect::<Vec<_>>()
                ));
            }
            for topic in image.topics.values() {
                if let Some(p) = topic.partitions.iter().position(|p| p.leader == NO_LEADER) {
                    problems.push(format!("{}-{p} has no leader after the faults", topic.name));
                }
            }
            let mut lost = Vec::new();
            for (name, &count) in &self.acknowledged {
                match image.topics.get(name) {
                    None => lost.push(format!(
                        "topic {name}, whose creation was acknowledged, is gone"
                    )),
                    Some(t) if (t.partitions.len() as i32) < count => lost.push(format!(
                        "topic {name} has {} partitions; {count} were acknowledged",
                        t.partitions.len()
                    )),
                    Some(_) => {}
                }
            }
            self.history.metadata_conflicts.extend(lost);
        }
        let leaders = self
            .nodes
            .iter()
            .filter_map(|n| n.control()?.quorum_controller())
            .filter(|q| q.is_active())
            .count();
        if leaders != 1 {
            problems.push(format!("{leaders} active controllers at the end"));
        }
        self.history.divergence.extend(problems);
    }
}

impl ClusterSim {
    /// The node that leads the controller quorum now (the first, should there be several).
    fn controller_leader(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| raft_leads(&self.nodes[i]))
    }
}

/// An admin or watcher request of `client` as a frame, in the version it speaks `api` in.
fn frame_of<R: kafka_protocol::protocol::Encodable>(
    client: usize,
    attempts: u64,
    api: ApiKey,
    request: &R,
) -> Bytes {
    encode_request(client, attempts as i32, api, version_of(api), request)
}

/// The version the simulated clients speak each API in.
fn version_of(api: ApiKey) -> i16 {
    match api {
        ApiKey::CreatePartitions => 3,
        ApiKey::CreateTopics => 7,
        _ => 12, // Metadata
    }
}

/// The ledger partition `p` as node `n`'s owning shard holds it, while `n` runs.
fn replica_of(n: &SimNode, p: i32) -> Option<&spate_core::partition::Partition> {
    n.shards.as_ref()?.iter().find_map(|s| {
        let b = s.broker();
        b.partition(LEDGER, p).filter(|_| b.owns(LEDGER, p))
    })
}

fn raft_leads(n: &SimNode) -> bool {
    n.control()
        .and_then(|c| c.quorum_controller())
        .is_some_and(|q| q.raft().role() == RaftRole::Leader)
}

/// Runs one seed as a cluster.
pub fn run(options: Options) -> Outcome {
    ClusterSim::new(options).run()
}
