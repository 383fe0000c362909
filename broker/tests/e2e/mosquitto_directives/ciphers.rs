//! `ciphers` and `ciphers_tls1.3`: the suites a TLS listener offers,
//! tried with `openssl s_client` offering one suite at a time (the same
//! answers from Mosquitto 2.0.11 and fleetmq).

use std::process::{Command, Stdio};

use super::ConfBroker;
use crate::harness::service::Pki;

/// Whether a TLS 1.2 (`-cipher`) or 1.3 (`-ciphersuites`) handshake
/// offering only `suite` succeeds, and s_client's output.
fn handshake(port: u16, ca: &str, tls13: bool, suite: &str) -> (bool, String) {
    let mut command = Command::new("timeout");
    command.args(["10", "openssl", "s_client", "-connect"]);
    command.arg(format!("127.0.0.1:{port}"));
    command.args(["-CAfile", ca, "-verify_return_error"]);
    if tls13 {
        command.args(["-tls1_3", "-ciphersuites", suite]);
    } else {
        command.args(["-tls1_2", "-cipher", suite]);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let agreed = text.contains(&format!("Cipher is {suite}"))
        || text.contains(&format!("Cipher    : {suite}"));
    (agreed, text)
}

#[test]
fn only_the_listed_suites_are_agreed() {
    let mut ca = String::new();
    let broker = ConfBroker::start(|port, dir| {
        let pki = Pki::generate(&dir.join("certs"));
        ca = pki.path("ca.crt");
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\n\
             certfile {}\nkeyfile {}\n\
             ciphers ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384\n\
             ciphers_tls1.3 TLS_CHACHA20_POLY1305_SHA256\n",
            pki.path("server.crt"),
            pki.path("server.key")
        )
    });
    for (tls13, suite, expected) in [
        (false, "ECDHE-ECDSA-AES256-GCM-SHA384", true),
        (false, "ECDHE-ECDSA-AES128-GCM-SHA256", false),
        (false, "ECDHE-ECDSA-CHACHA20-POLY1305", false),
        (true, "TLS_CHACHA20_POLY1305_SHA256", true),
        (true, "TLS_AES_128_GCM_SHA256", false),
        (true, "TLS_AES_256_GCM_SHA384", false),
    ] {
        let (agreed, output) = handshake(broker.port, &ca, tls13, suite);
        assert_eq!(
            agreed,
            expected,
            "{suite}: s_client said:\n{output}\nbroker logs:\n{}",
            broker.process.logs()
        );
    }
}
