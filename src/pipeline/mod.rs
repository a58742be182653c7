//! The upload pipeline: validate → route check → request URL → PUT → confirm → record →
//! webhook, the same for every route. Each file runs within the retry budget; an interrupt stops
//! new files from starting, and a second one abandons the file in flight.

mod ahead;
mod arrive;
mod batch;
mod breaker;
mod complete;
mod failed;
mod file;
mod job;
mod limits;
mod stages;
mod summary;

pub use job::state_error;
pub use stages::{Config, Pipeline, Report};
