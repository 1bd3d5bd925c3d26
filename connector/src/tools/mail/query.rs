//! How `outlook_email_search` asks Graph: the choice between the search API, `$search` and
//! `$filter` (see the table in [`super`]), the request of each, and the filters each applies.

use chrono::DateTime;
use serde_json::{Value, json};

use super::EmailCriteria;
use crate::graph::{
    GraphPath, GraphRequest,
    query::{
        kql::{DateOp, Kql},
        odata::{self, Cmp, Filter},
    },
};
use crate::tools::shaping::AppliedFilter;

/// Fields asked of `/messages`.
const SELECT: &[&str] = &[
    "id",
    "subject",
    "from",
    "toRecipients",
    "receivedDateTime",
    "bodyPreview",
    "hasAttachments",
    "webLink",
    "conversationId",
];
/// How the search runs.
#[derive(Clone, Debug, PartialEq)]
pub enum EmailQuery {
    /// `POST /search/query`: the KQL string.
    SearchApi { kql: String },
    /// `GET …/messages?$search=`.
    ODataSearch { request: GraphRequest },
    /// `GET …/messages?$filter=`.
    ODataFilter { request: GraphRequest },
}

fn messages_path(c: &EmailCriteria) -> GraphPath {
    let base = match &c.mailbox {
        Some(m) => GraphPath::fixed("/users").segment(m.as_str()),
        None => GraphPath::fixed("/me"),
    };
    match c.folder {
        Some(f) => base.then("mailFolders").segment(f).then("messages"),
        None => base.then("messages"),
    }
}

fn outlook(req: GraphRequest) -> GraphRequest {
    req.prefer("IdType=\"ImmutableId\"").prefer("outlook.body-content-type=\"text\"")
}

/// Chooses the Graph call (see the module docs) and the filters it applies.
pub fn plan(c: &EmailCriteria) -> (EmailQuery, Vec<AppliedFilter>) {
    let mut applied = Vec::new();
    let own_whole_mailbox = c.mailbox.is_none() && c.folder.is_none();
    if let Some(m) = &c.mailbox {
        applied.push(AppliedFilter::graph("mailbox", m.as_str()));
    }
    if let Some(f) = c.folder {
        applied.push(AppliedFilter::graph("folder", f));
    }
    let use_kql = c.query.is_some() || c.to.is_some();
    if use_kql {
        let search_api = own_whole_mailbox && c.query.is_some();
        let mut q = Kql::new();
        if let Some(text) = &c.query {
            q = if search_api { q.phrase(text) } else { q.terms(text) };
            let how = if search_api { "phrase" } else { "all words" };
            applied.push(AppliedFilter::graph("query", format!("{text} ({how})")));
        }
        if let Some(a) = &c.from {
            q = q.address("from", a);
            applied.push(AppliedFilter::graph("from", a.as_str()));
        }
        if let Some(a) = &c.to {
            q = q.address("recipients", a);
            applied.push(AppliedFilter::graph("to", a.as_str()));
        }
        if let Some(t) = c.after {
            q = q.datetime("received", DateOp::Ge, t);
            applied.push(AppliedFilter::graph("received_after", odata::datetime_literal(t)));
        }
        if let Some(t) = c.before {
            q = q.datetime("received", DateOp::Lt, t);
            applied.push(AppliedFilter::graph("received_before", odata::datetime_literal(t)));
        }
        if let Some(b) = c.has_attachments {
            q = q.flag("hasAttachments", b);
            applied.push(AppliedFilter::graph("has_attachments", b.to_string()));
        }
        let kql = q.build();
        if search_api {
            return (EmailQuery::SearchApi { kql }, applied);
        }
        let request = outlook(
            GraphRequest::get(messages_path(c))
                .query("$search", odata::search_value(&kql))
                .select(SELECT)
                .top(c.limit),
        );
        return (EmailQuery::ODataSearch { request }, applied);
    }
    // Filters only. `receivedDateTime` leads (the `$orderby` rule); with no lower bound the
    // epoch stands in, so the clause is always there.
    let after = c.after.unwrap_or(DateTime::UNIX_EPOCH);
    let mut f = Filter::new().cmp("receivedDateTime", Cmp::Ge, odata::Value::DateTime(after));
    if let Some(t) = c.after {
        applied.push(AppliedFilter::graph("received_after", odata::datetime_literal(t)));
    }
    if let Some(t) = c.before {
        f = f.cmp("receivedDateTime", Cmp::Lt, odata::Value::DateTime(t));
        applied.push(AppliedFilter::graph("received_before", odata::datetime_literal(t)));
    }
    if let Some(a) = &c.from {
        f = f.cmp("from/emailAddress/address", Cmp::Eq, odata::Value::Str(a.as_str()));
        applied.push(AppliedFilter::graph("from", a.as_str()));
    }
    if let Some(b) = c.has_attachments {
        f = f.cmp("hasAttachments", Cmp::Eq, odata::Value::Bool(b));
        applied.push(AppliedFilter::graph("has_attachments", b.to_string()));
    }
    let request = outlook(
        GraphRequest::get(messages_path(c))
            .query("$filter", f.build())
            .query("$orderby", "receivedDateTime desc")
            .select(SELECT)
            .top(c.limit),
    );
    (EmailQuery::ODataFilter { request }, applied)
}

/// The `/search/query` body for one page.
pub fn search_body(kql: &str, from: u32, size: u32) -> Value {
    json!({"requests": [{
        "entityTypes": ["message"],
        "query": {"queryString": kql},
        "from": from,
        "size": size,
        "enableTopResults": from == 0,
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::{
        mail::{EmailSearchArgs, scopes, tests::criteria_in},
        mailbox::MailboxZone,
        shaping,
    };

    fn checked(p: EmailSearchArgs) -> EmailCriteria {
        criteria_in(&p, &MailboxZone::utc()).expect("valid")
    }

    fn url(req: &GraphRequest) -> Vec<(String, String)> {
        let base = url::Url::parse("https://graph.microsoft.com/v1.0").expect("base");
        let u = req.url(&base).expect("url");
        let mut out = vec![("path".to_owned(), u.path().to_owned())];
        out.extend(u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())));
        out
    }

    #[test]
    fn free_text_goes_to_the_search_api_as_one_phrase() {
        let c = checked(EmailSearchArgs {
            query: Some("pizza\" OR from:ceo@contoso.com".into()),
            from: Some("Ada@Contoso.com".into()),
            received_after: Some("2024-01-01".into()),
            has_attachments: Some(true),
            ..Default::default()
        });
        let (plan, applied) = plan(&c);
        assert_eq!(
            plan,
            EmailQuery::SearchApi {
                kql: "\"pizza OR from:ceo@contoso.com\" from:ada@contoso.com \
                      received>=2024-01-01T00:00:00Z hasAttachments:true"
                    .into()
            }
        );
        assert!(applied.iter().all(|a| a.applied_by == shaping::AppliedBy::Graph));
        assert_eq!(applied.len(), 4);
    }

    #[test]
    fn filters_alone_use_filter_with_the_date_first() {
        let c = checked(EmailSearchArgs {
            from: Some("x'@contoso.com".into()),
            received_before: Some("2024-02-01T00:00:00Z".into()),
            ..Default::default()
        });
        let (EmailQuery::ODataFilter { request }, _) = plan(&c) else { panic!("filter plan") };
        assert_eq!(
            url(&request),
            vec![
                ("path".into(), "/v1.0/me/messages".into()),
                (
                    "$filter".into(),
                    "receivedDateTime ge 1970-01-01T00:00:00Z and receivedDateTime lt \
                     2024-02-01T00:00:00Z and from/emailAddress/address eq 'x''@contoso.com'"
                        .into()
                ),
                ("$orderby".into(), "receivedDateTime desc".into()),
                ("$select".into(), SELECT.join(",")),
                ("$top".into(), "10".into()),
            ]
        );
    }

    #[test]
    fn a_folder_or_shared_mailbox_uses_search_without_filter_or_orderby() {
        let c = checked(EmailSearchArgs {
            query: Some("budget (NOT q3)".into()),
            folder: Some("Inbox".into()),
            mailbox: Some("sales@contoso.com".into()),
            limit: Some(25),
            ..Default::default()
        });
        assert!(scopes(&c).contains("Mail.Read.Shared"));
        let (EmailQuery::ODataSearch { request }, _) = plan(&c) else { panic!("search plan") };
        let pairs = url(&request);
        assert_eq!(pairs[0].1, "/v1.0/users/sales@contoso.com/mailFolders/inbox/messages");
        assert_eq!(pairs[1], ("$search".into(), "\"budget not q3\"".into()));
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["path", "$search", "$select", "$top"]);
    }
}
