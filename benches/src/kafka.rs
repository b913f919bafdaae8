//! A minimal Kafka client on the `kafka-protocol` codecs: one blocking TCP connection, the few
//! requests the benchmarks need, and Produce requests encoded once and re-sent.
//!
//! The benchmark measures the broker, so the client does as little as it can per request: a
//! Produce frame is encoded once per case ([`ProduceFrame`]) and only its correlation id is
//! patched before each send; the response is decoded and every partition's error code checked.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, FetchRequest,
    FetchResponse, MetadataRequest, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const CLIENT_ID: &str = "spate-bench";
pub const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 11;
const CREATE_TOPICS_VERSION: i16 = 5;
const METADATA_VERSION: i16 = 9;
const DELETE_TOPICS_VERSION: i16 = 4;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
/// How long the broker may take for acks=all and topic changes.
const BROKER_TIMEOUT_MS: i32 = 30_000;
const IO_TIMEOUT: Duration = Duration::from_secs(60);
const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Where the correlation id sits in a request frame: after the size, api key and api version.
const CORRELATION_ID_AT: usize = 8;
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// DescribeConfigs resource type of a broker.
const RESOURCE_BROKER: i8 = 4;

/// Kafka acks: the broker answers once the batch is flushed (all) or appended (leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    All,
    Leader,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::All => -1,
            Acks::Leader => 1,
        }
    }
}

/// One connection to the broker.
pub struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    next_correlation_id: i32,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("cannot connect to the broker at {addr}: {e}"))?;
        let setup = |s: &TcpStream| -> io::Result<()> {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))
        };
        setup(&stream).map_err(|e| format!("cannot configure the connection to {addr}: {e}"))?;
        Ok(Conn {
            stream,
            addr,
            next_correlation_id: 1,
        })
    }

    /// The next correlation id to use.
    pub fn take_correlation_id(&mut self) -> i32 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        id
    }

    /// Writes a whole request frame (size prefix included).
    pub fn send_frame(&mut self, frame: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(frame)
            .map_err(|e| self.io_error(&e, "sending a request"))
    }

    /// Reads one response frame and returns what follows the size prefix.
    pub fn read_frame(&mut self) -> Result<Bytes, String> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| self.io_error(&e, "waiting for a response"))?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= RESPONSE_BYTES_MAX)
            .ok_or_else(|| format!("the broker at {} sent a frame of {size} bytes", self.addr))?;
        let mut frame = vec![0u8; size];
        self.stream
            .read_exact(&mut frame)
            .map_err(|e| self.io_error(&e, "reading a response"))?;
        Ok(Bytes::from(frame))
    }

    /// Sends `request` and waits for its response.
    pub fn request<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        let correlation_id = self.take_correlation_id();
        let frame = encode_frame(request, version, correlation_id)?;
        self.send_frame(&frame)?;
        let body = self.read_frame()?;
        decode_response::<R>(body, version, correlation_id)
    }

    /// Creates `name` with `partitions` partitions; an existing topic is an error.
    pub fn create_topic(&mut self, name: &str, partitions: i32) -> Result<(), String> {
        self.create_replicated_topic(name, partitions, 1)
    }

    /// Creates `name` with `partitions` partitions of `replicas` replicas each.
    pub fn create_replicated_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replicas: i16,
    ) -> Result<(), String> {
        self.create_topic_with(name, partitions, replicas, &[])
    }

    /// Creates `name` with these topic configs.
    pub fn create_topic_with(
        &mut self,
        name: &str,
        partitions: i32,
        replicas: i16,
        configs: &[(&str, &str)],
    ) -> Result<(), String> {
        use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.to_string()))
                    .with_value(Some(StrBytes::from_string(v.to_string())))
            })
            .collect();
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(replicas)
                .with_configs(configs)])
            .with_timeout_ms(BROKER_TIMEOUT_MS);
        let response = self.request(&request, CREATE_TOPICS_VERSION)?;
        match response.topics.first() {
            Some(t) if t.error_code == 0 => Ok(()),
            Some(t) if t.error_code == TOPIC_ALREADY_EXISTS => Err(format!(
                "topic '{name}' already exists (the data directory should be fresh)"
            )),
            Some(t) => Err(format!(
                "cannot create topic '{name}': Kafka error {}{}",
                t.error_code,
                t.error_message
                    .as_ref()
                    .map(|m| format!(" ({})", m.as_str()))
                    .unwrap_or_default()
            )),
            None => Err(format!("CreateTopics for '{name}' got an empty answer")),
        }
    }

    /// Each partition of `topic` as Metadata describes it: (leader, in-sync replica count),
    /// by partition index; empty while the topic is unknown.
    pub fn partition_leaders(&mut self, topic: &str) -> Result<Vec<(i32, usize)>, String> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(false);
        let response = self.request(&request, METADATA_VERSION)?;
        let mut leaders = Vec::new();
        for t in response.topics.iter().filter(|t| t.error_code == 0) {
            let mut partitions: Vec<_> = t.partitions.iter().collect();
            partitions.sort_by_key(|p| p.partition_index);
            leaders = partitions
                .iter()
                .map(|p| (p.leader_id.0, p.isr_nodes.len()))
                .collect();
        }
        Ok(leaders)
    }

    pub fn delete_topic(&mut self, name: &str) -> Result<(), String> {
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(name)])
            .with_timeout_ms(BROKER_TIMEOUT_MS);
        let response = self.request(&request, DELETE_TOPICS_VERSION)?;
        match response.responses.first() {
            Some(r) if r.error_code == 0 => Ok(()),
            Some(r) => Err(format!(
                "cannot delete topic '{name}': Kafka error {}",
                r.error_code
            )),
            None => Err(format!("DeleteTopics for '{name}' got an empty answer")),
        }
    }

    /// A broker setting from DescribeConfigs, if the broker reports it.
    pub fn broker_config(&mut self, node_id: i32, key: &str) -> Result<Option<String>, String> {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(StrBytes::from_string(node_id.to_string()))
                .with_configuration_keys(Some(vec![StrBytes::from_string(key.to_string())])),
        ]);
        let response = self.request(&request, DESCRIBE_CONFIGS_VERSION)?;
        Ok(response
            .results
            .iter()
            .filter(|r| r.error_code == 0)
            .flat_map(|r| r.configs.iter())
            .find(|c| c.name.as_str() == key)
            .and_then(|c| c.value.as_ref().map(|v| v.to_string())))
    }

    /// Fetches from `offset` of one partition, waiting up to `max_wait_ms` for data.
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        max_bytes: i32,
    ) -> Result<FetchResponse, String> {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(max_bytes)])]);
        let response = self.request(&request, FETCH_VERSION)?;
        if response.error_code != 0 {
            return Err(format!("Fetch failed: Kafka error {}", response.error_code));
        }
        Ok(response)
    }

    fn io_error(&self, e: &io::Error, doing: &str) -> String {
        let addr = self.addr;
        match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                format!("the broker at {addr} closed the connection while {doing} (see its log)")
            }
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
                "the broker at {addr} did not answer within {} s while {doing}",
                IO_TIMEOUT.as_secs()
            ),
            _ => format!("connection to {addr} failed while {doing}: {e}"),
        }
    }
}

/// A Produce request for one batch to one partition, encoded once; each send patches the
/// correlation id.
pub struct ProduceFrame {
    frame: BytesMut,
}

impl ProduceFrame {
    pub fn new(topic: &str, partition: i32, acks: Acks, batch: Bytes) -> Result<Self, String> {
        let request = ProduceRequest::default()
            .with_acks(acks.wire())
            .with_timeout_ms(BROKER_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let frame = encode_frame(&request, PRODUCE_VERSION, 0)?;
        Ok(ProduceFrame {
            frame: BytesMut::from(&frame[..]),
        })
    }

    /// The frame carrying `correlation_id`.
    pub fn with_id(&mut self, correlation_id: i32) -> &[u8] {
        self.frame[CORRELATION_ID_AT..CORRELATION_ID_AT + 4]
            .copy_from_slice(&correlation_id.to_be_bytes());
        &self.frame
    }
}

/// Checks a Produce response: its correlation id and every partition's error code.
pub fn check_produce_response(body: Bytes, correlation_id: i32) -> Result<(), String> {
    let response = decode_response::<ProduceRequest>(body, PRODUCE_VERSION, correlation_id)?;
    check_produce(&response)
}

fn check_produce(response: &ProduceResponse) -> Result<(), String> {
    for topic in &response.responses {
        for partition in &topic.partition_responses {
            if partition.error_code != 0 {
                return Err(format!(
                    "the broker refused a produce to {}-{}: Kafka error {}{}",
                    topic.name.as_str(),
                    partition.index,
                    partition.error_code,
                    partition
                        .error_message
                        .as_ref()
                        .map(|m| format!(" ({})", m.as_str()))
                        .unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

fn encode_frame<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header
        .encode(&mut frame, R::header_version(version))
        .and_then(|()| request.encode(&mut frame, version))
        .map_err(|e| format!("cannot encode a request (api key {}): {e}", R::KEY))?;
    let size = i32::try_from(frame.len() - 4)
        .map_err(|_| format!("request too large: {} bytes", frame.len()))?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame.freeze())
}

fn decode_response<R: Request>(
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, String> {
    let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
        .map_err(|e| format!("malformed response header (api key {}): {e}", R::KEY))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "response with correlation id {}, expected {correlation_id}",
            header.correlation_id
        ));
    }
    R::Response::decode(&mut body, version)
        .map_err(|e| format!("malformed response (api key {} v{version}): {e}", R::KEY))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The offset after the last whole batch in fetched record data, and the bytes of whole
/// batches; a batch cut short by the size limit is left for the next fetch.
pub fn walk_batches(data: &[u8]) -> Option<(i64, usize)> {
    let mut at = 0;
    let mut next = None;
    while data.len() - at >= 61 {
        let base_offset = i64::from_be_bytes(data[at..at + 8].try_into().ok()?);
        let length = i32::from_be_bytes(data[at + 8..at + 12].try_into().ok()?);
        let total = 12 + usize::try_from(length).ok()?;
        if data.len() - at < total {
            break;
        }
        let last_delta = i32::from_be_bytes(data[at + 23..at + 27].try_into().ok()?);
        next = Some(base_offset + i64::from(last_delta) + 1);
        at += total;
    }
    next.map(|n| (n, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_frames_carry_the_patched_correlation_id() {
        let batch = crate::batch::exact_batch(4096).unwrap();
        let mut frame = ProduceFrame::new("t", 0, Acks::All, batch.bytes).unwrap();
        let bytes = frame.with_id(0x0102_0304).to_vec();
        let mut body = Bytes::from(bytes[4..].to_vec());
        let header =
            RequestHeader::decode(&mut body, ProduceRequest::header_version(PRODUCE_VERSION))
                .unwrap();
        assert_eq!(header.correlation_id, 0x0102_0304);
        let request = ProduceRequest::decode(&mut body, PRODUCE_VERSION).unwrap();
        assert_eq!(request.acks, -1);
    }

    #[test]
    fn walking_fetched_batches_skips_a_partial_tail() {
        let batch = crate::batch::exact_batch(16 * 1024).unwrap();
        let mut data = batch.bytes.to_vec();
        data.extend_from_slice(&batch.bytes[..100]);
        assert_eq!(walk_batches(&data), Some((16, 16 * 1024)));
        assert_eq!(walk_batches(&data[..100]), None);
    }
}
