//! The reflectors both daemons share: one watch per kind, its objects cached in a `Store`
//! (trimmed to what the decisions read), each relevant change turned into a [`Trigger`] for
//! the loop that owns the decision. Updates that leave the relevant part of an object
//! unchanged (a Node heartbeat, a `kubectl apply` copy) wake nobody.
//!
//! After an error a reflector waits ([`Retry`]): nothing after a 410 Gone (the relist it
//! forces is the recovery), otherwise a delay doubling from 250 ms and capped at 2 s, so the
//! caches are current again within a few seconds of an API-server outage ending (kube's
//! default grows to 30 s, and a Service deleted during the outage then stayed announced for
//! up to a minute after it).

use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use lb_core::{Backoff, ServiceKey};
use lb_metallb::crd::{
    BFDProfile, BGPAdvertisement, Community, IPAddressPool, L2Advertisement, v1beta2,
};
use lb_metallb::input::Objects;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// Why the worker has to look at something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A Service changed or was deleted.
    Service(ServiceKey),
    /// The Services were listed again (a watch restarted): look at all of them.
    AllServices,
    /// A configuration object, Secret, Namespace or Node changed.
    Config,
}

/// Caches of MetalLB's configuration kinds in its namespace: what both daemons validate.
#[derive(Clone)]
pub struct ConfigStores {
    /// `IPAddressPool`s.
    pub pools: Store<IPAddressPool>,
    /// `L2Advertisement`s.
    pub l2_advertisements: Store<L2Advertisement>,
    /// `BGPAdvertisement`s.
    pub bgp_advertisements: Store<BGPAdvertisement>,
    /// `Community` lists.
    pub communities: Store<Community>,
    /// `BFDProfile`s.
    pub bfd_profiles: Store<BFDProfile>,
    /// `BGPPeer`s (v1beta2).
    pub peers: Store<v1beta2::BGPPeer>,
    /// Secrets of the namespace (BGP passwords).
    pub secrets: Store<Secret>,
}

impl ConfigStores {
    /// Starts one reflector per kind in `namespace`; every change sends [`Trigger::Config`].
    pub fn start(client: &Client, namespace: &str, tx: &mpsc::UnboundedSender<Trigger>) -> Self {
        fn namespaced<K>(
            client: &Client,
            namespace: &str,
            tx: &mpsc::UnboundedSender<Trigger>,
        ) -> Store<K>
        where
            K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
                + Clone
                + DeserializeOwned
                + Debug
                + Send
                + Sync
                + 'static,
            K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
        {
            reflect(
                Api::namespaced(client.clone(), namespace),
                tx.clone(),
                Watch::config(),
            )
        }
        Self {
            pools: namespaced(client, namespace, tx),
            l2_advertisements: namespaced(client, namespace, tx),
            bgp_advertisements: namespaced(client, namespace, tx),
            communities: namespaced(client, namespace, tx),
            bfd_profiles: namespaced(client, namespace, tx),
            peers: namespaced(client, namespace, tx),
            secrets: namespaced(client, namespace, tx),
        }
    }

    /// The configuration objects (nothing else) as the validator reads them.
    pub fn objects(&self) -> Objects {
        Objects {
            pools: cloned(&self.pools),
            l2_advertisements: cloned(&self.l2_advertisements),
            bgp_advertisements: cloned(&self.bgp_advertisements),
            communities: cloned(&self.communities),
            bfd_profiles: cloned(&self.bfd_profiles),
            peers: cloned(&self.peers),
            secrets: cloned(&self.secrets),
            ..Objects::default()
        }
    }

    /// Waits until every reflector has listed its objects once.
    ///
    /// Fails when a reflector stopped.
    pub async fn wait_until_ready(&self) -> Result<(), crate::Error> {
        self.pools.wait_until_ready().await?;
        self.l2_advertisements.wait_until_ready().await?;
        self.bgp_advertisements.wait_until_ready().await?;
        self.communities.wait_until_ready().await?;
        self.bfd_profiles.wait_until_ready().await?;
        self.peers.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        Ok(())
    }
}

pub(crate) fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let mut list: Vec<K> = store.state().iter().map(|o| (**o).clone()).collect();
    // Input order matters for some messages; make it deterministic.
    list.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    list
}

pub(crate) fn config_trigger<K>(e: &watcher::Event<K>) -> Option<Trigger> {
    match e {
        watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone => {
            Some(Trigger::Config)
        }
        watcher::Event::Init | watcher::Event::InitApply(_) => None,
    }
}

/// What a reflector keeps and when it wakes the worker.
pub(crate) struct Watch<K> {
    /// Turns an event into a trigger.
    pub(crate) map: fn(&watcher::Event<K>) -> Option<Trigger>,
    /// The part of an object that matters (e.g. a Node's labels): an update that leaves it
    /// unchanged wakes nobody. `None`: every update matters.
    pub(crate) relevant: Option<fn(&K) -> u64>,
    /// Drops what is not needed from cached objects (e.g. a Node's status).
    pub(crate) trim: fn(&mut K),
}

impl<K> Clone for Watch<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Watch<K> {}

pub(crate) fn no_trim<K>(_: &mut K) {}

/// A hash of an object's labels.
pub(crate) fn labels_hash<K: Resource>(o: &K) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    o.meta().labels.hash(&mut h);
    h.finish()
}

impl<K: Resource> Watch<K> {
    /// Wakes the worker only when the labels change.
    pub(crate) fn labels(trim: fn(&mut K)) -> Self {
        Self {
            map: config_trigger,
            relevant: Some(labels_hash),
            trim,
        }
    }

    pub(crate) fn config() -> Self {
        Self {
            map: config_trigger,
            relevant: None,
            trim: no_trim,
        }
    }
}

/// Starts a reflector on `api`; its events become triggers as `watch` says.
pub(crate) fn reflect<K>(
    api: Api<K>,
    tx: mpsc::UnboundedSender<Trigger>,
    watch: Watch<K>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let trim = watch.trim;
    let events = watcher(api, watcher::Config::default())
        .modify(move |o: &mut K| {
            o.managed_fields_mut().clear();
            trim(o);
        })
        .reflect(writer);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        let mut retry = Retry::default();
        let mut seen: std::collections::HashMap<(Option<String>, Option<String>), u64> =
            std::collections::HashMap::new();
        while let Some(e) = events.next().await {
            match e {
                Ok(e) => {
                    retry.reset();
                    if let Some(relevant) = watch.relevant {
                        let unchanged = match &e {
                            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                                let id = (o.meta().namespace.clone(), o.meta().name.clone());
                                let now = relevant(o);
                                seen.insert(id, now) == Some(now)
                            }
                            watcher::Event::Delete(o) => {
                                seen.remove(&(o.meta().namespace.clone(), o.meta().name.clone()));
                                false
                            }
                            // A new list: what was seen before may be gone now, so an
                            // object that comes back must count as a change.
                            watcher::Event::Init => {
                                seen.clear();
                                false
                            }
                            watcher::Event::InitDone => false,
                        };
                        if unchanged {
                            continue;
                        }
                    }
                    if let Some(t) = (watch.map)(&e)
                        && tx.send(t).is_err()
                    {
                        return;
                    }
                }
                Err(err) => {
                    let delay = retry.after(is_gone(&err), jitter());
                    // The first failure of a run and then every power of two: an outage of
                    // a minute logs a handful of lines per kind, not one every retry.
                    if retry.attempts.is_power_of_two() {
                        tracing::warn!(kind, error = %err, attempts = retry.attempts, ?delay, "watch failed; retrying");
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    });
    reader
}

/// The first delay after an error, doubled on each further error.
const RETRY_MIN: Duration = Duration::from_millis(250);
/// The longest delay between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// The delays: [`RETRY_MIN`] doubling up to [`RETRY_MAX`], less up to a quarter at random.
const BACKOFF: Backoff = Backoff {
    initial: RETRY_MIN,
    max: RETRY_MAX,
    jitter: 0.25,
};

/// How long a reflector waits before it lists or watches again after an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Errors since the last success.
    pub(crate) attempts: u32,
}

impl Retry {
    /// The wait after one more error: none when it is a 410 Gone (the watcher lists again
    /// at once), else [`BACKOFF`]'s delay for the errors so far, `jitter` (in `0.0..1.0`)
    /// taking off up to a quarter so reflectors of many nodes do not retry in step.
    pub(crate) fn after(&mut self, gone: bool, jitter: f64) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        if gone {
            return Duration::ZERO;
        }
        BACKOFF.delay(self.attempts - 1, jitter)
    }

    /// A success: the next error starts from [`RETRY_MIN`] again.
    pub(crate) fn reset(&mut self) {
        self.attempts = 0;
    }
}

/// True when `err` says the resource version is gone (HTTP 410), which the watcher answers
/// with a fresh list.
fn is_gone(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// A number in `0.0..1.0` that differs between calls and processes.
fn jitter() -> f64 {
    let bits =
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_a_quarter_second_up_to_two_seconds() {
        let mut r = Retry::default();
        let waits: Vec<Duration> = (0..8).map(|_| r.after(false, 0.0)).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 2000, 2000, 2000, 2000]);
        assert_eq!(r.attempts, 8);
    }

    #[test]
    fn a_410_is_retried_at_once_and_counts_as_an_attempt() {
        let mut r = Retry::default();
        r.after(false, 0.0);
        r.after(false, 0.0);
        assert_eq!(r.after(true, 0.0), Duration::ZERO);
        assert_eq!(r.attempts, 3);
        // The next other error continues from where it was.
        assert_eq!(r.after(false, 0.0), Duration::from_millis(2000));
    }

    #[test]
    fn a_success_starts_over_and_jitter_only_shortens() {
        let mut r = Retry::default();
        for _ in 0..10 {
            r.after(false, 0.0);
        }
        r.reset();
        assert_eq!(r.after(false, 0.0), Duration::from_millis(250));
        let mut r = Retry::default();
        for _ in 0..10 {
            let d = r.after(false, 0.999);
            assert!(d <= RETRY_MAX && d >= RETRY_MIN.mul_f64(0.75), "{d:?}");
        }
        let j = jitter();
        assert!((0.0..1.0).contains(&j), "{j}");
    }
}
