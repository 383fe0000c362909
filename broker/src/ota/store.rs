//! The OTA state folder (`[ota] dir`, default `<data_dir>/ota`) and the
//! manifest signing key (`<pki_dir>/ota-signing.key`, 0600):
//!
//! ```text
//! images/<chip>/<version>/image.bin      the image, as uploaded
//! images/<chip>/<version>/manifest.txt   the signed manifest (what devices get)
//! rollouts/<id>.json                     a rollout and its devices' state
//! rollouts/<id>.control                  pause | resume | abort, for the broker
//! ```
//!
//! An upload is checked whole, written to a staging folder and renamed
//! into place: a refused or interrupted upload leaves nothing behind.
//! Owns: file layout, upload checks, signing. Must not drive rollouts.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use fleetmq_core::config::Config;
use sha2::{Digest, Sha256};

/// Where the OTA files of `config` are.
#[derive(Debug, Clone)]
pub struct OtaStore {
    /// The state folder.
    pub dir: PathBuf,
    /// The folder of the signing key.
    pub pki_dir: PathBuf,
    /// Largest image accepted.
    pub max_image_bytes: u64,
    /// Bytes per chunk written into new manifests.
    pub chunk_bytes: u32,
}

/// A stored image's manifest fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestInfo {
    pub version: String,
    pub chip: String,
    pub size: u64,
    pub sha256: String,
    pub chunk_size: u32,
}

/// ESP-IDF chip ids of the chips fleetmq builds firmware for.
pub fn chip_id(chip: &str) -> Option<u16> {
    match chip {
        "esp32" => Some(0x0000),
        "esp32s3" => Some(0x0009),
        "esp32c3" => Some(0x0005),
        "esp32c6" => Some(0x000D),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl OtaStore {
    /// The store `config` names.
    pub fn new(config: &Config) -> OtaStore {
        let ota = &config.ota;
        OtaStore {
            dir: ota
                .dir
                .clone()
                .unwrap_or_else(|| config.data_dir.join("ota")),
            pki_dir: ota
                .pki_dir
                .clone()
                .or_else(|| config.provision.pki_dir.clone())
                .unwrap_or_else(|| config.data_dir.join("pki")),
            max_image_bytes: ota.max_image_bytes,
            // Within what a device receive buffer takes (firmware: 16 KiB).
            chunk_bytes: ota.chunk_bytes.clamp(256, 8192),
        }
    }

    fn image_dir(&self, chip: &str, version: &str) -> PathBuf {
        self.dir.join("images").join(chip).join(version)
    }

    /// The rollouts folder.
    pub fn rollouts_dir(&self) -> PathBuf {
        self.dir.join("rollouts")
    }

    /// The signing key, made (0600) on first use; its public key is
    /// written beside it as hex (`ota-signing.pub`) for device images.
    pub fn signing_key(&self) -> Result<Ed25519KeyPair, String> {
        let path = self.pki_dir.join("ota-signing.key");
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let document = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| String::from("cannot generate the OTA signing key"))?;
                std::fs::create_dir_all(&self.pki_dir)
                    .map_err(|e| format!("{}: {e}", self.pki_dir.display()))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                file.write_all(document.as_ref())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                document.as_ref().to_vec()
            }
            Err(error) => return Err(format!("{}: {error}", path.display())),
        };
        let key = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| format!("{}: not an Ed25519 PKCS#8 key", path.display()))?;
        let public = self.pki_dir.join("ota-signing.pub");
        let text = format!("{}\n", hex(key.public_key().as_ref()));
        if std::fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&public, text).map_err(|e| format!("{}: {e}", public.display()))?;
        }
        Ok(key)
    }

    /// Checks and stores an image; returns its manifest. Nothing is left
    /// behind when it is refused.
    pub fn upload(&self, file: &Path, version: &str, chip: &str) -> Result<ManifestInfo, String> {
        let Some(expected_chip) = chip_id(chip) else {
            return Err(format!(
                "unknown chip `{chip}`: use esp32c3, esp32c6, esp32 or esp32s3"
            ));
        };
        let valid_version = !version.is_empty()
            && version.len() <= 31
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
        if !valid_version {
            return Err(format!(
                "version `{version}`: 1 to 31 characters of letters, digits and . _ + -"
            ));
        }
        let size = std::fs::metadata(file)
            .map_err(|e| format!("{}: {e}", file.display()))?
            .len();
        if size == 0 {
            return Err(format!("{}: the image is empty", file.display()));
        }
        if size > self.max_image_bytes {
            return Err(format!(
                "{}: {size} bytes is more than an OTA slot takes (ota.max_image_bytes = {})",
                file.display(),
                self.max_image_bytes
            ));
        }
        let image = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let (image_chip, image_version) = describe(&image)
            .map_err(|why| format!("{}: not an ESP application image: {why}", file.display()))?;
        if image_chip != expected_chip {
            return Err(format!(
                "{}: the image is built for chip id {image_chip:#06x}, not {chip} ({expected_chip:#06x})",
                file.display()
            ));
        }
        if image_version != version {
            return Err(format!(
                "{}: the image's descriptor says version `{image_version}`, not `{version}`",
                file.display()
            ));
        }
        let final_dir = self.image_dir(chip, version);
        if final_dir.exists() {
            return Err(format!(
                "version {version} for {chip} is already uploaded; versions are never replaced"
            ));
        }
        let info = ManifestInfo {
            version: version.to_owned(),
            chip: chip.to_owned(),
            size,
            sha256: hex(&Sha256::digest(&image)),
            chunk_size: self.chunk_bytes,
        };
        let key = self.signing_key()?;
        let manifest = signed_manifest(&info, &key);
        let staging = self
            .dir
            .join("images")
            .join(format!(".staging-{}-{version}", std::process::id()));
        let written = (|| {
            std::fs::create_dir_all(&staging)?;
            std::fs::write(staging.join("image.bin"), &image)?;
            std::fs::write(staging.join("manifest.txt"), &manifest)?;
            if let Some(parent) = final_dir.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&staging, &final_dir)
        })();
        if let Err(error) = written {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(format!("{}: {error}", final_dir.display()));
        }
        Ok(info)
    }

    /// The signed manifest and the image of `chip`/`version`.
    pub fn image(&self, chip: &str, version: &str) -> Result<(String, Vec<u8>), String> {
        let dir = self.image_dir(chip, version);
        let manifest = std::fs::read_to_string(dir.join("manifest.txt"))
            .map_err(|e| format!("no image {version} for {chip}: {e}"))?;
        let image =
            std::fs::read(dir.join("image.bin")).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok((manifest, image))
    }

    /// Whether `chip`/`version` was uploaded.
    pub fn has_image(&self, chip: &str, version: &str) -> bool {
        self.image_dir(chip, version).join("manifest.txt").is_file()
    }
}

/// The manifest text devices verify: the signature covers every byte
/// before `signature=` (firmware `ota::manifest`).
pub fn signed_manifest(info: &ManifestInfo, key: &Ed25519KeyPair) -> String {
    let body = format!(
        "fleetmq-ota-manifest-v1\nversion={}\nchip={}\nsize={}\nsha256={}\nchunk_size={}\n",
        info.version, info.chip, info.size, info.sha256, info.chunk_size
    );
    let signature = key.sign(body.as_bytes());
    format!("{body}signature={}\n", hex(signature.as_ref()))
}

/// Chip id and version from the image header and application descriptor
/// (the same offsets as firmware `ota::image`).
fn describe(image: &[u8]) -> Result<(u16, String), &'static str> {
    if image.len() < 80 || image[0] != 0xE9 {
        return Err("no ESP image header (magic 0xE9)");
    }
    let chip = u16::from_le_bytes([image[12], image[13]]);
    let magic = u32::from_le_bytes([image[32], image[33], image[34], image[35]]);
    if magic != 0xABCD_5432 {
        return Err("no application descriptor (esp_app_desc_t)");
    }
    let field = &image[48..80];
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    let version = std::str::from_utf8(&field[..end]).map_err(|_| "version is not UTF-8")?;
    Ok((chip, version.to_owned()))
}
