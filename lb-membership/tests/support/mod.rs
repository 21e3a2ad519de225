//! What the membership tests share: the cluster's secret, another cluster's, and node-name
//! sets.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;

/// The memberlist secret of the test cluster.
pub const KEY: &[u8] = b"the memberlist secret of the test cluster";
/// A secret of some other cluster.
pub const OTHER_KEY: &[u8] = b"a secret of some other cluster";

/// The set of `nodes`' names.
pub fn names(nodes: &[&str]) -> BTreeSet<String> {
    nodes.iter().map(|n| (*n).to_string()).collect()
}
