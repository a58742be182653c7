//! What differs between routes: how to get an upload URL, and how to confirm the upload.
//! Everything else (validation, the PUT, the record, the webhook) is shared by the pipeline.
//!
//! This module is the one table of routes: [`RouteName`] (names, what each needs),
//! [`RouteConfig`] (each route's own configuration, defined in its module) and
//! [`RouteConfig::build`]. A new route is a new module plus one arm in each.

pub mod conversation;
pub mod external_contact;
pub mod guest;
mod route;

pub use route::{
    Confirmation, Context, Route, RouteName, UploadTarget, Uploaded, put_headers, upload_url,
};

use crate::config::Endpoints;
use crate::error::Result;

/// The route of a run, with its own configuration.
#[derive(Debug, Clone)]
pub enum RouteConfig {
    ExternalContact(external_contact::Config),
    Guest(guest::Config),
    Conversation(conversation::Config),
}

impl RouteConfig {
    pub fn name(&self) -> RouteName {
        match self {
            RouteConfig::ExternalContact(_) => RouteName::ExternalContact,
            RouteConfig::Guest(_) => RouteName::Guest,
            RouteConfig::Conversation(_) => RouteName::Conversation,
        }
    }

    pub fn build(self, ctx: &Context) -> Result<Box<dyn Route>> {
        let name = self.name();
        Ok(match self {
            RouteConfig::ExternalContact(c) => Box::new(c.build(ctx.api(name)?)),
            RouteConfig::Guest(c) => Box::new(guest::Guest::new(ctx, c)),
            RouteConfig::Conversation(c) => Box::new(c.build(ctx.api(name)?, ctx.confirm_timeout)),
        })
    }

    /// What a dry run reports besides the file: where the upload would go.
    pub fn plan(&self, e: &Endpoints) -> serde_json::Map<String, serde_json::Value> {
        match self {
            RouteConfig::ExternalContact(c) => c.plan(e),
            RouteConfig::Guest(c) => c.plan(e),
            RouteConfig::Conversation(c) => c.plan(e),
        }
    }
}
