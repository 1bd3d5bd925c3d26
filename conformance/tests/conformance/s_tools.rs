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

snapshot_test!(s01_sharepoint_search, "S01");
snapshot_test!(s02_sharepoint_folder_search, "S02");
snapshot_test!(s03_outlook_email_search, "S03");
snapshot_test!(s04_outlook_calendar_search, "S04");
snapshot_test!(s05_find_meeting_availability, "S05");
snapshot_test!(s06_chat_message_search, "S06");
snapshot_test!(s07_read_resource, "S07");
