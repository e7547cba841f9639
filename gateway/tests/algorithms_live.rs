//! SHA-256 and SHA-512/256 digests end to end: `sipgw run` on loopback offering several
//! algorithms, phones computing their digests with Python's hashlib (independent of sipgw's
//! code) for each algorithm, and sipp — which speaks MD5 only and answers the first challenge
//! alone — registering when MD5 comes first and SHA-256 after it (the Python phone then
//! answers the second challenge). A sipp softswitch stand-in must receive every
//! authenticated REGISTER.
//!
//! Needs python3 and sipp (`./scripts/install-deps`); a missing one fails with that message.

mod support;

use std::process::Command;
use std::time::Duration;

use support::live::Gateway;
use support::*;

fn python_phone(
    gw: &Gateway,
    user: &str,
    password: &str,
    algorithm: &str,
    count: usize,
) -> Vec<serde_json::Value> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/digest/sip_digest.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--gw",
            &gw.sip.to_string(),
            "--user",
            user,
            "--password",
            password,
        ])
        .args(["--algorithm", algorithm, "--count", &count.to_string()])
        .output()
        .expect("python3 (./scripts/install-deps installs it) runs");
    assert!(
        out.status.success(),
        "the Python phone failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn sha_digests_from_an_independent_client_register_and_sipp_needs_md5_first() {
    // Three challenge headers are about twice a phone's first REGISTER: the amplification
    // bound must allow it (docs/configuration.md, auth.algorithms).
    let config = "[auth]\nrealm = \"sipgw.test\"\n\
                  algorithms = [\"SHA-256\", \"SHA-512-256\", \"MD5\"]\n\
                  [limits]\namplification_limit = 2.0\n";
    let gw = Gateway::start("algorithms", 2, config);
    let per_algorithm = 3;
    let algorithms = ["SHA-256", "SHA-512-256", "MD5"];
    let softswitch = gw.softswitch("softswitch_register.xml", algorithms.len() * per_algorithm);
    for (i, alg) in algorithms.iter().enumerate() {
        let (u, p) = user(i);
        let lines = python_phone(&gw, &u, &p, alg, per_algorithm);
        assert_eq!(lines.len(), per_algorithm);
        for l in &lines {
            assert_eq!(l["status"], 200, "{alg}: {l}\n{}", gw.log());
            assert_eq!(
                l["offered"],
                serde_json::json!(["SHA-256", "SHA-512-256", "MD5"]),
                "one challenge per algorithm, in the configured order"
            );
        }
    }
    // sipp answers only the first challenge and refuses any but MD5: with SHA-256 first it
    // cannot register (what docs/configuration.md says about the order).
    let (u, p) = user(10);
    assert_ne!(gw.phone("register.xml", &u, &p, 1, 5), Some(0));
    // Every authenticated REGISTER reached the softswitch, with the identity sipgw asserts.
    let want = algorithms.len() * per_algorithm;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.softswitch_log().matches("registered ").count() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "the softswitch got {} of {want} REGISTERs: {}",
            gw.softswitch_log().matches("registered ").count(),
            gw.softswitch_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(softswitch);
    let registered = registered_users(&gw.softswitch_log());
    for i in 0..algorithms.len() {
        assert!(registered.contains(&user(i).0), "{}", user(i).0);
    }
    // A wrong password computed with SHA-256 is a wrong password; an algorithm that is not
    // offered is not answered by the client.
    let wrong = python_phone(&gw, &user(20).0, "not-the-password", "SHA-256", 1);
    assert_ne!(wrong[0]["status"], 200);
    assert!(gw.stat("wrong_password") >= 1);
    let not_offered = python_phone(&gw, &user(21).0, &user(21).1, "SHA-512-256-sess", 1);
    assert_eq!(not_offered[0]["status"], "not offered");
    assert_eq!(
        gw.stat("forwarded_digest"),
        (algorithms.len() * per_algorithm) as u64
    );
}

#[test]
fn sipp_registers_with_md5_first_and_a_sha_phone_answers_the_second_challenge() {
    let config = "[auth]\nrealm = \"sipgw.test\"\nalgorithms = [\"MD5\", \"SHA-256\"]\n\
                  [limits]\namplification_limit = 2.0\n";
    let gw = Gateway::start("algorithms-md5-first", 1, config);
    let mut softswitch = gw.softswitch("softswitch_register.xml", 5 + 2);
    for i in 0..5 {
        let (u, p) = user(i);
        assert_eq!(
            gw.phone("register.xml", &u, &p, 1, 20),
            Some(0),
            "sipp (MD5) with SHA-256 offered too: {}",
            gw.log()
        );
    }
    let (u, p) = user(7);
    let lines = python_phone(&gw, &u, &p, "SHA-256", 2);
    for l in &lines {
        assert_eq!(l["status"], 200, "{l}");
        assert_eq!(l["offered"], serde_json::json!(["MD5", "SHA-256"]));
    }
    assert_eq!(
        softswitch.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        gw.softswitch_log()
    );
    let registered = registered_users(&gw.softswitch_log());
    assert!((0..5).all(|i| registered.contains(&user(i).0)) && registered.contains(&u));
}

#[test]
fn an_algorithm_the_gateway_does_not_offer_is_refused() {
    let gw = Gateway::start("algorithms-md5", 1, "[auth]\nrealm = \"sipgw.test\"\n");
    let (u, p) = user(1);
    let lines = python_phone(&gw, &u, &p, "SHA-256", 1);
    assert_eq!(lines[0]["status"], "not offered");
    assert_eq!(lines[0]["offered"], serde_json::json!(["MD5"]));
}
