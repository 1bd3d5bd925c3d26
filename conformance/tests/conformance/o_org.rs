use crate::conformance_test;

conformance::o_org_tests!(conformance_test);
