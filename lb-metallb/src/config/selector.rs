//! Label selectors as written in the objects (`metav1.LabelSelector`), checked and turned into
//! [`lb_alloc::LabelSelector`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;
use lb_alloc::{LabelSelector, SelectorOperator, SelectorRequirement};

use super::ConfigError;

/// Where a list of selectors sits, for error messages.
pub(crate) struct At<'a> {
    pub(crate) kind: &'a str,
    pub(crate) name: &'a str,
    pub(crate) field: &'a str,
}

/// Converts one selector. Fails with a reason on an unknown operator or a malformed
/// expression.
pub(crate) fn convert(s: &K8sSelector) -> Result<LabelSelector, String> {
    let mut expressions = Vec::new();
    for e in s.match_expressions.iter().flatten() {
        let operator = match e.operator.as_str() {
            "In" => SelectorOperator::In,
            "NotIn" => SelectorOperator::NotIn,
            "Exists" => SelectorOperator::Exists,
            "DoesNotExist" => SelectorOperator::DoesNotExist,
            other => {
                return Err(format!(
                    "operator {other:?} on {:?} is not one of In, NotIn, Exists, DoesNotExist",
                    e.key
                ));
            }
        };
        expressions.push(SelectorRequirement {
            key: e.key.clone(),
            operator,
            values: e.values.clone().unwrap_or_default(),
        });
    }
    let selector = LabelSelector {
        match_labels: s.match_labels.clone().unwrap_or_default(),
        match_expressions: expressions,
    };
    selector.validate().map_err(|e| e.to_string())?;
    Ok(selector)
}

/// Converts a list, reporting malformed and repeated selectors (same meaning, whatever the
/// order of their terms) at `field[i]`.
pub(crate) fn convert_list(
    at: &At<'_>,
    list: &[K8sSelector],
    errors: &mut Vec<ConfigError>,
) -> Vec<LabelSelector> {
    let mut out: Vec<LabelSelector> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        let field = format!("{}[{i}]", at.field);
        match convert(s) {
            Ok(sel) => {
                if out.iter().any(|o| o.to_string() == sel.to_string()) {
                    errors.push(ConfigError::new(
                        at.kind,
                        at.name,
                        field,
                        format!("duplicate selector {:?}", sel.to_string()),
                    ));
                } else {
                    out.push(sel);
                }
            }
            Err(reason) => errors.push(ConfigError::new(at.kind, at.name, field, reason)),
        }
    }
    out
}

/// True when `selectors` is empty (everything) or one of them matches.
pub(crate) fn any_matches(selectors: &[LabelSelector], labels: &lb_alloc::Labels) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// Reports entries of `list` that appear more than once, at `field[i]` of the repeat.
pub(crate) fn duplicates(at: &At<'_>, list: &[String], errors: &mut Vec<ConfigError>) {
    for (i, item) in list.iter().enumerate() {
        if list.iter().take(i).any(|x| x == item) {
            errors.push(ConfigError::new(
                at.kind,
                at.name,
                format!("{}[{i}]", at.field),
                format!("{item:?} is listed more than once"),
            ));
        }
    }
}
