//! Snapshot schedules: what `--snapshots daily:7 --snapshot-time 03:00` means, how it is stored
//! in a server's labels (every provider's label syntax allows `[a-z0-9-]`), which slot an instant
//! falls in, and which snapshots retention removes. All times are UTC.

use std::fmt;

use serde::Serialize;
use time::{Duration, OffsetDateTime, Time, Weekday};

use crate::error::{Error, ErrorKind, Result};
use crate::model::Labels;

/// Label on a server: the schedule, e.g. `daily-0300`, `12h-0300`, `weekly-sun-0300`, `hourly-00`.
pub const LABEL_SCHEDULE: &str = "bootstrap-snapshot";
/// Label on a server: how many of our snapshots to keep.
pub const LABEL_KEEP: &str = "bootstrap-keep";
/// Label on a server: who keeps the schedule (`job`, or a native engine such as `dlm`).
pub const LABEL_ENGINE: &str = "bootstrap-snapshot-engine";
/// Label on a snapshot: the slot it belongs to, e.g. `20261125T0300Z`.
pub const LABEL_SLOT: &str = "bootstrap-slot";

/// How often snapshots are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    /// Every hour at `:MM`.
    Hourly,
    /// Every N hours (N divides 24), starting at the time of day.
    Hours(u8),
    /// Every day at the time.
    Daily,
    /// Every week on the day at the time.
    Weekly(#[serde(skip)] Weekday),
}

/// A schedule: interval, time of day (UTC) and how many snapshots to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// Interval.
    pub every: Every,
    /// Time of day (UTC); for hourly only the minute counts.
    #[serde(serialize_with = "ser_time")]
    pub at: Time,
    /// Snapshots to keep (at least 1).
    pub keep: u32,
}

fn ser_time<S: serde::Serializer>(t: &Time, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{:02}:{:02}", t.hour(), t.minute()))
}

fn bad(msg: String) -> Error {
    Error::new(ErrorKind::InvalidInput, msg)
}

/// Parses `HH:MM` (24 h).
pub fn parse_time(s: &str) -> Result<Time> {
    let fail = || bad(format!("invalid time {s:?}: use HH:MM in UTC, e.g. 03:00"));
    let (h, m) = s.split_once(':').ok_or_else(fail)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(fail());
    }
    let h: u8 = h.parse().map_err(|_| fail())?;
    let m: u8 = m.parse().map_err(|_| fail())?;
    Time::from_hms(h, m, 0).map_err(|_| fail())
}

/// Parses `sun`, `mon`, ... (also full names).
pub fn parse_weekday(s: &str) -> Result<Weekday> {
    let days = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];
    let l = s.to_ascii_lowercase();
    days.iter()
        .find(|(short, d)| l == *short || l == d.to_string().to_ascii_lowercase())
        .map(|(_, d)| *d)
        .ok_or_else(|| {
            bad(format!(
                "invalid day {s:?}: use mon, tue, wed, thu, fri, sat or sun"
            ))
        })
}

fn short_day(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

impl Schedule {
    /// Parses `EVERY:KEEP` (`daily:7`, `hourly:24`, `weekly:4`, `12h:14`) or `off` (`None`),
    /// with the time of day and, for weekly, the day.
    pub fn parse(spec: &str, at: Time, day: Weekday) -> Result<Option<Self>> {
        if spec == "off" {
            return Ok(None);
        }
        let usage = || {
            bad(format!(
                "invalid --snapshots {spec:?}: use EVERY:KEEP with EVERY one of hourly, daily, weekly or Nh (N dividing 24), e.g. daily:7, or off"
            ))
        };
        let (every, keep) = spec.split_once(':').ok_or_else(usage)?;
        let keep: u32 = keep.parse().map_err(|_| usage())?;
        if keep == 0 || keep > 1000 {
            return Err(bad(format!(
                "invalid --snapshots {spec:?}: keep between 1 and 1000 snapshots"
            )));
        }
        let every = match every {
            "hourly" | "1h" => Every::Hourly,
            "daily" | "24h" => Every::Daily,
            "weekly" => Every::Weekly(day),
            h => {
                let n: u8 = h
                    .strip_suffix('h')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(usage)?;
                if n == 0 || 24 % n != 0 {
                    return Err(usage());
                }
                Every::Hours(n)
            }
        };
        Ok(Some(Self { every, at, keep }))
    }

    /// The schedule as labels (`bootstrap-snapshot`, `bootstrap-keep`): only `[a-z0-9-]`, which
    /// every provider's label/tag syntax accepts (Hetzner values allow no `:`).
    pub fn to_labels(&self) -> Labels {
        let hm = format!("{:02}{:02}", self.at.hour(), self.at.minute());
        let value = match self.every {
            Every::Hourly => format!("hourly-{:02}", self.at.minute()),
            Every::Hours(n) => format!("{n}h-{hm}"),
            Every::Daily => format!("daily-{hm}"),
            Every::Weekly(d) => format!("weekly-{}-{hm}", short_day(d)),
        };
        let mut l = Labels::new();
        l.insert(LABEL_SCHEDULE, value);
        l.insert(LABEL_KEEP, self.keep.to_string());
        l
    }

    /// Reads a schedule back from a server's labels; `Ok(None)` when it has none or `off`.
    pub fn from_labels(labels: &Labels) -> Result<Option<Self>> {
        let Some(v) = labels.get(LABEL_SCHEDULE) else {
            return Ok(None);
        };
        if v == "off" {
            return Ok(None);
        }
        let broken = || bad(format!("unreadable schedule label {LABEL_SCHEDULE}={v}"));
        let keep: u32 = labels
            .get(LABEL_KEEP)
            .and_then(|k| k.parse().ok())
            .filter(|k| *k > 0)
            .ok_or_else(|| {
                bad(format!(
                    "missing or bad {LABEL_KEEP} label next to {LABEL_SCHEDULE}={v}"
                ))
            })?;
        let hm = |s: &str| -> Result<Time> {
            if s.len() != 4 {
                return Err(broken());
            }
            parse_time(&format!("{}:{}", &s[..2], &s[2..])).map_err(|_| broken())
        };
        let parts: Vec<&str> = v.split('-').collect();
        let (every, at) = match parts.as_slice() {
            ["hourly", mm] => {
                let m: u8 = mm.parse().map_err(|_| broken())?;
                (
                    Every::Hourly,
                    Time::from_hms(0, m, 0).map_err(|_| broken())?,
                )
            }
            ["daily", t] => (Every::Daily, hm(t)?),
            ["weekly", d, t] => (
                Every::Weekly(parse_weekday(d).map_err(|_| broken())?),
                hm(t)?,
            ),
            [h, t] if h.ends_with('h') => {
                let n: u8 = h.trim_end_matches('h').parse().map_err(|_| broken())?;
                if n == 0 || 24 % n != 0 {
                    return Err(broken());
                }
                (Every::Hours(n), hm(t)?)
            }
            _ => return Err(broken()),
        };
        Ok(Some(Self { every, at, keep }))
    }

    /// The first scheduled instant after `now` (slots are evenly spaced: one period on).
    pub fn next_slot(&self, now: OffsetDateTime) -> OffsetDateTime {
        let period = match self.every {
            Every::Hourly => Duration::hours(1),
            Every::Hours(n) => Duration::hours(i64::from(n)),
            Every::Daily => Duration::days(1),
            Every::Weekly(_) => Duration::days(7),
        };
        self.slot(now) + period
    }

    /// The start of the slot that `now` falls in: the latest scheduled instant not after `now`.
    pub fn slot(&self, now: OffsetDateTime) -> OffsetDateTime {
        let now = now.to_offset(time::UtcOffset::UTC);
        let day_at = now.replace_time(self.at);
        match self.every {
            Every::Hourly => {
                let t = now.replace_time(Time::MIDNIGHT)
                    + Duration::hours(i64::from(now.hour()))
                    + Duration::minutes(i64::from(self.at.minute()));
                if t > now { t - Duration::hours(1) } else { t }
            }
            Every::Hours(n) => {
                let step = Duration::hours(i64::from(n));
                // Slots are at `at + k*n` hours; start from the previous day's `at` and step.
                let mut t = day_at - Duration::days(1);
                while t + step <= now {
                    t += step;
                }
                t
            }
            Every::Daily => {
                if day_at > now {
                    day_at - Duration::days(1)
                } else {
                    day_at
                }
            }
            Every::Weekly(d) => {
                let back = (i64::from(now.weekday().number_days_from_monday())
                    - i64::from(d.number_days_from_monday()))
                .rem_euclid(7);
                let t = day_at - Duration::days(back);
                if t > now { t - Duration::days(7) } else { t }
            }
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = format!("{:02}:{:02}", self.at.hour(), self.at.minute());
        match self.every {
            Every::Hourly => write!(f, "hourly at :{:02}, keep {}", self.at.minute(), self.keep),
            Every::Hours(n) => write!(f, "every {n}h from {hm} UTC, keep {}", self.keep),
            Every::Daily => write!(f, "daily at {hm} UTC, keep {}", self.keep),
            Every::Weekly(d) => write!(
                f,
                "weekly on {} at {hm} UTC, keep {}",
                short_day(d),
                self.keep
            ),
        }
    }
}

/// A slot's name: `20261125T0300Z`.
pub fn slot_name(slot: OffsetDateTime) -> String {
    let s = slot.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}Z",
        s.year(),
        u8::from(s.month()),
        s.day(),
        s.hour(),
        s.minute()
    )
}

/// Which snapshots retention removes: all but the `keep` newest by creation time (ties broken
/// by id, numerically where ids are numbers, so the choice is stable). Input order does not
/// matter.
pub fn to_prune<T: Clone>(items: &[T], keep: u32, created: impl Fn(&T) -> (i64, String)) -> Vec<T> {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by_key(|i| {
        let (t, id) = created(i);
        std::cmp::Reverse((t, id.len(), id))
    });
    sorted
        .into_iter()
        .skip(usize::try_from(keep).unwrap_or(usize::MAX))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{datetime, time};

    fn sched(spec: &str, at: Time, day: Weekday) -> Schedule {
        Schedule::parse(spec, at, day).unwrap().unwrap()
    }

    #[test]
    fn daily_slots_around_midnight_and_year_end() {
        let s = sched("daily:7", time!(03:00), Weekday::Sunday);
        assert_eq!(
            s.slot(datetime!(2026-11-25 03:00 UTC)),
            datetime!(2026-11-25 03:00 UTC)
        );
        assert_eq!(
            s.slot(datetime!(2026-11-25 02:59:59 UTC)),
            datetime!(2026-11-24 03:00 UTC)
        );
        assert_eq!(
            s.slot(datetime!(2027-01-01 00:30 UTC)),
            datetime!(2026-12-31 03:00 UTC)
        );
        let m = sched("daily:7", time!(00:00), Weekday::Sunday);
        assert_eq!(
            m.slot(datetime!(2026-12-31 23:59 UTC)),
            datetime!(2026-12-31 00:00 UTC)
        );
        assert_eq!(
            m.slot(datetime!(2027-01-01 00:00 UTC)),
            datetime!(2027-01-01 00:00 UTC)
        );
        // Non-UTC input is read in UTC.
        // 04:30 at +02:00 is 02:30 UTC: before today's 03:00 UTC slot.
        assert_eq!(
            s.slot(datetime!(2026-11-25 04:30 +02:00)),
            datetime!(2026-11-24 03:00 UTC)
        );
    }

    #[test]
    fn hourly_and_12h_slots() {
        let h = sched("hourly:24", time!(03:15), Weekday::Sunday);
        assert_eq!(
            h.slot(datetime!(2026-11-25 10:20 UTC)),
            datetime!(2026-11-25 10:15 UTC)
        );
        assert_eq!(
            h.slot(datetime!(2026-11-25 10:10 UTC)),
            datetime!(2026-11-25 09:15 UTC)
        );
        assert_eq!(
            h.slot(datetime!(2027-01-01 00:05 UTC)),
            datetime!(2026-12-31 23:15 UTC)
        );
        let t = sched("12h:14", time!(03:00), Weekday::Sunday);
        assert_eq!(
            t.slot(datetime!(2026-11-25 14:59 UTC)),
            datetime!(2026-11-25 03:00 UTC)
        );
        assert_eq!(
            t.slot(datetime!(2026-11-25 15:00 UTC)),
            datetime!(2026-11-25 15:00 UTC)
        );
        assert_eq!(
            t.slot(datetime!(2026-11-25 02:00 UTC)),
            datetime!(2026-11-24 15:00 UTC)
        );
        assert_eq!(
            t.slot(datetime!(2027-01-01 01:00 UTC)),
            datetime!(2026-12-31 15:00 UTC)
        );
        let six = sched("6h:4", time!(01:00), Weekday::Sunday);
        assert_eq!(
            six.slot(datetime!(2026-11-25 00:30 UTC)),
            datetime!(2026-11-24 19:00 UTC)
        );
        assert_eq!(
            six.slot(datetime!(2026-11-25 13:00 UTC)),
            datetime!(2026-11-25 13:00 UTC)
        );
    }

    #[test]
    fn weekly_slots() {
        // 2026-11-25 is a Wednesday; 2026-11-22 a Sunday.
        let w = sched("weekly:4", time!(03:00), Weekday::Sunday);
        assert_eq!(
            w.slot(datetime!(2026-11-25 12:00 UTC)),
            datetime!(2026-11-22 03:00 UTC)
        );
        assert_eq!(
            w.slot(datetime!(2026-11-22 02:00 UTC)),
            datetime!(2026-11-15 03:00 UTC)
        );
        assert_eq!(
            w.slot(datetime!(2026-11-22 03:00 UTC)),
            datetime!(2026-11-22 03:00 UTC)
        );
        // 2027-01-01 is a Friday; the Sunday before is 2026-12-27.
        assert_eq!(
            w.slot(datetime!(2027-01-01 00:00 UTC)),
            datetime!(2026-12-27 03:00 UTC)
        );
        let wed = sched("weekly:4", time!(03:00), Weekday::Wednesday);
        assert_eq!(
            wed.slot(datetime!(2026-11-25 03:00 UTC)),
            datetime!(2026-11-25 03:00 UTC)
        );
    }

    #[test]
    fn labels_round_trip_and_use_only_safe_characters() {
        let cases = [
            sched("daily:7", time!(03:00), Weekday::Sunday),
            sched("hourly:24", time!(00:45), Weekday::Sunday),
            sched("weekly:4", time!(23:30), Weekday::Saturday),
            sched("12h:14", time!(03:00), Weekday::Sunday),
        ];
        for s in cases {
            let l = s.to_labels();
            for (_, v) in l.iter() {
                assert!(
                    v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    "{v}"
                );
            }
            let back = Schedule::from_labels(&l).unwrap().unwrap();
            if let Every::Hourly = s.every {
                assert_eq!(back.at.minute(), s.at.minute());
                assert_eq!((back.every, back.keep), (s.every, s.keep));
            } else {
                assert_eq!(back, s);
            }
        }
        assert_eq!(
            sched("daily:7", time!(03:00), Weekday::Sunday)
                .to_labels()
                .get(LABEL_SCHEDULE),
            Some("daily-0300")
        );
        assert!(Schedule::from_labels(&Labels::new()).unwrap().is_none());
        let mut broken = Labels::new();
        broken.insert(LABEL_SCHEDULE, "daily-3am");
        broken.insert(LABEL_KEEP, "7");
        assert!(Schedule::from_labels(&broken).is_err());
    }

    #[test]
    fn specs_parse_or_explain() {
        assert!(
            Schedule::parse("off", time!(03:00), Weekday::Sunday)
                .unwrap()
                .is_none()
        );
        for bad in [
            "daily",
            "daily:0",
            "5h:3",
            "0h:3",
            "monthly:3",
            "daily:x",
            "daily:7:1",
            "",
        ] {
            assert!(
                Schedule::parse(bad, time!(03:00), Weekday::Sunday).is_err(),
                "{bad}"
            );
        }
        assert_eq!(parse_time("03:00").unwrap(), time!(03:00));
        for bad in ["3:00", "24:00", "03:60", "0300", "03:00:00"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_weekday("Sun").unwrap(), Weekday::Sunday);
        assert!(parse_weekday("funday").is_err());
        assert_eq!(slot_name(datetime!(2026-11-25 03:00 UTC)), "20261125T0300Z");
    }

    #[test]
    fn retention_keeps_the_newest_by_creation_time_not_id() {
        // (id, created): ids out of creation order.
        let snaps = vec![(5, 300), (1, 400), (9, 100), (3, 200), (7, 500)];
        let gone = to_prune(&snaps, 2, |s| (s.1, s.0.to_string()));
        let mut gone_ids: Vec<_> = gone.iter().map(|s| s.0).collect();
        gone_ids.sort_unstable();
        assert_eq!(gone_ids, [3, 5, 9], "keeps 7 (500) and 1 (400)");
        assert!(to_prune(&snaps, 10, |s| (s.1, s.0.to_string())).is_empty());
        // Same second: the higher id is the newer, also across digit counts.
        let same = vec![(99, 100), (100, 100)];
        assert_eq!(
            to_prune(&same, 1, |s| (s.1, s.0.to_string())),
            vec![(99, 100)]
        );
    }
}
