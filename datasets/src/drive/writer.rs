//! [`DriveWriter`]: typed ROS 2 messages into an MCAP drive log.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use mcap::records::Metadata;

use crate::cdr;
use crate::error::{DatasetError, Result};
use crate::msg::{RosMessage, schema_text};
use crate::topics;

/// How a drive is chunked and compressed.
#[derive(Debug, Clone)]
pub struct DriveWriterOptions {
    /// A chunk is closed once its uncompressed size reaches this (bytes).
    pub chunk_size_bytes: u64,
    /// A chunk is closed once it spans this much log time (nanoseconds), so a
    /// crash loses at most this much recording. Log time, not wall time, so
    /// that writing the same messages gives the same bytes.
    pub max_chunk_duration_nanos: u64,
    /// zstd level (1 fast .. 19 small).
    pub zstd_level: u32,
}

impl Default for DriveWriterOptions {
    fn default() -> Self {
        Self { chunk_size_bytes: 4 * 1024 * 1024, max_chunk_duration_nanos: 1_000_000_000, zstd_level: 3 }
    }
}

/// A channel as it appears in the file: what [`DriveWriter::write_raw`] needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelSpec {
    /// Topic name.
    pub topic: String,
    /// Schema name, e.g. `sensor_msgs/msg/Image`.
    pub schema_name: String,
    /// Schema encoding, `ros2msg` for nines.
    pub schema_encoding: String,
    /// Schema text.
    pub schema_data: Vec<u8>,
    /// Message encoding, `cdr` for nines.
    pub message_encoding: String,
    /// Channel metadata (rosbag2 keeps `offered_qos_profiles` here).
    pub metadata: BTreeMap<String, String>,
}

/// rosbag2's `offered_qos_profiles` YAML: reliable, keep-last; `/tf_static`
/// is transient_local so late joiners (and `ros2 bag play`) get it.
fn offered_qos_profiles(topic: &str) -> String {
    let (durability, depth) = if topic == topics::TF_STATIC { (1, 1) } else { (2, 10) };
    let forever = "\n    sec: 2147483647\n    nsec: 4294967295";
    format!(
        "- history: 1\n  depth: {depth}\n  reliability: 1\n  durability: {durability}\n  \
         deadline:{forever}\n  lifespan:{forever}\n  liveliness: 1\n  \
         liveliness_lease_duration:{forever}\n  avoid_ros_namespace_conventions: false"
    )
}

/// Writes a drive log. Call [`DriveWriter::finish`] to write the summary and
/// see any error (dropping the writer also finishes the file, silently). Each
/// closed chunk is handed to the OS at once, so a process that dies
/// mid-drive leaves a file that [`crate::drive::recover`] repairs, losing at
/// most the open chunk: 4 MiB or 1 s of log time by default.
pub struct DriveWriter {
    path: PathBuf,
    inner: mcap::Writer<BufWriter<File>>,
    channels: HashMap<String, (u16, String)>,
    sequences: HashMap<u16, u32>,
    options: DriveWriterOptions,
    chunk_start_nanos: Option<u64>,
    buffer: Vec<u8>,
}

impl DriveWriter {
    /// Creates (or truncates) `path` with default options.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::create_with(path, DriveWriterOptions::default())
    }

    /// Creates (or truncates) `path`.
    pub fn create_with(path: impl AsRef<Path>, options: DriveWriterOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|e| DatasetError::io(&path, e))?;
        let inner = mcap::WriteOptions::new()
            .profile("ros2")
            .library(concat!("nines-datasets ", env!("CARGO_PKG_VERSION")))
            .compression(Some(mcap::Compression::Zstd))
            .compression_level(options.zstd_level)
            .chunk_size(Some(options.chunk_size_bytes))
            .create(BufWriter::with_capacity(1 << 20, file))
            .map_err(|source| DatasetError::McapWrite { path: path.clone(), source })?;
        Ok(Self {
            path,
            inner,
            channels: HashMap::new(),
            sequences: HashMap::new(),
            options,
            chunk_start_nanos: None,
            buffer: Vec::new(),
        })
    }

    /// Path being written.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn mcap_err(&self, source: mcap::McapError) -> DatasetError {
        DatasetError::McapWrite { path: self.path.clone(), source }
    }

    fn channel_for(&mut self, spec: &ChannelSpec) -> Result<u16> {
        if let Some((id, schema)) = self.channels.get(&spec.topic) {
            if *schema != spec.schema_name {
                return Err(DatasetError::WrongType {
                    path: self.path.clone(),
                    offset: 0,
                    topic: spec.topic.clone(),
                    found: schema.clone(),
                    expected: spec.schema_name.clone(),
                });
            }
            return Ok(*id);
        }
        let schema_id = self
            .inner
            .add_schema(&spec.schema_name, &spec.schema_encoding, &spec.schema_data)
            .map_err(|e| self.mcap_err(e))?;
        let id = self
            .inner
            .add_channel(schema_id, &spec.topic, &spec.message_encoding, &spec.metadata)
            .map_err(|e| self.mcap_err(e))?;
        self.channels.insert(spec.topic.clone(), (id, spec.schema_name.clone()));
        Ok(id)
    }

    /// Writes one typed message at `log_time_nanos` (nines: = header stamp).
    pub fn write<M: RosMessage>(&mut self, topic: &str, log_time_nanos: u64, msg: &M) -> Result<()> {
        let channel = match self.channels.get(topic) {
            Some((id, schema)) if schema == M::TYPE_NAME => *id,
            _ => {
                let spec = ChannelSpec {
                    topic: topic.to_owned(),
                    schema_name: M::TYPE_NAME.to_owned(),
                    schema_encoding: "ros2msg".to_owned(),
                    schema_data: schema_text(M::TYPE_NAME)?.into_bytes(),
                    message_encoding: "cdr".to_owned(),
                    metadata: BTreeMap::from([(
                        "offered_qos_profiles".to_owned(),
                        offered_qos_profiles(topic),
                    )]),
                };
                self.channel_for(&spec)?
            }
        };
        let mut buffer = std::mem::take(&mut self.buffer);
        cdr::encode_into(msg, &mut buffer).map_err(|e| DatasetError::Cdr {
            context: format!("{}: encoding {} on {topic}", self.path.display(), M::TYPE_NAME),
            detail: e.to_string(),
        })?;
        let result = self.write_payload(channel, log_time_nanos, log_time_nanos, &buffer);
        self.buffer = buffer;
        result
    }

    /// Writes an already-encoded payload on a channel described by `spec`
    /// (used to copy messages between files without decoding them).
    pub fn write_raw(
        &mut self,
        spec: &ChannelSpec,
        log_time_nanos: u64,
        publish_time_nanos: u64,
        payload: &[u8],
    ) -> Result<()> {
        let channel = self.channel_for(spec)?;
        self.write_payload(channel, log_time_nanos, publish_time_nanos, payload)
    }

    fn write_payload(&mut self, channel: u16, log_time: u64, publish_time: u64, data: &[u8]) -> Result<()> {
        if let Some(start) = self.chunk_start_nanos
            && log_time.saturating_sub(start) >= self.options.max_chunk_duration_nanos
        {
            self.inner.flush().map_err(|e| self.mcap_err(e))?;
            self.chunk_start_nanos = None;
        }
        self.chunk_start_nanos.get_or_insert(log_time);
        let sequence = self.sequences.entry(channel).or_insert(0);
        *sequence = sequence.wrapping_add(1);
        let header =
            mcap::records::MessageHeader { channel_id: channel, sequence: *sequence, log_time, publish_time };
        self.inner.write_to_known_channel(&header, data).map_err(|e| self.mcap_err(e))
    }

    /// Writes the ego's pose and velocity the way every nines drive carries
    /// them: `map -> base_link` on /tf and the same pose with `twist` (in
    /// base_link) on /vehicle/odometry, both at `stamp_nanos`.
    pub fn write_ego_state(
        &mut self,
        stamp_nanos: u64,
        map_from_base: &crate::geometry::Iso3,
        twist: crate::msg::Twist,
    ) -> Result<()> {
        use crate::topics::frames;
        let transform =
            crate::geometry::transform_stamped(stamp_nanos, frames::MAP, frames::BASE_LINK, map_from_base);
        self.write(topics::TF, stamp_nanos, &crate::msg::TfMessage { transforms: vec![transform] })?;
        let mut odom = crate::msg::Odometry {
            header: crate::msg::Header::new(stamp_nanos, frames::MAP),
            child_frame_id: frames::BASE_LINK.into(),
            ..crate::msg::Odometry::default()
        };
        odom.pose.pose = crate::geometry::pose_from_isometry(map_from_base);
        odom.twist.twist = twist;
        self.write(topics::ODOMETRY, stamp_nanos, &odom)
    }

    /// Writes a named metadata record (e.g. the original calibration file of
    /// an imported dataset).
    pub fn write_metadata(&mut self, name: &str, entries: BTreeMap<String, String>) -> Result<()> {
        let metadata = Metadata { name: name.to_owned(), metadata: entries };
        self.inner.write_metadata(&metadata).map_err(|e| self.mcap_err(e))
    }

    /// Closes the last chunk and writes the summary, indexes and statistics.
    pub fn finish(mut self) -> Result<()> {
        self.inner.finish().map_err(|e| self.mcap_err(e))?;
        let mut file = self.inner.into_inner();
        std::io::Write::flush(&mut file).map_err(|e| DatasetError::io(&self.path, e))
    }
}
