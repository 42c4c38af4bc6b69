//! Rows of features in a request body, in every format clients send them (issue #9, "Row
//! formats"), read into one row-major block of `f64`s in the model's feature order.
//!
//! `POST /` (and `/inference`) takes an object with these top-level keys, and no other (an
//! unknown key is refused by name: a key that was ignored used to let a request with
//! reordered `columns` through, predicted on the wrong features):
//! - `data`: the rows, each a list of numbers in the model's feature order, or an object
//!   keyed by feature name;
//! - `columns` beside `data`: pandas' "split" orient (`DataFrame.to_json(orient="split")`,
//!   what MLflow clients send): the names of the columns each `data` row lists, in any
//!   order, each feature exactly once; `index` (the frame's row labels) may come with it;
//! - `dataframe_split` (an object of the split orient's keys) or `dataframe_records` (a
//!   list of objects keyed by name): MLflow 2's names for the same two forms.
//!
//! KServe v1's `instances` are rows as in `data` ([`read_rows`]).
//!
//! Most requests are `{"data": [[numbers], …]}`: [`read_common`] reads that shape straight
//! from the bytes; anything else, and every error, goes through serde_json's `Value` here,
//! which names what is wrong and where. Numbers are read by sonic-number, to the value
//! serde_json reads (unit tests check both on every Boston value and on 17-digit numbers).

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Why a body's rows cannot be predicted: the status and what is wrong and where. Each
/// protocol answers it in its own error shape, with its own hint.
#[derive(Debug)]
pub struct Refusal {
    /// A 4xx for the client's fault: 400 for a body that is not JSON, 413 past a limit, 422
    /// for JSON that is not rows of this model (the README's error table); a 500 only from
    /// the test-only fault hook of debug builds (`crate::rollout::fault`).
    pub status: StatusCode,
    /// What is wrong and where (`data[1][3]`), without a hint: each protocol adds its own.
    pub what: String,
}

impl Refusal {
    /// A 422: the body is JSON, but not rows of this model.
    pub fn unprocessable(what: String) -> Refusal {
        Refusal {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            what,
        }
    }

    /// Why serde_json refused `body`, which it read as `T`: a 422 naming where a number
    /// beyond a 64-bit float's range is (see [`out_of_range`]), a 400 for a body that is not
    /// JSON.
    pub fn unparsed<'de, T: Deserialize<'de>>(body: &'de [u8], e: &serde_json::Error) -> Refusal {
        if e.to_string().starts_with(TWICE) {
            // Where the object is, in the body's own terms (`data[0]`), on this rare path.
            let mut again = serde_json::Deserializer::from_slice(body);
            let place = serde_path_to_error::deserialize::<_, T>(&mut again)
                .err()
                .map(|e| e.path().to_string())
                .filter(|p| p != ".")
                .unwrap_or_else(|| "the body".to_string());
            let what = e.to_string();
            let what = what.split(" at line ").next().unwrap_or(&what);
            return Refusal::unprocessable(format!(
                "{place}: {what}; each key may come once (JSON parsers disagree on which of two counts)"
            ));
        }
        match out_of_range::<T>(body, e) {
            Some(what) => Refusal::unprocessable(what),
            None => Refusal {
                status: StatusCode::BAD_REQUEST,
                what: format!("the body is not valid JSON: {e}"),
            },
        }
    }
}

/// When serde_json refused `body` (read as `T`) for a number beyond a 64-bit float's range
/// (`1e999`, `-1e400`, an integer of 400 digits): where that number is, and what is wrong with
/// it. Such a body is JSON (RFC 8259 §6 leaves the range to implementations), so it is the
/// value that is wrong, as for any other value that is not a finite number (the README's
/// error table: 422, or the protocols' 400). serde_json stops the whole parse on it and
/// names only a line and column, so the body is read again, on this rare path only, through
/// serde_path_to_error, which gives the path to the value in the body's own terms:
/// `data[0][3]`, `dataframe_records[1].CRIM`, `inputs[0].data[5]`.
pub fn out_of_range<'de, T: Deserialize<'de>>(
    body: &'de [u8],
    e: &serde_json::Error,
) -> Option<String> {
    // serde_json's message for its NumberOutOfRange; the error has no public code for it.
    if !e.to_string().starts_with("number out of range") {
        return None;
    }
    let mut again = serde_json::Deserializer::from_slice(body);
    let path = serde_path_to_error::deserialize::<_, T>(&mut again)
        .err()?
        .path()
        .to_string();
    Some(format!(
        "{path} must be a finite number, not one beyond the range of a 64-bit float (magnitudes up to about 1.8e308)"
    ))
}

/// A JSON value read as serde_json's [`Value`] is, except that an object that names a key
/// twice is refused (serde_json keeps the last silently, so `{"CRIM": 0.1, "CRIM": 1}` or
/// `"data"` twice were predicted on whichever came last). Only the careful path reads
/// through it: the common shape ([`read_common`]) has one key and rows of numbers.
pub struct Strict(pub Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

/// The start of serde's error for a key named twice, which [`Refusal::unparsed`] tells
/// apart from bad JSON.
const TWICE: &str = "the object names the key";

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("{TWICE} {key:?} twice")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Top-level keys of `POST /`'s body.
const KEYS: [&str; 5] = [
    "data",
    "columns",
    "index",
    "dataframe_split",
    "dataframe_records",
];

/// Reads `{"<key>": [[width numbers], …]}` and nothing else (whitespace aside), the shape
/// nearly every request has, into one row-major block; `None` for anything else (object
/// rows, other keys, or an error to explain), which then goes the careful way.
///
/// Why not serde alone: its generic sequence machinery and exact float path were about 70%
/// of the slot's CPU on 10,000-row requests (bench/run, section 2).
pub fn read_common(body: &[u8], key: &str, width: usize) -> Option<Vec<f64>> {
    let mut at = Scan { body, i: 0 };
    at.punct(b'{')?;
    at.skip_ws();
    at.punct(b'"')?;
    at.i += body
        .get(at.i..)?
        .strip_prefix(key.as_bytes())
        .map(|_| key.len())?;
    if body.get(at.i) != Some(&b'"') {
        return None;
    }
    at.i += 1;
    at.punct(b':')?;
    at.punct(b'[')?;
    // A number as text is at least 2 bytes with its comma; most are about 5.
    let mut rows = Vec::with_capacity(body.len() / 5 + 1);
    if at.punct(b']').is_none() {
        loop {
            at.punct(b'[')?;
            for col in 0..width {
                if col > 0 {
                    at.punct(b',')?;
                }
                at.skip_ws();
                rows.push(at.number()?);
            }
            at.punct(b']')?;
            if at.punct(b',').is_none() {
                at.punct(b']')?;
                break;
            }
        }
    }
    at.punct(b'}')?;
    at.skip_ws();
    (at.i == body.len()).then_some(rows)
}

struct Scan<'a> {
    body: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.body.get(self.i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// Skips whitespace, then takes `c`.
    fn punct(&mut self, c: u8) -> Option<()> {
        self.skip_ws();
        (self.body.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A JSON number of any width with a finite value; `None` for anything else (`1e400`
    /// too: serde_json refuses it, and the careful path says so).
    ///
    /// sonic-number reads JSON's own grammar (RFC 8259 §6: no `+`, `inf` or `nan`, no leading
    /// zero before a digit, a digit after `.` and in an exponent) in the same pass as the
    /// digits, so no second scan checks it. Against the reader it replaced (fast-float2, then
    /// a grammar check), `cargo bench --bench rows` on a quiet machine, each build in turn:
    /// 17.1 µs against 21.7 µs for 100 rows of Boston's short numbers, 33.5 against 33.6 µs
    /// for 17-digit ones (issue #9). A leading zero that a digit follows (`01`) is read as `0`
    /// and then fails the scan at the `1`.
    fn number(&mut self) -> Option<f64> {
        let negative = self.body.get(self.i) == Some(&b'-');
        self.i += usize::from(negative);
        let value = match sonic_number::parse_number(self.body, &mut self.i, negative).ok()? {
            sonic_number::ParserNumber::Float(x) => x,
            sonic_number::ParserNumber::Unsigned(n) => n as f64,
            sonic_number::ParserNumber::Signed(n) => n as f64,
        };
        // sonic-number reads `-0` and `-0.0` as 0.0; serde_json and `str::parse` keep the sign.
        Some(if negative && value == 0.0 {
            -0.0
        } else {
            value
        })
    }
}

/// Reads the body of `POST /` the careful way (see the module doc), naming what is wrong
/// and where. Returns the rows as one row-major block of `features.len()` values each.
pub fn read_body(body: &[u8], features: &[String]) -> Result<Vec<f64>, Refusal> {
    let Strict(value) =
        serde_json::from_slice(body).map_err(|e| Refusal::unparsed::<Strict>(body, &e))?;
    let Some(object) = value.as_object() else {
        return Err(Refusal::unprocessable(format!(
            "the body must be an object with a \"data\" field, not {}: {{\"data\": [[{} numbers]]}}",
            kind(&value),
            features.len()
        )));
    };
    if let Some(unknown) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(Refusal::unprocessable(format!(
            "the body has an unknown key {unknown:?}; it takes \"data\" (with \"columns\" and \"index\" for pandas' split orient), \"dataframe_split\" or \"dataframe_records\""
        )));
    }
    let alone = |key: &str| {
        if object.len() > 1 {
            let others: Vec<&String> = object.keys().filter(|k| *k != key).collect();
            Err(Refusal::unprocessable(format!(
                "{key:?} comes alone, but the body also has {others:?}"
            )))
        } else {
            Ok(())
        }
    };
    if let Some(split) = object.get("dataframe_split") {
        alone("dataframe_split")?;
        let Some(split) = split.as_object() else {
            return Err(Refusal::unprocessable(format!(
                "\"dataframe_split\" must be an object with \"columns\" and \"data\", not {}",
                kind(split)
            )));
        };
        if let Some(unknown) = split
            .keys()
            .find(|k| !["columns", "data", "index"].contains(&k.as_str()))
        {
            return Err(Refusal::unprocessable(format!(
                "\"dataframe_split\" has an unknown key {unknown:?}; it takes \"columns\", \"data\" and \"index\""
            )));
        }
        return read_split(split, "dataframe_split.", features);
    }
    if let Some(records) = object.get("dataframe_records") {
        alone("dataframe_records")?;
        return read_rows("dataframe_records", records, features);
    }
    read_split(object, "", features)
}

/// `data`, with `columns` and `index` if given; `prefix` is where they are in the body.
fn read_split(
    object: &Map<String, Value>,
    prefix: &str,
    features: &[String],
) -> Result<Vec<f64>, Refusal> {
    let Some(data) = object.get("data") else {
        return Err(Refusal::unprocessable(format!(
            "the body has no \"{prefix}data\" field: {{\"data\": [[{} numbers]]}}",
            features.len()
        )));
    };
    let list = format!("{prefix}data");
    let Some(columns) = object.get("columns") else {
        if object.contains_key("index") {
            return Err(Refusal::unprocessable(format!(
                "\"{prefix}index\" comes only with \"{prefix}columns\" (pandas' split orient)"
            )));
        }
        return read_rows(&list, data, features);
    };
    let order = column_order(columns, prefix, features)?;
    let rows = rows_of(&list, data)?;
    if let Some(index) = object.get("index") {
        let labels = index.as_array().map(Vec::len);
        if labels != Some(rows.len()) {
            return Err(Refusal::unprocessable(format!(
                "\"{prefix}index\" must be a list of one label per row ({}), not {}",
                rows.len(),
                match labels {
                    Some(n) => format!("{n} labels"),
                    None => kind(index).to_string(),
                }
            )));
        }
    }
    let width = features.len();
    let mut out = vec![0.0; rows.len() * width];
    for (i, row) in rows.iter().enumerate() {
        let Some(values) = row.as_array() else {
            return Err(Refusal::unprocessable(format!(
                "{list}[{i}] must be a list of {width} numbers in the order of \"{prefix}columns\", not {}",
                kind(row)
            )));
        };
        if values.len() != width {
            return Err(Refusal::unprocessable(format!(
                "{list}[{i}] has {} values; \"{prefix}columns\" names {width}",
                values.len()
            )));
        }
        for (col, v) in values.iter().enumerate() {
            let feature = order[col];
            out[i * width + feature] = number(v).ok_or_else(|| {
                Refusal::unprocessable(format!(
                    "{list}[{i}][{col}] ({}) must be a finite number, not {}",
                    features[feature],
                    kind(v)
                ))
            })?;
        }
    }
    Ok(out)
}

/// For each entry of `columns`, the index of its feature. Every feature must be named
/// exactly once, and nothing else.
fn column_order(columns: &Value, prefix: &str, features: &[String]) -> Result<Vec<usize>, Refusal> {
    let names = features.join(", ");
    let Some(columns) = columns.as_array() else {
        return Err(Refusal::unprocessable(format!(
            "\"{prefix}columns\" must be a list of feature names ({names}), not {}",
            kind(columns)
        )));
    };
    let mut order = Vec::with_capacity(columns.len());
    for (j, column) in columns.iter().enumerate() {
        let Some(name) = column.as_str() else {
            return Err(Refusal::unprocessable(format!(
                "{prefix}columns[{j}] must be a feature name, not {}",
                kind(column)
            )));
        };
        let Some(feature) = features.iter().position(|f| f == name) else {
            return Err(Refusal::unprocessable(format!(
                "{prefix}columns[{j}] {name:?} is not a feature of the model; the features are {names}"
            )));
        };
        if order.contains(&feature) {
            return Err(Refusal::unprocessable(format!(
                "{prefix}columns[{j}] names {name:?} a second time"
            )));
        }
        order.push(feature);
    }
    if let Some(missing) = (0..features.len()).find(|f| !order.contains(f)) {
        return Err(Refusal::unprocessable(format!(
            "\"{prefix}columns\" lacks the feature {:?}; the features are {names}",
            features[missing]
        )));
    }
    Ok(order)
}

fn rows_of<'a>(list: &str, rows: &'a Value) -> Result<&'a Vec<Value>, Refusal> {
    rows.as_array().ok_or_else(|| {
        Refusal::unprocessable(format!(
            "\"{list}\" must be a list of rows, not {}",
            kind(rows)
        ))
    })
}

/// Rows of the model's `features`, as lists in their order or as objects keyed by their
/// names; `list` is the rows' place in the body, for errors (`data`, `instances`).
pub fn read_rows(list: &str, rows: &Value, features: &[String]) -> Result<Vec<f64>, Refusal> {
    let rows = rows_of(list, rows)?;
    let mut out = Vec::with_capacity(rows.len() * features.len());
    for (i, row) in rows.iter().enumerate() {
        read_row(list, i, row, features, &mut out)?;
    }
    Ok(out)
}

/// Appends row `i` of `list` to `out`.
fn read_row(
    list: &str,
    i: usize,
    row: &Value,
    features: &[String],
    out: &mut Vec<f64>,
) -> Result<(), Refusal> {
    match row {
        Value::Array(values) => {
            if values.len() != features.len() {
                return Err(Refusal::unprocessable(format!(
                    "{list}[{i}] has {} values; expected {} ({})",
                    values.len(),
                    features.len(),
                    features.join(", ")
                )));
            }
            for (col, v) in values.iter().enumerate() {
                out.push(number(v).ok_or_else(|| {
                    Refusal::unprocessable(format!(
                        "{list}[{i}][{col}] ({}) must be a finite number, not {}",
                        features[col],
                        kind(v)
                    ))
                })?);
            }
        }
        Value::Object(fields) => {
            if let Some(unknown) = fields.keys().find(|k| !features.contains(k)) {
                return Err(Refusal::unprocessable(format!(
                    "{list}[{i}] has an unknown field {unknown:?}; the fields are {}",
                    features.join(", ")
                )));
            }
            for name in features {
                let v = fields.get(name).ok_or_else(|| {
                    Refusal::unprocessable(format!("{list}[{i}] is missing the field {name:?}"))
                })?;
                out.push(number(v).ok_or_else(|| {
                    Refusal::unprocessable(format!(
                        "{list}[{i}].{name} must be a finite number, not {}",
                        kind(v)
                    ))
                })?);
            }
        }
        other => {
            return Err(Refusal::unprocessable(format!(
            "{list}[{i}] must be a list of {} numbers or an object keyed by feature name, not {}",
            features.len(),
            kind(other)
        )))
        }
    }
    Ok(())
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

/// What a JSON value is, for errors.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde's reading of the common shape, the reference for the scanner.
    #[derive(serde::Deserialize)]
    struct FastRequest {
        data: Vec<Vec<f64>>,
    }

    fn serde_reads(body: &str) -> Vec<f64> {
        serde_json::from_str::<FastRequest>(body)
            .unwrap()
            .data
            .concat()
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn features(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_common_shape_reads_what_serde_reads() {
        let rows: Vec<String> = crate::model::tests::boston()
            .rows
            .iter()
            .map(|r| format!("{:?}", &r[..13]))
            .collect();
        for body in [
            format!("{{\"data\": [{}]}}", rows.join(",")),
            format!(" {{ \"data\" :\n[ {} ] }}\n", rows[..3].join(" ,\n ")),
            "{\"data\":[[0.00632,18,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,396.9,4.98]]}".into(),
            "{\"data\":[[-0,1e2,1E-2,0.1e+1,123456789012345678901234,0.3,1,1,1,1,1,1,5e-324]]}"
                .into(),
            "{\"data\": []}".into(),
        ] {
            let ours = read_common(body.as_bytes(), "data", 13).expect(&body);
            assert_eq!(bits(&ours), bits(&serde_reads(&body)), "{body}");
        }
    }

    /// What Python clients send for computed floats (`json.dumps`, numpy's `tolist()`): the
    /// shortest text that reads back, most often 16 or 17 significant digits; and wider
    /// numbers than any `f64` needs.
    #[test]
    fn numbers_of_17_digits_and_more_read_as_serde_reads_them() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2_000 {
            let values: Vec<String> = (0..13)
                .map(|i| {
                    let r = next();
                    let x = (r >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi(i % 7 - 3);
                    match r % 4 {
                        0 => format!("{x:?}"),
                        1 => format!("{x:.17e}"),
                        2 => format!("-{x:.30}"),
                        _ => format!("{:?}", x as f32 as f64),
                    }
                })
                .collect();
            let body = format!("{{\"data\": [[{}]]}}", values.join(", "));
            let ours = read_common(body.as_bytes(), "data", 13).expect(&body);
            assert_eq!(bits(&ours), bits(&serde_reads(&body)), "{body}");
        }
    }

    #[test]
    fn the_common_shape_takes_rows_of_the_models_width_under_its_key() {
        let body = b"{\"data\": [[1, 2, 3], [4.5, -6, 7e1]]}";
        assert_eq!(
            read_common(body, "data", 3),
            Some(vec![1.0, 2.0, 3.0, 4.5, -6.0, 70.0])
        );
        assert_eq!(read_common(body, "data", 2), None);
        assert_eq!(read_common(body, "data", 4), None);
        assert_eq!(read_common(body, "instances", 3), None);
        assert_eq!(read_common(body, "dat", 3), None);
        let body = b"{\"instances\": [[1, 2, 3]]}";
        assert_eq!(read_common(body, "instances", 3), Some(vec![1.0, 2.0, 3.0]));
    }

    #[test]
    fn anything_else_is_left_to_the_careful_path() {
        let row = "[1,2,3,4,5,6,7,8,9,10,11,12,13]";
        for body in [
            format!("{{\"data\": [{row}], \"x\": 1}}"),
            format!("{{\"x\": 1, \"data\": [{row}]}}"),
            format!("{{\"columns\": [], \"data\": [{row}]}}"),
            format!("{{\"data\": [{row}], \"columns\": []}}"),
            format!("{{\"data\": [{row}]}} x"),
            format!("{{\"data\": [{row},]}}"),
            "{\"data\": [[1,2,3]]}".to_string(),
            "{\"data\": [[1,2,3,4,5,6,7,8,9,10,11,12,13,14]]}".to_string(),
            "{\"data\": [{\"CRIM\": 1}]}".to_string(),
            "{\"data\": [[1,2,3,4,5,6,7,8,9,10,11,12,\"13\"]]}".to_string(),
            "{\"data\": [[1,2,3,4,5,6,7,8,9,10,11,12,1e400]]}".to_string(),
            "{\"data\": [[1,2,3,4,5,6,7,8,9,10,11,12,NaN]]}".to_string(),
            "{\"data\": 5}".to_string(),
            "[]".to_string(),
            String::new(),
        ]
        .into_iter()
        .chain(
            [
                "01", "-01", "00", "1.", ".5", "+1", "--1", "1e", "1E-", "1e+", "-", "0x10", "inf",
                "1_0", "-.5",
            ]
            .map(|n| format!("{{\"data\": [[1,2,3,4,5,6,7,8,9,10,11,12,{n}]]}}")),
        ) {
            assert!(read_common(body.as_bytes(), "data", 13).is_none(), "{body}");
        }
    }

    #[test]
    fn a_key_named_twice_is_refused_where_it_is() {
        let f = features(&["a", "b", "c"]);
        for (body, what) in [
            (
                r#"{"data": [{"a": 1, "b": 2, "c": 3}, {"a": 1, "a": 2, "b": 2, "c": 3}]}"#,
                "data[1]: the object names the key \"a\" twice",
            ),
            (
                r#"{"data": [[1, 2, 3]], "data": [[4, 5, 6]]}"#,
                "the body: the object names the key \"data\" twice",
            ),
            (
                r#"{"dataframe_split": {"columns": ["a", "b", "c"], "columns": ["c", "b", "a"], "data": [[1, 2, 3]]}}"#,
                "dataframe_split: the object names the key \"columns\" twice",
            ),
        ] {
            let refusal = read_body(body.as_bytes(), &f).unwrap_err();
            assert_eq!(refusal.status.as_u16(), 422, "{body}: {}", refusal.what);
            assert!(refusal.what.starts_with(what), "{body}: {:?}", refusal.what);
        }
    }

    #[test]
    fn split_orient_rows_are_mapped_by_column_name() {
        let f = features(&["a", "b", "c"]);
        let expected = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        for body in [
            r#"{"columns": ["c", "a", "b"], "data": [[3, 1, 2], [6, 4, 5]]}"#,
            r#"{"columns": ["b", "c", "a"], "index": [7, "x"], "data": [[2, 3, 1], [5, 6, 4]]}"#,
            r#"{"dataframe_split": {"columns": ["c", "b", "a"], "data": [[3, 2, 1], [6, 5, 4]]}}"#,
            r#"{"dataframe_records": [{"c": 3, "a": 1, "b": 2}, {"b": 5, "a": 4, "c": 6}]}"#,
            r#"{"data": [{"c": 3, "a": 1, "b": 2}, [4, 5, 6]]}"#,
        ] {
            assert_eq!(read_body(body.as_bytes(), &f).unwrap(), expected, "{body}");
        }
    }

    #[test]
    fn every_other_body_is_refused_saying_what_and_where() {
        let f = features(&["a", "b", "c"]);
        for (body, status, what) in [
            ("{", 400, "not valid JSON"),
            (
                "[1]",
                422,
                "must be an object with a \"data\" field, not a list",
            ),
            (
                r#"{"data": [[1,2,3]], "extra": 1}"#,
                422,
                "unknown key \"extra\"",
            ),
            (r#"{"rows": []}"#, 422, "unknown key \"rows\""),
            (r#"{"columns": ["a","b","c"]}"#, 422, "no \"data\" field"),
            (
                r#"{"columns": "a", "data": []}"#,
                422,
                "\"columns\" must be a list of feature names (a, b, c), not a string",
            ),
            (
                r#"{"columns": ["a","b","x"], "data": [[1,2,3]]}"#,
                422,
                "columns[2] \"x\" is not a feature",
            ),
            (
                r#"{"columns": ["a","b","a"], "data": [[1,2,3]]}"#,
                422,
                "columns[2] names \"a\" a second time",
            ),
            (
                r#"{"columns": ["a","b"], "data": [[1,2]]}"#,
                422,
                "\"columns\" lacks the feature \"c\"",
            ),
            (
                r#"{"columns": ["a","b",3], "data": [[1,2,3]]}"#,
                422,
                "columns[2] must be a feature name, not a number",
            ),
            (
                r#"{"columns": ["c","b","a"], "data": [[1,2]]}"#,
                422,
                "data[0] has 2 values; \"columns\" names 3",
            ),
            (
                r#"{"columns": ["c","b","a"], "data": [{"a": 1}]}"#,
                422,
                "data[0] must be a list of 3 numbers in the order of \"columns\"",
            ),
            (
                r#"{"columns": ["c","b","a"], "data": [[1,"x",3]]}"#,
                422,
                "data[0][1] (b) must be a finite number, not a string",
            ),
            (
                r#"{"columns": ["c","b","a"], "index": [0, 1], "data": [[1,2,3]]}"#,
                422,
                "\"index\" must be a list of one label per row (1), not 2 labels",
            ),
            (
                r#"{"index": [0], "data": [[1,2,3]]}"#,
                422,
                "\"index\" comes only with \"columns\"",
            ),
            (
                r#"{"dataframe_split": {"columns": ["a","b","c"], "data": [[1,2,3]]}, "data": []}"#,
                422,
                "\"dataframe_split\" comes alone",
            ),
            (
                r#"{"dataframe_split": {"cols": []}}"#,
                422,
                "\"dataframe_split\" has an unknown key \"cols\"",
            ),
            (
                r#"{"dataframe_split": {"columns": ["a","c","b"], "data": [[1,2]]}}"#,
                422,
                "dataframe_split.data[0] has 2 values",
            ),
            (
                r#"{"dataframe_split": []}"#,
                422,
                "\"dataframe_split\" must be an object",
            ),
            (
                r#"{"dataframe_records": [{"a": 1, "b": 2}]}"#,
                422,
                "dataframe_records[0] is missing the field \"c\"",
            ),
            (
                r#"{"data": 5}"#,
                422,
                "\"data\" must be a list of rows, not a number",
            ),
            (
                r#"{"data": [[1,2]]}"#,
                422,
                "data[0] has 2 values; expected 3 (a, b, c)",
            ),
            (
                r#"{"data": [{"a": 1, "b": 2, "c": 3, "d": 4}]}"#,
                422,
                "data[0] has an unknown field \"d\"",
            ),
            (
                r#"{"data": [null]}"#,
                422,
                "data[0] must be a list of 3 numbers or an object keyed by feature name, not null",
            ),
        ] {
            let refusal = read_body(body.as_bytes(), &f).unwrap_err();
            assert_eq!(refusal.status.as_u16(), status, "{body}: {}", refusal.what);
            assert!(
                refusal.what.contains(what),
                "{body}: {:?} lacks {what:?}",
                refusal.what
            );
        }
    }
}
