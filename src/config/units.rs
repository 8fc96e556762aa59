//! Durations and sizes as operators write them in `hookd.toml`.
//!
//! A duration is a whole number followed by one unit, with nothing in between:
//! `ms`, `s`, `m` (minutes), `h` or `d` (days of 24 hours). `"500ms"`, `"5s"`,
//! `"30m"`, `"2h"`, `"7d"`. Fractions, signs, spaces and compound forms such as
//! `"1h30m"` are refused; write `"90m"` instead. The largest accepted duration is
//! [`DURATION_MAX`], so that adding one to a clock reading can never overflow.
//!
//! A size is a whole number of bytes, optionally followed by a unit: decimal
//! `B`, `KB`, `MB`, `GB`, `TB` (powers of 1000) or binary `KiB`, `MiB`, `GiB`,
//! `TiB` (powers of 1024). `"512"`, `"64KiB"`, `"1MiB"`, `"1MB"` (= 1 000 000).
//! In the file a size may also be a plain TOML integer.
//!
//! These functions only parse; whether zero or a large value makes sense for a
//! given key is decided by the validation in [`super`].

use std::time::Duration;

use thiserror::Error;

/// The longest duration accepted anywhere in the config: 3650 days.
pub const DURATION_MAX: Duration = Duration::from_secs(3650 * 86_400);

/// Why a duration string was refused. The `Display` text quotes the input and
/// says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    /// The string is empty or only whitespace.
    #[error("empty duration: expected a number and a unit (ms, s, m, h, d), e.g. \"5s\"")]
    Empty,
    /// A leading minus sign.
    #[error("invalid duration {0:?}: must not be negative")]
    Negative(String),
    /// Digits without a unit, e.g. `"5"`.
    #[error("invalid duration {0:?}: missing unit; use us, ms, s, m, h or d, e.g. \"5s\"")]
    MissingUnit(String),
    /// Anything that is not `<digits><unit>`.
    #[error("invalid duration {0:?}: expected a whole number and a unit (ms, s, m, h, d), e.g. \"500ms\", \"5s\", \"2h\"")]
    Malformed(String),
    /// A unit other than us, ms, s, m, h, d.
    #[error("invalid duration {input:?}: unknown unit {unit:?}; use us, ms, s, m, h or d")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The part after the digits.
        unit: String,
    },
    /// Larger than [`DURATION_MAX`] (or than `u64` can hold).
    #[error("invalid duration {0:?}: too large, the maximum is 3650d")]
    TooLarge(String),
}

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeError {
    /// The string is empty or only whitespace.
    #[error("empty size: expected a number of bytes with an optional unit, e.g. \"64KiB\"")]
    Empty,
    /// A negative integer or a string with a leading minus sign.
    #[error("invalid size {0:?}: must not be negative")]
    Negative(String),
    /// Anything that is not `<digits>[unit]`.
    #[error("invalid size {0:?}: expected a whole number of bytes with an optional unit (B, KB, KiB, MB, MiB, GB, GiB, TB, TiB), e.g. \"64KiB\"")]
    Malformed(String),
    /// A unit that is not one of the accepted ones.
    #[error("invalid size {input:?}: unknown unit {unit:?}; use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The part after the digits.
        unit: String,
    },
    /// The value does not fit in a `u64` number of bytes.
    #[error("invalid size {0:?}: too large")]
    TooLarge(String),
}

/// Splits `"123abc"` into `("123", "abc")`; the first part holds the leading ASCII digits.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    s.split_at(end)
}

/// Parses a duration such as `"250us"`, `"500ms"`, `"5s"`, `"2m"`, `"2h"` or `"5d"`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.trim().is_empty() {
        return Err(DurationError::Empty);
    }
    if input.starts_with('-') {
        return Err(DurationError::Negative(input.to_owned()));
    }
    let (digits, unit) = split_number(input);
    if digits.is_empty() {
        return Err(DurationError::Malformed(input.to_owned()));
    }
    if unit.is_empty() {
        return Err(DurationError::MissingUnit(input.to_owned()));
    }
    if !unit.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(DurationError::Malformed(input.to_owned()));
    }
    let too_large = || DurationError::TooLarge(input.to_owned());
    let n: u64 = digits.parse().map_err(|_| too_large())?;
    let duration = match unit {
        "us" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(too_large)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(too_large)?),
        "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(too_large)?),
        _ => {
            return Err(DurationError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
            })
        }
    };
    if duration > DURATION_MAX {
        return Err(too_large());
    }
    Ok(duration)
}

/// Parses a size such as `"512"`, `"512B"`, `"64KiB"`, `"1MiB"`, `"10GiB"` or `"1MB"`.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    if input.trim().is_empty() {
        return Err(SizeError::Empty);
    }
    if input.starts_with('-') {
        return Err(SizeError::Negative(input.to_owned()));
    }
    let (digits, unit) = split_number(input);
    if digits.is_empty() || !unit.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(SizeError::Malformed(input.to_owned()));
    }
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => {
            return Err(SizeError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
            })
        }
    };
    let too_large = || SizeError::TooLarge(input.to_owned());
    let n: u64 = digits.parse().map_err(|_| too_large())?;
    n.checked_mul(multiplier).ok_or_else(too_large)
}

/// Checks a size given as a TOML integer.
pub fn size_from_integer(n: i64) -> Result<u64, SizeError> {
    u64::try_from(n).map_err(|_| SizeError::Negative(n.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("250us", Duration::from_micros(250)),
            ("0ms", Duration::ZERO),
            ("1ms", Duration::from_millis(1)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7200)),
            ("5d", Duration::from_secs(5 * 86_400)),
            ("3650d", DURATION_MAX),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn bad_durations_are_refused_with_a_reason() {
        use DurationError::*;
        let owned = |s: &str| s.to_owned();
        let unknown = |input: &str, unit: &str| UnknownUnit {
            input: input.to_owned(),
            unit: unit.to_owned(),
        };
        let cases = [
            ("", Empty),
            ("  ", Empty),
            ("-5s", Negative(owned("-5s"))),
            ("5", MissingUnit(owned("5"))),
            ("s", Malformed(owned("s"))),
            ("1.5s", Malformed(owned("1.5s"))),
            ("5 s", Malformed(owned("5 s"))),
            (" 5s", Malformed(owned(" 5s"))),
            ("+5s", Malformed(owned("+5s"))),
            ("1h30m", Malformed(owned("1h30m"))),
            ("5ns", unknown("5ns", "ns")),
            ("5S", unknown("5S", "S")),
            ("3651d", TooLarge(owned("3651d"))),
            // Too many digits for u64.
            (
                "99999999999999999999999999s",
                TooLarge(owned("99999999999999999999999999s")),
            ),
            // The multiplication overflows u64 before the maximum is checked.
            (
                "18446744073709551615d",
                TooLarge(owned("18446744073709551615d")),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn duration_messages_quote_the_input() {
        let msg = parse_duration("5").expect_err("no unit").to_string();
        assert_eq!(
            msg,
            "invalid duration \"5\": missing unit; use us, ms, s, m, h or d, e.g. \"5s\""
        );
        let msg = parse_duration("5w").expect_err("bad unit").to_string();
        assert!(msg.contains("unknown unit \"w\""), "{msg}");
    }

    #[test]
    fn sizes_in_every_unit() {
        let cases = [
            ("0", 0),
            ("512", 512),
            ("512B", 512),
            ("1KB", 1_000),
            ("1MB", 1_000_000),
            ("2GB", 2_000_000_000),
            ("1TB", 1_000_000_000_000),
            ("64KiB", 64 * 1024),
            ("1MiB", 1 << 20),
            ("10GiB", 10 << 30),
            ("1TiB", 1 << 40),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), Ok(want), "{input}");
        }
        assert_eq!(size_from_integer(4096), Ok(4096));
    }

    #[test]
    fn bad_sizes_are_refused_with_a_reason() {
        use SizeError::*;
        let owned = |s: &str| s.to_owned();
        let unknown = |input: &str, unit: &str| UnknownUnit {
            input: input.to_owned(),
            unit: unit.to_owned(),
        };
        let cases = [
            ("", Empty),
            ("-1", Negative(owned("-1"))),
            ("MiB", Malformed(owned("MiB"))),
            ("1.5MiB", Malformed(owned("1.5MiB"))),
            ("1 MiB", Malformed(owned("1 MiB"))),
            ("1mib", unknown("1mib", "mib")),
            ("1kB", unknown("1kB", "kB")),
            ("1PiB", unknown("1PiB", "PiB")),
            ("16777216TiB", TooLarge(owned("16777216TiB"))),
            (
                "99999999999999999999999",
                TooLarge(owned("99999999999999999999999")),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), Err(want), "{input:?}");
        }
        assert_eq!(size_from_integer(-1), Err(Negative(owned("-1"))));
    }
}
