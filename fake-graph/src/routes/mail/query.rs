//! Messages as query subjects: the `$filter`/`$orderby` fields (OData) and the KQL document of
//! `$search` and `/search/query`, with which properties' tokens the posting index holds.

use fixtures::{Mailbox, Message};

use crate::{
    kql::{self, KqlDoc, PropValue, SearchText},
    odata::{FVal, Fields},
    store::MailboxIndex,
    text::plain_body,
};
pub(super) struct MsgFields<'a>(pub(super) &'a Message);

impl Fields for MsgFields<'_> {
    fn field(&self, path: &str) -> Option<FVal> {
        let m = self.0;
        Some(match path {
            "id" => FVal::Str(m.id.clone()),
            "receiveddatetime" | "createddatetime" | "lastmodifieddatetime" => {
                FVal::Date(m.received)
            }
            "sentdatetime" => FVal::Date(m.sent),
            "from/emailaddress/address" | "sender/emailaddress/address" => {
                FVal::Str(m.from.address.clone())
            }
            "from/emailaddress/name" | "sender/emailaddress/name" => FVal::Str(m.from.name.clone()),
            "hasattachments" => FVal::Bool(!m.attachments.is_empty()),
            "isread" => FVal::Bool(m.is_read),
            "isdraft" => FVal::Bool(false),
            "subject" => FVal::Str(m.subject.clone()),
            "importance" => FVal::Str(m.importance.clone()),
            "parentfolderid" => FVal::Str(m.folder_id.clone()),
            "conversationid" => FVal::Str(m.conversation_id.clone()),
            "internetmessageid" => FVal::Str(m.internet_message_id.clone()),
            "flag/flagstatus" => FVal::Str(m.flag.clone()),
            _ => return None,
        })
    }
}

/// A message as a KQL document.
pub struct MsgDoc<'a> {
    pub m: &'a Message,
    pub text: &'a SearchText,
}

impl KqlDoc for MsgDoc<'_> {
    fn text(&self) -> &SearchText {
        self.text
    }

    fn prop(&self, name: &str) -> PropValue {
        let m = self.m;
        let people = |list: &[&fixtures::EmailAddress]| {
            PropValue::Text(SearchText::new(
                &list
                    .iter()
                    .map(|a| format!("{} {}", a.name, a.address))
                    .collect::<Vec<_>>()
                    .join(" "),
            ))
        };
        match name {
            "from" => people(&[&m.from]),
            "to" => people(&m.to.iter().collect::<Vec<_>>()),
            "cc" => people(&m.cc.iter().collect::<Vec<_>>()),
            "participants" | "recipients" => {
                let mut all: Vec<&fixtures::EmailAddress> = vec![&m.from];
                all.extend(m.to.iter());
                all.extend(m.cc.iter());
                people(&all)
            }
            "subject" => PropValue::Text(SearchText::new(&m.subject)),
            "body" => PropValue::Text(SearchText::new(&plain_body(m))),
            "attachment" | "attachmentnames" => PropValue::Text(SearchText::new(
                &m.attachments.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(" "),
            )),
            "received" => PropValue::Date(m.received),
            "sent" => PropValue::Date(m.sent),
            "hasattachment" | "hasattachments" => PropValue::Bool(!m.attachments.is_empty()),
            "isread" => PropValue::Bool(m.is_read),
            "importance" => PropValue::Keyword(m.importance.clone()),
            "kind" => PropValue::Keyword("email".into()),
            _ => PropValue::Unknown,
        }
    }
}

/// Message positions matching a KQL query, newest sent first (equal times in position order).
pub fn search_mailbox(mb: &Mailbox, mbi: &MailboxIndex, expr: &kql::Expr) -> Vec<u32> {
    let query = kql::Query::new(expr);
    let mut hits = mbi.postings.matching(mb.messages.len(), &query, &message_in_text, |i| {
        query.matches(&MsgDoc { m: &mb.messages[i as usize], text: &mbi.text[i as usize] })
    });
    hits.sort_unstable_by_key(|i| mbi.sent_rank[*i as usize]);
    hits
}

/// Message properties whose tokens are all in the indexed message text (subject, sender,
/// attachment names): `name:term` on them can use the postings. `body` is not (the index holds
/// the raw body, the property its plain text).
pub fn message_in_text(name: &str) -> bool {
    matches!(name, "from" | "subject" | "attachment" | "attachmentnames")
}
