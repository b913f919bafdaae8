//! The controller's elections beyond fencing and return (those are in `image`):
//!
//! - **Preferred leader**: a partition's first replica leads again once it is a live member of
//!   the in-sync set, in the next leader epoch. Asked for with ElectLeaders (type 0), and done by
//!   the controller on its own every `leader.imbalance.check.interval.seconds` while
//!   `auto.leader.rebalance.enable` holds, so that leadership spreads out again after nodes
//!   return (without it, a rolling restart leaves every partition led by the node restarted
//!   first).
//! - **Unclean**: a partition left without a leader (its last in-sync replica is fenced) is led
//!   by a live replica outside the set, which becomes the set. Records committed on the last
//!   in-sync replica and missing on the new leader are lost: that replica truncates when it
//!   returns and logs the offsets. Done only where `unclean.leader.election.enable` holds for
//!   the topic (its own config, else the cluster-wide default, else the controller's static
//!   config), or when ElectLeaders (type 1) asks for it.

use super::image::{LEADER_EPOCH_MAX, NO_LEADER};
use super::{MetadataImage, MetadataRecord, TopicImage};
use crate::replica::NodeId;
use crate::topics::TopicId;

/// ElectLeaders' election types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    /// Kafka's byte (0 preferred, 1 unclean); none for another.
    pub fn from_kafka(kind: i8) -> Option<ElectionType> {
        match kind {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// What an election of one partition comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Election {
    /// The change that elects the leader.
    Elected(MetadataRecord),
    /// The partition already has the leader asked for (preferred), or one at all (unclean).
    NotNeeded,
    /// No replica may lead: the preferred one is not a live in-sync replica (preferred), or no
    /// replica is live (unclean).
    NotAvailable,
    /// No such partition.
    Unknown,
}

/// The topic config that allows unclean elections.
pub const UNCLEAN_CONFIG: &str = "unclean.leader.election.enable";

impl MetadataImage {
    /// The election of `kind` for partition `partition` of topic `id`.
    pub fn elect(&self, id: TopicId, partition: i32, kind: ElectionType) -> Election {
        let Some(topic) = self.topic_by_id(id) else {
            return Election::Unknown;
        };
        let Some(placed) = usize::try_from(partition)
            .ok()
            .and_then(|p| topic.partitions.get(p))
        else {
            return Election::Unknown;
        };
        let index = partition as usize;
        let (leader, in_sync) = match kind {
            ElectionType::Preferred => {
                let Some(&preferred) = placed.replicas.first() else {
                    return Election::NotAvailable;
                };
                if placed.leader == preferred {
                    return Election::NotNeeded;
                }
                if !placed.in_sync.contains(&preferred) || !self.is_live(preferred) {
                    return Election::NotAvailable;
                }
                (preferred, placed.in_sync.clone())
            }
            ElectionType::Unclean => {
                if placed.leader != NO_LEADER {
                    return Election::NotNeeded;
                }
                // The last in-sync replica first, if it is back: it loses nothing.
                let candidates = placed.in_sync.iter().chain(placed.replicas.iter());
                match candidates.copied().find(|&n| self.is_live(n)) {
                    Some(n) if placed.in_sync.contains(&n) => (n, placed.in_sync.clone()),
                    Some(n) => (n, vec![n]),
                    None => return Election::NotAvailable,
                }
            }
        };
        if placed.leader_epoch >= LEADER_EPOCH_MAX {
            return Election::NotAvailable;
        }
        Election::Elected(placed.change(id, index, leader, in_sync))
    }

    /// Every partition whose preferred replica may lead and does not: the controller's
    /// automatic rebalance.
    pub fn preferred_elections(&self) -> Vec<MetadataRecord> {
        self.elections_where(ElectionType::Preferred, |_| true)
    }

    /// The planted `PreferOutOfSync`: every partition's preferred replica leads whenever it
    /// is live, in the in-sync set or not (and joins it), as a rebalance that skipped the
    /// check would.
    pub fn preferred_elections_out_of_sync(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for topic in self.topics.values() {
            for (index, placed) in topic.partitions.iter().enumerate() {
                let Some(&preferred) = placed.replicas.first() else {
                    continue;
                };
                let wrong = placed.leader != preferred
                    && self.is_live(preferred)
                    && placed.leader_epoch < LEADER_EPOCH_MAX;
                if wrong {
                    let mut in_sync = placed.in_sync.clone();
                    if !in_sync.contains(&preferred) {
                        in_sync.push(preferred);
                    }
                    records.push(placed.change(topic.id, index, preferred, in_sync));
                }
            }
        }
        records
    }

    /// Every leaderless partition of a topic that allows unclean elections (`default`: the
    /// controller's static `unclean.leader.election.enable`) that a live replica may lead.
    pub fn unclean_elections(&self, default: bool) -> Vec<MetadataRecord> {
        self.elections_where(ElectionType::Unclean, |t| self.allows_unclean(t, default))
    }

    fn elections_where(
        &self,
        kind: ElectionType,
        topic_wanted: impl Fn(&TopicImage) -> bool,
    ) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for topic in self.topics.values().filter(|t| topic_wanted(t)) {
            for partition in 0..topic.partitions.len() {
                if let Election::Elected(record) = self.elect(topic.id, partition as i32, kind) {
                    records.push(record);
                }
            }
        }
        records
    }

    /// Whether `topic` allows unclean elections: its own config, else the cluster-wide
    /// default, else `default`.
    pub fn allows_unclean(&self, topic: &TopicImage, default: bool) -> bool {
        let set = topic
            .configs
            .get(UNCLEAN_CONFIG)
            .or_else(|| self.cluster_configs.get(UNCLEAN_CONFIG));
        set.map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Whether `node` is a registered, unfenced broker.
    pub fn is_live(&self, node: NodeId) -> bool {
        self.brokers.get(&node).is_some_and(|b| !b.fenced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::BrokerImage;

    const T: TopicId = TopicId([7; 16]);

    /// Topic `t`, one partition on replicas 1, 2, 3, in the state given, brokers 1..=3
    /// registered and those in `fenced` fenced.
    fn image(
        leader: NodeId,
        in_sync: &[NodeId],
        fenced: &[NodeId],
        configs: &[(&str, &str)],
    ) -> MetadataImage {
        let mut image = MetadataImage::default();
        image
            .apply(&MetadataRecord::TopicCreated {
                id: T,
                name: "t".into(),
                replicas: vec![vec![1, 2, 3]],
                configs: configs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .unwrap();
        for node in 1..=3 {
            let mut broker = BrokerImage::registered(1, "h", 9000 + node as u16, None);
            broker.fenced = fenced.contains(&node);
            image.brokers.insert(node, broker);
        }
        let placed = &mut image.topics.get_mut("t").unwrap().partitions[0];
        placed.leader = leader;
        placed.leader_epoch = 4;
        placed.in_sync = in_sync.to_vec();
        placed.partition_epoch = 9;
        image
    }

    fn changed(leader: NodeId, leader_epoch: i32, in_sync: &[NodeId]) -> MetadataRecord {
        MetadataRecord::PartitionChanged {
            id: T,
            partition: 0,
            leader,
            leader_epoch,
            in_sync: in_sync.to_vec(),
            partition_epoch: 10,
        }
    }

    #[test]
    fn the_preferred_replica_leads_again_only_as_a_live_member_of_the_in_sync_set() {
        use ElectionType::Preferred;
        let back = image(2, &[2, 3, 1], &[], &[]);
        assert_eq!(
            back.elect(T, 0, Preferred),
            Election::Elected(changed(1, 5, &[2, 3, 1]))
        );
        assert_eq!(back.preferred_elections(), vec![changed(1, 5, &[2, 3, 1])]);
        let out_of_sync = image(2, &[2, 3], &[], &[]);
        assert_eq!(out_of_sync.elect(T, 0, Preferred), Election::NotAvailable);
        assert!(out_of_sync.preferred_elections().is_empty());
        let fenced = image(2, &[2, 1], &[1], &[]);
        assert_eq!(fenced.elect(T, 0, Preferred), Election::NotAvailable);
        let balanced = image(1, &[1, 2], &[], &[]);
        assert_eq!(balanced.elect(T, 0, Preferred), Election::NotNeeded);
        assert_eq!(balanced.elect(T, 1, Preferred), Election::Unknown);
        assert_eq!(
            balanced.elect(TopicId([8; 16]), 0, Preferred),
            Election::Unknown
        );
        assert_eq!(balanced.elect(T, -1, Preferred), Election::Unknown);
    }

    #[test]
    fn an_unclean_election_takes_a_live_replica_only_where_the_topic_allows_it() {
        use ElectionType::Unclean;
        let waiting = image(NO_LEADER, &[1], &[1], &[]);
        assert_eq!(
            waiting.elect(T, 0, Unclean),
            Election::Elected(changed(2, 5, &[2]))
        );
        assert!(
            waiting.unclean_elections(false).is_empty(),
            "not by default"
        );
        assert_eq!(waiting.unclean_elections(true), vec![changed(2, 5, &[2])]);
        let allowed = image(NO_LEADER, &[1], &[1], &[(UNCLEAN_CONFIG, "true")]);
        assert_eq!(allowed.unclean_elections(false), vec![changed(2, 5, &[2])]);
        let refused = image(NO_LEADER, &[1], &[1], &[(UNCLEAN_CONFIG, "false")]);
        assert!(
            refused.unclean_elections(true).is_empty(),
            "the topic's own"
        );
        let mut cluster = image(NO_LEADER, &[1], &[1], &[]);
        cluster
            .cluster_configs
            .insert(UNCLEAN_CONFIG.into(), "true".into());
        assert_eq!(cluster.unclean_elections(false).len(), 1, "cluster-wide");
        let last_back = image(NO_LEADER, &[3], &[], &[]);
        assert_eq!(
            last_back.elect(T, 0, Unclean),
            Election::Elected(changed(3, 5, &[3])),
            "the last in sync first: nothing lost"
        );
        let led = image(2, &[2], &[1], &[]);
        assert_eq!(led.elect(T, 0, Unclean), Election::NotNeeded);
        let all_down = image(NO_LEADER, &[1], &[1, 2, 3], &[]);
        assert_eq!(all_down.elect(T, 0, Unclean), Election::NotAvailable);
    }
}
