//! App portal tokens: stored by the SHA-256 of the token, with two indexes, one by app (to
//! revoke every token of an app at once) and one by expiry (to prune them).
//!
//! A token is refused once its record says it has expired, even before the prune removes it;
//! revoking one removes it. Expiring an app's tokens later (Svix's `expire-all` with a delay)
//! only lowers their `expires_ms`.

use super::{be, get, key, put, read_be, PortalTokenRecord, State};
use crate::error::Result;

/// Tokens [`State::expire_portal_tokens`] changes in one call at most (an app has few live ones;
/// this bounds a call on an app that was given millions).
const EXPIRE_MAX: usize = 100_000;

impl State {
    /// Stores a new token's record under its hash.
    pub fn put_portal_token(&self, hash: &[u8; 32], rec: &PortalTokenRecord) -> Result<()> {
        put(&self.portal_tokens, hash, rec)?;
        self.portal_by_app
            .insert(key(&[&be(rec.app_key), hash]), &[])?;
        self.portal_expiry
            .insert(key(&[&be(rec.expires_ms), hash]), &[])?;
        Ok(())
    }

    /// The record of the token whose hash is `hash`, unless it is unknown, revoked or expired
    /// by `now_ms`.
    pub fn portal_token(&self, hash: &[u8; 32], now_ms: u64) -> Result<Option<PortalTokenRecord>> {
        let rec: Option<PortalTokenRecord> = get(&self.portal_tokens, hash, "portal token")?;
        Ok(rec.filter(|r| r.expires_ms > now_ms))
    }

    /// Revokes one token; false if it was not there.
    pub fn revoke_portal_token(&self, hash: &[u8; 32]) -> Result<bool> {
        let Some(rec) = get::<PortalTokenRecord>(&self.portal_tokens, hash, "portal token")? else {
            return Ok(false);
        };
        self.portal_tokens.remove(hash)?;
        self.portal_by_app.remove(key(&[&be(rec.app_key), hash]))?;
        self.portal_expiry
            .remove(key(&[&be(rec.expires_ms), hash]))?;
        Ok(true)
    }

    /// Makes the tokens of app `app_key` expire at `at_ms` at the latest (at once when it is
    /// not later than now): all of them, or only those of the given sessions. Returns how many
    /// changed.
    pub fn expire_portal_tokens(
        &self,
        app_key: u64,
        at_ms: u64,
        sessions: Option<&[String]>,
    ) -> Result<usize> {
        let mut n = 0;
        for kv in self.portal_by_app.scan_prefix(be(app_key)).take(EXPIRE_MAX) {
            let (k, _) = kv?;
            let Ok(hash) = <[u8; 32]>::try_from(&k[8..]) else {
                continue;
            };
            let Some(mut rec) =
                get::<PortalTokenRecord>(&self.portal_tokens, &hash, "portal token")?
            else {
                self.portal_by_app.remove(&k)?;
                continue;
            };
            let chosen = sessions.is_none_or(|s| {
                rec.session_id
                    .as_ref()
                    .is_some_and(|id| s.iter().any(|x| x == id))
            });
            if !chosen || rec.expires_ms <= at_ms {
                continue;
            }
            self.portal_expiry
                .remove(key(&[&be(rec.expires_ms), &hash]))?;
            rec.expires_ms = at_ms;
            self.put_portal_token(&hash, &rec)?;
            n += 1;
        }
        Ok(n)
    }

    /// Counts the tokens of app `app_key`, stopping at `limit`. Reaching it, drops those that
    /// expired by `now_ms` (the prune may not have come by yet) and counts again, so that only
    /// live tokens fill the limit. Reads keys only below the limit.
    pub fn count_portal_tokens(&self, app_key: u64, now_ms: u64, limit: usize) -> Result<usize> {
        let count = || -> Result<usize> {
            let mut n = 0;
            for k in self
                .portal_by_app
                .scan_prefix(be(app_key))
                .keys()
                .take(limit)
            {
                k?;
                n += 1;
            }
            Ok(n)
        };
        let n = count()?;
        if n < limit {
            return Ok(n);
        }
        let keys: Vec<_> = self
            .portal_by_app
            .scan_prefix(be(app_key))
            .keys()
            .take(EXPIRE_MAX)
            .collect::<std::result::Result<_, _>>()?;
        for k in keys {
            let Ok(hash) = <[u8; 32]>::try_from(&k[8..]) else {
                self.portal_by_app.remove(&k)?;
                continue;
            };
            match get::<PortalTokenRecord>(&self.portal_tokens, &hash, "portal token")? {
                Some(rec) if rec.expires_ms > now_ms => {}
                Some(_) => {
                    self.revoke_portal_token(&hash)?;
                }
                None => {
                    self.portal_by_app.remove(&k)?;
                }
            }
        }
        count()
    }

    /// Removes every token of app `app_key` (the app is being deleted).
    pub fn revoke_app_portal_tokens(&self, app_key: u64) -> Result<usize> {
        let mut n = 0;
        let keys: Vec<_> = self
            .portal_by_app
            .scan_prefix(be(app_key))
            .keys()
            .collect::<std::result::Result<_, _>>()?;
        for k in keys {
            if let Ok(hash) = <[u8; 32]>::try_from(&k[8..]) {
                n += usize::from(self.revoke_portal_token(&hash)?);
            }
            self.portal_by_app.remove(&k)?;
        }
        Ok(n)
    }

    /// Drops the tokens that expired by `now_ms`; returns how many.
    pub fn purge_portal_tokens(&self, now_ms: u64) -> Result<usize> {
        let mut n = 0;
        for kv in self.portal_expiry.range(..be(now_ms).to_vec()) {
            let (k, _) = kv?;
            self.portal_expiry.remove(&k)?;
            let Ok(hash) = <[u8; 32]>::try_from(&k[8..]) else {
                continue;
            };
            let rec: Option<PortalTokenRecord> = get(&self.portal_tokens, &hash, "portal token")?;
            // Only the record this entry was made for: a token expired later by `expire-all`
            // has a second entry, at its new time.
            if rec.is_some_and(|r| r.expires_ms == read_be(&k, 0)) {
                self.revoke_portal_token(&hash)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(app_key: u64, expires_ms: u64, session: Option<&str>) -> PortalTokenRecord {
        PortalTokenRecord {
            app_key,
            app_id: format!("app_{app_key}"),
            created_ms: 0,
            expires_ms,
            capabilities: 0xFF,
            session_id: session.map(String::from),
        }
    }

    #[test]
    fn counting_stops_at_the_limit_and_there_drops_the_expired() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path(), 1 << 20).unwrap();
        for i in 0..4u8 {
            // Two of app 1's four have expired by 2,000; app 2's one is not counted.
            let expires = if i < 2 { 1_000 } else { 5_000 };
            state
                .put_portal_token(&[i; 32], &rec(1, expires, None))
                .unwrap();
        }
        state
            .put_portal_token(&[9; 32], &rec(2, 5_000, None))
            .unwrap();
        assert_eq!(
            state.count_portal_tokens(1, 2_000, 10).unwrap(),
            4,
            "below the limit"
        );
        assert_eq!(
            state.count_portal_tokens(1, 2_000, 3).unwrap(),
            2,
            "at it: live ones"
        );
        assert!(
            state.portal_token(&[0; 32], 0).unwrap().is_none(),
            "dropped"
        );
        assert!(state.portal_token(&[2; 32], 0).unwrap().is_some(), "kept");
        assert_eq!(state.count_portal_tokens(1, 2_000, 2).unwrap(), 2);
        assert_eq!(state.count_portal_tokens(2, 2_000, 1).unwrap(), 1);
    }

    #[test]
    fn tokens_expire_are_revoked_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path(), 1 << 20).unwrap();
        let (a, b, c, d) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);
        state
            .put_portal_token(&a, &rec(1, 1_000, Some("s1")))
            .unwrap();
        state
            .put_portal_token(&b, &rec(1, 5_000, Some("s2")))
            .unwrap();
        state.put_portal_token(&c, &rec(2, 5_000, None)).unwrap();
        state.put_portal_token(&d, &rec(1, 9_000, None)).unwrap();
        assert_eq!(state.portal_token(&a, 999).unwrap().unwrap().app_key, 1);
        assert!(state.portal_token(&a, 1_000).unwrap().is_none(), "expired");
        assert!(
            state.portal_token(&[9; 32], 0).unwrap().is_none(),
            "unknown"
        );

        // Expire app 1's session s2 at 2,000: d (no session) and app 2's token keep theirs.
        let only_s2 = ["s2".to_string()];
        assert_eq!(
            state
                .expire_portal_tokens(1, 2_000, Some(&only_s2))
                .unwrap(),
            1
        );
        assert!(state.portal_token(&b, 1_999).unwrap().is_some());
        assert!(state.portal_token(&b, 2_000).unwrap().is_none());
        assert!(state.portal_token(&d, 8_000).unwrap().is_some());

        assert!(state.revoke_portal_token(&d).unwrap());
        assert!(!state.revoke_portal_token(&d).unwrap());
        assert!(state.portal_token(&d, 0).unwrap().is_none());

        // At 2,500 a and b have expired (b by its new time); c has not.
        assert_eq!(state.purge_portal_tokens(2_500).unwrap(), 2);
        assert_eq!(state.portal_tokens.len(), 1);
        assert_eq!(state.purge_portal_tokens(2_500).unwrap(), 0);
        assert_eq!(state.portal_expiry.len(), 1, "b's old entry went too");

        assert_eq!(state.revoke_app_portal_tokens(2).unwrap(), 1);
        assert!(state.portal_token(&c, 0).unwrap().is_none());
        assert!(state.portal_tokens.is_empty());
        assert!(state.portal_by_app.is_empty());
        assert!(state.portal_expiry.is_empty());
    }
}
