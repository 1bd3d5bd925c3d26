//! The environment overlay: `M365_A__B=value` sets `a.b` in the file's table before it is
//! parsed, so environment variables override the file and are validated the same way.

use std::collections::BTreeMap;

use super::{ENV_PREFIX, ENV_SEPARATOR};

/// Applies `M365_A__B=value` pairs to the table as `a.b = value`. Values that parse as a TOML
/// integer, float, boolean or array keep that type; everything else is a string.
pub fn overlay_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) {
    let mut pairs: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in env {
        if let Some(rest) = name.strip_prefix(ENV_PREFIX)
            && !rest.is_empty()
        {
            pairs.insert(rest.to_ascii_lowercase(), value);
        }
    }
    'pairs: for (path, value) in pairs {
        let segments: Vec<&str> = path.split(ENV_SEPARATOR).collect();
        if segments.iter().any(|s| s.is_empty()) {
            continue;
        }
        let mut cursor = &mut *table;
        for segment in &segments[..segments.len() - 1] {
            let entry = cursor
                .entry((*segment).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            match entry {
                toml::Value::Table(next) => cursor = next,
                _ => continue 'pairs,
            }
        }
        let last = segments[segments.len() - 1].to_owned();
        cursor.insert(last, env_value(&value));
    }
}

fn env_value(text: &str) -> toml::Value {
    let probe = format!("v = {text}");
    if let Ok(mut t) = probe.parse::<toml::Table>()
        && let Some(v) = t.remove("v")
        && matches!(
            v,
            toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
                | toml::Value::Array(_)
        )
    {
        return v;
    }
    toml::Value::String(text.to_owned())
}
