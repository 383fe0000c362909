//! What the device reads from an ESP-IDF application image before and
//! after it boots it: the image header's magic and chip id, and the
//! version in the application descriptor (`esp_app_desc_t`) that follows
//! the first segment header. The broker checks the same fields at upload.
//!
//! Owns: those offsets. Must not read flash (callers pass the bytes).

/// First byte of an ESP application image.
pub const IMAGE_MAGIC: u8 = 0xE9;
/// `esp_app_desc_t.magic_word`.
pub const APP_DESC_MAGIC: u32 = 0xABCD_5432;
/// Bytes needed to read chip id and version.
pub const HEADER_LEN: usize = 80;

/// ESP-IDF's `esp_chip_id_t` for the chips the firmware builds for.
pub fn chip_id(chip: &str) -> Option<u16> {
    match chip {
        "esp32" => Some(0x0000),
        "esp32s3" => Some(0x0009),
        "esp32c3" => Some(0x0005),
        "esp32c6" => Some(0x000D),
        _ => None,
    }
}

/// The chip id and version an image declares, or why it is no image.
pub fn describe(image: &[u8]) -> Result<(u16, &str), &'static str> {
    if image.len() < HEADER_LEN {
        return Err("shorter than an image header");
    }
    if image[0] != IMAGE_MAGIC {
        return Err("no ESP image magic (0xE9)");
    }
    let chip = u16::from_le_bytes([image[12], image[13]]);
    let magic = u32::from_le_bytes([image[32], image[33], image[34], image[35]]);
    if magic != APP_DESC_MAGIC {
        return Err("no application descriptor after the first segment header");
    }
    let field = &image[48..80];
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    let version = core::str::from_utf8(&field[..end]).map_err(|_| "version is not UTF-8")?;
    Ok((chip, version))
}

/// A minimal image with this header, for tests and the simulation's
/// factory image: header, segment header, descriptor, then `body`.
pub fn build(chip: u16, version: &str, body: &[u8]) -> alloc::vec::Vec<u8> {
    let mut image = alloc::vec![0u8; HEADER_LEN + 176];
    image[0] = IMAGE_MAGIC;
    image[1] = 1;
    image[12..14].copy_from_slice(&chip.to_le_bytes());
    image[32..36].copy_from_slice(&APP_DESC_MAGIC.to_le_bytes());
    let bytes = version.as_bytes();
    let len = bytes.len().min(31);
    image[48..48 + len].copy_from_slice(&bytes[..len]);
    image.extend_from_slice(body);
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_builds() {
        let image = build(5, "1.2.3", b"body");
        assert_eq!(describe(&image), Ok((5, "1.2.3")));
        assert!(describe(&image[..10]).is_err());
        let mut bad = image.clone();
        bad[0] = 0;
        assert!(describe(&bad).is_err());
    }
}
