//! Reading the tables real data sets come in (Arrow IPC / feather, parquet, CSV) with polars,
//! and turning their columns into ids, texts and code lists. Errors name the file and the column.

use super::DataError;
use polars::prelude::*;
use std::io::Read;
use std::path::Path;

fn lower_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default()
}

fn is_ipc(name: &str) -> bool {
    name.ends_with(".feather") || name.ends_with(".arrow") || name.ends_with(".ipc")
}

fn open(path: &Path) -> Result<std::fs::File, DataError> {
    std::fs::File::open(path).map_err(|e| DataError::file(path, format!("cannot read: {e}; check the path in [data.source]")))
}

/// The column names of a table, read from its schema or header only.
pub fn schema_names(path: &Path) -> Result<Vec<String>, DataError> {
    let name = lower_name(path);
    let fail = |e: PolarsError| DataError::file(path, format!("cannot read as a table: {e}"));
    if is_ipc(&name) {
        let schema = IpcReader::new(open(path)?).schema().map_err(fail)?;
        return Ok(schema.iter_names().map(|n| n.to_string()).collect());
    }
    if name.ends_with(".parquet") {
        let schema = ParquetReader::new(open(path)?).schema().map_err(fail)?;
        return Ok(schema.iter_names().map(|n| n.to_string()).collect());
    }
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        return csv_header(path);
    }
    Err(DataError::file(path, "unknown table format: use .feather (Arrow IPC), .parquet, .csv or .csv.gz"))
}

/// Reads a table, only `columns` when given (feather and parquet read no other column
/// from disk); the format follows the extension (`.feather`, `.arrow`, `.ipc`, `.parquet`, `.csv`, `.csv.gz`).
pub fn read(path: &Path, columns: Option<&[&str]>) -> Result<DataFrame, DataError> {
    let name = lower_name(path);
    let file = open(path)?;
    let fail = |e: PolarsError| DataError::file(path, format!("cannot read as a table: {e}"));
    let wanted = |present: Vec<String>| -> Result<Option<Vec<String>>, DataError> {
        let Some(columns) = columns else { return Ok(None) };
        require(&present, columns, path)?;
        Ok(Some(columns.iter().map(|c| c.to_string()).collect()))
    };
    if is_ipc(&name) {
        let cols = wanted(schema_names(path)?)?;
        let df = IpcReader::new(file).with_columns(cols).finish().map_err(fail)?;
        return project(df, columns, path);
    }
    if name.ends_with(".parquet") {
        let cols = wanted(schema_names(path)?)?;
        let df = ParquetReader::new(file).with_columns(cols).finish().map_err(fail)?;
        return project(df, columns, path);
    }
    if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        let header = csv_header(path)?;
        if let Some(columns) = columns {
            require(&header, columns, path)?;
        }
        let mut bytes = Vec::new();
        let read = if name.ends_with(".gz") { flate2::read::GzDecoder::new(file).read_to_end(&mut bytes) } else { std::io::BufReader::new(file).read_to_end(&mut bytes) };
        read.map_err(|e| DataError::file(path, format!("cannot read: {e}")))?;
        let mut options = CsvReadOptions::default().with_has_header(true).with_infer_schema_length(Some(10_000));
        if let Some(columns) = columns {
            options = options.with_columns(Some(columns.iter().map(|c| PlSmallStr::from(*c)).collect()));
        }
        let df = options.into_reader_with_file_handle(std::io::Cursor::new(bytes)).finish().map_err(|e| {
            DataError::file(path, format!("cannot read as CSV (UTF-8, comma-separated, double-quoted fields, header row): {e}"))
        })?;
        return Ok(df);
    }
    Err(DataError::file(path, "unknown table format: use .feather (Arrow IPC), .parquet, .csv or .csv.gz"))
}

/// The rows of a headerless tab-separated file (quotes are text, not quoting), every field as text.
pub fn read_tsv(path: &Path) -> Result<Vec<Vec<String>>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::file(path, format!("cannot read: {e}")))?;
    if file.metadata().map(|m| m.len() == 0).unwrap_or(false) {
        return Ok(Vec::new());
    }
    let df = CsvReadOptions::default()
        .with_has_header(false)
        .with_infer_schema_length(Some(0))
        .map_parse_options(|o| o.with_separator(b'\t').with_quote_char(None))
        .into_reader_with_file_handle(file)
        .finish()
        .map_err(|e| DataError::file(path, format!("cannot read as tab-separated UTF-8 text: {e}")))?;
    let names = column_names(&df);
    let mut columns = Vec::with_capacity(names.len());
    for n in &names {
        columns.push(strings(&df, n, path)?);
    }
    Ok((0..df.height()).map(|i| columns.iter().map(|c| c[i].clone().unwrap_or_default()).collect()).collect())
}

/// The texts of the rows whose `id_column` is in `wanted`, keyed by id, from a table
/// too large to hold whole (MIMIC-III NOTEEVENTS: 2M rows, ~4 GB; MIMIC-IV-Note
/// discharge.csv.gz). CSV files are streamed record by record, keeping only wanted
/// rows; feather and parquet read only the two columns.
pub fn texts_by_id(path: &Path, id_column: &str, text_column: &str, wanted: &std::collections::HashSet<String>) -> Result<std::collections::HashMap<String, String>, DataError> {
    let name = lower_name(path);
    let mut out = std::collections::HashMap::with_capacity(wanted.len());
    if !(name.ends_with(".csv") || name.ends_with(".csv.gz")) {
        let df = read(path, Some(&[id_column, text_column]))?;
        for (id, text) in strings(&df, id_column, path)?.into_iter().zip(strings(&df, text_column, path)?) {
            if let Some(id) = id.filter(|id| wanted.contains(id)) {
                out.insert(id, text.unwrap_or_default());
            }
        }
        return Ok(out);
    }
    let file = open(path)?;
    let reader: Box<dyn std::io::Read> = if name.ends_with(".gz") { Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file))) } else { Box::new(std::io::BufReader::with_capacity(1 << 20, file)) };
    let mut csv = csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
    let fail = |e: csv::Error| {
        let at = e.position().map(|p| format!("line {}: ", p.line())).unwrap_or_default();
        DataError::file(path, format!("{at}cannot read as CSV (UTF-8, comma-separated, double-quoted fields, header row): {e}"))
    };
    let header: Vec<String> = csv.headers().map_err(fail)?.iter().map(str::to_string).collect();
    let find = |c: &str| header.iter().position(|h| h == c).ok_or_else(|| missing_column(path, c, &header));
    let (id_at, text_at) = (find(id_column)?, find(text_column)?);
    let mut record = csv::StringRecord::new();
    while csv.read_record(&mut record).map_err(fail)? {
        let Some(id) = record.get(id_at) else { continue };
        if wanted.contains(id) {
            out.insert(id.to_string(), record.get(text_at).unwrap_or_default().to_string());
        }
    }
    Ok(out)
}

/// The header row of a CSV file (plain or gzipped), unquoted.
pub fn csv_header(path: &Path) -> Result<Vec<String>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::file(path, format!("cannot read: {e}")))?;
    let reader: Box<dyn std::io::Read> = if path.to_string_lossy().ends_with(".gz") { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(reader), &mut line).map_err(|e| DataError::file(path, format!("cannot read the header row: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).split(',').map(|c| c.trim().trim_matches('"').to_string()).collect())
}

fn require(present: &[String], wanted: &[&str], path: &Path) -> Result<(), DataError> {
    for w in wanted {
        if !present.iter().any(|p| p == w) {
            return Err(missing_column(path, w, present));
        }
    }
    Ok(())
}

fn missing_column(path: &Path, column: &str, present: &[String]) -> DataError {
    DataError::file(path, format!("no column {column:?} (columns: {}); name the right one in [data.source]", present.join(", ")))
}

fn project(df: DataFrame, columns: Option<&[&str]>, path: &Path) -> Result<DataFrame, DataError> {
    let Some(columns) = columns else { return Ok(df) };
    require(&column_names(&df), columns, path)?;
    df.select(columns.iter().copied()).map_err(|e| DataError::file(path, e.to_string()))
}

pub fn column_names(df: &DataFrame) -> Vec<String> {
    df.get_column_names().iter().map(|c| c.to_string()).collect()
}

fn column<'a>(df: &'a DataFrame, name: &str, path: &Path) -> Result<&'a Column, DataError> {
    df.column(name).map_err(|_| missing_column(path, name, &column_names(df)))
}

/// A column as text, one entry per row (`None` for nulls); integer ids become their digits.
pub fn strings(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Option<String>>, DataError> {
    let col = column(df, name, path)?;
    let fail = |e: PolarsError| DataError::file(path, format!("column {name:?}: {e}"));
    // Float ids (an integer column that once held a null) would print as "100197.0".
    let col = if col.dtype().is_float() { col.cast(&DataType::Int64).map_err(fail)? } else { col.clone() };
    if matches!(col.dtype(), DataType::List(_)) {
        return Err(DataError::file(path, format!("column {name:?} holds lists, expected text or numbers")));
    }
    let col = col.cast(&DataType::String).map_err(fail)?;
    let ca = col.str().map_err(fail)?;
    Ok(ca.iter().map(|v| v.map(str::to_string)).collect())
}

/// A column of code lists, one list per row (null = no codes). Accepts a list column, or text
/// holding `['A', 'B']`, `A;B`, `A,B` or `A B`.
pub fn code_lists(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Vec<String>>, DataError> {
    let col = column(df, name, path)?;
    let fail = |e: PolarsError| DataError::file(path, format!("column {name:?}: {e}"));
    match col.dtype() {
        DataType::List(_) => {
            let ca = col.list().map_err(fail)?;
            let mut out = Vec::with_capacity(ca.len());
            for row in ca.amortized_iter() {
                let Some(series) = row else {
                    out.push(Vec::new());
                    continue;
                };
                let series = series.as_ref().cast(&DataType::String).map_err(fail)?;
                let codes = series.str().map_err(fail)?.iter().flatten().map(str::to_string).collect();
                out.push(codes);
            }
            Ok(out)
        }
        DataType::String => Ok(strings(df, name, path)?.into_iter().map(|v| v.map(|s| split_code_text(&s)).unwrap_or_default()).collect()),
        other => Err(DataError::file(path, format!("column {name:?} has type {other}, expected a list of codes"))),
    }
}

/// `['A', 'B']`, `A;B`, `A,B`, `A B` -> `[A, B]`.
pub fn split_code_text(s: &str) -> Vec<String> {
    s.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split([',', ';', ' ', '\t', '\n'])
        .map(|c| c.trim().trim_matches(['\'', '"']).trim())
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_code_text_in_every_encoding() {
        let want = vec!["E11.9".to_string(), "I10".to_string()];
        assert_eq!(split_code_text("['E11.9', 'I10']"), want);
        assert_eq!(split_code_text("E11.9;I10"), want);
        assert_eq!(split_code_text("E11.9, I10"), want);
        assert_eq!(split_code_text("E11.9 I10"), want);
        assert!(split_code_text("[]").is_empty());
    }
}
