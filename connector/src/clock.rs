//! The connector's notion of "now", injectable so tests can move time.
//!
//! Production uses [`Clock::system`]. Token expiry, not-before, OBO cache ages and cursor
//! expiry are all judged against this clock, never against `SystemTime` directly, so the
//! conformance suite can share one clock between the fakes and an in-process connector.

use std::{fmt, sync::Arc};

use chrono::{DateTime, Utc};

#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    /// A clock driven by `now`, e.g. a test clock shared with the fakes.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.0)()
    }

    /// Seconds since the Unix epoch, as JWT claims count them.
    pub fn unix_seconds(&self) -> i64 {
        self.now().timestamp()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}
