use crate::conformance_test;

conformance_test!(d01_no_mutating_graph_request_after_a_mixed_run, "D01");
conformance_test!(d02_no_content_caching, "D02");
conformance_test!(d03_every_tool_is_read_only, "D03");
conformance_test!(d04_every_call_is_audited_and_no_secret_is_logged, "D04");
conformance_test!(d05_returned_content_is_marked_untrusted, "D05");
