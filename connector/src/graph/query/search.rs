//! Typed `/search/query` answers: the hits decoded straight into the fields a tool reads (the
//! resources are the models of [`crate::graph::model`], read as leniently).

use serde::Deserialize;

use crate::graph::model::lenient;

/// A `/search/query` answer decoded straight into the fields a tool reads, `R` being the hit's
/// `resource`: unlike a `serde_json::Value` tree, fields nobody reads are skipped, not
/// allocated. Graph's shapes are followed leniently: a missing or mistyped field is absent.
#[derive(Debug, Deserialize)]
#[serde(bound = "R: Deserialize<'de>")]
pub struct SearchAnswer<R> {
    #[serde(default = "Vec::new", deserialize_with = "lenient::list")]
    value: Vec<SearchSet<R>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound = "R: Deserialize<'de>")]
struct SearchSet<R> {
    #[serde(default = "Vec::new", deserialize_with = "lenient::list")]
    hits_containers: Vec<HitsContainer<R>>,
}

impl<R> Default for SearchSet<R> {
    fn default() -> Self {
        Self { hits_containers: Vec::new() }
    }
}

/// One `hitsContainers` entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound = "R: Deserialize<'de>")]
pub struct HitsContainer<R> {
    #[serde(default = "Vec::new", deserialize_with = "lenient::list")]
    pub hits: Vec<SearchHit<R>>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub more_results_available: Option<bool>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub total: Option<u64>,
}

impl<R> Default for HitsContainer<R> {
    fn default() -> Self {
        Self { hits: Vec::new(), more_results_available: None, total: None }
    }
}

/// One hit: its id, summary and resource (absent unless an object).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound = "R: Deserialize<'de>")]
pub struct SearchHit<R> {
    #[serde(default, deserialize_with = "lenient::string")]
    pub hit_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub summary: Option<String>,
    #[serde(default, deserialize_with = "lenient::object")]
    pub resource: Option<R>,
}

impl<R> Default for SearchHit<R> {
    fn default() -> Self {
        Self { hit_id: None, summary: None, resource: None }
    }
}

impl<R> SearchAnswer<R> {
    /// The first hits container (the only one a single-entity-type request gets).
    pub fn into_first_container(self) -> Option<HitsContainer<R>> {
        self.value.into_iter().next()?.hits_containers.into_iter().next()
    }
}
