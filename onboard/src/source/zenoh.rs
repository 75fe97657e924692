//! The camera and odometry from the robot's zenoh network (`--source zenoh`):
//! `sensor_msgs/CompressedImage` or `sensor_msgs/Image` on the camera topic
//! (whichever a publisher offers), `nav_msgs/Odometry` for the ego speed.
//!
//! Frames carry their header stamps (the publisher's clock). The source
//! ends, as lost, when the camera's publisher leaves the network (its
//! liveliness token goes: the process ended or its link closed), so the
//! runtime commands its controlled stop at once instead of waiting for the
//! frame-age limit. Only publishers that have sent frames count (matched by
//! the GID in their attachments), so a listener or a test publisher coming
//! and going does not end the run. A camera that stalls without leaving is
//! the frame-age check's job. In lockstep the source also gives up after
//! `stall_timeout` (10 s, as long as `nines sim serve` waits for an answer)
//! with no message once frames have started, since nothing else would wake
//! the control thread.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use nines_datasets::calib::CameraModel;
use nines_datasets::geometry::Iso3;
use nines_datasets::msg::{CompressedImage, Image, Odometry, RosMessage};
use zenoh::Wait;
use zenoh::sample::{Sample, SampleKind};

use super::{Item, Pacing, Source};
use crate::recorder::Record;
use crate::rmw::EntityKind;
use crate::zenoh_io::{Node, Qos, RosSubscriber, attachment, decode, gid_of};
use crate::{OnboardError, Result};

enum Heard {
    Compressed(Sample),
    Raw(Sample),
    Odometry(Sample),
    CameraLeft(String),
}

/// A camera on zenoh.
#[derive(Debug)]
pub struct ZenohSource {
    node: Arc<Node>,
    camera_topic: String,
    odometry_topic: String,
    name: String,
    stall_timeout: Duration,
}

impl ZenohSource {
    /// The camera on `camera_topic` and odometry on `odometry_topic`, heard through `node`.
    #[must_use]
    pub fn new(node: Arc<Node>, camera_topic: &str, odometry_topic: &str) -> Self {
        Self {
            name: format!("zenoh:{camera_topic} (domain {})", node.domain()),
            node,
            camera_topic: camera_topic.to_owned(),
            odometry_topic: odometry_topic.to_owned(),
            stall_timeout: Duration::from_secs(10),
        }
    }

    fn subscribe(&self, tx: &SyncSender<Heard>) -> Result<Vec<RosSubscriber>> {
        let forward = |wrap: fn(Sample) -> Heard| {
            let tx = tx.clone();
            move |s: Sample| {
                let _ = tx.send(wrap(s));
            }
        };
        Ok(vec![
            self.node.subscribe(
                &self.camera_topic,
                CompressedImage::TYPE_NAME,
                Qos::SensorData,
                forward(Heard::Compressed),
            )?,
            self.node.subscribe(
                &self.camera_topic,
                Image::TYPE_NAME,
                Qos::SensorData,
                forward(Heard::Raw),
            )?,
            self.node.subscribe(
                &self.odometry_topic,
                Odometry::TYPE_NAME,
                Qos::SensorData,
                forward(Heard::Odometry),
            )?,
        ])
    }

    /// Pushes a camera sample as a frame (and a record of it). An
    /// undecodable message still counts as a frame that came: a bad one,
    /// at the last good stamp.
    fn frame(
        &self,
        sample: &Sample,
        raw: bool,
        last_stamp: &mut u64,
        senders: &mut HashSet<[u8; 16]>,
        push: &mut dyn FnMut(Item) -> bool,
    ) -> bool {
        senders.extend(attachment(sample).map(|a| a.gid));
        let decoded = if raw {
            decode::<Image>(sample).map(|msg| {
                let stamp = msg.header.stamp.as_nanos();
                let rgb = nines_datasets::image::decode_raw(&msg, &self.name).ok();
                (Record::RawImage(stamp, msg), super::drive::frame(stamp, rgb))
            })
        } else {
            decode::<CompressedImage>(sample).map(|msg| {
                let stamp = msg.header.stamp.as_nanos();
                let rgb = nines_datasets::image::decode_compressed(&msg, &self.name).ok();
                (Record::Image(stamp, msg), super::drive::frame(stamp, rgb))
            })
        };
        match decoded {
            Ok((record, frame)) => {
                *last_stamp = frame.stamp_ns;
                push(Item::Record(record)) && push(Item::Frame(frame))
            }
            Err(e) => {
                tracing::warn!("{e}");
                push(Item::Frame(super::drive::frame(*last_stamp, None)))
            }
        }
    }

    fn error(&self, detail: String) -> OnboardError {
        OnboardError::Source { source_name: self.name.clone(), detail }
    }
}

impl Source for ZenohSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn calibration(&self) -> Option<(CameraModel, Iso3)> {
        None
    }

    fn live(&self) -> bool {
        false
    }

    fn run(&mut self, pacing: Pacing, push: &mut dyn FnMut(Item) -> bool) -> Result<()> {
        let (tx, rx) = sync_channel::<Heard>(16);
        let _subscribers = self.subscribe(&tx)?;
        let camera_key = self.node.liveliness_of(EntityKind::Publisher, &self.camera_topic);
        let left = tx.clone();
        let _liveliness = self
            .node
            .session()
            .liveliness()
            .declare_subscriber(camera_key.as_str())
            .history(true)
            .callback(move |s: Sample| {
                if s.kind() == SampleKind::Delete {
                    let _ = left.send(Heard::CameraLeft(s.key_expr().to_string()));
                }
            })
            .wait()
            .map_err(|e| self.error(format!("watching the camera's publishers ({camera_key}): {e}")))?;
        drop(tx);
        tracing::info!("{}: waiting for the camera", self.name);
        let mut started = false;
        // Undecodable messages become bad frames at the last good stamp.
        let mut last_stamp = 0u64;
        let mut senders = HashSet::new();
        loop {
            let heard = if started && pacing == Pacing::Lockstep {
                match rx.recv_timeout(self.stall_timeout) {
                    Ok(h) => h,
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(self.error(format!(
                            "nothing heard for {:.1} s in lockstep; the publisher stalled",
                            self.stall_timeout.as_secs_f64()
                        )));
                    }
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            } else {
                match rx.recv() {
                    Ok(h) => h,
                    Err(_) => return Ok(()),
                }
            };
            let keep_going = match heard {
                // Only publishers that sent frames count (their GIDs came in
                // the frames' attachments); the source is lost when the last goes.
                Heard::CameraLeft(key) => {
                    if senders.remove(&gid_of(&key)) && senders.is_empty() {
                        return Err(OnboardError::SourceGone {
                            source_name: self.name.clone(),
                            detail: format!("the camera's publisher left the network ({key})"),
                        });
                    }
                    true
                }
                Heard::Odometry(s) => match decode::<Odometry>(&s) {
                    Ok(odom) => {
                        let stamp = odom.header.stamp.as_nanos();
                        let speed_mps = odom.twist.twist.linear.x;
                        push(Item::Record(Record::Odometry(stamp, odom)))
                            && push(Item::Speed { stamp_ns: stamp, speed_mps })
                    }
                    Err(e) => {
                        tracing::warn!("{e}; odometry message skipped");
                        true
                    }
                },
                Heard::Compressed(s) => {
                    started = true;
                    self.frame(&s, false, &mut last_stamp, &mut senders, push)
                }
                Heard::Raw(s) => {
                    started = true;
                    self.frame(&s, true, &mut last_stamp, &mut senders, push)
                }
            };
            if !keep_going {
                return Ok(());
            }
        }
    }
}
