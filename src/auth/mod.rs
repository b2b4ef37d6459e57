//! Authentication: password hashes, the API's JWTs, the extractor that turns a bearer
//! token into the calling user, and the brute-force guards of sign-in.

mod extractor;
pub mod jwt;
pub mod password;
pub mod throttle;

pub use extractor::{AuthUser, Credential};
