//! OpenCV's VideoCapture as the camera: a V4L2 device (`/dev/video0`,
//! `v4l2:0`), a GStreamer pipeline (`gst:... ! appsink`) or a video file.
//! Files are recorded sources (lockstep by default, stamps from the file's
//! own frame times); devices and pipelines are live (system-clock stamps).

use std::time::{Duration, Instant};

use nines_datasets::calib::CameraModel;
use nines_datasets::geometry::Iso3;
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::{imgproc, videoio};

use super::{Frame, Item, Pacing, Source, system_now_ns};
use crate::recorder::Record;
use crate::{OnboardError, Result};

/// A VideoCapture.
pub struct VideoSource {
    name: String,
    capture: videoio::VideoCapture,
    live: bool,
    fps: f64,
}

impl std::fmt::Debug for VideoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoSource")
            .field("name", &self.name)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl VideoSource {
    /// Opens `spec`; `fps` paces a file played in real time when the file does not say.
    pub fn open(spec: &str, fps: f64) -> Result<Self> {
        let fail = |detail: String| OnboardError::Source { source_name: spec.to_owned(), detail };
        let cv = |e: opencv::Error| fail(format!("OpenCV: {e}"));
        let (capture, live) = if let Some(pipeline) = spec.strip_prefix("gst:") {
            (videoio::VideoCapture::from_file(pipeline, videoio::CAP_GSTREAMER).map_err(cv)?, true)
        } else if let Some(index) = spec.strip_prefix("v4l2:").or_else(|| spec.strip_prefix("/dev/video")) {
            let index: i32 =
                index.parse().map_err(|_| fail("a V4L2 camera is /dev/videoN or v4l2:N".into()))?;
            (videoio::VideoCapture::new(index, videoio::CAP_V4L2).map_err(cv)?, true)
        } else {
            if !std::path::Path::new(spec).is_file() {
                return Err(fail(
                    "no such file; give a video file, /dev/videoN, v4l2:N or gst:<pipeline>".into(),
                ));
            }
            (videoio::VideoCapture::from_file(spec, videoio::CAP_ANY).map_err(cv)?, false)
        };
        if !capture.is_opened().map_err(cv)? {
            return Err(fail(
                "OpenCV could not open it (no backend for this format, device busy, or bad pipeline)".into(),
            ));
        }
        let file_fps = capture.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        let fps = if file_fps > 0.0 && !live { file_fps } else { fps };
        Ok(Self { name: spec.to_owned(), capture, live, fps })
    }
}

impl Source for VideoSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn calibration(&self) -> Option<(CameraModel, Iso3)> {
        None
    }

    fn live(&self) -> bool {
        self.live
    }

    fn run(&mut self, pacing: Pacing, push: &mut dyn FnMut(Item) -> bool) -> Result<()> {
        let cv = |e: opencv::Error| OnboardError::Source {
            source_name: self.name.clone(),
            detail: format!("OpenCV: {e}"),
        };
        let mut bgr = Mat::default();
        let mut rgb = Mat::default();
        let start = Instant::now();
        let mut index: u64 = 0;
        loop {
            let got = self.capture.read(&mut bgr).map_err(cv)?;
            if !got || bgr.empty() {
                return Ok(());
            }
            let stamp_ns = if self.live {
                system_now_ns()
            } else {
                // The file's own frame time; frames without one are spaced at the nominal rate.
                let msec = self.capture.get(videoio::CAP_PROP_POS_MSEC).unwrap_or(-1.0);
                if msec > 0.0 { (msec * 1e6) as u64 } else { (index as f64 / self.fps * 1e9) as u64 }
            };
            if !self.live && pacing == Pacing::Realtime {
                let due = start + Duration::from_secs_f64(index as f64 / self.fps);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            imgproc::cvt_color_def(&bgr, &mut rgb, imgproc::COLOR_BGR2RGB).map_err(cv)?;
            let (width, height) = (rgb.cols() as u32, rgb.rows() as u32);
            let data = if rgb.is_continuous() { rgb.data_bytes().map_err(cv)?.to_vec() } else { Vec::new() };
            let frame = Frame { stamp_ns, captured: Instant::now(), rgb: data, width, height };
            let record = Record::Rgb { stamp_ns, width, height, rgb: frame.rgb.clone() };
            if !(push(Item::Record(record)) && push(Item::Frame(frame))) {
                return Ok(());
            }
            index += 1;
        }
    }
}
