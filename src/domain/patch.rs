//! JSON merge patch (RFC 7396) members: absent, `null`, or a value.

use serde::{Deserialize, Deserializer, de::Visitor, forward_to_deserialize_any};

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

/// Deserializes a merge patch member whose value is an object, for use with
/// `#[serde(default, deserialize_with = "patch::object")]`: serde's derived structs also
/// accept a JSON array of their fields in order, which a merge patch must refuse.
///
/// # Errors
/// When the value is neither `null` nor an object that fits `T`.
pub fn object<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Patch<T>, D::Error> {
    Ok(match Option::<ObjectOnly<T>>::deserialize(deserializer)? {
        None => Patch::Null,
        Some(ObjectOnly(value)) => Patch::Set(value),
    })
}

/// A `T` read from a JSON object only.
struct ObjectOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(MapOnly(deserializer)).map(Self)
    }
}

/// Hands a struct's fields over as a map only: an array is then an invalid type.
struct MapOnly<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::Patch;

    #[derive(Debug, Default, Deserialize, PartialEq, Eq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        flag: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(default, deserialize_with = "super::object")]
        inner: Patch<Inner>,
    }

    #[test]
    fn object_members_take_an_object_or_null_but_not_an_array() {
        let set: Outer = serde_json::from_str(r#"{"inner": {"flag": true}}"#).unwrap();
        assert_eq!(set.inner, Patch::Set(Inner { flag: Some(true) }));
        let null: Outer = serde_json::from_str(r#"{"inner": null}"#).unwrap();
        assert_eq!(null.inner, Patch::Null);
        let absent: Outer = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.inner, Patch::Absent);
        assert!(serde_json::from_str::<Outer>(r#"{"inner": [true]}"#).is_err());
    }
}
