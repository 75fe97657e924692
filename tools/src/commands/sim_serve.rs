//! `nines sim serve`: the simulator as a robot on the network. It publishes
//! the camera (CompressedImage, or raw Image with `--raw`) and odometry the
//! way ROS 2's rmw_zenoh does, and drives with the commands it hears on
//! /control/command, so `nines-onboard --source zenoh` (or any ROS 2 node)
//! closes the loop over zenoh.
//!
//! * Lockstep (default): after each camera frame the simulator waits for the
//!   command that answers it (the first stamped at or after the frame), and
//!   that command drives until the next frame. Sim time only moves when the
//!   runtime has answered, so the run is the same however slow either side is.
//! * `--realtime`: the simulator steps at the wall clock and drives with the
//!   newest command; one older than `--command-timeout` makes it brake, as a
//!   vehicle interface would.
//!
//! Until the runtime reports itself engaged on /diagnostics (published before
//! the command of the step it engages on), the expert drives, as in `nines
//! eval`. The run's summary is printed as one line of JSON on stdout.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use nines_datasets::msg::{
    AckermannDrive, AckermannDriveStamped, CompressedImage, DiagnosticArray, Event, EventKind, Header, Image,
    Odometry, RosMessage,
};
use nines_datasets::topics::{self, frames};
use nines_onboard::config::{NetworkConfig, TlsConfig};
use nines_onboard::rmw::{EntityKind, Token};
use nines_onboard::zenoh_io::{Node, Qos, RosPublisher, RosSubscriber, decode};
use nines_sim::events::{Category, SimEvent};
use nines_sim::record::{Driver, Observation, RecordOptions, simulate, stamp};
use nines_sim::render::camera::CameraConfig;

/// `nines sim serve --help`.
pub const LONG_ABOUT: &str = "Serve one simulated run on the robot's network (zenoh, as ROS 2's rmw_zenoh speaks it).

Publishes /camera/front/image/compressed (or /camera/front/image with --raw) and /vehicle/odometry, and drives with the AckermannDriveStamped commands heard on /control/command. The expert drives until the runtime reports itself engaged on /diagnostics.

Lockstep (default): after each camera frame the simulator waits for the command that answers it, so the run is the same however slow either side is. --realtime: steps at the wall clock with the newest command, and brakes when commands stop.

  nines sim serve --family curves --seed 3 &
  nines-onboard --config configs/vehicle-sim.toml --source zenoh --lockstep --model model.onnx

(with --realtime here, leave out --lockstep there).

The run's summary (failures, progress, when the runtime engaged) is printed as one line of JSON.";

/// `nines sim serve` arguments.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Scenario family (see `nines sim list`).
    #[arg(long)]
    pub family: String,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run length, s [default: the family's].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Step at the wall clock instead of waiting for each frame's command.
    #[arg(long)]
    pub realtime: bool,
    /// Publish raw sensor_msgs/Image (rgb8) instead of JPEG CompressedImage.
    #[arg(long)]
    pub raw: bool,
    /// Camera columns.
    #[arg(long, default_value_t = 512)]
    pub width: u32,
    /// Camera rows.
    #[arg(long, default_value_t = 256)]
    pub height: u32,
    /// Zenoh endpoints to listen on (the runtime's default config connects
    /// to tcp/localhost:7447).
    #[arg(long, default_values_t = ["tcp/127.0.0.1:7447".to_string()])]
    pub listen: Vec<String>,
    /// Zenoh endpoints to connect to.
    #[arg(long)]
    pub connect: Vec<String>,
    /// ROS domain.
    #[arg(long, default_value_t = 0)]
    pub domain_id: u32,
    /// Fleet certificates from `nines certs` (mutual TLS on tls/ endpoints):
    /// uses DIR/ca.pem, DIR/<name>.pem and DIR/<name>.key, and enforces
    /// DIR/access-control.json5 on what it hears.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// This node's name in the fleet certificates.
    #[arg(long, default_value = "sim")]
    pub cert_name: String,
    /// Seconds to wait for the runtime's answer (lockstep) or before braking
    /// on a stale command (real time) [default: 10 in lockstep, 0.5 in real time].
    #[arg(long)]
    pub command_timeout: Option<f64>,
    /// Seconds to wait for a runtime to subscribe to the camera before starting.
    #[arg(long, default_value_t = 60.0)]
    pub wait: f64,
}

/// The network settings of `nines sim serve`.
fn network(args: &ServeArgs) -> NetworkConfig {
    NetworkConfig {
        connect: args.connect.clone(),
        listen: Some(args.listen.clone()),
        domain_id: args.domain_id,
        node: "nines_sim".into(),
        tls: args.certs.as_ref().map(|d| TlsConfig::in_folder(d, &args.cert_name)),
        access_control: args.certs.as_ref().map(|d| d.join(super::certs::ACCESS_CONTROL_FILE)),
        ..NetworkConfig::default()
    }
}

/// What the simulator has heard from the runtime.
#[derive(Default)]
struct Heard {
    /// Newest command, its stamp, and when it came.
    command: Option<(u64, AckermannDrive, Instant)>,
    /// Stamp from which the runtime said it was engaged.
    engaged_from: Option<u64>,
    /// Controlled stops reported on /nines/events, sim stamps.
    stops: Vec<Event>,
}

struct Shared {
    heard: Mutex<Heard>,
    changed: Condvar,
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Heard> {
    s.heard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct NetworkDriver {
    camera: Publisher,
    odometry: RosPublisher<Odometry>,
    shared: Arc<Shared>,
    realtime: bool,
    timeout: Duration,
    jpeg_quality: u8,
    start: Instant,
    last_frame_s: Option<f64>,
    /// The command driving now (lockstep: the last frame's answer).
    current: Option<AckermannDrive>,
    engaged_at_s: Option<f64>,
    applied: u64,
    published: u64,
    faults: Vec<SimEvent>,
    error: Option<anyhow::Error>,
    stale_warned: bool,
}

enum Publisher {
    Compressed(RosPublisher<CompressedImage>),
    Raw(RosPublisher<Image>),
}

impl NetworkDriver {
    fn publish_frame(&mut self, t: f64, image: &image::RgbImage) -> anyhow::Result<()> {
        let header = Header::new(stamp(t), frames::CAMERA_FRONT);
        match &mut self.camera {
            Publisher::Compressed(p) => p.put(&CompressedImage {
                header,
                format: "jpeg".into(),
                data: nines_datasets::image::encode_jpeg(image, self.jpeg_quality)?,
            })?,
            Publisher::Raw(p) => p.put(&Image {
                header,
                height: image.height(),
                width: image.width(),
                encoding: "rgb8".into(),
                is_bigendian: 0,
                step: image.width() * 3,
                data: image.as_raw().clone(),
            })?,
        }
        Ok(())
    }

    /// Lockstep: the first command stamped at or after `frame_ns`.
    fn await_answer(&mut self, frame_ns: u64) -> anyhow::Result<AckermannDrive> {
        let deadline = Instant::now() + self.timeout;
        let mut heard = lock(&self.shared);
        loop {
            // A runtime in lockstep stamps its answer with the frame's own
            // stamp; anything later means it runs on another clock.
            match &heard.command {
                Some((t, drive, _)) if *t == frame_ns => return Ok(*drive),
                Some((t, ..)) if *t > frame_ns => bail!(
                    "a command stamped {:.3} s came instead of the answer to the frame at {:.3} s: \
                     the runtime is not in lockstep (run nines-onboard with --source zenoh --lockstep, \
                     or this simulator with --realtime)",
                    (t - stamp(0.0)) as f64 / 1e9,
                    (frame_ns - stamp(0.0)) as f64 / 1e9,
                ),
                _ => {}
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                bail!(
                    "no command answered the frame at {:.3} s within {:.1} s; is nines-onboard running with --source zenoh --lockstep on the same network?",
                    (frame_ns - stamp(0.0)) as f64 / 1e9,
                    self.timeout.as_secs_f64()
                );
            }
            heard =
                self.shared.changed.wait_timeout(heard, wait).map_or_else(|e| e.into_inner().0, |(h, _)| h);
        }
    }

    fn step(&mut self, o: &Observation<'_>) -> anyhow::Result<AckermannDrive> {
        if self.realtime {
            let due = self.start + Duration::from_secs_f64(o.time_secs);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let now_ns = stamp(o.time_secs);
        let mut answer_to = None;
        if let Some((t, image)) = o.camera
            && self.last_frame_s != Some(t)
        {
            self.last_frame_s = Some(t);
            self.publish_frame(t, image)?;
            self.published += 1;
            answer_to = Some(stamp(t));
        }
        let mut odom = Odometry {
            header: Header::new(now_ns, frames::MAP),
            child_frame_id: frames::BASE_LINK.into(),
            ..Odometry::default()
        };
        odom.twist.twist.linear.x = o.speed_mps;
        self.odometry.put(&odom)?;

        if !self.realtime
            && let Some(frame_ns) = answer_to
        {
            self.current = Some(self.await_answer(frame_ns)?);
        }
        let (command, engaged_from, stops) = {
            let mut heard = lock(&self.shared);
            (heard.command, heard.engaged_from, std::mem::take(&mut heard.stops))
        };
        for e in stops {
            let t = e.header.stamp.as_nanos().saturating_sub(stamp(0.0)) as f64 / 1e9;
            self.faults.push(SimEvent {
                time_secs: t,
                category: Category::SystemFault,
                detail: format!("the runtime made a controlled stop: {}", e.category),
                value: e.value,
            });
        }
        if self.realtime {
            self.current = command.map(|(_, d, _)| d);
        }
        let engaged = match (engaged_from, command) {
            (Some(from), Some((t, _, _))) => t >= from,
            _ => false,
        };
        if !engaged {
            return Ok(o.sim.expert_command());
        }
        if self.engaged_at_s.is_none() {
            self.engaged_at_s = Some(o.time_secs);
            tracing::info!("the runtime engaged at {:.2} s", o.time_secs);
        }
        if self.realtime
            && let Some((_, _, at)) = command
            && at.elapsed() > self.timeout
        {
            if !std::mem::replace(&mut self.stale_warned, true) {
                tracing::warn!("no command for {:.2} s: braking", at.elapsed().as_secs_f64());
            }
            return Ok(AckermannDrive { acceleration: -4.0, ..AckermannDrive::default() });
        }
        self.applied += 1;
        Ok(self.current.unwrap_or_else(|| o.sim.expert_command()))
    }
}

impl Driver for NetworkDriver {
    fn command(&mut self, o: &Observation<'_>) -> AckermannDrive {
        if self.error.is_some() {
            return AckermannDrive { acceleration: -4.0, ..AckermannDrive::default() };
        }
        match self.step(o) {
            Ok(c) => c,
            Err(e) => {
                self.error = Some(e);
                AckermannDrive { acceleration: -4.0, ..AckermannDrive::default() }
            }
        }
    }

    fn faults(&mut self) -> Vec<SimEvent> {
        std::mem::take(&mut self.faults)
    }
}

fn listen(node: &Node, shared: &Arc<Shared>) -> anyhow::Result<Vec<RosSubscriber>> {
    let s = Arc::clone(shared);
    let commands =
        node.subscribe(topics::COMMAND, AckermannDriveStamped::TYPE_NAME, Qos::Reliable, move |sample| {
            if let Ok(c) = decode::<AckermannDriveStamped>(&sample) {
                lock(&s).command = Some((c.header.stamp.as_nanos(), c.drive, Instant::now()));
                s.changed.notify_all();
            }
        })?;
    let s = Arc::clone(shared);
    let diagnostics =
        node.subscribe(topics::DIAGNOSTICS, DiagnosticArray::TYPE_NAME, Qos::Reliable, move |sample| {
            let Ok(d) = decode::<DiagnosticArray>(&sample) else { return };
            let engaged =
                d.status.iter().flat_map(|s| &s.values).any(|kv| kv.key == "mode" && kv.value == "engaged");
            let mut heard = lock(&s);
            match (engaged, heard.engaged_from) {
                (true, None) => heard.engaged_from = Some(d.header.stamp.as_nanos()),
                (false, Some(_)) if d.status.iter().flat_map(|s| &s.values).any(|kv| kv.key == "mode") => {
                    heard.engaged_from = None;
                }
                _ => {}
            }
        })?;
    let s = Arc::clone(shared);
    let events = node.subscribe(topics::EVENTS, Event::TYPE_NAME, Qos::Reliable, move |sample| {
        if let Ok(e) = decode::<Event>(&sample)
            && e.kind == EventKind::SafeStop as u8
        {
            lock(&s).stops.push(e);
        }
    })?;
    Ok(vec![commands, diagnostics, events])
}

/// Runs `nines sim serve`.
pub fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let seconds = |flag: &str, v: f64| {
        Duration::try_from_secs_f64(v)
            .map_err(|_| anyhow::anyhow!("{flag} {v}: give a number of seconds >= 0"))
    };
    let timeout =
        seconds("--command-timeout", args.command_timeout.unwrap_or(if args.realtime { 0.5 } else { 10.0 }))?;
    let wait = seconds("--wait", args.wait)?;
    let scenario = nines_sim::family(&args.family)?.draw(&args.family, args.seed);
    let net = network(args);
    let node = Node::open(&net, std::path::Path::new("."))?;
    let shared = Arc::new(Shared { heard: Mutex::new(Heard::default()), changed: Condvar::new() });
    let _subscribers = listen(&node, &shared)?;
    let (camera, camera_topic) = if args.raw {
        (Publisher::Raw(node.publisher(topics::CAMERA_RAW)?), topics::CAMERA_RAW)
    } else {
        (Publisher::Compressed(node.publisher(topics::CAMERA_COMPRESSED)?), topics::CAMERA_COMPRESSED)
    };
    wait_for_driver(&node, camera_topic, wait)?;
    eprintln!(
        "serving {} seed {} on {:?} ({}), camera on {camera_topic}",
        args.family,
        args.seed,
        args.listen,
        if args.realtime { "real time" } else { "lockstep" }
    );
    let options = RecordOptions {
        camera: CameraConfig { width: args.width, height: args.height, ..CameraConfig::default() },
        duration_secs: args.duration,
        ..RecordOptions::default()
    };
    let mut driver = NetworkDriver {
        camera,
        odometry: node.publisher(topics::ODOMETRY)?,
        shared,
        realtime: args.realtime,
        timeout,
        jpeg_quality: options.jpeg_quality,
        start: Instant::now(),
        last_frame_s: None,
        current: None,
        engaged_at_s: None,
        applied: 0,
        published: 0,
        faults: Vec::new(),
        error: None,
        stale_warned: false,
    };
    let started = Instant::now();
    let summary = simulate(scenario, &options, None, &mut driver)?;
    if let Some(e) = driver.error {
        return Err(e.context(format!("{} seed {}", args.family, args.seed)));
    }
    let failures: Vec<_> = summary
        .events
        .iter()
        .map(|e| serde_json::json!({"time_s": e.time_secs, "category": e.category.as_str(), "detail": e.detail}))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "family": summary.family,
            "seed": summary.seed,
            "duration_s": summary.duration_secs,
            "progress_m": summary.progress_m,
            "frames_published": driver.published,
            "engaged_at_s": driver.engaged_at_s,
            "model_steps": driver.applied,
            "wall_s": started.elapsed().as_secs_f64(),
            "failures": failures,
        })
    );
    Ok(())
}

/// Waits for a driver: one node (one session's node id) that both
/// subscribes to the camera `topic` and publishes /control/command, as the
/// runtime does once its model is loaded (its publishers are declared
/// before its camera subscription). A bare listener on the camera, such as
/// `ros2 topic echo`, does not start the run.
fn wait_for_driver(node: &Node, topic: &str, timeout: Duration) -> anyhow::Result<()> {
    let watch = node.watch_graph()?;
    // The (session, node) pairs with an entity of `kind` on `topic`.
    let entities = |kind: EntityKind, topic: &str| -> std::collections::HashSet<(String, String)> {
        watch
            .tokens()
            .iter()
            .filter_map(|k| Token::parse(k))
            .filter(|t| t.kind == kind && t.topic.as_ref().is_some_and(|on| on.name == topic))
            .map(|t| (t.zid, t.node_id))
            .collect()
    };
    let deadline = Instant::now() + timeout;
    eprintln!(
        "waiting for a driver: a node subscribed to {topic} that publishes {} (nines-onboard --source zenoh)",
        topics::COMMAND
    );
    while entities(EntityKind::Subscription, topic)
        .is_disjoint(&entities(EntityKind::Publisher, topics::COMMAND))
    {
        if Instant::now() > deadline {
            bail!(
                "no node subscribed to {topic} and publishing {} within {:.0} s (--wait)",
                topics::COMMAND,
                timeout.as_secs_f64()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The token follows the subscription it announces; give the
    // subscription's declaration a moment to settle on every route.
    std::thread::sleep(Duration::from_millis(50));
    Ok(())
}
