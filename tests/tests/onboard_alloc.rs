//! Hot-loop discipline: after start-up, the control thread's step
//! (preprocess, ONNX Runtime with preallocated inputs and outputs,
//! controller, safety monitor) makes no heap allocation. A counting global
//! allocator counts the allocations of the thread that runs the steps (its
//! own binary, so no other test's threads share the allocator). ONNX
//! Runtime's C++ allocations go through its own arena, not Rust's allocator;
//! this proves the Rust side allocates nothing per step.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use nines_datasets::contract::ModelContract;
use nines_datasets::drive::DriveReader;
use nines_datasets::msg::CompressedImage;
use nines_datasets::topics;
use nines_onboard::config::Config;
use nines_onboard::pipeline::{Pipeline, StepInput};
use nines_onboard::preprocess::FrameRef;
use nines_onboard::source::{Pacing, Source};
use nines_sim::family;
use nines_sim::record::{RecordOptions, record_expert};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only counts (a const-initialised thread-local and an atomic, which
// do not allocate).
#[expect(unsafe_code, reason = "a global allocator is an unsafe trait; this one only counts and forwards")]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_steady_state_step_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let drive = dir.path().join("drive.mcap");
    let options = RecordOptions { duration_secs: Some(3.0), ..RecordOptions::default() };
    record_expert(family("straight").unwrap().draw("straight", 2), &drive, &options).unwrap();
    let model = dir.path().join("tiny.onnx");
    nines_offboard::export::export_untrained("tiny", &ModelContract::default(), 3, &model).unwrap();

    let config =
        Config::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/vehicle-sim.toml"))
            .unwrap();
    let source = nines_onboard::source::drive::DriveSource::open(&drive, topics::CAMERA_COMPRESSED).unwrap();
    let (camera, mount) = source.calibration().unwrap();
    let mut pipeline = Pipeline::new(&config, &model, &camera, &mount, Pacing::Lockstep).unwrap();
    // Frames decoded up front: decoding belongs to the capture thread.
    let reader = DriveReader::open(&drive).unwrap();
    let frames: Vec<(u64, image::RgbImage)> = reader
        .read_topic::<CompressedImage>(topics::CAMERA_COMPRESSED)
        .unwrap()
        .into_iter()
        .map(|(t, m)| (t, nines_datasets::image::decode_compressed(&m, "test").unwrap()))
        .collect();
    assert!(frames.len() >= 25);
    let step = |pipeline: &mut Pipeline, i: usize, with_frame: bool| {
        let (t, img) = &frames[i];
        let frame =
            FrameRef { stamp_ns: *t, rgb: Some(img.as_raw()), width: img.width(), height: img.height() };
        let input = if with_frame {
            StepInput { now_ns: *t, frame: Some(frame), speed_mps: 8.0 }
        } else {
            StepInput { now_ns: *t + 50_000_000, frame: None, speed_mps: 8.0 }
        };
        pipeline.step(&input)
    };
    // Start-up: the first runs let ONNX Runtime and every buffer settle.
    for i in 0..10 {
        step(&mut pipeline, i, true);
        step(&mut pipeline, i, false);
    }
    assert!(pipeline.safety().engaged(), "engaged, so the controller path runs");
    // The counter works: one allocation on this thread is seen.
    COUNTING.with(|c| c.set(true));
    std::hint::black_box(vec![1u8; 16]);
    assert_eq!(ALLOCATIONS.swap(0, Ordering::Relaxed), 1, "the counting allocator sees this thread");
    let mut engaged = 0;
    for i in 10..frames.len() {
        engaged += usize::from(step(&mut pipeline, i, true).prediction.is_some());
        step(&mut pipeline, i, false);
    }
    COUNTING.with(|c| c.set(false));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(engaged, frames.len() - 10, "every step ran the network");
    assert_eq!(allocations, 0, "{allocations} allocations in {} steady-state steps", 2 * (frames.len() - 10));
}
