use crate::conformance_test;

conformance::c_ca_tests!(conformance_test);
