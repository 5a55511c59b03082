//! Python's text forms of template values: `str(x)`, `repr(x)` and `json.dumps(x, ...)`.
//!
//! Jinja2 runs on Python objects, so what a chat template prints is what CPython prints:
//! `{{ true }}` is `True`, `{{ 1e20 }}` is `1e+20`, `{{ {'a': 1} }}` is `{'a': 1}`, and the
//! `tojson` filter transformers installs is `json.dumps(x, ensure_ascii=False, indent=indent,
//! separators=separators, sort_keys=sort_keys)`. minijinja's own forms differ (`true`, JSON
//! maps, an HTML-safe `tojson`), so the renderer routes printing, `|string`, `|join` and
//! `|tojson` through this file.
//!
//! Formats follow CPython 3.11: `Objects/floatobject.c` (`float_repr`, shortest round-trip
//! digits, exponent form when the decimal exponent is below -4 or at least 16),
//! `Objects/unicodeobject.c` (`unicode_repr`) and `Lib/json/encoder.py` (separators, indentation,
//! string escapes).

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// Python's `repr(float)` (also `str(float)` and `json.dumps(float)` for finite values):
/// the shortest digits that round-trip, in positional form when the decimal exponent is in
/// `-4..16` (always with a fractional part, `1.0`) and as `1e+20` / `1.5e-07` otherwise.
pub(crate) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` prints the same shortest round-trip digits as CPython's repr, as
    // `d.ddde<exp>`; only the layout around them differs.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{exp_sign}{:02}", exp.abs());
    }
    let n_int = exp + 1; // digits before the decimal point
    if n_int <= 0 {
        let zeros = "0".repeat(n_int.unsigned_abs() as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let n_int = n_int as usize;
    if digits.len() <= n_int {
        let zeros = "0".repeat(n_int - digits.len());
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (int_part, frac) = digits.split_at(n_int);
        format!("{sign}{int_part}.{frac}")
    }
}

/// Python's `str(x)` of a template value: strings as they are, `None`, `True`/`False`,
/// floats by [`float_repr`], lists and dicts as their `repr`; undefined prints as the empty
/// string (jinja2's default `Undefined`).
pub(crate) fn py_str(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        _ => {
            let mut out = String::new();
            write_repr(&mut out, value);
            out
        }
    }
}

/// Appends Python's `repr(x)` of a template value to `out`.
///
/// Objects that have no Python counterpart (loops, macros, namespaces) print in minijinja's
/// own form.
fn write_repr(out: &mut String, value: &Value) {
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&number_str(value)),
        ValueKind::String => write_str_repr(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq => {
            // `dict.items()` and tuple literals are tuples in both engines: `('a', 1)`, `(1,)`.
            let (open, close) = if value.is_tuple() {
                ('(', ')')
            } else {
                ('[', ']')
            };
            out.push(open);
            let mut count = 0;
            for (i, item) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, &item);
                count += 1;
            }
            if value.is_tuple() && count == 1 {
                out.push(',');
            }
            out.push(close);
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, &key);
                out.push_str(": ");
                write_repr(out, &value.get_item(&key).unwrap_or_default());
            }
            out.push('}');
        }
        _ => out.push_str(&value.to_string()),
    }
}

/// A number in Python's form: integers in decimal, floats by [`float_repr`].
fn number_str(value: &Value) -> String {
    if value.is_integer() {
        value.to_string()
    } else {
        f64::try_from(value.clone()).map_or_else(|_| value.to_string(), float_repr)
    }
}

/// Appends Python's `repr(str)`: single quotes unless the text holds `'` and no `"`,
/// backslash escapes for the quote, `\\`, `\t`, `\n`, `\r`, and `\xNN`/`\uNNNN`/`\UNNNNNNNN`
/// for characters Python does not consider printable.
fn write_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let cp = u32::from(c);
                if cp < 0x100 {
                    out.push_str(&format!("\\x{cp:02x}"));
                } else if cp < 0x1_0000 {
                    out.push_str(&format!("\\u{cp:04x}"));
                } else {
                    out.push_str(&format!("\\U{cp:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable` for one character, for the characters chat data plausibly holds:
/// controls (Cc), separators other than the space (Zs, Zl, Zp), the common format characters
/// (Cf: soft hyphen, zero-width and bidi marks, BOM) and private-use code points (Co) are not
/// printable. Unassigned code points (Cn) would need the Unicode tables and print as themselves.
fn is_printable(c: char) -> bool {
    let cp = u32::from(c);
    !matches!(cp,
        0x00..=0x1f | 0x7f..=0xa0 | 0xad
        | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x1680 | 0x180e
        | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f
        | 0x3000 | 0xe000..=0xf8ff | 0xfeff | 0xfff9..=0xfffb
        | 0xe0001 | 0xe0020..=0xe007f | 0xf0000..=0x10ffff)
}

/// Options of Python's `json.dumps` that the `tojson` filter exposes.
#[derive(Debug, Clone)]
pub(crate) struct DumpsOptions {
    /// Escape every non-ASCII character as `\uXXXX` (surrogate pairs above U+FFFF).
    pub ensure_ascii: bool,
    /// One indentation level; `None` writes everything on one line.
    pub indent: Option<String>,
    /// Written between items: `", "` by default, `","` when `indent` is set.
    pub item_separator: String,
    /// Written between a key and its value: `": "` by default.
    pub key_separator: String,
    /// Sort object keys (by code point) instead of keeping their order.
    pub sort_keys: bool,
}

impl Default for DumpsOptions {
    /// transformers' `tojson` defaults: `ensure_ascii=False`, no indent, Python's default separators.
    fn default() -> Self {
        DumpsOptions {
            ensure_ascii: false,
            indent: None,
            item_separator: ", ".to_owned(),
            key_separator: ": ".to_owned(),
            sort_keys: false,
        }
    }
}

/// Python's `json.dumps(value, ...)` with `opts`.
///
/// # Errors
/// `TypeError`-like errors as Python raises them: an undefined value, bytes or an object with no
/// JSON form (`Object of type Undefined is not JSON serializable`), or a map key that is not a
/// string, number, bool or none.
pub(crate) fn json_dumps(value: &Value, opts: &DumpsOptions) -> Result<String, Error> {
    let mut out = String::new();
    write_json(&mut out, value, opts, 0)?;
    Ok(out)
}

/// Appends the JSON form of `value`, nested `depth` levels deep, to `out`.
fn write_json(
    out: &mut String,
    value: &Value,
    opts: &DumpsOptions,
    depth: usize,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&json_number(value)),
        ValueKind::String => {
            write_json_str(out, value.as_str().unwrap_or_default(), opts.ensure_ascii)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                write_separator(out, opts, depth + 1, i == 0);
                write_json(out, item, opts, depth + 1)?;
            }
            write_closing_newline(out, opts, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut entries = value
                .try_iter()?
                .map(|key| {
                    let text = json_key(&key)?;
                    Ok((text, value.get_item(&key)?))
                })
                .collect::<Result<Vec<(String, Value)>, Error>>()?;
            if entries.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (key, item)) in entries.iter().enumerate() {
                write_separator(out, opts, depth + 1, i == 0);
                write_json_str(out, key, opts.ensure_ascii);
                out.push_str(&opts.key_separator);
                write_json(out, item, opts, depth + 1)?;
            }
            write_closing_newline(out, opts, depth);
            out.push('}');
        }
        _ => {
            let type_name = match value.kind() {
                ValueKind::Undefined => "Undefined".to_owned(),
                ValueKind::Bytes => "bytes".to_owned(),
                _ => value.kind().to_string(),
            };
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("Object of type {type_name} is not JSON serializable"),
            ));
        }
    }
    Ok(())
}

/// Writes what comes before item `depth`-deep: the item separator (unless `first`), then a
/// newline and the indentation when indenting.
fn write_separator(out: &mut String, opts: &DumpsOptions, depth: usize, first: bool) {
    if !first {
        out.push_str(&opts.item_separator);
    }
    if let Some(indent) = &opts.indent {
        out.push('\n');
        out.push_str(&indent.repeat(depth));
    }
}

/// Writes the newline and indentation before a closing bracket at `depth` when indenting.
fn write_closing_newline(out: &mut String, opts: &DumpsOptions, depth: usize) {
    if let Some(indent) = &opts.indent {
        out.push('\n');
        out.push_str(&indent.repeat(depth));
    }
}

/// A number in JSON as Python writes it: integers in decimal, floats by [`float_repr`] with
/// `NaN`, `Infinity` and `-Infinity` for the non-finite ones (`allow_nan=True`).
fn json_number(value: &Value) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(x) if x.is_nan() => "NaN".to_owned(),
        Ok(x) if x.is_infinite() => if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned(),
        Ok(x) => float_repr(x),
        Err(_) => value.to_string(),
    }
}

/// The text of a JSON object key: Python converts bool, none and number keys to their JSON
/// text and rejects anything else.
fn json_key(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_owned()),
        ValueKind::Bool => Ok(if key.is_true() { "true" } else { "false" }.to_owned()),
        ValueKind::None => Ok("null".to_owned()),
        ValueKind::Number => Ok(json_number(key)),
        kind => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("keys must be str, int, float, bool or None, not {kind}"),
        )),
    }
}

/// Appends `s` as a JSON string: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other C0 controls as
/// `\u00XX`; with `ensure_ascii` every character outside `' '..='~'` as `\uXXXX` (lowercase hex,
/// UTF-16 surrogate pairs above U+FFFF), otherwise non-ASCII text (and DEL) as is.
pub(crate) fn write_json_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 || (ensure_ascii && !(' '..='~').contains(&c)) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::value::Serde;

    /// Expected strings are CPython 3.11's `repr(x)`.
    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (-0.0, "-0.0"),
            (1.5e-7, "1.5e-07"),
            (2.5, "2.5"),
            (-12345.678, "-12345.678"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (0.30000000000000004, "0.30000000000000004"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "repr({x:?})");
        }
    }

    /// Expected strings are CPython 3.11's `str(x)`.
    #[test]
    fn py_str_matches_python() {
        let value = Value::from(Serde(
            serde_json::json!([1, "x", null, true, {"a": 1.0, "b": "it's"}]),
        ));
        assert_eq!(
            py_str(&value),
            r#"[1, 'x', None, True, {'a': 1.0, 'b': "it's"}]"#
        );
        let value = Value::from("a\"b'\u{7f}\u{a0}\u{2028}\u{ad} é\n");
        assert_eq!(
            py_str(&Value::from(vec![value])),
            r#"['a"b\'\x7f\xa0\u2028\xad é\n']"#
        );
        assert_eq!(py_str(&Value::from(false)), "False");
        assert_eq!(py_str(&Value::from(())), "None");
        assert_eq!(py_str(&Value::UNDEFINED), "");
        assert_eq!(py_str(&Value::from(7_u64)), "7");
    }

    /// Expected strings are CPython 3.11's `json.dumps` with the options named per case.
    #[test]
    fn json_dumps_matches_python() {
        let value = Value::from(Serde(serde_json::json!({"a": [1, {}], "b": []})));
        let indented = DumpsOptions {
            indent: Some("  ".to_owned()),
            item_separator: ",".to_owned(),
            ..DumpsOptions::default()
        };
        assert_eq!(
            json_dumps(&value, &indented).unwrap(),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}"
        );
        // indent=2, separators=(', ', ': '): the item separator keeps its trailing space.
        let spaced = DumpsOptions {
            item_separator: ", ".to_owned(),
            ..indented.clone()
        };
        assert_eq!(
            json_dumps(&value, &spaced).unwrap(),
            "{\n  \"a\": [\n    1, \n    {}\n  ], \n  \"b\": []\n}"
        );
        let text = Value::from(Serde(serde_json::json!({"a": "\u{7f}\u{2028}é😀\u{1}"})));
        let ascii = DumpsOptions {
            ensure_ascii: true,
            ..DumpsOptions::default()
        };
        assert_eq!(
            json_dumps(&text, &ascii).unwrap(),
            r#"{"a": "\u007f\u2028\u00e9\ud83d\ude00\u0001"}"#
        );
        assert_eq!(
            json_dumps(&text, &DumpsOptions::default()).unwrap(),
            "{\"a\": \"\u{7f}\u{2028}é😀\\u0001\"}"
        );
        let err = json_dumps(&Value::UNDEFINED, &DumpsOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("Object of type Undefined is not JSON serializable"),
            "{err}"
        );
    }
}
