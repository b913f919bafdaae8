//! Structure-aware request frames: a valid request header for an API the broker advertises (at a
//! supported version, or one just outside or far outside the range) and a valid body encoded by
//! kafka-protocol from randomly chosen, deliberately awkward field values. The caller mutates it.

use super::batches;
use super::rng::Rng;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};
use spate_core::broker::SUPPORTED_APIS;
use uuid::Uuid;

/// Topic names: mostly the few the sequences create and use, plus names Kafka refuses.
pub fn topic(rng: &mut Rng) -> String {
    match rng.below(20) {
        0..=7 => "t".into(),
        8..=11 => "u".into(),
        12 => "fuzz.topic_1-x".into(),
        13 => "".into(),
        14 => rng
            .pick(&[".", "..", "bad/name", "t\0", "tü", "a b"])
            .to_string(),
        15 => "a".repeat(*rng.pick(&[249, 250, 1000])),
        16 => rng
            .pick(&["__consumer_offsets", "__transaction_state"])
            .to_string(),
        17 => "T".into(),
        18 => format!("t{}", rng.below(4)),
        _ => String::from_utf8_lossy(&rng.some_bytes(12)).into_owned(),
    }
}

fn name(rng: &mut Rng) -> TopicName {
    TopicName(StrBytes::from_string(topic(rng)))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn pick_text(rng: &mut Rng, options: &[&str]) -> StrBytes {
    let choice = rng.pick(options);
    text(choice)
}

pub fn partition(rng: &mut Rng) -> i32 {
    match rng.below(12) {
        0..=5 => 0,
        6 | 7 => 1,
        8 => 2,
        _ => *rng.pick(&[-1, 3, 7, 9_999, 10_000, i32::MAX, i32::MIN]),
    }
}

fn offset(rng: &mut Rng) -> i64 {
    match rng.below(10) {
        0..=3 => rng.range(0, 4),
        4 | 5 => rng.range(5, 200),
        _ => *rng.pick(&[-1, -2, -3, i64::MAX, i64::MIN, 1 << 31, 1 << 40]),
    }
}

fn small_i32(rng: &mut Rng, typical: &[i32]) -> i32 {
    if rng.percent(80) {
        *rng.pick(typical)
    } else {
        *rng.pick(&[0, -1, -2, 1, i32::MAX, i32::MIN])
    }
}

fn some_of<T>(rng: &mut Rng, max: usize, mut f: impl FnMut(&mut Rng) -> T) -> Vec<T> {
    let n = match rng.below(10) {
        0 => 0,
        1..=6 => 1,
        7 | 8 => 2,
        _ => rng.below(max + 1),
    };
    (0..n).map(|_| f(rng)).collect()
}

const CONFIG_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "message.timestamp.type",
    "max.message.bytes",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "flush.messages",
    "flush.ms",
    "min.insync.replicas",
    "unknown.key",
    "",
    "log.dirs",
    "num.partitions",
];

const CONFIG_VALUES: &[&str] = &[
    "delete",
    "compact",
    "delete,compact",
    " delete , compact",
    "LogAppendTime",
    "CreateTime",
    "0",
    "1",
    "60",
    "-1",
    "-2",
    "9223372036854775807",
    "99999999999999999999",
    "+5",
    " 5",
    "",
    "gzip",
    "producer",
    "a\tb",
    "x\ny",
    "1e3",
    "ü",
];

fn config_key(rng: &mut Rng) -> StrBytes {
    pick_text(rng, CONFIG_KEYS)
}

fn config_value(rng: &mut Rng) -> Option<StrBytes> {
    rng.percent(90).then(|| pick_text(rng, CONFIG_VALUES))
}

fn resource_type(rng: &mut Rng) -> i8 {
    *rng.pick(&[2, 2, 2, 4, 4, 0, -1, 1, 3, 99])
}

fn resource_name(rng: &mut Rng) -> StrBytes {
    match rng.below(5) {
        0 => pick_text(rng, &["1", "0", "", "2", "-1"]),
        _ => StrBytes::from_string(topic(rng)),
    }
}

fn records(rng: &mut Rng) -> Option<Bytes> {
    let data = match rng.below(20) {
        0 => return None,
        1 => Vec::new(),
        2..=5 => {
            let mut data = batches::valid_run(rng);
            batches::damage(rng, &mut data);
            data
        }
        _ => batches::valid_run(rng),
    };
    Some(Bytes::from(data))
}

/// `version` clamped into what kafka-protocol can encode for `T`.
fn clamp<T: Message>(version: i16) -> i16 {
    version.clamp(T::VERSIONS.min, T::VERSIONS.max)
}

/// Encodes `msg`, or the default message when a field it set does not exist in that version.
fn enc<T: Encodable + Message + Default>(msg: T, version: i16) -> Option<Vec<u8>> {
    let v = clamp::<T>(version);
    let mut buf = BytesMut::new();
    if msg.encode(&mut buf, v).is_ok() {
        return Some(buf.to_vec());
    }
    let mut buf = BytesMut::new();
    T::default().encode(&mut buf, v).ok().map(|()| buf.to_vec())
}

fn produce(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use produce_request::{PartitionProduceData, TopicProduceData};
    let topics = some_of(rng, 3, |rng| {
        TopicProduceData::default()
            .with_name(name(rng))
            .with_partition_data(some_of(rng, 3, |rng| {
                PartitionProduceData::default()
                    .with_index(partition(rng))
                    .with_records(records(rng))
            }))
    });
    let request = ProduceRequest::default()
        .with_transactional_id(rng.percent(5).then(|| TransactionalId(text("tx"))))
        .with_acks(*rng.pick(&[-1, -1, -1, 1, 1, 0, 2, -2, i16::MIN]))
        .with_timeout_ms(small_i32(rng, &[30_000, 100, 0]))
        .with_topic_data(topics);
    enc(request, version)
}

fn fetch(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
    let topics = some_of(rng, 3, |rng| {
        FetchTopic::default()
            .with_topic(name(rng))
            .with_partitions(some_of(rng, 3, |rng| {
                FetchPartition::default()
                    .with_partition(partition(rng))
                    .with_current_leader_epoch(*rng.pick(&[-1, 0, 1]))
                    .with_fetch_offset(offset(rng))
                    .with_log_start_offset(*rng.pick(&[-1, 0]))
                    .with_partition_max_bytes(small_i32(rng, &[1 << 20, 1, 100, 4096]))
            }))
    });
    let forgotten = if rng.percent(10) {
        vec![ForgottenTopic::default()
            .with_topic(name(rng))
            .with_partitions(vec![0])]
    } else {
        Vec::new()
    };
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(*rng.pick(&[-1, -1, -1, 0, 1])))
        .with_max_wait_ms(small_i32(rng, &[0, 0, 100, 500]))
        .with_min_bytes(small_i32(rng, &[1, 1, 0, 1000]))
        .with_max_bytes(small_i32(rng, &[1 << 24, 1 << 20, 100]))
        .with_isolation_level(*rng.pick(&[0, 1, 2, -1]))
        .with_session_id(small_i32(rng, &[0, 0, 0, 7]))
        .with_session_epoch(small_i32(rng, &[-1, -1, 0, 1]))
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten);
    enc(request, version)
}

fn list_offsets(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let topics = some_of(rng, 3, |rng| {
        ListOffsetsTopic::default()
            .with_name(name(rng))
            .with_partitions(some_of(rng, 3, |rng| {
                ListOffsetsPartition::default()
                    .with_partition_index(partition(rng))
                    .with_current_leader_epoch(*rng.pick(&[-1, 0, 1, 5]))
                    .with_timestamp(*rng.pick(&[
                        -1,
                        -2,
                        -3,
                        -4,
                        -5,
                        0,
                        1_000,
                        1_000_000,
                        1_700_000_000_000,
                        i64::MAX,
                        i64::MIN,
                    ]))
            }))
    });
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(*rng.pick(&[-1, -1, -2, 1])))
        .with_isolation_level(*rng.pick(&[0, 1, 3]))
        .with_topics(topics);
    enc(request, version)
}

fn metadata(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use metadata_request::MetadataRequestTopic;
    let topics = match rng.below(5) {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(some_of(rng, 4, |rng| {
            MetadataRequestTopic::default()
                .with_name(rng.percent(95).then(|| name(rng)))
                .with_topic_id(if rng.percent(5) {
                    Uuid::from_u64_pair(rng.next_u64(), rng.next_u64())
                } else {
                    Uuid::nil()
                })
        })),
    };
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(rng.percent(70))
        .with_include_topic_authorized_operations(rng.percent(20));
    enc(request, version)
}

fn describe_topic_partitions(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use describe_topic_partitions_request::{Cursor, TopicRequest};
    let topics = some_of(rng, 4, |rng| TopicRequest::default().with_name(name(rng)));
    let cursor = rng.percent(40).then(|| {
        Cursor::default()
            .with_topic_name(name(rng))
            .with_partition_index(small_i32(rng, &[0, 1, 2, -1, i32::MAX]))
    });
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(topics)
        .with_response_partition_limit(small_i32(rng, &[1, 2, 2000, 0, -5, i32::MAX]))
        .with_cursor(cursor);
    enc(request, version)
}

fn api_versions(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(pick_text(rng, &["spate-fuzz", "", "bad name!", "a-b.c"]))
        .with_client_software_version(pick_text(rng, &["1.0", "", "x y"]));
    enc(request, version)
}

fn create_topics(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig};
    let topics = some_of(rng, 4, |rng| {
        let assignments = if rng.percent(5) {
            vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(1)])]
        } else {
            Vec::new()
        };
        CreatableTopic::default()
            .with_name(name(rng))
            .with_num_partitions(small_i32(rng, &[1, 1, 2, 3, -1]))
            .with_replication_factor(*rng.pick(&[-1, 1, 1, 1, 3, 0, i16::MAX]))
            .with_assignments(assignments)
            .with_configs(some_of(rng, 3, |rng| {
                CreatableTopicConfig::default()
                    .with_name(config_key(rng))
                    .with_value(config_value(rng))
            }))
    });
    let request = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(small_i32(rng, &[30_000, 0]))
        .with_validate_only(rng.percent(15));
    enc(request, version)
}

fn delete_topics(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use delete_topics_request::DeleteTopicState;
    let request = if clamp::<DeleteTopicsRequest>(version) >= 6 {
        DeleteTopicsRequest::default().with_topics(some_of(rng, 3, |rng| {
            let by_name = rng.percent(85);
            DeleteTopicState::default()
                .with_name(by_name.then(|| name(rng)))
                .with_topic_id(if by_name || rng.percent(50) {
                    Uuid::nil()
                } else {
                    Uuid::from_u64_pair(rng.next_u64(), rng.next_u64())
                })
        }))
    } else {
        DeleteTopicsRequest::default().with_topic_names(some_of(rng, 3, name))
    };
    enc(request.with_timeout_ms(30_000), version)
}

fn init_producer_id(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(rng.percent(10).then(|| TransactionalId(text("tx"))))
        .with_transaction_timeout_ms(small_i32(rng, &[60_000, -1]))
        .with_producer_id(ProducerId(*rng.pick(&[-1, -1, 0, 5, i64::MAX])))
        .with_producer_epoch(*rng.pick(&[-1, -1, 0, i16::MAX]));
    enc(request, version)
}

fn delete_records(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let topics = some_of(rng, 3, |rng| {
        DeleteRecordsTopic::default()
            .with_name(name(rng))
            .with_partitions(some_of(rng, 3, |rng| {
                DeleteRecordsPartition::default()
                    .with_partition_index(partition(rng))
                    .with_offset(offset(rng))
            }))
    });
    let request = DeleteRecordsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000);
    enc(request, version)
}

fn offset_for_leader_epoch(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let topics = some_of(rng, 3, |rng| {
        OffsetForLeaderTopic::default()
            .with_topic(name(rng))
            .with_partitions(some_of(rng, 3, |rng| {
                OffsetForLeaderPartition::default()
                    .with_partition(partition(rng))
                    .with_current_leader_epoch(*rng.pick(&[-1, 0, 1]))
                    .with_leader_epoch(small_i32(rng, &[0, 0, 1, -1, 5]))
            }))
    });
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(*rng.pick(&[-1, -2, 1])))
        .with_topics(topics);
    enc(request, version)
}

fn describe_configs(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use describe_configs_request::DescribeConfigsResource;
    let resources = some_of(rng, 3, |rng| {
        DescribeConfigsResource::default()
            .with_resource_type(resource_type(rng))
            .with_resource_name(resource_name(rng))
            .with_configuration_keys(rng.percent(50).then(|| some_of(rng, 3, config_key)))
    });
    let request = DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(rng.percent(50))
        .with_include_documentation(rng.percent(30));
    enc(request, version)
}

fn alter_configs(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let resources = some_of(rng, 3, |rng| {
        AlterConfigsResource::default()
            .with_resource_type(resource_type(rng))
            .with_resource_name(resource_name(rng))
            .with_configs(some_of(rng, 3, |rng| {
                AlterableConfig::default()
                    .with_name(config_key(rng))
                    .with_value(config_value(rng))
            }))
    });
    let request = AlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(rng.percent(20));
    enc(request, version)
}

fn incremental_alter_configs(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let resources = some_of(rng, 3, |rng| {
        AlterConfigsResource::default()
            .with_resource_type(resource_type(rng))
            .with_resource_name(resource_name(rng))
            .with_configs(some_of(rng, 3, |rng| {
                AlterableConfig::default()
                    .with_name(config_key(rng))
                    .with_config_operation(*rng.pick(&[0, 0, 1, 2, 3, 4, -1]))
                    .with_value(config_value(rng))
            }))
    });
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(rng.percent(20));
    enc(request, version)
}

fn describe_log_dirs(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use describe_log_dirs_request::DescribableLogDirTopic;
    let topics = rng.percent(60).then(|| {
        some_of(rng, 3, |rng| {
            DescribableLogDirTopic::default()
                .with_topic(name(rng))
                .with_partitions(some_of(rng, 3, partition))
        })
    });
    enc(
        DescribeLogDirsRequest::default().with_topics(topics),
        version,
    )
}

fn create_partitions(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    use create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
    let topics = some_of(rng, 3, |rng| {
        let assignments = match rng.below(10) {
            0 => Some(Vec::new()),
            1 => Some(vec![
                CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)])
            ]),
            _ => None,
        };
        CreatePartitionsTopic::default()
            .with_name(name(rng))
            .with_count(small_i32(rng, &[2, 3, 4, 1, 10_000, 10_001]))
            .with_assignments(assignments)
    });
    let request = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
        .with_validate_only(rng.percent(20));
    enc(request, version)
}

fn describe_cluster(rng: &mut Rng, version: i16) -> Option<Vec<u8>> {
    let request = DescribeClusterRequest::default()
        .with_include_cluster_authorized_operations(rng.percent(50))
        .with_endpoint_type(*rng.pick(&[1, 1, 2, 0, 3, -1]))
        .with_include_fenced_brokers(rng.percent(30));
    enc(request, version)
}

fn group(rng: &mut Rng) -> GroupId {
    GroupId(pick_text(rng, &["g", "g", "h", ""]))
}

/// Consumer group APIs (also built when not advertised, for the unsupported-key paths).
fn group_api(rng: &mut Rng, key: ApiKey, version: i16) -> Option<Vec<u8>> {
    let member = pick_text(rng, &["", "m-1", "unknown"]);
    match key {
        ApiKey::FindCoordinator => enc(
            FindCoordinatorRequest::default()
                .with_key(text("g"))
                .with_key_type(*rng.pick(&[0, 1, 2]))
                .with_coordinator_keys(vec![text("g")]),
            version,
        ),
        ApiKey::JoinGroup => enc(
            JoinGroupRequest::default()
                .with_group_id(group(rng))
                .with_session_timeout_ms(small_i32(rng, &[10_000, 45_000]))
                .with_rebalance_timeout_ms(small_i32(rng, &[10_000, 300_000]))
                .with_member_id(member)
                .with_protocol_type(text("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(text("range"))
                .with_metadata(Bytes::from(rng.some_bytes(32)))]),
            version,
        ),
        ApiKey::SyncGroup => enc(
            SyncGroupRequest::default()
                .with_group_id(group(rng))
                .with_generation_id(small_i32(rng, &[0, 1, -1]))
                .with_member_id(member),
            version,
        ),
        ApiKey::Heartbeat => enc(
            HeartbeatRequest::default()
                .with_group_id(group(rng))
                .with_generation_id(small_i32(rng, &[0, 1, -1]))
                .with_member_id(member),
            version,
        ),
        ApiKey::LeaveGroup => enc(
            LeaveGroupRequest::default()
                .with_group_id(group(rng))
                .with_member_id(member),
            version,
        ),
        ApiKey::OffsetCommit => {
            use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
            enc(
                OffsetCommitRequest::default()
                    .with_group_id(group(rng))
                    .with_generation_id_or_member_epoch(-1)
                    .with_member_id(member)
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(name(rng))
                        .with_partitions(vec![OffsetCommitRequestPartition::default()
                            .with_partition_index(partition(rng))
                            .with_committed_offset(offset(rng))])]),
                version,
            )
        }
        ApiKey::OffsetFetch => enc(
            OffsetFetchRequest::default().with_group_id(group(rng)),
            version,
        ),
        ApiKey::OffsetDelete => {
            use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
            enc(
                OffsetDeleteRequest::default()
                    .with_group_id(group(rng))
                    .with_topics(vec![OffsetDeleteRequestTopic::default()
                        .with_name(name(rng))
                        .with_partitions(vec![OffsetDeleteRequestPartition::default()
                            .with_partition_index(partition(rng))])]),
                version,
            )
        }
        ApiKey::ListGroups => enc(ListGroupsRequest::default(), version),
        ApiKey::DescribeGroups => enc(
            DescribeGroupsRequest::default().with_groups(vec![group(rng)]),
            version,
        ),
        ApiKey::DeleteGroups => enc(
            DeleteGroupsRequest::default().with_groups_names(vec![group(rng)]),
            version,
        ),
        _ => None,
    }
}

/// A valid body for `key` at (the nearest encodable) `version`, or `None` for an API this
/// generator does not know.
pub fn body(rng: &mut Rng, key: ApiKey, version: i16) -> Option<Vec<u8>> {
    match key {
        ApiKey::Produce => produce(rng, version),
        ApiKey::Fetch => fetch(rng, version),
        ApiKey::ListOffsets => list_offsets(rng, version),
        ApiKey::Metadata => metadata(rng, version),
        ApiKey::DescribeTopicPartitions => describe_topic_partitions(rng, version),
        ApiKey::ApiVersions => api_versions(rng, version),
        ApiKey::CreateTopics => create_topics(rng, version),
        ApiKey::DeleteTopics => delete_topics(rng, version),
        ApiKey::InitProducerId => init_producer_id(rng, version),
        ApiKey::DeleteRecords => delete_records(rng, version),
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch(rng, version),
        ApiKey::DescribeConfigs => describe_configs(rng, version),
        ApiKey::AlterConfigs => alter_configs(rng, version),
        ApiKey::IncrementalAlterConfigs => incremental_alter_configs(rng, version),
        ApiKey::DescribeLogDirs => describe_log_dirs(rng, version),
        ApiKey::CreatePartitions => create_partitions(rng, version),
        ApiKey::DescribeCluster => describe_cluster(rng, version),
        ApiKey::DescribeAcls => enc(DescribeAclsRequest::default(), version),
        ApiKey::CreateAcls => enc(
            CreateAclsRequest::default().with_creations(
                (0..rng.below(3))
                    .map(|_| create_acls_request::AclCreation::default())
                    .collect(),
            ),
            version,
        ),
        ApiKey::DeleteAcls => enc(
            DeleteAclsRequest::default().with_filters(
                (0..rng.below(3))
                    .map(|_| delete_acls_request::DeleteAclsFilter::default())
                    .collect(),
            ),
            version,
        ),
        ApiKey::SaslHandshake => enc(
            SaslHandshakeRequest::default().with_mechanism(pick_text(rng, &["PLAIN", ""])),
            version,
        ),
        ApiKey::SaslAuthenticate => enc(SaslAuthenticateRequest::default(), version),
        other => group_api(rng, other, version),
    }
}

/// A request header, encoded by kafka-protocol for known API keys and by hand otherwise.
pub fn header(api_key: i16, version: i16, correlation_id: i32, client_id: Option<&str>) -> Vec<u8> {
    let mut buf = BytesMut::new();
    if let Ok(key) = ApiKey::try_from(api_key) {
        let header = RequestHeader::default()
            .with_request_api_key(api_key)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(client_id.map(text));
        if header
            .encode(&mut buf, key.request_header_version(version))
            .is_ok()
        {
            return buf.to_vec();
        }
    }
    let mut out = Vec::new();
    out.extend(api_key.to_be_bytes());
    out.extend(version.to_be_bytes());
    out.extend(correlation_id.to_be_bytes());
    match client_id {
        Some(id) => {
            out.extend((id.len() as i16).to_be_bytes());
            out.extend(id.as_bytes());
        }
        None => out.extend((-1i16).to_be_bytes()),
    }
    out
}

/// A version for `key`: mostly in the advertised range, sometimes just outside or absurd.
pub fn version(rng: &mut Rng, min: i16, max: i16) -> i16 {
    match rng.below(20) {
        0 => *rng.pick(&[-1, i16::MIN, i16::MAX, min - 1, max + 1, 0x7f, 0x100]),
        1 => rng.range(i64::from(min) - 3, i64::from(max) + 3) as i16,
        _ => rng.range(i64::from(min), i64::from(max)) as i16,
    }
}

/// A request frame (without the length prefix) and the length of its header.
pub struct Frame {
    pub bytes: Vec<u8>,
    pub header_len: usize,
}

/// A structure-aware frame: an advertised API (or, rarely, any other key), a version, a valid
/// header and a valid body for it. `favor` makes one API likelier (it must be advertised).
pub fn frame(rng: &mut Rng, correlation_id: i32, favor: Option<ApiKey>) -> Frame {
    let favored = favor.and_then(|k| SUPPORTED_APIS.iter().find(|api| api.key == k));
    let (key, raw, min, max) = match rng.below(40) {
        _ if favored.is_some() && rng.percent(60) => {
            let api = favored.expect("checked");
            (Some(api.key), api.key as i16, api.min, api.max)
        }
        0 => {
            // An API key kafka-protocol knows but the broker may not serve, or no API at all.
            let raw = if rng.percent(70) {
                rng.range(0, 92) as i16
            } else {
                *rng.pick(&[-1, 93, 1000, i16::MAX, i16::MIN, 9999])
            };
            match ApiKey::try_from(raw) {
                Ok(key) => {
                    let range = key.valid_versions();
                    (Some(key), raw, range.min, range.max)
                }
                Err(()) => (None, raw, 0, 3),
            }
        }
        _ => {
            let api = rng.pick(SUPPORTED_APIS);
            (Some(api.key), api.key as i16, api.min, api.max)
        }
    };
    let version = version(rng, min, max);
    let client_id = match rng.below(10) {
        0 => None,
        1 => Some(""),
        _ => Some("fuzz"),
    };
    let mut bytes = header(raw, version, correlation_id, client_id);
    let header_len = bytes.len();
    let body = key
        .and_then(|k| body(rng, k, version))
        .unwrap_or_else(|| rng.some_bytes(64));
    bytes.extend(body);
    Frame { bytes, header_len }
}

/// The frame of a request built in code (for corpus seeds and the sequences' fixed steps).
pub fn encode_request<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Vec<u8> {
    let mut bytes = header(key as i16, version, correlation_id, Some("fuzz"));
    let mut buf = BytesMut::new();
    body.encode(&mut buf, version)
        .expect("a request built in code encodes");
    bytes.extend_from_slice(&buf);
    bytes
}

fn decode_as<T: Decodable>(body: &mut Bytes, version: i16) -> Result<(), String> {
    T::decode(body, version)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Decodes a response body as a client would, for the APIs this harness knows; `None` for others.
pub fn decode_response(key: ApiKey, version: i16, body: &mut Bytes) -> Option<Result<(), String>> {
    Some(match key {
        ApiKey::Produce => decode_as::<ProduceResponse>(body, version),
        ApiKey::Fetch => decode_as::<FetchResponse>(body, version),
        ApiKey::ListOffsets => decode_as::<ListOffsetsResponse>(body, version),
        ApiKey::Metadata => decode_as::<MetadataResponse>(body, version),
        ApiKey::DescribeTopicPartitions => {
            decode_as::<DescribeTopicPartitionsResponse>(body, version)
        }
        ApiKey::ApiVersions => decode_as::<ApiVersionsResponse>(body, version),
        ApiKey::CreateTopics => decode_as::<CreateTopicsResponse>(body, version),
        ApiKey::DeleteTopics => decode_as::<DeleteTopicsResponse>(body, version),
        ApiKey::InitProducerId => decode_as::<InitProducerIdResponse>(body, version),
        ApiKey::DeleteRecords => decode_as::<DeleteRecordsResponse>(body, version),
        ApiKey::OffsetForLeaderEpoch => decode_as::<OffsetForLeaderEpochResponse>(body, version),
        ApiKey::DescribeConfigs => decode_as::<DescribeConfigsResponse>(body, version),
        ApiKey::AlterConfigs => decode_as::<AlterConfigsResponse>(body, version),
        ApiKey::IncrementalAlterConfigs => {
            decode_as::<IncrementalAlterConfigsResponse>(body, version)
        }
        ApiKey::DescribeLogDirs => decode_as::<DescribeLogDirsResponse>(body, version),
        ApiKey::CreatePartitions => decode_as::<CreatePartitionsResponse>(body, version),
        ApiKey::DescribeCluster => decode_as::<DescribeClusterResponse>(body, version),
        ApiKey::FindCoordinator => decode_as::<FindCoordinatorResponse>(body, version),
        ApiKey::JoinGroup => decode_as::<JoinGroupResponse>(body, version),
        ApiKey::SyncGroup => decode_as::<SyncGroupResponse>(body, version),
        ApiKey::Heartbeat => decode_as::<HeartbeatResponse>(body, version),
        ApiKey::LeaveGroup => decode_as::<LeaveGroupResponse>(body, version),
        ApiKey::OffsetCommit => decode_as::<OffsetCommitResponse>(body, version),
        ApiKey::OffsetFetch => decode_as::<OffsetFetchResponse>(body, version),
        ApiKey::ListGroups => decode_as::<ListGroupsResponse>(body, version),
        ApiKey::DescribeGroups => decode_as::<DescribeGroupsResponse>(body, version),
        ApiKey::DeleteGroups => decode_as::<DeleteGroupsResponse>(body, version),
        ApiKey::OffsetDelete => decode_as::<OffsetDeleteResponse>(body, version),
        _ => return None,
    })
}

/// The response header version for `key` at `version` (the response type's own rule).
pub fn response_header_version(key: ApiKey, version: i16) -> i16 {
    key.response_header_version(version)
}

/// A step of a consumer's life in a group, built when it runs from what the group told the
/// member so far (its member id and generation), so the coordinator's later states are reached.
#[derive(Debug, Clone, Copy)]
pub enum GroupOp {
    Join,
    Sync,
    Heartbeat,
    Commit,
    FetchOffsets,
    Leave,
    Describe,
}

pub const GROUP_OPS: &[GroupOp] = &[
    GroupOp::Join,
    GroupOp::Join,
    GroupOp::Sync,
    GroupOp::Heartbeat,
    GroupOp::Commit,
    GroupOp::FetchOffsets,
    GroupOp::Leave,
    GroupOp::Describe,
];

/// The frame of a group step at a random advertised version, or `None` when the broker does
/// not advertise the API.
pub fn group_frame(
    rng: &mut Rng,
    op: GroupOp,
    member_id: &str,
    generation_id: i32,
    leader: bool,
) -> Option<Vec<u8>> {
    let key = match op {
        GroupOp::Join => ApiKey::JoinGroup,
        GroupOp::Sync => ApiKey::SyncGroup,
        GroupOp::Heartbeat => ApiKey::Heartbeat,
        GroupOp::Commit => ApiKey::OffsetCommit,
        GroupOp::FetchOffsets => ApiKey::OffsetFetch,
        GroupOp::Leave => ApiKey::LeaveGroup,
        GroupOp::Describe => ApiKey::DescribeGroups,
    };
    let (min, max) = spate_core::broker::supported_versions(key)?;
    let version = rng.range(i64::from(min), i64::from(max)) as i16;
    let group = GroupId(text("g"));
    let member = text(member_id);
    let body = match op {
        GroupOp::Join => enc(
            JoinGroupRequest::default()
                .with_group_id(group)
                .with_session_timeout_ms(*rng.pick(&[6_000, 10_000, 45_000]))
                .with_rebalance_timeout_ms(*rng.pick(&[6_000, 10_000, 60_000]))
                .with_member_id(member)
                .with_protocol_type(text("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(pick_text(rng, &["range", "range", "range", "roundrobin"]))
                .with_metadata(Bytes::from(rng.some_bytes(32)))]),
            version,
        ),
        GroupOp::Sync => {
            let assignments = if leader {
                vec![sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(text(member_id))
                    .with_assignment(Bytes::from(rng.some_bytes(32)))]
            } else {
                Vec::new()
            };
            let mut request = SyncGroupRequest::default()
                .with_group_id(group)
                .with_generation_id(generation_id)
                .with_member_id(member)
                .with_assignments(assignments);
            if version >= 5 {
                request = request
                    .with_protocol_type(Some(text("consumer")))
                    .with_protocol_name(Some(text("range")));
            }
            enc(request, version)
        }
        GroupOp::Heartbeat => enc(
            HeartbeatRequest::default()
                .with_group_id(group)
                .with_generation_id(generation_id)
                .with_member_id(member),
            version,
        ),
        GroupOp::Commit => {
            use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
            let partitions = (0..=rng.below(2) as i32)
                .map(|p| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset(rng))
                        .with_committed_metadata(rng.percent(80).then(|| text("meta")))
                })
                .collect();
            enc(
                OffsetCommitRequest::default()
                    .with_group_id(group)
                    .with_generation_id_or_member_epoch(generation_id)
                    .with_member_id(member)
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(name(rng))
                        .with_partitions(partitions)]),
                version,
            )
        }
        GroupOp::FetchOffsets => {
            let request = if version >= 8 {
                OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(group)
                        .with_topics(rng.percent(60).then(|| {
                            vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(name(rng))
                                .with_partition_indexes(vec![0, 1])]
                        })),
                ])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(group)
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(name(rng))
                            .with_partition_indexes(vec![0, 1]),
                    ]))
            };
            enc(request, version)
        }
        GroupOp::Leave => {
            let request = if version >= 3 {
                LeaveGroupRequest::default()
                    .with_group_id(group)
                    .with_members(vec![
                        leave_group_request::MemberIdentity::default().with_member_id(member)
                    ])
            } else {
                LeaveGroupRequest::default()
                    .with_group_id(group)
                    .with_member_id(member)
            };
            enc(request, version)
        }
        GroupOp::Describe => enc(
            DescribeGroupsRequest::default().with_groups(vec![group]),
            version,
        ),
    }?;
    let mut bytes = header(key as i16, version, rng.next_u64() as i32, Some("fuzz"));
    bytes.extend(body);
    Some(bytes)
}
