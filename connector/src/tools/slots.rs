//! The meeting-slot finder behind `find_meeting_availability` (`graph.md` §9.5): pure, no
//! I/O, so it can be checked against a brute-force oracle (conformance S05).
//!
//! # Definitions
//!
//! * A **candidate** starts on a grid of `step` minutes, aligned to the organizer's local
//!   clock (so 30-minute steps give :00 and :30 in the organizer's zone even where the zone is
//!   offset by :30 or :45 from UTC), and lies wholly inside the window.
//! * An attendee **blocks** a candidate if any of their `busy`, `oof` or `unknown` items
//!   overlaps it. `free` and `workingElsewhere` never block (working elsewhere means
//!   available, only not in the office); `tentative` does not block but is a **conflict**.
//! * With working hours on, a candidate must lie, for every attendee whose working hours are
//!   known, inside their working hours: every minute of it falls, in the attendee's own zone,
//!   on a working day between the day's start and end time. An attendee without known working
//!   hours constrains nothing (the tool says so).
//! * A **slot** is a candidate no attendee blocks and (if asked) inside everyone's hours.
//!
//! # Ranking
//!
//! Slots with fewer tentative conflicts come first (a slot everyone has free beats one that
//! collides with a tentative meeting); among equally free slots the earliest comes first. So
//! with no tentative items the order is simply chronological.
//!
//! # Time zones
//!
//! Working hours are local times in the attendee's zone. A day's block is the local interval
//! `[day + start, day + end)` mapped to UTC (`end <= start` means the block ends the next
//! day). A local time skipped by a daylight-saving jump maps to the first instant after the
//! jump; a repeated one to its first occurrence. Transitions happen at night in practice, so
//! this only matters for working hours that span them.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;

/// What a schedule item means for a meeting at that time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Free,
    Tentative,
    Busy,
    Oof,
    WorkingElsewhere,
    Unknown,
}

impl Status {
    /// Parses Graph's `scheduleItems[].status` (case varies between examples, `graph.md`
    /// §9.5); anything unrecognised is `Unknown`, which blocks (fail safe).
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "free" => Self::Free,
            "tentative" => Self::Tentative,
            "busy" => Self::Busy,
            "oof" => Self::Oof,
            "workingelsewhere" => Self::WorkingElsewhere,
            _ => Self::Unknown,
        }
    }

    fn blocks(self) -> bool {
        matches!(self, Self::Busy | Self::Oof | Self::Unknown)
    }
}

/// A half-open interval `[start, end)` in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// One `scheduleItems` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub status: Status,
}

/// An attendee's working hours, in their own time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkingHours {
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub zone: Tz,
}

/// One attendee's schedule as getSchedule returned it.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub items: Vec<Item>,
    /// `None` when Graph gave none (or a zone the connector cannot map): no constraint.
    pub working_hours: Option<WorkingHours>,
}

/// What to look for.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotSearch {
    pub window: Interval,
    pub duration: Duration,
    /// Grid step in minutes; must divide 1440.
    pub step_minutes: u32,
    /// The organizer's zone: the grid is aligned to its clock.
    pub organizer_zone: Tz,
    pub working_hours_only: bool,
}

/// A free slot. `tentative` lists the indices (into the schedules) of attendees with a
/// tentative item overlapping it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub tentative: Vec<usize>,
}

/// The candidate starts: every `step` minutes of the organizer's clock, from the first grid
/// point at or after the window start, while the meeting still ends inside the window.
pub fn candidate_starts(req: &SlotSearch) -> Vec<DateTime<Utc>> {
    let step = i64::from(req.step_minutes.max(1));
    if req.duration <= Duration::zero() {
        return Vec::new();
    }
    let local = req.window.start.with_timezone(&req.organizer_zone);
    let offset_secs = local.naive_local().and_utc().timestamp() - req.window.start.timestamp();
    // Seconds of the local clock since an epoch; round up to a whole step.
    let local_secs = req.window.start.timestamp() + offset_secs;
    let step_secs = step * 60;
    let rounded = local_secs.div_euclid(step_secs) * step_secs
        + if local_secs.rem_euclid(step_secs) == 0 { 0 } else { step_secs };
    let mut at = req.window.start + Duration::seconds(rounded - local_secs);
    let mut out = Vec::new();
    while at + req.duration <= req.window.end {
        out.push(at);
        at += Duration::seconds(step_secs);
    }
    out
}

/// Every slot in the window, ranked (see the module docs).
pub fn find_slots(req: &SlotSearch, schedules: &[Schedule]) -> Vec<Slot> {
    let prepared: Vec<Prepared> = schedules.iter().map(|s| Prepared::new(s, req)).collect();
    let mut slots = Vec::new();
    for start in candidate_starts(req) {
        let slot = Interval { start, end: start + req.duration };
        let mut tentative = Vec::new();
        let mut ok = true;
        for (i, p) in prepared.iter().enumerate() {
            if p.blocked.iter().any(|b| b.overlaps(&slot)) {
                ok = false;
                break;
            }
            if let Some(work) = &p.working
                && !work.iter().any(|w| w.start <= slot.start && slot.end <= w.end)
            {
                ok = false;
                break;
            }
            if p.tentative.iter().any(|t| t.overlaps(&slot)) {
                tentative.push(i);
            }
        }
        if ok {
            slots.push(Slot { start: slot.start, end: slot.end, tentative });
        }
    }
    slots.sort_by(|a, b| a.tentative.len().cmp(&b.tentative.len()).then(a.start.cmp(&b.start)));
    slots
}

/// One schedule reduced to merged interval lists.
struct Prepared {
    blocked: Vec<Interval>,
    tentative: Vec<Interval>,
    /// `None`: no working-hours constraint.
    working: Option<Vec<Interval>>,
}

impl Prepared {
    fn new(s: &Schedule, req: &SlotSearch) -> Self {
        let pick = |f: fn(Status) -> bool| {
            merge(
                s.items
                    .iter()
                    .filter(|i| f(i.status) && i.start < i.end)
                    .map(|i| Interval { start: i.start, end: i.end })
                    .collect(),
            )
        };
        let working = match (&s.working_hours, req.working_hours_only) {
            (Some(wh), true) => Some(merge(working_intervals(wh, &req.window))),
            _ => None,
        };
        Self {
            blocked: pick(Status::blocks),
            tentative: pick(|st| st == Status::Tentative),
            working,
        }
    }
}

/// Sorts and merges touching or overlapping intervals, so a meeting may span two adjacent
/// blocks (e.g. working hours that run past midnight into the next working day).
fn merge(mut v: Vec<Interval>) -> Vec<Interval> {
    v.sort_by_key(|i| i.start);
    let mut out: Vec<Interval> = Vec::with_capacity(v.len());
    for i in v {
        match out.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => out.push(i),
        }
    }
    out
}

/// The working-hours blocks (in UTC) of the local days around the window.
fn working_intervals(wh: &WorkingHours, window: &Interval) -> Vec<Interval> {
    let first = window.start.with_timezone(&wh.zone).date_naive() - Duration::days(1);
    let last = window.end.with_timezone(&wh.zone).date_naive() + Duration::days(1);
    let mut out = Vec::new();
    let mut day = first;
    while day <= last {
        if wh.days.contains(&day.weekday()) {
            let end_day = if wh.end <= wh.start { day + Duration::days(1) } else { day };
            let start = to_utc(&wh.zone, day, wh.start);
            let end = to_utc(&wh.zone, end_day, wh.end);
            if start < end {
                out.push(Interval { start, end });
            }
        }
        day += Duration::days(1);
    }
    out
}

/// A local date and time in `zone` as UTC: the first occurrence of a repeated time, and the
/// first instant after the jump for a skipped one.
fn to_utc(zone: &Tz, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = day.and_time(time);
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a gap: the first local time that exists again (gaps are whole minutes and
            // last at most a few hours) is the jump itself, the first instant after `local`.
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = zone.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            local.and_utc()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("valid")
    }

    fn weekdays() -> Vec<Weekday> {
        vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri]
    }

    fn nine_to_five(zone: Tz) -> Option<WorkingHours> {
        Some(WorkingHours {
            days: weekdays(),
            start: NaiveTime::from_hms_opt(9, 0, 0).expect("time"),
            end: NaiveTime::from_hms_opt(17, 0, 0).expect("time"),
            zone,
        })
    }

    #[test]
    fn slots_avoid_busy_items_and_respect_every_zone() {
        // Monday 2024-05-06. Ada in London (UTC+1: 08:00–16:00 UTC), Megan in New York
        // (UTC-4: 13:00–21:00 UTC): the shared hours are 13:00–16:00 UTC.
        let ada = Schedule {
            items: vec![Item {
                start: utc(2024, 5, 6, 13, 0),
                end: utc(2024, 5, 6, 14, 0),
                status: Status::Busy,
            }],
            working_hours: nine_to_five(chrono_tz::Europe::London),
        };
        let megan = Schedule {
            items: vec![
                Item {
                    start: utc(2024, 5, 6, 14, 0),
                    end: utc(2024, 5, 6, 14, 30),
                    status: Status::Tentative,
                },
                Item {
                    start: utc(2024, 5, 6, 15, 0),
                    end: utc(2024, 5, 6, 16, 0),
                    status: Status::WorkingElsewhere,
                },
            ],
            working_hours: nine_to_five(chrono_tz::America::New_York),
        };
        let req = SlotSearch {
            window: Interval { start: utc(2024, 5, 6, 0, 0), end: utc(2024, 5, 7, 0, 0) },
            duration: Duration::minutes(60),
            step_minutes: 30,
            organizer_zone: chrono_tz::UTC,
            working_hours_only: true,
        };
        let slots = find_slots(&req, &[ada, megan]);
        let got: Vec<(String, usize)> = slots
            .iter()
            .map(|s| (s.start.format("%H:%M").to_string(), s.tentative.len()))
            .collect();
        assert_eq!(got, vec![("14:30".into(), 0), ("15:00".into(), 0), ("14:00".into(), 1)]);
    }

    #[test]
    fn the_grid_follows_the_organizer_clock() {
        // Kolkata is UTC+5:30: a 30-minute grid in local time is :00/:30 UTC too, but a
        // 60-minute grid falls on :30 UTC.
        let req = SlotSearch {
            window: Interval { start: utc(2024, 5, 6, 0, 10), end: utc(2024, 5, 6, 3, 0) },
            duration: Duration::minutes(60),
            step_minutes: 60,
            organizer_zone: chrono_tz::Asia::Kolkata,
            working_hours_only: false,
        };
        let starts: Vec<String> =
            candidate_starts(&req).iter().map(|s| s.format("%H:%M").to_string()).collect();
        assert_eq!(starts, vec!["00:30", "01:30"]);
    }

    #[test]
    fn a_skipped_local_time_maps_to_the_jump() {
        // New York skipped 02:00–03:00 on 2024-03-10; 02:30 local means 07:00 UTC.
        let day = NaiveDate::from_ymd_opt(2024, 3, 10).expect("date");
        let t = to_utc(
            &chrono_tz::America::New_York,
            day,
            NaiveTime::from_hms_opt(2, 30, 0).expect("t"),
        );
        assert_eq!(t, utc(2024, 3, 10, 7, 0));
        assert_eq!(Status::parse("WorkingElsewhere"), Status::WorkingElsewhere);
        assert_eq!(Status::parse("weird"), Status::Unknown);
    }

    const ZONES: &[Tz] = &[
        chrono_tz::UTC,
        chrono_tz::Europe::Berlin,
        chrono_tz::America::New_York,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Australia::Sydney,
        chrono_tz::Pacific::Chatham,
    ];

    /// The brute force: walk every minute of every candidate, judge each attendee by the
    /// module's definitions read literally (local clock per minute), rank the same way.
    fn oracle(req: &SlotSearch, schedules: &[Schedule]) -> Vec<Slot> {
        let mut slots = Vec::new();
        for start in candidate_starts(req) {
            let end = start + req.duration;
            let mut ok = true;
            let mut tentative = Vec::new();
            'att: for (i, s) in schedules.iter().enumerate() {
                let mut minute = start;
                let mut conflict = false;
                while minute < end {
                    let next = minute + Duration::minutes(1);
                    for item in &s.items {
                        if item.start < next && minute < item.end {
                            if item.status.blocks() {
                                ok = false;
                                break 'att;
                            }
                            conflict |= item.status == Status::Tentative;
                        }
                    }
                    if req.working_hours_only
                        && let Some(wh) = &s.working_hours
                        && !working_minute(wh, minute)
                    {
                        ok = false;
                        break 'att;
                    }
                    minute = next;
                }
                if conflict {
                    tentative.push(i);
                }
            }
            if ok {
                slots.push(Slot { start, end, tentative });
            }
        }
        slots.sort_by(|a, b| a.tentative.len().cmp(&b.tentative.len()).then(a.start.cmp(&b.start)));
        slots
    }

    /// Whether the minute starting at `t` is a working minute: read on the local clock.
    fn working_minute(wh: &WorkingHours, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&wh.zone);
        let (day, time) = (local.date_naive(), local.time());
        if wh.end > wh.start {
            wh.days.contains(&day.weekday()) && wh.start <= time && time < wh.end
        } else {
            // Overnight: the tail of yesterday's block or the head of today's.
            let yesterday = (day - Duration::days(1)).weekday();
            (wh.days.contains(&day.weekday()) && time >= wh.start)
                || (wh.days.contains(&yesterday) && time < wh.end)
        }
    }

    prop_compose! {
        fn items(base: DateTime<Utc>, span_minutes: i64)(
            raw in prop::collection::vec((0..span_minutes / 15, 1i64..16, 0usize..6), 0..8)
        ) -> Vec<Item> {
            raw.into_iter().map(|(at, len, st)| {
                let start = base + Duration::minutes(at * 15);
                Item {
                    start,
                    end: start + Duration::minutes(len * 15),
                    status: [Status::Free, Status::Tentative, Status::Busy, Status::Oof,
                             Status::WorkingElsewhere, Status::Unknown][st],
                }
            }).collect()
        }
    }

    prop_compose! {
        /// Working hours kept away from the small hours, where DST transitions happen, so
        /// the local clock is continuous over every working block.
        fn hours()(
            zone in 0..ZONES.len(),
            start_q in 20u32..48,
            len_q in 4u32..44,
            days in prop::collection::vec(any::<bool>(), 7),
            known in prop::bool::weighted(0.85),
        ) -> Option<WorkingHours> {
            let start = NaiveTime::from_hms_opt(start_q / 4, (start_q % 4) * 15, 0).expect("time");
            let end_q = (start_q + len_q).min(92);
            let end = NaiveTime::from_hms_opt(end_q / 4, (end_q % 4) * 15, 0).expect("time");
            let all = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
            let days = all.iter().zip(days).filter(|(_, on)| *on).map(|(d, _)| *d).collect();
            known.then(|| WorkingHours { days, start, end, zone: ZONES[zone] })
        }
    }

    fn schedule(base: DateTime<Utc>, span: i64) -> impl Strategy<Value = Schedule> {
        (items(base, span), hours())
            .prop_map(|(items, working_hours)| Schedule { items, working_hours })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Conformance S05: the interval algorithm equals the minute-by-minute oracle.
        #[test]
        fn slots_match_the_brute_force_oracle(
            day in 0i64..400,
            offset_q in 0i64..96,
            span_q in 8i64..(4 * 24 * 3),
            duration_q in 1i64..9,
            step in prop::sample::select(vec![15u32, 30, 60]),
            organizer in 0..ZONES.len(),
            working_hours_only in any::<bool>(),
            schedules in prop::collection::vec(schedule(utc(2024, 1, 1, 0, 0), 4 * 24 * 60), 1..4),
        ) {
            let start = utc(2024, 1, 1, 0, 0) + Duration::days(day % 4) + Duration::minutes(offset_q * 15);
            let shift = Duration::days(day - day % 4);
            let schedules: Vec<Schedule> = schedules.into_iter().map(|mut s| {
                for i in &mut s.items { i.start += shift; i.end += shift; }
                s
            }).collect();
            let start = start + shift;
            let req = SlotSearch {
                window: Interval { start, end: start + Duration::minutes(span_q * 15) },
                duration: Duration::minutes(duration_q * 15),
                step_minutes: step,
                organizer_zone: ZONES[organizer],
                working_hours_only,
            };
            prop_assert_eq!(find_slots(&req, &schedules), oracle(&req, &schedules));
        }
    }
}
