//! The training data: the CSV schema, validation of new rows, and appending them safely.
//!
//! The file is `CRIM,…,LSTAT,MEDV`: 13 features, then the label. Rows are validated as a whole
//! batch before anything is written, so a bad row means nothing at all is appended. Appends
//! take an exclusive `flock` on the CSV and go out in one `write` followed by `fsync`;
//! readers take a shared lock, so a reader sees either all of an append or none of it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::number;

/// The 13 feature columns, in the order the API and the CSV use.
pub const FEATURES: [&str; 13] = [
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT",
];
/// The label column, last in the CSV.
pub const LABEL: &str = "MEDV";
/// Columns in a CSV row: the features and the label.
pub const COLUMNS: usize = FEATURES.len() + 1;

/// The two example rows of the original demo's `addData.py`.
pub const SAMPLE_ROWS: [&str; 2] = [
    "0.13004,12.5,8.87,0,0.592,6.836,72.9,6.5430,5,331,15.2,299.71,13.1,12.9",
    "0.95204,0,8.14,0,0.882,5.935,87.2,4.9013,4,301,21,452.87,15.83,21.2",
];

/// One training row: 13 features, then the label.
pub type Row = [f64; COLUMNS];

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{origin} line {line}: {why}")]
    Line {
        origin: String,
        line: u64,
        why: String,
    },
    #[error("{origin} line {line}, column {column} ({name}): {why}")]
    Field {
        origin: String,
        line: u64,
        column: usize,
        name: &'static str,
        why: String,
    },
    #[error("{origin}: no rows to add")]
    Empty { origin: String },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DataError + 'a {
    move |source| DataError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

fn column_name(index: usize) -> &'static str {
    FEATURES.get(index).copied().unwrap_or(LABEL)
}

/// The header line of the CSV, without a newline.
pub fn header() -> String {
    let mut names: Vec<&str> = FEATURES.to_vec();
    names.push(LABEL);
    names.join(",")
}

/// Parses CSV text into rows, checking every field. A first line equal to the header is
/// skipped; blank lines are skipped. `origin` names the input in errors ("stdin", a path).
pub fn parse_rows(text: &str, origin: &str) -> Result<Vec<Row>, DataError> {
    let header = header();
    let mut rows = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        if let Some(row) = parse_line(index, raw, &header, origin)? {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The row on line `index` (0-based), or `None` for a blank line or the header.
fn parse_line(
    index: usize,
    raw: &str,
    header: &str,
    origin: &str,
) -> Result<Option<Row>, DataError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || (index == 0 && trimmed.replace(' ', "") == header) {
        return Ok(None);
    }
    parse_row(trimmed, origin, index as u64 + 1).map(Some)
}

/// Parses one line of 14 comma-separated numbers.
///
/// Fields are read in place rather than collected first, and numbers with the fast reader in
/// `number` (the same values as `str::parse`): on 10^6 rows these were most of reading the
/// CSV for `train` (bench/run, section 5).
pub fn parse_row(line_text: &str, origin: &str, line: u64) -> Result<Row, DataError> {
    let count = || line_text.split(',').count();
    let count_error = || DataError::Line {
        origin: origin.to_string(),
        line,
        why: format!("has {} values; expected {COLUMNS} ({})", count(), header()),
    };
    let mut row = [0.0; COLUMNS];
    let mut fields = line_text.split(',');
    for (column, value) in row.iter_mut().enumerate() {
        let field = fields.next().ok_or_else(count_error)?.trim();
        let field_err = |why: String| {
            // A wrong count is the better message when both are wrong ("1,2,x").
            if count() != COLUMNS {
                return count_error();
            }
            DataError::Field {
                origin: origin.to_string(),
                line,
                column: column + 1,
                name: column_name(column),
                why,
            }
        };
        let parsed =
            number::parse(field).ok_or_else(|| field_err(format!("{field:?} is not a number")))?;
        if !parsed.is_finite() {
            return Err(field_err(format!("{field:?} is not a finite number")));
        }
        *value = parsed;
    }
    if fields.next().is_some() {
        return Err(count_error());
    }
    Ok(row)
}

/// Formats rows as CSV lines (each ending in a newline). Rust prints the shortest text that
/// reads back as the same `f64`, so a round trip through the file loses nothing.
pub fn format_rows(rows: &[Row]) -> String {
    let mut out = String::with_capacity(rows.len() * 80);
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&v.to_string());
        }
        out.push('\n');
    }
    out
}

/// The 506 Boston rows from smartcore's bundled dataset, as the CSV this project ships.
pub fn boston_csv() -> String {
    let dataset = smartcore::dataset::boston::load_dataset();
    let mut out = header();
    out.push('\n');
    for (features, label) in dataset
        .data
        .chunks(dataset.num_features)
        .zip(&dataset.target)
    {
        let mut fields: Vec<String> = features.iter().map(f32::to_string).collect();
        fields.push(label.to_string());
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub added: usize,
    /// Data rows in the file after the append.
    pub total: usize,
}

/// Appends `rows` to the CSV at `path` (creating it with a header if needed) under an
/// exclusive lock, in one write, then fsyncs.
pub fn append_rows(path: &Path, rows: &[Row]) -> Result<Appended, DataError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_err("open", path))?;
    let mut file = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io_err("lock", path)(errno.into()))?;
    let mut existing = String::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_string(&mut existing))
        .map_err(io_err("read", path))?;
    let mut out = String::new();
    if existing.is_empty() {
        out.push_str(&header());
        out.push('\n');
    } else if !existing.ends_with('\n') {
        // A file edited by hand may lack its final newline; without this the first new row
        // would be glued to the last old one.
        out.push('\n');
    }
    out.push_str(&format_rows(rows));
    file.write_all(out.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(io_err("append to", path))?;
    Ok(Appended {
        added: rows.len(),
        total: count_data_lines(&existing) + rows.len(),
    })
}

fn count_data_lines(text: &str) -> usize {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let has_header = lines
        .next()
        .is_some_and(|first| first.replace(' ', "") == header());
    let rest = lines.count();
    if has_header {
        rest
    } else if text.trim().is_empty() {
        0
    } else {
        rest + 1
    }
}

/// Training data read from the CSV.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub rows: Vec<Row>,
    /// SHA-256 of the file's bytes, so an artifact names exactly what it learned from.
    pub sha256: String,
}

/// Reads and validates the whole CSV under a shared lock.
///
/// The file is read line by line and hashed as it goes, never held whole: on 10^6 rows the
/// text alone was 100 MB of `train`'s peak memory, beside the 112 MB of rows.
pub fn read_dataset(path: &Path) -> Result<Dataset, DataError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let file = Flock::lock(file, FlockArg::LockShared)
        .map_err(|(_, errno)| io_err("lock", path)(errno.into()))?;
    let origin = path.display().to_string();
    let header = header();
    let mut reader = BufReader::with_capacity(
        1 << 16,
        Hashing {
            inner: &*file,
            sha: Sha256::new(),
        },
    );
    let mut rows = Vec::new();
    let mut line = String::new();
    for index in 0.. {
        line.clear();
        if reader.read_line(&mut line).map_err(io_err("read", path))? == 0 {
            break;
        }
        if let Some(row) = parse_line(index, &line, &header, &origin)? {
            rows.push(row);
        }
    }
    let sha256 = hex::encode(reader.into_inner().sha.finalize());
    Ok(Dataset { rows, sha256 })
}

/// Hashes the bytes read through it.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// Counts the data rows of the CSV (without validating them).
pub fn count_rows(path: &Path) -> Result<usize, DataError> {
    Ok(count_data_lines(&read_locked(path)?))
}

fn read_locked(path: &Path) -> Result<String, DataError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let mut file = Flock::lock(file, FlockArg::LockShared)
        .map_err(|(_, errno)| io_err("lock", path)(errno.into()))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(io_err("read", path))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_header_and_skips_blank_lines() {
        let text = format!("{}\n{}\n\n{}\n", header(), SAMPLE_ROWS[0], SAMPLE_ROWS[1]);
        let rows = parse_rows(&text, "t").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], 0.13004);
        assert_eq!(rows[1][13], 21.2);
        assert_eq!(parse_rows(SAMPLE_ROWS[0], "t").unwrap().len(), 1);
    }

    #[test]
    fn a_bad_field_names_line_column_and_name() {
        let text = format!("{}\n1,2,3,4,x,6,7,8,9,10,11,12,13,14\n", SAMPLE_ROWS[0]);
        let err = parse_rows(&text, "stdin").unwrap_err().to_string();
        assert_eq!(err, "stdin line 2, column 5 (NOX): \"x\" is not a number");
        let err = parse_rows("1,2,3,4,5,6,7,8,9,10,11,12,13,inf", "f.csv")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("column 14 (MEDV)") && err.contains("finite"),
            "{err}"
        );
        let err = parse_rows("1,2,3", "f.csv").unwrap_err().to_string();
        assert!(
            err.starts_with("f.csv line 1: has 3 values; expected 14"),
            "{err}"
        );
        let err = parse_rows("CRIM,ZN", "f.csv").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn format_round_trips_exactly() {
        let rows = parse_rows(&SAMPLE_ROWS.join("\n"), "t").unwrap();
        let again = parse_rows(&format_rows(&rows), "t").unwrap();
        assert_eq!(rows, again);
    }

    #[test]
    fn append_creates_the_header_and_mends_a_missing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        let rows = parse_rows(&SAMPLE_ROWS.join("\n"), "t").unwrap();
        let done = append_rows(&path, &rows).unwrap();
        assert_eq!(done, Appended { added: 2, total: 2 });
        std::fs::write(&path, format!("{}\n{}", header(), SAMPLE_ROWS[0])).unwrap();
        let done = append_rows(&path, &rows[1..]).unwrap();
        assert_eq!(done.total, 2);
        let back = read_dataset(&path).unwrap();
        assert_eq!(back.rows, rows);
        assert_eq!(count_rows(&path).unwrap(), 2);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(back.sha256, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn boston_csv_has_506_rows_of_14_columns() {
        let rows = parse_rows(&boston_csv(), "boston").unwrap();
        assert_eq!(rows.len(), 506);
        assert_eq!(rows[0][..3], [0.00632, 18.0, 2.31]);
        assert_eq!(rows[0][13], 24.0);
    }

    #[test]
    fn the_repository_csv_is_smartcore_boston() {
        assert_eq!(
            include_str!("../data/boston.csv"),
            boston_csv(),
            "data/boston.csv is stale; data/README.md says how to regenerate it"
        );
    }
}
