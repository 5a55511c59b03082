//! GGUF metadata values and their on-disk encoding.
//!
//! Format: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md> ("gguf_metadata_value_type").
//! A value is a u32 type id followed by its payload: fixed-size little-endian scalars, a string
//! (u64 length + bytes), or an array (u32 element type id, u64 count, elements).

use super::cursor::Cursor;

/// Arrays may hold arrays; deeper nesting than this is rejected so a hostile file cannot
/// exhaust the stack (real files use at most one level).
const MAX_ARRAY_DEPTH: usize = 8;

/// One metadata value of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Type id 0.
    U8(u8),
    /// Type id 1.
    I8(i8),
    /// Type id 2.
    U16(u16),
    /// Type id 3.
    I16(i16),
    /// Type id 4.
    U32(u32),
    /// Type id 5.
    I32(i32),
    /// Type id 10.
    U64(u64),
    /// Type id 11.
    I64(i64),
    /// Type id 6.
    F32(f32),
    /// Type id 12.
    F64(f64),
    /// Type id 7 (one byte, 0 or 1).
    Bool(bool),
    /// Type id 8. Invalid UTF-8 is replaced by U+FFFD (with a warning), as gguf-py does.
    String(String),
    /// Type id 9. All elements share one type.
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The GGUF type name: `u8`, `i32`, `f32`, `bool`, `string`, `array`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            GgufValue::U8(_) => "u8",
            GgufValue::I8(_) => "i8",
            GgufValue::U16(_) => "u16",
            GgufValue::I16(_) => "i16",
            GgufValue::U32(_) => "u32",
            GgufValue::I32(_) => "i32",
            GgufValue::U64(_) => "u64",
            GgufValue::I64(_) => "i64",
            GgufValue::F32(_) => "f32",
            GgufValue::F64(_) => "f64",
            GgufValue::Bool(_) => "bool",
            GgufValue::String(_) => "string",
            GgufValue::Array(_) => "array",
        }
    }

    /// The value of any integer variant, widened to `i128`; `None` for other variants.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            GgufValue::U8(v) => v.into(),
            GgufValue::I8(v) => v.into(),
            GgufValue::U16(v) => v.into(),
            GgufValue::I16(v) => v.into(),
            GgufValue::U32(v) => v.into(),
            GgufValue::I32(v) => v.into(),
            GgufValue::U64(v) => v.into(),
            GgufValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value of `F32` or `F64` (narrowed to f32); `None` for other variants.
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            GgufValue::F32(v) => Some(v),
            GgufValue::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// The text of a `String`; `None` for other variants.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short description for error messages: `u32 7`, `string "gpt2"`, `array of 3 string`.
    pub fn describe(&self) -> String {
        match self {
            GgufValue::String(s) => {
                let short: String = s.chars().take(40).collect();
                let dots = if short.len() < s.len() { "..." } else { "" };
                format!("string {short:?}{dots}")
            }
            GgufValue::Array(items) => match items.first() {
                Some(first) => format!("array of {} {}", items.len(), first.type_name()),
                None => "empty array".to_string(),
            },
            GgufValue::Bool(b) => format!("bool {b}"),
            GgufValue::F32(v) => format!("f32 {v}"),
            GgufValue::F64(v) => format!("f64 {v}"),
            other => match other.as_integer() {
                Some(v) => format!("{} {v}", other.type_name()),
                None => other.type_name().to_string(),
            },
        }
    }
}

/// Smallest encoded size of one value of type `type_id`, used to bound array counts.
fn min_encoded_size(type_id: u32) -> Option<usize> {
    Some(match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => 8,  // u64 length of an empty string
        9 => 12, // u32 element type + u64 count of an empty array
        _ => return None,
    })
}

/// Reads the payload of a value whose type id has already been read. `key` is for messages.
pub(crate) fn read_value(
    cur: &mut Cursor<'_>,
    type_id: u32,
    key: &str,
    depth: usize,
) -> Result<GgufValue, String> {
    let what = format!("value of `{key}`");
    Ok(match type_id {
        0 => GgufValue::U8(cur.u8(&what)?),
        1 => GgufValue::I8(cur.i8(&what)?),
        2 => GgufValue::U16(cur.u16(&what)?),
        3 => GgufValue::I16(cur.i16(&what)?),
        4 => GgufValue::U32(cur.u32(&what)?),
        5 => GgufValue::I32(cur.i32(&what)?),
        6 => GgufValue::F32(cur.f32(&what)?),
        7 => {
            let at = cur.pos();
            match cur.u8(&what)? {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => {
                    return Err(format!(
                        "{what} at offset {at} is a bool with byte {b}, not 0 or 1"
                    ))
                }
            }
        }
        8 => GgufValue::String(read_lossy_string(cur, key)?),
        9 => read_array(cur, key, depth)?,
        10 => GgufValue::U64(cur.u64(&what)?),
        11 => GgufValue::I64(cur.i64(&what)?),
        12 => GgufValue::F64(cur.f64(&what)?),
        other => {
            return Err(format!(
                "{what} has unknown metadata type id {other} at offset {} (known: 0..=12)",
                cur.pos().saturating_sub(4)
            ))
        }
    })
}

/// An array: element type id, count (bounded by the bytes left), then the elements.
fn read_array(cur: &mut Cursor<'_>, key: &str, depth: usize) -> Result<GgufValue, String> {
    if depth >= MAX_ARRAY_DEPTH {
        return Err(format!(
            "value of `{key}` nests arrays deeper than {MAX_ARRAY_DEPTH} levels at offset {}",
            cur.pos()
        ));
    }
    let what = format!("array `{key}`");
    let elem_type = cur.u32(&what)?;
    let min = min_encoded_size(elem_type).ok_or_else(|| {
        format!(
            "{what} has unknown element type id {elem_type} at offset {} (known: 0..=12)",
            cur.pos() - 4
        )
    })?;
    let count = cur.u64(&what)?;
    let count = cur.check_count(count, min, &what)?;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(read_value(cur, elem_type, key, depth + 1)?);
    }
    Ok(GgufValue::Array(items))
}

/// A string value; invalid UTF-8 is replaced rather than refused, with a warning naming the key.
fn read_lossy_string(cur: &mut Cursor<'_>, key: &str) -> Result<String, String> {
    let bytes = cur.string_bytes(&format!("string value of `{key}`"))?;
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => {
            tracing::warn!(
                key,
                "gguf string value is not valid utf-8; invalid bytes replaced"
            );
            Ok(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}
