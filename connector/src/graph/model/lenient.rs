//! `deserialize_with` helpers that keep a value of the expected JSON type and read anything
//! else (null, another type, a nested object) as absent, as `Value::as_str` and friends do.

use serde::{Deserialize, Deserializer, de};
use std::{fmt, marker::PhantomData};

struct Keep<T>(PhantomData<T>);

/// The `visit_*` methods named, each reading its JSON value as absent (`Default`: `None` or an
/// empty list), skipping over a list's or an object's contents. `visit_some` unwraps and asks
/// again. Each visitor below names every method it does not define itself.
macro_rules! absent {
    ($($method:ident)*) => { $( absent!(@ $method); )* };
    (@ visit_none) => {
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@ visit_unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@ visit_some) => {
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    };
    (@ visit_str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@ visit_bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@ visit_u64) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@ visit_i64) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@ visit_f64) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok(Default::default()) }
    };
    (@ visit_seq) => {
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_element::<de::IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
    (@ visit_map) => {
        fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

impl<'de> de::Visitor<'de> for Keep<String> {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    absent!(visit_none visit_unit visit_some visit_bool visit_u64 visit_i64 visit_f64 visit_seq visit_map);
}

impl<'de> de::Visitor<'de> for Keep<u64> {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    absent!(visit_none visit_unit visit_some visit_str visit_bool visit_i64 visit_f64 visit_seq visit_map);
}

impl<'de> de::Visitor<'de> for Keep<bool> {
    type Value = Option<bool>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    absent!(visit_none visit_unit visit_some visit_str visit_u64 visit_i64 visit_f64 visit_seq visit_map);
}

/// A string, else absent.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(Keep::<String>(PhantomData))
}

/// A non-negative integer, else absent.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(Keep::<u64>(PhantomData))
}

/// A boolean, else absent.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(Keep::<bool>(PhantomData))
}

/// `true` whenever the field is present, whatever its value (even `null`).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    de::Deserialize::deserialize(d).map(|_: de::IgnoredAny| true)
}

/// `true` when the field is present with any value but `null`.
pub fn not_null<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Option::<de::IgnoredAny>::deserialize(d).map(|v| v.is_some())
}

/// A JSON object read as `T`, whatever it holds
/// (`T`'s own fields being lenient); anything else is absent.
struct Object<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> de::Visitor<'de> for Object<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(a)).map(Some)
    }
    absent!(visit_none visit_unit visit_some visit_str visit_bool visit_u64 visit_i64 visit_f64 visit_seq);
}

/// An object as `T`, else absent.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_any(Object::<T>(PhantomData))
}

/// A value that is not `null`: an object as `T`, anything else as `T::default()`.
pub fn non_null<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<Element<T>>::deserialize(d).map(|v| v.map(|e| e.0))
}

/// A list element: an object as `T`, anything else as `T::default()` (as walking a
/// `Value` reads every field of a non-object as absent).
struct Element<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Element<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object::<D, T>(d).map(|v| Element(v.unwrap_or_default()))
    }
}

struct List<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Default> de::Visitor<'de> for List<T> {
    type Value = Vec<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0).min(256));
        while let Some(Element(item)) = a.next_element::<Element<T>>()? {
            out.push(item);
        }
        Ok(out)
    }
    absent!(visit_none visit_unit visit_some visit_str visit_bool visit_u64 visit_i64 visit_f64 visit_map);
}

/// A list of objects (each read as `T`, a non-object element as `T::default()`), else
/// empty.
pub fn list<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    d.deserialize_any(List::<T>(PhantomData))
}

/// A list's string elements (others skipped); `None` when the value is not a list.
pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Text(Option<String>);
    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            string(d).map(Text)
        }
    }
    struct Strings;
    impl<'de> de::Visitor<'de> for Strings {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Text(t)) = a.next_element::<Text>()? {
                out.extend(t);
            }
            Ok(Some(out))
        }
        absent!(visit_none visit_unit visit_some visit_str visit_bool visit_u64 visit_i64 visit_f64 visit_map);
    }
    d.deserialize_any(Strings)
}
