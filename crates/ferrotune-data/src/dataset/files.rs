//! Reading a dataset's `file_name` (one file, or a folder of files of one type) into rows.
//!
//! File types follow LLaMA-Factory's `FILEEXT2TYPE` (`extras/constants.py`) and the Hugging
//! Face `datasets` builders it hands them to:
//! - `.json`: a JSON array of objects; a file that does not start with `[` is read as JSON lines,
//!   as the `json` builder (pyarrow's line-delimited reader first) does;
//! - `.jsonl`: one JSON object per line, blank lines ignored;
//! - `.csv`: a header row then records; cells are typed per column as pandas infers them
//!   (booleans, integers, floats, else strings; empty cells are null);
//! - `.parquet`: read with the `parquet` crate's record API (snappy, zstd, gzip or uncompressed
//!   pages), row groups in order, columns in schema order; values as pyarrow's
//!   `Table.to_pylist()` (what `datasets` returns) would put them in JSON (see `field_value`);
//! - `.txt`: one row `{"text": line}` per line, line breaks (`\n`, `\r\n`, `\r`) removed, as the
//!   `text` builder does with `sample_by="line"`.
//!
//! Rows keep their columns in file order; columns missing from some rows are filled with null,
//! as an Arrow table would hold them. Arrow files (`.arrow`, as `save_to_disk` writes them) are
//! not read yet: an error says so and how to convert them.

use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Map, Value};

use super::dataset_info::type_name;
use super::DatasetError;

/// One example as read from a file: column name to value, in column order.
pub type Row = Map<String, Value>;

/// The rows of a dataset's file(s).
#[derive(Debug, Clone, PartialEq)]
pub struct RowTable {
    /// The file or folder the rows were read from.
    pub path: PathBuf,
    /// Every column, in order of first appearance.
    pub columns: Vec<String>,
    /// The rows; each holds every column of [`RowTable::columns`] (null where absent).
    pub rows: Vec<Row>,
}

/// File types LLaMA-Factory accepts, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileType {
    Json,
    Jsonl,
    Csv,
    Parquet,
    Text,
    Arrow,
}

/// Maps an extension to its type, as `FILEEXT2TYPE` does.
fn file_type(path: &Path) -> Result<FileType, DatasetError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "json" => Ok(FileType::Json),
        "jsonl" => Ok(FileType::Jsonl),
        "csv" => Ok(FileType::Csv),
        "parquet" => Ok(FileType::Parquet),
        "txt" => Ok(FileType::Text),
        "arrow" => Ok(FileType::Arrow),
        _ => Err(DatasetError::FileType {
            path: path.to_path_buf(),
            message: format!(
                "unsupported file type \"{ext}\"; allowed types: arrow, csv, json, jsonl, parquet, txt"
            ),
        }),
    }
}

/// Reads `path` (a file, or a folder whose files all have one type) into a [`RowTable`].
///
/// Folder entries are read in name order; hidden files (names starting with `.`) are ignored.
///
/// Errors: [`DatasetError::FileType`] for an unknown extension or a folder mixing types,
/// [`DatasetError::Parse`] with line (and column for JSON) for malformed content,
/// [`DatasetError::Empty`] when there are no rows, [`DatasetError::Io`] on read failures.
pub fn read_rows(path: &Path) -> Result<RowTable, DatasetError> {
    let files = if path.is_dir() {
        list_folder(path)?
    } else {
        vec![path.to_path_buf()]
    };
    read_files(path, &files)
}

/// Reads `files` (all of one type, e.g. the shards of a hub dataset's split), in the order
/// given, into one [`RowTable`] whose `path` is `source` (the folder they belong to).
///
/// Errors: as [`read_rows`].
pub fn read_files(source: &Path, files: &[PathBuf]) -> Result<RowTable, DatasetError> {
    let path = source;
    let first_type = match files.first() {
        Some(first) => file_type(first)?,
        None => return Err(DatasetError::Empty { path: path.into() }),
    };
    let mut rows = Vec::new();
    for file in files {
        let kind = file_type(file)?;
        if !same_builder(kind, first_type) {
            return Err(DatasetError::FileType {
                path: path.to_path_buf(),
                message: format!(
                    "files of one dataset must share a type, but {} and {} differ",
                    files[0].display(),
                    file.display()
                ),
            });
        }
        rows.extend(read_file(file, kind)?);
    }
    if rows.is_empty() {
        return Err(DatasetError::Empty { path: path.into() });
    }
    Ok(fill_columns(path, rows))
}

/// `json` and `jsonl` share one builder in LLaMA-Factory; other types must match exactly.
fn same_builder(a: FileType, b: FileType) -> bool {
    let norm = |t| {
        if t == FileType::Jsonl {
            FileType::Json
        } else {
            t
        }
    };
    norm(a) == norm(b)
}

/// The non-hidden files of a folder, sorted by name.
fn list_folder(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |e: std::io::Error| DatasetError::Io {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// Reads one file of a known type.
fn read_file(path: &Path, kind: FileType) -> Result<Vec<Row>, DatasetError> {
    match kind {
        FileType::Arrow => Err(DatasetError::FileType {
            path: path.to_path_buf(),
            message: "arrow files are not read yet; hint: convert the file to parquet \
                      (e.g. `datasets.Dataset.from_file(f).to_parquet(out)`)"
                .into(),
        }),
        FileType::Parquet => read_parquet(path),
        FileType::Csv => read_csv(path),
        _ => {
            let text = std::fs::read_to_string(path).map_err(|e| DatasetError::Io {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            match kind {
                FileType::Text => Ok(text_rows(&text)),
                FileType::Json if text.trim_start().starts_with('[') => {
                    json_array_rows(path, &text)
                }
                _ => json_lines_rows(path, &text),
            }
        }
    }
}

/// serde_json's message without its trailing ` at line L column C` (the caller reports those).
pub(crate) fn json_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_string()
}

/// Parses a JSON array of objects.
fn json_array_rows(path: &Path, text: &str) -> Result<Vec<Row>, DatasetError> {
    let values: Vec<Value> = serde_json::from_str(text).map_err(|e| DatasetError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: format!("invalid JSON: {}", json_message(&e)),
    })?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, value)| match value {
            Value::Object(row) => Ok(row),
            other => Err(DatasetError::Parse {
                path: path.to_path_buf(),
                line: 0,
                column: 0,
                message: format!(
                    "element {i} of the array is {}, expected an object",
                    type_name(&other)
                ),
            }),
        })
        .collect()
}

/// Parses JSON lines: one object per non-blank line.
fn json_lines_rows(path: &Path, text: &str) -> Result<Vec<Row>, DatasetError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parse_error = |column: usize, message: String| DatasetError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            column,
            message,
        };
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(row)) => rows.push(row),
            Ok(other) => {
                return Err(parse_error(
                    0,
                    format!("line is {}, expected a JSON object", type_name(&other)),
                ))
            }
            Err(e) => {
                return Err(parse_error(
                    e.column(),
                    format!("invalid JSON: {}", json_message(&e)),
                ))
            }
        }
    }
    Ok(rows)
}

/// One `{"text": line}` row per line; `\r\n` and `\r` count as line breaks; a final line break
/// does not start an extra empty row.
fn text_rows(text: &str) -> Vec<Row> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let body = text.strip_suffix('\n').unwrap_or(&text);
    if text.is_empty() {
        return Vec::new();
    }
    body.split('\n')
        .map(|line| {
            let mut row = Row::new();
            row.insert("text".into(), Value::String(line.to_string()));
            row
        })
        .collect()
}

/// Reads every row of a parquet file, row groups in order; columns keep the schema's order.
///
/// Errors: [`DatasetError::Io`] when the file cannot be opened, [`DatasetError::Parse`] (no
/// line) when it is not a valid parquet file or a page cannot be decoded, naming the row.
fn read_parquet(path: &Path) -> Result<Vec<Row>, DatasetError> {
    let file = std::fs::File::open(path).map_err(|e| DatasetError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let invalid = |what: String, e: parquet::errors::ParquetError| DatasetError::Parse {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!(
            "invalid parquet file ({what}): {}",
            e.to_string().trim_start_matches("Parquet error: ")
        ),
    };
    let reader =
        SerializedFileReader::new(file).map_err(|e| invalid("reading the footer".into(), e))?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| invalid("reading the schema".into(), e))?;
    rows.enumerate()
        .map(|(i, row)| {
            let row = row.map_err(|e| invalid(format!("row {i}"), e))?;
            Ok(row
                .get_column_iter()
                .map(|(name, field)| (name.clone(), field_value(field)))
                .collect())
        })
        .collect()
}

/// A parquet value as JSON, the way `json.dumps(table.to_pylist())` writes pyarrow's Python
/// values: integers and floats as numbers (NaN and infinities as null), strings, booleans and
/// null as such, lists as arrays, structs as objects in field order, maps as arrays of
/// `[key, value]` pairs. Values JSON has no type for: binary as an array of byte values,
/// decimals as their exact decimal string (`"12.30"`), dates as `"YYYY-MM-DD"`, times of day as
/// `"HH:MM:SS.ffffff"`, timestamps in RFC 3339 UTC (`"2024-01-02T03:04:05.5Z"`; a timestamp
/// outside years -9999..9999 stays its integer count).
fn field_value(field: &Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => Value::from(*v),
        Field::Short(v) => Value::from(*v),
        Field::Int(v) => Value::from(*v),
        Field::Long(v) => Value::from(*v),
        Field::UByte(v) => Value::from(*v),
        Field::UShort(v) => Value::from(*v),
        Field::UInt(v) => Value::from(*v),
        Field::ULong(v) => Value::from(*v),
        Field::Float16(v) => Value::from(v.to_f64()),
        Field::Float(v) => Value::from(f64::from(*v)),
        Field::Double(v) => Value::from(*v),
        Field::Decimal(d) => Value::String(decimal_string(d.data(), d.scale())),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => Value::Array(b.data().iter().map(|&x| Value::from(x)).collect()),
        Field::Date(days) => jiff::Timestamp::from_second(i64::from(*days) * 86_400)
            .map_or(Value::from(*days), |t| {
                Value::String(t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
            }),
        Field::TimeMillis(ms) => Value::String(time_of_day(i64::from(*ms) * 1000)),
        Field::TimeMicros(us) => Value::String(time_of_day(*us)),
        Field::TimestampMillis(ms) => jiff::Timestamp::from_millisecond(*ms)
            .map_or(Value::from(*ms), |t| Value::String(t.to_string())),
        Field::TimestampMicros(us) => jiff::Timestamp::from_microsecond(*us)
            .map_or(Value::from(*us), |t| Value::String(t.to_string())),
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(name, value)| (name.clone(), field_value(value)))
                .collect(),
        ),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().map(field_value).collect())
        }
        Field::MapInternal(map) => Value::Array(
            map.entries()
                .iter()
                .map(|(k, v)| Value::Array(vec![field_value(k), field_value(v)]))
                .collect(),
        ),
    }
}

/// The decimal with big-endian two's-complement unscaled value `bytes` and `scale` digits
/// after the point, e.g. (`[0x04, 0xCE]`, 2) → `"12.30"`. Values wider than 128 bits (rare:
/// pyarrow's `decimal256`) are rounded through `f64`.
fn decimal_string(bytes: &[u8], scale: i32) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    if bytes.len() > 16 {
        let mut value = 0f64;
        for &b in bytes {
            value = value * 256.0 + f64::from(if negative { !b } else { b });
        }
        if negative {
            value = -(value + 1.0);
        }
        return (value / 10f64.powi(scale)).to_string();
    }
    let mut unscaled: i128 = if negative { -1 } else { 0 };
    for &b in bytes {
        unscaled = (unscaled << 8) | i128::from(b);
    }
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    match usize::try_from(scale) {
        Ok(0) => format!("{sign}{digits}"),
        Err(_) => format!(
            "{sign}{digits}{}",
            "0".repeat(scale.unsigned_abs() as usize)
        ),
        Ok(scale) => {
            let padded = format!("{digits:0>width$}", width = scale + 1);
            let (int, frac) = padded.split_at(padded.len() - scale);
            format!("{sign}{int}.{frac}")
        }
    }
}

/// `HH:MM:SS.ffffff` for microseconds since midnight (wrapped into one day).
fn time_of_day(micros: i64) -> String {
    let micros = micros.rem_euclid(86_400_000_000);
    let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
    format!(
        "{:02}:{:02}:{:02}.{frac:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Reads a CSV file with a header row; cells are typed per column (see the module doc).
fn read_csv(path: &Path) -> Result<Vec<Row>, DatasetError> {
    let csv_error = |e: csv::Error| {
        let line = e.position().map_or(0, |p| p.line() as usize);
        DatasetError::Parse {
            path: path.to_path_buf(),
            line,
            column: 0,
            message: format!("invalid CSV: {e}"),
        }
    };
    let mut reader = csv::Reader::from_path(path).map_err(csv_error)?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(String::from)
        .collect();
    let mut cells: Vec<Vec<String>> = Vec::new();
    for record in reader.records() {
        cells.push(
            record
                .map_err(csv_error)?
                .iter()
                .map(String::from)
                .collect(),
        );
    }
    let kinds: Vec<CellKind> = (0..headers.len())
        .map(|c| CellKind::infer(cells.iter().filter_map(|r| r.get(c))))
        .collect();
    Ok(cells
        .into_iter()
        .map(|record| {
            headers
                .iter()
                .zip(&kinds)
                .zip(record)
                .map(|((name, kind), cell)| (name.clone(), kind.value(cell)))
                .collect()
        })
        .collect())
}

/// The type pandas would give a CSV column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CellKind {
    Bool,
    Int,
    Float,
    Str,
}

impl CellKind {
    /// The narrowest type that holds every non-empty cell.
    fn infer<'a>(cells: impl Iterator<Item = &'a String>) -> Self {
        let mut kind = None;
        for cell in cells.filter(|c| !c.is_empty()) {
            let this = if parse_bool(cell).is_some() {
                CellKind::Bool
            } else if cell.parse::<i64>().is_ok() {
                CellKind::Int
            } else if cell.parse::<f64>().is_ok() {
                CellKind::Float
            } else {
                return CellKind::Str;
            };
            kind = Some(match (kind, this) {
                (None, k) => k,
                (Some(a), b) if a == b => a,
                (Some(CellKind::Int), CellKind::Float) | (Some(CellKind::Float), CellKind::Int) => {
                    CellKind::Float
                }
                _ => return CellKind::Str,
            });
        }
        kind.unwrap_or(CellKind::Str)
    }

    /// The cell as a JSON value of this type; empty cells are null.
    fn value(self, cell: String) -> Value {
        if cell.is_empty() {
            return Value::Null;
        }
        match self {
            CellKind::Bool => parse_bool(&cell).map_or(Value::Null, Value::Bool),
            CellKind::Int => cell.parse::<i64>().map_or(Value::Null, Value::from),
            CellKind::Float => cell.parse::<f64>().map_or(Value::Null, Value::from),
            CellKind::Str => Value::String(cell),
        }
    }
}

/// pandas' default true/false spellings.
fn parse_bool(cell: &str) -> Option<bool> {
    match cell {
        "True" | "TRUE" | "true" => Some(true),
        "False" | "FALSE" | "false" => Some(false),
        _ => None,
    }
}

/// Gives every row every column (null where absent), columns in order of first appearance.
fn fill_columns(path: &Path, mut rows: Vec<Row>) -> RowTable {
    let mut columns: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        for key in row.keys() {
            if seen.insert(key.clone()) {
                columns.push(key.clone());
            }
        }
    }
    for row in &mut rows {
        if row.len() != columns.len() {
            for column in &columns {
                row.entry(column.clone()).or_insert(Value::Null);
            }
        }
    }
    RowTable {
        path: path.to_path_buf(),
        columns,
        rows,
    }
}
