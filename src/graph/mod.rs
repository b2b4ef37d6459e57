//! Microsoft's side: the identity platform (OAuth 2.0 authorization code with PKCE, refresh
//! tokens) through the `oauth2` crate, and Graph v1.0 over reqwest. Both base URLs are
//! configuration, so tests and demos talk to `tests/graph-emulator`.

pub mod client;
pub mod http;
pub mod identity;

pub use client::{GraphClient, GraphError, Me};
pub use identity::{Identity, IdentityError, TokenSet};
