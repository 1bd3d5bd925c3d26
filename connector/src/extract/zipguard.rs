//! The zip-bomb guard shared by docx, pptx and xlsx.
//!
//! Two layers, because a zip's headers are attacker-written:
//! 1. [`SafeZip::open`] reads only the central directory and refuses the package when it has
//!    too many entries, declares more inflated bytes than the budget, or declares an entry
//!    compressed beyond the ratio cap (entries under [`RATIO_FLOOR`] bytes are exempt).
//! 2. Every entry is read through [`EntryReader`], which counts the bytes actually inflated
//!    and fails as soon as an entry exceeds its *declared* size (the format requires them to
//!    be equal, so more means the header lied) or the package exceeds the global budget.
//!
//! Entries are looked up by their fixed part names only; no path is ever used on a disk.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Cursor, Read};

use zip::ZipArchive;
use zip::result::ZipError;

use super::{ExtractError, FileKind, Limits};

/// Entries smaller than this are exempt from the ratio cap: they cannot exhaust memory,
/// and small repetitive XML parts legitimately compress very well.
pub(crate) const RATIO_FLOOR: u64 = 1024 * 1024;

/// A zip package that passed the central-directory checks, with an inflation budget.
pub(crate) struct SafeZip<'a> {
    archive: ZipArchive<Cursor<&'a [u8]>>,
    kind: FileKind,
    /// Bytes that may still be inflated across all entries.
    budget: u64,
    limit: u64,
}

impl<'a> SafeZip<'a> {
    /// Opens `bytes` as a zip package and applies the central-directory checks.
    pub(crate) fn open(
        bytes: &'a [u8],
        kind: FileKind,
        limits: &Limits,
    ) -> Result<Self, ExtractError> {
        let archive = ZipArchive::new(Cursor::new(bytes)).map_err(|e| zip_error(kind, &e))?;
        if archive.len() > limits.max_entries {
            return Err(bomb(format!(
                "{} entries, above the limit of {}",
                archive.len(),
                limits.max_entries
            )));
        }
        let mut declared: u64 = 0;
        for index in 0..archive.len() {
            let entry = archive.by_index_data(index).map_err(|e| zip_error(kind, &e))?;
            if entry.encrypted() {
                return Err(ExtractError::Encrypted { kind });
            }
            let size = entry.size();
            if size > RATIO_FLOOR
                && size > entry.compressed_size().saturating_mul(limits.max_entry_ratio)
            {
                return Err(bomb(format!(
                    "an entry declares a compression ratio above {}:1",
                    limits.max_entry_ratio
                )));
            }
            declared = declared.saturating_add(size);
        }
        if declared > limits.max_unzipped_bytes {
            return Err(bomb(format!(
                "entries declare {declared} bytes uncompressed, above the limit of {}",
                limits.max_unzipped_bytes
            )));
        }
        Ok(Self {
            archive,
            kind,
            budget: limits.max_unzipped_bytes,
            limit: limits.max_unzipped_bytes,
        })
    }

    /// Entry names, in central-directory order (names that are not UTF-8 are skipped).
    pub(crate) fn names(&self) -> Vec<String> {
        self.archive.file_names().filter_map(Result::ok).map(Cow::into_owned).collect()
    }

    /// Index of a part by name; OPC part names are case-insensitive.
    fn index_of(&self, name: &str) -> Option<usize> {
        let name = name.trim_start_matches('/');
        self.archive.index_for_name(name).or_else(|| {
            (0..self.archive.len()).find(|&i| {
                self.archive
                    .name_for_index(i)
                    .and_then(Result::ok)
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        })
    }

    /// Whether the package has a part named `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }

    /// A counting reader over the part `name`, or `None` when there is no such part.
    pub(crate) fn entry(
        &mut self,
        name: &str,
    ) -> Result<Option<EntryReader<'_, 'a>>, ExtractError> {
        let Some(index) = self.index_of(name) else { return Ok(None) };
        let kind = self.kind;
        let file = self.archive.by_index(index).map_err(|e| zip_error(kind, &e))?;
        let declared = file.size();
        Ok(Some(EntryReader {
            file,
            declared_left: declared,
            budget: &mut self.budget,
            limit: self.limit,
        }))
    }

    /// Reads a whole part into memory (for the small parts: relationships, presentation).
    pub(crate) fn read_to_end(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let kind = self.kind;
        let Some(mut entry) = self.entry(name)? else { return Ok(None) };
        let mut out = Vec::new();
        entry.read_to_end(&mut out).map_err(|e| read_error(kind, &e))?;
        Ok(Some(out))
    }

    /// Inflates every entry into nothing, counting: used before handing the package to a
    /// parser (calamine) that inflates without our reader.
    pub(crate) fn verify_all(&mut self) -> Result<(), ExtractError> {
        let kind = self.kind;
        for name in self.names() {
            if let Some(mut entry) = self.entry(&name)? {
                io::copy(&mut entry, &mut io::sink()).map_err(|e| read_error(kind, &e))?;
            }
        }
        Ok(())
    }
}

/// Reads one entry, counting inflated bytes against its declared size and the budget.
pub(crate) struct EntryReader<'z, 'a> {
    file: zip::read::ZipFile<'z, Cursor<&'a [u8]>>,
    declared_left: u64,
    budget: &'z mut u64,
    limit: u64,
}

impl Read for EntryReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let allowed = self.declared_left.min(*self.budget);
        if allowed == 0 {
            // Nothing more may come out: one probe byte tells "ended" from "lied".
            let mut probe = [0u8; 1];
            return match self.file.read(&mut probe).map_err(classify)? {
                0 => Ok(0),
                _ if self.declared_left == 0 => {
                    Err(Tripped::err("an entry inflates beyond its declared size".into()))
                }
                _ => Err(Tripped::err(format!(
                    "content inflates beyond the limit of {} bytes",
                    self.limit
                ))),
            };
        }
        let max = usize::try_from(allowed).unwrap_or(usize::MAX).min(buf.len());
        let n = self.file.read(&mut buf[..max]).map_err(classify)?;
        self.declared_left -= n as u64;
        *self.budget -= n as u64;
        Ok(n)
    }
}

/// zip 9 enforces declared sizes itself and fails with this message when an entry inflates
/// past its header's size: that is a lying header, so it is reported as one.
/// (`a_zip_whose_headers_lie_about_sizes_is_refused_while_inflating` pins the wording.)
fn classify(err: io::Error) -> io::Error {
    if err.to_string().contains("larger than its declared uncompressed size") {
        Tripped::err("an entry inflates beyond its declared size".into())
    } else {
        err
    }
}

/// The payload of the `io::Error` an [`EntryReader`] fails with when a limit trips, so the
/// error can be told apart from corruption after passing through a parser.
#[derive(Debug)]
pub(crate) struct Tripped(pub(crate) String);

impl Tripped {
    fn err(reason: String) -> io::Error {
        io::Error::other(Tripped(reason))
    }

    /// The bomb reason carried by `err`, if it is one of ours.
    pub(crate) fn reason(err: &io::Error) -> Option<&str> {
        err.get_ref().and_then(|e| e.downcast_ref::<Tripped>()).map(|t| t.0.as_str())
    }
}

impl fmt::Display for Tripped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Tripped {}

pub(crate) fn bomb(reason: String) -> ExtractError {
    ExtractError::ZipBomb { reason }
}

/// Maps an I/O error from an entry: our trip wire, or a damaged entry.
pub(crate) fn read_error(kind: FileKind, err: &io::Error) -> ExtractError {
    match Tripped::reason(err) {
        Some(reason) => bomb(reason.to_owned()),
        None => ExtractError::corrupt(kind, "a part of the package cannot be inflated"),
    }
}

/// Maps a zip error to our own words (zip's messages are static, but stay uniform).
pub(crate) fn zip_error(kind: FileKind, err: &ZipError) -> ExtractError {
    match err {
        ZipError::UnsupportedArchive(_) | ZipError::CompressionMethodNotSupported(_) => {
            ExtractError::corrupt(kind, "the package uses an unsupported zip feature")
        }
        ZipError::InvalidPassword => ExtractError::Encrypted { kind },
        ZipError::Io(io) => read_error(kind, io),
        _ => ExtractError::corrupt(kind, "not a valid zip package"),
    }
}
