//! Follower fetching (KIP-392) on a cluster of harnesses: a follower serves a consumer's
//! Fetch of v11 or later up to its own high watermark; with Kafka's rack-aware replica
//! selector a leader sends a consumer that names its rack to an in-sync replica in that rack.

use super::*;
use kafka_protocol::messages::fetch_response::PartitionData;

/// Fetch of `version` for partition 0 of `topic` from `offset`, naming `rack` (v11+).
fn fetch_as(h: &mut Harness, conn: ConnId, topic: &str, offset: i64, version: i16, rack: &str) {
    h.fetch_as(conn, (topic, offset, 0), version, rack);
}

fn answered(h: &mut Harness, conn: ConnId, version: i16) -> PartitionData {
    let response: FetchResponse = h.response(conn, ApiKey::Fetch, version);
    response.responses[0].partitions[0].clone()
}

fn offsets(data: &PartitionData) -> Vec<i64> {
    data.records.as_ref().map(offsets_in).unwrap_or_default()
}

#[test]
fn followers_serve_consumers_up_to_their_high_watermark_and_leaders_send_them_to_their_rack() {
    let rack = |node: i32| ["a", "b", "c"][node as usize - 1].to_string();
    let mut cluster = Nodes::start_configured(3, 3, 500, None, |c| {
        c.rack = Some(rack(c.node_id));
        c.rack_aware_reads = true;
    });
    let active = cluster.active();
    cluster.nodes[active].send(9, ApiKey::CreateTopics, 7, &create_topic("f", 1, 3));
    cluster.run(1_000);
    let leader = leaders(&cluster.nodes[0], "f")[0];
    let l = (leader - 1) as usize;
    let f = (l + 1) % 3;
    let follower = f as i32 + 1;
    cluster.nodes[l].produce(1, "f", 0, -1, make_batch(&[b"a", b"b"], 5));
    cluster.run(1_000);
    assert_eq!(cluster.nodes[l].produce_result(1), (errors::NONE, 0));

    // A follower serves a v11 consumer in a rack what is committed; an older fetch, or one
    // naming no rack (a client that does not expect followers), goes to the leader.
    let h = &mut cluster.nodes[f];
    let near = rack(follower);
    fetch_as(h, 2, "f", 0, 11, &near);
    let data = answered(h, 2, 11);
    assert_eq!((data.error_code, data.high_watermark), (errors::NONE, 2));
    assert_eq!(offsets(&data), vec![0], "one batch of two records");
    assert_eq!(data.preferred_read_replica.0, -1);
    fetch_as(h, 3, "f", 0, 10, &near);
    assert_eq!(
        answered(h, 3, 10).error_code,
        errors::NOT_LEADER_OR_FOLLOWER
    );
    fetch_as(h, 3, "f", 0, 12, "");
    assert_eq!(
        answered(h, 3, 12).error_code,
        errors::NOT_LEADER_OR_FOLLOWER
    );
    fetch_as(h, 4, "f", 5, 11, &near);
    assert_eq!(
        answered(h, 4, 11).error_code,
        errors::NOT_LEADER_OR_FOLLOWER,
        "beyond the follower's log: the leader decides whether that is out of range"
    );

    // The leader sends a consumer of the follower's rack there, with no records.
    let h = &mut cluster.nodes[l];
    fetch_as(h, 5, "f", 0, 12, &rack(follower));
    let data = answered(h, 5, 12);
    assert_eq!(data.error_code, errors::NONE);
    assert_eq!(data.preferred_read_replica.0, follower);
    assert!(offsets(&data).is_empty());
    // Its own rack, or a rack of none, is served here.
    for (conn, asked) in [(6, rack(leader)), (7, "elsewhere".to_string())] {
        fetch_as(h, conn, "f", 0, 12, &asked);
        let data = answered(h, conn, 12);
        assert_eq!(data.preferred_read_replica.0, -1, "{asked}");
        assert_eq!(offsets(&data), vec![0], "{asked}");
    }
    // A follower in the rack that is not in sync is not chosen.
    cluster.down.insert(f);
    cluster.run(5_000);
    let h = &mut cluster.nodes[l];
    fetch_as(h, 8, "f", 0, 12, &rack(follower));
    let data = answered(h, 8, 12);
    assert_eq!(data.preferred_read_replica.0, -1);
    assert_eq!(offsets(&data), vec![0]);
}
