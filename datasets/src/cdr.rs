//! CDR payloads as ROS 2 puts them on the wire and in MCAP: a 4-byte
//! encapsulation header, then the body in that byte order.
//!
//! `cdr-encoding` reads from a slice with bounds checks (a corrupt length
//! prefix is an error, not a huge allocation), so it is used for both
//! directions; it does not write the encapsulation header, so this module does.

use byteorder::{BigEndian, LittleEndian};
use serde::{Serialize, de::DeserializeOwned};

/// Encapsulation header for little-endian plain CDR (`CDR_LE`).
pub const CDR_LE_HEADER: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// Why a payload could not be (de)serialised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdrError {
    /// Fewer than 4 bytes, or an encapsulation kind that is not plain CDR.
    #[error("bad encapsulation header {0:02x?} (expected 00 01 for CDR_LE or 00 00 for CDR_BE)")]
    Header(Vec<u8>),
    /// The body did not match the type.
    #[error("{0}")]
    Body(String),
}

/// Encodes `msg` as little-endian CDR with its encapsulation header into `out`
/// (cleared first, so a caller can reuse one buffer for many messages).
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), CdrError> {
    out.clear();
    out.extend_from_slice(&CDR_LE_HEADER);
    cdr_encoding::to_writer::<_, LittleEndian, _>(&mut *out, msg).map_err(|e| CdrError::Body(e.to_string()))
}

/// Encodes `msg` as little-endian CDR with its encapsulation header.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CdrError> {
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Decodes a CDR payload (either byte order) into `T`. Trailing bytes are
/// allowed, so a prefix type (such as a bare header) can be decoded from a
/// longer message.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CdrError> {
    let (header, body) = payload.split_at_checked(4).ok_or_else(|| CdrError::Header(payload.to_vec()))?;
    let result = match header[..2] {
        [0x00, 0x01] => cdr_encoding::from_bytes::<T, LittleEndian>(body),
        [0x00, 0x00] => cdr_encoding::from_bytes::<T, BigEndian>(body),
        _ => return Err(CdrError::Header(header.to_vec())),
    };
    result.map(|(value, _)| value).map_err(|e| CdrError::Body(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Sample {
        a: u8,
        b: f64,
        s: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    }

    #[test]
    fn layout_matches_hand_computed_bytes() {
        let s = Sample { a: 7, b: 1.0, s: "hi".into(), bytes: vec![9, 8] };
        let bytes = encode(&s).unwrap();
        let expected: Vec<u8> = [
            &CDR_LE_HEADER[..],
            &[7, 0, 0, 0, 0, 0, 0, 0],    // u8, padded to 8 for the f64
            &1.0f64.to_le_bytes(),        // b
            &[3, 0, 0, 0, b'h', b'i', 0], // string with NUL
            &[0],                         // pad to 4
            &[2, 0, 0, 0, 9, 8],          // byte sequence
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), s);
    }

    #[test]
    fn truncated_or_foreign_payloads_are_errors() {
        let s = Sample { a: 1, b: 2.0, s: "x".into(), bytes: vec![1; 100] };
        let bytes = encode(&s).unwrap();
        for cut in [0, 3, 10, bytes.len() - 1] {
            assert!(decode::<Sample>(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[1] = 0x07;
        assert!(matches!(decode::<Sample>(&bad), Err(CdrError::Header(_))));
        // A length prefix claiming 4 GiB must fail fast, not allocate.
        let mut huge = bytes;
        let at = 4 + 16 + 8; // start of the byte sequence length
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode::<Sample>(&huge).is_err());
    }
}
