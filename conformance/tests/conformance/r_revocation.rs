use crate::conformance_test;

conformance_test!(r01_revoke_sites_read_all_with_max_reuse_zero, "R01/reuse-0");
conformance_test!(r01_revoke_sites_read_all_after_default_reuse_age, "R01/default");
conformance_test!(r02_revoke_mail_read_with_max_reuse_zero, "R02/reuse-0");
conformance_test!(r02_revoke_mail_read_after_default_reuse_age, "R02/default");
conformance_test!(r03_revoke_chat_read_with_max_reuse_zero, "R03/reuse-0");
conformance_test!(r03_revoke_chat_read_after_default_reuse_age, "R03/default");
conformance_test!(r04_revoke_files_read_with_max_reuse_zero, "R04/reuse-0");
conformance_test!(r04_revoke_files_read_after_default_reuse_age, "R04/default");
conformance_test!(r05_revoke_everything_with_max_reuse_zero, "R05/reuse-0");
conformance_test!(r05_revoke_everything_after_default_reuse_age, "R05/default");
conformance_test!(r06_identity_events_end_the_session, "R06");
conformance_test!(r07_tool_switched_off_for_a_tenant_cannot_be_called, "R07");
conformance_test!(r08_sites_selected_only_is_explained, "R08");
