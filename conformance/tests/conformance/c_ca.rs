use crate::conformance_test;

conformance_test!(c01_mfa_required_step_up_then_the_call_works, "C01");
conformance_test!(c02_non_compliant_device_gets_no_data, "C02");
conformance_test!(c03_sign_in_outside_the_ip_range_gets_no_data, "C03");
conformance_test!(c04_group_scoped_policy_affects_only_that_group, "C04");
conformance_test!(c05_a_graph_token_earned_by_one_sign_in_does_not_serve_another, "C05");
