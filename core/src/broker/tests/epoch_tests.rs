//! Leader epochs move: each start-up leads every partition in the epoch after its last, made
//! durable before a batch is written in it; batches carry it, and Metadata, ListOffsets and
//! OffsetForLeaderEpoch answer it; a request naming an older epoch is fenced (KIP-320).

use super::*;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};

impl Harness {
    /// The leader epoch Metadata v12 reports for `topic`-0.
    fn metadata_epoch(&mut self, topic: &str) -> i32 {
        let wanted =
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(topic)));
        let request = MetadataRequest::default().with_topics(Some(vec![wanted]));
        self.send(ADMIN, ApiKey::Metadata, 12, &request);
        let response: MetadataResponse = self.response(ADMIN, ApiKey::Metadata, 12);
        response.topics[0].partitions[0].leader_epoch
    }

    /// ListOffsets v7 of `topic`-0 at `timestamp`, naming `current` as the leader epoch:
    /// (error, offset, leader epoch).
    fn list_offset_epoch(&mut self, topic: &str, timestamp: i64, current: i32) -> (i16, i64, i32) {
        let p = self.list_offsets_answer(topic, 0, timestamp, current);
        (p.error_code, p.offset, p.leader_epoch)
    }

    /// OffsetForLeaderEpoch of `topic`-0 for `epoch`: (error, epoch, end offset).
    fn epoch_end(&mut self, topic: &str, epoch: i32) -> (i16, i32, i64) {
        let partition = OffsetForLeaderPartition::default()
            .with_partition(0)
            .with_current_leader_epoch(-1)
            .with_leader_epoch(epoch);
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![partition])]);
        self.send(ADMIN, ApiKey::OffsetForLeaderEpoch, 4, &request);
        let response: OffsetForLeaderEpochResponse =
            self.response(ADMIN, ApiKey::OffsetForLeaderEpoch, 4);
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    }

    /// Fetch v11 of `topic`-0 from `offset` naming `current` as the leader epoch: the error
    /// and the epoch of each batch served.
    fn fetch_epochs(&mut self, topic: &str, offset: i64, current: i32) -> (i16, Vec<i32>) {
        let partition = FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(offset)
            .with_current_leader_epoch(current)
            .with_partition_max_bytes(1 << 20);
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 24)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![partition])]);
        self.send(2, ApiKey::Fetch, 11, &request);
        let (error, _, records) = self.fetch_result(2);
        let epochs = match records.is_empty() {
            true => Vec::new(),
            false => batch::validate_all(&records)
                .unwrap()
                .iter()
                .map(|b| b.partition_leader_epoch)
                .collect(),
        };
        (error, epochs)
    }
}

#[test]
fn every_start_up_leads_in_the_next_epoch_and_batches_carry_it() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    assert_eq!(h.metadata_epoch("t"), 0, "a new partition's first epoch");
    h.produce_ok("t", 0, 2);
    let mut h = h.restart(Config::default());
    assert_eq!(h.metadata_epoch("t"), 1);
    h.produce_ok("t", 0, 3);
    let h = h.restart(Config::default());
    let mut h = h.restart(Config::default());
    assert_eq!(h.metadata_epoch("t"), 3, "one epoch a start-up");
    h.produce_ok("t", 0, 1);
    let text = String::from_utf8(h.disk.files[crate::io::METADATA_FILE].clone()).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("partition\t") && l.ends_with("\t0\t1\t3\t1\t3")),
        "the epoch is in the metadata file: {text}"
    );

    assert_eq!(h.fetch_epochs("t", 0, 3), (errors::NONE, vec![0, 1, 3]));
    // Offsets 0-1 in epoch 0, 2-4 in epoch 1, 5 in epoch 3 (epoch 2 wrote nothing).
    let ends: Vec<_> = (0..=4).map(|e| h.epoch_end("t", e)).collect();
    assert_eq!(
        ends,
        vec![
            (errors::NONE, 0, 2),
            (errors::NONE, 1, 5),
            (errors::NONE, 1, 5),
            (errors::NONE, 3, 6),
            (errors::NONE, -1, -1),
        ]
    );
    assert_eq!(h.list_offset_epoch("t", -2, -1), (errors::NONE, 0, 0));
    assert_eq!(h.list_offset_epoch("t", -1, 3), (errors::NONE, 6, 3));
    // make_batch stamps its records at 5: the first is offset 0.
    assert_eq!(h.list_offset_epoch("t", 5, 3), (errors::NONE, 0, 0));
    assert_eq!(h.delete_records("t", 0, 3), (errors::NONE, 3));
    assert_eq!(h.list_offset_epoch("t", -2, -1), (errors::NONE, 3, 1));

    // A client whose metadata is from before the restart is fenced, and one from the future
    // is told the epoch is unknown here; neither gets records.
    assert_eq!(
        h.fetch_epochs("t", 3, 1),
        (errors::FENCED_LEADER_EPOCH, vec![])
    );
    assert_eq!(
        h.fetch_epochs("t", 3, 4),
        (errors::UNKNOWN_LEADER_EPOCH, vec![])
    );
    assert_eq!(
        h.list_offset_epoch("t", -1, 2),
        (errors::FENCED_LEADER_EPOCH, -1, -1)
    );
}

#[test]
fn a_restarted_empty_partition_begins_its_epoch_at_its_end() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let mut h = h.restart(Config::default());
    assert_eq!(h.list_offset_epoch("t", -2, 1), (errors::NONE, 0, 1));
    // Older than every epoch known: it ended where the first known began (Kafka's answer).
    assert_eq!(h.epoch_end("t", 0), (errors::NONE, 0, 0));
    assert_eq!(h.epoch_end("t", 1), (errors::NONE, 1, 0));
}

#[test]
fn a_metadata_file_from_before_leader_epochs_reads_as_epoch_zero() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 1);
    let mut disk = h.disk.clone();
    let file = disk.files.get_mut(crate::io::METADATA_FILE).unwrap();
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(
        !text.contains("\nleader\t"),
        "epoch 0 needs no line: {text}"
    );
    let (mut h, _) = h.restart_on(disk, Config::default());
    assert_eq!(h.metadata_epoch("t"), 1);
}

#[test]
fn the_planted_bug_forgets_epochs_and_they_go_back() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    let h = h.restart(Config::default());
    let mut h = h.restart(Config::default());
    h.produce_ok("t", 0, 1);
    let mut h = h.restart(Config {
        planted_bug: Some(PlantedBug::ForgetLeaderEpochs),
        ..Config::default()
    });
    h.produce_ok("t", 0, 1);
    assert_eq!(
        h.fetch_epochs("t", 0, -1),
        (errors::NONE, vec![2, 1]),
        "the batch after the planted restart goes back to epoch 1"
    );
}

/// A batch whose leader epoch rotted on disk (the field is outside its CRC) to one above any
/// the metadata allows is kept out of the epoch history at recovery: the epochs of the batches
/// around it still answer OffsetForLeaderEpoch, and ListOffsets, as before.
#[test]
fn an_epoch_rotted_on_disk_stays_out_of_the_history() {
    let mut h = Harness::new(Config::default());
    h.create_topic("t", 1);
    h.produce_ok("t", 0, 3);
    let mut h = h.restart(Config::default());
    h.produce_ok("t", 0, 2);
    let mut disk = h.disk.clone();
    let segment = disk
        .files
        .keys()
        .find(|p| p.ends_with(".log"))
        .cloned()
        .expect("a segment");
    // The first batch's partitionLeaderEpoch: after baseOffset (8) and batchLength (4).
    disk.files.get_mut(&segment).unwrap()[12..16].copy_from_slice(&(1_i32 << 20).to_be_bytes());
    disk.files
        .retain(|p, _| !p.ends_with(".index") && p != crate::io::CLEAN_SHUTDOWN_FILE);
    let (mut h, _) = h.restart_on(disk, Config::default());
    assert_eq!(h.epoch_end("t", 0), (errors::NONE, 0, 3));
    assert_eq!(h.epoch_end("t", 1), (errors::NONE, 1, 5));
    assert_eq!(
        h.epoch_end("t", 2),
        (errors::NONE, 2, 5),
        "the current epoch"
    );
    assert_eq!(h.list_offset_epoch("t", -2, -1), (errors::NONE, 0, 0));
}
