use crate::conformance_test;

conformance_test!(o01_tenant_not_enabled_is_refused_clearly, "O01");
conformance_test!(o02_no_admin_consent_gets_a_clear_error, "O02");
conformance_test!(o03_assignment_required_admits_only_the_pilot, "O03");
conformance_test!(o04_disabling_the_tenant_stops_live_sessions, "O04");
