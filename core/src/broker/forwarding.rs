//! Forwarding (Kafka's KIP-590 Envelope, in our own frame): on a controller quorum a request
//! that changes the cluster (CreateTopics, DeleteTopics, CreatePartitions, ElectLeaders, and AlterConfigs /
//! IncrementalAlterConfigs of topics or of the cluster-wide defaults) that reaches a broker
//! other than the active controller is sent, as the client's bytes, to the active controller
//! over the controller connection. There it is served as from a connection of its own, and its
//! response goes back the same way, with the quorum version the controller's metadata then
//! held, and out to the client as it is (the correlation id is the client's) once this
//! broker's metadata holds that version too. A forwarded request is never forwarded again: a node that stopped leading answers
//! it NOT_CONTROLLER, and so does a broker that knows no leader. A forward lost with its node
//! leaves the client to its request timeout, after which clients retry.

use super::{Broker, Output};
use crate::io::ConnId;
use crate::replica::NodeId;
use bytes::Bytes;
use kafka_protocol::messages::{AlterConfigsRequest, ApiKey, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::Decodable;

/// The first byte of a forwarded request's frame, and of its response's.
const FORWARD_TAG: u8 = 0xb9;
const FORWARDED_TAG: u8 = 0xba;

/// Connections of forwarded requests on the active controller: ids no shell hands out.
const FORWARDED_CONN_BASE: ConnId = 1 << 62;

/// Kafka's config resource type of a broker (its own configs, or with an empty name the
/// cluster-wide defaults) and of a broker's loggers.
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;

#[derive(Default)]
pub(super) struct Forwarding {
    /// A broker's requests out at the controller: forward id -> the client's connection.
    out: std::collections::BTreeMap<u64, ConnId>,
    next_id: u64,
    /// The active controller's requests in from brokers: its connection -> (node, forward id).
    in_: std::collections::BTreeMap<ConnId, (NodeId, u64)>,
    next_conn: ConnId,
}

/// The APIs a broker forwards.
const FORWARDED: [ApiKey; 6] = [
    ApiKey::CreateTopics,
    ApiKey::ElectLeaders,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
];

/// Whether a request of `api_key` changes the cluster (the controller's business). Config
/// changes of this broker's own resources stay here; a mix of both as well.
fn changes_the_cluster(api_key: ApiKey, version: i16, body: &Bytes) -> bool {
    let local = |kind: i8, name: &str| {
        kind == RESOURCE_BROKER_LOGGER || (kind == RESOURCE_BROKER && !name.is_empty())
    };
    match api_key {
        ApiKey::AlterConfigs => {
            AlterConfigsRequest::decode(&mut body.clone(), version).is_ok_and(|r| {
                !r.resources
                    .iter()
                    .any(|c| local(c.resource_type, &c.resource_name))
            })
        }
        ApiKey::IncrementalAlterConfigs => {
            IncrementalAlterConfigsRequest::decode(&mut body.clone(), version).is_ok_and(|r| {
                !r.resources
                    .iter()
                    .any(|c| local(c.resource_type, &c.resource_name))
            })
        }
        key => FORWARDED.contains(&key),
    }
}

impl Broker {
    /// Control: sends the request (`frame`, the client's bytes; `body` after its header) to the
    /// active controller if it is another node and the request is for it. Returns whether it
    /// went.
    pub(super) fn forward_to_controller(
        &mut self,
        conn: ConnId,
        api_key: ApiKey,
        version: i16,
        frame: &Bytes,
        body: &Bytes,
    ) -> bool {
        if !self.in_quorum() || self.is_active_controller() || conn >= FORWARDED_CONN_BASE {
            return false;
        }
        let leader = self
            .quorum
            .as_ref()
            .and_then(|s| s.controller().raft().leader());
        let Some(leader) = leader.filter(|&l| l != self.config.node_id) else {
            return false;
        };
        if !changes_the_cluster(api_key, version, body) {
            return false;
        }
        let id = self.forwarding.next_id;
        self.forwarding.next_id += 1;
        self.forwarding.out.insert(id, conn);
        let mut out = Vec::with_capacity(frame.len() + 13);
        out.push(FORWARD_TAG);
        out.extend_from_slice(&self.config.node_id.to_be_bytes());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(frame);
        self.outputs.push_back(Output::ToNode {
            node: leader,
            frame: out,
        });
        true
    }

    /// A forwarding frame from another node, if `frame` is one: a request to serve (active
    /// controller) or the response to one this broker forwarded. Returns whether it was one.
    pub(super) fn handle_forwarding_frame(&mut self, now_ms: i64, frame: &[u8]) -> bool {
        match frame.first() {
            Some(&FORWARD_TAG) if frame.len() >= 13 => {
                let origin = NodeId::from_be_bytes(frame[1..5].try_into().expect("4 bytes"));
                let id = u64::from_be_bytes(frame[5..13].try_into().expect("8 bytes"));
                let conn = FORWARDED_CONN_BASE + self.forwarding.next_conn;
                self.forwarding.next_conn += 1;
                self.forwarding.in_.insert(conn, (origin, id));
                let request = Bytes::copy_from_slice(&frame[13..]);
                // Only what brokers forward is served this way; anything else is closed.
                let api_key = request
                    .get(..2)
                    .and_then(|b| ApiKey::try_from(i16::from_be_bytes([b[0], b[1]])).ok());
                match api_key.is_some_and(|key| FORWARDED.contains(&key)) {
                    true => self.handle_request(now_ms, conn, request),
                    false => self.outputs.push_back(Output::Close { conn }),
                }
                true
            }
            Some(&FORWARDED_TAG) if frame.len() >= 17 => {
                let id = u64::from_be_bytes(frame[1..9].try_into().expect("8 bytes"));
                let index = u64::from_be_bytes(frame[9..17].try_into().expect("8 bytes"));
                if let Some(conn) = self.forwarding.out.remove(&id) {
                    let output = match frame.len() {
                        17 => Output::Close { conn },
                        _ => Output::Respond {
                            conn,
                            frame: Bytes::copy_from_slice(&frame[17..]),
                        },
                    };
                    // The client hears of its change once this broker has it too (it may ask
                    // this broker next).
                    match index > self.mirrored_quorum_index() {
                        true => self.after_quorum.push((index, output)),
                        false => self.outputs.push_back(output),
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// What the shell is to do next, with the answers to forwarded requests turned into
    /// frames for the nodes that forwarded them (a closed connection: an empty answer, on
    /// which the broker closes its client's).
    pub(super) fn route_forwarded(&mut self, output: Output) -> Output {
        let (conn, frame) = match &output {
            Output::Respond { conn, frame } if *conn >= FORWARDED_CONN_BASE => (*conn, &frame[..]),
            Output::Close { conn } | Output::NoResponse { conn }
                if *conn >= FORWARDED_CONN_BASE =>
            {
                (*conn, &[][..])
            }
            _ => return output,
        };
        let Some((node, id)) = self.forwarding.in_.remove(&conn) else {
            return Output::Log {
                level: crate::io::Level::Warn,
                message: format!("an answer for forwarded connection {conn}, which is gone"),
            };
        };
        let mut out = Vec::with_capacity(frame.len() + 17);
        out.push(FORWARDED_TAG);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&self.mirrored_quorum_index().to_be_bytes());
        out.extend_from_slice(frame);
        Output::ToNode { node, frame: out }
    }

    /// The quorum version this node's metadata mirrors (0 without a quorum).
    pub(super) fn mirrored_quorum_index(&self) -> u64 {
        self.controller
            .as_ref()
            .map_or(0, |c| c.image().quorum_index)
    }

    /// The client's connection closed: answers to its forwarded requests are dropped.
    pub(super) fn forget_forwards(&mut self, conn: ConnId) {
        self.forwarding.out.retain(|_, c| *c != conn);
    }
}
