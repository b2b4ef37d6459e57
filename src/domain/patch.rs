//! JSON merge patch (RFC 7396) members: absent, `null`, or a value.

use serde::{Deserialize, Deserializer};

/// One member of a merge patch. Use with `#[serde(default)]` so that an absent member is
/// [`Patch::Absent`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// Not in the patch: leave as is.
    #[default]
    Absent,
    /// `null`: remove (for settings, fall back to the scope above).
    Null,
    /// A new value.
    Set(T),
}

impl<T> Patch<T> {
    /// Whether the member was present in the patch.
    pub fn is_present(&self) -> bool {
        !matches!(self, Self::Absent)
    }

    /// Applies this member to an optional value.
    pub fn apply_to(&self, target: &mut Option<T>)
    where
        T: Clone,
    {
        match self {
            Self::Absent => {}
            Self::Null => *target = None,
            Self::Set(value) => *target = Some(value.clone()),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Self::Null,
            Some(value) => Self::Set(value),
        })
    }
}
