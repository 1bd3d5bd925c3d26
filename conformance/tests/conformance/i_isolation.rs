use crate::conformance_test;

conformance_test!(i01_cross_tenant_uri_is_refused, "I01");
conformance_test!(i02_another_users_mail_is_refused, "I02");
conformance_test!(i03_sharepoint_results_respect_sharing, "I03");
conformance_test!(i04_handles_are_bound_to_their_caller, "I04");
conformance_test!(i05_concurrent_callers_of_several_tenants_get_their_own_results, "I05");
