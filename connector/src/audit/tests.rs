//! The audit log on real files (the chain, the writer, `verify`), on an in-memory sink (the
//! handle's answers), and the request trace.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use uuid::Uuid;

use super::*;

fn call_record(i: usize) -> AuditEvent {
    AuditEvent::ToolCall {
        tenant_id: TenantId::from(Uuid::from_u128(1)),
        user_id: ObjectId::from(Uuid::from_u128(2)),
        client_id: "client".into(),
        token_id: Some("uti".into()),
        request_id: format!("request-{i}"),
        peer: None,
        tool: "get_me".into(),
        arguments: Default::default(),
        query_text: None,
        obo: OboUse::CacheHit,
        obo_error: None,
        graph_request_ids: vec![format!("req-{i}")],
        outcome: Outcome::Ok,
        status: 200,
        latency_ms: i as u64,
    }
}

/// A directory that does not exist yet (the log creates it) and is removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("m365-audit-unit-{}", Uuid::new_v4().simple())))
    }

    fn log(&self) -> PathBuf {
        self.0.join("audit.jsonl")
    }

    fn segment(&self, index: u32) -> PathBuf {
        segment_path(&self.log(), index)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn options(path: &Path) -> WriterOptions {
    WriterOptions { fsync: false, ..WriterOptions::new(path) }
}

async fn write_records(options: WriterOptions, n: usize) {
    let log = AuditLog::open(options, Clock::system()).unwrap();
    for i in 0..n {
        log.record(&call_record(i)).await.unwrap();
    }
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Every record of the log in `dir`, all segments in order.
fn all_records(dir: &TempDir) -> Vec<Value> {
    segments::list(&dir.log()).unwrap().iter().flat_map(|(_, path)| lines_of(path)).collect()
}

fn ok(verdict: Verdict) -> Report {
    match verdict {
        Verdict::Ok(report) => report,
        broken => panic!("expected a good chain, got {broken:?}"),
    }
}

fn broken(verdict: Verdict) -> (usize, String) {
    match verdict {
        Verdict::Broken { line, reason, .. } => (line, reason),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

fn key(byte: u8) -> Key32 {
    use base64::Engine as _;
    Key32::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap()
}

/// A fault hook counting fsyncs, failing the next one when `fail` is set.
fn sync_hook(syncs: Arc<AtomicUsize>, fail: Arc<AtomicBool>) -> FaultHook {
    Arc::new(move |point| {
        if point == FaultPoint::Sync {
            syncs.fetch_add(1, Ordering::SeqCst);
            if fail.swap(false, Ordering::SeqCst) {
                return Err(std::io::Error::other("EIO"));
            }
        }
        Ok(())
    })
}

/// Polls `done` every 5 ms and fails after 10 s, so a broken writer fails a test, not hangs it.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

// ---------------------------------------------------------------------------------------------
// The chain and `verify`

#[tokio::test]
async fn records_chain_by_hash_and_verify_ok() {
    let dir = TempDir::new();
    write_records(options(&dir.log()), 3).await;
    // Re-opening continues the chain, in the same segment.
    write_records(options(&dir.log()), 2).await;
    assert_eq!(ok(verify(&dir.0, None).unwrap()), Report { records: 5, segments: 1, torn: vec![] });
    assert!(!dir.segment(2).exists());
    let lines = lines_of(&dir.log());
    assert_eq!(lines[0]["prev"], GENESIS);
    assert_eq!(lines[4]["seq"], 5);
    assert_eq!(lines[0]["event"], "tool_call");
}

#[tokio::test]
async fn verify_reports_an_edited_line() {
    let dir = TempDir::new();
    write_records(options(&dir.log()), 4).await;
    let text = std::fs::read_to_string(dir.log()).unwrap();
    let edited = text.replacen("\"latency_ms\":1,", "\"latency_ms\":9,", 1);
    assert_ne!(edited, text);
    std::fs::write(dir.log(), edited).unwrap();
    let (line, reason) = broken(verify(&dir.log(), None).unwrap());
    assert_eq!(line, 2);
    assert!(reason.contains("edited"), "{reason}");
}

#[tokio::test]
async fn verify_reports_a_deleted_line() {
    let dir = TempDir::new();
    write_records(options(&dir.log()), 4).await;
    let text = std::fs::read_to_string(dir.log()).unwrap();
    let kept: Vec<&str> =
        text.lines().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| l).collect();
    std::fs::write(dir.log(), kept.join("\n") + "\n").unwrap();
    let (line, reason) = broken(verify(&dir.log(), None).unwrap());
    assert_eq!(line, 2);
    assert!(reason.contains("removed"), "{reason}");
}

#[tokio::test]
async fn a_keyed_chain_cannot_be_rewritten_without_the_key() {
    let dir = TempDir::new();
    let key = key(9);
    write_records(WriterOptions { key: Some(key.clone()), ..options(&dir.log()) }, 3).await;
    assert_eq!(ok(verify(&dir.0, Some(&key)).unwrap()).records, 3);
    assert_eq!(broken(verify(&dir.0, Some(&self::key(8))).unwrap()).0, 1);
    let (line, reason) = broken(verify(&dir.0, None).unwrap());
    assert_eq!(line, 1);
    assert!(reason.contains("keyed"), "{reason}");

    // Someone without the key drops the last record and rewrites the second with a correct
    // plain SHA-256 chain: the unkeyed check would pass, the keyed one does not.
    let mut records = lines_of(&dir.log());
    records.truncate(2);
    let prev = sha256_hex(records[0].to_string().as_bytes());
    let rewritten = &mut records[1];
    rewritten["latency_ms"] = json!(0);
    rewritten.as_object_mut().unwrap().remove("keyed");
    rewritten["prev"] = json!(prev);
    let mut body = rewritten.clone();
    body.as_object_mut().unwrap().remove("hash");
    rewritten["hash"] = json!(sha256_hex(body.to_string().as_bytes()));
    std::fs::write(dir.log(), format!("{}\n{}\n", records[0], records[1])).unwrap();
    let (line, reason) = broken(verify(&dir.0, Some(&key)).unwrap());
    assert_eq!(line, 2);
    assert!(reason.contains("not keyed"), "{reason}");
}

// ---------------------------------------------------------------------------------------------
// The writer

#[tokio::test]
async fn records_that_arrive_together_share_one_fsync() {
    let dir = TempDir::new();
    let syncs = Arc::new(AtomicUsize::new(0));
    let options = WriterOptions {
        fsync: true,
        faults: Some(sync_hook(syncs.clone(), Arc::default())),
        ..WriterOptions::new(dir.log())
    };
    let log = Arc::new(AuditLog::open(options, Clock::system()).unwrap());
    let writers: Vec<_> = (0..500)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.record(&call_record(i)).await.unwrap() })
        })
        .collect();
    let mut seqs: Vec<u64> = Vec::new();
    for w in writers {
        seqs.push(w.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=500).collect::<Vec<_>>(), "every caller got its own seq");
    let syncs = syncs.load(Ordering::SeqCst);
    assert!(syncs < 250, "500 concurrent records took {syncs} fsyncs");
    assert_eq!(ok(verify(&dir.0, None).unwrap()).records, 500);
}

/// One batch takes at most `MAX_BATCH` records: with the writer held on its first write while
/// `2 * MAX_BATCH + 1` more records queue, they take exactly three more writes.
#[tokio::test]
async fn a_batch_takes_at_most_max_batch_records() {
    let dir = TempDir::new();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Mutex::new(held);
    let writes = Arc::new(AtomicUsize::new(0));
    let counted = writes.clone();
    let options = WriterOptions {
        faults: Some(Arc::new(move |point| {
            if point == FaultPoint::Write && counted.fetch_add(1, Ordering::SeqCst) == 0 {
                let _ = held.lock().unwrap().recv();
            }
            Ok(())
        })),
        ..options(&dir.log())
    };
    let log = Arc::new(AuditLog::open(options, Clock::system()).unwrap());
    let record = |i| {
        let log = log.clone();
        tokio::spawn(async move { log.record(&call_record(i)).await.unwrap() })
    };
    let first = record(0);
    wait_until("the writer holds the first record", || writes.load(Ordering::SeqCst) > 0).await;
    let queued = 2 * writer::MAX_BATCH + 1;
    let rest: Vec<_> = (1..=queued).map(record).collect();
    wait_until("the rest are queued", || log.queue.capacity() <= QUEUE_CAPACITY - queued).await;
    release.send(()).unwrap();
    first.await.unwrap();
    for record in rest {
        record.await.unwrap();
    }
    assert_eq!(writes.load(Ordering::SeqCst), 4);
    assert_eq!(ok(verify(&dir.0, None).unwrap()).records, queued as u64 + 1);
}

#[tokio::test]
async fn a_failed_fsync_fails_its_records_and_never_repeats_a_seq() {
    let dir = TempDir::new();
    let fail = Arc::new(AtomicBool::new(false));
    let options = WriterOptions {
        fsync: true,
        faults: Some(sync_hook(Arc::default(), fail.clone())),
        ..WriterOptions::new(dir.log())
    };
    let log = AuditLog::open(options, Clock::system()).unwrap();
    assert_eq!(log.record(&call_record(0)).await.unwrap(), 1);
    fail.store(true, Ordering::SeqCst);
    assert!(log.record(&call_record(1)).await.is_err(), "a failed fsync fails the call");
    // The failed record's bytes reached the file; the next one must not reuse its seq.
    assert_eq!(log.record(&call_record(2)).await.unwrap(), 3);
    let seqs: Vec<u64> = all_records(&dir).iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let report = ok(verify(&dir.0, None).unwrap());
    assert_eq!((report.records, report.segments), (3, 2), "continued in a new segment");
}

/// With fsync, each new segment's directory is synced; a segment whose directory sync fails
/// is refused with its records and created again by the next record, so no gap is left.
#[tokio::test]
async fn a_segment_whose_directory_sync_fails_is_refused_and_created_again() {
    let dir = TempDir::new();
    let (dir_syncs, fail) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(true)));
    let (counted, failing) = (dir_syncs.clone(), fail.clone());
    let options = WriterOptions {
        fsync: true,
        rotate_bytes: 1,
        faults: Some(Arc::new(move |point| {
            if point == FaultPoint::SyncDir {
                counted.fetch_add(1, Ordering::SeqCst);
                if failing.swap(false, Ordering::SeqCst) {
                    return Err(std::io::Error::other("EIO"));
                }
            }
            Ok(())
        })),
        ..WriterOptions::new(dir.log())
    };
    let log = AuditLog::open(options, Clock::system()).unwrap();
    assert!(log.record(&call_record(0)).await.is_err(), "no durable segment, no record");
    assert!(!dir.log().exists(), "the refused segment was removed");
    assert_eq!(log.record(&call_record(1)).await.unwrap(), 1);
    assert_eq!(log.record(&call_record(2)).await.unwrap(), 2, "in a second segment");
    assert_eq!(dir_syncs.load(Ordering::SeqCst), 3, "one per segment created");
    let report = ok(verify(&dir.0, None).unwrap());
    assert_eq!((report.records, report.segments), (2, 2));
}

/// A file system that cannot sync directories at all (EINVAL) does not stop the log.
#[tokio::test]
async fn a_file_system_that_cannot_sync_directories_still_takes_records() {
    let dir = TempDir::new();
    let options = WriterOptions {
        fsync: true,
        faults: Some(Arc::new(|point| match point {
            FaultPoint::SyncDir => Err(std::io::ErrorKind::InvalidInput.into()),
            _ => Ok(()),
        })),
        ..WriterOptions::new(dir.log())
    };
    let log = AuditLog::open(options, Clock::system()).unwrap();
    assert_eq!(log.record(&call_record(0)).await.unwrap(), 1);
    assert_eq!(ok(verify(&dir.0, None).unwrap()).records, 1);
}

#[tokio::test]
async fn segments_rotate_by_size_and_the_chain_runs_through_them() {
    let dir = TempDir::new();
    let rotating = WriterOptions { rotate_bytes: 64 * 1024, ..options(&dir.log()) };
    write_records(rotating.clone(), 600).await;
    // Reopening continues in the last segment.
    write_records(rotating, 10).await;
    let report = ok(verify(&dir.0, None).unwrap());
    assert_eq!(report.records, 610);
    assert!(report.segments >= 3, "{} segments", report.segments);
    assert!(dir.segment(2).exists());
    #[cfg(unix)]
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "segments are readable by their owner only");
    }
    // Any segment names its whole log; a log with a six-letter part in its name is its own.
    let from_segment = ok(verify(&dir.segment(2), None).unwrap());
    assert_eq!((from_segment.records, from_segment.segments), (report.records, report.segments));
    write_records(options(&dir.0.join("audit.backup.jsonl")), 2).await;
    assert_eq!(ok(verify(&dir.0, None).unwrap()).records, 612);
    // Removing a middle segment breaks the chain.
    std::fs::remove_file(dir.segment(2)).unwrap();
    assert!(broken(verify(&dir.0, None).unwrap()).1.contains("removed"));
}

/// A reopened segment is continued while it is smaller than `rotate_bytes`, not once it is
/// exactly that size.
#[tokio::test]
async fn a_segment_of_exactly_the_rotation_size_is_not_continued() {
    let dir = TempDir::new();
    write_records(options(&dir.log()), 1).await;
    let one = file_len(&dir.log());
    write_records(WriterOptions { rotate_bytes: one + 1, ..options(&dir.log()) }, 1).await;
    assert_eq!(lines_of(&dir.log()).len(), 2, "one byte under the size: continued");
    let two = file_len(&dir.log());
    write_records(WriterOptions { rotate_bytes: two, ..options(&dir.log()) }, 1).await;
    assert_eq!((file_len(&dir.log()), lines_of(&dir.segment(2)).len()), (two, 1));
    assert_eq!(ok(verify(&dir.0, None).unwrap()).records, 3);
}

/// A file already at the next segment's name is skipped; any other failure to create the
/// next segment fails the record (and does not loop).
#[tokio::test]
async fn a_taken_segment_name_is_skipped_and_a_missing_directory_fails_the_record() {
    let dir = TempDir::new();
    let log =
        AuditLog::open(WriterOptions { rotate_bytes: 1, ..options(&dir.log()) }, Clock::system())
            .unwrap();
    assert_eq!(log.record(&call_record(0)).await.unwrap(), 1);
    std::fs::write(dir.segment(2), b"").unwrap();
    assert_eq!(log.record(&call_record(1)).await.unwrap(), 2);
    assert_eq!(lines_of(&dir.segment(3))[0]["seq"], 2);
    std::fs::remove_dir_all(&dir.0).unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(10), log.record(&call_record(2))).await;
    assert!(matches!(failed, Ok(Err(AuditError::Commit(_)))), "{failed:?}");
}

#[tokio::test]
async fn a_torn_last_line_is_reported_and_the_log_continues_in_a_new_segment() {
    let dir = TempDir::new();
    write_records(options(&dir.log()), 3).await;
    // A crash in the middle of a write leaves half a record.
    let mut bytes = std::fs::read(dir.log()).unwrap();
    bytes.extend_from_slice(br#"{"event":"tool_call","seq":4,"pre"#);
    std::fs::write(dir.log(), bytes).unwrap();
    write_records(options(&dir.log()), 2).await;
    let resumed = lines_of(&dir.segment(2));
    assert_eq!(resumed[0]["event"], "log_resumed");
    assert_eq!(resumed[0]["seq"], 4);
    assert_eq!(resumed[0]["torn_segment"], "audit.jsonl");
    let report = ok(verify(&dir.0, None).unwrap());
    assert_eq!(report.records, 6);
    assert_eq!(report.torn, vec![(dir.log(), 33)]);
}

/// A crash during the first write of a segment leaves a segment holding only a torn record:
/// the chain continues from the previous segment, in a new one.
#[tokio::test]
async fn a_segment_holding_only_a_torn_record_is_not_continued() {
    let dir = TempDir::new();
    write_records(WriterOptions { rotate_bytes: 1, ..options(&dir.log()) }, 2).await;
    std::fs::write(dir.segment(3), br#"{"event":"tool_call","seq":3,"pre"#).unwrap();
    write_records(options(&dir.log()), 1).await;
    let resumed = &lines_of(&dir.segment(4))[0];
    assert_eq!((&resumed["event"], &resumed["seq"]), (&json!("log_resumed"), &json!(3)));
    let report = ok(verify(&dir.0, None).unwrap());
    assert_eq!((report.records, report.torn), (4, vec![(dir.segment(3), 33)]));
}

#[cfg(unix)]
#[tokio::test]
async fn a_reopened_segment_is_made_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    write_records(options(&dir.log()), 1).await;
    std::fs::set_permissions(dir.log(), std::fs::Permissions::from_mode(0o644)).unwrap();
    write_records(options(&dir.log()), 1).await;
    assert_eq!(std::fs::metadata(dir.log()).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn writer_options_show_whether_keyed_but_never_the_key() {
    let options = WriterOptions { key: Some(key(7)), ..WriterOptions::new("/var/log/audit.jsonl") };
    assert_eq!(
        format!("{options:?}"),
        r#"WriterOptions { path: "/var/log/audit.jsonl", fsync: true, rotate_bytes: 67108864, keyed: true, .. }"#
    );
}

// ---------------------------------------------------------------------------------------------
// The handle, on an in-memory sink

/// A sink whose bytes the test can read while the writer holds it.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn records(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap();
        bytes.split(|b| *b == b'\n').filter_map(|l| serde_json::from_slice(l).ok()).collect()
    }
}

fn sink_log() -> (Sink, AuditLog) {
    let sink = Sink::default();
    (sink.clone(), AuditLog::to_writer(sink, Clock::system()))
}

#[tokio::test]
async fn each_record_gets_the_next_seq_and_carries_its_event_and_time() {
    let (sink, log) = sink_log();
    assert_eq!(format!("{log:?}"), "AuditLog { .. }");
    assert_eq!(log.record(&call_record(0)).await.unwrap(), 1);
    assert_eq!(log.record(&call_record(1)).await.unwrap(), 2);
    log.record_all(&[call_record(2), call_record(3)]).await.unwrap();
    let records = sink.records();
    let seqs: Vec<_> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record["event"], "tool_call");
        assert_eq!(record["request_id"], format!("request-{i}"));
        assert!(record["time"].as_str().is_some_and(|t| t.contains('T')), "{record}");
    }
}

#[tokio::test]
async fn a_failing_sink_fails_the_record() {
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
    let err = log.record(&AuditEvent::LogResumed { torn_segment: "x".into(), torn_bytes: 1 }).await;
    assert!(matches!(err, Err(AuditError::Commit(_))), "{err:?}");
    let err = log.record_all(&[call_record(0)]).await;
    assert!(matches!(err, Err(AuditError::Commit(_))), "{err:?}");
}

#[tokio::test]
async fn a_detached_record_is_written_without_a_waiter() {
    let (sink, log) = sink_log();
    Arc::new(log).record_detached(call_record(0));
    wait_until("the record is written", || !sink.records().is_empty()).await;
    assert_eq!(sink.records().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The request trace

#[tokio::test]
async fn a_trace_commits_what_its_calls_pushed_and_counts_them() {
    let (sink, log) = sink_log();
    let trace = RequestTrace::new(RequestTrace::new_request_id(), None, None);
    trace.commit(&log).await.unwrap();
    assert_eq!((trace.calls_begun(), sink.records().len()), (0, 0));
    for i in 0..2 {
        trace.call_begun();
        trace.push(call_record(i));
    }
    trace.commit(&log).await.unwrap();
    assert_eq!((trace.calls_begun(), sink.records().len()), (2, 2));
    trace.commit(&log).await.unwrap();
    assert_eq!(sink.records().len(), 2, "committed records are not written twice");
}

#[tokio::test]
async fn the_trace_is_current_only_inside_its_scope() {
    let id = RequestTrace::new_request_id();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
    assert_ne!(id, RequestTrace::new_request_id());
    let trace = Arc::new(RequestTrace::new(id.clone(), None, None));
    let inside = trace.scope(async { RequestTrace::current().map(|t| t.request_id.clone()) }).await;
    assert_eq!(inside, Some(id));
    assert!(RequestTrace::current().is_none());
}

#[test]
fn the_strongest_graph_token_use_wins_and_the_error_code_is_kept() {
    let trace = RequestTrace::new("r".into(), None, None);
    assert_eq!(trace.obo(), (OboUse::None, None));
    trace.note_obo(true, false, None);
    assert_eq!(trace.obo(), (OboUse::CacheHit, None));
    trace.note_obo(false, true, None);
    assert_eq!(trace.obo().0, OboUse::Coalesced);
    trace.note_obo(false, false, Some("AADSTS50173"));
    assert_eq!(trace.obo(), (OboUse::Exchange, Some("AADSTS50173".into())));
    trace.note_obo(true, false, None);
    assert_eq!(trace.obo().0, OboUse::Exchange, "a weaker use does not replace a stronger");
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_call_is_a_timeout_from_its_deadline_on() {
    let now = tokio::time::Instant::now();
    let outcome = |deadline| RequestTrace::new("r".into(), None, deadline).abandoned_outcome();
    assert_eq!(outcome(None), Outcome::Cancelled);
    assert_eq!(outcome(Some(now + Duration::from_millis(1))), Outcome::Cancelled);
    assert_eq!(outcome(Some(now)), Outcome::Timeout);
    assert_eq!(outcome(Some(now - Duration::from_millis(1))), Outcome::Timeout);
}

// ---------------------------------------------------------------------------------------------
// Labels, shapes and hashes

#[test]
fn every_outcome_label_maps_back_to_its_outcome() {
    use Outcome::*;
    let all = [
        Ok,
        InvalidParams,
        PolicyRefused,
        Refused,
        ClaimsChallenge,
        GraphError,
        NotFound,
        Error,
        Cancelled,
        Timeout,
    ];
    for outcome in all {
        assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
        assert_eq!(Outcome::from(outcome.as_str()), outcome);
    }
    for alias in ["invalid", "invalid_arguments"] {
        assert_eq!(Outcome::from(alias), InvalidParams);
    }
    assert_eq!(Outcome::from("something new"), Error);
}

#[test]
fn argument_shapes_keep_keys_and_types_only() {
    let args = json!({"query": "secret plans", "top": 5, "filters": {"a": 1}, "all": true,
                      "ids": [1], "none": null});
    let shape = argument_shape(args.as_object());
    assert_eq!(
        serde_json::to_string(&shape).unwrap(),
        r#"{"all":"boolean","filters":"object","ids":"array","none":"null","query":"string","top":"number"}"#
    );
    assert!(argument_shape(None).is_empty());
}

#[test]
fn digests_are_lowercase_hex_sha256_and_keyed_ones_hmac_sha256() {
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(sha256_hex(b"abc"), abc);
    assert_eq!(chain_hash(b"abc", None), abc);
    // HMAC-SHA256 of `{}` under 32 zero bytes (Python's `hmac` module).
    assert_eq!(
        chain_hash(b"{}", Some(&key(0))),
        "22f8eea909400af98adf3681a9f31923ef6b7fcba4abb553d92823a3e9d5c25e"
    );
}
