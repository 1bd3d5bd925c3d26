//! File content to text: docx, xlsx, pptx, pdf, html, csv, markdown and plain text.
//!
//! Everything happens in memory on a byte slice the caller already holds: nothing is written
//! to disk, nothing is cached, and no native binary is involved (calamine, pdf-extract,
//! zip + quick-xml and html2text are pure Rust). Extraction is CPU-bound and synchronous;
//! async callers use [`extract_blocking`], which moves it to Tokio's blocking pool.
//!
//! # Defences
//! Input comes from SharePoint, OneDrive and mailboxes, so it is hostile by default:
//! * the input is size-capped ([`Limits::max_input_bytes`]) before anything is parsed;
//! * zip packages (docx, xlsx, pptx) are checked in their central directory first (entry
//!   count, declared total size, per-entry compression ratio), then every byte inflated is
//!   counted against the declared size and the global budget, because headers can lie;
//! * PDF streams are inflated once under the same budget before the PDF parser sees them;
//! * parser panics (pdf-extract is known to panic on odd files) are caught and reported as
//!   [`ExtractError::Corrupt`]; output is capped ([`Limits::max_output_chars`],
//!   [`Limits::max_pages_or_sheets`], [`Limits::max_duration`]) and the cut is reported in
//!   [`Extracted::truncated`] rather than failing.
//!
//! Error messages ([`ExtractError`]) never quote file content, so they are safe to show users.
//!
//! # Empty files
//! A zero-byte csv, markdown, text or html file is a valid empty document and extracts to no
//! parts (empty text). A zero-byte docx, xlsx, pptx or pdf cannot be a valid document, so it
//! is reported as [`ExtractError::EmptyFile`] (usually an upload that never completed).
//! A valid document without text (a blank page, an empty sheet) extracts to empty parts.
//!
//! # Layout
//! * `detect.rs`: [`FileKind::detect`] from name, MIME type and magic bytes.
//! * `zipguard.rs`: the zip-bomb guard and the size-counting entry reader.
//! * `ooxml.rs`: docx and pptx over quick-xml.
//! * `xlsx.rs`: workbooks over calamine, A1 ranges.
//! * `pdf.rs`: per-page PDF text over pdf-extract, with the stream-inflation guard.
//! * `text.rs`: html (html2text), csv, markdown and plain text.

mod detect;
mod ooxml;
mod pdf;
mod text;
mod xlsx;
mod zipguard;

use std::fmt;
use std::ops::RangeInclusive;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

pub use xlsx::CellRange;

/// The formats the connector turns into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Word document (OOXML `.docx`, also `.docm`).
    Docx,
    /// Excel workbook (OOXML `.xlsx`, also `.xlsm`).
    Xlsx,
    /// PowerPoint presentation (OOXML `.pptx`, also `.pptm`).
    Pptx,
    /// PDF document.
    Pdf,
    /// HTML, e.g. a mail or chat body.
    Html,
    /// Comma-separated values, returned as text.
    Csv,
    /// Markdown, returned as text.
    Markdown,
    /// Plain text.
    Text,
}

impl FileKind {
    /// Short lowercase name, used in messages (`"docx"`, `"pdf"`, …).
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Docx => "docx",
            FileKind::Xlsx => "xlsx",
            FileKind::Pptx => "pptx",
            FileKind::Pdf => "pdf",
            FileKind::Html => "html",
            FileKind::Csv => "csv",
            FileKind::Markdown => "markdown",
            FileKind::Text => "text",
        }
    }

    /// Whether the kind is a binary container (zip package or PDF) rather than text.
    pub fn is_container(self) -> bool {
        matches!(self, FileKind::Docx | FileKind::Xlsx | FileKind::Pptx | FileKind::Pdf)
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Resource caps for one extraction. The defaults suit an interactive tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes (checked before parsing).
    pub max_input_bytes: u64,
    /// Total bytes that may be inflated from a zip package or from PDF streams.
    pub max_unzipped_bytes: u64,
    /// Highest uncompressed/compressed ratio allowed for one zip entry. Deflate tops out near
    /// 1:1032, while real Office XML stays well under 1:50. Entries below 1 MiB
    /// uncompressed are exempt: they cannot hurt, and tiny repetitive parts compress well.
    pub max_entry_ratio: u64,
    /// Most entries a zip package may have (a cheap central-directory check).
    pub max_entries: usize,
    /// Most characters of text returned; the rest is cut and reported as truncated.
    pub max_output_chars: usize,
    /// Most parts (pages, slides or sheets) returned; the rest is reported as truncated.
    pub max_pages_or_sheets: u32,
    /// Wall-clock budget, checked between parts: slow PDFs return what was read so far.
    pub max_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 25 * 1024 * 1024,
            max_unzipped_bytes: 100 * 1024 * 1024,
            max_entry_ratio: 100,
            max_entries: 10_000,
            max_output_chars: 1_000_000,
            max_pages_or_sheets: 1_000,
            max_duration: Duration::from_secs(30),
        }
    }
}

/// Which part of a document to extract. The default selects everything.
///
/// * `pages`: 1-based, inclusive; pages of a PDF, slides of a pptx, sheets of an xlsx (by
///   position). A range that overlaps the document is clipped to it; one that misses it
///   entirely is an [`ExtractError::InvalidSelection`].
/// * `sheet`: an xlsx sheet by name (exact match first, then case-insensitive).
/// * `cell_range`: an xlsx range in A1 notation (`"A1:D20"`, `"B2"`, `"A:C"`, `"2:10"`,
///   optionally `"Sheet!A1:D20"`), applied to every selected sheet.
///
/// Fields that do not apply to the file's kind are refused with
/// [`ExtractError::InvalidSelection`] rather than silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Pages, slides or sheets by 1-based position.
    pub pages: Option<RangeInclusive<u32>>,
    /// An xlsx sheet by name.
    pub sheet: Option<String>,
    /// An xlsx cell range in A1 notation.
    pub cell_range: Option<String>,
}

impl Selection {
    /// Everything in the document.
    pub fn all() -> Self {
        Self::default()
    }

    /// Pages (PDF), slides (pptx) or sheets (xlsx) by 1-based position, inclusive.
    pub fn pages(range: RangeInclusive<u32>) -> Self {
        Self { pages: Some(range), ..Self::default() }
    }

    /// One xlsx sheet by name.
    pub fn sheet(name: impl Into<String>) -> Self {
        Self { sheet: Some(name.into()), ..Self::default() }
    }

    /// Restricts xlsx output to an A1 range (`"A1:D20"`).
    pub fn with_cell_range(mut self, range: impl Into<String>) -> Self {
        self.cell_range = Some(range.into());
        self
    }

    /// Refuses fields that mean nothing for `kind`, and empty page ranges.
    fn check_for(&self, kind: FileKind) -> Result<(), ExtractError> {
        if let Some(pages) = &self.pages {
            if !matches!(kind, FileKind::Pdf | FileKind::Pptx | FileKind::Xlsx) {
                return Err(invalid(format!("a {kind} file has no pages to select")));
            }
            if *pages.start() == 0 {
                return Err(invalid("pages are numbered from 1"));
            }
            if pages.start() > pages.end() {
                return Err(invalid("the page range is empty (start after end)"));
            }
        }
        if (self.sheet.is_some() || self.cell_range.is_some()) && kind != FileKind::Xlsx {
            return Err(invalid(format!("a {kind} file has no sheets or cells to select")));
        }
        if self.sheet.is_some() && self.pages.is_some() {
            return Err(invalid("select sheets either by name or by position, not both"));
        }
        Ok(())
    }

    /// The 1-based positions selected among `total`, clipped to `limit` parts.
    /// `unit` names the parts in the error ("page", "slide", "sheet").
    fn positions(&self, total: u32, unit: &str) -> Result<RangeInclusive<u32>, ExtractError> {
        match &self.pages {
            None => Ok(1..=total),
            Some(range) if *range.start() > total => Err(invalid(format!(
                "{unit}s {}-{} are outside the document, which has {total} {unit}s",
                range.start(),
                range.end()
            ))),
            Some(range) => Ok(*range.start()..=(*range.end()).min(total)),
        }
    }
}

fn invalid(reason: impl Into<String>) -> ExtractError {
    ExtractError::InvalidSelection { reason: reason.into() }
}

/// One labelled piece of the output: a page, a slide, a sheet, or the whole document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `"Page 2"`, `"Slide 3"`, `"Sheet Budget"`, or `"Document"` for single-part formats.
    pub label: String,
    /// The part's text, trimmed of surrounding blank lines.
    pub text: String,
}

/// Why the output stops before the end of the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncationReason {
    /// [`Limits::max_output_chars`] was reached; the last part is cut.
    OutputChars {
        /// The limit that applied.
        limit: usize,
    },
    /// [`Limits::max_pages_or_sheets`] parts were returned; later ones were skipped.
    Parts {
        /// The limit that applied.
        limit: u32,
    },
    /// [`Limits::max_duration`] elapsed; later parts were skipped.
    Time {
        /// The limit that applied.
        limit: Duration,
    },
}

impl fmt::Display for TruncationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TruncationReason::OutputChars { limit } => {
                write!(f, "output reached the {limit}-character limit")
            }
            TruncationReason::Parts { limit } => {
                write!(f, "only the first {limit} pages, slides or sheets are returned")
            }
            TruncationReason::Time { limit } => {
                write!(f, "extraction stopped after {} seconds", limit.as_secs())
            }
        }
    }
}

/// The text of a document, in parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The selected parts, in document order.
    pub parts: Vec<Part>,
    /// Pages, slides or sheets in the whole document (1 for single-part formats, 0 for an
    /// empty text file), so callers can say "page 2 of 10".
    pub total_parts: u32,
    /// Set when a limit cut the output short.
    pub truncated: Option<TruncationReason>,
    /// Content-free remarks about the extraction (e.g. invalid UTF-8 was replaced).
    pub notes: Vec<String>,
}

impl Extracted {
    /// The parts as one text. Multi-part documents get a `## {label}` heading per part;
    /// truncation, partial selections and notes are stated in brackets at the end so a
    /// reader (human or model) knows the text is incomplete.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let headed = self.parts.len() > 1 || self.total_parts > 1;
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                out.push_str("\n\n");
            }
            if headed {
                out.push_str("## ");
                out.push_str(&part.label);
                out.push('\n');
            }
            out.push_str(&part.text);
        }
        let mut footer = Vec::new();
        if headed && (self.parts.len() as u64) < u64::from(self.total_parts) {
            footer.push(format!("[{} of {} parts shown]", self.parts.len(), self.total_parts));
        }
        if let Some(reason) = &self.truncated {
            footer.push(format!("[truncated: {reason}]"));
        }
        footer.extend(self.notes.iter().map(|note| format!("[note: {note}]")));
        if !footer.is_empty() {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&footer.join("\n"));
        }
        out
    }

    /// Characters of text across all parts (labels excluded).
    pub fn char_count(&self) -> usize {
        self.parts.iter().map(|p| p.text.chars().count()).sum()
    }
}

/// Why a file could not be turned into text. Messages name the kind and the limit, never
/// the file's content, so they can be shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The input is larger than [`Limits::max_input_bytes`].
    #[error("the file is {size} bytes, above the {limit}-byte limit for reading its text")]
    TooLarge {
        /// Size of the input.
        size: u64,
        /// The limit that applied.
        limit: u64,
    },
    /// The package would inflate beyond the limits (a zip bomb or a lying header).
    #[error("the file was refused as a possible zip bomb: {reason}")]
    ZipBomb {
        /// Which check failed, with numbers only.
        reason: String,
    },
    /// The file is damaged or not what its kind says.
    #[error("the {kind} file is damaged or invalid: {detail}")]
    Corrupt {
        /// The kind being read.
        kind: FileKind,
        /// What was wrong, in our own words (never upstream text that may quote content).
        detail: String,
    },
    /// A format or feature this extractor does not read.
    #[error("{what} is not supported for text extraction")]
    Unsupported {
        /// What is unsupported.
        what: &'static str,
    },
    /// The file is encrypted or password-protected.
    #[error("the {kind} file is encrypted or password-protected")]
    Encrypted {
        /// The kind being read.
        kind: FileKind,
    },
    /// A zero-byte docx, xlsx, pptx or pdf (see the module docs on empty files).
    #[error("the {kind} file is empty (0 bytes)")]
    EmptyFile {
        /// The kind being read.
        kind: FileKind,
    },
    /// The file's bytes contradict its claimed kind (name or MIME type).
    #[error("the file is named or typed as {claimed}, but its content is {found}")]
    KindMismatch {
        /// The kind claimed by name or MIME type.
        claimed: FileKind,
        /// What the magic bytes show.
        found: &'static str,
    },
    /// The [`Selection`] does not fit this file.
    #[error("invalid selection: {reason}")]
    InvalidSelection {
        /// What does not fit, without content beyond counts.
        reason: String,
    },
    /// The blocking task did not complete (runtime shutting down).
    #[error("text extraction was interrupted")]
    Interrupted,
}

impl ExtractError {
    pub(crate) fn corrupt(kind: FileKind, detail: impl Into<String>) -> Self {
        ExtractError::Corrupt { kind, detail: detail.into() }
    }
}

/// Extracts the text of `bytes`, read as `kind`, restricted to `selection`, within `limits`.
///
/// Synchronous and CPU-bound: from async code use [`extract_blocking`]. Never panics on any
/// input; parser panics become [`ExtractError::Corrupt`].
pub fn extract(
    bytes: &[u8],
    kind: FileKind,
    selection: &Selection,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    let size = bytes.len() as u64;
    if size > limits.max_input_bytes {
        return Err(ExtractError::TooLarge { size, limit: limits.max_input_bytes });
    }
    selection.check_for(kind)?;
    if bytes.is_empty() {
        return if kind.is_container() {
            Err(ExtractError::EmptyFile { kind })
        } else {
            Ok(Extracted::default())
        };
    }
    detect::check_magic(kind, bytes)?;

    // The extractors are written not to panic, but calamine, lopdf, pdf-extract and
    // html2text are not ours: a panic there must not take the request (or a blocking
    // thread's caller) down with it. Nothing shared is mutated, so unwinding is safe.
    let run = AssertUnwindSafe(|| match kind {
        FileKind::Docx => ooxml::docx(bytes, limits),
        FileKind::Pptx => ooxml::pptx(bytes, selection, limits),
        FileKind::Xlsx => xlsx::xlsx(bytes, selection, limits),
        FileKind::Pdf => pdf::pdf(bytes, selection, limits),
        FileKind::Html => text::html(bytes, limits),
        FileKind::Csv | FileKind::Markdown | FileKind::Text => text::plain(bytes, limits),
    });
    catch_unwind(run)
        .unwrap_or_else(|_| Err(ExtractError::corrupt(kind, "the parser failed on this file")))
}

/// [`extract`] on Tokio's blocking pool, so a large document does not stall the runtime.
///
/// Takes owned inputs (`Vec<u8>`, `bytes::Bytes`, …) because the work outlives the borrow.
pub async fn extract_blocking<B>(
    bytes: B,
    kind: FileKind,
    selection: Selection,
    limits: Limits,
) -> Result<Extracted, ExtractError>
where
    B: AsRef<[u8]> + Send + 'static,
{
    tokio::task::spawn_blocking(move || extract(bytes.as_ref(), kind, &selection, &limits))
        .await
        .unwrap_or(Err(ExtractError::Interrupted))
}

/// Gathers parts under the output, part-count and time limits.
pub(crate) struct Collector<'l> {
    limits: &'l Limits,
    started: Instant,
    parts: Vec<Part>,
    remaining_chars: usize,
    truncated: Option<TruncationReason>,
    notes: Vec<String>,
}

impl<'l> Collector<'l> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            started: Instant::now(),
            parts: Vec::new(),
            remaining_chars: limits.max_output_chars,
            truncated: None,
            notes: Vec::new(),
        }
    }

    /// Whether another part may be added; once false it stays false, with the reason
    /// recorded.
    pub(crate) fn can_start_part(&mut self) -> bool {
        if self.truncated.is_some() {
            return false;
        }
        if self.parts.len() as u64 >= u64::from(self.limits.max_pages_or_sheets) {
            self.truncated =
                Some(TruncationReason::Parts { limit: self.limits.max_pages_or_sheets });
            return false;
        }
        if self.remaining_chars == 0 && !self.parts.is_empty() {
            self.truncated =
                Some(TruncationReason::OutputChars { limit: self.limits.max_output_chars });
            return false;
        }
        if self.started.elapsed() > self.limits.max_duration {
            self.truncated = Some(TruncationReason::Time { limit: self.limits.max_duration });
            return false;
        }
        true
    }

    /// A text buffer capped at the characters still allowed.
    pub(crate) fn sink(&self) -> CappedText {
        CappedText::new(self.remaining_chars)
    }

    /// Adds a part filled through [`Collector::sink`].
    pub(crate) fn push_sink(&mut self, label: impl Into<String>, sink: CappedText) {
        if sink.full {
            self.truncated =
                Some(TruncationReason::OutputChars { limit: self.limits.max_output_chars });
        }
        self.push_part(label, sink.text);
    }

    /// Adds a part, cutting its text at the remaining character budget.
    pub(crate) fn push_part(&mut self, label: impl Into<String>, text: String) {
        let mut text = tidy(&text);
        let chars = text.chars().count();
        if chars > self.remaining_chars {
            let cut = text.char_indices().nth(self.remaining_chars).map_or(text.len(), |(i, _)| i);
            text.truncate(cut);
            self.truncated =
                Some(TruncationReason::OutputChars { limit: self.limits.max_output_chars });
        }
        self.remaining_chars -= chars.min(self.remaining_chars);
        self.parts.push(Part { label: label.into(), text });
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    pub(crate) fn finish(self, total_parts: u32) -> Extracted {
        Extracted { parts: self.parts, total_parts, truncated: self.truncated, notes: self.notes }
    }
}

/// Trims trailing whitespace on every line and blank lines at both ends.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.trim_matches('\n').to_owned()
}

/// A string that stops growing at a character cap and remembers that it did.
pub(crate) struct CappedText {
    text: String,
    chars: usize,
    cap: usize,
    full: bool,
}

impl CappedText {
    pub(crate) fn new(cap: usize) -> Self {
        Self { text: String::new(), chars: 0, cap, full: false }
    }

    /// Appends as much of `s` as fits; false once the cap is reached.
    pub(crate) fn push_str(&mut self, s: &str) -> bool {
        if self.full {
            return false;
        }
        for c in s.chars() {
            if self.chars == self.cap {
                self.full = true;
                return false;
            }
            self.text.push(c);
            self.chars += 1;
        }
        true
    }

    pub(crate) fn push(&mut self, c: char) -> bool {
        self.push_str(c.encode_utf8(&mut [0; 4]))
    }

    /// Removes trailing characters in `set` (cell and paragraph separators).
    pub(crate) fn trim_end_of(&mut self, set: &[char]) {
        while let Some(c) = self.text.chars().next_back() {
            if !set.contains(&c) {
                break;
            }
            self.text.pop();
            self.chars -= 1;
        }
    }

    /// Characters that may still be added.
    pub(crate) fn remaining(&self) -> usize {
        self.cap - self.chars
    }

    /// Records that content was left out even though the text itself fits.
    pub(crate) fn mark_full(&mut self) {
        self.full = true;
    }

    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    pub(crate) fn ends_with(&self, c: char) -> bool {
        self.text.ends_with(c)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

#[cfg(test)]
mod tests;
