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

/// html2text's layout is quadratic in element depth (8,000 nested `div`s take seconds,
/// 200,000 take hours): deeper documents take the linear fallback. Real mail HTML nests a
/// few dozen levels.
const HTML_LAYOUT_MAX_DEPTH: usize = 256;
/// Above this size the layout engine is not worth its time either; mail bodies are far
/// smaller unless they inline images, which the fallback skips just as well.
const HTML_LAYOUT_MAX_BYTES: usize = 2 * 1024 * 1024;
const HTML_FALLBACK_NOTE: &str =
    "the HTML is too large or too deeply nested for layout; its tags were stripped instead";

/// HTML (mail and chat bodies) rendered as plain text. `script`, `style` and `head` are
/// dropped; nothing is fetched (images, links and CSS stay references). Pathological HTML
/// (see [`HTML_LAYOUT_MAX_DEPTH`]) is reduced by a linear tag stripper instead.
pub(crate) fn html(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut collector = Collector::new(limits);
    let (text, lossy) = decode(bytes);
    if lossy {
        collector.note(LOSSY_NOTE);
    }
    let rendered =
        if text.len() > HTML_LAYOUT_MAX_BYTES || nesting_depth(&text) > HTML_LAYOUT_MAX_DEPTH {
            collector.note(HTML_FALLBACK_NOTE);
            strip_tags(&text)
        } else {
            html2text::config::plain_no_decorate()
                .allow_width_overflow()
                .string_from_read(text.as_bytes(), HTML_WIDTH)
                .map_err(|_| ExtractError::corrupt(FileKind::Html, "the HTML cannot be rendered"))?
        };
    collector.push_part("Document", rendered);
    Ok(collector.finish(1))
}

/// Elements that never nest: void elements, and those the parser closes implicitly when
/// a sibling starts (so a page of unclosed `<p>` or `<li>` is not "deep").
const FLAT_ELEMENTS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "!doctype",
];

/// An upper estimate of element depth: open tags minus close tags, in one pass.
pub(crate) fn nesting_depth(html: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for tag in tags(html) {
        match tag {
            Tag::Open { name, self_closing } => {
                if !self_closing && !FLAT_ELEMENTS.contains(&name.as_str()) {
                    depth += 1;
                    max = max.max(depth);
                }
            }
            Tag::Close { name } => {
                if !FLAT_ELEMENTS.contains(&name.as_str()) {
                    depth = depth.saturating_sub(1);
                }
            }
            Tag::Text(_) => {}
        }
    }
    max
}

enum Tag<'a> {
    Open { name: String, self_closing: bool },
    Close { name: String },
    Text(&'a str),
}

/// A forgiving, linear HTML tokenizer: tags (lowercased names), text runs; comments and
/// declarations other than doctype vanish.
fn tags(html: &str) -> impl Iterator<Item = Tag<'_>> {
    let mut rest = html;
    std::iter::from_fn(move || {
        loop {
            if rest.is_empty() {
                return None;
            }
            let Some(lt) = rest.find('<') else {
                let text = rest;
                rest = "";
                return Some(Tag::Text(text));
            };
            if lt > 0 {
                let text = &rest[..lt];
                rest = &rest[lt..];
                return Some(Tag::Text(text));
            }
            if let Some(after) = rest.strip_prefix("<!--") {
                rest = after.find("-->").map_or("", |end| &after[end + 3..]);
                continue;
            }
            let end = rest.find('>').unwrap_or(rest.len());
            let inner = &rest[1..end];
            rest = rest.get(end + 1..).unwrap_or("");
            let (closing, inner) = match inner.strip_prefix('/') {
                Some(inner) => (true, inner),
                None => (false, inner),
            };
            let name: String = inner
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '!' || *c == '-')
                .collect::<String>()
                .to_ascii_lowercase();
            if name.is_empty() {
                // "a < b" in text, or "<?xml …>": not a tag worth tracking.
                continue;
            }
            return Some(if closing {
                Tag::Close { name }
            } else {
                Tag::Open { name, self_closing: inner.ends_with('/') }
            });
        }
    })
}

/// Elements whose content is not text.
const HIDDEN_ELEMENTS: &[&str] = &["script", "style", "head", "template", "noscript"];
/// Elements that start a new line.
const BLOCK_ELEMENTS: &[&str] = &[
    "br",
    "p",
    "div",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "hr",
    "section",
    "article",
    "header",
    "footer",
];

/// Text of `html` without layout: tags removed, hidden elements dropped, entities decoded,
/// blocks on their own lines, cells separated by tabs.
pub(crate) fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut hidden: Option<String> = None;
    for tag in tags(html) {
        match tag {
            Tag::Open { name, self_closing } if hidden.is_none() => {
                if HIDDEN_ELEMENTS.contains(&name.as_str()) && !self_closing {
                    hidden = Some(name);
                } else if BLOCK_ELEMENTS.contains(&name.as_str()) {
                    out.push('\n');
                } else if name == "td" || name == "th" {
                    out.push('\t');
                }
            }
            Tag::Close { name } => {
                if hidden.as_deref() == Some(name.as_str()) {
                    hidden = None;
                } else if hidden.is_none() && BLOCK_ELEMENTS.contains(&name.as_str()) {
                    out.push('\n');
                }
            }
            Tag::Text(text) if hidden.is_none() => decode_entities(text, &mut out),
            _ => {}
        }
    }
    // Collapse runs of spaces and of blank lines left by the markup.
    let mut tidy = String::with_capacity(out.len());
    let mut blank_lines = 0;
    for line in out.lines() {
        let line = line.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
        let line = line.trim_matches(|c: char| c == '\t' || c == ' ');
        if line.is_empty() {
            blank_lines += 1;
            if blank_lines > 1 {
                continue;
            }
        } else {
            blank_lines = 0;
        }
        tidy.push_str(line);
        tidy.push('\n');
    }
    tidy
}

/// Appends `text` with HTML character references decoded (unknown ones kept as written).
fn decode_entities(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.find(';').filter(|&end| end <= 32);
        let decoded = end.and_then(|end| {
            let name = &rest[1..end];
            let c = match name.strip_prefix('#') {
                Some(num) => match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse().ok(),
                }
                .and_then(char::from_u32)
                .map(String::from),
                None => named_entity(name).map(str::to_owned),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push_str(&c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    // Non-breaking spaces read as spaces.
    if out.contains('\u{A0}') {
        *out = out.replace('\u{A0}', " ");
    }
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
    let mut lossy = !bytes.len().is_multiple_of(2);
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

/// The named references common in mail bodies; rarer ones stay as written.
fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => " ",
        "copy" => "\u{A9}",
        "reg" => "\u{AE}",
        "trade" => "\u{2122}",
        "hellip" => "\u{2026}",
        "ndash" => "\u{2013}",
        "mdash" => "\u{2014}",
        "lsquo" => "\u{2018}",
        "rsquo" => "\u{2019}",
        "ldquo" => "\u{201C}",
        "rdquo" => "\u{201D}",
        "bull" => "\u{2022}",
        "middot" => "\u{B7}",
        "euro" => "\u{20AC}",
        "pound" => "\u{A3}",
        "eacute" => "\u{E9}",
        _ => return None,
    })
}
