//! The controller's chosen elections on a cluster of harnesses: preferred leaders given back by
//! ElectLeaders and by the automatic rebalance, and unclean elections where a topic allows them.

use super::*;
use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

/// Each partition's preferred replica (the first), as the controller placed it.
fn preferred(h: &Harness, topic: &str) -> Vec<i32> {
    let image = h.broker.metadata_image().expect("a quorum image");
    let partitions = &image.topics[topic].partitions;
    partitions.iter().map(|p| p.replicas[0]).collect()
}

/// Every node sees each partition of "p" led by its preferred replica.
fn assert_preferred_lead(cluster: &Nodes) {
    for h in &cluster.nodes {
        let node = h.broker.config.node_id;
        assert_eq!(leaders(h, "p"), preferred(h, "p"), "node {node}");
    }
}

/// ElectLeaders v2 of `kind` for `partitions` of `topic` (all partitions: none), sent to node
/// `i`, answered after the cluster ran a while: (partition, error code) in the order given.
fn elect(
    cluster: &mut Nodes,
    i: usize,
    kind: i8,
    partitions: Option<(&str, Vec<i32>)>,
) -> Vec<(String, i32, i16)> {
    let request = ElectLeadersRequest::default()
        .with_election_type(kind)
        .with_timeout_ms(30_000)
        .with_topic_partitions(partitions.map(|(topic, partitions)| {
            vec![TopicPartitions::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions)]
        }));
    cluster.nodes[i].send(31, ApiKey::ElectLeaders, 2, &request);
    cluster.run(1_000);
    let response: ElectLeadersResponse = cluster.nodes[i].response(31, ApiKey::ElectLeaders, 2);
    assert_eq!(response.error_code, errors::NONE);
    let mut results = Vec::new();
    for topic in response.replica_election_results {
        for p in topic.partition_result {
            results.push((topic.topic.0.to_string(), p.partition_id, p.error_code));
        }
    }
    results
}

/// Three nodes with the automatic rebalance every `check_ms` if `auto`, topic "p" of three
/// partitions on all three: the cluster, and the node that is not the active controller and
/// prefers partition `victim_partition` (whose index is returned).
fn placed_cluster(seed: u64, auto: bool, check_ms: i64) -> (Nodes, usize, i32) {
    let edit = move |c: &mut Config| {
        c.elections.auto_rebalance = auto;
        c.elections.check_every_ms = check_ms;
    };
    let mut cluster = Nodes::start_configured(3, 3, seed, None, edit);
    let active = cluster.active();
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &create_topic("p", 3, 3));
    cluster.run(1_000);
    let wanted = preferred(&cluster.nodes[active], "p");
    assert_eq!(leaders(&cluster.nodes[active], "p"), wanted, "as placed");
    let victim = (0..3).find(|&i| i != active).unwrap();
    let partition = wanted.iter().position(|&n| n == victim as i32 + 1).unwrap() as i32;
    (cluster, victim, partition)
}

#[test]
fn elect_leaders_gives_a_returned_replica_its_partitions_back_once_it_is_in_sync() {
    let (mut cluster, victim, partition) = placed_cluster(300, false, 1_000);
    let victim_node = victim as i32 + 1;
    cluster.down.insert(victim);
    cluster.run(6_000);
    let other = (victim + 1) % 3;
    let moved = leaders(&cluster.nodes[other], "p")[partition as usize];
    assert!(moved > 0 && moved != victim_node, "failed over to {moved}");
    assert_eq!(
        elect(&mut cluster, other, 0, Some(("p", vec![partition]))),
        vec![(
            "p".to_string(),
            partition,
            errors::PREFERRED_LEADER_NOT_AVAILABLE
        )],
        "the preferred replica is down"
    );

    cluster.restart_configured(victim, 301, |c| c.elections.auto_rebalance = false);
    cluster.run(8_000);
    let image = cluster.nodes[other]
        .broker
        .metadata_image()
        .unwrap()
        .clone();
    assert!(
        image.topics["p"].partitions[partition as usize]
            .in_sync
            .contains(&victim_node),
        "back in sync"
    );
    assert_eq!(
        leaders(&cluster.nodes[other], "p")[partition as usize],
        moved,
        "no rebalance without auto.leader.rebalance.enable"
    );
    // Asked of a node that is not the controller (forwarded), for every partition: only the
    // one moved is answered, and the preferred replica leads it in the next epoch.
    let epoch = image.topics["p"].partitions[partition as usize].leader_epoch;
    let asked = (0..3)
        .find(|&i| !cluster.nodes[i].broker.is_active_controller())
        .unwrap();
    assert_eq!(
        elect(&mut cluster, asked, 0, None),
        vec![("p".to_string(), partition, errors::NONE)]
    );
    assert_preferred_lead(&cluster);
    for h in &cluster.nodes {
        let image = h.broker.metadata_image().unwrap();
        assert_eq!(
            image.topics["p"].partitions[partition as usize].leader_epoch,
            epoch + 1
        );
    }
    // The new leader serves writes.
    let h = &mut cluster.nodes[victim];
    h.produce(1, "p", partition, -1, make_batch(&[b"back"], 5));
    cluster.run(500);
    assert_eq!(cluster.nodes[victim].produce_result(1).0, errors::NONE);
    assert_eq!(
        elect(&mut cluster, asked, 0, Some(("p", vec![partition, 7]))),
        vec![
            ("p".to_string(), partition, errors::ELECTION_NOT_NEEDED),
            ("p".to_string(), 7, errors::UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
}

#[test]
fn the_controller_rebalances_leadership_by_itself_after_a_node_returns() {
    let (mut cluster, victim, partition) = placed_cluster(310, true, 2_000);
    cluster.down.insert(victim);
    cluster.run(6_000);
    let other = (victim + 1) % 3;
    assert_ne!(
        leaders(&cluster.nodes[other], "p")[partition as usize],
        victim as i32 + 1
    );
    cluster.restart_configured(victim, 311, |c| c.elections.check_every_ms = 2_000);
    cluster.run(12_000);
    assert_preferred_lead(&cluster);
}

/// Topic "u" of one partition on two replicas, created with `configs`: the cluster, the
/// partition's leader's index and its follower's.
fn two_replica_topic(seed: u64, configs: &[(&str, &str)]) -> (Nodes, usize, usize) {
    let mut cluster = Nodes::start_with(3, seed, None);
    let active = cluster.active();
    let mut request = create_topic("u", 1, 2);
    request.topics[0].configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &request);
    cluster.run(1_000);
    let image = cluster.nodes[active].broker.metadata_image().unwrap();
    let replicas = image.topics["u"].partitions[0].replicas.clone();
    let (leader, follower) = ((replicas[0] - 1) as usize, (replicas[1] - 1) as usize);
    (cluster, leader, follower)
}

/// The follower dies, the leader acknowledges records alone, then dies too: only it has them.
fn leave_the_last_in_sync_replica_down(cluster: &mut Nodes, leader: usize, follower: usize) {
    cluster.down.insert(follower);
    cluster.run(5_000);
    cluster.nodes[leader].produce(1, "u", 0, -1, make_batch(&[b"a", b"b"], 5));
    cluster.run(300);
    assert_eq!(cluster.nodes[leader].produce_result(1), (errors::NONE, 0));
    cluster.down.insert(leader);
    cluster.run(5_000);
}

#[test]
fn a_partition_waits_for_its_last_in_sync_replica_unless_the_topic_allows_an_unclean_election() {
    let (mut cluster, leader, follower) = two_replica_topic(320, &[]);
    leave_the_last_in_sync_replica_down(&mut cluster, leader, follower);
    cluster.restart(follower, 321);
    cluster.run(6_000);
    let third = 3 - leader - follower;
    assert_eq!(
        leaders(&cluster.nodes[third], "u"),
        vec![NO_LEADER],
        "the follower lacks committed records: no leader"
    );
    // An unclean election asked for: the follower leads with what it has.
    assert_eq!(
        elect(&mut cluster, third, 1, Some(("u", vec![0]))),
        vec![("u".to_string(), 0, errors::NONE)]
    );
    assert_eq!(
        leaders(&cluster.nodes[third], "u"),
        vec![follower as i32 + 1]
    );
    assert_eq!(
        elect(&mut cluster, third, 1, Some(("u", vec![0]))),
        vec![("u".to_string(), 0, errors::ELECTION_NOT_NEEDED)]
    );
}

#[test]
fn an_unclean_election_where_the_topic_allows_it_and_the_old_leader_truncates_on_return() {
    let unclean = [("unclean.leader.election.enable", "true")];
    let (mut cluster, leader, follower) = two_replica_topic(330, &unclean);
    leave_the_last_in_sync_replica_down(&mut cluster, leader, follower);
    cluster.restart(follower, 331);
    cluster.run(6_000);
    assert_eq!(
        leaders(&cluster.nodes[follower], "u"),
        vec![follower as i32 + 1],
        "the controller elected the live replica by itself"
    );
    let h = &mut cluster.nodes[follower];
    h.produce(2, "u", 0, -1, make_batch(&[b"after"], 5));
    cluster.run(300);
    assert_eq!(
        cluster.nodes[follower].produce_result(2),
        (errors::NONE, 0),
        "the new leader's log starts where its own ended"
    );
    cluster.restart(leader, 332);
    cluster.run(8_000);
    let expected = log_of(&cluster.nodes[follower], "u", 0);
    assert_eq!(expected.len(), 1);
    assert_eq!(
        log_of(&cluster.nodes[leader], "u", 0),
        expected,
        "the old leader dropped what the new one never had"
    );
}
