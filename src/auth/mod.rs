//! Authentication: password hashes, the API's JWTs, and the extractor that turns a bearer
//! token into the calling user.

mod extractor;
pub mod jwt;
pub mod password;

pub use extractor::AuthUser;
