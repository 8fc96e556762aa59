//! `GET /api/v1/audit` (admin): the audit trail of management writes, newest first.
//!
//! Each entry is one write through the API: which token made it, the action
//! (`endpoint.create`, `event_type.archive`, ...), its target (the id or name written) and
//! when. Pages are Svix-shaped (`{data, iterator, prevIterator, done}`); an entry's `id`, and
//! so the iterator, is the hex of its index key (time, then a counter).

use serde::Serialize;
use storage::state::AuditRecord;

use super::{
    error::ApiResult,
    json_response,
    list::{self, ListParams},
    Ctx,
};
use crate::time::format_rfc3339;

/// Bytes of an audit key: `ts_ms` and a counter, both u64 big-endian.
const KEY_BYTES: usize = 16;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditOut<'a> {
    id: String,
    token_name: &'a str,
    action: &'a str,
    target: &'a str,
    timestamp: String,
}

pub fn list(cx: &Ctx<'_>) -> ApiResult {
    let params = ListParams::parse(&cx.query, true)?;
    let from = match &params.iterator {
        Some(it) => Some(
            hex::decode(it)
                .ok()
                .filter(|k| k.len() == KEY_BYTES)
                .ok_or_else(ListParams::bad_iterator)?,
        ),
        None => None,
    };
    let (items, more) =
        cx.svc
            .store
            .state()
            .audit_page(from.as_deref(), params.limit, params.scan_descending())?;
    let out: Vec<AuditOut<'_>> = items
        .iter()
        .map(|(key, rec): &(Vec<u8>, AuditRecord)| AuditOut {
            id: hex::encode(key),
            token_name: &rec.actor,
            action: &rec.action,
            target: &rec.target,
            timestamp: format_rfc3339(rec.ts_ms),
        })
        .collect();
    json_response(200, &list::respond(&params, out, more, |a| a.id.clone()))
}
