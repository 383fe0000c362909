//! End to end: the firmware's host simulation (`fleetmq-sim`, the device
//! library over std networking and the same mbedTLS as the ESP32) against
//! the real `fleetmq` broker with TLS listeners, watched by a real
//! `mosquitto_sub` with its own client certificate.
//!
//! Certificates are made at test time with the `openssl` command line: a lab
//! CA, a broker certificate for `localhost`, device certificates, a CRL, and
//! a second CA the broker does not trust.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{skip_on_mosquitto, Broker};

mod cipher_suites;
mod claim;
mod renew_connected;

/// Generous: a TLS handshake plus MQTT on a loaded CI machine.
const WAIT: Duration = Duration::from_secs(15);

/// Runs a command and fails the test with its output if it fails.
fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A lab PKI in a temporary folder.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        pki.ca("ca");
        pki.ca("rogue-ca");
        pki.sign(
            "ca",
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        pki.device("ca", "observer");
        pki.crl(&[]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self, name: &str) {
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
            ])
            .args(["-subj", &format!("/CN=fleetmq test {name}")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.crt"))));
    }

    fn sign(&self, ca: &str, name: &str, cn: &str, ext: &str) {
        let ext_file = self.path(&format!("{name}.ext"));
        std::fs::write(&ext_file, ext).expect("write ext");
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
            ])
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.csr"))));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-CAcreateserial"])
            .arg("-in")
            .arg(self.path(&format!("{name}.csr")))
            .arg("-CA")
            .arg(self.path(&format!("{ca}.crt")))
            .arg("-CAkey")
            .arg(self.path(&format!("{ca}.key")))
            .arg("-extfile")
            .arg(&ext_file)
            .arg("-out")
            .arg(self.path(&format!("{name}.crt"))));
    }

    /// A device certificate with CN = `name` (files `name.crt`, `name.key`).
    fn device(&self, ca: &str, name: &str) {
        self.sign(ca, name, name, "extendedKeyUsage=clientAuth\n");
    }

    /// A version 1 device certificate, made with the classic recipe:
    /// `openssl req -newkey` then `openssl x509 -req -CA -CAkey`, no
    /// extension file.
    fn device_v1(&self, name: &str) {
        run(Command::new("openssl")
            .args(["req", "-newkey", "rsa:2048", "-nodes"])
            .args(["-subj", &format!("/CN={name}")])
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.csr"))));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-CAcreateserial"])
            .arg("-in")
            .arg(self.path(&format!("{name}.csr")))
            .arg("-CA")
            .arg(self.path("ca.crt"))
            .arg("-CAkey")
            .arg(self.path("ca.key"))
            .arg("-out")
            .arg(self.path(&format!("{name}.crt"))));
    }

    /// (Re)writes `crl.pem` of the lab CA revoking `revoked` certificates.
    fn crl(&self, revoked: &[&str]) {
        let db = self.path("crl-db");
        let _ = std::fs::remove_dir_all(&db);
        std::fs::create_dir_all(&db).expect("crl db");
        std::fs::write(db.join("index.txt"), "").expect("index");
        std::fs::write(db.join("crlnumber"), "01\n").expect("crlnumber");
        let conf = self.path("ca.cnf");
        std::fs::write(
            &conf,
            format!(
                "[ca]\ndefault_ca = lab\n[lab]\ndatabase = {}/index.txt\ncrlnumber = {}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n",
                db.display(),
                db.display()
            ),
        )
        .expect("ca.cnf");
        let ca = |cmd: &mut Command| {
            cmd.arg("-config")
                .arg(&conf)
                .arg("-keyfile")
                .arg(self.path("ca.key"))
                .arg("-cert")
                .arg(self.path("ca.crt"));
        };
        for name in revoked {
            let mut cmd = Command::new("openssl");
            cmd.arg("ca");
            ca(&mut cmd);
            run(cmd.arg("-revoke").arg(self.path(&format!("{name}.crt"))));
        }
        let mut cmd = Command::new("openssl");
        cmd.arg("ca");
        ca(&mut cmd);
        run(cmd.arg("-gencrl").arg("-out").arg(self.path("crl.pem")));
    }

    /// The `[[listener]]` of a TLS broker using this PKI.
    fn listener(&self, client_certs: &str) -> String {
        format!(
            "[log]\nlevel = \"debug\"\n\n[[listener]]\nname = \"tls\"\nbind = \"127.0.0.1:0\"\nallow_anonymous = true\n[listener.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\nclient_certs = \"{client_certs}\"\ncrl = [{:?}]\n",
            self.path("server.crt"),
            self.path("server.key"),
            self.path("ca.crt"),
            self.path("crl.pem"),
        )
    }

    /// A device folder: `device.toml` for `port` and the files it names
    /// (`cert` = None gives one-way TLS).
    fn device_config(&self, port: u16, cert: Option<&str>) -> PathBuf {
        let dir = self.path(&format!("device-{}", cert.unwrap_or("one-way")));
        let fs = dir.join("fs");
        std::fs::create_dir_all(&fs).expect("fs");
        std::fs::copy(self.path("ca.crt"), fs.join("ca.crt")).expect("ca");
        let mut toml = format!(
            "[mqtt]\nserver = \"127.0.0.1:{port}\"\nssl_ca_cert = \"ca.crt\"\nssl_server_name = \"localhost\"\nreconnect_timeout_min = 0.2\nreconnect_timeout_max = 1\n"
        );
        if let Some(cert) = cert {
            std::fs::copy(self.path(&format!("{cert}.crt")), fs.join("device.crt")).expect("crt");
            std::fs::copy(self.path(&format!("{cert}.key")), fs.join("device.key")).expect("key");
            toml.push_str("ssl_cert = \"device.crt\"\nssl_key = \"device.key\"\n");
        }
        let path = dir.join("device.toml");
        std::fs::write(&path, toml).expect("device.toml");
        path
    }
}

/// The port of the broker's listener named `tls`.
fn tls_port(broker: &Broker) -> u16 {
    broker.assert_log("for listener \"tls\"", WAIT);
    let logs = broker.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("for listener \"tls\""))
        .expect("tls listener line");
    let rest = line.split("127.0.0.1:").nth(1).expect("address");
    rest.split(' ')
        .next()
        .expect("port")
        .parse()
        .expect("port number")
}

/// A child process whose stdout and stderr are collected for assertions.
struct Watched {
    name: &'static str,
    child: Child,
    output: Arc<(Mutex<String>, Condvar)>,
}

impl Watched {
    fn spawn(name: &'static str, cmd: &mut Command) -> Watched {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let output = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for pipe in pipes {
            let output = Arc::clone(&output);
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let (text, grew) = &*output;
                    let mut text = text.lock().expect("lock");
                    text.push_str(&line);
                    text.push('\n');
                    grew.notify_all();
                }
            });
        }
        Watched {
            name,
            child,
            output,
        }
    }

    fn text(&self) -> String {
        self.output.0.lock().expect("lock").clone()
    }

    /// Waits for `needle` in the output; panics with everything seen.
    fn expect(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        let (text, grew) = &*self.output;
        let mut text = text.lock().expect("lock");
        while !text.contains(needle) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "{} did not print {needle:?} within {WAIT:?}; output:\n{text}",
                self.name
            );
            text = grew.wait_timeout(text, deadline - now).expect("wait").0;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The simulation binary, next to this test's binary. It belongs to another
/// package, so cargo does not build it for this test: build it (a no-op
/// when it is up to date) once per test process.
fn sim_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current exe");
            let dir = exe.parent().and_then(Path::parent).expect("target dir");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            run(Command::new(cargo).args([
                "build",
                "-p",
                "fleetmq-firmware",
                "--bin",
                "fleetmq-sim",
            ]));
            dir.join("fleetmq-sim")
        })
        .clone()
}

fn sim(config: &Path, extra: &[&str]) -> Watched {
    Watched::spawn(
        "fleetmq-sim",
        Command::new(sim_binary())
            .arg("--config")
            .arg(config)
            .args(extra),
    )
}

/// `mosquitto_sub` on `/this/test/#` with the observer's certificate.
fn subscriber(pki: &Pki, broker: &Broker, port: u16) -> Watched {
    let sub = Watched::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "localhost",
                "-p",
                &port.to_string(),
                "-i",
                "observer",
                "-v",
            ])
            .args(["-t", "/this/test/#"])
            .arg("--cafile")
            .arg(pki.path("ca.crt"))
            .arg("--cert")
            .arg(pki.path("observer.crt"))
            .arg("--key")
            .arg(pki.path("observer.key")),
    );
    broker.assert_log("as observer", WAIT);
    sub
}

fn publish(pki: &Pki, port: u16, topic: &str, message: &str) {
    run(Command::new("mosquitto_pub")
        .args([
            "-h",
            "localhost",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-m",
            message,
        ])
        .arg("--cafile")
        .arg(pki.path("ca.crt"))
        .arg("--cert")
        .arg(pki.path("observer.crt"))
        .arg("--key")
        .arg(pki.path("observer.key")));
}

#[test]
fn mutual_tls_device_connects_answers_ping_resumes_and_leaves_offline() {
    if skip_on_mosquitto("fleetmq TLS listener configuration") {
        return;
    }
    let pki = Pki::new();
    pki.device("ca", "lab-device");
    let broker = Broker::start_with(&pki.listener("required"));
    let port = tls_port(&broker);
    let sub = subscriber(&pki, &broker, port);
    let mut device = sim(&pki.device_config(port, Some("lab-device")), &[]);

    // The Mongoose-OS lines, in order, plus the handshake duration.
    device.expect("Published:OK topic:/this/test/esp32_807A98 msg:CONNECTED!");
    let text = device.text();
    let order = [
        "MQTT0 connecting to 127.0.0.1:",
        "ciphersuite: TLS-ECDHE-RSA-WITH-AES-",
        "MQTT0 TCP connect ok (0)",
        "MQTT0 TLS handshake ",
        "MQTT0 CONNACK 0",
        "MQTT connected",
        "Published:OK topic:/this/test/esp32_807A98 msg:CONNECTED!",
    ];
    let mut at = 0;
    for line in order {
        let found = text[at..].find(line);
        assert!(
            found.is_some(),
            "{line:?} missing or out of order in:\n{text}"
        );
        at += found.unwrap_or(0);
    }
    assert!(text.contains("(TLSv1.2, full, mutual)"), "{text}");
    sub.expect("/this/test/esp32_807A98 CONNECTED!");
    sub.expect("/this/test/esp32_807A98/status online");
    broker.assert_log("Client esp32_807A98 setup: TLS", WAIT);
    assert!(
        broker.logs().contains("full, mutual), CONNECT after"),
        "{}",
        broker.logs()
    );

    // The command topic answers ping.
    publish(&pki, port, "/this/test/esp32_807A98/cmd", "ping");
    sub.expect("/this/test/esp32_807A98/response pong");
    device.expect("Command `ping` on /this/test/esp32_807A98/cmd: answered `pong`");

    // A reconnect resumes the TLS session (device and broker agree).
    publish(&pki, port, "/this/test/esp32_807A98/cmd", "reconnect");
    device.expect("(TLSv1.2, resumed, mutual)");
    broker.assert_log("resumed, mutual), CONNECT after", WAIT);

    // Killed without DISCONNECT: the retained will says offline.
    device.kill();
    sub.expect("/this/test/esp32_807A98/status offline");
}

#[test]
fn revoked_device_certificate_is_refused_with_a_clear_log_line() {
    if skip_on_mosquitto("fleetmq TLS listener configuration") {
        return;
    }
    let pki = Pki::new();
    pki.device("ca", "revoked-device");
    pki.crl(&["revoked-device"]);
    let broker = Broker::start_with(&pki.listener("required"));
    let port = tls_port(&broker);
    let device = sim(&pki.device_config(port, Some("revoked-device")), &[]);
    broker.assert_log(
        "failed: client certificate \"CN=revoked-device\" (serial ",
        WAIT,
    );
    broker.assert_log(") revoked on ", WAIT);
    device.expect("MQTT0 TLS handshake failed: the broker refused the handshake");
    device.expect("reconnecting in");
    assert!(!device.text().contains("CONNACK"), "{}", device.text());
}

/// Devices flashed with v1 certificates (decision 0090) keep connecting
/// where the listener accepts them, and are told apart where it does not.
#[test]
fn a_device_with_a_v1_certificate_connects_where_the_listener_accepts_v1() {
    if skip_on_mosquitto("fleetmq TLS listener configuration") {
        return;
    }
    let pki = Pki::new();
    pki.device_v1("v1-device");
    let broker = Broker::start_with(&format!(
        "{}accept_v1_client_certificates = true\n",
        pki.listener("required")
    ));
    let port = tls_port(&broker);
    let sub = subscriber(&pki, &broker, port);
    let device = sim(&pki.device_config(port, Some("v1-device")), &[]);
    device.expect("Published:OK topic:/this/test/esp32_807A98 msg:CONNECTED!");
    assert!(
        device.text().contains("(TLSv1.2, full, mutual)"),
        "{}",
        device.text()
    );
    sub.expect("/this/test/esp32_807A98 CONNECTED!");
    drop(device);
    drop(broker);

    let strict = Broker::start_with(&pki.listener("required"));
    let port = tls_port(&strict);
    let device = sim(&pki.device_config(port, Some("v1-device")), &[]);
    strict.assert_log("X.509 version 1, refused by this listener", WAIT);
    device.expect("MQTT0 TLS handshake failed");
    assert!(!device.text().contains("CONNACK"), "{}", device.text());
}

#[test]
fn device_certificate_from_another_ca_is_refused() {
    if skip_on_mosquitto("fleetmq TLS listener configuration") {
        return;
    }
    let pki = Pki::new();
    pki.device("rogue-ca", "rogue-device");
    let broker = Broker::start_with(&pki.listener("required"));
    let port = tls_port(&broker);
    let device = sim(&pki.device_config(port, Some("rogue-device")), &[]);
    broker.assert_log(
        "issued by an unknown CA (CN=fleetmq test rogue-ca); add that CA",
        WAIT,
    );
    device.expect("MQTT0 TLS handshake failed");
    assert!(!device.text().contains("CONNACK"), "{}", device.text());
}

#[test]
fn one_way_tls_device_connects_to_a_listener_without_client_certificates() {
    if skip_on_mosquitto("fleetmq TLS listener configuration") {
        return;
    }
    let pki = Pki::new();
    let broker = Broker::start_with(&pki.listener("none"));
    let port = tls_port(&broker);
    let device = sim(&pki.device_config(port, None), &[]);
    device.expect("Published:OK topic:/this/test/esp32_807A98 msg:CONNECTED!");
    assert!(
        device.text().contains("full, one-way)"),
        "{}",
        device.text()
    );
    broker.assert_log("full, one_way), CONNECT after", WAIT);
}

#[test]
fn a_fleet_of_simulated_devices_each_with_its_own_certificate_and_mac() {
    if skip_on_mosquitto("fleetmq TLS listener configuration") {
        return;
    }
    let pki = Pki::new();
    let certs = pki.path("fleet");
    std::fs::create_dir_all(&certs).expect("fleet dir");
    for id in ["esp32_807A98", "esp32_807A99", "esp32_807A9A"] {
        pki.device("ca", id);
        for ext in ["crt", "key"] {
            std::fs::copy(
                pki.path(&format!("{id}.{ext}")),
                certs.join(format!("{id}.{ext}")),
            )
            .expect("copy");
        }
    }
    let broker = Broker::start_with(&pki.listener("required"));
    let port = tls_port(&broker);
    let sub = subscriber(&pki, &broker, port);
    let certs_arg = certs.display().to_string();
    let fleet = sim(
        &pki.device_config(port, None),
        &["--devices", "3", "--device-certs", &certs_arg],
    );
    for id in ["esp32_807A98", "esp32_807A99", "esp32_807A9A"] {
        sub.expect(&format!("/this/test/{id} CONNECTED!"));
        fleet.expect(&format!(
            "[{id}] Published:OK topic:/this/test/{id} msg:CONNECTED!"
        ));
        broker.assert_log(&format!("Client {id} setup: TLS"), WAIT);
    }
    assert_eq!(
        fleet.text().matches("(TLSv1.2, full, mutual)").count(),
        3,
        "{}",
        fleet.text()
    );
}

/// The `timings_ms` the dashboard's API gives for `client_id`, once there.
fn api_timings(broker: &Broker, client_id: &str) -> serde_json::Value {
    crate::harness::web::eventually(WAIT, client_id, || {
        let response = crate::harness::web::get(broker.http_addr(), "/api/clients", None);
        response
            .json()
            .as_array()?
            .iter()
            .find(|c| c["client_id"] == client_id)
            .map(|c| c["timings_ms"].clone())
    })
}

#[test]
fn a_device_slow_to_sign_shows_its_signing_time_as_device_time() {
    if skip_on_mosquitto("the handshake split is fleetmq's") {
        return;
    }
    // 700 ms before each CertificateVerify stands in for a slower chip's
    // signing; the same device without it is the baseline (the simulation's
    // own mbedTLS work on this machine).
    const DELAY_MS: f64 = 700.0;
    const TOLERANCE_MS: f64 = 200.0;
    let pki = Pki::new();
    pki.device("ca", "lab-device");
    let broker = Broker::start_with(&pki.listener("required"));
    let port = tls_port(&broker);
    let config = pki.device_config(port, Some("lab-device"));
    let quick = sim(&config, &["--mac", "24:0A:C4:00:00:01"]);
    quick.expect("MQTT connected");
    let slow_sim = sim(
        &config,
        &["--mac", "24:0A:C4:00:00:02", "--sign-delay-ms", "700"],
    );
    slow_sim.expect("MQTT connected");
    let quick = api_timings(&broker, "esp32_000001");
    let slow = api_timings(&broker, "esp32_000002");
    eprintln!("baseline {quick}\nslowed {slow}");
    let ms = |timings: &serde_json::Value, part: &str| {
        timings[part]
            .as_f64()
            .unwrap_or_else(|| panic!("no {part} in {timings:#}"))
    };
    let extra = ms(&slow, "device") - ms(&quick, "device");
    assert!(
        (DELAY_MS - TOLERANCE_MS / 4.0..=DELAY_MS + TOLERANCE_MS).contains(&extra),
        "the device part grew by {extra} ms for {DELAY_MS} ms of signing:\n{quick:#}\n{slow:#}"
    );
    // The device's own view sits beside the broker's (its report on
    // $fleetmq/device/handshake): it timed the same handshake.
    let report = crate::harness::web::eventually(WAIT, "the device report", || {
        let response = crate::harness::web::get(broker.http_addr(), "/api/clients", None);
        response
            .json()
            .as_array()?
            .iter()
            .find(|c| c["client_id"] == "esp32_000002")
            .map(|c| c["device_report"].clone())
            .filter(|report| !report.is_null())
    });
    assert_eq!(report["chip"], "host-sim", "{report:#}");
    assert_eq!(report["tls_library"], "mbedTLS", "{report:#}");
    assert_eq!(report["mutual"], true, "{report:#}");
    let device_says = report["tls_handshake_ms"].as_f64().unwrap_or_default();
    assert!(
        device_says >= DELAY_MS && device_says <= ms(&slow, "tls_handshake") + TOLERANCE_MS,
        "the device timed {device_says} ms: {report:#}\n{slow:#}"
    );
    // Not the network's, not the broker's.
    assert!(ms(&slow, "network_rtt") < TOLERANCE_MS, "{slow:#}");
    for part in ["broker_flight", "broker_verify", "broker_queue"] {
        assert!(
            ms(&slow, part) < TOLERANCE_MS,
            "{part} took the device's time: {slow:#}"
        );
    }
}
