//! Metadata records as bytes, for the controller quorum's log and its snapshots: what one node
//! writes, every other node reads, so unlike the metadata file nothing in it depends on which
//! node wrote it.
//!
//! A list of records is a version byte, a count, then each record: a tag byte and its fields.
//! Numbers are big-endian; a string or a byte run is its length (u32) then its bytes; a list
//! is its count (u32) then its items. Everything read is checked: a count or length beyond what
//! is left, an unknown tag, text that is not UTF-8 or bytes left over are refused, never a panic.

use super::MetadataRecord;
use crate::topics::TopicId;
use std::collections::BTreeMap;

const VERSION: u8 = 1;

const CLUSTER: u8 = 1;
const PRODUCER_IDS: u8 = 2;
const TOPIC_CREATED: u8 = 3;
const PARTITIONS_ADDED: u8 = 4;
const TOPIC_DELETED: u8 = 5;
const TOPIC_CONFIGS: u8 = 6;
const BROKER_CONFIGS: u8 = 7;
const LEADER_CHANGED: u8 = 8;
const LOG_START: u8 = 9;
const BROKER_REGISTERED: u8 = 10;
const BROKER_FENCING: u8 = 11;
const QUORUM_APPLIED: u8 = 12;
const PRODUCER_ID_BLOCK: u8 = 13;
/// A registration naming the broker's rack (one without a rack keeps the older tag, so logs
/// written before racks read as they were).
const BROKER_REGISTERED_RACK: u8 = 14;
const PARTITION_CHANGED: u8 = 15;

/// The bytes of `records`.
pub fn encode_records(records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Writer(vec![VERSION]);
    out.count(records.len());
    for record in records {
        match record {
            MetadataRecord::Cluster { id } => {
                out.0.push(CLUSTER);
                out.text(id);
            }
            MetadataRecord::ProducerIds { limit } => {
                out.0.push(PRODUCER_IDS);
                out.i64(*limit);
            }
            MetadataRecord::TopicCreated {
                id,
                name,
                replicas,
                configs,
            } => {
                out.0.push(TOPIC_CREATED);
                out.id(id);
                out.text(name);
                out.replicas(replicas);
                out.configs(configs);
            }
            MetadataRecord::PartitionsAdded { id, replicas } => {
                out.0.push(PARTITIONS_ADDED);
                out.id(id);
                out.replicas(replicas);
            }
            MetadataRecord::TopicDeleted { id } => {
                out.0.push(TOPIC_DELETED);
                out.id(id);
            }
            MetadataRecord::TopicConfigs { id, configs } => {
                out.0.push(TOPIC_CONFIGS);
                out.id(id);
                out.configs(configs);
            }
            MetadataRecord::BrokerConfigs { per_node, configs } => {
                out.0.push(BROKER_CONFIGS);
                out.0.push(u8::from(*per_node));
                out.configs(configs);
            }
            MetadataRecord::LeaderChanged {
                id,
                partition,
                leader,
                leader_epoch,
            } => {
                out.0.push(LEADER_CHANGED);
                out.id(id);
                out.i32(*partition);
                out.i32(*leader);
                out.i32(*leader_epoch);
            }
            MetadataRecord::PartitionChanged {
                id,
                partition,
                leader,
                leader_epoch,
                in_sync,
                partition_epoch,
            } => {
                out.0.push(PARTITION_CHANGED);
                out.id(id);
                out.i32(*partition);
                out.i32(*leader);
                out.i32(*leader_epoch);
                out.replicas(std::slice::from_ref(in_sync));
                out.i32(*partition_epoch);
            }
            MetadataRecord::BrokerRegistered {
                node,
                incarnation,
                host,
                port,
                rack,
            } => {
                out.0.push(match rack {
                    Some(_) => BROKER_REGISTERED_RACK,
                    None => BROKER_REGISTERED,
                });
                out.i32(*node);
                out.i64(*incarnation as i64);
                out.text(host);
                out.0.extend_from_slice(&port.to_be_bytes());
                if let Some(rack) = rack {
                    out.text(rack);
                }
            }
            MetadataRecord::BrokerFencing { node, fenced } => {
                out.0.push(BROKER_FENCING);
                out.i32(*node);
                out.0.push(u8::from(*fenced));
            }
            MetadataRecord::LogStart {
                id,
                partition,
                offset,
            } => {
                out.0.push(LOG_START);
                out.id(id);
                out.i32(*partition);
                out.i64(*offset);
            }
            MetadataRecord::QuorumApplied { index } => {
                out.0.push(QUORUM_APPLIED);
                out.i64(*index as i64);
            }
            MetadataRecord::ProducerIdBlock {
                node,
                incarnation,
                start,
                limit,
            } => {
                out.0.push(PRODUCER_ID_BLOCK);
                out.i32(*node);
                out.i64(*incarnation as i64);
                out.i64(*start);
                out.i64(*limit);
            }
        }
    }
    out.0
}

/// Reads what [`encode_records`] wrote; an error says what is wrong.
pub fn decode_records(data: &[u8]) -> Result<Vec<MetadataRecord>, String> {
    let mut input = Reader(data);
    let version = input.u8()?;
    if version != VERSION {
        return Err(format!(
            "metadata records of version {version}, not {VERSION}"
        ));
    }
    // Every record takes at least its tag byte and four more, so a count beyond what is left
    // is refused; what is reserved up front is bounded besides, since a record in memory is
    // larger than its bytes.
    let count = input.count(5)?;
    let mut records = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let record = match input.u8()? {
            CLUSTER => MetadataRecord::Cluster { id: input.text()? },
            PRODUCER_IDS => MetadataRecord::ProducerIds {
                limit: input.i64()?,
            },
            TOPIC_CREATED => MetadataRecord::TopicCreated {
                id: input.id()?,
                name: input.text()?,
                replicas: input.replicas()?,
                configs: input.configs()?,
            },
            PARTITIONS_ADDED => MetadataRecord::PartitionsAdded {
                id: input.id()?,
                replicas: input.replicas()?,
            },
            TOPIC_DELETED => MetadataRecord::TopicDeleted { id: input.id()? },
            TOPIC_CONFIGS => MetadataRecord::TopicConfigs {
                id: input.id()?,
                configs: input.configs()?,
            },
            BROKER_CONFIGS => MetadataRecord::BrokerConfigs {
                per_node: input.flag()?,
                configs: input.configs()?,
            },
            LEADER_CHANGED => MetadataRecord::LeaderChanged {
                id: input.id()?,
                partition: input.i32()?,
                leader: input.i32()?,
                leader_epoch: input.i32()?,
            },
            PARTITION_CHANGED => MetadataRecord::PartitionChanged {
                id: input.id()?,
                partition: input.i32()?,
                leader: input.i32()?,
                leader_epoch: input.i32()?,
                in_sync: match input.replicas()?.pop() {
                    Some(nodes) => nodes,
                    None => return Err("a partition change without its in-sync set".into()),
                },
                partition_epoch: input.i32()?,
            },
            LOG_START => MetadataRecord::LogStart {
                id: input.id()?,
                partition: input.i32()?,
                offset: input.i64()?,
            },
            tag @ (BROKER_REGISTERED | BROKER_REGISTERED_RACK) => {
                MetadataRecord::BrokerRegistered {
                    node: input.i32()?,
                    incarnation: input.i64()? as u64,
                    host: input.text()?,
                    port: u16::from_be_bytes(input.take()?),
                    rack: match tag {
                        BROKER_REGISTERED_RACK => Some(input.text()?),
                        _ => None,
                    },
                }
            }
            BROKER_FENCING => MetadataRecord::BrokerFencing {
                node: input.i32()?,
                fenced: input.flag()?,
            },
            QUORUM_APPLIED => MetadataRecord::QuorumApplied {
                index: input.i64()? as u64,
            },
            PRODUCER_ID_BLOCK => MetadataRecord::ProducerIdBlock {
                node: input.i32()?,
                incarnation: input.i64()? as u64,
                start: input.i64()?,
                limit: input.i64()?,
            },
            tag => return Err(format!("unknown metadata record tag {tag}")),
        };
        records.push(record);
    }
    if !input.0.is_empty() {
        return Err(format!("{} bytes after the records", input.0.len()));
    }
    Ok(records)
}

struct Writer(Vec<u8>);

impl Writer {
    fn i32(&mut self, value: i32) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn count(&mut self, count: usize) {
        let count = u32::try_from(count).expect("metadata lists are far below 4G items");
        self.0.extend_from_slice(&count.to_be_bytes());
    }
    fn text(&mut self, text: &str) {
        self.count(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }
    fn id(&mut self, id: &TopicId) {
        self.0.extend_from_slice(&id.0);
    }
    fn replicas(&mut self, replicas: &[Vec<i32>]) {
        self.count(replicas.len());
        for nodes in replicas {
            self.count(nodes.len());
            for &node in nodes {
                self.i32(node);
            }
        }
    }
    fn configs(&mut self, configs: &BTreeMap<String, String>) {
        self.count(configs.len());
        for (key, value) in configs {
            self.text(key);
            self.text(value);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.0.len() < N {
            return Err("metadata records end early".into());
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take::<1>()?[0])
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.take()?))
    }
    fn flag(&mut self) -> Result<bool, String> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("a flag of {other}, not 0 or 1")),
        }
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    /// A count of items each at least `item_bytes` long, refused if they cannot all be there.
    fn count(&mut self, item_bytes: usize) -> Result<usize, String> {
        let count = u32::from_be_bytes(self.take()?) as usize;
        if count.saturating_mul(item_bytes) > self.0.len() {
            return Err(format!("a count of {count} runs past the end"));
        }
        Ok(count)
    }
    fn text(&mut self) -> Result<String, String> {
        let len = self.count(1)?;
        let (bytes, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(bytes.to_vec()).map_err(|_| "metadata text is not UTF-8".to_string())
    }
    fn id(&mut self) -> Result<TopicId, String> {
        Ok(TopicId(self.take()?))
    }
    fn replicas(&mut self) -> Result<Vec<Vec<i32>>, String> {
        let partitions = self.count(4)?;
        let mut replicas = Vec::with_capacity(partitions.min(1024));
        for _ in 0..partitions {
            let nodes = self.count(4)?;
            replicas.push((0..nodes).map(|_| self.i32()).collect::<Result<_, _>>()?);
        }
        Ok(replicas)
    }
    fn configs(&mut self) -> Result<BTreeMap<String, String>, String> {
        let count = self.count(8)?;
        let mut configs = BTreeMap::new();
        for _ in 0..count {
            let key = self.text()?;
            configs.insert(key, self.text()?);
        }
        Ok(configs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn every_kind() -> Vec<MetadataRecord> {
        let id = TopicId([7; 16]);
        let configs = BTreeMap::from([
            ("retention.ms".to_string(), "1000".to_string()),
            ("x".to_string(), "tab\there, newline\n, ünïcode".to_string()),
        ]);
        vec![
            MetadataRecord::Cluster { id: "c-1".into() },
            MetadataRecord::ProducerIds { limit: 1 << 40 },
            MetadataRecord::TopicCreated {
                id,
                name: "orders".into(),
                replicas: vec![vec![1, 2, 3], vec![2, 3, 1]],
                configs: configs.clone(),
            },
            MetadataRecord::PartitionsAdded {
                id,
                replicas: vec![vec![3]],
            },
            MetadataRecord::TopicConfigs {
                id,
                configs: BTreeMap::new(),
            },
            MetadataRecord::BrokerConfigs {
                per_node: true,
                configs,
            },
            MetadataRecord::LeaderChanged {
                id,
                partition: 1,
                leader: 3,
                leader_epoch: 9,
            },
            MetadataRecord::PartitionChanged {
                id,
                partition: 0,
                leader: -1,
                leader_epoch: 10,
                in_sync: vec![2, 1],
                partition_epoch: 12,
            },
            MetadataRecord::LogStart {
                id,
                partition: 0,
                offset: i64::MAX,
            },
            MetadataRecord::QuorumApplied { index: 1 << 50 },
            MetadataRecord::ProducerIdBlock {
                node: 2,
                incarnation: u64::MAX,
                start: 1000,
                limit: 2000,
            },
            MetadataRecord::BrokerRegistered {
                node: 2,
                incarnation: u64::MAX,
                host: "broker-2.example".into(),
                port: 9092,
                rack: Some("eu-west-1a".into()),
            },
            MetadataRecord::BrokerRegistered {
                node: 3,
                incarnation: 1,
                host: "broker-3.example".into(),
                port: 9093,
                rack: None,
            },
            MetadataRecord::BrokerFencing {
                node: 2,
                fenced: true,
            },
            MetadataRecord::TopicDeleted { id },
        ]
    }

    #[test]
    fn every_kind_of_record_round_trips() {
        let records = every_kind();
        assert_eq!(decode_records(&encode_records(&records)).unwrap(), records);
        assert_eq!(decode_records(&encode_records(&[])).unwrap(), vec![]);
    }

    /// A registration as the quorum's log held it before racks (tag 10, no rack) still reads.
    #[test]
    fn a_registration_written_before_racks_reads_without_one() {
        let mut bytes = vec![VERSION, 0, 0, 0, 1, BROKER_REGISTERED];
        bytes.extend_from_slice(&2i32.to_be_bytes());
        bytes.extend_from_slice(&7i64.to_be_bytes());
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.push(b'h');
        bytes.extend_from_slice(&9092u16.to_be_bytes());
        let registered = MetadataRecord::BrokerRegistered {
            node: 2,
            incarnation: 7,
            host: "h".into(),
            port: 9092,
            rack: None,
        };
        assert_eq!(decode_records(&bytes).unwrap(), vec![registered.clone()]);
        assert_eq!(encode_records(&[registered]), bytes);
    }

    /// Cut short, bit-flipped, or with bytes added, the records are refused or read as other
    /// valid records, never a panic or a huge allocation.
    #[test]
    fn damaged_bytes_are_refused_without_panic() {
        let bytes = encode_records(&every_kind());
        for len in 0..bytes.len() {
            assert!(decode_records(&bytes[..len]).is_err(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_records(&longer)
            .unwrap_err()
            .contains("after the records"));
        let mut rng = Rng::new(5);
        for _ in 0..2_000 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + rng.next_u64() % 4 {
                let at = (rng.next_u64() % damaged.len() as u64) as usize;
                damaged[at] ^= 1 << (rng.next_u64() % 8);
            }
            let _ = decode_records(&damaged);
        }
        let huge = [VERSION, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_records(&huge).unwrap_err().contains("past the end"));
    }
}
