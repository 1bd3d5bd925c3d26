//! X — scale-out: two instances sharing a real redis-server.
use crate::conformance_test;

conformance_test!(x01_one_obo_exchange_per_sign_in_across_two_instances, "X01");
conformance_test!(x02_tenant_disabled_on_one_instance_is_refused_by_the_other, "X02");
conformance_test!(x03_per_user_rate_limit_holds_across_instances, "X03");
conformance_test!(x04_redis_outage_fails_no_call_and_l2_returns, "X04");
conformance_test!(x05_redis_holds_nothing_readable, "X05");
conformance_test!(x06_tenants_never_share_an_l2_entry, "X06");
conformance_test!(x07_a_copied_cache_blob_is_refused, "X07");
