use crate::conformance_test;

conformance_test!(f01_throttling_is_honoured_and_reported, "F01");
conformance_test!(f02_server_errors_are_bounded_and_isolated, "F02");
conformance_test!(f03_entra_unavailable_then_recovery, "F03");
conformance_test!(f04_jwks_down_cached_keys_keep_working, "F04");
conformance_test!(f05_bad_requests_get_protocol_errors, "F05");
conformance_test!(f06_foreign_uris_are_refused_without_outbound_requests, "F06");
conformance_test!(f07_odata_and_kql_metacharacters_are_escaped, "F07");
conformance_test!(f08_entra_request_loop_is_reported_without_a_hot_loop, "F08");
conformance_test!(f09_a_hanging_entra_is_reported_in_bounded_time, "F09");
conformance_test!(f10_a_dropped_entra_connection_is_reported, "F10");
conformance_test!(f11_downloads_come_from_the_download_host_without_a_bearer, "F11");
