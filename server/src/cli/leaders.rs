//! The cluster as `produce` and `consume` see it: a topic's partitions, each partition's leader,
//! and one connection per leader.
//!
//! Requests for a partition go to its leader, as Metadata names it. When the cluster has a single
//! broker, that broker is the bootstrap server and its connection is reused, whatever address it
//! advertises (a single node may advertise a listener such as 0.0.0.0 that is not dialable).

use crate::client::{kafka_error, topic_error_text, Client};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

/// How long to wait for a topic to get leaders (e.g. right after it was created).
const LEADER_WAIT: Duration = Duration::from_secs(10);
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// One partition of the topic and the broker that leads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLeader {
    pub partition: i32,
    pub leader: i32,
}

pub struct Cluster {
    bootstrap: Client,
    /// node id -> HOST:PORT, from the latest Metadata.
    brokers: BTreeMap<i32, String>,
    /// Connections to leaders other than through the bootstrap connection.
    leaders: BTreeMap<i32, Client>,
}

impl Cluster {
    pub fn connect(bootstrap: &str) -> Result<Cluster, String> {
        Ok(Cluster {
            bootstrap: Client::connect(bootstrap)?,
            brokers: BTreeMap::new(),
            leaders: BTreeMap::new(),
        })
    }

    /// The partitions of `topic` with their leaders, sorted by partition. Waits a bounded time
    /// for leaders while the broker reports them as not yet available.
    pub fn partitions(
        &mut self,
        topic: &str,
        allow_auto_topic_creation: bool,
    ) -> Result<Vec<PartitionLeader>, String> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            match self.try_partitions(topic, allow_auto_topic_creation)? {
                Ok(partitions) => return Ok(partitions),
                Err(retriable) if Instant::now() >= deadline => return Err(retriable),
                Err(_) => thread::sleep(RETRY_BACKOFF),
            }
        }
    }

    /// Outer error: give up. Inner error: the cluster is settling, ask again.
    fn try_partitions(
        &mut self,
        topic: &str,
        allow_auto_topic_creation: bool,
    ) -> Result<Result<Vec<PartitionLeader>, String>, String> {
        let response = self
            .bootstrap
            .metadata(Some(&[topic]), allow_auto_topic_creation)?;
        self.brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        let found = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic));
        let Some(found) = found else {
            let what = format!("the broker's Metadata response does not mention topic '{topic}'");
            return Ok(Err(what));
        };
        if found.error_code != 0 {
            let what = topic_error_text(found.error_code, topic, "cannot look up");
            let error = kafka_error(found.error_code, &what, None);
            return if is_settling(found.error_code) {
                Ok(Err(error))
            } else {
                Err(error)
            };
        }
        let mut partitions = Vec::with_capacity(found.partitions.len());
        for p in &found.partitions {
            let partition = p.partition_index;
            if p.error_code != 0 && !is_settling(p.error_code) {
                let what = format!("partition {topic}-{partition} is unavailable");
                return Err(kafka_error(p.error_code, &what, None));
            }
            if p.leader_id.0 < 0 || p.error_code != 0 {
                let what = format!("partition {topic}-{partition} has no leader yet");
                return Ok(Err(kafka_error(
                    ResponseError::LeaderNotAvailable.code(),
                    &what,
                    None,
                )));
            }
            partitions.push(PartitionLeader {
                partition,
                leader: p.leader_id.0,
            });
        }
        if partitions.is_empty() {
            let what = format!("topic '{topic}' has no partitions yet");
            let code = ResponseError::LeaderNotAvailable.code();
            return Ok(Err(kafka_error(code, &what, None)));
        }
        partitions.sort_by_key(|p| p.partition);
        Ok(Ok(partitions))
    }

    /// The connection to broker `node_id`, opened on first use.
    pub fn leader(&mut self, node_id: i32) -> Result<&mut Client, String> {
        if self.brokers.len() <= 1 {
            return Ok(&mut self.bootstrap);
        }
        if !self.leaders.contains_key(&node_id) {
            let addr = self.brokers.get(&node_id).ok_or_else(|| {
                format!("the leader, broker {node_id}, is not among the brokers Metadata lists")
            })?;
            let client = Client::connect(addr)
                .map_err(|e| format!("cannot reach the leader, broker {node_id}: {e}"))?;
            self.leaders.insert(node_id, client);
        }
        Ok(self.leaders.get_mut(&node_id).expect("inserted above"))
    }

    /// Drops the connection to `node_id` so the next use reconnects (after a network error).
    pub fn forget(&mut self, node_id: i32) {
        self.leaders.remove(&node_id);
    }
}

/// Errors that clear up on their own as a topic gets created or a leader elected.
pub fn is_settling(code: i16) -> bool {
    matches!(
        ResponseError::try_from_code(code),
        Some(ResponseError::LeaderNotAvailable)
            | Some(ResponseError::NotLeaderOrFollower)
            | Some(ResponseError::ReplicaNotAvailable)
    )
}

/// Groups `partitions` by leader, keeping partition order within each group.
pub fn by_leader(partitions: &[PartitionLeader]) -> BTreeMap<i32, Vec<i32>> {
    let mut groups: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in partitions {
        groups.entry(p.leader).or_default().push(p.partition);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_group_by_leader() {
        let partitions = [
            PartitionLeader {
                partition: 0,
                leader: 2,
            },
            PartitionLeader {
                partition: 1,
                leader: 1,
            },
            PartitionLeader {
                partition: 2,
                leader: 2,
            },
        ];
        let groups = by_leader(&partitions);
        assert_eq!(groups[&1], [1]);
        assert_eq!(groups[&2], [0, 2]);
    }

    #[test]
    fn settling_errors_are_the_leadership_ones() {
        assert!(is_settling(5));
        assert!(is_settling(6));
        assert!(!is_settling(3));
        assert!(!is_settling(0));
    }
}
