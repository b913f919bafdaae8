//! The controller quorum under faults: three voters on a network that delays, reorders and
//! drops messages and cuts nodes off, with slow disks and crashes back to what each stored,
//! while the active controller takes a stream of metadata changes and every voter's broker
//! heartbeats to the leader it knows. Checked on every seed: no committed entry is read two
//! ways, nothing is published that does not end up committed, every voter ends with the same
//! image (the one the published records build), an active controller fences a broker silent
//! for a session, every broker ends registered (its current life) and unfenced, and the quorum
//! still takes changes once the faults stop. Planted bugs (publishing on append, never
//! fencing) are caught.

use super::quorum::{AppendError, Heartbeat, Published, QuorumBug, QuorumController, QuorumOutput};
use super::{MetadataImage, MetadataRecord};
use crate::raft::{Index, Message, Persist, RaftConfig, Stored};
use crate::replica::NodeId;
use crate::rng::Rng;
use crate::topics::TopicId;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

const VOTERS: [NodeId; 3] = [1, 2, 3];
/// Each voter is a broker too: it heartbeats this often, and is fenced after this silence.
const HEARTBEAT_MS: i64 = 300;
const SESSION_MS: i64 = 1_500;

/// What travels between voters.
enum Frame {
    Raft(Message),
    Beat(Heartbeat),
}

struct Voter {
    controller: Option<QuorumController>,
    stored: Stored,
    /// Persists handed out and not yet on disk (lost in a crash).
    persisting: VecDeque<Persist>,
    restart_at: Option<i64>,
    /// This life of the voter's broker, and when it heartbeats next.
    incarnation: u64,
    next_beat_ms: i64,
    /// Since when nothing it sends gets through (down, or cut off).
    silent_since: Option<i64>,
    /// Since when it has been the active controller.
    active_since: Option<i64>,
}

struct Cluster {
    voters: BTreeMap<NodeId, Voter>,
    now_ms: i64,
    /// (arrival, sequence) → (from, to, frame).
    wire: BTreeMap<(i64, u64), (NodeId, NodeId, Frame)>,
    sent: u64,
    cut: BTreeSet<NodeId>,
    rng: Rng,
    seed: u64,
    planted: Option<QuorumBug>,
    /// Every committed version any voter published, by index (the first seen).
    published: BTreeMap<Index, Vec<MetadataRecord>>,
    violations: Vec<String>,
    topics_made: u32,
    appends: u64,
    /// Images published past the start (a restart, or a snapshot restored).
    images_published: u64,
}

impl Cluster {
    fn new(seed: u64, planted: Option<QuorumBug>) -> Cluster {
        let mut cluster = Cluster {
            voters: BTreeMap::new(),
            now_ms: 0,
            wire: BTreeMap::new(),
            sent: 0,
            cut: BTreeSet::new(),
            rng: Rng::new(seed),
            seed,
            planted,
            published: BTreeMap::new(),
            violations: Vec::new(),
            topics_made: 0,
            appends: 0,
            images_published: 0,
        };
        for id in VOTERS {
            let voter = Voter {
                controller: None,
                stored: Stored::default(),
                persisting: VecDeque::new(),
                restart_at: None,
                incarnation: 0,
                next_beat_ms: 0,
                silent_since: None,
                active_since: None,
            };
            cluster.voters.insert(id, voter);
            cluster.start(id);
        }
        cluster
    }

    fn chance(&mut self, per_thousand: u64) -> bool {
        self.rng.next_u64() % 1000 < per_thousand
    }

    fn start(&mut self, id: NodeId) {
        let config = RaftConfig::new(id, VOTERS.to_vec(), self.seed);
        let stored = self.voters[&id].stored.clone();
        // A small snapshot interval, so snapshots are taken and sent under the faults.
        let controller = QuorumController::new(config, stored, self.now_ms, 20, self.planted)
            .expect("a voter restarts from what it stored")
            .with_session_timeout(SESSION_MS);
        let voter = self.voters.get_mut(&id).expect("a voter");
        voter.controller = Some(controller);
        voter.restart_at = None;
        voter.incarnation += 1;
        voter.next_beat_ms = self.now_ms;
        if !self.cut.contains(&id) {
            voter.silent_since = None;
        }
        self.drain(id);
    }

    fn crash(&mut self, id: NodeId) {
        let voter = self.voters.get_mut(&id).expect("a voter");
        voter.controller = None;
        voter.persisting.clear();
        voter.active_since = None;
        voter.silent_since.get_or_insert(self.now_ms);
        let back = self.now_ms + 200 + (self.rng.next_u64() % 2_000) as i64;
        self.voters.get_mut(&id).expect("a voter").restart_at = Some(back);
    }

    /// Everything a voter's controller has to say: stored, sent, published.
    fn drain(&mut self, id: NodeId) {
        loop {
            let voter = self.voters.get_mut(&id).expect("a voter");
            let Some(controller) = voter.controller.as_mut() else {
                return;
            };
            let published = controller.poll_published();
            let output = controller.poll_output();
            if output.is_none() && published.is_none() {
                return;
            }
            match output {
                Some(QuorumOutput::Persist(persist)) => voter.persisting.push_back(persist),
                Some(QuorumOutput::Send(message)) => {
                    let to = message.to;
                    self.send(id, to, Frame::Raft(message));
                }
                Some(QuorumOutput::Error(error)) => {
                    self.violations.push(format!("node {id}: {error}"))
                }
                Some(QuorumOutput::Abandoned(_)) | None => {}
            }
            if let Some(Published::Image { index, .. }) = &published {
                self.images_published += u64::from(*index > 0);
            }
            if let Some(Published::Records { index, records }) = published {
                match self.published.get(&index) {
                    Some(first) if *first != records => self.violations.push(format!(
                        "node {id} published {records:?} at {index}, another published {first:?}"
                    )),
                    Some(_) => {}
                    None => {
                        self.published.insert(index, records);
                    }
                }
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, frame: Frame) {
        let delay = 1 + (self.rng.next_u64() % 30) as i64;
        self.sent += 1;
        self.wire
            .insert((self.now_ms + delay, self.sent), (from, to, frame));
    }

    /// Each live voter's broker heartbeats to the leader it knows (itself, when it leads).
    fn heartbeats(&mut self) {
        let now = self.now_ms;
        for id in VOTERS {
            let voter = self.voters.get_mut(&id).expect("a voter");
            let Some(controller) = voter.controller.as_mut() else {
                continue;
            };
            if voter.next_beat_ms > now {
                continue;
            }
            voter.next_beat_ms = now + HEARTBEAT_MS;
            let beat = Heartbeat {
                node: id,
                incarnation: voter.incarnation,
                host: "127.0.0.1".into(),
                port: 9000 + id as u16,
                rack: (id % 2 == 0).then(|| "even".to_string()),
                shutting_down: false,
                // Now and then a broker asks for producer ids: blocks commit in order.
                wants_producer_ids: (now / HEARTBEAT_MS) % 4 == 0,
            };
            match controller.raft().leader() {
                Some(leader) if leader == id => {
                    let _ = controller.handle_heartbeat(now, beat);
                    self.drain(id);
                }
                Some(leader) => self.send(id, leader, Frame::Beat(beat)),
                None => {}
            }
        }
    }

    /// An active controller fences a broker it has not heard from for a session: checked
    /// from a session (and a margin for messages in flight) after the broker went silent or
    /// the controller became active, whichever is later.
    fn check_fencing(&mut self) {
        let now = self.now_ms;
        for id in VOTERS {
            let Some(active_since) = self.voters[&id].active_since else {
                continue;
            };
            let image = self.voters[&id]
                .controller
                .as_ref()
                .expect("active")
                .image();
            for other in VOTERS.into_iter().filter(|&o| o != id) {
                let Some(silent_since) = self.voters[&other].silent_since else {
                    continue;
                };
                let due = silent_since.max(active_since) + SESSION_MS + 200;
                let unfenced = image.brokers.get(&other).is_some_and(|b| !b.fenced);
                if now > due && unfenced {
                    self.violations.push(format!(
                        "at {now}: node {other} silent since {silent_since} is unfenced on node {id}, active since {active_since}"
                    ));
                }
            }
        }
    }

    fn step(&mut self, faults: bool) {
        self.now_ms += 1 + (self.rng.next_u64() % 5) as i64;
        let now = self.now_ms;
        // Messages due, unless an end is down or cut off, or lost.
        while let Some(entry) = self.wire.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (from, to, frame) = entry.remove();
            let lost = faults && self.chance(20);
            if lost || self.cut.contains(&from) || self.cut.contains(&to) {
                continue;
            }
            if let Some(controller) = self.voters.get_mut(&to).and_then(|v| v.controller.as_mut()) {
                match frame {
                    Frame::Raft(message) => controller.handle_message(now, message),
                    Frame::Beat(beat) => {
                        let _ = controller.handle_heartbeat(now, beat);
                    }
                }
                self.drain(to);
            }
        }
        self.heartbeats();
        for id in VOTERS {
            let voter = self.voters.get_mut(&id).expect("a voter");
            let active = voter
                .controller
                .as_ref()
                .is_some_and(QuorumController::is_active);
            match (active, voter.active_since) {
                (true, None) => voter.active_since = Some(now),
                (false, Some(_)) => voter.active_since = None,
                _ => {}
            }
        }
        self.check_fencing();
        for id in VOTERS {
            if self.voters[&id].restart_at.is_some_and(|at| at <= now) {
                self.start(id);
            }
            // A slow disk: a persist completes on some steps only.
            let done = !self.voters[&id].persisting.is_empty() && self.chance(400);
            let voter = self.voters.get_mut(&id).expect("a voter");
            if let (true, Some(controller)) = (done, voter.controller.as_mut()) {
                let persist = voter.persisting.pop_front().expect("checked");
                voter.stored.apply(&persist);
                controller.handle_persisted(persist.seq);
            }
            if let Some(controller) = voter.controller.as_mut() {
                if controller.poll_timeout() <= now {
                    controller.handle_timeout(now);
                }
            }
            self.drain(id);
        }
        if self.chance(100) {
            self.append_somewhere();
        }
        if faults {
            let id = VOTERS[(self.rng.next_u64() % 3) as usize];
            if self.chance(2) && self.voters[&id].controller.is_some() {
                self.crash(id);
            } else if self.chance(3) && self.cut.is_empty() {
                self.cut.insert(id);
                let voter = self.voters.get_mut(&id).expect("a voter");
                voter.silent_since.get_or_insert(now);
            } else if self.chance(3) {
                self.heal();
            }
        }
    }

    /// Cut links mend: a live voter that was cut off is heard again; a crashed one's last
    /// frames, sent while it was cut and still on the wire, may now arrive.
    fn heal(&mut self) {
        let now = self.now_ms;
        for id in std::mem::take(&mut self.cut) {
            let voter = self.voters.get_mut(&id).expect("a voter");
            voter.silent_since = match voter.controller {
                Some(_) => None,
                None => Some(now),
            };
        }
    }

    /// A metadata change on the active controller, if there is one: a new topic, a deleted
    /// one, or a topic's configs, chosen from what its image holds.
    fn append_somewhere(&mut self) {
        let Some(id) = VOTERS.into_iter().find(|id| {
            let controller = self.voters[id].controller.as_ref();
            controller.is_some_and(QuorumController::is_active)
        }) else {
            return;
        };
        let roll = self.rng.next_u64() % 10;
        let existing: Vec<TopicId> = {
            let image = self.voters[&id]
                .controller
                .as_ref()
                .expect("active")
                .image();
            image.topics.values().map(|t| t.id).collect()
        };
        let pick = existing
            .get((self.rng.next_u64() as usize) % existing.len().max(1))
            .copied();
        let record = match (roll, pick) {
            (0..=1, Some(id)) => MetadataRecord::TopicDeleted { id },
            (2..=3, Some(id)) => MetadataRecord::TopicConfigs {
                id,
                configs: BTreeMap::from([("retention.ms".into(), roll.to_string())]),
            },
            _ => {
                self.topics_made += 1;
                MetadataRecord::TopicCreated {
                    id: TopicId(self.rng.bytes16()),
                    name: format!("t{}", self.topics_made),
                    replicas: vec![vec![1, 2, 3]],
                    configs: BTreeMap::new(),
                }
            }
        };
        let controller = self.voters.get_mut(&id).and_then(|v| v.controller.as_mut());
        match controller.expect("active").append(vec![record]) {
            Ok(_) => self.appends += 1,
            Err(AppendError::Refused(error)) => self
                .violations
                .push(format!("node {id} refused a fitting change: {error}")),
            Err(_) => {}
        }
        self.drain(id);
    }

    /// Faults for `fault_ms`, then quiet (everything up, nothing cut or lost) until every
    /// voter has the same image and a last change committed everywhere; then the checks.
    /// Returns the changes taken and the images published past the start.
    fn run(mut self, fault_ms: i64) -> Result<(u64, u64), String> {
        while self.now_ms < fault_ms {
            self.step(true);
        }
        self.heal();
        for id in VOTERS {
            if self.voters[&id].controller.is_none() {
                self.start(id);
            }
        }
        let quiet_until = self.now_ms + 20_000;
        let mut last: Option<Index> = None;
        while self.now_ms < quiet_until {
            self.step(false);
            if last.is_none() {
                last = self.append_last();
            }
            let applied: BTreeSet<Index> = self
                .voters
                .values()
                .map(|v| v.controller.as_ref().expect("up").applied_index())
                .collect();
            if last.is_some_and(|l| applied.len() == 1 && applied.first() >= Some(&l))
                && self.all_registered()
            {
                break;
            }
        }
        if !self.all_registered() {
            self.violations.push(
                "after the faults, not every voter's broker is registered (its current life) and unfenced everywhere"
                    .into(),
            );
        }
        let images: Vec<&MetadataImage> = self
            .voters
            .values()
            .map(|v| v.controller.as_ref().expect("up").committed_image())
            .collect();
        let Some(last) = last else {
            return Err("no controller took a change after the faults stopped".into());
        };
        if images.windows(2).any(|w| w[0] != w[1]) {
            self.violations.push(format!(
                "the voters' images differ at the end (last change at {last})"
            ));
        }
        let mut rebuilt = MetadataImage::default();
        for (index, records) in &self.published {
            for record in records {
                if let Err(error) = rebuilt.apply(record) {
                    self.violations
                        .push(format!("published at {index}: {error}"));
                }
            }
        }
        if rebuilt != *images[0] {
            self.violations.push(
                "what was published does not build the committed image: something published never committed"
                    .into(),
            );
        }
        match self.violations.first() {
            Some(first) => Err(format!(
                "{} violation(s), first: {first}",
                self.violations.len()
            )),
            None => Ok((self.appends, self.images_published)),
        }
    }

    /// Every voter's committed image has every voter's broker, in its current life, unfenced.
    fn all_registered(&self) -> bool {
        self.voters.values().all(|v| {
            let Some(controller) = v.controller.as_ref() else {
                return false;
            };
            VOTERS.iter().all(|id| {
                let broker = controller.committed_image().brokers.get(id);
                broker.is_some_and(|b| !b.fenced && b.incarnation == self.voters[id].incarnation)
            })
        })
    }

    /// The change that shows the quorum is live after the faults.
    fn append_last(&mut self) -> Option<Index> {
        let id = VOTERS.into_iter().find(|id| {
            self.voters[id]
                .controller
                .as_ref()
                .is_some_and(QuorumController::is_active)
        })?;
        let record = MetadataRecord::ProducerIds { limit: 1 << 30 };
        let controller = self.voters.get_mut(&id)?.controller.as_mut()?;
        let index = controller.append(vec![record]).ok();
        self.drain(id);
        index
    }
}

#[test]
fn a_swarm_of_faults_keeps_the_voters_images_one_and_publishes_only_what_commits() {
    let (mut appends, mut images) = (0, 0);
    for seed in 0..100 {
        match Cluster::new(seed, None).run(20_000) {
            Ok((a, i)) => (appends, images) = (appends + a, images + i),
            Err(error) => panic!("seed {seed}: {error}"),
        }
    }
    eprintln!("{appends} changes, {images} images published past the start");
    assert!(appends > 100 * 50, "the quorum took only {appends} changes");
    assert!(images > 100, "restarts and snapshots were rare: {images}");
}

#[test]
fn the_checkers_catch_a_leader_that_publishes_on_append() {
    let caught = (0..40)
        .filter(|&seed| {
            Cluster::new(seed, Some(QuorumBug::PublishOnAppend))
                .run(20_000)
                .is_err()
        })
        .count();
    eprintln!("publishing on append caught on {caught} of 40 seeds");
    assert!(
        caught >= 10,
        "publishing before commit was caught on {caught} of 40 seeds"
    );
}

#[test]
fn the_checkers_catch_a_controller_that_never_fences() {
    let caught = (0..40)
        .filter(|&seed| {
            let outcome = Cluster::new(seed, Some(QuorumBug::NeverFence)).run(20_000);
            outcome.is_err_and(|e| e.contains("silent since"))
        })
        .count();
    eprintln!("a controller that never fences caught on {caught} of 40 seeds");
    assert!(
        caught >= 10,
        "a controller that never fences was caught on {caught} of 40 seeds"
    );
}
/// Stores what a lone voter asks to, at once.
fn store_all(c: &mut QuorumController, stored: &mut Stored) {
    while let Some(output) = c.poll_output() {
        if let QuorumOutput::Persist(p) = output {
            stored.apply(&p);
            c.handle_persisted(p.seq);
        }
    }
}

/// Runs a lone voter's clock until it leads and takes changes.
fn lead_alone(c: &mut QuorumController, stored: &mut Stored, now: &mut i64) {
    while !c.is_active() {
        *now += 100;
        c.handle_timeout(*now);
        store_all(c, stored);
        assert!(*now < 10_000, "a lone voter leads");
    }
}

/// One voter is a quorum of one: it leads at once, and a change is published once durable.
#[test]
fn a_lone_voter_publishes_a_change_once_it_is_durable() {
    let config = RaftConfig::new(1, vec![1], 7);
    let mut c = QuorumController::new(config, Stored::default(), 0, 100, None).unwrap();
    assert!(matches!(
        c.poll_published(),
        Some(Published::Image { index: 0, .. })
    ));
    assert_eq!(
        c.append(vec![MetadataRecord::ProducerIds { limit: 10 }]),
        Err(AppendError::NotLeader(None))
    );
    let mut stored = Stored::default();
    let mut now = 0;
    lead_alone(&mut c, &mut stored, &mut now);
    let record = MetadataRecord::ProducerIds { limit: 10 };
    let index = c.append(vec![record.clone()]).unwrap();
    assert_eq!(
        c.image().producer_id_limit,
        10,
        "the leader's image has it at once"
    );
    assert_eq!(
        c.committed_image().producer_id_limit,
        0,
        "not committed yet"
    );
    assert_eq!(c.poll_published(), None);
    let bad = c.append(vec![MetadataRecord::ProducerIds { limit: 5 }]);
    assert!(matches!(bad, Err(AppendError::Refused(e)) if e.contains("below")));
    store_all(&mut c, &mut stored);
    assert_eq!(
        c.poll_published(),
        Some(Published::Records {
            index,
            records: vec![record],
        })
    );
    // Restarted from what it stored: the change is committed again once it leads (the commit
    // index stored may be behind), and published.
    let config = RaftConfig::new(1, vec![1], 7);
    let mut c = QuorumController::new(config, stored.clone(), now, 100, None).unwrap();
    lead_alone(&mut c, &mut stored, &mut now);
    assert_eq!(c.committed_image().producer_id_limit, 10);
    let published: Vec<Published> = std::iter::from_fn(|| c.poll_published()).collect();
    let last = published.last().expect("published");
    assert!(
        matches!(last, Published::Records { index: i, .. } if *i == index)
            || matches!(last, Published::Image { image, .. } if image.producer_id_limit == 10),
        "{published:?}"
    );
}

/// Broker liveness on the active controller: a heartbeat registers a broker, a silent one is
/// fenced after its session, a heartbeat unfences it, a shutting-down one is fenced at once, a
/// restarted one (new incarnation) registers again; a heartbeat to a follower, or from a node
/// that is not one of the quorum's brokers, is refused.
#[test]
fn heartbeats_register_brokers_and_silence_or_shutdown_fences_them() {
    use super::quorum::Heartbeat;
    let config = RaftConfig::new(1, vec![1], 7);
    let mut c = QuorumController::new(config, Stored::default(), 0, 100, None)
        .unwrap()
        .with_session_timeout(1_000);
    let mut stored = Stored::default();
    let mut now = 0;
    let beat = |node, incarnation, shutting_down| Heartbeat {
        node,
        incarnation,
        host: "127.0.0.1".into(),
        port: 9090u16.wrapping_add(node as u16),
        rack: None,
        shutting_down,
        wants_producer_ids: false,
    };
    assert_eq!(
        c.handle_heartbeat(now, beat(1, 7, false)),
        Err(AppendError::NotLeader(None)),
        "only the active controller takes heartbeats"
    );
    lead_alone(&mut c, &mut stored, &mut now);
    let fenced = |c: &QuorumController| c.committed_image().brokers.get(&1).map(|b| b.fenced);
    c.handle_heartbeat(now, beat(1, 7, false)).unwrap();
    store_all(&mut c, &mut stored);
    assert_eq!(fenced(&c), Some(false), "registered by its first heartbeat");
    assert_eq!(c.committed_image().brokers[&1].port, 9091);
    assert!(matches!(
        c.handle_heartbeat(now, beat(-2, 1, false)),
        Err(AppendError::Refused(_))
    ));
    assert!(!c.committed_image().brokers.contains_key(&-2));
    // It falls silent: fenced once its session is over, not before.
    let registered_at = now;
    while now < registered_at + 1_500 {
        now += 100;
        if c.poll_timeout() <= now {
            c.handle_timeout(now);
        }
        store_all(&mut c, &mut stored);
        if now <= registered_at + 1_000 {
            assert_eq!(
                fenced(&c),
                Some(false),
                "fenced before its session ended, at {now}"
            );
        }
        assert!(c.poll_timeout() > now, "a deadline left due at {now}");
    }
    assert_eq!(fenced(&c), Some(true));
    // It comes back: unfenced.
    c.handle_heartbeat(now, beat(1, 7, false)).unwrap();
    store_all(&mut c, &mut stored);
    assert_eq!(fenced(&c), Some(false));
    // A controlled shutdown fences it at once; its next life registers again, unfenced.
    c.handle_heartbeat(now, beat(1, 7, true)).unwrap();
    store_all(&mut c, &mut stored);
    assert_eq!(fenced(&c), Some(true));
    c.handle_heartbeat(now, beat(1, 8, false)).unwrap();
    store_all(&mut c, &mut stored);
    assert_eq!(fenced(&c), Some(false));
    assert_eq!(c.committed_image().brokers[&1].incarnation, 8);
    // Heartbeats travel as bytes; anything else does not read as one.
    let bytes = beat(3, u64::MAX, true).encode();
    assert_eq!(Heartbeat::decode(&bytes), Some(beat(3, u64::MAX, true)));
    assert_eq!(Heartbeat::decode(&bytes[..10]), None);
    let mut racked = beat(3, 1, false);
    racked.rack = Some("eu-west-1b".into());
    assert_eq!(Heartbeat::decode(&racked.encode()), Some(racked.clone()));
    // A heartbeat as brokers sent them before racks (the host is the rest) still reads.
    let mut before_racks = vec![0xb7];
    before_racks.extend_from_slice(&3i32.to_be_bytes());
    before_racks.extend_from_slice(&u64::MAX.to_be_bytes());
    before_racks.extend_from_slice(&9093u16.to_be_bytes());
    before_racks.push(1);
    before_racks.extend_from_slice(b"127.0.0.1");
    assert_eq!(
        Heartbeat::decode(&before_racks),
        Some(beat(3, u64::MAX, true))
    );
    // A new rack is a new registration, carried into the image.
    c.handle_heartbeat(
        now,
        Heartbeat {
            node: 1,
            incarnation: 8,
            ..racked
        },
    )
    .unwrap();
    store_all(&mut c, &mut stored);
    assert_eq!(
        c.committed_image().brokers[&1].rack.as_deref(),
        Some("eu-west-1b")
    );
    assert_eq!(Heartbeat::decode(&[0, 1, 2]), None);
    let mut long = beat(3, 1, false);
    long.host = "h".repeat(300);
    assert_eq!(
        Heartbeat::decode(&long.encode()),
        None,
        "a host name of 300 bytes"
    );
    // A broker short of producer ids is granted a block at the limit, one after another.
    let mut asking = beat(1, 8, false);
    asking.wants_producer_ids = true;
    assert_eq!(Heartbeat::decode(&asking.encode()), Some(asking.clone()));
    let limit = c.image().producer_id_limit;
    c.handle_heartbeat(now, asking.clone()).unwrap();
    c.handle_heartbeat(now, asking).unwrap();
    store_all(&mut c, &mut stored);
    assert_eq!(
        c.committed_image().producer_id_limit,
        limit + 2 * crate::controller::PRODUCER_ID_BLOCK
    );
}

#[test]
fn create_topic_asks_travel_as_bytes_and_nothing_else_reads_as_one() {
    use crate::controller::quorum::CreateTopicAsk;
    let ask = CreateTopicAsk {
        name: "__consumer_offsets".into(),
        partitions: 50,
        replication_factor: 3,
        configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
    };
    let bytes = ask.encode();
    assert_eq!(CreateTopicAsk::decode(&bytes), Some(ask.clone()));
    // Frames come whole (the transport delimits them); a cut one never reads as the ask.
    for cut in 0..bytes.len() {
        assert_ne!(
            CreateTopicAsk::decode(&bytes[..cut]),
            Some(ask.clone()),
            "cut at {cut}"
        );
    }
    assert_eq!(
        CreateTopicAsk::decode(&[0xb8, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1, 0xff]),
        None
    );
}
