//! S — the tools against the fixture tenants. Each scenario checks what the catalogue says and
//! records every output (text and structured content) with [`World::record_snapshot`]; the
//! test suite compares them with insta snapshots (volatile fields redacted there).
//! S05's slots are checked against a brute-force oracle over the schedules Graph returns,
//! for proptest-generated requests.

use std::collections::BTreeSet;

use anyhow::{Result, anyhow, ensure};
use chrono::{DateTime, Datelike, Duration, NaiveDateTime, NaiveTime, Timelike, Utc, Weekday};
use serde_json::{Value, json};

use super::{catalogue, scenario, structured_ok, uri_where};
use crate::{Persona, Session, World};

catalogue!($ s_tools_tests {
    s01_sharepoint_search => scenario!("S01", "sharepoint_search", s01_sharepoint_search),
    s02_sharepoint_folder_search => scenario!("S02", "sharepoint_folder_search", s02_folder_search),
    s03_outlook_email_search => scenario!(
        "S03",
        "outlook_email_search with sender and date filters, paging",
        s03_email_search
    ),
    s04_outlook_calendar_search => scenario!("S04", "outlook_calendar_search in time zones", s04_calendar_search),
    s05_find_meeting_availability => scenario!(
        "S05",
        "find_meeting_availability against a brute-force oracle",
        s05_meeting_availability
    ),
    s06_chat_message_search => scenario!("S06", "chat_message_search", s06_chat_search),
    s07_read_resource => scenario!("S07", "read_resource for mail, chat and office files", s07_read_resource),
});

/// Calls a tool that must succeed, records `{text, structured}` as snapshot `name`, and
/// returns the structured content.
async fn snap(world: &World, s: &Session, name: &str, tool: &str, args: Value) -> Result<Value> {
    let out = s.call_ok(tool, args.clone()).await?;
    ensure!(!out.is_error, "{tool} {args} failed for {}: {}", s.upn, out.text);
    let st = out.structured.clone().ok_or_else(|| anyhow!("{tool}: no structuredContent"))?;
    world.record_snapshot(
        name,
        json!({"tool": tool, "arguments": args, "text": out.text, "structured": st}),
    );
    Ok(st)
}

fn list<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v[field].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn strings(v: &Value, field: &str, key: &str) -> Vec<String> {
    list(v, field).iter().filter_map(|i| i[key].as_str().map(str::to_owned)).collect()
}

/// Every item carries a well-formed `m365://` URI of the expected kind.
fn uris_are(v: &Value, field: &str, prefix: &str) -> Result<()> {
    for item in list(v, field) {
        let uri = item["uri"].as_str().unwrap_or_default();
        ensure!(uri.starts_with(prefix), "{field} item without a {prefix} URI: {item}");
    }
    Ok(())
}

/// Date-times carry UTC and the same instant in the stated zone.
fn date_times_agree(d: &Value, zone: &str) -> Result<()> {
    let utc = DateTime::parse_from_rfc3339(d["utc"].as_str().unwrap_or_default())
        .map_err(|e| anyhow!("utc of {d}: {e}"))?;
    let local = DateTime::parse_from_rfc3339(d["local"].as_str().unwrap_or_default())
        .map_err(|e| anyhow!("local of {d}: {e}"))?;
    ensure!(utc == local, "utc and local name different instants: {d}");
    ensure!(d["time_zone"] == json!(zone), "expected zone {zone}: {d}");
    let tz = connector::tools::mailbox::MailboxZone::resolve(Some(zone)).tz;
    let expected = chrono::Offset::fix(utc.with_timezone(&tz).offset());
    ensure!(*local.offset() == expected, "local offset is not {zone}'s: {d}");
    Ok(())
}

/// Pages through a search to the end; returns every page.
async fn all_pages(
    world: &World,
    s: &Session,
    name: &str,
    tool: &str,
    args: Value,
) -> Result<Vec<Value>> {
    let mut pages = Vec::new();
    let mut next = args.clone();
    for n in 1..=20 {
        let page = snap(world, s, &format!("{name}_page{n}"), tool, next.clone()).await?;
        let cursor = page["page"]["next_cursor"].as_str().map(str::to_owned);
        ensure!(
            page["page"]["has_more"] == json!(cursor.is_some()),
            "has_more and next_cursor disagree: {}",
            page["page"]
        );
        pages.push(page);
        match cursor {
            Some(c) => next["cursor"] = json!(c),
            None => return Ok(pages),
        }
    }
    Err(anyhow!("{tool} kept paging past 20 pages"))
}

pub async fn s01_sharepoint_search(world: &World) -> Result<()> {
    // Alex: pilot group member (the Q3 budget is shared with the pilot group).
    let adele = world.session(Persona::Alex).await?;
    let budget =
        snap(world, &adele, "s01_budget", "sharepoint_search", json!({"query": "budget"})).await?;
    uris_are(&budget, "items", "m365://drive/")?;
    ensure!(
        strings(&budget, "items", "name").iter().any(|n| n == "Q3 Budget.xlsx"),
        "the shared Q3 Budget.xlsx is missing: {budget}"
    );
    let docx = snap(
        world,
        &adele,
        "s01_design_docx",
        "sharepoint_search",
        json!({"query": "design", "file_types": ["docx"]}),
    )
    .await?;
    let names = strings(&docx, "items", "name");
    ensure!(names.iter().any(|n| n == "Design.docx"), "Design.docx is missing: {names:?}");
    ensure!(names.iter().all(|n| n.ends_with(".docx")), "file type filter leaked: {names:?}");
    ensure!(
        list(&docx, "filters").iter().any(|f| f["name"] == "file_types"),
        "the file type filter is not reported"
    );
    let site = snap(
        world,
        &adele,
        "s01_allcompany_site",
        "sharepoint_search",
        json!({"query": "handbook", "site_url": "https://contoso.sharepoint.com/sites/AllCompany",
               "include_sites": true}),
    )
    .await?;
    for item in list(&site, "items") {
        let url = item["web_url"].as_str().unwrap_or_default();
        ensure!(url.contains("/sites/AllCompany"), "an item outside the site: {url}");
    }
    let pages = all_pages(
        world,
        &adele,
        "s01_paged",
        "sharepoint_search",
        json!({"query": "budget", "limit": 2}),
    )
    .await?;
    let mut seen = BTreeSet::new();
    for p in &pages {
        for uri in strings(p, "items", "uri") {
            ensure!(seen.insert(uri.clone()), "{uri} came twice while paging");
        }
    }
    Ok(())
}

pub async fn s02_folder_search(world: &World) -> Result<()> {
    let alex = world.session(Persona::Alex).await?;
    let specs =
        snap(world, &alex, "s02_specs", "sharepoint_folder_search", json!({"name": "Specs"}))
            .await?;
    uris_are(&specs, "items", "m365://drive/")?;
    ensure!(list(&specs, "items").iter().all(|i| i["kind"] == "folder"), "non-folders: {specs}");
    let spec = list(&specs, "items")
        .iter()
        .find(|i| i["name"] == "Specs")
        .ok_or_else(|| anyhow!("no Specs folder: {specs}"))?;
    ensure!(
        spec["path"].as_str().is_some_and(|p| p.contains("Project Falcon")),
        "the folder's path is missing: {spec}"
    );
    ensure!(spec["site_id"].is_string(), "the folder's site is missing: {spec}");
    let megan = world.session(Persona::Megan).await?;
    let reports =
        snap(world, &megan, "s02_reports", "sharepoint_folder_search", json!({"name": "Reports"}))
            .await?;
    ensure!(
        strings(&reports, "items", "name").iter().any(|n| n == "Reports"),
        "the Finance Reports folder is missing: {reports}"
    );
    // Folder contents through read_resource.
    let uri = uri_where(&reports, "items", "name", "Reports")?;
    let read =
        snap(world, &megan, "s02_reports_read", "read_resource", json!({"uri": uri})).await?;
    ensure!(
        strings(&read, "children", "name").iter().any(|n| n == "2026"),
        "the folder's children are not listed: {read}"
    );
    Ok(())
}

pub async fn s03_email_search(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let me = structured_ok(&adele, "get_me", json!({})).await?;
    let zone = connector::tools::mailbox::MailboxZone::resolve(me["time_zone"].as_str());
    let zone = zone.iana().to_owned();
    let budget =
        snap(world, &adele, "s03_budget", "outlook_email_search", json!({"query": "budget"}))
            .await?;
    uris_are(&budget, "messages", "m365://mail/")?;
    ensure!(
        strings(&budget, "messages", "subject").iter().any(|s| s == "Contoso Q3 budget review"),
        "the budget mail is missing: {budget}"
    );
    for m in list(&budget, "messages") {
        date_times_agree(&m["received"], &zone)?;
    }
    let sender = snap(
        world,
        &adele,
        "s03_from_litware",
        "outlook_email_search",
        json!({"from": "kim.akers@litware.com"}),
    )
    .await?;
    let from = list(&sender, "messages");
    ensure!(!from.is_empty(), "no mail from kim.akers@litware.com");
    for m in from {
        ensure!(
            m["from"]["address"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case("kim.akers@litware.com")),
            "sender filter leaked: {m}"
        );
    }
    let cut = "2026-03-01T00:00:00Z";
    let dated = snap(
        world,
        &adele,
        "s03_received_after",
        "outlook_email_search",
        json!({"received_after": cut, "folder": "inbox"}),
    )
    .await?;
    for m in list(&dated, "messages") {
        let at = m["received"]["utc"].as_str().unwrap_or_default();
        ensure!(at >= cut, "date filter leaked: {at} < {cut}");
    }
    ensure!(
        list(&dated, "applied_filters").iter().any(|f| f["name"] == "received_after"),
        "the date filter is not reported: {dated}"
    );
    // Paging to the end: every message once, newest first, counts consistent.
    let pages = all_pages(
        world,
        &adele,
        "s03_paged",
        "outlook_email_search",
        json!({"folder": "inbox", "limit": 2}),
    )
    .await?;
    let mut seen = BTreeSet::new();
    let mut last: Option<String> = None;
    for p in &pages {
        ensure!(
            p["page"]["returned"].as_u64() == Some(list(p, "messages").len() as u64),
            "returned does not count the page: {}",
            p["page"]
        );
        for m in list(p, "messages") {
            let uri = m["uri"].as_str().unwrap_or_default().to_owned();
            ensure!(seen.insert(uri.clone()), "{uri} came twice while paging");
            let at = m["received"]["utc"].as_str().unwrap_or_default().to_owned();
            if let Some(prev) = &last {
                ensure!(at <= *prev, "not newest first: {at} after {prev}");
            }
            last = Some(at);
        }
    }
    ensure!(pages.len() >= 2, "paging never happened with limit 2");
    Ok(())
}

pub async fn s04_calendar_search(world: &World) -> Result<()> {
    for (p, label) in [(Persona::Adele, "adele"), (Persona::Lee, "lee")] {
        let s = world.session(p).await?;
        let me = structured_ok(&s, "get_me", json!({})).await?;
        let zone = connector::tools::mailbox::MailboxZone::resolve(me["time_zone"].as_str())
            .iana()
            .to_owned();
        let week = snap(
            world,
            &s,
            &format!("s04_{label}_week"),
            "outlook_calendar_search",
            json!({"start": "2026-06-01", "end": "2026-06-08"}),
        )
        .await?;
        uris_are(&week, "events", "m365://event/")?;
        // Dates are midnight in the mailbox zone.
        let window = list(&week, "window");
        ensure!(window.len() == 2, "no window reported: {week}");
        for d in window {
            date_times_agree(d, &zone)?;
            ensure!(
                d["local"].as_str().is_some_and(|l| l.contains("T00:00:00")),
                "the window does not start at local midnight: {d}"
            );
        }
        let mut last = String::new();
        for e in list(&week, "events") {
            date_times_agree(&e["start"], &zone)?;
            date_times_agree(&e["end"], &zone)?;
            let start = e["start"]["utc"].as_str().unwrap_or_default().to_owned();
            ensure!(start >= last, "events out of order");
            ensure!(
                start.as_str() < window[1]["utc"].as_str().unwrap_or_default()
                    && e["end"]["utc"].as_str().unwrap_or_default()
                        > window[0]["utc"].as_str().unwrap_or_default(),
                "an event outside the window: {e}"
            );
            last = start;
        }
        ensure!(
            list(&week, "events")
                .iter()
                .any(|e| e["subject"].as_str().is_some_and(|x| x.contains("weekly sync"))),
            "{label}: the weekly sync is missing in {week}"
        );
        // The same window given with an explicit offset.
        let tokyo = snap(
            world,
            &s,
            &format!("s04_{label}_offset_window"),
            "outlook_calendar_search",
            json!({"start": "2026-06-01T09:00:00+09:00", "end": "2026-06-03T09:00:00+09:00"}),
        )
        .await?;
        ensure!(
            list(&tokyo, "window").first().and_then(|d| d["utc"].as_str())
                == Some("2026-06-01T00:00:00Z"),
            "the offset window was misread: {}",
            tokyo["window"]
        );
    }
    let adele = world.session(Persona::Adele).await?;
    snap(world, &adele, "s04_adele_keywords", "outlook_calendar_search", json!({"query": "sync"}))
        .await?;
    Ok(())
}

// ─── S05: the availability oracle ────────────────────────────────────────────────────────

struct OracleSchedule {
    address: String,
    blocked: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    tentative: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    hours: Option<(Vec<Weekday>, NaiveTime, NaiveTime, chrono_tz::Tz)>,
}

fn graph_time(v: &Value) -> Option<DateTime<Utc>> {
    let s = v["dateTime"].as_str()?;
    let s = s.split('.').next()?;
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok().map(|n| n.and_utc())
}

/// The schedules as Graph itself returns them to the caller (a Graph token minted for her).
async fn graph_schedules(
    world: &World,
    s: &Session,
    addresses: &[String],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<OracleSchedule>> {
    let token = world.entra.graph_token(s.tenant_id, s.object_id, &["Calendars.Read"], false);
    let fmt = |d: DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%S").to_string();
    let body = json!({
        "schedules": addresses,
        "startTime": {"dateTime": fmt(start), "timeZone": "UTC"},
        "endTime": {"dateTime": fmt(end), "timeZone": "UTC"},
        "availabilityViewInterval": 15,
    });
    let r = world
        .http()
        .post(format!("{}/v1.0/me/calendar/getSchedule", world.graph.uri()))
        .bearer_auth(token)
        .header("prefer", "outlook.timezone=\"UTC\"")
        .json(&body)
        .send()
        .await?;
    ensure!(r.status().is_success(), "getSchedule: HTTP {}", r.status());
    let v: Value = r.json().await?;
    let mut out = Vec::new();
    for address in addresses {
        let info = list(&v, "value")
            .iter()
            .find(|i| i["scheduleId"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(address)))
            .ok_or_else(|| anyhow!("no schedule for {address}"))?;
        let mut blocked = Vec::new();
        let mut tentative = Vec::new();
        for item in list(info, "scheduleItems") {
            let (Some(a), Some(b)) = (graph_time(&item["start"]), graph_time(&item["end"])) else {
                continue;
            };
            match item["status"].as_str().unwrap_or("unknown").to_ascii_lowercase().as_str() {
                "free" | "workingelsewhere" => {}
                "tentative" => tentative.push((a, b)),
                _ => blocked.push((a, b)),
            }
        }
        let wh = &info["workingHours"];
        let time = |k: &str| {
            wh[k]
                .as_str()
                .and_then(|t| NaiveTime::parse_from_str(t.split('.').next()?, "%H:%M:%S").ok())
        };
        let zone = connector::tools::mailbox::MailboxZone::resolve(wh["timeZone"]["name"].as_str());
        let days: Vec<Weekday> =
            list(wh, "daysOfWeek").iter().filter_map(|d| d.as_str()?.parse().ok()).collect();
        let hours = match (time("startTime"), time("endTime")) {
            (Some(a), Some(b)) if zone.note.is_none() => Some((days, a, b, zone.tz)),
            _ => None,
        };
        out.push(OracleSchedule { address: address.clone(), blocked, tentative, hours });
    }
    Ok(out)
}

/// Brute force: every grid minute of the organizer's clock, every minute of the meeting.
fn oracle(
    schedules: &[OracleSchedule],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    minutes: i64,
    step: u32,
    organizer: chrono_tz::Tz,
    working_hours_only: bool,
) -> Vec<(DateTime<Utc>, Vec<String>)> {
    let overlaps = |list: &[(DateTime<Utc>, DateTime<Utc>)], a: DateTime<Utc>, b: DateTime<Utc>| {
        list.iter().any(|(s, e)| *s < b && a < *e)
    };
    let in_hours = |s: &OracleSchedule, at: DateTime<Utc>| match &s.hours {
        None => true,
        Some((days, from, to, tz)) => {
            let local = at.with_timezone(tz);
            let t = local.time();
            if from < to {
                days.contains(&local.weekday()) && *from <= t && t < *to
            } else {
                (days.contains(&local.weekday()) && *from <= t)
                    || (days.contains(&local.weekday().pred()) && t < *to)
            }
        }
    };
    let mut out = Vec::new();
    let mut t = start;
    while t + Duration::minutes(minutes) <= end {
        let local = t.with_timezone(&organizer);
        let on_grid =
            local.second() == 0 && (local.hour() * 60 + local.minute()).is_multiple_of(step);
        let slot_end = t + Duration::minutes(minutes);
        if on_grid
            && schedules.iter().all(|s| {
                !overlaps(&s.blocked, t, slot_end)
                    && (!working_hours_only
                        || (0..minutes).all(|m| in_hours(s, t + Duration::minutes(m))))
            })
        {
            let tentative: Vec<String> = schedules
                .iter()
                .filter(|s| overlaps(&s.tentative, t, slot_end))
                .map(|s| s.address.to_ascii_lowercase())
                .collect();
            out.push((t, tentative));
        }
        t += Duration::minutes(1);
    }
    out.sort_by(|a, b| a.1.len().cmp(&b.1.len()).then(a.0.cmp(&b.0)));
    out
}

#[derive(Debug, Clone)]
struct AvailabilityCase {
    first_day: u32,
    days: u32,
    minutes: u32,
    step: u32,
    attendees: Vec<Persona>,
    working_hours_only: bool,
}

fn cases(n: u32) -> Result<Vec<AvailabilityCase>> {
    use proptest::{
        prelude::*,
        strategy::ValueTree,
        test_runner::{Config, TestRunner},
    };
    let pool = vec![Persona::Alex, Persona::Megan, Persona::Diego, Persona::PradeepContoso];
    let strategy = (
        0u32..14,
        1u32..4,
        prop::sample::select(vec![15u32, 30, 45, 60, 90]),
        prop::sample::select(vec![15u32, 30, 60]),
        prop::sample::subsequence(pool, 1..=3),
        prop::bool::weighted(0.8),
    );
    let mut runner = TestRunner::new_with_rng(
        Config { cases: n, ..Config::default() },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let mut out = Vec::new();
    for _ in 0..n {
        let tree = strategy.new_tree(&mut runner).map_err(|e| anyhow!("proptest: {e}"))?;
        let (first_day, days, minutes, step, attendees, working_hours_only) = tree.current();
        out.push(AvailabilityCase {
            first_day,
            days,
            minutes,
            step,
            attendees,
            working_hours_only,
        });
    }
    Ok(out)
}

pub async fn s05_meeting_availability(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let me = structured_ok(&adele, "get_me", json!({})).await?;
    let organizer = connector::tools::mailbox::MailboxZone::resolve(me["time_zone"].as_str()).tz;
    // A fixed request for the snapshot, then generated ones for the oracle.
    let fixed = AvailabilityCase {
        first_day: 0,
        days: 2,
        minutes: 30,
        step: 30,
        attendees: vec![Persona::Alex, Persona::Megan],
        working_hours_only: true,
    };
    let mut all = vec![fixed];
    all.extend(cases(8)?);
    for (n, case) in all.iter().enumerate() {
        let day0 = chrono::NaiveDate::from_ymd_opt(2026, 5, 25).ok_or_else(|| anyhow!("date"))?
            + Duration::days(i64::from(case.first_day));
        let day1 = day0 + Duration::days(i64::from(case.days));
        let args = json!({
            "attendees": case.attendees.iter().map(|p| p.upn()).collect::<Vec<_>>(),
            "duration_minutes": case.minutes,
            "start": day0.format("%Y-%m-%d").to_string(),
            "end": day1.format("%Y-%m-%d").to_string(),
            "step_minutes": case.step,
            "working_hours_only": case.working_hours_only,
        });
        let out = if n == 0 {
            snap(world, &adele, "s05_alex_megan", "find_meeting_availability", args.clone()).await?
        } else {
            structured_ok(&adele, "find_meeting_availability", args.clone()).await?
        };
        let attendees = list(&out, "attendees");
        ensure!(
            attendees.iter().all(|a| a["status"] == "resolved"),
            "{case:?}: not everyone was resolved: {out}"
        );
        let addresses: Vec<String> =
            attendees.iter().filter_map(|a| a["address"].as_str().map(str::to_owned)).collect();
        let local_midnight = |d: chrono::NaiveDate| -> Result<DateTime<Utc>> {
            use chrono::TimeZone;
            organizer
                .from_local_datetime(&d.and_time(NaiveTime::MIN))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| anyhow!("no local midnight"))
        };
        let (start, end) = (local_midnight(day0)?, local_midnight(day1)?);
        let schedules = graph_schedules(world, &adele, &addresses, start, end).await?;
        let expected = oracle(
            &schedules,
            start,
            end,
            i64::from(case.minutes),
            case.step,
            organizer,
            case.working_hours_only,
        );
        ensure!(
            out["total_found"].as_u64() == Some(expected.len() as u64),
            "{case:?}: total_found {} but the oracle finds {} slots",
            out["total_found"],
            expected.len()
        );
        let slots = list(&out, "slots");
        ensure!(slots.len() == expected.len().min(20), "{case:?}: {} slots listed", slots.len());
        for (slot, (at, tentative)) in slots.iter().zip(&expected) {
            let got =
                DateTime::parse_from_rfc3339(slot["start"]["utc"].as_str().unwrap_or_default())
                    .map_err(|e| anyhow!("slot start: {e}"))?;
            ensure!(got == *at, "{case:?}: slot {slot} where the oracle ranks {at}");
            let end_at =
                DateTime::parse_from_rfc3339(slot["end"]["utc"].as_str().unwrap_or_default())
                    .map_err(|e| anyhow!("slot end: {e}"))?;
            ensure!(end_at == *at + Duration::minutes(i64::from(case.minutes)), "slot length");
            let mut conflicts: Vec<String> = list(slot, "tentative_conflicts")
                .iter()
                .filter_map(|c| c.as_str().map(str::to_ascii_lowercase))
                .collect();
            conflicts.sort();
            let mut want = tentative.clone();
            want.sort();
            ensure!(conflicts == want, "{case:?}: tentative conflicts {conflicts:?} vs {want:?}");
        }
    }
    // Unresolvable attendees are named, not dropped.
    let unknown = snap(
        world,
        &adele,
        "s05_unknown_attendee",
        "find_meeting_availability",
        json!({"attendees": ["nobody@contoso.com", "alex@contoso.com"], "duration_minutes": 30,
               "start": "2026-06-01", "end": "2026-06-02"}),
    )
    .await?;
    ensure!(
        list(&unknown, "attendees")
            .iter()
            .any(|a| a["requested"] == "nobody@contoso.com" && a["status"] == "not_found"),
        "the unknown attendee is not reported: {unknown}"
    );
    Ok(())
}

pub async fn s06_chat_search(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    let budget =
        snap(world, &adele, "s06_budget", "chat_message_search", json!({"query": "budget"}))
            .await?;
    ensure!(!list(&budget, "messages").is_empty(), "no chat message about the budget: {budget}");
    for m in list(&budget, "messages") {
        if m["source"] == "chat" {
            ensure!(
                m["uri"].as_str().is_some_and(|u| u.starts_with("m365://chat/")),
                "a chat hit without a chat URI: {m}"
            );
        }
    }
    // Her one-on-one message about the budget (to Alex) is found by sender and by date.
    let from = snap(
        world,
        &adele,
        "s06_from_adele",
        "chat_message_search",
        json!({"query": "budget", "from": "adele@contoso.com"}),
    )
    .await?;
    ensure!(!list(&from, "messages").is_empty(), "the sender filter lost her message: {from}");
    for m in list(&from, "messages") {
        ensure!(
            m["from"]["address"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case("adele@contoso.com")),
            "sender filter leaked: {m}"
        );
    }
    let none = structured_ok(
        &adele,
        "chat_message_search",
        json!({"query": "budget", "from": "diego@contoso.com"}),
    )
    .await?;
    ensure!(list(&none, "messages").is_empty(), "sender filter ignored: {none}");
    let dated = snap(
        world,
        &adele,
        "s06_sent_after",
        "chat_message_search",
        json!({"query": "budget", "sent_after": "2026-01-01"}),
    )
    .await?;
    ensure!(!list(&dated, "messages").is_empty(), "the date filter lost her message: {dated}");
    for m in list(&dated, "messages") {
        ensure!(
            m["sent"]["utc"].as_str().unwrap_or_default() >= "2026-01-01",
            "date filter leaked: {m}"
        );
    }
    let before = structured_ok(
        &adele,
        "chat_message_search",
        json!({"query": "budget", "sent_before": "2026-01-01"}),
    )
    .await?;
    ensure!(list(&before, "messages").is_empty(), "sent_before ignored: {before}");
    Ok(())
}

pub async fn s07_read_resource(world: &World) -> Result<()> {
    let adele = world.session(Persona::Adele).await?;
    // Mail, with its attachment listed and readable.
    let mail = structured_ok(&adele, "outlook_email_search", json!({"query": "budget"})).await?;
    let uri = uri_where(&mail, "messages", "subject", "Q3 budget review")?;
    let read = snap(world, &adele, "s07_mail", "read_resource", json!({"uri": uri})).await?;
    ensure!(read["kind"] == "mail", "not a mail: {}", read["kind"]);
    ensure!(
        !read["text"].as_str().unwrap_or_default().contains("<html"),
        "HTML body not converted"
    );
    let attachment = uri_where(&read, "attachments", "name", "Q3 Budget.xlsx")?;
    let xlsx_att =
        snap(world, &adele, "s07_mail_attachment", "read_resource", json!({"uri": attachment}))
            .await?;
    ensure!(
        xlsx_att["text"].as_str().is_some_and(|t| t.contains("Contoso Q3 Budget")),
        "the attachment is not read as a workbook: {xlsx_att}"
    );
    // A chat message.
    let chats = structured_ok(&adele, "chat_message_search", json!({"query": "budget"})).await?;
    let chat_uri = list(&chats, "messages")
        .iter()
        .find_map(|m| m["uri"].as_str().map(str::to_owned))
        .ok_or_else(|| anyhow!("no chat message URI: {chats}"))?;
    let chat = snap(world, &adele, "s07_chat", "read_resource", json!({"uri": chat_uri})).await?;
    ensure!(chat["text"].as_str().is_some_and(|t| !t.is_empty()), "empty chat message: {chat}");
    // Office files and a PDF.
    let find = |q: &'static str, name: &'static str| {
        let adele = &adele;
        async move {
            let hits = structured_ok(adele, "sharepoint_search", json!({"query": q})).await?;
            uri_where(&hits, "items", "name", name)
        }
    };
    let docx = find("design", "Design.docx").await?;
    let read = snap(world, &adele, "s07_docx", "read_resource", json!({"uri": docx})).await?;
    ensure!(
        read["text"].as_str().is_some_and(|t| t.contains("Project Falcon")),
        "Design.docx text: {read}"
    );
    let alex = world.session(Persona::Alex).await?;
    let hits = structured_ok(&alex, "sharepoint_search", json!({"query": "budget"})).await?;
    let xlsx = uri_where(&hits, "items", "name", "Q3 Budget.xlsx")?;
    let read =
        snap(world, &alex, "s07_xlsx_opex", "read_resource", json!({"uri": xlsx, "sheet": "Opex"}))
            .await?;
    ensure!(read["text"].as_str().is_some_and(|t| !t.is_empty()), "empty Opex sheet: {read}");
    let pptx = find("roadmap", "Roadmap.pptx").await?;
    let read = snap(world, &adele, "s07_pptx", "read_resource", json!({"uri": pptx})).await?;
    let text = read["text"].as_str().unwrap_or_default();
    for want in ["Contoso Roadmap 2026", "Milestones", "Risks"] {
        ensure!(text.contains(want), "Roadmap.pptx lacks {want:?}: {text:.300}");
    }
    let pdf = find("handbook", "Handbook.pdf").await?;
    let read =
        snap(world, &adele, "s07_pdf_page1", "read_resource", json!({"uri": pdf, "pages": "1"}))
            .await?;
    ensure!(read["text"].as_str().is_some_and(|t| !t.is_empty()), "empty PDF page: {read}");
    ensure!(read["total_parts"].as_u64().is_some_and(|n| n >= 1), "no page count: {read}");
    Ok(())
}
