//! The console tools: each subcommand in its own file, plus what they share.
pub mod cluster;
pub mod consume;
pub mod partitioner;
pub mod produce;
pub mod records;
pub mod topic;

use crate::client::DEFAULT_BOOTSTRAP;
use clap::Args;
use std::io::{self, Write};

/// Where to find the cluster; every console tool takes it.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The broker to connect to first (HOST:PORT; a comma-separated list is tried in order).
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        value_name = "HOST:PORT",
        default_value = DEFAULT_BOOTSTRAP,
        global = true
    )]
    pub bootstrap_server: String,
}

/// What a failed write to standard output means: a closed pipe (`| head -1`) ends the command
/// quietly; anything else is an error.
pub enum OutputError {
    Closed,
    Failed(String),
}

impl From<io::Error> for OutputError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            OutputError::Closed
        } else {
            OutputError::Failed(format!("cannot write to standard output: {e}"))
        }
    }
}

/// Writes `text` to standard output and flushes it.
pub fn print_stdout(text: &[u8]) -> Result<(), String> {
    let mut out = io::stdout().lock();
    let result = out.write_all(text).and_then(|()| out.flush());
    match result.map_err(OutputError::from) {
        Ok(()) | Err(OutputError::Closed) => Ok(()),
        Err(OutputError::Failed(message)) => Err(message),
    }
}

/// Whether standard output is a pipe whose reader is gone (`| head -1` has exited). A consumer
/// waiting for records would otherwise notice only at its next write, which may never come.
pub fn stdout_closed() -> bool {
    let mut poll_fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0, // POLLERR and POLLHUP are reported regardless
        revents: 0,
    };
    // SAFETY: one valid, initialised pollfd and a zero timeout.
    let ready = unsafe { libc::poll(&mut poll_fd, 1, 0) };
    ready > 0 && poll_fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}
