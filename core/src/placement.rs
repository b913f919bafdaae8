//! Which shard serves what: the control shard, the owner of each partition, and which APIs
//! name partitions. The broker asks it which partitions are its own; the router, where to send
//! a request.

use kafka_protocol::messages::ApiKey;

/// The shard that runs the control plane: topics, groups, configs, producer ids.
pub const CONTROL_SHARD: usize = 0;

/// The shard that owns a partition among `shards`. A topic's partitions go round the shards
/// from a starting shard drawn from its name, so every topic spreads evenly; the group
/// coordinator's topic stays with the control shard.
pub fn owner(topic: &str, partition: i32, shards: usize) -> usize {
    if shards <= 1 || topic == crate::groups::OFFSETS_TOPIC {
        return CONTROL_SHARD;
    }
    // FNV-1a: fixed, so the same partition has the same owner in every run.
    let start = topic.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    ((start % shards as u64 + u64::from(partition.unsigned_abs())) % shards as u64) as usize
}

/// Whether requests of this API name partitions, and so go to the shards that own them.
pub fn is_partition_api(api_key: ApiKey) -> bool {
    matches!(
        api_key,
        ApiKey::Produce
            | ApiKey::Fetch
            | ApiKey::ListOffsets
            | ApiKey::DeleteRecords
            | ApiKey::OffsetForLeaderEpoch
            | ApiKey::DescribeLogDirs
    )
}
