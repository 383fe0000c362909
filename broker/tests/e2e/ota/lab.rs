//! The OTA tests' lab: a PKI made with `fleetmq certs` (device
//! certificates in one group), the broker with `[ota]`, the simulated
//! fleet, images and the `fleetmq firmware` command.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::harness::{Broker, ListenerSpec};

/// The certificate OU of the fleet.
pub const DEVICE_GROUP: &str = "fleet";

/// Client ids of the simulated devices: MAC 24:0A:C4:80:7A:98 plus n.
pub fn device_id(n: u32) -> String {
    format!("esp32_{:06X}", 0x807A98 + n)
}

/// The `--mac` of device `n`.
pub fn device_mac(n: u32) -> String {
    let tail = 0x807A98 + n;
    format!(
        "24:0A:C4:{:02X}:{:02X}:{:02X}",
        tail >> 16,
        (tail >> 8) & 0xFF,
        tail & 0xFF
    )
}

pub struct Lab {
    _temp: tempfile::TempDir,
    pub root: PathBuf,
    pub pki: PathBuf,
    pub ota: PathBuf,
    certs: PathBuf,
}

fn fleetmq(cwd: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmq"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

impl Lab {
    pub fn new(devices: u32) -> Lab {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_path_buf();
        let pki = root.join("pki");
        let certs = root.join("device-certs");
        let dir = pki.to_str().unwrap();
        let run = |args: &[&str]| {
            let out = fleetmq(&root, args);
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        run(&["certs", "init", "--dir", dir]);
        // RSA: the ESP32's default suite (ECDHE-RSA) needs an RSA server key.
        run(&[
            "certs",
            "server",
            "--dir",
            dir,
            "--name",
            "localhost",
            "--rsa",
        ]);
        let ids: Vec<String> = (0..devices).map(device_id).collect();
        let mut args = vec![
            "certs",
            "device",
            "--dir",
            dir,
            "--group",
            DEVICE_GROUP,
            "--out",
        ];
        args.push(certs.to_str().unwrap());
        args.extend(ids.iter().map(String::as_str));
        run(&args);
        Lab {
            ota: root.join("ota"),
            _temp: temp,
            root,
            pki,
            certs,
        }
    }

    /// The broker: a mutual-TLS listener `tls`, `[ota]` with 1 KiB chunks
    /// and images of at most 64 KiB.
    pub fn broker(&self) -> Broker {
        self.broker_with(&["tls"], "")
    }

    /// The broker with a mutual-TLS listener of each name (the lab's
    /// certificates) and `ota_extra` lines added to its `[ota]` table.
    pub fn broker_with(&self, listeners: &[&str], ota_extra: &str) -> Broker {
        let dir = self.pki.display();
        let tls = format!(
            "cert = \"{dir}/server/localhost.crt\"\nkey = \"{dir}/server/localhost.key\"\n\
             client_ca = \"{dir}/ca.crt\"\ncrl = [\"{dir}/crl.pem\"]\nclient_certs = \"required\"\n"
        );
        let specs: Vec<ListenerSpec> = listeners
            .iter()
            .map(|name| ListenerSpec::tls(name, &tls))
            .collect();
        Broker::start_with_listeners(
            &specs,
            &format!(
                "[ota]\nenabled = true\ndir = \"{}\"\npki_dir = \"{dir}\"\nchunk_bytes = 1024\n\
                 max_image_bytes = 65536\ndevice_timeout_secs = 120\n{ota_extra}\n[log]\nlevel = \"info\"\n",
                self.ota.display()
            ),
        )
    }

    /// Makes an image of `version` (`size` bytes of body plus `marker`)
    /// and uploads it for the ESP32-C3 with `fleetmq firmware upload`.
    pub fn upload(&self, broker: &Broker, version: &str, size: usize, marker: &[u8]) {
        let image = self.image(version, size, marker);
        self.firmware_ok(
            broker,
            &[
                "upload",
                image.to_str().unwrap(),
                "--version",
                version,
                "--chip",
                "esp32c3",
            ],
        );
    }

    /// `fleetmq firmware rollout --version V --chip esp32c3 --id ID` plus
    /// `args` (the targets, waves, limits).
    pub fn rollout(&self, broker: &Broker, id: &str, version: &str, args: &[&str]) {
        let mut all = vec![
            "rollout",
            "--version",
            version,
            "--chip",
            "esp32c3",
            "--id",
            id,
        ];
        all.extend_from_slice(args);
        self.firmware_ok(broker, &all);
    }

    /// `fleetmq firmware ARGS --config <the broker's>`; must succeed.
    pub fn firmware_ok(&self, broker: &Broker, args: &[&str]) -> String {
        let out = self.firmware(broker, args);
        assert!(out.status.success(), "firmware {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Must fail; returns stderr.
    pub fn firmware_err(&self, broker: &Broker, args: &[&str]) -> String {
        let out = self.firmware(broker, args);
        assert!(
            !out.status.success(),
            "firmware {args:?} succeeded: {out:?}"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn firmware(&self, broker: &Broker, args: &[&str]) -> std::process::Output {
        let config = broker.config_path();
        let mut all = vec!["firmware", "--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        fleetmq(&self.root, &all)
    }

    /// An ESP32-C3 image of `version`, `size` bytes of body plus `marker`.
    pub fn image(&self, version: &str, size: usize, marker: &[u8]) -> PathBuf {
        let mut body: Vec<u8> = (0..size).map(|n| (n * 7 % 251) as u8).collect();
        body.extend_from_slice(marker);
        let image = fleetmq_firmware::ota::image::build(0x0005, version, &body);
        let path = self.root.join(format!("image-{version}-{size}.bin"));
        std::fs::write(&path, image).unwrap();
        path
    }

    /// `chip/version` of every stored image (staging folders included).
    pub fn stored_images(&self) -> Vec<String> {
        let mut out = Vec::new();
        let images = self.ota.join("images");
        for chip in std::fs::read_dir(&images).into_iter().flatten().flatten() {
            let name = chip.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                out.push(name);
                continue;
            }
            for version in std::fs::read_dir(chip.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                out.push(format!("{name}/{}", version.file_name().to_string_lossy()));
            }
        }
        out.sort();
        out
    }

    /// `devices` simulated devices with their own certificates and flash.
    pub fn sim(&self, broker: &Broker, devices: u32, extra: &[&str]) -> Sim {
        self.sim_with_key(broker, devices, &self.pki.join("ota-signing.pub"), extra)
    }

    pub fn sim_with_key(&self, broker: &Broker, devices: u32, key: &Path, extra: &[&str]) -> Sim {
        broker.assert_log("Firmware updates on", Duration::from_secs(10));
        let device_dir = self.root.join("device");
        let fs = device_dir.join("fs");
        std::fs::create_dir_all(&fs).unwrap();
        std::fs::copy(self.pki.join("ca.crt"), fs.join("ca.crt")).unwrap();
        let port = broker.addr_of("tls").port();
        let config = device_dir.join("device.toml");
        std::fs::write(
            &config,
            format!(
                "[mqtt]\nserver = \"127.0.0.1:{port}\"\nssl_ca_cert = \"ca.crt\"\nssl_server_name = \"localhost\"\n\
                 reconnect_timeout_min = 0.2\nreconnect_timeout_max = 1\n"
            ),
        )
        .unwrap();
        let flash = self.root.join("flash");
        // One log per sim process of the test (two may run at once).
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let log = self.root.join(format!("sim-{n}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(sim_binary())
            .arg("--config")
            .arg(&config)
            .args(["--devices", &devices.to_string()])
            .arg("--device-certs")
            .arg(&self.certs)
            .arg("--ota-flash")
            .arg(&flash)
            .arg("--ota-key")
            .arg(key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Sim { child, log }
    }

    /// The rollout document once `done` says so (panics after `timeout`).
    pub fn wait_rollout(
        &self,
        id: &str,
        done: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
        sim: &Sim,
    ) -> serde_json::Value {
        let path = self.ota.join("rollouts").join(format!("{id}.json"));
        let deadline = Instant::now() + timeout;
        loop {
            let doc: Option<serde_json::Value> = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            if let Some(doc) = doc {
                if done(&doc) {
                    return doc;
                }
                if Instant::now() > deadline {
                    panic!(
                        "rollout {id} not there in {timeout:?}: {doc:#}\n{}",
                        sim.text()
                    );
                }
            } else if Instant::now() > deadline {
                panic!("no rollout {id}\n{}", sim.text());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A `fleetmq-sim` process writing to a log file; killed on drop.
pub struct Sim {
    child: Child,
    log: PathBuf,
}

impl Sim {
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `needle` was printed `count` times.
    pub fn wait_count(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.text().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not {count} times:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulation binary, built once per test process (another package).
pub fn sim_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "fleetmq-firmware", "--bin", "fleetmq-sim"])
                .status()
                .unwrap();
            assert!(status.success());
            dir.join("fleetmq-sim")
        })
        .clone()
}

impl Lab {
    /// Device `n` connected over mutual TLS with its own certificate.
    pub fn device_client(&self, broker: &Broker, n: u32) -> crate::harness::RawClient {
        self.device_client_on(broker, "tls", n)
    }

    /// Device `n` connected to the listener `listener` with its own
    /// certificate.
    pub fn device_client_on(
        &self,
        broker: &Broker,
        listener: &str,
        n: u32,
    ) -> crate::harness::RawClient {
        use crate::harness::tls::{self, client_config, ANY_VERSION};
        let id = device_id(n);
        let identity = crate::harness::pki::Issued {
            cert: self.certs.join(format!("{id}.crt")),
            key: self.certs.join(format!("{id}.key")),
            der: Vec::new(),
            serial: Vec::new(),
        };
        let config = client_config(&self.pki.join("ca.crt"), Some(&identity), ANY_VERSION);
        let transport = tls::connect(broker.addr_of(listener), config).unwrap();
        let mut client = crate::harness::RawClient::over(transport);
        client.send_connect(&crate::harness::ConnectBuilder::v311(&id));
        match client.recv_packet(Duration::from_secs(10)) {
            Some(fleetmq_codec::Packet::ConnAck(ack)) if !ack.reason.is_error() => client,
            other => panic!("{id}: no CONNACK accepted: {other:?}"),
        }
    }
}
