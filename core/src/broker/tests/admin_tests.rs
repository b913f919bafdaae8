//! Admin APIs (issue 4): the harness's admin requests, and topics, partitions, records, the
//! cluster, epochs, log dirs and unserved APIs.

use super::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};

/// The connection admin requests go on.
pub(super) const ADMIN: ConnId = 10;

pub(super) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

pub(super) fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.into())
}

impl Harness {
    pub(super) fn describe_configs(
        &mut self,
        resource_type: i8,
        name: &str,
        keys: Option<&[&str]>,
        version: i16,
    ) -> DescribeConfigsResult {
        let resource = DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configuration_keys(keys.map(|k| k.iter().map(|k| text(k)).collect()));
        let request = DescribeConfigsRequest::default()
            .with_resources(vec![resource])
            .with_include_synonyms(true);
        self.send(ADMIN, ApiKey::DescribeConfigs, version, &request);
        let mut response: DescribeConfigsResponse =
            self.response(ADMIN, ApiKey::DescribeConfigs, version);
        response.results.remove(0)
    }

    /// A topic's config as DescribeConfigs v4 reports it: value, source, type and synonyms.
    pub(super) fn topic_config(
        &mut self,
        topic: &str,
        key: &str,
    ) -> (String, i8, i8, Vec<(String, i8)>) {
        let result = self.describe_configs(2, topic, Some(&[key]), 4);
        assert_eq!(
            result.error_code,
            errors::NONE,
            "{:?}",
            result.error_message
        );
        let entry = &result.configs[0];
        (
            entry.value.as_ref().unwrap().to_string(),
            entry.config_source,
            entry.config_type,
            entry
                .synonyms
                .iter()
                .map(|s| (s.name.to_string(), s.source))
                .collect(),
        )
    }

    pub(super) fn alter_configs(
        &mut self,
        resource_type: i8,
        name: &str,
        configs: &[(&str, Option<&str>)],
        validate_only: bool,
    ) -> (i16, Option<String>) {
        use kafka_protocol::messages::alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let configs = configs
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(text(k))
                    .with_value(v.map(text))
            })
            .collect();
        let resource = AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configs(configs);
        let request = AlterConfigsRequest::default()
            .with_resources(vec![resource])
            .with_validate_only(validate_only);
        self.send(ADMIN, ApiKey::AlterConfigs, 2, &request);
        let response: AlterConfigsResponse = self.response(ADMIN, ApiKey::AlterConfigs, 2);
        let result = &response.responses[0];
        (
            result.error_code,
            result.error_message.as_ref().map(|m| m.to_string()),
        )
    }

    /// Operations are (key, op: 0 SET 1 DELETE 2 APPEND 3 SUBTRACT, value).
    pub(super) fn incremental_alter(
        &mut self,
        resource_type: i8,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
        validate_only: bool,
    ) -> (i16, Option<String>) {
        let configs = ops
            .iter()
            .map(|(k, op, v)| {
                incremental::AlterableConfig::default()
                    .with_name(text(k))
                    .with_config_operation(*op)
                    .with_value(v.map(text))
            })
            .collect();
        let resource = incremental::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configs(configs);
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(vec![resource])
            .with_validate_only(validate_only);
        self.send(ADMIN, ApiKey::IncrementalAlterConfigs, 1, &request);
        let response: IncrementalAlterConfigsResponse =
            self.response(ADMIN, ApiKey::IncrementalAlterConfigs, 1);
        let result = &response.responses[0];
        (
            result.error_code,
            result.error_message.as_ref().map(|m| m.to_string()),
        )
    }

    pub(super) fn send_create_partitions(&mut self, topic: &str, count: i32, validate_only: bool) {
        use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        let wanted = CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(count);
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![wanted])
            .with_timeout_ms(30_000)
            .with_validate_only(validate_only);
        self.send(ADMIN, ApiKey::CreatePartitions, 3, &request);
    }

    pub(super) fn create_partitions(
        &mut self,
        topic: &str,
        count: i32,
        validate_only: bool,
    ) -> (i16, Option<String>) {
        self.send_create_partitions(topic, count, validate_only);
        let response: CreatePartitionsResponse = self.response(ADMIN, ApiKey::CreatePartitions, 3);
        let result = &response.results[0];
        (
            result.error_code,
            result.error_message.as_ref().map(|m| m.to_string()),
        )
    }

    pub(super) fn send_delete_records(&mut self, topic: &str, partition: i32, offset: i64) {
        use kafka_protocol::messages::delete_records_request::{
            DeleteRecordsPartition, DeleteRecordsTopic,
        };
        let wanted = DeleteRecordsPartition::default()
            .with_partition_index(partition)
            .with_offset(offset);
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![wanted])])
            .with_timeout_ms(30_000);
        self.send(ADMIN, ApiKey::DeleteRecords, 2, &request);
    }

    /// (error, low watermark)
    pub(super) fn delete_records(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> (i16, i64) {
        self.send_delete_records(topic, partition, offset);
        let response: DeleteRecordsResponse = self.response(ADMIN, ApiKey::DeleteRecords, 2);
        let result = &response.topics[0].partitions[0];
        (result.error_code, result.low_watermark)
    }

    /// (error, offset) of ListOffsets v7 for `timestamp` (-2 earliest, -1 latest).
    pub(super) fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> (i16, i64) {
        let (error, offset, _) = self.list_offset_found(topic, partition, timestamp);
        (error, offset)
    }

    /// (error, offset, timestamp) of ListOffsets v7 for `timestamp`.
    pub(super) fn list_offset_found(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> (i16, i64, i64) {
        let result = self.list_offsets_answer(topic, partition, timestamp, -1);
        (result.error_code, result.offset, result.timestamp)
    }

    /// ListOffsets v7's answer for `topic`-`partition` at `timestamp`, naming
    /// `current_leader_epoch` (-1: none).
    pub(super) fn list_offsets_answer(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
        current_leader_epoch: i32,
    ) -> list_offsets_response::ListOffsetsPartitionResponse {
        let wanted = ListOffsetsPartition::default()
            .with_partition_index(partition)
            .with_timestamp(timestamp)
            .with_current_leader_epoch(current_leader_epoch);
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![wanted])]);
        self.send(ADMIN, ApiKey::ListOffsets, 7, &request);
        let mut response: ListOffsetsResponse = self.response(ADMIN, ApiKey::ListOffsets, 7);
        response.topics.remove(0).partitions.remove(0)
    }

    pub(super) fn partition_count(&mut self, topic: &str) -> usize {
        let request =
            MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(topic_name(topic)))]));
        self.send(ADMIN, ApiKey::Metadata, 12, &request);
        let response: MetadataResponse = self.response(ADMIN, ApiKey::Metadata, 12);
        response.topics[0].partitions.len()
    }

    /// Produces one acks=all batch of `count` records to `topic`-`partition`, expecting success.
    pub(super) fn produce_ok(&mut self, topic: &str, partition: i32, count: usize) -> i64 {
        let values: Vec<&[u8]> = vec![b"v"; count];
        self.produce(1, topic, partition, -1, make_batch(&values, 5));
        let (error, base_offset) = self.produce_result(1);
        assert_eq!(error, errors::NONE);
        base_offset
    }
}

#[test]
fn create_partitions_adds_empty_partitions_that_survive_restart() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 2);
    assert_eq!(h.create_partitions("t", 3, false), (errors::NONE, None));
    assert_eq!(h.partition_count("t"), 3);
    assert_eq!(h.produce_ok("t", 2, 1), 0, "a new partition starts empty");
    let mut h = h.restart(Config::default());
    assert_eq!(h.partition_count("t"), 3);
    assert_eq!(h.list_offset("t", 2, -1), (errors::NONE, 1));
    assert_eq!(h.list_offset("t", 0, -1), (errors::NONE, 2));
}

#[test]
fn create_partitions_refuses_fewer_or_equal_with_kafkas_message() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 3);
    assert_eq!(
        h.create_partitions("t", 2, false),
        (
            errors::INVALID_PARTITIONS,
            Some("The topic t currently has 3 partition(s); 2 would not be an increase.".into())
        )
    );
    assert_eq!(
        h.create_partitions("t", 3, false),
        (
            errors::INVALID_PARTITIONS,
            Some("Topic already has 3 partition(s).".into())
        )
    );
    assert_eq!(
        h.create_partitions("nope", 3, false).0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        h.create_partitions("t", 1_000_000, false).0,
        errors::INVALID_PARTITIONS
    );
}

#[test]
fn create_partitions_refuses_assignments_and_honours_validate_only() {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    assert_eq!(h.create_partitions("t", 4, true), (errors::NONE, None));
    assert_eq!(h.partition_count("t"), 1, "validate_only changes nothing");
    let wanted = CreatePartitionsTopic::default()
        .with_name(topic_name("t"))
        .with_count(2)
        .with_assignments(Some(vec![
            CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)])
        ]));
    let request = CreatePartitionsRequest::default().with_topics(vec![wanted]);
    h.send(ADMIN, ApiKey::CreatePartitions, 3, &request);
    let response: CreatePartitionsResponse = h.response(ADMIN, ApiKey::CreatePartitions, 3);
    assert_eq!(
        response.results[0].error_code,
        errors::INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(h.partition_count("t"), 1);
}

#[test]
fn create_partitions_writes_nothing_before_its_metadata_is_durable() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    h.send_create_partitions("t", 2, false);
    assert!(
        !h.has_response(ADMIN),
        "answered only once the metadata is durable"
    );
    h.produce(1, "t", 1, 1, make_batch(&[b"a"], 5));
    assert_eq!(h.produce_result(1).0, errors::NONE);
    assert!(
        !h.held.iter().any(|c| matches!(c.op, IoOp::Write { .. })),
        "no data reaches a partition the disk does not know yet"
    );
    h.release_io();
    let response: CreatePartitionsResponse = h.response(ADMIN, ApiKey::CreatePartitions, 3);
    assert_eq!(response.results[0].error_code, errors::NONE);
    assert!(
        h.data_files().iter().any(|path| path.contains("/1/")),
        "written after it"
    );
}

#[test]
fn delete_records_moves_the_log_start_and_survives_restart() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    for _ in 0..3 {
        h.produce_ok("t", 0, 2);
    }
    assert_eq!(h.delete_records("t", 0, 3), (errors::NONE, 3));
    h.fetch(2, "t", 1, 0);
    assert_eq!(h.fetch_result(2).0, errors::OFFSET_OUT_OF_RANGE);
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 3));
    assert_eq!(
        h.delete_records("t", 0, 1),
        (errors::NONE, 3),
        "never moves back"
    );
    let mut h = h.restart(Config::default());
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 3));
    h.fetch(2, "t", 2, 0);
    assert_eq!(h.fetch_result(2).0, errors::OFFSET_OUT_OF_RANGE);
    h.fetch(2, "t", 3, 0);
    let (error, high_watermark, records) = h.fetch_result(2);
    assert_eq!((error, high_watermark), (errors::NONE, 6));
    assert_eq!(
        offsets_in(&records),
        vec![2, 4],
        "from the batch holding the log start"
    );
}

#[test]
fn delete_records_beyond_the_high_watermark_is_offset_out_of_range() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 2);
    assert_eq!(
        h.delete_records("t", 0, 3),
        (errors::OFFSET_OUT_OF_RANGE, -1)
    );
    assert_eq!(
        h.delete_records("t", 0, -5),
        (errors::OFFSET_OUT_OF_RANGE, -1)
    );
    assert_eq!(
        h.delete_records("t", 1, 0).0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        h.delete_records("nope", 0, 0).0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 0));
}

#[test]
fn delete_records_minus_one_deletes_up_to_the_high_watermark() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 4);
    h.hold_io = true;
    h.produce(1, "t", 0, 1, make_batch(&[b"unflushed"], 5));
    assert_eq!(h.produce_result(1).0, errors::NONE);
    h.release_io();
    assert_eq!(h.delete_records("t", 0, -1), (errors::NONE, 5));
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 5));
}

#[test]
fn delete_records_answers_after_the_metadata_is_durable() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 2);
    h.hold_io = true;
    h.send_delete_records("t", 0, 1);
    assert!(!h.has_response(ADMIN));
    assert!(h.held.iter().any(|c| matches!(&c.op, IoOp::PersistMetadata { data } if String::from_utf8_lossy(data).contains("start\t"))));
    h.release_io();
    let response: DeleteRecordsResponse = h.response(ADMIN, ApiKey::DeleteRecords, 2);
    assert_eq!(response.topics[0].partitions[0].low_watermark, 1);
}

#[test]
fn delete_records_on_a_compacted_topic_is_a_policy_violation() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 2);
    assert_eq!(
        h.alter_configs(2, "t", &[("cleanup.policy", Some("compact"))], false)
            .0,
        errors::NONE
    );
    assert_eq!(h.delete_records("t", 0, 1).0, errors::POLICY_VIOLATION);
}

#[test]
fn a_log_start_beyond_the_recovered_log_starts_the_log_at_its_end() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 1);
    h.produce_ok("t", 0, 1);
    assert_eq!(h.delete_records("t", 0, 2), (errors::NONE, 2));
    let mut h = h.restart(Config {
        planted_bug: Some(PlantedBug::LoseLastBatchOnRecovery),
        ..Config::default()
    });
    assert_eq!(h.list_offset("t", 0, -2), (errors::NONE, 1));
    assert_eq!(h.list_offset("t", 0, -1), (errors::NONE, 1));
}

#[test]
fn describe_cluster_names_the_one_broker_and_the_cluster_id() {
    let mut h = Harness::new(Config::default());
    h.send(
        ADMIN,
        ApiKey::DescribeCluster,
        2,
        &DescribeClusterRequest::default(),
    );
    let response: DescribeClusterResponse = h.response(ADMIN, ApiKey::DescribeCluster, 2);
    assert_eq!(response.error_code, errors::NONE);
    assert_eq!(response.cluster_id.as_str(), h.broker.cluster_id());
    assert_eq!(response.controller_id, BrokerId(1));
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(response.brokers[0].port, 9092);
    assert_eq!(response.cluster_authorized_operations, i32::MIN);
    let asked = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    h.send(ADMIN, ApiKey::DescribeCluster, 0, &asked);
    let response: DescribeClusterResponse = h.response(ADMIN, ApiKey::DescribeCluster, 0);
    assert_ne!(
        response.cluster_authorized_operations & (1 << 8),
        0,
        "DESCRIBE is allowed"
    );
}

#[test]
fn describe_cluster_for_controllers_is_unsupported_endpoint_type() {
    let mut h = Harness::new(Config::default());
    let request = DescribeClusterRequest::default().with_endpoint_type(2);
    h.send(ADMIN, ApiKey::DescribeCluster, 1, &request);
    let response: DescribeClusterResponse = h.response(ADMIN, ApiKey::DescribeCluster, 1);
    assert_eq!(response.error_code, errors::UNSUPPORTED_ENDPOINT_TYPE);
}

#[test]
fn offset_for_leader_epoch_answers_epoch_zero_ending_at_the_high_watermark() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 3);
    let ask = |partition, current, epoch| {
        OffsetForLeaderPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(current)
            .with_leader_epoch(epoch)
    };
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![
                    ask(0, 0, 0),
                    ask(0, -1, 5),
                    ask(0, 3, 0),
                    ask(7, 0, 0),
                ]),
            OffsetForLeaderTopic::default()
                .with_topic(topic_name("nope"))
                .with_partitions(vec![ask(0, 0, 0)]),
        ]);
    h.send(ADMIN, ApiKey::OffsetForLeaderEpoch, 4, &request);
    let response: OffsetForLeaderEpochResponse = h.response(ADMIN, ApiKey::OffsetForLeaderEpoch, 4);
    let answers: Vec<(i16, i32, i64)> = response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.error_code, p.leader_epoch, p.end_offset))
        .collect();
    assert_eq!(
        answers,
        vec![
            (errors::NONE, 0, 3),
            (errors::NONE, -1, -1),
            (errors::UNKNOWN_LEADER_EPOCH, -1, -1),
            (errors::UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
            (errors::UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
        ]
    );
}

#[test]
fn describe_log_dirs_reports_each_partitions_size_in_bytes() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    let mut h = Harness::new(Config {
        log_dir: "/var/lib/spate".into(),
        ..Config::default()
    });
    h.create_topic("t", 2);
    h.produce_ok("t", 0, 2);
    let batch_bytes = make_batch(&[b"v", b"v"], 5).len() as i64;
    let all = DescribeLogDirsRequest::default().with_topics(None);
    h.send(ADMIN, ApiKey::DescribeLogDirs, 4, &all);
    let response: DescribeLogDirsResponse = h.response(ADMIN, ApiKey::DescribeLogDirs, 4);
    let dir = &response.results[0];
    assert_eq!(
        (dir.error_code, dir.log_dir.as_str()),
        (errors::NONE, "/var/lib/spate")
    );
    let sizes: Vec<(i32, i64, i64, bool)> = dir.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.partition_size,
                p.offset_lag,
                p.is_future_key,
            )
        })
        .collect();
    assert_eq!(sizes, vec![(0, batch_bytes, 0, false), (1, 0, 0, false)]);
    let only = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(topic_name("t"))
            .with_partitions(vec![1, 9]),
        DescribableLogDirTopic::default()
            .with_topic(topic_name("nope"))
            .with_partitions(vec![0]),
    ]));
    h.send(ADMIN, ApiKey::DescribeLogDirs, 1, &only);
    let response: DescribeLogDirsResponse = h.response(ADMIN, ApiKey::DescribeLogDirs, 1);
    let topics = &response.results[0].topics;
    assert_eq!(topics.len(), 1, "unknown topics are left out");
    assert_eq!(
        topics[0].partitions.len(),
        1,
        "unknown partitions are left out"
    );
}

#[test]
fn unserved_transaction_apis_close_the_connection_with_one_log_line() {
    // Clients send these only after FindCoordinator found a transaction coordinator, which it
    // never does here (see `transactions_and_acls_are_refused_with_named_errors`).
    let unserved = [
        (ApiKey::AddPartitionsToTxn, 3),
        (ApiKey::AddOffsetsToTxn, 3),
        (ApiKey::EndTxn, 3),
        (ApiKey::TxnOffsetCommit, 3),
    ];
    for (conn, (api_key, version)) in (20..).zip(unserved) {
        assert_eq!(
            supported_versions(api_key),
            None,
            "{api_key:?} is not advertised"
        );
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(1);
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, api_key.request_header_version(version))
            .unwrap();
        assert_closes_with_one_log_line(conn, api_key, frame.freeze());
    }
}

#[test]
fn transactions_and_acls_are_refused_with_named_errors() {
    let mut h = Harness::new(Config::default());
    // A transaction coordinator lookup fails fatally (for clients) with a message, in the old
    // single-key form and in the v4 batch form.
    let old = FindCoordinatorRequest::default()
        .with_key(text("tx-1"))
        .with_key_type(1);
    h.send(ADMIN, ApiKey::FindCoordinator, 3, &old);
    let response: FindCoordinatorResponse = h.response(ADMIN, ApiKey::FindCoordinator, 3);
    assert_eq!(
        response.error_code,
        errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(response.node_id.0, -1);
    assert!(response
        .error_message
        .unwrap()
        .contains("transactions are not supported"));
    let batch = FindCoordinatorRequest::default()
        .with_coordinator_keys(vec![text("tx-1"), text("tx-2")])
        .with_key_type(1);
    h.send(ADMIN, ApiKey::FindCoordinator, 4, &batch);
    let response: FindCoordinatorResponse = h.response(ADMIN, ApiKey::FindCoordinator, 4);
    assert_eq!(response.coordinators.len(), 2);
    for c in &response.coordinators {
        assert_eq!(c.error_code, errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        assert!(c.error_message.is_some());
    }
    // A group lookup on the same connection still works.
    let group = FindCoordinatorRequest::default()
        .with_coordinator_keys(vec![text("g")])
        .with_key_type(0);
    h.send(ADMIN, ApiKey::FindCoordinator, 4, &group);
    let response: FindCoordinatorResponse = h.response(ADMIN, ApiKey::FindCoordinator, 4);
    assert_eq!(response.coordinators[0].error_code, errors::NONE);
    // Success carries a null message (issue 13: "" reads as an error to clients).
    assert_eq!(response.coordinators[0].error_message, None);
    let single = FindCoordinatorRequest::default().with_key(text("g"));
    h.send(ADMIN, ApiKey::FindCoordinator, 3, &single);
    let response: FindCoordinatorResponse = h.response(ADMIN, ApiKey::FindCoordinator, 3);
    assert_eq!(
        (response.error_code, response.error_message),
        (errors::NONE, None)
    );

    // ACLs: SECURITY_DISABLED, per creation and per filter, as Kafka without an authorizer.
    h.send(
        ADMIN,
        ApiKey::DescribeAcls,
        3,
        &DescribeAclsRequest::default(),
    );
    let response: DescribeAclsResponse = h.response(ADMIN, ApiKey::DescribeAcls, 3);
    assert_eq!(response.error_code, errors::SECURITY_DISABLED);
    assert!(response.error_message.unwrap().contains("No Authorizer"));
    let creations = CreateAclsRequest::default().with_creations(vec![
        create_acls_request::AclCreation::default(),
        create_acls_request::AclCreation::default(),
    ]);
    h.send(ADMIN, ApiKey::CreateAcls, 2, &creations);
    let response: CreateAclsResponse = h.response(ADMIN, ApiKey::CreateAcls, 2);
    assert_eq!(response.results.len(), 2);
    assert!(response
        .results
        .iter()
        .all(|r| r.error_code == errors::SECURITY_DISABLED));
    let filters = DeleteAclsRequest::default()
        .with_filters(vec![delete_acls_request::DeleteAclsFilter::default()]);
    h.send(ADMIN, ApiKey::DeleteAcls, 1, &filters);
    let response: DeleteAclsResponse = h.response(ADMIN, ApiKey::DeleteAcls, 1);
    assert_eq!(response.filter_results.len(), 1);
    assert_eq!(
        response.filter_results[0].error_code,
        errors::SECURITY_DISABLED
    );

    // SASL on a PLAINTEXT listener: ILLEGAL_SASL_STATE, as Kafka answers.
    h.send(
        ADMIN,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(text("PLAIN")),
    );
    let response: SaslHandshakeResponse = h.response(ADMIN, ApiKey::SaslHandshake, 1);
    assert_eq!(response.error_code, errors::ILLEGAL_SASL_STATE);
    assert!(response.mechanisms.is_empty());
    h.send(
        ADMIN,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default(),
    );
    let response: SaslAuthenticateResponse = h.response(ADMIN, ApiKey::SaslAuthenticate, 2);
    assert_eq!(response.error_code, errors::ILLEGAL_SASL_STATE);
    assert!(response.error_message.unwrap().contains("PLAINTEXT"));
}

/// Sends `frame` to a fresh broker and checks it closes `conn` with exactly one log line.
fn assert_closes_with_one_log_line(conn: ConnId, api_key: ApiKey, frame: Bytes) {
    let mut broker = Broker::new(Config::default());
    broker.handle_request(0, conn, frame);
    let mut logs = Vec::new();
    let mut closed = Vec::new();
    while let Some(output) = broker.poll_output() {
        match output {
            Output::Log { message, .. } => logs.push(message),
            Output::Close { conn } => closed.push(conn),
            other => panic!("unexpected output {other:?}"),
        }
    }
    assert_eq!(closed, vec![conn]);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].contains(&format!("{api_key:?}")) && logs[0].contains("not implemented"));
}

#[test]
fn the_admin_apis_are_advertised_with_their_versions() {
    let mut h = Harness::new(Config::default());
    h.send(
        ADMIN,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    let response: ApiVersionsResponse = h.response(ADMIN, ApiKey::ApiVersions, 3);
    let advertised = |key: ApiKey| {
        response
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(advertised(ApiKey::DeleteRecords), Some((0, 2)));
    assert_eq!(advertised(ApiKey::OffsetForLeaderEpoch), Some((2, 4)));
    assert_eq!(advertised(ApiKey::DescribeConfigs), Some((1, 4)));
    assert_eq!(advertised(ApiKey::AlterConfigs), Some((0, 2)));
    assert_eq!(advertised(ApiKey::DescribeLogDirs), Some((1, 4)));
    assert_eq!(advertised(ApiKey::CreatePartitions), Some((0, 3)));
    assert_eq!(advertised(ApiKey::IncrementalAlterConfigs), Some((0, 1)));
    assert_eq!(advertised(ApiKey::DescribeCluster), Some((0, 2)));
    assert_eq!(advertised(ApiKey::EndTxn), None);
}

/// Kafka's rule for compacted topics (issue 17): a record without a key is refused with
/// INVALID_RECORD and Kafka's message, compressed batches included; keyed records go in.
#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let batch = |keys: &[Option<&'static [u8]>], compression| {
        let records: Vec<Record> = (0..)
            .zip(keys)
            .map(|(i, key)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32 - 1,
                timestamp: 5,
                key: key.map(Bytes::from_static),
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut bytes = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut bytes, &records, &options).unwrap();
        bytes.to_vec()
    };
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce(1, "t", 0, -1, batch(&[Some(b"k"), None], Compression::None));
    assert_eq!(
        h.produce_result(1).0,
        errors::NONE,
        "a deleting topic takes it"
    );
    let compact = &[("cleanup.policy", Some("compact"))];
    assert_eq!(h.alter_configs(2, "t", compact, false).0, errors::NONE);
    for compression in [Compression::None, Compression::Gzip, Compression::Lz4] {
        h.produce(1, "t", 0, -1, batch(&[Some(b"k"), None], compression));
        assert_eq!(
            h.produce_result(1).0,
            errors::INVALID_RECORD,
            "{compression:?}"
        );
        h.produce(1, "t", 0, -1, batch(&[Some(b"k"), Some(b"j")], compression));
        assert_eq!(h.produce_result(1).0, errors::NONE, "{compression:?}");
    }
    assert_eq!(h.broker.high_watermark("t", 0), Some(2 + 3 * 2));
}
