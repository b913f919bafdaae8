//! Two brokers that are one cluster, each driven by its own harness, their controller frames
//! carried between them: topics placed over both, each partition served by its leader only,
//! changes sent to the node that is not the controller forwarded to it, producer ids granted
//! to each broker.

use super::*;
use crate::controller::image::NO_LEADER;
use crate::controller::MetadataImage;
use crate::planted::PlantedBug;

/// The connection a follower node's fetches arrive on at a leader: this plus its index.
const PEER_CONN: u64 = 1 << 40;

fn node_config(node: i32, voters: i32, seed: u64) -> Config {
    Config {
        node_id: node,
        seed,
        advertised_port: 9092 + 100 * (node - 1),
        controller_quorum: (1..=voters)
            .map(|v| (v, format!("127.0.0.1:{}", 9093 + 100 * (v - 1))))
            .collect(),
        broker_session_timeout_ms: 3_000,
        ..Config::default()
    }
}

/// Brokers of one cluster, each on its own harness; a node that is down neither ticks nor
/// sends nor hears.
struct Nodes {
    nodes: Vec<Harness>,
    down: std::collections::BTreeSet<usize>,
    bug: Option<PlantedBug>,
}

impl Nodes {
    fn start(count: i32) -> Nodes {
        Nodes::start_with(count as usize, 100, None)
    }

    fn start_with(count: usize, seed: u64, bug: Option<PlantedBug>) -> Nodes {
        Nodes::start_mixed(count, count, seed, bug)
    }

    /// `count` nodes of which the first `voters` vote; the others are broker-only nodes.
    fn start_mixed(count: usize, voters: usize, seed: u64, bug: Option<PlantedBug>) -> Nodes {
        Nodes::start_configured(count, voters, seed, bug, |_| {})
    }

    /// As `start_mixed`, each node's config changed by `edit` first.
    fn start_configured(
        count: usize,
        voters: usize,
        seed: u64,
        bug: Option<PlantedBug>,
        edit: impl Fn(&mut Config),
    ) -> Nodes {
        let (count, voters) = (count as i32, voters as i32);
        let nodes = (1..=count)
            .map(|n| {
                let mut config = Config {
                    planted_bug: bug,
                    ..node_config(n, voters, seed + n as u64)
                };
                edit(&mut config);
                Harness::new(config.clone()).restart(config)
            })
            .collect();
        let mut cluster = Nodes {
            nodes,
            down: Default::default(),
            bug,
        };
        cluster.run(6_000);
        cluster
    }

    /// Lets `ms` pass on the nodes that are up, carrying every frame between them.
    fn run(&mut self, ms: i64) {
        self.run_faulty(ms, None, || false);
    }

    /// As `run`, with the link between two nodes cut both ways and frames `lose` says lost.
    fn run_faulty(&mut self, ms: i64, cut: Option<(usize, usize)>, mut lose: impl FnMut() -> bool) {
        for _ in 0..ms / 20 {
            for (i, h) in self.nodes.iter_mut().enumerate() {
                h.now_ms += 20;
                if !self.down.contains(&i) {
                    h.handle_timeout();
                }
            }
            for from in 0..self.nodes.len() {
                let frames = std::mem::take(&mut self.nodes[from].to_nodes);
                for (node, frame) in frames {
                    let to = (node - 1) as usize;
                    let severed =
                        cut.is_some_and(|(a, b)| (a, b) == (from, to) || (b, a) == (from, to));
                    if self.down.contains(&from) || self.down.contains(&to) || severed || lose() {
                        continue;
                    }
                    let h = &mut self.nodes[to];
                    h.broker.handle_quorum_frame(h.now_ms, &frame);
                    h.step();
                }
            }
            self.carry_replication(cut, &mut lose);
        }
    }

    /// Carries followers' fetches to their leaders (on a connection per follower node) and
    /// the answers back; a fetch to a node that is down, or over a cut link, breaks its
    /// connection.
    fn carry_replication(&mut self, cut: Option<(usize, usize)>, lose: &mut impl FnMut() -> bool) {
        for from in 0..self.nodes.len() {
            let requests = std::mem::take(&mut self.nodes[from].to_brokers);
            for (node, frame) in requests {
                let to = (node - 1) as usize;
                let severed =
                    cut.is_some_and(|(a, b)| (a, b) == (from, to) || (b, a) == (from, to));
                if self.down.contains(&from) {
                    continue;
                }
                if self.down.contains(&to) || severed || lose() {
                    let h = &mut self.nodes[from];
                    h.broker.handle_broker_disconnected(h.now_ms, node);
                    h.step();
                    continue;
                }
                let h = &mut self.nodes[to];
                h.broker
                    .handle_request(h.now_ms, PEER_CONN + from as u64, frame.slice(4..));
                h.step();
            }
        }
        for to in 0..self.nodes.len() {
            let (answers, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.nodes[to].responses)
                .into_iter()
                .partition(|(conn, _)| *conn >= PEER_CONN);
            self.nodes[to].responses = rest;
            for (conn, frame) in answers {
                let from = (conn - PEER_CONN) as usize;
                if self.down.contains(&from) || self.down.contains(&to) {
                    continue;
                }
                let h = &mut self.nodes[from];
                h.broker
                    .handle_broker_response(h.now_ms, to as i32 + 1, frame.slice(4..));
                h.step();
            }
        }
    }

    /// The index of the active controller's harness.
    fn active(&self) -> usize {
        (0..self.nodes.len())
            .find(|&i| !self.down.contains(&i) && self.nodes[i].broker.is_active_controller())
            .expect("a node that is up is the active controller")
    }

    /// A crash of node `i` and its start again on what its disk holds, in a new life.
    fn restart(&mut self, i: usize, seed: u64) {
        self.restart_configured(i, seed, |_| {});
    }

    /// As `restart`, its config changed by `edit` first.
    fn restart_configured(&mut self, i: usize, seed: u64, edit: impl Fn(&mut Config)) {
        let count = self.nodes.len() as i32;
        let mut config = Config {
            planted_bug: self.bug,
            ..node_config(i as i32 + 1, count, seed)
        };
        edit(&mut config);
        self.nodes[i] = self.nodes[i].restart(config);
        self.down.remove(&i);
    }
}

fn leaders(h: &Harness, topic: &str) -> Vec<i32> {
    let t = &h.broker.topics[topic];
    (0..t.partitions.len() as i32)
        .map(|p| h.broker.partition_view(t, p).leader.0)
        .collect()
}

/// CreateTopics for one topic of `partitions` partitions and `factor` replicas.
fn create_topic(name: &'static str, partitions: i32, factor: i16) -> CreateTopicsRequest {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(factor);
    CreateTopicsRequest::default().with_topics(vec![topic])
}
#[test]
fn two_brokers_share_topics_serve_their_own_partitions_and_forward_changes() {
    let mut pair = Nodes::start(2);
    for h in &pair.nodes {
        assert_eq!(
            h.broker.listed_brokers().len(),
            2,
            "both brokers registered, as node {} sees it",
            h.broker.config.node_id
        );
    }
    let active = pair.active();
    let other = 1 - active;

    // CreateTopics to the broker that is not the controller is forwarded to it; its answer
    // comes back once this broker has the topic too.
    let request = create_topic("t", 4, 2);
    pair.nodes[other].send(9, ApiKey::CreateTopics, 7, &request);
    assert!(
        !pair.nodes[other].has_response(9),
        "forwarded, not answered here"
    );
    pair.run(1_000);
    let created: CreateTopicsResponse = pair.nodes[other].response(9, ApiKey::CreateTopics, 7);
    assert_eq!(created.topics[0].error_code, errors::NONE);
    assert_eq!(created.topics[0].replication_factor, 2);
    assert!(pair.nodes[other].broker.topics.contains_key("t"));

    // Both brokers place the partitions alike, two led by each; each serves only its own.
    let placed = leaders(&pair.nodes[0], "t");
    assert_eq!(placed, leaders(&pair.nodes[1], "t"));
    for node in [1, 2] {
        assert_eq!(
            placed.iter().filter(|&&l| l == node).count(),
            2,
            "{placed:?}"
        );
    }
    for (i, h) in pair.nodes.iter_mut().enumerate() {
        let me = i as i32 + 1;
        for (partition, &leader) in placed.iter().enumerate() {
            h.produce(1, "t", partition as i32, 1, make_batch(&[b"x"], 5));
            let (error, _) = h.produce_result(1);
            let expected = match leader == me {
                true => errors::NONE,
                false => errors::NOT_LEADER_OR_FOLLOWER,
            };
            assert_eq!(
                error, expected,
                "node {me}, partition {partition} led by {leader}"
            );
        }
    }

    // Produce v10+ names the leader to a client at the wrong broker, and where it is (KIP-951).
    let h = &mut pair.nodes[0];
    let elsewhere = placed.iter().position(|&l| l == 2).unwrap() as i32;
    let data = PartitionProduceData::default()
        .with_index(elsewhere)
        .with_records(Some(Bytes::from(make_batch(&[b"x"], 5))));
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![data])]);
    h.send(4, ApiKey::Produce, 10, &request);
    let answer: ProduceResponse = h.response(4, ApiKey::Produce, 10);
    let partition = &answer.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, errors::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        (
            partition.current_leader.leader_id.0,
            partition.current_leader.leader_epoch
        ),
        (2, 0)
    );
    let endpoints: Vec<(i32, i32)> = answer
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.port))
        .collect();
    assert_eq!(endpoints, vec![(2, 9192)]);

    // A second creation of the name, through the controller itself, is refused as Kafka does.
    let again = pair.nodes[active].create_topic("t", 1);
    assert_eq!(again.topics[0].error_code, errors::TOPIC_ALREADY_EXISTS);
    // And a creation while the other voter is away cannot commit: no answer before it returns.
    pair.down.insert(other);
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("u")))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    pair.nodes[active].send(9, ApiKey::CreateTopics, 7, &request);
    pair.run(300);
    assert!(
        !pair.nodes[active].has_response(9),
        "answered before a majority has it"
    );
    pair.down.remove(&other);
    pair.run(2_000);
    let created: CreateTopicsResponse = pair.nodes[active].response(9, ApiKey::CreateTopics, 7);
    assert_eq!(
        created.topics[0].error_code,
        errors::NONE,
        "once it returned"
    );

    // Each broker hands out producer ids from its own block: no id twice.
    let mut ids = Vec::new();
    for h in &mut pair.nodes {
        for _ in 0..3 {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            h.send(3, ApiKey::InitProducerId, 4, &request);
            let r: InitProducerIdResponse = h.response(3, ApiKey::InitProducerId, 4);
            assert_eq!(r.error_code, errors::NONE);
            ids.push(r.producer_id.0);
        }
    }
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
}

/// A broker-only node (not a voter: an observer of the quorum, KIP-595) registers with the
/// controller, mirrors the metadata, leads its share of partitions and forwards changes, but
/// never leads the quorum nor counts for a commit.
#[test]
fn a_broker_only_node_serves_partitions_and_mirrors_metadata_but_never_votes() {
    let mut cluster = Nodes::start_mixed(4, 3, 300, None);
    let observer = 3;
    for h in &cluster.nodes {
        assert_eq!(
            h.broker.listed_brokers().len(),
            4,
            "all four brokers registered, as node {} sees it",
            h.broker.config.node_id
        );
    }
    let raft = cluster.nodes[observer]
        .broker
        .quorum_controller()
        .expect("an observer has a seat")
        .raft();
    assert_ne!(raft.role(), crate::raft::Role::Leader);
    assert!(raft.leader().is_some(), "it follows the leader");
    let active = cluster.active();
    assert_ne!(active, observer);

    // A topic created through the broker-only node is forwarded; four partitions, one each.
    let request = create_topic("t", 4, 1);
    cluster.nodes[observer].send(9, ApiKey::CreateTopics, 7, &request);
    cluster.run(1_000);
    let created: CreateTopicsResponse =
        cluster.nodes[observer].response(9, ApiKey::CreateTopics, 7);
    assert_eq!(created.topics[0].error_code, errors::NONE);
    let placed = leaders(&cluster.nodes[active], "t");
    assert_eq!(
        placed,
        leaders(&cluster.nodes[observer], "t"),
        "mirrored alike"
    );
    let mine = placed
        .iter()
        .position(|&l| l == observer as i32 + 1)
        .expect("the broker-only node leads one of four") as i32;
    let h = &mut cluster.nodes[observer];
    h.produce(1, "t", mine, -1, make_batch(&[b"x"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));

    // Two voters away: the leader and the observer are no majority, so nothing commits.
    let voters_away: Vec<usize> = (0..3).filter(|&i| i != active).collect();
    for &i in &voters_away {
        cluster.down.insert(i);
    }
    let request = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("u")))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &request);
    cluster.run(3_000);
    assert!(
        !cluster.nodes[active].has_response(9),
        "committed with an observer counted"
    );
    for &i in &voters_away {
        cluster.down.remove(&i);
    }
    cluster.run(5_000);
    for h in &cluster.nodes {
        assert!(
            h.broker.topics.contains_key("t"),
            "node {}",
            h.broker.config.node_id
        );
        let raft = h.broker.quorum_controller().unwrap().raft();
        if h.broker.config.node_id == observer as i32 + 1 {
            assert_ne!(raft.role(), crate::raft::Role::Leader);
        }
    }
    // The quorum moved on without the observer ever standing; it still follows.
    let active = cluster.active();
    assert_ne!(active, observer);
    let h = &cluster.nodes[observer];
    let (mine, theirs) = (
        h.broker
            .quorum_controller()
            .unwrap()
            .raft()
            .committed_index(),
        cluster.nodes[active]
            .broker
            .quorum_controller()
            .unwrap()
            .raft()
            .committed_index(),
    );
    assert_eq!(mine, theirs, "the observer has every committed entry");
}

/// Brokers that name their racks (`broker.rack`) get each partition's replicas on different
/// racks, and clients see the racks in Metadata and DescribeCluster.
#[test]
fn replicas_are_placed_across_racks_and_brokers_report_theirs() {
    let rack = |node: i32| ["a", "b", "b", "c"][node as usize - 1].to_string();
    let mut cluster = Nodes::start_configured(4, 3, 400, None, |c| c.rack = Some(rack(c.node_id)));
    let active = cluster.active();
    let request = create_topic("racked", 8, 3);
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &request);
    cluster.run(1_000);
    let created: CreateTopicsResponse = cluster.nodes[active].response(9, ApiKey::CreateTopics, 7);
    assert_eq!(created.topics[0].error_code, errors::NONE);
    let h = &cluster.nodes[0];
    let topic = &h.broker.topics["racked"];
    for p in 0..8 {
        let replicas: Vec<i32> = h
            .broker
            .partition_view(topic, p)
            .replicas
            .iter()
            .map(|r| r.0)
            .collect();
        let racks: std::collections::BTreeSet<String> = replicas.iter().map(|&r| rack(r)).collect();
        assert_eq!(racks.len(), 3, "partition {p} on {replicas:?}");
    }
    let request = MetadataRequest::default().with_topics(Some(vec![]));
    cluster.nodes[1].send(5, ApiKey::Metadata, 12, &request);
    let metadata: MetadataResponse = cluster.nodes[1].response(5, ApiKey::Metadata, 12);
    for b in &metadata.brokers {
        assert_eq!(
            b.rack.as_ref().map(|r| r.to_string()),
            Some(rack(b.node_id.0))
        );
    }
}

/// A broker that dies leaves the partitions it led without a leader once its session ends
/// (no other replica has their data), and leads them again, in the epoch after, when it
/// returns in a new life, with what it had written.
#[test]
fn a_dead_brokers_partitions_wait_for_it_and_come_back_in_a_new_epoch() {
    let mut cluster = Nodes::start(3);
    let active = cluster.active();
    let request = create_topic("t", 3, 1);
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &request);
    cluster.run(500);
    let created: CreateTopicsResponse = cluster.nodes[active].response(9, ApiKey::CreateTopics, 7);
    assert_eq!(created.topics[0].error_code, errors::NONE);
    let placed = leaders(&cluster.nodes[active], "t");
    // The victim: a broker that is not the active controller, and its partition.
    let victim = (0..3).find(|&i| i != active).unwrap();
    let partition = placed
        .iter()
        .position(|&l| l == victim as i32 + 1)
        .expect("every broker leads one of three partitions") as i32;
    let h = &mut cluster.nodes[victim];
    h.produce(1, "t", partition, -1, make_batch(&[b"kept"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));

    cluster.down.insert(victim);
    cluster.run(5_000);
    for i in (0..3).filter(|&i| i != victim) {
        let h = &cluster.nodes[i];
        let view = h.broker.partition_view(&h.broker.topics["t"], partition);
        assert_eq!(
            (view.leader.0, view.leader_epoch, view.error_code),
            (-1, 1, errors::LEADER_NOT_AVAILABLE),
            "node {} after the crash",
            i + 1
        );
        assert_eq!(view.offline, vec![BrokerId(victim as i32 + 1)]);
    }

    cluster.restart(victim, 7_000);
    let h = &mut cluster.nodes[victim];
    h.produce(1, "t", partition, -1, make_batch(&[b"early"], 5));
    assert_eq!(
        h.produce_result(1).0,
        errors::NOT_LEADER_OR_FOLLOWER,
        "not before the controller's new leadership"
    );
    cluster.run(2_000);
    for h in &cluster.nodes {
        let view = h.broker.partition_view(&h.broker.topics["t"], partition);
        assert_eq!((view.leader.0, view.leader_epoch), (victim as i32 + 1, 2));
    }
    let h = &mut cluster.nodes[victim];
    h.produce(1, "t", partition, -1, make_batch(&[b"again"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 1), "after what it had");
}

/// Faults over three brokers, one seed: crashes (a node restarts in a new life from what its
/// disk holds), links cut both ways, frames lost, and topics created through any node while
/// they happen. Checked all along: no committed image has a fenced broker leading, no two
/// leaders ever for one partition epoch (anywhere, at any time), and a node leads only in an
/// epoch the controller gave it. Checked after the faults: every node's metadata is the same,
/// every broker is back and every partition has a leader.
fn swarm(seed: u64, bug: Option<PlantedBug>) -> Result<(), String> {
    let mut rng = crate::rng::Rng::new(seed);
    let mut below = |n: u64| rng.next_u64() % n;
    let count = 3;
    let mut nodes = Nodes::start_with(count, seed, bug);
    let mut chosen: BTreeMap<(TopicId, i32, i32), i32> = BTreeMap::new();
    let mut crashed: BTreeMap<usize, u32> = BTreeMap::new();
    let mut cut: Option<(usize, usize, u32)> = None;
    let mut next_seed = seed * 1_000;
    for round in 0..60 {
        // Faults, at most one node down and one link cut at a time.
        if crashed.is_empty() && below(100) < 6 {
            let victim = below(count as u64) as usize;
            nodes.down.insert(victim);
            crashed.insert(victim, 3 + below(15) as u32);
        }
        if cut.is_none() && below(100) < 6 {
            let a = below(count as u64) as usize;
            let b = (a + 1 + below(count as u64 - 1) as usize) % count;
            cut = Some((a, b, 2 + below(10) as u32));
        }
        if below(100) < 25 {
            let at = below(count as u64) as usize;
            if !nodes.down.contains(&at) {
                let topic = CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(format!("t{round}"))))
                    .with_num_partitions(1 + below(3) as i32)
                    .with_replication_factor(1 + below(2) as i16);
                let request = CreateTopicsRequest::default().with_topics(vec![topic]);
                nodes.nodes[at].send(100 + round, ApiKey::CreateTopics, 7, &request);
            }
        }
        let links = cut.map(|(a, b, _)| (a, b));
        nodes.run_faulty(200, links, || below(100) < 3);
        for (victim, left) in std::mem::take(&mut crashed) {
            match left {
                0 => {
                    next_seed += 1;
                    nodes.restart(victim, next_seed);
                }
                n => {
                    crashed.insert(victim, n - 1);
                }
            }
        }
        cut = cut.and_then(|(a, b, n)| (n > 0).then(|| (a, b, n - 1)));
        check_leaders(&nodes, &mut chosen).map_err(|e| format!("round {round}: {e}"))?;
    }
    for victim in std::mem::take(&mut crashed).into_keys() {
        next_seed += 1;
        nodes.restart(victim, next_seed);
    }
    nodes.run(15_000);
    check_leaders(&nodes, &mut chosen).map_err(|e| format!("after the faults: {e}"))?;
    let images: Vec<&MetadataImage> = nodes
        .nodes
        .iter()
        .map(|h| {
            h.broker
                .controller
                .as_ref()
                .expect("the control shard")
                .image()
        })
        .collect();
    for (i, image) in images.iter().enumerate().skip(1) {
        let differs = images[0].changes_to(image);
        if !differs.is_empty() || image.quorum_index != images[0].quorum_index {
            return Err(format!(
                "node {} does not have node 1's metadata after the faults: {differs:?}",
                i + 1
            ));
        }
    }
    let image = images[0];
    if std::env::var_os("CLUSTER_VERBOSE").is_some() {
        println!(
            "seed {seed}: quorum version {}, {} topics, {} leaderships seen, {} restarts",
            image.quorum_index,
            image.topics.len(),
            chosen.len(),
            next_seed - seed * 1_000
        );
    }
    if image.brokers.len() != count || image.brokers.values().any(|b| b.fenced) {
        return Err(format!("not every broker is back: {:?}", image.brokers));
    }
    for topic in image.topics.values() {
        if let Some(p) = topic.partitions.iter().position(|p| p.leader == NO_LEADER) {
            return Err(format!("{}-{p} has no leader after the faults", topic.name));
        }
    }
    Ok(())
}

/// The leaders every node knows of, checked against each other and what the nodes serve.
fn check_leaders(
    nodes: &Nodes,
    chosen: &mut BTreeMap<(TopicId, i32, i32), i32>,
) -> Result<(), String> {
    for (i, h) in nodes.nodes.iter().enumerate() {
        if nodes.down.contains(&i) {
            continue;
        }
        let committed = h
            .broker
            .quorum
            .as_ref()
            .expect("a voter")
            .controller()
            .committed_image();
        let mirrored = h.broker.controller.as_ref().expect("control shard").image();
        for image in [committed, mirrored] {
            for topic in image.topics.values() {
                for (p, placed) in topic.partitions.iter().enumerate() {
                    let fenced = image.brokers.get(&placed.leader).is_some_and(|b| b.fenced);
                    if fenced && std::ptr::eq(image, committed) {
                        return Err(format!(
                            "node {}: {}-{p} is led by fenced broker {} in epoch {}",
                            i + 1,
                            topic.name,
                            placed.leader,
                            placed.leader_epoch
                        ));
                    }
                    let key = (topic.id, p as i32, placed.leader_epoch);
                    let earlier = *chosen.entry(key).or_insert(placed.leader);
                    if earlier != placed.leader {
                        return Err(format!(
                            "{}-{p} epoch {}: led by {earlier} and by {}",
                            topic.name, placed.leader_epoch, placed.leader
                        ));
                    }
                }
            }
        }
    }
    for (i, h) in nodes.nodes.iter().enumerate() {
        if nodes.down.contains(&i) {
            continue;
        }
        let me = i as i32 + 1;
        for topic in h.broker.topics.values() {
            for (p, partition) in topic.partitions.iter().enumerate() {
                let epoch = partition.replica.leader_epoch();
                if partition.replica.is_leader()
                    && chosen.get(&(topic.id, p as i32, epoch)) != Some(&me)
                {
                    return Err(format!(
                        "node {me} leads {}-{p} in epoch {epoch}, which the controller gave {:?}",
                        topic.name,
                        chosen.get(&(topic.id, p as i32, epoch))
                    ));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn three_brokers_under_crashes_cut_links_and_lost_frames_keep_one_leader_per_epoch() {
    // CLUSTER_SEED=N replays one seed (CLUSTER_VERBOSE=1 says what it did); CLUSTER_SEEDS=N
    // runs seeds 1 to N.
    if let Some(seed) = std::env::var("CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        if let Err(error) = swarm(seed, None) {
            panic!("seed {seed}: {error}");
        }
        return;
    }
    let seeds: u64 = std::env::var("CLUSTER_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    for seed in 1..=seeds {
        if let Err(error) = swarm(seed, None) {
            panic!("seed {seed}: {error} (replay: CLUSTER_SEED={seed} cargo test --release -p spate-core three_brokers)");
        }
    }
    // The planted bug is caught within the same seeds.
    let caught = (1..=seeds)
        .filter(|&seed| swarm(seed, Some(PlantedBug::KeepFencedLeaders)).is_err())
        .count();
    println!("KeepFencedLeaders caught on {caught} of {seeds} seeds");
    assert!(caught > 0, "a fenced broker kept as leader went unnoticed");
}

/// Each node's log of a partition, as (base offset, leader epoch, records) per batch: what
/// must be the same on every replica below the high watermark.
fn log_of(h: &Harness, topic: &str, partition: i32) -> Vec<(i64, i32)> {
    let dir = format!("{}/{partition}/", h.broker.topics[topic].dir_name());
    let mut batches = Vec::new();
    for (path, data) in &h.disk.files {
        if !path.starts_with(&dir) || !path.ends_with(".log") {
            continue;
        }
        let mut position = 0;
        while let Ok(info) = batch::validate(&data[position..]) {
            batches.push((info.base_offset, info.partition_leader_epoch));
            position += info.size_bytes;
        }
    }
    batches
}

/// Replication factor 3: acks=all is answered once every in-sync replica has the batch on
/// disk; the followers' logs are the leader's; when the leader is lost another in-sync
/// replica leads with every acknowledged record, and the old leader, back, truncates what it
/// alone had and follows.
#[test]
fn three_replicas_acknowledge_from_every_disk_and_fail_over_without_loss() {
    let mut cluster = Nodes::start_configured(3, 3, 700, None, |c| {
        c.tail_cache_bytes_per_partition = 64 << 20;
    });
    let active = cluster.active();
    let request = create_topic("r", 1, 3);
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &request);
    cluster.run(1_000);
    let leader = leaders(&cluster.nodes[0], "r")[0];
    let l = (leader - 1) as usize;
    let image = cluster.nodes[l].broker.metadata_image().unwrap().clone();
    assert_eq!(
        image.topics["r"].partitions[0].in_sync.len(),
        3,
        "all in sync at first"
    );

    // acks=all waits for the followers' disks.
    cluster.nodes[l].produce(1, "r", 0, -1, make_batch(&[b"a", b"b"], 5));
    assert!(
        !cluster.nodes[l].has_response(1),
        "not before the followers have it"
    );
    cluster.run(200);
    assert_eq!(cluster.nodes[l].produce_result(1), (errors::NONE, 0));
    for i in 0..3 {
        let p = &cluster.nodes[i].broker.topics["r"].partitions[0];
        assert_eq!(p.log.flushed_offset(), 2, "node {} has it on disk", i + 1);
    }
    let expected = log_of(&cluster.nodes[l], "r", 0);
    for h in &cluster.nodes {
        assert_eq!(
            log_of(h, "r", 0),
            expected,
            "node {}",
            h.broker.config.node_id
        );
    }
    // acks=1 is answered by the leader's append; the high watermark follows the followers.
    cluster.nodes[l].produce(2, "r", 0, 1, make_batch(&[b"c"], 5));
    assert_eq!(cluster.nodes[l].produce_result(2), (errors::NONE, 2));
    cluster.run(200);
    assert_eq!(cluster.nodes[l].broker.high_watermark("r", 0), Some(3));

    // The leader is lost with a batch only it has (not written to its followers: its
    // network is cut before they fetch it).
    cluster.nodes[l].produce(3, "r", 0, 1, make_batch(&[b"lost"], 5));
    cluster.down.insert(l);
    cluster.run(6_000);
    let new_leader = leaders(&cluster.nodes[(l + 1) % 3], "r")[0];
    assert!(
        new_leader > 0 && new_leader != leader,
        "a follower leads: {new_leader}"
    );
    let n = (new_leader - 1) as usize;
    let h = &cluster.nodes[n];
    assert_eq!(
        h.broker.high_watermark("r", 0),
        Some(3),
        "every acknowledged record"
    );
    let image = h.broker.metadata_image().unwrap();
    assert!(!image.topics["r"].partitions[0].in_sync.contains(&leader));
    cluster.nodes[n].produce(4, "r", 0, -1, make_batch(&[b"d", b"e"], 5));
    cluster.run(300);
    assert_eq!(cluster.nodes[n].produce_result(4), (errors::NONE, 3));

    // The old leader returns (in a new life): it drops "lost", copies the new epoch and
    // rejoins the in-sync set.
    cluster.restart(l, 900);
    cluster.run(8_000);
    let expected = log_of(&cluster.nodes[n], "r", 0);
    assert_eq!(expected.len(), 3, "{expected:?}");
    for h in &cluster.nodes {
        assert_eq!(
            log_of(h, "r", 0),
            expected,
            "node {}",
            h.broker.config.node_id
        );
    }
    let image = cluster.nodes[n].broker.metadata_image().unwrap();
    let placed = &image.topics["r"].partitions[0];
    assert_eq!(
        placed.in_sync.len(),
        3,
        "the old leader is back in sync: {placed:?}"
    );
    assert_eq!(cluster.nodes[l].broker.high_watermark("r", 0), Some(5));
}

/// `min.insync.replicas`: acks=all is refused before the append while too few replicas are
/// in sync, and the in-sync set shrinks when a follower stops fetching for the lag time.
#[test]
fn acks_all_needs_min_insync_replicas_and_a_silent_follower_leaves_the_set() {
    let mut cluster = Nodes::start_configured(3, 3, 710, None, |c| {
        c.replica_lag_time_max_ms = 1_000;
        c.broker_session_timeout_ms = 60_000;
    });
    let active = cluster.active();
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("m")))
        .with_num_partitions(1)
        .with_replication_factor(3)
        .with_configs(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("min.insync.replicas"))
                .with_value(Some(StrBytes::from_static_str("3"))),
        ]);
    let request = CreateTopicsRequest::default().with_topics(vec![topic]);
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &request);
    cluster.run(1_000);
    let leader = leaders(&cluster.nodes[0], "m")[0];
    let l = (leader - 1) as usize;
    cluster.nodes[l].produce(1, "m", 0, -1, make_batch(&[b"a"], 5));
    cluster.run(200);
    assert_eq!(cluster.nodes[l].produce_result(1), (errors::NONE, 0));
    // One follower goes silent (down, but its session has not ended: not fenced).
    let silent = (l + 1) % 3;
    cluster.down.insert(silent);
    cluster.nodes[l].produce(2, "m", 0, -1, make_batch(&[b"b"], 5));
    cluster.run(3_000);
    let (error, _) = cluster.nodes[l].produce_result(2);
    assert_eq!(
        error,
        errors::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        "written, set shrank"
    );
    let image = cluster.nodes[l].broker.metadata_image().unwrap();
    assert_eq!(image.topics["m"].partitions[0].in_sync.len(), 2);
    cluster.nodes[l].produce(3, "m", 0, -1, make_batch(&[b"c"], 5));
    let (error, _) = cluster.nodes[l].produce_result(3);
    assert_eq!(
        error,
        errors::NOT_ENOUGH_REPLICAS,
        "refused before the append"
    );
    // acks=1 still goes.
    cluster.nodes[l].produce(4, "m", 0, 1, make_batch(&[b"d"], 5));
    assert_eq!(cluster.nodes[l].produce_result(4).0, errors::NONE);
}

/// A simple commit (no member) of `offset` for `group` on `t-0` through node `i`: its error.
fn commit_on(cluster: &mut Nodes, i: usize, group: &str, offset: i64) -> i16 {
    let request = super::groups_tests::commit_request(group, "", -1, offset);
    cluster.nodes[i].send(7, ApiKey::OffsetCommit, 8, &request);
    for _ in 0..100 {
        if cluster.nodes[i].has_response(7) {
            break;
        }
        cluster.run(100);
    }
    let response: OffsetCommitResponse = cluster.nodes[i].response(7, ApiKey::OffsetCommit, 8);
    response.topics[0].partitions[0].error_code
}

/// What node `i` answers for `group`'s committed offset of `t-0`: (error, offset).
fn committed_on(cluster: &mut Nodes, i: usize, group: &str) -> (i16, i64) {
    let request = super::groups_tests::committed_request(group);
    cluster.nodes[i].send(7, ApiKey::OffsetFetch, 7, &request);
    let response: OffsetFetchResponse = cluster.nodes[i].response(7, ApiKey::OffsetFetch, 7);
    let offset = response
        .topics
        .first()
        .map_or(-1, |t| t.partitions[0].committed_offset);
    (response.error_code, offset)
}

/// `__consumer_offsets` has three replicas (offsets.topic.replication.factor): when the node
/// coordinating a group dies, another in-sync replica leads the group's partition, loads the
/// group from its copy of the log and answers its committed offsets; the old coordinator,
/// back as a follower, forgot the group and sends its clients away with NOT_COORDINATOR.
#[test]
fn a_groups_coordinator_fails_over_with_its_offsets_partition() {
    let mut cluster = Nodes::start(3);
    let active = cluster.active();
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &create_topic("t", 1, 3));
    cluster.run(1_000);
    // FindCoordinator creates the offsets topic, on all three nodes.
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    cluster.nodes[0].send(5, ApiKey::FindCoordinator, 3, &find);
    cluster.run(3_000);
    let image = cluster.nodes[0].broker.metadata_image().unwrap().clone();
    let placed = &image.topics[crate::groups::OFFSETS_TOPIC].partitions[0];
    assert_eq!(placed.replicas.len(), 3, "{placed:?}");
    let coordinator = (leaders(&cluster.nodes[0], crate::groups::OFFSETS_TOPIC)[0] - 1) as usize;
    let other = (coordinator + 1) % 3;
    assert_eq!(commit_on(&mut cluster, coordinator, "g", 42), errors::NONE);
    assert_eq!(
        committed_on(&mut cluster, coordinator, "g"),
        (errors::NONE, 42)
    );
    assert_eq!(
        committed_on(&mut cluster, other, "g").0,
        errors::NOT_COORDINATOR,
        "a follower of the offsets partition does not coordinate"
    );

    cluster.down.insert(coordinator);
    cluster.run(6_000);
    let new = (leaders(&cluster.nodes[other], crate::groups::OFFSETS_TOPIC)[0] - 1) as usize;
    assert_ne!(
        new, coordinator,
        "another replica leads the offsets partition"
    );
    assert_eq!(
        committed_on(&mut cluster, new, "g"),
        (errors::NONE, 42),
        "the new coordinator loaded the group"
    );
    assert_eq!(commit_on(&mut cluster, new, "g", 50), errors::NONE);

    // The old coordinator returns: a follower now, it answers NOT_COORDINATOR, and the group
    // lives on where it is led.
    cluster.restart(coordinator, 900);
    cluster.run(6_000);
    assert_eq!(
        committed_on(&mut cluster, coordinator, "g").0,
        errors::NOT_COORDINATOR
    );
    assert_eq!(committed_on(&mut cluster, new, "g"), (errors::NONE, 50));
}

/// A follower that copies records of one partition fetches its other partitions from the same
/// leader again only once those records are on disk: its next fetch covers every partition,
/// so new records of any of them wake it at the leader. (Leaving the syncing partition out
/// of the next fetch made it wait until the leader gave that fetch up, after
/// replica.fetch.wait.max.ms, and every acks=all produce with it.)
#[test]
fn acks_all_is_answered_without_waiting_out_a_parked_follower_fetch() {
    let mut cluster = Nodes::start(3);
    let active = cluster.active();
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &create_topic("w", 4, 3));
    cluster.run(2_000);
    // Four partitions on three nodes: a node leads two of them.
    let led = leaders(&cluster.nodes[0], "w");
    let (leader, partition) = (1..=3)
        .find_map(|n| {
            let mine: Vec<usize> = (0..4).filter(|&p| led[p] == n).collect();
            (mine.len() >= 2).then(|| (n, mine[0] as i32))
        })
        .expect("a node leads two partitions");
    let l = (leader - 1) as usize;
    let wait_ms = cluster.nodes[l].broker.config.replica_fetch_wait_max_ms;
    for round in 0..5 {
        let id = 100 + round;
        cluster.nodes[l].produce(id, "w", partition, -1, make_batch(&[b"x"], 5));
        let mut waited = 0;
        while !cluster.nodes[l].has_response(id) && waited <= 2 * i64::from(wait_ms) {
            cluster.run(20);
            waited += 20;
        }
        assert_eq!(
            cluster.nodes[l].produce_result(id),
            (errors::NONE, round as i64)
        );
        assert!(
            waited < i64::from(wait_ms) / 2,
            "round {round}: acks=all took {waited} ms (the follower fetch waits {wait_ms} ms)"
        );
        cluster.run(100);
    }
}

mod compaction_cluster_tests;
mod election_tests;
mod follower_read_tests;
