//! Build script of fleetmq-firmware.
//!
//! For host builds it does nothing. For a device build (a chip feature such
//! as `esp32c3`) it reads `firmware/device.toml` (or `$FLEETMQ_DEVICE_TOML`)
//! and the certificate files it names in `firmware/fs/` (or
//! `$FLEETMQ_DEVICE_FS`), checks them with the library's own configuration
//! code, fails the build with the file, line and key of any problem, and
//! embeds them into the firmware (`$OUT_DIR/device_files.rs`). It also passes
//! esp-hal's linker script to the device binary.

extern crate alloc;

#[allow(dead_code, clippy::all)]
#[path = "src/topic.rs"]
mod topic;

#[allow(dead_code, clippy::all)]
#[path = "src/config/mod.rs"]
mod config;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Files on disk under the `fs` folder.
struct DiskFiles(PathBuf);

impl config::FileSource for DiskFiles {
    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        std::fs::read(self.0.join(name)).map_err(|e| e.to_string())
    }
    fn display(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DEVICE").is_none() {
        return;
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-Tlinkall.x");
    }
    if let Err(message) = embed_device_files() {
        eprintln!("\nerror: fleetmq firmware configuration: {message}\n");
        std::process::exit(1);
    }
}

fn embed_device_files() -> Result<(), String> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    println!("cargo:rerun-if-env-changed=FLEETMQ_DEVICE_TOML");
    println!("cargo:rerun-if-env-changed=FLEETMQ_DEVICE_FS");
    let toml_path = std::env::var_os("FLEETMQ_DEVICE_TOML")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("device.toml"));
    let fs_dir = std::env::var_os("FLEETMQ_DEVICE_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("fs"));
    println!("cargo:rerun-if-changed={}", toml_path.display());
    println!("cargo:rerun-if-changed={}", fs_dir.display());
    let text = std::fs::read_to_string(&toml_path)
        .map_err(|e| format!("{}: cannot read: {e}", toml_path.display()))?;
    let files = DiskFiles(fs_dir.clone());
    let parsed =
        config::parse(&text, &files).map_err(|e| format!("{}: {e}", toml_path.display()))?;
    if parsed.wifi_ssid.is_none() {
        return Err(format!(
            "{}: missing key `wifi.sta.ssid` (the device must know its WiFi network)",
            toml_path.display()
        ));
    }
    let entries = config::toml::parse(&text).map_err(|e| e.message)?;
    let mut out = String::new();
    let _ = writeln!(out, "/// `device.toml` as it was at build time.");
    let _ = writeln!(
        out,
        "pub const DEVICE_TOML: &str = include_str!({:?});",
        abs(&toml_path)
    );
    let _ = writeln!(out, "/// Certificate files named by `device.toml`.");
    let _ = writeln!(out, "pub static FILES: &[(&str, &[u8])] = &[");
    for key in ["mqtt.ssl_ca_cert", "mqtt.ssl_cert", "mqtt.ssl_key"] {
        let Some(entry) = entries.iter().find(|e| e.key == key) else {
            continue;
        };
        if let config::toml::Value::Str(name) = &entry.value {
            let path = fs_dir.join(name);
            println!("cargo:rerun-if-changed={}", path.display());
            let _ = writeln!(out, "    ({name:?}, include_bytes!({:?})),", abs(&path));
        }
    }
    let _ = writeln!(out, "];");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    std::fs::write(out_dir.join("device_files.rs"), out).map_err(|e| e.to_string())
}

fn abs(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
