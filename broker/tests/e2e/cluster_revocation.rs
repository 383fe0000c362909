//! Issue 19: one certificate revocation list for every node (decision
//! 0188). Three nats-servers and fleetmq nodes whose PKI folders are
//! copies of one lab CA, each with a mutual-TLS listener checking its own
//! `crl.pem`: a device revoked through node a's API is disconnected from
//! node b (5.0: DISCONNECT 0x87) and refused there; a node started later
//! from a copy made before the revocation refuses it too; a revocation on
//! b keeps a's (the CRLs add up).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cluster_support::{wait_ready, CROSS};
use crate::harness::hostile::heavy_lock;
use crate::harness::nats::NatsCluster;
use crate::harness::pki::{self, Issued};
use crate::harness::tls::{self, ANY_VERSION, DEBUG_LOG};
use crate::harness::web::request;
use crate::harness::*;
use crate::tls_reload::{certs_cli, lab_device};

/// The log line of a node that follows the shared CRL.
const FOLLOWS: &str = "follows the cluster's certificate revocation list";

/// Copies the PKI folder `from` (keys keep their 0600 mode).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Node `name` on `nats` with the lab PKI folder `pki` and a mutual-TLS
/// listener `tls` that checks its CRL.
fn node(nats: &NatsCluster, name: &str, pki: &Path) -> Broker {
    let listener = format!(
        "cert = {}\nkey = {}\nclient_ca = {}\nclient_certs = \"required\"\ncrl = [{}]\n",
        pki::toml_path(&pki.join("server/localhost.crt")),
        pki::toml_path(&pki.join("server/localhost.key")),
        pki::toml_path(&pki.join("ca.crt")),
        pki::toml_path(&pki.join("crl.pem")),
    );
    let toml = format!(
        "{DEBUG_LOG}\n{}\n[provision]\npki_dir = {}\n",
        nats.node_toml(name),
        pki::toml_path(pki)
    );
    let broker = Broker::start_with_listeners(&[ListenerSpec::tls("tls", &listener)], &toml);
    wait_ready(&broker, 1, nats);
    broker.assert_log(FOLLOWS, CROSS);
    broker
}

/// A 5.0 mutual-TLS session of `device` on `broker`, or None when the
/// broker refuses the certificate (the handshake or the connection fails).
fn session(broker: &Broker, ca: &Path, device: &Issued, id: &str) -> Option<RawClient> {
    let config = tls::client_config(ca, Some(device), ANY_VERSION);
    let transport = tls::connect(broker.addr_of("tls"), config).ok()?;
    let mut client = RawClient::over(transport);
    client.send_connect(&ConnectBuilder::v5(id));
    match client.recv_packet(WAIT) {
        Some(Packet::ConnAck(ack)) if ack.reason == ReasonCode::SUCCESS => Some(client),
        _ => None,
    }
}

/// True once `device` is refused by `broker`, trying until `within`.
fn refused_within(broker: &Broker, ca: &Path, device: &Issued, id: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if session(broker, ca, device, id).is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn revoke(broker: &Broker, id: &str) -> serde_json::Value {
    let answer = request(
        broker.http_addr(),
        "POST",
        &format!("/api/certs/{id}/revoke"),
        &[],
        "",
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

#[test]
fn a_certificate_revoked_on_one_node_is_refused_on_every_node() {
    if skip_on_mosquitto("fleetmq's NATS cluster backend") {
        return;
    }
    let _heavy = heavy_lock();
    let nats = NatsCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let pki_a = dir.path().join("pki-a");
    certs_cli(&pki_a, &["init"]);
    certs_cli(
        &pki_a,
        &["server", "--name", "localhost", "--ip", "127.0.0.1"],
    );
    certs_cli(&pki_a, &["device", "dev-gone", "dev-stays", "dev-later"]);
    let (pki_b, pki_c) = (dir.path().join("pki-b"), dir.path().join("pki-c"));
    copy_dir(&pki_a, &pki_b);
    copy_dir(&pki_a, &pki_c);
    let ca = pki_a.join("ca.crt");
    let gone = lab_device(&pki_a, "dev-gone");
    let stays = lab_device(&pki_a, "dev-stays");
    let later = lab_device(&pki_a, "dev-later");

    let a = node(&nats, "a", &pki_a);
    let b = node(&nats, "b", &pki_b);
    let mut device = session(&b, &ca, &gone, "dev-gone")
        .unwrap_or_else(|| panic!("dev-gone refused on b before any revocation:\n{}", b.logs()));
    let mut bystander = session(&b, &ca, &stays, "dev-stays").expect("dev-stays on b");
    device.ping();

    // Revoked through a's API: a holds no connection of it.
    let answer = revoke(&a, "dev-gone");
    assert_eq!(answer["disconnected"], 0, "{answer}");

    // b closes the held connection (DISCONNECT 0x87) and refuses a new one.
    let closed = device
        .wait_closed(CROSS)
        .unwrap_or_else(|| panic!("revoked dev-gone still connected to b:\n{}", b.logs()));
    assert_eq!(
        closed.disconnect_reason(),
        Some(ReasonCode::NOT_AUTHORIZED),
        "{:?}",
        closed.packets
    );
    b.assert_log("certificate revocation list changed on node a", WAIT);
    b.assert_log("Client dev-gone disconnected: certificate revoked", WAIT);
    assert!(
        session(&b, &ca, &gone, "dev-gone").is_none(),
        "b let dev-gone in again"
    );
    assert_eq!(
        std::fs::read(pki_b.join("crl.pem")).unwrap(),
        std::fs::read(pki_a.join("crl.pem")).unwrap(),
        "b's crl.pem is a's"
    );
    bystander.ping();

    // A node started later, from a copy made before the revocation.
    let c = node(&nats, "c", &pki_c);
    assert!(
        session(&c, &ca, &gone, "dev-gone").is_none(),
        "c let dev-gone in"
    );
    assert!(
        session(&c, &ca, &stays, "dev-stays").is_some(),
        "c refused dev-stays"
    );

    // A revocation made on b keeps a's: every node refuses both.
    let mut on_a = session(&a, &ca, &later, "dev-later").expect("dev-later on a");
    revoke(&b, "dev-later");
    assert!(on_a.expect_closed(CROSS), "dev-later still connected to a");
    for node in [&a, &b, &c] {
        assert!(
            refused_within(node, &ca, &later, "dev-later", CROSS),
            "dev-later let in:\n{}",
            node.logs()
        );
        assert!(
            session(node, &ca, &gone, "dev-gone").is_none(),
            "dev-gone let in"
        );
    }
    assert!(
        session(&a, &ca, &stays, "dev-stays").is_some(),
        "a refused dev-stays"
    );
}
