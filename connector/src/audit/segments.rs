//! Segment files of one audit log and what their tails say.
//!
//! The log configured as `dir/audit.jsonl` is the sequence `audit.jsonl` (segment 1),
//! `audit.000002.jsonl`, `audit.000003.jsonl`, ... The chain runs through them in that order.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::sha256_hex;

/// The path of segment `index` (1-based) of the log whose first segment is `base`.
pub fn segment_path(base: &Path, index: u32) -> PathBuf {
    if index <= 1 {
        return base.to_owned();
    }
    let (stem, ext) = stem_and_ext(base);
    let name = match ext {
        Some(ext) => format!("{stem}.{index:06}.{ext}"),
        None => format!("{stem}.{index:06}"),
    };
    base.with_file_name(name)
}

fn stem_and_ext(base: &Path) -> (String, Option<String>) {
    let stem = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = base.extension().map(|e| e.to_string_lossy().into_owned());
    (stem, ext)
}

/// The segment index `name` has in the log whose first segment is named `base_name`.
fn index_of(name: &str, base: &Path) -> Option<u32> {
    let (stem, ext) = stem_and_ext(base);
    if base.file_name().is_some_and(|b| b.to_string_lossy() == name) {
        return Some(1);
    }
    let rest = name.strip_prefix(&stem)?.strip_prefix('.')?;
    let digits = match &ext {
        Some(ext) => rest.strip_suffix(ext.as_str())?.strip_suffix('.')?,
        None => rest,
    };
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|i| *i >= 2)
}

/// The existing segments of the log whose first segment is `base`, in chain order.
pub fn list(base: &Path) -> io::Result<Vec<(u32, PathBuf)>> {
    let dir = match base.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(i) = index_of(&name.to_string_lossy(), base) {
            out.push((i, dir.join(name)));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out)
}

/// The first segments (`x.jsonl` with no `x.NNNNNN.jsonl` form) of every log in `dir`.
pub fn logs_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".jsonl") else { continue };
        // `audit.000002.jsonl` belongs to `audit.jsonl`.
        let base = match stem.rsplit_once('.') {
            Some((s, digits))
                if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                dir.join(format!("{s}.jsonl"))
            }
            _ => path.clone(),
        };
        if !bases.contains(&base) {
            bases.push(base);
        }
    }
    bases.sort();
    Ok(bases)
}

/// The last good record of a segment and whatever follows it.
#[derive(Debug, Default)]
pub struct Tail {
    /// `seq` and line digest of the last complete, parseable record.
    pub last: Option<(u64, String)>,
    /// Bytes after the last good record (a torn write), 0 when the segment ends cleanly.
    pub torn_bytes: u64,
    pub len: u64,
}

/// Reads a segment's tail. A final line without its newline, or a final line that is not a
/// record, is a torn write.
pub fn tail(path: &Path) -> io::Result<Tail> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Tail::default()),
        Err(e) => return Err(e),
    };
    let len = bytes.len() as u64;
    let mut end = bytes.len();
    // Walk back over lines until one parses as a record.
    while end > 0 {
        let complete_end = if bytes[end - 1] == b'\n' {
            end - 1
        } else {
            // A trailing partial line: skip to the previous newline.
            match bytes[..end].iter().rposition(|b| *b == b'\n') {
                Some(nl) => {
                    end = nl + 1;
                    continue;
                }
                // The first line is partial: no record anywhere.
                None => break,
            }
        };
        let start = bytes[..complete_end].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let line = &bytes[start..complete_end];
        let seq = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("seq").and_then(Value::as_u64));
        if let Some(seq) = seq {
            return Ok(Tail {
                last: Some((seq, sha256_hex(line))),
                torn_bytes: len - end as u64,
                len,
            });
        }
        end = start;
    }
    // No line parsed as a record, and a partial first line is torn too: every byte is.
    Ok(Tail { last: None, torn_bytes: len, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_numbered_after_the_first() {
        let base = Path::new("/var/log/m365/audit.jsonl");
        assert_eq!(segment_path(base, 1), base);
        assert_eq!(segment_path(base, 2), Path::new("/var/log/m365/audit.000002.jsonl"));
        assert_eq!(index_of("audit.000002.jsonl", base), Some(2));
        assert_eq!(index_of("audit.jsonl", base), Some(1));
        assert_eq!(index_of("audit.2.jsonl", base), None);
        assert_eq!(index_of("other.000002.jsonl", base), None);
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("m365-segments-{}", uuid::Uuid::new_v4().simple()))
    }

    /// `cargo test` runs unit tests in the crate's directory, which holds `Cargo.toml`.
    #[test]
    fn a_relative_base_is_listed_from_the_working_directory() {
        let found = list(Path::new("Cargo.toml")).unwrap();
        assert_eq!(found, [(1, PathBuf::from("./Cargo.toml"))]);
    }

    #[test]
    fn a_missing_log_has_no_segments_and_an_unreadable_one_is_an_error() {
        let dir = temp_dir();
        assert!(list(&dir.join("audit.jsonl")).unwrap().is_empty());
        assert!(tail(&dir.join("audit.jsonl")).unwrap().last.is_none());
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("audit.jsonl");
        std::fs::write(&file, b"").unwrap();
        assert!(list(&file.join("audit.jsonl")).is_err(), "a file as the directory");
        assert!(tail(&dir).is_err(), "a directory as the segment");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The last good record, and everything after it as torn bytes.
    #[test]
    fn a_tail_is_the_last_record_and_the_bytes_after_it() {
        let dir = temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("audit.jsonl");
        let tail_of = |bytes: &[u8]| {
            std::fs::write(&file, bytes).unwrap();
            let tail = tail(&file).unwrap();
            (tail.last, tail.torn_bytes, tail.len)
        };
        let last = |seq, line: &str| Some((seq, sha256_hex(line.as_bytes())));
        assert_eq!(tail_of(b""), (None, 0, 0));
        assert_eq!(tail_of(br#"{"seq":1,"pr"#), (None, 12, 12), "a torn first record");
        assert_eq!(tail_of(b"{\"seq\":1}\n{\"seq\":2}\n{\"se"), (last(2, r#"{"seq":2}"#), 4, 24));
        assert_eq!(tail_of(b"{\"seq\":1}\nnot json\n"), (last(1, r#"{"seq":1}"#), 9, 19));
        assert_eq!(tail_of(b"{\"seq\":7}\n"), (last(7, r#"{"seq":7}"#), 0, 10));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
