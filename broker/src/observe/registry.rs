//! The device registry: which clients are connected, since when, from
//! where, with which certificate and how long their setup took; who left
//! recently and why; the last connects of every client id; handshake
//! statistics; certificates about to expire.
//!
//! It is written by one task (the watcher, fed by the event channel) and
//! read by HTTP handlers. Everything is bounded: recent disconnects, the
//! connects kept per client id, and the number of client ids remembered.
//! The lock is synchronous, never held across an `.await`, and never taken
//! by the data path.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

use super::clock::{now_secs, rfc3339_secs};
use super::handshakes::{HandshakeStats, HandshakeSummary};
use super::view::{ClientDetail, ClientView, Departure, Device, Remembered};
use fleetmq_core::events::{Connected, Event};
use fleetmq_core::peer::PeerCertificate;

/// Client ids whose connect history is remembered; the id whose last
/// connect is oldest is forgotten first.
const HISTORY_CLIENTS: usize = 10_000;

/// A certificate counts as expiring when it ends within this time.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// How much the registry remembers.
#[derive(Debug, Clone, Copy)]
pub struct RegistryLimits {
    /// Recently disconnected clients kept.
    pub recent_disconnects: usize,
    /// Connects kept per client id.
    pub connect_history: usize,
}

/// A client certificate that expires within [`EXPIRY_WARNING`], from the
/// last connect of a client id.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExpiringCertificate {
    pub client_id: String,
    pub cn: Option<String>,
    pub subject: String,
    pub serial: String,
    pub not_after: String,
    pub not_after_unix: i64,
    /// Negative when already expired.
    pub days_left: f64,
    pub connected: bool,
}

/// `GET /api/handshakes/summary`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    #[serde(flatten)]
    pub handshakes: HandshakeSummary,
    /// Soonest first.
    pub expiring_certificates: Vec<ExpiringCertificate>,
    pub connected: usize,
    /// Events the registry missed because it fell behind (its numbers may
    /// be incomplete when this is not 0).
    pub events_lost: u64,
}

#[derive(Debug, Default)]
struct State {
    connected: HashMap<Arc<str>, Device>,
    /// Oldest first.
    departed: VecDeque<Device>,
    /// Per client id, newest first.
    history: HashMap<Arc<str>, VecDeque<Remembered>>,
    /// Every connect as (client id, connection), oldest first: the front
    /// entry that is still its client's newest record names the client id
    /// to forget next. Entries made stale by a later connect are skipped
    /// and compacted away.
    history_order: VecDeque<(Arc<str>, u64)>,
    handshakes: HandshakeStats,
    events_lost: u64,
}

/// The device registry; see the module documentation.
#[derive(Debug)]
pub struct Registry {
    state: Mutex<State>,
    limits: RegistryLimits,
    /// Bumped on every change, so live views know when to refresh.
    changes: watch::Sender<u64>,
}

impl Registry {
    pub fn new(limits: RegistryLimits) -> Registry {
        Registry {
            state: Mutex::new(State::default()),
            limits,
            changes: watch::channel(0).0,
        }
    }

    /// Applies one event.
    pub fn record(&self, event: &Event) {
        {
            let mut state = self.state.lock();
            match event {
                Event::Connected(connected) => self.connected(&mut state, Arc::clone(connected)),
                Event::Disconnected {
                    client_id,
                    connection,
                    reason,
                } => self.departed(&mut state, client_id, *connection, reason),
                Event::Subscribed {
                    client_id,
                    filter,
                    qos,
                } => {
                    if let Some(device) = state.connected.get_mut(client_id) {
                        device.subscriptions.insert(filter.clone(), *qos);
                    }
                }
                Event::Unsubscribed { client_id, filter } => {
                    if let Some(device) = state.connected.get_mut(client_id) {
                        device.subscriptions.remove(filter);
                    }
                }
                Event::DeviceReport {
                    client_id,
                    connection,
                    payload,
                } => {
                    if let Some(device) = state
                        .connected
                        .get_mut(client_id)
                        .filter(|device| device.info.connection == *connection)
                    {
                        match super::device_report::parse(payload) {
                            Ok(report) => device.report = Some(Box::new(report)),
                            Err(error) => tracing::debug!(
                                "Report of {client_id} on $fleetmq/device/handshake ignored: {error}."
                            ),
                        }
                    }
                }
                Event::HandshakeFailed {
                    listener,
                    peer,
                    reason,
                    detail,
                } => {
                    state.handshakes.failed(reason);
                    state
                        .handshakes
                        .remember_failure(super::handshakes::FailedHandshake {
                            listener: listener.to_string(),
                            peer: peer.to_string(),
                            reason,
                            detail: detail.clone(),
                        });
                }
            }
        }
        self.changed();
    }

    fn connected(&self, state: &mut State, info: Arc<Connected>) {
        let connected_at = info.timing.accepted_at + info.timing.total.unwrap_or_default();
        if let (Some(tls), Some(duration)) = (&info.tls, info.timing.tls_total) {
            state.handshakes.record_handshake(
                tls.auth,
                tls.resumed,
                duration,
                info.timing.split.as_ref(),
                tls.client_cert.as_ref(),
            );
        }
        let device = Device {
            info: Arc::clone(&info),
            connected_at,
            subscriptions: BTreeMap::new(),
            departure: None,
            report: None,
        };
        // Room for one record at first: most devices connect once per
        // broker run, and a default deque would reserve four.
        let history = state
            .history
            .entry(Arc::clone(&info.client_id))
            .or_insert_with(|| std::collections::VecDeque::with_capacity(1));
        history.push_front(device.record());
        history.truncate(self.limits.connect_history.max(1));
        state
            .history_order
            .push_back((Arc::clone(&info.client_id), info.connection));
        if state.history.len() > HISTORY_CLIENTS {
            forget_oldest_history(state);
        }
        // A take-over whose new connection reports first: the old one
        // leaves now; its own disconnect event fills in the reason later.
        if let Some(previous) = state.connected.insert(Arc::clone(&info.client_id), device) {
            self.depart(state, previous, "session taken over".to_string());
        }
    }

    fn departed(&self, state: &mut State, client_id: &str, connection: u64, reason: &str) {
        if let Some(history) = state.history.get_mut(client_id) {
            if let Some(record) = history.iter_mut().find(|r| r.info.connection == connection) {
                record.ended = Some((SystemTime::now(), reason.to_string()));
            }
        }
        let is_current = state
            .connected
            .get(client_id)
            .is_some_and(|device| device.info.connection == connection);
        if is_current {
            if let Some(device) = state.connected.remove(client_id) {
                self.depart(state, device, reason.to_string());
            }
        } else if let Some(device) = state
            .departed
            .iter_mut()
            .find(|d| d.info.connection == connection)
        {
            if let Some(departure) = device.departure.as_mut() {
                departure.reason = reason.to_string();
            }
        }
    }

    fn depart(&self, state: &mut State, mut device: Device, reason: String) {
        device.departure = Some(Box::new(Departure {
            at: SystemTime::now(),
            reason,
        }));
        state.departed.push_back(device);
        while state.departed.len() > self.limits.recent_disconnects {
            state.departed.pop_front();
        }
    }

    /// Adds the subscriptions a resumed session brought along (no
    /// Subscribed events announce those).
    pub fn restore_subscriptions(
        &self,
        client_id: &str,
        connection: u64,
        subscriptions: BTreeMap<String, u8>,
    ) {
        {
            let mut state = self.state.lock();
            match state.connected.get_mut(client_id) {
                Some(device) if device.info.connection == connection => {
                    device.subscriptions.extend(subscriptions);
                }
                _ => return,
            }
        }
        self.changed();
    }

    /// After events were lost: drops connected entries whose connection is
    /// no longer attached (their disconnect event was among the lost).
    pub fn reconcile(&self, lost: u64, is_attached: impl Fn(&str, u64) -> bool) {
        {
            let mut state = self.state.lock();
            state.events_lost += lost;
            let gone: Vec<Arc<str>> = state
                .connected
                .iter()
                .filter(|(id, device)| !is_attached(id, device.info.connection))
                .map(|(id, _)| Arc::clone(id))
                .collect();
            for id in gone {
                if let Some(device) = state.connected.remove(&id) {
                    self.depart(&mut state, device, "disconnected (event lost)".to_string());
                }
            }
        }
        self.changed();
    }

    fn changed(&self) {
        self.changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// A receiver that wakes on every change.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Connected clients, by client id.
    pub fn clients(&self) -> Vec<ClientView> {
        let state = self.state.lock();
        let mut views: Vec<ClientView> = state.connected.values().map(Device::view).collect();
        drop(state);
        views.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        views
    }

    /// Recently disconnected clients, newest first.
    pub fn disconnected(&self) -> Vec<ClientView> {
        let state = self.state.lock();
        state.departed.iter().rev().map(Device::view).collect()
    }

    /// The connected client with this id, else the last one that left;
    /// with its connect history.
    pub fn client(&self, client_id: &str) -> Option<ClientDetail> {
        let state = self.state.lock();
        let device = state.connected.get(client_id).or_else(|| {
            state
                .departed
                .iter()
                .rev()
                .find(|d| &*d.info.client_id == client_id)
        })?;
        Some(ClientDetail {
            client: device.view(),
            history: state
                .history
                .get(client_id)
                .map(|h| h.iter().map(Remembered::view).collect())
                .unwrap_or_default(),
        })
    }

    /// Whether a client with this id is connected now, and its connection.
    pub fn connection_of(&self, client_id: &str) -> Option<u64> {
        let state = self.state.lock();
        state.connected.get(client_id).map(|d| d.info.connection)
    }

    pub fn summary(&self) -> Summary {
        let state = self.state.lock();
        Summary {
            handshakes: state.handshakes.summary(),
            expiring_certificates: expiring(&state, EXPIRY_WARNING),
            connected: state.connected.len(),
            events_lost: state.events_lost,
        }
    }

    /// Connected clients per listener name.
    pub fn connections_by_listener(&self) -> BTreeMap<String, u64> {
        let state = self.state.lock();
        let mut counts = BTreeMap::new();
        for device in state.connected.values() {
            *counts.entry(device.info.listener.to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// Seconds until the soonest-expiring client certificate among the last
    /// connect of every remembered client id; None without certificates.
    pub fn min_cert_expiry_secs(&self) -> Option<i64> {
        let state = self.state.lock();
        let now = now_secs();
        latest_certificates(&state)
            .map(|(_, cert)| cert.not_after - now)
            .min()
    }
}

/// The certificate of the newest connect of each client id.
fn latest_certificates(state: &State) -> impl Iterator<Item = (&Arc<str>, &PeerCertificate)> + '_ {
    state.history.iter().filter_map(|(id, records)| {
        records
            .front()
            .and_then(Remembered::client_cert)
            .map(|cert| (id, cert))
    })
}

fn expiring(state: &State, within: Duration) -> Vec<ExpiringCertificate> {
    let now = now_secs();
    let horizon = now + within.as_secs() as i64;
    let mut found: Vec<ExpiringCertificate> = latest_certificates(state)
        .filter(|(_, cert)| cert.not_after <= horizon)
        .map(|(id, cert)| ExpiringCertificate {
            client_id: id.to_string(),
            cn: cert.cn.as_deref().map(String::from),
            subject: cert.subject.clone(),
            serial: cert.serial.to_string(),
            not_after: rfc3339_secs(cert.not_after),
            not_after_unix: cert.not_after,
            days_left: ((cert.not_after - now) as f64 / 86_400.0 * 10.0).round() / 10.0,
            connected: state.connected.contains_key(id),
        })
        .collect();
    found.sort_by_key(|cert| cert.not_after_unix);
    found
}

/// Forgets the history of the client id whose last connect is oldest,
/// in amortized constant time (a scan of every client id per connect made
/// a connect storm of new ids spend a third of the broker's CPU here).
fn forget_oldest_history(state: &mut State) {
    let is_newest = |history: &HashMap<Arc<str>, VecDeque<Remembered>>,
                     (id, connection): &(Arc<str>, u64)| {
        history
            .get(id)
            .and_then(|records| records.front())
            .is_some_and(|record| record.info.connection == *connection)
    };
    while let Some(entry) = state.history_order.pop_front() {
        if is_newest(&state.history, &entry) {
            state.history.remove(&entry.0);
            break;
        }
    }
    if state.history_order.len() > 2 * state.history.len() + 64 {
        let history = &state.history;
        state
            .history_order
            .retain(|entry| is_newest(history, entry));
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
