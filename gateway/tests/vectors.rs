//! Digest vectors from real clients: requests sipp 3.6.1 sent (captured byte for byte, see
//! `tests/vectors/README.md`), and the RFC 2617 / RFC 7616 worked examples through the public
//! API.

use sipgw::digest::{self, Credentials, Job, Qop};
use sipgw::sip::{HeaderName, Message, Method};

fn vector(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check(file: &str, header: HeaderName, method: Method, password: &str, qop: Qop) {
    let bytes = vector(file);
    let msg = Message::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(msg.method(), Some(method));
    let value = msg
        .header(header)
        .unwrap_or_else(|| panic!("{file}: no {header:?}"));
    let creds = Credentials::parse(value).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(creds.qop, qop, "{file}");
    assert!(creds.username.eq_unescaped(b"alice"));
    let job = |ha1| {
        digest::verify(&Job {
            ha1,
            method: msg.method_bytes().unwrap(),
            credentials: &creds,
            body: msg.body(),
        })
    };
    let right = digest::ha1(b"alice", b"sipgw", password.as_bytes());
    let wrong = digest::ha1(b"alice", b"sipgw", b"Secret");
    assert!(
        job(&right),
        "{file}: sipp's digest verifies with the right password"
    );
    assert!(!job(&wrong), "{file}: and not with a wrong one");
}

#[test]
fn sipp_register_with_qop_auth() {
    check(
        "sipp-register-auth.sip",
        HeaderName::Authorization,
        Method::Register,
        "secret",
        Qop::Auth,
    );
}

#[test]
fn sipp_invite_proxy_authorization_without_qop() {
    check(
        "sipp-invite-proxy-auth.sip",
        HeaderName::ProxyAuthorization,
        Method::Invite,
        "secret",
        Qop::None,
    );
}

#[test]
fn sipp_requests_without_credentials_parse() {
    for f in ["sipp-register-noauth.sip", "sipp-invite-noauth.sip"] {
        let bytes = vector(f);
        let msg = Message::parse(&bytes).unwrap();
        assert!(msg.header(HeaderName::Authorization).is_none());
        assert_eq!(msg.count(HeaderName::Via), 1);
        assert_eq!(msg.body(), b"");
    }
}

#[test]
fn rfc2617_section_3_5() {
    let value = b"Digest username=\"Mufasa\",\r\n                 realm=\"testrealm@host.com\",\r\n                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n                 uri=\"/dir/index.html\",\r\n                 qop=auth,\r\n                 nc=00000001,\r\n                 cnonce=\"0a4f113b\",\r\n                 response=\"6629fae49393a05397450978507c4ef1\",\r\n                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
    let creds = Credentials::parse(value).unwrap();
    let ha1 = digest::ha1(b"Mufasa", b"testrealm@host.com", b"Circle Of Life");
    assert_eq!(&digest::hex(&ha1), b"939e7578ed9e3c518a452acee763bce9");
    let job = Job {
        ha1: &ha1,
        method: b"GET",
        credentials: &creds,
        body: b"",
    };
    assert_eq!(
        &digest::expected_response(&job).hex(),
        b"6629fae49393a05397450978507c4ef1"
    );
    assert!(digest::verify(&job));
}

#[test]
fn rfc7616_section_3_9_1_md5() {
    let value = b"Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, response=\"8ca523f5e9506fed4657c9700eebdbec\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    let creds = Credentials::parse(value).unwrap();
    let ha1 = digest::ha1(b"Mufasa", b"http-auth@example.org", b"Circle of Life");
    let job = Job {
        ha1: &ha1,
        method: b"GET",
        credentials: &creds,
        body: b"",
    };
    assert!(digest::verify(&job));
    let mut results = [false; 2];
    let wrong_ha1 = digest::ha1(b"Mufasa", b"http-auth@example.org", b"circle of life");
    let jobs = [
        job,
        Job {
            ha1: &wrong_ha1,
            ..job
        },
    ];
    assert_eq!(digest::verify_batch(&jobs, &mut results), 2);
    assert_eq!(results, [true, false]);
}
