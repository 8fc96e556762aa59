//! Signature headers in other providers' schemes, for a drop-in migration: an endpoint may
//! carry, beside the Standard Webhooks headers, the signature a receiver written for GitHub
//! (`X-Hub-Signature-256`), Stripe (`Stripe-Signature`) or a generic HMAC-SHA256 scheme
//! (header, hex or base64, prefix) checks, so that it keeps verifying while it moves to hookd.
//!
//! Here: the entry as the API and the config file give it, its checks, and how it is shown
//! (never with its secret). The signing itself is `deliver::sign::legacy_header`.

use serde::{Deserialize, Serialize};
use storage::state::LegacySignature;

/// Entries per endpoint, at most.
pub const LEGACY_SIGNATURES_MAX: usize = 4;
/// Bytes of a secret, at most.
const SECRET_BYTES_MAX: usize = 256;
/// Bytes of a generic scheme's prefix, at most.
const PREFIX_BYTES_MAX: usize = 32;

/// GitHub's header.
pub const GITHUB_HEADER: &str = "X-Hub-Signature-256";
/// Stripe's header.
pub const STRIPE_HEADER: &str = "Stripe-Signature";

/// One entry as given: `{"scheme": "github" | "stripe" | "hmac-sha256", "secret": "...",
/// "header", "encoding": "hex" | "base64", "prefix"}` (the last three for `hmac-sha256`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacySignatureIn {
    pub scheme: String,
    pub secret: String,
    pub header: Option<String>,
    pub encoding: Option<String>,
    pub prefix: Option<String>,
}

/// An entry as shown: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegacySignatureOut<'a> {
    pub scheme: &'static str,
    pub header: &'a str,
    pub encoding: &'static str,
    pub prefix: &'a str,
}

/// What is wrong with an entry: the field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub msg: String,
}

fn problem(field: &'static str, msg: impl Into<String>) -> Problem {
    Problem {
        field,
        msg: msg.into(),
    }
}

/// Checks one entry and makes the stored form.
pub fn parse(input: &LegacySignatureIn) -> Result<LegacySignature, Problem> {
    if input.secret.is_empty() || input.secret.len() > SECRET_BYTES_MAX {
        return Err(problem(
            "secret",
            format!("must be 1 to {SECRET_BYTES_MAX} bytes"),
        ));
    }
    let secret = input.secret.as_bytes().to_vec();
    let generic_only = |field: &'static str, given: bool| match given {
        true => Err(problem(
            field,
            format!(
                "only for the hmac-sha256 scheme; {} sets its own",
                input.scheme
            ),
        )),
        false => Ok(()),
    };
    match input.scheme.as_str() {
        "github" | "stripe" => {
            generic_only("header", input.header.is_some())?;
            generic_only("encoding", input.encoding.is_some())?;
            generic_only("prefix", input.prefix.is_some())?;
            Ok(match input.scheme.as_str() {
                "github" => LegacySignature::GitHub { secret },
                _ => LegacySignature::Stripe { secret },
            })
        }
        "hmac-sha256" => {
            let header = input
                .header
                .clone()
                .ok_or_else(|| problem("header", "required for the hmac-sha256 scheme"))?;
            if let Some(why) = super::header_name_problem(&header) {
                return Err(problem("header", why));
            }
            let base64 = match input.encoding.as_deref() {
                None | Some("hex") => false,
                Some("base64") => true,
                Some(other) => {
                    return Err(problem(
                        "encoding",
                        format!("{other:?} is not hex or base64"),
                    ))
                }
            };
            let prefix = input.prefix.clone().unwrap_or_default();
            if prefix.len() > PREFIX_BYTES_MAX
                || !prefix.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            {
                return Err(problem(
                    "prefix",
                    format!("at most {PREFIX_BYTES_MAX} printable ASCII characters"),
                ));
            }
            Ok(LegacySignature::Hmac {
                secret,
                header,
                base64,
                prefix,
            })
        }
        other => Err(problem(
            "scheme",
            format!("{other:?} is not github, stripe or hmac-sha256"),
        )),
    }
}

/// The header an entry sets.
pub fn header_of(sig: &LegacySignature) -> &str {
    match sig {
        LegacySignature::GitHub { .. } => GITHUB_HEADER,
        LegacySignature::Stripe { .. } => STRIPE_HEADER,
        LegacySignature::Hmac { header, .. } => header,
    }
}

/// Checks a whole list: its length, each entry, and that no two entries set the same header.
/// Problems are located by the entry's index (`"1.header"`), or at the list (`""`).
pub fn parse_all(
    inputs: &[LegacySignatureIn],
) -> Result<Vec<LegacySignature>, Vec<(String, String)>> {
    if inputs.len() > LEGACY_SIGNATURES_MAX {
        return Err(vec![(
            String::new(),
            format!("at most {LEGACY_SIGNATURES_MAX} entries"),
        )]);
    }
    let mut out: Vec<LegacySignature> = Vec::with_capacity(inputs.len());
    let mut problems = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        match parse(input) {
            Ok(sig) => {
                let name = header_of(&sig);
                if out.iter().any(|o| header_of(o).eq_ignore_ascii_case(name)) {
                    problems.push((format!("{i}.header"), format!("{name} is set twice")));
                }
                out.push(sig);
            }
            Err(p) => problems.push((format!("{i}.{}", p.field), p.msg)),
        }
    }
    match problems.is_empty() {
        true => Ok(out),
        false => Err(problems),
    }
}

/// A custom header of the endpoint that one of its legacy signatures sets too, if any.
pub fn clash<'a>(
    sigs: &[LegacySignature],
    mut custom_headers: impl Iterator<Item = &'a String>,
) -> Option<String> {
    custom_headers
        .find(|h| sigs.iter().any(|s| header_of(s).eq_ignore_ascii_case(h)))
        .map(|h| format!("{h} is set by a legacy signature and a custom header"))
}

/// How an entry is shown.
pub fn describe(sig: &LegacySignature) -> LegacySignatureOut<'_> {
    let (scheme, encoding, prefix) = match sig {
        LegacySignature::GitHub { .. } => ("github", "hex", "sha256="),
        LegacySignature::Stripe { .. } => ("stripe", "hex", "t=<timestamp>,v1="),
        LegacySignature::Hmac { base64, prefix, .. } => (
            "hmac-sha256",
            if *base64 { "base64" } else { "hex" },
            prefix.as_str(),
        ),
    };
    LegacySignatureOut {
        scheme,
        header: header_of(sig),
        encoding,
        prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(scheme: &str) -> LegacySignatureIn {
        LegacySignatureIn {
            scheme: scheme.into(),
            secret: "s3cret".into(),
            ..Default::default()
        }
    }

    #[test]
    fn entries_are_checked_field_by_field() {
        assert_eq!(
            parse(&input("github")),
            Ok(LegacySignature::GitHub {
                secret: b"s3cret".to_vec()
            })
        );
        let field = |i: LegacySignatureIn| parse(&i).unwrap_err().field;
        assert_eq!(field(input("gitlab")), "scheme");
        assert_eq!(
            field(LegacySignatureIn {
                secret: String::new(),
                ..input("github")
            }),
            "secret"
        );
        assert_eq!(
            field(LegacySignatureIn {
                prefix: Some("x".into()),
                ..input("stripe")
            }),
            "prefix"
        );
        assert_eq!(field(input("hmac-sha256")), "header");
        let generic = |header: &str, encoding: Option<&str>, prefix: Option<&str>| {
            parse(&LegacySignatureIn {
                header: Some(header.into()),
                encoding: encoding.map(Into::into),
                prefix: prefix.map(Into::into),
                ..input("hmac-sha256")
            })
        };
        assert_eq!(
            generic("X-Shopify-Hmac-Sha256", Some("base64"), None),
            Ok(LegacySignature::Hmac {
                secret: b"s3cret".to_vec(),
                header: "X-Shopify-Hmac-Sha256".into(),
                base64: true,
                prefix: String::new(),
            })
        );
        assert_eq!(
            generic("Webhook-Signature", None, None).unwrap_err().field,
            "header"
        );
        assert_eq!(generic("X Sig", None, None).unwrap_err().field, "header");
        assert_eq!(
            generic("X-Sig", Some("b64"), None).unwrap_err().field,
            "encoding"
        );
        assert_eq!(
            generic("X-Sig", None, Some("a\r\nb")).unwrap_err().field,
            "prefix"
        );
    }

    #[test]
    fn a_list_may_not_set_a_header_twice() {
        let twice = parse_all(&[input("stripe"), input("stripe")]).unwrap_err();
        assert_eq!(twice[0].0, "1.header");
        let many = vec![input("github"); LEGACY_SIGNATURES_MAX + 1];
        assert_eq!(parse_all(&many).unwrap_err()[0].0, "");
        let both = parse_all(&[input("github"), input("stripe")]).unwrap();
        assert_eq!(both.len(), 2);
        let custom = [String::from("x-hub-signature-256")];
        assert!(clash(&both, custom.iter()).is_some());
        assert!(clash(&both, [String::from("x-other")].iter()).is_none());
    }
}
