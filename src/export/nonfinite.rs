//! serde_json writes NaN and ±Infinity as `null`, which loses the value. The writers that must
//! keep them queue the values here just before serde writes them, and [`Keeping`] (a serde_json
//! formatter) writes the queued value where serde_json would have written that `null`:
//! - python lines (`Bare`): `NaN`, `Infinity`, `-Infinity`, exactly what Python's `json` writes;
//! - otlp lines (`Proto3`): `"NaN"`, `"Infinity"`, `"-Infinity"`, proto3 JSON's strings, in
//!   `doubleValue` only (the only place a trace holds a double), queued in the order the
//!   generated serializer visits them ([`queue_resource_spans`]).

use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde_json::ser::{CompactFormatter, Formatter};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;

thread_local! {
    static QUEUE: RefCell<VecDeque<f64>> = const { RefCell::new(VecDeque::new()) };
}

/// Queues `v` to be written at the next `null` (python) or next `doubleValue` `null` (otlp).
pub(crate) fn queue(v: f64) {
    QUEUE.with_borrow_mut(|q| q.push_back(v));
}

pub(crate) fn clear() {
    QUEUE.with_borrow_mut(|q| q.clear());
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spelling {
    Bare,
    Proto3,
}

/// Whether any double in `batch` is non-finite; queues them in the order serde writes them.
pub(crate) fn queue_resource_spans(batch: &[ResourceSpans]) -> bool {
    fn attrs(a: &[KeyValue]) -> bool {
        let mut any = false;
        for kv in a {
            any |= value(kv.value.as_ref());
        }
        any
    }
    fn value(v: Option<&AnyValue>) -> bool {
        match v.and_then(|v| v.value.as_ref()) {
            Some(Value::DoubleValue(d)) if !d.is_finite() => {
                queue(*d);
                true
            }
            Some(Value::ArrayValue(a)) => {
                let mut any = false;
                for v in &a.values {
                    any |= value(Some(v));
                }
                any
            }
            Some(Value::KvlistValue(l)) => attrs(&l.values),
            _ => false,
        }
    }
    let mut any = false;
    for rs in batch {
        if let Some(r) = &rs.resource {
            any |= attrs(&r.attributes);
        }
        for ss in &rs.scope_spans {
            if let Some(s) = &ss.scope {
                any |= attrs(&s.attributes);
            }
            for span in &ss.spans {
                any |= attrs(&span.attributes);
                for e in &span.events {
                    any |= attrs(&e.attributes);
                }
                for l in &span.links {
                    any |= attrs(&l.attributes);
                }
            }
        }
    }
    any
}

/// serde_json's compact output, with queued non-finite doubles where it would write `null`.
pub(crate) struct Keeping {
    spelling: Spelling,
    in_key: bool,
    key: Vec<u8>,
}

impl Keeping {
    pub(crate) fn new(spelling: Spelling) -> Keeping {
        Keeping {
            spelling,
            in_key: false,
            key: Vec::new(),
        }
    }
}

fn spell(v: f64, spelling: Spelling) -> &'static str {
    match (v.is_nan(), v > 0.0, spelling) {
        (true, _, Spelling::Bare) => "NaN",
        (false, true, Spelling::Bare) => "Infinity",
        (false, false, Spelling::Bare) => "-Infinity",
        (true, _, Spelling::Proto3) => "\"NaN\"",
        (false, true, Spelling::Proto3) => "\"Infinity\"",
        (false, false, Spelling::Proto3) => "\"-Infinity\"",
    }
}

impl Formatter for Keeping {
    fn write_null<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        let here = match self.spelling {
            Spelling::Bare => true,
            Spelling::Proto3 => self.key == b"doubleValue",
        };
        match here
            .then(|| QUEUE.with_borrow_mut(|q| q.pop_front()))
            .flatten()
        {
            Some(v) => w.write_all(spell(v, self.spelling).as_bytes()),
            None => w.write_all(b"null"),
        }
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if self.spelling == Spelling::Proto3 {
            self.in_key = true;
            self.key.clear();
        }
        CompactFormatter.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.in_key = false;
        CompactFormatter.end_object_key(w)
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if self.in_key {
            self.key.extend_from_slice(fragment.as_bytes());
        }
        w.write_all(fragment.as_bytes())
    }
}
