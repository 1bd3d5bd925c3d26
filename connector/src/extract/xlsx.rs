//! xlsx: calamine over an in-memory cursor, one part per worksheet (`Sheet {name}`).
//!
//! calamine inflates the package itself, so the zip guard runs first *and* inflates every
//! entry once through the counting reader: a lying header is caught before calamine trusts
//! it. Cells are then streamed with calamine's cell reader (never `worksheet_range`, which
//! allocates the whole bounding box: one cell at A1 and one at XFD1048576 would ask for
//! 17 billion cells).
//!
//! Each sheet renders as a tab-separated grid with A1 coordinates, so a reader can refer to
//! cells and ask for a narrower range:
//!
//! ```text
//!     A       B
//! 1   Item    Cost
//! 3   Total   42
//! ```
//!
//! (tabs between columns; rows without values are left out, so row numbers can jump).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Cursor;

use calamine::{DataRef, Reader, SheetType, Xlsx, XlsxError};

use super::zipguard::SafeZip;
use super::{Collector, ExtractError, Extracted, FileKind, Limits, Selection, invalid};

/// Excel's grid: 16,384 columns (XFD) by 1,048,576 rows.
const MAX_COLUMNS: u32 = 16_384;
const MAX_ROWS: u32 = 1_048_576;

/// A rectangular block of cells, 0-based and inclusive, parsed from A1 notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellRange {
    /// First and last row (0-based).
    pub rows: (u32, u32),
    /// First and last column (0-based; A is 0).
    pub columns: (u32, u32),
}

impl CellRange {
    /// Every cell of a sheet.
    pub const ALL: CellRange = CellRange { rows: (0, MAX_ROWS - 1), columns: (0, MAX_COLUMNS - 1) };

    /// Parses `"A1:D20"`, `"B2"`, `"A:C"` (whole columns) or `"2:10"` (whole rows), in any
    /// letter case, corners in either order. Returns the sheet prefix too when the text is
    /// `"Sheet!A1:D20"` or `"'My sheet'!A1"`.
    pub fn parse(text: &str) -> Result<(Option<String>, CellRange), ExtractError> {
        let text = text.trim();
        let (sheet, range) = match text.rsplit_once('!') {
            Some((sheet, range)) => {
                let sheet = sheet
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .map_or_else(|| sheet.to_owned(), |quoted| quoted.replace("''", "'"));
                (Some(sheet), range)
            }
            None => (None, text),
        };
        let (first, last) = range.split_once(':').unwrap_or((range, range));
        let (r1, c1) = corner(first)?;
        let (r2, c2) = corner(last)?;
        // A corner may lack its row ("A") or column ("2"): that side spans the sheet. Both
        // corners must agree on which, or "A1:3" would be ambiguous.
        if r1.is_none() != r2.is_none() || c1.is_none() != c2.is_none() {
            return Err(bad_range());
        }
        let span = |a: Option<u32>, b: Option<u32>, max: u32| match (a, b) {
            (Some(a), Some(b)) => (a.min(b), a.max(b)),
            _ => (0, max - 1),
        };
        Ok((sheet, CellRange { rows: span(r1, r2, MAX_ROWS), columns: span(c1, c2, MAX_COLUMNS) }))
    }

    fn contains(&self, row: u32, column: u32) -> bool {
        (self.rows.0..=self.rows.1).contains(&row)
            && (self.columns.0..=self.columns.1).contains(&column)
    }
}

fn bad_range() -> ExtractError {
    invalid("the cell range is not in A1 notation (e.g. A1:D20, B2, A:C or 2:10)")
}

/// One corner: optional column letters then optional row digits, `$` allowed.
fn corner(text: &str) -> Result<(Option<u32>, Option<u32>), ExtractError> {
    let text = text.trim().replace('$', "");
    let split = text.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (letters, digits) = text.split_at(split);
    if letters.is_empty() && digits.is_empty() {
        return Err(bad_range());
    }
    let column = if letters.is_empty() {
        None
    } else {
        if letters.len() > 3 {
            return Err(bad_range());
        }
        let n = letters
            .bytes()
            .fold(0u32, |n, b| n * 26 + u32::from(b.to_ascii_uppercase() - b'A' + 1));
        if n > MAX_COLUMNS {
            return Err(bad_range());
        }
        Some(n - 1)
    };
    let row = if digits.is_empty() {
        None
    } else {
        let n: u32 = digits.parse().map_err(|_| bad_range())?;
        if n == 0 || n > MAX_ROWS {
            return Err(bad_range());
        }
        Some(n - 1)
    };
    Ok((row, column))
}

/// Column letters for a 0-based index (0 -> A, 26 -> AA).
pub(crate) fn column_name(mut index: u32) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

pub(crate) fn xlsx(
    bytes: &[u8],
    selection: &Selection,
    limits: &Limits,
) -> Result<Extracted, ExtractError> {
    let kind = FileKind::Xlsx;
    let (range_sheet, range) = match &selection.cell_range {
        Some(text) => CellRange::parse(text)?,
        None => (None, CellRange::ALL),
    };
    if let (Some(a), Some(b)) = (&range_sheet, &selection.sheet)
        && a != b
    {
        return Err(invalid("the cell range names a different sheet than the selection"));
    }
    let sheet_name = selection.sheet.clone().or(range_sheet);

    let mut zip = SafeZip::open(bytes, kind, limits)?;
    if !zip.contains("xl/workbook.xml") {
        return Err(if zip.contains("word/document.xml") || zip.contains("ppt/presentation.xml") {
            ExtractError::KindMismatch { claimed: kind, found: "another Office format" }
        } else {
            ExtractError::corrupt(kind, "the package has no workbook part")
        });
    }
    zip.verify_all()?;

    let mut workbook = Xlsx::new(Cursor::new(bytes)).map_err(workbook_error)?;
    let is_1904 = workbook.has_1904_epoch();
    let sheets: Vec<String> = workbook
        .sheets_metadata()
        .iter()
        .filter(|s| s.typ == SheetType::WorkSheet)
        .map(|s| s.name.clone())
        .collect();
    let total = u32::try_from(sheets.len()).unwrap_or(u32::MAX);

    let chosen: Vec<(u32, &String)> = match &sheet_name {
        Some(wanted) => {
            let found = sheets
                .iter()
                .position(|s| s == wanted)
                .or_else(|| sheets.iter().position(|s| s.eq_ignore_ascii_case(wanted)))
                .ok_or_else(|| {
                    invalid(format!("the workbook has no sheet of that name ({total} sheets)"))
                })?;
            vec![(found as u32 + 1, &sheets[found])]
        }
        None => selection
            .positions(total, "sheet")?
            .map(|position| (position, &sheets[position as usize - 1]))
            .collect(),
    };

    let mut collector = Collector::new(limits);
    for (_, name) in chosen {
        if !collector.can_start_part() {
            break;
        }
        let budget = collector.sink();
        let (text, full) = render_sheet(&mut workbook, name, &range, is_1904, budget.remaining())?;
        let mut sink = budget;
        sink.push_str(&text);
        if full {
            // Cells beyond the budget were not collected: mark the cut even if the rendered
            // grid happens to fit.
            sink.mark_full();
        }
        collector.push_sink(format!("Sheet {name}"), sink);
    }
    Ok(collector.finish(total))
}

/// Renders the cells of `sheet` inside `range`; stops collecting past `budget` characters.
/// Returns the grid and whether cells were left out for the budget.
fn render_sheet(
    workbook: &mut Xlsx<Cursor<&[u8]>>,
    sheet: &str,
    range: &CellRange,
    is_1904: bool,
    budget: usize,
) -> Result<(String, bool), ExtractError> {
    let mut cells = workbook.worksheet_cells_reader(sheet).map_err(workbook_error)?;
    let mut rows: BTreeMap<u32, BTreeMap<u32, String>> = BTreeMap::new();
    let mut used = 0usize;
    let mut full = false;
    while let Some(cell) = cells.next_cell().map_err(workbook_error)? {
        let (row, column) = cell.get_position();
        if !range.contains(row, column) {
            continue;
        }
        let Some(value) = format_value(cell.get_value(), is_1904) else { continue };
        // Each value costs its length plus a separator.
        used += value.chars().count() + 1;
        if used > budget {
            full = true;
            break;
        }
        rows.entry(row).or_default().insert(column, value);
    }
    let Some(first_column) = rows.values().filter_map(|r| r.keys().next()).min().copied() else {
        return Ok((String::new(), full));
    };
    let last_column =
        rows.values().filter_map(|r| r.keys().next_back()).max().copied().unwrap_or(first_column);
    let mut out = String::new();
    for column in first_column..=last_column {
        out.push('\t');
        out.push_str(&column_name(column));
        // A sparse sheet can span thousands of columns: the header alone must not blow
        // through the budget.
        if out.len() > budget {
            return Ok((out, true));
        }
    }
    for (row, values) in &rows {
        out.push('\n');
        let _ = write!(out, "{}", row + 1);
        let mut column = first_column;
        for (&c, value) in values {
            while column < c {
                out.push('\t');
                column += 1;
            }
            out.push('\t');
            out.push_str(value);
            column += 1;
        }
        if out.len() > budget.saturating_mul(4) {
            return Ok((out, true));
        }
    }
    Ok((out, full))
}

/// A cell's display text; `None` for empty cells. Tabs and newlines inside a value become
/// spaces so the grid stays a grid.
fn format_value(value: &DataRef<'_>, is_1904: bool) -> Option<String> {
    let text = match value {
        DataRef::Empty => return None,
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => format_number(*f),
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        DataRef::DateTime(dt) if dt.is_datetime() => excel_date(dt.as_f64(), is_1904),
        DataRef::DateTime(dt) => format_number(dt.as_f64()),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(e) => e.to_string(),
    };
    let text = text.replace(['\t', '\n', '\r'], " ");
    if text.is_empty() { None } else { Some(text) }
}

fn format_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 { format!("{}", f as i64) } else { f.to_string() }
}

/// An Excel serial date as ISO 8601 (date, or date and time when there is a time part).
fn excel_date(serial: f64, is_1904: bool) -> String {
    // Serial 0 is 1899-12-30 in the 1900 system (Excel's fictitious 1900-02-29 is why
    // the epoch is not 12-31), and 1904-01-01 in the 1904 system.
    let epoch = if is_1904 {
        chrono::NaiveDate::from_ymd_opt(1904, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(1899, 12, 30)
    };
    let millis = (serial * 86_400_000.0).round();
    let datetime = epoch.and_then(|d| d.and_hms_opt(0, 0, 0)).and_then(|start| {
        if millis.is_finite() && millis.abs() < 1e15 {
            start.checked_add_signed(chrono::Duration::milliseconds(millis as i64))
        } else {
            None
        }
    });
    match datetime {
        Some(dt) if dt.time() == chrono::NaiveTime::MIN => dt.date().to_string(),
        Some(dt) => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => format_number(serial),
    }
}

fn workbook_error(err: XlsxError) -> ExtractError {
    let kind = FileKind::Xlsx;
    match err {
        XlsxError::Password => ExtractError::Encrypted { kind },
        _ => ExtractError::corrupt(kind, "the workbook cannot be read"),
    }
}
