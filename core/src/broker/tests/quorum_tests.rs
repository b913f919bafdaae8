//! The control shard's seat in the controller quorum: a lone voter elects itself, commits the
//! cluster id, keeps its journal and term across restarts, and DescribeQuorum reports it; a node
//! without a quorum describes itself as a quorum of one.

use super::*;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};

fn voter_config() -> Config {
    Config {
        controller_quorum: vec![(1, "127.0.0.1:9093".into())],
        ..Config::default()
    }
}

impl Harness {
    /// DescribeQuorum v1 of `topic`-`partition`: (error, leader, epoch, high watermark, voters'
    /// (id, log end)).
    fn describe_quorum(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> (i16, i32, i32, i64, Vec<(i32, i64)>) {
        let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(topic_name(topic))
            .with_partitions(vec![
                PartitionData::default().with_partition_index(partition)
            ])]);
        self.send(ADMIN, ApiKey::DescribeQuorum, 1, &request);
        let response: DescribeQuorumResponse = self.response(ADMIN, ApiKey::DescribeQuorum, 1);
        let p = &response.topics[0].partitions[0];
        let voters = p
            .current_voters
            .iter()
            .map(|v| (v.replica_id.0, v.log_end_offset))
            .collect();
        (
            p.error_code,
            p.leader_id.0,
            p.leader_epoch,
            p.high_watermark,
            voters,
        )
    }

    /// Lets `ms` pass in steps, firing the deadlines due.
    fn pass(&mut self, ms: i64) {
        for _ in 0..ms / 50 {
            self.now_ms += 50;
            self.handle_timeout();
        }
    }
}

#[test]
fn a_lone_voter_elects_itself_commits_the_cluster_id_and_keeps_its_term_across_restarts() {
    let h = Harness::new(voter_config());
    let mut h = h.restart(voter_config());
    h.pass(3_000);
    let (error, leader, epoch, high_watermark, voters) = h.describe_quorum("__cluster_metadata", 0);
    assert_eq!((error, leader), (errors::NONE, 1));
    assert!(epoch >= 1, "an election happened: epoch {epoch}");
    assert!(
        high_watermark >= 2,
        "the term's first entry and the cluster id: {high_watermark}"
    );
    assert_eq!(voters, vec![(1, high_watermark)]);
    assert!(h.to_nodes.is_empty(), "a lone voter sends nothing");
    let journal = h
        .disk
        .files
        .get(crate::io::QUORUM_JOURNAL)
        .expect("the journal is written");
    let stored = crate::raft::codec::decode_persists(journal).unwrap();
    assert!(!stored.is_empty());

    // Restarted from its journal: the same term or later, never earlier, and the cluster id
    // committed before is still there (a later entry commits it again, not a second record).
    let mut h = h.restart(voter_config());
    h.pass(3_000);
    let (_, leader, next_epoch, next_high_watermark, _) =
        h.describe_quorum("__cluster_metadata", 0);
    assert_eq!(leader, 1);
    assert!(
        next_epoch > epoch,
        "a new election after the restart: {next_epoch} after {epoch}"
    );
    assert_eq!(
        next_high_watermark,
        high_watermark + 2,
        "only the new term's first entry and this life's producer-id block"
    );

    // A damaged journal is refused at start-up, naming the file.
    let mut disk = h.disk.clone();
    let file = disk.files.get_mut(crate::io::QUORUM_JOURNAL).unwrap();
    file[5] ^= 0xff;
    let mut broker = Broker::new(voter_config());
    let error = broker.start_up(&mut disk, h.now_ms).unwrap_err();
    assert!(error.contains("quorum-journal"), "{error}");
}

#[test]
fn describe_quorum_answers_for_the_metadata_log_only_and_a_single_node_is_its_own_quorum() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (error, leader, epoch, high_watermark, voters) = h.describe_quorum("__cluster_metadata", 0);
    assert_eq!((error, leader, epoch), (errors::NONE, 1, 0));
    assert!(
        high_watermark >= 2,
        "the topic's version is committed: {high_watermark}"
    );
    assert_eq!(voters, vec![(1, high_watermark)]);
    assert_eq!(
        h.describe_quorum("t", 0).0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        h.describe_quorum("__cluster_metadata", 1).0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
}

/// With a quorum, a directory without topics whose `meta.properties` and metadata disagree on
/// the cluster id (a crash while it took the quorum's id) starts, and the file follows the
/// metadata; with topics, the mismatch is refused as without a quorum.
#[test]
fn a_crash_while_taking_the_quorums_cluster_id_is_settled_at_the_next_start() {
    let h = Harness::new(voter_config());
    let h = h.restart(voter_config());
    let mut disk = h.disk.clone();
    let other = Identity {
        node_id: 1,
        cluster_id: "QuorumClusterIdAAAAAAA".into(),
    };
    disk.files.insert(META_PROPERTIES.into(), other.encode());
    let (h2, _) = h.restart_on(disk, voter_config());
    let written = Identity::decode(&h2.disk.files[META_PROPERTIES]).unwrap();
    assert_eq!(
        written.cluster_id,
        h2.broker.cluster_id(),
        "the file follows the metadata"
    );

    let mut h = h.restart(voter_config());
    h.pass(3_000);
    h.create_topic("t", 1);
    h.pass(500);
    assert!(
        h.broker.partition("t", 0).is_some(),
        "the quorum created it"
    );
    let mut disk = h.disk.clone();
    disk.files.insert(META_PROPERTIES.into(), other.encode());
    let mut broker = Broker::new(voter_config());
    let refused = broker.start_up(&mut disk, h.now_ms).unwrap_err();
    assert!(refused.contains("mixed with another cluster"), "{refused}");
}

/// On a quorum, topics are the quorum's: a lone voter creates one through it, mirrors the
/// committed change into its own metadata (which records the quorum version it holds), and
/// after a restart leads nothing until the controller begins a new leadership for this life,
/// in the next epoch.
#[test]
fn a_voters_topics_come_from_the_quorum_and_a_restart_leads_again_in_a_new_epoch() {
    let h = Harness::new(voter_config());
    let mut h = h.restart(voter_config());
    h.pass(3_000);
    let created = h.create_topic("t", 2);
    assert_eq!(created.topics[0].error_code, errors::NONE);
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 0));
    let text = String::from_utf8(h.disk.files[crate::io::METADATA_FILE].clone()).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("quorum_index\t")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("broker\t1\t")),
        "the registration is mirrored: {text}"
    );

    // A new life (its incarnation is drawn from the seed).
    let mut h = h.restart(Config {
        seed: 2,
        ..voter_config()
    });
    h.produce(1, "t", 0, -1, make_batch(&[b"b"], 5));
    assert_eq!(
        h.produce_result(1).0,
        errors::NOT_LEADER_OR_FOLLOWER,
        "no leadership before the controller begins one"
    );
    h.pass(3_000);
    h.produce(1, "t", 0, -1, make_batch(&[b"b"], 5));
    assert_eq!(h.produce_result(1), (errors::NONE, 1));
    let epochs = h.broker.leader_epochs();
    assert_eq!(epochs[&("t".to_string(), 0)].1, 1, "{epochs:?}");
    assert_eq!(epochs[&("t".to_string(), 1)].1, 1, "{epochs:?}");
}
