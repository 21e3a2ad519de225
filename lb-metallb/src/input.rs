//! Reading Kubernetes objects from multi-document YAML (files or stdin), the way `kubectl apply
//! -f` would see them: `metallb.io` objects, a legacy MetalLB ConfigMap, Namespaces, Nodes,
//! Services, EndpointSlices and Secrets. `v1/List` documents (`kubectl get -o yaml`) are
//! expanded.
//!
//! [`load`] is the one loader: `plan`, `validate` and the file-source speaker all read their
//! texts through it, so a legacy ConfigMap means the same to each of them.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::{
    BFDProfile, BGPAdvertisement, Community, IPAddressPool, L2Advertisement, v1beta1, v1beta2,
};

/// The namespace MetalLB's objects live in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "metallb-system";

/// Everything read from the input, by kind, in input order.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// `IPAddressPool`s.
    pub pools: Vec<IPAddressPool>,
    /// `L2Advertisement`s.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// `BGPAdvertisement`s.
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    /// `Community` alias lists.
    pub communities: Vec<Community>,
    /// `BFDProfile`s.
    pub bfd_profiles: Vec<BFDProfile>,
    /// `BGPPeer`s; v1beta1 objects are converted to v1beta2 on reading.
    pub peers: Vec<v1beta2::BGPPeer>,
    /// Secrets (for `BGPPeer.spec.passwordSecret`).
    pub secrets: Vec<Secret>,
    /// Namespaces (their labels resolve `namespaceSelectors`).
    pub namespaces: Vec<Namespace>,
    /// Nodes (labels, conditions).
    pub nodes: Vec<Node>,
    /// Services.
    pub services: Vec<Service>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Legacy MetalLB ConfigMaps (a `config` key), kept as read.
    pub legacy_config_maps: Vec<ConfigMap>,
    /// Things read but not used, or used in a deprecated form.
    pub warnings: Vec<String>,
}

/// Why a set of texts could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A document could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A legacy ConfigMap could not be converted.
    #[error(transparent)]
    Legacy(#[from] crate::legacy::LegacyError),
    /// One object is listed twice: which copy holds would be a guess.
    #[error("{kind} {name} is listed twice")]
    Duplicate {
        /// `Service` or `Node`.
        kind: &'static str,
        /// `namespace/name`, or the name of a Node.
        name: String,
    },
}

/// Loads every object of `sources` (each a name, such as a file name or `-` for stdin, and its
/// multi-document YAML text), in order, and converts every legacy MetalLB ConfigMap among
/// them to the `metallb.io` objects it stands for (with a warning naming it).
///
/// Fails on the first document that cannot be read ([`Objects::add_yaml`]) or the first
/// legacy ConfigMap that cannot be converted.
pub fn load<'a>(
    sources: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Objects, LoadError> {
    let mut loader = Loader::default();
    for (name, text) in sources {
        loader.add(name, text)?;
    }
    loader.finish()
}

/// [`load`] one text at a time, for callers that read each text just before it is loaded
/// (so a bad first file is reported before a missing second one).
#[derive(Debug, Clone, Default)]
pub struct Loader {
    objects: Objects,
}

impl Loader {
    /// Adds every object of one multi-document YAML text.
    ///
    /// Fails like [`Objects::add_yaml`].
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), LoadError> {
        Ok(self.objects.add_yaml(name, text)?)
    }

    /// The objects, with every legacy MetalLB ConfigMap converted.
    ///
    /// Fails on the first legacy ConfigMap that cannot be converted, and when a Service (same
    /// namespace and name) or a Node is listed twice.
    pub fn finish(mut self) -> Result<Objects, LoadError> {
        crate::legacy::expand(&mut self.objects)?;
        let mut services = std::collections::HashSet::new();
        for s in &self.objects.services {
            let key = crate::service::key_of(s);
            if !services.insert(key.clone()) {
                return Err(LoadError::Duplicate {
                    kind: "Service",
                    name: key.to_string(),
                });
            }
        }
        let mut nodes = std::collections::HashSet::new();
        for n in &self.objects.nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            if !nodes.insert(name.clone()) {
                return Err(LoadError::Duplicate { kind: "Node", name });
            }
        }
        Ok(self.objects)
    }
}

/// Why one document is not an object this crate can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Not a mapping.
    #[error("not a Kubernetes object (expected a mapping)")]
    NotAMapping,
    /// No `apiVersion` or no `kind`.
    #[error("object without apiVersion or kind")]
    NoKind,
    /// A known kind whose fields have the wrong shape.
    #[error("{object}: {reason}")]
    Fields {
        /// `Kind/name`.
        object: String,
        /// serde's reason.
        reason: String,
    },
}

/// A document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: document {document}: {reason}")]
pub struct InputError {
    /// File name, or `-` for stdin.
    pub source_name: String,
    /// 1-based document number within the source.
    pub document: usize,
    /// What is wrong.
    pub reason: String,
}

impl Objects {
    /// Adds every object of one multi-document YAML text.
    ///
    /// Fails on YAML syntax errors, on a document that is not a mapping with `apiVersion` and
    /// `kind`, and on a known kind whose fields have the wrong shape (the error names the kind,
    /// the object and serde's reason). Unknown kinds are skipped with a warning.
    pub fn add_yaml(&mut self, source_name: &str, text: &str) -> Result<(), InputError> {
        // The parser's default budget (1,024 documents, 250,000 nodes) is sized for one
        // configuration; a cluster dump with 10,000 Services and their EndpointSlices needs
        // more. The anchor and alias limits that stop expansion attacks stay as they are.
        let options = serde_saphyr::options! {
            budget: serde_saphyr::budget! {
                max_documents: 1_000_000,
                max_nodes: 50_000_000,
                max_events: 200_000_000,
            },
        };
        // One document at a time: the JSON tree of a whole cluster dump is many times the
        // size of the typed objects, and the allocator keeps such a peak long after it is
        // freed. A syntax error is reported with its line counted from the top of the text
        // and the number of its document.
        let mut count = 0usize;
        let mut lines_before = 0u64;
        for part in split_documents(text) {
            let documents: Vec<Value> =
                serde_saphyr::from_multiple_with_options(part, options.clone()).map_err(|e| {
                    InputError {
                        source_name: source_name.into(),
                        document: count + 1,
                        reason: syntax_error(&e, lines_before),
                    }
                })?;
            for doc in documents {
                count += 1;
                self.add_value(doc).map_err(|reason| InputError {
                    source_name: source_name.into(),
                    document: count,
                    reason: reason.to_string(),
                })?;
            }
            lines_before += part.bytes().filter(|b| *b == b'\n').count() as u64;
        }
        Ok(())
    }

    /// Adds one object given as a JSON value (a `v1/List` adds its items).
    ///
    /// Fails like [`Objects::add_yaml`], without the source.
    pub fn add_value(&mut self, doc: Value) -> Result<(), DocumentError> {
        if doc.is_null() {
            return Ok(());
        }
        let Some(map) = doc.as_object() else {
            return Err(DocumentError::NotAMapping);
        };
        let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind.is_empty() || api_version.is_empty() {
            return Err(DocumentError::NoKind);
        }
        let name = map
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let what = bounded(format!("{kind}/{name}"));
        let (api_version, kind) = (api_version.to_string(), kind.to_string());
        let mut doc = doc;
        // What a cluster dump carries that nothing here reads, and that would otherwise be
        // most of the memory the objects take: the server-side apply bookkeeping and the
        // `kubectl apply` copy of the object.
        if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
            if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                a.remove(LAST_APPLIED);
            }
        }
        if api_version.starts_with("metallb.io/")
            && kind != "IPAddressPool"
            && let Some(map) = doc.as_object_mut()
        {
            // Only IPAddressPool requires a spec; `kind: L2Advertisement` alone means "every
            // pool, every node".
            map.entry("spec")
                .or_insert_with(|| Value::Object(Default::default()));
        }
        match (api_version.as_str(), kind.as_str()) {
            (_, "List") => {
                let items = doc.get("items").and_then(Value::as_array).cloned();
                for item in items.unwrap_or_default() {
                    self.add_value(item)?;
                }
            }
            ("metallb.io/v1beta1", "IPAddressPool") => self.pools.push(typed(&what, doc)?),
            ("metallb.io/v1beta1", "L2Advertisement") => {
                self.l2_advertisements.push(typed(&what, doc)?);
            }
            ("metallb.io/v1beta1", "BGPAdvertisement") => {
                self.bgp_advertisements.push(typed(&what, doc)?);
            }
            ("metallb.io/v1beta1", "Community") => self.communities.push(typed(&what, doc)?),
            ("metallb.io/v1beta1", "BFDProfile") => self.bfd_profiles.push(typed(&what, doc)?),
            ("metallb.io/v1beta2", "BGPPeer") => self.peers.push(typed(&what, doc)?),
            ("metallb.io/v1beta1", "BGPPeer") => {
                let old: v1beta1::BGPPeer = typed(&what, doc)?;
                self.warnings.push(format!(
                    "{what}: metallb.io/v1beta1 BGPPeer is deprecated; read as v1beta2"
                ));
                self.peers.push(v1beta2::BGPPeer::from(&old));
            }
            (
                "metallb.io/v1beta1",
                "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState",
            ) => {
                // Written by the daemons; nothing to plan from.
            }
            ("v1", "Namespace") => self.namespaces.push(typed(&what, doc)?),
            ("v1", "Node") => self.nodes.push(typed(&what, doc)?),
            ("v1", "Service") => self.services.push(typed(&what, doc)?),
            ("v1", "Secret") => self.secrets.push(typed(&what, doc)?),
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                self.endpoint_slices.push(typed(&what, doc)?);
            }
            ("v1", "ConfigMap") => {
                let cm: ConfigMap = typed(&what, doc)?;
                if cm.data.as_ref().is_some_and(|d| d.contains_key("config")) {
                    self.legacy_config_maps.push(cm);
                } else {
                    self.warnings
                        .push(format!("{what}: ConfigMap without a `config` key, ignored"));
                }
            }
            _ => self
                .warnings
                .push(format!("{what}: {api_version} {kind} is not used, ignored")),
        }
        Ok(())
    }
}

/// The reason for a YAML syntax error found in a part of a text that starts after
/// `lines_before` lines: the parser's message with the line counted from the top of the text.
fn syntax_error(e: &serde_saphyr::Error, lines_before: u64) -> String {
    let shown = e.to_string();
    let first = shown.lines().next().unwrap_or_default();
    // The first line reads "error: line L column C: message".
    let message = first
        .splitn(3, ": ")
        .nth(2)
        .filter(|_| first.starts_with("error: line "))
        .unwrap_or(first);
    bounded(match e.location() {
        Some(at) => format!(
            "invalid YAML at line {} column {}: {message}",
            lines_before + at.line(),
            at.column()
        ),
        None => format!("invalid YAML: {message}"),
    })
}

/// Splits a multi-document YAML text before each document marker (`---` at the start of a
/// line, alone or followed by a space). YAML forbids such a line inside any scalar, so every
/// part parses on its own to the documents it holds. A text with directives (`%YAML`, whose
/// scope ends at the next marker) stays whole.
fn split_documents(text: &str) -> Vec<&str> {
    let is_marker = |line: &str| {
        line.strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
    };
    let mut starts: Vec<usize> = Vec::new();
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        if line.starts_with('%') {
            return vec![text];
        }
        if offset > 0 && is_marker(line.trim_end_matches('\n')) {
            starts.push(offset);
        }
        offset += line.len();
    }
    let mut parts = Vec::with_capacity(starts.len() + 1);
    let mut from = 0usize;
    for at in starts {
        parts.push(text.get(from..at).unwrap_or(""));
        from = at;
    }
    parts.push(text.get(from..).unwrap_or(""));
    parts
}

/// The annotation where `kubectl apply` keeps a copy of the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Longest reason an error quotes from the input; the rest is counted, not copied (a huge
/// scalar must not make a huge message).
const REASON_MAX: usize = 300;

/// `reason`, cut to [`REASON_MAX`] bytes at a character boundary, saying how much was cut.
pub(crate) fn bounded(reason: String) -> String {
    if reason.len() <= REASON_MAX {
        return reason;
    }
    let mut end = REASON_MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} more bytes)",
        reason.get(..end).unwrap_or_default(),
        reason.len() - end
    )
}

/// Reads `doc` as `T`; the error names the object and the path of the field at fault
/// (`spec.addresses[1]`).
fn typed<T: DeserializeOwned>(what: &str, doc: Value) -> Result<T, DocumentError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        DocumentError::Fields {
            object: what.to_string(),
            reason: bounded(if path == "." {
                inner
            } else {
                format!("{path}: {inner}")
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_only_at_markers() {
        let text = "a: 1\n---\nb: |\n  ---\n  x\n--- {c: 3}\n----\n---\r\nd: 4\n";
        assert_eq!(
            split_documents(text),
            [
                "a: 1\n",
                "---\nb: |\n  ---\n  x\n",
                "--- {c: 3}\n----\n",
                "---\r\nd: 4\n"
            ]
        );
        assert_eq!(
            split_documents("%YAML 1.2\n---\na: 1\n---\nb: 2\n").len(),
            1
        );
        assert_eq!(split_documents(""), [""]);
    }

    #[test]
    fn split_parsing_reads_what_whole_parsing_reads() {
        let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n\
                    apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n  annotations:\n    \
                    note: |\n      ---\n      not a marker\n";
        let mut objects = Objects::default();
        assert!(objects.add_yaml("t", text).is_ok());
        let names: Vec<Option<String>> = objects
            .namespaces
            .iter()
            .map(|n| n.metadata.name.clone())
            .collect();
        assert_eq!(names, [Some("a".to_string()), Some("b".to_string())]);
    }

    #[test]
    fn a_syntax_error_in_a_later_document_keeps_its_line_number() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
                    apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n---\nkind: [\n";
        let e = Objects::default().add_yaml("t", text).err();
        let e = e.map(|e| (e.document, e.reason));
        assert_eq!(
            e,
            Some((
                3,
                "invalid YAML at line 9 column 7: unclosed bracket '['".to_string()
            ))
        );
    }

    #[test]
    fn managed_fields_and_the_last_applied_copy_are_not_kept() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations:\n    \
                    kubectl.kubernetes.io/last-applied-configuration: '{\"a\": 1}'\n    \
                    metallb.io/address-pool: p\n  managedFields:\n  - manager: kubectl\n    \
                    fieldsV1: {f:spec: {}}\nspec: {type: LoadBalancer}\n";
        let mut objects = Objects::default();
        assert!(objects.add_yaml("t", text).is_ok());
        let meta = objects.services.first().map(|s| s.metadata.clone());
        let meta = meta.unwrap_or_default();
        assert_eq!(meta.managed_fields, None);
        let keys: Vec<String> = meta.annotations.unwrap_or_default().into_keys().collect();
        assert_eq!(keys, ["metallb.io/address-pool"]);
    }

    #[test]
    fn a_bad_object_is_numbered_across_parts() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\nkind: Node\n";
        let e = Objects::default().add_yaml("t", text).err();
        // The numbering of a whole-text parse.
        let whole: Vec<Value> =
            serde_saphyr::from_multiple_with_options(text, serde_saphyr::options! {})
                .unwrap_or_default();
        let bad = whole
            .iter()
            .position(|d| d.get("kind").is_some_and(|k| k == "Node"));
        assert!(bad.is_some());
        assert_eq!(e.map(|e| e.document), bad.map(|i| i + 1));
    }

    #[test]
    fn a_service_or_node_listed_twice_is_refused_naming_it() {
        let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {}\n";
        let other_ns =
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: other}\nspec: {}\n";
        assert!(load([("a", service), ("b", other_ns)]).is_ok());
        let e = load([("a", service), ("b", service)]).err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("Service default/web is listed twice")
        );
        let node = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n";
        let e = load([("a", node), ("b", node)]).err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("Node n1 is listed twice")
        );
    }

    #[test]
    fn a_type_error_names_the_object_and_the_field_path() {
        let text = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n\
                    metadata: {name: p, namespace: metallb-system}\n\
                    spec: {addresses: [192.0.2.0/28, {a: 1}]}\n";
        let e = Objects::default().add_yaml("t", text).err();
        let reason = e.map(|e| e.reason).unwrap_or_default();
        assert!(
            reason.starts_with("IPAddressPool/p: spec.addresses[1]: invalid type: map"),
            "{reason}"
        );
    }

    #[test]
    fn error_messages_quote_at_most_a_bounded_part_of_the_input() {
        let huge = "x".repeat(100_000);
        let text = format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n\
             metadata: {{name: {huge}, namespace: metallb-system}}\nspec: {{addresses: 7}}\n"
        );
        let e = Objects::default().add_yaml("t", &text).err();
        let reason = e.map(|e| e.reason).unwrap_or_default();
        assert!(reason.len() < 400, "{} bytes", reason.len());
        assert!(reason.contains("more bytes)"), "{reason}");
        // A cut never splits a character.
        let wide = bounded("é".repeat(1_000));
        assert!(
            wide.len() < 400 && wide.contains("… (1700 more bytes)"),
            "{wide}"
        );
    }
}
