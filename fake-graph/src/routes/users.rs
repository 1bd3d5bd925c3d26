//! `/me`, `/users/{id|upn}`, `/users?$filter=…`, mailbox settings.

use fixtures::User;
use serde_json::{Value, json};

use super::{Ctx, json};
use crate::{
    auth::perms,
    error::{GraphError, GraphResult},
    odata::{self, FVal, Fields},
};

/// Directory properties of a user (what `User.ReadBasic.All` and `User.Read` return by default).
pub fn user_json(u: &User) -> Value {
    json!({
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": u.given_name,
        "jobTitle": u.job_title,
        "mail": u.mail,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": "en-US",
        "surname": u.surname,
        "userPrincipalName": u.upn,
        "id": u.oid.to_string(),
    })
}

struct UserFields<'a>(&'a User);

impl Fields for UserFields<'_> {
    fn field(&self, path: &str) -> Option<FVal> {
        let u = self.0;
        let s = |v: &Option<String>| v.clone().map(FVal::Str).unwrap_or(FVal::Null);
        Some(match path {
            "id" => FVal::Str(u.oid.to_string()),
            "displayname" => FVal::Str(u.display_name.clone()),
            "mail" => FVal::Str(u.mail.clone()),
            "userprincipalname" => FVal::Str(u.upn.clone()),
            "givenname" => s(&u.given_name),
            "surname" => s(&u.surname),
            "jobtitle" => s(&u.job_title),
            "accountenabled" => FVal::Bool(u.enabled),
            _ => return None,
        })
    }
}

pub fn get_user(ctx: &Ctx<'_>, id: &str, is_me: bool) -> GraphResult {
    if ctx.caller.app_only && is_me {
        return Err(GraphError::bad_request(
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        ));
    }
    let target = ctx.store.user(ctx.caller.tid, id);
    let own = target.is_some_and(|u| u.oid == ctx.caller.oid);
    ctx.caller.require(if own { &perms::ME } else { &perms::USERS })?;
    let u = target.ok_or_else(|| GraphError::directory_not_found(id))?;
    let mut body = user_json(u);
    body["@odata.context"] = json!("https://graph.microsoft.com/v1.0/$metadata#users/$entity");
    Ok(json(odata::apply_select(body, &ctx.query.select())))
}

pub fn list_users(ctx: &Ctx<'_>) -> GraphResult {
    ctx.caller.require(&perms::USERS)?;
    let (tenant, _) = ctx.tenant()?;
    let filter = ctx.query.get("$filter").map(odata::parse_filter).transpose()?;
    if let (Some(f), Some(u)) = (&filter, tenant.users.first()) {
        f.validate(&UserFields(u))?;
    }
    if ctx.query.get("$search").is_some()
        && !crate::header_str(ctx.headers, "consistencylevel")
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
    {
        return Err(GraphError::bad_request(
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
        ));
    }
    let search = ctx.query.get("$search").map(|s| s.trim_matches('"').to_owned());
    let matching: Vec<&User> = tenant
        .users
        .iter()
        .filter(|u| filter.as_ref().is_none_or(|f| f.eval(&UserFields(u))))
        .filter(|u| {
            search.as_ref().is_none_or(|s| {
                let needle = s.split_once(':').map(|(_, v)| v).unwrap_or(s).to_lowercase();
                u.display_name.to_lowercase().contains(&needle)
                    || u.mail.to_lowercase().contains(&needle)
            })
        })
        .collect();
    let top = ctx.query.top(100, 999)?;
    let offset = ctx.query.offset()?;
    let select = ctx.query.select();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(top)
        .map(|u| odata::apply_select(user_json(u), &select))
        .collect();
    let mut body = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": page});
    if offset + top < matching.len() {
        body["@odata.nextLink"] = json!(ctx.query.next_link(ctx.base(), ctx.path, offset + top));
    }
    Ok(json(body))
}

pub fn mailbox_settings(ctx: &Ctx<'_>, id: &str) -> GraphResult {
    ctx.caller.require(&perms::MAILBOX_SETTINGS)?;
    let u = ctx.store.user(ctx.caller.tid, id).ok_or_else(|| GraphError::invalid_user(id))?;
    if u.oid != ctx.caller.oid {
        return Err(GraphError::forbidden(crate::error::Service::Outlook, &[], &ctx.caller.scp));
    }
    let wh = &u.working_hours;
    let tz = wh.time_zone.clone().unwrap_or_else(|| u.time_zone.clone());
    Ok(json(json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{}')/mailboxSettings", u.oid),
        "archiveFolder": "",
        "timeZone": u.time_zone,
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
        "dateFormat": "M/d/yyyy",
        "timeFormat": "h:mm tt",
        "userPurpose": "user",
        "automaticRepliesSetting": {"status": "disabled", "externalAudience": "all"},
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "workingHours": {
            "daysOfWeek": wh.days,
            "startTime": format!("{}.0000000", wh.start.format("%H:%M:%S")),
            "endTime": format!("{}.0000000", wh.end.format("%H:%M:%S")),
            "timeZone": {"name": tz},
        },
    })))
}
