//! SIP over TLS end to end: the `sipgw` binary with `[tls] enabled`, phones and a softswitch
//! stand-in written with Python's ssl and hashlib (`tests/tls/sip_tls.py`: TLS and digest code
//! independent of rustls and of sipgw), certificates made by rcgen for each test.
//!
//! Debian's sipp (sip-tester 3.6) is built without TLS (`-t l1` does not exist there), so the
//! TLS peers are the Python ones; sipp stays the softswitch stand-in where its leg is UDP.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::live::Gateway;
use support::*;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls/sip_tls.py")
}

/// A self-signed certificate for `ip` in `dir`: (certificate path, key path, DER SHA-256).
fn certificate(dir: &Path, name: &str, ip: &str) -> (PathBuf, PathBuf, String) {
    let ck = rcgen::generate_simple_self_signed(vec![ip.to_owned()]).unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys; print(hashlib.sha256(bytes.fromhex(sys.argv[1])).hexdigest())",
        ])
        .arg(hex(ck.cert.der()))
        .output()
        .expect("python3 (needed by the TLS tests) runs");
    let sha = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    (cert, key, sha)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Run the Python TLS phone; returns its JSON lines.
fn tls_phone(gw: SocketAddr, ca: &Path, user: &str, password: &str, count: usize) -> Vec<String> {
    tls_phone_call(gw, ca, user, password, count, None)
}

/// [`tls_phone`], then a call on the same connection (`caller` or `callee`).
fn tls_phone_call(
    gw: SocketAddr,
    ca: &Path,
    user: &str,
    password: &str,
    count: usize,
    call: Option<&str>,
) -> Vec<String> {
    let child = Command::new("python3")
        .arg(script())
        .arg("phone")
        .args(["--gw", &gw.to_string()])
        .arg("--ca")
        .arg(ca)
        .args(["--user", user, "--password", password])
        .args(["--count", &count.to_string()])
        .args(call.map(|c| ["--call", c]).into_iter().flatten())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the Python TLS phone");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "TLS phone failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn tls_section(port: u16, cert: &Path, key: &Path) -> String {
    format!(
        "[tls]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{}\"\n\
         private_key = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

#[test]
fn phones_register_over_tls_and_the_softswitch_gets_them_over_udp() {
    let certs = Scratch::new("tls-certs-a");
    let (cert, key, sha) = certificate(&certs.0, "gw", "127.0.0.1");
    let port = free_port();
    let gw = Gateway::start_at(
        "tls-register",
        2,
        &format!(
            "[auth]\nrealm = \"sipgw.test\"\n{}",
            tls_section(port, &cert, &key)
        ),
        "127.0.0.2",
        "",
    );
    const USERS: usize = 5;
    const EACH: usize = 3;
    let mut softswitch = gw.softswitch("softswitch_register.xml", USERS * EACH);
    let tls: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let lines: Vec<Vec<String>> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..USERS)
            .map(|i| {
                let cert = &cert;
                s.spawn(move || {
                    let (u, p) = user(i);
                    tls_phone(tls, cert, &u, &p, EACH)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for l in &lines {
        assert_eq!(l[0], format!("{{\"cert_sha256\": \"{sha}\"}}"));
        for (n, line) in l[1..].iter().enumerate() {
            assert_eq!(line, &format!("{{\"register\": {n}, \"status\": 200}}"));
        }
    }
    assert_eq!(softswitch.wait(Duration::from_secs(20)), Some(0));
    assert_eq!(registered_users(&gw.softswitch_log()).len(), USERS);
    assert_eq!(gw.stat("tls_accepted"), USERS as u64);
    assert_eq!(gw.stat("forwarded_digest"), (USERS * EACH) as u64);
    assert_eq!(gw.stat("tls_handshake_failed"), 0);
}

#[test]
fn calls_over_tls_in_both_directions() {
    let certs = Scratch::new("tls-certs-c");
    let (cert, key, _) = certificate(&certs.0, "gw", "127.0.0.1");
    let port = free_port();
    let gw = Gateway::start_at(
        "tls-call",
        2,
        &format!(
            "[auth]\nrealm = \"sipgw.test\"\n{}",
            tls_section(port, &cert, &key)
        ),
        "127.0.0.2",
        "",
    );
    let tls: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (u, p) = user(6);
    // The phone calls over TLS (challenged, then with its digest); the softswitch (sipp, over
    // UDP) answers; the phone's ACK and BYE follow the Record-Route back through sipgw.
    let mut softswitch = gw.softswitch("softswitch_call.xml", 1);
    let lines = tls_phone_call(tls, &cert, &u, &p, 0, Some("caller"));
    assert_eq!(lines[1], "{\"invite\": 200}", "{lines:?}\n{}", gw.log());
    assert!(
        lines[2].starts_with("{\"bye\": 200"),
        "{lines:?}\n{}",
        gw.log()
    );
    assert_eq!(softswitch.wait(Duration::from_secs(10)), Some(0));
    assert_eq!(gw.stat("forwarded_digest"), 1);
    drop(softswitch);
    // The softswitch calls the phone registered over TLS: its INVITE (routed by the
    // REGISTER's Path) comes down the phone's TLS connection, then the ACK and the BYE.
    let mut softswitch = gw.softswitch("softswitch_register_then_call.xml", 1);
    let lines = tls_phone_call(tls, &cert, &u, &p, 1, Some("callee"));
    assert_eq!(lines[1], "{\"register\": 0, \"status\": 200}");
    assert_eq!(
        lines[2],
        "{\"received\": [\"INVITE\", \"ACK\", \"BYE\"]}",
        "{}",
        gw.log()
    );
    assert_eq!(
        softswitch.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        gw.softswitch_log()
    );
    assert_eq!(gw.stat("tls_accepted"), 2);
    assert_eq!(
        gw.stat("proxy_not_our_via") + gw.stat("proxy_unroutable") + gw.stat("stream_unavailable"),
        0,
        "{}",
        gw.log()
    );
}

#[test]
fn the_softswitch_leg_over_tls_and_a_new_certificate_on_sighup() {
    let certs = Scratch::new("tls-certs-b");
    let (cert, key, sha) = certificate(&certs.0, "gw", "127.0.0.1");
    let (ss_cert, ss_key, _) = certificate(&certs.0, "softswitch", "127.0.0.2");
    let port = free_port();
    let ss_port = free_port();
    let ss_log = certs.0.join("softswitch.log");
    let _softswitch = Proc(Some(
        Command::new("python3")
            .arg(script())
            .arg("softswitch")
            .args(["--listen", &format!("127.0.0.2:{ss_port}")])
            .arg("--cert")
            .arg(&ss_cert)
            .arg("--key")
            .arg(&ss_key)
            .arg("--log")
            .arg(&ss_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Python TLS softswitch"),
    ));
    std::thread::sleep(Duration::from_millis(500));
    let gw = Gateway::start_at(
        "tls-upstream",
        2,
        &format!(
            "[auth]\nrealm = \"sipgw.test\"\n{}softswitch_ca = \"{}\"\n",
            tls_section(port, &cert, &key),
            ss_cert.display()
        ),
        &format!("127.0.0.2:{ss_port}"),
        "softswitch_transport = \"tls\"\n",
    );
    let tls: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (u, p) = user(2);
    let lines = tls_phone(tls, &cert, &u, &p, 2);
    assert_eq!(lines[0], format!("{{\"cert_sha256\": \"{sha}\"}}"));
    assert_eq!(
        lines[1..],
        [
            "{\"register\": 0, \"status\": 200}",
            "{\"register\": 1, \"status\": 200}"
        ]
    );
    let log = std::fs::read_to_string(&ss_log).unwrap_or_default();
    assert!(
        log.contains(&format!("registered {u} via=SIP/2.0/TLS 127.0.0.1:{port}")),
        "the softswitch got the REGISTER over TLS, sipgw's TLS port in Via: {log}\n{}",
        gw.log()
    );
    assert!(log.contains(";transport=tls;lr"), "Path names TLS: {log}");
    assert!(gw.stat("stream_connects") >= 1);

    // A renewed certificate: the files are replaced, SIGHUP, new connections get it.
    let (_, _, new_sha) = {
        let (c2, k2, s2) = certificate(&certs.0, "gw-renewed", "127.0.0.1");
        std::fs::copy(&c2, &cert).unwrap();
        std::fs::copy(&k2, &key).unwrap();
        (c2, k2, s2)
    };
    assert_ne!(new_sha, sha);
    gw.proc.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = tls_phone(tls, &cert, &u, &p, 1);
        if lines[0] == format!("{{\"cert_sha256\": \"{new_sha}\"}}") {
            assert_eq!(lines[1], "{\"register\": 0, \"status\": 200}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not taken: {}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A broken key on reload is refused, naming the file; the running certificate stays.
    std::fs::write(&key, "not a key\n").unwrap();
    gw.proc.signal("-HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        gw.log().contains("tls.private_key"),
        "the refused reload names the key: {}",
        gw.log()
    );
    let lines = tls_phone(tls, &cert, &u, &p, 1);
    assert_eq!(lines[0], format!("{{\"cert_sha256\": \"{new_sha}\"}}"));
}
