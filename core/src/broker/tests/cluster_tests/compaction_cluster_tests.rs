//! Log compaction on a cluster of harnesses: every replica cleans its own log, and a follower
//! that was away copies its leader's cleaned log, holes and all, to the same latest values.

use super::*;
use crate::broker::tests::compaction_tests::keyed_batch;
use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

/// Every record of partition 0 of `topic` on `h`'s disk: (offset, key, value), in order.
fn records_on_disk(h: &Harness, topic: &str) -> Vec<(i64, String, String)> {
    let dir = format!("{}/0/", h.broker.topics[topic].dir_name());
    let mut records = Vec::new();
    for (path, data) in &h.disk.files {
        if !path.starts_with(&dir) || !path.ends_with(".log") {
            continue;
        }
        let mut position = 0;
        while let Ok(info) = batch::validate_stored(&data[position..]) {
            let mut one = Bytes::copy_from_slice(&data[position..position + info.size_bytes]);
            position += info.size_bytes;
            let text = |b: &Bytes| String::from_utf8(b.to_vec()).unwrap();
            for r in RecordBatchDecoder::decode(&mut one).unwrap().records {
                records.push((
                    r.offset,
                    text(r.key.as_ref().unwrap()),
                    text(r.value.as_ref().unwrap()),
                ));
            }
        }
    }
    records
}

fn latest(records: &[(i64, String, String)]) -> BTreeMap<String, (i64, String)> {
    records
        .iter()
        .map(|(o, k, v)| (k.clone(), (*o, v.clone())))
        .collect()
}

#[test]
fn every_replica_cleans_and_a_returning_follower_copies_the_cleaned_log() {
    let mut cluster = Nodes::start_configured(3, 3, 720, None, |c| {
        c.tail_cache_bytes_per_partition = 1;
        c.cleaner.backoff_ms = 100;
        c.replica_lag_time_max_ms = 1_000;
    });
    let active = cluster.active();
    let mut request = create_topic("c", 1, 3);
    request.topics[0].configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "2000"),
        ("min.cleanable.dirty.ratio", "0.3"),
    ]
    .iter()
    .map(|(k, v)| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str(k))
            .with_value(Some(StrBytes::from_static_str(v)))
    })
    .collect();
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &request);
    cluster.run(1_000);
    let l = (leaders(&cluster.nodes[0], "c")[0] - 1) as usize;
    let away = (l + 1) % 3;
    let produce = |cluster: &mut Nodes, i: usize, acks: i16| {
        let key = format!("k{}", i % 6);
        let value = format!("v{i}");
        let batch = keyed_batch(&[(&key, Some(&value))], 1_000, Compression::None);
        cluster.nodes[l].produce(1, "c", 0, acks, batch);
        cluster.run(40);
        assert_eq!(cluster.nodes[l].produce_result(1), (errors::NONE, i as i64));
    };
    // Seven records everywhere, then one follower goes away while 300 more come.
    for i in 0..7 {
        produce(&mut cluster, i, -1);
    }
    cluster.down.insert(away);
    cluster.run(2_000);
    for i in 7..307 {
        produce(&mut cluster, i, 1);
    }
    cluster.run(3_000);
    let leader_records = records_on_disk(&cluster.nodes[l], "c");
    assert!(
        leader_records.len() < 100,
        "the leader cleaned: {} records left",
        leader_records.len()
    );
    let expected = latest(&leader_records);
    assert_eq!(expected.len(), 6);
    for k in 0..6 {
        let newest = (0..307).rev().find(|i| i % 6 == k).unwrap();
        assert_eq!(
            expected[&format!("k{k}")],
            (newest as i64, format!("v{newest}"))
        );
    }

    // The follower comes back: its log ends at 7, inside what the leader removed.
    cluster.restart(away, 721);
    cluster.run(8_000);
    for (i, h) in cluster.nodes.iter().enumerate() {
        let log = &h.broker.topics["c"].partitions[0].log;
        assert_eq!(log.log_end_offset(), 307, "node {}", i + 1);
        let records = records_on_disk(h, "c");
        assert_eq!(latest(&records), expected, "node {}", i + 1);
        let offsets: Vec<i64> = records.iter().map(|r| r.0).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "node {}: {offsets:?}",
            i + 1
        );
    }
    let image = cluster.nodes[l].broker.metadata_image().unwrap();
    assert_eq!(
        image.topics["c"].partitions[0].in_sync.len(),
        3,
        "back in sync"
    );
}
