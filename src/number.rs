//! Reading decimal numbers fast, and to exactly the value the standard library reads.
//!
//! Prediction requests and the training CSV are almost nothing but numbers, and reading them
//! was most of the cost of a large batch (serde_json's exact float path: 70% of the slot's CPU
//! on 10,000-row requests) and of reading the CSV for `train` (bench/run, sections 2 and 5).
//! Nearly every number people send has at most 15 significant digits and a small exponent;
//! its value is then an exact integer times (or divided by) an exact power of ten, and one
//! IEEE multiplication or division rounds that correctly (Clinger's fast path). Every other
//! number goes to `str::parse::<f64>`, so the result is always the correctly rounded value,
//! bit for bit what serde_json's `float_roundtrip` and `str::parse` give.

/// Powers of ten that an `f64` holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Reads the JSON number (RFC 8259 grammar) at the start of `bytes`. Returns its value and
/// how many bytes it took, or `None` if `bytes` does not start with one or its value is not
/// a finite `f64` (such as `1e400`).
pub fn parse_json_prefix(bytes: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    let negative = bytes.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    let mut mantissa: u64 = 0;
    // Significant digits read into `mantissa`; past 15 it may be inexact (or wrapped), and
    // the slow path reads the text again.
    let mut significant = 0u32;
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while let Some(&c) = bytes.get(i).filter(|c| c.is_ascii_digit()) {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                significant += 1;
                i += 1;
            }
        }
        _ => return None,
    }
    let mut fraction_digits = 0i32;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while let Some(&c) = bytes.get(i).filter(|c| c.is_ascii_digit()) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            // Leading zeros of a fraction (0.000123) are not significant.
            significant += u32::from(mantissa != 0);
            i += 1;
        }
        if i == start {
            return None;
        }
        fraction_digits = (i - start) as i32;
    }
    let mut exponent = 0i32;
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative_exponent = match bytes.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(&c) = bytes.get(i).filter(|c| c.is_ascii_digit()) {
            // Saturate: anything this large is out of range either way (slow path decides).
            if exponent < 100_000 {
                exponent = exponent * 10 + i32::from(c - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        if negative_exponent {
            exponent = -exponent;
        }
    }
    let power = exponent - fraction_digits;
    let value = if significant <= 15 && (-22..=22).contains(&power) {
        let m = mantissa as f64;
        let v = if power >= 0 {
            m * POW10[power as usize]
        } else {
            m / POW10[(-power) as usize]
        };
        if negative {
            -v
        } else {
            v
        }
    } else {
        std::str::from_utf8(&bytes[..i]).ok()?.parse::<f64>().ok()?
    };
    value.is_finite().then_some((value, i))
}

/// Reads `text` the way `str::parse::<f64>` does, which is what the CSV reader always used:
/// the same texts are accepted (`+1`, `.5`, `inf` too) and give the same values.
pub fn parse(text: &str) -> Option<f64> {
    match parse_json_prefix(text.as_bytes()) {
        Some((value, used)) if used == text.len() => Some(value),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random decimal texts of every shape, against the standard library, bit for bit.
    #[test]
    fn agrees_with_the_standard_library_bit_for_bit() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500_000 {
            let r = next();
            let mut s = String::new();
            if r & 1 == 1 {
                s.push('-');
            }
            let int_digits = (r >> 1) % 9;
            if int_digits == 0 {
                s.push('0');
            } else {
                s.push(char::from(b'1' + (next() % 9) as u8));
                for _ in 1..int_digits {
                    s.push(char::from(b'0' + (next() % 10) as u8));
                }
            }
            let fraction_digits = (r >> 5) % 21;
            if fraction_digits > 0 {
                s.push('.');
                for _ in 0..fraction_digits {
                    s.push(char::from(b'0' + (next() % 10) as u8));
                }
            }
            if (r >> 10) % 4 == 0 {
                s.push(if (r >> 12) & 1 == 1 { 'e' } else { 'E' });
                let e = (next() % 700) as i64 - 350;
                s.push_str(&e.to_string());
            }
            let expected: f64 = s.parse().unwrap();
            match parse_json_prefix(s.as_bytes()) {
                Some((value, used)) => {
                    assert_eq!(value.to_bits(), expected.to_bits(), "{s}");
                    assert_eq!(used, s.len(), "{s}");
                }
                None => assert!(!expected.is_finite(), "{s} was refused"),
            }
        }
    }

    #[test]
    fn takes_only_json_numbers_and_stops_where_they_end() {
        assert_eq!(parse_json_prefix(b"0.00632,18"), Some((0.00632, 7)));
        assert_eq!(parse_json_prefix(b"-0]"), Some((-0.0, 2)));
        assert_eq!(parse_json_prefix(b"396.9]]}"), Some((396.9, 5)));
        assert_eq!(parse_json_prefix(b"01"), Some((0.0, 1)));
        for bad in [
            "", "-", "+1", ".5", "1.", "1e", "1e+", "inf", "NaN", "--1", "1e400",
        ] {
            assert_eq!(parse_json_prefix(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn parse_accepts_what_the_standard_library_accepts() {
        for text in [
            "+1", ".5", "1.", "1E5", "12", "0.13004", "6.5430", "1e-400", "inf",
        ] {
            assert_eq!(
                parse(text).map(f64::to_bits),
                text.parse::<f64>().ok().map(f64::to_bits),
                "{text}"
            );
        }
        assert_eq!(parse("x"), None);
        assert_eq!(parse("1,2"), None);
    }
}
