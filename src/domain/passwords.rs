//! The password policy: at least 12 characters (at most 1024), not one character repeated, not
//! one of the common passwords attackers try first (a list built into the binary, compared
//! without regard to case).

use std::{collections::HashSet, sync::OnceLock};

/// Fewest characters a password may have.
pub const MIN_CHARS: usize = 12;
/// Most characters a password may have.
pub const MAX_CHARS: usize = 1024;

static COMMON: &str = include_str!("common_passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().filter(|l| !l.is_empty()).collect())
}

/// Checks a new password against the policy.
///
/// # Errors
/// With a human reason when the password is refused.
pub fn check(password: &str) -> Result<(), &'static str> {
    let len = password.chars().count();
    if !(MIN_CHARS..=MAX_CHARS).contains(&len) {
        return Err("must be 12 to 1024 characters");
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err("must not be a single character repeated");
    }
    if common().contains(password.to_lowercase().trim()) {
        return Err("is too common: choose one that is not on lists of frequent passwords");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn short_repeated_and_common_passwords_are_refused() {
        for bad in [
            "short",
            "elevenchars",
            "aaaaaaaaaaaaaaaa",
            "PasswordPassword",
            "qwertyuiop123",
            "123456789012",
        ] {
            assert!(check(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(check("correct horse battery staple").is_ok());
        assert!(check("a brand new password").is_ok());
    }

    #[test]
    fn the_built_in_list_has_a_few_hundred_lower_case_entries() {
        let list = super::common();
        assert!(list.len() > 300, "{}", list.len());
        assert!(list.iter().all(|p| p.to_lowercase() == *p));
    }
}
