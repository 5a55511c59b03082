//! Rewrites a jinja2 template's text so that minijinja reads it as jinja2 does.
//!
//! Three differences are lexical and are fixed here, keeping every line on its line so that
//! error line numbers stay those of the original template:
//!
//! - jinja2 normalizes `\r\n` and `\r` to `\n` in template text and string literals
//!   (`Lexer._normalize_newlines`);
//! - jinja2 decodes string literals with Python's `unicode-escape` codec: a backslash before a
//!   newline continues the line (both vanish), `\a` and `\v` are BEL and VT, `\UXXXXXXXX` is one
//!   character, and `\/` stays a backslash and a slash; minijinja decodes these differently, so
//!   they are re-spelled in forms both engines read the same way (a continuation becomes two
//!   adjacent literals, which both engines concatenate);
//! - transformers adds a `{% generation %}...{% endgeneration %}` block (its assistant-mask
//!   extension) that renders its body; it becomes `{% if true %}...{% endif %}`, the same block
//!   with the same whitespace control.

/// The template text minijinja should compile for jinja2 template `source`.
pub(crate) fn to_minijinja_source(source: &str) -> String {
    let source = source.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(source.len() + 16);
    let mut rest = source.as_str();
    while let Some(open) = find_tag_open(rest) {
        out.push_str(&rest[..open]);
        let tag = &rest[open..];
        let consumed = if tag.starts_with("{#") {
            let len = tag.find("#}").map_or(tag.len(), |end| end + 2);
            out.push_str(&tag[..len]);
            len
        } else if tag.starts_with("{{") {
            copy_tag(tag, "}}", &mut out)
        } else {
            match simple_block_name(tag) {
                Some("raw") => {
                    let len = raw_block_len(tag);
                    out.push_str(&tag[..len]);
                    len
                }
                Some(name @ ("generation" | "endgeneration")) => {
                    let keyword = if name == "generation" {
                        "if true"
                    } else {
                        "endif"
                    };
                    let len = tag.find("%}").map_or(tag.len(), |end| end + 2);
                    out.push_str(&tag[..len].replacen(name, keyword, 1));
                    len
                }
                _ => copy_tag(tag, "%}", &mut out),
            }
        };
        rest = &tag[consumed..];
    }
    out.push_str(rest);
    out
}

/// Byte offset of the next `{{`, `{%` or `{#` in `text`.
fn find_tag_open(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(1))
        .find(|&i| bytes[i] == b'{' && matches!(bytes[i + 1], b'{' | b'%' | b'#'))
}

/// The keyword of a block tag that holds nothing else, like `{%- raw %}` -> `raw`.
fn simple_block_name(tag: &str) -> Option<&str> {
    let end = tag.find("%}")?;
    let inner = tag[2..end]
        .trim_start_matches(['-', '+'])
        .trim_end_matches(['-', '+'])
        .trim();
    (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_alphabetic())).then_some(inner)
}

/// Length of a `{% raw %}...{% endraw %}` block starting at the beginning of `tag`.
fn raw_block_len(tag: &str) -> usize {
    let mut offset = tag.find("%}").map_or(tag.len(), |end| end + 2);
    while let Some(open) = tag[offset..].find("{%") {
        let at = offset + open;
        if simple_block_name(&tag[at..]) == Some("endraw") {
            return tag[at..].find("%}").map_or(tag.len(), |end| at + end + 2);
        }
        offset = at + 2;
    }
    tag.len()
}

/// Copies the tag at the start of `tag` (up to `end` outside brackets and strings) into `out`,
/// re-spelling its string literals; returns the bytes consumed.
fn copy_tag(tag: &str, end: &str, out: &mut String) -> usize {
    let bytes = tag.as_bytes();
    let mut depth = 0usize;
    let mut i = 2;
    out.push_str(&tag[..2]);
    while i < bytes.len() {
        if depth == 0 && tag[i..].starts_with(end) {
            out.push_str(end);
            return i + end.len();
        }
        match bytes[i] {
            quote @ (b'"' | b'\'') => {
                let len = string_literal_len(&tag[i..], quote);
                push_literal(&tag[i..i + len], quote as char, out);
                i += len;
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        // Copy one whole character (tags may hold non-ASCII text outside strings, e.g. in names).
        let ch_len = tag[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&tag[i..i + ch_len]);
        i += ch_len;
    }
    tag.len()
}

/// Length of the string literal at the start of `text` (quotes included; a backslash escapes
/// any character); an unterminated literal runs to the end.
fn string_literal_len(text: &str, quote: u8) -> usize {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    text.len()
}

/// Writes string literal `literal` (with its quotes) re-spelled for minijinja.
fn push_literal(literal: &str, quote: char, out: &mut String) {
    let mut chars = literal.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            // Line continuation: end this literal and open another on the next line.
            Some('\n') => {
                chars.next();
                out.push(quote);
                out.push('\n');
                out.push(quote);
            }
            Some('a') => {
                chars.next();
                out.push_str("\\x07");
            }
            Some('v') => {
                chars.next();
                out.push_str("\\x0b");
            }
            Some('/') => {
                chars.next();
                out.push_str("\\\\/");
            }
            Some('U') => {
                let digits: String = chars.clone().skip(1).take(8).collect();
                match u32::from_str_radix(&digits, 16)
                    .ok()
                    .filter(|_| digits.len() == 8)
                    .and_then(char::from_u32)
                {
                    Some(ch) => {
                        for _ in 0..9 {
                            chars.next();
                        }
                        let mut units = [0u16; 2];
                        for unit in ch.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                    }
                    None => out.push('\\'),
                }
            }
            Some(next) => {
                chars.next();
                out.push('\\');
                out.push(next);
            }
            None => out.push('\\'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_what_differs() {
        // Continuation, BEL/VT, \U and \/ inside literals; data text and other escapes untouched.
        let source = "it's {{ \"a\\\nb\" ~ 'c\\a\\v\\U0001F600\\/\\n' }} {# 'x\\\n #}\r\n{% raw %}'\\\n'{% endraw %}";
        let want = "it's {{ \"a\"\n\"b\" ~ 'c\\x07\\x0b\\ud83d\\ude00\\\\/\\n' }} {# 'x\\\n #}\n{% raw %}'\\\n'{% endraw %}";
        assert_eq!(to_minijinja_source(source), want);
    }

    #[test]
    fn generation_tags_become_if_blocks() {
        let source = "{%- generation -%}x{% endgeneration %}{% if a %}{% endif %}";
        assert_eq!(
            to_minijinja_source(source),
            "{%- if true -%}x{% endif %}{% if a %}{% endif %}"
        );
    }

    #[test]
    fn nested_braces_do_not_end_a_tag() {
        let source = "{{ {'a': {'b': 'x}}\\\ny'}} }}'";
        assert_eq!(
            to_minijinja_source(source),
            "{{ {'a': {'b': 'x}}'\n'y'}} }}'"
        );
    }
}
