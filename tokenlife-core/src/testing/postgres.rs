//! A private PostgreSQL for tests that break the database (features `test-util` and
//! `postgres`): `initdb` into a temporary directory, `postgres` on a free 127.0.0.1 port,
//! stopped like a crash ([`kill`](PgServer::kill): SIGQUIT, an immediate shutdown with
//! no checkpoint; the next start recovers from the WAL) and restarted on the same port
//! and data. Like [`RedisServer`](super::RedisServer), a small `sh` watchdog holds the
//! server and stops it when the pipe from this process closes — on drop, on panic, or
//! when the test process dies. Run as root, the server runs as the `postgres` user
//! (`setpriv`: PostgreSQL refuses root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL server this test owns.
#[derive(Debug)]
pub struct PgServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
}

/// Where `initdb` and `postgres` are: on the `PATH`, or Debian's newest
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join("postgres").is_file() {
                return d;
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL's initdb (Debian package postgresql; .ci/run installs it)")
}

fn is_root() -> bool {
    // `id -u` keeps this free of libc.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `program args…`, as the `postgres` user when this process is root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    /// Creates a cluster (trust authentication, user `postgres`, database `test`) on a
    /// free port and starts it.
    ///
    /// # Panics
    /// If PostgreSQL is not installed or does not start within 30 s.
    pub fn start() -> Self {
        let port = super::free_port();
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).expect("OS random source");
        let dir = std::env::temp_dir().join(format!(
            "tokenlife-pg-{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        if is_root() {
            let _ = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
        }
        let bin = bin_dir();
        let ok = as_owner(&bin.join("initdb"))
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "initdb failed in {}", dir.display());
        let mut server = Self {
            port,
            dir,
            bin,
            child: None,
        };
        server.restart();
        let mut c = postgres::Client::connect(&server.url_of("postgres"), postgres::NoTls)
            .expect("the new cluster answers");
        c.batch_execute("CREATE DATABASE test")
            .expect("create the test database");
        server
    }

    /// Starts the server again on the same port and data (after [`kill`](Self::kill):
    /// crash recovery) and waits until it answers.
    ///
    /// # Panics
    /// If it does not answer within 30 s.
    pub fn restart(&mut self) {
        self.kill();
        super::assert_unanswered(self.port);
        let postgres = self.bin.join("postgres");
        let cmd = as_owner(&postgres);
        let mut line = vec![cmd.get_program().to_string_lossy().into_owned()];
        line.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
        let script = format!(
            "{} -D {} -p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             >>{}/log 2>&1 & r=$!; \
             cat >/dev/null; kill -QUIT $r 2>/dev/null; wait $r 2>/dev/null; exit 0",
            line.join(" "),
            self.dir.join("data").display(),
            self.port,
            self.dir.display(),
            self.dir.display(),
        );
        self.child = Some(super::watchdog(&script, "sh runs"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while postgres::Client::connect(&self.url_of("postgres"), postgres::NoTls).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres did not start: see {}/log",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it like a crash: SIGQUIT, an immediate shutdown (no checkpoint), every
    /// connection cut. Returns once the server is gone.
    pub fn kill(&mut self) {
        super::stop_watchdog(self.child.take());
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/test`.
    pub fn url(&self) -> String {
        self.url_of("test")
    }

    fn url_of(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?connect_timeout=2",
            self.port
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
