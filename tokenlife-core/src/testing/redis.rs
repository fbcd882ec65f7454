//! A real `redis-server` for tests (features `test-util` and `redis`): started on a free
//! 127.0.0.1 port with nothing kept on disk, killed on drop, restartable on the same port
//! — and killed when the test process dies without dropping it (a panic in another
//! thread, a detached task owning it, `process::exit`, a signal): a small `sh` watchdog
//! holds the server and kills it when the pipe from this process closes.

use std::process::Child;
use std::time::{Duration, Instant};

/// A `redis-server` process this test owns.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port and waits (up to 10 s) until it accepts connections.
    ///
    /// # Panics
    /// If `redis-server` is not installed or does not start.
    pub fn start() -> Self {
        Self::on(super::free_port())
    }

    /// Starts one on `port` (a restart after [`kill`](Self::kill)).
    ///
    /// # Panics
    /// As for [`start`](Self::start).
    pub fn on(port: u16) -> Self {
        super::assert_unanswered(port);
        // The watchdog: reads its stdin (a pipe only this process writes to) until EOF,
        // which comes when the `Child` below is dropped or this process dies, however.
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
             >/dev/null 2>&1 & r=$!; \
             cat >/dev/null; kill -9 $r 2>/dev/null; wait $r 2>/dev/null; exit 0"
        );
        let child = super::watchdog(
            &script,
            "sh and redis-server are installed (.ci/run installs redis-server)",
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            port,
            child: Some(child),
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it (an outage); [`on`](Self::on) with the same port brings one back, empty.
    pub fn kill(&mut self) {
        // The watchdog kills the server at once (SIGKILL: an outage, not a shutdown).
        super::stop_watchdog(self.child.take());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::RedisServer;
    use std::time::{Duration, Instant};

    fn port_answers(port: u16) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }

    fn gone_within(port: u16, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while port_answers(port) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Killed on `kill` and on drop.
    #[test]
    fn kill_and_drop_stop_the_server() {
        let mut r = RedisServer::start();
        let port = r.port();
        assert!(port_answers(port));
        r.kill();
        assert!(gone_within(port, Duration::from_secs(10)));
        let r = RedisServer::on(port);
        assert!(port_answers(port));
        drop(r);
        assert!(gone_within(port, Duration::from_secs(10)));
    }

    /// A port another server answers on is refused, not shared; the ports handed out
    /// are never handed out again in this process.
    #[test]
    fn a_taken_port_is_refused_and_no_port_is_given_twice() {
        let r = RedisServer::start();
        let twice = std::panic::catch_unwind(|| RedisServer::on(r.port()));
        assert!(twice.is_err(), "a second server on a taken port");
        let ports: std::collections::BTreeSet<u16> =
            (0..500).map(|_| crate::testing::free_port()).collect();
        assert_eq!(ports.len(), 500);
        assert!(!ports.contains(&r.port()));
    }

    /// A process that dies without dropping its server (here `process::exit` with the
    /// server forgotten) leaves no `redis-server` behind.
    #[test]
    fn a_process_that_dies_without_dropping_it_leaves_no_server_behind() {
        if let Ok(port) = std::env::var("TOKENLIFE_LEAK_REDIS_PORT") {
            // The child: start a server, print nothing, die without dropping it.
            let r = RedisServer::on(port.parse().expect("a port"));
            std::mem::forget(r);
            std::process::exit(0);
        }
        let port = crate::testing::free_port();
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "testing::redis::tests::a_process_that_dies_without_dropping_it_leaves_no_server_behind",
                "--test-threads=1",
            ])
            .env("TOKENLIFE_LEAK_REDIS_PORT", port.to_string())
            .status()
            .expect("the child test process");
        assert!(status.success(), "{status:?}");
        assert!(
            gone_within(port, Duration::from_secs(10)),
            "redis-server on {port} outlived its process"
        );
    }
}
