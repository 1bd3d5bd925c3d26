//! Which [`FileKind`] a file is: the name and MIME type make a claim, the magic bytes
//! confirm or contradict it. A contradiction is an error, never a guess.

use std::io::Cursor;

use super::{ExtractError, FileKind, Limits};

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// An empty zip archive starts with its end-of-central-directory record.
const ZIP_EMPTY_MAGIC: &[u8] = b"PK\x05\x06";
const PDF_MAGIC: &[u8] = b"%PDF-";
/// Compound File Binary (OLE2): legacy .doc/.xls/.ppt, and password-protected OOXML.
const CFB_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
/// PDF readers accept the header a little way into the file (ISO 32000-2, §7.5.2 notes
/// leading garbage in the wild); 1 KiB is the customary window.
const PDF_HEADER_WINDOW: usize = 1024;

impl FileKind {
    /// Detects the kind of a file from its name, its MIME type and its first bytes.
    ///
    /// The extension is the claim when it is known; otherwise the MIME type (parameters
    /// such as `; charset=utf-8` are ignored). The magic bytes must agree with the claim
    /// (`PK\x03\x04` for docx/xlsx/pptx, `%PDF-` for pdf, neither for text kinds): if they do
    /// not, the answer is `None` and [`super::extract`] reports the precise mismatch.
    /// Without a claim, only content that identifies itself is recognised (a PDF, or a zip
    /// package holding a Word, Excel or PowerPoint main part); text is never guessed.
    /// An empty file keeps its claimed kind.
    pub fn detect(name: &str, mime: Option<&str>, bytes: &[u8]) -> Option<FileKind> {
        let claimed = Self::from_extension(name).or_else(|| mime.and_then(Self::from_mime));
        match claimed {
            Some(kind) => check_magic(kind, bytes).ok().map(|()| kind),
            None => sniff(bytes),
        }
    }

    /// The kind a file name's extension claims (case-insensitive).
    pub fn from_extension(name: &str) -> Option<FileKind> {
        let (_, ext) = name.rsplit_once('.')?;
        Some(match ext.to_ascii_lowercase().as_str() {
            "docx" | "docm" => FileKind::Docx,
            "xlsx" | "xlsm" => FileKind::Xlsx,
            "pptx" | "pptm" => FileKind::Pptx,
            "pdf" => FileKind::Pdf,
            "html" | "htm" => FileKind::Html,
            "csv" => FileKind::Csv,
            "md" | "markdown" => FileKind::Markdown,
            "txt" | "text" | "log" => FileKind::Text,
            _ => return None,
        })
    }

    /// The kind a MIME type claims; generic types (`application/octet-stream`,
    /// `application/zip`) claim nothing.
    pub fn from_mime(mime: &str) -> Option<FileKind> {
        let essence = mime.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        Some(match essence.as_str() {
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                FileKind::Docx
            }
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => FileKind::Xlsx,
            "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
                FileKind::Pptx
            }
            "application/pdf" => FileKind::Pdf,
            "text/html" | "application/xhtml+xml" => FileKind::Html,
            "text/csv" => FileKind::Csv,
            "text/markdown" | "text/x-markdown" => FileKind::Markdown,
            "text/plain" => FileKind::Text,
            _ => return None,
        })
    }
}

/// Checks that `bytes` can be what `kind` claims. Empty input passes (the caller decides
/// what an empty file means).
pub(crate) fn check_magic(kind: FileKind, bytes: &[u8]) -> Result<(), ExtractError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let found = describe(bytes);
    match kind {
        FileKind::Docx | FileKind::Xlsx | FileKind::Pptx => {
            if bytes.starts_with(ZIP_MAGIC) || bytes.starts_with(ZIP_EMPTY_MAGIC) {
                Ok(())
            } else if bytes.starts_with(CFB_MAGIC) {
                // Office wraps password-protected OOXML in a CFB file with an
                // "EncryptedPackage" stream; any other CFB file is a legacy binary document.
                if contains(bytes, &utf16le("EncryptedPackage")) {
                    Err(ExtractError::Encrypted { kind })
                } else {
                    Err(ExtractError::Unsupported {
                        what: "the legacy binary Office format (.doc, .xls, .ppt)",
                    })
                }
            } else {
                Err(ExtractError::KindMismatch { claimed: kind, found })
            }
        }
        FileKind::Pdf if pdf_header_at(bytes).is_some() => Ok(()),
        FileKind::Pdf => Err(ExtractError::KindMismatch { claimed: kind, found }),
        FileKind::Html | FileKind::Csv | FileKind::Markdown | FileKind::Text => {
            if bytes.starts_with(ZIP_MAGIC)
                || bytes.starts_with(PDF_MAGIC)
                || bytes.starts_with(CFB_MAGIC)
            {
                Err(ExtractError::KindMismatch { claimed: kind, found })
            } else {
                Ok(())
            }
        }
    }
}

/// Offset of `%PDF-` within the header window.
pub(crate) fn pdf_header_at(bytes: &[u8]) -> Option<usize> {
    let window = &bytes[..bytes.len().min(PDF_HEADER_WINDOW)];
    window.windows(PDF_MAGIC.len()).position(|w| w == PDF_MAGIC)
}

/// What the first bytes show, for mismatch messages.
fn describe(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(ZIP_MAGIC) || bytes.starts_with(ZIP_EMPTY_MAGIC) {
        "a zip archive"
    } else if bytes.starts_with(PDF_MAGIC) {
        "a PDF document"
    } else if bytes.starts_with(CFB_MAGIC) {
        "a legacy Office (OLE) file"
    } else if bytes.iter().take(512).any(|&b| b == 0) {
        "unrecognised binary data"
    } else {
        "text or unrecognised data"
    }
}

/// Identifies self-describing content when nothing was claimed.
fn sniff(bytes: &[u8]) -> Option<FileKind> {
    if bytes.starts_with(PDF_MAGIC) {
        return Some(FileKind::Pdf);
    }
    if !bytes.starts_with(ZIP_MAGIC) || bytes.len() as u64 > Limits::default().max_input_bytes {
        return None;
    }
    // Only the central directory is read here: no entry is inflated.
    let archive = zip::ZipArchive::new(Cursor::new(bytes)).ok()?;
    let has =
        |part: &str| archive.file_names().any(|n| n.is_ok_and(|n| n.eq_ignore_ascii_case(part)));
    if has("word/document.xml") {
        Some(FileKind::Docx)
    } else if has("xl/workbook.xml") {
        Some(FileKind::Xlsx)
    } else if has("ppt/presentation.xml") {
        Some(FileKind::Pptx)
    } else {
        None
    }
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
