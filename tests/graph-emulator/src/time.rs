//! Dates and time zones as Graph writes them: `dateTimeTimeZone` values with seven fractional
//! digits and Windows zone names (CLDR's windowsZones mapping, the same data as the service's),
//! the `Prefer: outlook.timezone` header, and the query-string instants of calendar windows.

use std::{str::FromStr, sync::LazyLock};

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::{TZ_VARIANTS, Tz};
use serde_json::{Value, json};
use windows_timezones::WindowsTimezone;

/// IANA names of UTC itself, which Exchange stores as Windows' `UTC`.
const UTC_NAMES: &[&str] = &[
    "UTC",
    "UCT",
    "Universal",
    "Zulu",
    "GMT",
    "GMT0",
    "GMT+0",
    "GMT-0",
    "Greenwich",
];

/// Every Windows zone of CLDR's windowsZones mapping (through the `windows-timezones` crate):
/// the Windows zones of all the IANA zones CLDR lists.
static WINDOWS_ZONES: LazyLock<Vec<WindowsTimezone>> = LazyLock::new(|| {
    let mut zones: Vec<WindowsTimezone> = Vec::new();
    for tz in TZ_VARIANTS {
        if let Ok(w) = WindowsTimezone::try_from(tz)
            && !zones.contains(&w)
        {
            zones.push(w);
        }
    }
    zones
});

/// A Windows zone name, compared without regard to case as Exchange does.
fn windows_zone(name: &str) -> Option<WindowsTimezone> {
    WindowsTimezone::from_str(name).ok().or_else(|| {
        WINDOWS_ZONES
            .iter()
            .copied()
            .find(|w| w.name().eq_ignore_ascii_case(name))
    })
}

/// Resolves a zone name as a client may send it (Windows or IANA) to a tz database zone: a
/// Windows name stands for CLDR's world-wide default IANA zone.
pub(crate) fn resolve_zone(name: &str) -> Option<Tz> {
    let trimmed = name.trim();
    if let Some(w) = windows_zone(trimmed) {
        return w.tzdb_id().parse().ok();
    }
    if trimmed.eq_ignore_ascii_case("Z") {
        return Some(Tz::UTC);
    }
    trimmed.parse().ok()
}

/// The Windows name Exchange stores for a zone a client named (used for
/// `originalStartTimeZone`): a Windows name in its canonical spelling, the CLDR Windows zone
/// of an IANA name, or the name itself when CLDR does not list it.
pub(crate) fn windows_name(name: &str) -> String {
    let trimmed = name.trim();
    if let Some(w) = windows_zone(trimmed) {
        return w.name().to_owned();
    }
    match trimmed.parse::<Tz>() {
        Ok(tz) => {
            let bare = tz.name().strip_prefix("Etc/").unwrap_or(tz.name());
            if UTC_NAMES.iter().any(|u| u.eq_ignore_ascii_case(bare)) {
                return WindowsTimezone::Utc.name().to_owned();
            }
            WindowsTimezone::try_from(tz)
                .map_or_else(|_| trimmed.to_owned(), |w| w.name().to_owned())
        }
        Err(_) => trimmed.to_owned(),
    }
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
    /// `outlook.body-content-type`, when it names `text` or `html`.
    pub body_type: Option<BodyType>,
    /// `IdType="ImmutableId"`.
    pub immutable_ids: bool,
}

/// The body formats of `microsoft.graph.bodyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyType {
    Text,
    Html,
}

impl BodyType {
    /// The JSON name (`text`, `html`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Html => "html",
        }
    }
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
                    "outlook.body-content-type" => {
                        out.body_type = if val.eq_ignore_ascii_case("text") {
                            Some(BodyType::Text)
                        } else if val.eq_ignore_ascii_case("html") {
                            Some(BodyType::Html)
                        } else {
                            None
                        }
                    }
                    "idtype" => out.immutable_ids = val.eq_ignore_ascii_case("ImmutableId"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_iana_names_resolve_through_cldr() {
        let cases = [
            ("Pacific Standard Time", Some(Tz::America__Los_Angeles)),
            ("pacific standard time", Some(Tz::America__Los_Angeles)),
            ("AUS Eastern Standard Time", Some(Tz::Australia__Sydney)),
            ("Europe/Vienna", Some(Tz::Europe__Vienna)),
            ("UTC", Some(Tz::Etc__UTC)),
            ("Central Mars Standard Time", None),
        ];
        for (name, tz) in cases {
            assert_eq!(resolve_zone(name), tz, "{name}");
        }
    }

    #[test]
    fn exchange_stores_the_windows_name_of_a_zone() {
        let cases = [
            ("Europe/Vienna", "W. Europe Standard Time"),
            ("America/Los_Angeles", "Pacific Standard Time"),
            ("eastern standard time", "Eastern Standard Time"),
            ("Etc/UTC", "UTC"),
            ("UTC", "UTC"),
        ];
        for (name, windows) in cases {
            assert_eq!(windows_name(name), windows, "{name}");
        }
    }
}
