//! [`DriveReader`]: indexed, time-ordered reading of a drive log with topic
//! and time filters and typed decoding.
//!
//! Chunks are read, decompressed and CRC-checked by worker threads (see
//! `chunks`) with plain `File` reads rather than memory-mapping: mapping needs
//! `unsafe` and gives no speed-up for chunk-sized reads.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcap::Summary;
use mcap::sans_io::summary_reader::{SummaryReadEvent, SummaryReader, SummaryReaderOptions};

use super::MCAP_MAGIC;
use super::chunks::{ChunkFilter, ChunkPipeline, ChunkPlan, DecodedChunk};
use crate::cdr;
use crate::error::{DatasetError, Result};
use crate::msg::RosMessage;

/// Records longer than this are treated as corruption rather than allocated.
const RECORD_LENGTH_LIMIT: usize = super::chunks::RECORD_LENGTH_LIMIT as usize;

/// One topic of a drive, from the summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopicInfo {
    /// Topic name.
    pub topic: String,
    /// Schema name, e.g. `sensor_msgs/msg/Image`.
    pub type_name: String,
    /// Message encoding (`cdr`).
    pub message_encoding: String,
    /// Messages on the topic.
    pub message_count: u64,
}

/// Which messages to read. Times are log times in nanoseconds, both ends inclusive.
#[derive(Debug, Clone, Default)]
pub struct ReadFilter {
    /// Only these topics (all if `None`).
    pub topics: Option<Vec<String>>,
    /// Earliest log time.
    pub start_nanos: Option<u64>,
    /// Latest log time.
    pub end_nanos: Option<u64>,
}

impl ReadFilter {
    /// Every message.
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// Only the given topics.
    pub fn topics<S: Into<String>>(topics: impl IntoIterator<Item = S>) -> Self {
        Self { topics: Some(topics.into_iter().map(Into::into).collect()), ..Self::default() }
    }
}

/// One chunk of a drive: bytes `offset..offset + length`, messages logged
/// from `start_nanos` to `end_nanos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkExtent {
    /// Byte offset of the chunk record.
    pub offset: u64,
    /// Length of the chunk record, bytes.
    pub length: u64,
    /// First log time in the chunk, ns.
    pub start_nanos: u64,
    /// Last log time in the chunk, ns.
    pub end_nanos: u64,
}

/// An open drive log.
pub struct DriveReader {
    path: PathBuf,
    file_len: u64,
    summary: Summary,
}

fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

impl DriveReader {
    /// Opens a drive: checks that it is MCAP and reads its summary (channels,
    /// statistics, chunk indexes). A file cut mid-recording has no summary and
    /// is refused with a pointer to `nines recover`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut file = File::open(&path).map_err(|e| DatasetError::io(&path, e))?;
        let file_len = file.metadata().map_err(|e| DatasetError::io(&path, e))?.len();
        check_magic(&path, &mut file, file_len)?;
        let summary = read_summary(&path, &mut file, file_len)?;
        Ok(Self { path, file_len, summary })
    }

    /// Path of the file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes.
    #[must_use]
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Topics sorted by name, with their types and message counts.
    #[must_use]
    pub fn topics(&self) -> Vec<TopicInfo> {
        let counts = self.summary.stats.as_ref().map(|s| &s.channel_message_counts);
        let mut topics: Vec<TopicInfo> = self
            .summary
            .channels
            .iter()
            .map(|(id, channel)| TopicInfo {
                topic: channel.topic.clone(),
                type_name: channel.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
                message_encoding: channel.message_encoding.clone(),
                message_count: counts.and_then(|c| c.get(id).copied()).unwrap_or(0),
            })
            .collect();
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        topics
    }

    /// Total messages in the file.
    #[must_use]
    pub fn message_count(&self) -> u64 {
        self.summary.stats.as_ref().map_or(0, |s| s.message_count)
    }

    /// First and last log time, nanoseconds (None for an empty drive).
    #[must_use]
    pub fn time_range_nanos(&self) -> Option<(u64, u64)> {
        self.summary
            .stats
            .as_ref()
            .filter(|s| s.message_count > 0)
            .map(|s| (s.message_start_time, s.message_end_time))
    }

    /// Where each chunk lies in the file and the log times it spans, in file order.
    #[must_use]
    pub fn chunk_extents(&self) -> Vec<ChunkExtent> {
        let mut chunks: Vec<ChunkExtent> = self
            .summary
            .chunk_indexes
            .iter()
            .map(|c| ChunkExtent {
                offset: c.chunk_start_offset,
                length: c.chunk_length,
                start_nanos: c.message_start_time,
                end_nanos: c.message_end_time,
            })
            .collect();
        chunks.sort_by_key(|c| c.offset);
        chunks
    }

    /// Every channel as a writer declares it (topic, schema, encodings,
    /// metadata), by topic: what recovery needs to copy messages over.
    #[must_use]
    pub fn channel_specs(&self) -> HashMap<String, super::ChannelSpec> {
        self.summary
            .channels
            .values()
            .map(|c| {
                let (schema_name, schema_encoding, schema_data) = c.schema.as_ref().map_or_else(
                    || (String::new(), String::new(), Vec::new()),
                    |s| (s.name.clone(), s.encoding.clone(), s.data.to_vec()),
                );
                (
                    c.topic.clone(),
                    super::ChannelSpec {
                        topic: c.topic.clone(),
                        schema_name,
                        schema_encoding,
                        schema_data,
                        message_encoding: c.message_encoding.clone(),
                        metadata: c.metadata.clone().into_iter().collect(),
                    },
                )
            })
            .collect()
    }

    /// Names of the metadata records in the file.
    #[must_use]
    pub fn metadata_names(&self) -> Vec<String> {
        self.summary.metadata_indexes.iter().map(|m| m.name.clone()).collect()
    }

    /// Reads the metadata record called `name`, if any.
    pub fn metadata(&self, name: &str) -> Result<Option<BTreeMap<String, String>>> {
        let Some(index) = self.summary.metadata_indexes.iter().find(|m| m.name == name) else {
            return Ok(None);
        };
        let corrupt =
            |detail: String| DatasetError::Corrupt { path: self.path.clone(), offset: index.offset, detail };
        let length = usize::try_from(index.length)
            .ok()
            .filter(|l| (9..RECORD_LENGTH_LIMIT).contains(l))
            .ok_or_else(|| corrupt(format!("metadata record length {}", index.length)))?;
        let mut file = File::open(&self.path).map_err(|e| DatasetError::io(&self.path, e))?;
        let mut record = vec![0; length];
        read_at(&mut file, index.offset, &mut record).map_err(|e| corrupt(e.to_string()))?;
        match mcap::parse_record(record[0], &record[9..]) {
            Ok(mcap::records::Record::Metadata(m)) => Ok(Some(m.metadata)),
            Ok(_) => Err(corrupt("metadata index points at another record".into())),
            Err(e) => Err(corrupt(e.to_string())),
        }
    }

    /// Messages matching `filter`, in log-time order (equal times in file order).
    pub fn messages(&self, filter: &ReadFilter) -> Result<MessageIter<'_>> {
        let channels: HashMap<u16, (Arc<str>, Arc<str>)> = self
            .summary
            .channels
            .iter()
            .map(|(id, c)| {
                let schema = c.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default();
                (*id, (Arc::from(c.topic.as_str()), Arc::from(schema.as_str())))
            })
            .collect();
        let wanted: Option<HashSet<u16>> = filter.topics.as_ref().map(|topics| {
            channels
                .iter()
                .filter(|(_, (t, _))| topics.iter().any(|w| **w == **t))
                .map(|(id, _)| *id)
                .collect()
        });
        let (start, end) = (filter.start_nanos.unwrap_or(0), filter.end_nanos.unwrap_or(u64::MAX));
        let mut plan: Vec<ChunkPlan> = self
            .summary
            .chunk_indexes
            .iter()
            .filter(|c| c.message_end_time >= start && c.message_start_time <= end)
            .filter(|c| {
                wanted.as_ref().is_none_or(|w| c.message_index_offsets.keys().any(|id| w.contains(id)))
            })
            .map(|c| ChunkPlan {
                offset: c.chunk_start_offset,
                length: c.chunk_length,
                start_nanos: c.message_start_time,
            })
            .collect();
        plan.sort_by_key(|c| (c.start_nanos, c.offset));
        if let Some(bad) = plan.iter().find(|c| c.offset.saturating_add(c.length) > self.file_len) {
            return Err(DatasetError::Corrupt {
                path: self.path.clone(),
                offset: bad.offset,
                detail: format!("the chunk index puts a {}-byte chunk past the end of the file", bad.length),
            });
        }
        let plan: Arc<[ChunkPlan]> = plan.into();
        let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).min(4);
        let chunk_filter = ChunkFilter { channels: wanted, start_nanos: start, end_nanos: end };
        let pipeline = ChunkPipeline::start(&self.path, &plan, chunk_filter, workers)
            .map_err(|e| DatasetError::io(&self.path, e))?;
        Ok(MessageIter {
            reader: self,
            plan,
            next_plan: 0,
            pipeline,
            loaded: HashMap::new(),
            heap: BinaryHeap::new(),
            release: None,
            channels,
            failed: false,
            skip_damaged: false,
            damaged: Vec::new(),
        })
    }

    /// Reads and decodes every message on `topic` as `M`: `(log_time_nanos, message)`.
    pub fn read_topic<M: RosMessage>(&self, topic: &str) -> Result<Vec<(u64, M)>> {
        let mut out = Vec::new();
        let mut messages = self.messages(&ReadFilter::topics([topic]))?;
        while let Some(view) = messages.next_message() {
            let view = view?;
            out.push((view.log_time_nanos, view.decode::<M>()?));
        }
        Ok(out)
    }
}

fn check_magic(path: &Path, file: &mut File, file_len: u64) -> Result<()> {
    if file_len == 0 {
        return Err(DatasetError::NotMcap { path: path.into(), detail: "the file is empty".into() });
    }
    let mut head = [0u8; 8];
    let n = file.read(&mut head).map_err(|e| DatasetError::io(path, e))?;
    if head[..n] != MCAP_MAGIC[..n] || n < 8 {
        let shown = String::from_utf8_lossy(&head[..n]).escape_debug().to_string();
        return Err(DatasetError::NotMcap {
            path: path.into(),
            detail: format!("it starts with \"{shown}\", an MCAP file starts with \"\\x89MCAP0\\r\\n\""),
        });
    }
    Ok(())
}

/// Where the summary section starts according to the footer, or the footer
/// itself when that cannot be read: the best offset to name in an error.
fn summary_offset(file_len: u64) -> u64 {
    file_len.saturating_sub(8 + 29)
}

fn read_summary(path: &Path, file: &mut File, file_len: u64) -> Result<Summary> {
    let corrupt = |detail: String| DatasetError::Corrupt {
        path: path.into(),
        offset: summary_offset(file_len),
        detail,
    };
    let mut reader = SummaryReader::new_with_options(
        SummaryReaderOptions::default()
            .with_file_size(file_len)
            .with_record_length_limit(RECORD_LENGTH_LIMIT),
    );
    while let Some(event) = reader.next_event() {
        match event {
            Ok(SummaryReadEvent::ReadRequest(need)) => {
                let read = file.read(reader.insert(need)).map_err(|e| DatasetError::io(path, e))?;
                reader.notify_read(read);
            }
            Ok(SummaryReadEvent::SeekRequest(to)) => {
                // The footer's offsets decide where the reader seeks: a damaged
                // footer can point outside the file (past i64::MAX, EINVAL).
                let at = file.seek(to).map_err(|e| {
                    corrupt(format!(
                        "the footer points to a summary the file cannot hold ({to:?}: {e}); \
                         run `nines recover` to keep every complete message"
                    ))
                })?;
                reader.notify_seeked(at);
            }
            Err(mcap::McapError::BadMagic | mcap::McapError::UnexpectedEof) => {
                return Err(DatasetError::Unfinished { path: path.into(), file_len });
            }
            Err(e) => return Err(corrupt(format!("summary section: {e}"))),
        }
    }
    let summary = reader.finish().ok_or_else(|| DatasetError::Unfinished { path: path.into(), file_len })?;
    let messages = summary.stats.as_ref().map_or(0, |s| s.message_count);
    if messages > 0 && summary.chunk_indexes.is_empty() {
        return Err(corrupt(
            "the file has messages but no chunk index; rewrite it with `nines recover`".into(),
        ));
    }
    Ok(summary)
}

/// One message, borrowed from the reader until the next call.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    /// File the message came from.
    pub source: &'a Path,
    /// Byte offset of the chunk holding the message.
    pub chunk_offset: u64,
    /// Topic.
    pub topic: &'a str,
    /// Schema name.
    pub type_name: &'a str,
    /// Log time (nines: sensor capture time), ns.
    pub log_time_nanos: u64,
    /// Publish time, ns.
    pub publish_time_nanos: u64,
    /// CDR payload with its encapsulation header.
    pub data: &'a [u8],
}

impl MessageView<'_> {
    /// Decodes the payload as `M`, refusing a message of another type.
    pub fn decode<M: RosMessage>(&self) -> Result<M> {
        if self.type_name != M::TYPE_NAME {
            return Err(DatasetError::WrongType {
                path: self.source.into(),
                offset: self.chunk_offset,
                topic: self.topic.to_owned(),
                found: self.type_name.to_owned(),
                expected: M::TYPE_NAME.to_owned(),
            });
        }
        self.decode_prefix()
    }

    /// Decodes a prefix of the payload (e.g. [`crate::msg::HeaderPrefix`])
    /// without checking the type name.
    pub fn decode_prefix<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        cdr::decode(self.data).map_err(|e| DatasetError::Cdr {
            context: format!(
                "{}: {} at log time {} ns ({}) in the chunk at byte offset {}",
                self.source.display(),
                self.topic,
                self.log_time_nanos,
                self.type_name,
                self.chunk_offset
            ),
            detail: e.to_string(),
        })
    }
}

/// Iterator over messages in log-time order; call [`MessageIter::next_message`]
/// in a `while let` loop (each view borrows the iterator).
pub struct MessageIter<'r> {
    reader: &'r DriveReader,
    plan: Arc<[ChunkPlan]>,
    next_plan: usize,
    pipeline: ChunkPipeline,
    // Decoded chunks by plan index, while they still have messages to give.
    loaded: HashMap<usize, DecodedChunk>,
    // (log time, plan index, message index) of each loaded chunk's next message.
    heap: BinaryHeap<Reverse<(u64, usize, usize)>>,
    // A chunk whose last message was handed out, freed on the next call.
    release: Option<usize>,
    channels: HashMap<u16, (Arc<str>, Arc<str>)>,
    failed: bool,
    skip_damaged: bool,
    damaged: Vec<DamagedChunk>,
}

/// A chunk that [`MessageIter::skip_damaged`] passed over.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DamagedChunk {
    /// Byte offset of the chunk record.
    pub offset: u64,
    /// First log time the chunk index gives for it, ns.
    pub start_nanos: u64,
    /// What was wrong with it.
    pub detail: String,
}

impl MessageIter<'_> {
    fn fail(&mut self, offset: u64, detail: String) -> DatasetError {
        self.failed = true;
        DatasetError::Corrupt { path: self.reader.path.clone(), offset, detail }
    }

    /// Passes over chunks that cannot be read (bad CRC, cut, undecodable)
    /// instead of ending with an error; [`Self::damaged`] lists them. For
    /// viewers that should show what is readable of a damaged drive.
    #[must_use]
    pub fn skip_damaged(mut self) -> Self {
        self.skip_damaged = true;
        self
    }

    /// Chunks passed over so far (only with [`Self::skip_damaged`]).
    #[must_use]
    pub fn damaged(&self) -> &[DamagedChunk] {
        &self.damaged
    }

    /// The next message, or an error naming the file and the chunk's offset.
    /// After an error the iterator is finished.
    pub fn next_message(&mut self) -> Option<Result<MessageView<'_>>> {
        if self.failed {
            return None;
        }
        if let Some(done) = self.release.take() {
            self.loaded.remove(&done);
        }
        // Chunks may overlap in time: load every chunk that starts no later
        // than the earliest pending message before handing that one out.
        while let Some(next) = self.plan.get(self.next_plan) {
            if self.heap.peek().is_some_and(|Reverse((t, _, _))| next.start_nanos > *t) {
                break;
            }
            let offset = next.offset;
            match self.pipeline.next_chunk() {
                Some(Ok(chunk)) => {
                    if let Some(first) = chunk.messages.first() {
                        self.heap.push(Reverse((first.log_time, self.next_plan, 0)));
                        self.loaded.insert(self.next_plan, chunk);
                    }
                    self.next_plan += 1;
                }
                Some(Err((offset, detail))) if self.skip_damaged => {
                    let start_nanos = next.start_nanos;
                    self.damaged.push(DamagedChunk { offset, start_nanos, detail });
                    self.next_plan += 1;
                }
                Some(Err((offset, detail))) => return Some(Err(self.fail(offset, detail))),
                None => return Some(Err(self.fail(offset, "the chunk reader thread stopped".into()))),
            }
        }
        let Reverse((_, chunk_index, message_index)) = self.heap.pop()?;
        let chunk = &self.loaded[&chunk_index];
        match chunk.messages.get(message_index + 1) {
            Some(next) => self.heap.push(Reverse((next.log_time, chunk_index, message_index + 1))),
            None => self.release = Some(chunk_index),
        }
        let (message, chunk_offset) = (chunk.messages[message_index], chunk.offset);
        if !self.channels.contains_key(&message.channel_id) {
            let detail = format!("message on channel {} which has no channel record", message.channel_id);
            return Some(Err(self.fail(chunk_offset, detail)));
        }
        let chunk = &self.loaded[&chunk_index];
        let (topic, type_name) = &self.channels[&message.channel_id];
        Some(Ok(MessageView {
            source: &self.reader.path,
            chunk_offset,
            topic,
            type_name,
            log_time_nanos: message.log_time,
            publish_time_nanos: message.publish_time,
            data: &chunk.data[message.start..message.end],
        }))
    }
}
