//! `patternedRecurrence` parsing and expansion into occurrence dates: the six pattern types
//! (daily, weekly, absolute/relative monthly, absolute/relative yearly) and the three range
//! types (endDate, noEnd, numbered), following the recurrencePattern and recurrenceRange
//! resources of Graph v1.0.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde_json::Value;

/// Upper bound on the dates one expansion returns.
const MAX_OCCURRENCES: usize = 10_000;
/// Upper bound on the periods walked (about 550 years of days), so that a pattern that never
/// matches cannot run away.
const MAX_PERIODS: i64 = 200_000;

/// A parsed recurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recurrence {
    kind: PatternKind,
    interval: u32,
    days_of_week: Vec<Weekday>,
    first_day_of_week: Weekday,
    day_of_month: u32,
    month: u32,
    index: WeekIndex,
    start: NaiveDate,
    end: RangeEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternKind {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WeekIndex {
    Nth(usize),
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeEnd {
    Date(NaiveDate),
    Count(usize),
    Never,
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name.to_ascii_lowercase().as_str() {
        "sunday" => Weekday::Sun,
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        _ => return None,
    })
}

fn int(v: &Value, key: &str) -> Option<u32> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

fn date(v: &Value, key: &str) -> Option<NaiveDate> {
    v.get(key)
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

/// Day `day` of a month, or its last day when the month is shorter. Exchange documents this for
/// the `DayOfMonth` of absolute monthly and yearly patterns ("If for a particular month this
/// value is larger than the number of days in the month, the last day of the month is
/// assumed", EWS reference), and Outlook warns of it when such a series is made.
fn day_or_last(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    (1..=day.min(31))
        .rev()
        .find_map(|d| NaiveDate::from_ymd_opt(year, month, d))
}

impl Recurrence {
    /// Parses a `patternedRecurrence`; the error is the message of a 400 response.
    pub(crate) fn parse(v: &Value) -> Result<Self, String> {
        let pattern = v.get("pattern").ok_or("recurrence.pattern is required")?;
        let range = v.get("range").ok_or("recurrence.range is required")?;
        let kind = match pattern.get("type").and_then(Value::as_str).unwrap_or("") {
            "daily" => PatternKind::Daily,
            "weekly" => PatternKind::Weekly,
            "absoluteMonthly" => PatternKind::AbsoluteMonthly,
            "relativeMonthly" => PatternKind::RelativeMonthly,
            "absoluteYearly" => PatternKind::AbsoluteYearly,
            "relativeYearly" => PatternKind::RelativeYearly,
            other => return Err(format!("Requested value '{other}' was not found.")),
        };
        let days_of_week = pattern
            .get("daysOfWeek")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().and_then(weekday))
                    .collect()
            })
            .unwrap_or_default();
        let index = match pattern
            .get("index")
            .and_then(Value::as_str)
            .unwrap_or("first")
        {
            "second" => WeekIndex::Nth(1),
            "third" => WeekIndex::Nth(2),
            "fourth" => WeekIndex::Nth(3),
            "last" => WeekIndex::Last,
            _ => WeekIndex::Nth(0),
        };
        let start = date(range, "startDate").ok_or("recurrence.range.startDate is required")?;
        let end = match range.get("type").and_then(Value::as_str).unwrap_or("") {
            "endDate" => RangeEnd::Date(date(range, "endDate").ok_or("range.endDate is required")?),
            "numbered" => RangeEnd::Count(
                int(range, "numberOfOccurrences")
                    .filter(|n| *n > 0)
                    .ok_or("range.numberOfOccurrences must be positive")? as usize,
            ),
            "noEnd" => RangeEnd::Never,
            other => return Err(format!("Requested value '{other}' was not found.")),
        };
        let rec = Self {
            kind,
            interval: int(pattern, "interval").unwrap_or(1).max(1),
            days_of_week,
            first_day_of_week: pattern
                .get("firstDayOfWeek")
                .and_then(Value::as_str)
                .and_then(weekday)
                .unwrap_or(Weekday::Sun),
            day_of_month: int(pattern, "dayOfMonth").unwrap_or(0),
            month: int(pattern, "month").unwrap_or(0),
            index,
            start,
            end,
        };
        rec.validate()?;
        Ok(rec)
    }

    fn validate(&self) -> Result<(), String> {
        let needs_days = matches!(
            self.kind,
            PatternKind::Weekly | PatternKind::RelativeMonthly | PatternKind::RelativeYearly
        );
        if needs_days && self.days_of_week.is_empty() {
            return Err("recurrence.pattern.daysOfWeek is required for this pattern".into());
        }
        let needs_dom = matches!(
            self.kind,
            PatternKind::AbsoluteMonthly | PatternKind::AbsoluteYearly
        );
        if needs_dom && !(1..=31).contains(&self.day_of_month) {
            return Err("recurrence.pattern.dayOfMonth must be between 1 and 31".into());
        }
        let needs_month = matches!(
            self.kind,
            PatternKind::AbsoluteYearly | PatternKind::RelativeYearly
        );
        if needs_month && !(1..=12).contains(&self.month) {
            return Err("recurrence.pattern.month must be between 1 and 12".into());
        }
        if let RangeEnd::Date(end) = self.end
            && end < self.start
        {
            return Err("recurrence.range.endDate is before startDate".into());
        }
        Ok(())
    }

    /// Occurrence dates within `[from, until]`, in order. Numbered ranges count from the range
    /// start, so earlier dates are walked but not kept.
    pub(crate) fn dates_between(&self, from: NaiveDate, until: NaiveDate) -> Vec<NaiveDate> {
        let last = match self.end {
            RangeEnd::Date(d) => d.min(until),
            _ => until,
        };
        let count_limit = match self.end {
            RangeEnd::Count(n) => n,
            _ => usize::MAX,
        };
        let mut out = Vec::new();
        let mut counted = 0usize;
        // Candidate dates come period by period (day, week, month or year); each period's
        // matches are sorted, so the output is ordered.
        let mut period: i64 = 0;
        while let Some(period_start) = self.period_start(period) {
            if period_start > last || period > MAX_PERIODS {
                break;
            }
            for d in self.period_dates(period) {
                if d < self.start {
                    continue;
                }
                if d > last || counted >= count_limit || out.len() >= MAX_OCCURRENCES {
                    return out;
                }
                counted += 1;
                if d >= from {
                    out.push(d);
                }
            }
            period += i64::from(self.interval);
        }
        out
    }

    /// First day of the `n`-th period after the one containing the range start.
    fn period_start(&self, n: i64) -> Option<NaiveDate> {
        match self.kind {
            PatternKind::Daily => self.start.checked_add_signed(Duration::days(n)),
            PatternKind::Weekly => {
                let back = i64::from(self.start.weekday().days_since(self.first_day_of_week));
                (self.start - Duration::days(back)).checked_add_signed(Duration::weeks(n))
            }
            PatternKind::AbsoluteMonthly | PatternKind::RelativeMonthly => {
                let months = i64::from(self.start.year()) * 12 + i64::from(self.start.month0()) + n;
                NaiveDate::from_ymd_opt(
                    i32::try_from(months / 12).ok()?,
                    (months % 12) as u32 + 1,
                    1,
                )
            }
            PatternKind::AbsoluteYearly | PatternKind::RelativeYearly => {
                NaiveDate::from_ymd_opt(self.start.year() + i32::try_from(n).ok()?, 1, 1)
            }
        }
    }

    fn period_dates(&self, n: i64) -> Vec<NaiveDate> {
        let Some(first) = self.period_start(n) else {
            return Vec::new();
        };
        match self.kind {
            PatternKind::Daily => vec![first],
            PatternKind::Weekly => {
                let mut days: Vec<NaiveDate> = (0..7)
                    .map(|i| first + Duration::days(i))
                    .filter(|d| self.days_of_week.contains(&d.weekday()))
                    .collect();
                days.sort();
                days
            }
            PatternKind::AbsoluteMonthly => {
                day_or_last(first.year(), first.month(), self.day_of_month)
                    .into_iter()
                    .collect()
            }
            PatternKind::RelativeMonthly => self.relative_in_month(first.year(), first.month()),
            PatternKind::AbsoluteYearly => day_or_last(first.year(), self.month, self.day_of_month)
                .into_iter()
                .collect(),
            PatternKind::RelativeYearly => self.relative_in_month(first.year(), self.month),
        }
    }

    /// The `index`-th day of the month that falls on one of `daysOfWeek` ("first weekday",
    /// "last Friday").
    fn relative_in_month(&self, year: i32, month: u32) -> Vec<NaiveDate> {
        let matching: Vec<NaiveDate> = (1..=31)
            .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
            .filter(|d| self.days_of_week.contains(&d.weekday()))
            .collect();
        let pick = match self.index {
            WeekIndex::Nth(i) => matching.get(i),
            WeekIndex::Last => matching.last(),
        };
        pick.copied().into_iter().collect()
    }

    /// Whether `d` is one of the series' dates.
    pub(crate) fn contains(&self, d: NaiveDate) -> bool {
        self.dates_between(d, d) == [d]
    }
}

#[cfg(test)]
mod tests {
    use super::Recurrence;
    use chrono::NaiveDate;
    use serde_json::json;

    fn dates(pattern: serde_json::Value, range: serde_json::Value, until: &str) -> Vec<String> {
        let rec = Recurrence::parse(&json!({"pattern": pattern, "range": range})).expect("valid");
        let until = NaiveDate::parse_from_str(until, "%Y-%m-%d").expect("date");
        rec.dates_between(NaiveDate::MIN, until)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn weekly_with_interval_counts_weeks_from_the_first_day_of_week() {
        let got = dates(
            json!({"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "sunday"], "firstDayOfWeek": "monday"}),
            json!({"type": "noEnd", "startDate": "2026-03-04"}),
            "2026-03-31",
        );
        // The week of Mon 2 March counts as week 0 (its Monday is before the start date).
        assert_eq!(
            got,
            ["2026-03-08", "2026-03-16", "2026-03-22", "2026-03-30"]
        );
    }

    #[test]
    fn relative_monthly_last_weekday_and_numbered_ranges() {
        let got = dates(
            json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"], "index": "last"}),
            json!({"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 3}),
            "2027-01-01",
        );
        assert_eq!(got, ["2026-01-30", "2026-02-27", "2026-03-31"]);
    }

    #[test]
    fn absolute_monthly_falls_on_the_last_day_of_shorter_months_and_end_date_is_inclusive() {
        let got = dates(
            json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}),
            json!({"type": "endDate", "startDate": "2026-01-01", "endDate": "2026-05-31"}),
            "2027-01-01",
        );
        assert_eq!(
            got,
            [
                "2026-01-31",
                "2026-02-28",
                "2026-03-31",
                "2026-04-30",
                "2026-05-31"
            ]
        );
        let every_other_30th = dates(
            json!({"type": "absoluteMonthly", "interval": 2, "dayOfMonth": 30}),
            json!({"type": "numbered", "startDate": "2027-12-30", "numberOfOccurrences": 3}),
            "2029-01-01",
        );
        assert_eq!(
            every_other_30th,
            ["2027-12-30", "2028-02-29", "2028-04-30"],
            "a leap February has its 29th"
        );
    }

    #[test]
    fn absolute_yearly_on_february_29_falls_on_february_28_in_common_years() {
        let got = dates(
            json!({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 29, "month": 2}),
            json!({"type": "noEnd", "startDate": "2024-02-29"}),
            "2028-12-31",
        );
        assert_eq!(
            got,
            [
                "2024-02-29",
                "2025-02-28",
                "2026-02-28",
                "2027-02-28",
                "2028-02-29"
            ]
        );
        let rec = Recurrence::parse(&json!({
            "pattern": {"type": "absoluteYearly", "interval": 1, "dayOfMonth": 29, "month": 2},
            "range": {"type": "noEnd", "startDate": "2024-02-29"}
        }))
        .expect("valid");
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        assert!(rec.contains(day("2027-02-28")));
        assert!(!rec.contains(day("2028-02-28")), "2028 has its 29th");
    }

    #[test]
    fn invalid_recurrences_are_refused() {
        for bad in [
            json!({"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}),
            json!({"pattern": {"type": "hourly"}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}),
            json!({"pattern": {"type": "daily"}, "range": {"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 0}}),
            json!({"pattern": {"type": "daily"}, "range": {"type": "endDate", "startDate": "2026-02-01", "endDate": "2026-01-01"}}),
        ] {
            assert!(Recurrence::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn old_series_still_expand_today() {
        let rec = Recurrence::parse(&json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "noEnd", "startDate": "1990-01-01"}})).expect("valid");
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
        assert_eq!(rec.dates_between(day, day), [day]);
        assert!(rec.contains(day));
        let numbered = Recurrence::parse(&json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 10}})).expect("valid");
        let from = NaiveDate::from_ymd_opt(2026, 1, 8).expect("date");
        assert_eq!(
            numbered.dates_between(from, NaiveDate::MAX).len(),
            3,
            "counting starts at the range start"
        );
    }
}
