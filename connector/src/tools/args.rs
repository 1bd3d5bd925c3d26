//! Argument checks the search tools share: refusals naming the field, free text, addresses,
//! page sizes, and the two kinds of argument that are only complete once the call has begun:
//! a time bound given as a day ([`TimeArg`], midnight in the mailbox zone) and a person given
//! by name ([`PersonArg`], looked up in the directory).
//!
//! Each is parsed once, when the arguments are validated (before any token or Graph work);
//! what is left for later is only the zone resolution ([`TimeArg::in_zone`]) and the look-up
//! (`resolve_person`), neither of which reads the argument text again.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use rmcp::ErrorData as McpError;
use serde_json::json;

use super::{
    mailbox::MailboxZone,
    pipeline::{Scope, ToolError},
};
use crate::graph::{
    model::{ODataPage, User},
    query::kql::{self, Address},
};

/// `invalid_params` naming the field.
pub(crate) fn bad_arg(field: &str, why: impl std::fmt::Display) -> McpError {
    McpError::invalid_params(format!("`{field}` {why}"), Some(json!({"field": field})))
}

/// A free-text argument, validated.
pub(crate) fn text_arg(field: &str, value: Option<&str>) -> Result<Option<String>, McpError> {
    value.map(|v| kql::validate_text(v).map_err(|e| bad_arg(field, e))).transpose()
}

/// An address argument, validated.
pub(crate) fn address_arg(field: &str, value: Option<&str>) -> Result<Option<Address>, McpError> {
    value.map(|v| Address::parse(v).map_err(|e| bad_arg(field, e))).transpose()
}

/// Page size: 1..=max, default `default`.
pub(crate) fn limit_arg(value: Option<u32>, default: u32, max: u32) -> Result<u32, McpError> {
    match value {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(bad_arg("limit", format!("must be between 1 and {max}"))),
    }
}

/// A time bound as given: an RFC 3339 instant, or a `YYYY-MM-DD` day whose midnight depends
/// on the mailbox time zone, known only once the call has begun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeArg {
    Instant(DateTime<Utc>),
    Day(NaiveDate),
}

impl TimeArg {
    /// Parses an optional time argument (the one time its text is read).
    pub fn parse(field: &str, value: Option<&str>) -> Result<Option<Self>, McpError> {
        let Some(v) = value.map(str::trim) else { return Ok(None) };
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Ok(Some(Self::Instant(t.with_timezone(&Utc))));
        }
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(|day| Some(Self::Day(day)))
            .map_err(|_| bad_arg(field, "must be a date (YYYY-MM-DD) or an RFC 3339 date-time"))
    }

    /// The instant in `zone`: a day is its midnight there (the earliest, when a clock change
    /// repeats it; refused when a clock change skips it).
    pub fn in_zone(self, field: &str, zone: &MailboxZone) -> Result<DateTime<Utc>, McpError> {
        match self {
            Self::Instant(t) => Ok(t),
            Self::Day(day) => zone
                .tz
                .from_local_datetime(&day.and_time(NaiveTime::MIN))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| bad_arg(field, "does not exist in your time zone")),
        }
    }
}

/// [`TimeArg::in_zone`] of an optional argument.
pub(crate) fn time_in_zone(
    field: &str,
    value: Option<TimeArg>,
    zone: &MailboxZone,
) -> Result<Option<DateTime<Utc>>, McpError> {
    value.map(|t| t.in_zone(field, zone)).transpose()
}

/// An optional lower and an optional upper time bound.
pub(crate) type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The bounds `after` and `before` (each named by its field) in `zone`, refused unless in
/// order.
pub(crate) fn bounds_in(
    zone: &MailboxZone,
    (after_field, after): (&str, Option<TimeArg>),
    (before_field, before): (&str, Option<TimeArg>),
) -> Result<Bounds, McpError> {
    let after = time_in_zone(after_field, after, zone)?;
    let before = time_in_zone(before_field, before, zone)?;
    if let (Some(a), Some(b)) = (after, before)
        && a >= b
    {
        return Err(bad_arg(before_field, format!("must be later than `{after_field}`")));
    }
    Ok((after, before))
}

/// Longest name looked up in the directory for a person argument.
const MAX_NAME_LEN: usize = 128;

/// A person argument (`from`, `to`) as given: an email address, or a colleague's name to look
/// up in the directory, since that is how people ask ("mail from Megan").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersonArg {
    Address(Address),
    Name(String),
}

impl PersonArg {
    /// Parses an optional person argument: an address, else a name of at most
    /// `MAX_NAME_LEN` characters without control characters.
    pub fn parse(field: &str, value: Option<&str>) -> Result<Option<Self>, McpError> {
        let Some(name) = value.map(str::trim) else { return Ok(None) };
        if let Ok(address) = Address::parse(name) {
            return Ok(Some(Self::Address(address)));
        }
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(bad_arg(
                field,
                format!(
                    "must be an email address or a person's name (at most {MAX_NAME_LEN} characters)"
                ),
            ));
        }
        Ok(Some(Self::Name(name.to_owned())))
    }
}

/// A person argument as an address: an address as given, or the one person the name matches
/// in the caller's directory (`/users`, needs `User.ReadBasic.All`). No match or several are
/// argument errors that name the candidates, so the model can ask the user instead of
/// guessing.
pub(crate) async fn resolve_person(
    call: &Scope<'_>,
    field: &str,
    person: Option<PersonArg>,
) -> Result<Option<Address>, ToolError> {
    let name = match person {
        None => return Ok(None),
        Some(PersonArg::Address(address)) => return Ok(Some(address)),
        Some(PersonArg::Name(name)) => name,
    };
    let session = call.session(&["User.ReadBasic.All"]);
    let req = super::availability::lookup_request(&name);
    let found = session.get_json::<ODataPage<User>>(&req).await?.body;
    match found.value.as_slice() {
        [] => Err(bad_arg(
            field,
            "matches no one in your organization's directory; give their email address",
        )
        .into()),
        [one] => Ok(address_arg(field, Some(one.address()))?),
        many => {
            let listed: Vec<String> = many
                .iter()
                .map(|u| format!("{} <{}>", u.display_name.as_deref().unwrap_or("?"), u.address()))
                .collect();
            Err(bad_arg(
                field,
                format!(
                    "matches several people: {}; give the email address of the one you mean",
                    listed.join(", ")
                ),
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_parsed_once_and_resolved_at_midnight_in_the_zone() {
        let day = TimeArg::parse("start", Some(" 2024-05-01 ")).expect("valid");
        let day = day.expect("given");
        assert_eq!(day, TimeArg::Day(NaiveDate::from_ymd_opt(2024, 5, 1).expect("a day")));
        let pacific = MailboxZone::resolve(Some("Pacific Standard Time"));
        let midnight = day.in_zone("start", &pacific).expect("exists");
        assert_eq!(midnight.to_rfc3339(), "2024-05-01T07:00:00+00:00");
        let instant = TimeArg::parse("start", Some("2024-05-01T10:00:00+02:00")).expect("valid");
        let instant = instant.expect("given").in_zone("start", &pacific).expect("exists");
        assert_eq!(instant.to_rfc3339(), "2024-05-01T08:00:00+00:00");
        let err = TimeArg::parse("start", Some("tomorrow")).expect_err("refused");
        assert!(err.message.contains("`start`"));
    }

    #[test]
    fn a_day_a_clock_change_skips_is_refused_in_that_zone() {
        // Santiago moved its clocks from midnight to 01:00 on 2024-09-08.
        let santiago = MailboxZone::resolve(Some("America/Santiago"));
        let day = TimeArg::Day(NaiveDate::from_ymd_opt(2024, 9, 8).expect("a day"));
        let err = day.in_zone("start", &santiago).expect_err("no midnight");
        assert!(err.message.contains("does not exist"), "{}", err.message);
    }

    #[test]
    fn people_are_addresses_or_plausible_names() {
        assert_eq!(
            PersonArg::parse("from", Some(" Ada@Contoso.com ")).expect("valid"),
            Some(PersonArg::Address(Address::parse("ada@contoso.com").expect("address")))
        );
        assert_eq!(
            PersonArg::parse("from", Some("Megan Bowen")).expect("valid"),
            Some(PersonArg::Name("Megan Bowen".into()))
        );
        for bad in ["", "  ", "a\u{1}b", &"x".repeat(129)] {
            let err = PersonArg::parse("to", Some(bad)).expect_err("refused");
            assert!(err.message.contains("`to`"), "{}", err.message);
        }
    }
}
