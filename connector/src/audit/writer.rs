//! The writer thread: takes every queued record, chains them, writes them with one `write` and
//! one `fsync` (group commit), answers their callers, and rotates segments by size.
//!
//! After a failed write or fsync nobody knows which bytes reached the disk, so the writer
//! re-reads the segment's tail before the next batch and continues after the last record that
//! is really there, in a new segment: a `seq` is never written twice.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{AuditError, AuditEvent, GENESIS, Submission, chain_hash, segments, sha256_hex};
use crate::{clock::Clock, key::Key32};

/// Records committed together at most (one write, one fsync).
pub(super) const MAX_BATCH: usize = 1024;

/// Where a fault can be injected (tests of the failure paths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    Write,
    Sync,
    /// The fsync of the directory a new segment was created in.
    SyncDir,
}

/// Called before each write and fsync; an error is treated as that operation failing.
pub type FaultHook = Arc<dyn Fn(FaultPoint) -> io::Result<()> + Send + Sync>;

/// How the log is kept on disk.
#[derive(Clone)]
pub struct WriterOptions {
    /// The first segment; later ones are numbered next to it.
    pub path: PathBuf,
    pub fsync: bool,
    /// A segment at least this large is closed after the batch that reached the size.
    pub rotate_bytes: u64,
    /// Chain with HMAC-SHA256 under this key instead of SHA-256.
    pub key: Option<Key32>,
    /// Test hook: fail writes or fsyncs on demand.
    pub faults: Option<FaultHook>,
}

impl WriterOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            fsync: true,
            rotate_bytes: 64 * 1024 * 1024,
            key: None,
            faults: None,
        }
    }
}

impl std::fmt::Debug for WriterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterOptions")
            .field("path", &self.path)
            .field("fsync", &self.fsync)
            .field("rotate_bytes", &self.rotate_bytes)
            .field("keyed", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

struct Segment {
    file: File,
    index: u32,
    len: u64,
}

enum Target {
    Files { options: WriterOptions, segment: Option<Segment>, last_index: u32, recover: bool },
    Sink(Box<dyn Write + Send>),
}

pub(super) struct Writer {
    target: Target,
    seq: u64,
    prev: String,
    key: Option<Key32>,
}

impl Writer {
    /// Opens the log: finds its last segment and the chain head. A torn tail is reported and
    /// the log continues in a new segment that starts with a `log_resumed` record.
    pub fn open(mut options: WriterOptions, clock: Clock) -> Result<Self, AuditError> {
        let given = options.path.clone();
        let open_err = |source| AuditError::Open { path: given.clone(), source };
        // Absolute from here on: every segment has a directory to create and to sync.
        let base = std::path::absolute(&options.path).map_err(open_err)?;
        options.path = base.clone();
        if let Some(parent) = base.parent() {
            std::fs::create_dir_all(parent).map_err(open_err)?;
        }
        let existing = segments::list(&base).map_err(open_err)?;
        let last_index = existing.last().map_or(0, |(i, _)| *i);
        let (mut seq, mut prev) = (0, GENESIS.to_owned());
        let mut torn: Option<(PathBuf, u64)> = None;
        let mut continue_in: Option<(u32, u64)> = None;
        // Find the chain head, walking back over segments that hold no complete record.
        for (n, (index, path)) in existing.iter().enumerate().rev() {
            let tail = segments::tail(path).map_err(open_err)?;
            let newest = n + 1 == existing.len();
            if newest && tail.torn_bytes > 0 {
                torn = Some((path.clone(), tail.torn_bytes));
            } else if newest {
                continue_in = Some((*index, tail.len));
            }
            if let Some((s, digest)) = tail.last {
                (seq, prev) = (s, digest);
                break;
            }
        }
        let key = options.key.clone();
        let mut writer = Self {
            target: Target::Files { options, segment: None, last_index, recover: false },
            seq,
            prev,
            key,
        };
        if let Target::Files { options, segment, .. } = &mut writer.target {
            match continue_in {
                Some((index, len)) if len < options.rotate_bytes => {
                    let path = segments::segment_path(&options.path, index);
                    let file = OpenOptions::new().append(true).open(&path).map_err(open_err)?;
                    restrict(&file);
                    *segment = Some(Segment { file, index, len });
                }
                _ => {}
            }
        }
        if let Some((path, bytes)) = torn {
            tracing::error!(
                segment = %path.display(),
                torn_bytes = bytes,
                "The audit log ends with a torn record (a crash mid-write?); continuing in a new segment"
            );
            let event = AuditEvent::LogResumed {
                torn_segment: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                torn_bytes: bytes,
            };
            let mut body = match serde_json::to_value(&event)? {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            body.insert("time".into(), Value::from(clock.now().to_rfc3339()));
            writer.commit(vec![body]).map_err(|e| AuditError::Commit(e.to_string().into()))?;
        }
        Ok(writer)
    }

    pub fn to_sink(sink: Box<dyn Write + Send>) -> Self {
        Self { target: Target::Sink(sink), seq: 0, prev: GENESIS.to_owned(), key: None }
    }

    /// Runs the writer on its own thread until every [`super::AuditLog`] handle is gone.
    pub fn spawn(mut self, mut queue: mpsc::Receiver<Submission>) -> Result<(), AuditError> {
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                let mut batch: Vec<Submission> = Vec::with_capacity(64);
                while let Some(first) = queue.blocking_recv() {
                    batch.push(first);
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(s) => batch.push(s),
                            Err(_) => break,
                        }
                    }
                    let (bodies, waiting): (Vec<_>, Vec<_>) =
                        batch.drain(..).map(|s| (s.body, s.done)).unzip();
                    match self.commit(bodies) {
                        Ok(first_seq) => {
                            for (i, done) in waiting.into_iter().enumerate() {
                                let _ = done.send(Ok(first_seq + i as u64));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "Audit commit failed");
                            let message: Arc<str> = e.to_string().into();
                            for done in waiting {
                                let _ = done.send(Err(message.clone()));
                            }
                        }
                    }
                }
            })
            .map(|_| ())
            .map_err(|source| AuditError::Open { path: PathBuf::from("audit-writer"), source })
    }

    /// Chains, writes and syncs one batch; returns the first record's `seq`. The chain only
    /// advances once the batch is down.
    fn commit(&mut self, bodies: Vec<Map<String, Value>>) -> io::Result<u64> {
        self.ensure_segment()?;
        let first = self.seq + 1;
        let mut seq = self.seq;
        let mut prev = self.prev.clone();
        let mut buffer = Vec::with_capacity(bodies.len() * 512);
        for mut body in bodies {
            seq += 1;
            body.insert("seq".into(), Value::from(seq));
            body.insert("prev".into(), Value::from(prev));
            if self.key.is_some() {
                body.insert("keyed".into(), Value::Bool(true));
            }
            let canonical = serde_json::to_vec(&body).map_err(io::Error::other)?;
            body.insert("hash".into(), Value::from(chain_hash(&canonical, self.key.as_ref())));
            let line = serde_json::to_vec(&body).map_err(io::Error::other)?;
            prev = sha256_hex(&line);
            buffer.extend_from_slice(&line);
            buffer.push(b'\n');
        }
        match &mut self.target {
            Target::Sink(sink) => {
                sink.write_all(&buffer)?;
                sink.flush()?;
            }
            Target::Files { options, segment, recover, .. } => {
                let Some(seg) = segment.as_mut() else {
                    return Err(io::Error::other("no open audit segment"));
                };
                let fault = |point| options.faults.as_ref().map_or(Ok(()), |hook| hook(point));
                let written = fault(FaultPoint::Write)
                    .and_then(|()| seg.file.write_all(&buffer))
                    .and_then(|()| {
                        if options.fsync {
                            fault(FaultPoint::Sync).and_then(|()| seg.file.sync_data())
                        } else {
                            Ok(())
                        }
                    });
                if let Err(e) = written {
                    // Some of the batch may be on disk: find out before the next batch.
                    *recover = true;
                    return Err(e);
                }
                seg.len += buffer.len() as u64;
                if seg.len >= options.rotate_bytes {
                    *segment = None;
                }
            }
        }
        self.seq = seq;
        self.prev = prev;
        Ok(first)
    }

    /// Opens the next segment when none is open; after a failure, first re-reads what the
    /// failed segment really holds and continues the chain from there.
    fn ensure_segment(&mut self) -> io::Result<()> {
        let Target::Files { options, segment, last_index, recover } = &mut self.target else {
            return Ok(());
        };
        if *recover {
            // Only a failed write to an open segment sets `recover`, so the segment is there,
            // or (when reading its tail failed before) it is still the last one opened.
            let failed = segment.take().map_or(*last_index, |s| s.index);
            let tail = segments::tail(&segments::segment_path(&options.path, failed))?;
            if let Some((seq, digest)) = tail.last
                && seq >= self.seq
            {
                self.seq = seq;
                self.prev = digest;
            }
            *recover = false;
        }
        if segment.is_some() {
            return Ok(());
        }
        loop {
            let index = *last_index + 1;
            let path = segments::segment_path(&options.path, index);
            match create_segment(&path, options) {
                Ok(file) => {
                    *last_index = index;
                    *segment = Some(Segment { file, index, len: 0 });
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => *last_index = index,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Creates a segment readable by its owner only. With `fsync`, the directory is synced too, so
/// the segment's name survives a crash with the records written to it; when that fails, the
/// segment is removed again and the error returned (the records fail, and the next attempt
/// creates the same segment). A file system that cannot sync directories (EINVAL) is not a
/// failure.
fn create_segment(path: &Path, options: &WriterOptions) -> io::Result<File> {
    let mut open = OpenOptions::new();
    open.append(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    let file = open.open(path)?;
    // Directories cannot be opened as files to sync them on every platform; on unix they can.
    // The path is absolute (`Writer::open`), so it has a parent.
    #[cfg(unix)]
    if options.fsync
        && let Some(dir) = path.parent()
    {
        let fault = options.faults.as_ref().map_or(Ok(()), |hook| hook(FaultPoint::SyncDir));
        match fault.and_then(|()| File::open(dir)?.sync_all()) {
            // Some file systems cannot sync a directory at all (EINVAL): nothing more to do.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
            Ok(()) => {}
        }
    }
    Ok(file)
}

/// Segments written by older versions may be world-readable: tighten them when reopened.
fn restrict(file: &File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
}
