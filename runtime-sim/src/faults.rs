//! The fault parameters of a run, all derived from its seed and printed at its start.

use crate::client::Micros;
use crate::rng::Stream;
use std::fmt;

#[derive(Debug, Clone)]
pub struct Faults {
    pub partitions: i32,
    /// (acks, idempotent) per producer.
    pub producers: Vec<(i16, bool)>,
    pub consumers: usize,
    /// Members of the consumer group "workers" (0 for none).
    pub group_members: usize,
    /// `group.initial.rebalance.delay.ms`: Kafka's 3 s, or the 0 test setups often use.
    pub initial_rebalance_delay_ms: i64,
    /// How the group's members behave.
    pub group: GroupProfile,
    pub tail_cache_bytes: usize,
    /// The workload topic's `segment.bytes` and `index.interval.bytes`, when small segments
    /// are exercised (rolls, sealing, recovery from index files).
    pub segments: Option<(u64, u64)>,
    /// The workload topic's relaxed flush policy (`flush.messages`, `flush.ms`), when one is
    /// exercised: records are visible once written, and a crash (this disk loses what was not
    /// synced) may take back records consumers read; acks=all must still hold. Only on seeds
    /// without a consumer group: a crash that takes back records moves group members back too,
    /// which the group-commit checker (monotonic commits) does not model.
    pub flush: Option<(i64, i64)>,
    /// A second, compacted workload topic (`table`, one partition): its `segment.bytes`, and
    /// how many keys its producer writes.
    pub compacted: Option<(u64, u64)>,
    /// The node's shards (thread-per-core): one broker each behind one router, their
    /// messages to each other delivered in order after `shard_hop_us`.
    pub shards: usize,
    pub shard_hop_us: (Micros, Micros),
    pub latency_us: (Micros, Micros),
    pub latency_spike_per_mille: u64,
    /// A lost message breaks its connection (TCP), so the client retries on a new one.
    pub drop_per_mille: u64,
    pub partitions_cut: u32,
    pub write_us: (Micros, Micros),
    pub fsync_us: (Micros, Micros),
    pub read_us: (Micros, Micros),
    /// Mean time between crashes; 0 for none.
    pub crash_mean_ms: u64,
    /// Crashes while an fsync is in flight, per thousand fsyncs: the moment the durability
    /// contract is about.
    pub crash_in_fsync_per_mille: u64,
    /// Crashes just after a write was acknowledged (Produce, OffsetCommit, topic changes), per
    /// thousand such answers: whatever was acknowledged must already be durable.
    pub crash_after_ack_per_mille: u64,
    pub bitrot_per_mille: u64,
    pub disk_full_windows: u32,
    pub clock_jumps: u32,
}

/// The group members' settings and habits, from their own stream of the seed.
#[derive(Debug, Clone)]
pub struct GroupProfile {
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// The rebalance timeout (`max.poll.interval.ms`): often longer than the session, so a
    /// member may wait in JoinGroup past its session timeout while another is slow to rejoin.
    pub rebalance_timeout_ms: i32,
    /// Members have a `group.instance.id` (KIP-345): they do not leave when they stop, and
    /// come back into their old place.
    pub static_members: bool,
    /// In the fault phase, per thousand rebalances a member sees, its application is slow to
    /// poll: it keeps heartbeating but rejoins only after up to 1.5 rebalance timeouts (past
    /// the timeout, the coordinator drops it and it joins again as new).
    pub slow_rejoin_per_mille: u64,
    /// Member `i` starts `i` times this late, so later members join a group already formed.
    pub join_stagger_us: Micros,
}

impl Faults {
    pub(crate) fn disk_times(&self) -> crate::disk_io::DiskTimes {
        crate::disk_io::DiskTimes {
            write_us: self.write_us,
            fsync_us: self.fsync_us,
            read_us: self.read_us,
        }
    }
}

impl GroupProfile {
    fn derive(seed: u64) -> GroupProfile {
        let mut rng = Stream::derive(seed, "group");
        let (session_timeout_ms, rebalance_timeout_ms) = *rng.pick(&[
            (10_000, 10_000),
            (6_000, 20_000),
            (6_000, 10_000),
            (10_000, 30_000),
        ]);
        GroupProfile {
            session_timeout_ms,
            rebalance_timeout_ms,
            static_members: rng.chance(300),
            slow_rejoin_per_mille: *rng.pick(&[0, 300, 700]),
            join_stagger_us: *rng.pick(&[0, 500_000, 4_000_000]),
        }
    }
}

impl Faults {
    pub fn derive(seed: u64, enabled: bool) -> Faults {
        let mut rng = Stream::derive(seed, "faults");
        let producers = (0..rng.range(1, 4))
            .map(|_| (*rng.pick(&[-1i16, -1, 1, 0]), rng.chance(500)))
            .collect();
        let mut faults = Faults {
            partitions: rng.range(1, 4) as i32,
            producers,
            consumers: rng.range(1, 3) as usize,
            group_members: rng.range(0, 3) as usize,
            initial_rebalance_delay_ms: *rng.pick(&[0, 300, 3_000]),
            group: GroupProfile::derive(seed),
            tail_cache_bytes: *rng.pick(&[1usize, 4096, 64 * 1024, 4 << 20]),
            // Its own stream, so the other parameters of a seed stay what they were.
            segments: {
                let mut storage = Stream::derive(seed, "storage");
                *storage.pick(&[
                    None,
                    Some((8_192, 512)),
                    Some((32_768, 2_048)),
                    Some((1 << 20, 4_096)),
                ])
            },
            flush: {
                let mut flush = Stream::derive(seed, "flush");
                flush.chance(500).then(|| {
                    (
                        *flush.pick(&[2i64, 10, 100]),
                        *flush.pick(&[1i64, 50, 1_000]),
                    )
                })
            },
            compacted: {
                let mut table = Stream::derive(seed, "compaction");
                table.chance(500).then(|| {
                    (
                        *table.pick(&[4_096u64, 16_384]),
                        *table.pick(&[3u64, 30, 300]),
                    )
                })
            },
            shards: {
                let mut shards = Stream::derive(seed, "shards");
                *shards.pick(&[1usize, 1, 2, 3])
            },
            shard_hop_us: {
                let mut hops = Stream::derive(seed, "shard-hops");
                (hops.range(1, 20), hops.range(20, 2_000))
            },
            latency_us: (rng.range(50, 500), rng.range(1_000, 10_000)),
            latency_spike_per_mille: 0,
            drop_per_mille: 0,
            partitions_cut: 0,
            write_us: (rng.range(10, 100), rng.range(200, 2_000)),
            fsync_us: (rng.range(200, 1_000), rng.range(1_000, 10_000)),
            read_us: (rng.range(20, 100), rng.range(100, 1_000)),
            crash_mean_ms: 0,
            crash_in_fsync_per_mille: 0,
            crash_after_ack_per_mille: 0,
            bitrot_per_mille: 0,
            disk_full_windows: 0,
            clock_jumps: 0,
        };
        if faults.group_members > 0 {
            faults.flush = None;
        }
        if enabled {
            faults.latency_spike_per_mille = rng.range(0, 50);
            faults.drop_per_mille = rng.range(0, 20);
            faults.partitions_cut = rng.range(0, 3) as u32;
            faults.crash_mean_ms = *rng.pick(&[0, 1_000, 2_500, 5_000]);
            faults.crash_in_fsync_per_mille = *rng.pick(&[0, 3, 10, 30]);
            faults.crash_after_ack_per_mille = *rng.pick(&[0, 5, 20, 50]);
            faults.bitrot_per_mille = rng.range(0, 50);
            faults.disk_full_windows = rng.range(0, 2) as u32;
            faults.clock_jumps = rng.range(0, 3) as u32;
        }
        faults
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let producers: Vec<String> = self
            .producers
            .iter()
            .map(|(acks, idempotent)| {
                format!(
                    "acks={acks}{}",
                    if *idempotent { "+idempotent" } else { "" }
                )
            })
            .collect();
        writeln!(
            f,
            "  workload: 1 topic x {} partitions, producers [{}], {} consumers, {} group members (initial rebalance delay {} ms), tail cache {} B",
            self.partitions,
            producers.join(", "),
            self.consumers,
            self.group_members,
            self.initial_rebalance_delay_ms,
            self.tail_cache_bytes
        )?;
        if self.group_members > 0 {
            let g = &self.group;
            writeln!(
                f,
                "  group:    session {} ms, rebalance timeout {} ms, {} members, slow rejoins {}/1000, joins {} us apart",
                g.session_timeout_ms,
                g.rebalance_timeout_ms,
                if g.static_members { "static" } else { "dynamic" },
                g.slow_rejoin_per_mille,
                g.join_stagger_us
            )?;
        }
        if self.shards > 1 {
            writeln!(
                f,
                "  shards:   {} (messages between them in {}-{} us)",
                self.shards, self.shard_hop_us.0, self.shard_hop_us.1
            )?;
        }
        if let Some((segment_bytes, interval)) = self.segments {
            writeln!(
                f,
                "  storage:  segment.bytes {segment_bytes}, index.interval.bytes {interval}"
            )?;
        }
        if let Some((segment_bytes, keys)) = self.compacted {
            writeln!(
                f,
                "  compacted: topic table, segment.bytes {segment_bytes}, {keys} keys"
            )?;
        }
        if let Some((messages, ms)) = self.flush {
            writeln!(f, "  flush:    flush.messages {messages}, flush.ms {ms}")?;
        }
        writeln!(
            f,
            "  network:  latency {}..{} us, spikes {}/1000, loss {}/1000, partitions {}",
            self.latency_us.0,
            self.latency_us.1,
            self.latency_spike_per_mille,
            self.drop_per_mille,
            self.partitions_cut
        )?;
        writeln!(f, "  disk:     write {}..{} us, fsync {}..{} us, read {}..{} us, bit rot {}/1000 reads, full-disk windows {}",
            self.write_us.0, self.write_us.1, self.fsync_us.0, self.fsync_us.1, self.read_us.0, self.read_us.1,
            self.bitrot_per_mille, self.disk_full_windows)?;
        write!(
            f,
            "  process:  crash every ~{} ms (0 = never), in {}/1000 fsyncs, after {}/1000 acks; clock jumps {}",
            self.crash_mean_ms, self.crash_in_fsync_per_mille, self.crash_after_ack_per_mille, self.clock_jumps
        )
    }
}
