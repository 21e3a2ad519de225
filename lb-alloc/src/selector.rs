//! A Kubernetes label selector (`matchLabels` plus `matchExpressions`), as used by
//! `serviceAllocation.namespaceSelectors` and `serviceSelectors`.
//!
//! An empty selector matches everything, like `metav1.LabelSelectorAsSelector` does.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Labels of an object: key to value.
pub type Labels = BTreeMap<String, String>;

/// The operator of a `matchExpressions` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label is present with one of the values.
    In,
    /// The label is absent, or present with none of the values.
    NotIn,
    /// The label is present, with any value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SelectorRequirement {
    /// Label key.
    pub key: String,
    /// How the label is tested.
    pub operator: SelectorOperator,
    /// Values for `In` / `NotIn`; must be empty for `Exists` / `DoesNotExist`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A label selector. All of its terms must hold for it to match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Exact key/value pairs.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// A selector from exact key/value pairs.
    pub fn from_labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// True when `labels` satisfy every term.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    SelectorOperator::In => value.is_some_and(|v| r.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }

    /// Checks the selector is well formed, as Kubernetes would.
    ///
    /// Fails when a key is empty, `In`/`NotIn` has no values, `Exists`/`DoesNotExist` has
    /// values, or an expression or value is repeated.
    pub fn validate(&self) -> Result<(), SelectorError> {
        if self.match_labels.keys().any(String::is_empty) {
            return Err(SelectorError::EmptyLabelKey);
        }
        let mut seen = Vec::new();
        for r in &self.match_expressions {
            if r.key.is_empty() {
                return Err(SelectorError::EmptyExpressionKey);
            }
            match r.operator {
                SelectorOperator::In | SelectorOperator::NotIn if r.values.is_empty() => {
                    return Err(SelectorError::NoValues {
                        operator: r.operator,
                        key: r.key.clone(),
                    });
                }
                SelectorOperator::Exists | SelectorOperator::DoesNotExist
                    if !r.values.is_empty() =>
                {
                    return Err(SelectorError::UnexpectedValues {
                        operator: r.operator,
                        key: r.key.clone(),
                    });
                }
                _ => {}
            }
            let mut values = r.values.clone();
            values.sort();
            if values.windows(2).any(|w| w.first() == w.get(1)) {
                return Err(SelectorError::DuplicateValue { key: r.key.clone() });
            }
            let canonical = (r.key.clone(), r.operator, values);
            if seen.contains(&canonical) {
                return Err(SelectorError::DuplicateExpression { key: r.key.clone() });
            }
            seen.push(canonical);
        }
        Ok(())
    }
}

/// Why a label selector is malformed, as Kubernetes would refuse it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// `matchLabels` has an empty key.
    #[error("matchLabels has an empty key")]
    EmptyLabelKey,
    /// An expression has an empty key.
    #[error("matchExpressions has an empty key")]
    EmptyExpressionKey,
    /// `In` or `NotIn` without values.
    #[error("{operator:?} on {key:?} needs at least one value")]
    NoValues {
        /// The operator.
        operator: SelectorOperator,
        /// The label key.
        key: String,
    },
    /// `Exists` or `DoesNotExist` with values.
    #[error("{operator:?} on {key:?} takes no values")]
    UnexpectedValues {
        /// The operator.
        operator: SelectorOperator,
        /// The label key.
        key: String,
    },
    /// A value repeated within one expression.
    #[error("duplicate value in the expression on {key:?}")]
    DuplicateValue {
        /// The label key.
        key: String,
    },
    /// The same expression twice.
    #[error("duplicate expression on {key:?}")]
    DuplicateExpression {
        /// The label key.
        key: String,
    },
}

impl fmt::Display for LabelSelector {
    /// Canonical text: match labels then expressions (values sorted), in sorted order; two
    /// selectors with the same meaning print the same, which is how duplicates are found.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut terms: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut exprs: Vec<String> = self
            .match_expressions
            .iter()
            .map(|r| {
                let mut v = r.values.clone();
                v.sort();
                match r.operator {
                    SelectorOperator::In => format!("{} in ({})", r.key, v.join(",")),
                    SelectorOperator::NotIn => format!("{} notin ({})", r.key, v.join(",")),
                    SelectorOperator::Exists => r.key.clone(),
                    SelectorOperator::DoesNotExist => format!("!{}", r.key),
                }
            })
            .collect();
        exprs.sort();
        terms.extend(exprs);
        f.write_str(&terms.join(","))
    }
}

/// Renders a label map the way Kubernetes' `labels.Set.String()` does (`k=v,k2=v2`, keys
/// sorted). MetalLB uses this text of a Service's `spec.selector` as its sharing backend key.
pub fn render_labels(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, operator: SelectorOperator, values: &[&str]) -> SelectorRequirement {
        SelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::default().matches(&Labels::new()));
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = LabelSelector::from_labels([("team", "web"), ("env", "prod")]);
        assert!(s.matches(&labels(&[("team", "web"), ("env", "prod"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("team", "web")])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let l = labels(&[("env", "prod")]);
        let sel = |r| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![r],
        };
        assert!(sel(expr("env", SelectorOperator::In, &["prod", "dev"])).matches(&l));
        assert!(!sel(expr("env", SelectorOperator::NotIn, &["prod"])).matches(&l));
        assert!(sel(expr("tier", SelectorOperator::NotIn, &["x"])).matches(&l));
        assert!(sel(expr("env", SelectorOperator::Exists, &[])).matches(&l));
        assert!(sel(expr("tier", SelectorOperator::DoesNotExist, &[])).matches(&l));
        assert!(!sel(expr("tier", SelectorOperator::In, &["x"])).matches(&l));
    }

    #[test]
    fn malformed_selectors_are_rejected_with_a_reason() {
        let sel = |r| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![r],
        };
        assert!(
            sel(expr("env", SelectorOperator::In, &[]))
                .validate()
                .is_err()
        );
        assert!(
            sel(expr("env", SelectorOperator::Exists, &["x"]))
                .validate()
                .is_err()
        );
        assert!(
            sel(expr("env", SelectorOperator::In, &["a", "a"]))
                .validate()
                .is_err()
        );
        assert!(
            sel(expr("", SelectorOperator::Exists, &[]))
                .validate()
                .is_err()
        );
        assert!(
            sel(expr("env", SelectorOperator::In, &["a"]))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn canonical_text_ignores_value_order() {
        let a = LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![expr("env", SelectorOperator::In, &["b", "a"])],
        };
        let b = LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![expr("env", SelectorOperator::In, &["a", "b"])],
        };
        assert_eq!(a.to_string(), b.to_string());
    }

    #[test]
    fn rendered_labels_are_sorted_like_kubernetes() {
        assert_eq!(render_labels(&labels(&[("b", "2"), ("a", "1")])), "a=1,b=2");
        assert_eq!(render_labels(&Labels::new()), "");
    }
}
