//! Known bugs the simulator can switch on (`--buggify NAME`) to show that its checkers catch
//! them. Never set in production.

/// Bugs the simulator plants to prove its checkers are checking (a `--buggify` switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// Answer acks=all once the batch is written, before its fsync.
    AckBeforeFsync,
    /// Drop the last batch of every partition when recovering after a restart.
    LoseLastBatchOnRecovery,
    /// Apply and answer an offset commit before its record is flushed.
    CommitBeforeFlush,
    /// Keep reporting the session deadline of a member waiting in JoinGroup or SyncGroup once
    /// it has passed, without renewing it (issue 12): a deadline `handle_timeout` never moves.
    StuckGroupDeadline,
    /// Merge a Fetch split across shards with its partitions' labels shifted by one within
    /// each topic: a client reads one partition's records as another's.
    MislabelSplitFetch,
    /// Never sync a partition's directory after creating a segment file: an acknowledged
    /// record's file may be gone after a crash although its bytes were fsynced.
    SkipDirSync,
    /// Forget the leader epochs the metadata kept when starting up: every restart leads in
    /// epoch 1 again, so batches of different lives share an epoch and epochs go back.
    ForgetLeaderEpochs,
    /// The active controller leaves a fenced broker leading its partitions (issue 15's
    /// "fenced broker kept as leader").
    KeepFencedLeaders,
    /// A controller voter grants its vote twice in one term (Raft's `VoteTwice`): two leaders
    /// of one term become possible.
    VoteTwice,
    /// The controller leader commits what one voter fewer than a majority holds (Raft's
    /// `CommitMinority`): a committed metadata record can be lost or replaced.
    CommitMinority,
    /// A partition leader counts every follower that fetches as holding what the leader has:
    /// its high watermark follows the leader's own disk alone (issue 16).
    HighWatermarkFromLeaderAlone,
    /// A follower fetches on as soon as what it copied is written, before its fsync: the
    /// leader takes its fetch offset for a durable one (issue 16).
    DurableBeforeFsync,
    /// The controller elects any live replica when a leader goes, in the in-sync set or not
    /// (an unclean election nobody asked for, issue 16).
    ElectOutsideInSync,
    /// A follower never says which epoch its log ends in, so its leader never finds where
    /// they diverge and it never truncates (KIP-101's bug, issue 16).
    SkipTruncation,
    /// OffsetForLeaderEpoch cuts an older epoch's end to the leader's high watermark, which
    /// lags at a new leader: a consumer that read further from the old leader is told its
    /// records were truncated (issue 16's rolling-restart skip).
    ClampEpochEnds,
    /// The controller's automatic rebalance makes a partition's preferred replica its leader
    /// whenever it is live, caught up or not (issue 16's preferred-leader rebalancing).
    PreferOutOfSync,
    /// The log cleaner swaps a cleaned file in without fsyncing it first (issue 17): a crash
    /// after the swap can leave the segment's cleaned bytes unwritten.
    SwapUnsyncedCleaning,
}
