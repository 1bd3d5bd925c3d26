//! docx and pptx: zip + quick-xml, streaming over the XML parts.
//!
//! Both formats keep text in `t` elements inside runs (`w:t`, `a:t`) inside paragraphs
//! (`w:p`, `a:p`), with the same table shape (`tr` rows of `tc` cells), so one walker reads
//! both by local name. Paragraphs become lines, table cells are separated by tabs and rows
//! by newlines, `tab`/`br`/`cr` inside a run become a tab or a newline. Deleted text
//! (`w:delText`), field codes (`w:instrText`) and `mc:Fallback` copies are not text.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, Event};

use super::zipguard::{SafeZip, Tripped, bomb};
use super::{CappedText, Collector, ExtractError, FileKind, Limits, Selection};

const DOCX_MAIN: &str = "word/document.xml";
const PPTX_MAIN: &str = "ppt/presentation.xml";
const PPTX_RELS: &str = "ppt/_rels/presentation.xml.rels";

/// A docx as one part, `Document`.
pub(crate) fn docx(bytes: &[u8], limits: &Limits) -> Result<super::Extracted, ExtractError> {
    let kind = FileKind::Docx;
    let mut zip = SafeZip::open(bytes, kind, limits)?;
    let mut collector = Collector::new(limits);
    let mut sink = collector.sink();
    let Some(entry) = zip.entry(DOCX_MAIN)? else {
        return Err(missing_part(kind, &zip));
    };
    walk(BufReader::new(entry), &mut sink).map_err(|e| e.into_error(kind))?;
    collector.push_sink("Document", sink);
    Ok(collector.finish(1))
}

/// A pptx, one part per slide (`Slide N`), in presentation order.
pub(crate) fn pptx(
    bytes: &[u8],
    selection: &Selection,
    limits: &Limits,
) -> Result<super::Extracted, ExtractError> {
    let kind = FileKind::Pptx;
    let mut zip = SafeZip::open(bytes, kind, limits)?;
    if !zip.contains(PPTX_MAIN) {
        return Err(missing_part(kind, &zip));
    }
    let slides = slide_parts(&mut zip)?;
    let total = u32::try_from(slides.len()).unwrap_or(u32::MAX);
    let positions = selection.positions(total, "slide")?;
    let mut collector = Collector::new(limits);
    for position in positions {
        if !collector.can_start_part() {
            break;
        }
        let mut sink = collector.sink();
        let part = &slides[position as usize - 1];
        if let Some(entry) = zip.entry(part)? {
            walk(BufReader::new(entry), &mut sink).map_err(|e| e.into_error(kind))?;
        }
        collector.push_sink(format!("Slide {position}"), sink);
    }
    Ok(collector.finish(total))
}

/// Slide part names in presentation order: `p:sldIdLst` in `presentation.xml` resolved
/// through its relationships. Falls back to `ppt/slides/slideN.xml` by number when that
/// chain is missing (some generators omit it; order by N is then the best there is).
fn slide_parts(zip: &mut SafeZip<'_>) -> Result<Vec<String>, ExtractError> {
    let from_rels = ordered_slides(zip)?;
    if !from_rels.is_empty() {
        return Ok(from_rels);
    }
    let mut numbered: Vec<(u32, String)> = zip
        .names()
        .into_iter()
        .filter_map(|name| {
            let lower = name.to_ascii_lowercase();
            let n = lower.strip_prefix("ppt/slides/slide")?.strip_suffix(".xml")?.parse().ok()?;
            Some((n, name))
        })
        .collect();
    numbered.sort();
    Ok(numbered.into_iter().map(|(_, name)| name).collect())
}

fn ordered_slides(zip: &mut SafeZip<'_>) -> Result<Vec<String>, ExtractError> {
    let kind = FileKind::Pptx;
    let (Some(presentation), Some(rels)) =
        (zip.read_to_end(PPTX_MAIN)?, zip.read_to_end(PPTX_RELS)?)
    else {
        return Ok(Vec::new());
    };
    // Relationship id -> target, resolved against `ppt/`.
    let mut targets = HashMap::new();
    let mut reader = Reader::from_reader(rels.as_slice());
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "Relationship" => {
                let mut id = None;
                let mut target = None;
                for attr in e.attributes().flatten() {
                    let value = attr_value(&attr);
                    match attr.key.local_name().as_ref() {
                        "Id" => id = value,
                        "Target" => target = value,
                        _ => {}
                    }
                }
                if let (Some(id), Some(target)) = (id, target) {
                    targets.insert(id, resolve_target(&target));
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => return Err(ExtractError::corrupt(kind, "malformed XML in the slide list")),
        }
        buf.clear();
    }
    let mut slides = Vec::new();
    let mut reader = Reader::from_reader(presentation.as_slice());
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e) | Event::Empty(e)) if e.local_name().as_ref() == "sldId" => {
                let rid = e
                    .attributes()
                    .flatten()
                    // `r:id` (any prefix), not the bare numeric `id`.
                    .find(|a| a.key.prefix().is_some() && a.key.local_name().as_ref() == "id")
                    .and_then(|a| attr_value(&a));
                if let Some(target) = rid.and_then(|rid| targets.get(&rid))
                    && zip.contains(target)
                {
                    slides.push(target.clone());
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => return Err(ExtractError::corrupt(kind, "malformed XML in the slide list")),
        }
        buf.clear();
    }
    Ok(slides)
}

/// A relationship target of `presentation.xml` as a part name: relative to `ppt/`, or
/// absolute from the package root when it starts with `/`.
fn resolve_target(target: &str) -> String {
    if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_owned();
    }
    let mut parts: Vec<&str> = vec!["ppt"];
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn missing_part(kind: FileKind, zip: &SafeZip<'_>) -> ExtractError {
    // A package holding another Office format's main part was mislabelled, not damaged.
    let found = if zip.contains(DOCX_MAIN) {
        Some("a Word document")
    } else if zip.contains("xl/workbook.xml") {
        Some("an Excel workbook")
    } else if zip.contains(PPTX_MAIN) {
        Some("a PowerPoint presentation")
    } else {
        None
    };
    match found {
        Some(found) => ExtractError::KindMismatch { claimed: kind, found },
        None => ExtractError::corrupt(kind, "the package has no main document part"),
    }
}

/// Why [`walk`] stopped early.
pub(crate) enum WalkError {
    Xml(quick_xml::Error),
}

impl WalkError {
    fn into_error(self, kind: FileKind) -> ExtractError {
        let WalkError::Xml(err) = self;
        if let quick_xml::Error::Io(io) = &err {
            if let Some(reason) = Tripped::reason(io) {
                return bomb(reason.to_owned());
            }
            return ExtractError::corrupt(kind, "a part of the package cannot be inflated");
        }
        ExtractError::corrupt(kind, "malformed XML in the document")
    }
}

/// Streams one WordprocessingML or DrawingML part into `sink`; stops quietly when the sink
/// is full.
pub(crate) fn walk<R: BufRead>(input: R, sink: &mut CappedText) -> Result<(), WalkError> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut in_text = 0u32; // inside `t`
    let mut in_run = 0u32; // inside `r`
    let mut in_cell = 0u32; // inside `tc`
    let mut skipping = 0u32; // inside `mc:Fallback`
    loop {
        if sink.is_full() {
            return Ok(());
        }
        let event = reader.read_event_into(&mut buf).map_err(WalkError::Xml)?;
        match event {
            Event::Start(e) => match e.local_name().as_ref() {
                "Fallback" => skipping += 1,
                "t" => in_text += 1,
                "r" => in_run += 1,
                "tc" => in_cell += 1,
                _ => {}
            },
            Event::Empty(e) if skipping == 0 => match e.local_name().as_ref() {
                "p" if in_cell == 0 => {
                    sink.push('\n');
                }
                "tab" if in_run > 0 => {
                    sink.push('\t');
                }
                "br" | "cr" => {
                    sink.push('\n');
                }
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "Fallback" => skipping = skipping.saturating_sub(1),
                "t" => in_text = in_text.saturating_sub(1),
                "r" => in_run = in_run.saturating_sub(1),
                "p" if skipping == 0 => {
                    // Inside a table cell, paragraphs are joined by spaces so the cell
                    // stays on its row.
                    if in_cell > 0 {
                        if !sink.is_empty() && !sink.ends_with('\t') && !sink.ends_with('\n') {
                            sink.push(' ');
                        }
                    } else {
                        sink.push('\n');
                    }
                }
                "tc" if skipping == 0 => {
                    in_cell = in_cell.saturating_sub(1);
                    sink.trim_end_of(&[' ']);
                    sink.push('\t');
                }
                "tr" if skipping == 0 => {
                    sink.trim_end_of(&['\t', ' ']);
                    sink.push('\n');
                }
                "tc" => in_cell = in_cell.saturating_sub(1),
                _ => {}
            },
            Event::Text(t) if in_text > 0 && skipping == 0 => {
                sink.push_str(&t.xml10_content());
            }
            Event::CData(t) if in_text > 0 && skipping == 0 => {
                sink.push_str(&t);
            }
            Event::GeneralRef(r) if in_text > 0 && skipping == 0 => {
                if let Some(text) = entity(&r) {
                    sink.push_str(&text);
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
        buf.clear();
    }
}

fn attr_value(attr: &Attribute<'_>) -> Option<String> {
    attr.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
}

/// The text of an entity reference: a character reference or one of XML's five entities.
/// Unknown entities (a DTD would be needed) are dropped.
fn entity(r: &BytesRef<'_>) -> Option<String> {
    match r.resolve_char_ref() {
        Ok(Some(c)) => Some(c.to_string()),
        Ok(None) => resolve_predefined_entity(r).map(str::to_owned),
        Err(_) => None,
    }
}
