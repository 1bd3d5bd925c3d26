use crate::conformance_test;

conformance::r_revocation_tests!(conformance_test);
