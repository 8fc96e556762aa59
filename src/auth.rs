//! Who is asking, and may they: bearer tokens, scopes, per-token ingest rate limits.
//!
//! Tokens are configured by their SHA-256 only. A request's token is hashed and compared with
//! every configured hash in constant time (no early exit on the first differing byte, no
//! lookup keyed by the secret). Rate limits are token buckets shared by all shards.
//!
//! The table is rebuilt when the config is reloaded ([`Auth::reloaded`]); a token whose rate
//! limit did not change keeps its bucket, so a reload neither refills nor empties it.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::config::{RateLimit, Scope, TokenConfig};

/// What a request may do, once its token is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading anything.
    Read,
    /// Creating messages in an app (the app's id and uid are checked against the token's list).
    Ingest,
    /// Everything else.
    Admin,
}

/// One configured token at run time.
#[derive(Debug)]
pub struct Token {
    pub name: String,
    sha256: [u8; 32],
    scopes: Vec<Scope>,
    apps: Option<Vec<String>>,
    /// Shared with the table that replaces this one on reload, while the limit is the same.
    bucket: Option<Arc<Mutex<Bucket>>>,
    /// The configured limit the bucket was made for.
    rate_limit: Option<RateLimit>,
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_ms: u64,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now_ms: u64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last_ms: now_ms,
        }
    }

    /// Takes one token, or says how many seconds until one is there.
    pub fn take(&mut self, now_ms: u64) -> Result<(), u64> {
        self.take_n(now_ms, 1)
    }

    /// Takes `n` tokens at once, or says how many seconds until they are there (`u64::MAX`:
    /// never, `n` is more than the burst).
    pub fn take_n(&mut self, now_ms: u64, n: u32) -> Result<(), u64> {
        let n = f64::from(n);
        if n > self.burst {
            return Err(u64::MAX);
        }
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last_ms = self.last_ms.max(now_ms);
        if self.tokens >= n {
            self.tokens -= n;
            Ok(())
        } else {
            Err(((n - self.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one we do not know: 401.
    Unauthenticated(&'static str),
    /// A known token without the right scope or app: 403.
    Forbidden(String),
}

/// The configured tokens.
#[derive(Debug, Default)]
pub struct Auth {
    tokens: Vec<Token>,
}

impl Auth {
    /// Builds the run-time table from the config.
    pub fn new(tokens: &[TokenConfig], now_ms: u64) -> Self {
        Self::default().reloaded(tokens, now_ms)
    }

    /// The table for `tokens` after a config reload. A token with the same name, hash and rate
    /// limit as one of this table keeps that one's bucket (the two tables share it while
    /// requests that began before the reload finish); any other gets a full one.
    pub fn reloaded(&self, tokens: &[TokenConfig], now_ms: u64) -> Self {
        Self {
            tokens: tokens
                .iter()
                .map(|t| {
                    let kept = self
                        .tokens
                        .iter()
                        .find(|old| {
                            old.name == t.name
                                && old.sha256 == t.sha256
                                && old.rate_limit == t.rate_limit
                        })
                        .and_then(|old| old.bucket.clone());
                    let bucket = kept.or_else(|| {
                        t.rate_limit.as_ref().map(|r| {
                            Arc::new(Mutex::new(Bucket::new(
                                r.per_second as f64,
                                r.burst as f64,
                                now_ms,
                            )))
                        })
                    });
                    Token {
                        name: t.name.clone(),
                        sha256: t.sha256,
                        scopes: t.scopes.clone(),
                        apps: t.apps.clone(),
                        bucket,
                        rate_limit: t.rate_limit,
                    }
                })
                .collect(),
        }
    }

    /// Adds a token known only by its hash (the one created at first start).
    pub fn add_admin_hash(&mut self, name: &str, sha256: [u8; 32]) {
        self.tokens.push(Token {
            name: name.into(),
            sha256,
            scopes: vec![Scope::Admin],
            apps: None,
            bucket: None,
            rate_limit: None,
        });
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when no token is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Finds the token in an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<&Token, Denied> {
        let header = header.ok_or(Denied::Unauthenticated("missing Authorization header"))?;
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .ok_or(Denied::Unauthenticated(
                "Authorization must be 'Bearer <token>'",
            ))?;
        let digest: [u8; 32] = Sha256::digest(token.trim_ascii()).into();
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(&t.sha256, &digest) {
                found = Some(t);
            }
        }
        found.ok_or(Denied::Unauthenticated("unknown token"))
    }

    /// Authenticates and checks that the token may do `need` (in app `app`, given by the ids
    /// it is known by, for ingest).
    pub fn authorize(
        &self,
        header: Option<&[u8]>,
        need: Need,
        app: &[&str],
    ) -> Result<&Token, Denied> {
        let t = self.authenticate(header)?;
        let has = |s: Scope| t.scopes.contains(&s);
        let ok = has(Scope::Admin)
            || match need {
                Need::Read => has(Scope::Read),
                Need::Ingest => {
                    has(Scope::Ingest)
                        && t.apps
                            .as_ref()
                            .is_none_or(|apps| apps.iter().any(|a| app.contains(&a.as_str())))
                }
                Need::Admin => false,
            };
        if ok {
            Ok(t)
        } else {
            Err(Denied::Forbidden(format!(
                "token {:?} may not {}",
                t.name,
                match need {
                    Need::Read => "read",
                    Need::Ingest => "send messages to this app",
                    Need::Admin => "change configuration",
                }
            )))
        }
    }
}

impl Token {
    /// The identity of a request made with an app portal token (the API's portal module): a
    /// name for the audit trail, no scopes (the portal checks its own capabilities), no rate
    /// limit.
    pub fn portal(name: String) -> Self {
        Self {
            name,
            sha256: [0; 32],
            scopes: Vec::new(),
            apps: None,
            bucket: None,
            rate_limit: None,
        }
    }

    /// Takes one unit of this token's ingest rate; `Err(seconds)` when over it.
    pub fn take(&self, now_ms: u64) -> Result<(), u64> {
        self.take_n(now_ms, 1)
    }

    /// Takes `n` requests' worth of its rate at once (a batch counts its messages); see
    /// [`Bucket::take_n`].
    pub fn take_n(&self, now_ms: u64, n: u32) -> Result<(), u64> {
        match &self.bucket {
            Some(b) => b
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take_n(now_ms, n),
            None => Ok(()),
        }
    }
}

/// Compares without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{tokens::token_sha256_hex, RateLimit};

    fn cfg(name: &str, token: &str, scopes: Vec<Scope>, apps: Option<Vec<&str>>) -> TokenConfig {
        let mut sha = [0u8; 32];
        hex::decode_to_slice(token_sha256_hex(token), &mut sha).unwrap();
        TokenConfig {
            name: name.into(),
            sha256: sha,
            scopes,
            apps: apps.map(|a| a.into_iter().map(String::from).collect()),
            rate_limit: None,
        }
    }

    #[test]
    fn scopes_and_apps_decide() {
        let auth = Auth::new(
            &[
                cfg("ops", "t-admin", vec![Scope::Admin], None),
                cfg("shop", "t-ingest", vec![Scope::Ingest], Some(vec!["shop"])),
                cfg("viewer", "t-read", vec![Scope::Read], None),
            ],
            0,
        );
        let h = |t: &str| format!("Bearer {t}").into_bytes();
        assert!(auth
            .authorize(Some(&h("t-admin")), Need::Admin, &[])
            .is_ok());
        assert!(auth
            .authorize(Some(&h("t-ingest")), Need::Ingest, &["app_1", "shop"])
            .is_ok());
        assert!(matches!(
            auth.authorize(Some(&h("t-ingest")), Need::Ingest, &["other"]),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            auth.authorize(Some(&h("t-ingest")), Need::Read, &[]),
            Err(Denied::Forbidden(_))
        ));
        assert!(auth.authorize(Some(&h("t-read")), Need::Read, &[]).is_ok());
        assert!(matches!(
            auth.authorize(Some(&h("t-read")), Need::Admin, &[]),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            auth.authorize(Some(&h("nope")), Need::Read, &[]),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.authorize(None, Need::Read, &[]),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(matches!(
            auth.authorize(Some(b"Basic abc"), Need::Read, &[]),
            Err(Denied::Unauthenticated(_))
        ));
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let mut b = Bucket::new(10.0, 3.0, 0);
        assert!((0..3).all(|_| b.take(0).is_ok()));
        assert_eq!(b.take(0), Err(1));
        assert!(b.take(100).is_ok(), "one token after 100 ms at 10/s");
        assert!(b.take(100).is_err());
        let auth = Auth::new(
            &[TokenConfig {
                rate_limit: Some(RateLimit {
                    per_second: 1,
                    burst: 1,
                }),
                ..cfg("x", "t", vec![Scope::Ingest], None)
            }],
            0,
        );
        let t = auth.authenticate(Some(b"Bearer t")).unwrap();
        assert!(t.take(0).is_ok());
        assert_eq!(t.take(10), Err(1));
    }

    #[test]
    fn reload_keeps_the_bucket_of_an_unchanged_limit_only() {
        let limited = |name: &str, token: &str, per_second: u32| TokenConfig {
            rate_limit: Some(RateLimit {
                per_second,
                burst: 1,
            }),
            ..cfg(name, token, vec![Scope::Ingest], None)
        };
        let old = Auth::new(&[limited("a", "ta", 1), limited("b", "tb", 1)], 0);
        for t in ["ta", "tb"] {
            let header = format!("Bearer {t}").into_bytes();
            assert!(old.authenticate(Some(&header)).unwrap().take(0).is_ok());
        }
        // "a" is unchanged, "b" gets a new limit, "c" is new, and "tb"'s old entry is gone.
        let new = old.reloaded(
            &[
                limited("a", "ta", 1),
                limited("b", "tb", 2),
                cfg("c", "tc", vec![Scope::Read], None),
            ],
            0,
        );
        let take = |auth: &Auth, t: &str| {
            let header = format!("Bearer {t}").into_bytes();
            auth.authenticate(Some(&header)).unwrap().take(0)
        };
        assert_eq!(
            take(&new, "ta"),
            Err(1),
            "a's bucket was carried over, empty"
        );
        assert!(take(&new, "tb").is_ok(), "b's new limit starts full");
        assert!(take(&new, "tc").is_ok(), "no limit");
        assert_eq!(take(&old, "ta"), Err(1), "the two tables share a's bucket");
        let gone = Auth::new(&[], 0).reloaded(&[], 0);
        assert!(gone.authenticate(Some(b"Bearer ta")).is_err());
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
