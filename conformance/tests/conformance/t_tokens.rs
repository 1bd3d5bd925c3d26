use crate::conformance_test;

conformance::t_tokens_tests!(conformance_test);
