//! Management state: applications, endpoints and event types, with their id and uid indexes,
//! and pages of the audit trail.

use sled::{
    transaction::{ConflictableTransactionError as Abort, TransactionalTree},
    Transactional,
};

use super::{
    be, get, key, page, put, read_be, AuditRecord, EndpointRecord, EventTypeRecord, Page, State,
};
use crate::{
    codec::{decode_value, encode_value},
    error::{Error, Result},
    state::AppRecord,
};

fn conflict<T>(what: String) -> Result<T, Abort<Error>> {
    Err(Abort::Abort(Error::Conflict { what }))
}

/// Points `index[k]` at `target`, refusing if it points elsewhere already.
fn claim(index: &TransactionalTree, k: &[u8], target: u64, what: &str) -> Result<(), Abort<Error>> {
    match index.get(k)? {
        Some(v) if read_be(&v, 0) != target => conflict(what.to_owned()),
        _ => {
            index.insert(k, &be(target))?;
            Ok(())
        }
    }
}

impl State {
    /// Creates or replaces an app. [`Error::Conflict`] if its id or uid belongs to another app.
    pub fn put_app(&self, app: &AppRecord) -> Result<()> {
        let value = encode_value(app)?;
        let old: Option<AppRecord> = self.app(app.key)?;
        (&self.apps, &self.app_by_id, &self.app_by_uid).transaction(|(apps, by_id, by_uid)| {
            claim(
                by_id,
                app.id.as_bytes(),
                app.key,
                &format!("app id {}", app.id),
            )?;
            if let Some(uid) = &app.uid {
                claim(by_uid, uid.as_bytes(), app.key, &format!("app uid {uid}"))?;
            }
            if let Some(old_uid) = old.as_ref().and_then(|o| o.uid.as_ref()) {
                if app.uid.as_ref() != Some(old_uid) {
                    by_uid.remove(old_uid.as_bytes())?;
                }
            }
            apps.insert(&be(app.key), value.clone())?;
            Ok(())
        })?;
        self.app_cache.invalidate();
        Ok(())
    }

    /// The app with internal key `k`.
    pub fn app(&self, k: u64) -> Result<Option<AppRecord>> {
        get(&self.apps, &be(k), "app")
    }

    /// The app whose public id or uid is `s`.
    pub fn app_by_id_or_uid(&self, s: &str) -> Result<Option<AppRecord>> {
        let generation = match self.app_cache.get(s) {
            Ok(app) => return Ok(Some(app)),
            Err(generation) => generation,
        };
        let k = match self.app_by_id.get(s)? {
            Some(k) => k,
            None => match self.app_by_uid.get(s)? {
                Some(k) => k,
                None => return Ok(None),
            },
        };
        let app = self.app(read_be(&k, 0))?;
        if let Some(app) = &app {
            self.app_cache.fill(generation, s, app);
        }
        Ok(app)
    }

    /// Apps in key order (oldest first, or newest first when `descending`), strictly after the
    /// app with key `after` in that order.
    pub fn list_apps(
        &self,
        after: Option<u64>,
        limit: usize,
        descending: bool,
    ) -> Result<Page<AppRecord>> {
        let iter: Box<dyn Iterator<Item = _>> = match (after, descending) {
            (None, false) => Box::new(self.apps.iter()),
            (None, true) => Box::new(self.apps.iter().rev()),
            (Some(a), false) => Box::new(self.apps.range(be(a.saturating_add(1))..)),
            (Some(a), true) => Box::new(self.apps.range(..be(a)).rev()),
        };
        page(iter, limit, "app")
    }

    /// Deletes an app, its endpoints and their indexes. Returns whether it existed.
    pub fn delete_app(&self, k: u64) -> Result<bool> {
        let Some(app) = self.app(k)? else {
            return Ok(false);
        };
        for ep in self.app_endpoints(k)? {
            self.delete_endpoint(ep.key)?;
        }
        self.revoke_app_portal_tokens(k)?;
        (&self.apps, &self.app_by_id, &self.app_by_uid).transaction(|(apps, by_id, by_uid)| {
            apps.remove(&be(k))?;
            by_id.remove(app.id.as_bytes())?;
            if let Some(uid) = &app.uid {
                by_uid.remove(uid.as_bytes())?;
            }
            Ok(())
        })?;
        self.app_cache.invalidate();
        Ok(true)
    }

    /// Creates or replaces an endpoint. [`Error::Conflict`] if its id, or its uid within the
    /// app, belongs to another endpoint.
    pub fn put_endpoint(&self, ep: &EndpointRecord) -> Result<()> {
        let value = encode_value(ep)?;
        let old = self.endpoint(ep.key)?;
        let uid_key = |uid: &str| key(&[&be(ep.app_key), uid.as_bytes()]);
        (
            &self.endpoints,
            &self.ep_by_id,
            &self.ep_by_uid,
            &self.app_eps,
        )
            .transaction(|(eps, by_id, by_uid, app_eps)| {
                claim(
                    by_id,
                    ep.id.as_bytes(),
                    ep.key,
                    &format!("endpoint id {}", ep.id),
                )?;
                if let Some(uid) = &ep.uid {
                    claim(
                        by_uid,
                        &uid_key(uid),
                        ep.key,
                        &format!("endpoint uid {uid}"),
                    )?;
                }
                if let Some(old_uid) = old.as_ref().and_then(|o| o.uid.as_ref()) {
                    if ep.uid.as_ref() != Some(old_uid) {
                        by_uid.remove(uid_key(old_uid))?;
                    }
                }
                app_eps.insert(key(&[&be(ep.app_key), &be(ep.key)]), &[])?;
                eps.insert(&be(ep.key), value.clone())?;
                Ok(())
            })?;
        Ok(())
    }

    /// The endpoint with internal key `k`.
    pub fn endpoint(&self, k: u64) -> Result<Option<EndpointRecord>> {
        get(&self.endpoints, &be(k), "endpoint")
    }

    /// The endpoint of app `app` whose public id or uid is `s`.
    pub fn endpoint_by_id_or_uid(&self, app: u64, s: &str) -> Result<Option<EndpointRecord>> {
        let by_id = match self.ep_by_id.get(s)? {
            Some(k) => self.endpoint(read_be(&k, 0))?,
            None => None,
        };
        let found = match by_id {
            Some(ep) => Some(ep),
            None => match self.ep_by_uid.get(key(&[&be(app), s.as_bytes()]))? {
                Some(k) => self.endpoint(read_be(&k, 0))?,
                None => None,
            },
        };
        Ok(found.filter(|ep| ep.app_key == app))
    }

    /// An app's endpoints in key order (or reversed), strictly after endpoint key `after`.
    pub fn list_endpoints(
        &self,
        app: u64,
        after: Option<u64>,
        limit: usize,
        descending: bool,
    ) -> Result<Page<EndpointRecord>> {
        let lo = key(&[&be(app), &be(0)]);
        let hi = key(&[&be(app), &be(u64::MAX)]);
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            match (after, descending) {
                (None, false) => Box::new(self.app_eps.range(lo..=hi)),
                (None, true) => Box::new(self.app_eps.range(lo..=hi).rev()),
                (Some(a), false) => Box::new(
                    self.app_eps
                        .range(key(&[&be(app), &be(a.saturating_add(1))])..=hi),
                ),
                (Some(a), true) => Box::new(self.app_eps.range(lo..key(&[&be(app), &be(a)])).rev()),
            };
        let mut items = Vec::new();
        let mut done = true;
        for kv in iter {
            let (k, _) = kv?;
            if items.len() == limit {
                done = false;
                break;
            }
            if let Some(ep) = self.endpoint(read_be(&k, 8))? {
                items.push(ep);
            }
        }
        let last_key = items.last().map(|e: &EndpointRecord| be(e.key).to_vec());
        Ok(Page {
            items,
            last_key,
            done,
        })
    }

    /// All of an app's endpoints (for fan-out).
    pub fn app_endpoints(&self, app: u64) -> Result<Vec<EndpointRecord>> {
        Ok(self.list_endpoints(app, None, usize::MAX, false)?.items)
    }

    /// Deletes an endpoint and its indexes. Returns whether it existed.
    pub fn delete_endpoint(&self, k: u64) -> Result<bool> {
        let Some(ep) = self.endpoint(k)? else {
            return Ok(false);
        };
        (
            &self.endpoints,
            &self.ep_by_id,
            &self.ep_by_uid,
            &self.app_eps,
        )
            .transaction(|(eps, by_id, by_uid, app_eps)| {
                eps.remove(&be(k))?;
                by_id.remove(ep.id.as_bytes())?;
                if let Some(uid) = &ep.uid {
                    by_uid.remove(key(&[&be(ep.app_key), uid.as_bytes()]))?;
                }
                app_eps.remove(key(&[&be(ep.app_key), &be(k)]))?;
                Ok(())
            })?;
        Ok(true)
    }

    /// Creates or replaces an event type.
    pub fn put_event_type(&self, et: &EventTypeRecord) -> Result<()> {
        put(&self.event_types, et.name.as_bytes(), et)
    }

    /// The event type called `name`.
    pub fn event_type(&self, name: &str) -> Result<Option<EventTypeRecord>> {
        get(&self.event_types, name.as_bytes(), "event type")
    }

    /// Event types by name, after `after`, leaving out archived ones unless asked.
    pub fn list_event_types(
        &self,
        after: Option<&str>,
        limit: usize,
        include_archived: bool,
    ) -> Result<Page<EventTypeRecord>> {
        let start = after.map_or(vec![], |a| key(&[a.as_bytes(), &[0]]));
        let mut items = Vec::new();
        let mut done = true;
        for kv in self.event_types.range(start..) {
            let (k, v) = kv?;
            let et: EventTypeRecord = decode_value(&v, &|| {
                format!("event type {}", String::from_utf8_lossy(&k))
            })?;
            if et.archived && !include_archived {
                continue;
            }
            if items.len() == limit {
                done = false;
                break;
            }
            items.push(et);
        }
        let last_key = items.last().map(|e| e.name.as_bytes().to_vec());
        Ok(Page {
            items,
            last_key,
            done,
        })
    }

    /// Deletes an event type for good. Returns whether it existed.
    pub fn delete_event_type(&self, name: &str) -> Result<bool> {
        Ok(self.event_types.remove(name.as_bytes())?.is_some())
    }
}

/// Audit records with their index keys, and whether more follow.
pub type AuditPage = (Vec<(Vec<u8>, AuditRecord)>, bool);

impl State {
    /// Up to `limit` audit records with their keys, strictly after the key `from` in the scan
    /// direction (newest first when `descending`), and whether more follow.
    pub fn audit_page(
        &self,
        from: Option<&[u8]>,
        limit: usize,
        descending: bool,
    ) -> Result<AuditPage> {
        use std::ops::Bound::{Excluded, Unbounded};
        let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            match (from, descending) {
                (None, true) => Box::new(self.audit.iter().rev()),
                (None, false) => Box::new(self.audit.iter()),
                (Some(k), true) => Box::new(self.audit.range(..k.to_vec()).rev()),
                (Some(k), false) => Box::new(self.audit.range((Excluded(k.to_vec()), Unbounded))),
            };
        let mut items = Vec::new();
        for kv in iter {
            let (k, v) = kv?;
            if items.len() == limit {
                return Ok((items, true));
            }
            let rec = decode_value(&v, &|| format!("audit record at key {}", super::hex(&k)))?;
            items.push((k.to_vec(), rec));
        }
        Ok((items, false))
    }

    /// How many endpoints app `app` has, counting no further than `cap`.
    pub fn count_app_endpoints(&self, app: u64, cap: usize) -> Result<usize> {
        let lo = key(&[&be(app), &be(0)]);
        let hi = key(&[&be(app), &be(u64::MAX)]);
        let mut n = 0;
        for kv in self.app_eps.range(lo..=hi).take(cap) {
            kv?;
            n += 1;
        }
        Ok(n)
    }
}
