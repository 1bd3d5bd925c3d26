use crate::conformance_test;

conformance::f_faults_tests!(conformance_test);
