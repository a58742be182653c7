//! gcupload: upload files into Genesys Cloud messaging, one JSON audit record per file.
//!
//! Dependencies point one way: [`app`] (the command line) → [`watch`] (drop folders as a
//! stream of files) → [`pipeline`] → the stages, in the order a file flows through them
//! ([`inputs`], [`arrival`]: is it still being written?, [`validate`], [`auth`]/[`api`], [`routes`]:
//! request URL, [`transfer`]: PUT, [`routes`]: confirm, [`audit`], [`webhook`], [`moves`]: the
//! source file afterwards; the [`state`] store keeps the journal and the webhook outbox) → the
//! foundation ([`config`], [`retry`], [`http`], [`error`], [`error_reporting`], [`redact`],
//! [`secret`], [`colour`]). Nothing below `app` sees a command-line type. The [`sandbox`] is a
//! separate tree: it imports nothing of the client, and only `app` starts it.

pub mod app;
pub mod pipeline;
pub mod watch;

pub mod api;
pub mod arrival;
pub mod audit;
pub mod auth;
pub mod inputs;
pub mod moves;
pub mod progress;
pub mod routes;
pub mod state;
pub mod transfer;
pub mod validate;
pub mod webhook;

pub mod colour;
pub mod config;
pub mod error;
pub mod error_reporting;
pub mod http;
pub mod limiter;
pub mod redact;
pub mod retry;
pub mod secret;

#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use error_reporting::ExitStatus;
