//! Wall-clock times as the API shows them: RFC 3339 UTC strings for people
//! and scripts, milliseconds since the Unix epoch for the page's arithmetic.
//!
//! Hand-rolled (days-from-civil, the inverse of Howard Hinnant's
//! `days_from_civil`) to avoid a date crate for one format.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 for times before it.
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-11-25T08:48:38.123Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let ms = unix_ms(time);
    rfc3339_parts((ms / 1000) as i64, Some((ms % 1000) as u32))
}

/// `2027-01-01T00:00:00Z` for seconds since the epoch (certificate dates,
/// which may lie before 1970 in theory).
pub fn rfc3339_secs(secs: i64) -> String {
    rfc3339_parts(secs, None)
}

fn rfc3339_parts(secs: i64, millis: Option<u32>) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    match millis {
        Some(ms) => {
            format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{ms:03}Z")
        }
        None => format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"),
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Milliseconds with microsecond precision, for JSON.
pub fn ms(duration: Option<Duration>) -> Option<f64> {
    duration.map(|d| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0)
}

/// Seconds since the Unix epoch now.
pub fn now_secs() -> i64 {
    (unix_ms(SystemTime::now()) / 1000) as i64
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_secs(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(rfc3339_secs(-1), "1969-12-31T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_764_060_518_123);
        assert_eq!(rfc3339(t), "2025-11-25T08:48:38.123Z");
    }

    #[test]
    fn millis_keep_microseconds() {
        assert_eq!(ms(Some(Duration::from_micros(1_234_567))), Some(1234.567));
        assert_eq!(ms(None), None);
    }
}
