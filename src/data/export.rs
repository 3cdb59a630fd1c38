//! Parquet export of documents (polars), for tools outside icdbench.

use super::Document;
use polars::prelude::*;
use std::path::Path;

/// One row per document: id, split, text, codes (list), and evidence as parallel lists.
pub fn write_parquet(path: &Path, docs: &[&Document]) -> PolarsResult<()> {
    let list_str = |name: &str, f: &dyn Fn(&Document) -> Vec<String>| -> Series {
        let rows: Vec<Series> = docs.iter().map(|d| Series::new("".into(), f(d))).collect();
        Series::new(name.into(), rows)
    };
    let list_u64 = |name: &str, f: &dyn Fn(&Document) -> Vec<u64>| -> Series {
        let rows: Vec<Series> = docs.iter().map(|d| Series::new("".into(), f(d))).collect();
        Series::new(name.into(), rows)
    };
    let mut df = DataFrame::new_infer_height(vec![
        Series::new("id".into(), docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>()).into(),
        Series::new("split".into(), docs.iter().map(|d| d.split.as_str()).collect::<Vec<_>>()).into(),
        Series::new("text".into(), docs.iter().map(|d| d.text.as_str()).collect::<Vec<_>>()).into(),
        list_str("codes", &|d| d.codes.iter().map(|c| c.to_string()).collect()).into(),
        list_str("evidence_code", &|d| d.evidence.iter().map(|e| e.code.to_string()).collect()).into(),
        list_u64("evidence_start", &|d| d.evidence.iter().map(|e| e.start as u64).collect()).into(),
        list_u64("evidence_end", &|d| d.evidence.iter().map(|e| e.end as u64).collect()).into(),
        list_str("evidence_text", &|d| d.evidence.iter().map(|e| e.text.clone()).collect()).into(),
    ])?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp)?;
    ParquetWriter::new(file).finish(&mut df)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
