//! Fetch (key 1): read committed batches from each partition asked for, from the tail cache or
//! the disk, and wait up to `max_wait_ms` for `min_bytes` when there is too little.

use super::apis::{api, Api};
use super::offset_for_leader_epoch::check_current_epoch;
use super::{Broker, InFlight, RequestContext};
use crate::errors;
use crate::io::{ConnId, IoOp, IoResult, Level, SegmentFile};
use crate::log::{DiskRead, ReadOutcome, ReadPlan};
use crate::replica::{NodeId, Role};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};

/// One partition of a fetch.
struct Slot {
    topic_index: usize,
    name: TopicName,
    partition: i32,
    fetch_offset: i64,
    /// The leader epoch the consumer believes current (-1: unchecked).
    current_leader_epoch: i32,
    /// A follower's fetch: the epoch of its last batch (-1: none, or unchecked).
    last_fetched_epoch: i32,
    /// A follower's log diverges from the leader's after this (epoch, end offset): it is
    /// told so instead of given records (KIP-320).
    diverging: Option<(i32, i64)>,
    max_bytes: i32,
    data: PartitionData,
    batches: Vec<Bytes>,
    /// The disk read in flight, if any.
    reading: Option<DiskRead>,
}

/// A fetch waiting for data (parked) or for its disk reads.
pub(super) struct PendingFetch {
    ctx: RequestContext,
    deadline_ms: i64,
    min_bytes: i32,
    max_bytes: i32,
    parked: bool,
    reads_outstanding: usize,
    slots: Vec<Slot>,
    /// A follower replica's fetch (its node id): it reads what the leader has written,
    /// committed or not, and is woken by writes.
    replica: Option<crate::replica::NodeId>,
    /// A consumer's rack, if its fetch (v11+) names one: followers may serve it (KIP-392),
    /// and a leader may send it to a replica in that rack.
    consumer_rack: Option<String>,
}

/// Who reads a partition, for what it may be served.
#[derive(Clone, Copy)]
enum Reader<'a> {
    /// A follower replica: only from the leader, what it has written.
    Replica(NodeId),
    /// A consumer before Fetch v11, or one that names no rack: only from the leader.
    LeaderOnly,
    /// A consumer of v11+ in a rack: from the leader, or a follower up to its high watermark.
    Consumer { rack: &'a str },
}

impl Slot {
    /// Stands in for a slot taken out of its fetch for a moment.
    fn placeholder() -> Slot {
        Slot {
            topic_index: 0,
            name: TopicName::default(),
            partition: -1,
            fetch_offset: -1,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            diverging: None,
            max_bytes: 0,
            data: PartitionData::default(),
            batches: Vec::new(),
            reading: None,
        }
    }
}

impl PendingFetch {
    pub(super) fn conn(&self) -> ConnId {
        self.ctx.conn
    }
    pub(super) fn parked_deadline_ms(&self) -> Option<i64> {
        self.parked.then_some(self.deadline_ms)
    }
    pub(super) fn is_replica(&self) -> bool {
        self.replica.is_some()
    }
}

/// Versions served, and the adapter.
pub(super) const API: Api = api!(Fetch, 4..=12, Broker::on_fetch);

impl Broker {
    pub(super) fn on_fetch(&mut self, ctx: &RequestContext, request: FetchRequest) {
        let mut slots = Vec::new();
        for (topic_index, topic) in request.topics.iter().enumerate() {
            for partition in &topic.partitions {
                slots.push(Slot {
                    topic_index,
                    name: topic.topic.clone(),
                    partition: partition.partition,
                    fetch_offset: partition.fetch_offset,
                    current_leader_epoch: partition.current_leader_epoch,
                    last_fetched_epoch: match ctx.version >= 12 {
                        true => partition.last_fetched_epoch,
                        false => -1,
                    },
                    diverging: None,
                    max_bytes: partition.partition_max_bytes,
                    data: PartitionData::default(),
                    batches: Vec::new(),
                    reading: None,
                });
            }
        }
        let fetch = PendingFetch {
            ctx: ctx.clone(),
            deadline_ms: ctx.now_ms + i64::from(request.max_wait_ms.max(0)),
            min_bytes: request.min_bytes,
            max_bytes: if request.max_bytes > 0 {
                request.max_bytes
            } else {
                i32::MAX
            },
            parked: false,
            reads_outstanding: 0,
            slots,
            replica: (request.replica_id.0 >= 0).then_some(request.replica_id.0),
            // Only a consumer that names its rack reads from followers: it knows it may be
            // sent to one (and that a follower's high watermark lags). Any other, with stale
            // metadata, is sent to the leader as before, so the high watermark it sees never
            // goes back.
            consumer_rack: (ctx.version >= 11
                && request.replica_id.0 < 0
                && !request.rack_id.is_empty())
            .then(|| request.rack_id.to_string()),
        };
        let mut fetch = fetch;
        if let Some(member) = fetch.replica {
            self.on_replica_fetch(ctx.now_ms, member, &mut fetch.slots);
        }
        let id = self.next_fetch;
        self.next_fetch += 1;
        self.evaluate_fetch(id, fetch, ctx.now_ms);
    }

    /// A follower's fetch arrived: for each partition this shard leads it is a replica of,
    /// its log is checked against the leader's epochs (KIP-320: where it diverges it is told
    /// so), and else its fetch offset is what it holds on disk, so the high watermark may
    /// move and acks=all produces complete.
    fn on_replica_fetch(
        &mut self,
        now_ms: i64,
        member: crate::replica::NodeId,
        slots: &mut [Slot],
    ) {
        let mut progressed = Vec::new();
        for slot in slots.iter_mut() {
            let owned =
                crate::placement::owner(slot.name.0.as_str(), slot.partition, self.config.shards)
                    == self.config.shard;
            let Some(topic) = self.topics.get_mut(slot.name.0.as_str()).filter(|_| owned) else {
                continue;
            };
            let id = topic.id;
            let Some(partition) = usize::try_from(slot.partition)
                .ok()
                .and_then(|i| topic.partitions.get_mut(i))
            else {
                continue;
            };
            if !partition.replica.is_leader()
                || !partition.replica.replicas().contains(&member)
                || check_current_epoch(slot.current_leader_epoch, partition.replica.leader_epoch())
                    .is_err()
            {
                continue; // answered with the error when read
            }
            if slot.last_fetched_epoch >= 0 {
                let (epoch, end) = partition.epoch_end_for_replica(slot.last_fetched_epoch);
                if epoch != slot.last_fetched_epoch || end < slot.fetch_offset {
                    slot.diverging = Some((epoch, end));
                    continue;
                }
            }
            let leader_end = partition.log.log_end_offset();
            if slot.fetch_offset > leader_end
                || slot.fetch_offset < partition.log.log_start_offset()
            {
                continue; // out of range, answered when read
            }
            partition
                .replica
                .handle_fetch(member, slot.fetch_offset, leader_end, now_ms);
            progressed.push((id, slot.partition));
        }
        for (id, partition) in progressed {
            self.on_partition_progress(now_ms, id, partition);
            self.check_in_sync(now_ms, id, partition);
        }
    }

    /// Reads what each partition has; answers, parks, or waits for disk reads.
    fn evaluate_fetch(&mut self, id: u64, mut fetch: PendingFetch, now_ms: i64) {
        let mut remaining = i64::from(fetch.max_bytes);
        let mut total = 0i64;
        for slot_index in 0..fetch.slots.len() {
            let slot = &mut fetch.slots[slot_index];
            slot.batches.clear();
            slot.data = PartitionData::default().with_partition_index(slot.partition);
            let limit = remaining.min(i64::from(slot.max_bytes.max(0)));
            let reader = match (fetch.replica, &fetch.consumer_rack) {
                (Some(member), _) => Reader::Replica(member),
                (None, Some(rack)) => Reader::Consumer { rack },
                (None, None) => Reader::LeaderOnly,
            };
            let Some(plan) = self.plan_read(slot, limit, reader) else {
                continue;
            };
            match plan {
                ReadPlan::OutOfRange => slot.data.error_code = errors::OFFSET_OUT_OF_RANGE,
                ReadPlan::Empty => {}
                ReadPlan::Cached(batches) => {
                    let size: usize = batches.iter().map(Bytes::len).sum();
                    total += size as i64;
                    remaining -= size as i64;
                    slot.batches = batches;
                }
                ReadPlan::Disk(read) => {
                    let expected = (read.len as i64).min(limit);
                    total += expected;
                    remaining -= expected;
                    fetch.reads_outstanding += 1;
                    self.issue_fetch_read(id, slot_index, slot, read);
                }
            }
        }
        fetch.parked = false;
        // An error or a divergence is answered at once, as Kafka does.
        let troubled = fetch
            .slots
            .iter()
            .any(|s| s.data.error_code != errors::NONE || s.diverging.is_some());
        if fetch.reads_outstanding > 0 {
            self.fetches.insert(id, fetch);
        } else if troubled || total >= i64::from(fetch.min_bytes) || now_ms >= fetch.deadline_ms {
            self.answer_fetch(fetch);
        } else {
            fetch.parked = true;
            self.fetches.insert(id, fetch);
        }
    }

    fn issue_fetch_read(&mut self, id: u64, slot_index: usize, slot: &mut Slot, read: DiskRead) {
        let file = SegmentFile {
            topic_dir: self.topics[slot.name.0.as_str()].dir_name(),
            partition: slot.partition,
            base_offset: read.segment_base_offset,
        };
        let op = IoOp::Read {
            file,
            position: read.position,
            len: read.len,
        };
        slot.reading = Some(read);
        self.issue(
            op,
            InFlight::Read {
                fetch: id,
                slot: slot_index,
            },
        );
    }

    /// Fills the slot's offsets and error; the read to do, if the partition can be read.
    fn plan_read(&mut self, slot: &mut Slot, limit: i64, reader: Reader) -> Option<ReadPlan> {
        let elsewhere = match reader {
            Reader::Consumer { rack } => self.preferred_read_replica(slot, rack),
            _ => None,
        };
        let truncating = self.is_truncating(slot.name.0.as_str(), slot.partition);
        let Some(topic) = self.topics.get_mut(slot.name.0.as_str()) else {
            slot.data.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
            return None;
        };
        let Some(partition) = topic
            .partitions
            .get_mut(slot.partition as usize)
            .filter(|_| slot.partition >= 0)
        else {
            slot.data.error_code = errors::UNKNOWN_TOPIC_OR_PARTITION;
            return None;
        };
        // A new leader serves consumers once its high watermark reaches the start of its
        // epoch (KIP-207): below it, it could show less than an earlier leader did.
        // A follower serves consumers that may fetch from one (KIP-392) up to its own high
        // watermark, unless its log is being cut back to its leader's.
        let follows = matches!(partition.replica.role(), Role::Follower { leader } if leader >= 0);
        let serves = match reader {
            Reader::Replica(_) => partition.replica.is_leader(),
            Reader::LeaderOnly => partition.replica.serves_consumers(),
            Reader::Consumer { .. } => {
                partition.replica.serves_consumers() || (follows && !truncating)
            }
        };
        if crate::placement::owner(&topic.name, slot.partition, self.config.shards)
            != self.config.shard
            || !serves
        {
            slot.data.error_code = errors::NOT_LEADER_OR_FOLLOWER;
            return None;
        }
        if self.offline.contains(&(topic.id, slot.partition)) {
            slot.data.error_code = errors::KAFKA_STORAGE_ERROR;
            return None;
        }
        let leader_epoch = partition.replica.leader_epoch();
        let checked = check_current_epoch(slot.current_leader_epoch, leader_epoch);
        if let Err(code) = checked {
            slot.data.error_code = code;
            return None;
        }
        slot.data.high_watermark = partition.high_watermark();
        slot.data.last_stable_offset = partition.high_watermark();
        slot.data.log_start_offset = partition.log.log_start_offset();
        if let Some((epoch, end_offset)) = slot.diverging {
            slot.data.diverging_epoch = EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset);
            return None;
        }
        if let Some(node) = elsewhere {
            // Fetch from this replica from now on (the client does until its metadata or the
            // replica tells it otherwise): no records in this answer.
            slot.data.preferred_read_replica = BrokerId(node);
            return None;
        }
        if limit <= 0 {
            return None;
        }
        match reader {
            Reader::Replica(member) if partition.replica.replicas().contains(&member) => Some(
                partition
                    .log
                    .read_for_replica(slot.fetch_offset, limit as usize),
            ),
            Reader::Replica(_) => {
                slot.data.error_code = errors::NOT_LEADER_OR_FOLLOWER;
                None
            }
            _ => match partition.log.read(slot.fetch_offset, limit as usize) {
                // Out of a follower's range is not out of the partition's: the consumer may
                // have read further at the leader, or its metadata may be stale (a client
                // without leader epochs would reset its offset). The leader answers it.
                ReadPlan::OutOfRange if !partition.replica.is_leader() => {
                    slot.data.error_code = errors::NOT_LEADER_OR_FOLLOWER;
                    None
                }
                plan => Some(plan),
            },
        }
    }

    /// Leader, with `replica.selector.class` Kafka's `RackAwareReplicaSelector`: the replica a
    /// consumer in `rack` should fetch `slot`'s partition from, if not this leader: a live
    /// in-sync follower in that rack that holds the fetch offset, the one furthest along
    /// (none if this node is in the rack, or no follower there qualifies).
    fn preferred_read_replica(&self, slot: &Slot, rack: &str) -> Option<NodeId> {
        if !self.config.rack_aware_reads || self.config.rack.as_deref() == Some(rack) {
            return None;
        }
        let topic = self.topics.get(slot.name.0.as_str())?;
        let partition = topic
            .partitions
            .get(usize::try_from(slot.partition).ok()?)?;
        let replica = &partition.replica;
        if !replica.is_leader() {
            return None;
        }
        let in_rack = |node: &NodeId| {
            self.brokers
                .get(node)
                .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(rack))
        };
        replica
            .in_sync()
            .filter(|&node| node != self.config.node_id && in_rack(&node))
            .filter_map(|node| Some((replica.progress(node)?.written, node)))
            .filter(|&(written, _)| written >= slot.fetch_offset)
            .max()
            .map(|(_, node)| node)
    }

    /// Whether this shard is cutting the partition's log back to its leader's.
    fn is_truncating(&self, topic: &str, partition: i32) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|t| self.replication_truncates(t.id, partition))
    }

    /// Whether a read that failed was planned against segment files a cleaning or a
    /// truncation changed since: the partition is answered without records (no error), and
    /// the consumer's next fetch reads the new files.
    fn read_went_stale(&mut self, slot: &Slot, read: &crate::log::DiskRead) -> bool {
        self.partition_log_mut(slot.name.0.as_str(), slot.partition)
            .is_some_and(|log| log.read_is_stale(read))
    }

    pub(super) fn on_read_done(
        &mut self,
        _now_ms: i64,
        id: u64,
        slot_index: usize,
        result: IoResult,
    ) {
        let Some(mut fetch) = self.fetches.remove(&id) else {
            return;
        };
        let mut slot = std::mem::replace(&mut fetch.slots[slot_index], Slot::placeholder());
        let read = slot.reading.take().expect("a read was in flight");
        let location = format!(
            "{}-{} at offset {}",
            slot.name.0.as_str(),
            slot.partition,
            slot.fetch_offset
        );
        let mut more = None;
        match result {
            IoResult::Data(data) => match read.complete(&data) {
                ReadOutcome::Found { batches, rest } => {
                    slot.batches = vec![batches];
                    if let Some(rest) = rest {
                        if let Some(log) =
                            self.partition_log_mut(slot.name.0.as_str(), slot.partition)
                        {
                            log.keep_read_ahead(rest);
                        }
                    }
                }
                ReadOutcome::More(next) => more = Some(next),
                ReadOutcome::NotFound => {}
                ReadOutcome::Corrupt(_) if self.read_went_stale(&slot, &read) => {}
                ReadOutcome::Corrupt(error) => {
                    slot.data.error_code = errors::KAFKA_STORAGE_ERROR;
                    self.log(
                        Level::Error,
                        format!("corrupt data read from {location}: {error}"),
                    );
                }
            },
            IoResult::Failed(_) if self.read_went_stale(&slot, &read) => {}
            IoResult::Failed(error) => {
                let below_start = self
                    .partition_log_mut(slot.name.0.as_str(), slot.partition)
                    .is_some_and(|log| slot.fetch_offset < log.log_start_offset());
                if below_start {
                    // Retention deleted the segment while it was being read.
                    slot.data.error_code = errors::OFFSET_OUT_OF_RANGE;
                } else {
                    slot.data.error_code = errors::KAFKA_STORAGE_ERROR;
                    self.log(Level::Error, format!("read failed for {location}: {error}"));
                }
            }
            IoResult::Done => {
                slot.data.error_code = errors::KAFKA_STORAGE_ERROR;
                self.log(
                    Level::Error,
                    format!("read for {location} returned no data"),
                );
            }
        }
        if let Some(next) = more {
            self.issue_fetch_read(id, slot_index, &mut slot, next);
        } else {
            fetch.reads_outstanding -= 1;
        }
        fetch.slots[slot_index] = slot;
        if fetch.reads_outstanding == 0 {
            self.answer_fetch(fetch);
        } else {
            self.fetches.insert(id, fetch);
        }
    }

    /// Re-evaluates parked fetches (only followers' after a write: they read what is
    /// written, committed or not).
    pub(super) fn wake_parked(&mut self, now_ms: i64, replicas_only: bool) {
        let parked: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.parked && (!replicas_only || f.is_replica()))
            .map(|(id, _)| *id)
            .collect();
        for id in parked {
            let fetch = self.fetches.remove(&id).expect("listed above");
            self.evaluate_fetch(id, fetch, now_ms);
        }
    }

    /// The connection's fetches are due now (thread-per-core: see `Broker::wake_fetch`).
    pub(super) fn hurry_fetches(&mut self, conn: ConnId, now_ms: i64) {
        for fetch in self.fetches.values_mut().filter(|f| f.conn() == conn) {
            fetch.deadline_ms = fetch.deadline_ms.min(now_ms);
        }
        self.expire_fetches(now_ms);
    }

    pub(super) fn expire_fetches(&mut self, now_ms: i64) {
        let due: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.parked && f.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let fetch = self.fetches.remove(&id).expect("listed above");
            self.evaluate_fetch(id, fetch, now_ms);
        }
    }

    fn answer_fetch(&mut self, fetch: PendingFetch) {
        let version = fetch.ctx.version;
        let mut slots = fetch.slots;
        for slot in &mut slots {
            assert!(slot.reading.is_none(), "answered with a read in flight");
            slot.data.records = Some(concat(std::mem::take(&mut slot.batches)));
            if version < 5 {
                slot.data.log_start_offset = -1;
            }
        }
        // A read returns at least one batch per partition; the request's limits allow that
        // for the first partition with records only.
        crate::batch::limit_fetch_records(
            slots
                .iter_mut()
                .map(|s| (&mut s.data.records, s.max_bytes.max(0) as usize)),
            fetch.max_bytes.max(0) as usize,
        );
        let mut responses: Vec<FetchableTopicResponse> = Vec::new();
        let mut last_topic = usize::MAX;
        for slot in slots {
            if slot.topic_index != last_topic {
                last_topic = slot.topic_index;
                responses.push(FetchableTopicResponse::default().with_topic(slot.name.clone()));
            }
            responses
                .last_mut()
                .expect("pushed above")
                .partitions
                .push(slot.data);
        }
        let response = FetchResponse::default().with_responses(responses);
        self.respond(&fetch.ctx, &response);
    }
}

fn concat(batches: Vec<Bytes>) -> Bytes {
    match batches.len() {
        0 => Bytes::new(),
        1 => batches.into_iter().next().expect("one batch"),
        _ => {
            let mut out = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
            batches.iter().for_each(|b| out.extend_from_slice(b));
            out.freeze()
        }
    }
}
