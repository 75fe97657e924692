//! Time is a dependency: a lockstep closed-loop run decides on the
//! simulator's clock and the configured inference latency, never on the
//! wall clock. The small suite's closed-loop runs, driven by the same
//! model once on an idle machine and once with every core kept busy by a
//! CPU hog, end the same way and command the same thing at every step.
//!
//! The deadline is set at 5 ms, which the measured inference time of this
//! debug-profile test often exceeds, all the more under the hog: were the
//! deadline judged on the wall clock, the loaded pass would make controlled
//! stops the idle pass does not, and the test would fail.

#![allow(clippy::unwrap_used, reason = "a test fails loudly on any error")]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nines_datasets::contract::ModelContract;
use nines_harness::closed_loop::{ClosedResult, Seat, run_closed};
use nines_harness::eval::eval_config;
use nines_harness::suite::Suite;
use nines_onboard::config::Config;

/// Keeps every core busy until dropped.
struct Hog {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Hog {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let threads = (0..cores)
            .map(|i| {
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name(format!("cpu-hog-{i}"))
                    .spawn(move || {
                        let mut x = 1u64;
                        while !stop.load(Ordering::Relaxed) {
                            for _ in 0..10_000 {
                                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                            }
                        }
                        x
                    })
                    .unwrap()
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Every closed-loop run of the suite, in order, on this thread.
fn run_all(suite: &Suite, seat: &Seat) -> Vec<(String, ClosedResult)> {
    suite.closed_runs().iter().map(|run| (run.key(), run_closed(suite, run, seat, None).unwrap())).collect()
}

/// What a run decided: its failure events and every command.
#[derive(Debug, PartialEq)]
struct Decisions {
    events: Vec<(String, String)>,
    commands: Vec<(f64, [f32; 3])>,
}

fn decisions(result: &ClosedResult) -> Decisions {
    let events = result
        .summary
        .events
        .iter()
        .map(|e| (format!("{:?} at {:.3} s", e.category, e.time_secs), e.detail.clone()))
        .collect();
    let commands =
        result.commands.iter().map(|(t, c)| (*t, [c.steering_angle, c.speed, c.acceleration])).collect();
    Decisions { events, commands }
}

#[test]
fn the_small_suite_decides_the_same_idle_and_under_a_cpu_hog() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    nines_offboard::export::export_untrained("tiny", &ModelContract::default(), 11, &model).unwrap();
    let suite = Suite::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/small.toml")).unwrap();
    let mut config = eval_config(Config::load_for_runtime(None).unwrap());
    config.safety.inference_deadline_ms = 5.0;
    config.safety.lockstep_latency_ms = Some(4.0);
    let seat = Seat::Model { path: model, config: Box::new(config) };

    let idle = run_all(&suite, &seat);
    let loaded = {
        let _hog = Hog::start();
        run_all(&suite, &seat)
    };

    assert_eq!(idle.len(), 19, "the small suite's closed-loop runs");
    let mut over_deadline = 0usize;
    let engaged = |r: &ClosedResult| r.metrics.iter().any(|(n, _)| n == "engaged_at_s");
    assert!(idle.iter().any(|(_, r)| engaged(r)), "the model drove in some runs (else nothing is compared)");
    for ((key, a), (_, b)) in idle.iter().zip(&loaded) {
        assert!(!a.commands.is_empty(), "{key}: the model's seat gave commands");
        assert_eq!(a.passed(), b.passed(), "{key}: the outcome depends on the machine's load");
        assert_eq!(decisions(a), decisions(b), "{key}: the decisions depend on the machine's load");
        let p99 = |r: &ClosedResult| r.metrics.iter().find(|(n, _)| n == "inference_p99_ms").map(|m| m.1);
        assert!(p99(a).is_some_and(f64::is_finite), "{key}: the measured time is still recorded");
        over_deadline += usize::from(p99(b).is_some_and(|ms| ms > 5.0));
    }
    // The test means something only if the wall clock would have tripped the deadline.
    eprintln!("{over_deadline} of {} loaded runs measured a p99 beyond the 5 ms deadline", loaded.len());
}
