use crate::conformance_test;

conformance_test!(s01_sharepoint_search, "S01");
conformance_test!(s02_sharepoint_folder_search, "S02");
conformance_test!(s03_outlook_email_search, "S03");
conformance_test!(s04_outlook_calendar_search, "S04");
conformance_test!(s05_find_meeting_availability, "S05");
conformance_test!(s06_chat_message_search, "S06");
conformance_test!(s07_read_resource, "S07");
