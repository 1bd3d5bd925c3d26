use crate::conformance_test;

conformance::a_inbound_tests!(conformance_test);
