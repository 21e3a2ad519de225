//! Writes what a speaker reports about its node ([`lb_metallb::speaker::status`]) to the API
//! server: MetalLB's `ServiceL2Status` / `ServiceBGPStatus` objects, owned by the Node so they
//! go when the Node goes (a speaker that stops deletes its own), and the Service events
//! `nodeAssigned` and `announceFailed`. The writer applies the pure [`diff`] with a bounded
//! number of requests in flight and retries what failed on the next call.

use std::collections::BTreeMap;

use futures_util::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};
use lb_core::ServiceKey;
use lb_metallb::crd::{ServiceBGPStatus, ServiceL2Status};
use lb_metallb::speaker::status::{
    Kind, NODE_LABEL, Op, Owned, REPORTER, Report, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL,
    diff, events_between,
};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::RETRY;
use super::cluster::SpeakerStores;
use crate::writer::emit;

/// Requests in flight at once.
const CONCURRENCY: usize = 16;

/// The API resource of a status kind.
fn resource(kind: Kind) -> ApiResource {
    match kind {
        Kind::Layer2 => ApiResource::erase::<ServiceL2Status>(&()),
        Kind::Bgp => ApiResource::erase::<ServiceBGPStatus>(&()),
    }
}

/// Writes a node's report to the API server.
pub struct StatusWriter {
    client: Client,
    namespace: String,
    node: String,
    reporter: Reporter,
    known: BTreeMap<(Kind, ServiceKey), Owned>,
    reported: Report,
}

enum Done {
    Written(Kind, ServiceKey, Owned),
    Deleted(Kind, ServiceKey),
    /// Its object was deleted behind our back: forgotten, and created again on the retry.
    Vanished(Kind, ServiceKey),
    /// Created, but the status write failed: retried as a patch.
    Created(Kind, ServiceKey, String),
    Failed,
}

impl StatusWriter {
    /// A writer for node `node`, status objects in `namespace`, events reported as
    /// `instance` (the pod name, or the node's).
    pub fn new(client: Client, namespace: &str, node: &str, instance: &str) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            node: node.into(),
            reporter: Reporter {
                controller: REPORTER.into(),
                instance: Some(instance.into()),
            },
            known: BTreeMap::new(),
            reported: Report::default(),
        }
    }

    fn api(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource(kind))
    }

    /// The objects the writer believes it owns.
    pub fn known(&self) -> &BTreeMap<(Kind, ServiceKey), Owned> {
        &self.known
    }

    /// Reads the objects earlier runs left for this node; deletes duplicates and objects
    /// without the Service labels.
    ///
    /// Fails when the list fails.
    pub async fn adopt(&mut self) -> Result<(), kube::Error> {
        for kind in [Kind::Layer2, Kind::Bgp] {
            let api = self.api(kind);
            let list = api
                .list(&ListParams::default().labels(&format!("{NODE_LABEL}={}", self.node)))
                .await?;
            for o in list.items {
                let Some(name) = o.metadata.name.clone() else {
                    continue;
                };
                let labels = o.metadata.labels.clone().unwrap_or_default();
                let key = match (
                    labels.get(SERVICE_NAMESPACE_LABEL),
                    labels.get(SERVICE_NAME_LABEL),
                ) {
                    (Some(ns), Some(n)) => Some(ServiceKey::new(ns.as_str(), n.as_str())),
                    _ => None,
                };
                let slot = key.clone().map(|k| (kind, k));
                // A retried adoption sees what it adopted before: keep it.
                if slot
                    .as_ref()
                    .and_then(|s| self.known.get(s))
                    .is_some_and(|o| o.name == name)
                {
                    continue;
                }
                if let Some(slot) = slot.filter(|s| !self.known.contains_key(s)) {
                    let status = o.data.get("status").cloned();
                    self.known.insert(slot, Owned { name, status });
                } else if let Err(e) = api.delete(&name, &DeleteParams::default()).await
                    && !matches!(&e, kube::Error::Api(s) if s.code == 404)
                {
                    tracing::warn!(name, error = %e, "cannot delete a stray status object");
                }
            }
        }
        Ok(())
    }

    /// Brings the objects and events in line with `report`. `services` gives the Service
    /// objects (events need their UID); `owner` is this node's Node, which owns the objects.
    /// Returns false when a write failed (call again later to retry).
    pub async fn sync(
        &mut self,
        report: &Report,
        services: &Store<Service>,
        owner: Option<&Node>,
    ) -> bool {
        let events = events_between(&self.reported, report, &self.node);
        self.reported = report.clone();
        for (key, event) in events {
            let Some(svc) = services.get(&ObjectRef::new(&key.name).within(&key.namespace)) else {
                continue;
            };
            let reference = svc.object_ref(&());
            if let Err(e) = emit(&self.client, &self.reporter, &reference, &event).await {
                tracing::warn!(service = %key, reason = event.reason, error = %e, "cannot create event");
            }
        }
        let ops = diff(&self.known, report, &self.node);
        let owner = owner.and_then(owner_reference);
        let results: Vec<Done> = stream::iter(ops)
            .map(|op| self.run(op, owner.clone()))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut ok = true;
        for done in results {
            match done {
                Done::Written(kind, key, owned) => {
                    self.known.insert((kind, key), owned);
                }
                Done::Deleted(kind, key) => {
                    self.known.remove(&(kind, key));
                }
                Done::Vanished(kind, key) => {
                    ok = false;
                    self.known.remove(&(kind, key));
                }
                Done::Created(kind, key, name) => {
                    ok = false;
                    self.known.insert((kind, key), Owned { name, status: None });
                }
                Done::Failed => ok = false,
            }
        }
        ok
    }

    async fn run(&self, op: Op, owner: Option<Value>) -> Done {
        match op {
            Op::Delete(kind, key, name) => {
                match self.api(kind).delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Done::Deleted(kind, key),
                    Err(kube::Error::Api(s)) if s.code == 404 => Done::Deleted(kind, key),
                    Err(e) => {
                        tracing::warn!(service = %key, name, error = %e, "cannot delete a status object");
                        Done::Failed
                    }
                }
            }
            Op::Patch(kind, key, name, status) => match self.patch(kind, &name, &status).await {
                Ok(()) => Done::Written(
                    kind,
                    key,
                    Owned {
                        name,
                        status: Some(status),
                    },
                ),
                Err(kube::Error::Api(s)) if s.code == 404 => Done::Vanished(kind, key),
                Err(e) => {
                    tracing::warn!(service = %key, name, error = %e, "cannot write a status object");
                    Done::Failed
                }
            },
            Op::Create(kind, key, status) => {
                let name = match self.create(kind, &key, owner).await {
                    Ok(name) => name,
                    Err(e) => {
                        tracing::warn!(service = %key, error = %e, "cannot create a status object");
                        return Done::Failed;
                    }
                };
                match self.patch(kind, &name, &status).await {
                    Ok(()) => Done::Written(
                        kind,
                        key,
                        Owned {
                            name,
                            status: Some(status),
                        },
                    ),
                    Err(e) => {
                        tracing::warn!(service = %key, name, error = %e, "cannot write a status object");
                        Done::Created(kind, key, name)
                    }
                }
            }
        }
    }

    async fn create(
        &self,
        kind: Kind,
        key: &ServiceKey,
        owner: Option<Value>,
    ) -> Result<String, kube::Error> {
        let resource = resource(kind);
        let mut metadata = json!({
            "generateName": kind.prefix(),
            "namespace": self.namespace,
            "labels": {
                NODE_LABEL: self.node,
                SERVICE_NAME_LABEL: &*key.name,
                SERVICE_NAMESPACE_LABEL: &*key.namespace,
            },
        });
        if let (Some(owner), Some(m)) = (owner, metadata.as_object_mut()) {
            m.insert("ownerReferences".into(), json!([owner]));
        }
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": metadata,
            "spec": {},
        }))
        .map_err(kube::Error::SerdeError)?;
        let created = self
            .api(kind)
            .create(&PostParams::default(), &object)
            .await?;
        Ok(created.metadata.name.unwrap_or_default())
    }

    async fn patch(&self, kind: Kind, name: &str, status: &Value) -> Result<(), kube::Error> {
        self.api(kind)
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
            .map(|_| ())
    }
}

/// An owner reference to `node`, when it has a UID.
fn owner_reference(node: &Node) -> Option<Value> {
    Some(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "name": node.metadata.name.as_deref()?,
        "uid": node.metadata.uid.as_deref()?,
    }))
}

/// Writes every report the decision loop publishes; retries failed writes; when the loop is
/// gone, deletes this node's objects.
pub(crate) async fn write_statuses(
    mut writer: StatusWriter,
    stores: SpeakerStores,
    node: String,
    mut reports: watch::Receiver<Option<Report>>,
) {
    let mut adopted = false;
    // The newest report, and whether it is fully written.
    let mut want: Option<Report> = None;
    let mut done = true;
    let mut stopping = false;
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !adopted {
            match writer.adopt().await {
                Ok(()) => adopted = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list this node's status objects; retrying");
                }
            }
        }
        if adopted && !done {
            done = match &want {
                Some(report) => {
                    let owner = stores.nodes.get(&ObjectRef::new(&node));
                    writer
                        .sync(report, &stores.services, owner.as_deref())
                        .await
                }
                None => true,
            };
        }
        if stopping {
            return;
        }
        tokio::select! {
            r = reports.changed() => {
                want = if r.is_err() {
                    stopping = true;
                    Some(Report::default())
                } else {
                    reports.borrow_and_update().clone()
                };
                done = false;
            }
            _ = retry.tick(), if !done || !adopted => {}
        }
    }
}
