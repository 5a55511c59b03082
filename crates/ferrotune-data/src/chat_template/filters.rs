//! The filters, tests and Python methods whose minijinja behaviour differs from jinja2's.
//!
//! Each function states the jinja2 (`jinja2/filters.py`, `jinja2/tests.py`) or CPython
//! (`Objects/unicodeobject.c`) behaviour it reproduces. Arguments are taken by position or by
//! name, as Python allows, through [`python_args`].

use minijinja::value::{from_args, Kwargs, Rest, Value, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, State};

use super::python::{json_dumps, py_str, DumpsOptions};

/// Installs everything in this file into `env`.
pub(crate) fn register(env: &mut Environment<'static>) {
    env.set_unknown_method_callback(python_method);
    env.add_filter("tojson", tojson);
    env.add_filter("string", string);
    env.add_filter("join", join);
    env.add_filter("int", int);
    env.add_filter("float", float);
    env.add_filter("center", center);
    env.add_test("sequence", is_sequence);
    env.add_test("number", is_number);
}

/// Binds Python-style arguments to the parameters `names` of `func`: positional arguments in
/// order, then keyword arguments by name.
///
/// # Errors
/// Too many positional arguments, a parameter given twice, or an unknown keyword, worded as
/// Python's `TypeError`s.
fn python_args<const N: usize>(
    func: &str,
    names: [&str; N],
    args: &[Value],
) -> Result<[Option<Value>; N], Error> {
    let (positional, kwargs): (&[Value], Kwargs) = from_args(args)?;
    if positional.len() > N {
        return Err(Error::new(
            ErrorKind::TooManyArguments,
            format!(
                "{func}() takes at most {N} arguments ({} given)",
                positional.len()
            ),
        ));
    }
    let mut bound: [Option<Value>; N] = std::array::from_fn(|i| positional.get(i).cloned());
    for (slot, name) in bound.iter_mut().zip(names) {
        if let Some(value) = kwargs.get::<Option<Value>>(name)? {
            if slot.is_some() {
                return Err(Error::new(
                    ErrorKind::TooManyArguments,
                    format!("{func}() got multiple values for argument '{name}'"),
                ));
            }
            *slot = Some(value);
        }
    }
    kwargs.assert_all_used()?;
    Ok(bound)
}

/// Python string methods that minijinja-contrib's `pycompat` lacks or words differently, then
/// `pycompat` itself (`strip`, `split`, `startswith`, `items`, `get`, ...).
fn python_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        match method {
            "rsplit" => {
                let [sep, maxsplit] = python_args("rsplit", ["sep", "maxsplit"], args)?;
                return rsplit(s, sep.filter(|v| !v.is_none()), maxsplit);
            }
            "title" => {
                python_args("title", [], args)?;
                return Ok(Value::from(python_title(s)));
            }
            "removeprefix" => {
                let (prefix,): (&str,) = from_args(args)?;
                return Ok(Value::from(s.strip_prefix(prefix).unwrap_or(s)));
            }
            "removesuffix" => {
                let (suffix,): (&str,) = from_args(args)?;
                return Ok(Value::from(s.strip_suffix(suffix).unwrap_or(s)));
            }
            _ => {}
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// Python's `str.title()`: a cased character is uppercased after an uncased one (a space,
/// digit or apostrophe: `"x's"` becomes `"X'S"`) and lowercased after a cased one.
fn python_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut previous_cased = false;
    for c in s.chars() {
        if previous_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        previous_cased = c.is_lowercase() || c.is_uppercase();
    }
    out
}

/// Python's `str.rsplit(sep=None, maxsplit=-1)`.
fn rsplit(s: &str, sep: Option<Value>, maxsplit: Option<Value>) -> Result<Value, Error> {
    let maxsplit = match maxsplit {
        Some(n) => i64::try_from(n)?,
        None => -1,
    };
    // A negative maxsplit means no limit.
    let limit = usize::try_from(maxsplit).ok();
    let mut parts: Vec<&str> = Vec::new();
    match sep {
        None => {
            // Runs of whitespace separate; whitespace at the ends yields no empty parts.
            let mut rest = s.trim_end();
            while !rest.is_empty() {
                if limit == Some(parts.len()) {
                    parts.push(rest);
                    break;
                }
                match rest.char_indices().rev().find(|(_, c)| c.is_whitespace()) {
                    Some((i, c)) => {
                        parts.push(&rest[i + c.len_utf8()..]);
                        rest = rest[..i].trim_end();
                    }
                    None => {
                        parts.push(rest);
                        break;
                    }
                }
            }
        }
        Some(sep) => {
            let sep = sep.as_str().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    "rsplit() separator must be a string or none",
                )
            })?;
            if sep.is_empty() {
                return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"));
            }
            parts = match limit {
                Some(n) => s.rsplitn(n + 1, sep).collect(),
                None => s.rsplit(sep).collect(),
            };
        }
    }
    parts.reverse();
    Ok(Value::from(
        parts.into_iter().map(Value::from).collect::<Vec<_>>(),
    ))
}

/// The `tojson` filter transformers installs: `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`.
fn tojson(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let [ensure_ascii, indent, separators, sort_keys] = python_args(
        "tojson",
        ["ensure_ascii", "indent", "separators", "sort_keys"],
        &args.into_values(),
    )?;
    // json.dumps: an integer indent means that many spaces (none when negative), a string is
    // used as is, and an indent switches the default item separator from ", " to ",".
    let indent = match indent.filter(|v| !v.is_none()) {
        None => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().to_owned()),
        Some(v) if v.kind() == ValueKind::Bool => Some(" ".repeat(usize::from(v.is_true()))),
        Some(v) if v.is_integer() => {
            Some(" ".repeat(usize::try_from(i64::try_from(v)?).unwrap_or(0)))
        }
        Some(v) => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "tojson() indent must be an integer, a string or none, got {}",
                    v.kind()
                ),
            ))
        }
    };
    let mut opts = DumpsOptions {
        ensure_ascii: ensure_ascii.is_some_and(|v| v.is_true()),
        item_separator: if indent.is_some() { "," } else { ", " }.to_owned(),
        indent,
        sort_keys: sort_keys.is_some_and(|v| v.is_true()),
        ..DumpsOptions::default()
    };
    if let Some(separators) = separators.filter(|v| !v.is_none()) {
        let pair: Option<Vec<String>> = separators
            .try_iter()?
            .map(|v| v.as_str().map(str::to_owned))
            .collect();
        let [item, key] = <[String; 2]>::try_from(pair.unwrap_or_default()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "tojson() separators must be a pair of strings like (',', ':')",
            )
        })?;
        opts.item_separator = item;
        opts.key_separator = key;
    }
    json_dumps(value, &opts)
}

/// jinja2's `string` filter: Python's `str(value)`.
fn string(value: &Value) -> String {
    py_str(value)
}

/// jinja2's `join(value, d='', attribute=None)`, items printed by Python's `str()`.
fn join(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let [sep, attribute] = python_args("join", ["d", "attribute"], &args.into_values())?;
    let sep = sep.map(|v| py_str(&v)).unwrap_or_default();
    if value.is_undefined() || value.is_none() {
        return Ok(String::new());
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(&sep);
        }
        let item = match &attribute {
            Some(attribute) => lookup_attribute(&item, attribute)?,
            None => item,
        };
        out.push_str(&py_str(&item));
    }
    Ok(out)
}

/// jinja2's attribute lookup for filters: a dotted path of keys (`"a.b"`), digits indexing
/// sequences, or an integer index.
fn lookup_attribute(item: &Value, attribute: &Value) -> Result<Value, Error> {
    let Some(path) = attribute.as_str() else {
        return item.get_item(attribute);
    };
    let mut current = item.clone();
    for part in path.split('.') {
        current = match part.parse::<i64>() {
            Ok(index) if current.kind() == ValueKind::Seq => {
                current.get_item(&Value::from(index))?
            }
            _ => current.get_item(&Value::from(part))?,
        };
    }
    Ok(current)
}

/// jinja2's `int(value, default=0, base=10)`: Python's `int(value)` (strings in `base`), else
/// `int(float(value))`, else `default`; never an error.
fn int(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [default, base] = python_args("int", ["default", "base"], &args.into_values())?;
    let default = default.unwrap_or(Value::from(0));
    let base = match base {
        Some(base) => u32::try_from(base)?,
        None => 10,
    };
    let converted = match value.kind() {
        ValueKind::Bool => Some(Value::from(i64::from(value.is_true()))),
        ValueKind::Number if value.is_integer() => Some(value.clone()),
        ValueKind::Number => f64::try_from(value.clone()).ok().and_then(float_to_int),
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default().trim();
            parse_python_int(text, base).or_else(|| parse_python_float(text).and_then(float_to_int))
        }
        _ => None,
    };
    Ok(converted.unwrap_or(default))
}

/// jinja2's `float(value, default=0.0)`: Python's `float(value)`, else `default`.
fn float(value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let [default] = python_args("float", ["default"], &args.into_values())?;
    let converted = match value.kind() {
        ValueKind::Bool => Some(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => parse_python_float(value.as_str().unwrap_or_default().trim()),
        _ => None,
    };
    Ok(converted.map_or_else(|| default.unwrap_or(Value::from(0.0)), Value::from))
}

/// Python's `int(text, base)` for bases 2 to 36: optional sign, digits with single
/// underscores between them, and for base 16/8/2 an optional `0x`/`0o`/`0b` prefix.
fn parse_python_int(text: &str, base: u32) -> Option<Value> {
    if !(2..=36).contains(&base) {
        return None;
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let prefix = match base {
        16 => Some(["0x", "0X"]),
        8 => Some(["0o", "0O"]),
        2 => Some(["0b", "0B"]),
        _ => None,
    };
    let digits = prefix
        .and_then(|p| p.iter().find_map(|p| digits.strip_prefix(p)))
        .map_or(digits, |d| d.strip_prefix('_').unwrap_or(d));
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let magnitude = u128::from_str_radix(&digits.replace('_', ""), base).ok()?;
    if negative {
        let value = 0i128.checked_sub_unsigned(magnitude)?;
        Some(Value::from(value))
    } else {
        Some(Value::from(magnitude))
    }
}

/// Python's `float(text)`: a decimal literal (underscores between digits allowed), `inf`,
/// `infinity` or `nan` in any case, with an optional sign.
fn parse_python_float(text: &str) -> Option<f64> {
    let unsigned = text.trim_start_matches(['+', '-']);
    if text.len() - unsigned.len() > 1 {
        return None;
    }
    let lower = unsigned.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return text.to_ascii_lowercase().parse().ok();
    }
    let valid_underscores = !text.contains("__")
        && text
            .char_indices()
            .filter(|(_, c)| *c == '_')
            .all(|(i, _)| {
                let around = (text[..i].chars().next_back(), text[i + 1..].chars().next());
                matches!(around, (Some(a), Some(b)) if a.is_ascii_digit() && b.is_ascii_digit())
            });
    if !valid_underscores || !unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    text.replace('_', "").parse().ok()
}

/// Python's `int(float)`: truncation toward zero; infinities and NaN have no integer.
fn float_to_int(x: f64) -> Option<Value> {
    if !x.is_finite() {
        return None;
    }
    let truncated = x.trunc();
    if truncated.abs() < 9.2e18 {
        Some(Value::from(truncated as i64))
    } else {
        // `as` saturates; beyond i64 the exact integer needs i128 (f64 holds at most 2^1024).
        (truncated.abs() < 1.7e38).then(|| Value::from(truncated as i128))
    }
}

/// jinja2's `center(value, width=80)`: Python's `str.center`, whose odd padding goes left
/// when `width` is odd and right otherwise (CPython's `pad`: `left = marg / 2 + (marg & width & 1)`).
fn center(value: &Value, args: Rest<ValueOrKwargs>) -> Result<String, Error> {
    let [width] = python_args("center", ["width"], &args.into_values())?;
    let width = match width {
        Some(width) => usize::try_from(i64::try_from(width)?.max(0)).unwrap_or(0),
        None => 80,
    };
    let text = py_str(value);
    let len = text.chars().count();
    if width <= len {
        return Ok(text);
    }
    let margin = width - len;
    let left = margin / 2 + (margin & width & 1);
    Ok(format!(
        "{}{text}{}",
        " ".repeat(left),
        " ".repeat(margin - left)
    ))
}

/// jinja2's `sequence` test: anything with a length and indexing, which in Python includes
/// strings and dicts.
fn is_sequence(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::String | ValueKind::Seq | ValueKind::Map | ValueKind::Bytes
    )
}

/// jinja2's `number` test: `isinstance(value, numbers.Number)`, which is true for bools.
fn is_number(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Number | ValueKind::Bool)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values are CPython 3.11's `int(text, base)` / `float(text)` (None: ValueError).
    #[test]
    fn number_parsing_matches_python() {
        let ints = [
            ("12", 10, Some("12")),
            ("-0x1A", 16, Some("-26")),
            ("1_000", 10, Some("1000")),
            ("1__0", 10, None),
            ("_1", 10, None),
            ("ff", 16, Some("255")),
            ("3.5", 10, None),
            ("18446744073709551616", 10, Some("18446744073709551616")),
        ];
        for (text, base, want) in ints {
            let got = parse_python_int(text, base).map(|v| v.to_string());
            assert_eq!(got.as_deref(), want, "int({text:?}, {base})");
        }
        let floats = [
            ("2.5", Some(2.5)),
            ("-1e3", Some(-1000.0)),
            (".5", Some(0.5)),
            ("1_0.5", Some(10.5)),
            ("+-1", None),
            ("abc", None),
            ("Infinity", Some(f64::INFINITY)),
            ("-inf", Some(f64::NEG_INFINITY)),
        ];
        for (text, want) in floats {
            assert_eq!(parse_python_float(text), want, "float({text:?})");
        }
        assert!(parse_python_float("nan").is_some_and(f64::is_nan));
    }

    /// Expected strings are CPython 3.11's `str.title()` and `str.center(width)`.
    #[test]
    fn title_and_center_match_python() {
        assert_eq!(python_title("hello wORLD-x's 1st"), "Hello World-X'S 1St");
        let centered = |text: &str, width: i64| {
            center(
                &Value::from(text),
                Rest(vec![ValueOrKwargs::from(Value::from(width))]),
            )
            .unwrap()
        };
        assert_eq!(centered("x", 5), "  x  ");
        assert_eq!(centered("ab", 5), "  ab ");
        assert_eq!(centered("ab", 7), "   ab  ");
        assert_eq!(centered("abc", 6), " abc  ");
        assert_eq!(centered("abc", 2), "abc");
    }
}
