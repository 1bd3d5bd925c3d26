//! The S scenarios: each records its tool outputs, compared here with insta snapshots.
//! Volatile fields are redacted: paging cursors (sealed with a per-run key and the clock).

/// Runs one S scenario and asserts every output it recorded against its snapshot.
macro_rules! snapshot_test {
    ($name:ident, $id:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() -> anyhow::Result<()> {
            let snapshots = conformance::scenarios::run_in_process_with_snapshots($id).await?;
            anyhow::ensure!(!snapshots.is_empty(), "{} recorded no output", $id);
            for (name, value) in snapshots {
                insta::assert_json_snapshot!(name.as_str(), value, {
                    ".**.next_cursor" => "[cursor]",
                    ".arguments.cursor" => "[cursor]",
                });
            }
            Ok(())
        }
    };
}

conformance::s_tools_tests!(snapshot_test);
