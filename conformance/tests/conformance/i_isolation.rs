use crate::conformance_test;

conformance::i_isolation_tests!(conformance_test);
