//! Build the code table from the CDC/CMS tabular list XML.
//!
//! The XML nests chapter > section > diag > diag...; a `diag` with no child
//! `diag` is a leaf. Leaves under a `sevenChrDef` are not billable themselves:
//! each one expands to code + 7th character (the code padded with "X" to 6
//! characters first), which the XML never writes out. Everything else that
//! has no children is billable.

use std::path::Path;

use roxmltree::Node;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::code::Code;
use super::table::{self, clean_text, TERM_SEP};
use super::{Chapter, CodeEntry, IcdError};

/// The package the committed table is built from.
pub const SOURCE_PACKAGE: &str = "simple-icd-10-cm";
/// Its version.
pub const SOURCE_PACKAGE_VERSION: &str = "1.5.0";
/// The FY2026 tabular list shipped in that package.
pub const SOURCE_XML_NAME: &str = "icd10c-tabular-April-1-2026.xml";
/// sha256 of that XML; a table built from it names the package in its header.
pub const SOURCE_XML_SHA256: &str =
    "f161f8182aff3ce3a2a78e202f8259c08eaee2c670a9e45b0072445c52302935";

/// What a build produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildSummary {
    /// File name of the XML.
    pub source_file: String,
    /// sha256 of the XML bytes.
    pub source_sha256: String,
    /// "simple-icd-10-cm==1.5.0" when the XML is the known one, else "unknown".
    pub source_package: String,
    /// Rows: categories, subcategories and billable codes.
    pub entries: usize,
    pub billable: usize,
    /// 3-character categories.
    pub categories: usize,
    pub inclusion_terms: usize,
    pub codes_with_inclusion_terms: usize,
    pub chapters: usize,
    /// Size of the gzip table.
    pub table_bytes: usize,
    /// sha256 of the gzip table.
    pub table_sha256: String,
    /// sha256 of the uncompressed table text; stable across gzip back ends.
    pub text_sha256: String,
}

/// Parse the tabular XML at `xml_path` and write the gzip table to `out_path`
/// (parent folders are created; the file is replaced atomically).
pub fn build_table(xml_path: &Path, out_path: &Path) -> Result<BuildSummary, IcdError> {
    let xml = std::fs::read(xml_path).map_err(|source| IcdError::Read {
        path: xml_path.to_path_buf(),
        source,
    })?;
    let name = xml_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (bytes, summary) = build_table_bytes(&xml, &name, &xml_path.display().to_string())?;

    let write_err = |source| IcdError::Write {
        path: out_path.to_path_buf(),
        source,
    };
    if let Some(dir) = out_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut tmp = out_path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, &bytes).map_err(write_err)?;
    std::fs::rename(&tmp, out_path).map_err(write_err)?;
    Ok(summary)
}

/// Build the table in memory from the XML bytes. `source_file` is the name
/// recorded in the header; `origin` names the input in error messages.
pub fn build_table_bytes(
    xml: &[u8],
    source_file: &str,
    origin: &str,
) -> Result<(Vec<u8>, BuildSummary), IcdError> {
    let source_sha256 = hex::encode(Sha256::digest(xml));
    let text = std::str::from_utf8(xml).map_err(|e| IcdError::XmlStructure {
        origin: origin.to_string(),
        reason: format!("not UTF-8 ({e})"),
    })?;
    let doc = roxmltree::Document::parse(text).map_err(|e| IcdError::Xml {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    let tabular = Tabular::read(doc.root_element(), origin)?;

    let source_package = if source_sha256 == SOURCE_XML_SHA256 {
        format!("{SOURCE_PACKAGE}=={SOURCE_PACKAGE_VERSION}")
    } else {
        "unknown".to_string()
    };
    let text = render(&tabular, source_file, &source_sha256, &source_package);
    let bytes = table::gzip_deterministic(text.as_bytes()).map_err(|e| IcdError::XmlStructure {
        origin: origin.to_string(),
        reason: format!("gzip failed: {e}"),
    })?;

    let entries = &tabular.entries;
    let summary = BuildSummary {
        source_file: source_file.to_string(),
        source_sha256,
        source_package,
        entries: entries.len(),
        billable: entries.iter().filter(|e| e.billable).count(),
        categories: entries.iter().filter(|e| e.parent.is_none()).count(),
        inclusion_terms: entries.iter().map(|e| e.inclusion_terms.len()).sum(),
        codes_with_inclusion_terms: entries
            .iter()
            .filter(|e| !e.inclusion_terms.is_empty())
            .count(),
        chapters: tabular.chapters.len(),
        table_bytes: bytes.len(),
        table_sha256: hex::encode(Sha256::digest(&bytes)),
        text_sha256: hex::encode(Sha256::digest(text.as_bytes())),
    };
    Ok((bytes, summary))
}

/// Which 7th characters a code may take, beyond its inherited `sevenChrDef`.
///
/// The XML states one exception only in prose (a note on category S06):
/// "7th characters D and S do not apply to codes in category S06 with 6th
/// character 7 ... or 8". The official code list agrees.
fn seventh_char_allowed(compact: &str, seventh: char) -> bool {
    let death_before_consciousness =
        compact.starts_with("S06") && matches!(compact.as_bytes().get(5), Some(b'7' | b'8'));
    !(death_before_consciousness && seventh != 'A')
}

/// One 7th character and what it adds to the description.
#[derive(Debug, Clone)]
struct Extension {
    char: char,
    description: String,
}

/// The parsed XML: chapters and all rows in tabular order.
struct Tabular {
    version: String,
    chapters: Vec<Chapter>,
    entries: Vec<CodeEntry>,
}

/// Where the walk is: the section and chapter a diag sits in.
struct Place<'a> {
    block: &'a str,
    chapter: u8,
    origin: &'a str,
}

impl Tabular {
    fn read(root: Node, origin: &str) -> Result<Tabular, IcdError> {
        let bad = |reason: String| IcdError::XmlStructure {
            origin: origin.to_string(),
            reason,
        };
        if !root.has_tag_name("ICD10CM.tabular") {
            return Err(bad(format!(
                "root element is <{}>, expected <ICD10CM.tabular>",
                root.tag_name().name()
            )));
        }
        let version = child(root, "version").map(text_of).unwrap_or_default();
        let mut chapters = Vec::new();
        let mut entries = Vec::with_capacity(100_000);
        let mut seen = std::collections::HashSet::new();
        for ch in elements(root, "chapter") {
            let chapter = read_chapter(ch).map_err(bad)?;
            if chapters
                .iter()
                .any(|c: &Chapter| c.number == chapter.number)
            {
                return Err(bad(format!("chapter {} appears twice", chapter.number)));
            }
            for section in elements(ch, "section") {
                let id = clean_text(section.attribute("id").unwrap_or_default());
                let id = id.as_str();
                if id.is_empty() {
                    return Err(bad(format!(
                        "a section in chapter {} has no id",
                        chapter.number
                    )));
                }
                let place = Place {
                    block: id,
                    chapter: chapter.number,
                    origin,
                };
                for diag in elements(section, "diag") {
                    walk(diag, &place, None, None, &mut entries)?;
                }
            }
            chapters.push(chapter);
        }
        if chapters.is_empty() || entries.is_empty() {
            return Err(bad("no chapters or no codes found".to_string()));
        }
        for e in &entries {
            if !seen.insert(e.code.clone()) {
                return Err(bad(format!("code {} appears twice", e.code)));
            }
        }
        Ok(Tabular {
            version,
            chapters,
            entries,
        })
    }
}

/// Chapter number, description without its trailing "(A00-B99)", and range.
fn read_chapter(ch: Node) -> Result<Chapter, String> {
    let raw_number = child(ch, "name").map(text_of).unwrap_or_default();
    let number: u8 = raw_number
        .parse()
        .map_err(|_| format!("chapter number {raw_number:?} is not a small integer"))?;
    let desc = child(ch, "desc").map(text_of).unwrap_or_default();
    // The title's own range is authoritative: the section index of chapter 22
    // stops at U49 while the chapter spans U00-U85.
    let (description, range) = match desc.rsplit_once(" (") {
        Some((head, tail)) if tail.ends_with(')') && tail.contains('-') => (
            head.trim().to_string(),
            tail.trim_end_matches(')').to_string(),
        ),
        _ => {
            let refs: Vec<Node> = child(ch, "sectionIndex")
                .map(|i| elements(i, "sectionRef").collect())
                .unwrap_or_default();
            let first = refs
                .first()
                .and_then(|r| r.attribute("first"))
                .unwrap_or_default();
            let last = refs
                .last()
                .and_then(|r| r.attribute("last"))
                .unwrap_or_default();
            (desc.clone(), format!("{first}-{last}"))
        }
    };
    if description.is_empty() || range.len() < 3 {
        return Err(format!("chapter {number} has no description or code range"));
    }
    Ok(Chapter {
        number,
        description,
        range,
    })
}

/// Push `diag` and its descendants in pre-order; expand 7th characters at leaves.
fn walk(
    diag: Node,
    place: &Place,
    parent: Option<&Code>,
    inherited: Option<&[Extension]>,
    out: &mut Vec<CodeEntry>,
) -> Result<(), IcdError> {
    let bad = |reason: String| IcdError::XmlStructure {
        origin: place.origin.to_string(),
        reason,
    };
    let name = child(diag, "name").map(text_of).unwrap_or_default();
    let code = Code::parse(&name).map_err(|e| bad(format!("in section {}: {e}", place.block)))?;
    let compact = code.compact();
    if let Some(p) = parent {
        if !compact.starts_with(&p.compact()) {
            return Err(bad(format!(
                "code {code} is nested under {p}, which is not its prefix"
            )));
        }
    }
    let description = child(diag, "desc").map(text_of).unwrap_or_default();
    if description.is_empty() {
        return Err(bad(format!("code {code} has no description")));
    }
    let inclusion_terms: Vec<String> = elements(diag, "inclusionTerm")
        .flat_map(|t| elements(t, "note"))
        .map(text_of)
        .filter(|t| !t.is_empty())
        .collect();

    let own = match child(diag, "sevenChrDef") {
        Some(def) => Some(read_extensions(def).map_err(|r| bad(format!("code {code}: {r}")))?),
        None => None,
    };
    let active = own.as_deref().or(inherited);
    let kids: Vec<Node> = elements(diag, "diag").collect();
    let billable = kids.is_empty() && active.is_none();

    out.push(CodeEntry {
        code: code.clone(),
        billable,
        description: description.clone(),
        inclusion_terms,
        parent: parent.cloned(),
        block: place.block.to_string(),
        chapter: place.chapter,
    });
    for kid in kids.iter().copied() {
        walk(kid, place, Some(&code), active, out)?;
    }
    if let (true, Some(extensions)) = (kids.is_empty(), active) {
        if compact.len() > 6 {
            return Err(bad(format!(
                "code {code} takes a 7th character but already has 7 characters"
            )));
        }
        let padded = format!("{compact:X<6}");
        for ext in extensions
            .iter()
            .filter(|x| seventh_char_allowed(&padded, x.char))
        {
            let full = Code::parse(&format!("{padded}{}", ext.char))
                .map_err(|e| bad(format!("expanding {code}: {e}")))?;
            out.push(CodeEntry {
                code: full,
                billable: true,
                description: format!("{description}, {}", ext.description),
                inclusion_terms: Vec::new(),
                parent: Some(code.clone()),
                block: place.block.to_string(),
                chapter: place.chapter,
            });
        }
    }
    Ok(())
}

/// The `extension` children of a `sevenChrDef` (its `note`s are commentary).
fn read_extensions(def: Node) -> Result<Vec<Extension>, String> {
    let mut out = Vec::new();
    for ext in elements(def, "extension") {
        let raw = ext.attribute("char").unwrap_or_default().trim();
        let mut chars = raw.chars();
        let c = match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphanumeric() => c.to_ascii_uppercase(),
            _ => return Err(format!("7th character {raw:?} is not one letter or digit")),
        };
        let description = text_of(ext);
        if description.is_empty() {
            return Err(format!("7th character {c} has no description"));
        }
        out.push(Extension {
            char: c,
            description,
        });
    }
    if out.is_empty() {
        return Err("sevenChrDef lists no 7th characters".to_string());
    }
    Ok(out)
}

/// The table text: header lines, then one row per entry.
fn render(t: &Tabular, source_file: &str, source_sha256: &str, package: &str) -> String {
    use std::fmt::Write as _;
    let e = &t.entries;
    let mut s = String::with_capacity(e.len() * 110);
    let file = clean_text(source_file);
    let version = clean_text(&t.version);
    let billable = e.iter().filter(|x| x.billable).count();
    let terms: usize = e.iter().map(|x| x.inclusion_terms.len()).sum();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "{}\t{}", table::MAGIC, table::FORMAT_VERSION);
    let _ = writeln!(
        s,
        "{}\tfile={file}\tsha256={source_sha256}\tpackage={package}\tversion={version}",
        table::SOURCE
    );
    let _ = writeln!(
        s,
        "{}\tentries={}\tbillable={billable}\tinclusion_terms={terms}",
        table::COUNTS,
        e.len()
    );
    for c in &t.chapters {
        let _ = writeln!(
            s,
            "{}\t{}\t{}\t{}",
            table::CHAPTER,
            c.number,
            c.range,
            clean_text(&c.description)
        );
    }
    let _ = writeln!(s, "{}\t{}", table::COLUMNS, table::COLUMN_NAMES.join("\t"));
    let sep = TERM_SEP.to_string();
    for x in e {
        let _ = writeln!(
            s,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            x.code,
            u8::from(x.billable),
            x.description,
            x.inclusion_terms.join(&sep),
            x.parent.as_ref().map(Code::as_str).unwrap_or(""),
            x.block,
            x.chapter,
        );
    }
    s
}

/// Element children of `node` named `tag`.
fn elements<'a, 'i>(node: Node<'a, 'i>, tag: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(move |n| n.is_element() && n.has_tag_name(tag))
}

fn child<'a, 'i>(node: Node<'a, 'i>, tag: &'static str) -> Option<Node<'a, 'i>> {
    elements(node, tag).next()
}

/// All text inside `node`, whitespace collapsed and made safe for one field.
fn text_of(node: Node) -> String {
    let raw: String = node
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    clean_text(&raw)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A miniature tabular list covering every construct the builder handles.
    pub(crate) const MINI_XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<ICD10CM.tabular>
  <version>2026</version>
  <chapter>
    <name>4</name>
    <desc>Endocrine, nutritional and metabolic diseases (E00-E89)</desc>
    <sectionIndex><sectionRef first="E08" last="E13" id="E08-E13">Diabetes mellitus</sectionRef></sectionIndex>
    <section id="E08-E13">
      <desc>Diabetes mellitus (E08-E13)</desc>
      <diag>
        <name>E11</name>
        <desc>Type 2 diabetes mellitus</desc>
        <inclusionTerm><note>diabetes (mellitus) due to insulin secretory defect</note><note>type II
            diabetes</note></inclusionTerm>
        <diag><name>E11.8</name><desc>Type 2 diabetes mellitus with unspecified complications</desc></diag>
        <diag><name>E11.9</name><desc>Type 2 diabetes mellitus without complications</desc></diag>
      </diag>
    </section>
  </chapter>
  <chapter>
    <name>19</name>
    <desc>Injury, poisoning and certain other consequences of external causes (S00-T88)</desc>
    <section id="S00-S09">
      <desc>Injuries to the head (S00-S09)</desc>
      <diag>
        <name>S06</name>
        <desc>Intracranial injury</desc>
        <sevenChrDef>
          <extension char="A">initial encounter</extension>
          <note>	a note, not an extension</note>
          <extension char="D">subsequent encounter</extension>
        </sevenChrDef>
        <diag>
          <name>S06.0</name><desc>Concussion</desc>
          <diag><name>S06.0X7</name><desc>Concussion with death</desc></diag>
          <diag><name>S06.0X9</name><desc>Concussion with loss of consciousness of unspecified duration</desc></diag>
        </diag>
        <diag><name>S06.1</name><desc>Traumatic cerebral edema</desc>
          <sevenChrDef><extension char="S">sequela</extension></sevenChrDef>
        </diag>
      </diag>
    </section>
    <section id="T07-T88"><desc>Heading only (T07-T88)</desc></section>
  </chapter>
</ICD10CM.tabular>
"#;

    fn mini() -> (Vec<u8>, BuildSummary) {
        build_table_bytes(MINI_XML.as_bytes(), "mini.xml", "mini.xml").unwrap()
    }

    fn mini_text() -> String {
        use std::io::Read;
        let (bytes, _) = mini();
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    }

    #[test]
    fn expands_seventh_characters_with_padding_and_overrides() {
        let text = mini_text();
        let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let codes: Vec<&str> = rows.iter().map(|r| r.split('\t').next().unwrap()).collect();
        assert_eq!(
            codes,
            [
                "E11", "E11.8", "E11.9", "S06", "S06.0", "S06.0X7", "S06.0X7A", "S06.0X9",
                "S06.0X9A", "S06.0X9D", "S06.1", "S06.1XXS"
            ]
        );
        assert!(
            rows.contains(&"S06.1XXS\t1\tTraumatic cerebral edema, sequela\t\tS06.1\tS00-S09\t19")
        );
        assert!(rows.contains(&"S06.1\t0\tTraumatic cerebral edema\t\tS06\tS00-S09\t19"));
        assert!(rows.contains(
            &"E11\t0\tType 2 diabetes mellitus\tdiabetes (mellitus) due to insulin secretory defect|type II diabetes\t\tE08-E13\t4"
        ));
    }

    #[test]
    fn header_records_source_counts_and_chapters() {
        let (_, summary) = mini();
        let text = mini_text();
        let sha = hex::encode(Sha256::digest(MINI_XML.as_bytes()));
        assert!(text.starts_with("#icdbench-icd10cm-table\t1\n"));
        assert!(text.contains(&format!(
            "#source\tfile=mini.xml\tsha256={sha}\tpackage=unknown\tversion=2026\n"
        )));
        assert!(text.contains("#counts\tentries=12\tbillable=6\tinclusion_terms=2\n"));
        assert!(
            text.contains("#chapter\t4\tE00-E89\tEndocrine, nutritional and metabolic diseases\n")
        );
        assert!(text.contains("#chapter\t19\tS00-T88\tInjury, poisoning and certain other consequences of external causes\n"));
        assert_eq!(
            (summary.entries, summary.billable, summary.categories),
            (12, 6, 2)
        );
        assert_eq!(
            (
                summary.inclusion_terms,
                summary.codes_with_inclusion_terms,
                summary.chapters
            ),
            (2, 1, 2)
        );
        assert_eq!(summary.source_sha256, sha);
    }

    #[test]
    fn same_xml_gives_identical_bytes() {
        assert_eq!(mini().0, mini().0);
    }

    #[test]
    fn structural_errors_name_the_input_and_the_code() {
        let cases = [
            (
                MINI_XML.replace("<name>E11.9</name>", "<name>E12.9</name>"),
                "E12.9",
            ),
            (
                MINI_XML.replace("<name>E11.8</name>", "<name>E11.9</name>"),
                "appears twice",
            ),
            (
                MINI_XML.replace("<desc>Concussion</desc>", "<desc> </desc>"),
                "S06.0 has no description",
            ),
            (MINI_XML.replace("char=\"S\"", "char=\"SS\""), "\"SS\""),
            (
                MINI_XML.replace("<name>E11.8</name>", "<name>E1.18</name>"),
                "E1.18",
            ),
            (
                MINI_XML.replace("ICD10CM.tabular>", "other>"),
                "root element",
            ),
        ];
        for (xml, needle) in cases {
            let err = build_table_bytes(xml.as_bytes(), "mini.xml", "bad.xml")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("bad.xml") && err.contains(needle),
                "{err:?} should name bad.xml and {needle:?}"
            );
        }
        let err = build_table_bytes(b"<unclosed>", "x", "broken.xml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken.xml"), "{err}");
    }

    #[test]
    fn s06_deaths_take_only_initial_encounter() {
        assert!(seventh_char_allowed("S06317", 'A'));
        assert!(!seventh_char_allowed("S06317", 'D'));
        assert!(!seventh_char_allowed("S060X8", 'S'));
        assert!(seventh_char_allowed("S06319", 'D'));
        assert!(
            seventh_char_allowed("S72007", 'D'),
            "the rule is S06's alone"
        );
    }

    #[test]
    fn writes_the_file_and_reports_unreadable_input() {
        let dir = std::env::temp_dir().join(format!("icdbench-build-{}", std::process::id()));
        let xml = dir.join("mini.xml");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&xml, MINI_XML).unwrap();
        let out = dir.join("sub/table.tsv.gz");
        let summary = build_table(&xml, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(summary.table_bytes, bytes.len());
        assert_eq!(summary.table_sha256, hex::encode(Sha256::digest(&bytes)));
        let err = build_table(&dir.join("missing.xml"), &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.xml"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
