//! Recurrence rules of series, equivalent to Graph's `patternedRecurrence`: six pattern types
//! (daily, weekly, absolute and relative monthly, absolute and relative yearly), an interval, a
//! first day of the week, and a range that ends on a date, after a number of occurrences, or
//! never. The range starts on the series' first day (the date of its start in its zone).

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{domain::item_fields::parse_date, error::FieldError};

/// Longest interval between periods.
pub const MAX_INTERVAL: u32 = 999;
/// Most occurrences of a numbered range.
pub const MAX_OCCURRENCES: u32 = 999;
/// Upper bound on the periods one expansion walks (about 550 years of days).
const MAX_PERIODS: u64 = 200_000;

/// How often a series repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PatternType {
    /// Every `interval` days.
    Daily,
    /// On `days_of_week`, every `interval` weeks.
    Weekly,
    /// On `day_of_month`, every `interval` months.
    AbsoluteMonthly,
    /// On the `index`-th of `days_of_week` in the month, every `interval` months.
    RelativeMonthly,
    /// On `day_of_month` of `month`, every `interval` years.
    AbsoluteYearly,
    /// On the `index`-th of `days_of_week` in `month`, every `interval` years.
    RelativeYearly,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DayOfWeek {
    /// Sunday.
    Sunday,
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
}

impl DayOfWeek {
    /// The chrono weekday.
    pub fn weekday(self) -> Weekday {
        match self {
            Self::Sunday => Weekday::Sun,
            Self::Monday => Weekday::Mon,
            Self::Tuesday => Weekday::Tue,
            Self::Wednesday => Weekday::Wed,
            Self::Thursday => Weekday::Thu,
            Self::Friday => Weekday::Fri,
            Self::Saturday => Weekday::Sat,
        }
    }
}

/// Which of the matching days of a month a relative pattern means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WeekIndex {
    /// The first.
    First,
    /// The second.
    Second,
    /// The third.
    Third,
    /// The fourth.
    Fourth,
    /// The last.
    Last,
}

/// When a series ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RangeType {
    /// On `end_date` (inclusive).
    EndDate,
    /// After `number_of_occurrences` occurrences.
    Numbered,
    /// Never.
    NoEnd,
}

/// The repeating part of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrencePattern {
    /// Pattern type.
    #[serde(rename = "type")]
    pub pattern_type: PatternType,
    /// Periods (days, weeks, months or years) between occurrences, 1 to 999 (default 1).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 999, default = 1)]
    pub interval: u32,
    /// Days of the week: required by `weekly`, `relative_monthly` and `relative_yearly`,
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_week: Vec<DayOfWeek>,
    /// Day of the month, 1 to 31: required by `absolute_monthly` and `absolute_yearly`
    /// (in a month without that day, the occurrence falls on the month's last day, as in
    /// Outlook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 31)]
    pub day_of_month: Option<u32>,
    /// Month, 1 to 12: required by the yearly patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 12)]
    pub month: Option<u32>,
    /// Which matching day of the month: relative patterns only (default `first`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<WeekIndex>,
    /// First day of the week, which decides where the weeks of a weekly pattern with an
    /// interval begin (default `sunday`).
    #[serde(default = "sunday")]
    pub first_day_of_week: DayOfWeek,
}

/// How long a series lasts; it starts on the series' first day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceRange {
    /// Range type.
    #[serde(rename = "type")]
    pub range_type: RangeType,
    /// Last day on which an occurrence may start (`YYYY-MM-DD`, inclusive): `end_date`
    /// ranges only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Date, example = "2026-12-31")]
    pub end_date: Option<String>,
    /// Number of occurrences, 1 to 999: `numbered` ranges only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 999)]
    pub number_of_occurrences: Option<u32>,
}

/// A recurrence rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecurrenceRule {
    /// How often.
    pub pattern: RecurrencePattern,
    /// Until when.
    pub range: RecurrenceRange,
}

fn one() -> u32 {
    1
}

fn sunday() -> DayOfWeek {
    DayOfWeek::Sunday
}

/// A validated rule, ready to expand from a first day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    rule: RecurrenceRule,
    days: Vec<Weekday>,
    end: End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Date(NaiveDate),
    Count(u32),
    Never,
}

impl Rule {
    /// Validates a rule; `pointer` names it in the request (`/recurrence`).
    ///
    /// # Errors
    /// Every invalid member, with its pointer.
    pub fn parse(pointer: &str, mut rule: RecurrenceRule) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let p = &mut rule.pattern;
        let at = |member: &str| format!("{pointer}/pattern/{member}");
        if !(1..=MAX_INTERVAL).contains(&p.interval) {
            errors.push(FieldError::new(
                at("interval"),
                format!("must be between 1 and {MAX_INTERVAL}"),
            ));
        }
        let (needs_days, needs_day_of_month, needs_month, relative) = match p.pattern_type {
            PatternType::Daily => (false, false, false, false),
            PatternType::Weekly => (true, false, false, false),
            PatternType::AbsoluteMonthly => (false, true, false, false),
            PatternType::RelativeMonthly => (true, false, false, true),
            PatternType::AbsoluteYearly => (false, true, true, false),
            PatternType::RelativeYearly => (true, false, true, true),
        };
        let kind = format!("{:?}", p.pattern_type);
        let absent = |errors: &mut Vec<FieldError>, member: &str, present: bool| {
            if present {
                errors.push(FieldError::new(
                    at(member),
                    format!("must be absent for a {} pattern", snake(&kind)),
                ));
            }
        };
        if needs_days {
            if p.days_of_week.is_empty() {
                errors.push(FieldError::new(
                    at("days_of_week"),
                    "must name at least one day",
                ));
            }
            p.days_of_week.sort();
            p.days_of_week.dedup();
        } else {
            absent(&mut errors, "days_of_week", !p.days_of_week.is_empty());
        }
        if needs_day_of_month {
            match p.day_of_month {
                Some(1..=31) => {}
                Some(_) => errors.push(FieldError::new(
                    at("day_of_month"),
                    "must be between 1 and 31",
                )),
                None => errors.push(FieldError::new(
                    at("day_of_month"),
                    "is required for this pattern",
                )),
            }
        } else {
            absent(&mut errors, "day_of_month", p.day_of_month.is_some());
        }
        if needs_month {
            match p.month {
                Some(1..=12) => {}
                Some(_) => errors.push(FieldError::new(at("month"), "must be between 1 and 12")),
                None => errors.push(FieldError::new(at("month"), "is required for this pattern")),
            }
            // February 29 exists in leap years; February 30 never.
            if let (Some(month @ 1..=12), Some(day @ 1..=31)) = (p.month, p.day_of_month)
                && NaiveDate::from_ymd_opt(2024, month, day).is_none()
            {
                errors.push(FieldError::new(
                    at("day_of_month"),
                    format!("month {month} has no day {day}"),
                ));
            }
        } else {
            absent(&mut errors, "month", p.month.is_some());
        }
        if relative {
            p.index.get_or_insert(WeekIndex::First);
        } else {
            absent(&mut errors, "index", p.index.is_some());
        }
        let r = &rule.range;
        let at = |member: &str| format!("{pointer}/range/{member}");
        let end = match r.range_type {
            RangeType::EndDate => {
                if r.number_of_occurrences.is_some() {
                    errors.push(FieldError::new(
                        at("number_of_occurrences"),
                        "must be absent for an `end_date` range",
                    ));
                }
                match r.end_date.as_deref() {
                    Some(text) => match parse_date(&at("end_date"), text) {
                        Ok(date) => Some(End::Date(date)),
                        Err(e) => {
                            errors.push(e);
                            None
                        }
                    },
                    None => {
                        errors.push(FieldError::new(
                            at("end_date"),
                            "is required for an `end_date` range",
                        ));
                        None
                    }
                }
            }
            RangeType::Numbered => {
                if r.end_date.is_some() {
                    errors.push(FieldError::new(
                        at("end_date"),
                        "must be absent for a `numbered` range",
                    ));
                }
                match r.number_of_occurrences {
                    Some(n @ 1..=MAX_OCCURRENCES) => Some(End::Count(n)),
                    _ => {
                        errors.push(FieldError::new(
                            at("number_of_occurrences"),
                            format!("must be between 1 and {MAX_OCCURRENCES}"),
                        ));
                        None
                    }
                }
            }
            RangeType::NoEnd => {
                if r.end_date.is_some() || r.number_of_occurrences.is_some() {
                    errors.push(FieldError::new(
                        format!("{pointer}/range"),
                        "a `no_end` range has neither `end_date` nor `number_of_occurrences`",
                    ));
                }
                Some(End::Never)
            }
        };
        match end {
            Some(end) if errors.is_empty() => Ok(Self {
                days: rule
                    .pattern
                    .days_of_week
                    .iter()
                    .map(|d| d.weekday())
                    .collect(),
                rule,
                end,
            }),
            _ => Err(errors),
        }
    }

    /// The rule as the API shows and stores it (normalized: sorted days, default index).
    pub fn rule(&self) -> &RecurrenceRule {
        &self.rule
    }

    /// The last day of an `end_date` range.
    pub fn end_date(&self) -> Option<NaiveDate> {
        match self.end {
            End::Date(d) => Some(d),
            _ => None,
        }
    }

    /// Whether the series has a last occurrence.
    pub fn ends(&self) -> bool {
        !matches!(self.end, End::Never)
    }

    /// The occurrence dates of a series whose first day is `first`, within `[from, until]`
    /// (inclusive), in order. Numbered ranges count from `first`.
    pub fn dates(&self, first: NaiveDate, from: NaiveDate, until: NaiveDate) -> Vec<NaiveDate> {
        let last = match self.end {
            End::Date(d) => d.min(until),
            _ => until,
        };
        let limit = match self.end {
            End::Count(n) => n as usize,
            _ => usize::MAX,
        };
        let interval = u64::from(self.rule.pattern.interval);
        let mut out = Vec::new();
        let mut counted = 0usize;
        let mut period = 0u64;
        while period <= MAX_PERIODS {
            let Some(start) = self.period_start(first, period) else {
                break;
            };
            if start > last {
                break;
            }
            for date in self.period_dates(start) {
                if date < first {
                    continue;
                }
                if date > last || counted >= limit {
                    return out;
                }
                counted += 1;
                if date >= from {
                    out.push(date);
                }
            }
            period += interval;
        }
        out
    }

    /// Whether `date` is an occurrence of a series starting on `first`.
    pub fn contains(&self, first: NaiveDate, date: NaiveDate) -> bool {
        self.dates(first, date, date) == [date]
    }

    /// First day of the `n`-th period from the one holding `first`.
    fn period_start(&self, first: NaiveDate, n: u64) -> Option<NaiveDate> {
        let p = &self.rule.pattern;
        match p.pattern_type {
            PatternType::Daily => first.checked_add_days(Days::new(n)),
            PatternType::Weekly => {
                let back = u64::from(first.weekday().days_since(p.first_day_of_week.weekday()));
                first
                    .checked_sub_days(Days::new(back))?
                    .checked_add_days(Days::new(n.checked_mul(7)?))
            }
            PatternType::AbsoluteMonthly | PatternType::RelativeMonthly => first
                .with_day(1)?
                .checked_add_months(Months::new(u32::try_from(n).ok()?)),
            PatternType::AbsoluteYearly | PatternType::RelativeYearly => {
                NaiveDate::from_ymd_opt(first.year() + i32::try_from(n).ok()?, 1, 1)
            }
        }
    }

    fn period_dates(&self, start: NaiveDate) -> Vec<NaiveDate> {
        let p = &self.rule.pattern;
        let day = p.day_of_month.unwrap_or(1);
        let month = p.month.unwrap_or(1);
        match p.pattern_type {
            PatternType::Daily => vec![start],
            PatternType::Weekly => (0..7)
                .filter_map(|i| start.checked_add_days(Days::new(i)))
                .filter(|d| self.days.contains(&d.weekday()))
                .collect(),
            PatternType::AbsoluteMonthly => day_or_last(start.year(), start.month(), day)
                .into_iter()
                .collect(),
            PatternType::RelativeMonthly => self.relative(start.year(), start.month()),
            PatternType::AbsoluteYearly => {
                day_or_last(start.year(), month, day).into_iter().collect()
            }
            PatternType::RelativeYearly => self.relative(start.year(), month),
        }
    }

    /// The `index`-th day of a month falling on one of the pattern's days.
    fn relative(&self, year: i32, month: u32) -> Vec<NaiveDate> {
        let matching: Vec<NaiveDate> = (1..=31)
            .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
            .filter(|d| self.days.contains(&d.weekday()))
            .collect();
        let pick = match self.rule.pattern.index.unwrap_or(WeekIndex::First) {
            WeekIndex::First => matching.first(),
            WeekIndex::Second => matching.get(1),
            WeekIndex::Third => matching.get(2),
            WeekIndex::Fourth => matching.get(3),
            WeekIndex::Last => matching.last(),
        };
        pick.copied().into_iter().collect()
    }
}

/// Day `day` of a month, or the month's last day when it is shorter: Exchange's rule for
/// absolute patterns (EWS `DayOfMonth`: "If for a particular month this value is larger than
/// the number of days in the month, the last day of the month is assumed"), which Outlook
/// states when such a series is made ("the occurrence will fall on the last day of the month").
fn day_or_last(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    (1..=day.min(31))
        .rev()
        .find_map(|d| NaiveDate::from_ymd_opt(year, month, d))
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(value: serde_json::Value) -> Rule {
        Rule::parse("/recurrence", serde_json::from_value(value).unwrap()).unwrap()
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn dates(r: &Rule, first: &str, until: &str) -> Vec<String> {
        r.dates(day(first), day(first), day(until))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn weekly_patterns_with_an_interval_count_weeks_from_the_first_day_of_week() {
        let r = rule(json!({
            "pattern": {"type": "weekly", "interval": 2, "days_of_week": ["monday", "sunday"], "first_day_of_week": "monday"},
            "range": {"type": "no_end"}
        }));
        assert_eq!(
            dates(&r, "2026-03-04", "2026-03-31"),
            ["2026-03-08", "2026-03-16", "2026-03-22", "2026-03-30"]
        );
    }

    #[test]
    fn monthly_and_yearly_patterns_and_ranges() {
        let last_weekday = rule(json!({
            "pattern": {"type": "relative_monthly", "days_of_week": ["monday", "tuesday", "wednesday", "thursday", "friday"], "index": "last"},
            "range": {"type": "numbered", "number_of_occurrences": 3}
        }));
        assert_eq!(
            dates(&last_weekday, "2026-01-01", "2027-01-01"),
            ["2026-01-30", "2026-02-27", "2026-03-31"]
        );
        let the_31st = rule(json!({
            "pattern": {"type": "absolute_monthly", "day_of_month": 31},
            "range": {"type": "end_date", "end_date": "2026-05-31"}
        }));
        assert_eq!(
            dates(&the_31st, "2026-01-01", "2027-01-01"),
            [
                "2026-01-31",
                "2026-02-28",
                "2026-03-31",
                "2026-04-30",
                "2026-05-31"
            ],
            "a shorter month has its occurrence on its last day"
        );
        let leap_day = rule(json!({
            "pattern": {"type": "absolute_yearly", "day_of_month": 29, "month": 2},
            "range": {"type": "no_end"}
        }));
        assert_eq!(
            dates(&leap_day, "2024-02-29", "2028-12-31"),
            [
                "2024-02-29",
                "2025-02-28",
                "2026-02-28",
                "2027-02-28",
                "2028-02-29"
            ],
            "February 28 in common years"
        );
        let the_30th_every_other_month = rule(json!({
            "pattern": {"type": "absolute_monthly", "interval": 2, "day_of_month": 30},
            "range": {"type": "numbered", "number_of_occurrences": 3}
        }));
        assert_eq!(
            dates(&the_30th_every_other_month, "2027-12-30", "2029-01-01"),
            ["2027-12-30", "2028-02-29", "2028-04-30"],
            "a clamped occurrence counts in a numbered range"
        );
        assert!(the_31st.contains(day("2026-01-31"), day("2026-04-30")));
        assert!(!the_31st.contains(day("2026-01-31"), day("2026-04-29")));
        let thanksgiving = rule(json!({
            "pattern": {"type": "relative_yearly", "days_of_week": ["thursday"], "index": "fourth", "month": 11},
            "range": {"type": "no_end"}
        }));
        assert_eq!(
            dates(&thanksgiving, "2026-11-26", "2027-12-31"),
            ["2026-11-26", "2027-11-25"]
        );
    }

    #[test]
    fn invalid_rules_name_each_offending_member() {
        for (value, pointer) in [
            (
                json!({"pattern": {"type": "weekly"}, "range": {"type": "no_end"}}),
                "/recurrence/pattern/days_of_week",
            ),
            (
                json!({"pattern": {"type": "daily", "interval": 0}, "range": {"type": "no_end"}}),
                "/recurrence/pattern/interval",
            ),
            (
                json!({"pattern": {"type": "daily", "day_of_month": 3}, "range": {"type": "no_end"}}),
                "/recurrence/pattern/day_of_month",
            ),
            (
                json!({"pattern": {"type": "absolute_yearly", "day_of_month": 30, "month": 2}, "range": {"type": "no_end"}}),
                "/recurrence/pattern/day_of_month",
            ),
            (
                json!({"pattern": {"type": "daily"}, "range": {"type": "numbered", "number_of_occurrences": 0}}),
                "/recurrence/range/number_of_occurrences",
            ),
            (
                json!({"pattern": {"type": "daily"}, "range": {"type": "end_date"}}),
                "/recurrence/range/end_date",
            ),
        ] {
            let errors = Rule::parse(
                "/recurrence",
                serde_json::from_value(value.clone()).unwrap(),
            )
            .unwrap_err();
            assert!(
                errors.iter().any(|e| e.pointer == pointer),
                "{value}: {errors:?}"
            );
        }
    }
}
