//! Entra token-endpoint errors mapped to what a user (or an operator) can act on.
//!
//! Branching is on `error`, `suberror` and `error_codes`, never on `error_description`, whose
//! text is neither stable nor safe to show (`entra.md` §8.1). The description is never kept.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

/// Which Conditional Access condition refused the token, as far as the code tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaCondition {
    /// AADSTS53000/53001: the device is not compliant or not managed.
    DeviceCompliance,
    /// AADSTS53003: blocked by a policy, typically the network location.
    LocationOrPolicy,
}

/// Why an On-Behalf-Of exchange failed. Cheap to clone: one failed exchange is handed to every
/// caller that waited for it.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum OboError {
    /// AADSTS65001 / `consent_required`. The user sees that an administrator must grant
    /// consent, with the admin-consent URL to send them.
    #[error("admin consent required (AADSTS{code})")]
    ConsentRequired { code: u32, consent_url: String, scopes: String },
    /// AADSTS50105. The user sees that they are not assigned to the connector application.
    #[error("user not assigned to the application (AADSTS50105)")]
    NotAssigned,
    /// A claims challenge (MFA 50076/50079, CA step-up, `interaction_required` with `claims`).
    /// The user's client must sign in again with these claims; `claims` is base64 of the JSON.
    #[error("claims challenge ({code:?})")]
    ClaimsChallenge { code: Option<u32>, claims: String },
    /// AADSTS53000/53001/53003. The user sees which Conditional Access condition blocked them.
    #[error("blocked by Conditional Access (AADSTS{code})")]
    ConditionalAccess { code: u32, condition: CaCondition },
    /// AADSTS50057. The user sees that their account is disabled.
    #[error("account disabled (AADSTS50057)")]
    AccountDisabled,
    /// AADSTS700082/50173/70008/70043, or interaction required without claims. The user sees
    /// "sign in again".
    #[error("sign-in required ({code:?})")]
    SignInAgain { code: Option<u32> },
    /// AADSTS500133/50013/500131/240002: the inbound token itself was refused. The user sees
    /// "sign in again"; operators should look for misuse when it is a signature or audience error.
    #[error("assertion rejected (AADSTS{code})")]
    AssertionRejected { code: u32 },
    /// AADSTS700016 / `unauthorized_client`: the app has no service principal in the tenant.
    /// The user sees that the connector is not set up for their organisation.
    #[error("application not provisioned in the tenant ({code:?})")]
    AppNotInTenant { code: Option<u32> },
    /// `invalid_client`, `invalid_scope`, `invalid_request`: the connector is misconfigured.
    /// The user sees a generic "contact your administrator"; operators get the code.
    #[error("connector misconfigured ({error}, {code:?})")]
    Misconfigured { error: String, code: Option<u32> },
    /// HTTP 429/503, `temporarily_unavailable`, AADSTS50196/90055. The user sees "try again
    /// later", with the delay when Entra gave one.
    #[error("Entra ID is throttling ({code:?})")]
    /// `rate_limited`: Entra throttled this client or user (HTTP 429, AADSTS50196 request loop),
    /// so asking again before `retry_after` only prolongs it; otherwise Entra is unavailable.
    Throttled { code: Option<u32>, retry_after: Option<Duration>, rate_limited: bool },
    /// Connection failure or timeout talking to Entra. The user sees "try again later".
    #[error("Entra ID unreachable")]
    Unreachable,
    /// Any other refusal. The user sees a generic failure with the code.
    #[error("token exchange refused ({error}, {code:?})")]
    Rejected { error: String, code: Option<u32> },
    /// A bug on our side: an unusable scope request, an unreadable response, a failed task.
    /// The user sees a generic internal error.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl OboError {
    /// The base64 claims for `WWW-Authenticate: Bearer error="insufficient_claims", claims="…"`,
    /// when the user's client can resolve this error by signing in again with them.
    pub fn claims_challenge(&self) -> Option<String> {
        match self {
            Self::ClaimsChallenge { claims, .. } => Some(claims.clone()),
            _ => None,
        }
    }

    /// How long to wait before trying again, when Entra said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short stable code for audit records and metrics (no user data).
    pub fn code(&self) -> String {
        let aadsts = |c: &Option<u32>| c.map_or_else(String::new, |c| format!(":AADSTS{c}"));
        match self {
            Self::ConsentRequired { code, .. } => format!("consent_required:AADSTS{code}"),
            Self::NotAssigned => "not_assigned:AADSTS50105".into(),
            Self::ClaimsChallenge { code, .. } => format!("claims_challenge{}", aadsts(code)),
            Self::ConditionalAccess { code, .. } => format!("conditional_access:AADSTS{code}"),
            Self::AccountDisabled => "account_disabled:AADSTS50057".into(),
            Self::SignInAgain { code } => format!("sign_in_again{}", aadsts(code)),
            Self::AssertionRejected { code } => format!("assertion_rejected:AADSTS{code}"),
            Self::AppNotInTenant { code } => format!("app_not_in_tenant{}", aadsts(code)),
            Self::Misconfigured { code, .. } => format!("misconfigured{}", aadsts(code)),
            Self::Throttled { code, .. } => format!("throttled{}", aadsts(code)),
            Self::Unreachable => "entra_unreachable".into(),
            Self::Rejected { code, .. } => format!("rejected{}", aadsts(code)),
            Self::Internal(_) => "internal".into(),
        }
    }

    /// A message safe to show the user: no token, no Entra description text, only facts the
    /// user can act on.
    pub fn user_message(&self) -> String {
        match self {
            Self::ConsentRequired { consent_url, scopes, .. } => format!(
                "An administrator of your organisation must grant consent for this connector \
                 (permissions: {scopes}). Ask them to open {consent_url}"
            ),
            Self::NotAssigned => "You are not assigned to the Microsoft 365 connector application \
                                  in your organisation. Ask your administrator for access."
                .into(),
            Self::ClaimsChallenge { .. } => "Your organisation requires additional sign-in \
                                             (for example multifactor authentication). Sign in \
                                             again to continue."
                .into(),
            Self::ConditionalAccess { condition: CaCondition::DeviceCompliance, .. } => {
                "Access was blocked by your organisation's Conditional Access policy: this device \
                 is not compliant or not managed. Use a compliant device."
                    .into()
            }
            Self::ConditionalAccess { condition: CaCondition::LocationOrPolicy, .. } => {
                "Access was blocked by your organisation's Conditional Access policy (for example \
                 your network location is not allowed)."
                    .into()
            }
            Self::AccountDisabled => "Your account is disabled. Contact your administrator.".into(),
            Self::SignInAgain { .. } | Self::AssertionRejected { .. } => {
                "Your sign-in is no longer valid. Sign in again.".into()
            }
            Self::AppNotInTenant { .. } => "The Microsoft 365 connector is not set up in your \
                                            organisation. Ask your administrator."
                .into(),
            Self::Misconfigured { .. } | Self::Internal(_) => "The connector could not obtain \
                                                               access to Microsoft 365 because of \
                                                               a configuration problem. Contact \
                                                               your administrator."
                .into(),
            Self::Throttled { retry_after: Some(d), .. } => format!(
                "Microsoft Entra ID is busy. Try again in {} seconds.",
                d.as_secs_f64().ceil() as u64
            ),
            Self::Throttled { retry_after: None, .. } => {
                "Microsoft Entra ID is busy. Try again later.".into()
            }
            Self::Unreachable => "Microsoft Entra ID could not be reached. Try again later.".into(),
            Self::Rejected { code, .. } => match code {
                Some(c) => format!("Microsoft Entra ID refused access (AADSTS{c})."),
                None => "Microsoft Entra ID refused access.".into(),
            },
        }
    }
}

/// The token endpoint's error body (`entra.md` §8.1). Every field optional; the description is
/// deliberately not read.
#[derive(Deserialize, Default, Debug)]
pub(crate) struct EntraErrorBody {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub error_codes: Vec<u32>,
    #[serde(default)]
    pub suberror: Option<String>,
    /// A JSON string (escaped JSON, not base64) on the token endpoint.
    #[serde(default)]
    pub claims: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
}

/// Context needed to phrase an error (the consent URL).
pub(crate) struct ErrorContext<'a> {
    pub consent_url: &'a str,
    pub scopes: &'a str,
}

/// Maps an Entra error answer to an [`OboError`].
pub(crate) fn map_entra_error(
    status: u16,
    retry_after: Option<Duration>,
    body: &EntraErrorBody,
    ctx: &ErrorContext<'_>,
) -> OboError {
    let code = body.error_codes.first().copied();
    let has = |c: u32| body.error_codes.contains(&c);
    let error = body.error.as_str();
    if status == 429
        || status == 503
        || error == "temporarily_unavailable"
        || has(50196)
        || has(90055)
    {
        return OboError::Throttled {
            code,
            retry_after,
            rate_limited: status == 429 || has(50196),
        };
    }
    if let Some(claims) = body.claims.as_deref().filter(|c| !c.trim().is_empty()) {
        // Only JSON is passed on: it becomes a header value at the tool layer.
        if serde_json::from_str::<serde_json::Value>(claims).is_ok_and(|v| v.is_object()) {
            let claims = base64::engine::general_purpose::STANDARD.encode(claims.as_bytes());
            return OboError::ClaimsChallenge { code, claims };
        }
    }
    if has(65001)
        || body.suberror.as_deref() == Some("consent_required")
        || error == "consent_required"
    {
        return OboError::ConsentRequired {
            code: code.unwrap_or(65001),
            consent_url: ctx.consent_url.to_owned(),
            scopes: ctx.scopes.to_owned(),
        };
    }
    if has(50105) {
        return OboError::NotAssigned;
    }
    for c in [53000, 53001] {
        if has(c) {
            return OboError::ConditionalAccess {
                code: c,
                condition: CaCondition::DeviceCompliance,
            };
        }
    }
    if has(53003) {
        return OboError::ConditionalAccess {
            code: 53003,
            condition: CaCondition::LocationOrPolicy,
        };
    }
    if has(50057) {
        return OboError::AccountDisabled;
    }
    for c in [500133, 50013, 500131, 240002] {
        if has(c) {
            return OboError::AssertionRejected { code: c };
        }
    }
    if [700082, 50173, 70008, 70043, 50076, 50079].iter().any(|c| has(*c))
        || error == "interaction_required"
    {
        return OboError::SignInAgain { code };
    }
    if error == "unauthorized_client" || has(700016) {
        return OboError::AppNotInTenant { code };
    }
    if status == 401
        || matches!(
            error,
            "invalid_client" | "invalid_scope" | "invalid_request" | "invalid_resource"
        )
    {
        return OboError::Misconfigured { error: sanitize(error), code };
    }
    OboError::Rejected { error: sanitize(error), code }
}

/// Entra's `error` is an OAuth token: keep it short and printable so it can go in audit records.
fn sanitize(error: &str) -> String {
    error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(status: u16, body: serde_json::Value) -> OboError {
        let body: EntraErrorBody = serde_json::from_value(body).expect("test body");
        map_entra_error(
            status,
            Some(Duration::from_secs(60)),
            &body,
            &ErrorContext {
                consent_url: "https://login.example/72f988bf-86f1-41af-91ab-2d7cd011db47/adminconsent?client_id=c0ffee00-0000-0000-0000-000000000001",
                scopes: "Mail.Read User.Read",
            },
        )
    }

    fn msg(status: u16, body: serde_json::Value) -> String {
        map(status, body).user_message()
    }

    #[test]
    fn consent_missing_names_the_admin_consent_url() {
        let e = map(
            400,
            serde_json::json!({"error":"invalid_grant","error_codes":[65001],"suberror":"consent_required",
                "error_description":"AADSTS65001: The user or administrator has not consented"}),
        );
        assert_eq!(e.code(), "consent_required:AADSTS65001");
        insta::assert_snapshot!(e.user_message(), @"An administrator of your organisation must grant consent for this connector (permissions: Mail.Read User.Read). Ask them to open https://login.example/72f988bf-86f1-41af-91ab-2d7cd011db47/adminconsent?client_id=c0ffee00-0000-0000-0000-000000000001");
    }

    #[test]
    fn not_assigned_is_reported_as_such() {
        insta::assert_snapshot!(
            msg(400, serde_json::json!({"error":"invalid_grant","error_codes":[50105]})),
            @"You are not assigned to the Microsoft 365 connector application in your organisation. Ask your administrator for access."
        );
    }

    #[test]
    fn mfa_with_claims_becomes_a_base64_claims_challenge() {
        let claims = r#"{"access_token":{"capolids":{"essential":true,"values":["9ab03e19-ed42-4168-b6b7-7001fb3e933a"]}}}"#;
        for (error, code) in [("invalid_grant", 50076), ("interaction_required", 50079)] {
            let e =
                map(400, serde_json::json!({"error":error,"error_codes":[code],"claims":claims}));
            let b64 = e.claims_challenge().expect("a challenge");
            let decoded = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
            assert_eq!(decoded, claims.as_bytes());
            insta::allow_duplicates! {
                insta::assert_snapshot!(e.user_message(), @"Your organisation requires additional sign-in (for example multifactor authentication). Sign in again to continue.");
            }
        }
    }

    #[test]
    fn claims_that_are_not_json_are_not_passed_on() {
        let e = map(
            400,
            serde_json::json!({"error":"interaction_required","error_codes":[50076],"claims":"\r\nX-Injected: 1"}),
        );
        assert_eq!(e.claims_challenge(), None);
        assert_eq!(e, OboError::SignInAgain { code: Some(50076) });
    }

    #[test]
    fn conditional_access_says_which_condition() {
        insta::assert_snapshot!(
            msg(400, serde_json::json!({"error":"invalid_grant","error_codes":[53000]})),
            @"Access was blocked by your organisation's Conditional Access policy: this device is not compliant or not managed. Use a compliant device."
        );
        insta::assert_snapshot!(
            msg(400, serde_json::json!({"error":"invalid_grant","error_codes":[53003]})),
            @"Access was blocked by your organisation's Conditional Access policy (for example your network location is not allowed)."
        );
    }

    #[test]
    fn disabled_accounts_and_revoked_sessions_ask_for_sign_in() {
        insta::assert_snapshot!(
            msg(400, serde_json::json!({"error":"invalid_grant","error_codes":[50057]})),
            @"Your account is disabled. Contact your administrator."
        );
        for code in [700082, 50173, 70008] {
            let e = map(400, serde_json::json!({"error":"invalid_grant","error_codes":[code]}));
            assert_eq!(e, OboError::SignInAgain { code: Some(code) });
            insta::allow_duplicates! {
                insta::assert_snapshot!(e.user_message(), @"Your sign-in is no longer valid. Sign in again.");
            }
        }
    }

    #[test]
    fn throttling_says_when_to_retry() {
        let e = map(429, serde_json::json!({"error":"Server overload"}));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
        insta::assert_snapshot!(e.user_message(), @"Microsoft Entra ID is busy. Try again in 60 seconds.");
        let e = map(400, serde_json::json!({"error":"invalid_grant","error_codes":[50196]}));
        assert!(matches!(e, OboError::Throttled { code: Some(50196), .. }));
        let e = map(503, serde_json::json!({"error":"temporarily_unavailable"}));
        assert!(matches!(e, OboError::Throttled { .. }));
    }

    #[test]
    fn network_failure_and_misconfiguration_messages() {
        insta::assert_snapshot!(OboError::Unreachable.user_message(), @"Microsoft Entra ID could not be reached. Try again later.");
        let e = map(401, serde_json::json!({"error":"invalid_client","error_codes":[7000215]}));
        assert_eq!(e.code(), "misconfigured:AADSTS7000215");
        insta::assert_snapshot!(e.user_message(), @"The connector could not obtain access to Microsoft 365 because of a configuration problem. Contact your administrator.");
        let e = map(400, serde_json::json!({"error":"unauthorized_client","error_codes":[700016]}));
        insta::assert_snapshot!(e.user_message(), @"The Microsoft 365 connector is not set up in your organisation. Ask your administrator.");
    }

    /// Each trigger of a class, alone (the others absent), maps to that class.
    #[test]
    fn each_trigger_alone_decides_the_class() {
        use serde_json::json;
        let throttled = |e: &OboError| match e {
            OboError::Throttled { rate_limited, .. } => Some(*rate_limited),
            _ => None,
        };
        // Throttling: the flag says whether Entra rate-limited this client or user.
        assert_eq!(throttled(&map(429, json!({"error":"x"}))), Some(true));
        assert_eq!(throttled(&map(400, json!({"error":"x","error_codes":[50196]}))), Some(true));
        assert_eq!(throttled(&map(503, json!({"error":"x"}))), Some(false));
        assert_eq!(throttled(&map(400, json!({"error":"temporarily_unavailable"}))), Some(false));
        assert_eq!(throttled(&map(400, json!({"error":"x","error_codes":[90055]}))), Some(false));
        assert_eq!(throttled(&map(500, json!({"error":"x"}))), None);
        // Consent: the code, the suberror or the error name.
        let consent = |body| map(400, body).code();
        assert_eq!(
            consent(json!({"error":"invalid_grant","error_codes":[65001]})),
            "consent_required:AADSTS65001"
        );
        assert_eq!(
            consent(json!({"error":"invalid_grant","suberror":"consent_required"})),
            "consent_required:AADSTS65001"
        );
        assert_eq!(
            consent(json!({"error":"consent_required","error_codes":[65004]})),
            "consent_required:AADSTS65004"
        );
        // Sign in again: by error name alone.
        assert_eq!(
            map(400, json!({"error":"interaction_required"})),
            OboError::SignInAgain { code: None }
        );
        for code in [70043, 50076, 50079] {
            assert_eq!(
                map(400, json!({"error":"invalid_grant","error_codes":[code]})),
                OboError::SignInAgain { code: Some(code) }
            );
        }
        // The app is not in the tenant: by error name or by code.
        assert_eq!(
            map(400, json!({"error":"unauthorized_client"})),
            OboError::AppNotInTenant { code: None }
        );
        assert_eq!(
            map(400, json!({"error":"invalid_grant","error_codes":[700016]})),
            OboError::AppNotInTenant { code: Some(700016) }
        );
        // Misconfigured: any 401, or a request the connector got wrong.
        assert_eq!(map(401, json!({"error":"whatever"})).code(), "misconfigured");
        for error in ["invalid_client", "invalid_scope", "invalid_request", "invalid_resource"] {
            assert_eq!(
                map(400, json!({"error": error})),
                OboError::Misconfigured { error: error.into(), code: None }
            );
        }
        // Claims that are blank or not a JSON object are not a challenge.
        for claims in ["  ", "[1]"] {
            let e =
                map(400, json!({"error":"invalid_grant","error_codes":[99999],"claims":claims}));
            assert_eq!(e.claims_challenge(), None, "{claims:?}");
        }
    }

    #[test]
    fn codes_name_the_class_and_the_aadsts_number() {
        assert_eq!(OboError::NotAssigned.code(), "not_assigned:AADSTS50105");
        assert_eq!(OboError::AccountDisabled.code(), "account_disabled:AADSTS50057");
        assert_eq!(OboError::SignInAgain { code: None }.code(), "sign_in_again");
        assert_eq!(OboError::SignInAgain { code: Some(50173) }.code(), "sign_in_again:AADSTS50173");
        assert_eq!(OboError::Unreachable.code(), "entra_unreachable");
        assert_eq!(OboError::Unreachable.retry_after(), None);
        assert_eq!(OboError::Unreachable.claims_challenge(), None);
        let throttled = OboError::Throttled { code: None, retry_after: None, rate_limited: false };
        assert_eq!(throttled.retry_after(), None);
        assert_eq!(throttled.user_message(), "Microsoft Entra ID is busy. Try again later.");
    }

    #[test]
    fn an_error_name_is_cut_to_64_token_characters() {
        let long = format!("{}-x", "a_b".repeat(30));
        let e = map(400, serde_json::json!({"error": long}));
        let OboError::Rejected { error, .. } = e else { panic!("rejected: {e:?}") };
        assert_eq!(error, "a_b".repeat(30)[..64].to_owned());
    }

    #[test]
    fn unknown_errors_show_only_the_code() {
        let e = map(
            400,
            serde_json::json!({"error":"invalid_grant\r\nEvil","error_codes":[99999],
            "error_description":"secret-looking text"}),
        );
        assert_eq!(e, OboError::Rejected { error: "invalid_grantEvil".into(), code: Some(99999) });
        insta::assert_snapshot!(e.user_message(), @"Microsoft Entra ID refused access (AADSTS99999).");
    }
}
