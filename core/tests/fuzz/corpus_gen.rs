//! The seed files of `core/fuzz-corpus/`, built in code so each says how it was made. Written by
//! `cargo test -p spate-core --test fuzz -- --ignored write_corpus` (it rewrites only these
//! names; files added by hand, such as regressions, are left alone).

use super::batches::{self, Producer};
use super::engine::hex;
use super::requests::{encode_request, header};
use super::rng::Rng;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// A corpus file: a name, a comment (its first lines; none for raw `.txt` files) and its
/// content.
pub struct Seed {
    pub name: String,
    pub comment: String,
    pub body: String,
}

/// A metadata file, raw (its text is readable as is).
fn metadata_seed(name: &str, text: &str) -> Seed {
    Seed {
        name: format!("{name}.txt"),
        comment: String::new(),
        body: text.to_string(),
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic(s: &str) -> TopicName {
    TopicName(text(s))
}

fn hex_seed(name: &str, comment: &str, bytes: &[u8]) -> Seed {
    Seed {
        name: format!("{name}.hex"),
        comment: comment.to_string(),
        body: hex(bytes),
    }
}

/// A `stream-` file: frames with their 4-byte length prefixes, as on the wire.
fn stream(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.extend((f.len() as i32).to_be_bytes());
        out.extend(f);
    }
    out
}

fn produce_request(
    version: i16,
    acks: i16,
    name: &str,
    partition: i32,
    records: Vec<u8>,
) -> Vec<u8> {
    use produce_request::{PartitionProduceData, TopicProduceData};
    encode_request(
        ApiKey::Produce,
        version,
        7,
        &ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records.into()))])]),
    )
}

fn fetch_request(version: i16, name: &str, offset: i64, max_wait_ms: i32) -> Vec<u8> {
    use fetch_request::{FetchPartition, FetchTopic};
    encode_request(
        ApiKey::Fetch,
        version,
        8,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]),
    )
}

fn create_topics_request(version: i16, name: &str, partitions: i32) -> Vec<u8> {
    use create_topics_request::{CreatableTopic, CreatableTopicConfig};
    encode_request(
        ApiKey::CreateTopics,
        version,
        9,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(text("retention.ms"))
                    .with_value(Some(text("60000")))])])
            .with_timeout_ms(30_000),
    )
}

fn metadata_request(version: i16, names: Option<&[&str]>) -> Vec<u8> {
    use metadata_request::MetadataRequestTopic;
    let topics = names.map(|names| {
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(topic(n))))
            .collect()
    });
    encode_request(
        ApiKey::Metadata,
        version,
        10,
        &MetadataRequest::default().with_topics(topics),
    )
}

fn with_i32_at(mut bytes: Vec<u8>, at: usize, v: i32) -> Vec<u8> {
    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
    bytes
}

pub fn seeds() -> Vec<Seed> {
    let mut rng = Rng::new(0xc0_4b05);
    let batch = batches::encode(&mut rng, 3, Producer::NONE, 1_700_000_000_000);
    let idempotent = batches::encode(
        &mut rng,
        2,
        Producer {
            id: 0,
            epoch: 0,
            sequence: 0,
        },
        1_700_000_000_000,
    );
    let mut bad_crc = batch.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x40;
    let mut magic1 = batch.clone();
    magic1[batches::MAGIC] = 1;
    let mut s = Vec::new();

    // ---- valid requests, one per API ----
    s.push(hex_seed(
        "req-produce-v9-acks-all",
        "Produce v9, acks=-1, one uncompressed batch of 3 records to t-0 (valid)",
        &produce_request(9, -1, "t", 0, batch.clone()),
    ));
    s.push(hex_seed(
        "req-produce-v3-acks-1",
        "Produce v3 (the oldest accepted), acks=1, to t-1 (valid)",
        &produce_request(3, 1, "t", 1, batch.clone()),
    ));
    s.push(hex_seed(
        "req-produce-v11-idempotent",
        "Produce v11, acks=-1, an idempotent batch (producer 0, epoch 0, sequence 0) (valid)",
        &produce_request(11, -1, "t", 0, idempotent),
    ));
    s.push(hex_seed(
        "req-produce-v9-acks-0",
        "Produce v9, acks=0: NoResponse (valid)",
        &produce_request(9, 0, "u", 0, batch.clone()),
    ));
    s.push(hex_seed(
        "req-produce-v0-refused",
        "Produce v0 header with a v3 body: v0-v2 are advertised but refused on arrival (close)",
        &{
            let mut f = produce_request(3, 1, "t", 0, batch.clone());
            f[2..4].copy_from_slice(&0i16.to_be_bytes());
            f
        },
    ));
    s.push(hex_seed(
        "req-produce-bad-crc",
        "Produce v9 whose batch has one flipped bit in its last record: CORRUPT_MESSAGE",
        &produce_request(9, -1, "t", 0, bad_crc.clone()),
    ));
    s.push(hex_seed(
        "req-produce-magic-1",
        "Produce v9 whose batch says magic 1: UNSUPPORTED_FOR_MESSAGE_FORMAT",
        &produce_request(9, 1, "t", 0, magic1.clone()),
    ));
    s.push(hex_seed(
        "req-fetch-v12",
        "Fetch v12 (flexible) of t-0 from offset 0, max_wait 0 (valid)",
        &fetch_request(12, "t", 0, 0),
    ));
    s.push(hex_seed(
        "req-fetch-v4-wait",
        "Fetch v4 of t-0 from offset 5, max_wait 500: parks until its deadline (valid)",
        &fetch_request(4, "t", 5, 500),
    ));
    s.push(hex_seed(
        "req-list-offsets-v7",
        "ListOffsets v7, t-0, timestamps -1 (latest) and -2 (earliest) (valid)",
        &{
            use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
            encode_request(
                ApiKey::ListOffsets,
                7,
                11,
                &ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![ListOffsetsTopic::default()
                        .with_name(topic("t"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default().with_timestamp(-1),
                            ListOffsetsPartition::default()
                                .with_partition_index(1)
                                .with_timestamp(-2),
                        ])]),
            )
        },
    ));
    s.push(hex_seed(
        "req-metadata-v0",
        "Metadata v0 for topics t and u (valid)",
        &metadata_request(0, Some(&["t", "u"])),
    ));
    s.push(hex_seed(
        "req-metadata-v12-all",
        "Metadata v12 with a null topic list: all topics (valid)",
        &metadata_request(12, None),
    ));
    s.push(hex_seed(
        "req-api-versions-v3",
        "ApiVersions v3 with client software name and version (valid)",
        &encode_request(
            ApiKey::ApiVersions,
            3,
            12,
            &ApiVersionsRequest::default()
                .with_client_software_name(text("spate-fuzz"))
                .with_client_software_version(text("1.0")),
        ),
    ));
    s.push(hex_seed(
        "req-api-versions-v99",
        "ApiVersions v99: answered UNSUPPORTED_VERSION in v0 (KIP-511)",
        &[0, 18, 0, 99, 0, 0, 0, 7, 0, 4, b't', b'e', b's', b't', 0],
    ));
    s.push(hex_seed(
        "req-create-topics-v7",
        "CreateTopics v7: topic c, 3 partitions, retention.ms=60000 (valid)",
        &create_topics_request(7, "c", 3),
    ));
    s.push(hex_seed(
        "req-create-topics-v2",
        "CreateTopics v2 (oldest advertised): topic c2, 1 partition (valid)",
        &create_topics_request(2, "c2", 1),
    ));
    s.push(hex_seed(
        "req-delete-topics-v6",
        "DeleteTopics v6 by name: u (valid)",
        &encode_request(
            ApiKey::DeleteTopics,
            6,
            13,
            &DeleteTopicsRequest::default()
                .with_topics(vec![
                    delete_topics_request::DeleteTopicState::default().with_name(Some(topic("u")))
                ])
                .with_timeout_ms(30_000),
        ),
    ));
    s.push(hex_seed(
        "req-delete-topics-v1",
        "DeleteTopics v1 by name: u and nope (valid)",
        &encode_request(
            ApiKey::DeleteTopics,
            1,
            14,
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![topic("u"), topic("nope")])
                .with_timeout_ms(30_000),
        ),
    ));
    s.push(hex_seed(
        "req-init-producer-id-v4",
        "InitProducerId v4, no transactional id (valid)",
        &encode_request(
            ApiKey::InitProducerId,
            4,
            15,
            &InitProducerIdRequest::default()
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
    ));
    s.push(hex_seed(
        "req-delete-records-v2",
        "DeleteRecords v2: t-0 up to offset 2 (valid)",
        &{
            use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
            encode_request(
                ApiKey::DeleteRecords,
                2,
                16,
                &DeleteRecordsRequest::default()
                    .with_topics(vec![DeleteRecordsTopic::default()
                        .with_name(topic("t"))
                        .with_partitions(vec![DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(2)])])
                    .with_timeout_ms(30_000),
            )
        },
    ));
    s.push(hex_seed(
        "req-offset-for-leader-epoch-v4",
        "OffsetForLeaderEpoch v4: t-0 epoch 0 (valid)",
        &{
            use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
            encode_request(
                ApiKey::OffsetForLeaderEpoch,
                4,
                17,
                &OffsetForLeaderEpochRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![OffsetForLeaderTopic::default()
                        .with_topic(topic("t"))
                        .with_partitions(vec![OffsetForLeaderPartition::default()
                            .with_current_leader_epoch(0)
                            .with_leader_epoch(0)])]),
            )
        },
    ));
    s.push(hex_seed(
        "req-describe-configs-v4",
        "DescribeConfigs v4: topic t (all keys) and broker 1 (valid)",
        &{
            use describe_configs_request::DescribeConfigsResource;
            encode_request(
                ApiKey::DescribeConfigs,
                4,
                18,
                &DescribeConfigsRequest::default()
                    .with_resources(vec![
                        DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(text("t")),
                        DescribeConfigsResource::default()
                            .with_resource_type(4)
                            .with_resource_name(text("1")),
                    ])
                    .with_include_synonyms(true),
            )
        },
    ));
    s.push(hex_seed(
        "req-alter-configs-v2",
        "AlterConfigs v2: topic t message.timestamp.type=LogAppendTime (valid)",
        &{
            use alter_configs_request::{AlterConfigsResource, AlterableConfig};
            encode_request(
                ApiKey::AlterConfigs,
                2,
                19,
                &AlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(text("t"))
                        .with_configs(vec![AlterableConfig::default()
                            .with_name(text("message.timestamp.type"))
                            .with_value(Some(text("LogAppendTime")))]),
                ]),
            )
        },
    ));
    s.push(hex_seed(
        "req-incremental-alter-configs-v1",
        "IncrementalAlterConfigs v1: topic t APPEND cleanup.policy=compact (valid)",
        &{
            use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
            encode_request(
                ApiKey::IncrementalAlterConfigs,
                1,
                20,
                &IncrementalAlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(text("t"))
                        .with_configs(vec![AlterableConfig::default()
                            .with_name(text("cleanup.policy"))
                            .with_config_operation(2)
                            .with_value(Some(text("compact")))]),
                ]),
            )
        },
    ));
    s.push(hex_seed(
        "req-describe-log-dirs-v4",
        "DescribeLogDirs v4, all topics (valid)",
        &encode_request(
            ApiKey::DescribeLogDirs,
            4,
            21,
            &DescribeLogDirsRequest::default().with_topics(None),
        ),
    ));
    s.push(hex_seed(
        "req-create-partitions-v3",
        "CreatePartitions v3: t to 4 partitions (valid)",
        &encode_request(
            ApiKey::CreatePartitions,
            3,
            22,
            &CreatePartitionsRequest::default()
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(topic("t"))
                        .with_count(4),
                ])
                .with_timeout_ms(30_000),
        ),
    ));
    s.push(hex_seed(
        "req-describe-cluster-v2",
        "DescribeCluster v2 (valid)",
        &encode_request(
            ApiKey::DescribeCluster,
            2,
            23,
            &DescribeClusterRequest::default().with_endpoint_type(1),
        ),
    ));
    s.push(hex_seed(
        "req-find-coordinator-v4",
        "FindCoordinator v4 for group g (valid)",
        &encode_request(
            ApiKey::FindCoordinator,
            4,
            24,
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![text("g")]),
        ),
    ));
    s.push(hex_seed(
        "req-join-group-v9",
        "JoinGroup v9, group g, new member (valid: MEMBER_ID_REQUIRED)",
        &encode_request(
            ApiKey::JoinGroup,
            9,
            25,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(text("g")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(text("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(text("range"))
                .with_metadata(vec![0, 1, 0, 0, 0, 1, 0, 1, b't'].into())]),
        ),
    ));
    s.push(hex_seed(
        "req-offset-commit-v8",
        "OffsetCommit v8, simple commit (generation -1) of t-0 at 2 for group g (valid)",
        &{
            use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
            encode_request(
                ApiKey::OffsetCommit,
                8,
                26,
                &OffsetCommitRequest::default()
                    .with_group_id(GroupId(text("g")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(topic("t"))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default().with_committed_offset(2)
                        ])]),
            )
        },
    ));
    s.push(hex_seed(
        "req-offset-fetch-v8",
        "OffsetFetch v8 for group g, all topics (valid)",
        &encode_request(
            ApiKey::OffsetFetch,
            8,
            27,
            &OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(text("g"))),
            ]),
        ),
    ));

    // ---- truncated, malformed and hostile requests ----
    s.push(hex_seed("req-empty", "An empty frame", &[]));
    s.push(hex_seed(
        "req-trunc-2-bytes",
        "Two bytes: an API key (Metadata) and nothing else",
        &[0, 3],
    ));
    s.push(hex_seed(
        "req-trunc-3-bytes",
        "Three bytes: API key and half a version",
        &[0, 3, 0],
    ));
    s.push(hex_seed(
        "req-trunc-header",
        "Metadata v1 header cut inside the client id",
        &metadata_request(1, Some(&["t"]))[..11],
    ));
    s.push(hex_seed(
        "req-trunc-produce-body",
        "Produce v9 cut in the middle of its record batch",
        &{
            let f = produce_request(9, -1, "t", 0, batch.clone());
            f[..f.len() - 40].to_vec()
        },
    ));
    s.push(hex_seed(
        "req-unknown-api-9999",
        "API key 9999: unknown, closes the connection",
        &[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0],
    ));
    s.push(hex_seed(
        "req-fetch-v3-unsupported",
        "Fetch v3 (below the advertised v4): closes the connection",
        &{
            let mut f = fetch_request(4, "t", 0, 0);
            f[2..4].copy_from_slice(&3i16.to_be_bytes());
            f
        },
    ));
    s.push(hex_seed(
        "req-fetch-v13-unsupported",
        "Fetch v13 (above the advertised v12): closes the connection",
        &{
            let mut f = fetch_request(12, "t", 0, 0);
            f[2..4].copy_from_slice(&13i16.to_be_bytes());
            f
        },
    ));
    // Metadata v1: header is key(2) version(2) correlation(4) client id(2 + 4 "fuzz") = 14 bytes,
    // then the topics array length.
    s.push(hex_seed(
        "req-bomb-metadata-array-i32max",
        "Metadata v1 whose topics array claims i32::MAX elements (the pre-allocation bomb \
         SPATE-PATCH.md caps)",
        &with_i32_at(metadata_request(1, Some(&["t"])), 14, i32::MAX),
    ));
    s.push(hex_seed(
        "req-bomb-metadata-array-negative",
        "Metadata v1 whose topics array length is -2 (only -1, null, is allowed)",
        &with_i32_at(metadata_request(1, Some(&["t"])), 14, -2),
    ));
    s.push(hex_seed(
        "req-bomb-string-i16max",
        "Metadata v1 whose topic name claims 32767 bytes and has 1",
        &{
            let mut f = metadata_request(1, Some(&["t"]));
            f[18..20].copy_from_slice(&i16::MAX.to_be_bytes());
            f
        },
    ));
    s.push(hex_seed(
        "req-bomb-client-id-negative",
        "A header whose client id length is -2",
        &{
            let mut f = metadata_request(1, Some(&["t"]));
            f[8..10].copy_from_slice(&(-2i16).to_be_bytes());
            f
        },
    ));
    // Produce v3: header 14 bytes, transactional id (2, null), acks (2), timeout (4), then the
    // topics array length at 22; the records length follows name and partition index.
    s.push(hex_seed(
        "req-bomb-produce-topics-i32max",
        "Produce v3 whose topic array claims i32::MAX elements",
        &with_i32_at(produce_request(3, 1, "t", 0, batch.clone()), 22, i32::MAX),
    ));
    s.push(hex_seed(
        "req-bomb-produce-records-i32max",
        "Produce v3 whose records field claims i32::MAX bytes",
        &with_i32_at(produce_request(3, 1, "t", 0, batch.clone()), 37, i32::MAX),
    ));
    // CreateTopics v7 is flexible: header v2 (14 bytes and an empty tag buffer), then the topics
    // compact array length as an unsigned varint (N+1).
    s.push(hex_seed(
        "req-bomb-create-topics-compact-u32max",
        "CreateTopics v7 whose compact topics array length is the varint of u32::MAX",
        &{
            let f = create_topics_request(7, "c", 1);
            let mut out = f[..15].to_vec();
            out.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
            out.extend(&f[16..]);
            out
        },
    ));
    s.push(hex_seed(
        "req-bomb-varint-too-long",
        "CreateTopics v7 whose compact array length is an 11-byte varint",
        &{
            let f = create_topics_request(7, "c", 1);
            let mut out = f[..15].to_vec();
            out.extend([0xff; 10]);
            out.push(0x01);
            out.extend(&f[16..]);
            out
        },
    ));
    s.push(hex_seed(
        "req-header-only-fetch-v12",
        "A Fetch v12 header and no body",
        &header(1, 12, 5, Some("fuzz")),
    ));

    // ---- wire streams ----
    s.push(hex_seed(
        "stream-produce-then-fetch",
        "Length-prefixed frames: create d, produce two batches to d-0, fetch from 0 and 3, \
         list offsets, delete records to 3, fetch from 0 (out of range)",
        &stream(&[
            create_topics_request(7, "d", 1),
            produce_request(9, -1, "d", 0, batch.clone()),
            produce_request(9, -1, "d", 0, batch.clone()),
            fetch_request(12, "d", 0, 0),
            fetch_request(12, "d", 3, 0),
            {
                use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
                encode_request(
                    ApiKey::DeleteRecords,
                    2,
                    30,
                    &DeleteRecordsRequest::default().with_topics(vec![
                        DeleteRecordsTopic::default()
                            .with_name(topic("d"))
                            .with_partitions(
                                vec![DeleteRecordsPartition::default().with_offset(3)],
                            ),
                    ]),
                )
            },
            fetch_request(12, "d", 0, 0),
        ]),
    ));
    s.push(hex_seed(
        "stream-negative-frame-size",
        "A valid Metadata frame, then a frame size of -1 (the shell closes the connection)",
        &{
            let mut out = stream(&[metadata_request(12, None)]);
            out.extend((-1i32).to_be_bytes());
            out
        },
    ));

    // ---- record batches and segment files ----
    s.push(hex_seed(
        "batch-valid-3-records",
        "A valid batch of 3 records",
        &batch,
    ));
    s.push(hex_seed(
        "batch-bad-crc",
        "The same batch with one flipped bit in its last record",
        &bad_crc,
    ));
    s.push(hex_seed(
        "batch-magic-1",
        "The same batch claiming magic 1",
        &magic1,
    ));
    s.push(hex_seed(
        "batch-length-i32max",
        "A batch whose length field is i32::MAX",
        &with_i32_at(batch.clone(), batches::LENGTH, i32::MAX),
    ));
    s.push(hex_seed(
        "batch-length-negative",
        "A batch whose length field is -1",
        &with_i32_at(batch.clone(), batches::LENGTH, -1),
    ));
    s.push(hex_seed(
        "batch-count-mismatch",
        "A batch claiming 5 records with last offset delta 2 (CRC fixed up)",
        &{
            let mut b = with_i32_at(batch.clone(), batches::RECORDS_COUNT, 5);
            batches::fix_crc(&mut b);
            b
        },
    ));
    s.push(hex_seed(
        "batch-truncated",
        "A valid batch cut 10 bytes short",
        &batch[..batch.len() - 10],
    ));
    s.push(hex_seed(
        "batch-offset-jump",
        "A valid batch claiming i32::MAX records (last offset delta i32::MAX - 1, CRC fixed up)",
        &{
            let mut b = with_i32_at(batch.clone(), batches::LAST_OFFSET_DELTA, i32::MAX - 1);
            b = with_i32_at(b, batches::RECORDS_COUNT, i32::MAX);
            batches::fix_crc(&mut b);
            b
        },
    ));
    s.push(hex_seed(
        "segment-two-batches-torn-tail",
        "A segment: two batches at offsets 0 and 3, 64 zero bytes, then 8 bytes of garbage",
        &{
            let mut second = batch.clone();
            second[..8].copy_from_slice(&3i64.to_be_bytes());
            let mut file = batch.clone();
            file.extend(second);
            file.extend([0u8; 64]);
            file.extend([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]);
            file
        },
    ));
    s.push(hex_seed(
        "segment-wrong-base-offset",
        "A segment whose second batch has base offset 7 where 3 is expected",
        &{
            let mut second = batch.clone();
            second[..8].copy_from_slice(&7i64.to_be_bytes());
            let mut file = batch.clone();
            file.extend(second);
            file
        },
    ));

    // ---- sequences ----
    s.push(Seed {
        name: "seq-restart-then-produce.hex".into(),
        comment: "Create t, restart (a new seed, as the production shell draws), create u, \
                  produce to u, fetch it"
            .into(),
        body: [
            "== request".to_string(),
            hex(&create_topics_request(7, "t", 2)),
            "== restart".into(),
            "== request".into(),
            hex(&create_topics_request(7, "u", 1)),
            "== request".into(),
            hex(&produce_request(9, -1, "u", 0, batch.clone())),
            "== request".into(),
            hex(&fetch_request(12, "u", 0, 0)),
        ]
        .join("\n"),
    });
    // ---- metadata files (start-up) ----
    let id_t = "0123456789abcdef0123456789abcdef";
    let id_u = "fedcba9876543210fedcba9876543210";
    s.push(metadata_seed(
        "metadata-valid",
        &format!(
            "spate-metadata v1\ncluster\tfuzz-cluster\nproducer_ids\t1000\n\
             topic\t{id_t}\tt\t2\tretention.ms=60000\nstart\t{id_t}\t0\t0\n\
             topic\t{id_u}\tu\t1\n"
        ),
    ));
    s.push(metadata_seed(
        "metadata-bug-bad-config",
        &format!(
            "spate-metadata v1\ncluster\tfuzz-cluster\n\
             topic\t{id_t}\tt\t1\tmax.message.bytes=abc\n"
        ),
    ));
    s.push(metadata_seed(
        "metadata-bug-duplicate-topic",
        &format!(
            "spate-metadata v1\ncluster\tfuzz-cluster\n\
             topic\t{id_t}\tt\t1\ntopic\t{id_u}\tt\t2\n"
        ),
    ));
    s.push(metadata_seed(
        "metadata-bug-duplicate-id",
        &format!(
            "spate-metadata v1\ncluster\tfuzz-cluster\n\
             topic\t{id_t}\tt\t0\ntopic\t{id_t}\tu\t1\n"
        ),
    ));
    s.push(metadata_seed(
        "metadata-bug-unsafe-name",
        &format!("spate-metadata v1\ncluster\tfuzz-cluster\ntopic\t{id_t}\t../escape\t1\n"),
    ));
    s.push(metadata_seed(
        "metadata-bug-partitions-above-max",
        &format!("spate-metadata v1\ncluster\tfuzz-cluster\ntopic\t{id_t}\tt\t10001\n"),
    ));

    s.push(Seed {
        name: "seq-bug-offsets-topic-generation-overflow.hex".into(),
        comment: "KNOWN BUG offsets-topic-writable: a client produces a GroupMetadataValue for \
                  group g at generation 2147483647 with one member to __consumer_offsets; after \
                  a restart (sessions start at the first event after it) the member's session \
                  expires and the rebalance does generation_id += 1 (overflow)"
            .into(),
        body: [
            "== request".to_string(),
            hex(&create_topics_request(7, "t", 1)),
            "== request".into(),
            hex(&forged_group_produce()),
            "== restart".into(),
            "== advance 1".into(),
            "== advance 60000".into(),
        ]
        .join("\n"),
    });
    s.push(Seed {
        name: "seq-bug-topic-id-reuse.hex".into(),
        comment: "KNOWN BUG topic-id-reuse: create t, restart with the same Config::seed, \
                  create u (it gets t's topic id), produce to u: the write completion is \
                  applied to t's log and panics"
            .into(),
        body: [
            "== request".to_string(),
            hex(&create_topics_request(7, "t", 2)),
            "== restart-same-seed".into(),
            "== request".into(),
            hex(&create_topics_request(7, "u", 1)),
            "== request".into(),
            hex(&produce_request(9, -1, "u", 0, batch.clone())),
        ]
        .join("\n"),
    });
    s
}

/// A Produce v9 to `__consumer_offsets` of the records a coordinator writes, as bytes a client
/// chose: one record batch with `records`.
fn offsets_produce(records: &[spate_core::groups::OffsetsRecord]) -> Vec<u8> {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (key, value) = r.encode();
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1 + i as i32,
                timestamp: 1_700_000_000_000,
                key: Some(key),
                value: value.map(|v: Bytes| v),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("an uncompressed batch");
    produce_request(9, -1, "__consumer_offsets", 0, buf.to_vec())
}

/// A forged commit: group `g`, topic `t`, partition 0, offset 777.
pub fn forged_offsets_produce() -> Vec<u8> {
    use spate_core::groups::{CommittedOffset, OffsetsRecord};
    offsets_produce(&[OffsetsRecord::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
        value: Some(CommittedOffset {
            offset: 777,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1_700_000_000_000,
        }),
    }])
}

/// A forged group: `g`, Stable at generation i32::MAX, one member with a 10 s session.
fn forged_group_produce() -> Vec<u8> {
    use spate_core::groups::{GroupSnapshot, MemberSnapshot, OffsetsRecord};
    offsets_produce(&[OffsetsRecord::Group {
        group: "g".into(),
        value: Some(GroupSnapshot {
            protocol_type: "consumer".into(),
            generation_id: i32::MAX,
            protocol_name: Some("range".into()),
            leader: Some("m-1".into()),
            timestamp_ms: 1_700_000_000_000,
            members: vec![MemberSnapshot {
                member_id: "m-1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 10_000,
                session_timeout_ms: 10_000,
                subscription: Default::default(),
                assignment: Default::default(),
            }],
        }),
    }])
}
