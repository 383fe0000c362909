//! Directives about files and folders: `capath` and `include_dir` order.

use std::path::Path;
use std::process::Command;

use super::{tool, ConfBroker};
use crate::harness::service::{fleetmq, free_port, run_ok, Pki, Process};
use crate::harness::{skip_on_mosquitto, ConnectBuilder, RawClient};

/// `dir/capath` with the test CA under its OpenSSL hash name (as
/// `openssl rehash` makes it) and a README, which is not a certificate.
fn capath_with_ca(dir: &Path, pki: &Pki) -> String {
    let capath = dir.join("capath");
    std::fs::create_dir(&capath).unwrap();
    let hash = run_ok(Command::new("openssl").args([
        "x509",
        "-hash",
        "-noout",
        "-in",
        &pki.path("ca.crt"),
    ]));
    let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
    std::fs::copy(pki.path("ca.crt"), capath.join(format!("{hash}.0"))).unwrap();
    std::fs::write(capath.join("README"), "CA certificates of the lab\n").unwrap();
    capath.display().to_string()
}

#[test]
fn capath_folder_verifies_client_certificates() {
    let mut capath = String::new();
    let mut certs = String::new();
    let broker = ConfBroker::start(|port, dir| {
        let pki = Pki::generate(&dir.join("certs"));
        capath = capath_with_ca(dir, &pki);
        certs = pki.dir.display().to_string();
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n\
             certfile {certs}/server.crt\nkeyfile {certs}/server.key\n\
             capath {capath}\nrequire_certificate true\n"
        )
    });
    let port = broker.port.to_string();
    let cafile = format!("{certs}/ca.crt");
    let with_cert = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--cafile",
        &cafile,
        "--cert",
        &format!("{certs}/client.crt"),
        "--key",
        &format!("{certs}/client.key"),
        "-t",
        "lab/capath",
        "-m",
        "ok",
        "-q",
        "1",
    ];
    let output = tool("mosquitto_pub", &with_cert);
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        broker.logs()
    );
    // Without a client certificate the handshake fails.
    let without = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--cafile",
        &cafile,
        "-t",
        "lab/capath",
        "-m",
        "no",
    ];
    assert!(!tool("mosquitto_pub", &without).status.success());
}

#[test]
fn capath_with_a_bad_certificate_file_stops_the_start_naming_it() {
    if skip_on_mosquitto("Mosquitto reads capath files lazily, at the first lookup by hash") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::generate(&dir.path().join("certs"));
    let capath = capath_with_ca(dir.path(), &pki);
    std::fs::write(Path::new(&capath).join("0badc0de.0"), "not a certificate\n").unwrap();
    let certs = pki.dir.display();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\ncertfile {certs}/server.crt\nkeyfile {certs}/server.key\n\
             capath {capath}\nrequire_certificate true\n"
        ),
    )
    .unwrap();
    let mut command = fleetmq();
    command
        .arg("run")
        .arg("--mosquitto-conf")
        .arg(&conf)
        .current_dir(dir.path());
    let mut broker = Process::spawn(command);
    assert!(!broker.wait_exit().success());
    let logs = broker.logs();
    assert!(logs.contains("0badc0de.0"), "{logs}");
}

#[test]
fn include_dir_reads_files_in_mosquittos_order() {
    // Mosquitto sorts upper-cased names: b.conf before _a.conf (a
    // lower-cased sort would read _a.conf first), so _a.conf wins.
    let broker = ConfBroker::start(|port, dir| {
        let conf_d = dir.join("conf.d");
        std::fs::create_dir(&conf_d).unwrap();
        std::fs::write(conf_d.join("_a.conf"), "max_keepalive 20\n").unwrap();
        std::fs::write(conf_d.join("b.conf"), "max_keepalive 30\n").unwrap();
        std::fs::write(conf_d.join(".conf"), "max_keepalive 40\n").unwrap();
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\ninclude_dir {}\n",
            conf_d.display()
        )
    });
    let (_client, connack) =
        RawClient::connect_with(broker.addr(), ConnectBuilder::v5("order").keep_alive(0));
    assert_eq!(connack.properties.server_keep_alive, Some(20));
}
