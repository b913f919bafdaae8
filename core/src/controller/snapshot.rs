//! The metadata file: a snapshot of the image as records, one a line, tab-separated, in a form
//! a person can read and that older files already have:
//!
//! ```text
//! spate-metadata v1
//! cluster        <cluster id>
//! producer_ids   <limit>
//! topic          <id hex> <name> <partitions> [<key>=<value> ...]
//! replicas       <id hex> <partition> <node>,<node>,...   (only where not this node alone)
//! leader         <id hex> <partition> <node> <epoch>      (older files: the leader alone in sync)
//! partition      <id hex> <partition> <leader> <leader epoch> <in-sync node>,... <partition epoch>
//!                                                          (only where not as placed)
//! start          <id hex> <partition> <log start offset>  (only where above 0)
//! broker_config  <key>=<value>                            (this node's dynamic configs)
//! cluster_config <key>=<value>                            (the cluster-wide defaults)
//! broker         <node> <incarnation> <host> <port>        (a broker the quorum registered)
//! fenced         <node>                                    (a registered broker, fenced)
//! quorum_index   <index>                                   (the quorum versions this mirrors)
//! ```
//!
//! Files from before leader lines read as epoch 0, led by the first replica.
//!
//! Reading it applies the records in order to an empty image, so a damaged or hand-edited file
//! is refused with the line at fault, never half-loaded.

use super::image::MetadataImage;
use super::MetadataRecord;
use crate::replica::NodeId;
use crate::topics::{TopicId, PARTITIONS_MAX};
use std::collections::BTreeMap;

const MAGIC: &str = "spate-metadata v1";

/// The file for `image`, written by node `node` (whose lone replicas need no line).
pub fn encode(image: &MetadataImage, node: NodeId) -> Vec<u8> {
    let mut out = format!("{MAGIC}\n");
    for record in image.snapshot() {
        match record {
            MetadataRecord::Cluster { id } => out.push_str(&format!("cluster\t{id}\n")),
            MetadataRecord::ProducerIds { limit } => {
                out.push_str(&format!("producer_ids\t{limit}\n"))
            }
            MetadataRecord::TopicCreated {
                id,
                name,
                replicas,
                configs,
            } => {
                out.push_str(&format!(
                    "topic\t{}\t{name}\t{}",
                    id.to_hex(),
                    replicas.len()
                ));
                for (key, value) in &configs {
                    out.push_str(&format!("\t{key}={value}"));
                }
                out.push('\n');
                for (partition, nodes) in replicas.iter().enumerate() {
                    if nodes[..] != [node] {
                        let nodes: Vec<String> = nodes.iter().map(i32::to_string).collect();
                        out.push_str(&format!(
                            "replicas\t{}\t{partition}\t{}\n",
                            id.to_hex(),
                            nodes.join(",")
                        ));
                    }
                }
            }
            MetadataRecord::LeaderChanged {
                id,
                partition,
                leader,
                leader_epoch,
            } => out.push_str(&format!(
                "leader\t{}\t{partition}\t{leader}\t{leader_epoch}\n",
                id.to_hex()
            )),
            MetadataRecord::PartitionChanged {
                id,
                partition,
                leader,
                leader_epoch,
                in_sync,
                partition_epoch,
            } => {
                let in_sync: Vec<String> = in_sync.iter().map(i32::to_string).collect();
                out.push_str(&format!(
                    "partition\t{}\t{partition}\t{leader}\t{leader_epoch}\t{}\t{partition_epoch}\n",
                    id.to_hex(),
                    in_sync.join(",")
                ))
            }
            MetadataRecord::LogStart {
                id,
                partition,
                offset,
            } => out.push_str(&format!("start\t{}\t{partition}\t{offset}\n", id.to_hex())),
            MetadataRecord::BrokerConfigs { per_node, configs } => {
                let tag = if per_node {
                    "broker_config"
                } else {
                    "cluster_config"
                };
                for (key, value) in configs {
                    out.push_str(&format!("{tag}\t{key}={value}\n"));
                }
            }
            // A node that is its own quorum registers nothing; a node of a quorum mirrors
            // the registrations.
            MetadataRecord::BrokerRegistered {
                node,
                incarnation,
                host,
                port,
                rack,
            } => {
                out.push_str(&format!("broker\t{node}\t{incarnation}\t{host}\t{port}"));
                if let Some(rack) = rack {
                    out.push_str(&format!("\t{rack}"));
                }
                out.push('\n');
            }
            MetadataRecord::BrokerFencing { node, .. } => {
                out.push_str(&format!("fenced\t{node}\n"))
            }
            MetadataRecord::QuorumApplied { index } => {
                out.push_str(&format!("quorum_index\t{index}\n"))
            }
            other => unreachable!("not a snapshot record: {other:?}"),
        }
    }
    out.into_bytes()
}

/// Reads what [`encode`] wrote (and what earlier versions wrote: no `replicas` lines, no
/// `start` lines); an error names the line that is wrong.
pub fn decode(data: &[u8], node: NodeId) -> Result<MetadataImage, String> {
    let text = std::str::from_utf8(data).map_err(|_| "metadata file is not UTF-8".to_string())?;
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("metadata file does not start with '{MAGIC}'"));
    }
    let mut image = MetadataImage::default();
    let mut has_cluster = false;
    // A topic's record waits for its `replicas` lines before it is applied.
    let mut pending: Option<(usize, MetadataRecord)> = None;
    let (mut broker_configs, mut cluster_configs) = (BTreeMap::new(), BTreeMap::new());
    let apply = |image: &mut MetadataImage, number: usize, record: MetadataRecord| {
        image
            .apply(&record)
            .map_err(|e| format!("metadata file line {number}: {e}"))
    };
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let bad = || format!("metadata file line {number}: cannot parse '{line}'");
        let mut fields = line.split('\t');
        let tag = fields.next().unwrap_or("");
        if tag != "replicas" {
            if let Some((at, record)) = pending.take() {
                apply(&mut image, at, record)?;
            }
        }
        let id = |field: Option<&str>| field.and_then(TopicId::from_hex).ok_or_else(bad);
        match tag {
            "cluster" => {
                let id = fields.next().ok_or_else(bad)?.to_string();
                apply(&mut image, number, MetadataRecord::Cluster { id })?;
                has_cluster = true;
            }
            "producer_ids" => {
                let limit = fields.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
                super::image::check_producer_id_limit(limit)
                    .map_err(|e| format!("metadata file line {number}: {e}"))?;
                image.producer_id_limit = limit;
            }
            "topic" => {
                let id = id(fields.next())?;
                let name = fields.next().ok_or_else(bad)?.to_string();
                let partitions: i64 = fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                if !(1..=PARTITIONS_MAX as i64).contains(&partitions) {
                    return Err(format!(
                        "metadata file line {number}: topic '{name}' has {partitions} partitions"
                    ));
                }
                let mut configs = BTreeMap::new();
                for field in fields {
                    let (key, value) = field.split_once('=').ok_or_else(bad)?;
                    configs.insert(key.to_string(), value.to_string());
                }
                let record = MetadataRecord::TopicCreated {
                    id,
                    name,
                    replicas: vec![vec![node]; partitions as usize],
                    configs,
                };
                pending = Some((number, record));
            }
            "replicas" => {
                let id = id(fields.next())?;
                let partition: usize =
                    fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let nodes: Vec<NodeId> = fields
                    .next()
                    .ok_or_else(bad)?
                    .split(',')
                    .map(|n| n.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                // A replicas line follows its topic's line.
                let Some((
                    _,
                    MetadataRecord::TopicCreated {
                        id: of, replicas, ..
                    },
                )) = pending.as_mut()
                else {
                    return Err(bad());
                };
                if *of != id || partition >= replicas.len() {
                    return Err(bad());
                }
                replicas[partition] = nodes;
            }
            "leader" => {
                let id = id(fields.next())?;
                let partition = fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let leader = fields.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                let leader_epoch = fields.next().and_then(|e| e.parse().ok()).ok_or_else(bad)?;
                let record = MetadataRecord::LeaderChanged {
                    id,
                    partition,
                    leader,
                    leader_epoch,
                };
                apply(&mut image, number, record)?;
            }
            "partition" => {
                let id = id(fields.next())?;
                let mut number_field = || fields.next().and_then(|f| f.parse::<i32>().ok());
                let partition = number_field().ok_or_else(bad)?;
                let leader = number_field().ok_or_else(bad)?;
                let leader_epoch = number_field().ok_or_else(bad)?;
                let in_sync = fields
                    .next()
                    .ok_or_else(bad)?
                    .split(',')
                    .map(|n| n.parse::<i32>().map_err(|_| bad()))
                    .collect::<Result<Vec<_>, _>>()?;
                let partition_epoch = fields.next().and_then(|e| e.parse().ok()).ok_or_else(bad)?;
                let record = MetadataRecord::PartitionChanged {
                    id,
                    partition,
                    leader,
                    leader_epoch,
                    in_sync,
                    partition_epoch,
                };
                apply(&mut image, number, record)?;
            }
            "start" => {
                let id = id(fields.next())?;
                let partition = fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let offset = fields.next().and_then(|o| o.parse().ok()).ok_or_else(bad)?;
                let record = MetadataRecord::LogStart {
                    id,
                    partition,
                    offset,
                };
                apply(&mut image, number, record)?;
            }
            "broker" => {
                let node = fields.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                let incarnation = fields.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                let host = fields.next().ok_or_else(bad)?.to_string();
                let port = fields.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let rack = fields.next().map(str::to_string);
                let record = MetadataRecord::BrokerRegistered {
                    node,
                    incarnation,
                    host,
                    port,
                    rack,
                };
                apply(&mut image, number, record)?;
            }
            "fenced" => {
                let node = fields.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                let record = MetadataRecord::BrokerFencing { node, fenced: true };
                apply(&mut image, number, record)?;
            }
            "quorum_index" => {
                let index = fields.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                apply(&mut image, number, MetadataRecord::QuorumApplied { index })?;
            }
            "broker_config" | "cluster_config" => {
                let (key, value) = fields
                    .next()
                    .and_then(|f| f.split_once('='))
                    .ok_or_else(bad)?;
                let configs = match tag {
                    "broker_config" => &mut broker_configs,
                    _ => &mut cluster_configs,
                };
                configs.insert(key.to_string(), value.to_string());
            }
            "" => {}
            _ => return Err(bad()),
        }
    }
    if let Some((at, record)) = pending.take() {
        apply(&mut image, at, record)?;
    }
    for (per_node, configs) in [(true, broker_configs), (false, cluster_configs)] {
        if !configs.is_empty() {
            image
                .apply(&MetadataRecord::BrokerConfigs { per_node, configs })
                .map_err(|e| format!("metadata file: {e}"))?;
        }
    }
    if !has_cluster {
        return Err("metadata file has no cluster line".into());
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::image::{PartitionImage, TopicImage};

    fn image() -> MetadataImage {
        let topic = TopicImage {
            name: "orders".into(),
            id: TopicId([7; 16]),
            partitions: vec![
                PartitionImage::placed(vec![1]),
                PartitionImage::placed(vec![2, 1]),
                PartitionImage {
                    leader_epoch: 4,
                    partition_epoch: 5,
                    ..PartitionImage::placed(vec![1])
                },
            ],
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
            log_start_offsets: BTreeMap::from([(2, 17)]),
        };
        MetadataImage {
            cluster_id: "abc".into(),
            producer_id_limit: 2000,
            topics: BTreeMap::from([("orders".to_string(), topic)]),
            broker_configs: BTreeMap::from([("num.io.threads".to_string(), "4".to_string())]),
            cluster_configs: BTreeMap::from([("log.retention.ms".to_string(), "9".to_string())]),
            brokers: BTreeMap::from([
                (1, broker("localhost", false)),
                (2, broker("10.0.0.2", true)),
            ]),
            quorum_index: 77,
        }
    }

    fn broker(host: &str, fenced: bool) -> crate::controller::BrokerImage {
        crate::controller::BrokerImage {
            incarnation: u64::MAX - 3,
            host: host.into(),
            port: 9092,
            rack: (!fenced).then(|| "rack-1".to_string()),
            fenced,
        }
    }

    #[test]
    fn the_file_round_trips() {
        let bytes = encode(&image(), 1);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("replicas")).count(),
            1,
            "only the partition not on node 1 alone: {text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("partition\t") && l.ends_with("\t2\t1\t4\t1\t5")),
            "the epochs and in-sync set of partition 2, and no other: {text}"
        );
        assert_eq!(text.matches("\npartition\t").count(), 1, "{text}");
        assert_eq!(decode(&bytes, 1).unwrap(), image());
        assert!(decode(b"garbage", 1).is_err());
        assert!(decode(b"spate-metadata v1\ncluster\tx\ntopic\tzz\n", 1).is_err());
    }

    #[test]
    fn files_from_before_replicas_and_start_lines_read_as_this_node_and_start_zero() {
        let id = TopicId([7; 16]).to_hex();
        let old = format!("spate-metadata v1\ncluster\tabc\nproducer_ids\t0\ntopic\t{id}\tt\t2\n");
        let image = decode(old.as_bytes(), 3).unwrap();
        let topic = &image.topics["t"];
        assert!(topic.log_start_offsets.is_empty());
        assert_eq!(topic.partitions, vec![PartitionImage::placed(vec![3]); 2]);
        let orphan = format!("{old}start\t{}\t0\t5\n", TopicId([8; 16]).to_hex());
        assert!(
            decode(orphan.as_bytes(), 3).is_err(),
            "a start line needs its topic"
        );
        let out_of_range = format!("{old}start\t{id}\t2\t5\n");
        assert!(decode(out_of_range.as_bytes(), 3).is_err());
        let stray = format!("spate-metadata v1\ncluster\tabc\nreplicas\t{id}\t0\t1\n");
        let error = decode(stray.as_bytes(), 3).unwrap_err();
        assert!(error.contains("line 3"), "{error}");
        let huge = format!("spate-metadata v1\ncluster\tabc\ntopic\t{id}\tt\t2147483647\n");
        let error = decode(huge.as_bytes(), 3).unwrap_err();
        assert!(error.contains("2147483647 partitions"), "{error}");
    }
}
