//! Where the speaker's inputs come from: a file, polled and re-read when it changes, or the
//! API server's reflectors, rebuilt after every relevant change. Either way a change that
//! does not load or validate is logged and the last good inputs stay in force (`stale` set).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use lb_metallb::grace::{DELETION_GRACE, DeletionGrace};
use lb_metallb::plan::PlanOptions;
use lb_metallb::speaker::Inputs;
use tokio::sync::{mpsc, watch};

use super::RETRY;
use super::cluster::SpeakerStores;
use crate::reflect::Trigger;
use crate::sys;
use crate::writer::configuration_state;

/// Reads the inputs from a file (multi-document YAML) through the loader `plan` and `validate`
/// use ([`Inputs::load`]: legacy ConfigMaps converted).
///
/// Fails with an error naming the file and the problem ([`crate::Error::ReadFile`],
/// [`crate::Error::Inputs`]).
pub fn read_file(path: &std::path::Path, options: &PlanOptions) -> Result<Inputs, crate::Error> {
    let text = std::fs::read_to_string(path).map_err(|cause| crate::Error::ReadFile {
        path: path.to_path_buf(),
        cause,
    })?;
    let name = path.display().to_string();
    Ok(Inputs::load([(name.as_str(), text.as_str())], options)?)
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Follows a file: publishes its inputs at start and after every change. A change that does
/// not parse or validate is logged and the last good inputs stay in use (`stale` is set).
pub(crate) fn follow_file(
    path: PathBuf,
    options: PlanOptions,
    poll: Duration,
    tx: watch::Sender<Option<Arc<Inputs>>>,
    stale: watch::Sender<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_stamp = None;
        // A hash of the last content read, not a copy: the file can be megabytes.
        let mut last_hash: Option<u64> = None;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = stamp(&path);
            if s.is_some() && s == last_stamp {
                continue;
            }
            last_stamp = s;
            let hash = std::fs::read(&path).ok().map(|bytes| {
                use std::hash::{DefaultHasher, Hash, Hasher};
                let mut h = DefaultHasher::new();
                bytes.hash(&mut h);
                h.finish()
            });
            if hash.is_some() && hash == last_hash {
                continue;
            }
            last_hash = hash;
            let p = path.clone();
            let o = options.clone();
            let result = tokio::task::spawn_blocking(move || {
                let inputs = read_file(&p, &o);
                sys::release_free_memory();
                inputs
            })
            .await;
            match result {
                Ok(Ok(inputs)) => {
                    for w in &inputs.warnings {
                        tracing::warn!(file = %path.display(), warning = %w, "configuration warning");
                    }
                    tracing::info!(file = %path.display(), services = inputs.services.len(), nodes = inputs.nodes.len(), "inputs loaded");
                    let _ = stale.send(false);
                    if tx.send(Some(Arc::new(inputs))).is_err() {
                        return;
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(file = %path.display(), error = %e, "inputs rejected; the last good ones stay in use");
                    let _ = stale.send(true);
                }
                Err(e) => tracing::error!(error = %e, "reading the inputs failed"),
            }
        }
    })
}

/// How long the sources wait for more changes before recomputing.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// Publishes the cluster's inputs after every relevant change (changes within
/// [`DEBOUNCE`] are taken together) and writes the `ConfigurationState` `speaker-NODE`.
pub(crate) async fn follow_cluster(
    client: Client,
    stores: SpeakerStores,
    options: PlanOptions,
    node: String,
    mut triggers: mpsc::UnboundedReceiver<Trigger>,
    tx: watch::Sender<Option<Arc<Inputs>>>,
    stale: watch::Sender<bool>,
) {
    if let Err(e) = stores.wait_until_ready().await {
        tracing::error!(error = %e, "the caches cannot sync");
        return;
    }
    tracing::info!("caches synced");
    let name = format!("speaker-{node}");
    let labels = BTreeMap::from([
        (
            "metallb.io/component-type".to_string(),
            "speaker".to_string(),
        ),
        ("metallb.io/node-name".to_string(), node.clone()),
    ]);
    let mut written: Option<Option<String>> = None;
    let mut errors: Option<String> = None;
    let mut last_warnings: Vec<String> = Vec::new();
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Rebuild on a change; a retry tick only writes the ConfigurationState again.
    let mut rebuild = true;
    let mut grace = DeletionGrace::new(DELETION_GRACE);
    let mut grace_deadline: Option<tokio::time::Instant> = None;
    loop {
        if rebuild {
            let (s, o, mut g) = (stores.clone(), options.clone(), std::mem::take(&mut grace));
            let built = tokio::task::spawn_blocking(move || {
                let (inputs, held) = s.inputs(&o, &mut g);
                sys::release_free_memory();
                (inputs, held, g)
            });
            let built = match built.await {
                Ok((inputs, held, g)) => {
                    grace = g;
                    crate::log_grace(&held);
                    grace_deadline = held.next.map(tokio::time::Instant::from_std);
                    Ok(inputs)
                }
                Err(e) => {
                    grace = DeletionGrace::new(DELETION_GRACE);
                    Err(e)
                }
            };
            errors = match built {
                Ok(Ok(inputs)) => {
                    if inputs.warnings != last_warnings {
                        for w in &inputs.warnings {
                            tracing::warn!(warning = %w, "configuration warning");
                        }
                        last_warnings.clone_from(&inputs.warnings);
                    }
                    tracing::info!(
                        services = inputs.services.len(),
                        nodes = inputs.nodes.len(),
                        "inputs loaded"
                    );
                    let _ = stale.send(false);
                    if tx.send(Some(Arc::new(inputs))).is_err() {
                        return;
                    }
                    None
                }
                Ok(Err(errors)) => {
                    let summary = errors.to_string();
                    tracing::error!(errors = %summary, "configuration rejected; the last valid one stays in force");
                    let _ = stale.send(true);
                    Some(summary)
                }
                Err(e) => Some(format!("reading the inputs failed: {e}")),
            };
        }
        if written.as_ref() != Some(&errors) {
            match configuration_state(
                &client,
                &options.namespace,
                &name,
                labels.clone(),
                errors.as_deref(),
                Timestamp::now(),
            )
            .await
            {
                Ok(()) => written = Some(errors.clone()),
                Err(e) => tracing::warn!(name, error = %e, "cannot write the ConfigurationState"),
            }
        }
        let pending = written.as_ref() != Some(&errors);
        rebuild = tokio::select! {
            t = triggers.recv() => if t.is_none() { return } else { true },
            _ = retry.tick(), if pending => false,
            () = crate::controller::grace_over(grace_deadline) => true,
        };
        if rebuild {
            tokio::time::sleep(DEBOUNCE).await;
            while triggers.try_recv().is_ok() {}
        }
    }
}
