//! The simulated shell (issue 5): one thread, virtual time and one seed driving the same
//! `spate-core` state machines as production, with simulated network, disks and crashes.
//! Empty for now; the core's command/event interface (`spate_core::io`) is what it will drive.
