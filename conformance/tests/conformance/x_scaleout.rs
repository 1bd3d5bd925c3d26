//! X — scale-out: two instances sharing a real redis-server.
use crate::conformance_test;

conformance::x_scaleout_tests!(conformance_test);
