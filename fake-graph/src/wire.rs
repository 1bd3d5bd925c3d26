//! JSON written straight into a response buffer, for the list hot paths.
//!
//! Building a `serde_json::Value` tree for a 25-item page costs hundreds of small allocations
//! (one `String` per key, one `BTreeMap` node per few fields) that are freed right after
//! serialising; profiles of `GET /me/messages` showed malloc/free as the largest cost. Writers
//! here append to one `Vec<u8>` instead. Strings go through `serde_json`'s own escaping, and
//! object keys are written in the order a `Value` object (a `BTreeMap`) would serialise them,
//! so the bytes are identical to `serde_json::to_vec(&value)` of the equivalent tree — the unit
//! tests of each writer compare the two.

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

/// The `Content-Type` Graph sends with JSON bodies.
pub const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A JSON document being written; `first` tracks whether the current container needs a comma.
pub struct JsonBuf {
    pub out: Vec<u8>,
    first: bool,
}

impl JsonBuf {
    pub fn with_capacity(n: usize) -> Self {
        Self { out: Vec::with_capacity(n), first: true }
    }

    /// Opens an object (as a value: call [`JsonBuf::key`] or [`JsonBuf::elem`] first).
    pub fn open_obj(&mut self) {
        self.out.push(b'{');
        self.first = true;
    }

    pub fn close_obj(&mut self) {
        self.out.push(b'}');
        self.first = false;
    }

    pub fn open_arr(&mut self) {
        self.out.push(b'[');
        self.first = true;
    }

    pub fn close_arr(&mut self) {
        self.out.push(b']');
        self.first = false;
    }

    /// Starts the next member of an object: `,"key":` (no comma for the first). Keys are
    /// property-name literals, which never need escaping, so they are copied as they are.
    pub fn key(&mut self, k: &'static str) {
        debug_assert!(!k.bytes().any(escaped), "key {k:?} needs escaping");
        self.comma();
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// Starts the next element of an array.
    pub fn elem(&mut self) {
        self.comma();
    }

    fn comma(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// A JSON string, escaped exactly as `serde_json` escapes it (`"`, `\`, and control
    /// characters: `\b \f \n \r \t` by name, the rest as `\u00xx`). Runs without escapes are
    /// found eight bytes at a time and copied in one go; `serde_json::to_writer` went byte by
    /// byte with a writer call per run and was the largest item of a list page's profile.
    pub fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = s.as_bytes();
        self.out.push(b'"');
        let mut start = 0;
        while let Some(i) = next_escape(bytes, start) {
            self.out.extend_from_slice(&bytes[start..i]);
            let c = bytes[i];
            match c {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                0x08 => self.out.extend_from_slice(b"\\b"),
                0x0c => self.out.extend_from_slice(b"\\f"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                _ => self.out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xf)],
                ]),
            }
            start = i + 1;
        }
        self.out.extend_from_slice(&bytes[start..]);
        self.out.push(b'"');
    }

    /// Any serialisable value, in `serde_json`'s compact form.
    pub fn value<T: Serialize + ?Sized>(&mut self, v: &T) {
        let _ = serde_json::to_writer(&mut self.out, v);
    }

    pub fn bool(&mut self, b: bool) {
        self.out.extend_from_slice(if b { b"true" } else { b"false" });
    }

    /// Bytes that are already valid JSON (a literal such as `[]`).
    pub fn raw(&mut self, json: &str) {
        self.out.extend_from_slice(json.as_bytes());
    }

    /// A Graph date-time string, as [`crate::odata::dt`] renders it.
    pub fn date(&mut self, d: DateTime<Utc>) {
        self.out.push(b'"');
        push_dt(&mut self.out, d);
        self.out.push(b'"');
    }

    /// A 200 response carrying this document with Graph's JSON content type.
    pub fn into_response(self) -> Response {
        let mut r = Response::new(Body::from(self.out));
        *r.status_mut() = StatusCode::OK;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
        r
    }
}

/// Whether a byte must be escaped inside a JSON string.
fn escaped(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// Position of the first byte at or after `from` that must be escaped. Whole 8-byte words are
/// skipped when none of their bytes is below 0x20, `"` or `\` (the classic "has a zero /
/// has less than" word tests, which are exact about whether such a byte exists).
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0;
        if control || has_zero(w ^ (ONES * u64::from(b'"'))) || has_zero(w ^ (ONES * 0x5c)) {
            break;
        }
        i += 8;
    }
    bytes[i..].iter().position(|c| escaped(*c)).map(|p| i + p)
}

/// Appends `2024-05-01T09:00:00Z` (no quotes). Hand-formatted: chrono's `format` re-parses its
/// pattern on every call, and a list page renders several dates per item. Years outside
/// 0..=9999 and leap seconds keep chrono's own rendering.
pub fn push_dt(out: &mut Vec<u8>, d: DateTime<Utc>) {
    // The naive value once: each accessor of a `DateTime` recomputes it from the offset.
    let d = d.naive_utc();
    if !(0..=9999).contains(&d.year()) || d.nanosecond() >= 1_000_000_000 {
        out.extend_from_slice(d.format("%Y-%m-%dT%H:%M:%SZ").to_string().as_bytes());
        return;
    }
    let y = d.year() as u32;
    let two = |out: &mut Vec<u8>, n: u32| {
        out.push(b'0' + (n / 10) as u8);
        out.push(b'0' + (n % 10) as u8);
    };
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, d.month());
    out.push(b'-');
    two(out, d.day());
    out.push(b'T');
    two(out, d.hour());
    out.push(b':');
    two(out, d.minute());
    out.push(b':');
    two(out, d.second());
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_containers_match_serde_json() {
        let mut b = JsonBuf::with_capacity(64);
        b.open_obj();
        b.key("ab");
        b.string("line\nbreak \u{1} \\ é");
        b.key("list");
        b.open_arr();
        b.elem();
        b.bool(true);
        b.elem();
        b.raw("[]");
        b.elem();
        b.open_obj();
        b.close_obj();
        b.close_arr();
        b.close_obj();
        let expected = serde_json::json!({"ab": "line\nbreak \u{1} \\ é", "list": [true, [], {}]});
        assert_eq!(String::from_utf8(b.out).unwrap(), expected.to_string());
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_escaped_like_serde_json(
            s in "(?s).{0,40}",
            ctl in proptest::collection::vec(0u8..0x80, 0..20),
        ) {
            let ascii: String = ctl.into_iter().map(char::from).collect();
            for text in [s.as_str(), ascii.as_str()] {
                let mut b = JsonBuf::with_capacity(64);
                b.string(text);
                proptest::prop_assert_eq!(
                    String::from_utf8(b.out).unwrap(),
                    serde_json::to_string(text).unwrap()
                );
            }
        }
    }

    #[test]
    fn dates_match_chrono() {
        for s in ["2024-05-01T09:00:00Z", "0999-12-31T23:59:59Z", "2024-02-29T00:00:07Z"] {
            let d = DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
            let mut out = Vec::new();
            push_dt(&mut out, d);
            assert_eq!(String::from_utf8(out).unwrap(), s);
        }
    }
}
