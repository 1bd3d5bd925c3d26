//! Mailbox time zones: Windows zone names (what `/me/mailboxSettings` and `workingHours`
//! return) mapped to IANA zones from `chrono-tz`.
//!
//! # Design
//! Exchange reports zones by Windows name (`"W. Europe Standard Time"`); sometimes it already
//! reports an IANA name. [`MailboxZone::resolve`] accepts both: IANA names parse directly,
//! Windows names go through a table of the common zones (the CLDR `windowsZones` "001"
//! territory mappings). An unknown or empty name falls back to UTC **with a note** that the
//! tools put in their results, so the model never presents UTC times as local ones silently.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

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

/// The caller's mailbox time zone from `GET /me/mailboxSettings`, read with a token for
/// `MailboxSettings.Read` alone ([`super::permissions::ZONE_SCOPE`]).
///
/// Never fails: a time zone is presentation, never a reason to refuse a call. Without the
/// permission, or when Graph cannot answer, times are shown in UTC with a note saying why. The
/// token is cached per (tenant, user, scope set) like every OBO token, so this costs an
/// exchange only on a cache miss; revoking the permission blocks no tool.
pub async fn mailbox_zone(
    ctx: &super::ToolContext,
    caller: &crate::domain::Caller,
    request_ids: &mut Vec<String>,
) -> MailboxZone {
    use crate::graph::{GraphPath, GraphRequest};
    let session = ctx.session(caller, &[super::permissions::ZONE_SCOPE]);
    let req = GraphRequest::get(GraphPath::fixed("/me/mailboxSettings")).select(&["timeZone"]);
    match session.get_json::<serde_json::Value>(&req).await {
        Ok(resp) => {
            request_ids.extend(resp.request_id);
            MailboxZone::resolve(resp.body.get("timeZone").and_then(|v| v.as_str()))
        }
        Err(failure) => {
            request_ids.extend(failure.request_id.clone());
            MailboxZone {
                note: Some(format!(
                    "your mailbox time zone could not be read ({}); times are shown in UTC",
                    failure.error.code()
                )),
                ..MailboxZone::utc()
            }
        }
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

    #[test]
    fn local_times_carry_the_offset() {
        let z = MailboxZone::resolve(Some("Pacific Standard Time"));
        let t =
            DateTime::parse_from_rfc3339("2026-06-01T16:00:00Z").expect("t").with_timezone(&Utc);
        assert_eq!(z.local(t), "2026-06-01T09:00:00-07:00");
    }
}
