//! The code-table file format, shared by the builder and the loader.
//!
//! A gzip-compressed UTF-8 text file, one record a line, fields split by tabs
//! (shown here as runs of spaces):
//!
//! ```text
//! #icdbench-icd10cm-table  1
//! #source   file=icd10c-tabular-April-1-2026.xml  sha256=<hex>  package=simple-icd-10-cm==1.5.0  version=2026
//! #counts   entries=98186  billable=74719  inclusion_terms=12569
//! #chapter  4  E00-E89  Endocrine, nutritional and metabolic diseases
//! #columns  code  billable  description  inclusion_terms  parent  block  chapter
//! E11.9     1     Type 2 diabetes mellitus without complications  <no terms>  E11  E08-E13  4
//! ```
//!
//! Inclusion terms are joined with [`TERM_SEP`]; an empty field means none,
//! and an empty parent marks a 3-character category.
//!
//! Code rows come in tabular (pre-)order, so every parent precedes its
//! children. Text fields never hold a tab, a newline or [`TERM_SEP`]; the
//! builder collapses whitespace and swaps the separator out.

use std::io::Write;

use flate2::{Compression, GzBuilder};

/// First line of every table; the number is the format version.
pub(crate) const MAGIC: &str = "#icdbench-icd10cm-table";
/// First line of an ICD-10-PCS table (same format; rows have no parent, their
/// block is the code's first three axes).
pub(crate) const PCS_MAGIC: &str = "#icdbench-icd10pcs-table";
pub(crate) const FORMAT_VERSION: &str = "1";
pub(crate) const SOURCE: &str = "#source";
pub(crate) const COUNTS: &str = "#counts";
pub(crate) const CHAPTER: &str = "#chapter";
pub(crate) const COLUMNS: &str = "#columns";
pub(crate) const COLUMN_NAMES: [&str; 7] = [
    "code",
    "billable",
    "description",
    "inclusion_terms",
    "parent",
    "block",
    "chapter",
];

/// Joins inclusion terms in one field; absent from the tabular list's text.
pub(crate) const TERM_SEP: char = '|';

/// Collapse runs of whitespace (tabs and newlines included) to one space and
/// replace the term separator, so a text is safe in one field.
pub(crate) fn clean_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.contains(TERM_SEP) {
        out = out.replace(TERM_SEP, "/");
    }
    out
}

/// Gzip `text` with a fixed header (no file name, mtime 0, OS "unknown") so
/// the same text gives the same bytes, for a given deflate back end (flate2's
/// features pick zlib-rs or miniz_oxide; their streams differ).
pub(crate) fn gzip_deterministic(text: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(text.len() / 4), Compression::best());
    enc.write_all(text)?;
    enc.finish()
}

/// True when `bytes` start with the gzip magic number.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_collapses_whitespace_and_separator() {
        assert_eq!(
            clean_text("\tinitial  encounter\nfor |open| fracture "),
            "initial encounter for /open/ fracture"
        );
        assert_eq!(clean_text("   "), "");
    }

    #[test]
    fn gzip_is_deterministic_and_has_no_timestamp() {
        let a = gzip_deterministic(b"hello\tworld\n").unwrap();
        let b = gzip_deterministic(b"hello\tworld\n").unwrap();
        assert_eq!(a, b);
        assert!(is_gzip(&a));
        assert_eq!(&a[4..8], &[0, 0, 0, 0], "mtime must be zero");
        assert_eq!(a[3] & 0x08, 0, "no file name in the header");
    }
}
