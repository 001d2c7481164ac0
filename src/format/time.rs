//! ISO 8601 UTC timestamps with nanoseconds, without a date library: the python line format
//! stores times as strings, and converting through floats (as Python does) loses nanoseconds.

/// Formats Unix nanoseconds as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn format_iso(nanos: u64) -> String {
    IsoTime::new(nanos).as_str().to_string()
}

/// An ISO 8601 timestamp on the stack: the span writers format millions of these, and going
/// through `format!` made that the hottest part of writing a span.
pub struct IsoTime([u8; 30]);

impl IsoTime {
    pub fn new(nanos: u64) -> IsoTime {
        let secs = nanos / 1_000_000_000;
        let frac = nanos % 1_000_000_000;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let mut b = *b"0000-00-00T00:00:00.000000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y.clamp(0, 9999) as u64);
        put(5, 2, m as u64);
        put(8, 2, d as u64);
        put(11, 2, rem / 3600);
        put(14, 2, (rem % 3600) / 60);
        put(17, 2, rem % 60);
        put(20, 9, frac);
        IsoTime(b)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).expect("ASCII timestamp")
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into Unix nanoseconds. Accepts 0–9 fraction
/// digits (Python writes 6, otel-run 9) and a space instead of `T`.
pub fn parse_iso(s: &str) -> Result<u64, String> {
    match parse_iso_plain(s.as_bytes()) {
        Some(nanos) => Ok(nanos),
        None => parse_iso_general(s),
    }
}

fn parse_iso_general(s: &str) -> Result<u64, String> {
    let err =
        || format!("invalid timestamp {s:?} (want ISO 8601 like 2024-05-01T12:00:00.000000Z)");
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(err());
    }
    // Digit by digit: this runs for every span and event time of every replayed line.
    let num = |range: std::ops::Range<usize>| -> Result<u64, String> {
        b[range].iter().try_fold(0u64, |n, &c| {
            if c.is_ascii_digit() {
                Ok(n * 10 + u64::from(c - b'0'))
            } else {
                Err(err())
            }
        })
    };
    let (year, month, day) = (num(0..4)? as i64, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(err());
    }
    let mut i = 19;
    let mut frac: u64 = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                frac = frac * 10 + (b[i] - b'0') as u64;
            }
            i += 1;
        }
        let digits = (i - start).min(9);
        if i == start {
            return Err(err());
        }
        frac *= 10u64.pow(9 - digits as u32);
    }
    let offset_secs: i64 = match &s[i..] {
        "Z" | "z" | "" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let h: i64 = tz[1..3].parse().map_err(|_| err())?;
            let m: i64 = tz[4..6].parse().map_err(|_| err())?;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return Err(err()),
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - offset_secs;
    if secs < 0 {
        return Err(format!("timestamp {s:?} is before 1970"));
    }
    Ok(secs as u64 * 1_000_000_000 + frac)
}

/// The layout Python and otel-run write, `YYYY-MM-DDTHH:MM:SS.f…fZ` with 1–9 fraction digits,
/// read in one go (replay reads two or more of these per span); anything else, valid or not, is
/// left to [`parse_iso`]'s general path, which gives the same value for these.
fn parse_iso_plain(b: &[u8]) -> Option<u64> {
    if !(22..=30).contains(&b.len())
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let digit = |i: usize| {
        let d = b[i].wrapping_sub(b'0');
        (d < 10).then_some(u64::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let fraction = &b[20..b.len() - 1];
    let mut frac = 0;
    for i in 20..b.len() - 1 {
        frac = frac * 10 + digit(i)?;
    }
    frac *= 10u64.pow(9 - fraction.len() as u32);
    let days = days_from_civil(year as i64, month as u32, day as u32);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    Some(u64::try_from(secs).ok()? * 1_000_000_000 + frac)
}

// Howard Hinnant's algorithms (public domain): exact proleptic Gregorian conversions.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Current time as Unix nanoseconds.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_nanoseconds() {
        for n in [
            0u64,
            1,
            999_999_999,
            1_700_000_000_123_456_789,
            951_782_400_000_000_001,
            4_102_444_800_000_000_000,
        ] {
            assert_eq!(parse_iso(&format_iso(n)).unwrap(), n, "{}", format_iso(n));
        }
    }

    #[test]
    fn reads_python_microseconds_and_offsets() {
        assert_eq!(
            parse_iso("2024-02-29T12:34:56.123456Z").unwrap(),
            1_709_210_096_123_456_000
        );
        assert_eq!(
            parse_iso("2024-02-29T13:34:56.123456+01:00").unwrap(),
            1_709_210_096_123_456_000
        );
        assert_eq!(parse_iso("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            format_iso(1_709_210_096_123_456_000),
            "2024-02-29T12:34:56.123456000Z"
        );
    }

    #[test]
    fn plain_layout_reads_as_the_general_path() {
        let mut cases = vec![
            "2024-02-29T12:34:56.Z".to_string(),
            "2024-02-29T12:34:56.1234567890Z".to_string(),
            "1969-12-31T23:59:59.5Z".to_string(),
            "2024-02-30T24:00:00.0Z".to_string(),
            "2024-02-29T12:34:60.000001Z".to_string(),
            "2024-0a-29T12:34:56.000001Z".to_string(),
            "2024-02-29T12:34:56.00000aZ".to_string(),
        ];
        for n in [
            0u64,
            1,
            1_700_000_000_123_456_789,
            4_102_444_800_000_000_000,
        ] {
            let iso = format_iso(n);
            for digits in 1..=9 {
                cases.push(format!("{}Z", &iso[..20 + digits]));
            }
        }
        for case in &cases {
            if let Some(plain) = parse_iso_plain(case.as_bytes()) {
                assert_eq!(Ok(plain), parse_iso_general(case), "{case}");
            }
            assert_eq!(parse_iso(case), parse_iso_general(case), "{case}");
        }
        assert!(parse_iso_plain(b"2023-11-14T22:13:20.123456Z").is_some());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2024-02-29",
            "2024-13-01T00:00:00Z",
            "2024-02-29T12:34:56.Z",
            "2024-02-29T12:34:56Q",
            "abcd-ef-ghT00:00:00Z",
        ] {
            assert!(parse_iso(bad).is_err(), "{bad}");
        }
    }
}
