//! The integration tests, one binary (the harness links once): the real `gcupload` binary
//! against the in-process sandbox over loopback, plus property tests and the architecture guard.

mod common;

mod architecture;
mod arrival;
mod batch;
mod cli;
mod conversation;
mod dropfolder;
mod faults;
mod guest;
mod hints;
mod hostile;
mod hostile_files;
mod hostile_terminal;
mod polish;
mod props;
mod sandbox;
mod soak;
mod state;
mod url_credentials;
mod walk;
mod watch;
