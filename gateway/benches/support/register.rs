//! The REGISTER the engine benchmark and the `decide` profiling example both send, and its
//! Authorization line.

use sipgw::digest::{self, Algorithm, Qop};

/// A sipp-like 12-header REGISTER for alice with an optional credentials line.
pub fn register(call_id: &str, cseq: u32, auth: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:198.18.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bK-{call_id}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@198.18.0.1>;tag=4497SIPpTag001\r\n\
         To: <sip:alice@198.18.0.1>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:alice@198.18.0.2:5060>\r\n\
         {auth}\
         Expires: 3600\r\n\
         User-Agent: bench-phone/1.0\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, NOTIFY\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// The Authorization line of `user` answering `nonce` with `password` (realm `sipgw`, the URI
/// of [`register`]); with `qop`, qop=auth and that nonce count.
pub fn auth_header_of(user: &str, nonce: &str, password: &str, qop: Option<u32>) -> String {
    let ha1 = digest::ha1(user.as_bytes(), b"sipgw", password.as_bytes());
    let uri = "sip:198.18.0.1";
    let (q, nc) = match qop {
        Some(n) => (Qop::Auth, format!("{n:08x}")),
        None => (Qop::None, String::new()),
    };
    let resp = digest::client_response(
        &ha1,
        b"REGISTER",
        uri.as_bytes(),
        nonce.as_bytes(),
        q,
        nc.as_bytes(),
        b"6b8b4567",
        Algorithm::Md5,
        b"",
    );
    let resp = String::from_utf8(resp.to_vec()).unwrap();
    let qop_part = if qop.is_some() {
        format!(",cnonce=\"6b8b4567\",nc={nc},qop=auth")
    } else {
        String::new()
    };
    format!("Authorization: Digest username=\"{user}\",realm=\"sipgw\"{qop_part},uri=\"{uri}\",nonce=\"{nonce}\",response=\"{resp}\",algorithm=MD5\r\n")
}
