//! `nines recover`: rewrite a drive cut mid-write (or damaged) into a whole,
//! indexed file, keeping every complete message.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;

use mcap::records::Record;

use super::scan::LinearScan;
use super::writer::ChannelSpec;
use super::{DriveWriter, MCAP_MAGIC};
use crate::error::{DatasetError, Result};

/// What [`recover`] kept and where it had to stop.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RecoveryReport {
    /// Messages copied.
    pub messages: u64,
    /// Channels copied.
    pub channels: usize,
    /// Metadata records copied.
    pub metadata: usize,
    /// Log time of the last message kept, ns.
    pub last_log_time_nanos: Option<u64>,
    /// Byte offset where reading stopped, if the input was not whole.
    pub stopped_at_offset: Option<u64>,
    /// Why reading stopped there.
    pub stop_reason: Option<String>,
}

/// Copies every complete message (with its schema and channel) and metadata
/// record of `input` into a new drive at `output`. A cut or corrupt tail is
/// reported, not an error: what came before it is kept. Errors are only for
/// a file that is not MCAP at all or an output that cannot be written.
pub fn recover(input: &Path, output: &Path) -> Result<RecoveryReport> {
    let mut file = File::open(input).map_err(|e| DatasetError::io(input, e))?;
    let mut magic = [0u8; 8];
    let ok = std::io::Read::read_exact(&mut file, &mut magic).is_ok() && &magic == MCAP_MAGIC;
    if !ok {
        return Err(DatasetError::NotMcap {
            path: input.into(),
            detail: "the first 8 bytes are not the MCAP magic; nothing to recover".into(),
        });
    }
    let file = File::open(input).map_err(|e| DatasetError::io(input, e))?;
    let mut scan = LinearScan::new(file);
    let mut writer = DriveWriter::create(output)?;
    let mut schemas: HashMap<u16, (String, String, Vec<u8>)> = HashMap::new();
    let mut channels: HashMap<u16, ChannelSpec> = HashMap::new();
    let mut report = RecoveryReport::default();
    while let Some(next) = scan.next_record() {
        let (opcode, body) = match next {
            Ok(record) => record,
            Err(stop) => {
                report.stopped_at_offset = Some(stop.offset);
                report.stop_reason = Some(stop.detail);
                break;
            }
        };
        match mcap::parse_record(opcode, body) {
            Ok(Record::Schema { header, data }) => {
                schemas.insert(header.id, (header.name, header.encoding, data.into_owned()));
            }
            Ok(Record::Channel(channel)) => {
                let (name, encoding, data) = schemas.get(&channel.schema_id).cloned().unwrap_or_default();
                channels.insert(
                    channel.id,
                    ChannelSpec {
                        topic: channel.topic,
                        schema_name: name,
                        schema_encoding: encoding,
                        schema_data: data,
                        message_encoding: channel.message_encoding,
                        metadata: channel.metadata,
                    },
                );
            }
            Ok(Record::Message { header, data }) => {
                // A message whose channel record was lost cannot be described: skip it.
                if let Some(spec) = channels.get(&header.channel_id) {
                    writer.write_raw(spec, header.log_time, header.publish_time, &data)?;
                    report.messages += 1;
                    report.last_log_time_nanos = Some(header.log_time);
                }
            }
            Ok(Record::Metadata(m)) => {
                writer.write_metadata(&m.name, m.metadata.into_iter().collect::<BTreeMap<_, _>>())?;
                report.metadata += 1;
            }
            // Indexes, statistics and the footer are rebuilt by the writer.
            Ok(_) => {}
            Err(e) => {
                report.stop_reason = Some(format!("unreadable record (opcode 0x{opcode:02x}): {e}"));
                report.stopped_at_offset = Some(scan.consumed());
                break;
            }
        }
    }
    report.channels = channels.len();
    writer.finish()?;
    Ok(report)
}
