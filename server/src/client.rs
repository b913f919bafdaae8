//! Kafka client used by the console tools: one blocking TCP connection to one broker.
//!
//! A request travels as a 4-byte big-endian size, a request header (api key, version, correlation
//! id, client id `spate-cli`) and the body; the response carries the same correlation id. On
//! connect the client asks the broker for its API version ranges (ApiVersions, with the KIP-511
//! v0 fallback) so that an unsupported version is reported by name instead of as a closed
//! connection.
//!
//! Nothing the network sends may panic this module: frame sizes are bounded, decoding errors
//! become messages, and decoding runs under `catch_unwind` in case the codec itself trips.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteGroupsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, FetchRequest, FetchResponse,
    FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest,
    ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

/// The API versions the console tools speak (the broker promises to support these).
pub const CREATE_TOPICS_VERSION: i16 = 5;
pub const DELETE_TOPICS_VERSION: i16 = 4;
pub const PRODUCE_VERSION: i16 = 9;
pub const FETCH_VERSION: i16 = 11;
pub const LIST_OFFSETS_VERSION: i16 = 5;
/// Metadata v9 is the first flexible version but topic ids only arrive from v10 on, so the
/// client uses the highest version in this range that the broker offers.
pub const METADATA_VERSION_MIN: i16 = 9;
pub const METADATA_VERSION_MAX: i16 = 12;
const API_VERSIONS_VERSION: i16 = 3;
/// The admin APIs: the client uses the highest version in each range the broker offers.
pub const DESCRIBE_CONFIGS_VERSIONS: (i16, i16) = (1, 4);
pub const INCREMENTAL_ALTER_CONFIGS_VERSIONS: (i16, i16) = (0, 1);
pub const CREATE_PARTITIONS_VERSIONS: (i16, i16) = (0, 3);
/// DescribeCluster v0: cluster id, controller and brokers are all there.
pub const DESCRIBE_CLUSTER_VERSIONS: (i16, i16) = (0, 2);
/// The consumer-group APIs. OffsetFetch starts at v2, the first that fetches all of a group's
/// offsets; OffsetCommit at v2, the first with a generation and member id.
pub const FIND_COORDINATOR_VERSIONS: (i16, i16) = (0, 4);
pub const LIST_GROUPS_VERSIONS: (i16, i16) = (0, 5);
pub const DESCRIBE_GROUPS_VERSIONS: (i16, i16) = (0, 5);
pub const OFFSET_FETCH_VERSIONS: (i16, i16) = (2, 8);
pub const OFFSET_COMMIT_VERSIONS: (i16, i16) = (2, 8);
pub const DELETE_GROUPS_VERSIONS: (i16, i16) = (0, 2);
/// FindCoordinator key type of a group (1 is a transactional id).
const COORDINATOR_KEY_GROUP: i8 = 0;

/// DescribeConfigs and IncrementalAlterConfigs resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// DescribeConfigs and IncrementalAlterConfigs resource type of a broker: named by its node id,
/// or by the empty string for the cluster-wide defaults.
pub const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs config_source of a topic's own override (Kafka's DYNAMIC_TOPIC_CONFIG).
pub const CONFIG_SOURCE_TOPIC: i8 = 1;
/// DescribeConfigs config_source of a config at Kafka's default (Kafka's DEFAULT_CONFIG).
pub const CONFIG_SOURCE_DEFAULT: i8 = 5;

const CLIENT_ID: &str = "spate-cli";
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `connect_controller` waits for a controller quorum to have an active controller.
const CONTROLLER_WAIT: Duration = Duration::from_secs(10);
/// Requests ask for at most 50 MiB (Kafka's fetch.max.bytes); anything far above is garbage.
pub const RESPONSE_BYTES_MAX: usize = 128 * 1024 * 1024;
/// How long the broker may take for topic creation/deletion and acknowledged produce.
pub const BROKER_TIMEOUT_MS: i32 = 30_000;

const UNSUPPORTED_VERSION: i16 = 35;

/// One connection to one broker.
pub struct Client {
    addr: String,
    stream: TcpStream,
    correlation_id: i32,
    /// api key -> (min, max) as the broker advertised them.
    api_versions: BTreeMap<i16, (i16, i16)>,
}

impl Client {
    /// Connects to the first reachable address of `bootstrap` (`HOST:PORT`, or a comma-separated
    /// list of them) and fetches the broker's API version ranges.
    pub fn connect(bootstrap: &str) -> Result<Client, String> {
        let mut last_error = None;
        for server in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match Client::connect_one(server) {
                Ok(client) => return Ok(client),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            format!("no bootstrap server given in '{bootstrap}' (use --bootstrap-server HOST:PORT)")
        }))
    }

    /// Connects to the cluster's controller, where topic changes go (as Kafka's admin clients
    /// send them): the broker the bootstrap broker's Metadata names, waited for a few seconds
    /// while a controller quorum elects one.
    pub fn connect_controller(bootstrap: &str) -> Result<Client, String> {
        let mut client = Client::connect(bootstrap)?;
        let deadline = std::time::Instant::now() + CONTROLLER_WAIT;
        loop {
            let metadata = client.metadata(Some(&[]), false)?;
            let id = metadata.controller_id.0;
            match metadata.brokers.iter().find(|b| b.node_id.0 == id) {
                // One broker, or no quorum: the one connected to.
                Some(_) if metadata.brokers.len() == 1 => return Ok(client),
                Some(broker) => {
                    return Client::connect(&broker_address(&broker.host, broker.port))
                        .map_err(|e| format!("cannot reach the controller, broker {id}: {e}"));
                }
                None if std::time::Instant::now() >= deadline => {
                    return Err(format!(
                        "the cluster has no active controller (the broker at {} names {id});                          `spate cluster quorum` shows the controller quorum",
                        client.addr
                    ))
                }
                None => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn connect_one(server: &str) -> Result<Client, String> {
        let addrs = resolve(server)?;
        let mut last_error = None;
        for addr in &addrs {
            match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    let mut client = Client::from_stream(server, stream)?;
                    client.handshake()?;
                    return Ok(client);
                }
                Err(e) => last_error = Some(e),
            }
        }
        let e = last_error.expect("resolve returns at least one address");
        Err(connect_error(server, &e))
    }

    fn from_stream(addr: &str, stream: TcpStream) -> Result<Client, String> {
        let setup = |s: &TcpStream| -> io::Result<()> {
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            s.set_nodelay(true)
        };
        setup(&stream).map_err(|e| format!("cannot configure the connection to {addr}: {e}"))?;
        Ok(Client {
            addr: addr.to_string(),
            stream,
            correlation_id: 0,
            api_versions: BTreeMap::new(),
        })
    }

    /// The highest version of `key` the broker supports, if it supports the API at all.
    pub fn max_version(&self, key: ApiKey) -> Option<i16> {
        self.api_versions.get(&(key as i16)).map(|&(_, max)| max)
    }

    /// The version of `key` to send: the broker's highest within `range`, or `range`'s low end
    /// when the broker offers nothing in it (`send` then names the mismatch).
    pub fn version_in(&self, key: ApiKey, range: (i16, i16)) -> i16 {
        match self.api_versions.get(&(key as i16)) {
            Some(&(min, max)) if min <= range.1 && max >= range.0 => max.min(range.1),
            _ => range.0,
        }
    }

    /// Sends `request` at `version` and waits for its response.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, String> {
        self.check_version::<R>(version)?;
        let correlation_id = self.write_request(request, version)?;
        let header_version = R::Response::header_version(version);
        let mut body = self.read_response::<R>(correlation_id, version, header_version)?;
        decode_guarded(|| R::Response::decode(&mut body, version)).map_err(|e| {
            let api = api_name(R::KEY);
            format!(
                "malformed {api} v{version} response from {}: {e}",
                self.addr
            )
        })
    }

    /// Sends `request` for which the broker sends no response (Produce with acks=0).
    pub fn send_without_response<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<(), String> {
        self.check_version::<R>(version)?;
        self.write_request(request, version).map(|_| ())
    }

    fn check_version<R: Request>(&self, version: i16) -> Result<(), String> {
        let api = api_name(R::KEY);
        assert!(
            R::VERSIONS.min <= version && version <= R::VERSIONS.max,
            "{api} v{version} is outside what kafka-protocol can encode"
        );
        match self.api_versions.get(&R::KEY) {
            None => Err(format!(
                "the broker at {} does not support {api} requests; spate needs {api} v{version}",
                self.addr
            )),
            Some(&(min, max)) if version < min || version > max => Err(format!(
                "the broker at {} supports {api} v{min} to v{max}, but spate needs {api} \
                 v{version} (is this a Spate or Kafka broker of a matching version?)",
                self.addr
            )),
            Some(_) => Ok(()),
        }
    }

    /// Asks for the broker's API version ranges. A broker that does not know our ApiVersions
    /// version answers in v0 with UNSUPPORTED_VERSION and its own range (KIP-511); then ask
    /// again at the highest version both sides know.
    fn handshake(&mut self) -> Result<(), String> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response = self.api_versions_at(&request, API_VERSIONS_VERSION)?;
        if response.error_code == UNSUPPORTED_VERSION {
            let key = ApiKey::ApiVersions as i16;
            let offered = response.api_keys.iter().find(|k| k.api_key == key);
            let version = offered.map_or(0, |k| k.max_version.min(API_VERSIONS_VERSION));
            response = self.api_versions_at(&request, version.max(0))?;
        }
        if response.error_code != 0 {
            return Err(kafka_error(
                response.error_code,
                &format!(
                    "the broker at {} refused the ApiVersions handshake",
                    self.addr
                ),
                None,
            ));
        }
        self.api_versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    fn api_versions_at(
        &mut self,
        request: &ApiVersionsRequest,
        version: i16,
    ) -> Result<ApiVersionsResponse, String> {
        let correlation_id = self.write_request(request, version)?;
        let header_version = ApiVersionsResponse::header_version(version);
        let mut body =
            self.read_response::<ApiVersionsRequest>(correlation_id, version, header_version)?;
        // The error code leads every version; UNSUPPORTED_VERSION means the body is v0.
        let error_code = if body.len() >= 2 {
            i16::from_be_bytes([body[0], body[1]])
        } else {
            0
        };
        let body_version = if error_code == UNSUPPORTED_VERSION {
            0
        } else {
            version
        };
        decode_guarded(|| ApiVersionsResponse::decode(&mut body, body_version)).map_err(|e| {
            format!(
                "malformed ApiVersions v{body_version} response from {}: {e} (is this a Kafka \
                 broker?)",
                self.addr
            )
        })
    }

    fn write_request<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, String> {
        let correlation_id = self.correlation_id;
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_frame(request, version, correlation_id)?;
        let api = api_name(R::KEY);
        self.stream
            .write_all(&frame)
            .map_err(|e| self.io_error(&e, &format!("sending the {api} v{version} request")))?;
        Ok(correlation_id)
    }

    /// Reads one response frame, checks its correlation id and returns the body.
    fn read_response<R: Request>(
        &mut self,
        correlation_id: i32,
        version: i16,
        header_version: i16,
    ) -> Result<Bytes, String> {
        let api = api_name(R::KEY);
        let waiting = format!("waiting for the {api} v{version} response");
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| self.io_error(&e, &waiting))?;
        let size = i32::from_be_bytes(size);
        let size = check_frame_size(size).map_err(|e| {
            format!(
                "malformed {api} v{version} response from {}: {e}",
                self.addr
            )
        })?;
        let mut frame = vec![0u8; size];
        self.stream
            .read_exact(&mut frame)
            .map_err(|e| self.io_error(&e, &waiting))?;
        let mut frame = Bytes::from(frame);
        let header = decode_guarded(|| ResponseHeader::decode(&mut frame, header_version))
            .map_err(|e| {
                format!(
                    "malformed {api} v{version} response header from {}: {e}",
                    self.addr
                )
            })?;
        if header.correlation_id != correlation_id {
            return Err(format!(
                "the broker at {} answered {api} v{version} with correlation id {}, expected \
                 {correlation_id} (out-of-order or corrupt response)",
                self.addr, header.correlation_id
            ));
        }
        Ok(frame)
    }

    fn io_error(&self, e: &io::Error, doing: &str) -> String {
        let addr = &self.addr;
        match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => format!(
                "the broker at {addr} closed the connection while {doing} (check the broker log; \
                 it may not support this request)"
            ),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
                "the broker at {addr} did not answer within {} s while {doing}",
                IO_TIMEOUT.as_secs()
            ),
            _ => format!("connection to {addr} failed while {doing}: {e}"),
        }
    }

    // ---- typed helpers ------------------------------------------------------------------

    /// Metadata for `topics` (all topics when `None`).
    pub fn metadata(
        &mut self,
        topics: Option<&[&str]>,
        allow_auto_topic_creation: bool,
    ) -> Result<MetadataResponse, String> {
        let topics = topics.map(|names| {
            names
                .iter()
                .map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name))))
                .collect()
        });
        let request = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(allow_auto_topic_creation);
        let version = self
            .max_version(ApiKey::Metadata)
            .map_or(METADATA_VERSION_MIN, |max| {
                max.clamp(METADATA_VERSION_MIN, METADATA_VERSION_MAX)
            });
        let response = self.send(&request, version)?;
        if response.error_code != 0 {
            let what = "the broker refused the metadata request";
            return Err(kafka_error(response.error_code, what, None));
        }
        Ok(response)
    }

    /// Creates one topic; `-1` partitions or replication factor means the broker's default.
    pub fn create_topic(&mut self, topic: &NewTopic) -> Result<(), String> {
        let configs = topic
            .configs
            .iter()
            .map(|(key, value)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(key.clone()))
                    .with_value(Some(StrBytes::from_string(value.clone())))
            })
            .collect();
        let creatable = CreatableTopic::default()
            .with_name(topic_name(&topic.name))
            .with_num_partitions(topic.partitions)
            .with_replication_factor(topic.replication_factor)
            .with_configs(configs);
        let request = CreateTopicsRequest::default()
            .with_topics(vec![creatable])
            .with_timeout_ms(BROKER_TIMEOUT_MS);
        let response = self.send(&request, CREATE_TOPICS_VERSION)?;
        let result = response
            .topics
            .iter()
            .find(|t| t.name.as_str() == topic.name)
            .ok_or_else(|| missing_topic_answer("CreateTopics", &topic.name))?;
        if result.error_code != 0 {
            let what = topic_error_text(result.error_code, &topic.name, "cannot create");
            return Err(kafka_error(
                result.error_code,
                &what,
                result.error_message.as_deref(),
            ));
        }
        Ok(())
    }

    pub fn delete_topic(&mut self, name: &str) -> Result<(), String> {
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(name)])
            .with_timeout_ms(BROKER_TIMEOUT_MS);
        let response = self.send(&request, DELETE_TOPICS_VERSION)?;
        let result = response
            .responses
            .iter()
            .find(|r| r.name.as_ref().is_some_and(|n| n.as_str() == name))
            .ok_or_else(|| missing_topic_answer("DeleteTopics", name))?;
        if result.error_code != 0 {
            let what = topic_error_text(result.error_code, name, "cannot delete");
            return Err(kafka_error(
                result.error_code,
                &what,
                result.error_message.as_deref(),
            ));
        }
        Ok(())
    }

    /// Produces one encoded record set per partition of `topic`. With `acks == 0` the broker
    /// sends no response and this returns `None` once the request is written.
    pub fn produce(
        &mut self,
        topic: &str,
        acks: i16,
        record_sets: Vec<(i32, Bytes)>,
    ) -> Result<Option<ProduceResponse>, String> {
        let partition_data = record_sets
            .into_iter()
            .map(|(index, records)| {
                PartitionProduceData::default()
                    .with_index(index)
                    .with_records(Some(records))
            })
            .collect();
        let topic_data = TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(partition_data);
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(BROKER_TIMEOUT_MS)
            .with_topic_data(vec![topic_data]);
        if acks == 0 {
            self.send_without_response(&request, PRODUCE_VERSION)?;
            return Ok(None);
        }
        self.send(&request, PRODUCE_VERSION).map(Some)
    }

    /// Fetches `(partition, offset, partition_max_bytes)` of `topic`, waiting at most
    /// `max_wait_ms` for at least one byte.
    pub fn fetch(
        &mut self,
        topic: &str,
        partitions: &[(i32, i64, i32)],
        max_wait_ms: i32,
        max_bytes: i32,
    ) -> Result<FetchResponse, String> {
        let partitions = partitions
            .iter()
            .map(|&(partition, fetch_offset, partition_max_bytes)| {
                FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(fetch_offset)
                    .with_partition_max_bytes(partition_max_bytes)
            })
            .collect();
        let fetch_topic = FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions);
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_topic]);
        let response = self.send(&request, FETCH_VERSION)?;
        if response.error_code != 0 {
            let what = format!("cannot fetch from topic '{topic}'");
            return Err(kafka_error(response.error_code, &what, None));
        }
        Ok(response)
    }

    /// The offset of `timestamp` in each of `partitions`: -1 is the log end offset, -2 the log
    /// start offset.
    pub fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<ListOffsetsResponse, String> {
        let partitions = partitions
            .iter()
            .map(|&index| {
                ListOffsetsPartition::default()
                    .with_partition_index(index)
                    .with_timestamp(timestamp)
            })
            .collect();
        let list_topic = ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions);
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(vec![list_topic]);
        self.send(&request, LIST_OFFSETS_VERSION)
    }

    /// The configs of `topics` (every config, defaults included), one result per topic.
    pub fn describe_topic_configs(
        &mut self,
        topics: &[&str],
    ) -> Result<DescribeConfigsResponse, String> {
        let resources = topics
            .iter()
            .map(|name| {
                DescribeConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_string(name.to_string()))
                    .with_configuration_keys(None)
            })
            .collect();
        let request = DescribeConfigsRequest::default().with_resources(resources);
        let version = self.version_in(ApiKey::DescribeConfigs, DESCRIBE_CONFIGS_VERSIONS);
        self.send(&request, version)
    }

    /// Grows `topic` to `count` partitions (CreatePartitions); `validate_only` checks without
    /// changing anything.
    pub fn create_partitions(
        &mut self,
        topic: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), String> {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None)])
            .with_timeout_ms(BROKER_TIMEOUT_MS)
            .with_validate_only(validate_only);
        let version = self.version_in(ApiKey::CreatePartitions, CREATE_PARTITIONS_VERSIONS);
        let response = self.send(&request, version)?;
        let result = response
            .results
            .iter()
            .find(|r| r.name.as_str() == topic)
            .ok_or_else(|| missing_topic_answer("CreatePartitions", topic))?;
        if result.error_code == 0 {
            return Ok(());
        }
        let (what, fix) = match ResponseError::try_from_code(result.error_code) {
            Some(ResponseError::InvalidPartitions) => (
                format!("cannot give topic '{topic}' {count} partitions"),
                "partitions can be added, never removed: give --partitions more than the \
                 current count"
                    .to_string(),
            ),
            _ => admin_topic_error(result.error_code, topic, "cannot add partitions to"),
        };
        Err(kafka_refusal(
            result.error_code,
            &what,
            result.error_message.as_deref(),
            &fix,
        ))
    }

    /// Sets and deletes config overrides of `topic` (IncrementalAlterConfigs); `validate_only`
    /// checks without changing anything.
    pub fn alter_topic_configs(
        &mut self,
        topic: &str,
        set: &[(String, String)],
        delete: &[String],
        validate_only: bool,
    ) -> Result<(), String> {
        let changes: Vec<ConfigChange> = set
            .iter()
            .map(|(name, value)| ConfigChange::new(name, ConfigOp::Set, Some(value)))
            .chain(
                delete
                    .iter()
                    .map(|name| ConfigChange::new(name, ConfigOp::Delete, None)),
            )
            .collect();
        let resource = ConfigResource::Topic(topic.to_string());
        let (code, message) = self.incremental_alter(&resource, &changes, validate_only)?;
        if code == 0 {
            return Ok(());
        }
        let (what, fix) = match ResponseError::try_from_code(code) {
            Some(ResponseError::InvalidConfig) | Some(ResponseError::InvalidRequest) => (
                format!("cannot change the configs of topic '{topic}'"),
                format!(
                    "fix the config the broker names; `spate topic describe --topic {topic}` \
                     shows the current overrides"
                ),
            ),
            _ => admin_topic_error(code, topic, "cannot change the configs of"),
        };
        Err(kafka_refusal(code, &what, message.as_deref(), &fix))
    }

    /// Applies `changes` to the configs of `resource` (IncrementalAlterConfigs: SET, DELETE,
    /// APPEND, SUBTRACT); `validate_only` checks without changing anything. A refusal names
    /// the broker's error code and message and where to look.
    pub fn alter_configs(
        &mut self,
        resource: &ConfigResource,
        changes: &[ConfigChange],
        validate_only: bool,
    ) -> Result<(), String> {
        let (code, message) = self.incremental_alter(resource, changes, validate_only)?;
        if code == 0 {
            return Ok(());
        }
        let what = format!("cannot change the configs of {resource}");
        Err(kafka_refusal(
            code,
            &what,
            message.as_deref(),
            &config_error_fix(code, resource, true, message.as_deref()),
        ))
    }

    /// Sends one IncrementalAlterConfigs request for `resource`; returns its error code and
    /// message.
    fn incremental_alter(
        &mut self,
        resource: &ConfigResource,
        changes: &[ConfigChange],
        validate_only: bool,
    ) -> Result<(i16, Option<String>), String> {
        let configs = changes
            .iter()
            .map(|change| {
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(change.name.clone()))
                    .with_config_operation(change.op as i8)
                    .with_value(change.value.clone().map(StrBytes::from_string))
            })
            .collect();
        let resource_type = resource.resource_type();
        let resource_name = resource.resource_name();
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(resource_name.clone()))
                .with_configs(configs)])
            .with_validate_only(validate_only);
        let version = self.version_in(
            ApiKey::IncrementalAlterConfigs,
            INCREMENTAL_ALTER_CONFIGS_VERSIONS,
        );
        let response = self.send(&request, version)?;
        let result = response
            .responses
            .iter()
            .find(|r| r.resource_type == resource_type && r.resource_name.as_str() == resource_name)
            .ok_or_else(|| missing_resource_answer("IncrementalAlterConfigs", resource))?;
        let message = result.error_message.as_ref().map(|m| m.to_string());
        Ok((result.error_code, message))
    }

    /// The configs of `resource` (DescribeConfigs): all of them, or just `keys`. A refusal
    /// names the broker's error code and message and what to do.
    pub fn describe_configs(
        &mut self,
        resource: &ConfigResource,
        keys: Option<&[&str]>,
    ) -> Result<Vec<DescribeConfigsResourceResult>, String> {
        let resource_type = resource.resource_type();
        let resource_name = resource.resource_name();
        let keys = keys.map(|keys| {
            keys.iter()
                .map(|k| StrBytes::from_string(k.to_string()))
                .collect()
        });
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(resource_name.clone()))
                .with_configuration_keys(keys),
        ]);
        let version = self.version_in(ApiKey::DescribeConfigs, DESCRIBE_CONFIGS_VERSIONS);
        let response = self.send(&request, version)?;
        let result = response
            .results
            .into_iter()
            .find(|r| r.resource_type == resource_type && r.resource_name.as_str() == resource_name)
            .ok_or_else(|| missing_resource_answer("DescribeConfigs", resource))?;
        if result.error_code != 0 {
            let what = format!("cannot describe the configs of {resource}");
            return Err(kafka_refusal(
                result.error_code,
                &what,
                result.error_message.as_deref(),
                &config_error_fix(
                    result.error_code,
                    resource,
                    false,
                    result.error_message.as_deref(),
                ),
            ));
        }
        Ok(result.configs)
    }

    /// The cluster id, controller and brokers (DescribeCluster; from v2 the fenced brokers
    /// too, marked).
    pub fn describe_cluster(&mut self) -> Result<DescribeClusterResponse, String> {
        let version = self.version_in(ApiKey::DescribeCluster, DESCRIBE_CLUSTER_VERSIONS);
        let request = DescribeClusterRequest::default().with_include_fenced_brokers(version >= 2);
        let response = self.send(&request, version)?;
        if response.error_code != 0 {
            let what = format!(
                "the broker at {} refused to describe the cluster",
                self.addr
            );
            return Err(kafka_error(
                response.error_code,
                &what,
                response.error_message.as_deref(),
            ));
        }
        Ok(response)
    }

    // ---- consumer groups ------------------------------------------------------------------

    /// The broker coordinating `group` (FindCoordinator). A refusal is in `error_code`, for the
    /// caller to retry while the coordinator is loading.
    pub fn find_group_coordinator(&mut self, group: &str) -> Result<GroupCoordinator, String> {
        let version = self.version_in(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSIONS);
        let key = StrBytes::from_string(group.to_string());
        let mut request = FindCoordinatorRequest::default();
        if version >= 4 {
            request.coordinator_keys = vec![key];
        } else {
            request.key = key;
        }
        if version >= 1 {
            request.key_type = COORDINATOR_KEY_GROUP;
        }
        let response = self.send(&request, version)?;
        if version < 4 {
            return Ok(GroupCoordinator {
                error_code: response.error_code,
                error_message: response.error_message.as_ref().map(|m| m.to_string()),
                node_id: response.node_id.0,
                host: response.host.to_string(),
                port: response.port,
            });
        }
        let found = response
            .coordinators
            .iter()
            .find(|c| c.key.as_str() == group)
            .ok_or_else(|| {
                format!("the broker's FindCoordinator response does not mention group '{group}'")
            })?;
        Ok(GroupCoordinator {
            error_code: found.error_code,
            error_message: found.error_message.as_ref().map(|m| m.to_string()),
            node_id: found.node_id.0,
            host: found.host.to_string(),
            port: found.port,
        })
    }

    /// The groups this broker coordinates (ListGroups; states are there from v4 on).
    pub fn list_groups(&mut self) -> Result<ListGroupsResponse, String> {
        let version = self.version_in(ApiKey::ListGroups, LIST_GROUPS_VERSIONS);
        let response = self.send(&ListGroupsRequest::default(), version)?;
        if response.error_code != 0 {
            let what = format!("the broker at {} refused to list its groups", self.addr);
            return Err(kafka_error(response.error_code, &what, None));
        }
        Ok(response)
    }

    /// State, protocol and members of `groups` (DescribeGroups), one result per group; errors
    /// are in each group's `error_code`.
    pub fn describe_groups(&mut self, groups: &[&str]) -> Result<DescribeGroupsResponse, String> {
        let version = self.version_in(ApiKey::DescribeGroups, DESCRIBE_GROUPS_VERSIONS);
        let request = DescribeGroupsRequest::default()
            .with_groups(groups.iter().map(|g| group_id(g)).collect());
        self.send(&request, version)
    }

    /// Every offset `group` has committed (OffsetFetch with no topic list, so v2 or later).
    pub fn committed_offsets(&mut self, group: &str) -> Result<CommittedOffsets, String> {
        let version = self.version_in(ApiKey::OffsetFetch, OFFSET_FETCH_VERSIONS);
        let mut request = OffsetFetchRequest::default();
        if version >= 8 {
            request.groups = vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(None)];
        } else {
            request.group_id = group_id(group);
            request.topics = None;
        }
        let response = self.send(&request, version)?;
        if version < 8 {
            let partitions = response
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| CommittedPartition {
                        topic: t.name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        error_code: p.error_code,
                    })
                })
                .collect();
            return Ok(CommittedOffsets {
                error_code: response.error_code,
                partitions,
            });
        }
        let answer = response
            .groups
            .iter()
            .find(|g| g.group_id.as_str() == group)
            .ok_or_else(|| {
                format!("the broker's OffsetFetch response does not mention group '{group}'")
            })?;
        let partitions = answer
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| CommittedPartition {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    error_code: p.error_code,
                })
            })
            .collect();
        Ok(CommittedOffsets {
            error_code: answer.error_code,
            partitions,
        })
    }

    /// Commits `(topic, partition, offset)`s for `group` as a "simple" commit (generation -1, no
    /// member id), which the coordinator takes only while the group has no members. Returns
    /// each partition's error code.
    pub fn commit_offsets(
        &mut self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<Vec<(String, i32, i16)>, String> {
        let version = self.version_in(ApiKey::OffsetCommit, OFFSET_COMMIT_VERSIONS);
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (topic, partition, offset) in offsets {
            topics.entry(topic.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset),
            );
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(StrBytes::default())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(topic_name(name))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = self.send(&request, version)?;
        Ok(response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
            })
            .collect())
    }

    /// Deletes `groups` (DeleteGroups); errors are in each result's `error_code`.
    pub fn delete_groups(&mut self, groups: &[&str]) -> Result<DeleteGroupsResponse, String> {
        let version = self.version_in(ApiKey::DeleteGroups, DELETE_GROUPS_VERSIONS);
        let request = DeleteGroupsRequest::default()
            .with_groups_names(groups.iter().map(|g| group_id(g)).collect());
        self.send(&request, version)
    }
}

/// The broker coordinating a group, as FindCoordinator names it (`error_code` 0 when found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCoordinator {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// A group's committed offsets (OffsetFetch), whatever the version: the group-level error code
/// and one entry per partition the group has an offset for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommittedOffsets {
    pub error_code: i16,
    pub partitions: Vec<CommittedPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedPartition {
    pub topic: String,
    pub partition: i32,
    /// -1 when the group has no offset for the partition.
    pub offset: i64,
    pub error_code: i16,
}

/// A topic to create.
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// What the config commands name: one broker, the cluster-wide broker defaults, or a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    /// One broker, by node id.
    Broker(i32),
    /// The dynamic defaults every broker of the cluster falls back to (the empty broker name).
    BrokerDefaults,
    Topic(String),
}

impl ConfigResource {
    pub fn resource_type(&self) -> i8 {
        match self {
            ConfigResource::Broker(_) | ConfigResource::BrokerDefaults => RESOURCE_BROKER,
            ConfigResource::Topic(_) => RESOURCE_TOPIC,
        }
    }

    pub fn resource_name(&self) -> String {
        match self {
            ConfigResource::Broker(id) => id.to_string(),
            ConfigResource::BrokerDefaults => String::new(),
            ConfigResource::Topic(name) => name.clone(),
        }
    }
}

impl Display for ConfigResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResource::Broker(id) => write!(f, "broker {id}"),
            ConfigResource::BrokerDefaults => write!(f, "the cluster-wide broker defaults"),
            ConfigResource::Topic(name) => write!(f, "topic '{name}'"),
        }
    }
}

/// An IncrementalAlterConfigs operation (Kafka's `AlterConfigOp.OpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOp {
    Set = 0,
    Delete = 1,
    /// Adds values to a list config.
    Append = 2,
    /// Removes values from a list config.
    Subtract = 3,
}

/// One config change; `value` is `None` for a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub name: String,
    pub op: ConfigOp,
    pub value: Option<String>,
}

impl ConfigChange {
    pub fn new(name: &str, op: ConfigOp, value: Option<&str>) -> ConfigChange {
        ConfigChange {
            name: name.to_string(),
            op,
            value: value.map(str::to_string),
        }
    }
}

/// What to do about the refusal of a config request: a describe (`altering` false) or an alter.
fn config_error_fix(
    code: i16,
    resource: &ConfigResource,
    altering: bool,
    broker_message: Option<&str>,
) -> String {
    let unknown_topic = matches!(
        ResponseError::try_from_code(code),
        Some(
            ResponseError::UnknownTopicOrPartition
                | ResponseError::UnknownTopicId
                | ResponseError::InvalidTopicException
        )
    );
    let bad_config = altering
        && matches!(
            ResponseError::try_from_code(code),
            Some(ResponseError::InvalidConfig | ResponseError::InvalidRequest)
        );
    let read_only = bad_config
        && broker_message.is_some_and(|m| m.contains("Cannot update these configs dynamically"));
    match resource {
        ConfigResource::Broker(_) | ConfigResource::BrokerDefaults if read_only => {
            let id = match resource {
                ConfigResource::Broker(id) => id.to_string(),
                _ => "ID".to_string(),
            };
            format!(
                "read-only configs are set in the broker's config file, `spate server --config \
                 FILE`, and take a restart; `spate config describe --broker {id} --all` marks \
                 them read-only"
            )
        }
        ConfigResource::Topic(_) if unknown_topic => {
            "check the name: `spate topic list` shows the topics there are".to_string()
        }
        ConfigResource::Topic(name) if bad_config => format!(
            "fix the config the broker names; `spate config describe --topic {name} --all` \
             shows the topic's configs"
        ),
        ConfigResource::Broker(id) if bad_config => format!(
            "fix the config the broker names; `spate config describe --broker {id} --all` \
             shows every broker config and which are read-only"
        ),
        ConfigResource::BrokerDefaults if bad_config => {
            "fix the config the broker names; `spate config describe --broker ID --all` shows \
             every broker config and which are read-only"
                .to_string()
        }
        ConfigResource::Broker(_) | ConfigResource::BrokerDefaults
            if ResponseError::try_from_code(code) == Some(ResponseError::InvalidRequest) =>
        {
            "`spate cluster describe` lists the brokers and their ids".to_string()
        }
        _ => "check the broker's log".to_string(),
    }
}

fn missing_resource_answer(api: &str, resource: &ConfigResource) -> String {
    format!("the broker's {api} response does not mention {resource}")
}

/// Encodes a whole request frame: size, header, body.
fn encode_frame<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, String> {
    let api = api_name(R::KEY);
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut frame = BytesMut::new();
    frame.put_i32(0); // size, filled in below
    header
        .encode(&mut frame, R::header_version(version))
        .and_then(|()| request.encode(&mut frame, version))
        .map_err(|e| format!("cannot encode the {api} v{version} request: {e}"))?;
    let size = i32::try_from(frame.len() - 4)
        .map_err(|_| format!("the {api} request is too large ({} bytes)", frame.len()))?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame.freeze())
}

fn check_frame_size(size: i32) -> Result<usize, String> {
    match usize::try_from(size) {
        Ok(size) if size <= RESPONSE_BYTES_MAX => Ok(size),
        _ => Err(format!(
            "frame size {size} is outside 0..={RESPONSE_BYTES_MAX} bytes (is this a Kafka broker?)"
        )),
    }
}

fn resolve(server: &str) -> Result<Vec<SocketAddr>, String> {
    let invalid = |why: String| {
        format!("invalid bootstrap server '{server}': {why} (use --bootstrap-server HOST:PORT)")
    };
    let addrs: Vec<SocketAddr> = server
        .to_socket_addrs()
        .map_err(|e| invalid(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(invalid("the host name resolves to no address".into()));
    }
    Ok(addrs)
}

fn connect_error(server: &str, e: &io::Error) -> String {
    let what = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())
        }
        _ => e.to_string(),
    };
    format!(
        "cannot connect to {server}: {what} (is `spate server` running? use --bootstrap-server \
         HOST:PORT)"
    )
}

fn missing_topic_answer(api: &str, topic: &str) -> String {
    format!("the broker's {api} response does not mention topic '{topic}'")
}

/// `HOST:PORT` of a broker as Metadata lists it (an IPv6 host in brackets).
pub fn broker_address(host: &str, port: i32) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_string()))
}

/// Runs a decoder, turning both its errors and any panic inside it into a message.
pub fn decode_guarded<T, E: Display>(decode: impl FnOnce() -> Result<T, E>) -> Result<T, String> {
    // A silent hook while decoding: a codec panic is reported as an error, not a backtrace.
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(decode));
    panic::set_hook(previous_hook);
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string().trim_end().to_string()),
        Err(_) => Err("the decoder failed on malformed input".to_string()),
    }
}

/// The name of an API key for messages, e.g. "Fetch".
pub fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(api) => format!("{api:?}"),
        Err(()) => format!("api key {key}"),
    }
}

/// Kafka's name for an error code, e.g. `TOPIC_ALREADY_EXISTS` for 36.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
        Some(error) => screaming_snake(&error.to_string()),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `NAME: what`, plus what the broker said about it when it said something.
pub fn kafka_error(code: i16, what: &str, broker_message: Option<&str>) -> String {
    let name = error_name(code);
    let same = |m: &str| m.trim_end_matches('.').eq_ignore_ascii_case(what);
    match broker_message
        .map(str::trim)
        .filter(|m| !m.is_empty() && !same(m))
    {
        Some(message) => format!("{name}: {what} (broker: {message})"),
        None => format!("{name}: {what}"),
    }
}

/// `NAME: what: the broker's reason (fix)`, for refusals whose reason only the broker knows.
pub fn kafka_refusal(code: i16, what: &str, broker_message: Option<&str>, fix: &str) -> String {
    let name = error_name(code);
    match broker_message.map(str::trim).filter(|m| !m.is_empty()) {
        Some(reason) => format!("{name}: {what}: {} ({fix})", reason.trim_end_matches('.')),
        None => format!("{name}: {what} ({fix})"),
    }
}

/// A topic error of an admin request, in words, and what to do about it.
fn admin_topic_error(code: i16, topic: &str, action: &str) -> (String, String) {
    let what = topic_error_text(code, topic, action);
    let fix = match ResponseError::try_from_code(code) {
        Some(ResponseError::UnknownTopicOrPartition) | Some(ResponseError::UnknownTopicId) => {
            "check the name: `spate topic list` shows the topics there are".to_string()
        }
        _ => "check the broker's log".to_string(),
    };
    (what, fix)
}

/// Describes a topic-level error code in words, e.g. "topic 'x' already exists".
pub fn topic_error_text(code: i16, topic: &str, action: &str) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::TopicAlreadyExists) => format!("topic '{topic}' already exists"),
        Some(ResponseError::UnknownTopicOrPartition) | Some(ResponseError::UnknownTopicId) => {
            format!("topic '{topic}' does not exist")
        }
        Some(ResponseError::InvalidTopicException) => {
            format!("'{topic}' is not a valid topic name")
        }
        Some(ResponseError::InvalidPartitions) => {
            format!("invalid number of partitions for topic '{topic}'")
        }
        Some(ResponseError::InvalidReplicationFactor) => format!(
            "invalid replication factor for topic '{topic}' (it cannot exceed the number of \
             brokers)"
        ),
        Some(ResponseError::InvalidConfig) => format!("invalid config for topic '{topic}'"),
        Some(ResponseError::LeaderNotAvailable) => {
            format!("topic '{topic}' has no leader yet (try again)")
        }
        _ => format!("{action} topic '{topic}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;
    use std::net::TcpListener;
    use std::thread;

    #[test]
    fn error_names_match_kafka() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(1), "OFFSET_OUT_OF_RANGE");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE_9999");
    }

    #[test]
    fn kafka_error_names_the_code_and_the_topic() {
        let what = topic_error_text(36, "x", "cannot create");
        assert_eq!(
            kafka_error(36, &what, None),
            "TOPIC_ALREADY_EXISTS: topic 'x' already exists"
        );
        assert_eq!(
            kafka_error(36, &what, Some("Topic 'x' already exists.")),
            "TOPIC_ALREADY_EXISTS: topic 'x' already exists",
            "a broker message that says the same adds nothing"
        );
        assert_eq!(
            kafka_error(
                17,
                "'a/b' is not a valid topic name",
                Some("'/' is not allowed")
            ),
            "INVALID_TOPIC_EXCEPTION: 'a/b' is not a valid topic name (broker: '/' is not allowed)"
        );
    }

    #[test]
    fn refusals_carry_the_brokers_reason_and_the_fix() {
        assert_eq!(
            kafka_refusal(
                40,
                "cannot change the configs of topic 't'",
                Some("unknown topic config 'nope.ms'"),
                "fix it"
            ),
            "INVALID_CONFIG: cannot change the configs of topic 't': unknown topic config \
             'nope.ms' (fix it)"
        );
        assert_eq!(
            kafka_refusal(
                37,
                "cannot give topic 't' 2 partitions",
                Some(" "),
                "add more"
            ),
            "INVALID_PARTITIONS: cannot give topic 't' 2 partitions (add more)"
        );
        let (what, fix) = admin_topic_error(3, "t", "cannot add partitions to");
        assert_eq!(what, "topic 't' does not exist");
        assert!(fix.contains("spate topic list"), "{fix}");
    }

    #[test]
    fn config_refusals_name_the_fix_for_their_resource() {
        let topic = ConfigResource::Topic("t".into());
        let broker = ConfigResource::Broker(1);
        assert!(config_error_fix(3, &topic, false, None).contains("spate topic list"));
        assert!(config_error_fix(40, &topic, true, None)
            .contains("`spate config describe --topic t --all`"));
        let read_only = Some("Cannot update these configs dynamically: Set(group.max.size)");
        let fix = config_error_fix(42, &broker, true, read_only);
        assert!(fix.starts_with("read-only configs are set in the broker's config file"));
        assert!(fix.contains("--broker 1 --all"), "{fix}");
        let fix = config_error_fix(42, &ConfigResource::BrokerDefaults, true, read_only);
        assert!(fix.contains("--broker ID --all"), "{fix}");
        let fix = config_error_fix(42, &broker, true, Some("Invalid value 0"));
        assert!(fix.starts_with("fix the config the broker names"), "{fix}");
        let fix = config_error_fix(42, &broker, false, Some("Unexpected broker id"));
        assert!(fix.contains("spate cluster describe"), "{fix}");
        assert_eq!(
            config_error_fix(-1, &broker, true, None),
            "check the broker's log"
        );
        assert_eq!(broker.resource_name(), "1");
        assert_eq!(ConfigResource::BrokerDefaults.resource_name(), "");
        assert_eq!(
            ConfigResource::BrokerDefaults.resource_type(),
            RESOURCE_BROKER
        );
        assert_eq!(topic.to_string(), "topic 't'");
    }

    #[test]
    fn admin_versions_are_the_highest_both_sides_know() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        let mut client = Client::from_stream("test", stream).unwrap();
        client
            .api_versions
            .insert(ApiKey::DescribeConfigs as i16, (0, 7));
        client
            .api_versions
            .insert(ApiKey::CreatePartitions as i16, (0, 1));
        client
            .api_versions
            .insert(ApiKey::IncrementalAlterConfigs as i16, (5, 9));
        assert_eq!(
            client.version_in(ApiKey::DescribeConfigs, DESCRIBE_CONFIGS_VERSIONS),
            4
        );
        assert_eq!(
            client.version_in(ApiKey::CreatePartitions, CREATE_PARTITIONS_VERSIONS),
            1
        );
        // No overlap, or no API at all: the low end, which `send` then refuses by name.
        assert_eq!(
            client.version_in(
                ApiKey::IncrementalAlterConfigs,
                INCREMENTAL_ALTER_CONFIGS_VERSIONS
            ),
            0
        );
        assert_eq!(client.version_in(ApiKey::DescribeCluster, (0, 2)), 0);
        let error = client.describe_cluster().unwrap_err();
        assert!(
            error.contains("does not support DescribeCluster"),
            "{error}"
        );
    }

    #[test]
    fn request_frame_round_trips() {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("orders")))
            ]))
            .with_allow_auto_topic_creation(false);
        let frame = encode_frame(&request, 9, 42).unwrap();
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4);
        let mut body = frame.slice(4..);
        let header_version = MetadataRequest::header_version(9);
        assert_eq!(header_version, 2);
        let header = RequestHeader::decode(&mut body, header_version).unwrap();
        assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
        assert_eq!(header.request_api_version, 9);
        assert_eq!(header.correlation_id, 42);
        assert_eq!(header.client_id.as_deref(), Some("spate-cli"));
        let decoded = MetadataRequest::decode(&mut body, 9).unwrap();
        assert_eq!(decoded, request);
        assert!(body.is_empty());
    }

    #[test]
    fn frame_sizes_are_bounded() {
        assert_eq!(check_frame_size(10), Ok(10));
        assert!(check_frame_size(-1).is_err());
        assert!(check_frame_size(i32::MAX).is_err());
    }

    #[test]
    fn decode_guard_turns_panics_into_errors() {
        let result: Result<(), String> =
            decode_guarded(|| -> Result<(), String> { panic!("boom") });
        assert!(result.is_err());
        let garbage = Bytes::from_static(&[0xff; 7]);
        let result = decode_guarded(|| MetadataResponse::decode(&mut garbage.clone(), 12));
        assert!(result.is_err());
    }

    #[test]
    fn connection_refused_names_the_fix() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let error = Client::connect(&addr).err().unwrap();
        assert!(error.contains(&format!("cannot connect to {addr}: connection refused")));
        assert!(error.contains("--bootstrap-server"));
    }

    /// A fake broker: answers ApiVersions, then one Metadata request, both by hand.
    #[test]
    fn client_checks_correlation_ids_and_decodes_responses() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let broker = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let (id, key, _) = read_request(&mut stream);
            assert_eq!(key, ApiKey::ApiVersions as i16);
            let versions = ApiVersionsResponse::default().with_api_keys(vec![
                kafka_protocol::messages::api_versions_response::ApiVersion::default()
                    .with_api_key(ApiKey::Metadata as i16)
                    .with_min_version(0)
                    .with_max_version(9),
            ]);
            write_response(&mut stream, id, 0, &versions, 3);
            let (id, key, version) = read_request(&mut stream);
            assert_eq!((key, version), (ApiKey::Metadata as i16, 9));
            let metadata = MetadataResponse::default().with_cluster_id(Some("c".into()));
            write_response(&mut stream, id + 1, 1, &metadata, 9);
        });
        let mut client = Client::connect(&addr).unwrap();
        assert_eq!(client.max_version(ApiKey::Metadata), Some(9));
        let error = client.metadata(None, false).err().unwrap();
        assert!(error.contains("correlation id"), "{error}");
        let error = client.delete_topic("x").err().unwrap();
        assert!(error.contains("does not support DeleteTopics"), "{error}");
        broker.join().unwrap();
    }

    /// KIP-511: a broker without ApiVersions v3 answers in v0 with UNSUPPORTED_VERSION and its
    /// range; the client asks again at the highest version both know.
    #[test]
    fn api_versions_fall_back_to_the_brokers_version() {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let range = |key: ApiKey, max: i16| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(0)
                .with_max_version(max)
        };
        let broker = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let (id, key, version) = read_request(&mut stream);
            assert_eq!((key, version), (ApiKey::ApiVersions as i16, 3));
            let refusal = ApiVersionsResponse::default()
                .with_error_code(UNSUPPORTED_VERSION)
                .with_api_keys(vec![range(ApiKey::ApiVersions, 2)]);
            write_response(&mut stream, id, 0, &refusal, 0);
            let (id, key, version) = read_request(&mut stream);
            assert_eq!((key, version), (ApiKey::ApiVersions as i16, 2));
            let versions = ApiVersionsResponse::default().with_api_keys(vec![
                range(ApiKey::ApiVersions, 2),
                range(ApiKey::Metadata, 12),
            ]);
            write_response(&mut stream, id, 0, &versions, 2);
        });
        let client = Client::connect(&addr).unwrap();
        assert_eq!(client.max_version(ApiKey::Metadata), Some(12));
        broker.join().unwrap();
    }

    fn read_request(stream: &mut TcpStream) -> (i32, i16, i16) {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut body).unwrap();
        let key = i16::from_be_bytes([body[0], body[1]]);
        let version = i16::from_be_bytes([body[2], body[3]]);
        let id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
        (id, key, version)
    }

    fn write_response<M: Encodable>(
        stream: &mut TcpStream,
        id: i32,
        header_version: i16,
        body: &M,
        version: i16,
    ) {
        let mut frame = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(id)
            .encode(&mut frame, header_version)
            .unwrap();
        body.encode(&mut frame, version).unwrap();
        stream
            .write_all(&(frame.len() as i32).to_be_bytes())
            .unwrap();
        stream.write_all(&frame).unwrap();
    }
}
