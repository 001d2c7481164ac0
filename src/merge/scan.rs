//! The fast read side of merge: raw lines, and for python lines only the few fields merge needs
//! (ids, parent, times, `mpi.rank`, otel-run's span role), borrowed from the line without building
//! the span. A python line is copied through unchanged when the output is python, so turning it
//! into a protobuf span (strings, attribute vectors, the resource) was most of merge's time.
//!
//! Exactness: [`scan`] accepts a line only when the full parser (`format::python::parse_line`)
//! would accept it too and read the same values: it checks the same JSON types, enums, ids and
//! times, in any key order, and returns `None` for anything it does not handle itself (escaped
//! ids or times, non-empty `events` or `links`, duplicate keys, any error), so the caller falls
//! back to the full parser, which reads the line or reports exactly what is wrong with it.

use super::repair::Role;
use crate::format::time::parse_iso;
use crate::input::Input;
use anyhow::Context;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

/// What merge needs of one python line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub start: u64,
    pub end: u64,
    pub role: Role,
    /// `mpi.rank` of the resource, as `attr::get_int` reads it.
    pub rank: Option<i64>,
}

/// The last resource text seen (per input file: a rank file has one resource) and its rank.
#[derive(Debug, Default)]
pub struct ResourceCache {
    text: Vec<u8>,
    rank: Option<i64>,
    valid: bool,
}

/// Reads the key fields of a python line; `None` when the full parser must decide.
pub fn scan(line: &[u8], cache: &mut ResourceCache) -> Option<Key> {
    let line = std::str::from_utf8(line).ok()?;
    let py: SpanIn = serde_json::from_str(line).ok()?;
    let trace_id = id::<16>(py.context.trace_id)?;
    let span_id = id::<8>(py.context.span_id)?;
    let parent = match py.parent_id {
        None => None,
        Some(p) => Some(id::<8>(p)?),
    };
    if let Some(kind) = py.kind {
        let bare = kind.strip_prefix("SpanKind.").unwrap_or(kind);
        if !matches!(
            bare,
            "INTERNAL" | "SERVER" | "CLIENT" | "PRODUCER" | "CONSUMER" | "UNSPECIFIED"
        ) {
            return None;
        }
    }
    if let Some(s) = py.status {
        let code = s.status_code;
        if !matches!(
            code.strip_prefix("StatusCode.").unwrap_or(code),
            "UNSET" | "OK" | "ERROR"
        ) {
            return None;
        }
    }
    if !empty_list(py.events) || !empty_list(py.links) {
        return None;
    }
    let start = parse_iso(py.start_time?).ok()?;
    let end = parse_iso(py.end_time?).ok()?;
    let role = match py.attributes.map(|a| a.found) {
        Some(Found::Str(s)) if s == crate::semconv::ROLE_PROCESS => Role::Process,
        Some(Found::Str(s)) if s == crate::semconv::ROLE_STEP => Role::Step,
        _ => Role::Other,
    };
    let rank = match py.resource {
        None => None,
        Some(raw) => {
            let text = raw.get().as_bytes();
            if !(cache.valid && cache.text == text) {
                let r: ResourceIn = serde_json::from_str(raw.get()).ok()?;
                cache.rank = match r.attributes.map(|a| a.found) {
                    Some(Found::Int(i)) => Some(i),
                    Some(Found::Str(s)) => s.parse().ok(),
                    _ => None,
                };
                cache.text.clear();
                cache.text.extend_from_slice(text);
                cache.valid = true;
            }
            cache.rank
        }
    };
    Some(Key {
        trace_id,
        span_id,
        parent,
        start,
        end,
        role,
        rank,
    })
}

/// Like `format::python`'s ids: optional `0x`, exactly 2N hex digits, not all zero.
fn id<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    crate::ids::decode_hex_any::<N>(digits).filter(|id| id.iter().any(|b| *b != 0))
}

fn empty_list(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|r| {
        r.get()
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .is_some_and(|s| s.trim_ascii().is_empty())
    })
}

// The shapes the full parser reads, with the same types, keeping only what merge needs. Fields
// merge needs are borrowed `&str`: an escaped one fails here and the full parser reads it.

#[derive(Deserialize)]
struct SpanIn<'a> {
    #[allow(dead_code)]
    name: AnyStr,
    #[serde(borrow)]
    context: ContextIn<'a>,
    #[serde(default, borrow)]
    kind: Option<&'a str>,
    #[serde(default, borrow)]
    parent_id: Option<&'a str>,
    #[serde(borrow)]
    start_time: Option<&'a str>,
    #[serde(borrow)]
    end_time: Option<&'a str>,
    #[serde(default, borrow)]
    status: Option<StatusIn<'a>>,
    #[serde(default)]
    attributes: Option<Attrs<RoleKey>>,
    #[serde(default, borrow)]
    events: Option<&'a RawValue>,
    #[serde(default, borrow)]
    links: Option<&'a RawValue>,
    #[serde(default, borrow)]
    resource: Option<&'a RawValue>,
    #[serde(default)]
    #[allow(dead_code)]
    instrumentation_scope: Option<ScopeIn>,
}

#[derive(Deserialize)]
struct ContextIn<'a> {
    #[serde(borrow)]
    trace_id: &'a str,
    #[serde(borrow)]
    span_id: &'a str,
    #[serde(default)]
    #[allow(dead_code)]
    trace_state: Option<AnyStr>,
}

#[derive(Deserialize)]
struct StatusIn<'a> {
    #[serde(borrow)]
    status_code: &'a str,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<AnyStr>,
}

#[derive(Deserialize)]
struct ResourceIn {
    #[serde(default)]
    attributes: Option<Attrs<RankKey>>,
    #[serde(default)]
    #[allow(dead_code)]
    schema_url: Option<AnyStr>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ScopeIn {
    #[serde(default)]
    name: Option<AnyStr>,
    #[serde(default)]
    version: Option<AnyStr>,
    #[serde(default)]
    schema_url: Option<AnyStr>,
    #[serde(default)]
    attributes: Option<Attrs<NoKey>>,
}

/// Any JSON string (escaped or not), not kept.
struct AnyStr;

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AnyStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyStr, E> {
                Ok(AnyStr)
            }
        }
        d.deserialize_str(V)
    }
}

/// An attribute value as `attr::get_int` / `attr::get_str` see it.
#[derive(Debug, Clone, Default, PartialEq)]
enum Found {
    #[default]
    Other,
    Int(i64),
    Str(String),
}

/// Which attribute an [`Attrs`] remembers.
trait Wanted {
    const KEY: Option<&'static str>;
}
struct RoleKey;
impl Wanted for RoleKey {
    const KEY: Option<&'static str> = Some(crate::semconv::SPAN_ROLE);
}
struct RankKey;
impl Wanted for RankKey {
    const KEY: Option<&'static str> = Some(crate::semconv::MPI_RANK);
}
struct NoKey;
impl Wanted for NoKey {
    const KEY: Option<&'static str> = None;
}

/// An object of attributes checked as the full parser reads them (any JSON value but integers
/// beyond i64), remembering the value of the last `W::KEY` (`attr::get` finds the last).
struct Attrs<W> {
    found: Found,
    _key: std::marker::PhantomData<W>,
}

impl<'de, W: Wanted> Deserialize<'de> for Attrs<W> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(AttrsVisitor::<W>(std::marker::PhantomData))
    }
}

struct AttrsVisitor<W>(std::marker::PhantomData<W>);

impl<'de, W: Wanted> Visitor<'de> for AttrsVisitor<W> {
    type Value = Attrs<W>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of attributes")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attrs<W>, A::Error> {
        let mut found = Found::Other;
        while let Some(KeyStr(key)) = map.next_key::<KeyStr>()? {
            let wanted = W::KEY.is_some_and(|k| k == key);
            let Value(v) = map.next_value::<Value>()?;
            if wanted {
                found = v;
            }
        }
        Ok(Attrs {
            found,
            _key: std::marker::PhantomData,
        })
    }
}

struct KeyStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for KeyStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<KeyStr<'de>, E> {
                Ok(KeyStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyStr<'de>, E> {
                Ok(KeyStr(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// One attribute value, checked like `format::python`'s `AnyIn`; only ints and strings kept.
struct Value(Found);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an attribute value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
                Ok(Value(Found::Other))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value(Found::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v)
                    .map(|i| Value(Found::Int(i)))
                    .map_err(|_| E::custom("integer does not fit"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
                Ok(Value(Found::Other))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                // Only the wanted key's value is looked at; short strings are cheap to keep.
                if v.len() <= 32 {
                    Ok(Value(Found::Str(v.to_string())))
                } else {
                    Ok(Value(Found::Other))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value(Found::Other))
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value(Found::Other))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                while seq.next_element::<Value>()?.is_some() {}
                Ok(Value(Found::Other))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
                Attrs::<NoKey>::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Value(Found::Other))
            }
        }
        d.deserialize_any(V)
    }
}

/// Lines of one input as they are (gzip detected by content, as `input::open` does), numbered
/// from 1, for the scanner; the full parser is the caller's fallback.
pub struct LineReader {
    name: String,
    input: Box<dyn BufRead>,
    line_no: u64,
    buf: Vec<u8>,
}

/// One line handed to [`LineReader::next_line`]'s callback.
pub struct Line<'a> {
    /// The input's name, for messages.
    pub name: &'a str,
    pub no: u64,
    /// Trimmed of surrounding whitespace; never empty.
    pub text: &'a [u8],
    /// Ended by a newline (a last line without one may be torn).
    pub complete: bool,
}

impl LineReader {
    pub fn open(input: &Input, capacity: usize) -> anyhow::Result<LineReader> {
        let raw: Box<dyn Read> = match input {
            Input::Stdin => Box::new(io::stdin().lock()),
            Input::File(p) => Box::new(
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
            ),
        };
        let mut buffered = BufReader::with_capacity(capacity, raw);
        let is_gzip = buffered
            .fill_buf()
            .map(|b| b.starts_with(&[0x1f, 0x8b]))
            .unwrap_or(false);
        let name = input.name();
        let input: Box<dyn BufRead> = if is_gzip {
            Box::new(BufReader::with_capacity(
                capacity,
                flate2::bufread::MultiGzDecoder::new(buffered),
            ))
        } else {
            Box::new(buffered)
        };
        Ok(LineReader {
            name,
            input,
            line_no: 0,
            buf: Vec::with_capacity(4096),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `f` with the next non-blank line (read in place when it is whole in the buffer);
    /// `Ok(None)` at the end of the input. `Err` is a read error, for line number `line_no() + 1`.
    pub fn next_line<T>(&mut self, f: impl FnOnce(Line) -> T) -> io::Result<Option<T>> {
        let mut f = Some(f);
        let mut call = |line: Line| (f.take().expect("called once"))(line);
        loop {
            let available = self.input.fill_buf()?;
            if let Some(end) = memchr::memchr(b'\n', available) {
                self.line_no += 1;
                let text = available[..end].trim_ascii();
                let out = (!text.is_empty()).then(|| {
                    call(Line {
                        name: &self.name,
                        no: self.line_no,
                        text,
                        complete: true,
                    })
                });
                self.input.consume(end + 1);
                match out {
                    None => continue,
                    Some(out) => return Ok(Some(out)),
                }
            }
            self.buf.clear();
            if self.input.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let complete = self.buf.last() == Some(&b'\n');
            let text = self.buf.trim_ascii();
            if text.is_empty() {
                continue;
            }
            return Ok(Some(call(Line {
                name: &self.name,
                no: self.line_no,
                text,
                complete,
            })));
        }
    }

    pub fn line_no(&self) -> u64 {
        self.line_no
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{attr, semconv};
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        span::Event, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
    };

    /// Scans `line` with a cold and a warm cache; when the scanner reads it, the full parser must
    /// read it too, with the same key. Returns whether the scanner read it.
    fn agrees(line: &[u8]) -> bool {
        let full = crate::format::python::parse_line(line);
        let mut cache = ResourceCache::default();
        let cold = scan(line, &mut cache);
        let warm = scan(line, &mut cache);
        assert_eq!(cold, warm, "{}", String::from_utf8_lossy(line));
        let Some(key) = cold else {
            return false;
        };
        let rs = full.unwrap_or_else(|e| {
            panic!(
                "scanned a line the parser rejects ({e}): {}",
                String::from_utf8_lossy(line)
            )
        });
        let span = &rs.scope_spans[0].spans[0];
        let resource = rs
            .resource
            .as_ref()
            .map(|r| &r.attributes[..])
            .unwrap_or(&[]);
        let want = Key {
            trace_id: span.trace_id[..].try_into().unwrap(),
            span_id: span.span_id[..].try_into().unwrap(),
            parent: (!span.parent_span_id.is_empty())
                .then(|| span.parent_span_id[..].try_into().unwrap()),
            start: span.start_time_unix_nano,
            end: span.end_time_unix_nano,
            role: super::super::repair::role(span),
            rank: attr::get_int(resource, semconv::MPI_RANK),
        };
        assert_eq!(key, want, "{}", String::from_utf8_lossy(line));
        true
    }

    fn span(role: Option<&str>, parent: bool, rank: i64) -> ResourceSpans {
        let mut attributes = vec![attr::int("i", 3), attr::string("solver", "cg")];
        if let Some(r) = role {
            attributes.push(attr::string(semconv::SPAN_ROLE, r));
        }
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    attr::string("service.name", "sim"),
                    attr::string("host.name", "node0"),
                    attr::int(semconv::MPI_RANK, rank),
                ],
                ..Default::default()
            }),
            schema_url: String::new(),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "otel-run".into(),
                    version: "0.1.0".into(),
                    ..Default::default()
                }),
                schema_url: String::new(),
                spans: vec![Span {
                    trace_id: vec![0xab; 16],
                    span_id: vec![0x01; 8],
                    parent_span_id: if parent { vec![0x02; 8] } else { vec![] },
                    name: "process \"sim\"".into(),
                    start_time_unix_nano: 1_700_000_000_123_456_789,
                    end_time_unix_nano: 1_700_000_001_000_000_001,
                    attributes,
                    status: Some(Status {
                        code: StatusCode::Error as i32,
                        message: "exit 3".into(),
                    }),
                    ..Default::default()
                }],
            }],
        }
    }

    fn render(rs: &ResourceSpans) -> Vec<u8> {
        let mut out = Vec::new();
        crate::format::render(
            &mut out,
            crate::format::LineFormat::Python,
            std::slice::from_ref(rs),
        );
        out.trim_ascii().to_vec()
    }

    /// The same line with its keys in another (sorted) order, at every level.
    fn reordered(line: &[u8]) -> Vec<u8> {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn otel_run_lines_are_scanned_as_the_parser_reads_them() {
        for role in [None, Some("process"), Some("step"), Some("exit")] {
            for parent in [false, true] {
                let line = render(&span(role, parent, 5));
                assert!(agrees(&line), "{}", String::from_utf8_lossy(&line));
                assert!(agrees(&reordered(&line)), "any key order");
            }
        }
        let key = scan(
            &render(&span(Some("step"), false, 7)),
            &mut Default::default(),
        )
        .unwrap();
        assert_eq!(
            (key.role, key.rank, key.parent),
            (Role::Step, Some(7), None)
        );
    }

    #[test]
    fn one_cache_serves_lines_of_different_resources() {
        let mut cache = ResourceCache::default();
        for rank in [1, 2, 2, 1] {
            let key = scan(&render(&span(None, true, rank)), &mut cache).unwrap();
            assert_eq!(key.rank, Some(rank));
        }
    }

    /// Lines the scanner leaves to the full parser: what it does not read itself, and every error
    /// (the parser then reports it as it always did).
    #[test]
    fn anything_unusual_falls_back_to_the_full_parser() {
        let line = String::from_utf8(render(&span(Some("process"), true, 5))).unwrap();
        let with_event = {
            let mut rs = span(None, true, 5);
            rs.scope_spans[0].spans[0].events.push(Event {
                time_unix_nano: 1_700_000_000_500_000_000,
                name: "mark".into(),
                ..Default::default()
            });
            String::from_utf8(render(&rs)).unwrap()
        };
        let trace = format!("0x{}", "ab".repeat(16));
        let cases = [
            with_event,
            // an escape inside an id
            line.replacen(&trace, &format!("\\u0030x{}", "ab".repeat(16)), 1),
            // a duplicate key (serde's derive rejects it)
            line.replacen("\"kind\":", "\"kind\": \"SpanKind.SERVER\", \"kind\":", 1),
            line.replacen("SpanKind.INTERNAL", "SpanKind.ODD", 1),
            line.replacen("\"i\":3", "\"i\":18446744073709551615", 1),
            line.replacen("2023-11-14T22:13:20", "2023-13-14T22:13:20", 1),
            line.replacen(&trace, &format!("0x{}", "0".repeat(32)), 1),
            line.replacen("\"status_code\":\"ERROR\"", "\"status_code\":\"BAD\"", 1),
            line.replacen(
                "\"attributes\":{\"service.name\"",
                "\"attributes\":[{\"service.name\"",
                1,
            ),
            line.replacen("\"name\":\"process", "\"name\":3,\"x\":\"process", 1),
            line[..line.len() - 1].to_string(),
        ];
        for case in &cases {
            assert_ne!(case, &line, "the case must change the line");
            assert!(!agrees(case.as_bytes()), "scanned: {case}");
        }
        let mut invalid = line.clone().into_bytes();
        let at = invalid.len() - 20;
        invalid[at] = 0xff;
        assert!(!agrees(&invalid));
    }

    #[test]
    fn attribute_lookups_match_attr_get() {
        let line = String::from_utf8(render(&span(Some("step"), true, 5))).unwrap();
        // attr::get finds the last copy of a key; a string rank is parsed; null means none.
        for (from, to, rank) in [
            ("\"mpi.rank\":5", "\"mpi.rank\":5,\"mpi.rank\":9", Some(9)),
            ("\"mpi.rank\":5", "\"mpi.rank\":\"12\"", Some(12)),
            ("\"mpi.rank\":5", "\"mpi.rank\":null", None),
            ("\"mpi.rank\":5", "\"mpi.rank\":5.0", None),
        ] {
            let case = line.replacen(from, to, 1);
            assert_ne!(case, line);
            assert!(agrees(case.as_bytes()), "{case}");
            let key = scan(case.as_bytes(), &mut Default::default()).unwrap();
            assert_eq!(key.rank, rank, "{case}");
        }
        let case = line.replacen(
            "\"otel_run.span\":\"step\"",
            "\"otel_run.span\":\"step\",\"otel_run.span\":1",
            1,
        );
        assert_ne!(case, line);
        assert!(agrees(case.as_bytes()));
    }

    /// The real Python SDK's lines (tests/support/py_reference.py): each one is read exactly as
    /// the full parser reads it, or left to it.
    #[test]
    fn python_sdk_lines_agree_with_the_full_parser() {
        let python = match std::env::var("OTEL_RUN_TEST_PYTHON") {
            Ok(p) if !p.is_empty() => p,
            _ => panic!(
                "OTEL_RUN_TEST_PYTHON is not set: this test needs the Python SDK. Run the suite \
                 with scripts/test.sh, which sets it."
            ),
        };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ref.jsonl");
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/py_reference.py");
        let status = std::process::Command::new(python)
            .arg(script)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let text = std::fs::read(&out).unwrap();
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .map(|l| l.trim_ascii())
            .filter(|l| !l.is_empty())
            .collect();
        assert!(lines.len() >= 5);
        let scanned = lines.iter().filter(|l| agrees(l)).count();
        let reordered = lines.iter().filter(|l| agrees(&reordered(l))).count();
        assert!(scanned > 0, "no SDK line took the fast path");
        assert_eq!(scanned, reordered);
    }
}
