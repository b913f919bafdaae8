//! The controller: the cluster's metadata (topics, their partitions and replica assignment,
//! topic and dynamic broker configs, producer-id blocks, log start offsets) as a log of
//! [`MetadataRecord`]s applied in order to a [`MetadataImage`].
//!
//! The broker that runs the controller (today the control shard of the one node) asks for
//! changes with [`Controller::append`]; each append is one version, checked record by record
//! against the image and applied at once, so the next request sees it. A version is committed
//! once it is durable ([`Controller::poll_persist`] / [`Controller::handle_persisted`]); only then
//! does anything wait on it go out, and only then is it published to the brokers that run on
//! the metadata but do not hold it (today the other shards, [`Controller::poll_published`]),
//! which apply the same records in the same order.
//!
//! Today "durable" means the metadata file: a snapshot of the image, rewritten whole on each
//! commit (`IoOp::PersistMetadata`, in [`snapshot`]'s format). The controller quorum replaces
//! exactly that step: records appended to a replicated log and committed on a majority, with the
//! file as the snapshot that bounds the log. Everything above it (append, commit, publish,
//! apply) stays as it is.

pub mod assignment;
pub mod elections;
pub mod image;
pub mod quorum;
#[cfg(test)]
mod quorum_tests;
pub mod records;
pub mod snapshot;

pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};

use crate::replica::NodeId;
use crate::topics::TopicId;
use std::collections::BTreeMap;

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// The cluster's id, chosen when its first node starts on an empty data directory.
    Cluster {
        id: String,
    },
    /// Producer ids below `limit` may be handed out (a block reserved before any is used).
    ProducerIds {
        limit: i64,
    },
    /// On a quorum: the ids from `start` (the limit so far) below `limit` are broker `node`'s
    /// to hand out in its life `incarnation` (KRaft's AllocateProducerIds); the limit moves
    /// to `limit`.
    ProducerIdBlock {
        node: NodeId,
        incarnation: u64,
        start: i64,
        limit: i64,
    },
    /// A topic and its partitions, each on its replicas (the first is the preferred leader).
    TopicCreated {
        id: TopicId,
        name: String,
        replicas: Vec<Vec<NodeId>>,
        configs: BTreeMap<String, String>,
    },
    /// Partitions appended to a topic, each on its replicas.
    PartitionsAdded {
        id: TopicId,
        replicas: Vec<Vec<NodeId>>,
    },
    TopicDeleted {
        id: TopicId,
    },
    /// A topic's own configs, all of them (an empty map: it inherits everything).
    TopicConfigs {
        id: TopicId,
        configs: BTreeMap<String, String>,
    },
    /// The dynamic broker configs of this node (`per_node`) or the cluster-wide defaults, all
    /// of them.
    BrokerConfigs {
        per_node: bool,
        configs: BTreeMap<String, String>,
    },
    /// A partition's leader and leader epoch changed, its leader alone in sync (written
    /// before partitions were replicated; read as it was, now `PartitionChanged`): a new leadership begins, in an epoch above every one before it. A node
    /// that restarts leads its partitions in a new epoch, as a KRaft broker does once unfenced.
    LeaderChanged {
        id: TopicId,
        partition: i32,
        leader: NodeId,
        leader_epoch: i32,
    },
    /// A broker registered (or registered again after a restart, with a new incarnation):
    /// where clients reach it. It starts unfenced.
    BrokerRegistered {
        node: NodeId,
        incarnation: u64,
        host: String,
        port: u16,
        /// Its `broker.rack`, if set.
        rack: Option<String>,
    },
    /// A partition's leadership or in-sync set changed (KRaft's PartitionChangeRecord): a new
    /// leader (or none, -1) begins a later leader epoch; the in-sync set holds the leader;
    /// the partition epoch numbers every change.
    PartitionChanged {
        id: TopicId,
        partition: i32,
        leader: NodeId,
        leader_epoch: i32,
        in_sync: Vec<NodeId>,
        partition_epoch: i32,
    },
    /// A registered broker was fenced (its session expired, or it is shutting down) or
    /// unfenced (it heartbeats again): a fenced broker leads nothing and is not listed.
    BrokerFencing {
        node: NodeId,
        fenced: bool,
    },
    /// A partition's log start moved (DeleteRecords, retention); it never moves back.
    LogStart {
        id: TopicId,
        partition: i32,
        offset: i64,
    },
    /// A node's own metadata holds the controller quorum's committed versions through `index`
    /// (it mirrors them; never in the quorum's log itself).
    QuorumApplied {
        index: u64,
    },
}

/// Producer ids a broker reserves at a time.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

pub struct Controller {
    node: NodeId,
    /// The image at `version`, committed or not.
    image: MetadataImage,
    version: u64,
    /// The highest version known durable, and the one being made durable.
    committed: u64,
    persisting: Option<u64>,
    /// Appended records not yet published, each with the version it belongs to.
    unpublished: Vec<(u64, MetadataRecord)>,
    published: u64,
}

impl Controller {
    /// The controller of a new cluster (an empty data directory): version 1, its id, is not
    /// yet durable, so it is persisted first.
    pub fn new_cluster(node: NodeId, cluster_id: String) -> Controller {
        let image = MetadataImage {
            cluster_id,
            ..MetadataImage::default()
        };
        Controller {
            committed: 0,
            ..Controller::recovered(node, image)
        }
    }

    /// The controller of what the metadata file held at start-up: version 1, durable, and the
    /// version every broker of the node loads.
    pub fn recovered(node: NodeId, image: MetadataImage) -> Controller {
        Controller {
            node,
            image,
            version: 1,
            committed: 1,
            persisting: None,
            unpublished: Vec::new(),
            published: 1,
        }
    }

    /// The image at the latest version, committed or not.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn committed_version(&self) -> u64 {
        self.committed
    }

    /// Appends `records` as one new version: each is checked against the image as the ones
    /// before it left it; if one does not fit, none is applied and the error says why.
    pub fn append(&mut self, records: Vec<MetadataRecord>) -> Result<u64, String> {
        match records.as_slice() {
            [] => return Ok(self.version),
            [one] => self.image.apply(one)?,
            many => {
                let mut next = self.image.clone();
                for record in many {
                    next.apply(record)?;
                }
                self.image = next;
            }
        }
        self.version += 1;
        let version = self.version;
        self.unpublished
            .extend(records.into_iter().map(|record| (version, record)));
        Ok(version)
    }

    /// What to make durable now, if anything: the version and the metadata file's bytes. One
    /// at a time; the next covers every version appended meanwhile.
    pub fn poll_persist(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.persisting.is_some() || self.committed >= self.version {
            return None;
        }
        self.persisting = Some(self.version);
        Some((self.version, snapshot::encode(&self.image, self.node)))
    }

    /// The persist of `version` ended: committed, or failed (the next poll tries again).
    pub fn handle_persisted(&mut self, version: u64, durable: bool) {
        if self.persisting == Some(version) {
            self.persisting = None;
        }
        if durable {
            self.committed = self.committed.max(version);
        }
    }

    /// The records committed since the last call and the version they bring a broker to.
    pub fn poll_published(&mut self) -> Option<(u64, Vec<MetadataRecord>)> {
        if self.committed <= self.published {
            return None;
        }
        let committed = self.committed;
        let split = self.unpublished.partition_point(|(v, _)| *v <= committed);
        let records = self.unpublished.drain(..split).map(|(_, r)| r).collect();
        self.published = committed;
        Some((committed, records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(name: &str, id: u8) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            id: TopicId([id; 16]),
            name: name.into(),
            replicas: vec![vec![1]],
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn versions_commit_when_durable_and_publish_in_order() {
        let mut c = Controller::new_cluster(1, "c".into());
        let (v1, bytes) = c
            .poll_persist()
            .expect("the new cluster's id is persisted first");
        assert_eq!(v1, 1);
        assert_eq!(snapshot::decode(&bytes, 1).unwrap().cluster_id, "c");
        assert_eq!(c.append(vec![created("a", 1)]), Ok(2));
        assert_eq!(c.poll_persist(), None, "one persist at a time");
        assert_eq!(c.append(vec![created("b", 2)]), Ok(3));
        assert!(
            c.image().topics.contains_key("b"),
            "visible to the next request"
        );
        c.handle_persisted(1, true);
        assert_eq!(c.committed_version(), 1);
        assert_eq!(
            c.poll_published(),
            None,
            "version 1 is what every broker starts on"
        );
        let (v, bytes) = c.poll_persist().expect("versions 2 and 3 at once");
        assert_eq!(v, 3);
        assert_eq!(snapshot::decode(&bytes, 1).unwrap(), *c.image());
        c.handle_persisted(3, false);
        assert_eq!(c.committed_version(), 1, "a failed persist commits nothing");
        assert_eq!(
            c.poll_persist().map(|(v, _)| v),
            Some(3),
            "and is tried again"
        );
        c.handle_persisted(3, true);
        assert_eq!(
            c.poll_published(),
            Some((3, vec![created("a", 1), created("b", 2)]))
        );
        assert_eq!(c.poll_published(), None);
    }

    #[test]
    fn an_append_is_all_or_nothing() {
        let mut c = Controller::recovered(1, MetadataImage::default());
        let before = c.image().clone();
        let error = c
            .append(vec![created("a", 1), created("a", 2)])
            .unwrap_err();
        assert!(error.contains("exists"), "{error}");
        assert_eq!(*c.image(), before);
        assert_eq!(c.version(), 1);
        assert_eq!(c.poll_persist(), None, "nothing to persist");
    }
}
