//! Linear, record-by-record scan of an MCAP file that may be cut short or
//! damaged: what recovery needs. Tracks how far into the file it has read,
//! so a failure can name an offset.

use std::fs::File;
use std::io::Read;

use mcap::sans_io::linear_reader::{LinearReadEvent, LinearReader, LinearReaderOptions};

/// Where and why a scan stopped early.
#[derive(Debug, Clone)]
pub(crate) struct ScanStop {
    /// Bytes of the file consumed when the problem was found.
    pub offset: u64,
    /// What was wrong.
    pub detail: String,
}

pub(crate) struct LinearScan {
    reader: LinearReader,
    file: File,
    consumed: u64,
    record: Vec<u8>,
}

impl LinearScan {
    pub(crate) fn new(file: File) -> Self {
        let options = LinearReaderOptions::default()
            .with_skip_end_magic(true)
            .with_validate_chunk_crcs(true)
            // A chunk is used only once it is whole and its CRC matches, so a
            // half-written last chunk is dropped, never half-kept.
            .with_prevalidate_chunk_crcs(true)
            .with_record_length_limit(1 << 30);
        Self { reader: LinearReader::new_with_options(options), file, consumed: 0, record: Vec::new() }
    }

    /// Bytes of the file read so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next record (`opcode`, body), `None` at a clean end, or where it stopped.
    pub(crate) fn next_record(&mut self) -> Option<Result<(u8, &[u8]), ScanStop>> {
        let opcode = loop {
            match self.reader.next_event()? {
                Ok(LinearReadEvent::ReadRequest(need)) => {
                    let buf = self.reader.insert(need);
                    match self.file.read(buf) {
                        Ok(n) => {
                            self.reader.notify_read(n);
                            self.consumed += n as u64;
                            if n == 0 {
                                return Some(Err(ScanStop {
                                    offset: self.consumed,
                                    detail: "the file ends in the middle of a record".into(),
                                }));
                            }
                        }
                        Err(e) => {
                            return Some(Err(ScanStop { offset: self.consumed, detail: e.to_string() }));
                        }
                    }
                }
                Ok(LinearReadEvent::Record { data, opcode }) => {
                    self.record.clear();
                    self.record.extend_from_slice(data);
                    break opcode;
                }
                Err(e) => return Some(Err(ScanStop { offset: self.consumed, detail: e.to_string() })),
            }
        };
        Some(Ok((opcode, &self.record)))
    }
}
