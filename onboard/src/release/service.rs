//! The runtime as a systemd service (Type=notify): READY once the first
//! command is out (the model loaded, the source delivering, the loop
//! running), then a watchdog ping at twice the rate `WatchdogSec` asks for,
//! only while commands keep coming. A stalled loop stops pinging and
//! systemd restarts it. Outside systemd (`NOTIFY_SOCKET` unset) it does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Sends READY and watchdog pings from the control loop.
#[derive(Debug)]
pub struct Notifier {
    ready: bool,
    interval: Option<Duration>,
    last_ping: Instant,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// Reads `WATCHDOG_USEC` from the environment systemd gave the service.
    #[must_use]
    pub fn new() -> Self {
        let mut usec = 0;
        let interval = sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
        Self { ready: false, interval, last_ping: Instant::now() }
    }

    /// Call after every published command.
    pub fn command_published(&mut self) {
        if !self.ready {
            self.ready = true;
            if let Err(e) = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status("driving")]) {
                tracing::warn!("telling systemd the runtime is ready: {e}");
            }
            self.last_ping = Instant::now();
            return;
        }
        if let Some(interval) = self.interval
            && self.last_ping.elapsed() >= interval
        {
            let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
            self.last_ping = Instant::now();
        }
    }
}
