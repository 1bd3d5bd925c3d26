//! Throughput of `connector::extract` on a large docx, without a benchmark framework.
//!
//! Run with `cargo bench -p connector --bench extract`. Prints MB/s of input (the zipped
//! file) and of inflated `word/document.xml`, best of a few runs.

use std::time::{Duration, Instant};

use connector::extract::{FileKind, Limits, Selection, extract};

fn main() {
    // About 40,000 paragraphs of varied prose: a long report. (One sentence repeated would
    // compress beyond the 100:1 ratio cap and be refused, as a bomb would.)
    let words = [
        "budget",
        "hiring",
        "travel",
        "Contoso",
        "sales",
        "teams",
        "owners",
        "dates",
        "milestone",
        "quarterly",
        "plan",
        "covers",
        "review",
        "forecast",
        "region",
        "north",
        "south",
        "partner",
        "contract",
        "renewal",
        "pipeline",
        "risk",
        "status",
        "draft",
        "approved",
        "pending",
        "meeting",
        "agenda",
        "summary",
        "action",
        "item",
        "the",
        "and",
        "for",
        "with",
        "each",
        "of",
        "to",
        "in",
        "on",
    ];
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let paragraphs: Vec<String> = (0..40_000)
        .map(|i| {
            let mut p = format!("{i}.");
            for _ in 0..18 {
                // xorshift: deterministic, dependency-free word choice.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                p.push(' ');
                p.push_str(words[(seed % words.len() as u64) as usize]);
            }
            p
        })
        .collect();
    let refs: Vec<&str> = paragraphs.iter().map(String::as_str).collect();
    let docx = fixtures::office::docx(&refs);
    let xml_bytes: usize =
        paragraphs.iter().map(|p| p.len() + "<w:p><w:r><w:t></w:t></w:r></w:p>".len()).sum();
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
