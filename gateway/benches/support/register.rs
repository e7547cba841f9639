//! The REGISTER the engine benchmark and the `decide` profiling example both send.

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
