//! [`Post`]: an application item handed to a core's handler from another core or thread.

use std::any::Any;
use std::sync::Arc;

/// Anything an application hands to a core's handler through the core's inbox (with
/// [`crate::server::DeliveryHandle::post`] or [`crate::handler::CoreContext::post`]); the
/// handler receives it in [`crate::handler::Handler::on_post`] and downcasts it. Shared, so
/// one item can be handed to every core without copying (a fan-out message, a broker reply).
pub type Post = Arc<dyn Any + Send + Sync>;
