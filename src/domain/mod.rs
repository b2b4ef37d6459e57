//! Rules and newtypes of the service, and the queries that go with them. Routes call these;
//! nothing here knows about HTTP beyond returning [`crate::error::ApiError`].

pub mod access;
pub mod api_keys;
pub mod cache;
pub mod calendar_events;
pub mod changes;
pub mod connections;
pub mod email;
pub mod etag;
pub mod idempotency;
pub mod item_fields;
pub mod links;
pub mod locks;
pub mod organizations;
pub mod pagination;
pub mod passwords;
pub mod patch;
pub mod plain_text;
pub mod recycle_bin;
pub mod rich_text;
pub mod role;
pub mod settings;
pub mod tasks;
pub mod time_zones;
pub mod todo_lists;
pub mod users;
pub mod versioned;
pub mod webhooks;

pub use role::Role;
