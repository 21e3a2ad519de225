//! The order in which one batch of changes reconciles Services, and how often: every Service
//! named once, and a Service still waiting for an IP once more when a later one frees an IP it
//! waits for; never more than twice per batch, so two Services that keep freeing each other's
//! IPs cannot loop.

use std::collections::{BTreeMap, VecDeque};

use lb_core::ServiceKey;

use super::ControllerState;

/// Reconciles per Service and batch, at most.
const MAX_RUNS: u8 = 2;

/// One batch's queue of Services to reconcile.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    queue: VecDeque<ServiceKey>,
    runs: BTreeMap<ServiceKey, u8>,
}

impl Batch {
    /// A batch that reconciles `keys` in this order (the configuration's affected Services
    /// first, in the order [`ControllerState::apply_config`] gives them, then the rest).
    pub fn new(keys: impl IntoIterator<Item = ServiceKey>) -> Self {
        Self {
            queue: keys.into_iter().collect(),
            runs: BTreeMap::new(),
        }
    }

    /// The next Service to reconcile, counted as reconciled; `None` when the batch is done.
    /// A Service already reconciled is skipped unless it still waits for an IP in `state`
    /// and was reconciled only once.
    pub fn next(&mut self, state: &ControllerState) -> Option<ServiceKey> {
        while let Some(key) = self.queue.pop_front() {
            let n = self.runs.entry(key.clone()).or_insert(0);
            if *n >= MAX_RUNS || (*n == 1 && !state.is_pending(&key)) {
                continue;
            }
            *n += 1;
            return Some(key);
        }
        None
    }

    /// Queues the Services a reconcile named for another look (its
    /// [`ServiceUpdate::retry`](super::ServiceUpdate::retry)), except those already
    /// reconciled twice.
    pub fn retry(&mut self, keys: impl IntoIterator<Item = ServiceKey>) {
        let runs = &self.runs;
        self.queue.extend(
            keys.into_iter()
                .filter(|k| runs.get(k).copied().unwrap_or(0) < MAX_RUNS),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use k8s_openapi::api::core::v1::Service;

    use super::*;
    use crate::controller::Settings;
    use crate::input::Objects;

    /// A pool of one IP, Service `held` holding it and `waiting` pending for it.
    fn state_with_one_pending() -> ControllerState {
        let mut objects = Objects::default();
        objects
            .add_yaml(
                "t",
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n\
                 metadata: {name: one, namespace: metallb-system}\n\
                 spec: {addresses: [192.0.2.10/32]}\n",
            )
            .unwrap();
        let mut state = ControllerState::new(Settings {
            namespace: "metallb-system".into(),
            lb_class: None,
        });
        state.apply_config(&objects);
        state.restore(std::iter::empty::<&Service>());
        for name in ["held", "waiting"] {
            let svc: Service = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "type": "LoadBalancer",
                    "clusterIPs": ["203.0.113.1"],
                    "ports": [{"port": 80}],
                },
            }))
            .unwrap();
            state.reconcile(&key(name), Some(&svc));
        }
        assert!(!state.is_pending(&key("held")));
        assert!(state.is_pending(&key("waiting")));
        state
    }

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("default", name)
    }

    fn drain(batch: &mut Batch, state: &ControllerState) -> Vec<ServiceKey> {
        std::iter::from_fn(|| batch.next(state)).take(100).collect()
    }

    #[test]
    fn each_service_is_reconciled_once_in_the_order_given() {
        let state = state_with_one_pending();
        let mut batch = Batch::new([key("held"), key("b"), key("held"), key("a")]);
        assert_eq!(drain(&mut batch, &state), [key("held"), key("b"), key("a")]);
    }

    #[test]
    fn a_waiting_service_gets_a_second_look_and_no_third() {
        let state = state_with_one_pending();
        let mut batch = Batch::new([key("waiting")]);
        assert_eq!(batch.next(&state), Some(key("waiting")));
        // A later reconcile freed an IP it waits for: once more.
        batch.retry([key("waiting")]);
        assert_eq!(batch.next(&state), Some(key("waiting")));
        // Two Services freeing each other's IPs cannot loop.
        batch.retry([key("waiting")]);
        batch.retry([key("waiting")]);
        assert_eq!(batch.next(&state), None);
    }

    #[test]
    fn a_service_that_got_its_ip_is_not_reconciled_again() {
        let state = state_with_one_pending();
        let mut batch = Batch::new([key("held")]);
        assert_eq!(batch.next(&state), Some(key("held")));
        batch.retry([key("held")]);
        assert_eq!(batch.next(&state), None);
    }
}
