//! The per-service node ranking used for Layer-2 election.
//!
//! Every speaker computes the same order from the same inputs, without talking to the others:
//! candidates are sorted by the sum of their preferred-node weights (highest first), then by
//! `SHA-256(node_name + "#" + ip)` compared as bytes (lowest first), where `ip` is the text of
//! the service's first ingress IP. The first node announces. This is bit-identical to
//! MetalLB's `sortL2Candidates`, so a mixed cluster elects the same owner.
//!
//! Because the hash depends on the IP and not on the service, every service sharing an IP
//! elects the same node, and removing a node moves only the IPs that node owned.

use sha2::{Digest, Sha256};

use crate::NodeName;

/// A node that may announce a service, with its preference score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankCandidate {
    /// The node.
    pub node: NodeName,
    /// Sum of the weights of the preferred-node terms this node matches (0 when none).
    pub weight: i64,
}

impl RankCandidate {
    /// A candidate with the given weight.
    pub fn new(node: impl Into<NodeName>, weight: i64) -> Self {
        Self {
            node: node.into(),
            weight,
        }
    }
}

/// Orders `candidates` for the service whose first ingress IP is `ip` (as text, e.g.
/// `192.0.2.10` or `2001:db8::10`); the first node of the result is the owner.
///
/// Duplicated node names are kept as given; callers pass each node once.
///
/// ```
/// use lb_core::{RankCandidate, rank_nodes};
///
/// let nodes = ["node-a", "node-b", "node-c"].map(|n| RankCandidate::new(n, 0));
/// let order = rank_nodes(&nodes, "10.0.0.1");
/// assert_eq!(order[0].as_str(), "node-b"); // MetalLB elects node-b too
/// ```
pub fn rank_nodes(candidates: &[RankCandidate], ip: &str) -> Vec<NodeName> {
    let mut keyed: Vec<(i64, [u8; 32], &NodeName)> = candidates
        .iter()
        .map(|c| {
            let mut h = Sha256::new();
            h.update(c.node.as_str().as_bytes());
            h.update(b"#");
            h.update(ip.as_bytes());
            (c.weight, h.finalize().into(), &c.node)
        })
        .collect();
    keyed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, n)| n.clone()).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn names(v: &[NodeName]) -> Vec<&str> {
        v.iter().map(NodeName::as_str).collect()
    }

    fn rank(nodes: &[(&str, i64)], ip: &str) -> Vec<String> {
        let c: Vec<RankCandidate> = nodes
            .iter()
            .map(|(n, w)| RankCandidate::new(*n, *w))
            .collect();
        rank_nodes(&c, ip)
            .into_iter()
            .map(|n| n.to_string())
            .collect()
    }

    #[test]
    fn matches_metallb_known_answers() {
        // The table of MetalLB's TestSortL2Candidates (speaker/layer2_controller_test.go).
        type Case<'a> = (&'a [(&'a str, i64)], &'a str, &'a [&'a str]);
        let cases: [Case<'_>; 6] = [
            (
                &[("node-a", 0), ("node-b", 0), ("node-c", 0)],
                "10.0.0.1",
                &["node-b", "node-a", "node-c"],
            ),
            (
                &[("node-a", 0), ("node-b", 0), ("node-c", 0)],
                "10.0.0.2",
                &["node-b", "node-c", "node-a"],
            ),
            (
                &[
                    ("edge-a", 100),
                    ("edge-b", 0),
                    ("worker-a", 0),
                    ("worker-b", 0),
                ],
                "10.20.30.1",
                &["edge-a", "edge-b", "worker-a", "worker-b"],
            ),
            (
                &[("node-a", 100), ("node-b", 100)],
                "10.20.30.1",
                &["node-b", "node-a"],
            ),
            (
                &[("edge-a", 100), ("edge-b", 100), ("worker-a", 0)],
                "10.20.30.1",
                &["edge-b", "edge-a", "worker-a"],
            ),
            (&[("node-a", 0)], "10.0.0.1", &["node-a"]),
        ];
        for (nodes, ip, want) in cases {
            assert_eq!(rank(nodes, ip), want, "nodes {nodes:?} ip {ip}");
        }
        assert!(rank(&[], "10.0.0.1").is_empty());
    }

    #[test]
    fn single_letter_names_rank_by_their_own_digests() {
        // sha256("a#10.0.0.1") = 0bcf.., ("c#..") = 5b58.., ("b#..") = 6996..
        assert_eq!(
            rank(&[("a", 0), ("b", 0), ("c", 0)], "10.0.0.1"),
            ["a", "c", "b"]
        );
    }

    #[test]
    fn hash_input_is_name_hash_sign_ip() {
        // The ranking must order equal-weight nodes by the digest of "name#ip", recomputed
        // here independently of the implementation.
        let digest = |s: &str| -> [u8; 32] { Sha256::digest(s.as_bytes()).into() };
        let mut expected = ["a", "b", "c"];
        expected.sort_by_key(|n| digest(&format!("{n}#10.0.0.1")));
        let c = [
            RankCandidate::new("c", 0),
            RankCandidate::new("a", 0),
            RankCandidate::new("b", 0),
        ];
        assert_eq!(names(&rank_nodes(&c, "10.0.0.1")), expected);
    }

    #[test]
    fn higher_weight_wins_over_hash_order() {
        assert_eq!(
            rank(&[("a", 0), ("b", 0), ("c", 50)], "10.0.0.1"),
            ["c", "a", "b"]
        );
        assert_eq!(
            rank(&[("a", 0), ("b", 7), ("c", 5)], "10.0.0.1"),
            ["b", "c", "a"]
        );
    }

    #[test]
    fn ipv6_text_is_hashed_as_given() {
        let c = [RankCandidate::new("a", 0), RankCandidate::new("b", 0)];
        let r1 = rank_nodes(&c, "2001:db8::1");
        let r2 = rank_nodes(&c, "2001:db8::2");
        assert_eq!(r1.len(), 2);
        // Both orders are possible; what matters is that each is stable.
        assert_eq!(r1, rank_nodes(&c, "2001:db8::1"));
        assert_eq!(r2, rank_nodes(&c, "2001:db8::2"));
    }

    proptest! {
        #[test]
        fn ranking_ignores_input_order(
            names in proptest::collection::btree_set("[a-z]{1,8}", 1..12),
            ip in "(192\\.0\\.2|198\\.51\\.100)\\.[0-9]{1,3}",
            seed in any::<usize>(),
        ) {
            let mut c: Vec<RankCandidate> =
                names.iter().enumerate().map(|(i, n)| RankCandidate::new(n.as_str(), (i % 3) as i64)).collect();
            let first = rank_nodes(&c, &ip);
            let len = c.len();
            c.rotate_left(seed % len);
            c.reverse();
            prop_assert_eq!(first, rank_nodes(&c, &ip));
        }

        #[test]
        fn removing_a_non_owner_keeps_the_owner(
            names in proptest::collection::btree_set("[a-z]{1,8}", 2..12),
            ip in "203\\.0\\.113\\.[0-9]{1,3}",
        ) {
            let c: Vec<RankCandidate> = names.iter().map(|n| RankCandidate::new(n.as_str(), 0)).collect();
            let ranked = rank_nodes(&c, &ip);
            let owner = ranked[0].clone();
            let loser = ranked[ranked.len() - 1].clone();
            let fewer: Vec<RankCandidate> = c.into_iter().filter(|x| x.node != loser).collect();
            prop_assert_eq!(&rank_nodes(&fewer, &ip)[0], &owner);
        }
    }
}
