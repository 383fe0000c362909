//! Certificate provisioning by claim (issue 20, docs/provisioning.md):
//! devices holding only a batch's claim certificate get their own
//! certificate over MQTT, reconnect with it and publish `CONNECTED!`;
//! renewal near expiry revokes the replaced certificate once the new one
//! is used; a revoked device is disconnected and cannot renew; every
//! refusal case leaves nothing issued and nobody else affected. The PKI
//! is made with the real `fleetmq certs`, chains are checked with
//! `openssl verify`, TLS and MQTT are real.

mod device;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use device::{ask, connect, openssl_verify, request, Device};
use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};

use crate::harness::pki::Issued;
use crate::harness::{skip_on_mosquitto, Broker, ListenerSpec, RawClient, ReasonCode, WAIT};

/// Devices provisioned concurrently in the fleet test.
const FLEET: usize = 50;
/// At most this many devices talk to the broker at once.
const PARALLEL: usize = 10;

/// The lab PKI made with `fleetmq certs`, and the claim certificate.
struct Lab {
    _temp: tempfile::TempDir,
    root: PathBuf,
    pki: PathBuf,
    claim: Issued,
}

impl Lab {
    fn new() -> Lab {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_path_buf();
        let pki = root.join("pki");
        let dir = pki.to_str().unwrap().to_owned();
        certs_ok(&root, &["init", "--dir", &dir]);
        certs_ok(
            &root,
            &[
                "server",
                "--dir",
                &dir,
                "--name",
                "localhost",
                "--ip",
                "127.0.0.1",
            ],
        );
        certs_ok(&root, &["claim", "--dir", &dir, "batch1"]);
        let claim_dir = pki.join("devices/claim-batch1");
        Lab {
            claim: Issued {
                cert: claim_dir.join("claim-batch1.crt"),
                key: claim_dir.join("claim-batch1.key"),
                der: Vec::new(),
                serial: Vec::new(),
            },
            _temp: temp,
            root,
            pki,
        }
    }

    fn ca(&self) -> PathBuf {
        self.pki.join("ca.crt")
    }

    /// A broker with a provisioning mutual-TLS listener `prov` and
    /// `[provision]` lines `settings`.
    fn broker(&self, settings: &str) -> Broker {
        let pki = self.pki.display();
        let tls = format!(
            "cert = \"{pki}/server/localhost.crt\"\nkey = \"{pki}/server/localhost.key\"\n\
             client_ca = \"{pki}/ca.crt\"\ncrl = [\"{pki}/crl.pem\"]\nclient_certs = \"required\"\n"
        );
        Broker::start_with_listeners(
            &[ListenerSpec::tls("prov", &tls).with_settings("provision = true")],
            &format!(
                "[provision]\nenabled = true\npki_dir = \"{pki}\"\n{settings}\n\n[log]\nlevel = \"info\"\n"
            ),
        )
    }

    /// Issued device certificates in the index (`fleetmq certs list`).
    fn issued_count(&self) -> usize {
        let out = certs_ok(&self.root, &["list", "--dir", self.pki.to_str().unwrap()]);
        out.lines()
            .filter(|line| line.starts_with("device") && !line.contains("claim-"))
            .count()
    }
}

fn certs_ok(cwd: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fleetmq"))
        .current_dir(cwd)
        .arg("certs")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "fleetmq certs {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Asks with the claim certificate; returns the answer.
fn claim_ask(
    lab: &Lab,
    broker: &Broker,
    device: &Device,
    body: &serde_json::Value,
) -> serde_json::Value {
    let mut client = connect(
        broker.addr_of("prov"),
        &lab.ca(),
        &lab.claim,
        &device.id,
        false,
    )
    .unwrap_or_else(|error| panic!("{}: {error}", device.id));
    ask(&mut client, &device.id, body)
}

/// Provisions `device` with the claim certificate and stores its chain.
fn provision(lab: &Lab, broker: &Broker, device: &Device) {
    let answer = claim_ask(
        lab,
        broker,
        device,
        &request(&device.id, &device.csr(), None),
    );
    assert_eq!(answer["status"], "issued", "{}: {answer}", device.id);
    device.store(answer["chain"].as_str().unwrap());
}

fn assert_refused(answer: &serde_json::Value, reason: &str) {
    assert_eq!(answer["status"], "refused", "{answer}");
    assert_eq!(answer["reason"], reason, "{answer}");
    assert!(
        !answer["detail"].as_str().unwrap_or("").is_empty(),
        "{answer}"
    );
}

#[test]
fn fifty_devices_provision_themselves_and_connect_with_their_own_certificates() {
    if skip_on_mosquitto("provisioning is fleetmq's") {
        return;
    }
    let lab = Lab::new();
    let broker = lab.broker("policy = \"pattern\"\nid_pattern = \"esp32_*\"");
    let mut watcher = RawClient::connect_v311(broker.addr(), "watcher", true).0;
    watcher.subscribe(1, "/this/test/#", 0);

    let devices: Vec<Device> = (0..FLEET)
        .map(|n| Device::new(&lab.root.join("devices"), &format!("esp32_{n:06X}")))
        .collect();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some(device) = devices.get(at) else { break };
                provision(&lab, &broker, device);
                let mut own = connect(
                    broker.addr_of("prov"),
                    &lab.ca(),
                    &device.own(),
                    &device.id,
                    false,
                )
                .unwrap_or_else(|error| panic!("{} with its own certificate: {error}", device.id));
                let topic = format!("/this/test/{}", device.id);
                own.publish(&topic, b"CONNECTED!", 1, false);
            });
        }
    });
    eprintln!(
        "{FLEET} devices provisioned and connected in {:?}",
        started.elapsed()
    );

    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < FLEET && Instant::now() < deadline {
        let publish = watcher.expect_app_publish();
        assert_eq!(&publish.payload[..], b"CONNECTED!");
        seen.insert(publish.topic.to_string());
    }
    assert_eq!(
        seen.len(),
        FLEET,
        "every device said CONNECTED! with its own certificate"
    );
    for device in &devices {
        let (ok, text) = openssl_verify(&lab.ca(), &device.chain_path());
        assert!(ok, "{}: {text}", device.id);
    }
    assert_eq!(lab.issued_count(), FLEET);
    let metrics = crate::harness::web::get(broker.http_addr(), "/metrics", None).body;
    for line in [
        format!("fleetmq_certificates{{state=\"valid\"}} {}", FLEET + 1),
        format!("fleetmq_provision_answers_total{{outcome=\"issued\"}} {FLEET}"),
        "fleetmq_certificates_expiring{within=\"7d\"} 0".to_owned(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    let pem = std::fs::read_to_string(devices[0].own().cert).unwrap();
    let issued = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1;
    let cert = issued.parse_x509().unwrap();
    assert_eq!(
        cert.subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        devices[0].id
    );
    assert!(!cert.is_ca());

    // A claim certificate asks again for a provisioned id with another
    // key: refused; with the same key (a lost answer): the same chain.
    let impostor = Device::new(&lab.root.join("impostor"), &devices[1].id);
    let answer = claim_ask(
        &lab,
        &broker,
        &impostor,
        &request(&impostor.id, &impostor.csr(), None),
    );
    assert_refused(&answer, "already-provisioned");
    let again = claim_ask(
        &lab,
        &broker,
        &devices[1],
        &request(&devices[1].id, &devices[1].csr(), None),
    );
    assert_eq!(again["status"], "issued", "{again}");
    assert_eq!(
        again["chain"].as_str().unwrap(),
        std::fs::read_to_string(devices[1].chain_path()).unwrap()
    );
    assert_eq!(lab.issued_count(), FLEET);
}

#[test]
fn refusals_issue_nothing_and_affect_nobody() {
    if skip_on_mosquitto("provisioning is fleetmq's") {
        return;
    }
    let lab = Lab::new();
    let broker = lab.broker("policy = \"pattern\"\nid_pattern = \"esp32_*\"");
    let root = lab.root.join("devices");
    let good = Device::new(&root, "esp32_GOOD");
    provision(&lab, &broker, &good);
    let mut bystander = connect(
        broker.addr_of("prov"),
        &lab.ca(),
        &good.own(),
        &good.id,
        false,
    )
    .unwrap();
    bystander.subscribe(1, "/this/test/#", 0);

    let rogue = Device::new(&root, "rogue_1");
    assert_refused(
        &claim_ask(
            &lab,
            &broker,
            &rogue,
            &request(&rogue.id, &rogue.csr(), None),
        ),
        "id-not-allowed",
    );
    let device = Device::new(&root, "esp32_BAD");
    for (body, reason) in [
        (
            request(
                &device.id,
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
                None,
            ),
            "malformed-csr",
        ),
        (
            request(
                &device.id,
                &device.csr_with(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)),
                None,
            ),
            "forbidden-request",
        ),
        (
            request(
                &device.id,
                &device.csr_with(|p| p.key_usages = vec![KeyUsagePurpose::KeyCertSign]),
                None,
            ),
            "forbidden-request",
        ),
        (request("esp32_OTHER", &device.csr(), None), "id-mismatch"),
        (
            serde_json::json!({"device_id": device.id, "csr": device.csr(), "is_ca": true}),
            "malformed-request",
        ),
    ] {
        assert_refused(&claim_ask(&lab, &broker, &device, &body), reason);
    }

    // The claim certificate publishes elsewhere, subscribes elsewhere,
    // and tries to answer for another device: refused (5.0 reason codes).
    let mut claim = connect(
        broker.addr_of("prov"),
        &lab.ca(),
        &lab.claim,
        "esp32_SNEAK",
        true,
    )
    .unwrap();
    assert_eq!(
        claim.publish("/this/test/esp32_SNEAK", b"CONNECTED!", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        claim.publish("$fleetmq/provision/esp32_GOOD/response", b"{}", 1, false),
        ReasonCode::NOT_AUTHORIZED
    );
    for filter in [
        "#",
        "/this/test/#",
        "$fleetmq/provision/esp32_GOOD/response",
    ] {
        assert!(claim.subscribe(2, filter, 0)[0].is_error(), "{filter}");
    }
    // Nor through its will.
    let willing = device::connect_with(
        broker.addr_of("prov"),
        &lab.ca(),
        &lab.claim,
        crate::harness::ConnectBuilder::v311("esp32_WILL").will(
            "/this/test/esp32_WILL",
            b"bye",
            0,
            false,
        ),
    )
    .unwrap();
    willing.drop_connection();
    broker.assert_log("Denied publish on '/this/test/esp32_WILL'", WAIT);
    // The bystander saw none of it and still works.
    assert!(bystander.expect_silence(Duration::from_millis(300)).is_ok());
    bystander.publish("/this/test/esp32_GOOD", b"still here", 0, false);
    assert_eq!(&bystander.expect_app_publish().payload[..], b"still here");
    assert_eq!(lab.issued_count(), 1, "nothing issued by any refusal");
    broker.assert_log(
        "Provisioning request of client rogue_1 refused (id-not-allowed)",
        WAIT,
    );
}

#[test]
fn renewal_revokes_the_old_certificate_once_the_new_one_is_used_and_revocation_bites() {
    if skip_on_mosquitto("provisioning is fleetmq's") {
        return;
    }
    let lab = Lab::new();
    let broker = lab.broker(
        "policy = \"pattern\"\nvalidity_secs = 60\nrenew_before_secs = 55\nrevoke_replaced = \"on-first-use\"",
    );
    let root = lab.root.join("devices");
    let device = Device::new(&root, "esp32_RENEW");
    provision(&lab, &broker, &device);
    let old = device.own();
    let old_copy = Issued {
        cert: root.join("old.crt"),
        key: old.key.clone(),
        der: Vec::new(),
        serial: Vec::new(),
    };
    std::fs::copy(&old.cert, &old_copy.cert).unwrap();

    // Too early: more than renew_before_secs left.
    let mut own = connect(broker.addr_of("prov"), &lab.ca(), &old, &device.id, true).unwrap();
    assert_refused(
        &ask(
            &mut own,
            &device.id,
            &request(&device.id, &device.csr(), None),
        ),
        "not-due",
    );
    // Due after a few seconds, as the firmware's threshold tells too.
    let pem = std::fs::read_to_string(&old.cert).unwrap();
    let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents;
    let ends = fleetmq_firmware::provision::renewal::not_after(&der).unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    assert!(!fleetmq_firmware::provision::renewal::due(ends, now(), 55));
    thread::sleep(Duration::from_secs(6));
    assert!(fleetmq_firmware::provision::renewal::due(ends, now(), 55));
    let answer = ask(
        &mut own,
        &device.id,
        &request(&device.id, &device.csr(), None),
    );
    assert_eq!(answer["status"], "issued", "{answer}");
    device.store(answer["chain"].as_str().unwrap());
    let (ok, text) = openssl_verify(&lab.ca(), &device.chain_path());
    assert!(ok, "{text}");

    // The old certificate still works until the new one is used ...
    let mut still_old = connect(
        broker.addr_of("prov"),
        &lab.ca(),
        &old_copy,
        "esp32_RENEW_old",
        true,
    )
    .unwrap_or_else(|error| panic!("{error}\n{}", broker.logs()));
    still_old.ping();
    // ... then it is revoked, and its connection closed.
    let mut victim = connect(
        broker.addr_of("prov"),
        &lab.ca(),
        &device.own(),
        &device.id,
        true,
    )
    .unwrap();
    broker.assert_log("its renewal was first used", WAIT);
    assert!(
        still_old.expect_closed(WAIT),
        "the replaced certificate's connection is closed"
    );
    assert!(
        connect(
            broker.addr_of("prov"),
            &lab.ca(),
            &old_copy,
            "esp32_RENEW_old",
            true
        )
        .is_err(),
        "the replaced certificate is refused"
    );

    // Revocation by the operator: disconnected, and no way back.
    victim.ping();
    certs_ok(
        &lab.root,
        &["revoke", "--dir", lab.pki.to_str().unwrap(), &device.id],
    );
    broker.sighup();
    assert!(
        victim.expect_closed(WAIT),
        "the revoked device is disconnected"
    );
    assert!(
        connect(
            broker.addr_of("prov"),
            &lab.ca(),
            &device.own(),
            &device.id,
            true
        )
        .is_err(),
        "the revoked certificate cannot connect, so cannot renew"
    );
    let fresh = Device::new(&lab.root.join("again"), &device.id);
    assert_refused(
        &claim_ask(
            &lab,
            &broker,
            &fresh,
            &request(&fresh.id, &fresh.csr(), None),
        ),
        "revoked",
    );
}

#[test]
fn tokens_work_once_even_across_a_restart_and_approval_waits_for_an_operator() {
    if skip_on_mosquitto("provisioning is fleetmq's") {
        return;
    }
    let lab = Lab::new();
    let tokens = lab.root.join("tokens");
    std::fs::write(&tokens, "T-one\nT-two esp32_B\n").unwrap();
    let mut broker = lab.broker(&format!(
        "policy = \"token\"\ntokens_file = \"{}\"",
        tokens.display()
    ));
    let root = lab.root.join("devices");
    let a = Device::new(&root, "esp32_A");
    let b = Device::new(&root, "esp32_B");
    let c = Device::new(&root, "esp32_C");
    let answer = claim_ask(&lab, &broker, &a, &request(&a.id, &a.csr(), Some("T-one")));
    assert_eq!(answer["status"], "issued", "{answer}");
    assert_refused(
        &claim_ask(&lab, &broker, &b, &request(&b.id, &b.csr(), Some("T-one"))),
        "token-used",
    );
    assert_refused(
        &claim_ask(&lab, &broker, &c, &request(&c.id, &c.csr(), Some("T-two"))),
        "token-invalid",
    );
    assert_refused(
        &claim_ask(&lab, &broker, &c, &request(&c.id, &c.csr(), None)),
        "token-invalid",
    );
    broker.restart();
    assert_refused(
        &claim_ask(&lab, &broker, &c, &request(&c.id, &c.csr(), Some("T-one"))),
        "token-used",
    );
    let answer = claim_ask(&lab, &broker, &b, &request(&b.id, &b.csr(), Some("T-two")));
    assert_eq!(answer["status"], "issued", "{answer}");
    assert_eq!(lab.issued_count(), 2);

    // Approval: pending until `fleetmq certs approve`, for that key only.
    let approval = lab.broker("policy = \"approval\"");
    let data_dir = approval.dir().join("fleetmq-data");
    let data_dir = data_dir.to_str().unwrap();
    let d = Device::new(&root, "esp32_D");
    let answer = claim_ask(&lab, &approval, &d, &request(&d.id, &d.csr(), None));
    assert_eq!(answer["status"], "pending", "{answer}");
    let listed = certs_ok(&lab.root, &["pending", "--data-dir", data_dir]);
    assert!(
        listed.contains("esp32_D") && listed.contains("claim-batch1"),
        "{listed}"
    );
    certs_ok(&lab.root, &["approve", "--data-dir", data_dir, "esp32_D"]);
    let other_key = Device::new(&lab.root.join("other"), "esp32_D");
    let answer = claim_ask(
        &lab,
        &approval,
        &other_key,
        &request(&d.id, &other_key.csr(), None),
    );
    assert_eq!(
        answer["status"], "pending",
        "another key is not approved: {answer}"
    );
    // The dashboard's API approves the same way.
    let http = approval.http_addr();
    let listed = crate::harness::web::get(http, "/api/provision/pending", None);
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(
        listed.json()["pending"][0]["device_id"],
        "esp32_D",
        "{}",
        listed.body
    );
    let approved = crate::harness::web::request(
        http,
        "POST",
        "/api/provision/pending/esp32_D/approve",
        &[],
        "",
    );
    assert_eq!(approved.status, 200, "{}", approved.body);
    let answer = claim_ask(
        &lab,
        &approval,
        &other_key,
        &request(&d.id, &other_key.csr(), None),
    );
    assert_eq!(answer["status"], "issued", "{answer}");
    let listed = certs_ok(&lab.root, &["pending", "--data-dir", data_dir]);
    assert!(listed.contains("no provisioning request"), "{listed}");
    // Per-device certificate state for the dashboard.
    let certs = crate::harness::web::get(http, "/api/provision/certificates", None).json();
    let d = certs["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|cert| cert["id"] == "esp32_D")
        .unwrap_or_else(|| panic!("{certs}"));
    assert_eq!(d["issued_by"], "approval", "{certs}");
    assert!(d["revoked_at"].is_null(), "{certs}");
}

/// One command revokes a device's certificate and disconnects it (issue
/// 18): `POST /api/certs/{id}/revoke`, no SIGHUP, no file edit.
#[test]
fn one_api_call_revokes_a_certificate_and_disconnects_its_device() {
    if skip_on_mosquitto("the revocation API is fleetmq's") {
        return;
    }
    let lab = Lab::new();
    let broker = lab.broker("policy = \"pattern\"");
    let root = lab.root.join("devices");
    let device = Device::new(&root, "esp32_GONE");
    provision(&lab, &broker, &device);
    let bystander = Device::new(&root, "esp32_STAYS");
    provision(&lab, &broker, &bystander);
    let addr = broker.addr_of("prov");
    let mut victim = connect(addr, &lab.ca(), &device.own(), &device.id, true).unwrap();
    let mut other = connect(addr, &lab.ca(), &bystander.own(), &bystander.id, true).unwrap();
    victim.ping();

    let post = |path: &str| crate::harness::web::request(broker.http_addr(), "POST", path, &[], "");
    let answer = post(&format!("/api/certs/{}/revoke", device.id));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    assert_eq!(body["revoked"][0]["id"], device.id.as_str(), "{body}");
    assert_eq!(body["disconnected"], 1, "{body}");
    assert!(
        victim.expect_closed(WAIT),
        "the revoked device is disconnected"
    );
    other.ping();
    assert!(
        connect(addr, &lab.ca(), &device.own(), &device.id, true).is_err(),
        "the revoked certificate cannot connect again"
    );
    broker.assert_log("from the dashboard", WAIT);
    // Again: 409; unknown: 404; nothing else changed.
    assert_eq!(
        post(&format!("/api/certs/{}/revoke", device.id)).status,
        409
    );
    assert_eq!(post("/api/certs/esp32_NOBODY/revoke").status, 404);
    other.ping();
}
