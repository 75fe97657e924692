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
    /// Chunks passed over when the summary's chunk index led past the
    /// damage: byte offset and why, in file order.
    pub skipped_chunks: Vec<(u64, String)>,
    /// The data section was read to its end record: whatever stopped the
    /// scan (a cut summary) lost no message.
    pub data_complete: bool,
}

impl RecoveryReport {
    /// Nothing of the input was lost.
    #[must_use]
    pub fn whole(&self) -> bool {
        self.skipped_chunks.is_empty() && (self.stopped_at_offset.is_none() || self.data_complete)
    }
}

/// Copies every complete message (with its schema and channel) and metadata
/// record of `input` into a new drive at `output`. A cut or corrupt tail is
/// reported, not an error: what came before it is kept. Errors are only for
/// a file that is not MCAP at all or an output that cannot be written.
pub fn recover(input: &Path, output: &Path) -> Result<RecoveryReport> {
    let linear = recover_linear(input, output)?;
    if linear.whole() {
        return Ok(linear);
    }
    // Damaged mid-file: where the summary survived, its chunk index leads
    // past the damage to every chunk that still reads. Keep whichever
    // recovery kept more, so recovery never keeps less than a reader reads.
    let Ok(reader) = super::DriveReader::open(input) else { return Ok(linear) };
    let staged = output.with_extension("indexed-recovery.tmp");
    match recover_indexed(&reader, &staged) {
        Ok(mut indexed) if indexed.messages > linear.messages => {
            std::fs::rename(&staged, output).map_err(|e| DatasetError::io(output, e))?;
            if indexed.skipped_chunks.is_empty() {
                // Every chunk read: what the linear scan stumbled on was outside them.
                indexed.stopped_at_offset = linear.stopped_at_offset;
                indexed.stop_reason = linear.stop_reason;
            }
            Ok(indexed)
        }
        _ => {
            let _ = std::fs::remove_file(&staged);
            Ok(linear)
        }
    }
}

/// Every message the indexed reader yields, passing over damaged chunks.
fn recover_indexed(reader: &super::DriveReader, output: &Path) -> Result<RecoveryReport> {
    let specs = reader.channel_specs();
    let mut writer = DriveWriter::create(output)?;
    let mut report = RecoveryReport::default();
    for name in reader.metadata_names() {
        if let Ok(Some(values)) = reader.metadata(&name) {
            writer.write_metadata(&name, values)?;
            report.metadata += 1;
        }
    }
    let mut used = std::collections::HashSet::new();
    let mut messages = reader.messages(&super::ReadFilter::all())?.skip_damaged();
    while let Some(next) = messages.next_message() {
        let Ok(view) = next else { break };
        let Some(spec) = specs.get(view.topic) else { continue };
        writer.write_raw(spec, view.log_time_nanos, view.publish_time_nanos, view.data)?;
        used.insert(view.topic.to_owned());
        report.messages += 1;
        report.last_log_time_nanos = Some(report.last_log_time_nanos.unwrap_or(0).max(view.log_time_nanos));
    }
    report.skipped_chunks = messages.damaged().iter().map(|d| (d.offset, d.detail.clone())).collect();
    if let Some((offset, detail)) = report.skipped_chunks.first() {
        report.stopped_at_offset = Some(*offset);
        report.stop_reason = Some(format!("damaged chunk passed over: {detail}"));
    }
    report.channels = used.len();
    writer.finish()?;
    Ok(report)
}

/// A record-by-record copy up to the first thing that cannot be read.
fn recover_linear(input: &Path, output: &Path) -> Result<RecoveryReport> {
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
            Ok(Record::DataEnd(_)) => report.data_complete = true,
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
    report.data_complete |= report.stopped_at_offset.is_none();
    writer.finish()?;
    Ok(report)
}
