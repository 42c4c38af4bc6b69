//! `cargo bench --bench rows`: what reading a request's rows costs the slot (issue 9), against
//! serde_json reading the same body in the same run.
//!
//! Bodies of 100 rows from `data/boston.csv`, in two spellings: the file's own short numbers,
//! and 17-digit ones, what `json.dumps` writes for computed floats (each value moved by a few
//! parts in 10^12 and written with 17 significant digits, as bench/run's batch bodies are).
//! For each body: the slot's reader of the common shape (`read_common`, sonic-number's JSON
//! numbers) and the reference, serde_json's `from_slice` into `{"data": Vec<Vec<f64>>}`. Both
//! must read the same bits, or the bench stops. The figure per reader is the best of 15
//! rounds of 2,000 reads, in µs per body and ns per number; the ratio is ours over serde's.
//! The last line is the figures as JSON, for the README.

use std::hint::black_box;
use std::time::Instant;

use bluegreen::server::rows::read_common;

#[derive(serde::Deserialize)]
struct Reference {
    data: Vec<Vec<f64>>,
}

/// `v` moved by a few parts in 10^12 (`seed` picks how), written with 17 significant digits
/// and no exponent; 0 stays `0.0`.
fn seventeen_digits(v: f64, seed: u64) -> String {
    if v == 0.0 {
        return "0.0".to_string();
    }
    let nudge = ((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64
        - 0.5)
        * 2e-11;
    let x = v * (1.0 + nudge);
    let decimals = (16 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// The best time of `rounds` rounds of `reads` calls of `read`, in seconds per call.
fn best(rounds: usize, reads: usize, mut read: impl FnMut() -> usize) -> f64 {
    (0..rounds)
        .map(|_| {
            let started = Instant::now();
            let mut sink = 0;
            for _ in 0..reads {
                sink += read();
            }
            black_box(sink);
            started.elapsed().as_secs_f64() / reads as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let csv = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/boston.csv"))
        .expect("data/boston.csv");
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .take(100)
        .map(|l| l.split(',').take(13).collect())
        .collect();
    let short = format!(
        "{{\"data\": [{}]}}",
        rows.iter()
            .map(|r| format!("[{}]", r.join(",")))
            .collect::<Vec<_>>()
            .join(",")
    );
    let long = format!(
        "{{\"data\": [{}]}}",
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let values: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(j, v)| seventeen_digits(v.parse().unwrap(), (i * 13 + j) as u64))
                    .collect();
                format!("[{}]", values.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut figures = Vec::new();
    for (name, body) in [
        ("100 rows, short numbers", &short),
        ("100 rows, 17-digit numbers", &long),
    ] {
        let body = body.as_bytes();
        let ours = read_common(body, "data", 13).expect("the common shape");
        let reference: Reference = serde_json::from_slice(body).expect("JSON");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&ours),
            bits(&reference.data.concat()),
            "{name}: the readers disagree"
        );
        let numbers = ours.len() as f64;
        let t_ours = best(15, 2_000, || {
            read_common(black_box(body), "data", 13).map_or(0, |v| v.len())
        });
        let t_serde = best(15, 2_000, || {
            serde_json::from_slice::<Reference>(black_box(body)).map_or(0, |r| r.data.len())
        });
        println!(
            "{name} ({} bytes): read_common {:.1} µs ({:.1} ns a number); serde_json {:.1} µs ({:.1} ns a number); ratio {:.2}",
            body.len(),
            t_ours * 1e6,
            t_ours * 1e9 / numbers,
            t_serde * 1e6,
            t_serde * 1e9 / numbers,
            t_ours / t_serde
        );
        figures.push(format!(
            "{{\"body\": \"{name}\", \"bytes\": {}, \"ours_us\": {:.2}, \"serde_json_us\": {:.2}, \"ratio\": {:.3}}}",
            body.len(),
            t_ours * 1e6,
            t_serde * 1e6,
            t_ours / t_serde
        ));
    }
    println!("[{}]", figures.join(", "));
}
