//! Helpers the simulator's integration tests share.

use std::path::Path;

use nines_datasets::drive::{DriveReader, ReadFilter};

/// Every message of a drive as (topic, log time, CDR bytes): two drives
/// with equal payloads are the same drive, byte for byte.
pub fn payloads(path: &Path) -> Vec<(String, u64, Vec<u8>)> {
    let reader = DriveReader::open(path).expect("a drive");
    let mut out = Vec::new();
    let mut it = reader.messages(&ReadFilter::all()).expect("its messages");
    while let Some(m) = it.next_message() {
        let m = m.expect("a readable message");
        out.push((m.topic.to_owned(), m.log_time_nanos, m.data.to_vec()));
    }
    out
}
