//! `spate-core`: the pure, deterministic state machines of the Spate broker.
//!
//! Nothing here touches a file, a socket, a thread, a clock or an OS random source. Time comes in
//! as `now_ms`, randomness as a seed, and I/O leaves as commands and returns as completions (see
//! [`io`]). The production shell (`spate-runtime-io-uring`) and the simulator (`spate-runtime-sim`)
//! drive the same [`broker::Broker`].

pub mod api;
pub mod batch;
pub mod broker;
pub mod configs;
pub mod controller;
pub mod errors;
pub mod group_coordinator;
pub mod groups;
pub mod io;
pub mod log;
pub mod memory_disk;
pub mod node;
pub mod partition;
pub mod placement;
pub mod planted;
pub mod producers;
pub mod raft;
pub mod replica;
mod rng;
pub mod segment;
pub mod shard;
pub mod topics;
