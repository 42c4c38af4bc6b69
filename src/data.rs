//! The training data: its columns, reading CSV (the stored file and what people bring),
//! and appending to the stored file so that it is changed whole or not at all.
//!
//! **Format.** CSV as RFC 4180 defines it, read and written with the `csv` crate: quoted
//! fields, CRLF or LF line ends, and a leading UTF-8 byte order mark (a spreadsheet's
//! "CSV UTF-8" export) are all read (issue #9). The stored file (`state_dir/data/<data.file>`)
//! keeps one canonical form: the configured header, the features in the configured order,
//! then the label, one row per LF-terminated line, numbers in the shortest text that reads
//! back as the same `f64`.
//!
//! **What people bring** (`add-data`, `predict`) is mapped onto the schema: a header is
//! matched by name, ignoring case and order, `[data] ignore` columns are dropped, and a
//! missing or unknown column is refused by its name; without a header the configured order
//! applies. Every field must be a finite number within [`max_magnitude`]: an empty field,
//! `NA`, `NaN` or a value too large for a model's arithmetic is refused with its line and
//! column, never imputed.
//!
//! **Appends** take an exclusive `flock` on the stored file, go out in one `write` followed
//! by `fsync`; on any write error the file is truncated back to its old length and synced
//! again, so an append is all or nothing even on a full disk (issue #8 §8). Readers take a
//! shared lock, so a reader sees all of an append or none of it.
//!
//! **A partial last line** (the file does not end with a newline: a writer crashed mid-row)
//! is an error that names the line, for readers and writers alike; an append never goes
//! after it, since the two would merge into one wrong row.
//!
//! **What a model learned from** is a prefix of the file: its first `data_bytes` bytes, whose
//! SHA-256 the artifact records. [`scan`] tells whether the file still starts with exactly
//! those bytes, which is how "training is due" sees rows that were removed or edited in
//! place, not only rows appended (issue #8 §7). [`survey`] asks the ledger first
//! (`crate::ledger`), which knows without reading the file when only `add-data` appended
//! since; [`stream`] reads rows one at a time, from the beginning or from where a model's
//! data ends (issue #10).

use fs_err::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config;
use crate::ledger::{Checkpoint, FileState, Ledger};
use crate::progress::Progress;

/// The Boston data's 13 feature columns, in the order of the original's API and CSV: the
/// default `[data] features`.
pub const FEATURES: [&str; 13] = [
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT",
];
/// The Boston data's label, the default `[data] label`.
pub const LABEL: &str = "MEDV";

/// The two example rows of the original demo's `addData.py` (Boston columns).
pub const SAMPLE_ROWS: [&str; 2] = [
    "0.13004,12.5,8.87,0,0.592,6.836,72.9,6.5430,5,331,15.2,299.71,13.1,12.9",
    "0.95204,0,8.14,0,0.882,5.935,87.2,4.9013,4,301,21,452.87,15.83,21.2",
];

/// Buffer for reading the data file: large reads, few syscalls.
const READ_BUFFER: usize = 1 << 16;

/// What is wrong with data, and where: the input (`origin`: a path, "stdin", "--row #2"),
/// its line and column, or the file and the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A line as a whole: the wrong number of values.
    #[error("{origin} line {line}: {why}")]
    Line {
        origin: String,
        line: u64,
        why: String,
    },
    /// One field: not a number, not finite, or missing (empty, `NA`, `NaN`).
    #[error("{origin} line {line}, column {column} ({name}): {why}")]
    Field {
        origin: String,
        line: u64,
        column: usize,
        name: String,
        why: String,
    },
    /// The header: a missing, unknown or repeated column; or the stored file's header is
    /// not the configured one.
    #[error("{origin}: {why}")]
    Header { origin: String, why: String },
    /// The last line has no newline: a writer crashed mid-row. `keep` is where it starts.
    #[error(
        "{origin} line {line} is cut short: the file does not end with a newline, as if a writer crashed mid-row; \
         hint: if the row is complete, end it with a newline (`echo >> {origin}`), else remove it (`truncate -s {keep} {origin}`)"
    )]
    Partial {
        origin: String,
        line: u64,
        keep: u64,
    },
    /// The CSV reader failed (an I/O error underneath it).
    #[error("{origin} line {line}: not CSV")]
    Csv {
        origin: String,
        line: u64,
        #[source]
        source: csv::Error,
    },
    /// Opening, locking, reading or writing the stored file failed; an append left it as it
    /// was. The `fs-err` error names the file and the operation.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Reading an input (a file or stdin, named by `origin`) failed.
    #[error("cannot read {origin}")]
    Read {
        origin: String,
        #[source]
        source: io::Error,
    },
    /// An append failed, and so did truncating the file back: it must be mended by hand.
    #[error(
        "cannot append to {path}, and truncating it back to its old {old_len} bytes failed too ({undo}); \
         hint: remove everything after byte {old_len} by hand (`truncate -s {old_len} {path}`)"
    )]
    Undo {
        path: PathBuf,
        old_len: u64,
        undo: io::Error,
        #[source]
        source: io::Error,
    },
}

/// The columns of a model's data: its features, in order, then its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// The feature columns, in the order of the API's rows.
    pub features: Vec<String>,
    /// The column predicted.
    pub label: String,
}

impl Schema {
    /// The schema `[data]` configures.
    pub fn of(data: &config::Data) -> Schema {
        Schema {
            features: data.features.clone(),
            label: data.label.clone(),
        }
    }

    /// The original demo's: 13 Boston features, then `MEDV`.
    pub fn boston() -> Schema {
        Schema {
            features: FEATURES.iter().map(|s| s.to_string()).collect(),
            label: LABEL.to_string(),
        }
    }

    /// The stored file's columns: the features, then the label.
    pub fn columns(&self) -> Vec<&str> {
        let mut columns: Vec<&str> = self.features.iter().map(String::as_str).collect();
        columns.push(&self.label);
        columns
    }

    /// Whether this is the original demo's schema, which has sample rows.
    pub fn is_boston(&self) -> bool {
        *self == Schema::boston()
    }

    /// The stored file's header line, CSV-encoded, without a line end.
    pub fn header(&self) -> String {
        let bytes = csv_line(self.columns());
        String::from_utf8(bytes).expect("column names are text")
    }
}

/// Rows of numbers, row-major: `width` values per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// Values per row.
    pub width: usize,
    /// Every row's values, one row after the other.
    pub values: Vec<f64>,
}

impl Rows {
    /// No rows yet, of `width` values each.
    pub fn new(width: usize) -> Rows {
        Rows {
            width,
            values: Vec::new(),
        }
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.values.len() / self.width
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Row `i` (0-based); panics past the end, as slices do.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.width..(i + 1) * self.width]
    }

    /// The rows in order.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, f64> {
        self.values.chunks_exact(self.width)
    }

    /// Appends `other`'s rows, which must be as wide.
    pub fn extend(&mut self, other: &Rows) {
        debug_assert_eq!(self.width, other.width);
        self.values.extend_from_slice(&other.values);
    }

    /// Formats the rows as canonical CSV lines, each ending in LF. Rust prints the shortest
    /// text that reads back as the same `f64`, so a round trip through the file loses nothing.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::with_capacity(self.values.len() * 8));
        let mut fields: Vec<String> = Vec::with_capacity(self.width);
        for row in self.iter() {
            fields.clear();
            fields.extend(row.iter().map(f64::to_string));
            writer
                .write_record(&fields)
                .expect("writing to memory does not fail");
        }
        writer
            .into_inner()
            .expect("writing to memory does not fail")
    }
}

/// One CSV line (no line end) holding `fields`.
fn csv_line<I, T>(fields: I) -> Vec<u8>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    writer
        .write_record(fields)
        .expect("writing to memory does not fail");
    let mut line = writer
        .into_inner()
        .expect("writing to memory does not fail");
    line.pop();
    line
}

/// A CSV reader over `input` that skips a leading UTF-8 byte order mark. Row lengths are
/// checked by the callers, who say more than the crate would; spaces around a field are
/// dropped where it is read ([`number_in`], [`map_header`]), not by the crate, which would
/// trim every field of a large file that has none.
fn csv_reader<R: Read>(input: R) -> io::Result<csv::Reader<BufReader<R>>> {
    let mut input = BufReader::with_capacity(READ_BUFFER, input);
    if input.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
        input.consume(3);
    }
    Ok(csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        // As large as `input`'s buffer, so that reads bypass that one instead of copying
        // through it.
        .buffer_capacity(READ_BUFFER)
        .from_reader(input))
}

/// Why a field is not a usable number, or its value.
fn number_in(field: &[u8]) -> Result<f64, String> {
    // Nearly every field is a plain decimal number: read it from the bytes as they are.
    // (This is most of reading a large CSV; bench/run section 5.) fast-float2 takes what
    // `str::parse::<f64>` takes, to the same value.
    if let Ok(value) = fast_float2::parse::<f64, _>(field) {
        if value.is_finite() {
            return Ok(value);
        }
    }
    let text = std::str::from_utf8(field).unwrap_or("\u{fffd}").trim();
    if text.is_empty() {
        return Err(
            "the field is empty: a missing value; nothing is imputed, so fill it in or leave the row out"
                .to_string(),
        );
    }
    if text.eq_ignore_ascii_case("NA") || text.eq_ignore_ascii_case("NaN") {
        return Err(format!(
            "{text:?} is a missing value; nothing is imputed, so fill it in or leave the row out"
        ));
    }
    match fast_float2::parse::<f64, _>(text).ok() {
        Some(v) if v.is_finite() => Ok(v),
        Some(_) => Err(format!(
            "{text:?} is not a finite number; hint: infinities are no measurement: put a number there, or leave the row out"
        )),
        None => Err(format!(
            "{text:?} is not a number; hint: each value is a plain number such as 12.5 or 1e-3 (no units, no thousands separators), in the columns' order"
        )),
    }
}

/// Why a value past [`max_magnitude`] is refused, with the bound and what to do.
fn too_large(field: &[u8], limit: f64, values: usize) -> String {
    let text = String::from_utf8_lossy(field);
    format!(
        "{} is too large: values may be at most ±{limit:.2e} in rows of {values} numbers, \
         so that the sums of squares a model computes over a row (distances, variances) stay finite; \
         hint: express the column in larger units, or leave the row out",
        text.trim()
    )
}

/// Whether every field of a record is a number or a missing value: such a first line is
/// data (to be refused for its missing values), not a header. Column names may not be
/// numbers: the config refuses them.
fn all_numbers(record: &csv::ByteRecord) -> bool {
    record.iter().all(|f| {
        let text = std::str::from_utf8(f).unwrap_or("x").trim();
        text.is_empty()
            || text.eq_ignore_ascii_case("NA")
            || fast_float2::parse::<f64, _>(text).is_ok()
    })
}

fn line_of(record: &csv::ByteRecord) -> u64 {
    record.position().map_or(0, |p| p.line())
}

/// Reads rows that people bring (`add-data`, `predict`): CSV with or without a header.
///
/// The result has `wanted.len()` values per row, in `wanted` order. A header is matched by
/// name, ignoring case and order; its `droppable` columns are dropped, and any other column
/// that is not wanted is refused (it may be a typo of a wanted one). Without a header, each
/// row must hold exactly the `wanted` columns in order. `origin` names the input in errors
/// ("stdin", a path).
pub fn read_rows<R: Read>(
    input: R,
    origin: &str,
    wanted: &[&str],
    droppable: &[&str],
) -> Result<Rows, DataError> {
    read_rows_as(input, origin, wanted, droppable, true)
}

/// Reads rows that have no header: every line is a data row of the `wanted` columns in
/// order, and a field that is not a number is refused as such, never taken for a column
/// name (`add-data --row`, where a header would silently drop a row).
pub fn read_data_rows<R: Read>(input: R, origin: &str, wanted: &[&str]) -> Result<Rows, DataError> {
    read_rows_as(input, origin, wanted, &[], false)
}

fn read_rows_as<R: Read>(
    input: R,
    origin: &str,
    wanted: &[&str],
    droppable: &[&str],
    may_have_header: bool,
) -> Result<Rows, DataError> {
    let io = |source| DataError::Read {
        origin: origin.to_string(),
        source,
    };
    let mut reader = csv_reader(input).map_err(io)?;
    let mut record = csv::ByteRecord::new();
    let mut rows = Rows::new(wanted.len());
    let limit = max_magnitude(wanted.len());
    let csv_err = |record: &csv::ByteRecord, source| DataError::Csv {
        origin: origin.to_string(),
        line: line_of(record),
        source,
    };
    if !reader
        .read_byte_record(&mut record)
        .map_err(|e| csv_err(&record, e))?
    {
        return Ok(rows);
    }
    let (columns, width, names) = if !may_have_header || all_numbers(&record) {
        let columns: Vec<usize> = (0..wanted.len()).collect();
        let names: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
        let width = wanted.len();
        parse_record(
            &record,
            &columns,
            width,
            &names,
            origin,
            limit,
            &mut rows.values,
        )?;
        (columns, width, names)
    } else {
        let header: Vec<String> = record
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_string())
            .collect();
        let columns = map_header(&header, wanted, droppable, origin)?;
        (columns, header.len(), header)
    };
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| csv_err(&record, e))?
    {
        parse_record(
            &record,
            &columns,
            width,
            &names,
            origin,
            limit,
            &mut rows.values,
        )?;
    }
    Ok(rows)
}

/// For each wanted column, its index in `header` (see [`read_rows`]).
fn map_header(
    header: &[String],
    wanted: &[&str],
    droppable: &[&str],
    origin: &str,
) -> Result<Vec<usize>, DataError> {
    let refuse = |why: String| DataError::Header {
        origin: origin.to_string(),
        why,
    };
    if let Some(column) = header.iter().position(|name| name.contains('\n')) {
        return Err(refuse(format!(
            "the header's column {} opens a quoted value (\") that the line does not close: it runs on across the following lines; hint: close the quote on its line, or remove it",
            column + 1
        )));
    }
    if let [only] = header {
        if let Some(sep) = [';', '\t'].into_iter().find(|c| only.contains(*c)) {
            return Err(refuse(format!(
                "the header {only:?} is one column that holds {:?}: the file is separated by {} rather than commas; hint: the file must be comma-separated (CSV); convert it, e.g. `tr '{}' ',' < FILE` when no value holds a comma or a decimal comma",
                sep,
                if sep == ';' { "semicolons" } else { "tabs" },
                if sep == ';' { ";" } else { "\\t" },
            )));
        }
    }
    for (i, name) in header.iter().enumerate() {
        if header[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(refuse(format!(
                "the header names column {name:?} twice (names are matched ignoring case); hint: rename or remove one of the two columns"
            )));
        }
        let known = |list: &[&str]| list.iter().any(|w| w.eq_ignore_ascii_case(name));
        if !known(wanted) && !known(droppable) {
            return Err(refuse(format!(
                "the header's column {} ({name:?}) is not one of {}; hint: if the column is not meant for the model, list it in [data] ignore",
                i + 1,
                wanted.join(", ")
            )));
        }
    }
    wanted
        .iter()
        .map(|name| {
            header
                .iter()
                .position(|h| h.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    refuse(format!(
                        "the header has no column {name:?}; it has {}",
                        header.join(", ")
                    ))
                })
        })
        .collect()
}

/// The largest magnitude a value may have in rows of `values` numbers:
/// √(`f64::MAX` / (4 · `values`)), about 1.8e153 for the 14 columns of the Boston data.
///
/// Why a bound at all: models sum squares over a row. knn's distance between two rows is
/// Σ (aᵢ − bᵢ)², where each difference may be twice the largest magnitude M, so the sum stays
/// finite only while 4 · values · M² ≤ `f64::MAX`; ridge, lasso and elastic net scale each
/// column by its spread (a sum of squares), and the gate's RMSE sums squared errors. Past the
/// bound those sums are infinite, and no kind fits anything meaningful: smartcore's cover tree
/// (knn) recursed until the stack overflowed (exit 134), lasso and elastic net never
/// converged, ridge's coefficients came out NaN. So the data refuses such a value when it is
/// read, for every kind alike (a model of another kind may be trained on the same data
/// later): `add-data` before anything is written, and a training on a stored file edited by
/// hand, with the line and column. Measured quantities never come near it.
pub fn max_magnitude(values: usize) -> f64 {
    let exact = (f64::MAX / (4.0 * values.max(1) as f64)).sqrt();
    // Rounded down to three significant digits, as messages show it, which also leaves room
    // for the rounding of the sums themselves.
    let exponent = exact.log10().floor() as i32;
    let mantissa = (exact / 10f64.powi(exponent) * 100.0).floor() / 100.0;
    format!("{mantissa}e{exponent}")
        .parse()
        .expect("a number in exponent notation parses")
}

/// Appends the `columns` of `record` (which must have `width` fields) to `out`. `names` are
/// the input's column names, for errors. Each value must be within `limit`,
/// [`max_magnitude`]`(columns.len())` (computed once per input by the caller).
fn parse_record(
    record: &csv::ByteRecord,
    columns: &[usize],
    width: usize,
    names: &[String],
    origin: &str,
    limit: f64,
    out: &mut Vec<f64>,
) -> Result<(), DataError> {
    if record.len() != width {
        let why = match unterminated(record) {
            Some(why) => why,
            None => format!(
                "has {} values; expected {width} ({}); hint: a line holds one value per column, separated by commas, with no comma at its end",
                record.len(),
                names.join(",")
            ),
        };
        return Err(DataError::Line {
            origin: origin.to_string(),
            line: line_of(record),
            why,
        });
    }
    for &column in columns {
        let value = number_in(&record[column])
            .and_then(|value| match value.abs() <= limit {
                true => Ok(value),
                false => Err(too_large(&record[column], limit, columns.len())),
            })
            .map_err(|why| match unterminated(record) {
                Some(why) => DataError::Line {
                    origin: origin.to_string(),
                    line: line_of(record),
                    why,
                },
                None => DataError::Field {
                    origin: origin.to_string(),
                    line: line_of(record),
                    column: column + 1,
                    name: names[column].clone(),
                    why,
                },
            })?;
        out.push(value);
    }
    Ok(())
}

/// Why a record that is refused is really an unterminated quote: the CSV reader takes a `"`
/// as opening a quoted value, which then runs on across line ends, to the next `"` or the
/// end of the input, so the line seemed to have too few values. A line end inside a value
/// is legal CSV, but never a number. Only called on a refused record: it looks at every
/// byte.
fn unterminated(record: &csv::ByteRecord) -> Option<String> {
    let column = record.iter().position(|f| f.contains(&b'\n'))?;
    Some(format!(
        "column {} opens a quoted value (\") that the line does not close: it runs on across the following lines; hint: close the quote on its line, or remove it (numbers need no quotes)",
        column + 1
    ))
}

/// Checks the stored file's header line against `schema`: the same names in the same order
/// (ignoring case).
fn check_stored_header(
    record: &csv::ByteRecord,
    schema: &Schema,
    origin: &str,
) -> Result<(), DataError> {
    let columns = schema.columns();
    let matches = record.len() == columns.len()
        && record
            .iter()
            .zip(&columns)
            .all(|(field, name)| field.trim_ascii().eq_ignore_ascii_case(name.as_bytes()));
    if matches {
        return Ok(());
    }
    let found: Vec<String> = record
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    Err(DataError::Header {
        origin: origin.to_string(),
        why: format!(
            "its header is {:?}, but [data] in the config says {:?}; hint: the stored file keeps the configured columns, in order; fix [data] in the config, or move the file aside and import it with `bluegreen init --data FILE`, which maps columns by name",
            found.join(","),
            schema.header()
        ),
    })
}

/// Training data read from the stored file.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The columns of `rows`.
    pub schema: Schema,
    /// Features then label per row, in [`Schema::columns`] order.
    pub rows: Rows,
    /// How many bytes were read: the model learns from the file's first `bytes` bytes.
    pub bytes: u64,
    /// SHA-256 of exactly those bytes.
    pub sha256: String,
    /// The SHA-256 state after them (`ledger::state_hex`), for a training to go on from.
    pub sha256_state: String,
}

impl Dataset {
    /// For the rows selected by `keep` (by index), the values of `columns` (indices into a
    /// row) row-major, and the labels.
    pub fn select(&self, keep: impl Fn(usize) -> bool, columns: &[usize]) -> (Vec<f64>, Vec<f64>) {
        let label = self.schema.features.len();
        let mut x = Vec::with_capacity(self.rows.len() * columns.len());
        let mut y = Vec::with_capacity(self.rows.len());
        for (i, row) in self.rows.iter().enumerate() {
            if keep(i) {
                x.extend(columns.iter().map(|&c| row[c]));
                y.push(row[label]);
            }
        }
        (x, y)
    }

    /// Where a model's features are in this data's rows, or `None` if one is missing (a
    /// model of another schema).
    pub fn columns_of(&self, features: &[String], label: &str) -> Option<Vec<usize>> {
        if label != self.schema.label {
            return None;
        }
        features
            .iter()
            .map(|f| self.schema.features.iter().position(|s| s == f))
            .collect()
    }
}

/// The stored file, opened and locked shared: appends wait until it is dropped.
pub fn open_shared(path: &Path) -> Result<File, DataError> {
    let file = File::open(path)?;
    file.lock_shared()?;
    Ok(file)
}

/// Reads and validates the whole stored file under a shared lock.
///
/// The file is read through the CSV reader and hashed as it goes, never held whole as text:
/// on 10^6 rows the text alone was 100 MB of `train`'s peak memory, beside the 112 MB of rows.
pub fn read_dataset(path: &Path, schema: &Schema) -> Result<Dataset, DataError> {
    read_dataset_shown(path, schema, &Progress::hidden())
}

/// [`read_dataset`], counting what is read into `progress` (`train`'s bar on a terminal).
pub fn read_dataset_shown(
    path: &Path,
    schema: &Schema,
    progress: &Progress,
) -> Result<Dataset, DataError> {
    let file = open_shared(path)?;
    let mut rows = Rows::new(schema.columns().len());
    let streamed = stream(&file, path, schema, None, progress, |_, row| {
        rows.values.extend_from_slice(row)
    })?;
    Ok(Dataset {
        schema: schema.clone(),
        rows,
        bytes: streamed.bytes,
        sha256: crate::ledger::digest_hex(&streamed.sha),
        sha256_state: crate::ledger::state_hex(&streamed.sha),
    })
}

/// Where [`stream`] starts: after rows already known (a model's data, which the ledger says
/// is still the file's beginning), with the SHA-256 state after them.
pub struct Resume {
    /// Bytes known, header included: the start of a line.
    pub bytes: u64,
    /// Data rows in them.
    pub rows: usize,
    /// Lines in them, for the line numbers of errors.
    pub lines: u64,
    /// The SHA-256 state after them.
    pub sha: Sha256,
}

/// What [`stream`] read: the totals from the file's beginning.
pub struct Streamed {
    /// Data rows in the file (those resumed from included).
    pub rows: usize,
    /// Lines in the file.
    pub lines: u64,
    /// The file's length.
    pub bytes: u64,
    /// The SHA-256 state after the file's last byte.
    pub sha: Sha256,
}

/// Reads the stored file (open and locked), one row at a time, without holding more than a
/// buffer and one row: `each` gets the row's index in the file (0-based, the header not
/// counted) and its values (features, then the label). From the beginning, header checked,
/// or after `from`, reading only what follows it. Everything read is hashed on top of
/// `from`'s state. Errors name the line as the whole file counts it; a file that does not
/// end with a newline is refused with its last line, before any row is handed out. What is
/// read is counted into `progress`.
pub fn stream(
    file: &File,
    path: &Path,
    schema: &Schema,
    from: Option<Resume>,
    progress: &Progress,
    mut each: impl FnMut(usize, &[f64]),
) -> Result<Streamed, DataError> {
    use std::io::{Seek, SeekFrom};
    let origin = path.display().to_string();
    let (start, rows_before, lines_before, sha) = match from {
        Some(r) => (r.bytes, r.rows, r.lines, r.sha),
        None => (0, 0, 0, Sha256::new()),
    };
    let mut input = file;
    input.seek(SeekFrom::Start(start))?;
    let tally = Tally {
        inner: progress.wrap(input),
        sha,
        bytes: start,
        lines: lines_before,
        last: None,
        line_start: start,
    };
    if !ends_with_newline(file)? {
        // Counted to the end for the message; nothing was handed out.
        let mut tally = tally;
        io::copy(&mut tally, &mut io::sink())?;
        if tally.bytes == 0 {
            return Err(DataError::Header {
                origin,
                why: "it is empty: it has no header".to_string(),
            });
        }
        return Err(DataError::Partial {
            origin,
            line: tally.lines + 1,
            keep: tally.line_start,
        });
    }
    let mut reader = csv_reader(tally)?;
    let shift = |e: DataError| shifted(e, lines_before);
    let csv_err = |record: &csv::ByteRecord, source| DataError::Csv {
        origin: origin.clone(),
        line: line_of(record),
        source,
    };
    let names: Vec<String> = schema.columns().iter().map(|s| s.to_string()).collect();
    let columns: Vec<usize> = (0..names.len()).collect();
    let limit = max_magnitude(names.len());
    let mut record = csv::ByteRecord::new();
    if start == 0 {
        if !reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_err(&record, e))?
        {
            return Err(DataError::Header {
                origin,
                why: "it is empty: it has no header".to_string(),
            });
        }
        check_stored_header(&record, schema, &origin)?;
    }
    let mut index = rows_before;
    let mut values = Vec::with_capacity(names.len());
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| shift(csv_err(&record, e)))?
    {
        values.clear();
        parse_record(
            &record,
            &columns,
            names.len(),
            &names,
            &origin,
            limit,
            &mut values,
        )
        .map_err(shift)?;
        each(index, &values);
        index += 1;
    }
    let tally = reader.into_inner().into_inner();
    if tally.last.is_some_and(|b| b != b'\n') {
        // Written to since the check above, by a writer that does not lock the file.
        return Err(DataError::Partial {
            origin,
            line: tally.lines + 1,
            keep: tally.line_start,
        });
    }
    Ok(Streamed {
        rows: index,
        lines: tally.lines,
        bytes: tally.bytes,
        sha: tally.sha,
    })
}

/// `e` with its line moved down by `by` lines: for a read that started `by` lines in.
fn shifted(e: DataError, by: u64) -> DataError {
    match e {
        DataError::Line { origin, line, why } => DataError::Line {
            origin,
            line: line + by,
            why,
        },
        DataError::Field {
            origin,
            line,
            column,
            name,
            why,
        } => DataError::Field {
            origin,
            line: line + by,
            column,
            name,
            why,
        },
        DataError::Csv {
            origin,
            line,
            source,
        } => DataError::Csv {
            origin,
            line: line + by,
            source,
        },
        other => other,
    }
}

/// Hashes and counts what is read through it, for [`stream`]: bytes, newlines (memchr),
/// where the last line starts, the last byte.
struct Tally<R> {
    inner: R,
    sha: Sha256,
    /// Offset in the file after the bytes seen.
    bytes: u64,
    lines: u64,
    last: Option<u8>,
    line_start: u64,
}

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = &buf[..n];
        self.sha.update(chunk);
        self.lines += memchr::memchr_iter(b'\n', chunk).count() as u64;
        if let Some(at) = memchr::memrchr(b'\n', chunk) {
            self.line_start = self.bytes + at as u64 + 1;
        }
        self.bytes += n as u64;
        if let Some(&b) = chunk.last() {
            self.last = Some(b);
        }
        Ok(n)
    }
}

/// Whether the file's last byte is a newline (false for an empty file).
fn ends_with_newline(file: &File) -> io::Result<bool> {
    use fs_err::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let mut last = [0u8];
    Ok(len > 0 && file.read_at(&mut last, len - 1)? == 1 && last[0] == b'\n')
}

/// What a model learned from: the first `rows` rows of the file, which were its first
/// `bytes` bytes, with this SHA-256.
#[derive(Debug, Clone, Copy)]
pub struct Learned<'a> {
    /// Data rows it was fit on.
    pub rows: usize,
    /// `None` for artifacts of format 1, which recorded the SHA-256 of the whole file as it
    /// was then: the header and `rows` lines.
    pub bytes: Option<u64>,
    /// SHA-256 of those bytes, in hex.
    pub sha256: &'a str,
}

/// The data compared with what the newest model learned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// There is no model yet.
    NoModel,
    /// The model's data is still the file's beginning; this many rows were appended.
    Appended(usize),
    /// The model's data is no longer the file's beginning: rows were removed, edited or
    /// reordered.
    Changed,
}

/// The stored file at a glance, from [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Data rows (lines after the header that are not blank).
    pub rows: usize,
    /// The file's length.
    pub bytes: u64,
    /// Compared with what the newest model learned from.
    pub since: Since,
}

impl Scan {
    /// Whether a training is due: `batch_size` rows appended, or any other change (issue #8
    /// §7), or no model at all.
    pub fn due(&self, batch_size: usize) -> bool {
        match self.since {
            Since::NoModel | Since::Changed => true,
            Since::Appended(n) => n >= batch_size,
        }
    }

    /// What happened since the newest model, for people: "2 since v0001-…", "the data
    /// changed since v0003-… (rows removed or edited)", "no model yet".
    pub fn since_text(&self, newest: Option<&str>) -> String {
        match (self.since, newest) {
            (Since::Appended(n), Some(v)) => format!("{n} since {v}"),
            (Since::Changed, Some(v)) => {
                format!("the data changed since {v} (rows removed or edited)")
            }
            _ => "no model yet".to_string(),
        }
    }

    /// Whether training is due, for people: "batch size 2: 1 more row needed", "batch size 2:
    /// training is due", or "training is due" when the data changed otherwise.
    pub fn verdict(&self, batch_size: usize) -> String {
        match self.since {
            Since::Appended(n) if n < batch_size => {
                let more = batch_size - n;
                let rows = if more == 1 { "row" } else { "rows" };
                format!("batch size {batch_size}: {more} more {rows} needed")
            }
            Since::Appended(_) => format!("batch size {batch_size}: training is due"),
            Since::Changed | Since::NoModel => "training is due".to_string(),
        }
    }

    /// Rows appended since the newest model (0 when the data changed otherwise).
    pub fn rows_since(&self) -> usize {
        match self.since {
            Since::Appended(n) => n,
            Since::NoModel => self.rows,
            Since::Changed => 0,
        }
    }
}

/// Counts the stored file's rows and compares it with what `learned` learned from, under a
/// shared lock, in one pass that holds no more than a buffer. The header must be `schema`'s
/// and the last line complete.
pub fn scan(path: &Path, schema: &Schema, learned: Option<Learned>) -> Result<Scan, DataError> {
    let file = open_shared(path)?;
    Ok(scan_file(&file, path, schema, learned, &Progress::hidden())?.scan)
}

/// What [`survey`] found.
#[derive(Debug, Clone)]
pub struct Survey {
    /// The file at a glance.
    pub scan: Scan,
    /// The ledger that vouches for it: the one read, or a new one from a full pass.
    pub ledger: Ledger,
    /// Whether it took a full pass (and so `ledger` is new, worth writing).
    pub passed: bool,
}

/// The stored file (open and locked) compared with what `learned` learned from: from
/// `ledger` when the file is in the ledger's state and the ledger knows `learned`, which
/// reads nothing; else by one pass over the file, as [`scan`], which also gives a new ledger
/// (`crate::ledger` says why this is sound).
pub fn survey(
    file: &File,
    path: &Path,
    schema: &Schema,
    learned: Option<Learned>,
    ledger: Option<Ledger>,
) -> Result<Survey, DataError> {
    let now = FileState::of(file)?;
    if let Some(ledger) = ledger.filter(|l| l.matches(&now)) {
        if let Some(since) = ledger.since(learned.as_ref()) {
            let scan = Scan {
                rows: ledger.end().rows,
                bytes: now.size,
                since,
            };
            return Ok(Survey {
                scan,
                ledger,
                passed: false,
            });
        }
    }
    // A pass over a large file takes seconds (a gigabyte at 10^7 rows): a bar on a terminal
    // (issue 12), nothing elsewhere.
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    let progress = Progress::reading(
        format!("{name} to see what changed"),
        Some(now.size),
        crate::progress::Unit::RowsAfterHeader,
    );
    let scanned = scan_file(file, path, schema, learned, &progress)?;
    drop(progress);
    Ok(Survey {
        scan: scanned.scan,
        ledger: scanned.ledger,
        passed: true,
    })
}

/// [`survey`] of the file at `path`, under a shared lock, with the ledger at `ledger`.
pub fn survey_path(
    path: &Path,
    schema: &Schema,
    learned: Option<Learned>,
    ledger: &Path,
) -> Result<Survey, DataError> {
    let file = open_shared(path)?;
    survey(&file, path, schema, learned, Ledger::read(ledger))
}

/// A full pass's findings: the scan, and the ledger that starts from it.
struct Scanned {
    scan: Scan,
    ledger: Ledger,
}

fn scan_file(
    file: &File,
    path: &Path,
    schema: &Schema,
    learned: Option<Learned>,
    progress: &Progress,
) -> Result<Scanned, DataError> {
    let state = FileState::of(file)?;
    let origin = path.display().to_string();
    let boundary = learned.map(|l| match l.bytes {
        Some(bytes) => Boundary::Byte(bytes),
        // The header and `rows` lines: what format 1 recorded the hash of.
        None => Boundary::Line(l.rows as u64 + 1),
    });
    let mut hashing = Hashing::new(progress.wrap(file), true, boundary);
    let mut header = Vec::new();
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let n = hashing.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        if header.last() != Some(&b'\n') {
            let chunk = &buffer[..n];
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => header.extend_from_slice(&chunk[..=end]),
                None => header.extend_from_slice(chunk),
            }
        }
    }
    if hashing.bytes == 0 {
        return Err(DataError::Header {
            origin,
            why: "it is empty: it has no header".to_string(),
        });
    }
    if hashing.last != Some(b'\n') {
        return Err(DataError::Partial {
            origin,
            line: hashing.lines + 1,
            keep: hashing.line_start,
        });
    }
    let mut reader = csv_reader(&header[..])?;
    let mut record = csv::ByteRecord::new();
    reader
        .read_byte_record(&mut record)
        .map_err(|source| DataError::Csv {
            origin: origin.clone(),
            line: 1,
            source,
        })?;
    check_stored_header(&record, schema, &origin)?;
    let rows = hashing.content_lines.saturating_sub(1) as usize;
    let since = match (learned, hashing.prefix_sha) {
        (None, _) => Since::NoModel,
        (Some(l), Some(sha)) if hex::encode(sha) == l.sha256 => {
            Since::Appended(rows.saturating_sub(l.rows))
        }
        // Shorter than what the model learned from, or other bytes.
        (Some(_), _) => Since::Changed,
    };
    // The model's data, verified to be the file's beginning, is where the next training
    // may start from.
    let earlier = match (learned, hashing.prefix_sha, hashing.prefix_lines, since) {
        (Some(l), Some(sha), Some((lines, content)), Since::Appended(_)) if l.bytes.is_some() => {
            vec![Checkpoint {
                bytes: l.bytes.unwrap_or(0),
                rows: content.saturating_sub(1) as usize,
                lines,
                sha256: hex::encode(sha),
            }]
        }
        _ => Vec::new(),
    };
    let end = Checkpoint {
        bytes: hashing.bytes,
        rows,
        lines: hashing.lines,
        sha256: crate::ledger::digest_hex(&hashing.sha),
    };
    let ledger = Ledger::start(state, &hashing.sha, earlier, end);
    Ok(Scanned {
        scan: Scan {
            rows,
            bytes: hashing.bytes,
            since,
        },
        ledger,
    })
}

/// Where a learned prefix ends: after a number of bytes, or after a number of lines.
#[derive(Debug, Clone, Copy)]
enum Boundary {
    Byte(u64),
    Line(u64),
}

/// Hashes the bytes read through it, and keeps what [`scan`] and [`read_dataset`] need to
/// know about them: their count and last byte; for [`scan`] (`lines`) also where the last
/// line starts, how many lines there are, and the SHA-256 of the prefix up to `boundary`, if
/// the data reaches it.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
    /// Whether to count lines (which [`read_dataset`] leaves to the CSV reader).
    lines_too: bool,
    boundary: Option<Boundary>,
    prefix_sha: Option<sha2::digest::Output<Sha256>>,
    /// Lines and content lines up to the boundary, when it is a line's end.
    prefix_lines: Option<(u64, u64)>,
    bytes: u64,
    last: Option<u8>,
    /// Newlines seen.
    lines: u64,
    /// Lines that hold something besides whitespace.
    content_lines: u64,
    line_has_content: bool,
    /// Byte offset where the current (last) line starts.
    line_start: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R, lines_too: bool, boundary: Option<Boundary>) -> Self {
        let mut hashing = Hashing {
            inner,
            sha: Sha256::new(),
            lines_too,
            boundary,
            prefix_sha: None,
            prefix_lines: None,
            bytes: 0,
            last: None,
            lines: 0,
            content_lines: 0,
            line_has_content: false,
            line_start: 0,
        };
        if let Some(Boundary::Byte(0) | Boundary::Line(0)) = boundary {
            hashing.prefix_sha = Some(Sha256::new().finalize());
            hashing.prefix_lines = Some((0, 0));
        }
        hashing
    }

    /// Takes in `chunk`, which follows the bytes seen so far.
    fn update(&mut self, chunk: &[u8]) {
        let mut hashed = 0;
        if self.lines_too {
            let mut start = 0;
            // Line by line; the last piece has no newline (yet).
            for line in chunk.split(|&b| b == b'\n') {
                let end = start + line.len();
                // Blank lines hold nothing but whitespace; most lines start with a digit.
                self.line_has_content |= line.iter().any(|b| !b.is_ascii_whitespace());
                if end == chunk.len() {
                    break;
                }
                self.lines += 1;
                self.content_lines += u64::from(self.line_has_content);
                self.line_has_content = false;
                self.line_start = self.bytes + end as u64 + 1;
                let at_boundary = match self.boundary {
                    Some(Boundary::Line(n)) => self.lines == n,
                    Some(Boundary::Byte(b)) => self.line_start == b,
                    None => false,
                };
                if self.prefix_sha.is_none() && at_boundary {
                    self.sha.update(&chunk[hashed..=end]);
                    hashed = end + 1;
                    self.prefix_sha = Some(self.sha.clone().finalize());
                    self.prefix_lines = Some((self.lines, self.content_lines));
                }
                start = end + 1;
            }
        }
        if let (None, Some(Boundary::Byte(end))) = (&self.prefix_sha, self.boundary) {
            let start = self.bytes;
            let stop = start + chunk.len() as u64;
            if start < end && end <= stop {
                let split = (end - start) as usize;
                self.sha.update(&chunk[hashed..split]);
                hashed = split;
                self.prefix_sha = Some(self.sha.clone().finalize());
            }
        }
        self.sha.update(&chunk[hashed..]);
        self.bytes += chunk.len() as u64;
        if let Some(&b) = chunk.last() {
            self.last = Some(b);
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.update(&buf[..n]);
        Ok(n)
    }
}

/// What an append did.
#[derive(Debug)]
pub struct Appended {
    /// Rows appended.
    pub added: usize,
    /// The file after the append, compared with what the newest model learned from.
    pub scan: Scan,
    /// Whether it took a pass over the file: the ledger did not vouch for it.
    pub passed: bool,
    /// Why the ledger could not be written, if it could not: the rows are in all the same,
    /// and the next reader makes one full pass.
    pub ledger_error: Option<io::Error>,
}

/// Appends `rows` (in `schema` order) to the stored file at `path` under an exclusive lock,
/// in one write, then fsyncs; on a write error the file is truncated back to its old length
/// (see the module doc). `learned` is what the newest model learned from, for the summary.
///
/// Refuses a file that does not exist (`bluegreen init` creates it), whose header is not
/// `schema`'s, or whose last line is partial.
///
/// The ledger at `ledger` (`crate::ledger`) tells the file's rows and what changed since
/// `learned` without reading the file when it vouches for the file's state; else one pass
/// does. After the append, the ledger is written whole with the file's new state.
pub fn append_rows(
    path: &Path,
    schema: &Schema,
    rows: &Rows,
    learned: Option<Learned>,
    ledger: &Path,
) -> Result<Appended, DataError> {
    let mut file = OpenOptions::new().read(true).append(true).open(path)?;
    file.lock()?;
    let surveyed = survey(&file, path, schema, learned, Ledger::read(ledger))?;
    let before = surveyed.scan;
    let out = rows.to_csv();
    let written = file.write_all(&out).and_then(|()| file.sync_all());
    if let Err(source) = written {
        // All or nothing: a write cut short by a full disk would leave rows without their
        // end, and every later training would fail on them.
        // std's own calls: `undo` is shown in the message, which names the path already.
        let undo = file
            .file()
            .set_len(before.bytes)
            .and_then(|()| file.file().sync_all());
        return Err(match undo {
            Ok(()) => DataError::Io(source),
            Err(undo) => DataError::Undo {
                path: path.to_path_buf(),
                old_len: before.bytes,
                undo,
                source,
            },
        });
    }
    let since = match before.since {
        Since::Appended(n) => Since::Appended(n + rows.len()),
        other => other,
    };
    // Still under the exclusive lock, so the state recorded is the one this append left.
    let ledger_error = FileState::of(&file)
        .and_then(|now| {
            let lines = rows.len() as u64;
            surveyed
                .ledger
                .appended(&out, rows.len(), lines, now)
                .write(ledger)
        })
        .err();
    Ok(Appended {
        added: rows.len(),
        scan: Scan {
            rows: before.rows + rows.len(),
            bytes: before.bytes + out.len() as u64,
            since,
        },
        passed: surveyed.passed,
        ledger_error,
    })
}

/// Creates the stored file at `path` whole (temp file, rename), with `schema`'s header and
/// `rows`. For `init`: the first data.
pub fn create(path: &Path, schema: &Schema, rows: &Rows) -> Result<(), DataError> {
    let mut out = schema.header().into_bytes();
    out.push(b'\n');
    out.extend_from_slice(&rows.to_csv());
    Ok(crate::fsutil::write_atomic(path, &out)?)
}

/// The 506 Boston rows from smartcore's bundled dataset, as the CSV this project ships.
pub fn boston_csv() -> String {
    let dataset = smartcore::dataset::boston::load_dataset();
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let schema = Schema::boston();
    writer
        .write_record(schema.columns())
        .expect("writing to memory does not fail");
    for (features, label) in dataset
        .data
        .chunks(dataset.num_features)
        .zip(&dataset.target)
    {
        let mut fields: Vec<String> = features.iter().map(f32::to_string).collect();
        fields.push(label.to_string());
        writer
            .write_record(&fields)
            .expect("writing to memory does not fail");
    }
    String::from_utf8(
        writer
            .into_inner()
            .expect("writing to memory does not fail"),
    )
    .expect("numbers are text")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boston_rows(text: &str) -> Result<Rows, DataError> {
        let schema = Schema::boston();
        read_rows(text.as_bytes(), "t", &schema.columns(), &[])
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("d.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn values_whose_squares_would_overflow_a_row_are_refused() {
        let limit = max_magnitude(14);
        assert_eq!(limit, 1.79e153);
        // Two rows at opposite ends of the range: their squared distance is still finite.
        let distance = |m: f64| (0..14).map(|_| (m - -m) * (m - -m)).sum::<f64>();
        assert!(distance(limit).is_finite());
        assert!(distance(limit * 1.01).is_infinite());
        let row = |lstat: &str| format!("0.1,0,8,0,0.8,5,87,4,4,301,21,452,{lstat},21");
        assert!(boston_rows(&row("1.79e153")).is_ok());
        assert!(boston_rows(&row("-1.79e153")).is_ok());
        for big in ["1.8e153", "-1e200", "1e308"] {
            let err = boston_rows(&row(big)).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("t line 1, column 13 (LSTAT): {big} is too large: values may be at most ±1.79e153 in rows of 14 numbers")),
                "{err}"
            );
            assert!(err.contains("hint: "), "{err}");
        }
    }

    #[test]
    fn reads_with_and_without_header_and_skips_blank_lines() {
        let header = Schema::boston().header();
        let text = format!("{header}\n{}\n\n{}\n", SAMPLE_ROWS[0], SAMPLE_ROWS[1]);
        let rows = boston_rows(&text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.row(0)[0], 0.13004);
        assert_eq!(rows.row(1)[13], 21.2);
        assert_eq!(boston_rows(SAMPLE_ROWS[0]).unwrap().len(), 1);
    }

    #[test]
    fn the_inputs_of_issue_9_read_as_the_plain_rows() {
        let plain = boston_rows(&SAMPLE_ROWS.join("\n")).unwrap();
        let header = Schema::boston().header();
        let quoted: Vec<String> = SAMPLE_ROWS
            .iter()
            .map(|r| {
                r.split(',')
                    .map(|f| format!("\"{f}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let lower = header.to_lowercase();
        let schema = Schema::boston();
        for text in [
            // A spreadsheet's "CSV UTF-8" export.
            format!(
                "\u{feff}{header}\r\n{}\r\n{}\r\n",
                SAMPLE_ROWS[0], SAMPLE_ROWS[1]
            ),
            quoted.join("\n"),
            format!("{lower}\n{}\n", SAMPLE_ROWS.join("\n")),
        ] {
            assert_eq!(boston_rows(&text).unwrap(), plain, "{text:?}");
        }
        // An ID column, listed in [data] ignore, and the columns in another order.
        let mut columns = schema.columns();
        columns.reverse();
        let reversed: Vec<String> = SAMPLE_ROWS
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut f: Vec<&str> = r.split(',').collect();
                f.reverse();
                format!("{i},{}", f.join(","))
            })
            .collect();
        let text = format!("ID,{}\n{}\n", columns.join(","), reversed.join("\n"));
        let rows = read_rows(text.as_bytes(), "t", &schema.columns(), &["id"]).unwrap();
        assert_eq!(rows, plain);
        let err = read_rows(text.as_bytes(), "t", &schema.columns(), &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("column 1 (\"ID\") is not one of CRIM")
                && err.to_string().contains("[data] ignore"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_field_names_line_column_and_name() {
        let text = format!("{}\n1,2,3,4,x,6,7,8,9,10,11,12,13,14\n", SAMPLE_ROWS[0]);
        let err = boston_rows(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("t line 2, column 5 (NOX): \"x\" is not a number; hint: "),
            "{err}"
        );
        let err = boston_rows("1,2,3,4,5,6,7,8,9,10,11,12,13,inf")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("column 14 (MEDV)") && err.contains("finite"),
            "{err}"
        );
        for (missing, what) in [
            ("", "empty"),
            ("NA", "\"NA\" is a missing"),
            ("NaN", "\"NaN\" is a missing"),
        ] {
            let text = format!(
                "{}\n1,2,3,{missing},5,6,7,8,9,10,11,12,13,14\n",
                SAMPLE_ROWS[0]
            );
            let err = boston_rows(&text).unwrap_err().to_string();
            assert!(err.starts_with("t line 2, column 4 (CHAS): "), "{err}");
            assert!(
                err.contains(what) && err.contains("nothing is imputed"),
                "{err}"
            );
        }
        let err = boston_rows("1,2,3").unwrap_err().to_string();
        assert!(
            err.starts_with("t line 1: has 3 values; expected 14"),
            "{err}"
        );
        let err = boston_rows("CRIM,ZN\n").unwrap_err().to_string();
        assert!(err.contains("no column \"INDUS\""), "{err}");
        let err = boston_rows(&format!("CRIM,crim,{}", FEATURES[1..].join(",")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("names column \"crim\" twice"), "{err}");
    }

    #[test]
    fn csv_round_trips_exactly() {
        let rows = boston_rows(&SAMPLE_ROWS.join("\n")).unwrap();
        let again = boston_rows(std::str::from_utf8(&rows.to_csv()).unwrap()).unwrap();
        assert_eq!(rows, again);
        let odd = Schema {
            features: vec!["a,b".into(), "say \"x\"".into()],
            label: "y".into(),
        };
        assert_eq!(odd.header(), "\"a,b\",\"say \"\"x\"\"\",y");
    }

    #[test]
    fn append_then_read_back_and_scan() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::boston();
        let rows = boston_rows(&SAMPLE_ROWS.join("\n")).unwrap();
        let path = dir.path().join("d.csv");
        create(&path, &schema, &Rows::new(14)).unwrap();
        let ledger = dir.path().join("run/ledger.json");
        let done = append_rows(&path, &schema, &rows, None, &ledger).unwrap();
        assert_eq!(done.added, 2);
        assert_eq!(done.scan.rows, 2);
        assert_eq!(done.scan.since, Since::NoModel);
        let back = read_dataset(&path, &schema).unwrap();
        assert_eq!(back.rows, rows);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(back.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(back.bytes, bytes.len() as u64);

        let learned = Learned {
            rows: 2,
            bytes: Some(back.bytes),
            sha256: &back.sha256,
        };
        let done = append_rows(&path, &schema, &rows, Some(learned), &ledger).unwrap();
        assert_eq!(done.scan.since, Since::Appended(2));
        assert_eq!(scan(&path, &schema, Some(learned)).unwrap(), done.scan);
        assert!(done.scan.due(2) && !done.scan.due(3));
    }

    #[test]
    fn a_removed_or_edited_row_is_a_change_even_at_the_same_size() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::boston();
        let text = format!(
            "{}\n{}\n{}\n",
            schema.header(),
            SAMPLE_ROWS[0],
            SAMPLE_ROWS[1]
        );
        let path = write(dir.path(), &text);
        let data = read_dataset(&path, &schema).unwrap();
        let learned = Learned {
            rows: 2,
            bytes: Some(data.bytes),
            sha256: &data.sha256,
        };
        assert_eq!(
            scan(&path, &schema, Some(learned)).unwrap().since,
            Since::Appended(0)
        );
        // The same size, one digit changed.
        std::fs::write(&path, text.replace("12.9", "13.9")).unwrap();
        assert_eq!(
            scan(&path, &schema, Some(learned)).unwrap().since,
            Since::Changed
        );
        // A row removed, then as many appended as the batch.
        let removed = format!("{}\n{}\n", schema.header(), SAMPLE_ROWS[1]);
        std::fs::write(
            &path,
            format!("{removed}{}\n{}\n", SAMPLE_ROWS[0], SAMPLE_ROWS[0]),
        )
        .unwrap();
        let s = scan(&path, &schema, Some(learned)).unwrap();
        assert_eq!((s.rows, s.since), (3, Since::Changed));
        assert!(s.due(100));

        // Format 1 recorded the hash of the whole file as it was: the header and its rows.
        std::fs::write(&path, &text).unwrap();
        let old = Learned {
            rows: 2,
            bytes: None,
            sha256: &data.sha256,
        };
        std::fs::write(&path, format!("{text}{}\n", SAMPLE_ROWS[0])).unwrap();
        assert_eq!(
            scan(&path, &schema, Some(old)).unwrap().since,
            Since::Appended(1)
        );
    }

    #[test]
    fn a_partial_last_line_is_named_and_never_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::boston();
        let text = format!("{}\n{}\n0.9,0,8.1", schema.header(), SAMPLE_ROWS[0]);
        let path = write(dir.path(), &text);
        let keep = (text.len() - "0.9,0,8.1".len()) as u64;
        for err in [
            scan(&path, &schema, None).unwrap_err(),
            read_dataset(&path, &schema).unwrap_err(),
            append_rows(
                &path,
                &schema,
                &boston_rows(SAMPLE_ROWS[1]).unwrap(),
                None,
                &dir.path().join("ledger.json"),
            )
            .unwrap_err(),
        ] {
            let message = err.to_string();
            assert!(message.contains("d.csv line 3 is cut short"), "{message}");
            assert!(
                message.contains(&format!("truncate -s {keep} ")),
                "{message}"
            );
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn the_stored_header_must_be_the_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Schema::boston();
        let path = write(dir.path(), &format!("{}\n", schema.header().to_lowercase()));
        assert_eq!(read_dataset(&path, &schema).unwrap().rows.len(), 0);
        let other = Schema {
            features: vec!["a".into()],
            label: "y".into(),
        };
        let err = scan(&path, &other, None).unwrap_err().to_string();
        assert!(err.contains("[data] in the config says \"a,y\""), "{err}");
        let path = write(dir.path(), "");
        let err = read_dataset(&path, &schema).unwrap_err().to_string();
        assert!(err.contains("it is empty"), "{err}");
    }

    #[test]
    fn boston_csv_has_506_rows_of_14_columns() {
        let rows = boston_rows(&boston_csv()).unwrap();
        assert_eq!(rows.len(), 506);
        assert_eq!(rows.row(0)[..3], [0.00632, 18.0, 2.31]);
        assert_eq!(rows.row(0)[13], 24.0);
    }

    #[test]
    fn the_repository_csv_is_smartcore_boston() {
        assert_eq!(
            include_str!("../data/boston.csv"),
            boston_csv(),
            "data/boston.csv is stale; data/README.md says how to regenerate it"
        );
    }

    /// Fields are read to exactly what `str::parse::<f64>` gives (the reader before
    /// fast-float2), and take the same texts: every Boston value, numbers of 17 and more
    /// significant digits, and the forms Rust accepts that JSON does not.
    #[test]
    fn fields_read_as_str_parse_reads_them() {
        let mut texts: Vec<String> = boston_csv()
            .lines()
            .skip(1)
            .flat_map(|l| l.split(',').map(String::from).collect::<Vec<_>>())
            .collect();
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f64::from_bits(state >> 2) % 1e6;
            texts.push(format!("{x:?}"));
            texts.push(format!("{x:.17e}"));
            texts.push(format!("{:.25}", x / 7.0));
        }
        texts
            .extend(["+1", ".5", "1.", "1E5", "-0", "00012", "6.5430", "1e-400"].map(String::from));
        for text in &texts {
            let expected: f64 = text.parse().unwrap();
            if expected.is_finite() {
                let got = number_in(text.as_bytes()).unwrap();
                assert_eq!(got.to_bits(), expected.to_bits(), "{text}");
            }
        }
        for bad in ["inf", "1e400", "x", "1,2", "0x10", "1_0"] {
            assert!(number_in(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
