//! Chunks decoded in parallel and delivered in order: the engine under
//! [`super::DriveReader::messages`].
//!
//! Worker threads each take every n-th chunk of the read plan, read it,
//! decompress it, check its CRC and index its messages; the reader takes the
//! chunks back in plan order and merges them by log time. The MCAP crate's
//! sans-io indexed reader does the same work on one thread, without CRC
//! checks and with a copy per message, which made reading CPU-bound on one
//! core; the record format itself is still parsed by the crate.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use mcap::records::Record;

/// Records longer than this are treated as corruption rather than allocated.
pub(crate) const RECORD_LENGTH_LIMIT: u64 = 1 << 30;
const CHUNK_OPCODE: u8 = 0x06;
const MESSAGE_OPCODE: u8 = 0x05;

/// One chunk to read: where it is and the log times it spans.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkPlan {
    pub offset: u64,
    pub length: u64,
    pub start_nanos: u64,
}

/// Which messages of a chunk to keep.
#[derive(Debug, Clone)]
pub(crate) struct ChunkFilter {
    pub channels: Option<HashSet<u16>>,
    pub start_nanos: u64,
    pub end_nanos: u64,
}

/// A message inside a decoded chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageRef {
    pub log_time: u64,
    pub publish_time: u64,
    pub channel_id: u16,
    pub start: usize,
    pub end: usize,
}

/// A decompressed, checked chunk and its kept messages in log-time order.
#[derive(Debug)]
pub(crate) struct DecodedChunk {
    pub offset: u64,
    pub data: Vec<u8>,
    pub messages: Vec<MessageRef>,
}

/// Why a chunk could not be used: its offset and what was wrong.
pub(crate) type ChunkError = (u64, String);

fn le_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

fn decompress(compression: &str, compressed: &[u8], size: usize) -> Result<Vec<u8>, String> {
    let data = match compression {
        "" => compressed.to_vec(),
        "zstd" => zstd::bulk::decompress(compressed, size).map_err(|e| format!("zstd: {e}"))?,
        "lz4" => {
            let mut out = Vec::with_capacity(size);
            lz4::Decoder::new(compressed)
                .and_then(|d| d.take(size as u64 + 1).read_to_end(&mut out))
                .map_err(|e| format!("lz4: {e}"))?;
            out
        }
        other => return Err(format!("unsupported chunk compression `{other}`")),
    };
    if data.len() == size {
        Ok(data)
    } else {
        Err(format!("chunk decompressed to {} bytes, its header says {size}", data.len()))
    }
}

/// Decodes one chunk record (opcode, length, body).
pub(crate) fn decode_chunk(record: &[u8], offset: u64, filter: &ChunkFilter) -> Result<DecodedChunk, String> {
    if record.len() < 9 || record[0] != CHUNK_OPCODE {
        return Err("the chunk index points at something that is not a chunk".into());
    }
    let body_len = le_u64(&record[1..9]);
    let body = usize::try_from(body_len)
        .ok()
        .and_then(|len| 9usize.checked_add(len))
        .and_then(|end| record.get(9..end))
        .ok_or_else(|| format!("chunk record claims {body_len} bytes, the index gives {}", record.len()))?;
    let Ok(Record::Chunk { header, data: compressed }) = mcap::parse_record(CHUNK_OPCODE, body) else {
        return Err("unreadable chunk header".into());
    };
    if header.uncompressed_size > RECORD_LENGTH_LIMIT {
        return Err(format!("chunk claims {} uncompressed bytes", header.uncompressed_size));
    }
    let data = decompress(&header.compression, &compressed, header.uncompressed_size as usize)?;
    if header.uncompressed_crc != 0 {
        let crc = crc32fast::hash(&data);
        if crc != header.uncompressed_crc {
            return Err(format!(
                "chunk CRC mismatch (stored {:08x}, computed {crc:08x}): the file is damaged; `nines recover` keeps the intact chunks",
                header.uncompressed_crc
            ));
        }
    }
    let mut messages = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let framing = data.get(pos..pos + 9).ok_or("record framing cut short inside the chunk")?;
        let len = usize::try_from(le_u64(&framing[1..])).map_err(|_| "record too long")?;
        let start = pos + 9;
        let end = start.checked_add(len).filter(|e| *e <= data.len()).ok_or("record runs past the chunk")?;
        if framing[0] == MESSAGE_OPCODE {
            let Ok(Record::Message { header, data: payload }) =
                mcap::parse_record(MESSAGE_OPCODE, &data[start..end])
            else {
                return Err(format!("unreadable message record at {pos} inside the chunk"));
            };
            let wanted = filter.channels.as_ref().is_none_or(|c| c.contains(&header.channel_id))
                && (filter.start_nanos..=filter.end_nanos).contains(&header.log_time);
            if wanted {
                messages.push(MessageRef {
                    log_time: header.log_time,
                    publish_time: header.publish_time,
                    channel_id: header.channel_id,
                    start: end - payload.len(),
                    end,
                });
            }
        }
        pos = end;
    }
    messages.sort_by_key(|m| m.log_time);
    Ok(DecodedChunk { offset, data, messages })
}

fn read_chunk(file: &mut File, plan: &ChunkPlan, filter: &ChunkFilter) -> Result<DecodedChunk, ChunkError> {
    let fail = |detail: String| (plan.offset, detail);
    if plan.length > RECORD_LENGTH_LIMIT {
        return Err(fail(format!("chunk of {} bytes", plan.length)));
    }
    let mut record = vec![0u8; plan.length as usize];
    file.seek(SeekFrom::Start(plan.offset))
        .and_then(|_| file.read_exact(&mut record))
        .map_err(|e| fail(format!("reading the chunk: {e}")))?;
    decode_chunk(&record, plan.offset, filter).map_err(fail)
}

#[expect(clippy::needless_pass_by_value, reason = "the thread owns what it is given")]
fn worker(
    mut file: File,
    plan: Arc<[ChunkPlan]>,
    filter: Arc<ChunkFilter>,
    first: usize,
    step: usize,
    tx: SyncSender<Result<DecodedChunk, ChunkError>>,
) {
    for chunk in plan.iter().skip(first).step_by(step) {
        // A damaged chunk is reported and the next one read: the iterator
        // decides whether to stop there or skip it.
        let result = read_chunk(&mut file, chunk, &filter);
        // A closed channel means the reader was dropped: stop quietly.
        if tx.send(result).is_err() {
            return;
        }
    }
}

/// Chunks of a plan, decoded by worker threads, handed out in plan order.
pub(crate) struct ChunkPipeline {
    receivers: Vec<Receiver<Result<DecodedChunk, ChunkError>>>,
    next: usize,
}

impl ChunkPipeline {
    /// Starts up to `workers` threads over `plan`.
    pub(crate) fn start(
        path: &Path,
        plan: &Arc<[ChunkPlan]>,
        filter: ChunkFilter,
        workers: usize,
    ) -> std::io::Result<Self> {
        let workers = workers.clamp(1, plan.len().max(1));
        let filter = Arc::new(filter);
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let file = File::open(path)?;
            // Two chunks in flight per worker: enough to hide I/O, little memory.
            let (tx, rx) = sync_channel(2);
            let (plan, filter) = (Arc::clone(plan), Arc::clone(&filter));
            std::thread::Builder::new()
                .name(format!("nines-drive-read-{w}"))
                .spawn(move || worker(file, plan, filter, w, workers, tx))?;
            receivers.push(rx);
        }
        Ok(Self { receivers, next: 0 })
    }

    /// The next chunk of the plan; `None` when a worker is gone without a result.
    pub(crate) fn next_chunk(&mut self) -> Option<Result<DecodedChunk, ChunkError>> {
        let rx = &self.receivers[self.next % self.receivers.len()];
        self.next += 1;
        rx.recv().ok()
    }
}
