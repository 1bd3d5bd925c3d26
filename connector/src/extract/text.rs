//! Text formats: html through html2text; csv, markdown and plain text as they are.
//!
//! Bytes are read as UTF-8 with the byte-order mark stripped; UTF-16 with a BOM (as
//! Notepad writes it) is decoded too. Invalid UTF-8 is replaced with U+FFFD and a note says
//! so. Line ends become `\n`. Each of these formats is one part, `Document`.

use super::{Collector, ExtractError, Extracted, FileKind, Limits};

/// Wrap width for rendered HTML: wide enough that mail bodies and tables are not chopped.
const HTML_WIDTH: usize = 120;
const LOSSY_NOTE: &str = "the file is not valid UTF-8; invalid bytes were replaced with \u{FFFD}";

pub(crate) fn plain(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut collector = Collector::new(limits);
    let (text, lossy) = decode(bytes);
    if lossy {
        collector.note(LOSSY_NOTE);
    }
    collector.push_part("Document", text.replace("\r\n", "\n").replace('\r', "\n"));
    Ok(collector.finish(1))
}

/// HTML (mail and chat bodies) rendered as plain text. `script`, `style` and `head` are
/// dropped by html2text; nothing is fetched (images, links and CSS stay references).
pub(crate) fn html(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut collector = Collector::new(limits);
    let (text, lossy) = decode(bytes);
    if lossy {
        collector.note(LOSSY_NOTE);
    }
    let rendered = html2text::config::plain_no_decorate()
        .allow_width_overflow()
        .string_from_read(text.as_bytes(), HTML_WIDTH)
        .map_err(|_| ExtractError::corrupt(FileKind::Html, "the HTML cannot be rendered"))?;
    collector.push_part("Document", rendered);
    Ok(collector.finish(1))
}

/// Decodes text bytes; `true` when invalid UTF-8 was replaced.
pub(crate) fn decode(bytes: &[u8]) -> (String, bool) {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return utf8(rest);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, u16::from_be_bytes);
    }
    utf8(bytes)
}

fn utf8(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> (String, bool) {
    let mut lossy = bytes.len() % 2 != 0;
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    let text = char::decode_utf16(units)
        .map(|c| {
            c.unwrap_or_else(|_| {
                lossy = true;
                char::REPLACEMENT_CHARACTER
            })
        })
        .collect();
    (text, lossy)
}
