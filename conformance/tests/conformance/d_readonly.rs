use crate::conformance_test;

conformance::d_readonly_tests!(conformance_test);
