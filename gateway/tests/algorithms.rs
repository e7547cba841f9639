//! Digest algorithms (RFC 7616, RFC 8760) through the engine: one challenge header per
//! offered algorithm in the configured order, the client's choice verified, hashes that are
//! not offered refused, HA1s per hash from the credential file, and the amplification bound
//! with several headers.

/// Room for three challenge headers within the default amplification bound (1.0: a reply
/// to a source that has proven nothing is no larger than its request), as a real phone's
/// REGISTER with its User-Agent, Allow, Supported and instance id has.
const PAD: &str = "X-Pad: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n\
                   X-Pad: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n\
                   X-Pad: 0123456789012345678901234567890123456789012345678901234567890123456789\r\n";

mod common;

use common::*;
use sipgw::digest::{Algorithm, Hash};
use sipgw::engine::Verdict;
use sipgw::{Config, CredentialStore};

const PHONE: &str = "198.18.0.2:5060";

fn challenge_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("WWW-Authenticate:") || l.starts_with("Proxy-Authenticate:"))
        .map(str::to_owned)
        .collect()
}

fn forwarded(v: Verdict) -> bool {
    matches!(v, Verdict::Forward(_))
}

#[test]
fn one_header_per_algorithm_in_order_and_each_one_verifies() {
    let mut gw = Gw::new(
        "[auth]\nrealm = \"sipgw\"\nalgorithms = [\"SHA-256\", \"SHA-512-256\", \"MD5\"]\n",
    );
    for (i, alg) in [
        Algorithm::Sha256,
        Algorithm::Sha512_256,
        Algorithm::Md5,
        Algorithm::Sha256Sess,
        Algorithm::Md5Sess,
    ]
    .into_iter()
    .enumerate()
    {
        let call = format!("alg{i}");
        let v = gw.send(PHONE, &request("REGISTER", "alice", &call, 1, PAD));
        assert!(is_challenge(v), "{v:?}");
        let text = gw.reply_text();
        let lines = challenge_lines(&text);
        assert_eq!(lines.len(), 3, "{text}");
        for (line, name) in lines.iter().zip(["SHA-256", "SHA-512-256", "MD5"]) {
            assert!(line.contains(&format!(",algorithm={name},")), "{line}");
            assert!(line.contains("qop=\"auth\""), "{line}");
        }
        let ch = gw.challenge();
        assert!(
            lines.iter().all(|l| l.contains(&ch.nonce)),
            "one nonce for all"
        );
        let auth = authorization_with(&ch, "alice", "secret", "REGISTER", 1, alg);
        let v = gw.send(PHONE, &request("REGISTER", "alice", &call, 2, &auth));
        assert!(forwarded(v), "{alg:?}: {v:?}\n{}", gw.reply_text());
    }
    // A wrong password with SHA-256 is a wrong password (counted like MD5's).
    let v = gw.send(PHONE, &request("REGISTER", "bob", "w1", 1, PAD));
    assert!(is_challenge(v), "{v:?}");
    let ch = gw.challenge();
    let auth = authorization_with(&ch, "bob", "nope", "REGISTER", 1, Algorithm::Sha256);
    let _ = gw.send(PHONE, &request("REGISTER", "bob", "w1", 2, &auth));
    assert_eq!(gw.engine.counters().wrong_password, 1);
}

#[test]
fn a_hash_that_is_not_offered_is_not_evaluated() {
    let mut gw = Gw::new("[auth]\nrealm = \"sipgw\"\nalgorithms = [\"SHA-256\"]\n");
    let v = gw.send(PHONE, &request("REGISTER", "alice", "n1", 1, ""));
    assert!(is_challenge(v));
    let lines = challenge_lines(&gw.reply_text());
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("algorithm=SHA-256"), "{}", lines[0]);
    let ch = gw.challenge();
    // MD5 with the right password: not offered, so not checked (malformed, never a wrong
    // password against the terminal), and nothing is forwarded.
    let auth = authorization_with(&ch, "alice", "secret", "REGISTER", 1, Algorithm::Md5);
    let v = gw.send(PHONE, &request("REGISTER", "alice", "n1", 2, &auth));
    assert!(!forwarded(v), "{v:?}");
    let c = gw.engine.counters();
    assert_eq!((c.malformed_credentials, c.wrong_password), (1, 0));
    let auth = authorization_with(&ch, "alice", "secret", "REGISTER", 2, Algorithm::Sha256);
    let v = gw.send(PHONE, &request("REGISTER", "alice", "n1", 3, &auth));
    assert!(forwarded(v), "{v:?}");
}

#[test]
fn md5_alone_keeps_the_short_challenge() {
    let mut gw = Gw::new("[auth]\nrealm = \"sipgw\"\n");
    let _ = gw.send(PHONE, &request("REGISTER", "alice", "m1", 1, ""));
    let lines = challenge_lines(&gw.reply_text());
    assert_eq!(lines.len(), 1);
    assert!(!lines[0].contains("algorithm"), "{}", lines[0]);
}

#[test]
fn several_headers_are_cut_to_what_the_amplification_bound_allows() {
    let config =
        "[auth]\nrealm = \"sipgw\"\nalgorithms = [\"SHA-256\", \"SHA-512-256\", \"MD5\"]\n";
    let mut gw = Gw::new(config);
    // A bare request: no room for all three; the first ones, in order, that fit.
    let small = request("REGISTER", "alice", "a1", 1, "");
    let v = gw.send(PHONE, &small);
    assert!(is_challenge(v), "{v:?}");
    let lines = challenge_lines(&gw.reply_text());
    assert!((1..3).contains(&lines.len()), "{}", gw.reply_text());
    assert!(lines[0].contains("algorithm=SHA-256"));
    assert!(gw.reply_bytes().len() <= small.len(), "within the bound");
    assert_eq!(gw.engine.counters().amplification_dropped, 0);
    // Padded, the request leaves room for all three.
    let _ = gw.send(PHONE, &request("REGISTER", "alice", "a2", 1, PAD));
    assert_eq!(challenge_lines(&gw.reply_text()).len(), 3);
}

#[test]
fn ha1s_per_hash_come_from_the_credential_file() {
    let realm = "sipgw";
    let sha = sipgw::digest::ha1_with(Hash::Sha256, b"carol", realm.as_bytes(), b"pw").hex();
    let md5 = sipgw::digest::ha1_with(Hash::Md5, b"carol", realm.as_bytes(), b"pw").hex();
    let creds = format!(
        "[[account]]\nname = \"carol\"\nha1 = \"{}\"\nha1_sha256 = \"{}\"\n",
        md5.as_str(),
        sha.as_str()
    );
    let config = "[auth]\nrealm = \"sipgw\"\nalgorithms = [\"SHA-256\", \"MD5\"]\n";
    let mut gw = Gw::with_credentials(config, &creds);
    for (i, alg) in [Algorithm::Sha256, Algorithm::Md5].into_iter().enumerate() {
        let call = format!("c{i}");
        let _ = gw.send(PHONE, &request("REGISTER", "carol", &call, 1, PAD));
        let ch = gw.challenge();
        let auth = authorization_with(&ch, "carol", "pw", "REGISTER", 1, alg);
        let v = gw.send(PHONE, &request("REGISTER", "carol", &call, 2, &auth));
        assert!(forwarded(v), "{alg:?}: {v:?}");
    }
    // An HA1 for an offered hash missing: refused at load, naming the key.
    let only_md5 = format!(
        "[[account]]\nname = \"carol\"\nha1 = \"{}\"\n",
        md5.as_str()
    );
    let hashes = [Hash::Sha256, Hash::Md5];
    let e = CredentialStore::parse_for(&only_md5, "users.toml", realm, &hashes)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("users.toml: account #1 (\"carol\"): ha1_sha256: required")
            && e.contains("SHA-256"),
        "{e}"
    );
    let bad = format!(
        "[[account]]\nname = \"carol\"\nha1_sha256 = \"{}\"\n",
        md5.as_str()
    );
    let e = CredentialStore::parse_for(&bad, "users.toml", realm, &[Hash::Sha256])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ha1_sha256: must be 64 hexadecimal digits"),
        "{e}"
    );
    let both = format!(
        "[[account]]\nname = \"carol\"\npassword = \"x\"\nha1_sha256 = \"{}\"\n",
        sha.as_str()
    );
    let e = CredentialStore::parse_for(&both, "users.toml", realm, &[Hash::Sha256])
        .unwrap_err()
        .to_string();
    assert!(e.contains("not both"), "{e}");
}

#[test]
fn the_algorithm_list_is_checked() {
    let err = |t: &str| {
        Config::parse(t, "sipgw.toml", None)
            .unwrap_err()
            .to_string()
    };
    let e = err("[auth]\nalgorithms = [\"SHA-1\"]\n");
    assert!(
        e.contains("auth.algorithms = \"SHA-1\"") && e.contains("SHA-512-256-sess"),
        "{e}"
    );
    let e = err("[auth]\nalgorithms = [\"MD5\", \"md5\"]\n");
    assert!(e.contains("twice"), "{e}");
    let e = err("[auth]\nalgorithms = []\n");
    assert!(e.contains("at least one"), "{e}");
    let e = err("[auth]\nqop = \"none\"\nalgorithms = [\"SHA-256-sess\"]\n");
    assert!(e.contains("qop"), "{e}");
    let c = Config::parse(
        "[auth]\nalgorithms = [\"sha-256\", \"MD5-sess\", \"MD5\"]\n",
        "x",
        None,
    )
    .unwrap();
    assert_eq!(
        c.auth.algorithms,
        [Algorithm::Sha256, Algorithm::Md5Sess, Algorithm::Md5]
    );
    assert_eq!(c.auth.hashes(), [Hash::Sha256, Hash::Md5]);
    let d = Config::parse("", "x", None).unwrap();
    assert_eq!(d.auth.algorithms, [Algorithm::Md5]);
}
