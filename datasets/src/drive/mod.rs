//! Drive logs: one drive = one MCAP file, profile `ros2`, zstd chunks,
//! indexed, with statistics (DESIGN.md section 2).

mod chunks;
mod reader;
mod recover;
mod scan;
mod scenario;
mod writer;

pub use reader::{ChunkExtent, DamagedChunk, DriveReader, MessageIter, MessageView, ReadFilter, TopicInfo};
pub use recover::{RecoveryReport, recover};
pub use scenario::{DriveScenario, METADATA_NAME as SCENARIO_METADATA};
pub use writer::{ChannelSpec, DriveWriter, DriveWriterOptions};

/// First bytes of every MCAP file.
pub const MCAP_MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";
