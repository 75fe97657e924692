//! `nines bench zenoh`: camera frames (sensor_msgs/Image rgb8, CDR) across
//! loopback between two zenoh sessions, with and without shared memory, next
//! to a raw TCP socket carrying the same bytes, in the same run.
//!
//! * latency: one frame in flight at a time, publish to the subscriber
//!   having touched every page of it (what any consumer does first);
//! * throughput: frames sent back to back (congestion control: block).
//!
//! Methods: `tcp` (a length-prefixed std TcpStream, the floor for a network
//! transport), `zenoh-tcp` (shared memory off on both sessions),
//! `zenoh-shm-implicit` (shared memory on: zenoh copies large payloads
//! into its pool and sends a reference) and `zenoh-shm` (the publisher
//! writes the frame straight into a shared-memory buffer it allocated).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use nines_datasets::msg::{Header, Image};
use nines_onboard::config::NetworkConfig;
use zenoh::Wait;
use zenoh::qos::CongestionControl;
use zenoh::shm::{BlockOn, GarbageCollect, PosixShmProviderBackend, ShmProviderBuilder};

/// One method at one frame size.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    /// Method.
    pub method: String,
    /// Frame columns x rows.
    pub size: String,
    /// Payload, bytes.
    pub bytes: usize,
    /// Latency p50, ms.
    pub p50_ms: f64,
    /// Latency p99, ms.
    pub p99_ms: f64,
    /// Frames per second, back to back.
    pub fps: f64,
    /// Payload throughput, GB/s.
    pub gbps: f64,
}

fn frame(width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    let data: Vec<u8> = (0..(width * height * 3) as usize).map(|i| (i * 31 % 251) as u8).collect();
    let image = Image {
        header: Header::new(1_700_000_000_000_000_000, "camera_front_optical"),
        height,
        width,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: width * 3,
        data,
    };
    Ok(nines_datasets::cdr::encode(&image)?)
}

/// Reads one byte per page, as a consumer's first pass over a frame would.
fn touch(slices: impl Iterator<Item = impl AsRef<[u8]>>) -> (usize, u64) {
    let (mut n, mut sum) = (0, 0u64);
    for s in slices {
        let s = s.as_ref();
        n += s.len();
        sum += s.iter().step_by(4096).map(|&b| u64::from(b)).sum::<u64>();
    }
    (n, sum)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0)
}

fn row(
    method: &str,
    width: u32,
    height: u32,
    bytes: usize,
    mut latencies: Vec<f64>,
    blast: (usize, Duration),
) -> Row {
    latencies.sort_by(f64::total_cmp);
    let secs = blast.1.as_secs_f64().max(1e-9);
    Row {
        method: method.into(),
        size: format!("{width}x{height}"),
        bytes,
        p50_ms: percentile(&latencies, 0.5) * 1e3,
        p99_ms: percentile(&latencies, 0.99) * 1e3,
        fps: blast.0 as f64 / secs,
        gbps: (blast.0 * bytes) as f64 / secs / 1e9,
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The raw TCP baseline.
fn bench_tcp(payload: &[u8], frames: usize) -> anyhow::Result<(Vec<f64>, (usize, Duration))> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = sync_channel::<Instant>(1024);
    let receiver =
        std::thread::Builder::new().name("nines-bench-tcp".into()).spawn(move || -> anyhow::Result<()> {
            let (mut s, _) = listener.accept()?;
            s.set_nodelay(true)?;
            let mut buf = Vec::new();
            let mut len = [0u8; 8];
            while s.read_exact(&mut len).is_ok() {
                buf.resize(u64::from_le_bytes(len) as usize, 0);
                s.read_exact(&mut buf)?;
                touch(std::iter::once(&buf));
                if tx.send(Instant::now()).is_err() {
                    break;
                }
            }
            Ok(())
        })?;
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let send = |s: &mut TcpStream| -> anyhow::Result<Instant> {
        let t = Instant::now();
        s.write_all(&(payload.len() as u64).to_le_bytes())?;
        s.write_all(payload)?;
        Ok(t)
    };
    let mut latencies = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = send(&mut s)?;
        latencies.push(rx.recv()?.duration_since(t).as_secs_f64());
    }
    let start = Instant::now();
    for _ in 0..frames {
        send(&mut s)?;
    }
    for _ in 0..frames {
        rx.recv()?;
    }
    let blast = (frames, start.elapsed());
    drop(s);
    drop(rx);
    receiver.join().map_err(|_| anyhow!("the TCP receiver panicked"))??;
    Ok((latencies, blast))
}

/// A peer session with the runtime's own network settings (nines'
/// `[zenoh]` defaults), shared memory on or off.
fn session(shm: bool, listen: Option<&str>, connect: Option<&str>) -> anyhow::Result<zenoh::Session> {
    let net = NetworkConfig {
        listen: Some(listen.into_iter().map(str::to_owned).collect()),
        connect: connect.into_iter().map(str::to_owned).collect(),
        shared_memory: shm,
        ..NetworkConfig::default()
    };
    let config = nines_onboard::zenoh_io::zenoh_config(&net, std::path::Path::new("."))?;
    zenoh::open(config).wait().map_err(|e| anyhow!("opening a zenoh session: {e}"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Zenoh {
    Tcp,
    ShmImplicit,
    Shm,
}

fn bench_zenoh(payload: &[u8], frames: usize, mode: Zenoh) -> anyhow::Result<(Vec<f64>, (usize, Duration))> {
    let endpoint = format!("tcp/127.0.0.1:{}", free_port()?);
    let shm = mode != Zenoh::Tcp;
    let sub_session = session(shm, Some(&endpoint), None)?;
    let pub_session = session(shm, None, Some(&endpoint))?;
    let key = "bench/camera";
    let (tx, rx) = sync_channel::<(Instant, bool)>(4096);
    let _sub = sub_session
        .declare_subscriber(key)
        .callback(move |s: zenoh::sample::Sample| {
            touch(s.payload().slices());
            let _ = tx.send((Instant::now(), s.payload().as_shm().is_some()));
        })
        .wait()
        .map_err(|e| anyhow!("subscribing: {e}"))?;
    let publisher = pub_session
        .declare_publisher(key)
        .congestion_control(CongestionControl::Block)
        .wait()
        .map_err(|e| anyhow!("declaring the publisher: {e}"))?;
    let provider = if mode == Zenoh::Shm {
        let backend = PosixShmProviderBackend::builder(payload.len() * 32)
            .wait()
            .map_err(|e| anyhow!("creating a {} byte shared-memory pool: {e}", payload.len() * 32))?;
        Some(ShmProviderBuilder::backend(backend).wait())
    } else {
        None
    };
    let put = || -> anyhow::Result<Instant> {
        let t = Instant::now();
        match &provider {
            Some(p) => {
                let mut buf = p
                    .alloc(payload.len())
                    .with_policy::<BlockOn<GarbageCollect>>()
                    .wait()
                    .map_err(|e| anyhow!("allocating shared memory: {e:?}"))?;
                buf.copy_from_slice(payload);
                publisher.put(buf).wait()
            }
            None => publisher.put(payload).wait(),
        }
        .map_err(|e| anyhow!("publishing: {e}"))?;
        Ok(t)
    };
    // Until the subscription has reached the publisher.
    let ready = Instant::now() + Duration::from_secs(10);
    loop {
        put()?;
        if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
            break;
        }
        if Instant::now() > ready {
            return Err(anyhow!("the zenoh subscriber never heard the publisher on {endpoint}"));
        }
    }
    while rx.recv_timeout(Duration::from_millis(200)).is_ok() {}
    let recv = |rx: &Receiver<(Instant, bool)>| -> anyhow::Result<(Instant, bool)> {
        rx.recv_timeout(Duration::from_secs(10)).context("a frame was lost")
    };
    let mut latencies = Vec::with_capacity(frames);
    let mut via_shm = 0;
    for _ in 0..frames {
        let t = put()?;
        let (at, shm) = recv(&rx)?;
        via_shm += usize::from(shm);
        latencies.push(at.duration_since(t).as_secs_f64());
    }
    if shm && via_shm == 0 {
        tracing::warn!("shared memory was on but no frame arrived through it");
    }
    let start = Instant::now();
    for _ in 0..frames {
        put()?;
    }
    for _ in 0..frames {
        recv(&rx)?;
    }
    Ok((latencies, (frames, start.elapsed())))
}

/// Runs the benchmark over `sizes` (columns x rows).
pub fn bench(sizes: &[(u32, u32)], frames: usize, json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for &(w, h) in sizes {
        let payload = frame(w, h)?;
        let methods: [(&str, Option<Zenoh>); 4] = [
            ("tcp", None),
            ("zenoh-tcp", Some(Zenoh::Tcp)),
            ("zenoh-shm-implicit", Some(Zenoh::ShmImplicit)),
            ("zenoh-shm", Some(Zenoh::Shm)),
        ];
        for (name, mode) in methods {
            let (lat, blast) = match mode {
                None => bench_tcp(&payload, frames)?,
                Some(m) => bench_zenoh(&payload, frames, m).with_context(|| format!("{name} at {w}x{h}"))?,
            };
            let r = row(name, w, h, payload.len(), lat, blast);
            if !json {
                println!(
                    "{:<10} {:<19} {:>9} B  latency p50 {:>7.3} ms  p99 {:>7.3} ms  {:>7.0} frames/s  {:>6.2} GB/s",
                    r.size, r.method, r.bytes, r.p50_ms, r.p99_ms, r.fps, r.gbps
                );
            }
            rows.push(r);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}
