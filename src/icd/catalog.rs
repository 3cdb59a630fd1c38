//! [`CodeSet`]: the loaded code table with its hierarchy.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use super::code::{normalise_prefix, Code, System};
use super::table::{self, TERM_SEP};
use super::{Chapter, CodeEntry, IcdError};

/// The committed FY2026 table (see datasets/icd10cm/README.md).
static BUILTIN_BYTES: &[u8] = include_bytes!("../../datasets/icd10cm/icd10cm-2026.tsv.gz");
/// How error messages name the builtin table.
pub const BUILTIN_ORIGIN: &str = "builtin table datasets/icd10cm/icd10cm-2026.tsv.gz";
/// The committed ICD-10-PCS table (see datasets/icd10pcs/README.md).
static BUILTIN_PCS_BYTES: &[u8] = include_bytes!("../../datasets/icd10pcs/icd10pcs-2024.tsv.gz");
/// How error messages name the builtin procedure table.
pub const BUILTIN_PCS_ORIGIN: &str = "builtin table datasets/icd10pcs/icd10pcs-2024.tsv.gz";
/// Chapter numbers of ICD-10-PCS sections start here (ICD-10-CM chapters are 1-22).
pub const PCS_CHAPTER_BASE: u8 = 100;

/// Where one table of a [`CodeSet`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSource {
    pub origin: String,
    pub system: System,
    /// File name of the source the table was built from.
    pub file: String,
    pub sha256: String,
    /// The package that shipped it, e.g. "simple-icd-10-cm==1.5.0".
    pub package: String,
}

const NONE: u32 = u32::MAX;

/// Every code of one ICD-10-CM release: categories, subcategories and
/// billable codes, in tabular order, with parent/child links.
#[derive(Clone)]
pub struct CodeSet {
    origin: String,
    /// One per table file: the ICD-10-CM table first, then ICD-10-PCS where loaded.
    sources: Vec<TableSource>,
    chapters: Vec<Chapter>,
    entries: Vec<CodeEntry>,
    index: HashMap<Code, u32>,
    /// Parent row of each row, or NONE for a category.
    parent_of: Vec<u32>,
    /// Children of row i are `child_rows[child_start[i]..child_start[i + 1]]`.
    child_start: Vec<u32>,
    child_rows: Vec<u32>,
    /// Rows of the 3-character categories.
    top_rows: Vec<u32>,
}

impl fmt::Debug for CodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeSet")
            .field("origin", &self.origin)
            .field("source_sha256", &self.source_sha256())
            .field("entries", &self.entries.len())
            .field("chapters", &self.chapters.len())
            .finish_non_exhaustive()
    }
}

impl CodeSet {
    /// The committed table, parsed once on first use.
    pub fn builtin() -> Result<&'static CodeSet, IcdError> {
        static BUILTIN: OnceLock<Result<CodeSet, String>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                CodeSet::from_bytes(BUILTIN_BYTES, BUILTIN_ORIGIN).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|message| IcdError::Builtin {
                message: message.clone(),
            })
    }

    /// The committed ICD-10-CM and ICD-10-PCS tables together, parsed once on first use.
    pub fn builtin_with_procedures() -> Result<&'static CodeSet, IcdError> {
        static BUILTIN: OnceLock<Result<CodeSet, String>> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                CodeSet::from_tables(&[(BUILTIN_BYTES, BUILTIN_ORIGIN), (BUILTIN_PCS_BYTES, BUILTIN_PCS_ORIGIN)])
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|message| IcdError::Builtin {
                message: message.clone(),
            })
    }

    /// The embedded gzip bytes of the committed table, for fingerprinting.
    pub fn builtin_bytes() -> &'static [u8] {
        BUILTIN_BYTES
    }

    /// The embedded gzip bytes of the committed ICD-10-PCS table, for fingerprinting.
    pub fn builtin_pcs_bytes() -> &'static [u8] {
        BUILTIN_PCS_BYTES
    }

    /// Load a table file (gzip or plain text, same format).
    pub fn load(path: &Path) -> Result<CodeSet, IcdError> {
        let bytes = std::fs::read(path).map_err(|source| IcdError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        CodeSet::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parse a table from memory; `origin` names it in error messages.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<CodeSet, IcdError> {
        CodeSet::from_tables(&[(bytes, origin)])
    }

    /// Parse several tables (gzip or plain text) into one set, e.g. ICD-10-CM
    /// and ICD-10-PCS; each `origin` names its table in error messages.
    pub fn from_tables(tables: &[(&[u8], &str)]) -> Result<CodeSet, IcdError> {
        let mut parser = Parser::new(tables.first().map_or("", |t| t.1));
        for (bytes, origin) in tables {
            parser.origin = *origin;
            parser.parse(&table_text(bytes, origin)?)?;
        }
        parser.finish()
    }

    /// Where this table came from (a path or [`BUILTIN_ORIGIN`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Each table file of the set, ICD-10-CM first.
    pub fn sources(&self) -> &[TableSource] {
        &self.sources
    }

    /// Whether the set holds codes of `system`.
    pub fn has_system(&self, system: System) -> bool {
        self.sources.iter().any(|s| s.system == system)
    }

    /// sha256 of the source the (first) table was built from.
    pub fn source_sha256(&self) -> &str {
        self.sources.first().map_or("", |s| s.sha256.as_str())
    }

    /// File name of that source.
    pub fn source_file(&self) -> &str {
        self.sources.first().map_or("", |s| s.file.as_str())
    }

    /// The package that shipped it, e.g. "simple-icd-10-cm==1.5.0".
    pub fn source_package(&self) -> &str {
        self.sources.first().map_or("", |s| s.package.as_str())
    }

    /// Number of entries, billable or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, code: &Code) -> Option<&CodeEntry> {
        self.row(code).map(|i| &self.entries[i])
    }

    /// Parse `raw` and look it up.
    pub fn lookup(&self, raw: &str) -> Result<&CodeEntry, IcdError> {
        let code = self.resolve(raw)?;
        self.get(&code).ok_or_else(|| IcdError::UnknownCode {
            code: code.to_string(),
            origin: self.origin.clone(),
        })
    }

    /// Parse `raw` as the code this set knows: a 7-character string without a dot
    /// is ICD-10-CM written compactly or ICD-10-PCS ("S72001A", "B2111ZZ"), and the
    /// table decides; when it knows neither, the form [`Code::parse`] gives.
    pub fn resolve(&self, raw: &str) -> Result<Code, IcdError> {
        let parsed = Code::parse(raw);
        if let Ok(c) = &parsed {
            if self.contains(c) || c.system() == System::Pcs {
                return parsed;
            }
        }
        match Code::parse_pcs(raw) {
            Ok(p) if self.contains(&p) || parsed.is_err() => Ok(p),
            _ => parsed,
        }
    }

    pub fn contains(&self, code: &Code) -> bool {
        self.index.contains_key(code)
    }

    /// All entries in tabular order: each parent before its children.
    pub fn entries(&self) -> &[CodeEntry] {
        &self.entries
    }

    /// Billable codes in tabular order.
    pub fn billable(&self) -> impl Iterator<Item = &CodeEntry> {
        self.entries.iter().filter(|e| e.billable)
    }

    pub fn parent(&self, code: &Code) -> Option<&CodeEntry> {
        let i = self.row(code)?;
        self.entry(self.parent_of[i])
    }

    /// Direct children in tabular order; none for a billable or unknown code.
    pub fn children(&self, code: &Code) -> impl Iterator<Item = &CodeEntry> {
        let rows: &[u32] = match self.row(code) {
            Some(i) => self.child_rows_of(i),
            None => &[],
        };
        rows.iter().map(|&r| &self.entries[r as usize])
    }

    /// Entries with the same parent, excluding `code` itself. A 3-character
    /// category has no parent code; its siblings are the other categories of
    /// its block.
    pub fn siblings(&self, code: &Code) -> Vec<&CodeEntry> {
        let Some(i) = self.row(code) else {
            return Vec::new();
        };
        let candidates: &[u32] = match self.parent_of[i] {
            NONE => &self.top_rows,
            p => self.child_rows_of(p as usize),
        };
        let block = &self.entries[i].block;
        candidates
            .iter()
            .filter(|&&r| r as usize != i)
            .map(|&r| &self.entries[r as usize])
            .filter(|e| e.parent.is_some() || &e.block == block)
            .collect()
    }

    /// Parent first, up to and including the 3-character category.
    pub fn ancestors(&self, code: &Code) -> Vec<&CodeEntry> {
        let mut out = Vec::new();
        let Some(mut i) = self.row(code) else {
            return out;
        };
        while let Some(parent) = self.entry(self.parent_of[i]) {
            out.push(parent);
            i = self.parent_of[i] as usize;
        }
        out
    }

    pub fn chapters(&self) -> &[Chapter] {
        &self.chapters
    }

    /// The chapter of a code in the set; for a code not in it, the chapter
    /// whose range covers its category (so retired codes still place).
    pub fn chapter_of(&self, code: &Code) -> Option<&Chapter> {
        if let Some(e) = self.get(code) {
            return self.chapters.iter().find(|c| c.number == e.chapter);
        }
        let cat = code.category();
        let pcs = code.system() == System::Pcs;
        self.chapters
            .iter()
            .filter(|c| (c.number >= PCS_CHAPTER_BASE) == pcs)
            .find(|c| match c.range.split_once('-') {
                Some((lo, hi)) => lo <= cat && cat <= hi,
                None => c.range == cat,
            })
    }

    /// Billable codes in the given chapters, in tabular order.
    pub fn billable_in_chapters(&self, chapters: &[u8]) -> Vec<&CodeEntry> {
        self.billable()
            .filter(|e| chapters.contains(&e.chapter))
            .collect()
    }

    /// Billable codes starting with any of `prefixes` ("E11", "i", "S72.0");
    /// prefixes are normalised like codes, and ones that cannot start a code
    /// (empty, punctuation) match nothing.
    pub fn billable_with_prefixes(&self, prefixes: &[String]) -> Vec<&CodeEntry> {
        let norm: Vec<String> = prefixes
            .iter()
            .filter_map(|p| normalise_prefix(p))
            .collect();
        self.billable()
            .filter(|e| norm.iter().any(|p| e.code.as_str().starts_with(p.as_str())))
            .collect()
    }

    /// Split raw strings into codes in the set (normalised, in input order,
    /// duplicates kept) and the raw strings that are malformed or unknown.
    pub fn check_codes<'a>(
        &self,
        raw: impl IntoIterator<Item = &'a str>,
    ) -> (Vec<Code>, Vec<String>) {
        let mut known = Vec::new();
        let mut rejected = Vec::new();
        for r in raw {
            match self.resolve(r) {
                Ok(c) if self.contains(&c) => known.push(c),
                _ => rejected.push(r.to_string()),
            }
        }
        (known, rejected)
    }

    fn row(&self, code: &Code) -> Option<usize> {
        self.index.get(code).map(|&i| i as usize)
    }

    fn entry(&self, row: u32) -> Option<&CodeEntry> {
        self.entries.get(row as usize)
    }

    fn child_rows_of(&self, i: usize) -> &[u32] {
        let (a, b) = (
            self.child_start[i] as usize,
            self.child_start[i + 1] as usize,
        );
        &self.child_rows[a..b]
    }
}

/// The text of a table file, gunzipped when it is gzip.
fn table_text(bytes: &[u8], origin: &str) -> Result<String, IcdError> {
    let corrupt = |reason: String| IcdError::Table {
        origin: origin.to_string(),
        line: 0,
        reason,
    };
    if table::is_gzip(bytes) {
        // The gzip trailer holds the text size; sizing the buffer once avoids regrowing it.
        let size = bytes
            .last_chunk::<4>()
            .map_or(0, |t| u32::from_le_bytes(*t) as usize);
        let mut s = String::with_capacity(size.min(bytes.len().saturating_mul(32)));
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut s)
            .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
        Ok(s)
    } else {
        String::from_utf8(bytes.to_vec()).map_err(|e| corrupt(format!("not UTF-8 text: {e}")))
    }
}

/// Line-by-line reader of the table format (see `table.rs`).
struct Parser<'o> {
    origin: &'o str,
    /// The system of the table being read (from its first line).
    system: System,
    sources: Vec<TableSource>,
    source: HashMap<String, String>,
    counts: HashMap<String, String>,
    chapters: Vec<Chapter>,
    columns_seen: bool,
    entries: Vec<CodeEntry>,
    /// 1-based line of each row, for messages found after parsing.
    lines: Vec<usize>,
    index: HashMap<Code, u32>,
    parent_of: Vec<u32>,
}

impl<'o> Parser<'o> {
    fn new(origin: &'o str) -> Self {
        Parser {
            origin,
            system: System::Cm,
            sources: Vec::new(),
            source: HashMap::new(),
            counts: HashMap::new(),
            chapters: Vec::new(),
            columns_seen: false,
            entries: Vec::with_capacity(100_000),
            lines: Vec::with_capacity(100_000),
            index: HashMap::with_capacity(100_000),
            parent_of: Vec::with_capacity(100_000),
        }
    }

    fn corrupt(&self, line: usize, reason: impl Into<String>) -> IcdError {
        IcdError::Table {
            origin: self.origin.to_string(),
            line,
            reason: reason.into(),
        }
    }

    /// Reads one table file into the set.
    fn parse(&mut self, text: &str) -> Result<(), IcdError> {
        self.source.clear();
        self.counts.clear();
        self.columns_seen = false;
        let rows_before = self.entries.len();
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let first = lines.next();
        let magic = first.and_then(|(_, l)| l.split('\t').next());
        self.system = if magic == Some(table::PCS_MAGIC) { System::Pcs } else { System::Cm };
        match first {
            Some((_, first)) if magic == Some(table::MAGIC) || magic == Some(table::PCS_MAGIC) => {
                let version = first.split('\t').nth(1).unwrap_or("");
                if version != table::FORMAT_VERSION {
                    return Err(self.corrupt(
                        1,
                        format!(
                            "format version {version:?}, this build reads {:?}",
                            table::FORMAT_VERSION
                        ),
                    ));
                }
            }
            _ => {
                return Err(self.corrupt(
                    1,
                    format!(
                        "not a code table: the first line must start with {} or {}",
                        table::MAGIC,
                        table::PCS_MAGIC
                    ),
                ))
            }
        }
        let mut last_line = 1;
        for (n, line) in lines {
            last_line = n;
            if line.is_empty() {
                continue;
            }
            if line.starts_with('#') {
                self.header_line(n, line)?;
            } else {
                self.row(n, line)?;
            }
        }
        let sha = self.source.get("sha256").cloned().unwrap_or_default();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.corrupt(0, "the #source line has no sha256=<64 hex digits>"));
        }
        let rows = &self.entries[rows_before..];
        if rows.is_empty() {
            return Err(self.corrupt(last_line, "the table has no code rows"));
        }
        // The header counts catch a truncated or edited file.
        let billable = rows.iter().filter(|e| e.billable).count();
        for (key, actual) in [("entries", rows.len()), ("billable", billable)] {
            if let Some(expected) = self.counts.get(key) {
                if expected.parse::<usize>().ok() != Some(actual) {
                    return Err(self.corrupt(
                        last_line,
                        format!("header says {key}={expected} but the rows give {actual}"),
                    ));
                }
            }
        }
        if self.sources.iter().any(|s| s.system == self.system) {
            return Err(self.corrupt(1, format!("a second {} table; load one table per code system", self.system.name())));
        }
        self.sources.push(TableSource {
            origin: self.origin.to_string(),
            system: self.system,
            file: self.source.get("file").cloned().unwrap_or_default(),
            sha256: sha,
            package: self.source.get("package").cloned().unwrap_or_default(),
        });
        Ok(())
    }

    fn header_line(&mut self, n: usize, line: &str) -> Result<(), IcdError> {
        let mut fields = line.split('\t');
        let key = fields.next().unwrap_or("");
        let pairs = |fields: std::str::Split<'_, char>| -> HashMap<String, String> {
            fields
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        match key {
            table::SOURCE => self.source = pairs(fields),
            table::COUNTS => self.counts = pairs(fields),
            table::CHAPTER => {
                let f: Vec<&str> = fields.collect();
                let [number, range, description] = f[..] else {
                    return Err(self.corrupt(
                        n,
                        format!("a #chapter line needs 3 fields, found {}", f.len()),
                    ));
                };
                let number: u8 = number.parse().map_err(|_| {
                    self.corrupt(
                        n,
                        format!("chapter number {number:?} is not an integer 0-255"),
                    )
                })?;
                if self.chapters.iter().any(|c| c.number == number) {
                    return Err(self.corrupt(n, format!("chapter {number} is declared twice")));
                }
                self.chapters.push(Chapter {
                    number,
                    description: description.to_string(),
                    range: range.to_string(),
                });
            }
            table::COLUMNS => {
                let cols: Vec<&str> = fields.collect();
                if cols != table::COLUMN_NAMES {
                    return Err(self.corrupt(
                        n,
                        format!("columns are {cols:?}, expected {:?}", table::COLUMN_NAMES),
                    ));
                }
                self.columns_seen = true;
            }
            // Other '#' lines are comments.
            _ => {}
        }
        Ok(())
    }

    fn row(&mut self, n: usize, line: &str) -> Result<(), IcdError> {
        if !self.columns_seen {
            return Err(self.corrupt(n, "a code row comes before the #columns line"));
        }
        let mut f = line.split('\t');
        let (
            Some(code),
            Some(billable),
            Some(description),
            Some(terms),
            Some(parent),
            Some(block),
            Some(chapter),
            None,
        ) = (
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
            f.next(),
        )
        else {
            let found = line.split('\t').count();
            return Err(self.corrupt(n, format!("expected 7 tab-separated fields, found {found}")));
        };
        let code = Code::parse_in(self.system, code).map_err(|e| self.corrupt(n, e.to_string()))?;
        let billable = match billable {
            "1" => true,
            "0" => false,
            other => {
                return Err(self.corrupt(n, format!("billable must be 0 or 1, found {other:?}")))
            }
        };
        if description.is_empty() {
            return Err(self.corrupt(n, format!("code {code} has an empty description")));
        }
        let inclusion_terms: Vec<String> = if terms.is_empty() {
            Vec::new()
        } else {
            terms.split(TERM_SEP).map(str::to_string).collect()
        };
        let (parent, parent_row) = if parent.is_empty() {
            if code.as_str().len() != 3 && self.system == System::Cm {
                return Err(self.corrupt(
                    n,
                    format!("code {code} has no parent but is not a 3-character category"),
                ));
            }
            (None, NONE)
        } else {
            if self.system == System::Pcs {
                return Err(self.corrupt(n, format!("ICD-10-PCS code {code} has a parent; PCS rows have none (their block groups them)")));
            }
            let p = Code::parse(parent).map_err(|e| self.corrupt(n, format!("parent: {e}")))?;
            let Some(&row) = self.index.get(&p) else {
                return Err(
                    self.corrupt(n, format!("parent {p} of {code} is not on an earlier line"))
                );
            };
            // Both are dotted after the 3rd character, so a plain prefix test works.
            if !code.as_str().starts_with(p.as_str()) {
                return Err(self.corrupt(n, format!("parent {p} is not a prefix of {code}")));
            }
            if self.entries[row as usize].billable {
                return Err(self.corrupt(n, format!("{p} is marked billable but has a child here")));
            }
            (Some(p), row)
        };
        if block.is_empty() {
            return Err(self.corrupt(n, format!("code {code} has an empty block")));
        }
        let chapter: u8 = match chapter.parse() {
            Ok(c) if self.chapters.iter().any(|ch: &Chapter| ch.number == c) => c,
            _ => {
                return Err(self.corrupt(
                    n,
                    format!("chapter {chapter:?} of {code} is not declared by a #chapter line"),
                ))
            }
        };
        let row =
            u32::try_from(self.entries.len()).map_err(|_| self.corrupt(n, "too many rows"))?;
        if let Some(&prev) = self.index.get(&code) {
            let first = self.lines[prev as usize];
            return Err(self.corrupt(n, format!("code {code} already appears on line {first}")));
        }
        self.index.insert(code.clone(), row);
        self.parent_of.push(parent_row);
        self.lines.push(n);
        self.entries.push(CodeEntry {
            code,
            billable,
            description: description.to_string(),
            inclusion_terms,
            parent,
            block: block.to_string(),
            chapter,
        });
        Ok(())
    }

    fn finish(self) -> Result<CodeSet, IcdError> {
        let n = self.entries.len();
        let mut child_start = vec![0u32; n + 1];
        for &p in &self.parent_of {
            if p != NONE {
                child_start[p as usize + 1] += 1;
            }
        }
        for i in 0..n {
            child_start[i + 1] += child_start[i];
        }
        let mut fill = child_start.clone();
        let mut child_rows = vec![0u32; child_start[n] as usize];
        let mut top_rows = Vec::new();
        for (row, &p) in self.parent_of.iter().enumerate() {
            if p == NONE {
                top_rows.push(row as u32);
            } else {
                child_rows[fill[p as usize] as usize] = row as u32;
                fill[p as usize] += 1;
            }
        }

        Ok(CodeSet {
            origin: self.sources.iter().map(|s| s.origin.as_str()).collect::<Vec<_>>().join(" + "),
            sources: self.sources,
            chapters: self.chapters,
            entries: self.entries,
            index: self.index,
            parent_of: self.parent_of,
            child_start,
            child_rows,
            top_rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icd::build::{build_table_bytes, tests::MINI_XML};

    fn mini() -> CodeSet {
        let (bytes, _) = build_table_bytes(MINI_XML.as_bytes(), "mini.xml", "mini.xml").unwrap();
        CodeSet::from_bytes(&bytes, "mini").unwrap()
    }

    fn mini_text() -> String {
        let (bytes, _) = build_table_bytes(MINI_XML.as_bytes(), "mini.xml", "mini.xml").unwrap();
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    fn c(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    fn codes<'a>(entries: impl IntoIterator<Item = &'a CodeEntry>) -> Vec<&'a str> {
        entries.into_iter().map(|e| e.code.as_str()).collect()
    }

    #[test]
    fn loads_the_mini_table_with_its_hierarchy() {
        let set = mini();
        assert_eq!(set.len(), 12);
        assert_eq!(set.billable().count(), 6);
        assert_eq!(codes(set.children(&c("S06.0X9"))), ["S06.0X9A", "S06.0X9D"]);
        assert_eq!(
            codes(set.ancestors(&c("S06.0X9D"))),
            ["S06.0X9", "S06.0", "S06"]
        );
        assert_eq!(
            set.parent(&c("E11.9")).map(|e| e.code.as_str()),
            Some("E11")
        );
        assert!(set.parent(&c("E11")).is_none());
        assert_eq!(codes(set.siblings(&c("E11.9"))), ["E11.8"]);
        assert_eq!(codes(set.children(&c("E11.9"))), Vec::<&str>::new());
        assert_eq!(set.get(&c("E11")).unwrap().inclusion_terms.len(), 2);
        assert_eq!(set.chapters().len(), 2);
        assert_eq!(set.chapter_of(&c("S06.1XXS")).map(|ch| ch.number), Some(19));
        // Not in the set, placed by range.
        assert_eq!(set.chapter_of(&c("E78.5")).map(|ch| ch.number), Some(4));
        assert_eq!(set.chapter_of(&c("Z00.00")).map(|ch| ch.number), None);
        assert_eq!(
            codes(set.billable_in_chapters(&[19])),
            ["S06.0X7A", "S06.0X9A", "S06.0X9D", "S06.1XXS"]
        );
        assert_eq!(
            codes(set.billable_with_prefixes(&["e11".into(), "S06.1".into(), "".into()])),
            ["E11.8", "E11.9", "S06.1XXS"]
        );
        assert!(format!("{set:?}").contains("entries: 12"));
    }

    #[test]
    fn lookup_and_check_codes_report_unknown_and_malformed() {
        let set = mini();
        assert_eq!(
            set.lookup(" e119 ").unwrap().description,
            "Type 2 diabetes mellitus without complications"
        );
        let err = set.lookup("E11.65").unwrap_err();
        assert!(matches!(err, IcdError::UnknownCode { .. }));
        assert!(
            err.to_string().contains("E11.65") && err.to_string().contains("mini"),
            "{err}"
        );
        assert!(matches!(
            set.lookup("11.9"),
            Err(IcdError::MalformedCode { .. })
        ));
        let (known, rejected) = set.check_codes(["E11.9", "e118", "E11.65", "not a code", "E11.9"]);
        assert_eq!(
            known.iter().map(Code::as_str).collect::<Vec<_>>(),
            ["E11.9", "E11.8", "E11.9"]
        );
        assert_eq!(rejected, ["E11.65", "not a code"]);
    }

    #[test]
    fn plain_text_tables_load_too() {
        let set = CodeSet::from_bytes(mini_text().as_bytes(), "plain").unwrap();
        assert_eq!(set.len(), 12);
        assert_eq!(set.source_sha256().len(), 64);
        assert_eq!(set.source_file(), "mini.xml");
    }

    /// Edit one line of the mini table and expect an error naming the line.
    fn corrupt_with(edit: impl Fn(&str) -> String, needle: &str, line: usize) {
        let text = edit(&mini_text());
        let err = CodeSet::from_bytes(text.as_bytes(), "t.tsv")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("t.tsv:{line}:")),
            "{err:?} should name t.tsv:{line}"
        );
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn corrupt_tables_name_file_and_line() {
        // Rows start on line 7 (4 header lines + 2 chapters): E11 is 7, E11.8 is 8, E11.9 is 9.
        corrupt_with(
            |t| t.replace("E11.9\t1\t", "E11.9\t2\t"),
            "billable must be 0 or 1",
            9,
        );
        corrupt_with(
            |t| t.replace("E11.9\t1\t", "E11.9\t"),
            "7 tab-separated fields",
            9,
        );
        corrupt_with(
            |t| t.replace("\tE11\tE08-E13\t4\nE11.9", "\tE12\tE08-E13\t4\nE11.9"),
            "not on an earlier line",
            8,
        );
        corrupt_with(
            |t| t.replace("E11.9\t1", "E11.8\t1"),
            "already appears on line 8",
            9,
        );
        corrupt_with(
            |t| t.replace("\tS00-S09\t19\n", "\tS00-S09\t7\n"),
            "not declared",
            10,
        );
        corrupt_with(|t| t.replace("E11.8\t1\t", "1E1.8\t1\t"), "\"1E1.8\"", 8);
        corrupt_with(
            |t| t.replace("E11.9\t1\t", "E11.9\t1\t\t\t"),
            "7 tab-separated fields",
            9,
        );
        corrupt_with(
            |t| {
                t.replacen(
                    "#icdbench-icd10cm-table\t1",
                    "#icdbench-icd10cm-table\t9",
                    1,
                )
            },
            "format version",
            1,
        );
        corrupt_with(
            |t| t.replacen("#icdbench", "code", 1),
            "not a code table",
            1,
        );
        corrupt_with(|t| t.replace("entries=12", "entries=13"), "entries=13", 18);
        // A truncated file: the header counts no longer match.
        corrupt_with(
            |t| t.lines().take(12).map(|l| format!("{l}\n")).collect(),
            "header says entries=12",
            12,
        );
        corrupt_with(
            |t| t.replace("E11\t0\t", "E11\t1\t"),
            "E11 is marked billable",
            8,
        );
        let err = CodeSet::from_bytes(&[0x1f, 0x8b, 0, 1, 2], "z.gz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("z.gz") && err.contains("decompress"), "{err}");
    }

    #[test]
    fn builtin_table_holds_fy2026_facts() {
        let set = CodeSet::builtin().unwrap();
        assert_eq!(set.billable().count(), crate::icd::FY2026_BILLABLE);
        let e119 = set.lookup("E11.9").unwrap();
        assert!(e119.billable && e119.chapter == 4 && e119.block == "E08-E13");
        assert_eq!(
            set.parent(&c("E11.9")).map(|e| e.code.as_str()),
            Some("E11")
        );
        assert!(!set.lookup("E11").unwrap().billable);
        assert!(set.lookup("I10").unwrap().billable);
        assert!(codes(set.siblings(&c("E11.9"))).contains(&"E11.8"));
        let s = set.lookup("S72.001A").unwrap();
        assert!(
            s.billable
                && s.description
                    .ends_with(", initial encounter for closed fracture")
        );
        assert_eq!(set.source_sha256(), crate::icd::SOURCE_XML_SHA256);
    }

    #[test]
    fn builtin_procedure_table_places_codes_by_their_axes() {
        let set = CodeSet::builtin_with_procedures().unwrap();
        assert!(set.has_system(System::Pcs) && set.has_system(System::Cm));
        assert!(!CodeSet::builtin().unwrap().has_system(System::Pcs));
        let pcs = |s: &str| Code::parse_pcs(s).unwrap();
        let e = set.get(&pcs("0BH17EZ")).unwrap();
        assert!(e.billable && e.block == "0BH" && e.chapter == PCS_CHAPTER_BASE && e.parent.is_none());
        assert_eq!(set.chapter_of(&pcs("0BH17EZ")).map(|c| c.description.as_str()), Some("Medical and Surgical"));
        // Siblings share section, body system and root operation.
        let sib = set.siblings(&pcs("0BH17EZ"));
        assert!(!sib.is_empty() && sib.iter().all(|s| s.block == "0BH" && s.code != pcs("0BH17EZ")));
        // A letter-section code resolves to the procedure the table knows, not a dotless diagnosis.
        assert_eq!(set.resolve("b2111zz").unwrap(), pcs("B2111ZZ"));
        assert_eq!(set.resolve("S72001A").unwrap().as_str(), "S72.001A");
        assert_eq!(set.lookup("I10.").unwrap().code.as_str(), "I10");
        // An unknown procedure code places in its section's chapter, never in a diagnosis chapter.
        assert_eq!(set.chapter_of(&pcs("BZZZZZZ")).map(|c| c.number), Some(PCS_CHAPTER_BASE + 10));
        assert_eq!(set.billable().filter(|e| e.code.system() == System::Pcs).count(), 78_603);
    }

    #[test]
    fn load_names_a_missing_file() {
        let err = CodeSet::load(Path::new("/nonexistent/codes.tsv.gz"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/codes.tsv.gz"), "{err}");
    }
}
