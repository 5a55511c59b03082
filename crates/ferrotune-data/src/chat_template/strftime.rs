//! `strftime_now(format)`: the current local time formatted like Python's
//! `datetime.now().strftime(format)` on Linux.
//!
//! CPython hands the format to the C library's `strftime` in the `C` locale (it never sets
//! `LC_TIME`), after replacing `%f` (microseconds) itself and `%z`/`%Z` with the empty string for
//! the naive datetime `now()` returns. The conversions below are glibc's (`man 3 strftime`),
//! including its `-` (no padding), `_` (space padding) and `0` (zero padding) flags and a field
//! width; an unknown conversion is copied through unchanged, as glibc does.

use jiff::civil::DateTime;
use jiff::Zoned;

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Formats the current local time (system time zone, as Python's naive `datetime.now()`).
pub(crate) fn strftime_now(format: &str) -> String {
    strftime(&Zoned::now(), format)
}

/// Formats `now` with Python/glibc `strftime` conversions; `%z` and `%Z` are empty because
/// Python formats a naive datetime.
pub(crate) fn strftime(now: &Zoned, format: &str) -> String {
    let dt = now.datetime();
    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flag = None;
        if let Some(&(_, f @ ('-' | '_' | '0'))) = chars.peek() {
            flag = Some(f);
            chars.next();
        }
        let mut width = None;
        while let Some(&(_, d)) = chars.peek() {
            let Some(digit) = d.to_digit(10) else { break };
            width = Some(width.unwrap_or(0) * 10 + digit as usize);
            chars.next();
        }
        let Some((end, conv)) = chars.next() else {
            // A trailing `%` (possibly with flags) is copied as is.
            out.push_str(&format[start..]);
            break;
        };
        match convert(&dt, now, conv) {
            Some(Field::Text(text)) => out.push_str(&text),
            Some(Field::Num { value, digits, pad }) => {
                let pad = match flag {
                    Some('-') => None,
                    Some('_') => Some(' '),
                    Some('0') => Some('0'),
                    _ => pad,
                };
                let text = value.to_string();
                let width = width.unwrap_or(digits);
                if let Some(pad) = pad {
                    for _ in text.len()..width {
                        out.push(pad);
                    }
                }
                out.push_str(&text);
            }
            None => out.push_str(&format[start..end + conv.len_utf8()]),
        }
    }
    out
}

/// What one conversion produces: text, or a number with its default width and padding.
enum Field {
    Text(String),
    Num {
        value: i64,
        digits: usize,
        pad: Option<char>,
    },
}

/// A zero-padded number of `digits` digits.
fn zero(value: impl Into<i64>, digits: usize) -> Option<Field> {
    Some(Field::Num {
        value: value.into(),
        digits,
        pad: Some('0'),
    })
}

/// A space-padded number of `digits` digits.
fn space(value: impl Into<i64>, digits: usize) -> Option<Field> {
    Some(Field::Num {
        value: value.into(),
        digits,
        pad: Some(' '),
    })
}

/// Text produced by a sub-format, e.g. `%T` is `%H:%M:%S`.
fn sub(now: &Zoned, format: &str) -> Option<Field> {
    Some(Field::Text(strftime(now, format)))
}

/// The field for conversion `conv`, or `None` when glibc does not know it.
fn convert(dt: &DateTime, now: &Zoned, conv: char) -> Option<Field> {
    let weekday = WEEKDAYS[dt.weekday().to_monday_zero_offset() as usize];
    let month = MONTHS[(dt.month() - 1) as usize];
    let hour12 = match dt.hour() % 12 {
        0 => 12,
        h => h,
    };
    // 0-based day of the year and weekday counted from Sunday / from Monday, for %U and %W.
    let yday = i64::from(dt.day_of_year()) - 1;
    let from_sunday = i64::from(dt.weekday().to_sunday_zero_offset());
    let from_monday = i64::from(dt.weekday().to_monday_zero_offset());
    let text = |s: &str| Some(Field::Text(s.to_owned()));
    match conv {
        'a' => text(&weekday[..3]),
        'A' => text(weekday),
        'b' | 'h' => text(&month[..3]),
        'B' => text(month),
        'c' => sub(now, "%a %b %e %H:%M:%S %Y"),
        'C' => zero(dt.year() / 100, 2),
        'd' => zero(dt.day(), 2),
        'D' | 'x' => sub(now, "%m/%d/%y"),
        'e' => space(dt.day(), 2),
        'f' => zero(dt.subsec_nanosecond() / 1000, 6),
        'F' => sub(now, "%Y-%m-%d"),
        'g' => zero(dt.iso_week_date().year() % 100, 2),
        'G' => zero(dt.iso_week_date().year(), 1),
        'H' => zero(dt.hour(), 2),
        'I' => zero(hour12, 2),
        'j' => zero(yday + 1, 3),
        'k' => space(dt.hour(), 2),
        'l' => space(hour12, 2),
        'm' => zero(dt.month(), 2),
        'M' => zero(dt.minute(), 2),
        'n' => text("\n"),
        'p' => text(if dt.hour() < 12 { "AM" } else { "PM" }),
        'P' => text(if dt.hour() < 12 { "am" } else { "pm" }),
        'r' => sub(now, "%I:%M:%S %p"),
        'R' => sub(now, "%H:%M"),
        's' => zero(now.timestamp().as_second(), 1),
        'S' => zero(dt.second(), 2),
        't' => text("\t"),
        'T' | 'X' => sub(now, "%H:%M:%S"),
        'u' => zero(dt.weekday().to_monday_one_offset(), 1),
        'U' => zero((yday + 7 - from_sunday) / 7, 2),
        'V' => zero(dt.iso_week_date().week(), 2),
        'w' => zero(from_sunday, 1),
        'W' => zero((yday + 7 - from_monday) / 7, 2),
        'y' => zero(dt.year() % 100, 2),
        'Y' => zero(dt.year(), 1),
        'z' | 'Z' => text(""),
        '%' => text("%"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use jiff::tz::TimeZone;

    /// Expected strings are CPython 3.11's `datetime(...).strftime(format)` on glibc.
    #[test]
    fn matches_python_strftime() {
        let now = date(2024, 3, 5)
            .at(14, 7, 9, 123_456_000)
            .to_zoned(TimeZone::UTC)
            .unwrap();
        let cases = [
            ("%d %b %Y", "05 Mar 2024"),
            ("%A %B %-d, %Y %I:%M %p", "Tuesday March 5, 2024 02:07 PM"),
            (
                "%c|%x|%X|%D|%T|%R|%r",
                "Tue Mar  5 14:07:09 2024|03/05/24|14:07:09|03/05/24|14:07:09|14:07|02:07:09 PM",
            ),
            (
                "%e|%k|%l|%j|%u|%w|%U|%W|%V|%G|%g|%C|%y|%F|%h|%P",
                " 5|14| 2|065|2|2|09|10|10|2024|24|20|24|2024-03-05|Mar|pm",
            ),
            ("[%z][%Z]%%%f%n%t%Q%", "[][]%123456\n\t%Q%"),
            ("%_d|%-m|%_H|%-j|%02d", " 5|3|14|65|05"),
        ];
        for (format, want) in cases {
            assert_eq!(strftime(&now, format), want, "format {format:?}");
        }
        let new_year = date(2021, 1, 1)
            .at(0, 5, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap();
        assert_eq!(
            strftime(&new_year, "%U|%W|%V|%G|%j|%I%p|%l"),
            "00|00|53|2020|001|12AM|12"
        );
    }
}
