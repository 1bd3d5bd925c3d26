//! pdf: pdf-extract (on lopdf), one part per page (`Page N`).
//!
//! Pages are rendered one at a time with `output_doc_page`, so a page selection costs only
//! the selected pages, and one bad page does not lose the rest: it is returned empty with a
//! note. pdf-extract is known to panic on unusual files, so loading and every page run
//! under `catch_unwind`.
//!
//! lopdf inflates Flate streams without a size limit, so before it sees the file every
//! `stream … ` body that is zlib data is inflated once here, counting, against
//! [`Limits::max_unzipped_bytes`]. Image streams count too: a dictionary saying
//! `/Subtype /Image` is attacker-written like the rest, and lopdf inflates content streams
//! whatever they claim to be. The cost is that a huge scanned PDF with Flate bitmaps may be
//! refused; such a file has no text layer to extract anyway.
//!
//! Encrypted PDFs open when the user password is empty (common for "owner-password only"
//! files); otherwise they are [`ExtractError::Encrypted`]. Scanned PDFs have no text layer
//! and extract to empty pages.

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use flate2::read::ZlibDecoder;
use pdf_extract::{Document, OutputError, PlainTextOutput, output_doc_page};

use super::zipguard::bomb;
use super::{Collector, ExtractError, Extracted, FileKind, Limits, Selection};

const KIND: FileKind = FileKind::Pdf;

pub(crate) fn pdf(
    bytes: &[u8],
    selection: &Selection,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    guard_streams(bytes, limits)?;

    let mut doc = match catch_unwind(|| Document::load_mem(bytes)) {
        Ok(Ok(doc)) => doc,
        Ok(Err(err)) => return Err(load_error(&err)),
        Err(_) => return Err(ExtractError::corrupt(KIND, "the PDF structure cannot be read")),
    };
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(ExtractError::Encrypted { kind: KIND });
    }
    let pages = catch_unwind(AssertUnwindSafe(|| doc.get_pages().len()))
        .map_err(|_| ExtractError::corrupt(KIND, "the page tree cannot be read"))?;
    if pages == 0 {
        return Err(ExtractError::corrupt(KIND, "the PDF has no pages"));
    }
    let total = u32::try_from(pages).unwrap_or(u32::MAX);
    let positions = selection.positions(total, "page")?;

    let mut collector = Collector::new(limits);
    let (mut attempted, mut failed) = (0u32, 0u32);
    for page in positions {
        if !collector.can_start_part() {
            break;
        }
        attempted += 1;
        let text = match catch_unwind(AssertUnwindSafe(|| page_text(&doc, page))) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) | Err(_) => {
                failed += 1;
                collector.note("some pages could not be read and are returned empty");
                String::new()
            }
        };
        collector.push_part(format!("Page {page}"), text);
    }
    if attempted > 0 && failed == attempted {
        return Err(ExtractError::corrupt(KIND, "no page of the PDF can be read"));
    }
    Ok(collector.finish(total))
}

fn page_text(doc: &Document, page: u32) -> Result<String, OutputError> {
    let mut text = String::new();
    {
        let mut output = PlainTextOutput::new(&mut text);
        output_doc_page(doc, &mut output, page)?;
    }
    Ok(text)
}

fn load_error(err: &pdf_extract::Error) -> ExtractError {
    match err {
        pdf_extract::Error::Decryption(_) | pdf_extract::Error::InvalidPassword => {
            ExtractError::Encrypted { kind: KIND }
        }
        _ => ExtractError::corrupt(KIND, "the PDF structure cannot be read"),
    }
}

/// Inflates every zlib stream body once, refusing the file when the total exceeds the
/// budget. Bodies that are not zlib data fail to inflate and are skipped: lopdf will judge
/// them. Counting a body twice only makes the guard stricter.
fn guard_streams(bytes: &[u8], limits: &Limits) -> Result<(), ExtractError> {
    let budget = limits.max_unzipped_bytes;
    let mut inflated: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut from = 0;
    while let Some(found) = find(&bytes[from..], b"stream") {
        let keyword = from + found;
        from = keyword + b"stream".len();
        if keyword >= 3 && &bytes[keyword - 3..keyword] == b"end" {
            continue;
        }
        // The keyword is followed by CRLF or LF (a lone CR is tolerated).
        let start = match &bytes[from..] {
            [b'\r', b'\n', ..] => from + 2,
            [b'\n', ..] | [b'\r', ..] => from + 1,
            _ => continue,
        };
        let remaining = budget.saturating_sub(inflated);
        let mut decoder = ZlibDecoder::new(&bytes[start..]).take(remaining + 1);
        loop {
            match decoder.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => inflated += n as u64,
            }
        }
        if inflated > budget {
            return Err(bomb(format!("PDF streams inflate beyond the limit of {budget} bytes")));
        }
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
