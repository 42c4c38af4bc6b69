//! A hung slot under `bluegreen up` (issue 8 §4, §5): one that stops pinging the watchdog, here
//! stopped with SIGSTOP, is killed and started again after the unit's `WatchdogSec=`, as
//! systemd does; meanwhile its held socket queues new connections, and NGINX resends what the
//! stopped process had taken once it is killed.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::load::{assert_no_failures, Load};
use crate::util::Env;

/// A process stopped with SIGSTOP; continued when dropped, so that a failed test leaves no
/// stopped process behind (it then gets the SIGTERM `up`'s end sent it).
struct Stopped(Pid);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

#[test]
fn a_stopped_active_slot_is_killed_by_the_watchdog_and_started_again_failing_no_request() {
    let env = Env::new();
    let mut up = env.up();
    let load = Load::issue8(env.public);
    std::thread::sleep(Duration::from_millis(300));
    let pid = env.slot_pid("blue");
    let stopped_at = Instant::now();
    kill(Pid::from_raw(pid), Signal::SIGSTOP).unwrap();
    let _stopped = Stopped(Pid::from_raw(pid));
    up.wait_for_line(&format!(
        "blue sent no WATCHDOG=1 for 5 s (hung, or stopped): killed it (pid {pid})"
    ));
    up.wait_for_line("blue is back");
    let back = stopped_at.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let results = load.finish();
    println!("SIGSTOP of the active slot, back after {back:?}: {results:?}");
    assert_no_failures(&results);
    assert_ne!(env.slot_pid("blue"), pid);
    assert_eq!(env.predict().header("x-slot"), Some("blue"));
}
