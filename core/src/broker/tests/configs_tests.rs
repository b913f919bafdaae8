//! DescribeConfigs, AlterConfigs, IncrementalAlterConfigs: topic and broker configs.

use super::*;
use kafka_protocol::messages::incremental_alter_configs_request as incremental;

#[test]
fn describe_configs_reports_every_topic_config_with_its_source_type_and_synonyms() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    assert_eq!(
        h.alter_configs(2, "t", &[("retention.ms", Some("1000"))], false)
            .0,
        errors::NONE
    );
    let result = h.describe_configs(2, "t", None, 4);
    assert_eq!(
        (result.error_code, &result.error_message),
        (errors::NONE, &None)
    );
    let names: Vec<&str> = result.configs.iter().map(|c| c.name.as_str()).collect();
    let known: Vec<&str> = crate::configs::topic::TOPIC_CONFIGS
        .iter()
        .map(|c| c.def.name)
        .collect();
    assert_eq!(names, known);
    assert!(result
        .configs
        .iter()
        .all(|c| !c.read_only && !c.is_sensitive && c.documentation.is_none()));
    assert_eq!(
        h.topic_config("t", "retention.ms"),
        (
            "1000".into(),
            1,
            5,
            vec![
                ("retention.ms".into(), 1),
                ("log.retention.hours".into(), 5)
            ]
        ),
        "an override is TOPIC_CONFIG, LONG, with the broker default as its synonym"
    );
    assert_eq!(
        h.topic_config("t", "max.message.bytes"),
        (
            "1048588".into(),
            5,
            3,
            vec![("message.max.bytes".into(), 5)]
        ),
        "a default is DEFAULT_CONFIG"
    );
    assert_eq!(h.topic_config("t", "cleanup.policy").2, 7, "LIST");
    assert_eq!(h.topic_config("t", "compression.type").2, 2, "STRING");
}

#[test]
fn describe_configs_filters_by_configuration_keys() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let result = h.describe_configs(2, "t", Some(&["segment.bytes", "no.such.key"]), 4);
    let names: Vec<&str> = result.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["segment.bytes"]);
    assert_eq!(
        h.describe_configs(2, "t", Some(&[]), 4).configs.len(),
        crate::configs::topic::TOPIC_CONFIGS.len(),
        "an empty key list asks for everything"
    );
}

#[test]
fn describe_configs_of_an_unknown_topic_is_unknown_topic_or_partition_with_a_message() {
    let mut h = Harness::new(Config::default());
    let result = h.describe_configs(2, "nope", None, 4);
    assert_eq!(result.error_code, errors::UNKNOWN_TOPIC_OR_PARTITION);
    assert!(result.error_message.unwrap().contains("nope"));
    assert!(result.configs.is_empty());
}

#[test]
fn describe_configs_v1_answers_without_types() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let result = h.describe_configs(2, "t", Some(&["retention.ms"]), 1);
    assert_eq!(result.configs[0].value.as_deref(), Some("604800000"));
    assert_eq!(result.configs[0].config_source, 5);
    assert_eq!(
        result.configs[0].config_type, 0,
        "config_type exists from v3"
    );
}

#[test]
fn describe_configs_of_the_broker_lists_its_settings_with_their_sources() {
    let mut config = Config::default();
    config.set("num.partitions", "3").unwrap();
    let mut h = Harness::new(config);
    let result = h.describe_configs(4, "1", None, 4);
    assert_eq!(result.error_code, errors::NONE);
    let find = |name: &str| {
        let c = result
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name} is listed"));
        (
            c.value.as_ref().unwrap().to_string(),
            c.config_source,
            c.config_type,
        )
    };
    assert_eq!(find("node.id"), ("1".into(), 4, 3));
    assert_eq!(
        find("num.partitions"),
        ("3".into(), 4, 3),
        "set: STATIC_BROKER_CONFIG"
    );
    assert_eq!(find("auto.create.topics.enable"), ("true".into(), 5, 1));
    assert_eq!(find("default.replication.factor"), ("1".into(), 5, 3));
    assert_eq!(find("message.max.bytes"), ("1048588".into(), 5, 3));
    assert_eq!(find("log.dirs").0, "./spate-data");
    let read_only = |name: &str| {
        result
            .configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap()
            .read_only
    };
    assert!(read_only("node.id") && read_only("group.initial.rebalance.delay.ms"));
    assert!(!read_only("log.retention.ms") && !read_only("num.io.threads"));
    let cluster = h.describe_configs(4, "", None, 4);
    assert_eq!(cluster.error_code, errors::NONE);
    assert!(
        cluster.configs.is_empty(),
        "no cluster-wide dynamic defaults"
    );
    let other = h.describe_configs(4, "7", None, 4);
    assert_eq!(other.error_code, errors::INVALID_REQUEST);
    assert!(other.error_message.unwrap().contains("expected 1"));
    assert_eq!(
        h.describe_configs(4, "x", None, 4).error_code,
        errors::INVALID_REQUEST
    );
    assert_eq!(
        h.describe_configs(3, "g", None, 4).error_code,
        errors::INVALID_REQUEST
    );
}

#[test]
fn alter_configs_replaces_the_whole_override_set_and_survives_restart() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let set = [
        ("retention.ms", Some("1000")),
        ("segment.bytes", Some("1048576")),
    ];
    assert_eq!(h.alter_configs(2, "t", &set, false), (errors::NONE, None));
    assert_eq!(
        h.alter_configs(2, "t", &[("cleanup.policy", Some("compact"))], false)
            .0,
        errors::NONE
    );
    assert_eq!(h.topic_config("t", "cleanup.policy").0, "compact");
    assert_eq!(
        h.topic_config("t", "retention.ms").1,
        5,
        "left out of the new set: back to the default"
    );
    let mut h = h.restart(Config::default());
    assert_eq!(
        h.topic_config("t", "cleanup.policy"),
        (
            "compact".into(),
            1,
            7,
            vec![
                ("cleanup.policy".into(), 1),
                ("log.cleanup.policy".into(), 5)
            ]
        )
    );
    assert_eq!(h.topic_config("t", "segment.bytes").0, "1073741824");
}

#[test]
fn alter_configs_refuses_an_invalid_value_naming_the_key_and_changes_nothing() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (code, message) = h.alter_configs(
        2,
        "t",
        &[
            ("retention.ms", Some("5000")),
            ("segment.bytes", Some("big")),
        ],
        false,
    );
    assert_eq!(code, errors::INVALID_CONFIG);
    assert!(message.unwrap().contains("segment.bytes"));
    assert_eq!(h.topic_config("t", "retention.ms").1, 5, "nothing changed");
    let (code, message) = h.alter_configs(2, "t", &[("no.such", Some("1"))], false);
    assert_eq!(code, errors::INVALID_CONFIG);
    assert!(message.unwrap().contains("no.such"));
    assert_eq!(
        h.alter_configs(2, "nope", &[("retention.ms", Some("1"))], false)
            .0,
        errors::UNKNOWN_TOPIC_OR_PARTITION
    );
}

#[test]
fn alter_configs_validate_only_checks_and_changes_nothing() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    assert_eq!(
        h.alter_configs(2, "t", &[("retention.ms", Some("1000"))], true)
            .0,
        errors::NONE
    );
    assert_eq!(h.topic_config("t", "retention.ms").0, "604800000");
    assert_eq!(
        h.alter_configs(2, "t", &[("retention.ms", Some("x"))], true)
            .0,
        errors::INVALID_CONFIG
    );
    assert_eq!(
        h.incremental_alter(2, "t", &[("retention.ms", 0, Some("1000"))], true)
            .0,
        errors::NONE
    );
    assert_eq!(h.topic_config("t", "retention.ms").0, "604800000");
}

#[test]
fn alter_configs_answers_after_the_metadata_is_durable() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.hold_io = true;
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let resource = AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("t"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(text("retention.ms"))
            .with_value(Some(text("1000")))]);
    let request = AlterConfigsRequest::default().with_resources(vec![resource]);
    h.send(ADMIN, ApiKey::AlterConfigs, 2, &request);
    assert!(!h.has_response(ADMIN));
    assert!(h
        .held
        .iter()
        .any(|c| matches!(&c.op, IoOp::PersistMetadata { data } if String::from_utf8_lossy(data).contains("retention.ms=1000"))));
    h.release_io();
    let response: AlterConfigsResponse = h.response(ADMIN, ApiKey::AlterConfigs, 2);
    assert_eq!(response.responses[0].error_code, errors::NONE);
}

#[test]
fn incremental_alter_configs_sets_deletes_appends_and_subtracts() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let ops = [
        ("retention.ms", 0, Some("1000")),
        ("cleanup.policy", 2, Some("compact")),
    ];
    assert_eq!(
        h.incremental_alter(2, "t", &ops, false),
        (errors::NONE, None)
    );
    assert_eq!(h.topic_config("t", "retention.ms").0, "1000");
    assert_eq!(
        h.topic_config("t", "cleanup.policy").0,
        "delete,compact",
        "APPEND starts from the default"
    );
    assert_eq!(
        h.incremental_alter(2, "t", &[("cleanup.policy", 3, Some("delete"))], false)
            .0,
        errors::NONE
    );
    assert_eq!(h.topic_config("t", "cleanup.policy").0, "compact");
    assert_eq!(
        h.incremental_alter(2, "t", &[("retention.ms", 1, None)], false)
            .0,
        errors::NONE
    );
    assert_eq!(
        h.topic_config("t", "retention.ms"),
        (
            "604800000".into(),
            5,
            5,
            vec![("log.retention.hours".into(), 5)]
        )
    );
    // Issue 13: subtracting the last value leaves the empty list (Kafka 4.1+, KIP-1161: no
    // deletion, no compaction), not an error.
    assert_eq!(
        h.incremental_alter(2, "t", &[("cleanup.policy", 3, Some("compact"))], false),
        (errors::NONE, None)
    );
    assert_eq!(h.topic_config("t", "cleanup.policy").0, "");
    let (code, message) =
        h.incremental_alter(2, "t", &[("cleanup.policy", 2, Some("nope"))], false);
    assert_eq!(code, errors::INVALID_CONFIG);
    assert_eq!(
        message.as_deref(),
        Some("Invalid value nope for configuration cleanup.policy: String must be one of: compact, delete")
    );
    let h = h.restart(Config::default());
    assert_eq!(
        h.broker.topics["t"]
            .configs
            .get("cleanup.policy")
            .map(String::as_str),
        Some("")
    );
}

#[test]
fn incremental_append_to_a_non_list_config_is_invalid_config() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let (code, message) = h.incremental_alter(2, "t", &[("retention.ms", 2, Some("5"))], false);
    assert_eq!(code, errors::INVALID_CONFIG);
    assert!(message.unwrap().contains("retention.ms"));
    assert_eq!(
        h.incremental_alter(2, "t", &[("retention.ms", 9, Some("5"))], false)
            .0,
        errors::INVALID_REQUEST,
        "unknown operation"
    );
}

/// Topic configs Spate acts on at produce time (issue 13): `min.insync.replicas` above the
/// in-sync set (this node) refuses acks=all before appending, as Kafka does; CreateTime
/// timestamps outside `message.timestamp.before.max.ms` / `after.max.ms` are INVALID_TIMESTAMP.
#[test]
fn produce_honours_min_insync_replicas_and_timestamp_bounds() {
    use crate::batch::tests::make_batch_at;
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let now = h.now_ms;
    let configs = [
        ("min.insync.replicas", Some("2")),
        ("message.timestamp.before.max.ms", Some("60000")),
    ];
    assert_eq!(h.alter_configs(2, "t", &configs, false).0, errors::NONE);
    h.produce(1, "t", 0, -1, make_batch_at(&[b"a"], &[now]));
    assert_eq!(h.produce_result(1), (errors::NOT_ENOUGH_REPLICAS, -1));
    h.produce(1, "t", 0, 1, make_batch_at(&[b"a"], &[now]));
    assert_eq!(
        h.produce_result(1),
        (errors::NONE, 0),
        "acks=1 does not need the set"
    );
    // Kafka 4's default after.max.ms: one hour into the future at most.
    h.produce(1, "t", 0, 1, make_batch_at(&[b"b"], &[now + 3_600_001]));
    assert_eq!(h.produce_result(1).0, errors::INVALID_TIMESTAMP);
    h.produce(1, "t", 0, 1, make_batch_at(&[b"c"], &[now - 60_001]));
    assert_eq!(h.produce_result(1).0, errors::INVALID_TIMESTAMP);
    h.produce(1, "t", 0, 1, make_batch_at(&[b"d"], &[now - 59_999]));
    assert_eq!(h.produce_result(1), (errors::NONE, 1));
    // LogAppendTime topics stamp records themselves: any producer timestamp goes.
    let configs = [("message.timestamp.type", Some("LogAppendTime"))];
    assert_eq!(h.alter_configs(2, "t", &configs, false).0, errors::NONE);
    h.produce(1, "t", 0, -1, make_batch_at(&[b"e"], &[1]));
    assert_eq!(h.produce_result(1), (errors::NONE, 2));
}

/// Issue 13: Kafka's split of broker configs. Dynamic ones are accepted for this broker or as
/// the cluster default, persisted, described with their source, and topics inherit them;
/// read-only ones get Kafka's INVALID_REQUEST.
#[test]
fn dynamic_broker_configs_are_kept_described_and_inherited_while_read_only_ones_are_refused() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    for name in ["1", ""] {
        let (code, message) = h.alter_configs(4, name, &[("num.partitions", Some("3"))], false);
        assert_eq!(code, errors::INVALID_REQUEST);
        assert_eq!(
            message.as_deref(),
            Some("Cannot update these configs dynamically: Set(num.partitions)")
        );
        let (code, _) = h.incremental_alter(4, name, &[("num.partitions", 0, Some("3"))], false);
        assert_eq!(code, errors::INVALID_REQUEST);
    }
    assert_eq!(
        h.incremental_alter(4, "2", &[("num.partitions", 0, Some("3"))], false)
            .0,
        errors::INVALID_REQUEST,
        "another broker's id"
    );
    // The cluster default, then this broker's own value, which wins.
    let ops = [
        ("log.retention.ms", 0, Some("5000")),
        ("num.io.threads", 0, Some("4")),
    ];
    assert_eq!(
        h.incremental_alter(4, "", &ops, false),
        (errors::NONE, None)
    );
    let relogin = [("sasl.kerberos.min.time.before.relogin", 0, Some("1000"))];
    assert_eq!(
        h.incremental_alter(4, "1", &relogin, false),
        (errors::NONE, None)
    );
    assert_eq!(
        h.incremental_alter(4, "1", &[("log.retention.ms", 0, Some("7000"))], false),
        (errors::NONE, None)
    );
    // A per-broker config cannot be a cluster default.
    assert_eq!(
        h.incremental_alter(4, "", &relogin, false).0,
        errors::INVALID_REQUEST
    );
    let topic = h.topic_config("t", "retention.ms");
    assert_eq!(
        (topic.0.as_str(), topic.1),
        ("7000", 2),
        "DYNAMIC_BROKER_CONFIG"
    );
    assert_eq!(h.broker.topics["t"].config_i64("retention.ms"), 7000);
    let broker = h.describe_configs(4, "1", Some(&["log.retention.ms"]), 4);
    assert_eq!(broker.configs[0].value.as_deref(), Some("7000"));
    let synonyms: Vec<(String, i8)> = broker.configs[0]
        .synonyms
        .iter()
        .map(|s| (s.value.as_deref().unwrap_or_default().to_string(), s.source))
        .collect();
    assert_eq!(synonyms, vec![("7000".into(), 2), ("5000".into(), 3)]);
    let cluster = h.describe_configs(4, "", None, 4);
    let names: Vec<&str> = cluster.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["log.retention.ms", "num.io.threads"]);
    assert!(cluster.configs.iter().all(|c| c.config_source == 3));
    // Deleting this broker's value falls back to the cluster default; all of it survives a
    // restart.
    assert_eq!(
        h.incremental_alter(4, "1", &[("log.retention.ms", 1, None)], false),
        (errors::NONE, None)
    );
    let h = h.restart(Config::default());
    assert_eq!(h.broker.topics["t"].config_i64("retention.ms"), 5000);
    assert_eq!(
        h.broker
            .broker_configs
            .dynamic_node
            .get("sasl.kerberos.min.time.before.relogin"),
        Some(&"1000".to_string())
    );
}

#[test]
fn repeated_resources_null_values_and_repeated_keys_are_invalid_requests() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let resource = incremental::AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(text("t"));
    let request =
        IncrementalAlterConfigsRequest::default().with_resources(vec![resource.clone(), resource]);
    h.send(ADMIN, ApiKey::IncrementalAlterConfigs, 1, &request);
    let response: IncrementalAlterConfigsResponse =
        h.response(ADMIN, ApiKey::IncrementalAlterConfigs, 1);
    assert!(response
        .responses
        .iter()
        .all(|r| r.error_code == errors::INVALID_REQUEST));
    let (code, message) = h.alter_configs(2, "t", &[("retention.ms", None)], false);
    assert_eq!(code, errors::INVALID_REQUEST);
    assert_eq!(
        message.as_deref(),
        Some("Null value not supported for : retention.ms")
    );
    let twice = [
        ("retention.ms", 0, Some("1")),
        ("retention.ms", 0, Some("2")),
    ];
    assert_eq!(
        h.incremental_alter(2, "t", &twice, false).0,
        errors::INVALID_REQUEST
    );
}

#[test]
fn an_altered_max_message_bytes_is_enforced_at_produce_time() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 1);
    assert_eq!(
        h.incremental_alter(2, "t", &[("max.message.bytes", 0, Some("100"))], false)
            .0,
        errors::NONE
    );
    h.produce(1, "t", 0, -1, make_batch(&[&[7u8; 200]], 5));
    assert_eq!(h.produce_result(1).0, errors::MESSAGE_TOO_LARGE);
}

#[test]
fn an_altered_timestamp_type_stamps_log_append_time() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let ops = [("message.timestamp.type", 0, Some("LogAppendTime"))];
    assert_eq!(h.incremental_alter(2, "t", &ops, false).0, errors::NONE);
    h.produce(1, "t", 0, -1, make_batch(&[b"a"], 5));
    let response: ProduceResponse = h.response(1, ApiKey::Produce, 9);
    assert_eq!(
        response.responses[0].partition_responses[0].log_append_time_ms,
        h.now_ms
    );
}
