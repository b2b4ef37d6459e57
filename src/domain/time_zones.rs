//! Time zone names between the service (IANA names, as the local API speaks them) and
//! Microsoft Graph (Windows names such as `W. Europe Standard Time`, or IANA names when a client
//! wrote one).
//!
//! The mapping is CLDR's `windowsZones.xml`, through the `windows-timezones` crate (CLDR 46.1):
//! a Windows name stands for CLDR's world-wide default ("001") IANA zone, and every IANA zone
//! CLDR lists under a Windows name maps to it. IANA zones CLDR does not list by that name (the
//! tz database renames zones and keeps the old names as links, such as `Asia/Kolkata` for CLDR's
//! `Asia/Calcutta`) map to the Windows zone of a listed IANA zone with the same UTC offset at
//! every hour from 1970 to 2040 (which is what a link is), zones of the same area first. IANA
//! zones with no such twin (`Antarctica/Troll`) have no Windows name.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::{LazyLock, Mutex},
};

use chrono::{Duration, NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::{TZ_VARIANTS, Tz};
use windows_timezones::WindowsTimezone;

/// Every IANA zone CLDR lists, with its Windows zone.
static LISTED: LazyLock<Vec<(Tz, WindowsTimezone)>> = LazyLock::new(|| {
    TZ_VARIANTS
        .iter()
        .filter_map(|tz| WindowsTimezone::try_from(*tz).ok().map(|w| (*tz, w)))
        .collect()
});

/// Windows zones found for IANA zones CLDR does not list (the search is not free).
static UNLISTED: LazyLock<Mutex<HashMap<Tz, Option<WindowsTimezone>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// IANA names of UTC itself, which map to Windows' `UTC` (and not to a zone such as
/// `Greenwich Standard Time` that merely has no offset today).
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

fn windows_zone(name: &str) -> Option<WindowsTimezone> {
    let name = name.trim();
    WindowsTimezone::from_str(name).ok().or_else(|| {
        // Exchange compares Windows names without regard to case.
        LISTED
            .iter()
            .map(|(_, w)| *w)
            .find(|w| w.name().eq_ignore_ascii_case(name))
    })
}

fn is_utc(tz: Tz) -> bool {
    let name = tz.name();
    let bare = name.strip_prefix("Etc/").unwrap_or(name);
    UTC_NAMES.iter().any(|u| u.eq_ignore_ascii_case(bare))
}

/// Whether two zones have the same UTC offset at every hour from 1970 to 2040. Offsets are
/// compared at noon UTC every day, and hour by hour over the day before a noon at which either
/// zone's offset changed (where the two may switch at different hours of the same day).
fn same_offsets(a: Tz, b: Tz) -> bool {
    let (Some(first), Some(last)) = (
        NaiveDate::from_ymd_opt(1970, 1, 1).and_then(|d| d.and_hms_opt(12, 0, 0)),
        NaiveDate::from_ymd_opt(2041, 1, 1).and_then(|d| d.and_hms_opt(12, 0, 0)),
    ) else {
        return false;
    };
    let offsets = |at: &NaiveDateTime| {
        (
            a.offset_from_utc_datetime(at).fix(),
            b.offset_from_utc_datetime(at).fix(),
        )
    };
    let mut previous = offsets(&first);
    let mut noon = first;
    while noon < last {
        let now = offsets(&noon);
        if now.0 != now.1 {
            return false;
        }
        if now != previous {
            let mut hour = noon - Duration::hours(24);
            while hour < noon {
                let (x, y) = offsets(&hour);
                if x != y {
                    return false;
                }
                hour += Duration::hours(1);
            }
        }
        previous = now;
        noon += Duration::days(1);
    }
    true
}

/// The Windows zone of a listed zone that keeps the same time as `tz`, same area first.
fn equivalent_listed(tz: Tz) -> Option<WindowsTimezone> {
    let area = |t: Tz| t.name().split('/').next().unwrap_or_default();
    let (near, far): (Vec<_>, Vec<_>) = LISTED.iter().partition(|(l, _)| area(*l) == area(tz));
    near.into_iter()
        .chain(far)
        .find(|(listed, _)| same_offsets(tz, *listed))
        .map(|(_, w)| w)
}

fn windows_of(tz: Tz) -> Option<WindowsTimezone> {
    if is_utc(tz) {
        return Some(WindowsTimezone::Utc);
    }
    if let Ok(w) = WindowsTimezone::try_from(tz) {
        return Some(w);
    }
    if let Some(found) = UNLISTED.lock().ok().and_then(|m| m.get(&tz).copied()) {
        return found;
    }
    let found = equivalent_listed(tz);
    if let Ok(mut cache) = UNLISTED.lock() {
        cache.insert(tz, found);
    }
    found
}

/// Parses an IANA zone name (as the tz database spells it, `Europe/Berlin`).
#[must_use]
pub fn parse_iana(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

/// The Windows zone name Graph uses for an IANA zone (`Europe/Vienna` gives
/// `W. Europe Standard Time`); a Windows name is returned in its canonical spelling.
/// `None` when the name is neither, or no Windows zone keeps the same time.
#[must_use]
pub fn iana_to_windows(name: &str) -> Option<&'static str> {
    match parse_iana(name) {
        Some(tz) => windows_of(tz).map(WindowsTimezone::name),
        None => windows_zone(name).map(WindowsTimezone::name),
    }
}

/// The IANA zone of a zone name as Graph writes it: a Windows name (any case) gives CLDR's
/// default IANA zone for it (`Pacific Standard Time` gives `America/Los_Angeles`); an IANA name,
/// which Graph returns when a client wrote one, is returned as the tz database spells it.
/// `None` for a name that is neither.
#[must_use]
pub fn windows_to_iana(name: &str) -> Option<&'static str> {
    match windows_zone(name) {
        Some(w) => Some(w.tzdb_id()),
        None => parse_iana(name).map(|tz| tz.name()),
    }
}

/// Resolves a zone name as Graph writes it (Windows or IANA) to a tz database zone.
#[must_use]
pub fn resolve(name: &str) -> Option<Tz> {
    windows_to_iana(name).and_then(parse_iana)
}

/// Whether two zone names, Windows or IANA, stand for the same Windows zone (so that an event
/// set in `Europe/Vienna` and read back from Graph as `W. Europe Standard Time` keeps its zone).
#[must_use]
pub fn same_windows_zone(a: &str, b: &str) -> bool {
    match (iana_to_windows(a), iana_to_windows(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iana_names_map_to_their_cldr_windows_zone() {
        let cases = [
            ("Europe/Berlin", "W. Europe Standard Time"),
            ("Europe/Vienna", "W. Europe Standard Time"),
            ("America/New_York", "Eastern Standard Time"),
            ("America/Los_Angeles", "Pacific Standard Time"),
            ("America/Vancouver", "Pacific Standard Time"),
            ("Australia/Sydney", "AUS Eastern Standard Time"),
            ("Pacific/Auckland", "New Zealand Standard Time"),
            ("Asia/Tokyo", "Tokyo Standard Time"),
            ("Asia/Kolkata", "India Standard Time"),
            ("Asia/Calcutta", "India Standard Time"),
            ("Europe/Kyiv", "FLE Standard Time"),
            ("UTC", "UTC"),
            ("Etc/UTC", "UTC"),
            ("Etc/GMT", "UTC"),
            ("Europe/London", "GMT Standard Time"),
            ("Atlantic/Reykjavik", "Greenwich Standard Time"),
            ("W. Europe Standard Time", "W. Europe Standard Time"),
            ("pacific standard time", "Pacific Standard Time"),
        ];
        for (iana, windows) in cases {
            assert_eq!(iana_to_windows(iana), Some(windows), "{iana}");
        }
    }

    #[test]
    fn windows_names_map_to_the_cldr_default_zone_and_iana_names_pass_through() {
        let cases = [
            ("Pacific Standard Time", "America/Los_Angeles"),
            ("PACIFIC STANDARD TIME", "America/Los_Angeles"),
            ("W. Europe Standard Time", "Europe/Berlin"),
            ("Eastern Standard Time", "America/New_York"),
            ("AUS Eastern Standard Time", "Australia/Sydney"),
            ("New Zealand Standard Time", "Pacific/Auckland"),
            ("UTC", "Etc/UTC"),
            ("Europe/Vienna", "Europe/Vienna"),
            (" America/Los_Angeles ", "America/Los_Angeles"),
        ];
        for (name, iana) in cases {
            assert_eq!(windows_to_iana(name), Some(iana), "{name}");
        }
    }

    #[test]
    fn unknown_names_map_to_nothing() {
        for name in [
            "Mars/Olympus_Mons",
            "",
            "Central Mars Standard Time",
            "+02:00",
        ] {
            assert_eq!(iana_to_windows(name), None, "{name}");
            assert_eq!(windows_to_iana(name), None, "{name}");
        }
    }

    #[test]
    fn an_iana_zone_no_windows_zone_keeps_has_no_windows_name() {
        assert_eq!(
            parse_iana("Antarctica/Troll").map(|tz| tz.name()),
            Some("Antarctica/Troll")
        );
        assert_eq!(iana_to_windows("Antarctica/Troll"), None);
    }

    #[test]
    fn every_windows_zone_round_trips_through_its_default_iana_zone() {
        for (_, w) in LISTED.iter() {
            let iana = windows_to_iana(w.name());
            assert!(iana.is_some(), "{}", w.name());
            assert_eq!(
                iana.and_then(iana_to_windows),
                Some(w.name()),
                "{} via {iana:?}",
                w.name()
            );
        }
    }

    #[test]
    fn zones_sharing_a_windows_zone_are_the_same_zone_for_graph() {
        assert!(same_windows_zone(
            "Europe/Vienna",
            "W. Europe Standard Time"
        ));
        assert!(same_windows_zone("Europe/Vienna", "Europe/Berlin"));
        assert!(!same_windows_zone("Europe/Berlin", "Europe/London"));
        assert!(!same_windows_zone("Mars/Olympus_Mons", "Mars/Olympus_Mons"));
    }
}
