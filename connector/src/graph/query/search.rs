//! Typed `/search/query` answers: the hits decoded straight into the fields a tool reads, and
//! the lenient field readers Graph's loosely typed shapes need.

/// A `/search/query` answer decoded straight into the fields a tool reads, `R` being the hit's
/// `resource`: unlike a `serde_json::Value` tree, fields nobody reads are skipped, not
/// allocated. Graph's shapes are followed leniently: a missing or mistyped field is absent.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SearchAnswer<R> {
    #[serde(default = "Vec::new")]
    value: Vec<SearchSet<R>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchSet<R> {
    #[serde(default = "Vec::new")]
    hits_containers: Vec<HitsContainer<R>>,
}

/// One `hitsContainers` entry.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HitsContainer<R> {
    #[serde(default = "Vec::new")]
    pub hits: Vec<SearchHit<R>>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub more_results_available: Option<bool>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub total: Option<u64>,
}

/// One hit: its summary and its resource.
#[derive(Debug, serde::Deserialize)]
pub struct SearchHit<R> {
    #[serde(default, deserialize_with = "lenient::string")]
    pub summary: Option<String>,
    pub resource: Option<R>,
}

impl<R> SearchAnswer<R> {
    /// The first hits container (the only one a single-entity-type request gets).
    pub fn into_first_container(self) -> Option<HitsContainer<R>> {
        self.value.into_iter().next()?.hits_containers.into_iter().next()
    }
}

/// `deserialize_with` helpers that keep a value of the expected JSON type and read anything
/// else (null, another type, a nested object) as absent, as `Value::as_str` and friends do.
pub mod lenient {
    use serde::{Deserializer, de};
    use std::fmt;

    struct Keep<T>(std::marker::PhantomData<T>);

    macro_rules! ignore_others {
        () => {
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok(None)
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
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        ignore_others!();
    }

    impl<'de> de::Visitor<'de> for Keep<u64> {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        ignore_others!();
    }

    impl<'de> de::Visitor<'de> for Keep<bool> {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        ignore_others!();
    }

    /// A string, else absent.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(Keep::<String>(std::marker::PhantomData))
    }

    /// A non-negative integer, else absent.
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(Keep::<u64>(std::marker::PhantomData))
    }

    /// A boolean, else absent.
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        d.deserialize_any(Keep::<bool>(std::marker::PhantomData))
    }

    /// `true` whenever the field is present, whatever its value (even `null`).
    pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        de::Deserialize::deserialize(d).map(|_: de::IgnoredAny| true)
    }
}

/// Moves the hits of the first hits container out of a `/search/query` answer (no copy: a
/// page of hits is the largest part of a call's memory).
pub fn take_hits(body: &mut serde_json::Value) -> Vec<serde_json::Value> {
    match body.pointer_mut("/value/0/hitsContainers/0/hits").map(serde_json::Value::take) {
        Some(serde_json::Value::Array(hits)) => hits,
        _ => Vec::new(),
    }
}
