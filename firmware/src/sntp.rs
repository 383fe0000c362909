//! SNTP (RFC 4330) request and reply, without IO: the device sets its clock
//! before the first TLS handshake so that mbedTLS can check certificate
//! validity dates. The device sends [`request`] over UDP port 123 and reads
//! the time from the reply with [`parse_reply`].

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_TO_UNIX_SECS: u64 = 2_208_988_800;

/// The 48-byte client request (version 4, mode 3).
pub fn request() -> [u8; 48] {
    let mut packet = [0u8; 48];
    packet[0] = (4 << 3) | 3;
    packet
}

/// Why a reply is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SntpError {
    /// Shorter than 48 bytes.
    Short,
    /// Not a server reply (mode 4) or broadcast (mode 5).
    NotServer,
    /// Kiss-o'-death or an unsynchronised server.
    Unsynchronised,
    /// The time is before 2024: not believable.
    Implausible,
}

impl core::fmt::Display for SntpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SntpError::Short => "reply shorter than 48 bytes",
            SntpError::NotServer => "not an NTP server reply",
            SntpError::Unsynchronised => "server is not synchronised (stratum 0 or alarm)",
            SntpError::Implausible => "server time is before 2024",
        })
    }
}

/// Unix time in microseconds from a server reply (the transmit timestamp).
pub fn parse_reply(reply: &[u8]) -> Result<u64, SntpError> {
    let bytes: &[u8; 48] = reply
        .get(..48)
        .and_then(|b| b.try_into().ok())
        .ok_or(SntpError::Short)?;
    let leap = bytes[0] >> 6;
    let mode = bytes[0] & 7;
    let stratum = bytes[1];
    if mode != 4 && mode != 5 {
        return Err(SntpError::NotServer);
    }
    if leap == 3 || stratum == 0 || stratum > 15 {
        return Err(SntpError::Unsynchronised);
    }
    let secs = u64::from(u32::from_be_bytes([
        bytes[40], bytes[41], bytes[42], bytes[43],
    ]));
    let fraction = u64::from(u32::from_be_bytes([
        bytes[44], bytes[45], bytes[46], bytes[47],
    ]));
    // Era 1 starts in 2036: small values mean the next era.
    let secs = if secs < NTP_TO_UNIX_SECS {
        secs + (1 << 32)
    } else {
        secs
    };
    let unix_secs = secs - NTP_TO_UNIX_SECS;
    if unix_secs < 1_704_067_200 {
        return Err(SntpError::Implausible);
    }
    Ok(unix_secs * 1_000_000 + ((fraction * 1_000_000) >> 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(secs: u32, first: u8, stratum: u8) -> [u8; 48] {
        let mut r = [0u8; 48];
        r[0] = first;
        r[1] = stratum;
        r[40..44].copy_from_slice(&secs.to_be_bytes());
        r[44..48].copy_from_slice(&0x8000_0000u32.to_be_bytes());
        r
    }

    #[test]
    fn request_is_version_4_client_mode() {
        assert_eq!(request()[0], 0x23);
    }

    #[test]
    fn reply_gives_unix_microseconds() {
        // 2026-01-01T00:00:00Z = 1767225600 unix.
        let ntp = (1_767_225_600u64 + NTP_TO_UNIX_SECS) as u32;
        let micros = parse_reply(&reply(ntp, 0x24, 2));
        assert_eq!(micros, Ok(1_767_225_600_000_000 + 500_000));
    }

    #[test]
    fn era_one_timestamps_wrap() {
        // 2040-01-01 = 2209075200 unix, past the 2036 NTP rollover.
        let ntp = (2_209_075_200u64 + NTP_TO_UNIX_SECS - (1 << 32)) as u32;
        assert_eq!(
            parse_reply(&reply(ntp, 0x24, 1)).map(|m| m / 1_000_000),
            Ok(2_209_075_200)
        );
    }

    #[test]
    fn bad_replies_are_refused() {
        let good = (1_767_225_600u64 + NTP_TO_UNIX_SECS) as u32;
        assert_eq!(parse_reply(&[0u8; 10]), Err(SntpError::Short));
        assert_eq!(
            parse_reply(&reply(good, 0x23, 2)),
            Err(SntpError::NotServer)
        );
        assert_eq!(
            parse_reply(&reply(good, 0x24, 0)),
            Err(SntpError::Unsynchronised)
        );
        assert_eq!(
            parse_reply(&reply(good, 0xE4, 2)),
            Err(SntpError::Unsynchronised)
        );
        let old = (1_600_000_000u64 + NTP_TO_UNIX_SECS) as u32;
        assert_eq!(
            parse_reply(&reply(old, 0x24, 2)),
            Err(SntpError::Implausible)
        );
    }
}

/// A UTC calendar time (what mbedTLS's wall-clock hook returns as `tm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Full year, e.g. 2026.
    pub year: i32,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    /// 0-23.
    pub hour: u32,
    /// 0-59.
    pub minute: u32,
    /// 0-59.
    pub second: u32,
    /// Days since Sunday, 0-6.
    pub weekday: u32,
    /// Days since January 1st, 0-365.
    pub year_day: u32,
}

/// Converts Unix seconds to a UTC calendar time (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`).
pub fn utc_from_unix(unix_secs: u64) -> UtcTime {
    let days = unix_secs / 86_400;
    let rest = unix_secs % 86_400;
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    const BEFORE_MONTH: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let year_day = BEFORE_MONTH[(month - 1) as usize] + day - 1 + u32::from(leap && month > 2);
    UtcTime {
        year,
        month,
        day,
        hour: (rest / 3_600) as u32,
        minute: (rest % 3_600 / 60) as u32,
        second: (rest % 60) as u32,
        weekday: ((days + 4) % 7) as u32,
        year_day,
    }
}

#[cfg(test)]
mod calendar_tests {
    use super::*;

    #[test]
    fn known_dates() {
        let epoch = utc_from_unix(0);
        assert_eq!(
            (epoch.year, epoch.month, epoch.day, epoch.weekday),
            (1970, 1, 1, 4)
        );
        // 2024-02-29T12:34:56Z, a Thursday, day 59 of a leap year.
        let leap = utc_from_unix(1_709_210_096);
        assert_eq!(
            leap,
            UtcTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 12,
                minute: 34,
                second: 56,
                weekday: 4,
                year_day: 59
            }
        );
        // 2026-12-31T23:59:59Z, a Thursday, day 364.
        let end = utc_from_unix(1_798_761_599);
        assert_eq!(
            (end.year, end.month, end.day, end.year_day, end.weekday),
            (2026, 12, 31, 364, 4)
        );
    }
}
