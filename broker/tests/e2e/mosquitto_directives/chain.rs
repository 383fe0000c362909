//! The server's certificate chain completed from `cafile`/`capath`, as
//! OpenSSL does for Mosquitto (decision 0136): a lab whose certfile holds
//! only the leaf, signed by an intermediate CA, and whose devices trust only
//! the root. Certificates are made with openssl at test time; the client is
//! Debian's `mosquitto_pub` trusting only the root, against fleetmq or (with
//! `FLEETMQ_TEST_BROKER=mosquitto`) Mosquitto 2.0.11 on the same file.

use std::path::Path;
use std::time::Duration;

use super::ConfBroker;
use crate::harness::pki::openssl::Openssl;
use crate::harness::tools::Tool;

const CA_EXTENSIONS: &str =
    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
const SERVER_EXTENSIONS: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";

/// root.crt -> intermediate.crt -> server.crt (leaf only), and
/// bundle.pem = root + intermediate, as a lab's `ca.crt` often is.
fn root_intermediate_server(dir: &Path) {
    let pki = Openssl::in_dir(dir);
    pki.ca("root", "/CN=Lab Root").ca_extensions().create();
    pki.cert("intermediate", "/CN=Lab Intermediate")
        .issuer("root")
        .extensions(CA_EXTENSIONS)
        .create();
    pki.cert("server", "/CN=localhost")
        .issuer("intermediate")
        .extensions(SERVER_EXTENSIONS)
        .create();
    let bundle = [
        std::fs::read(dir.join("root.crt")).unwrap(),
        std::fs::read(dir.join("intermediate.crt")).unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("bundle.pem"), bundle).unwrap();
    std::fs::create_dir_all(dir.join("capath")).unwrap();
    std::fs::copy(
        dir.join("intermediate.crt"),
        dir.join("capath/intermediate.pem"),
    )
    .unwrap();
    pki.run(&["rehash", "capath"]);
}

/// Whether `mosquitto_pub` trusting only the root can publish.
fn publishes_trusting_only_the_root(broker: &ConfBroker, dir: &Path) -> bool {
    let port = broker.port.to_string();
    let root = dir.join("root.crt").display().to_string();
    let args = [
        "-h",
        "localhost",
        "-p",
        &port,
        "--cafile",
        &root,
        "-t",
        "lab/chain",
        "-m",
        "x",
        "-i",
        "chain-test",
    ];
    let (status, output) =
        Tool::spawn("/usr/bin/mosquitto_pub", &args).finish(Duration::from_secs(10));
    let ok = status.is_some_and(|s| s.success());
    if !ok {
        eprintln!("mosquitto_pub: {output}");
    }
    ok
}

fn conf(port: u16, dir: &Path, ca_lines: &str) -> String {
    let d = dir.display();
    format!(
        "listener {port}\nallow_anonymous true\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n{ca_lines}"
    )
}

#[test]
fn a_leaf_only_certfile_is_completed_from_the_cafile() {
    let pki = tempfile::tempdir().unwrap();
    root_intermediate_server(pki.path());
    let dir = pki.path().to_path_buf();
    let bundle = format!("cafile {}/bundle.pem\n", dir.display());
    let broker = ConfBroker::start(|port, _| conf(port, &dir, &bundle));
    assert!(
        publishes_trusting_only_the_root(&broker, &dir),
        "logs:\n{}",
        broker.process.logs()
    );
}

#[test]
fn a_leaf_only_certfile_is_completed_from_cafile_and_capath() {
    let pki = tempfile::tempdir().unwrap();
    root_intermediate_server(pki.path());
    let dir = pki.path().to_path_buf();
    let lines = format!(
        "cafile {d}/root.crt\ncapath {d}/capath\n",
        d = dir.display()
    );
    let broker = ConfBroker::start(|port, _| conf(port, &dir, &lines));
    assert!(
        publishes_trusting_only_the_root(&broker, &dir),
        "logs:\n{}",
        broker.process.logs()
    );
}

#[test]
fn without_a_cafile_holding_the_intermediate_the_root_alone_cannot_verify() {
    let pki = tempfile::tempdir().unwrap();
    root_intermediate_server(pki.path());
    let dir = pki.path().to_path_buf();
    let root_only = format!("cafile {}/root.crt\n", dir.display());
    let broker = ConfBroker::start(|port, _| conf(port, &dir, &root_only));
    assert!(!publishes_trusting_only_the_root(&broker, &dir));
}
