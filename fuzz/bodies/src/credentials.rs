//! `credentials_parse`: digest credentials (`Authorization` / `Proxy-Authorization` values).

use sipgw::digest::{self, Credentials, Job, Param, Qop, Verifier};

use crate::within;

/// Parses `data` as the value of a credentials header; on success reads every parameter
/// through every accessor and checks that verification agrees with the expected response,
/// whichever way it is computed.
pub fn credentials_parse(data: &[u8]) {
    check(data);
}

/// The body of [`credentials_parse`], also run by `sip_parse` on credentials headers.
pub(crate) fn check(value: &[u8]) {
    let c = match Credentials::parse(value) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let _ = format!("{c:?}");
    for p in [c.username, c.realm, c.nonce, c.uri]
        .into_iter()
        .chain(c.cnonce)
        .chain(c.opaque)
    {
        param(value, p);
    }
    assert_eq!(c.nc.is_some(), c.qop != Qop::None);
    assert_eq!(c.cnonce.is_some(), c.qop != Qop::None);
    assert_eq!(c.nc_raw.is_empty(), c.qop == Qop::None);
    assert_eq!(c.qop_raw.is_empty(), c.qop == Qop::None);
    if let Some(nc) = c.nc {
        assert_eq!(c.nc_raw.len(), 8);
        let text = std::str::from_utf8(c.nc_raw).expect("hex digits");
        assert_eq!(u32::from_str_radix(text, 16).ok(), Some(nc));
    }
    let _ = (c.algorithm.as_str(), c.qop.as_str());

    // Verification: the plain function, the caching verifier (twice: the second time from
    // its cache) and the batch all agree with the expected response.
    let ha1 = digest::ha1_with(c.algorithm.hash(), b"alice", b"sipgw", b"secret");
    for body in [&b""[..], value] {
        let job = Job {
            ha1: ha1.as_bytes(),
            method: b"REGISTER",
            credentials: &c,
            body,
        };
        let want = digest::expected_response(&job) == c.response;
        assert_eq!(digest::verify(&job), want);
        let mut v = Verifier::default();
        assert_eq!(v.verify(&job), want);
        assert_eq!(v.verify(&job), want);
        let jobs = [job, job, job];
        let mut results = [!want; 3];
        assert_eq!(v.verify_batch(&jobs, &mut results), 3);
        assert_eq!(results, [want; 3]);
        let mut results = [!want; 3];
        assert_eq!(digest::verify_batch(&jobs, &mut results), 3);
        assert_eq!(results, [want; 3]);
    }
}

/// One parameter: borrowed from the value, its chunks, unescaped length, unescaping and
/// comparison agree.
fn param(value: &[u8], p: Param<'_>) {
    assert!(within(value, p.raw()));
    let chunks: Vec<u8> = p.chunks().flatten().copied().collect();
    for chunk in p.chunks() {
        assert!(within(value, chunk));
    }
    assert_eq!(p.unescaped_len(), chunks.len());
    if !p.has_escapes() {
        assert_eq!(chunks, p.raw());
    }
    let mut buf = vec![0u8; chunks.len()];
    assert_eq!(p.unescape_into(&mut buf), Some(&chunks[..]));
    if !chunks.is_empty() {
        let mut small = vec![0u8; chunks.len() - 1];
        assert_eq!(p.unescape_into(&mut small), None);
    }
    assert!(p.eq_unescaped(&chunks));
    let mut longer = chunks.clone();
    longer.push(b'x');
    assert!(!p.eq_unescaped(&longer));
}
