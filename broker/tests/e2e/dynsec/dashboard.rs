//! dynsec on a native `fleetmq.toml` (`auth.dynsec_file`): the dashboard's
//! actions (disabling a client through the API, with the dashboard token,
//! disconnects and refuses it; enabling lets it back; both saved like an
//! MQTT admin's commands), and the state kept across a SIGHUP reload.

use serde_json::json;

use super::{init_file, missing_tools, Admin, ADMIN, ADMIN_PASSWORD};
use crate::harness::web::request;
use crate::harness::{skip_on_mosquitto, Broker, ConnectBuilder, RawClient, ReasonCode, WAIT};

const TOKEN: &str = "dynsec-dashboard-token-7c1";
const RELOADED: &str = "Reloaded password file and ACL rules.";

fn connect(broker: &Broker, user: &str, password: &str) -> (RawClient, ReasonCode) {
    let mut connect = ConnectBuilder::v5(user);
    connect.username = Some(user.into());
    connect.password = Some(password.as_bytes().to_vec());
    let mut client = RawClient::connect(broker.addr());
    client.send_connect(&connect);
    let reason = client.expect_connack().reason;
    (client, reason)
}

fn post(broker: &Broker, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let response = request(broker.http_addr(), "POST", path, &headers, "");
    (response.status, response.body)
}

#[test]
fn the_dashboard_disables_and_enables_a_dynsec_client() {
    if skip_on_mosquitto("the dashboard is fleetmq's") || missing_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = init_file(dir.path());
    let broker = Broker::start_with(&format!(
        "[auth]\ndynsec_file = \"{}\"\n\n[http]\nbind = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n",
        file.display()
    ));
    let (client, reason) = connect(&broker, ADMIN, ADMIN_PASSWORD);
    assert_eq!(reason, ReasonCode::SUCCESS);
    let mut admin = Admin { client };
    assert_eq!(
        admin
            .client
            .subscribe(1, "$CONTROL/dynamic-security/v1/response", 0),
        vec![ReasonCode(0)]
    );
    let answer =
        admin.command(json!({"command": "createClient", "username": "dev1", "password": "pw1"}));
    assert!(answer.get("error").is_none(), "{answer}");
    let (mut dev1, reason) = connect(&broker, "dev1", "pw1");
    assert_eq!(reason, ReasonCode::SUCCESS);

    let path = "/api/dynsec/clients/dev1/disable";
    assert_eq!(post(&broker, path, None).0, 401, "the token guards it");
    let (status, body) = post(&broker, path, Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    dev1.expect_disconnect(ReasonCode::ADMINISTRATIVE_ACTION);
    assert_eq!(
        connect(&broker, "dev1", "pw1").1,
        ReasonCode::NOT_AUTHORIZED
    );
    broker.assert_log("dynsec: dashboard 127.0.0.1:", WAIT);

    let (status, body) = post(&broker, "/api/dynsec/clients/dev1/enable", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(connect(&broker, "dev1", "pw1").1, ReasonCode::SUCCESS);

    // The client as the dashboard shows it: no password hash.
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let response = request(broker.http_addr(), "GET", path, &headers, "");
        (response.status, response.body)
    };
    assert_eq!(get("/api/dynsec/clients/dev1", None).0, 401);
    let (status, body) = get("/api/dynsec/clients/dev1", Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["username"], "dev1", "{body}");
    assert!(shown["roles"].is_array(), "{body}");
    assert!(
        !body.contains("password") && !body.contains("salt"),
        "{body}"
    );
    assert_eq!(get("/api/dynsec/clients/nobody", Some(TOKEN)).0, 404);

    let (status, body) = post(&broker, "/api/dynsec/clients/nobody/disable", Some(TOKEN));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("Client not found"), "{body}");
}

/// SIGHUP re-reads passwords and ACL rules but keeps the running dynsec
/// state (newer than or equal to its file): a client created at run time
/// still connects after a reload.
#[test]
fn a_reload_keeps_the_dynsec_state() {
    if skip_on_mosquitto("fleetmq's reload") || missing_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = init_file(dir.path());
    let broker = Broker::start_with(&format!("[auth]\ndynsec_file = \"{}\"\n", file.display()));
    let (client, reason) = connect(&broker, ADMIN, ADMIN_PASSWORD);
    assert_eq!(reason, ReasonCode::SUCCESS);
    let mut admin = Admin { client };
    admin
        .client
        .subscribe(1, "$CONTROL/dynamic-security/v1/response", 0);
    let answer =
        admin.command(json!({"command": "createClient", "username": "dev1", "password": "pw1"}));
    assert!(answer.get("error").is_none(), "{answer}");
    broker.sighup();
    broker.assert_log(RELOADED, WAIT);
    assert_eq!(connect(&broker, "dev1", "pw1").1, ReasonCode::SUCCESS);
    assert_eq!(
        connect(&broker, "dev1", "nope").1,
        ReasonCode::NOT_AUTHORIZED
    );
}
