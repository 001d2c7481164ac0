//! Python lines repeat their resource on every line (half of each line, the same on every line of
//! a rank file). It is parsed once per distinct text per thread and shared after that.

use super::read::{AllAttributes, Keep};
use opentelemetry_proto::tonic::resource::v1::Resource;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::cell::RefCell;
use std::sync::Arc;

/// A python line's resource and its schema URL, parsed once per distinct text and shared by the
/// lines that carry it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedResource {
    pub resource: Resource,
    pub schema_url: String,
}

/// Distinct resources remembered per thread; a merged file of this many ranks still hits.
const CACHE: usize = 4096;

thread_local! {
    /// By JSON text. FxHash: the text is hashed for every line, and it is the user's own file,
    /// not an attacker's, so SipHash's protection is not worth its cost here.
    static RESOURCES: RefCell<FxHashMap<String, Arc<SharedResource>>> = RefCell::default();
}

#[derive(Deserialize)]
struct ResourceIn {
    #[serde(default)]
    attributes: Option<AllAttributes>,
    #[serde(default)]
    schema_url: Option<String>,
}

/// The resource whose JSON text is `json`, parsed only the first time this text is seen.
pub(super) fn shared(json: &str) -> Result<Arc<SharedResource>, String> {
    RESOURCES.with_borrow_mut(|cache| {
        if let Some(found) = cache.get(json) {
            return Ok(found.clone());
        }
        let r: ResourceIn = serde_json::from_str(json).map_err(|e| format!("resource: {e}"))?;
        let out = Arc::new(SharedResource {
            resource: Resource {
                attributes: r.attributes.map(Keep::into_attributes).unwrap_or_default(),
                ..Default::default()
            },
            schema_url: r.schema_url.unwrap_or_default(),
        });
        if cache.len() >= CACHE {
            cache.clear();
        }
        cache.insert(json.to_string(), out.clone());
        Ok(out)
    })
}
