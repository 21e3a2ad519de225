//! Every write the controller makes to the API server, in one place (the RBAC in `deploy/`
//! lists exactly these): Service status and annotation merge patches, events, the
//! `IPAddressPool` status, the `ConfigurationState` named `controller`, and the memberlist
//! Secret.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};
use serde_json::json;

use lb_metallb::controller::{ServiceUpdate, pool_annotation_patch, status_patch};
use lb_metallb::crd::{ConfigurationState, IPAddressPool, IPAddressPoolStatus};

/// The event reporter name, MetalLB's.
pub const REPORTER: &str = "metallb-controller";
/// The `ConfigurationState` object the controller writes.
pub const CONFIGURATION_STATE: &str = "controller";
/// The memberlist Secret's data key, MetalLB's.
pub const MEMBERLIST_KEY: &str = "secretkey";

/// Writes to the API server.
pub struct Writer {
    client: Client,
    namespace: String,
    reporter: Reporter,
}

impl Writer {
    /// A writer for MetalLB's objects in `namespace`, reporting events as `identity`.
    pub fn new(client: Client, namespace: &str, identity: &str) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            reporter: Reporter {
                controller: REPORTER.into(),
                instance: Some(identity.into()),
            },
        }
    }

    /// Writes `u` to `svc`: the status subresource first (the IPs are what matters), then the
    /// pool annotation, then the events. An event that cannot be created is only logged.
    ///
    /// Fails when a patch fails; the caller retries the Service later.
    pub async fn service(&self, u: &ServiceUpdate, svc: &Service) -> Result<(), kube::Error> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &u.key.namespace);
        let pp = PatchParams::default();
        if let Some(ips) = &u.status {
            api.patch_status(&u.key.name, &pp, &Patch::Merge(&status_patch(ips)))
                .await?;
        }
        if let Some(pool) = &u.pool_annotation {
            api.patch(
                &u.key.name,
                &pp,
                &Patch::Merge(&pool_annotation_patch(pool.as_deref())),
            )
            .await?;
        }
        let reference = svc.object_ref(&());
        for e in &u.events {
            if let Err(err) = emit(&self.client, &self.reporter, &reference, e).await {
                tracing::warn!(service = %u.key, reason = e.reason, error = %err, "cannot create event");
            }
        }
        Ok(())
    }

    /// Writes `IPAddressPool.status` of pool `name`.
    ///
    /// Fails when the patch fails (a pool deleted meanwhile gives 404).
    pub async fn pool_status(
        &self,
        name: &str,
        status: &IPAddressPoolStatus,
    ) -> Result<(), kube::Error> {
        let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .map(|_| ())
    }

    /// Writes the `ConfigurationState` named `controller`: `Valid`, or `Invalid` with
    /// `errors` as the summary. Creates the object when it does not exist.
    ///
    /// Fails when the API server refuses.
    pub async fn configuration_state(
        &self,
        errors: Option<&str>,
        wall: Timestamp,
    ) -> Result<(), kube::Error> {
        let labels = BTreeMap::from([(
            "metallb.io/component-type".to_string(),
            "controller".to_string(),
        )]);
        configuration_state(
            &self.client,
            &self.namespace,
            CONFIGURATION_STATE,
            labels,
            errors,
            wall,
        )
        .await
    }

    /// Creates the memberlist Secret `name` with a random 128-byte key when it does not exist;
    /// never changes an existing one. Returns true when it created it.
    ///
    /// Fails when the key cannot be read from the system or the API server refuses.
    pub async fn memberlist_secret(&self, name: &str) -> Result<bool, crate::Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        if api.get_opt(name).await?.is_some() {
            return Ok(false);
        }
        let mut key = vec![0u8; 128];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
            .map_err(crate::Error::Randomness)?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                MEMBERLIST_KEY.to_string(),
                ByteString(key),
            )])),
            ..Secret::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The event's `action`: what the controller did.
fn action_of(reason: &str) -> &'static str {
    match reason {
        "IPAllocated" | "AllocationFailed" | "AdditionalAssignFailed" => "Allocate",
        "ClearAssignment" => "Clear",
        "nodeAssigned" | "announceFailed" => "Announce",
        _ => "Validate",
    }
}

/// Creates event `e` about the object `reference` as `reporter`.
///
/// Fails when the API server refuses.
pub async fn emit(
    client: &Client,
    reporter: &Reporter,
    reference: &ObjectReference,
    e: &lb_metallb::events::Event,
) -> Result<(), kube::Error> {
    let event = KubeEvent {
        type_: if e.is_warning() {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: e.reason.into(),
        note: Some(e.message.clone()),
        action: action_of(e.reason).into(),
        secondary: None,
    };
    // A fresh recorder each time: kube's recorder merges repeats by reason alone into a series
    // that keeps the first message, which would show a stale IP or cause.
    Recorder::new(client.clone(), reporter.clone())
        .publish(&event, reference)
        .await
}

/// Writes the `ConfigurationState` `name` in `namespace`: `Valid`, or `Invalid` with `errors`
/// as the summary. Creates the object, with `labels`, when it does not exist.
///
/// Fails when the API server refuses.
pub async fn configuration_state(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: BTreeMap<String, String>,
    errors: Option<&str>,
    wall: Timestamp,
) -> Result<(), kube::Error> {
    // Untyped: the kind has no `spec` in its schema, so the API server returns objects
    // without one, which the derived type cannot read.
    let resource = ApiResource::erase::<ConfigurationState>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    if api.get_opt(name).await?.is_none() {
        let mut object = DynamicObject::new(name, &resource)
            .within(namespace)
            .data(json!({ "spec": {} }));
        object.metadata.labels = Some(labels);
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    let (result, status, reason, message) = match errors {
        None => ("Valid", "True", "Reconciled", String::new()),
        Some(e) => ("Invalid", "False", "ConfigurationError", e.to_string()),
    };
    let condition = Condition {
        type_: "configReconcilerValid".into(),
        status: status.into(),
        reason: reason.into(),
        message: message.clone(),
        last_transition_time: Time(wall),
        observed_generation: None,
    };
    let patch = json!({
        "status": {
            "result": result,
            "errorSummary": message,
            "conditions": [condition],
        }
    });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}
