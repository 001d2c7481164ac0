//! The fast path of reading a python line. Nearly every line is plain: the keys Python and
//! otel-run write, each once, strings without escapes, numbers without exponents, a resource
//! seen on an earlier line. Such a line is scanned here straight into the same borrowed shape
//! serde fills ([`SpanIn`]), so everything after that — id, time, kind and status checks, what a
//! [`super::Detail`] keeps — is the one code path in `read.rs`. Anything else (an escape, an
//! unknown or repeated key, `NaN`, an exponent, a huge integer, any syntax error) makes the
//! scanner give up and serde read the line: whatever the line, the result and the error message
//! are serde's. `tests.rs` checks that the two readings agree on every line it has.

use super::read::{ContextIn, EventIn, Keep, LinkIn, ResourceIn, ScopeIn, SpanIn, StatusIn, Text};
use super::resource;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, ArrayValue, KeyValue, KeyValueList,
};
use std::borrow::Cow;

/// The line as serde would read it, or `None`: serde must read it.
pub(super) fn span<A: Keep>(line: &str) -> Option<SpanIn<'_, A>> {
    let mut s = Scan {
        s: line,
        b: line.as_bytes(),
        i: 0,
        depth: 0,
    };
    let span = s.span()?;
    s.ws();
    (s.i == s.b.len()).then_some(span)
}

/// Nesting the scanner reads; deeper values go to serde (whose limit is 128).
const MAX_DEPTH: u32 = 100;

/// A cursor over a line that is valid UTF-8.
pub(crate) struct Scan<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: u32,
}

/// The high bit of each byte of `w` (little-endian) that is a quote, a backslash or a control
/// character, and possibly of bytes after the first such byte (borrows): the lowest one is exact.
fn special_bytes(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (LO * b'"' as u64);
    let backslash = w ^ (LO * b'\\' as u64);
    (quote.wrapping_sub(LO) & !quote
        | backslash.wrapping_sub(LO) & !backslash
        | w.wrapping_sub(LO * 0x20) & !w)
        & HI
}

fn plain(c: u8) -> bool {
    c >= 0x20 && c != b'"' && c != b'\\'
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `null`, consumed if it is next.
    fn null(&mut self) -> bool {
        self.ws();
        let hit = self.b[self.i..].starts_with(b"null");
        if hit {
            self.i += 4;
        }
        hit
    }

    /// A string without escapes or control characters, borrowed from the line.
    fn str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        // Eight bytes at a time, then byte by byte: most strings are a few dozen bytes long, too
        // short for memchr to pay off.
        let mut i = start;
        while let Some(word) = self.b.get(i..i + 8) {
            let special = special_bytes(u64::from_le_bytes(word.try_into().expect("8 bytes")));
            if special != 0 {
                i += special.trailing_zeros() as usize / 8;
                break;
            }
            i += 8;
        }
        while i < self.b.len() && plain(self.b[i]) {
            i += 1;
        }
        if self.b.get(i) != Some(&b'"') {
            return None;
        }
        self.i = i + 1;
        // Both ends are next to an ASCII quote: character boundaries.
        Some(&self.s[start..i])
    }

    fn text(&mut self) -> Option<Text<'a>> {
        self.str().map(|s| Text(Cow::Borrowed(s)))
    }

    /// A string or null, as serde reads an `Option<Text>`.
    fn opt_text(&mut self) -> Option<Option<Text<'a>>> {
        self.or_null(Scan::text)
    }

    /// Null, or what `f` reads: as serde reads an `Option`.
    fn or_null<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.null() {
            true => Some(None),
            false => f(self).map(Some),
        }
    }

    /// An array of what `f` reads.
    fn list<T>(&mut self, mut f: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut out = Vec::new();
        self.array(|s| {
            out.push(f(s)?);
            Some(())
        })?;
        Some(out)
    }

    /// An object: `f` reads the value of each key.
    fn object(&mut self, mut f: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.items(b'{', b'}', |s| {
            let key = s.str()?;
            s.eat(b':')?;
            f(s, key)
        })
    }

    /// An array: `f` reads each element.
    fn array(&mut self, f: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.items(b'[', b']', f)
    }

    /// `open`, items separated by commas (`f` reads each), `close`; nesting bounded.
    fn items(
        &mut self,
        open: u8,
        close: u8,
        mut f: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(open)?;
        self.enter()?;
        if self.peek()? != close {
            loop {
                f(self)?;
                match self.peek()? {
                    b',' => self.i += 1,
                    c if c == close => break,
                    _ => return None,
                }
            }
        }
        self.i += 1;
        self.depth -= 1;
        Some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// An object of attributes, or null, as serde reads an `Option<A>`.
    fn attributes<A: Keep>(&mut self) -> Option<Option<A>> {
        self.or_null(A::scan)
    }

    /// An object of attributes, every one kept, in file order ([`super::read::AllAttributes`]).
    pub(super) fn attribute_map(&mut self) -> Option<Vec<KeyValue>> {
        let mut out = Vec::with_capacity(8);
        self.object(|s, key| {
            let value = s.any()?;
            out.push(KeyValue {
                key: key.to_string(),
                value: Some(value),
                ..Default::default()
            });
            Some(())
        })?;
        Some(out)
    }

    /// An object of attributes, only the last of each of `keys` kept (with the value `keep`
    /// makes of it), the others checked ([`super::read::RoleOnly`]).
    pub(super) fn some_attributes<const N: usize>(
        &mut self,
        keys: [&str; N],
        keep: [fn(AnyValue) -> Option<AnyValue>; N],
    ) -> Option<[Option<KeyValue>; N]> {
        let mut found = [const { None }; N];
        self.object(|s, key| {
            match keys.iter().position(|k| *k == key) {
                Some(n) => {
                    let value = s.any()?;
                    found[n] = Some(KeyValue {
                        key: key.to_string(),
                        value: keep[n](value),
                        ..Default::default()
                    });
                }
                None => s.skip()?,
            }
            Some(())
        })?;
        Some(found)
    }

    /// One attribute value as serde's `AnyIn` reads it.
    fn any(&mut self) -> Option<AnyValue> {
        let value = match self.peek()? {
            b'"' => Value::StringValue(self.str()?.to_string()),
            b't' if self.b[self.i..].starts_with(b"true") => {
                self.i += 4;
                Value::BoolValue(true)
            }
            b'f' if self.b[self.i..].starts_with(b"false") => {
                self.i += 5;
                Value::BoolValue(false)
            }
            b'n' if self.null() => return Some(AnyValue { value: None }),
            b'[' => Value::ArrayValue(ArrayValue {
                values: self.list(Scan::any)?,
            }),
            b'{' => Value::KvlistValue(KeyValueList {
                values: self.attribute_map()?,
            }),
            b'-' | b'0'..=b'9' => self.number(true)?,
            _ => return None,
        };
        Some(AnyValue { value: Some(value) })
    }

    /// Any value, checked as serde's `Checked` checks it, not kept.
    fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.str().map(drop),
            b't' if self.b[self.i..].starts_with(b"true") => {
                self.i += 4;
                Some(())
            }
            b'f' if self.b[self.i..].starts_with(b"false") => {
                self.i += 5;
                Some(())
            }
            b'n' if self.null() => Some(()),
            b'[' => self.array(Scan::skip),
            b'{' => self.object(|s, _| s.skip()),
            b'-' | b'0'..=b'9' => self.number(false).map(drop),
            _ => None,
        }
    }

    /// A JSON number as serde_json reads it into an attribute: integers that fit i64 (but not
    /// `-0`, a double for serde_json); fractions (read by serde_json's own parser when `keep`,
    /// else only checked: with at most 18 integer digits and no exponent the value is finite);
    /// exponents through serde_json, which refuses what overflows. Longer integers go to serde.
    fn number(&mut self, keep: bool) -> Option<Value> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let neg = b[i] == b'-';
        if neg {
            i += 1;
        }
        let digits = |mut i: usize| {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let int_start = i;
        i = digits(i);
        let int_end = i;
        let int_digits = int_end - int_start;
        if int_digits == 0 || int_digits > 18 || (b[int_start] == b'0' && int_digits > 1) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = b.get(i) {
            if b[i] == b'.' {
                let frac = i + 1;
                i = digits(frac);
                if i == frac {
                    return None;
                }
            }
            let exponent = matches!(b.get(i), Some(b'e' | b'E'));
            if exponent {
                i += 1;
                if let Some(b'+' | b'-') = b.get(i) {
                    i += 1;
                }
                let exp = i;
                i = digits(exp);
                if i == exp {
                    return None;
                }
            }
            let v = match keep || exponent {
                true => serde_json::from_str::<f64>(&self.s[start..i]).ok()?,
                false => 0.0,
            };
            self.i = i;
            return Some(Value::DoubleValue(v));
        }
        // At most 18 digits: no overflow.
        let n = b[int_start..int_end]
            .iter()
            .fold(0i64, |n, &c| n * 10 + i64::from(c - b'0'));
        let v = match neg {
            true if n == 0 => return None,
            true => -n,
            false => n,
        };
        self.i = i;
        Some(Value::IntValue(v))
    }

    /// `{trace_id, span_id, trace_state?}`.
    fn context(&mut self) -> Option<ContextIn<'a>> {
        let (mut trace_id, mut span_id, mut trace_state) = (None, None, None);
        self.object(|s, key| {
            match key {
                "trace_id" if trace_id.is_none() => trace_id = Some(s.text()?),
                "span_id" if span_id.is_none() => span_id = Some(s.text()?),
                "trace_state" if trace_state.is_none() => trace_state = Some(s.opt_text()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(ContextIn {
            trace_id: trace_id?,
            span_id: span_id?,
            trace_state: trace_state.flatten(),
        })
    }

    fn status(&mut self) -> Option<Option<StatusIn<'a>>> {
        self.or_null(|s| {
            let (mut code, mut description) = (None, None);
            s.object(|s, key| {
                match key {
                    "status_code" if code.is_none() => code = Some(s.text()?),
                    "description" if description.is_none() => description = Some(s.opt_text()?),
                    _ => return None,
                }
                Some(())
            })?;
            Some(StatusIn {
                status_code: code?,
                description: description.flatten(),
            })
        })
    }

    fn events<A: Keep>(&mut self) -> Option<Option<Vec<EventIn<'a, A>>>> {
        self.or_null(|s| s.list(Scan::event))
    }

    fn event<A: Keep>(&mut self) -> Option<EventIn<'a, A>> {
        let (mut name, mut timestamp, mut attributes) = (None, None, None);
        self.object(|s, key| {
            match key {
                "name" if name.is_none() => name = Some(s.text()?),
                "timestamp" if timestamp.is_none() => timestamp = Some(s.text()?),
                "attributes" if attributes.is_none() => attributes = Some(s.attributes()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(EventIn {
            name: name?,
            timestamp: timestamp?,
            attributes: attributes.flatten(),
        })
    }

    fn links<A: Keep>(&mut self) -> Option<Option<Vec<LinkIn<'a, A>>>> {
        self.or_null(|s| s.list(Scan::link))
    }

    fn link<A: Keep>(&mut self) -> Option<LinkIn<'a, A>> {
        let (mut context, mut attributes) = (None, None);
        self.object(|s, key| {
            match key {
                "context" if context.is_none() => context = Some(s.context()?),
                "attributes" if attributes.is_none() => attributes = Some(s.attributes()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(LinkIn {
            context: context?,
            attributes: attributes.flatten(),
        })
    }

    fn scope<A: Keep>(&mut self) -> Option<Option<ScopeIn<'a, A>>> {
        self.or_null(|s| {
            let (mut name, mut version, mut schema_url, mut attributes) = (None, None, None, None);
            s.object(|s, key| {
                match key {
                    "name" if name.is_none() => name = Some(s.opt_text()?),
                    "version" if version.is_none() => version = Some(s.opt_text()?),
                    "schema_url" if schema_url.is_none() => schema_url = Some(s.opt_text()?),
                    "attributes" if attributes.is_none() => attributes = Some(s.attributes()?),
                    _ => return None,
                }
                Some(())
            })?;
            Some(ScopeIn {
                name: name.flatten(),
                version: version.flatten(),
                schema_url: schema_url.flatten(),
                attributes: attributes.flatten(),
            })
        })
    }

    /// The resource, already parsed: one seen on an earlier line is recognised by its text
    /// without reading it again; a new one is read (and remembered) by `resource::shared`.
    fn resource(&mut self) -> Option<Option<ResourceIn<'a>>> {
        self.or_null(|s| {
            if s.peek()? != b'{' {
                return None;
            }
            if let Some((len, found)) = resource::known_prefix(&s.s[s.i..]) {
                s.i += len;
                return Some(ResourceIn::Found(found));
            }
            let start = s.i;
            s.skip()?;
            let found = resource::shared(&s.s[start..s.i]).ok()?;
            Some(ResourceIn::Found(found))
        })
    }

    fn span<A: Keep>(&mut self) -> Option<SpanIn<'a, A>> {
        let mut name = None;
        let mut context = None;
        let mut kind = None;
        let mut parent_id = None;
        let mut start_time = None;
        let mut end_time = None;
        let mut status = None;
        let mut attributes = None;
        let mut events = None;
        let mut links = None;
        let mut resource = None;
        let mut scope = None;
        self.object(|s, key| {
            match key {
                "name" if name.is_none() => name = Some(s.text()?),
                "context" if context.is_none() => context = Some(s.context()?),
                "kind" if kind.is_none() => kind = Some(s.opt_text()?),
                "parent_id" if parent_id.is_none() => parent_id = Some(s.opt_text()?),
                "start_time" if start_time.is_none() => start_time = Some(s.opt_text()?),
                "end_time" if end_time.is_none() => end_time = Some(s.opt_text()?),
                "status" if status.is_none() => status = Some(s.status()?),
                "attributes" if attributes.is_none() => attributes = Some(s.attributes()?),
                "events" if events.is_none() => events = Some(s.events()?),
                "links" if links.is_none() => links = Some(s.links()?),
                "resource" if resource.is_none() => resource = Some(s.resource()?),
                "instrumentation_scope" if scope.is_none() => scope = Some(s.scope()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(SpanIn {
            name: name?,
            context: context?,
            kind: kind.flatten(),
            parent_id: parent_id.flatten(),
            start_time: start_time.flatten(),
            end_time: end_time.flatten(),
            status: status.flatten(),
            attributes: attributes.flatten(),
            events: events.flatten(),
            links: links.flatten(),
            resource: resource.flatten(),
            instrumentation_scope: scope.flatten(),
        })
    }
}
