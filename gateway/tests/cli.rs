//! The `sipgw` command's success and error paths (the live ones are in `gateway_live.rs`).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn sipgw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipgw"))
        .args(args)
        .output()
        .expect("run sipgw")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/sipgw.toml")
}

fn scratch(name: &str, config: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sipgw-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("users.toml"),
        "[[account]]\nname = \"1001\"\npassword = \"x\"\n",
    )
    .unwrap();
    let path = dir.join("sipgw.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn check_accepts_the_shipped_example() {
    let o = sipgw(&["check", "--config", example().to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains(": OK"), "{out}");
    assert!(out.contains("accounts         5"), "{out}");
    assert!(out.contains("softswitch       127.0.0.1:5070"), "{out}");
    assert!(
        out.contains("backend          udp (kernel sockets, no root needed)"),
        "{out}"
    );
}

#[test]
fn check_prints_the_algorithms_and_warns_when_the_bound_cuts_them() {
    let base = "credentials = \"users.toml\"\n[gateway]\nsoftswitch = \"127.0.0.1:5070\"\n\
                [auth]\nalgorithms = [\"SHA-256\", \"MD5\"]\n";
    let path = scratch("algs", base);
    let o = sipgw(&["check", "--config", path.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("algorithms       SHA-256, MD5 (one challenge"),
        "{out}"
    );
    assert!(
        out.contains("warning          2 challenge headers"),
        "{out}"
    );
    let path = scratch(
        "algs2",
        &format!("{base}[limits]\namplification_limit = 2.0\n"),
    );
    let (out, _) = text(&sipgw(&["check", "--config", path.to_str().unwrap()]));
    assert!(!out.contains("warning"), "{out}");
    // A password account gets every HA1 it needs; a given MD5 HA1 alone is refused, naming
    // the account and the key.
    let dir = path.parent().unwrap();
    std::fs::write(
        dir.join("users.toml"),
        "[[account]]\nname = \"1001\"\nha1 = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .unwrap();
    let o = sipgw(&["check", "--config", path.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("account #1 (\"1001\"): ha1_sha256: required"),
        "{err}"
    );
}

#[test]
fn check_names_the_bad_key_and_value() {
    let path = scratch(
        "badkey",
        "credentials = \"users.toml\"\n[gateway]\nsoftswitch = \"127.0.0.1:5070\"\n[auth]\nmax_retry = 1000\n",
    );
    let o = sipgw(&["check", "--config", path.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("auth.max_retry = 1000 is out of range (allowed: 0-999"),
        "{err}"
    );
    assert!(err.contains("sipgw.toml"), "{err}");
}

#[test]
fn run_requires_credentials_and_a_softswitch() {
    let path = scratch("nocreds", "[gateway]\nsoftswitch = \"127.0.0.1:5070\"\n");
    let (_, err) = text(&sipgw(&["run", "--config", path.to_str().unwrap()]));
    assert!(err.contains("`credentials` is not set"), "{err}");
    let path = scratch("noss", "credentials = \"users.toml\"\n");
    let o = sipgw(&["run", "--config", path.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("gateway.softswitch is not set"), "{err}");
}

#[test]
fn run_says_which_address_it_cannot_bind() {
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let path = scratch(
        "busy",
        &format!(
            "credentials = \"users.toml\"\n[gateway]\nlisten = \"{addr}\"\nsoftswitch = \"127.0.0.1:5070\"\nworkers = 1\n"
        ),
    );
    let o = sipgw(&["run", "--config", path.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains(&format!("cannot bind UDP {addr}")), "{err}");
}

#[test]
fn stats_errors_say_what_to_do() {
    let path = scratch(
        "nometrics",
        "credentials = \"users.toml\"\n[gateway]\nsoftswitch = \"127.0.0.1:5070\"\n",
    );
    let (_, err) = text(&sipgw(&["stats", "--config", path.to_str().unwrap()]));
    assert!(err.contains("gateway.metrics is not set"), "{err}");
    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = sipgw(&["stats", "--metrics", &format!("127.0.0.1:{port}")]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains(&format!(
            "cannot read metrics from http://127.0.0.1:{port}/metrics"
        )),
        "{err}"
    );
    let (_, err) = text(&sipgw(&["stats"]));
    assert!(
        err.contains("--config FILE") && err.contains("--metrics ADDR"),
        "{err}"
    );
}

#[test]
fn a_bad_log_filter_is_refused() {
    let o = sipgw(&[
        "--log",
        "sipgw=loud",
        "check",
        "--config",
        example().to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("bad log filter"), "{err}");
}

#[test]
fn help_lists_the_commands() {
    let (out, _) = text(&sipgw(&["--help"]));
    for cmd in ["run", "check", "stats"] {
        assert!(out.contains(cmd), "{out}");
    }
    let (out, _) = text(&sipgw(&["run", "--help"]));
    assert!(out.contains("SIGHUP"), "{out}");
}
