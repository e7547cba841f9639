//! Builds the seed inputs of `fuzz/corpus/<target>/` from the repository's vectors:
//! `cargo run -p sipgw-fuzz --example seed` (from anywhere in the repository).
//!
//! Sources: the captured sipp datagrams (`gateway/tests/vectors/*.sip`), every message of the
//! sipp scenarios (`gateway/tests/sipp/*.xml`, `gateway/tests/vectors/*.xml`, with sipp's
//! keywords substituted), the SIP torture messages (`fuzz/seeds/rfc4475/`, RFC 4475;
//! `fuzz/seeds/rfc5118/`, IPv6 cases after RFC 5118), the example configurations
//! (`deploy/examples/*.toml`, the TOML blocks of `docs/configuration.md`), and Ethernet frames
//! built around the messages (IPv4, one or two VLAN tags, IPv4 options, IPv6).
//! Seeds are written as `seed-<name>`; files of other names (minimised finds) are kept.

use std::fs;
use std::path::{Path, PathBuf};

use etherparse::{Ipv4Header, Ipv4Options, PacketBuilder, VlanId};
use sipgw_fuzz::{engine_seed, proxy_seed, xdp_seed};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .expect("a name")
        .to_string_lossy()
        .into_owned()
}

/// The value sipp would put for a keyword.
fn keyword(k: &str) -> &'static str {
    match k {
        "remote_ip" => "198.18.0.1",
        "remote_port" => "5060",
        "local_ip" => "198.18.0.2",
        "local_port" => "5062",
        "media_ip" => "198.18.0.2",
        "media_port" => "6000",
        "local_ip_type" | "media_ip_type" => "4",
        "transport" => "UDP",
        "branch" => "z9hG4bK-1-0",
        "call_id" => "1-4242@198.18.0.2",
        "call_number" => "1",
        "cseq" => "1",
        "pid" => "4242",
        "service" => "alice",
        "peer_tag_param" => ";tag=uas1",
        "next_url" => "sip:alice@198.18.0.2:5062",
        "routes" => "Route: <sip:198.18.0.1;lr>",
        "authentication" => {
            "Proxy-Authorization: Digest username=\"alice\",realm=\"sipgw\",\
             nonce=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAA\",uri=\"sip:198.18.0.1:5060\",\
             response=\"00112233445566778899aabbccddeeff\",algorithm=MD5"
        }
        "last_Via:" => "Via: SIP/2.0/UDP 198.18.0.2:5062;branch=z9hG4bK-1-0;received=198.18.0.2",
        "last_From:" => "From: <sip:alice@198.18.0.1>;tag=4242SIPpTag001",
        "last_To:" => "To: <sip:alice@198.18.0.1>;tag=uas1",
        "last_Call-ID:" => "Call-ID: 1-4242@198.18.0.2",
        "last_CSeq:" => "CSeq: 1 INVITE",
        "last_Record-Route:" => "Record-Route: <sip:sgw1@198.18.0.1;lr>",
        _ => "x",
    }
}

/// The messages of a sipp scenario, keywords substituted, as sipp sends them (lines trimmed,
/// CRLF, `[len]` the body length).
fn sipp_messages(xml: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("<![CDATA[") {
        let body = &rest[at + 9..];
        let Some(end) = body.find("]]>") else { break };
        let text = &body[..end];
        rest = &body[end..];
        let mut lines: Vec<String> = Vec::new();
        for line in text.trim().lines() {
            let line = line.trim();
            let mut s = String::new();
            let mut l = line;
            while let Some(open) = l.find('[') {
                s.push_str(&l[..open]);
                let Some(close) = l[open..].find(']') else {
                    s.push_str(&l[open..]);
                    l = "";
                    break;
                };
                let k = &l[open + 1..open + close];
                if k == "len" {
                    s.push_str("\u{0}LEN\u{0}");
                } else {
                    s.push_str(keyword(k));
                }
                l = &l[open + close + 1..];
            }
            s.push_str(l);
            lines.push(s);
        }
        let split = lines
            .iter()
            .position(|l| l.is_empty())
            .unwrap_or(lines.len());
        let head = lines[..split].join("\r\n");
        let body = if split < lines.len() {
            let b = lines[split + 1..].join("\r\n");
            if b.is_empty() {
                b
            } else {
                b + "\r\n"
            }
        } else {
            String::new()
        };
        let head = head.replace("\u{0}LEN\u{0}", &body.len().to_string());
        out.push(format!("{head}\r\n\r\n{body}").into_bytes());
    }
    out
}

/// The ```toml blocks of a Markdown file.
fn toml_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = md;
    while let Some(at) = rest.find("```toml\n") {
        let body = &rest[at + 8..];
        let Some(end) = body.find("```") else { break };
        out.push(body[..end].to_owned());
        rest = &body[end..];
    }
    out
}

/// The values of the credentials headers of a message.
fn credentials(msg: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(msg);
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim().to_ascii_lowercase();
            (name == "authorization" || name == "proxy-authorization")
                .then(|| value.trim().as_bytes().to_vec())
        })
        .collect()
}

/// Ethernet frames carrying `payload` (UDP to 5060).
fn frames(payload: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    const PHONE: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const GW: [u8; 6] = [2, 0, 0, 0, 0, 1];
    let v6a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let v6b = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut out = Vec::new();
    let mut w = |name, b: etherparse::PacketBuilderStep<etherparse::UdpHeader>| {
        let mut f = Vec::new();
        b.write(&mut f, payload).expect("a frame");
        out.push((name, f));
    };
    let vlan = VlanId::try_new(7).expect("vlan");
    w(
        "v4",
        PacketBuilder::ethernet2(PHONE, GW)
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .udp(5062, 5060),
    );
    w(
        "v4-vlan",
        PacketBuilder::ethernet2(PHONE, GW)
            .single_vlan(vlan)
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .udp(5062, 5060),
    );
    w(
        "v4-qinq",
        PacketBuilder::ethernet2(PHONE, GW)
            .double_vlan(vlan, VlanId::try_new(9).expect("vlan"))
            .ipv4([198, 18, 0, 2], [198, 18, 0, 1], 64)
            .udp(5062, 5060),
    );
    w(
        "v6",
        PacketBuilder::ethernet2(PHONE, GW)
            .ipv6(v6a, v6b, 64)
            .udp(5062, 5060),
    );
    let mut opt = Ipv4Header::new(
        0,
        64,
        etherparse::IpNumber::UDP,
        [198, 18, 0, 2],
        [198, 18, 0, 1],
    )
    .expect("header");
    opt.options = Ipv4Options::try_from(&[1u8, 1, 1, 0][..]).expect("options");
    w(
        "v4-options",
        PacketBuilder::ethernet2(PHONE, GW)
            .ip(etherparse::IpHeaders::Ipv4(opt, Default::default()))
            .udp(5062, 5060),
    );
    out
}

/// RFC 5118-style IPv6 messages (IPv6 references in the Request-URI, Via, received, SDP).
const RFC5118: &[(&str, &str)] = &[
    (
        "ipv6-register",
        "REGISTER sip:[2001:db8::10] SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: sip:user@example.com;tag=81x2\r\nVia: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\r\nCall-ID: SSG9559905523997077@hlau_4100\r\nMax-Forwards: 70\r\nContact: \"Caller\" <sip:caller@[2001:db8::1]>\r\nCSeq: 98176 REGISTER\r\nContent-Length: 0\r\n\r\n",
    ),
    (
        "ipv6-no-brackets",
        "REGISTER sip:2001:db8::10 SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: sip:user@example.com;tag=81x2\r\nVia: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\r\nCall-ID: SSG9559905523997077@hlau_4100\r\nMax-Forwards: 70\r\nContact: \"Caller\" <sip:caller@[2001:db8::1]>\r\nCSeq: 98176 REGISTER\r\nContent-Length: 0\r\n\r\n",
    ),
    (
        "ipv6-port-ambiguous",
        "REGISTER sip:[2001:db8::10:5070] SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: sip:user@example.com;tag=81x2\r\nVia: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\r\nCall-ID: SSG9559905523997077@hlau_4100\r\nMax-Forwards: 70\r\nContact: \"Caller\" <sip:caller@[2001:db8::1]>\r\nCSeq: 98176 REGISTER\r\nContent-Length: 0\r\n\r\n",
    ),
    (
        "ipv6-port",
        "REGISTER sip:[2001:db8::10]:5070 SIP/2.0\r\nTo: sip:user@example.com\r\nFrom: sip:user@example.com;tag=81x2\r\nVia: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\r\nCall-ID: SSG9559905523997077@hlau_4100\r\nMax-Forwards: 70\r\nContact: \"Caller\" <sip:caller@[2001:db8::1]>\r\nCSeq: 98176 REGISTER\r\nContent-Length: 0\r\n\r\n",
    ),
    (
        "ipv6-via-received",
        "BYE sip:[2001:db8::10] SIP/2.0\r\nTo: sip:user@example.com;tag=bd76ya\r\nFrom: sip:user@example.com;tag=81x2\r\nVia: SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111\r\nVia: SIP/2.0/UDP 192.0.2.1;received=2001:db8::9:255;branch=z9hG4bKjhja8781hjuaij65144\r\nCall-ID: SSG9559905523997077@hlau_4100\r\nMax-Forwards: 70\r\nCSeq: 321 BYE\r\nContent-Length: 0\r\n\r\n",
    ),
    (
        "ipv6-mapped-sdp",
        "INVITE sip:user@[::ffff:192.0.2.128] SIP/2.0\r\nTo: sip:user@[::ffff:192.0.2.128]\r\nFrom: sip:user@example.com;tag=268923ifb\r\nVia: SIP/2.0/UDP [::ffff:192.0.2.1];branch=z9hG4bKas3\r\nv: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKdual\r\nCall-ID: SSG95523997077@hlau_4100\r\nMax-Forwards: 70\r\nContact: \"Caller\" <sip:caller@[::ffff:192.0.2.1]>\r\nCSeq: 8912 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 183\r\n\r\nv=0\r\no=assistant 971731711378798081 0 IN IP6 ::ffff:192.0.2.1\r\ns=Live video feed\r\nc=IN IP6 ::ffff:192.0.2.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=video 3400 RTP/AVP\r\n",
    ),
];

fn main() {
    let root = root();
    let corpus = root.join("fuzz/corpus");
    let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();

    // SIP messages: name and bytes.
    let mut sip: Vec<(String, Vec<u8>)> = Vec::new();
    for f in files(&root.join("gateway/tests/vectors"), "sip") {
        sip.push((
            format!("vector-{}", stem(&f)),
            fs::read(&f).expect("vector"),
        ));
    }
    for dir in ["gateway/tests/sipp", "gateway/tests/vectors"] {
        for f in files(&root.join(dir), "xml") {
            let xml = fs::read_to_string(&f).expect("scenario");
            for (i, m) in sipp_messages(&xml).into_iter().enumerate() {
                sip.push((format!("sipp-{}-{i}", stem(&f)), m));
            }
        }
    }
    for f in files(&root.join("fuzz/seeds/rfc4475"), "dat") {
        sip.push((
            format!("rfc4475-{}", stem(&f)),
            fs::read(&f).expect("torture"),
        ));
    }
    for (name, m) in RFC5118 {
        sip.push((format!("rfc5118-{name}"), m.as_bytes().to_vec()));
    }

    for (name, m) in &sip {
        seeds.push(("sip_parse", name.clone(), m.clone()));
        for (i, c) in credentials(m).into_iter().enumerate() {
            seeds.push(("credentials_parse", format!("{name}-{i}"), c));
        }
        seeds.push(("engine", name.clone(), engine_seed(0, m)));
        for (flags, dir) in [(0u8, "up"), (4, "down"), (8, "resp")] {
            seeds.push(("proxy", format!("{name}-{dir}"), proxy_seed(flags, 0, 1, m)));
        }
        if m.len() < 1400 {
            for (kind, f) in frames(m) {
                seeds.push(("xdp_frame", format!("{name}-{kind}"), xdp_seed(0x41, &f)));
            }
        }
    }
    // The other proxy variants and peers, and the other engine configurations, on the
    // captured vectors.
    for (name, m) in sip.iter().filter(|(n, _)| n.starts_with("vector-")) {
        for v in 1..6u8 {
            seeds.push(("engine", format!("{name}-variant{v}"), engine_seed(v, m)));
        }
        for (flags, peer) in [(1u8, 2u8), (2, 3), (5, 4), (6, 2)] {
            seeds.push((
                "proxy",
                format!("{name}-{flags}-{peer}"),
                proxy_seed(flags, peer, 3, m),
            ));
        }
    }
    // Engine sequences: challenge, answer (right), retransmission, time, wrong answers.
    for v in 0..6u8 {
        // op 0: template from peer p (method, user, call, cseq, creds choice, flags, k, mutation), cap.
        let t = |p: u8, method: u8, user: u8, cseq: u8, creds: u8| {
            vec![0, p, method, user, 0, cseq, creds, 0, 0, 0, 0xff]
        };
        let mut s = vec![v];
        s.extend(t(0, 0, 0, 1, 0));
        s.extend(t(0, 0, 0, 2, 1));
        s.extend([4, 0, 0]); // retransmission
        s.extend(t(6, 1, 1, 1, 0));
        s.extend(t(6, 1, 1, 2, 1));
        s.extend([6, 5, 1]); // 31 s later, timers
        s.extend(t(0, 0, 0, 3, 1)); // stale
        seeds.push(("engine", format!("sequence-login-{v}"), s));
        let mut s = vec![v];
        s.extend(t(2, 1, 0, 1, 0));
        for c in 2..12u8 {
            s.extend(t(2, 1, 0, c, 2));
        }
        s.extend([6, 7, 1]);
        s.extend(t(2, 1, 0, 20, 0));
        seeds.push(("engine", format!("sequence-wrong-{v}"), s));
        let mut s = vec![v, 5, 4];
        for p in [0u8, 6, 9, 3] {
            s.push(p);
            s.push(2);
            s.extend(&t(p, 0, 0, 1, 0)[2..]);
        }
        seeds.push(("engine", format!("sequence-batch-{v}"), s));
    }

    // Credentials headers beyond those of the messages.
    for (i, c) in [
        &b"Digest username=\"alice\", realm=\"sipgw\", nonce=\"n\", uri=\"sip:a\", response=\"00112233445566778899aabbccddeeff\", qop=auth, nc=00000001, cnonce=\"c\", algorithm=MD5-sess, opaque=\"o\""[..],
        b"Digest username=\"a\\\"l\\\\i\", realm=\"sip\\gw\", nonce=\"n\", uri=\"sip:a\", response=00112233445566778899AABBCCDDEEFF",
        b"digest\r\n username=alice,realm=sipgw,nonce=n,uri=\"sip:a\",response=\"00112233445566778899aabbccddeeff\",,qop=auth-int,nc=ffffffff,cnonce=x",
        b"Basic YWxpY2U6c2VjcmV0",
    ]
    .iter()
    .enumerate()
    {
        seeds.push(("credentials_parse", format!("extra-{i}"), c.to_vec()));
    }

    // Configurations and credential files.
    for f in files(&root.join("deploy/examples"), "toml") {
        seeds.push(("config_parse", stem(&f), fs::read(&f).expect("example")));
    }
    let md = fs::read_to_string(root.join("docs/configuration.md")).expect("docs");
    for (i, b) in toml_blocks(&md).into_iter().enumerate() {
        seeds.push((
            "config_parse",
            format!("configuration-md-{i}"),
            b.into_bytes(),
        ));
    }
    seeds.push((
        "config_parse",
        "vos3000-aliases".into(),
        b"[auth]\nSS_AUTHENTICATION_MAX_RETRY = 6\nSS_AUTHCHALLENGEMODE = 3\nSS_REPLY_UNAUTHORIZED = \"off\"\n[nonce]\nsecret = \"0000000000000000000000000000000000000000000000000000000000000000\"\nprevious_secret = \"1111111111111111111111111111111111111111111111111111111111111111\"\n[limits]\namplification_limit = 2.5\n".to_vec(),
    ));

    let mut written = 0;
    for (target, name, bytes) in &seeds {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed");
        written += 1;
    }
    println!("{written} seeds written under {}", corpus.display());
}
