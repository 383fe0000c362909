//! Shared by the identity and ACL end-to-end tests (`acl_*.rs`,
//! `auth_*.rs`): a fleet of certificates (two sensors and an operator), the
//! device policy written both as `[[acl]]` tables and as a Mosquitto
//! `acl_file`, a broker with a mutual-TLS listener that does *not* admit
//! anonymous clients, and clients that connect over it as one certificate.
//!
//! It builds on the rest of the harness (process, raw client, PKI).

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::pki::{toml_path, Issued, Pki};
use crate::harness::tls::{self, ANY_VERSION};
use crate::harness::{
    self, Broker, ConnAck, ConnectBuilder, ListenerSpec, Packet, Publish, QoS, RawClient,
    ReasonCode, WAIT,
};

/// The name of the mutual-TLS listener of [`start`].
pub const LISTENER: &str = "devices";

/// `[[listener]]` lines of a device listener: certificates name devices,
/// and a device may not take another device's client id. Anonymous access
/// is left at the TLS default (refused).
pub const MATCH_CLIENT_ID: &str = "clientid_must_match_identity = true";

/// The listener lines for the Mosquitto form of the policy: `user` lines
/// and `%u` match the certificate CN.
pub const IDENTITY_AS_USERNAME: &str =
    "clientid_must_match_identity = true\nuse_identity_as_username = true";

/// The device policy as `[[acl]]` tables. Devices write under
/// `devices/<CN>/` and read their own `cmd/`; operators (OU=ops) read
/// everything and `$SYS`, send commands, but never see device secrets.
pub const POLICY_TOML: &str = r##"
[[acl]]
group = "ops"
permission = "deny"
access = "readwrite"
topic = "devices/+/secret/#"

[[acl]]
access = "write"
topic = "devices/%i/#"

[[acl]]
access = "read"
topic = "devices/%i/cmd/#"

[[acl]]
group = "ops"
access = "read"
topic = "#"

[[acl]]
group = "ops"
access = "write"
topic = "devices/+/cmd/#"

[[acl]]
group = "ops"
access = "read"
topic = "$SYS/#"
"##;

/// [`POLICY_TOML`] as a Mosquitto 2.0 `acl_file`, for a listener with
/// `use_identity_as_username` (Mosquitto has no groups: the operator is
/// named by its CN).
pub const POLICY_MOSQUITTO: &str = "\
# The operator certificate, by CN (use_identity_as_username).
user ops-1
topic read #
topic deny devices/+/secret/#
topic write devices/+/cmd/#
topic read $SYS/#

# Every device: its own topics.
pattern write devices/%u/#
pattern read devices/%u/cmd/#
";

/// The test PKI plus an operator certificate.
pub struct Fleet {
    pub pki: Pki,
    /// CN=ops-1, OU=ops.
    pub ops: Issued,
}

impl Fleet {
    pub fn new() -> Fleet {
        let pki = Pki::new();
        let ops = pki.issue_device("ops-1", "ops-1", "ops", 0x0951);
        Fleet { pki, ops }
    }

    /// CN=dev-a, OU=sensors.
    pub fn dev_a(&self) -> &Issued {
        &self.pki.dev_a
    }

    /// CN=dev-b, OU=sensors.
    pub fn dev_b(&self) -> &Issued {
        &self.pki.dev_b
    }

    /// The certificate of `name` (`dev-a`, `dev-b`, `ops-1`).
    pub fn cert(&self, name: &str) -> &Issued {
        match name {
            "dev-a" => self.dev_a(),
            "dev-b" => self.dev_b(),
            "ops-1" => &self.ops,
            other => panic!("no certificate for {other:?} in the fleet"),
        }
    }

    /// The OU of `name`'s certificate (what `fleetmq acl check --group`
    /// stands for).
    pub fn unit(&self, name: &str) -> &'static str {
        if name == "ops-1" {
            "ops"
        } else {
            "sensors"
        }
    }

    /// A broker with the mutual-TLS listener [`LISTENER`] (client
    /// certificates required, with `listener_settings`) and `extra_toml`.
    pub fn start(&self, listener_settings: &str, extra_toml: &str) -> Broker {
        let tls_toml = self.pki.listener_toml(&self.pki.server_ecdsa, "required");
        let listener = ListenerSpec::tls(LISTENER, &tls_toml).with_settings(listener_settings);
        Broker::start_with_listeners(&[listener], extra_toml)
    }

    /// The broker with the policy as `[[acl]]` tables.
    pub fn start_toml_policy(&self) -> Broker {
        self.start(MATCH_CLIENT_ID, POLICY_TOML)
    }

    /// The broker with the policy as a Mosquitto `acl_file` (written to
    /// the PKI's folder) and `use_identity_as_username`.
    pub fn start_mosquitto_policy(&self) -> Broker {
        let acl_file = self.pki.dir().join("acl");
        std::fs::write(&acl_file, POLICY_MOSQUITTO).unwrap();
        let extra = format!("[auth]\nacl_file = {}\n", toml_path(&acl_file));
        self.start(IDENTITY_AS_USERNAME, &extra)
    }

    /// Opens a TLS connection to [`LISTENER`] presenting `identity` and
    /// sends `connect`; returns the client and the CONNACK, whatever it says.
    pub fn try_connect(
        &self,
        broker: &Broker,
        identity: &Issued,
        connect: &ConnectBuilder,
    ) -> (RawClient, ConnAck) {
        let config = tls::client_config(&self.pki.ca.cert, Some(identity), ANY_VERSION);
        let transport =
            tls::connect(broker.addr_of(LISTENER), config).expect("TLS handshake with the broker");
        let mut client = RawClient::over(transport);
        client.send_connect(connect);
        let connack = client.expect_connack();
        (client, connack)
    }

    /// A 5.0 client connected as `name` (client id = CN); panics with the
    /// logs when refused.
    pub fn connect_v5(&self, broker: &Broker, name: &str) -> Peer {
        self.connect_as(broker, name, ConnectBuilder::v5(name))
    }

    /// A 3.1.1 client connected as `name` (client id = CN).
    pub fn connect_v311(&self, broker: &Broker, name: &str) -> Peer {
        self.connect_as(broker, name, ConnectBuilder::v311(name))
    }

    /// A client connected as `name`'s certificate with `connect`; panics
    /// with the logs when refused.
    pub fn connect_as(&self, broker: &Broker, name: &str, connect: ConnectBuilder) -> Peer {
        let (client, connack) = self.try_connect(broker, self.cert(name), &connect);
        assert_eq!(
            connack.reason,
            ReasonCode::SUCCESS,
            "{name} refused; logs:\n{}",
            broker.logs()
        );
        Peer::new(client)
    }
}

/// A connected client that may be sent messages while it waits for its
/// own acknowledgements: PUBLISHes that arrive meanwhile are acknowledged
/// (QoS 1) and kept in an inbox, in order, for the `*_publish*` methods.
pub struct Peer {
    pub raw: RawClient,
    inbox: VecDeque<Publish>,
    next_packet_id: u16,
}

impl Peer {
    pub fn new(raw: RawClient) -> Peer {
        Peer {
            raw,
            inbox: VecDeque::new(),
            next_packet_id: 1,
        }
    }

    fn packet_id(&mut self) -> u16 {
        let id = self.next_packet_id;
        self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
        id
    }

    /// The next packet that is not a PUBLISH (those go to the inbox);
    /// None after `timeout` or on close.
    fn next_control(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.raw.recv_packet(left)? {
                Packet::Publish(publish) => self.keep(publish),
                other => return Some(other),
            }
        }
    }

    fn keep(&mut self, publish: Publish) {
        if let (QoS::AtLeastOnce, Some(id)) = (publish.qos, publish.packet_id) {
            self.raw.send(&harness::ack(0x40, id));
        }
        self.inbox.push_back(publish);
    }

    /// Publishes; for QoS 1 and 2 returns the PUBACK/PUBREC reason (and
    /// completes QoS 2). 3.1.1 acks read as SUCCESS.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> ReasonCode {
        let id = self.packet_id();
        let v5 = self.raw.version.is_v5();
        self.raw.send(
            &harness::publish(topic, payload)
                .qos(qos)
                .packet_id(id)
                .retain(retain)
                .v5(v5)
                .build(),
        );
        if qos == 0 {
            return ReasonCode::SUCCESS;
        }
        let reason = match self.next_control(WAIT) {
            Some(Packet::PubAck(ack)) if qos == 1 && ack.packet_id == id => ack.reason,
            Some(Packet::PubRec(rec)) if qos == 2 && rec.packet_id == id => rec.reason,
            other => panic!("expected the ack of PUBLISH {id} on {topic}, got {other:?}"),
        };
        if qos == 2 && !reason.is_error() {
            self.raw.send(&harness::ack(0x62, id));
            match self.next_control(WAIT) {
                Some(Packet::PubComp(comp)) if comp.packet_id == id => {}
                other => panic!("expected PUBCOMP {id}, got {other:?}"),
            }
        }
        reason
    }

    /// Subscribes to each filter (options byte: QoS) in one SUBSCRIBE;
    /// returns the SUBACK reasons.
    pub fn subscribe_all(&mut self, filters: &[(&str, u8)]) -> Vec<ReasonCode> {
        let id = self.packet_id();
        let v5 = self.raw.version.is_v5();
        self.raw.send(&harness::subscribe(id, filters, v5, &[]));
        match self.next_control(WAIT) {
            Some(Packet::SubAck(suback)) if suback.packet_id == id => suback.reasons,
            other => panic!("expected SUBACK {id} for {filters:?}, got {other:?}"),
        }
    }

    /// Subscribes to one filter at QoS 1; returns its SUBACK reason.
    pub fn subscribe(&mut self, filter: &str) -> ReasonCode {
        self.subscribe_all(&[(filter, 1)])[0]
    }

    /// The next PUBLISH (inbox first), `$SYS` included; None after `timeout`.
    pub fn recv_publish(&mut self, timeout: Duration) -> Option<Publish> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(publish) = self.inbox.pop_front() {
                return Some(publish);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            // Anything but a PUBLISH is unexpected here and dropped.
            if let Packet::Publish(publish) = self.raw.recv_packet(left)? {
                self.keep(publish);
            }
        }
    }

    /// Waits for an application PUBLISH on `topic`, skipping others;
    /// panics after [`WAIT`].
    pub fn expect_publish_on(&mut self, topic: &str) -> Publish {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_publish(left) {
                Some(publish) if &*publish.topic == topic => return publish,
                Some(_) => {}
                None => panic!("no PUBLISH on {topic:?} within {WAIT:?}"),
            }
        }
    }

    /// Waits for any `$SYS` PUBLISH (published every second); panics
    /// after 4 s.
    pub fn expect_sys_publish(&mut self) -> Publish {
        let deadline = Instant::now() + Duration::from_secs(4);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_publish(left) {
                Some(publish) if publish.topic.starts_with("$SYS/") => return publish,
                Some(_) => {}
                None => panic!("no $SYS PUBLISH within 4 s"),
            }
        }
    }

    /// Every PUBLISH that arrives until `quiet` passes without one (at
    /// most `WAIT * 5` in all), `$SYS` ones included.
    pub fn drain_all(&mut self, quiet: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + WAIT * 5;
        let mut found = Vec::new();
        while Instant::now() < deadline {
            match self.recv_publish(quiet) {
                Some(publish) => found.push(publish),
                None => break,
            }
        }
        found
    }

    /// Like [`Peer::drain_all`] without `$SYS` messages.
    pub fn drain(&mut self, quiet: Duration) -> Vec<Publish> {
        let mut found = self.drain_all(quiet);
        found.retain(|publish| !publish.topic.starts_with("$SYS"));
        found
    }

    /// PINGREQ/PINGRESP: the connection is alive.
    pub fn ping(&mut self) {
        self.raw.send(&[0xC0, 0x00]);
        match self.next_control(WAIT) {
            Some(Packet::PingResp) => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// Closes the TCP connection without DISCONNECT (a device that drops).
    pub fn drop_connection(self) {
        self.raw.drop_connection();
    }
}

/// The topics of `publishes`, sorted and without repeats.
pub fn topics(publishes: &[Publish]) -> BTreeSet<String> {
    publishes.iter().map(|p| p.topic.to_string()).collect()
}

/// A set of topics, for comparing with [`topics`].
pub fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// Runs `fleetmq acl check --config CONFIG ARGS...`.
pub fn acl_check(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmq"))
        .args(["acl", "check", "--config"])
        .arg(config)
        .args(args)
        .output()
        .expect("run fleetmq acl check")
}

/// Whether a tool is installed (`PROGRAM --help` runs); prints a notice
/// when it is not, for tests that skip then.
pub fn have_tool(program: &str, why: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        eprintln!("skipped: {program} is not installed ({why})");
    }
    found
}
