//! Counters in the Prometheus text format, served on `gateway.metrics` and read back by
//! `sipgw stats`.
//!
//! Every engine counter `NAME` is `sipgw_NAME_total`, every runtime counter too, and the table
//! sizes are gauges (`sipgw_workers`, `sipgw_terminals`, `sipgw_sessions`, `sipgw_sources`).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::shared::{RuntimeCounters, Shared, Snapshot};
use crate::counters::Counters;
use crate::gateway::RouteCounters;

/// Render a snapshot in the Prometheus text exposition format (version 0.0.4).
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(8192);
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP sipgw_{name}_total {help}");
        let _ = writeln!(out, "# TYPE sipgw_{name}_total counter");
        let _ = writeln!(out, "sipgw_{name}_total {value}");
    };
    for ((name, value), help) in s.engine.iter().zip(Counters::HELP) {
        counter(name, help, value);
    }
    for ((name, value), help) in s.route.iter().zip(RouteCounters::HELP) {
        counter(name, help, value);
    }
    for ((name, value), help) in s.runtime.iter().zip(RuntimeCounters::HELP) {
        counter(name, help, value);
    }
    let gauges = [
        ("workers", "Worker threads.", s.gauges.workers),
        (
            "terminals",
            "Terminal-table entries (failure counts and suspensions), all workers.",
            s.gauges.terminals,
        ),
        (
            "sessions",
            "Session-table entries, all workers.",
            s.gauges.sessions,
        ),
        (
            "sources",
            "Source-table entries (failure counts and bans), all workers.",
            s.gauges.sources,
        ),
        (
            "connections",
            "Open TCP and TLS connections, all workers.",
            s.gauges.connections,
        ),
        (
            "connection_heap_bytes",
            "Heap bytes held by the connections (not the kernel's socket buffers).",
            s.gauges.connection_heap_bytes,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP sipgw_{name} {help}");
        let _ = writeln!(out, "# TYPE sipgw_{name} gauge");
        let _ = writeln!(out, "sipgw_{name} {value}");
    }
    let _ = writeln!(
        out,
        "# HELP sipgw_worker_rx_datagrams_total Datagrams received, by worker."
    );
    let _ = writeln!(out, "# TYPE sipgw_worker_rx_datagrams_total counter");
    for (i, v) in s.per_worker_rx.iter().enumerate() {
        let _ = writeln!(out, "sipgw_worker_rx_datagrams_total{{worker=\"{i}\"}} {v}");
    }
    out
}

/// The samples of a Prometheus text page: `(metric name, value)` in page order.
pub fn parse(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `GET /metrics` from a running gateway.
pub fn fetch(addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: sipgw\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1);
    if !head.starts_with("HTTP/1.") || status != Some("200") {
        return Err(std::io::Error::other(format!(
            "unexpected answer from {addr}: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.to_owned())
}

/// The HTTP endpoint.
pub struct Server {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    pub(super) fn start(addr: SocketAddr, shared: Arc<Shared>) -> Result<Server, String> {
        let server = Arc::new(tiny_http::Server::http(addr).map_err(|e| e.to_string())?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| "not an IP listener".to_owned())?;
        let s = server.clone();
        let thread = std::thread::Builder::new()
            .name("sipgw-metrics".to_owned())
            .spawn(move || {
                for request in s.incoming_requests() {
                    let path = request.url().split('?').next().unwrap_or("");
                    let response = if path == "/metrics" {
                        let header = tiny_http::Header::from_bytes(
                            &b"Content-Type"[..],
                            &b"text/plain; version=0.0.4"[..],
                        )
                        .expect("static header");
                        tiny_http::Response::from_string(render(&shared.snapshot()))
                            .with_header(header)
                    } else {
                        tiny_http::Response::from_string("sipgw: try /metrics\n")
                            .with_status_code(404)
                    };
                    let _ = request.respond(response);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Server {
            server,
            thread: Some(thread),
            addr,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(super) fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_parse_round_trip() {
        let mut s = Snapshot::default();
        s.engine.challenged = 7;
        s.route.upstream_requests = 3;
        s.gauges.workers = 2;
        s.per_worker_rx = vec![5, 6];
        let text = render(&s);
        assert!(text.contains("# TYPE sipgw_challenged_total counter\nsipgw_challenged_total 7\n"));
        assert!(text.contains("# HELP sipgw_received_total Datagrams handed to the engine."));
        let samples = parse(&text);
        assert!(samples.contains(&("sipgw_upstream_requests_total".to_owned(), 3)));
        assert!(samples.contains(&("sipgw_workers".to_owned(), 2)));
        assert!(samples.contains(&(
            "sipgw_worker_rx_datagrams_total{worker=\"1\"}".to_owned(),
            6
        )));
        assert_eq!(
            samples.len(),
            Counters::NAMES.len()
                + RouteCounters::NAMES.len()
                + RuntimeCounters::NAMES.len()
                + 6 // gauges
                + 2
        );
    }
}
