//! Spans rendered ahead of their place in a document. A `chrome` or merged `otlp` output has
//! state that only the writer knows (Chrome's row numbers and time origin, which spans share an
//! otlp line), but nearly all of each span's bytes do not depend on it. So rendering is split in
//! two: a *fragment* holds a span's bytes with that state left open, made anywhere (merge makes
//! them on its reading and decoder threads, where the span was parsed and is freed), and the
//! writer *places* fragments in order, filling the state in. The writers render through the same
//! two steps, so a fragment made early gives the same bytes as a span written directly
//! (ARCHITECTURE.md, merge).
//!
//! A fragment is a short binary layout of tagged, length-prefixed parts, little-endian. They live
//! in memory and in merge's own temporary files only; reading one checks every length, so a
//! corrupt one is an error, never a panic.

use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

/// What a fragment is made from: a `ResourceSpans`' parts, its resource possibly shared (python
/// lines share one per rank file) rather than its own.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    pub resource: Option<&'a Resource>,
    pub schema_url: &'a str,
    pub scope_spans: &'a [ScopeSpans],
}

impl<'a> Parts<'a> {
    pub fn of(rs: &'a ResourceSpans) -> Self {
        Parts {
            resource: rs.resource.as_ref(),
            schema_url: &rs.schema_url,
            scope_spans: &rs.scope_spans,
        }
    }
}

pub(crate) fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// Starts a length-prefixed part written in place; [`close`] sets its length.
pub(crate) fn open(out: &mut Vec<u8>) -> usize {
    put_u32(out, 0);
    out.len()
}

pub(crate) fn close(out: &mut [u8], at: usize) {
    let len = (out.len() - at) as u32;
    out[at - 4..at].copy_from_slice(&len.to_le_bytes());
}

/// Reads a fragment front to back.
pub(crate) struct Cursor<'a>(pub &'a [u8]);

impl<'a> Cursor<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "rendered span cut short: {n} bytes wanted, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|e| format!("rendered span: {e}"))
    }
}

/// For the placers' tests: `place` on every cut of `fragment` is an error that says so, or (cut
/// between whole parts) a shorter fragment; most cuts are errors.
#[cfg(test)]
pub(crate) fn every_cut_is_an_error(fragment: &[u8], place: impl Fn(&[u8]) -> Result<(), String>) {
    let mut errors = 0;
    for cut in 1..fragment.len() {
        if let Err(e) = place(&fragment[..cut]) {
            assert!(e.contains("rendered"), "{e}");
            errors += 1;
        }
    }
    assert!(
        errors > fragment.len() * 9 / 10,
        "{errors} of {}",
        fragment.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_read_back_and_short_input_is_an_error() {
        let mut out = Vec::new();
        put_u64(&mut out, 7);
        put_bytes(&mut out, b"abc");
        let at = open(&mut out);
        out.extend_from_slice(b"xy");
        close(&mut out, at);
        let mut c = Cursor(&out);
        assert_eq!(c.u64().unwrap(), 7);
        assert_eq!(c.str().unwrap(), "abc");
        assert_eq!(c.bytes().unwrap(), b"xy");
        assert!(c.is_empty());
        for cut in 0..out.len() {
            let mut c = Cursor(&out[..cut]);
            let all = (|| -> Result<(), String> {
                c.u64()?;
                c.bytes()?;
                c.bytes()?;
                Ok(())
            })();
            assert!(all.is_err(), "cut at {cut}");
        }
    }
}
