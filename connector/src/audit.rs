//! The audit log: one JSON record per line, hash-chained, written durably, separate from the
//! diagnostic logs.
//!
//! Every record has `seq` (1, 2, ...), `prev` (hex SHA-256 of the previous line's bytes, 64
//! zeros for the first record) and `hash` (hex SHA-256 of the record's canonical JSON without
//! `hash`: keys sorted, compact). Editing a line breaks its `hash`; deleting or reordering lines
//! breaks `seq` and `prev`. [`verify`] reports the first broken record.
//!
//! Records carry tenant and user ids, tool names, argument *shapes* (keys and JSON types),
//! Graph request ids, outcomes, statuses and latencies; never a token, a secret, query text
//! (unless configured) or returned content. A write that fails makes the call fail (fail
//! closed).

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{
    clock::Clock,
    domain::{ObjectId, TenantId},
};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One auditable event. Serialized with `"event": "<snake_case name>"`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    TokenAccepted {
        tenant_id: TenantId,
        user_id: ObjectId,
        client_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        token_id: Option<String>,
    },
    TokenRefused {
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_id: Option<TenantId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_id: Option<ObjectId>,
    },
    OboExchange {
        tenant_id: TenantId,
        user_id: ObjectId,
        outcome: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_code: Option<String>,
        cache_hit: bool,
    },
    ToolCall {
        tenant_id: TenantId,
        user_id: ObjectId,
        tool: String,
        arguments: BTreeMap<String, &'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        query_text: Option<String>,
        graph_request_ids: Vec<String>,
        outcome: &'static str,
        status: u16,
        latency_ms: u64,
    },
}

/// The keys and JSON types of tool arguments, never their values.
pub fn argument_shape(arguments: Option<&Map<String, Value>>) -> BTreeMap<String, &'static str> {
    arguments
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let kind = match v {
                        Value::Null => "null",
                        Value::Bool(_) => "boolean",
                        Value::Number(_) => "number",
                        Value::String(_) => "string",
                        Value::Array(_) => "array",
                        Value::Object(_) => "object",
                    };
                    (k.clone(), kind)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why an audit record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("audit log {path} ends with an unreadable record (run `m365-connector audit verify`)")]
    Tail { path: PathBuf },
    #[error("audit write failed: {0}")]
    Write(#[from] std::io::Error),
    #[error("audit record could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

struct Chain {
    sink: Box<dyn Write + Send>,
    file: Option<File>,
    seq: u64,
    prev: String,
}

/// The append-only, hash-chained audit writer.
pub struct AuditLog {
    chain: Mutex<Chain>,
    fsync: bool,
    clock: Clock,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("fsync", &self.fsync).finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (or creates) the log and continues its chain from the last record.
    pub fn open(path: &Path, fsync: bool, clock: Clock) -> Result<Self, AuditError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| AuditError::Open { path: path.to_owned(), source })?;
        }
        let (seq, prev) = match File::open(path) {
            Ok(f) => {
                let mut last: Option<String> = None;
                for line in BufReader::new(f).lines() {
                    let line =
                        line.map_err(|source| AuditError::Open { path: path.to_owned(), source })?;
                    if !line.is_empty() {
                        last = Some(line);
                    }
                }
                match last {
                    None => (0, GENESIS.to_owned()),
                    Some(line) => {
                        let seq = serde_json::from_str::<Value>(&line)
                            .ok()
                            .and_then(|v| v.get("seq").and_then(Value::as_u64))
                            .ok_or_else(|| AuditError::Tail { path: path.to_owned() })?;
                        (seq, sha256_hex(line.as_bytes()))
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, GENESIS.to_owned()),
            Err(source) => return Err(AuditError::Open { path: path.to_owned(), source }),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| AuditError::Open { path: path.to_owned(), source })?;
        let sink = file
            .try_clone()
            .map_err(|source| AuditError::Open { path: path.to_owned(), source })?;
        Ok(Self {
            chain: Mutex::new(Chain { sink: Box::new(sink), file: Some(file), seq, prev }),
            fsync,
            clock,
        })
    }

    /// A log writing to any sink (tests inject a failing writer to check fail-closed).
    pub fn to_writer(sink: impl Write + Send + 'static, clock: Clock) -> Self {
        Self {
            chain: Mutex::new(Chain {
                sink: Box::new(sink),
                file: None,
                seq: 0,
                prev: GENESIS.to_owned(),
            }),
            fsync: false,
            clock,
        }
    }

    /// Appends one record: written, flushed and (if configured) fsynced before returning.
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let mut body = match serde_json::to_value(&event)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut chain = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        let seq = chain.seq + 1;
        body.insert("seq".into(), Value::from(seq));
        body.insert("prev".into(), Value::from(chain.prev.clone()));
        body.insert("time".into(), Value::from(self.clock.now().to_rfc3339()));
        // The canonical form is the record without `hash`: hash it before inserting.
        let hash = sha256_hex(&serde_json::to_vec(&body)?);
        body.insert("hash".into(), Value::from(hash));
        let mut line = serde_json::to_string(&body)?;
        let digest = sha256_hex(line.as_bytes());
        line.push('\n');
        chain.sink.write_all(line.as_bytes())?;
        chain.sink.flush()?;
        if self.fsync
            && let Some(f) = chain.file.as_ref()
        {
            f.sync_data()?;
        }
        // Only advance the chain once the record is down: a failed write leaves it intact.
        chain.seq = seq;
        chain.prev = digest;
        Ok(())
    }
}

/// `serde_json::Map` without `preserve_order` is a `BTreeMap`: serializing it sorts the keys,
/// which makes the canonical form reproducible by [`verify`].
fn record_hash(body: &Map<String, Value>) -> String {
    let mut without = body.clone();
    without.remove("hash");
    let canonical = serde_json::to_string(&Value::Object(without)).unwrap_or_default();
    sha256_hex(canonical.as_bytes())
}

fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// The verdict of [`verify`].
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok { records: u64 },
    Broken { line: usize, reason: String },
}

/// Checks a whole audit file: every line parses, `seq` counts up by one from 1, `prev` is the
/// hash of the previous line and `hash` matches the record.
pub fn verify(path: &Path) -> Result<Verdict, std::io::Error> {
    let file = File::open(path)?;
    let mut prev = GENESIS.to_owned();
    let mut records = 0u64;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        let n = i + 1;
        let broken = |reason: &str| Ok(Verdict::Broken { line: n, reason: reason.to_owned() });
        let Ok(Value::Object(record)) = serde_json::from_str::<Value>(&line) else {
            return broken("not a JSON object");
        };
        let Some(seq) = record.get("seq").and_then(Value::as_u64) else {
            return broken("missing seq");
        };
        if seq != records + 1 {
            return Ok(Verdict::Broken {
                line: n,
                reason: format!("seq {seq} follows {records}: a record was removed or reordered"),
            });
        }
        if record.get("prev").and_then(Value::as_str) != Some(prev.as_str()) {
            return broken(
                "prev does not match the previous line: a record was removed, edited or reordered",
            );
        }
        let Some(hash) = record.get("hash").and_then(Value::as_str) else {
            return broken("missing hash");
        };
        if hash != record_hash(&record) {
            return broken("hash does not match the record: the record was edited");
        }
        prev = sha256_hex(line.as_bytes());
        records += 1;
    }
    Ok(Verdict::Ok { records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digests_are_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn argument_shapes_keep_keys_and_types_only() {
        let args = json!({"query": "secret plans", "top": 5, "filters": {"a": 1}});
        let shape = argument_shape(args.as_object());
        assert_eq!(
            serde_json::to_string(&shape).unwrap(),
            r#"{"filters":"object","query":"string","top":"number"}"#
        );
    }

    #[test]
    fn a_failing_sink_fails_the_record() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = AuditLog::to_writer(Full, Clock::system());
        let err = log.record(AuditEvent::TokenRefused {
            reason: "expired",
            tenant_id: None,
            user_id: None,
        });
        assert!(matches!(err, Err(AuditError::Write(_))));
    }
}
