//! Span times as the python line format holds them: ISO 8601 in UTC, through jiff (exact to the
//! nanosecond, calendar-checked). The python writer writes what OpenTelemetry Python writes
//! (`%Y-%m-%dT%H:%M:%S.%fZ`: 6 digits, `Z`, [`IsoMicros`]) because Python <= 3.10's
//! `fromisoformat` and every `strptime('%f')` reader reject more digits; exact nanoseconds are the
//! otlp format's promise. Readers take 0–9 digits. The proto types hold `u64` Unix nanoseconds, so
//! the range is 1970 to 2554.

use jiff::Timestamp;
use std::cell::Cell;
use std::fmt;

/// Formats Unix nanoseconds as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn format_iso(nanos: u64) -> String {
    Iso(nanos).to_string()
}

/// [`format_iso`] without the `String`: writers pass it to `collect_str`.
#[derive(Debug, Clone, Copy)]
pub struct Iso(pub u64);

impl fmt::Display for Iso {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // Every u64 of nanoseconds (up to 2554) is within jiff's range (up to 9999).
        let ts = Timestamp::from_nanosecond(i128::from(self.0)).map_err(|_| fmt::Error)?;
        write!(f, "{ts:.9}")
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, as OpenTelemetry Python (and the sdk crate's jsonlines writer)
/// write span times: microseconds, truncated.
#[derive(Debug, Clone, Copy)]
pub struct IsoMicros(pub u64);

impl fmt::Display for IsoMicros {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let ts =
            Timestamp::from_nanosecond(i128::from(self.0 / 1000 * 1000)).map_err(|_| fmt::Error)?;
        write!(f, "{ts:.6}")
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into Unix nanoseconds: 0–9 fraction digits
/// (Python writes 6, otel-run 9), `T`, `t` or a space between date and time; no offset at all is
/// read as UTC. Impossible dates (2024-02-30) and times outside 1970..2554 are errors.
pub fn parse_iso(s: &str) -> Result<u64, String> {
    if let Some(nanos) = same_minute(s.as_bytes()) {
        return Ok(nanos);
    }
    let ts = match s.parse::<Timestamp>() {
        Ok(ts) => ts,
        Err(e) if has_no_offset(s) => s
            .parse::<jiff::civil::DateTime>()
            .and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt))
            .map_err(|_| invalid(s, e))?,
        Err(e) => return Err(invalid(s, e)),
    };
    let nanos = ts.as_nanosecond();
    if nanos < 0 {
        return Err(format!("timestamp {s:?} is before 1970"));
    }
    let nanos = u64::try_from(nanos).map_err(|_| {
        format!(
            "timestamp {s:?} is after {}, the latest a span time can hold",
            format_iso(u64::MAX)
        )
    })?;
    remember_minute(s.as_bytes(), nanos);
    Ok(nanos)
}

// The fast path. A span file's times come in runs within the same minute, and parsing them was a
// tenth of reading a line: the minute (`YYYY-MM-DDTHH:MM`) of the last UTC time jiff read on this
// thread is remembered with its Unix time, and a time in that same minute needs only its seconds
// and fraction read. Anything else (another minute, an offset, a leap second, a stray byte) goes
// to jiff, which then decides.

thread_local! {
    static MINUTE: Cell<Option<([u8; 16], u64)>> = const { Cell::new(None) };
}

/// Remembers the minute of `s`, which jiff just read as `nanos`, if `s` is in the layout
/// [`same_minute`] reads.
fn remember_minute(s: &[u8], nanos: u64) {
    if let Some(((minute, _), within)) = split_minute(s).zip(seconds_and_fraction(s)) {
        MINUTE.set(Some((*minute, nanos - within)));
    }
}

/// `s` in the remembered minute: its Unix nanoseconds.
fn same_minute(s: &[u8]) -> Option<u64> {
    let (minute, start) = MINUTE.get()?;
    let (prefix, _) = split_minute(s)?;
    (*prefix == minute).then_some(())?;
    Some(start + seconds_and_fraction(s)?)
}

/// `YYYY-MM-DDTHH:MM` and the rest of a `…:SS[.f…]Z` time.
fn split_minute(s: &[u8]) -> Option<(&[u8; 16], &[u8])> {
    let (minute, rest) = s.split_first_chunk::<16>()?;
    (minute[10] == b'T' && rest.first() == Some(&b':') && rest.last() == Some(&b'Z'))
        .then_some((minute, rest))
}

/// The nanoseconds within the minute of `…:SS[.f{1,9}]Z` (seconds 00–59).
fn seconds_and_fraction(s: &[u8]) -> Option<u64> {
    let rest = s.get(17..s.len() - 1)?;
    let digit = |b: u8| b.is_ascii_digit().then(|| u64::from(b - b'0'));
    let (secs, fraction) = match rest {
        [a, b] => (digit(*a)? * 10 + digit(*b)?, 0),
        [a, b, b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let mut f = 0;
            for c in frac {
                f = f * 10 + digit(*c)?;
            }
            (
                digit(*a)? * 10 + digit(*b)?,
                f * 10u64.pow(9 - frac.len() as u32),
            )
        }
        _ => return None,
    };
    (secs < 60).then_some(secs * 1_000_000_000 + fraction)
}

fn invalid(s: &str, e: jiff::Error) -> String {
    format!("invalid timestamp {s:?} (want ISO 8601 like 2024-05-01T12:00:00.000000Z): {e}")
}

/// A date and a time, but no `Z` and no `±HH:MM`: a civil time, taken as UTC.
fn has_no_offset(s: &str) -> bool {
    match s.get(10..) {
        Some(time) if time.starts_with(['T', 't', ' ']) => !time.contains(['Z', 'z', '+', '-']),
        _ => false,
    }
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
            u64::MAX,
        ] {
            assert_eq!(parse_iso(&format_iso(n)).unwrap(), n, "{}", format_iso(n));
        }
        assert_eq!(format_iso(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_iso(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn reads_python_microseconds_offsets_and_civil_times() {
        let want = 1_709_210_096_123_456_000;
        for s in [
            "2024-02-29T12:34:56.123456Z",
            "2024-02-29T13:34:56.123456+01:00",
            "2024-02-29t12:34:56.123456z",
            "2024-02-29 12:34:56.123456Z",
            "2024-02-29T12:34:56.123456",
        ] {
            assert_eq!(parse_iso(s), Ok(want), "{s}");
        }
        assert_eq!(parse_iso("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(format_iso(want), "2024-02-29T12:34:56.123456000Z");
        assert_eq!(
            IsoMicros(want + 999).to_string(),
            "2024-02-29T12:34:56.123456Z"
        );
        assert_eq!(IsoMicros(0).to_string(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn rejects_impossible_out_of_range_and_garbage() {
        for (bad, why) in [
            ("", "invalid timestamp"),
            ("2024-02-29", "invalid timestamp"),
            ("2024-02-30T00:00:00Z", "invalid timestamp"),
            ("2023-02-29T00:00:00Z", "invalid timestamp"),
            ("2024-13-01T00:00:00Z", "invalid timestamp"),
            ("2024-02-29T24:00:00Z", "invalid timestamp"),
            ("2024-02-29T12:34:56.Z", "invalid timestamp"),
            ("2024-02-29T12:34:56Q", "invalid timestamp"),
            ("2024-02-29T12:34:56+01:0é", "invalid timestamp"),
            ("2024-02-29T12:34:56é", "invalid timestamp"),
            ("2024-02-29T12:34:56+é", "invalid timestamp"),
            ("abcd-ef-ghT00:00:00Z", "invalid timestamp"),
            ("1969-12-31T23:59:59.5Z", "before 1970"),
            (
                "2554-07-21T23:34:33.709551616Z",
                "the latest a span time can hold",
            ),
            ("9999-12-30T00:00:00Z", "the latest a span time can hold"),
            ("+010000-01-01T00:00:00Z", "invalid timestamp"),
        ] {
            let err = parse_iso(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    /// The same-minute fast path against jiff alone, over random instants, with every number of
    /// fraction digits, in and out of the remembered minute.
    #[test]
    fn fast_path_reads_as_jiff_does() {
        let jiff = |s: &str| -> Option<u64> {
            u64::try_from(s.parse::<Timestamp>().ok()?.as_nanosecond()).ok()
        };
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Runs of nearby times (the same minute), then a jump.
            let t = if i % 8 == 0 {
                x
            } else {
                x - x % 60_000_000_000 + (i * 7_777_777_777) % 60_000_000_000
            };
            let iso = format_iso(t);
            let digits = (i % 10) as usize;
            let s = match digits {
                0 => format!("{}Z", &iso[..19]),
                d => format!("{}Z", &iso[..20 + d]),
            };
            assert_eq!(parse_iso(&s).ok(), jiff(&s), "{s}");
        }
        // In the remembered minute but not the fast path's layout: jiff decides.
        parse_iso("2024-02-29T12:34:00Z").unwrap();
        for s in [
            "2024-02-29T12:34:60Z",
            "2024-02-29T12:34:5xZ",
            "2024-02-29T12:34:56.Z",
            "2024-02-29T12:34:56.1234567890Z",
            "2024-02-29T12:34:56.1+00:00",
        ] {
            assert_eq!(parse_iso(s).ok(), jiff(s), "{s}");
        }
        assert_eq!(
            parse_iso("2024-02-29T12:34:59.5Z"),
            Ok(1_709_210_099_500_000_000)
        );
    }

    #[test]
    fn random_instants_round_trip() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let s = format_iso(x);
            assert_eq!(s.len(), 30, "{s}");
            assert_eq!(parse_iso(&s), Ok(x), "{s}");
            // Python's layout (6 digits) reads back truncated to microseconds.
            let micros = format!("{}Z", &s[..26]);
            assert_eq!(parse_iso(&micros), Ok(x / 1000 * 1000), "{micros}");
        }
    }
}
