use crate::conformance_test;

conformance_test!(t01_many_calls_one_obo_exchange, "T01");
conformance_test!(t02_obo_token_near_expiry_is_renewed_before_use, "T02");
conformance_test!(t03_expired_user_token_refresh_and_continue, "T03");
conformance_test!(t04_refresh_token_idle_past_90_days_needs_fresh_sign_in, "T04");
conformance_test!(t05_token_lifetime_policy_is_honoured, "T05");
conformance_test!(t06_concurrent_first_calls_make_one_exchange, "T06");
conformance_test!(t07_token_cache_at_rest_holds_no_plaintext, "T07");
conformance_test!(t08_cache_entries_are_keyed_by_tenant_and_user, "T08");
conformance_test!(t08_same_oid_two_tenants_nothing_crosses, "T08/same-oid");
