//! The device configuration: the Mongoose-OS `mos.yml` keys the lab already
//! uses (`mqtt.server`, `mqtt.ssl_ca_cert`, `mqtt.ssl_cert`, ...), written as
//! TOML in `firmware/device.toml`, with certificate files from `firmware/fs/`.
//!
//! This module owns which keys exist, their defaults, and checking them with
//! errors that name the file, line and key. It reads files only through
//! [`FileSource`], so the same code checks the configuration in the firmware's
//! build script (files on disk), in the host simulation (files on disk) and on
//! the device (files embedded at build time).

pub mod toml;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::topic::TopicTemplates;
use toml::{Entry, Value};

/// Where certificate files named in the configuration come from.
pub trait FileSource {
    /// The bytes of `name` (as written in the configuration), or why not.
    fn read(&self, name: &str) -> Result<Vec<u8>, String>;
    /// How to show `name` to a person (e.g. `firmware/fs/ca.crt`).
    fn display(&self, name: &str) -> String {
        name.to_string()
    }
}

/// Files from a table: what the firmware embeds at build time.
pub struct EmbeddedFiles<'a>(pub &'a [(&'a str, &'a [u8])]);

impl FileSource for EmbeddedFiles<'_> {
    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        self.0
            .iter()
            .find(|(file, _)| *file == name)
            .map(|(_, bytes)| bytes.to_vec())
            .ok_or_else(|| String::from("not embedded in this firmware image"))
    }
}

/// TLS material: one-way when `client` is `None`, mutual otherwise.
#[derive(Clone)]
pub struct TlsFiles {
    /// PEM of the CA(s) that signed the broker's certificate (`mqtt.ssl_ca_cert`).
    pub ca_pem: Vec<u8>,
    /// The device's own certificate and key (`mqtt.ssl_cert`, `mqtt.ssl_key`).
    pub client: Option<ClientIdentity>,
    /// Name checked against the broker certificate (`mqtt.ssl_server_name`;
    /// default: the host part of `mqtt.server`).
    pub server_name: String,
    /// `mqtt.ssl_cipher_suites` (as Mongoose OS: mbedTLS names separated
    /// by `:`), offered in this order; empty: mbedTLS's default list.
    pub cipher_suites: Vec<String>,
}

/// The device's certificate and private key (PEM).
#[derive(Clone)]
pub struct ClientIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM. Never logged.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIdentity { cert_pem, key_pem: <hidden> }")
    }
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("server_name", &self.server_name)
            .field("mutual", &self.client.is_some())
            .field("cipher_suites", &self.cipher_suites)
            .finish()
    }
}

/// Everything the device needs to run, checked.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// `mqtt.enable`: false keeps the device off MQTT (WiFi only).
    pub mqtt_enable: bool,
    /// Host part of `mqtt.server` (name or IPv4 address).
    pub host: String,
    /// Port of `mqtt.server` (8883 when omitted).
    pub port: u16,
    /// `mqtt.server` as written, for log lines.
    pub server: String,
    /// TLS material; the firmware speaks MQTT over TLS only.
    pub tls: TlsFiles,
    /// `mqtt.user` / `mqtt.pass`.
    pub user: Option<String>,
    /// `mqtt.pass`; never logged.
    pub pass: Option<String>,
    /// `mqtt.client_id` template (default `esp32_{mac3}`).
    pub client_id: String,
    /// `mqtt.keep_alive` seconds (default 60).
    pub keep_alive_secs: u16,
    /// `mqtt.reconnect_timeout_min` / `_max` in milliseconds.
    pub reconnect_min_ms: u32,
    /// Upper bound of the reconnect backoff.
    pub reconnect_max_ms: u32,
    /// Topic templates (`fleetmq.topic`, `mqtt.will_topic`, ...).
    pub topics: TopicTemplates,
    /// `mqtt.will_message` (default `offline`), retained on the status topic.
    pub will_message: String,
    /// `wifi.sta.ssid` (required on the device, unused by the simulation).
    pub wifi_ssid: Option<String>,
    /// `wifi.sta.pass`; never logged.
    pub wifi_pass: Option<String>,
    /// `sntp.server` (default `pool.ntp.org`).
    pub sntp_server: String,
    /// `fleetmq.report_connection` (default true): after connecting, send
    /// the broker this device's view of its TLS handshake on
    /// `$fleetmq/device/handshake` (QoS 0).
    pub report_connection: bool,
    /// `fleetmq.provision` (default false): `mqtt.ssl_cert`/`ssl_key` are
    /// the batch's claim certificate; the device asks the broker for its
    /// own certificate and keeps it (docs/provisioning.md).
    pub provision: bool,
    /// `fleetmq.renew_before` seconds (default 30 days, at most 49): renew
    /// the device's own certificate this close to its end.
    pub renew_before_secs: u32,
    /// `fleetmq.ota_key` (64 hex digits, the broker's `ota-signing.pub`):
    /// firmware updates over MQTT are on, trusting manifests signed by
    /// this Ed25519 key (docs/ota.md). `None`: no updates.
    pub ota_key: Option<[u8; 32]>,
    /// `fleetmq.ota_confirm` seconds (default 300): a new image not
    /// online with the device's certificate this long after it started
    /// resets, and the next start rolls it back.
    pub ota_confirm_secs: u32,
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Not TOML of the supported subset.
    Syntax {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A required key is absent.
    Missing {
        /// The key, e.g. `mqtt.server`.
        key: &'static str,
        /// An example of a good value.
        example: &'static str,
    },
    /// A key this firmware does not know (often a typo).
    UnknownKey {
        /// 1-based line.
        line: usize,
        /// The key as written.
        key: String,
    },
    /// A key with a value of the wrong shape.
    Invalid {
        /// 1-based line (0 when the value came from a default).
        line: usize,
        /// The key.
        key: &'static str,
        /// What is expected.
        message: String,
    },
    /// A certificate or key file that cannot be read or is not PEM.
    File {
        /// The key naming the file.
        key: &'static str,
        /// The file as shown to a person.
        path: String,
        /// Why it is unusable.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Syntax { line, message } => write!(f, "line {line}: {message}"),
            ConfigError::Missing { key, example } => {
                write!(f, "missing key `{key}` (for example: {key} = {example})")
            }
            ConfigError::UnknownKey { line, key } => write!(
                f,
                "line {line}: unknown key `{key}` (known keys: {})",
                KNOWN_KEYS.join(", ")
            ),
            ConfigError::Invalid { line, key, message } => {
                write!(f, "line {line}: `{key}`: {message}")
            }
            ConfigError::File { key, path, message } => {
                write!(f, "`{key}` = {path}: {message}")
            }
        }
    }
}

/// Every key the firmware reads; anything else is refused as a likely typo.
pub const KNOWN_KEYS: &[&str] = &[
    "mqtt.enable",
    "mqtt.server",
    "mqtt.ssl_ca_cert",
    "mqtt.ssl_cert",
    "mqtt.ssl_key",
    "mqtt.ssl_server_name",
    "mqtt.ssl_cipher_suites",
    "mqtt.user",
    "mqtt.pass",
    "mqtt.client_id",
    "mqtt.keep_alive",
    "mqtt.reconnect_timeout_min",
    "mqtt.reconnect_timeout_max",
    "mqtt.will_topic",
    "mqtt.will_message",
    "wifi.sta.ssid",
    "wifi.sta.pass",
    "sntp.server",
    "fleetmq.topic",
    "fleetmq.command_topic",
    "fleetmq.response_topic",
    "fleetmq.report_connection",
    "fleetmq.provision",
    "fleetmq.renew_before",
    "fleetmq.ota_key",
    "fleetmq.ota_confirm",
];

/// Reads `device.toml` text and the files it names.
pub fn parse(text: &str, files: &dyn FileSource) -> Result<DeviceConfig, ConfigError> {
    let entries = toml::parse(text).map_err(|e| ConfigError::Syntax {
        line: e.line,
        message: e.message,
    })?;
    if let Some(unknown) = entries
        .iter()
        .find(|e| !KNOWN_KEYS.contains(&e.key.as_str()))
    {
        return Err(ConfigError::UnknownKey {
            line: unknown.line,
            key: unknown.key.clone(),
        });
    }
    let keys = Keys(&entries);
    let mqtt_enable = keys.bool("mqtt.enable")?.unwrap_or(true);
    let server = keys.string("mqtt.server")?.ok_or(ConfigError::Missing {
        key: "mqtt.server",
        example: "\"192.168.5.3:8883\"",
    })?;
    let (host, port) = split_server(&server).map_err(|message| ConfigError::Invalid {
        line: keys.line("mqtt.server"),
        key: "mqtt.server",
        message,
    })?;
    let ca_name = keys
        .string("mqtt.ssl_ca_cert")?
        .ok_or(ConfigError::Missing {
            key: "mqtt.ssl_ca_cert",
            example: "\"ca.crt\" (this firmware speaks MQTT over TLS only)",
        })?;
    let ca_pem = read_pem(files, "mqtt.ssl_ca_cert", &ca_name, "CERTIFICATE")?;
    let client = match (keys.string("mqtt.ssl_cert")?, keys.string("mqtt.ssl_key")?) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                key: "mqtt.ssl_key",
                example: "\"sandboxclient.key\" (mqtt.ssl_cert is set)",
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                key: "mqtt.ssl_cert",
                example: "\"sandboxclient.crt\" (mqtt.ssl_key is set)",
            })
        }
        (Some(cert), Some(key)) => Some(ClientIdentity {
            cert_pem: read_pem(files, "mqtt.ssl_cert", &cert, "CERTIFICATE")?,
            key_pem: read_pem(files, "mqtt.ssl_key", &key, "PRIVATE KEY")?,
        }),
    };
    let server_name = keys
        .string("mqtt.ssl_server_name")?
        .unwrap_or_else(|| host.clone());
    let reconnect_min_ms = keys.millis("mqtt.reconnect_timeout_min")?.unwrap_or(2_000);
    let reconnect_max_ms = keys.millis("mqtt.reconnect_timeout_max")?.unwrap_or(60_000);
    if reconnect_min_ms == 0 || reconnect_max_ms < reconnect_min_ms {
        return Err(ConfigError::Invalid {
            line: keys.line("mqtt.reconnect_timeout_max"),
            key: "mqtt.reconnect_timeout_max",
            message: String::from(
                "reconnect timeouts must satisfy 0 < reconnect_timeout_min <= reconnect_timeout_max",
            ),
        });
    }
    let keep_alive = keys.millis("mqtt.keep_alive")?.map(|ms| ms / 1000);
    let keep_alive_secs = match keep_alive {
        None => 60,
        Some(secs @ 5..=65535) => secs as u16,
        Some(_) => {
            return Err(ConfigError::Invalid {
                line: keys.line("mqtt.keep_alive"),
                key: "mqtt.keep_alive",
                message: String::from("seconds between 5 and 65535"),
            })
        }
    };
    let topics = TopicTemplates {
        connected: keys
            .string("fleetmq.topic")?
            .unwrap_or_else(|| String::from("/this/test/esp32_{mac3}")),
        status: keys
            .string("mqtt.will_topic")?
            .unwrap_or_else(|| String::from("/this/test/esp32_{mac3}/status")),
        command: keys
            .string("fleetmq.command_topic")?
            .unwrap_or_else(|| String::from("/this/test/esp32_{mac3}/cmd")),
        response: keys
            .string("fleetmq.response_topic")?
            .unwrap_or_else(|| String::from("/this/test/esp32_{mac3}/response")),
    };
    for (key, template) in [
        ("fleetmq.topic", &topics.connected),
        ("mqtt.will_topic", &topics.status),
        ("fleetmq.command_topic", &topics.command),
        ("fleetmq.response_topic", &topics.response),
    ] {
        crate::topic::check_template(template).map_err(|message| ConfigError::Invalid {
            line: keys.line(key),
            key: static_key(key),
            message,
        })?;
    }
    if client.is_none() && keys.bool("fleetmq.provision")? == Some(true) {
        return Err(ConfigError::Missing {
            key: "mqtt.ssl_cert",
            example: "\"claim.crt\" (fleetmq.provision asks with the batch's claim certificate)",
        });
    }
    Ok(DeviceConfig {
        mqtt_enable,
        host,
        port,
        server,
        tls: TlsFiles {
            ca_pem,
            client,
            server_name,
            cipher_suites: keys
                .string("mqtt.ssl_cipher_suites")?
                .map(|list| {
                    list.split(':')
                        .map(|name| String::from(name.trim()))
                        .filter(|name| !name.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        },
        user: keys.string("mqtt.user")?,
        pass: keys.string("mqtt.pass")?,
        client_id: keys
            .string("mqtt.client_id")?
            .unwrap_or_else(|| String::from("esp32_{mac3}")),
        keep_alive_secs,
        reconnect_min_ms,
        reconnect_max_ms,
        topics,
        will_message: keys
            .string("mqtt.will_message")?
            .unwrap_or_else(|| String::from("offline")),
        wifi_ssid: keys.string("wifi.sta.ssid")?,
        wifi_pass: keys.string("wifi.sta.pass")?,
        sntp_server: keys
            .string("sntp.server")?
            .unwrap_or_else(|| String::from("pool.ntp.org")),
        report_connection: keys.bool("fleetmq.report_connection")?.unwrap_or(true),
        provision: keys.bool("fleetmq.provision")?.unwrap_or(false),
        renew_before_secs: keys
            .millis("fleetmq.renew_before")?
            .map_or(30 * 86_400, |ms| ms / 1000),
        ota_key: ota_key(&keys)?,
        ota_confirm_secs: keys
            .millis("fleetmq.ota_confirm")?
            .map_or(300, |ms| (ms / 1000).max(10)),
    })
}

/// `fleetmq.ota_key`: 64 hex digits, or absent.
fn ota_key(keys: &Keys<'_>) -> Result<Option<[u8; 32]>, ConfigError> {
    let Some(text) = keys.string("fleetmq.ota_key")? else {
        return Ok(None);
    };
    // Decoded here (this module is also compiled into build.rs, without
    // the OTA code); whether it is a valid curve point is checked at start.
    let text = text.trim();
    let mut raw = [0u8; 32];
    let digits = text.as_bytes();
    let decoded = digits.len() == 64
        && raw.iter_mut().enumerate().all(|(i, byte)| {
            let pair = core::str::from_utf8(&digits[2 * i..2 * i + 2]).unwrap_or("");
            u8::from_str_radix(pair, 16).map(|b| *byte = b).is_ok()
        });
    decoded.then_some(()).ok_or(ConfigError::Invalid {
        line: keys.line("fleetmq.ota_key"),
        key: "fleetmq.ota_key",
        message: String::from(
            "expected the 64 hex digits of the broker's ota-signing.pub (an Ed25519 public key)",
        ),
    })?;
    Ok(Some(raw))
}

/// The `'static` spelling of a known key (errors carry `&'static str`).
fn static_key(key: &str) -> &'static str {
    KNOWN_KEYS
        .iter()
        .find(|k| **k == key)
        .copied()
        .unwrap_or("?")
}

/// `host:port` or `host` (port 8883).
fn split_server(server: &str) -> Result<(String, u16), String> {
    let (host, port) = match server.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| alloc::format!("`{port}` is not a port number (1-65535)"))?;
            (host, port)
        }
        None => (server, 8883),
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(String::from(
            "expected \"host:port\", e.g. \"192.168.5.3:8883\"",
        ));
    }
    Ok((String::from(host), port))
}

/// Reads a PEM file and checks it holds a block of `kind` (`CERTIFICATE`,
/// or any `... PRIVATE KEY`).
fn read_pem(
    files: &dyn FileSource,
    key: &'static str,
    name: &str,
    kind: &str,
) -> Result<Vec<u8>, ConfigError> {
    let error = |message: String| ConfigError::File {
        key,
        path: files.display(name),
        message,
    };
    let bytes = files
        .read(name)
        .map_err(|why| error(alloc::format!("cannot read: {why}")))?;
    let text = core::str::from_utf8(&bytes).map_err(|_| {
        error(String::from(
            "not a PEM file (DER is not supported; convert with `openssl x509 -outform pem`)",
        ))
    })?;
    let has_block = text.lines().any(|l| {
        l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&alloc::format!("{kind}-----"))
    });
    if !has_block {
        return Err(error(alloc::format!(
            "no `-----BEGIN ...{kind}-----` block (is this the right file?)"
        )));
    }
    Ok(bytes)
}

/// Typed access to the entries.
struct Keys<'a>(&'a [Entry]);

impl Keys<'_> {
    fn get(&self, key: &str) -> Option<&Entry> {
        self.0.iter().find(|e| e.key == key)
    }

    fn line(&self, key: &str) -> usize {
        self.get(key).map_or(0, |e| e.line)
    }

    fn string(&self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::Str(s),
                ..
            }) => Ok(Some(s.clone())),
            Some(e) => Err(ConfigError::Invalid {
                line: e.line,
                key,
                message: String::from("expected a quoted string"),
            }),
        }
    }

    fn bool(&self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::Bool(b),
                ..
            }) => Ok(Some(*b)),
            Some(e) => Err(ConfigError::Invalid {
                line: e.line,
                key,
                message: String::from("expected true or false"),
            }),
        }
    }

    /// A number of seconds (decimals allowed, as in mos.yml) in milliseconds.
    fn millis(&self, key: &'static str) -> Result<Option<u32>, ConfigError> {
        let Some(entry) = self.get(key) else {
            return Ok(None);
        };
        let invalid = || ConfigError::Invalid {
            line: entry.line,
            key,
            message: String::from("expected a number of seconds, e.g. 2 or 0.5"),
        };
        let Value::Number(text) = &entry.value else {
            return Err(invalid());
        };
        if text.starts_with('-') {
            return Err(invalid());
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let whole: u32 = whole.parse().map_err(|_| invalid())?;
        let mut frac_ms = 0u32;
        for (i, digit) in fraction.chars().take(3).enumerate() {
            let d = digit.to_digit(10).ok_or_else(invalid)?;
            frac_ms += d * [100, 10, 1][i];
        }
        whole
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(frac_ms))
            .map(Some)
            .ok_or_else(invalid)
    }
}

#[cfg(test)]
mod tests;
