//! Unit tests for `extract`: every kind extracts known text, selections, limits, hostile
//! input (zip bombs, lying headers, corrupt and random bytes).

use std::io::{Cursor, Write};
use std::sync::OnceLock;

use fixtures::office::{self, Cell};
use proptest::prelude::*;
use zip::write::SimpleFileOptions;

use super::xlsx::column_name;
use super::*;

// ---------------------------------------------------------------- helpers

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)
}

/// A zip of `(name, content)` entries, deflated.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content) in entries {
        zip.start_file(*name, deflated()).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

const W_NS: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";

/// A minimal docx whose `w:body` holds `body`.
fn docx_of(body: &str) -> Vec<u8> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><w:document xmlns:w=\"{W_NS}\" \
         xmlns:mc=\"http://schemas.openxmlformats.org/markup-compatibility/2006\">\
         <w:body>{body}</w:body></w:document>"
    );
    zip_of(&[("[Content_Types].xml", b"<Types/>"), ("word/document.xml", xml.as_bytes())])
}

fn para(text: &str) -> String {
    format!("<w:p><w:r><w:t>{text}</w:t></w:r></w:p>")
}

fn slide_xml(lines: &[&str]) -> String {
    let paras: String =
        lines.iter().map(|l| format!("<a:p><a:r><a:t>{l}</a:t></a:r></a:p>")).collect();
    format!(
        "<p:sld xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\" \
         xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\"><p:cSld><p:spTree>\
         <p:sp><p:txBody>{paras}</p:txBody></p:sp></p:spTree></p:cSld></p:sld>"
    )
}

/// A pptx whose presentation lists the slide files in `order` (file numbers, 1-based).
fn pptx_ordered(slides: &[&[&str]], order: &[usize]) -> Vec<u8> {
    let mut rels = String::from("<Relationships>");
    let mut ids = String::new();
    for (i, n) in order.iter().enumerate() {
        rels.push_str(&format!(
            "<Relationship Id=\"rId{n}\" Type=\"slide\" Target=\"slides/slide{n}.xml\"/>"
        ));
        ids.push_str(&format!("<p:sldId id=\"{}\" r:id=\"rId{n}\"/>", 256 + i));
    }
    rels.push_str("</Relationships>");
    let presentation = format!(
        "<p:presentation xmlns:p=\"p\" xmlns:r=\"r\"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"
    );
    let slide_xmls: Vec<(String, String)> = slides
        .iter()
        .enumerate()
        .map(|(i, lines)| (format!("ppt/slides/slide{}.xml", i + 1), slide_xml(lines)))
        .collect();
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("ppt/presentation.xml", presentation.as_bytes()),
        ("ppt/_rels/presentation.xml.rels", rels.as_bytes()),
    ];
    entries.extend(slide_xmls.iter().map(|(n, x)| (n.as_str(), x.as_bytes())));
    zip_of(&entries)
}

fn run(bytes: &[u8], kind: FileKind) -> Result<Extracted, ExtractError> {
    extract(bytes, kind, &Selection::all(), &Limits::default())
}

fn texts(extracted: &Extracted) -> Vec<(&str, &str)> {
    extracted.parts.iter().map(|p| (p.label.as_str(), p.text.as_str())).collect()
}

fn budget_workbook() -> Vec<u8> {
    office::xlsx(&[
        (
            "Budget",
            vec![
                vec![Cell::from("Item"), Cell::from("Cost"), Cell::from("Owner")],
                vec![Cell::from("Laptops"), Cell::from(1200), Cell::from("Adele")],
                vec![Cell::from("Travel"), Cell::from(350.5), Cell::Empty],
                vec![Cell::from("Approved"), Cell::from(true)],
            ],
        ),
        ("Notes", vec![vec![Cell::from("Quarterly review")]]),
    ])
}

/// 100 MiB of zeros deflated into one `word/document.xml` (about 100 KiB): built once.
fn zero_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("word/document.xml", deflated().large_file(false)).unwrap();
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..100 {
            zip.write_all(&chunk).unwrap();
        }
        zip.finish().unwrap().into_inner()
    })
}

/// Rewrites the uncompressed size of every entry, in local and central headers.
fn lie_about_sizes(zip: &[u8], size: u32) -> Vec<u8> {
    let mut out = zip.to_vec();
    let mut i = 0;
    while i + 46 <= out.len() {
        if out[i..].starts_with(b"PK\x03\x04") {
            out[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
        } else if out[i..].starts_with(b"PK\x01\x02") {
            out[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
        }
        i += 1;
    }
    out
}

// ---------------------------------------------------------------- detection

#[test]
fn detect_uses_the_extension_then_the_mime_type() {
    let docx = docx_of(&para("x"));
    assert_eq!(FileKind::detect("Report.DOCX", None, &docx), Some(FileKind::Docx));
    assert_eq!(FileKind::detect("notes.md", Some("text/plain"), b"# hi"), Some(FileKind::Markdown));
    assert_eq!(
        FileKind::detect("download", Some("text/html; charset=utf-8"), b"<p>hi</p>"),
        Some(FileKind::Html)
    );
    assert_eq!(FileKind::detect("data.csv", None, b"a,b\n1,2"), Some(FileKind::Csv));
    assert_eq!(FileKind::detect("empty.pdf", None, b""), Some(FileKind::Pdf));
}

#[test]
fn detect_refuses_a_claim_the_magic_bytes_contradict() {
    let pdf = office::pdf(&["hello"]);
    assert_eq!(FileKind::detect("report.docx", None, &pdf), None);
    assert_eq!(FileKind::detect("report.pdf", None, b"plain words"), None);
    assert_eq!(FileKind::detect("notes.txt", None, &docx_of(&para("x"))), None);
    assert_eq!(
        run(&pdf, FileKind::Docx),
        Err(ExtractError::KindMismatch { claimed: FileKind::Docx, found: "a PDF document" })
    );
}

#[test]
fn detect_identifies_self_describing_content_without_a_claim() {
    assert_eq!(FileKind::detect("blob", None, &office::pdf(&["x"])), Some(FileKind::Pdf));
    assert_eq!(FileKind::detect("blob", None, &office::docx(&["x"])), Some(FileKind::Docx));
    assert_eq!(FileKind::detect("blob", None, &budget_workbook()), Some(FileKind::Xlsx));
    assert_eq!(FileKind::detect("blob", None, &office::pptx(&[&["x"]])), Some(FileKind::Pptx));
    assert_eq!(FileKind::detect("blob", Some("application/octet-stream"), b"text"), None);
}

#[test]
fn legacy_and_password_protected_office_files_are_named_as_such() {
    let mut cfb = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
    cfb.extend_from_slice(&[0; 64]);
    assert!(matches!(run(&cfb, FileKind::Xlsx), Err(ExtractError::Unsupported { .. })));
    cfb.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(run(&cfb, FileKind::Docx), Err(ExtractError::Encrypted { kind: FileKind::Docx }));
}

// ---------------------------------------------------------------- docx

#[test]
fn docx_paragraphs_tabs_breaks_and_entities_become_lines() {
    let body = format!(
        "{}<w:p><w:r><w:t>Cost</w:t><w:tab/><w:t>R&amp;D &#169;</w:t><w:br/><w:t>next</w:t></w:r></w:p><w:p/>{}",
        para("Quarterly plan"),
        para("Done")
    );
    let out = run(&docx_of(&body), FileKind::Docx).unwrap();
    assert_eq!(texts(&out), vec![("Document", "Quarterly plan\nCost\tR&D ©\nnext\n\nDone")]);
    assert_eq!(out.total_parts, 1);
    assert_eq!(out.truncated, None);
}

#[test]
fn docx_tables_keep_cells_on_their_row() {
    let cell = |t: &str| format!("<w:tc>{}</w:tc>", para(t));
    let two_paras = format!("<w:tc>{}{}</w:tc>", para("multi"), para("line"));
    let body = format!(
        "<w:tbl><w:tr>{}{}</w:tr><w:tr>{}{}</w:tr></w:tbl>{}",
        cell("Name"),
        cell("Qty"),
        two_paras,
        cell("3"),
        para("after")
    );
    let out = run(&docx_of(&body), FileKind::Docx).unwrap();
    assert_eq!(out.parts[0].text, "Name\tQty\nmulti line\t3\nafter");
}

#[test]
fn docx_skips_deleted_text_field_codes_tab_stops_and_fallback_copies() {
    let body = "<w:p><w:pPr><w:tabs><w:tab w:val=\"left\" w:pos=\"720\"/></w:tabs></w:pPr>\
        <w:r><w:t>kept</w:t></w:r><w:del><w:r><w:delText>gone</w:delText></w:r></w:del>\
        <w:r><w:instrText>PAGE</w:instrText></w:r></w:p>\
        <mc:AlternateContent><mc:Choice><w:p><w:r><w:t>box</w:t></w:r></w:p></mc:Choice>\
        <mc:Fallback><w:p><w:r><w:t>box</w:t></w:r></w:p></mc:Fallback></mc:AlternateContent>";
    let out = run(&docx_of(body), FileKind::Docx).unwrap();
    assert_eq!(out.parts[0].text, "kept\nbox");
}

#[test]
fn docx_from_the_fixture_writer_round_trips() {
    let bytes = office::docx(&["First paragraph", "Second & last <one>"]);
    let out = run(&bytes, FileKind::Docx).unwrap();
    assert_eq!(out.to_text(), "First paragraph\nSecond & last <one>");
}

#[test]
fn a_package_without_the_main_part_is_corrupt_or_mislabelled() {
    let bare = zip_of(&[("readme.txt", b"hello")]);
    assert!(matches!(run(&bare, FileKind::Docx), Err(ExtractError::Corrupt { .. })));
    let workbook = budget_workbook();
    assert!(matches!(
        run(&workbook, FileKind::Docx),
        Err(ExtractError::KindMismatch { claimed: FileKind::Docx, .. })
    ));
}

// ---------------------------------------------------------------- pptx

#[test]
fn pptx_slides_follow_the_presentation_order() {
    let bytes = pptx_ordered(&[&["first file"], &["second file", "more"]], &[2, 1]);
    let out = run(&bytes, FileKind::Pptx).unwrap();
    assert_eq!(texts(&out), vec![("Slide 1", "second file\nmore"), ("Slide 2", "first file")]);
    assert_eq!(out.total_parts, 2);
}

#[test]
fn pptx_without_a_slide_list_orders_slide_files_by_number() {
    let mut entries: Vec<(String, String)> = (1..=11)
        .map(|n| (format!("ppt/slides/slide{n}.xml"), slide_xml(&[&format!("s{n}")])))
        .collect();
    entries.push(("ppt/presentation.xml".into(), "<p:presentation xmlns:p=\"p\"/>".into()));
    let refs: Vec<(&str, &[u8])> =
        entries.iter().map(|(n, x)| (n.as_str(), x.as_bytes())).collect();
    let out = run(&zip_of(&refs), FileKind::Pptx).unwrap();
    let labels: Vec<&str> = out.parts.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(labels, ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11"]);
}

#[test]
fn pptx_selection_returns_only_the_chosen_slides() {
    let bytes = office::pptx(&[&["One", "a"], &["Two", "b"], &["Three", "c"]]);
    let out =
        extract(&bytes, FileKind::Pptx, &Selection::pages(2..=9), &Limits::default()).unwrap();
    let labels: Vec<&str> = out.parts.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["Slide 2", "Slide 3"]);
    assert!(out.parts[0].text.contains("Two"));
    assert!(out.parts[1].text.contains("Three"));
    assert_eq!(out.total_parts, 3);
    let miss = extract(&bytes, FileKind::Pptx, &Selection::pages(4..=5), &Limits::default());
    assert!(matches!(miss, Err(ExtractError::InvalidSelection { .. })));
}

// ---------------------------------------------------------------- xlsx

#[test]
fn xlsx_renders_each_sheet_as_a_grid_with_coordinates() {
    let out = run(&budget_workbook(), FileKind::Xlsx).unwrap();
    assert_eq!(out.total_parts, 2);
    assert_eq!(
        texts(&out),
        vec![
            (
                "Sheet Budget",
                "\tA\tB\tC\n1\tItem\tCost\tOwner\n2\tLaptops\t1200\tAdele\n3\tTravel\t350.5\n4\tApproved\tTRUE"
            ),
            ("Sheet Notes", "\tA\n1\tQuarterly review"),
        ]
    );
}

#[test]
fn xlsx_selects_sheets_by_name_position_and_range() {
    let bytes = budget_workbook();
    let limits = Limits::default();
    let by_name = extract(&bytes, FileKind::Xlsx, &Selection::sheet("notes"), &limits).unwrap();
    assert_eq!(texts(&by_name), vec![("Sheet Notes", "\tA\n1\tQuarterly review")]);

    let by_position = extract(&bytes, FileKind::Xlsx, &Selection::pages(2..=2), &limits).unwrap();
    assert_eq!(by_position.parts[0].label, "Sheet Notes");

    let range = Selection::sheet("Budget").with_cell_range("B2:C3");
    let ranged = extract(&bytes, FileKind::Xlsx, &range, &limits).unwrap();
    assert_eq!(texts(&ranged), vec![("Sheet Budget", "\tB\tC\n2\t1200\tAdele\n3\t350.5")]);

    let prefixed = Selection::all().with_cell_range("'Budget'!A4");
    let cell = extract(&bytes, FileKind::Xlsx, &prefixed, &limits).unwrap();
    assert_eq!(texts(&cell), vec![("Sheet Budget", "\tA\n4\tApproved")]);
}

#[test]
fn xlsx_bad_selections_are_explained() {
    let bytes = budget_workbook();
    let limits = Limits::default();
    for selection in [
        Selection::sheet("Missing"),
        Selection::all().with_cell_range("A0"),
        Selection::all().with_cell_range("1A:B"),
        Selection::all().with_cell_range("A1:3"),
        Selection { sheet: Some("Budget".into()), pages: Some(1..=1), cell_range: None },
        Selection::sheet("Notes").with_cell_range("Budget!A1"),
    ] {
        let result = extract(&bytes, FileKind::Xlsx, &selection, &limits);
        assert!(matches!(result, Err(ExtractError::InvalidSelection { .. })), "{selection:?}");
    }
}

#[test]
fn cell_ranges_parse_in_a1_notation() {
    let parse = |s: &str| CellRange::parse(s).map(|(sheet, r)| (sheet, r.rows, r.columns));
    assert_eq!(parse("A1:D20"), Ok((None, (0, 19), (0, 3))));
    assert_eq!(parse("d20:a1"), Ok((None, (0, 19), (0, 3))));
    assert_eq!(parse("$B$2"), Ok((None, (1, 1), (1, 1))));
    assert_eq!(parse("A:C"), Ok((None, (0, 1_048_575), (0, 2))));
    assert_eq!(parse("2:10"), Ok((None, (1, 9), (0, 16_383))));
    assert_eq!(parse("XFD1048576"), Ok((None, (1_048_575, 1_048_575), (16_383, 16_383))));
    assert_eq!(parse("'It''s'!A1"), Ok((Some("It's".into()), (0, 0), (0, 0))));
    assert!(parse("XFE1").is_err());
    assert!(parse("A1048577").is_err());
    assert!(parse("").is_err());
    assert!(parse("A1:B2:C3").is_err());
    assert_eq!(column_name(0), "A");
    assert_eq!(column_name(25), "Z");
    assert_eq!(column_name(26), "AA");
    assert_eq!(column_name(16_383), "XFD");
}

#[test]
fn xlsx_sparse_far_cells_do_not_allocate_the_bounding_box() {
    let sheet = "<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">\
        <sheetData><row r=\"1\"><c r=\"A1\"><v>1</v></c></row>\
        <row r=\"1048576\"><c r=\"XFD1048576\"><v>2</v></c></row></sheetData></worksheet>";
    let bytes = zip_of(&[
        (
            "[Content_Types].xml",
            b"<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
              <Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
              <Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/></Types>",
        ),
        (
            "_rels/.rels",
            b"<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
              <Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>",
        ),
        (
            "xl/workbook.xml",
            b"<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" \
              xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">\
              <sheets><sheet name=\"Far\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>",
        ),
        (
            "xl/_rels/workbook.xml.rels",
            b"<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
              <Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>",
        ),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes()),
    ]);
    let limits = Limits { max_output_chars: 2_000, ..Limits::default() };
    let out = extract(&bytes, FileKind::Xlsx, &Selection::all(), &limits).unwrap();
    assert_eq!(out.parts[0].label, "Sheet Far");
    assert!(out.parts[0].text.chars().count() <= 2_000);
    assert!(matches!(out.truncated, Some(TruncationReason::OutputChars { limit: 2_000 })));
    let corner = Selection::all().with_cell_range("XFD1048576");
    let far = extract(&bytes, FileKind::Xlsx, &corner, &limits).unwrap();
    assert_eq!(far.parts[0].text, "\tXFD\n1048576\t2");
}

// ---------------------------------------------------------------- pdf

#[test]
fn pdf_pages_are_parts_and_can_be_selected() {
    let bytes = office::pdf(&["Alpha page", "Bravo page", "Charlie page"]);
    let out = run(&bytes, FileKind::Pdf).unwrap();
    assert_eq!(out.total_parts, 3);
    let labels: Vec<&str> = out.parts.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["Page 1", "Page 2", "Page 3"]);
    assert!(out.parts[1].text.contains("Bravo page"), "{:?}", out.parts[1].text);

    let some =
        extract(&bytes, FileKind::Pdf, &Selection::pages(3..=3), &Limits::default()).unwrap();
    assert_eq!(some.parts.len(), 1);
    assert!(some.parts[0].text.contains("Charlie page"));
    assert!(some.to_text().contains("[1 of 3 parts shown]"));
}

/// A hand-written one-page PDF, independent of the fixture writer.
fn handmade_pdf(text: &str) -> Vec<u8> {
    handmade_pdf_with(text, &[])
}

/// [`handmade_pdf`] plus extra (unreferenced) objects, given as raw bytes.
fn handmade_pdf_with(text: &str, extra: &[Vec<u8>]) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
         /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()).into_bytes(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ];
    objects.extend(extra.iter().cloned());
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[test]
fn a_handmade_pdf_extracts() {
    let out = run(&handmade_pdf("Hello from a hand-made PDF"), FileKind::Pdf).unwrap();
    assert_eq!(texts(&out), vec![("Page 1", "Hello from a hand-made PDF")]);
}

#[test]
fn a_pdf_whose_streams_inflate_past_the_budget_is_refused() {
    let mut compressed = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    compressed.write_all(&vec![b' '; 4 * 1024 * 1024]).unwrap();
    let body = compressed.finish().unwrap();
    let mut stream =
        format!("<< /Length {} /Filter /FlateDecode >>\nstream\n", body.len()).into_bytes();
    stream.extend_from_slice(&body);
    stream.extend_from_slice(b"\nendstream");
    let bytes = handmade_pdf_with("x", &[stream]);
    let limits = Limits { max_unzipped_bytes: 1024 * 1024, ..Limits::default() };
    let result = extract(&bytes, FileKind::Pdf, &Selection::all(), &limits);
    assert!(matches!(result, Err(ExtractError::ZipBomb { .. })), "{result:?}");
    assert!(run(&bytes, FileKind::Pdf).is_ok());
}

// ---------------------------------------------------------------- html and text

#[test]
fn html_bodies_lose_tags_scripts_and_styles() {
    let html = b"<html><head><style>p { color: red }</style><script>alert('x')</script></head>\
        <body><p>Hello <b>Adele</b>,</p><p>See the &amp; plan.</p><script>steal()</script></body></html>";
    let out = run(html, FileKind::Html).unwrap();
    let text = out.to_text();
    assert!(text.contains("Hello Adele,"), "{text}");
    assert!(text.contains("See the & plan."), "{text}");
    assert!(
        !text.contains("alert") && !text.contains("steal") && !text.contains("color"),
        "{text}"
    );
}

#[test]
fn deeply_nested_html_takes_the_linear_fallback() {
    // html2text would take hours on this (its layout is quadratic in depth).
    let html = format!(
        "<style>x</style>{}Deep &amp; <b>bold</b>{}<p>para&#33;<p>next",
        "<div>".repeat(200_000),
        "</div>".repeat(200_000)
    );
    let started = std::time::Instant::now();
    let out = run(html.as_bytes(), FileKind::Html).unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(out.parts[0].text, "Deep & bold\n\npara!\nnext");
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
}

#[test]
fn ordinary_html_is_laid_out_not_stripped() {
    let html = format!("{}<ul><li>one<li>two</ul>{}", "<div>".repeat(50), "</div>".repeat(50));
    assert!(text::nesting_depth(&html) < 60);
    let out = run(html.as_bytes(), FileKind::Html).unwrap();
    assert!(out.notes.is_empty());
    assert!(out.parts[0].text.contains("one") && out.parts[0].text.contains("two"));
}

#[test]
fn the_tag_stripper_drops_hidden_elements_and_decodes_references() {
    let html = "<head><title>t</title></head><script>var a = '<p>';</script><!-- c -->\
        <table><tr><td>A&nbsp;1</td><td>&#x42;&lt;2&gt;</td></tr></table>&unknown; &amp";
    assert_eq!(text::strip_tags(html), "\nA 1\tB<2>\n\n&unknown; &amp\n");
}

#[test]
fn text_strips_the_bom_and_normalises_line_ends() {
    let out = run(b"\xEF\xBB\xBFa,b\r\n1,2\r\n", FileKind::Csv).unwrap();
    assert_eq!(texts(&out), vec![("Document", "a,b\n1,2")]);
    assert!(out.notes.is_empty());
    let utf16: Vec<u8> = b"\xFF\xFE"
        .iter()
        .copied()
        .chain("héllo".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    assert_eq!(run(&utf16, FileKind::Text).unwrap().to_text(), "héllo");
}

#[test]
fn invalid_utf8_is_replaced_with_a_note() {
    let out = run(b"caf\xE9 menu", FileKind::Markdown).unwrap();
    assert_eq!(out.parts[0].text, "caf\u{FFFD} menu");
    assert_eq!(out.notes.len(), 1);
    assert!(out.to_text().ends_with(
        "[note: the file is not valid UTF-8; invalid bytes were replaced with \u{FFFD}]"
    ));
}

// ---------------------------------------------------------------- empty, corrupt, limits

#[test]
fn empty_text_files_are_empty_and_empty_containers_are_errors() {
    for kind in [FileKind::Text, FileKind::Markdown, FileKind::Csv, FileKind::Html] {
        let out = run(b"", kind).unwrap();
        assert_eq!(out, Extracted::default());
        assert_eq!(out.to_text(), "");
    }
    for kind in [FileKind::Docx, FileKind::Xlsx, FileKind::Pptx, FileKind::Pdf] {
        assert_eq!(run(b"", kind), Err(ExtractError::EmptyFile { kind }));
    }
}

#[test]
fn corrupt_files_are_reported_as_corrupt() {
    let mut junk = b"PK\x03\x04".to_vec();
    junk.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    for kind in [FileKind::Docx, FileKind::Xlsx, FileKind::Pptx] {
        assert!(matches!(run(&junk, kind), Err(ExtractError::Corrupt { .. })), "{kind}");
    }
    let docx = office::docx(&["some text"; 50]);
    let truncated = &docx[..docx.len() / 2];
    assert!(matches!(run(truncated, FileKind::Docx), Err(ExtractError::Corrupt { .. })));
    let xlsx = budget_workbook();
    assert!(matches!(
        run(&xlsx[..xlsx.len() - 30], FileKind::Xlsx),
        Err(ExtractError::Corrupt { .. })
    ));
    let pdf = office::pdf(&["one", "two"]);
    let cut = run(&pdf[..pdf.len() / 3], FileKind::Pdf);
    assert!(matches!(cut, Err(ExtractError::Corrupt { .. })), "{cut:?}");
    let malformed_xml = docx_of("<w:p><w:r><w:t>open</w:r></w:p>");
    assert!(matches!(run(&malformed_xml, FileKind::Docx), Err(ExtractError::Corrupt { .. })));
}

#[test]
fn inputs_above_the_size_limit_are_refused_before_parsing() {
    let limits = Limits { max_input_bytes: 10, ..Limits::default() };
    let result = extract(b"hello world!", FileKind::Text, &Selection::all(), &limits);
    assert_eq!(result, Err(ExtractError::TooLarge { size: 12, limit: 10 }));
}

#[test]
fn output_is_cut_at_the_character_limit() {
    let limits = Limits { max_output_chars: 10, ..Limits::default() };
    let out =
        extract("añb".repeat(10).as_bytes(), FileKind::Text, &Selection::all(), &limits).unwrap();
    assert_eq!(out.parts[0].text, "añbañbañba");
    assert_eq!(out.truncated, Some(TruncationReason::OutputChars { limit: 10 }));
    assert!(out.to_text().ends_with("[truncated: output reached the 10-character limit]"));

    let long = office::docx(&["word "; 1_000]);
    let out = extract(&long, FileKind::Docx, &Selection::all(), &limits).unwrap();
    assert!(out.char_count() <= 10);
    assert!(out.parts[0].text.starts_with("word\nword"));
    assert_eq!(out.truncated, Some(TruncationReason::OutputChars { limit: 10 }));
}

#[test]
fn parts_beyond_the_part_limit_are_skipped_and_reported() {
    let limits = Limits { max_pages_or_sheets: 2, ..Limits::default() };
    let bytes = office::pdf(&["a", "b", "c"]);
    let out = extract(&bytes, FileKind::Pdf, &Selection::all(), &limits).unwrap();
    assert_eq!(out.parts.len(), 2);
    assert_eq!(out.total_parts, 3);
    assert_eq!(out.truncated, Some(TruncationReason::Parts { limit: 2 }));
}

#[test]
fn selections_that_do_not_fit_the_kind_are_refused() {
    let limits = Limits::default();
    let docx = office::docx(&["x"]);
    let pdf = office::pdf(&["x"]);
    let cases: [(&[u8], FileKind, Selection); 4] = [
        (&docx, FileKind::Docx, Selection::pages(1..=1)),
        (&pdf, FileKind::Pdf, Selection::sheet("Budget")),
        (&pdf, FileKind::Pdf, Selection::pages(0..=1)),
        #[allow(clippy::reversed_empty_ranges)]
        (&pdf, FileKind::Pdf, Selection::pages(3..=2)),
    ];
    for (bytes, kind, selection) in cases {
        let result = extract(bytes, kind, &selection, &limits);
        assert!(matches!(result, Err(ExtractError::InvalidSelection { .. })), "{selection:?}");
    }
}

#[test]
fn to_text_heads_multi_part_documents() {
    let out = Extracted {
        parts: vec![
            Part { label: "Slide 1".into(), text: "Hello".into() },
            Part { label: "Slide 2".into(), text: "World".into() },
        ],
        total_parts: 2,
        truncated: None,
        notes: vec![],
    };
    assert_eq!(out.to_text(), "## Slide 1\nHello\n\n## Slide 2\nWorld");
}

#[test]
fn error_messages_do_not_quote_content() {
    let secret = "TOP-SECRET-PAYLOAD";
    let bad = docx_of(&format!("<w:p><w:t>{secret}</w:x></w:p>"));
    let message = run(&bad, FileKind::Docx).unwrap_err().to_string();
    assert!(!message.contains(secret), "{message}");
    let bad_pdf = format!("%PDF-1.4\n{secret}");
    let message = run(bad_pdf.as_bytes(), FileKind::Pdf).unwrap_err().to_string();
    assert!(!message.contains(secret), "{message}");
}

// ---------------------------------------------------------------- zip bombs

#[test]
fn a_real_zip_bomb_is_refused() {
    let bomb = zero_bomb();
    assert!(bomb.len() < 1024 * 1024, "the bomb is {} bytes", bomb.len());
    let result = run(bomb, FileKind::Docx);
    assert!(matches!(result, Err(ExtractError::ZipBomb { .. })), "{result:?}");
}

#[test]
fn a_zip_whose_headers_lie_about_sizes_is_refused_while_inflating() {
    let liar = lie_about_sizes(zero_bomb(), 1_000);
    let result = run(&liar, FileKind::Docx);
    assert!(matches!(result, Err(ExtractError::ZipBomb { .. })), "{result:?}");
}

#[test]
fn an_xlsx_whose_headers_lie_is_refused_before_calamine_reads_it() {
    let workbook = budget_workbook();
    let liar = lie_about_sizes(&workbook, 10);
    let result = run(&liar, FileKind::Xlsx);
    assert!(matches!(result, Err(ExtractError::ZipBomb { .. })), "{result:?}");
}

#[test]
fn zip_entry_count_total_and_ratio_are_checked_in_the_central_directory() {
    let names: Vec<String> = (0..20).map(|i| format!("f{i}.xml")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    let many = zip_of(&entries);
    let limits = Limits { max_entries: 10, ..Limits::default() };
    let result = extract(&many, FileKind::Docx, &Selection::all(), &limits);
    assert!(matches!(result, Err(ExtractError::ZipBomb { .. })), "{result:?}");

    // 4 MiB of one byte compresses about 1000:1: above the 100:1 cap, below the total.
    let dense = zip_of(&[("word/document.xml", &vec![b'a'; 4 * 1024 * 1024])]);
    let result = run(&dense, FileKind::Docx);
    match result {
        Err(ExtractError::ZipBomb { reason }) => assert!(reason.contains("ratio"), "{reason}"),
        other => panic!("expected a ratio refusal, got {other:?}"),
    }

    let total = Limits { max_unzipped_bytes: 1_000, ..Limits::default() };
    let result = extract(&office::docx(&["text"; 100]), FileKind::Docx, &Selection::all(), &total);
    assert!(matches!(result, Err(ExtractError::ZipBomb { .. })), "{result:?}");
}

#[test]
fn encrypted_zip_entries_are_reported_as_encrypted() {
    let mut bytes = docx_of(&para("x"));
    // Set bit 0 (encrypted) of the general-purpose flags in every header.
    let mut i = 0;
    while i + 8 <= bytes.len() {
        if bytes[i..].starts_with(b"PK\x03\x04") {
            bytes[i + 6] |= 1;
        } else if bytes[i..].starts_with(b"PK\x01\x02") {
            bytes[i + 8] |= 1;
        }
        i += 1;
    }
    assert_eq!(run(&bytes, FileKind::Docx), Err(ExtractError::Encrypted { kind: FileKind::Docx }));
}

// ---------------------------------------------------------------- async

#[tokio::test]
async fn extract_blocking_runs_off_the_runtime() {
    let bytes = office::docx(&["from the blocking pool"]);
    let out = extract_blocking(bytes, FileKind::Docx, Selection::all(), Limits::default()).await;
    assert_eq!(out.unwrap().to_text(), "from the blocking pool");
}

// ---------------------------------------------------------------- properties

const ALL_KINDS: [FileKind; 8] = [
    FileKind::Docx,
    FileKind::Xlsx,
    FileKind::Pptx,
    FileKind::Pdf,
    FileKind::Html,
    FileKind::Csv,
    FileKind::Markdown,
    FileKind::Text,
];

fn samples() -> &'static [(FileKind, Vec<u8>)] {
    static SAMPLES: OnceLock<Vec<(FileKind, Vec<u8>)>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        vec![
            (FileKind::Docx, office::docx(&["alpha", "beta"])),
            (FileKind::Xlsx, budget_workbook()),
            (FileKind::Pptx, office::pptx(&[&["one"], &["two"]])),
            (FileKind::Pdf, office::pdf(&["alpha", "beta"])),
            (FileKind::Html, b"<p>Hello <i>there</i></p>".to_vec()),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary bytes, raw or behind a zip or PDF header, never panic: text kinds always
    /// extract, containers are always refused.
    #[test]
    fn arbitrary_bytes_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        prefix in prop_oneof![Just(&b""[..]), Just(&b"PK\x03\x04"[..]), Just(&b"%PDF-1.7\n"[..])],
    ) {
        let bytes: Vec<u8> = prefix.iter().copied().chain(body).collect();
        for kind in ALL_KINDS {
            let result = extract(&bytes, kind, &Selection::all(), &Limits::default());
            if !kind.is_container() && prefix.is_empty() {
                prop_assert!(result.is_ok(), "{kind}: {result:?}");
            }
            if kind.is_container() && !bytes.is_empty() {
                prop_assert!(result.is_err(), "{kind}: {result:?}");
            }
        }
    }

    /// Valid documents with bytes overwritten anywhere never panic either.
    #[test]
    fn damaged_documents_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let (kind, original) = &samples()[which];
        let mut bytes = original.clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = extract(&bytes, *kind, &Selection::all(), &Limits::default());
        let _ = FileKind::detect("file", None, &bytes);
    }
}
