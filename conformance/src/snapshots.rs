//! The S scenarios' committed snapshots, read without insta so the `m365-conformance` gate
//! compares a connector binary's tool outputs against the very files `cargo test` checks
//! (`tests/conformance/snapshots/conformance__s_tools__NAME.snap`).
//!
//! The redactions are the test suite's (`tests/conformance/s_tools.rs`): paging cursors are
//! sealed with a per-run key, so `next_cursor` at any depth and `arguments.cursor` compare as
//! `"[cursor]"`. Values are compared as JSON (key order does not matter, array order does).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// Where the committed snapshots live in the source tree this binary was built from.
pub fn default_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/snapshots"))
}

/// insta names a snapshot file after the crate, the test module and the snapshot name.
const FILE_PREFIX: &str = "conformance__s_tools__";
/// What the redacted values read as in the committed files.
const CURSOR: &str = "[cursor]";
/// At most this many differing paths are printed for one snapshot.
const MAX_DIFFS: usize = 5;

/// Applies the test suite's redactions to a recorded output.
pub fn redact(mut value: Value) -> Value {
    fn next_cursors(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if k == "next_cursor" {
                        *child = Value::String(CURSOR.to_owned());
                    } else {
                        next_cursors(child);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(next_cursors),
            _ => {}
        }
    }
    next_cursors(&mut value);
    if let Some(cursor) = value.get_mut("arguments").and_then(|a| a.get_mut("cursor")) {
        *cursor = Value::String(CURSOR.to_owned());
    }
    value
}

/// The JSON body of an insta `.snap` file (after its `---` front matter).
fn parse_snap(text: &str) -> Result<Value> {
    let body = text
        .strip_prefix("---")
        .and_then(|rest| rest.split_once("\n---\n"))
        .map(|(_, body)| body)
        .ok_or_else(|| anyhow!("no `---` front matter"))?;
    serde_json::from_str(body).context("the body is not JSON")
}

/// Compares every output a scenario recorded with its committed snapshot, and checks that
/// every committed snapshot of the scenario (`{id}_*`) was recorded. The error lists each
/// difference (JSON path, committed value, value now).
pub fn compare(dir: &Path, scenario_id: &str, recorded: &[(String, Value)]) -> Result<()> {
    if recorded.is_empty() {
        bail!("{scenario_id} recorded no output to compare");
    }
    let mut problems = Vec::new();
    for (name, value) in recorded {
        let path = dir.join(format!("{FILE_PREFIX}{name}.snap"));
        let committed = match std::fs::read_to_string(&path) {
            Ok(text) => parse_snap(&text).with_context(|| format!("{}", path.display()))?,
            Err(e) => {
                problems.push(format!("{name}: no committed snapshot {} ({e})", path.display()));
                continue;
            }
        };
        let mut diffs = Vec::new();
        diff("", &committed, &redact(value.clone()), &mut diffs);
        if !diffs.is_empty() {
            let more = diffs.len().saturating_sub(MAX_DIFFS);
            let mut text = format!("{name} differs from {}:", path.display());
            for d in diffs.iter().take(MAX_DIFFS) {
                text.push_str("\n    ");
                text.push_str(d);
            }
            if more > 0 {
                text.push_str(&format!("\n    … and {more} more"));
            }
            problems.push(text);
        }
    }
    let prefix = format!("{FILE_PREFIX}{}_", scenario_id.to_ascii_lowercase());
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("snapshot directory {}", dir.display()))?;
    for entry in entries {
        let file = entry?.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_prefix(FILE_PREFIX).and_then(|f| f.strip_suffix(".snap"))
        else {
            continue;
        };
        if file.starts_with(&prefix) && !recorded.iter().any(|(n, _)| n == name) {
            problems.push(format!("{name}: committed but not recorded by this run"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("snapshot mismatch:\n  {}", problems.join("\n  "))
    }
}

fn short(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".to_owned(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 120 {
                format!("{}…", text.chars().take(120).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// Collects `path: committed ≠ now` lines for every leaf that differs.
fn diff(path: &str, committed: &Value, now: &Value, out: &mut Vec<String>) {
    match (committed, now) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}.{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(&p, x, y, out),
                    (x, y) => out.push(format!("{p}: committed {} / now {}", short(x), short(y))),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => {
            let p = if path.is_empty() { "(root)" } else { path };
            out.push(format!("{p}: committed {} / now {}", short(Some(a)), short(Some(b))));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn redaction_matches_the_test_suite() {
        let v = redact(json!({
            "arguments": {"cursor": "abc", "query": "q"},
            "structured": {"next_cursor": "xyz", "items": [{"next_cursor": "n"}]}
        }));
        assert_eq!(v["arguments"]["cursor"], "[cursor]");
        assert_eq!(v["arguments"]["query"], "q");
        assert_eq!(v["structured"]["next_cursor"], "[cursor]");
        assert_eq!(v["structured"]["items"][0]["next_cursor"], "[cursor]");
    }

    #[test]
    fn a_changed_leaf_is_reported_with_its_path() {
        let mut out = Vec::new();
        diff("", &json!({"a": [1, {"b": "x"}]}), &json!({"a": [1, {"b": "y"}]}), &mut out);
        assert_eq!(out, vec![r#".a[1].b: committed "x" / now "y""#]);
    }

    #[test]
    fn committed_snapshots_parse() {
        let dir = default_dir();
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("snapshot dir") {
            let path = entry.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("read");
            parse_snap(&text).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            n += 1;
        }
        assert!(n > 0, "no snapshots in {}", dir.display());
    }
}
