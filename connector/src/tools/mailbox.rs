//! Mailbox time zones: Windows zone names (what `/me/mailboxSettings` and `workingHours`
//! return) mapped to IANA zones from `chrono-tz`.
//!
//! # Design
//! Exchange reports zones by Windows name (`"W. Europe Standard Time"`); sometimes it already
//! reports an IANA name. [`MailboxZone::resolve`] accepts both: IANA names parse directly,
//! Windows names go through a table of the common zones (the CLDR `windowsZones` "001"
//! territory mappings). An unknown or empty name falls back to UTC **with a note** that the
//! tools put in their results, so the model never presents UTC times as local ones silently.
//!
//! The mailbox settings (zone and working hours) are settings metadata, not content: they are
//! cached per (tenant, user) in a [`SettingsCache`] for a short window (at most five minutes,
//! never longer than the OBO reuse window), so a tool call does not cost a second Graph round
//! trip. Only successful reads are cached; a failure is asked again on the next call.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::graph::{
    MailboxKey,
    model::{WorkingHours, lenient},
};

/// Windows zone name → IANA zone (CLDR windowsZones, territory 001).
const WINDOWS_TO_IANA: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time (Mexico)", "America/Tijuana"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Central Standard Time", "America/Chicago"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    ("Eastern Standard Time", "America/New_York"),
    ("US Eastern Standard Time", "America/Indiana/Indianapolis"),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
    ("SA Eastern Standard Time", "America/Cayenne"),
    ("Greenland Standard Time", "America/Godthab"),
    ("UTC-02", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde"),
    ("UTC", "Etc/UTC"),
    ("Coordinated Universal Time", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("Morocco Standard Time", "Africa/Casablanca"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("India Standard Time", "Asia/Kolkata"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Kathmandu"),
    ("Central Asia Standard Time", "Asia/Almaty"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Myanmar Standard Time", "Asia/Yangon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("West Pacific Standard Time", "Pacific/Port_Moresby"),
    ("Central Pacific Standard Time", "Pacific/Guadalcanal"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("UTC+12", "Etc/GMT-12"),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
];

/// The IANA zone of a Windows zone name, when the table knows it.
pub fn windows_to_iana(windows: &str) -> Option<&'static str> {
    let name = windows.trim();
    WINDOWS_TO_IANA.iter().find(|(w, _)| w.eq_ignore_ascii_case(name)).map(|(_, iana)| *iana)
}

/// The caller's mailbox time zone, resolved, with the name Exchange gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxZone {
    /// The zone local times are computed in.
    pub tz: Tz,
    /// The name as reported (Windows or IANA), or `"UTC"` when none was.
    pub reported: String,
    /// Set when the reported name was unknown and UTC was used instead.
    pub note: Option<String>,
}

impl MailboxZone {
    /// UTC, reported as such (no note).
    pub fn utc() -> Self {
        Self { tz: Tz::UTC, reported: "UTC".into(), note: None }
    }

    /// Resolves a Windows or IANA name; unknown or empty → UTC with a note.
    pub fn resolve(name: Option<&str>) -> Self {
        let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
            return Self {
                note: Some("your mailbox has no time zone set; times are shown in UTC".into()),
                ..Self::utc()
            };
        };
        let iana = windows_to_iana(name).unwrap_or(name);
        match iana.parse::<Tz>() {
            Ok(tz) => Self { tz, reported: name.to_owned(), note: None },
            Err(_) => Self {
                tz: Tz::UTC,
                reported: name.to_owned(),
                note: Some(format!(
                    "the mailbox time zone {:?} is not known to the connector; times are shown in UTC",
                    truncate_name(name)
                )),
            },
        }
    }

    /// The IANA name local times are shown in.
    pub fn iana(&self) -> &'static str {
        self.tz.name()
    }

    /// `t` in this zone, RFC 3339 with its offset.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// What `GET /me/mailboxSettings?$select=timeZone,workingHours` answers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxSettings {
    pub time_zone: Option<String>,
    /// Graph's `workingHours`, shaped by `get_me`.
    #[serde(default, deserialize_with = "lenient::object")]
    pub working_hours: Option<WorkingHours>,
}

/// The fields [`mailbox_zone`] and `get_me` read (one request serves both, and the cache).
pub const SETTINGS_SELECT: &[&str] = &["timeZone", "workingHours"];

/// A cached read of a caller's mailbox settings, with its zone resolved once.
#[derive(Debug)]
pub struct CachedSettings {
    pub settings: MailboxSettings,
    pub zone: MailboxZone,
    fetched_at: DateTime<Utc>,
}

/// Mailbox settings per (tenant, user) for at most `ttl`. Entries are dropped by moka after
/// `ttl` of wall time (bounding memory) and refused once `ttl` has passed on the connector's
/// [`crate::clock::Clock`] (bounding staleness, also under a test clock).
#[derive(Clone)]
pub struct SettingsCache {
    inner: moka::future::Cache<MailboxKey, Arc<CachedSettings>>,
    ttl: Duration,
}

impl std::fmt::Debug for SettingsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsCache").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// The longest the settings are reused.
pub const SETTINGS_TTL: Duration = Duration::from_secs(300);

impl SettingsCache {
    /// A cache keeping entries for `ttl` (zero disables it), at most `max_entries` of them.
    pub fn new(ttl: Duration, max_entries: u64) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(max_entries)
            .time_to_live(ttl.max(Duration::from_millis(1)))
            .build();
        Self { inner, ttl }
    }

    /// The cached settings of `key`, when read less than `ttl` before `now`.
    pub async fn get(&self, key: MailboxKey, now: DateTime<Utc>) -> Option<Arc<CachedSettings>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entry = self.inner.get(&key).await?;
        let age = (now - entry.fetched_at).to_std().unwrap_or_default();
        (age < self.ttl).then_some(entry)
    }

    /// Stores a successful read and returns it.
    pub async fn insert(
        &self,
        key: MailboxKey,
        settings: MailboxSettings,
        now: DateTime<Utc>,
    ) -> Arc<CachedSettings> {
        let zone = MailboxZone::resolve(settings.time_zone.as_deref());
        let entry = Arc::new(CachedSettings { settings, zone, fetched_at: now });
        if !self.ttl.is_zero() {
            self.inner.insert(key, entry.clone()).await;
        }
        entry
    }
}

/// The caller's mailbox time zone from `GET /me/mailboxSettings`, read with a token for
/// `MailboxSettings.Read` alone ([`super::permissions::ZONE_SCOPE`]), or from the
/// [`SettingsCache`].
///
/// Never fails: a time zone is presentation, never a reason to refuse a call. Without the
/// permission, or when Graph cannot answer, times are shown in UTC with a note saying why. The
/// token is cached per (tenant, user, scope set) like every OBO token, so this costs an
/// exchange only on a cache miss; revoking the permission blocks no tool.
pub async fn mailbox_zone(call: &super::pipeline::Scope<'_>) -> MailboxZone {
    let ctx = call.ctx;
    if let Some(hit) = ctx.settings.get(MailboxKey::from(call.caller()), ctx.clock.now()).await {
        return hit.zone.clone();
    }
    read_zone(ctx, &zone_session(call)).await
}

/// The session the mailbox settings are read with: `MailboxSettings.Read` alone.
pub fn zone_session(call: &super::pipeline::Scope<'_>) -> super::pipeline::CallSession {
    call.session(&[super::permissions::ZONE_SCOPE])
}

/// Reads the settings from Graph with `session` (see [`zone_session`]) and caches a success.
pub async fn read_zone(
    ctx: &super::ToolContext,
    session: &super::pipeline::CallSession,
) -> MailboxZone {
    use crate::graph::{GraphPath, GraphRequest};
    let req = GraphRequest::get(GraphPath::fixed("/me/mailboxSettings")).select(SETTINGS_SELECT);
    match session.get_json::<MailboxSettings>(&req).await {
        Ok(resp) => {
            let key = MailboxKey::from(&session.0.caller);
            ctx.settings.insert(key, resp.body, ctx.clock.now()).await.zone.clone()
        }
        Err(failure) => unreadable(&failure.code()),
    }
}

/// UTC, with a note saying why the mailbox zone could not be read.
pub fn unreadable(code: &str) -> MailboxZone {
    MailboxZone {
        note: Some(format!(
            "your mailbox time zone could not be read ({code}); times are shown in UTC"
        )),
        ..MailboxZone::utc()
    }
}

fn truncate_name(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_iana_names_resolve() {
        assert_eq!(
            MailboxZone::resolve(Some("Pacific Standard Time")).iana(),
            "America/Los_Angeles"
        );
        assert_eq!(MailboxZone::resolve(Some("w. europe standard time")).iana(), "Europe/Berlin");
        assert_eq!(MailboxZone::resolve(Some("Asia/Tokyo")).iana(), "Asia/Tokyo");
        assert_eq!(MailboxZone::resolve(Some("UTC")).note, None);
    }

    #[test]
    fn unknown_names_fall_back_to_utc_with_a_note() {
        let z = MailboxZone::resolve(Some("Mars Standard Time"));
        assert_eq!(z.tz, Tz::UTC);
        assert!(z.note.as_deref().is_some_and(|n| n.contains("Mars Standard Time")));
        assert!(MailboxZone::resolve(None).note.is_some());
    }

    #[test]
    fn every_table_entry_is_a_valid_iana_zone() {
        for (w, iana) in WINDOWS_TO_IANA {
            assert!(iana.parse::<Tz>().is_ok(), "{w} → {iana}");
        }
    }

    fn key() -> MailboxKey {
        MailboxKey {
            tenant: crate::domain::TenantId::from(uuid::Uuid::from_u128(1)),
            user: crate::domain::ObjectId::from(uuid::Uuid::from_u128(2)),
        }
    }

    fn settings(zone: &str) -> MailboxSettings {
        MailboxSettings { time_zone: Some(zone.into()), working_hours: None }
    }

    #[tokio::test]
    async fn settings_are_reused_within_the_window_only() {
        let cache = SettingsCache::new(Duration::from_secs(300), 10);
        let t0 = DateTime::parse_from_rfc3339("2026-06-01T16:00:00Z").expect("t").to_utc();
        assert!(cache.get(key(), t0).await.is_none());
        let stored = cache.insert(key(), settings("Pacific Standard Time"), t0).await;
        assert_eq!(stored.zone.iana(), "America/Los_Angeles");
        let hit = cache.get(key(), t0 + chrono::Duration::seconds(299)).await.expect("hit");
        assert_eq!(hit.zone.iana(), "America/Los_Angeles");
        assert!(cache.get(key(), t0 + chrono::Duration::seconds(300)).await.is_none());
    }

    #[tokio::test]
    async fn a_zero_window_caches_nothing() {
        let cache = SettingsCache::new(Duration::ZERO, 10);
        let t0 = DateTime::parse_from_rfc3339("2026-06-01T16:00:00Z").expect("t").to_utc();
        let stored = cache.insert(key(), settings("Tokyo Standard Time"), t0).await;
        assert_eq!(stored.zone.iana(), "Asia/Tokyo");
        assert!(cache.get(key(), t0).await.is_none());
    }

    #[test]
    fn local_times_carry_the_offset() {
        let z = MailboxZone::resolve(Some("Pacific Standard Time"));
        let t =
            DateTime::parse_from_rfc3339("2026-06-01T16:00:00Z").expect("t").with_timezone(&Utc);
        assert_eq!(z.local(t), "2026-06-01T09:00:00-07:00");
    }
}
