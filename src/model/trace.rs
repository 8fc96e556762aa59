//! W3C Trace Context: the `traceparent` a producer sends with a message, kept with it and
//! sent on with every delivery attempt, so that a trace spans producer, hookd and receiver.
//!
//! `version-traceid-parentid-flags`, lowercase hex: `00-<32>-<16>-<2>`. A value that breaks the
//! format (the wrong lengths, uppercase, version `ff`, an all-zero trace or parent id) is
//! ignored, as the specification asks of a receiver: the message is stored without one. A
//! version above `00` may carry more fields after the four; only the four are kept.

/// The `traceparent` to keep from a request header's value, or `None` if it is not one.
pub fn traceparent(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    let head = text.get(..55)?;
    let rest = &text[55..];
    let mut parts = head.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    let well_formed = hex(version, 2)
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && version != "ff"
        && nonzero(trace)
        && nonzero(parent);
    // Version 00 is exactly these four fields; a later version may add fields after a dash.
    let ends_right = if version == "00" {
        rest.is_empty()
    } else {
        rest.is_empty() || rest.starts_with('-')
    };
    (well_formed && ends_right).then(|| head.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn well_formed_values_are_kept() {
        assert_eq!(traceparent(GOOD.as_bytes()).as_deref(), Some(GOOD));
        assert_eq!(
            traceparent(format!(" {GOOD}\t").as_bytes()).as_deref(),
            Some(GOOD)
        );
        let later = "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-extra";
        assert_eq!(traceparent(later.as_bytes()).as_deref(), Some(&later[..55]));
    }

    #[test]
    fn anything_else_is_ignored() {
        for bad in [
            "",
            "00",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
            "00-0af7651916cd43dd8448eb211c80319-cb7ad6b7169203331-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01",
        ] {
            assert_eq!(traceparent(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(traceparent(b"\xff\xfe"), None);
        assert_eq!(traceparent("00-é".repeat(20).as_bytes()), None);
    }
}
