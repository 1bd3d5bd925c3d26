//! Differential tests: the indexed search (postings + compiled `Query`) against the reference
//! full scan (`kql::oracle::matches` over every document, texts built as the scan built them) on
//! the standard fixture world, for random KQL queries.

use proptest::prelude::*;

use super::{
    chats::{ChatDoc, none_in_text},
    outlook::{EventDoc, event_in_text},
    sharepoint::{DriveDoc, drive_item_hits},
};
use crate::{
    kql::{self, Expr, Query, SearchText},
    routes::mail,
    store::Store,
    text, trimming,
};

fn store() -> &'static Store {
    static STORE: std::sync::OnceLock<Store> = std::sync::OnceLock::new();
    STORE.get_or_init(|| Store::new((*fixtures::standard_world()).clone()))
}

/// Words that occur in the world (and a few that do not), for queries that hit.
fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for t in &store().world.tenants {
        for mb in t.content.mailboxes.iter().take(2) {
            for m in mb.messages.iter().take(5) {
                words.extend(tokenize_all(&format!("{} {}", m.subject, m.from.name)));
            }
        }
        for d in t.content.drives.iter().take(3) {
            for it in d.items.iter().take(8) {
                words.extend(tokenize_all(&it.name));
            }
        }
        for c in t.content.chats.iter().take(3) {
            for m in c.messages.iter().take(3) {
                words.extend(tokenize_all(&text::html_to_text(&m.body)));
            }
        }
        for c in t.content.calendars.iter().take(2) {
            for e in c.events.iter().take(5) {
                words.extend(tokenize_all(&format!("{} {}", e.subject, e.organizer.name)));
            }
        }
    }
    words.extend(["zzzz".to_owned(), "the".to_owned(), "a".to_owned()]);
    words.sort();
    words.dedup();
    words
}

fn tokenize_all(s: &str) -> Vec<String> {
    kql::tokenize(s)
}

fn atom(words: Vec<String>) -> impl Strategy<Value = String> {
    let w = proptest::sample::select(words);
    let props = proptest::sample::select(vec![
        "subject",
        "from",
        "to",
        "body",
        "attachment",
        "filename",
        "title",
        "author",
        "organizer",
        "location",
        "participants",
        "createdby",
    ]);
    let fixed = proptest::sample::select(vec![
        "isread:true",
        "hasattachment:false",
        "iscontainer:false",
        "isdocument:true",
        "filetype:docx",
        "filetype:.txt",
        "fileextension<>pdf",
        "received>=2024-06-01",
        "sent<2025-01-01",
        "created:2023-01-01..2026-12-31",
        "start>2024-01-01",
        "lastmodifiedtime<=07/23/2026",
        "ismentioned:yes",
        "path:https://contoso.sharepoint.com/sites",
        "path:\"https://contoso-my.sharepoint.com/personal\"",
        "importance:high",
        "*",
    ]);
    prop_oneof![
        4 => w.clone(),
        2 => (w.clone(), 1usize..4).prop_map(|(w, n)| {
            let cut: String = w.chars().take(n).collect();
            format!("{cut}*")
        }),
        1 => (w.clone(), w.clone()).prop_map(|(a, b)| format!("\"{a} {b}\"")),
        2 => (props.clone(), w.clone(), proptest::sample::select(vec![":", "=", "<>"]))
            .prop_map(|(p, w, op)| format!("{p}{op}{w}")),
        1 => (props, w.clone(), 1usize..3).prop_map(|(p, w, n)| {
            let cut: String = w.chars().take(n).collect();
            format!("{p}:{cut}*")
        }),
        1 => fixed.prop_map(str::to_owned),
    ]
}

fn query_text() -> impl Strategy<Value = String> {
    atom(vocabulary()).prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} OR {b})")),
            inner.clone().prop_map(|a| format!("NOT {a}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} -{b}")),
        ]
    })
}

fn scan(len: usize, is_match: impl Fn(usize) -> bool) -> Vec<u32> {
    (0..len).filter(|i| is_match(*i)).map(|i| i as u32).collect()
}

/// Every collection of every tenant: indexed positions equal the scan's.
fn check(expr: &Expr) -> Result<(), TestCaseError> {
    let store = store();
    let query = Query::new(expr);
    for tenant in &store.world.tenants {
        let Some((_, idx)) = store.tenant(tenant.id) else { continue };
        for mb in &tenant.content.mailboxes {
            let mbi = &idx.mailboxes[&mb.owner];
            let doc = |i: usize| mail::MsgDoc { m: &mb.messages[i], text: &mbi.text[i] };
            let want = scan(mb.messages.len(), |i| kql::oracle::matches(expr, &doc(i)));
            let mut got =
                mbi.postings.matching(mb.messages.len(), &query, &mail::message_in_text, |i| {
                    query.matches(&doc(i as usize))
                });
            prop_assert_eq!(&got, &want, "messages");
            // Hit order: the rank sort equals the scan's stable sort by `sent`.
            let mut stable = want.clone();
            stable
                .sort_by(|a, b| mb.messages[*b as usize].sent.cmp(&mb.messages[*a as usize].sent));
            got.sort_unstable_by_key(|i| mbi.sent_rank[*i as usize]);
            prop_assert_eq!(got, stable, "message order");
        }
        for (pos, cal) in tenant.content.calendars.iter().enumerate() {
            let search = &idx.calendar_search[pos];
            let want = scan(cal.events.len(), |i| {
                let e = &cal.events[i];
                let text = SearchText::new(&format!(
                    "{} {} {} {} {}",
                    e.subject,
                    e.body_preview,
                    e.location.as_deref().unwrap_or(""),
                    e.organizer.name,
                    e.organizer.address
                ));
                kql::oracle::matches(expr, &EventDoc { e, text: &text })
            });
            let got = search.postings.matching(cal.events.len(), &query, &event_in_text, |i| {
                query.matches(&EventDoc {
                    e: &cal.events[i as usize],
                    text: &search.text[i as usize],
                })
            });
            prop_assert_eq!(got, want, "events");
        }
        let person = |oid: uuid::Uuid| {
            tenant
                .users
                .iter()
                .find(|u| u.oid == oid)
                .map(|u| (u.display_name.as_str(), u.mail.as_str()))
                .unwrap_or_default()
        };
        let mut chats: Vec<(&[fixtures::ChatMessage], &crate::store::ChatSearch)> = tenant
            .content
            .chats
            .iter()
            .zip(&idx.chat_search)
            .map(|(c, s)| (c.messages.as_slice(), s))
            .collect();
        for (team, search) in tenant.content.teams.iter().zip(&idx.channel_search) {
            for (c, s) in team.channels.iter().zip(search) {
                chats.push((c.messages.as_slice(), s));
            }
        }
        let me = tenant.users.first().map(|u| u.oid).unwrap_or_default();
        for (messages, search) in chats {
            let doc = |i: usize, text: &SearchText| {
                let m = &messages[i];
                kql::oracle::matches(
                    expr,
                    &ChatDoc {
                        text,
                        from: person(m.from),
                        created: m.created,
                        mentioned: m.mentions.contains(&me),
                    },
                )
            };
            let want = scan(messages.len(), |i| {
                doc(i, &SearchText::new(&text::html_to_text(&messages[i].body)))
            });
            let got = search.index.postings.matching(messages.len(), &query, &none_in_text, |i| {
                let m = &messages[i as usize];
                query.matches(&ChatDoc {
                    text: &search.index.text[i as usize],
                    from: person(m.from),
                    created: m.created,
                    mentioned: m.mentions.contains(&me),
                })
            });
            prop_assert_eq!(got, want, "chat messages");
        }
        for d in &tenant.content.drives {
            let di = &idx.drives[&d.id];
            let doc = |i: usize| DriveDoc { item: &d.items[i], search: &di.search[i] };
            // Trimmed for a few viewers, as the scan trimmed (after matching, per item).
            for u in tenant.users.iter().take(4) {
                let viewer =
                    trimming::Viewer { oid: u.oid, groups: store.groups_of(tenant.id, u.oid) };
                let want = scan(d.items.len(), |i| {
                    let it = &d.items[i];
                    it.parent_id.is_some()
                        && kql::oracle::matches(expr, &doc(i))
                        && trimming::can_see_item(&viewer, tenant, idx, d, di, it)
                });
                let got = drive_item_hits(&query, &viewer, tenant, idx, d, di);
                prop_assert_eq!(got, want, "drive items");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn indexed_search_equals_the_full_scan(q in query_text()) {
        // Queries the parser refuses never reach matching.
        if let Ok(expr) = kql::parse(&q) {
            check(&expr)?;
        }
    }
}

#[test]
fn every_kind_of_term_equals_the_full_scan() {
    for q in [
        "budget",
        "bud*",
        "\"quarterly budget\"",
        "filename:report author:adele",
        "path:https://contoso.sharepoint.com",
        "subject:budget OR from:megan",
        "NOT budget",
        "*",
        "organizer:adele location:room",
        "a* AND (the OR zzzz)",
    ] {
        let expr = kql::parse(q).expect("parses");
        check(&expr).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}

#[test]
fn every_text_restriction_equals_the_full_scan() {
    let words = vocabulary();
    let props = [
        "subject",
        "from",
        "to",
        "cc",
        "body",
        "attachment",
        "participants",
        "filename",
        "title",
        "author",
        "createdby",
        "organizer",
        "attendees",
        "location",
    ];
    for p in props {
        for w in words.iter().step_by(words.len() / 25 + 1) {
            for q in [format!("{p}:{w}"), format!("{p}={w}*")] {
                let expr = kql::parse(&q).expect("parses");
                check(&expr).unwrap_or_else(|e| panic!("{q}: {e}"));
            }
        }
    }
}
