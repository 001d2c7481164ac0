//! What real writers put in span lines that strict JSON refuses, made readable without losing the
//! value: Python's `json` writes bare `NaN`, `Infinity` and `-Infinity` for float attributes, and
//! `\udXXX` escapes of lone surrogates (`os.fsdecode` of a non-UTF-8 path). A line is first read as
//! it is; only when that fails is it rewritten here and read again, so lines without these cost
//! nothing. Bare non-finite numbers become marker strings (`"\u0000NaN"`) that the attribute
//! readers turn back into doubles while [`Markers`] is in force on the thread; lone surrogates
//! become U+FFFD and are counted ([`lossy_counts`]).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

static SURROGATES: AtomicU64 = AtomicU64::new(0);
static BIG_INTS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static MARKERS: Cell<bool> = const { Cell::new(false) };
}

/// Lossy readings so far in this process: (lone surrogates replaced by U+FFFD, integers beyond
/// 64 bits read as doubles). Counted when values are kept (full readings), so a file read twice
/// by replay's two passes counts once per value kept.
pub fn lossy_counts() -> (u64, u64) {
    (
        SURROGATES.load(Ordering::Relaxed),
        BIG_INTS.load(Ordering::Relaxed),
    )
}

/// Prints one warning per kind of lossy reading, with exact counts, if there was any.
pub fn warn_lossy() {
    let (surrogates, big) = lossy_counts();
    if surrogates > 0 {
        eprintln!(
            "otel-run: warning: {surrogates} lone surrogate escape(s) in strings were read as U+FFFD"
        );
    }
    if big > 0 {
        eprintln!(
            "otel-run: warning: {big} integer attribute value(s) beyond 64 bits were read as doubles"
        );
    }
}

pub(crate) fn count_big_int() {
    BIG_INTS.fetch_add(1, Ordering::Relaxed);
}

/// The double a marker string stands for, while [`Markers`] is in force.
pub(crate) fn marker(s: &str) -> Option<f64> {
    if !s.starts_with('\0') || !MARKERS.get() {
        return None;
    }
    match s {
        "\0NaN" => Some(f64::NAN),
        "\0Infinity" => Some(f64::INFINITY),
        "\0-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Marker strings stand for non-finite doubles while this lives.
pub(crate) struct Markers;

impl Markers {
    pub(crate) fn on() -> Markers {
        MARKERS.set(true);
        Markers
    }
}

impl Drop for Markers {
    fn drop(&mut self) {
        MARKERS.set(false);
    }
}

/// Reads `line` as it is; if that fails and the line holds what Python's `json` writes but JSON
/// does not allow (bare `NaN`/`Infinity`, lone surrogates), reads it again rewritten, markers in
/// force. The first error stands when the rewrite does not help. `keeps`: values are kept, so
/// lossy readings are counted.
pub(crate) fn tolerant<T>(
    line: &str,
    keeps: bool,
    read: impl Fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    match read(line) {
        Ok(v) => Ok(v),
        Err(e) => match rewrite(line, keeps) {
            None => Err(e),
            Some(fixed) => {
                let _markers = Markers::on();
                read(&fixed).map_err(|_| e)
            }
        },
    }
}

/// `line` rewritten for a strict JSON reader, with the number of lone surrogates replaced; `None`
/// when there is nothing to rewrite (the line's error stands). `count` adds the surrogates to the
/// process's count (readings that keep values).
fn rewrite(line: &str, count: bool) -> Option<String> {
    let b = line.as_bytes();
    let has_bare =
        memchr::memmem::find(b, b"NaN").is_some() || memchr::memmem::find(b, b"Infinity").is_some();
    let has_escape = memchr::memmem::find(b, b"\\u").is_some();
    if !has_bare && !has_escape {
        return None;
    }
    // A marker must not be confused with a string the line holds.
    let markers_ok = memchr::memmem::find(b, b"\\u0000").is_none();
    let mut out = String::with_capacity(line.len() + 16);
    let mut changed = false;
    let mut surrogates = 0u64;
    let mut i = 0;
    let mut in_str = false;
    let mut start = 0; // of the stretch not yet copied
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'"' => in_str = false,
                b'\\' if b.get(i + 1) == Some(&b'u') => {
                    if let Some(u) = hex4(b, i + 2) {
                        if (0xD800..0xDC00).contains(&u) {
                            let pair = (b.get(i + 6) == Some(&b'\\')
                                && b.get(i + 7) == Some(&b'u'))
                            .then(|| hex4(b, i + 8))
                            .flatten()
                            .filter(|lo| (0xDC00..0xE000).contains(lo));
                            if pair.is_some() {
                                i += 12;
                                continue;
                            }
                        }
                        if (0xD800..0xE000).contains(&u) {
                            out.push_str(&line[start..i]);
                            out.push_str("\\ufffd");
                            surrogates += 1;
                            changed = true;
                            i += 6;
                            start = i;
                            continue;
                        }
                    }
                    i += 2;
                    continue;
                }
                b'\\' => {
                    i += 2;
                    continue;
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
            i += 1;
            continue;
        }
        let bare = [&b"NaN"[..], b"Infinity", b"-Infinity"]
            .into_iter()
            .find(|t| b[i..].starts_with(t));
        if let Some(token) = bare {
            if !markers_ok {
                return None;
            }
            out.push_str(&line[start..i]);
            out.push_str("\"\\u0000");
            out.push_str(std::str::from_utf8(token).expect("ASCII"));
            out.push('"');
            changed = true;
            i += token.len();
            start = i;
            continue;
        }
        i += 1;
    }
    if !changed {
        return None;
    }
    out.push_str(&line[start..]);
    if count {
        SURROGATES.fetch_add(surrogates, Ordering::Relaxed);
    }
    Some(out)
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_bare_numbers_outside_strings_and_lone_surrogates() {
        let line =
            r#"{"a":NaN,"b":[Infinity,-Infinity],"s":"NaN \ud83d\ude00 \udcff x\ud800","t":"\\u"}"#;
        let out = rewrite(line, false).unwrap();
        assert_eq!(
            out,
            r#"{"a":"\u0000NaN","b":["\u0000Infinity","\u0000-Infinity"],"s":"NaN \ud83d\ude00 \ufffd x\ufffd","t":"\\u"}"#
        );
        assert!(rewrite(r#"{"a":1,"s":"NaN"}"#, false).is_none());
        // A line holding NUL characters gets no markers (they could be mistaken for its strings).
        assert!(rewrite(r#"{"a":NaN,"s":"\u0000NaN"}"#, false).is_none());
        assert_eq!(marker("\0NaN"), None, "markers only while in force");
        let _on = Markers::on();
        assert!(marker("\0NaN").unwrap().is_nan());
        assert_eq!(marker("\0-Infinity"), Some(f64::NEG_INFINITY));
    }
}
