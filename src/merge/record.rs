//! One span as merge moves it around: a sort key in front of the span itself, kept as the
//! protobuf encoding of a `ResourceSpans` holding exactly that span. Encoded bytes make memory
//! accounting exact, spill to temporary files as they are, and give a content order that breaks
//! ties the same way whatever order the inputs came in (so merging is order-independent).

use super::slab::{Filler, Placed, Slab};
use crate::export::Format;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;
use std::cmp::Ordering;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Trace id (16 bytes) followed by span id (8 bytes).
pub type Ids = [u8; 24];

pub fn ids(trace_id: &[u8], span_id: &[u8]) -> Ids {
    let mut out = [0u8; 24];
    // Readers check id lengths; copy defensively so a short id cannot panic here.
    let t = trace_id.len().min(16);
    out[..t].copy_from_slice(&trace_id[..t]);
    let s = span_id.len().min(8);
    out[16..16 + s].copy_from_slice(&span_id[..s]);
    out
}

/// First byte of `Record::data` for spans: what follows.
const PROTO: u8 = b'P';
/// A python-format line as read, written out unchanged when the output is python too (parsing
/// and rendering again would cost twice the reading, for the same line).
const PYTHON_LINE: u8 = b'J';
/// A span rendered for the output format ahead of its place (`export::fragment`): made where the
/// line was parsed, so it is not parsed twice. Below the other tags: of two copies of one span
/// (same time, ids and content hash) the same one is kept as when this tag was `J`.
const FRAGMENT: u8 = b'F';

/// Longest record data read back from a temporary file (see [`Record::read_from`]).
const MAX_RECORD_DATA: usize = 1 << 30;

/// A record's bytes (its tag first): an allocation of its own, or a range of a slab a reading
/// thread copied it into, shared with the other records copied there (see [`super::slab`]).
#[derive(Debug, Clone)]
pub enum Data {
    Own(Vec<u8>),
    Shared {
        slab: Arc<Slab>,
        start: u32,
        len: u32,
    },
}

impl Default for Data {
    fn default() -> Self {
        Data::Own(Vec::new())
    }
}

impl From<Vec<u8>> for Data {
    fn from(v: Vec<u8>) -> Self {
        Data::Own(v)
    }
}

impl std::ops::Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Own(v) => v,
            Data::Shared { slab, start, len } => slab.bytes(*start, *len),
        }
    }
}

impl Data {
    /// The same bytes in an allocation of their own: kept long or alone, a record must not hold
    /// a slab.
    pub fn own(self) -> Data {
        match self {
            Data::Own(v) => Data::Own(v),
            shared => Data::Own(shared.to_vec()),
        }
    }

    /// The slab these bytes are in, if shared.
    pub fn slab(&self) -> Option<&Slab> {
        match self {
            Data::Own(_) => None,
            Data::Shared { slab, .. } => Some(slab),
        }
    }

    /// Heap bytes this data holds by itself (a slab is counted as a whole, elsewhere).
    fn own_capacity(&self) -> usize {
        match self {
            Data::Own(v) => v.capacity(),
            Data::Shared { .. } => 0,
        }
    }
}

/// A python line's record data ([`encode_line`]), in the reading thread's slab if it goes there.
pub fn place_line(filler: &mut Filler, line: &[u8]) -> Placed {
    filler
        .put(PYTHON_LINE, line)
        .unwrap_or_else(|| Placed::Own(encode_line(line)))
}

/// A rendered span's record data ([`fragment_data`]), in the reading thread's slab if it goes
/// there.
pub fn place_fragment(filler: &mut Filler, fragment: &[u8]) -> Placed {
    filler.put(FRAGMENT, fragment).unwrap_or_else(|| {
        let mut data = Vec::with_capacity(1 + fragment.len());
        fragment_data(fragment, &mut data);
        Placed::Own(data)
    })
}

#[derive(Debug, Clone)]
pub struct Record {
    /// Start or end time (ns) for the time orders; 0 where only the ids matter.
    pub time: u64,
    pub ids: Ids,
    /// For spans: a hash of the span's python line, as read or as otel-run renders it for a span
    /// read from otlp ([`line_hash`]). Ordering by it before `data` makes the copy kept of
    /// conflicting duplicates the same whichever format each copy came in (so merging is
    /// idempotent); 0 for facts.
    pub hash: u64,
    /// For spans: a tag byte, then a protobuf `ResourceSpans` holding the span alone or the
    /// python line it was read from, or the span rendered for the output.
    pub data: Data,
    /// Index of the input file it came from: for messages only, not part of the order.
    pub file: u32,
}

impl Record {
    /// Bytes this record holds in memory, for the sort buffer's budget.
    pub fn footprint(&self) -> usize {
        self.data.own_capacity() + std::mem::size_of::<Record>()
    }

    pub fn same_key(&self, other: &Record) -> bool {
        self.time == other.time && self.ids == other.ids
    }

    pub fn decode(&self) -> io::Result<ResourceSpans> {
        let corrupt = |e: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt temporary record: {e}"),
            )
        };
        match self.data.split_first() {
            Some((&PROTO, proto)) => {
                ResourceSpans::decode(proto).map_err(|e| corrupt(e.to_string()))
            }
            Some((&PYTHON_LINE, line)) => crate::format::python::parse_line(line).map_err(corrupt),
            Some((&FRAGMENT, _)) => Err(corrupt("a rendered span cannot be read back".into())),
            _ => Err(corrupt("unknown tag".into())),
        }
    }

    /// The python line this span was read from, if it was.
    pub fn python_line(&self) -> Option<&[u8]> {
        python_text(&self.data)
    }

    /// The span rendered for the output, if it was.
    pub fn fragment(&self) -> Option<&[u8]> {
        match self.data.split_first() {
            Some((&FRAGMENT, fragment)) => Some(fragment),
            _ => None,
        }
    }

    /// `time ids hash file len data`, little-endian: the spill file layout.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        self.write_with_data(&self.data, out)
    }

    /// Writes this record with other data (its span rendered for the output) in its place.
    pub fn write_with_data(&self, data: &[u8], out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.time.to_le_bytes())?;
        out.write_all(&self.ids)?;
        out.write_all(&self.hash.to_le_bytes())?;
        out.write_all(&self.file.to_le_bytes())?;
        out.write_all(&(data.len() as u32).to_le_bytes())?;
        out.write_all(data)
    }

    /// Reads one record written by [`Record::write_to`]; `None` at a clean end of file.
    pub fn read_from(input: &mut impl Read) -> io::Result<Option<Record>> {
        let mut head = [0u8; 8 + 24 + 8 + 4 + 4];
        if !super::extsort::read_head(input, &mut head)? {
            return Ok(None);
        }
        let time = u64::from_le_bytes(head[0..8].try_into().expect("8 bytes"));
        let ids: Ids = head[8..32].try_into().expect("24 bytes");
        let hash = u64::from_le_bytes(head[32..40].try_into().expect("8 bytes"));
        let file = u32::from_le_bytes(head[40..44].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(head[44..48].try_into().expect("4 bytes")) as usize;
        // A record is one span from one line (at most 128 MiB, rendered at most a few times
        // larger): anything longer is a corrupt temporary file, not a reason to allocate it.
        if len > MAX_RECORD_DATA {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt temporary record: {len} bytes of data"),
            ));
        }
        // Read into spare capacity: zeroing a buffer that is overwritten at once cost a memset
        // per record.
        let mut data = Vec::with_capacity(len);
        let got = input.take(len as u64).read_to_end(&mut data)?;
        if got < len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Some(Record {
            time,
            ids,
            hash,
            data: Data::Own(data),
            file,
        }))
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Record {}

impl PartialOrd for Record {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Record {
    fn cmp(&self, other: &Self) -> Ordering {
        self.time
            .cmp(&other.time)
            .then_with(|| self.ids.cmp(&other.ids))
            .then_with(|| self.hash.cmp(&other.hash))
            .then_with(|| (*self.data).cmp(&*other.data))
    }
}

/// Calls `each` with every span of a line, wrapped alone in its resource and scope.
pub fn explode(mut data: TracesData, mut each: impl FnMut(ResourceSpans)) {
    // A python line is one span already: no copies needed.
    if let [rs] = &data.resource_spans[..] {
        if let [ss] = &rs.scope_spans[..] {
            if ss.spans.len() == 1 {
                return each(data.resource_spans.remove(0));
            }
        }
    }
    for rs in data.resource_spans {
        for ss in rs.scope_spans {
            for span in ss.spans {
                each(ResourceSpans {
                    resource: rs.resource.clone(),
                    schema_url: rs.schema_url.clone(),
                    scope_spans: vec![ScopeSpans {
                        scope: ss.scope.clone(),
                        schema_url: ss.schema_url.clone(),
                        spans: vec![span],
                    }],
                });
            }
        }
    }
}

/// The one span of a `ResourceSpans` built by [`explode`].
pub fn the_span(rs: &ResourceSpans) -> Option<&Span> {
    rs.scope_spans.first()?.spans.first()
}

/// The record data of a python line, copied through as read.
pub fn encode_line(line: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(1 + line.len());
    data.push(PYTHON_LINE);
    data.extend_from_slice(line);
    data
}

/// Record data for a span rendered ahead: `fragment` (`export::fragment`) behind its tag.
pub fn fragment_data(fragment: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.push(FRAGMENT);
    out.extend_from_slice(fragment);
}

/// The python line in record data made by [`encode_line`].
pub fn python_text(data: &[u8]) -> Option<&[u8]> {
    match data.split_first() {
        Some((&PYTHON_LINE, line)) => Some(line),
        _ => None,
    }
}

/// A span's record data: its python line when it has one, else its protobuf encoding.
pub fn encode(rs: &ResourceSpans, python_line: Option<&[u8]>) -> Vec<u8> {
    match python_line {
        Some(line) => encode_line(line),
        None => {
            let mut data = Vec::with_capacity(1 + rs.encoded_len());
            data.push(PROTO);
            rs.encode(&mut data).expect("a Vec grows as needed");
            data
        }
    }
}

/// The content hash of a python line as read (see [`Record::hash`]).
///
/// Two copies of a span are the same content when their python lines are byte-identical: a
/// python line read is hashed as it is (trimmed), a span read from an otlp line as the python
/// line otel-run writes for it ([`content_hash`]). So copies merge itself wrote (or otel-run
/// wrote, in either format) are duplicates, while two python lines that differ in any byte
/// (key order, spacing, number formatting) but carry the same ids are counted as a conflict.
///
/// XXH3: fast, and a published algorithm whose values do not change between versions, so which
/// of two conflicting copies is kept is the same in every run. Not for adversarial input, where a
/// collision would only make two conflicting copies count as duplicates.
pub fn line_hash(line: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(line)
}

/// The content hash of a span without a python line: that of the python line otel-run renders
/// for it (see [`line_hash`]); `scratch` is reused for the rendering.
pub fn content_hash(rs: &ResourceSpans, scratch: &mut Vec<u8>) -> u64 {
    scratch.clear();
    crate::export::render(scratch, Format::Python, std::slice::from_ref(rs));
    line_hash(scratch.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_lines_are_kept_as_read() {
        let line = br#"{"name": "x", "context": {"trace_id": "0x0123456789abcdef0123456789abcdef", "span_id": "0x0123456789abcdef"}, "start_time": "2024-01-01T00:00:00Z", "end_time": "2024-01-01T00:00:01Z"}"#;
        let rs = crate::format::python::parse_line(line).unwrap();
        let r = Record {
            time: 0,
            ids: [0; 24],
            hash: 0,
            data: encode(&rs, Some(line)).into(),
            file: 0,
        };
        assert_eq!(r.python_line(), Some(&line[..]));
        assert_eq!(r.decode().unwrap(), rs);
        let p = Record {
            data: encode(&rs, None).into(),
            ..r
        };
        assert_eq!((p.python_line(), p.decode().unwrap()), (None, rs));
    }

    #[test]
    fn line_hash_sees_every_byte() {
        let line: Vec<u8> = (0..100u8).collect();
        let h = line_hash(&line);
        assert_eq!(h, line_hash(&line.clone()));
        for len in 0..line.len() {
            assert_ne!(line_hash(&line[..len]), h, "prefix {len}");
        }
        for i in 0..line.len() {
            let mut other = line.clone();
            other[i] ^= 1;
            assert_ne!(line_hash(&other), h, "byte {i}");
        }
        // Trailing zero bytes are not padding.
        assert_ne!(line_hash(b"ab"), line_hash(b"ab\0"));
    }

    #[test]
    fn spill_layout_round_trips() {
        let r = Record {
            time: 42,
            ids: [7; 24],
            hash: 5,
            data: vec![1, 2, 3].into(),
            file: 9,
        };
        let mut buf = Vec::new();
        r.write_to(&mut buf).unwrap();
        r.write_to(&mut buf).unwrap();
        let mut input = &buf[..];
        let a = Record::read_from(&mut input).unwrap().unwrap();
        assert_eq!(a, r);
        assert_eq!(a.file, 9);
        assert!(Record::read_from(&mut input).unwrap().is_some());
        assert!(Record::read_from(&mut input).unwrap().is_none());
        // Cut short, or claiming more data than a record holds: an error, no allocation.
        assert!(Record::read_from(&mut &buf[..buf.len() / 2 - 1]).is_err());
        let mut huge = buf[..44].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let e = Record::read_from(&mut &huge[..]).unwrap_err();
        assert!(e.to_string().contains("corrupt temporary record"), "{e}");
    }

    #[test]
    fn order_is_time_then_ids_then_content() {
        let r = |time, id, data: &[u8]| Record {
            time,
            ids: [id; 24],
            hash: 0,
            data: data.to_vec().into(),
            file: 0,
        };
        let mut v = [r(2, 1, b"a"), r(1, 2, b"b"), r(1, 2, b"a"), r(1, 1, b"z")];
        v.sort();
        assert_eq!(
            v.iter()
                .map(|x| (x.time, x.ids[0], x.data[0]))
                .collect::<Vec<_>>(),
            [(1, 1, b'z'), (1, 2, b'a'), (1, 2, b'b'), (2, 1, b'a')]
        );
    }
}
