//! Dates and time zones as Graph writes them: `dateTimeTimeZone` values with seven fractional
//! digits and Windows zone names, the `Prefer: outlook.timezone` header, and the query-string
//! instants of calendar windows.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

/// Windows zone names Graph returns, with the IANA zone they stand for (the "001" territory of
/// CLDR's windowsZones.xml). Graph also accepts IANA names, which `resolve_zone` handles.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("UTC", "UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("India Standard Time", "Asia/Calcutta"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central Standard Time", "America/Chicago"),
    ("Eastern Standard Time", "America/New_York"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
];

/// Resolves a zone name as a client may send it (Windows or IANA, case-insensitive for Windows
/// names as Exchange is) to a tz database zone.
pub(crate) fn resolve_zone(name: &str) -> Option<Tz> {
    let trimmed = name.trim();
    if let Some((_, iana)) = WINDOWS_ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(trimmed))
    {
        return iana.parse().ok();
    }
    if trimmed.eq_ignore_ascii_case("Etc/UTC") || trimmed.eq_ignore_ascii_case("Z") {
        return Some(Tz::UTC);
    }
    trimmed.parse().ok()
}

/// The Windows name of an IANA zone, when the table knows it (used for `originalStartTimeZone`
/// when a client wrote an IANA name, as Exchange stores Windows names).
pub(crate) fn windows_name(name: &str) -> String {
    WINDOWS_ZONES
        .iter()
        .find(|(w, iana)| iana.eq_ignore_ascii_case(name) || w.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |(w, _)| (*w).to_owned())
}

/// Parses the `dateTime` part of a `dateTimeTimeZone` (no offset; up to seven fractional
/// digits; a trailing `Z` is tolerated).
pub(crate) fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim().trim_end_matches('Z');
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// Converts a wall-clock time in `tz` to UTC. Ambiguous times take the earlier instant and
/// times in a spring-forward gap move forward by an hour, as Exchange does.
pub(crate) fn to_utc(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            let later = local + chrono::Duration::hours(1);
            tz.from_local_datetime(&later)
                .earliest()
                .map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc))
        }
    }
}

/// Formats a wall-clock time with Graph's seven fractional digits.
pub(crate) fn format_local(t: NaiveDateTime) -> String {
    format!(
        "{}.{:07}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.nanosecond() / 100
    )
}

/// Formats an instant like Graph's `createdDateTime` (seven digits and `Z`).
pub(crate) fn format_stamp(t: DateTime<Utc>) -> String {
    format!("{}Z", format_local(t.naive_utc()))
}

/// Graph's `innerError.date`: UTC without offset or fraction.
pub(crate) fn format_error_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A `dateTimeTimeZone` JSON value for an instant, shown in the zone the client asked for.
pub(crate) fn dttz(t: DateTime<Utc>, zone: &Zone) -> Value {
    json!({
        "dateTime": format_local(t.with_timezone(&zone.tz).naive_local()),
        "timeZone": zone.name,
    })
}

/// A zone as the client named it, and what it resolves to.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    /// The name echoed back in `timeZone`.
    pub name: String,
    /// The zone used for conversion.
    pub tz: Tz,
}

impl Zone {
    /// UTC, the zone Graph uses when the client states none.
    pub(crate) fn utc() -> Self {
        Self {
            name: "UTC".to_owned(),
            tz: Tz::UTC,
        }
    }
}

/// Parses a window bound such as `startDateTime=2019-11-08T19:00:00-08:00`; without an offset
/// the value is UTC (user-list-calendarview.md).
pub(crate) fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // A '+' offset that was not percent-encoded arrives as a space.
    if let Ok(t) = DateTime::parse_from_rfc3339(&s.replace(' ', "+")) {
        return Some(t.with_timezone(&Utc));
    }
    parse_local(s).map(|n| Utc.from_utc_datetime(&n))
}

/// The preferences of a request's `Prefer` headers that the emulator honours.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefer {
    /// `outlook.timezone`, when given and known.
    pub timezone: Option<Zone>,
    /// `outlook.timezone` that could not be resolved.
    pub unknown_timezone: Option<String>,
    /// `odata.maxpagesize`.
    pub max_page_size: Option<usize>,
    /// `outlook.body-content-type="text"`.
    pub text_body: bool,
}

impl Prefer {
    /// Parses every `Prefer` header value (several preferences may share one header).
    pub(crate) fn parse<'a>(values: impl Iterator<Item = &'a str>) -> Self {
        let mut out = Self::default();
        for value in values {
            for pref in value.split(',') {
                let Some((key, val)) = pref.split_once('=') else {
                    continue;
                };
                let val = val.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "outlook.timezone" => match resolve_zone(val) {
                        Some(tz) => {
                            out.timezone = Some(Zone {
                                name: val.to_owned(),
                                tz,
                            })
                        }
                        None => out.unknown_timezone = Some(val.to_owned()),
                    },
                    "odata.maxpagesize" => out.max_page_size = val.parse().ok().filter(|n| *n > 0),
                    "outlook.body-content-type" => out.text_body = val.eq_ignore_ascii_case("text"),
                    _ => {}
                }
            }
        }
        out
    }

    /// The zone to render times in (UTC by default).
    pub(crate) fn zone(&self) -> Zone {
        self.timezone.clone().unwrap_or_else(Zone::utc)
    }
}
