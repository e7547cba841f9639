//! Header values: the grammar of what stands after a header's colon (RFC 3261 §25.1), zero-copy.
//!
//! Layer: wire parsing, sans-IO, below everything that reads a header value (the validator,
//! the engine, the proxy). Lists ([`split_list`], [`has_empty_list_element`]), name-addr and
//! addr-spec ([`name_addr_uri`]), SIP URIs ([`SipUri`], [`sip_uri_split`], [`uri_user`]),
//! parameters ([`header_param`], [`Params`], [`split_param`], [`uri_param`]), Via
//! ([`Via`], [`parse_via_checked`]), `CSeq` ([`cseq`]), IP literals and ports.
//!
//! # No-panic contract
//!
//! Every function accepts any byte slice and returns `None` (or an error) rather than panic;
//! slices are taken with `get`; every slice handed out borrows from the input.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv6Addr};

use memchr::memchr;

use super::chars::{is_token, is_token_char};
use super::num::parse_u32;
use super::swar::{eq_mask, find_short, letters_word, word_or_tail, ONES};

pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn skip_lws(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(|&b| is_lws(b)) {
        i += 1;
    }
    i
}

/// Trims linear white space (SP, HT, CR, LF) from both ends.
#[inline]
pub fn trim_lws(s: &[u8]) -> &[u8] {
    if let (Some(&first), Some(&last)) = (s.first(), s.last()) {
        if !is_lws(first) && !is_lws(last) {
            return s;
        }
    }
    let end = s.iter().rposition(|&b| !is_lws(b)).map_or(0, |i| i + 1);
    let start = s.iter().position(|&b| !is_lws(b)).unwrap_or(end);
    s.get(start..end).unwrap_or(&[])
}

pub(crate) fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn non_empty(s: &[u8]) -> Option<&[u8]> {
    if s.is_empty() {
        None
    } else {
        Some(s)
    }
}

/// Walks a header value yielding `(index, byte)` for the bytes that are at
/// top level: outside quoted strings (with `\` quoted-pairs) and, if
/// `angles` is set, outside `<...>`. An opening `<` is itself yielded; the
/// bytes up to and including the matching `>` are not.
struct TopLevel<'a> {
    s: &'a [u8],
    i: usize,
    angles: bool,
    in_quote: bool,
    in_angle: bool,
    saw_quote: bool,
}

impl<'a> TopLevel<'a> {
    fn new(s: &'a [u8], angles: bool) -> Self {
        TopLevel {
            s,
            i: 0,
            angles,
            in_quote: false,
            in_angle: false,
            saw_quote: false,
        }
    }
}

impl Iterator for TopLevel<'_> {
    type Item = (usize, u8);

    fn next(&mut self) -> Option<(usize, u8)> {
        while let Some(&b) = self.s.get(self.i) {
            let i = self.i;
            self.i += 1;
            if self.in_quote {
                if b == b'\\' {
                    self.i += 1;
                } else if b == b'"' {
                    self.in_quote = false;
                }
            } else if self.in_angle {
                if b == b'>' {
                    self.in_angle = false;
                }
            } else if b == b'"' {
                self.in_quote = true;
                self.saw_quote = true;
            } else {
                if b == b'<' && self.angles {
                    self.in_angle = true;
                }
                return Some((i, b));
            }
        }
        None
    }
}

/// Iterator over the elements of a comma-separated header value; see
/// [`split_list`].
#[derive(Debug, Clone)]
pub struct ListItems<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let s = self.rest?;
            // Most values have no comma at all: one element, found without the byte-by-byte
            // quote and bracket scan.
            if memchr(b',', s).is_none() {
                self.rest = None;
                return non_empty(trim_lws(s));
            }
            let comma = TopLevel::new(s, true)
                .find(|&(_, b)| b == b',')
                .map(|(i, _)| i);
            let item = match comma {
                Some(i) => {
                    self.rest = s.get(i + 1..);
                    s.get(..i).unwrap_or(&[])
                }
                None => {
                    self.rest = None;
                    s
                }
            };
            let item = trim_lws(item);
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// Splits a header value on commas outside quoted strings and outside
/// `<...>`, yielding each element trimmed of linear white space; empty
/// elements are skipped. `a, "x,y" <sip:b,c>;p=1` → `a`, `"x,y" <sip:b,c>;p=1`.
pub fn split_list(value: &[u8]) -> ListItems<'_> {
    ListItems { rest: Some(value) }
}

/// Whether a comma-separated header value has an empty element: an empty
/// value, or nothing but linear white space before, between or after its
/// commas (`a,,b`, `a,`). [`split_list`] skips such elements; a strict
/// reader (`crate::validate`) rejects them. Never panics.
pub fn has_empty_list_element(value: &[u8]) -> bool {
    if memchr(b',', value).is_none() {
        return trim_lws(value).is_empty();
    }
    let mut start = 0;
    for (i, b) in TopLevel::new(value, true) {
        if b == b',' {
            if trim_lws(value.get(start..i).unwrap_or(&[])).is_empty() {
                return true;
            }
            start = i + 1;
        }
    }
    trim_lws(value.get(start..).unwrap_or(&[])).is_empty()
}

/// URI inside a name-addr or addr-spec header value (From/To/Contact/Route):
/// `"Bob" <sip:bob@h>;tag=1` → `sip:bob@h`; `sip:bob@h;tag=1` → `sip:bob@h`
/// (addr-spec: params after ';' belong to the header, per RFC 3261 §20).
///
/// Returns `None` for an unterminated `<` or quoted string, a display name
/// without `<...>`, or an empty URI. Only the first element of a
/// comma-separated list is looked at.
pub fn name_addr_uri(value: &[u8]) -> Option<&[u8]> {
    let v = trim_lws(value);
    let mut scan = TopLevel::new(v, false);
    let mut end = v.len();
    for (i, b) in scan.by_ref() {
        match b {
            b'<' => {
                let inner = v.get(i + 1..)?;
                let close = memchr(b'>', inner)?;
                return non_empty(trim_lws(inner.get(..close)?));
            }
            b';' | b',' => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    if scan.in_quote || scan.saw_quote {
        return None;
    }
    non_empty(trim_lws(v.get(..end)?))
}

/// user part of a sip:/sips:/tel: URI: `sip:alice:pw@host;x` → `alice`;
/// `sip:host` → None; `tel:+123` → `+123`.
///
/// Schemes are matched case-insensitively; other schemes give `None`. For
/// `tel:` the user is the number before any `;` parameter.
pub fn uri_user(uri: &[u8]) -> Option<&[u8]> {
    let uri = trim_lws(uri);
    if starts_with_ignore_case(uri, b"tel:") {
        let rest = uri.get(4..)?;
        let end = memchr(b';', rest).unwrap_or(rest.len());
        return non_empty(rest.get(..end)?);
    }
    let rest = if starts_with_ignore_case(uri, b"sip:") {
        uri.get(4..)?
    } else if starts_with_ignore_case(uri, b"sips:") {
        uri.get(5..)?
    } else {
        return None;
    };
    let userinfo = rest.get(..memchr(b'@', rest)?)?;
    let end = memchr(b':', userinfo).unwrap_or(userinfo.len());
    non_empty(userinfo.get(..end)?)
}

/// A header parameter after the name-addr (`;tag=abc` → `abc`), name
/// case-insensitive; a parameter without value returns `Some(b"")`.
/// Does not look inside `<...>` or quoted display names.
///
/// The value is returned as written, trimmed (a quoted-string value keeps
/// its quotes). Only the first element of a comma-separated list is looked
/// at; split with [`split_list`] first to reach the others.
pub fn header_param<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    match header_param_fast(value, name) {
        Some(found) => found,
        None => header_param_reference(value, name),
    }
}

/// Flags `"`, `,`, `;` and `<`: the bytes that change [`header_param`]'s
/// course outside `<...>` (lowest one exact).
#[inline(always)]
pub(super) fn param_mask(w: u64) -> u64 {
    // (x - 1) & !x flags a zero byte of x, exactly for the lowest one.
    let zero = |c: u8| {
        let x = w ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x
    };
    zero(b'"') | zero(b',') | zero(b';') | zero(b'<')
}

/// Fast path of [`header_param`], a word at a time: exactly what
/// [`header_param_reference`] returns, or `None` to leave the value to it
/// when a `"` or `<` turns up among the parameters (where the reference's
/// two scans read quotes differently).
#[inline(always)]
pub(super) fn header_param_fast<'a>(value: &'a [u8], name: &[u8]) -> Option<Option<&'a [u8]>> {
    // The first ';' outside quoted strings and <...> starts the parameters;
    // a ',' before it ends the first list element without any.
    let mut at = 0;
    let mut params = loop {
        let p = match value.get(at) {
            // Mostly a name-addr: straight to its '<'.
            Some(b'<') => at,
            _ => match find_short(value, at, param_mask) {
                Some(p) => p,
                None => return Some(None),
            },
        };
        match value.get(p) {
            Some(b';') => break p + 1,
            Some(b'<') => {
                // Up to the first '>'; a value ending inside <...> has no
                // parameters.
                let Some(close) = find_short(value, p + 1, |w| eq_mask(w, b'>')) else {
                    return Some(None);
                };
                if value.get(close + 1) == Some(&b';') {
                    break close + 2;
                }
                at = close + 1;
            }
            Some(b'"') => {
                // A quoted string, with quoted-pairs.
                let mut q = p + 1;
                at = loop {
                    let Some(e) = find_short(value, q, |w| eq_mask(w, b'"') | eq_mask(w, b'\\'))
                    else {
                        return Some(None);
                    };
                    if value.get(e) == Some(&b'"') {
                        break e + 1;
                    }
                    q = e + 2;
                };
            }
            _ => return Some(None),
        }
    };
    // A `name` of letters (no '=', white space or separator in it) is found
    // straight as `name=` at a parameter's start.
    let letters = letters_word(name);
    // Each parameter runs to the next ';' and the last one to a ',' or the
    // end.
    loop {
        let value_at = params + name.len() + 1;
        let named = match letters {
            Some((lower, mask)) => {
                value.get(value_at - 1) == Some(&b'=')
                    && (word_or_tail(value, params) & mask) | ((ONES * 0x20) & mask) == lower
            }
            None => false,
        };
        let scan_from = if named { value_at } else { params };
        let (end, last) = match find_short(value, scan_from, param_mask) {
            None => (value.len(), true),
            Some(p) => match value.get(p) {
                Some(b';') => (p, false),
                Some(b',') => (p, true),
                _ => return None,
            },
        };
        if named {
            return Some(Some(trim_lws(value.get(value_at..end)?)));
        }
        if let Some(found) = param_value(value.get(params..end)?, name) {
            return Some(Some(found));
        }
        if last {
            return Some(None);
        }
        params = end + 1;
    }
}

/// The value of one header parameter `param` (`name[=value]`) if its name is
/// `name`, trimmed, as [`header_param`] reports it.
#[inline(always)]
fn param_value<'a>(param: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let (pname, pvalue) = match param.iter().position(|&b| b == b'=') {
        Some(eq) => (param.get(..eq)?, param.get(eq + 1..)?),
        None => (param, param.get(param.len()..)?),
    };
    if trim_lws(pname).eq_ignore_ascii_case(name) {
        Some(trim_lws(pvalue))
    } else {
        None
    }
}

/// The reference for [`header_param`]: two [`TopLevel`] scans, byte by
/// byte. The fast path defers to it for values it does not take.
pub(super) fn header_param_reference<'a>(value: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    // Find the first top-level ';' (start of params) and the ',' ending them.
    let mut start = None;
    let mut end = value.len();
    for (i, b) in TopLevel::new(value, true) {
        match b {
            b';' if start.is_none() => start = Some(i + 1),
            b',' => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let params = value.get(start?..end)?;
    let mut rest = params;
    loop {
        let semi = TopLevel::new(rest, false)
            .find(|&(_, b)| b == b';')
            .map(|(i, _)| i);
        let param = rest.get(..semi.unwrap_or(rest.len()))?;
        let (pname, pvalue) = match memchr(b'=', param) {
            Some(eq) => (param.get(..eq)?, param.get(eq + 1..)?),
            None => (param, &param[param.len()..]),
        };
        if trim_lws(pname).eq_ignore_ascii_case(name) {
            return Some(trim_lws(pvalue));
        }
        rest = rest.get(semi? + 1..)?;
    }
}

/// CSeq value → (sequence number, method bytes). `"  101 REGISTER"` →
/// `(101, b"REGISTER")`.
///
/// The number must be decimal and fit in `u32`; the method must be a token
/// separated from it by linear white space, with nothing after it.
pub fn cseq(value: &[u8]) -> Option<(u32, &[u8])> {
    let v = trim_lws(value);
    let digits = v.iter().position(|b| !b.is_ascii_digit())?;
    let n = parse_u32(v.get(..digits)?)?;
    let rest = v.get(digits..)?;
    if !rest.first().is_some_and(|&b| is_lws(b)) {
        return None;
    }
    let method = trim_lws(rest);
    if method.is_empty() || !is_token(method) {
        return None;
    }
    Some((n, method))
}

/// The rest of a comma-separated header value after its first element, starting at the
/// second element as written; `None` when it has only one.
pub fn after_first(value: &[u8]) -> Option<&[u8]> {
    let mut items = split_list(value);
    items.next()?;
    let second = items.next()?;
    let start = (second.as_ptr() as usize).checked_sub(value.as_ptr() as usize)?;
    value.get(start..)
}

/// A parsed via-parm: `SIP/2.0/transport sent-by` then parameters.
#[derive(Debug, Clone, Copy)]
pub struct Via<'a> {
    /// From the start to the end of sent-by, as written.
    pub head: &'a [u8],
    /// protocol-name and protocol-version (`SIP`, `2.0`), trimmed of LWS.
    pub protocol: (&'a [u8], &'a [u8]),
    /// The transport token (`UDP`, `TCP`, …) as written.
    pub transport: &'a [u8],
    /// sent-by host as written (IPv6 with brackets).
    pub host: &'a [u8],
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// Everything after sent-by: empty or starting with `;`.
    pub params: &'a [u8],
}

/// Why a via-parm does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViaError {
    /// sent-by is an IPv6 address without the `[` `]` of an IPv6reference (RFC 5118 §4.2).
    UnbracketedIpv6,
    /// Anything else.
    Syntax,
}

/// Parses a via-parm (trimmed by the caller or not).
pub fn parse_via(v: &[u8]) -> Option<Via<'_>> {
    parse_via_checked(v).ok()
}

/// [`parse_via`], telling an unbracketed IPv6 sent-by from other errors.
pub fn parse_via_checked(v: &[u8]) -> Result<Via<'_>, ViaError> {
    use ViaError::Syntax;
    let v = trim_lws(v);
    let s1 = memchr(b'/', v).ok_or(Syntax)?;
    let s2 = s1 + 1 + memchr(b'/', v.get(s1 + 1..).ok_or(Syntax)?).ok_or(Syntax)?;
    let protocol = (
        trim_lws(v.get(..s1).ok_or(Syntax)?),
        trim_lws(v.get(s1 + 1..s2).ok_or(Syntax)?),
    );
    // Protocol name and version are tokens (RFC 3261 §20.42): a quote there would pair with
    // one further on and change how the rewritten header splits into via-parms (found by the
    // `proxy` fuzz target).
    if !is_token(protocol.0) || !is_token(protocol.1) {
        return Err(Syntax);
    }
    let mut i = skip_lws(v, s2 + 1);
    let t0 = i;
    while v.get(i).is_some_and(|&b| is_token_char(b)) {
        i += 1;
    }
    if i == t0 {
        return Err(Syntax);
    }
    let after_transport = i;
    let transport = v.get(t0..i).ok_or(Syntax)?;
    i = skip_lws(v, i);
    if i == after_transport {
        return Err(Syntax);
    }
    let h0 = i;
    let bracketed = v.get(i) == Some(&b'[');
    if bracketed {
        i += memchr(b']', v.get(i..).ok_or(Syntax)?).ok_or(Syntax)? + 1;
    } else {
        while v
            .get(i)
            .is_some_and(|&b| !matches!(b, b':' | b';' | b',' | b'"' | b'<' | b'>') && !is_lws(b))
        {
            i += 1;
        }
    }
    let host = v.get(h0..i).ok_or(Syntax)?;
    // `2001:db8::1` (or `::1`): hex digits and more than one colon in an unbracketed sent-by.
    let colons = |from: usize| {
        v.get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|&&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            .filter(|&&b| b == b':')
            .count()
    };
    if !bracketed && v.get(i) == Some(&b':') && colons(i) > 1 {
        return Err(ViaError::UnbracketedIpv6);
    }
    if host.is_empty() {
        return Err(Syntax);
    }
    let mut port = None;
    if v.get(i) == Some(&b':') {
        i += 1;
        let p0 = i;
        while v.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        port = Some(parse_port(v.get(p0..i).ok_or(Syntax)?).ok_or(Syntax)?);
    }
    let head = v.get(..i).ok_or(Syntax)?;
    let params = v.get(skip_lws(v, i)..).ok_or(Syntax)?;
    if !params.is_empty() && params.first() != Some(&b';') {
        return Err(Syntax);
    }
    // An unterminated quoted string would swallow the `;received=` the proxy appends, and an
    // unquoted `<`/`>` (never valid in a Via) changes how the header splits into via-parms
    // once a parameter is rewritten; a bracketed host must be an IPv6 address (found by the
    // `proxy` fuzz target).
    if !params_well_formed(params)
        || (host.first() == Some(&b'[')
            && host
                .get(1..host.len() - 1)
                .and_then(|h| core::str::from_utf8(h).ok())
                .is_none_or(|h| h.parse::<Ipv6Addr>().is_err()))
    {
        return Err(Syntax);
    }
    Ok(Via {
        head,
        protocol,
        transport,
        host,
        port,
        params,
    })
}

/// Whether every quoted string in `s` is closed (a backslash escapes the next byte inside
/// one), as [`Params`] reads them, and no `<` or `>` stands outside them.
fn params_well_formed(s: &[u8]) -> bool {
    let mut quoted = false;
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' | b'>' if !quoted => return false,
            _ => {}
        }
        i += 1;
    }
    !quoted
}

/// The `;`-separated parameters of a via-parm (`params` empty or starting with `;`), each as
/// written between the separators; `;` inside quoted strings does not separate.
pub struct Params<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Params<'a> {
    /// The parameters in `params` (empty, or starting with `;`).
    pub fn new(params: &'a [u8]) -> Params<'a> {
        Params {
            rest: params.strip_prefix(b";"),
        }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let s = self.rest?;
        let mut quoted = false;
        let mut i = 0;
        while let Some(&b) = s.get(i) {
            match b {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b';' if !quoted => {
                    self.rest = s.get(i + 1..);
                    return s.get(..i);
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        Some(s)
    }
}

/// `name[=value]` → (trimmed name, trimmed value if there is a `=`).
pub fn split_param(seg: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr(b'=', seg) {
        Some(eq) => (
            trim_lws(seg.get(..eq).unwrap_or(&[])),
            Some(trim_lws(seg.get(eq + 1..).unwrap_or(&[]))),
        ),
        None => (trim_lws(seg), None),
    }
}

/// The parts of a `sip:` / `sips:` URI the proxy routes by.
#[derive(Debug, Clone, Copy)]
pub struct SipUri<'a> {
    /// user part (without `:password`), if any.
    pub user: Option<&'a [u8]>,
    /// host as written (IPv6 with brackets).
    pub host: &'a [u8],
    /// port, if written.
    pub port: Option<u16>,
}

/// A `sip:` / `sips:` URI (trimmed) split after its scheme into userinfo (before the first
/// `@`, if any) and the rest (hostport, then parameters and headers as written); `None` for
/// other schemes.
pub fn sip_uri_split(uri: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    let uri = trim_lws(uri);
    let rest = if uri
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"sip:"))
    {
        uri.get(4..)?
    } else if uri
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case(b"sips:"))
    {
        uri.get(5..)?
    } else {
        return None;
    };
    Some(match memchr(b'@', rest) {
        Some(at) => (Some(rest.get(..at)?), rest.get(at + 1..)?),
        None => (None, rest),
    })
}

/// The user, host and port of a `sip:` / `sips:` URI; `None` for another scheme, an empty
/// host or a bad port.
pub fn parse_sip_uri(uri: &[u8]) -> Option<SipUri<'_>> {
    let (userinfo, hostport) = sip_uri_split(uri)?;
    let user = match userinfo {
        Some(userinfo) => {
            let end = memchr(b':', userinfo).unwrap_or(userinfo.len());
            Some(userinfo.get(..end)?)
        }
        None => None,
    };
    let mut i = 0;
    if hostport.first() == Some(&b'[') {
        i = memchr(b']', hostport)? + 1;
    } else {
        while hostport
            .get(i)
            .is_some_and(|&b| !matches!(b, b':' | b';' | b'?' | b'>') && !is_lws(b))
        {
            i += 1;
        }
    }
    let host = hostport.get(..i)?;
    if host.is_empty() {
        return None;
    }
    let mut port = None;
    if hostport.get(i) == Some(&b':') {
        let p = hostport.get(i + 1..)?;
        let end = p
            .iter()
            .position(|&b| matches!(b, b';' | b'?' | b'>') || is_lws(b))
            .unwrap_or(p.len());
        port = Some(parse_port(p.get(..end)?)?);
    }
    Some(SipUri {
        user: user.filter(|u| !u.is_empty()),
        host,
        port,
    })
}

/// The value of URI parameter `name` (case-insensitive) in a SIP URI (`;name=value`,
/// before any `?headers`).
pub fn uri_param<'a>(uri: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let end = memchr(b'?', uri).unwrap_or(uri.len());
    let uri = uri.get(..end)?;
    let mut params = uri.split(|&b| b == b';').skip(1);
    params.find_map(|p| {
        let (n, v) = split_param(p);
        n.eq_ignore_ascii_case(name).then_some(v).flatten()
    })
}

/// An IP literal: dotted IPv4, or IPv6 with or without brackets.
pub fn parse_ip(host: &[u8]) -> Option<IpAddr> {
    let host = host
        .strip_prefix(b"[")
        .and_then(|h| h.strip_suffix(b"]"))
        .unwrap_or(host);
    if host.len() > 45 {
        return None;
    }
    core::str::from_utf8(host).ok()?.parse().ok()
}

/// Decimal `1..=65535`.
pub fn parse_port(s: &[u8]) -> Option<u16> {
    let n = parse_u32(s)?;
    u16::try_from(n).ok().filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_parts() {
        let v =
            parse_via_checked(b" SIP / 2.0 / TCP [2001:2::1]:5070 ;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(v.protocol, (&b"SIP"[..], &b"2.0"[..]));
        assert_eq!(v.transport, b"TCP");
        assert_eq!(v.host, b"[2001:2::1]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.head, b"SIP / 2.0 / TCP [2001:2::1]:5070");
        let params: Vec<_> = Params::new(v.params).map(split_param).collect();
        assert_eq!(
            params,
            [
                (&b"branch"[..], Some(&b"z9hG4bK1"[..])),
                (&b"rport"[..], None)
            ]
        );
    }

    #[test]
    fn via_errors() {
        assert_eq!(
            parse_via_checked(b"SIP/2.0/UDP 2001:2::1:5060").unwrap_err(),
            ViaError::UnbracketedIpv6
        );
        for bad in [
            &b"SIP/2.0/UDP"[..],
            b"SIP/2.0/UDP h:0",
            b"SIP/2.0/UDP h:65536",
            b"SIP/2.0/UDP h;x=\"open",
            b"SIP/2.0/UDP h;x=<y>",
            b"SIP/2.0/UDP [not-v6]",
            b"S\"P/2.0/UDP h",
            b"SIP/2.0/UDPh",
        ] {
            assert_eq!(
                parse_via_checked(bad).unwrap_err(),
                ViaError::Syntax,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn params_split_outside_quotes() {
        let got: Vec<_> = Params::new(b";a=\"x;y\";b").collect();
        assert_eq!(got, [&b"a=\"x;y\""[..], b"b"]);
        assert_eq!(Params::new(b"").count(), 0);
    }

    #[test]
    fn sip_uris() {
        let u = parse_sip_uri(b" sips:alice:pw@[2001:2::5]:5061;transport=tls ").unwrap();
        assert_eq!(u.user, Some(&b"alice"[..]));
        assert_eq!(u.host, b"[2001:2::5]");
        assert_eq!(u.port, Some(5061));
        assert_eq!(parse_ip(u.host), Some("2001:2::5".parse().unwrap()));
        let u = parse_sip_uri(b"sip:198.18.0.1;lr").unwrap();
        assert_eq!((u.user, u.port), (None, None));
        assert!(parse_sip_uri(b"tel:+123").is_none());
        assert!(parse_sip_uri(b"sip:h:0").is_none());
        assert_eq!(
            uri_param(b"sip:h;transport=TCP;lr?x=;y", b"TRANSPORT"),
            Some(&b"TCP"[..])
        );
        assert_eq!(uri_param(b"sip:h?transport=tcp", b"transport"), None);
        assert_eq!(after_first(b"a, b ,c"), Some(&b"b ,c"[..]));
        assert_eq!(after_first(b"a"), None);
    }
}
