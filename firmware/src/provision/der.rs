//! The DER encodings of a PKCS#10 request (X.690): a TLV with a definite
//! length, and a small reader for the certificate fields renewal needs.

use alloc::vec::Vec;

pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OID: u8 = 0x06;
pub const UTF8_STRING: u8 = 0x0C;
pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;
/// `[0]` constructed, context specific.
pub const CONTEXT_0: u8 = 0xA0;

/// `tag`, the length of `content` in DER's definite form, then `content`.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(3);
        out.push(0x80 | (4 - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
    out
}

/// The concatenation of `parts`, as one constructed value's content.
pub fn concat(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// A BIT STRING of whole bytes (no unused bits).
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    content.push(0);
    content.extend_from_slice(bytes);
    tlv(BIT_STRING, &content)
}

/// Reads one TLV at the start of `input`: its tag, its content and what
/// follows it. `None` on anything malformed or indefinite.
pub fn read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (content, after) = rest.split_at(len);
    Some((tag, content, after))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn lengths_in_short_and_long_form() {
        assert_eq!(tlv(OID, &[1, 2]), [OID, 2, 1, 2]);
        let long = tlv(SEQUENCE, &[0u8; 200]);
        assert_eq!(&long[..3], &[SEQUENCE, 0x81, 200]);
        let longer = tlv(SEQUENCE, &[0u8; 300]);
        assert_eq!(&longer[..4], &[SEQUENCE, 0x82, 0x01, 0x2C]);
        let (tag, content, rest) = read(&longer).unwrap();
        assert_eq!((tag, content.len(), rest.len()), (SEQUENCE, 300, 0));
    }

    #[test]
    fn malformed_input_reads_as_none() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 1],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
        ] {
            assert!(read(bad).is_none(), "{bad:?}");
        }
    }
}
