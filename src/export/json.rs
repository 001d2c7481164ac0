//! JSON pieces for the writers that write straight into their output instead of through serde
//! (`chrome`, `otlp`): each writes exactly the bytes serde_json writes for the same value, so the
//! writers' output did not change when they stopped going through serde.

/// A JSON string, escaped by serde_json. (Copying strings without anything to escape as they
/// are was measured: 5% faster than serde_json's escaping loop on typical attribute strings, not
/// worth a second escaping rule.)
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("serialising a string to memory");
}

/// A number or boolean, printed by serde_json (integers as integers; a finite double, since
/// serde_json writes the others as `null`).
pub(crate) fn number(out: &mut Vec<u8>, n: impl serde::Serialize) {
    serde_json::to_writer(&mut *out, &n).expect("serialising a number to memory");
}

/// Lowercase hex in quotes (nothing to escape).
pub(crate) fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2 + 2);
    out.push(b'"');
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
    out.push(b'"');
}
