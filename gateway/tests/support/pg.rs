//! A real PostgreSQL server for the database backend's tests: initialised in a scratch
//! directory as the unprivileged user `nobody` (the server refuses to run as root), listening
//! on 127.0.0.1 and a free port, stopped (and its directory removed) on drop.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    pub dir: Scratch,
    pub port: u16,
    proc: Proc,
}

/// `program` as `nobody` (setpriv execs it: the child is the server itself, so signals reach it).
fn as_nobody(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        program,
    ]);
    c
}

impl Postgres {
    pub fn start(name: &str) -> Postgres {
        assert!(
            std::path::Path::new(BIN).join("initdb").exists(),
            "PostgreSQL 15 is not installed: run ./scripts/install-deps as root"
        );
        assert!(
            rustix::process::geteuid().is_root(),
            "the PostgreSQL tests run the server as `nobody`: run them as root"
        );
        let dir = Scratch::new(name);
        let data = dir.0.join("pgdata");
        std::fs::create_dir_all(&data).unwrap();
        for p in [&dir.0, &data] {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).expect("chown to nobody");
        }
        let out = as_nobody(&format!("{BIN}/initdb"))
            .args([
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "sipgw",
                "-E",
                "UTF8",
            ])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            dir,
            port: free_port(),
            proc: Proc(None),
        };
        pg.launch();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.0.join("pgdata")
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join("postgres.log"))
            .unwrap();
        let child = as_nobody(&format!("{BIN}/postgres"))
            .args(["-D", self.data().to_str().unwrap()])
            .args([
                "-p",
                &self.port.to_string(),
                "-k",
                self.data().to_str().unwrap(),
            ])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.proc = Proc(Some(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.try_sql("SELECT 1") {
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                std::fs::read_to_string(self.dir.0.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server (fast shutdown) and wait for it.
    pub fn stop(&mut self) {
        self.proc.signal("-INT");
        assert!(
            self.proc.wait(Duration::from_secs(20)).is_some(),
            "postgres stopped"
        );
    }

    /// Start it again on the same port and data.
    pub fn restart(&mut self) {
        self.launch();
    }

    pub fn url(&self) -> String {
        format!("postgres://sipgw@127.0.0.1:{}/postgres", self.port)
    }

    fn psql(&self, sql: &str) -> std::io::Result<std::process::Output> {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "sipgw",
            ])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
            .output()
    }

    fn try_sql(&self, sql: &str) -> bool {
        self.psql(sql).is_ok_and(|o| o.status.success())
    }

    /// Run SQL; panics with psql's message if it fails.
    pub fn sql(&self, sql: &str) {
        let out = self
            .psql(sql)
            .expect("psql (postgresql-client, installed with postgresql) runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.proc.0.is_some() {
            let _ = Command::new("kill")
                .args(["-INT", &self.proc.pid().to_string()])
                .status();
            let _ = self.proc.wait(Duration::from_secs(10));
        }
    }
}
