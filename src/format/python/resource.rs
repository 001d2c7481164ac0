//! Python lines repeat their resource on every line (half of each line, the same on every line of
//! a rank file). It is parsed once per distinct text per thread and shared after that; the scanner
//! recognises a known resource by its text alone ([`known_prefix`]), without reading it again.

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
/// Distinct text lengths [`known_prefix`] tries (ranks' resources differ in a few digits).
const LENGTHS: usize = 8;

#[derive(Default)]
struct Cache {
    /// By JSON text. FxHash: the text is hashed for every line, and it is the user's own file,
    /// not an attacker's, so SipHash's protection is not worth its cost here.
    by_text: FxHashMap<Arc<str>, Arc<SharedResource>>,
    /// The lengths of the first texts seen.
    lengths: Vec<usize>,
    /// The last resource handed out: the next line of a rank file has it again.
    last: Option<(Arc<str>, Arc<SharedResource>)>,
}

thread_local! {
    static RESOURCES: RefCell<Cache> = RefCell::default();
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
        if let Some((text, found)) = cache.by_text.get_key_value(json) {
            let found = found.clone();
            cache.last = Some((text.clone(), found.clone()));
            return Ok(found);
        }
        let r: ResourceIn = serde_json::from_str(json).map_err(|e| format!("resource: {e}"))?;
        let out = Arc::new(SharedResource {
            resource: Resource {
                attributes: r.attributes.map(Keep::into_attributes).unwrap_or_default(),
                ..Default::default()
            },
            schema_url: r.schema_url.unwrap_or_default(),
        });
        if cache.by_text.len() >= CACHE {
            *cache = Cache::default();
        }
        // Only texts of one whole object (as every line's resource is) may be found by prefix.
        let text: Arc<str> = json.into();
        if json.ends_with('}')
            && !cache.lengths.contains(&json.len())
            && cache.lengths.len() < LENGTHS
        {
            cache.lengths.push(json.len());
        }
        cache.by_text.insert(text.clone(), out.clone());
        cache.last = Some((text, out.clone()));
        Ok(out)
    })
}

/// The known resource that `rest` (a line from a resource value on) starts with, and the length
/// of its text. A known text is one whole JSON object (it parsed), so when the line goes on with
/// it, that is exactly the value: where it ends need not be searched.
pub(super) fn known_prefix(rest: &str) -> Option<(usize, Arc<SharedResource>)> {
    RESOURCES.with_borrow_mut(|cache| {
        if let Some((text, found)) = &cache.last {
            if rest.starts_with(&**text) {
                return Some((text.len(), found.clone()));
            }
        }
        let hit = cache.lengths.iter().find_map(|&n| {
            let text = rest.get(..n).filter(|t| t.ends_with('}'))?;
            let (text, found) = cache.by_text.get_key_value(text)?;
            Some((text.clone(), found.clone()))
        })?;
        let out = (hit.0.len(), hit.1.clone());
        cache.last = Some(hit);
        Some(out)
    })
}
