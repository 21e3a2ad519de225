//! The reflectors both daemons share: one watch per kind, its objects cached in a `Store`
//! (trimmed to what the decisions read), each relevant change turned into a [`Trigger`] for
//! the loop that owns the decision. Updates that leave the relevant part of an object
//! unchanged (a Node heartbeat, a `kubectl apply` copy) wake nobody.

use std::fmt::Debug;
use std::hash::Hash;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use lb_core::ServiceKey;
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
        .default_backoff()
        .modify(move |o: &mut K| {
            o.managed_fields_mut().clear();
            trim(o);
        })
        .reflect(writer);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        let mut seen: std::collections::HashMap<(Option<String>, Option<String>), u64> =
            std::collections::HashMap::new();
        while let Some(e) = events.next().await {
            match e {
                Ok(e) => {
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
                Err(err) => tracing::warn!(kind, error = %err, "watch failed; retrying"),
            }
        }
    });
    reader
}
