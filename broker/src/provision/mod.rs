//! The certificate provisioning service (issue 20; docs/provisioning.md;
//! decisions 0150-0153): devices holding a batch's *claim certificate*
//! send a CSR on `$fleetmq/provision/<id>/request` and get a certificate
//! signed by the lab CA on `$fleetmq/provision/<id>/response`; devices
//! holding their own certificate renew it the same way before it expires.
//!
//! - [`message`]: the request and answer documents.
//! - [`csr`]: reading a CSR and refusing what a device must not ask for.
//! - [`policy`]: id pattern, allow-list, one-time tokens (used ones kept on disk).
//! - [`approvals`]: requests waiting for an operator, as files.
//! - [`decide`]: one request to one answer, signing through `certs::Pki`.
//! - [`gauges`]: certificates by state, expiring soon, pending approvals.
//!
//! This module owns the worker task: connections only queue requests
//! (`fleetmq_core::provision::ProvisionService`); the worker decides them
//! one at a time on a blocking thread (the PKI index is one file), answers
//! with an ordinary publish, and after a renewal revokes the replaced
//! certificate (at issue, or when the new one is first presented) and
//! reloads the CRLs so its holder is disconnected. It must not sign on a
//! connection's task or hold a lock across an `.await`.

pub mod approvals;
pub mod csr;
pub mod decide;
#[cfg(test)]
mod decide_tests;
pub mod gauges;
pub mod message;
pub mod policy;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use fleetmq_codec::QoS;
use fleetmq_core::engine::Engine;
use fleetmq_core::events::Event;
use fleetmq_core::message::Message;
use fleetmq_core::provision::{response_topic, ProvisionRequest, ProvisionService};
use tokio::sync::{broadcast, mpsc, watch};

use crate::tls::TlsListener;
use decide::{Decider, Effects};

/// Requests queued at most; beyond it a request is dropped (the device
/// asks again) rather than letting a burst hold memory.
const QUEUE: usize = 256;

/// How often the certificate gauges are recomputed from the index.
const GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// What connections hand requests to.
#[derive(Debug)]
struct Queue {
    sender: mpsc::Sender<ProvisionRequest>,
}

impl ProvisionService for Queue {
    fn submit(&self, request: ProvisionRequest) -> bool {
        self.sender.try_send(request).is_ok()
    }
}

/// Starts the service when `[provision] enabled`; `provisioning` names the
/// listeners with `provision = true`, `tls` every TLS listener (their CRLs
/// are reloaded after a revocation).
pub fn start(
    broker: &Arc<Engine>,
    provisioning: HashSet<Arc<str>>,
    tls: Vec<Arc<TlsListener>>,
    metrics: &crate::observe::Metrics,
    shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    if !broker.config.provision.enabled {
        return Ok(());
    }
    let decider = Arc::new(Decider::open(&broker.config, provisioning)?);
    let watching = awaiting_first_use(&decider);
    let gauges =
        gauges::Gauges::new(metrics).map_err(|error| format!("provisioning metrics: {error}"))?;
    let (sender, requests) = mpsc::channel(QUEUE);
    broker.set_provision_service(Arc::new(Queue { sender }));
    let events = broker.events.subscribe();
    tracing::info!(
        "Certificate provisioning on ($fleetmq/provision/<id>/request), policy {:?}, CA {}.",
        broker.config.provision.policy,
        decider.pki.dir().display()
    );
    tokio::spawn(
        Worker {
            broker: Arc::clone(broker),
            decider,
            tls: Arc::new(tls),
            watching,
            gauges,
        }
        .run(requests, events, shutdown),
    );
    Ok(())
}

/// The worker's state.
struct Worker {
    broker: Arc<Engine>,
    decider: Arc<Decider>,
    tls: Arc<Vec<Arc<TlsListener>>>,
    /// Renewed certificates not yet presented (fingerprint), with the
    /// serial each replaces: revoked when the new one is first used.
    watching: HashMap<String, String>,
    /// Certificate and provisioning metrics.
    gauges: gauges::Gauges,
}

impl Worker {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<ProvisionRequest>,
        mut events: broadcast::Receiver<Event>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut refresh = tokio::time::interval(GAUGE_INTERVAL);
        loop {
            tokio::select! {
                _ = refresh.tick() => self.refresh_gauges().await,
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    self.handle(request).await;
                }
                event = events.recv() => match event {
                    Ok(Event::Connected(connected)) => {
                        let fingerprint = connected
                            .tls
                            .as_ref()
                            .and_then(|tls| tls.client_cert.as_ref())
                            .map(|cert| cert.fingerprint_sha256.to_ascii_lowercase());
                        if let Some(old) = fingerprint.and_then(|f| self.watching.remove(&f)) {
                            self.revoke_replaced(&connected.client_id, old).await;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Connects were missed: rebuild what is watched
                        // from the index and revoke what was presented
                        // meanwhile on its next connect.
                        let decider = Arc::clone(&self.decider);
                        if let Ok(watching) =
                            tokio::task::spawn_blocking(move || awaiting_first_use(&decider)).await
                        {
                            self.watching = watching;
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn handle(&mut self, request: ProvisionRequest) {
        let decider = Arc::clone(&self.decider);
        let identity = Arc::clone(&request.identity);
        let decided = tokio::task::spawn_blocking(move || {
            decider.decide(&request.identity, &request.payload)
        })
        .await;
        let Ok((answer, effects)) = decided else {
            tracing::error!(
                "Provisioning worker failed on a request of {}.",
                identity.client_id
            );
            return;
        };
        self.gauges.answered(&answer.outcome());
        self.answer(&identity.client_id, answer.to_json());
        self.apply(effects).await;
        self.refresh_gauges().await;
    }

    fn answer(&self, client_id: &str, json: String) {
        let message = Arc::new(Message {
            topic: Arc::from(response_topic(client_id)),
            payload: Bytes::from(json),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            publisher: None,
        });
        self.broker.publish(message);
    }

    async fn apply(&mut self, effects: Effects) {
        if let Some((fingerprint, old)) = effects.supersede {
            self.watching.insert(fingerprint, old);
        }
        if !effects.revoked.is_empty() {
            self.reload_crls().await;
        }
    }

    async fn revoke_replaced(&self, client_id: &str, serial: String) {
        let decider = Arc::clone(&self.decider);
        let revoked = tokio::task::spawn_blocking(move || decider.pki.revoke(&serial)).await;
        match revoked {
            Ok(Ok(revoked)) => {
                for cert in &revoked.certs {
                    tracing::info!(
                        client = %client_id,
                        "Revoked certificate {} of {}: its renewal was first used.",
                        cert.serial,
                        cert.id
                    );
                }
                self.reload_crls().await;
            }
            Ok(Err(error)) => tracing::error!("Cannot revoke a replaced certificate: {error}."),
            Err(error) => tracing::error!("Cannot revoke a replaced certificate: {error}."),
        }
    }

    async fn refresh_gauges(&self) {
        let decider = Arc::clone(&self.decider);
        let read = tokio::task::spawn_blocking(move || {
            let certs = decider.pki.list().map_err(|error| error.to_string())?;
            let pending = decider.approvals.list()?.len();
            Ok::<_, String>((certs, pending))
        })
        .await;
        match read {
            Ok(Ok((certs, pending))) => {
                self.gauges
                    .refresh(&certs, pending, time::OffsetDateTime::now_utc())
            }
            Ok(Err(error)) => tracing::warn!("Certificate metrics not updated: {error}."),
            Err(error) => tracing::warn!("Certificate metrics not updated: {error}."),
        }
    }

    async fn reload_crls(&self) {
        let tls = Arc::clone(&self.tls);
        let broker = Arc::clone(&self.broker);
        let _ =
            tokio::task::spawn_blocking(move || crate::server::reload_tls_listeners(&tls, &broker))
                .await;
    }
}

/// Renewed certificates whose predecessor is still unrevoked, from the
/// index: after a restart they are still watched.
fn awaiting_first_use(decider: &Decider) -> HashMap<String, String> {
    if decider.settings.revoke_replaced != fleetmq_core::config::RevokeReplaced::OnFirstUse {
        return HashMap::new();
    }
    let Ok(all) = decider.pki.list() else {
        return HashMap::new();
    };
    let unrevoked: HashSet<&str> = all
        .iter()
        .filter(|cert| cert.revoked_at.is_none())
        .map(|cert| cert.serial.as_str())
        .collect();
    all.iter()
        .filter(|cert| cert.revoked_at.is_none())
        .filter_map(|cert| {
            let old = cert.replaces.as_deref()?;
            unrevoked
                .contains(old)
                .then(|| (cert.fingerprint.clone(), old.to_owned()))
        })
        .collect()
}
