//! The validator's error: which object, which field, why, and whether waiting can fix it.

use std::fmt;

use serde::Serialize;

/// One configuration problem.
///
/// Printed as `Kind/name: field: reason`, e.g.
/// `IPAddressPool/first-pool: spec.addresses[1]: 192.0.2.5-192.0.2.1: start is after end`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ConfigError {
    /// Kind of the offending object (`IPAddressPool`, `BGPPeer`, ...).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Field path inside it (`spec.addresses[1]`); empty when the object as a whole is wrong.
    pub field: String,
    /// What is wrong, with the offending value.
    pub reason: String,
    /// True when the object is fine but refers to something that does not exist yet (a Secret,
    /// a BFD profile, a community alias): creating it fixes the error. A webhook lets such
    /// objects in; the daemons keep the previous configuration until it is resolved.
    pub transient: bool,
}

impl ConfigError {
    /// A permanent error.
    pub fn new(
        kind: &str,
        name: &str,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
            field: field.into(),
            reason: reason.into(),
            transient: false,
        }
    }

    /// A transient error (a missing referenced object).
    pub fn transient(
        kind: &str,
        name: &str,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            transient: true,
            ..Self::new(kind, name, field, reason)
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: ", self.kind, self.name)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.reason)
    }
}

/// Every problem found in one configuration, sorted by kind, name and field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// True when every error is transient (the configuration will load once the referenced
    /// objects exist).
    pub fn all_transient(&self) -> bool {
        self.0.iter().all(|e| e.transient)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
