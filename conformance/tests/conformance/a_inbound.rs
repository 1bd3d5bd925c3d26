use crate::conformance_test;

conformance_test!(a01_no_token_is_challenged_with_resource_metadata, "A01");
conformance_test!(a02_valid_token_lists_the_tools_and_calls_one, "A02");
conformance_test!(a03_expired_token_is_refused_without_obo_or_graph, "A03");
conformance_test!(a04_token_not_yet_valid_is_refused, "A04");
conformance_test!(a05_graph_audience_token_is_refused, "A05");
conformance_test!(a06_forged_tokens_are_refused, "A06");
conformance_test!(a06_typ_a_token_typed_other_than_jwt_is_refused, "A06/typ");
conformance_test!(a07_issuer_of_one_tenant_with_tid_of_another_is_refused, "A07");
conformance_test!(a07_keys_without_issuer_the_issuer_rule_alone_refuses, "A07/keys-without-issuer");
conformance_test!(a07_tenant_bound_key_signs_for_its_tenant_only, "A07/tenant-bound-key");
conformance_test!(a08_token_without_the_scope_gets_insufficient_scope, "A08");
conformance_test!(a09_key_rotation_is_picked_up_without_a_jwks_flood, "A09");
conformance_test!(a10_personal_accounts_are_refused_clearly, "A10");
