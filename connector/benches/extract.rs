//! Throughput of `connector::extract` on a large docx, without a benchmark framework.
//!
//! Run with `cargo bench -p connector --bench extract`. Prints MB/s of input (the zipped
//! file) and of inflated `word/document.xml`, best of a few runs.

use std::time::{Duration, Instant};

use connector::extract::{FileKind, Limits, Selection, extract};

fn main() {
    // About 40,000 paragraphs of prose: a long report.
    let paragraph = "The quarterly plan covers budget, hiring and travel for the Contoso \
                     sales teams, with owners and dates for each milestone.";
    let paragraphs: Vec<&str> = std::iter::repeat_n(paragraph, 40_000).collect();
    let docx = fixtures::office::docx(&paragraphs);
    let xml_bytes =
        paragraphs.len() * (paragraph.len() + "<w:p><w:r><w:t></w:t></w:r></w:p>".len());
    let limits = Limits { max_output_chars: usize::MAX, ..Limits::default() };

    let mut best = Duration::MAX;
    let mut chars = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let out = extract(&docx, FileKind::Docx, &Selection::all(), &limits)
            .expect("the generated docx extracts");
        best = best.min(started.elapsed());
        chars = out.char_count();
    }
    let secs = best.as_secs_f64();
    let mb = |bytes: usize| bytes as f64 / 1_000_000.0;
    println!(
        "docx: {:.1} MB zipped, ~{:.1} MB XML, {chars} chars out in {:.1} ms: \
         {:.1} MB/s zipped, ~{:.1} MB/s XML",
        mb(docx.len()),
        mb(xml_bytes),
        secs * 1000.0,
        mb(docx.len()) / secs,
        mb(xml_bytes) / secs,
    );
}
