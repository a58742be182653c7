//! The integration tests, one binary (the harness links once): the real `gcupload` binary
//! against the in-process sandbox over loopback, plus property tests and the architecture guard.

// The tests print to their own stderr.
#![allow(clippy::disallowed_macros)]

mod common;

mod architecture;
mod arrival;
mod batch;
mod cli;
mod conversation;
mod dropfolder;
mod env_file;
mod environment;
mod everyday;
mod faults;
mod guest;
mod guest_in_flight;
mod hints;
mod hostile;
mod hostile_files;
mod hostile_terminal;
mod hung_peers;
mod leases;
mod polish;
mod props;
mod rate_limits;
mod sandbox;
mod sandbox_local;
mod set_aside;
mod several_hosts;
mod slots;
mod soak;
mod state;
mod url_credentials;
mod walk;
mod watch;
