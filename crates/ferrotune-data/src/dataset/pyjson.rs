//! Python's `json.dumps(value, ensure_ascii=False)` for serde_json values, which LLaMA-Factory
//! applies to OpenAI `tool_calls` and to tool lists given as JSON objects.
//!
//! Default separators are `", "` and `": "`; strings escape `"`, `\\` and control characters
//! (`\n`, `\r`, `\t`, `\b`, `\f`, else `\u00XX`) and keep every other character as is; floats use
//! Python's `repr` (shortest round-trip digits, `1e+16` style exponents past 1e16 or below 1e-4).

use serde_json::Value;

/// Serializes `value` as Python's `json.dumps(value, ensure_ascii=False)` does.
pub fn dumps(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Appends one value.
fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&float_repr(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, key);
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Appends a quoted, escaped string (`ensure_ascii=False`).
fn write_str(out: &mut String, s: &str) {
    crate::chat_template::python::write_json_str(out, s, false);
}

/// A float as `json.dumps` writes it: Python's `repr` for finite values
/// ([`crate::chat_template::python::float_repr`]), `NaN` / `Infinity` / `-Infinity` otherwise.
fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    crate::chat_template::python::float_repr(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected strings are what CPython 3.12 `json.dumps(..., ensure_ascii=False)` prints.
    #[test]
    fn matches_python_json_dumps() {
        let value: Value = serde_json::from_str(
            r#"[{"name": "f", "arguments": {"a": 1, "b": [1.5, 1e16, 0.0001, 1e-05, 100.0]}}, "é\n\u0001", null, true]"#,
        )
        .unwrap_or(Value::Null);
        assert_eq!(
            dumps(&value),
            "[{\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [1.5, 1e+16, 0.0001, 1e-05, 100.0]}}, \"é\\n\\u0001\", null, true]"
        );
        assert_eq!(float_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(float_repr(123456789012345680.0), "1.2345678901234568e+17");
        assert_eq!(float_repr(0.1), "0.1");
    }
}
