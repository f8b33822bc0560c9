//! Cyclr's paging: inbound (the `CYCLR_PAGE_*` merge fields, when to fetch another page, the pages combined)
//! and outbound (the caller's records split into requests).

use portcullis_core::{Error, ErrorCode};
use serde_json::{Map, Value, json};

use crate::definition::{OutboundPaging, Paging, PagingKind};

/// The value at a dotted path.
pub(super) fn at_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').filter(|p| !p.is_empty()).try_fold(value, |v, part| v.get(part))
}

/// Inbound paging progress of one call; kept across an auth retry so only the failed page is fetched again.
#[derive(Debug, Default)]
pub(super) struct Pages {
    /// The next URL or continuation token, from the last page.
    pub(super) next: Option<String>,
    /// Named continuation tokens (`CYCLR_PAGE_TOKEN_{NAME}`), from the last page.
    named: Map<String, Value>,
    /// Every page fetched so far.
    pub(super) fetched: Vec<Value>,
}

impl Pages {
    /// Cyclr's paging merge fields for the next page.
    pub(super) fn vars(&self, paging: Option<&Paging>, fields: &mut Map<String, Value>) {
        let Some(paging) = paging else { return };
        let number = self.fetched.len() as u64 + 1;
        let next = self.next.clone().unwrap_or_default();
        fields.insert("CYCLR_PAGE_NUMBER".to_owned(), json!(number.to_string()));
        fields.insert("CYCLR_PAGE_OFFSET".to_owned(), json!(((number - 1) * paging.page_size).to_string()));
        fields.insert("CYCLR_PAGE_SIZE".to_owned(), json!(paging.page_size.to_string()));
        fields.insert("CYCLR_PAGE_TOKEN".to_owned(), json!(next));
        fields.insert("CYCLR_PAGE_NEXT_URL".to_owned(), json!(next));
        for name in paging.tokens.keys() {
            let value = self.named.get(name).cloned().unwrap_or_else(|| json!(""));
            fields.insert(format!("CYCLR_PAGE_TOKEN_{name}"), value);
        }
    }

    /// Records a fetched page; `true` when another page should be fetched.
    pub(super) fn advance(&mut self, paging: Option<&Paging>, page: &Value) -> bool {
        self.fetched.push(page.clone());
        let Some(paging) = paging else { return false };
        if self.fetched.len() >= paging.max_pages {
            return false;
        }
        match paging.kind {
            PagingKind::PageNumber | PagingKind::Offset => {
                let count = paging
                    .items_path
                    .as_deref()
                    .and_then(|p| at_path(page, p))
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                count as u64 >= paging.page_size && count > 0
            }
            PagingKind::NextUrl | PagingKind::Token => {
                let text = |path: &str| {
                    at_path(page, path).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
                };
                self.next = paging.next_path.as_deref().and_then(text);
                self.named = paging
                    .tokens
                    .iter()
                    .map(|(name, path)| (name.clone(), json!(text(path).unwrap_or_default())))
                    .collect();
                self.next.is_some()
            }
        }
    }

    /// Every page's items in one array (each whole page when no `items_path` is set).
    pub(super) fn combined(&self, paging: &Paging) -> Value {
        let mut items = Vec::new();
        for page in &self.fetched {
            match paging.items_path.as_deref().and_then(|p| at_path(page, p)) {
                Some(Value::Array(list)) => items.extend(list.iter().cloned()),
                Some(other) => items.push(other.clone()),
                None => items.push(page.clone()),
            }
        }
        Value::Array(items)
    }
}

/// The bodies of an outbound-paged call: `body` once per run of `page_size` records of the array at the
/// location, the rest of the body unchanged (one body when the array is short or empty).
///
/// # Errors
/// `entityInvalid` when the location does not hold an array.
pub(super) fn outbound_bodies(body: &Value, paging: &OutboundPaging) -> Result<Vec<Value>, Error> {
    let path = paging.path();
    let not_an_array = || {
        Error::new(ErrorCode::EntityInvalid).with_message(format!(
            "body: outbound paging needs an array of records at {:?}.",
            if paging.location.is_empty() { "the top level" } else { paging.location.as_str() }
        ))
    };
    let records =
        path.iter().try_fold(body, |v, part| v.get(part)).and_then(Value::as_array).ok_or_else(not_an_array)?;
    let size = usize::try_from(paging.page_size).unwrap_or(usize::MAX).max(1);
    if records.len() <= size {
        return Ok(vec![body.clone()]);
    }
    Ok(records
        .chunks(size)
        .map(|chunk| {
            let mut part = body.clone();
            // The path led to the array above, so it leads to the same slot in the copy (the copy itself when
            // the path is empty).
            if let Some(slot) = path.iter().try_fold(&mut part, |v, key| v.get_mut(*key)) {
                *slot = Value::Array(chunk.to_vec());
            }
            part
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(location: &str, page_size: u64) -> OutboundPaging {
        OutboundPaging { location: location.to_owned(), page_size }
    }

    #[test]
    fn bodies_split_at_the_location_and_keep_the_rest() {
        let body = json!({"data": {"records": [1, 2, 3], "list": "a"}});
        let parts = outbound_bodies(&body, &paging("data.[records]", 2)).expect("split");
        assert_eq!(
            parts,
            [json!({"data": {"records": [1, 2], "list": "a"}}), json!({"data": {"records": [3], "list": "a"}})]
        );
        assert_eq!(outbound_bodies(&body, &paging("data.records", 3)).expect("one"), std::slice::from_ref(&body));
        assert_eq!(outbound_bodies(&json!([1, 2, 3]), &paging("", 2)).expect("top"), [json!([1, 2]), json!([3])]);
        assert_eq!(
            outbound_bodies(&json!({"data": {"records": []}}), &paging("data.[records]", 2)).expect("empty").len(),
            1
        );
        let err = outbound_bodies(&json!({"data": {}}), &paging("data.[records]", 2)).expect_err("missing");
        assert_eq!(err.code(), ErrorCode::EntityInvalid);
    }
}
