//! `m365-connector audit verify`: checks every segment of every log in a directory (or of the
//! log a file belongs to), in chain order.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde_json::{Map, Value};

use super::{GENESIS, chain_hash, segments, sha256_hex};
use crate::key::Key32;

/// What a verified log holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub records: u64,
    pub segments: usize,
    /// Segments that end with a torn write (a crash), and how many bytes were torn. The chain
    /// continues after them; each is also marked by a `log_resumed` record.
    pub torn: Vec<(PathBuf, u64)>,
}

/// The verdict of [`verify`].
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok(Report),
    Broken { file: PathBuf, line: usize, reason: String },
}

/// Checks whole logs: every line parses, `seq` counts up by one from 1 across segments, `prev`
/// is the hash of the previous record's line and `hash` matches the record (HMAC-SHA256 under
/// `key` when given, and then every record must be keyed). `path` is a directory (every log in
/// it) or any segment of one log.
pub fn verify(path: &Path, key: Option<&Key32>) -> io::Result<Verdict> {
    let bases = if path.is_dir() { segments::logs_in(path)? } else { vec![first_segment(path)] };
    if bases.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no audit log (*.jsonl) found"));
    }
    let mut total = Report::default();
    for base in bases {
        match verify_log(&base, key)? {
            Verdict::Ok(report) => {
                total.records += report.records;
                total.segments += report.segments;
                total.torn.extend(report.torn);
            }
            broken => return Ok(broken),
        }
    }
    Ok(Verdict::Ok(total))
}

/// `audit.000003.jsonl` → `audit.jsonl`.
fn first_segment(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(stem) = name.strip_suffix(".jsonl")
        && let Some((s, digits)) = stem.rsplit_once('.')
        && digits.len() == 6
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return path.with_file_name(format!("{s}.jsonl"));
    }
    path.to_owned()
}

fn verify_log(base: &Path, key: Option<&Key32>) -> io::Result<Verdict> {
    let mut report = Report::default();
    let mut prev = GENESIS.to_owned();
    for (_, file) in segments::list(base)? {
        report.segments += 1;
        let bytes = std::fs::read(&file)?;
        // Bytes after the last newline are a torn write, not a record.
        let complete = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(nl) => nl + 1,
            None => 0,
        };
        if complete < bytes.len() {
            report.torn.push((file.clone(), (bytes.len() - complete) as u64));
        }
        let lines = match complete {
            0 => None,
            end => Some(bytes[..end - 1].split(|b| *b == b'\n')),
        };
        for (i, line) in lines.into_iter().flatten().enumerate() {
            let n = i + 1;
            let broken =
                |reason: String| Ok(Verdict::Broken { file: file.clone(), line: n, reason });
            let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(line) else {
                return broken("not a JSON object".into());
            };
            if let Err(reason) = check(&record, report.records, &prev, key) {
                return broken(reason);
            }
            prev = sha256_hex(line);
            report.records += 1;
        }
    }
    Ok(Verdict::Ok(report))
}

fn check(
    record: &Map<String, Value>,
    before: u64,
    prev: &str,
    key: Option<&Key32>,
) -> Result<(), String> {
    let seq = record.get("seq").and_then(Value::as_u64).ok_or("missing seq")?;
    if seq != before + 1 {
        return Err(format!("seq {seq} follows {before}: a record was removed or reordered"));
    }
    if record.get("prev").and_then(Value::as_str) != Some(prev) {
        return Err(
            "prev does not match the previous record: a record was removed, edited or reordered"
                .into(),
        );
    }
    let hash = record.get("hash").and_then(Value::as_str).ok_or("missing hash")?;
    let keyed = record.get("keyed") == Some(&Value::Bool(true));
    match (keyed, key) {
        (true, None) => {
            return Err(
                "the record is keyed (HMAC): give the key in M365_AUDIT__HMAC_KEY or --key-file"
                    .into(),
            );
        }
        (false, Some(_)) => {
            return Err("the record is not keyed but a key was given: it was rewritten, or the key was configured later".into());
        }
        _ => {}
    }
    let mut without = record.clone();
    without.remove("hash");
    let canonical = serde_json::to_vec(&Value::Object(without)).unwrap_or_default();
    if hash != chain_hash(&canonical, key) {
        return Err(if key.is_some() {
            "hash does not match the record under this key: the record was edited, or the key is wrong".into()
        } else {
            "hash does not match the record: the record was edited".into()
        });
    }
    Ok(())
}
