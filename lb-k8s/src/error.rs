//! Why a daemon of this crate could not start or stopped: one error for the shell, each
//! variant naming what failed (the file, the backend, the node) with its cause as `source`;
//! errors that are logged as they come (API refusals, randomness, a cache that cannot sync)
//! are shown as their cause.

use std::path::PathBuf;

use kube::runtime::reflector::store::WriterDropped;

/// Why the controller or the speaker could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reflector stopped before its cache listed its objects.
    #[error(transparent)]
    CacheSync(#[from] WriterDropped),
    /// The leader-election task stopped.
    #[error("leader election stopped")]
    ElectionStopped,
    /// The speaker's input source stopped.
    #[error("the input source stopped")]
    SourceStopped,
    /// The membership agent stopped.
    #[error("membership stopped")]
    MembershipStopped,
    /// The speaker's file cannot be read (the cause is in the message: it is also logged when
    /// a followed file goes away).
    #[error("reading {}: {cause}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The speaker's file does not load, or its configuration is invalid.
    #[error(transparent)]
    Inputs(#[from] lb_metallb::speaker::inputs::InputsError),
    /// The layer-2 responder cannot start (no `CAP_NET_RAW`, no netlink).
    #[error("starting the layer-2 responder")]
    Layer2(#[source] lb_l2::L2Error),
    /// The BGP speaker cannot start.
    #[error("starting the BGP speaker")]
    Bgp(#[source] lb_bgp::SpeakerError),
    /// Membership needs this node's address and its Node has none.
    #[error("membership: Node {node} has no address in its status; give --ml-bindaddr")]
    NoNodeAddress {
        /// The node.
        node: String,
    },
    /// The membership key cannot be derived from the secret.
    #[error("membership key")]
    MembershipKey(#[source] lb_membership::KeyError),
    /// The membership agent cannot start.
    #[error(transparent)]
    Membership(#[from] lb_membership::MembershipError),
    /// The system gave no randomness for a new memberlist key.
    #[error(transparent)]
    Randomness(std::io::Error),
    /// The API server refused a request.
    #[error(transparent)]
    Api(#[from] kube::Error),
}
