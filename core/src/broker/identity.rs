//! The data directory's identity, Kafka's `meta.properties`: the node and the cluster it
//! belongs to, written at its first start. A directory of another node (a different
//! `node.id`) or whose metadata is another cluster's is refused at start-up, before anything in
//! it changes, with a message naming both. The file is the cluster id's source of truth: a
//! directory whose metadata was never stored (a crash at the first start) keeps the cluster id
//! the file names.

use super::{Broker, InFlight};
use crate::controller::Controller;
use crate::io::{IoOp, IoResult, Level};

pub const META_PROPERTIES: &str = "meta.properties";

/// What `meta.properties` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub node_id: i32,
    pub cluster_id: String,
}

impl Identity {
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "#Written by Spate at this data directory's first start: the node and cluster it belongs to.\nversion=1\nnode.id={}\ncluster.id={}\n",
            self.node_id, self.cluster_id
        )
        .into_bytes()
    }

    /// Reads the file (Kafka's properties syntax: `key=value` lines, `#` comments), naming
    /// what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Identity, String> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| format!("{META_PROPERTIES} is not text"))?;
        let (mut node_id, mut cluster_id, mut version) = (None, None, None);
        for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!(
                    "{META_PROPERTIES} line {n}: '{line}' is not key=value"
                ));
            };
            let value = value.trim();
            match key.trim() {
                "node.id" => {
                    let id = value.parse::<i32>().map_err(|_| {
                        format!("{META_PROPERTIES} line {n}: node.id '{value}' is not a number")
                    })?;
                    node_id = Some(id);
                }
                "cluster.id" => cluster_id = Some(value.to_string()),
                "version" => version = Some(value.to_string()),
                _ => {} // Kafka's directory.id and the like
            }
        }
        if version.as_deref() != Some("1") {
            return Err(format!(
                "{META_PROPERTIES}: version {} is not 1",
                version.as_deref().unwrap_or("(missing)")
            ));
        }
        match (node_id, cluster_id) {
            (Some(node_id), Some(cluster_id)) if !cluster_id.is_empty() => Ok(Identity {
                node_id,
                cluster_id,
            }),
            _ => Err(format!(
                "{META_PROPERTIES} must name node.id and cluster.id"
            )),
        }
    }
}

impl Broker {
    /// At start-up, before the metadata is read: refuses another node's directory, and in a
    /// directory whose metadata was never stored takes the cluster id the file names.
    pub(super) fn check_node_identity(
        &mut self,
        identity: Option<&Identity>,
        has_metadata: bool,
    ) -> Result<(), String> {
        let Some(identity) = identity else {
            return Ok(());
        };
        if identity.node_id != self.config.node_id {
            return Err(format!(
                "data directory {} belongs to node {} ({META_PROPERTIES}), not to node {}: start with --node-id {} or use another data directory",
                self.config.log_dir, identity.node_id, self.config.node_id, identity.node_id
            ));
        }
        if !has_metadata && identity.cluster_id != self.cluster_id {
            self.cluster_id = identity.cluster_id.clone();
            if self.is_control() {
                let node = self.config.node_id;
                self.controller = Some(Controller::new_cluster(node, self.cluster_id.clone()));
            }
        }
        Ok(())
    }

    /// At start-up, once the metadata is read: refuses metadata of another cluster than the
    /// file names; the control shard writes the file if the directory has none yet.
    pub(super) fn check_cluster_identity(
        &mut self,
        identity: Option<&Identity>,
    ) -> Result<(), String> {
        let quorum = !self.config.controller_quorum.is_empty();
        match identity {
            // With a quorum, an empty directory takes the quorum's id (`adopt_cluster_id`),
            // metadata and file one after the other: a crash between them is settled here.
            Some(identity) if identity.cluster_id != self.cluster_id && quorum && self.topics.is_empty() => {
                if self.is_control() {
                    self.write_identity(self.cluster_id.clone());
                }
                Ok(())
            }
            Some(identity) if identity.cluster_id != self.cluster_id => Err(format!(
                "data directory {} belongs to cluster {} ({META_PROPERTIES}) but its metadata is of cluster {}: the directory was mixed with another cluster's files",
                self.config.log_dir, identity.cluster_id, self.cluster_id
            )),
            Some(_) => Ok(()),
            None => {
                if self.is_control() {
                    self.write_identity(self.cluster_id.clone());
                }
                Ok(())
            }
        }
    }

    /// Writes `meta.properties`: this node, of cluster `cluster_id`. One write at a time (the
    /// shell replaces the file through one temporary file): a write asked for meanwhile goes
    /// once the one in flight is done, the latest id only.
    pub(super) fn write_identity(&mut self, cluster_id: String) {
        if self
            .in_flight
            .values()
            .any(|f| matches!(f, InFlight::Identity))
        {
            self.identity_next = Some(cluster_id);
            return;
        }
        let identity = Identity {
            node_id: self.config.node_id,
            cluster_id,
        };
        let op = IoOp::WriteFile {
            path: META_PROPERTIES.into(),
            data: identity.encode(),
        };
        self.issue(op, InFlight::Identity);
    }

    pub(super) fn on_identity_written(&mut self, result: IoResult) {
        if let Some(next) = self.identity_next.take() {
            self.write_identity(next);
        }
        if let IoResult::Failed(error) = result {
            self.log(
                Level::Warn,
                format!("cannot write {META_PROPERTIES}: {error}; it is written again at the next start"),
            );
        }
        // The quorum's changes held back meanwhile are mirrored now.
        self.mirror_quorum();
    }
}
