//! RFC 3339 timestamps (UTC) to and from Unix milliseconds, by the `time` crate, and the
//! clock hookd reads.

pub use storage::{Clock, ManualClock, SystemClock};

use time::{
    format_description::{well_known::Rfc3339, BorrowedFormatItem},
    macros::format_description,
    OffsetDateTime,
};

/// The API's form: UTC, milliseconds, `Z`.
const MILLIS_Z: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats Unix milliseconds as `2024-01-02T03:04:05.678Z` (times past the year 9999 as its
/// last millisecond).
pub fn format_rfc3339(ms: u64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::macros::datetime!(9999-12-31 23:59:59.999 UTC));
    at.format(MILLIS_Z)
        .unwrap_or_else(|_| "9999-12-31T23:59:59.999Z".to_owned())
}

/// Parses an RFC 3339 date-time (any offset, optional fraction) to Unix milliseconds; `None`
/// for anything else, or a time before 1970.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let at = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_649_367_553_123),
            "2022-04-07T21:39:13.123Z"
        );
    }

    #[test]
    fn parses_what_it_formats_and_common_forms() {
        for ms in [0, 951_782_400_000, 1_649_367_553_123, 4_102_444_800_999] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339("2022-04-07T21:39:13Z"),
            Some(1_649_367_553_000)
        );
        assert_eq!(
            parse_rfc3339("2022-04-07T23:39:13.5+02:00"),
            Some(1_649_367_553_500)
        );
        assert_eq!(
            parse_rfc3339("2022-04-07T21:39:13.123456Z"),
            Some(1_649_367_553_123)
        );
        for bad in [
            "",
            "2022-04-07",
            "2022-13-07T00:00:00Z",
            "2022-04-07T21:39:13",
            "2022-04-07T21:39:13+0200",
            "x022-04-07T21:39:13Z",
            "1969-12-31T23:59:59Z",
            "2022-02-30T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
