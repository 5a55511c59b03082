//! Conversion of raw YAML/JSON values into typed argument fields, and the two macros that
//! declare argument groups (`arg_group!`) and closed sets of string values (`arg_enum!`).
//!
//! A raw value is a [`serde_json::Value`] whatever the file format: YAML scalars are resolved
//! with YAML 1.2 core-schema rules by `serde_norway` (so `1e-4` is a float, `yes` a string).

use serde_json::Value;

/// A field type that can be read from one raw config value.
pub(crate) trait ArgValue: Sized {
    /// What the value should look like, for error messages (e.g. `an integer >= 0`).
    fn expected() -> String;
    /// Converts `value`, or returns `None` when it has the wrong type or is out of range.
    fn from_value(value: &Value) -> Option<Self>;
}

/// Renders a raw value with its YAML type for messages, e.g. `"abc" (string)`; long values are cut.
pub(crate) fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    };
    let mut text = value.to_string();
    if text.chars().count() > 60 {
        text = text.chars().take(57).collect::<String>() + "...";
    }
    format!("`{text}` ({kind})")
}

impl ArgValue for bool {
    fn expected() -> String {
        "a boolean (true or false)".into()
    }
    fn from_value(value: &Value) -> Option<Self> {
        value.as_bool()
    }
}

macro_rules! int_arg_value {
    ($($ty:ty => $expected:literal),* $(,)?) => {$(
        impl ArgValue for $ty {
            fn expected() -> String {
                $expected.into()
            }
            fn from_value(value: &Value) -> Option<Self> {
                if let Some(v) = value.as_i64() {
                    return <$ty>::try_from(v).ok();
                }
                value.as_u64().and_then(|v| <$ty>::try_from(v).ok())
            }
        }
    )*};
}

int_arg_value! {
    u32 => "an integer >= 0",
    u64 => "an integer >= 0",
    usize => "an integer >= 0",
    i32 => "an integer",
    i64 => "an integer",
}

impl ArgValue for f64 {
    fn expected() -> String {
        "a number".into()
    }
    fn from_value(value: &Value) -> Option<Self> {
        value.as_f64()
    }
}

impl ArgValue for String {
    fn expected() -> String {
        "a string".into()
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(s.clone()),
            // YAML gives `master_port: 29500` as a number; the key is a string in Python too.
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

impl<T: ArgValue> ArgValue for Option<T> {
    fn expected() -> String {
        format!("{} or null", T::expected())
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Any value, kept as written (dict-valued keys such as `lr_scheduler_kwargs` or `deepspeed`).
impl ArgValue for Value {
    fn expected() -> String {
        "any value".into()
    }
    fn from_value(value: &Value) -> Option<Self> {
        Some(value.clone())
    }
}

/// Splits a LLaMA-Factory comma list (`"q_proj, v_proj"`) into trimmed, non-empty items.
fn split_commas(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// Comma lists: a string `"a,b"`, a YAML list `[a, b]`, or null for the empty list.
impl ArgValue for Vec<String> {
    fn expected() -> String {
        "a comma-separated string or a list of strings".into()
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(Vec::new()),
            Value::String(s) => Some(split_commas(s)),
            Value::Array(items) => items
                .iter()
                .map(|item| String::from_value(item).map(|s| s.trim().to_string()))
                .collect(),
            _ => None,
        }
    }
}

/// Comma lists of numbers (`interleave_probs: "0.3,0.7"` or `[0.3, 0.7]`), null for empty.
impl ArgValue for Vec<f64> {
    fn expected() -> String {
        "a comma-separated string or a list of numbers".into()
    }
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(Vec::new()),
            Value::String(s) => split_commas(s).iter().map(|x| x.parse().ok()).collect(),
            Value::Array(items) => items.iter().map(Value::as_f64).collect(),
            Value::Number(n) => n.as_f64().map(|x| vec![x]),
            _ => None,
        }
    }
}

/// Declares a closed set of string values (a Python `Literal[...]` or `StrEnum`), with
/// `as_str`, `FromStr`, `Display` and [`ArgValue`] spelling each variant as LLaMA-Factory does.
macro_rules! arg_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[doc = $doc])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as written in a config file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "`{other}` is not {}",
                        <$name as $crate::value::ArgValue>::expected()
                    )),
                }
            }
        }

        impl $crate::value::ArgValue for $name {
            fn expected() -> String {
                let values: Vec<String> = [$($text),+].iter().map(|v| format!("`{v}`")).collect();
                format!("one of {}", values.join(", "))
            }
            fn from_value(value: &serde_json::Value) -> Option<Self> {
                value.as_str().and_then(|s| s.parse().ok())
            }
        }
    };
}

/// Declares an argument group: the struct (one documented `pub` field per config key, named
/// exactly as the key), its `Default` (LLaMA-Factory's defaults), the list of its keys, the
/// typed parse from the raw key map, and the list of keys whose value differs from the default.
macro_rules! arg_group {
    (
        $(#[$meta:meta])*
        pub struct $name:ident ($group:literal) {
            $( $(#[doc = $doc:literal])* $field:ident : $ty:ty = $default:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )+
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )+ }
            }
        }

        impl $name {
            /// The group's name in messages, e.g. `model arguments`.
            pub const GROUP: &'static str = $group;

            /// Every key of the group, in declaration order.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),+];

            /// Takes the group's keys out of `raw` and converts them; keys not given keep
            /// their defaults.
            ///
            /// # Errors
            /// `ConfigError::WrongType` naming the key, where it was set, the expected type and
            /// the value found.
            pub(crate) fn from_raw(raw: &mut $crate::raw::RawArgs) -> Result<Self, $crate::ConfigError> {
                let mut args = Self::default();
                $(
                    if let Some(entry) = raw.take(stringify!($field)) {
                        args.$field = entry.convert(stringify!($field))?;
                    }
                )+
                Ok(args)
            }

            /// Keys whose value differs from the group's default, in declaration order.
            pub fn non_default_keys(&self) -> Vec<&'static str> {
                let default = Self::default();
                let mut keys = Vec::new();
                $( if self.$field != default.$field { keys.push(stringify!($field)); } )+
                keys
            }
        }
    };
}
