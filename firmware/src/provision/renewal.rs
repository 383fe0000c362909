//! When to renew: the certificate's notAfter (read from its DER) against
//! the clock and the device's threshold. The broker refuses renewals
//! earlier than its own `renew_before_secs` (`not-due`), so the device's
//! threshold should not be larger.

use super::der::{self, CONTEXT_0, GENERALIZED_TIME, SEQUENCE, UTC_TIME};

/// Whether a certificate ending at `not_after` (Unix seconds) should be
/// renewed at `now` with `threshold_secs` of margin.
pub fn due(not_after: i64, now: i64, threshold_secs: i64) -> bool {
    not_after.saturating_sub(now) <= threshold_secs
}

/// notAfter of a DER certificate, in Unix seconds; `None` if malformed.
pub fn not_after(certificate: &[u8]) -> Option<i64> {
    let (tag, cert, _) = der::read(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der::read(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // [0] version (optional), serial, signature algorithm, issuer, validity.
    let (tag, _, after) = der::read(rest)?;
    if tag == CONTEXT_0 {
        rest = after;
    }
    for _ in 0..3 {
        rest = der::read(rest)?.2;
    }
    let (tag, validity, _) = der::read(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let after_not_before = der::read(validity)?.2;
    let (tag, time, _) = der::read(after_not_before)?;
    parse_time(tag, time)
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ`.
fn parse_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |range: core::ops::Range<usize>| -> Option<i64> {
        let part = core::str::from_utf8(text.get(range)?).ok()?;
        part.parse::<i64>().ok()
    };
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (GENERALIZED_TIME, 15) => (digits(0..4)?, 4),
        _ => return None,
    };
    if text.last() != Some(&b'Z') {
        return None;
    }
    let month = digits(rest..rest + 2)?;
    let day = digits(rest + 2..rest + 4)?;
    let hour = digits(rest + 4..rest + 6)?;
    let minute = digits(rest + 6..rest + 8)?;
    let second = digits(rest + 8..rest + 10)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn reads_not_after_of_a_real_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        for (year, tagged) in [(2031, "utc"), (2051, "generalized")] {
            let mut params = rcgen::CertificateParams::default();
            params.not_after = rcgen::date_time_ymd(year, 3, 4);
            let cert = params.self_signed(&key).unwrap();
            let expected = days_from_civil(year.into(), 3, 4) * 86_400;
            assert_eq!(not_after(cert.der()), Some(expected), "{tagged}");
        }
        assert_eq!(not_after(b"\x30\x03\x02\x01\x00"), None);
    }

    #[test]
    fn dates_and_thresholds() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(parse_time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(parse_time(UTC_TIME, b"701301000000Z"), None);
        assert!(due(1_000, 900, 100));
        assert!(!due(1_000, 899, 100));
        assert!(due(1_000, 2_000, 100));
    }
}
