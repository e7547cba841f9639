//! Digest credentials: RFC 2617, RFC 3261 §22, RFC 7616 and RFC 8760 — MD5, SHA-256 and
//! SHA-512/256, each plain or `-sess`.
//!
//! This is a sans-IO protocol layer: it never reads a clock, a socket or a
//! user database. The caller hands it an `Authorization` /
//! `Proxy-Authorization` header value, the request method (and body, for
//! `qop=auth-int`) and the stored `HA1 = MD5(username:realm:password)` of the
//! user named in the credentials; this module answers "does the response
//! match". Nonce freshness and replay protection live in the nonce module.
//!
//! # No-panic contract
//!
//! [`Credentials::parse`] accepts any byte slice and returns either
//! [`Credentials`] or a typed [`CredentialsError`]; it never panics, never
//! allocates and runs in time linear in the input. Every other function here
//! is total on its inputs as well (no indexing that can fail, no `unwrap`).
//!
//! # Invariants
//!
//! * Nothing on the per-request path (parse, [`verify`], [`verify_batch`],
//!   [`expected_response`], [`client_response`]) allocates. Parameter values
//!   borrow from the header; quoted values keep their backslash escapes in
//!   [`Param::raw`] and are unescaped on the fly while they are streamed into
//!   the MD5 hasher.
//! * The values that enter the hash are the values as the client sent them,
//!   after unescaping: `nc` and `qop` are hashed as spelled on the wire
//!   ([`Credentials::nc_raw`], [`Credentials::qop_raw`]), never re-formatted.
//! * Comparison of the computed and the received response is constant time
//!   ([`subtle`]).
//! * A [`Credentials`] value is internally consistent: `qop` is present if and
//!   only if `nc` and `cnonce` are, and `MD5-sess` only comes with a `qop`
//!   (its session key hashes `cnonce`).
#![forbid(unsafe_code)]

use md5::{Digest, Md5};
use sha2::{Sha256, Sha512_256};
use subtle::ConstantTimeEq;

use crate::md5x;

/// The hash function of a digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    /// MD5 (16 bytes).
    Md5,
    /// SHA-256 (32 bytes).
    Sha256,
    /// SHA-512/256 (32 bytes).
    Sha512_256,
}

impl Hash {
    /// Every hash, in the order the credential file's keys list them.
    pub const ALL: [Hash; 3] = [Hash::Md5, Hash::Sha256, Hash::Sha512_256];

    /// Its output length in bytes.
    #[must_use]
    pub const fn size(self) -> usize {
        match self {
            Hash::Md5 => 16,
            Hash::Sha256 | Hash::Sha512_256 => 32,
        }
    }

    /// The algorithm name without `-sess` (`MD5`, `SHA-256`, `SHA-512-256`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Hash::Md5 => "MD5",
            Hash::Sha256 => "SHA-256",
            Hash::Sha512_256 => "SHA-512-256",
        }
    }

    /// The hash of `parts` concatenated.
    #[must_use]
    pub fn of(self, parts: &[&[u8]]) -> Hashed {
        let mut h = Acc::new(self);
        for p in parts {
            h.put(p);
        }
        h.finish()
    }
}

/// A digest value: 16 bytes (MD5) or 32 (SHA-256, SHA-512/256). `Copy`, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hashed {
    len: u8,
    bytes: [u8; 32],
}

impl Hashed {
    /// The value of `b` (at most 32 bytes; longer input is cut).
    #[must_use]
    pub fn from_slice(b: &[u8]) -> Hashed {
        let n = b.len().min(32);
        let mut bytes = [0u8; 32];
        bytes[..n].copy_from_slice(&b[..n]);
        Hashed {
            len: n as u8,
            bytes,
        }
    }

    /// Its bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Lowercase hexadecimal (the `32LHEX` / `64LHEX` of the RFCs).
    #[must_use]
    pub fn hex(&self) -> Hex {
        let mut buf = [0u8; 64];
        let n = usize::from(self.len) * 2;
        crate::sip::num::put_hex(&mut buf[..n], self.as_bytes());
        Hex { len: n as u8, buf }
    }

    /// Decodes 32 or 64 hexadecimal characters (either case); `None` for any other length or
    /// a non-hex character.
    #[must_use]
    pub fn parse_hex(s: &[u8]) -> Option<Hashed> {
        match s.len() {
            32 => parse_hex16(s).map(Hashed::from),
            64 => {
                let (a, b) = (parse_hex16(&s[..32])?, parse_hex16(&s[32..])?);
                let mut bytes = [0u8; 32];
                bytes[..16].copy_from_slice(&a);
                bytes[16..].copy_from_slice(&b);
                Some(Hashed::from(bytes))
            }
            _ => None,
        }
    }
}

impl core::fmt::Debug for Hashed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

impl From<[u8; 16]> for Hashed {
    fn from(b: [u8; 16]) -> Hashed {
        Hashed::from_slice(&b)
    }
}

impl From<[u8; 32]> for Hashed {
    fn from(b: [u8; 32]) -> Hashed {
        Hashed::from_slice(&b)
    }
}

impl PartialEq<[u8; 16]> for Hashed {
    fn eq(&self, other: &[u8; 16]) -> bool {
        self.as_bytes() == other
    }
}

/// The hexadecimal form of a [`Hashed`] (32 or 64 characters).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Hex {
    len: u8,
    buf: [u8; 64],
}

impl Hex {
    /// The characters.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The characters, as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        core::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Hex {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.as_bytes() == other
    }
}

impl core::ops::Deref for Hex {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl core::fmt::Debug for Hex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The per-user secret the gateway stores instead of the password: `H(username ":" realm ":"
/// password)` for the algorithm's hash.
pub type Ha1 = Hashed;

/// `H(username ":" realm ":" password)` with `hash`.
#[must_use]
pub fn ha1_with(hash: Hash, username: &[u8], realm: &[u8], password: &[u8]) -> Ha1 {
    hash.of(&[username, b":", realm, b":", password])
}

/// Largest number of `name=value` parameters accepted in one header value
/// (known and unknown ones together). A real client sends at most eleven.
pub const MAX_PARAMS: usize = 32;

/// Computes the MD5 `HA1 = MD5(username ":" realm ":" password)` in binary form.
#[must_use]
pub fn ha1(username: &[u8], realm: &[u8], password: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(username);
    h.update(b":");
    h.update(realm);
    h.update(b":");
    h.update(password);
    h.finalize().into()
}

/// Lowercase hexadecimal rendering of a 16-byte digest (the `32LHEX` of the
/// RFCs).
#[must_use]
pub fn hex(digest: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    crate::sip::num::put_hex(&mut out, digest);
    out
}

fn hex_nibble(c: u8) -> Option<u8> {
    let v = HEX_VALUES[usize::from(c)];
    (v < 16).then_some(v)
}

/// Value of each hex digit, 0xff for any other byte.
static HEX_VALUES: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decodes exactly 32 hexadecimal characters (either case) into 16 bytes.
///
/// Returns `None` for any other length or any non-hex character.
#[must_use]
pub fn parse_hex16(s: &[u8]) -> Option<[u8; 16]> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUES[usize::from(pair[0])],
            HEX_VALUES[usize::from(pair[1])],
        );
        bad |= hi | lo;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    // Any invalid digit (0xff) sets the high nibble of `bad`.
    (bad < 16).then_some(out)
}

/// Decodes the 8 hexadecimal digits of an `nc` value (either case).
fn parse_nc(s: &[u8]) -> Option<u32> {
    if s.len() != 8 {
        return None;
    }
    s.iter()
        .try_fold(0u32, |acc, &c| Some((acc << 4) | u32::from(hex_nibble(c)?)))
}

/// A parameter value as written: the bytes between the quotes of a
/// quoted-string (backslash escapes still in place) or the bytes of a token.
///
/// Use [`Param::chunks`], [`Param::unescape_into`] or
/// [`Param::eq_unescaped`] to get at the value a quoted-string denotes; none of
/// them allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    raw: &'a [u8],
    escapes: bool,
}

impl<'a> Param<'a> {
    /// A value written as a token (no quotes, hence no escapes).
    #[must_use]
    pub const fn token(raw: &'a [u8]) -> Param<'a> {
        Param {
            raw,
            escapes: false,
        }
    }

    /// A value written as a quoted-string; `content` is what stood between the
    /// quotes, escapes included. A trailing lone backslash is ignored when
    /// unescaping (the parser never produces one).
    #[must_use]
    pub fn quoted(content: &'a [u8]) -> Param<'a> {
        Param {
            raw: content,
            escapes: content.contains(&b'\\'),
        }
    }

    /// The bytes as written (between the quotes, escapes not removed).
    #[must_use]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether the value contains at least one backslash escape, i.e. whether
    /// [`Param::raw`] differs from the value it denotes.
    #[must_use]
    pub fn has_escapes(&self) -> bool {
        self.escapes
    }

    /// The unescaped value as a sequence of borrowed slices whose
    /// concatenation is the value (one slice when there are no escapes, none
    /// when the value is empty).
    #[must_use]
    pub fn chunks(&self) -> Chunks<'a> {
        Chunks {
            raw: self.raw,
            pos: 0,
            escapes: self.escapes,
        }
    }

    /// Length of the unescaped value.
    #[must_use]
    pub fn unescaped_len(&self) -> usize {
        if self.escapes {
            self.chunks().map(<[u8]>::len).sum()
        } else {
            self.raw.len()
        }
    }

    /// Unescapes into `buf` and returns the filled prefix; `None` if the value
    /// does not fit (nothing useful is left in `buf` then).
    pub fn unescape_into<'b>(&self, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        let mut len = 0usize;
        for chunk in self.chunks() {
            let end = len.checked_add(chunk.len())?;
            buf.get_mut(len..end)?.copy_from_slice(chunk);
            len = end;
        }
        buf.get(..len)
    }

    /// Whether the unescaped value equals `other` (byte for byte), computed
    /// without allocating. Not constant time: use it for public values such as
    /// the realm, not for secrets.
    #[must_use]
    pub fn eq_unescaped(&self, other: &[u8]) -> bool {
        if !self.escapes {
            return self.raw == other;
        }
        let mut rest = other;
        for chunk in self.chunks() {
            match rest.strip_prefix(chunk) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest.is_empty()
    }
}

/// Iterator over the unescaped pieces of a [`Param`]; see [`Param::chunks`].
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    raw: &'a [u8],
    pos: usize,
    escapes: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.raw.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        if !self.escapes {
            self.pos = self.raw.len();
            return Some(rest);
        }
        // The first byte is either a literal byte or a backslash introducing
        // an escaped byte, which is taken literally whatever it is.
        let start = usize::from(rest.first() == Some(&b'\\'));
        let Some(tail) = rest.get(start + 1..) else {
            // A lone trailing backslash (never produced by the parser).
            self.pos = self.raw.len();
            return None;
        };
        let run = tail.iter().position(|&b| b == b'\\').unwrap_or(tail.len());
        let end = start + 1 + run;
        self.pos += end;
        rest.get(start..end)
    }
}

/// Digest algorithm named by the `algorithm` parameter (RFC 7616 §6.1, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, also what an absent `algorithm` parameter means.
    Md5,
    /// `MD5-sess`: the session key `MD5(hex(HA1):nonce:cnonce)` replaces HA1.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
    ];

    /// The canonical spelling used in challenges.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// The algorithm a name denotes (compared case-insensitively).
    #[must_use]
    pub fn from_name(name: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Its hash function.
    #[must_use]
    pub fn hash(self) -> Hash {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Hash::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Hash::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => Hash::Sha512_256,
        }
    }

    /// Whether it is a `-sess` variant (the session key hashes the nonce and cnonce).
    #[must_use]
    pub fn is_sess(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }
}

/// Quality of protection chosen by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// No `qop` parameter (RFC 2069 compatibility): no `nc`, no `cnonce`.
    None,
    /// `qop=auth`.
    Auth,
    /// `qop=auth-int`: the message body is covered by the response.
    AuthInt,
}

impl Qop {
    /// The canonical spelling (`""`, `"auth"`, `"auth-int"`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::None => "",
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

/// The digest parameters this module knows; used to name the culprit in
/// [`CredentialsError::MissingParam`] and [`CredentialsError::DuplicateParam`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamName {
    /// `username`.
    Username,
    /// `realm`.
    Realm,
    /// `nonce`.
    Nonce,
    /// `uri`.
    Uri,
    /// `response`.
    Response,
    /// `algorithm`.
    Algorithm,
    /// `cnonce`.
    Cnonce,
    /// `opaque`.
    Opaque,
    /// `qop`.
    Qop,
    /// `nc`.
    Nc,
    /// `userhash` (RFC 7616 §3.4.4).
    Userhash,
}

impl ParamName {
    const ALL: [ParamName; 11] = [
        ParamName::Username,
        ParamName::Realm,
        ParamName::Nonce,
        ParamName::Uri,
        ParamName::Response,
        ParamName::Algorithm,
        ParamName::Cnonce,
        ParamName::Opaque,
        ParamName::Qop,
        ParamName::Nc,
        ParamName::Userhash,
    ];

    /// The parameter name as written in headers (lowercase).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ParamName::Username => "username",
            ParamName::Realm => "realm",
            ParamName::Nonce => "nonce",
            ParamName::Uri => "uri",
            ParamName::Response => "response",
            ParamName::Algorithm => "algorithm",
            ParamName::Cnonce => "cnonce",
            ParamName::Opaque => "opaque",
            ParamName::Qop => "qop",
            ParamName::Nc => "nc",
            ParamName::Userhash => "userhash",
        }
    }

    /// Case-insensitive lookup of a parameter name; `None` for unknown names.
    #[must_use]
    pub fn from_name(name: &[u8]) -> Option<ParamName> {
        // Dispatch on length and first letter: one comparison instead of ten.
        let candidate = match (name.len(), name.first()?.to_ascii_lowercase()) {
            (8, b'u') if name.get(4).is_some_and(|b| b | 0x20 == b'h') => ParamName::Userhash,
            (8, b'u') => ParamName::Username,
            (5, b'r') => ParamName::Realm,
            (5, b'n') => ParamName::Nonce,
            (3, b'u') => ParamName::Uri,
            (8, b'r') => ParamName::Response,
            (9, b'a') => ParamName::Algorithm,
            (6, b'c') => ParamName::Cnonce,
            (6, b'o') => ParamName::Opaque,
            (3, b'q') => ParamName::Qop,
            (2, b'n') => ParamName::Nc,
            _ => return None,
        };
        // Every parameter name is lower-case letters, so `| 0x20` folds case exactly.
        let expected = candidate.as_str().as_bytes();
        (expected.len() == name.len() && expected.iter().zip(name).all(|(&e, &b)| b | 0x20 == e))
            .then_some(candidate)
    }
}

impl core::fmt::Display for ParamName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a header value is not usable digest credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    /// The authentication scheme is not `Digest` (compared case-insensitively),
    /// e.g. `Basic …`, or the value is empty.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// The parameter list is malformed at byte `offset` of the header value:
    /// a name that is not a token, a missing `=`, an empty unquoted value, a
    /// byte that is neither a token character nor a quote, or two parameters
    /// not separated by a comma.
    #[error("malformed digest parameter list at byte {offset}")]
    Syntax {
        /// Byte offset into the header value where parsing stopped.
        offset: usize,
    },
    /// A quoted-string starting at byte `offset` has no closing quote (or ends
    /// in a lone backslash).
    #[error("unterminated quoted-string starting at byte {offset}")]
    BadQuoting {
        /// Byte offset of the opening quote.
        offset: usize,
    },
    /// More than [`MAX_PARAMS`] parameters.
    #[error("more than {MAX_PARAMS} digest parameters")]
    TooManyParams,
    /// A required parameter (`username`, `realm`, `nonce`, `uri`, `response`)
    /// is absent.
    #[error("missing digest parameter {0}")]
    MissingParam(ParamName),
    /// A known parameter occurs more than once (names compared
    /// case-insensitively).
    #[error("duplicated digest parameter {0}")]
    DuplicateParam(ParamName),
    /// `response` is not exactly 32 (MD5) or 64 (SHA-256, SHA-512/256) hexadecimal
    /// characters, as the algorithm's hash gives.
    #[error("response is not the algorithm's number of hex digits")]
    BadResponse,
    /// `nc` is not exactly 8 hexadecimal characters.
    #[error("nc is not 8 hex digits")]
    BadNc,
    /// `qop` is present without both `nc` and `cnonce`; or `nc`/`cnonce` is
    /// present without `qop`; or `algorithm=MD5-sess` is used without `qop`
    /// (its session key hashes `cnonce`, which only exists with `qop`).
    #[error("qop, nc and cnonce must be sent together")]
    QopIncomplete,
    /// `algorithm` is none of `MD5`, `SHA-256`, `SHA-512-256` and their `-sess` variants.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// `userhash=true` (RFC 7616 §3.4.4): the username is hashed. sipgw never offers it
    /// (its challenges carry no `userhash` parameter), so a client that sends it anyway is
    /// refused rather than looked up by a hash of every account.
    #[error("userhash is not supported (never offered)")]
    UserhashUnsupported,
    /// `qop` is something other than `auth` / `auth-int` (including a list).
    #[error("unsupported qop")]
    UnsupportedQop,
}

/// Parsed `Digest` credentials, borrowing from the header value.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// `username` (normally quoted; may contain escapes).
    pub username: Param<'a>,
    /// `realm`.
    pub realm: Param<'a>,
    /// `nonce`, the server's challenge echoed back.
    pub nonce: Param<'a>,
    /// `uri` (the digest-uri; hashed as sent, not compared with the request
    /// line here).
    pub uri: Param<'a>,
    /// `response`, decoded from its 32 or 64 hex characters (the algorithm's hash length).
    pub response: Hashed,
    /// `algorithm` (absent means [`Algorithm::Md5`]).
    pub algorithm: Algorithm,
    /// `qop` chosen by the client.
    pub qop: Qop,
    /// `nc` as a number; `Some` exactly when `qop` is not [`Qop::None`].
    pub nc: Option<u32>,
    /// `nc` exactly as sent (8 hex digits): this is what gets hashed. Empty
    /// when there is no `qop`.
    pub nc_raw: &'a [u8],
    /// `qop` exactly as sent (e.g. `auth` or `AUTH`): this is what gets
    /// hashed. Empty when there is no `qop`.
    pub qop_raw: &'a [u8],
    /// `cnonce`; `Some` exactly when `qop` is not [`Qop::None`].
    pub cnonce: Option<Param<'a>>,
    /// `opaque`, if sent.
    pub opaque: Option<Param<'a>>,
}

/// Linear white space, including the CR LF of a folded header line.
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_lws(&mut self) -> bool {
        let start = self.i;
        while self.peek().is_some_and(is_lws) {
            self.i += 1;
        }
        self.i != start
    }

    fn token(&mut self) -> &'a [u8] {
        let start = self.i;
        while self
            .peek()
            .is_some_and(crate::sip::chars::is_http_token_char)
        {
            self.i += 1;
        }
        self.s.get(start..self.i).unwrap_or_default()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn syntax(&self) -> CredentialsError {
        CredentialsError::Syntax { offset: self.i }
    }

    /// A quoted-string or a non-empty token.
    fn value(&mut self) -> Result<Param<'a>, CredentialsError> {
        if !self.eat(b'"') {
            let tok = self.token();
            return if tok.is_empty() {
                Err(self.syntax())
            } else {
                Ok(Param::token(tok))
            };
        }
        let open = self.i - 1;
        let start = self.i;
        let mut escapes = false;
        loop {
            // Jump to the next quote or backslash (quoted values are most of the header).
            let rest = self.s.get(self.i..).unwrap_or_default();
            self.i += memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
            match self.peek() {
                None => return Err(CredentialsError::BadQuoting { offset: open }),
                Some(b'"') => {
                    let raw = self.s.get(start..self.i).unwrap_or_default();
                    self.i += 1;
                    return Ok(Param { raw, escapes });
                }
                Some(b'\\') => {
                    // quoted-pair: the backslash escapes whatever byte follows.
                    if self.i + 1 >= self.s.len() {
                        return Err(CredentialsError::BadQuoting { offset: open });
                    }
                    escapes = true;
                    self.i += 2;
                }
                Some(_) => self.i += 1,
            }
        }
    }
}

const fn slot(name: ParamName) -> usize {
    name as usize
}

impl<'a> Credentials<'a> {
    /// Parses an `Authorization` / `Proxy-Authorization` header value
    /// (`Digest username="…", realm="…", …`).
    ///
    /// * The scheme is matched case-insensitively and must be followed by
    ///   white space. SP, HT, CR and LF all count as white space, so a value
    ///   taken from a folded header parses as is.
    /// * Parameters are comma separated `name=value`, in any order, names
    ///   case-insensitive, values a quoted-string (a backslash escapes any
    ///   byte; every other byte but `"` is taken literally, including
    ///   non-ASCII) or a token. Empty list elements (`a=b,,c=d`) are skipped.
    /// * Unknown parameters are syntax-checked, counted towards
    ///   [`MAX_PARAMS`], and ignored.
    /// * Known parameters may be quoted or not; `response` and `nc` must then
    ///   consist of hex digits only, `algorithm` and `qop` are compared
    ///   case-insensitively and must not contain escapes.
    ///
    /// Never panics and never allocates, whatever the input.
    pub fn parse(value: &'a [u8]) -> Result<Credentials<'a>, CredentialsError> {
        let mut p = Cursor { s: value, i: 0 };
        p.skip_lws();
        if !p.token().eq_ignore_ascii_case(b"Digest") {
            return Err(CredentialsError::NotDigest);
        }
        if !p.skip_lws() && p.peek().is_some() {
            return Err(p.syntax());
        }

        let mut slots: [Option<Param<'a>>; ParamName::ALL.len()] = [None; ParamName::ALL.len()];
        let mut count = 0usize;
        loop {
            p.skip_lws();
            match p.peek() {
                None => break,
                Some(b',') => {
                    p.i += 1;
                    continue;
                }
                Some(_) => {}
            }
            let name = p.token();
            if name.is_empty() {
                return Err(p.syntax());
            }
            p.skip_lws();
            if !p.eat(b'=') {
                return Err(p.syntax());
            }
            p.skip_lws();
            let val = p.value()?;
            count += 1;
            if count > MAX_PARAMS {
                return Err(CredentialsError::TooManyParams);
            }
            if let Some(known) = ParamName::from_name(name) {
                let s = &mut slots[slot(known)];
                if s.is_some() {
                    return Err(CredentialsError::DuplicateParam(known));
                }
                *s = Some(val);
            }
            p.skip_lws();
            match p.peek() {
                None => break,
                Some(b',') => p.i += 1,
                Some(_) => return Err(p.syntax()),
            }
        }

        let get = |n: ParamName| slots[slot(n)];
        let required = |n: ParamName| get(n).ok_or(CredentialsError::MissingParam(n));
        let username = required(ParamName::Username)?;
        let realm = required(ParamName::Realm)?;
        let nonce = required(ParamName::Nonce)?;
        let uri = required(ParamName::Uri)?;
        let algorithm = match get(ParamName::Algorithm) {
            None => Algorithm::Md5,
            Some(a) if a.escapes => return Err(CredentialsError::UnsupportedAlgorithm),
            Some(a) => Algorithm::from_name(a.raw).ok_or(CredentialsError::UnsupportedAlgorithm)?,
        };
        let response = Hashed::parse_hex(required(ParamName::Response)?.raw)
            .filter(|r| r.as_bytes().len() == algorithm.hash().size())
            .ok_or(CredentialsError::BadResponse)?;
        if let Some(u) = get(ParamName::Userhash) {
            if u.raw.eq_ignore_ascii_case(b"true") {
                return Err(CredentialsError::UserhashUnsupported);
            }
        }
        let qop_param = get(ParamName::Qop);
        let qop = match qop_param {
            None => Qop::None,
            Some(q) if q.raw.eq_ignore_ascii_case(b"auth") => Qop::Auth,
            Some(q) if q.raw.eq_ignore_ascii_case(b"auth-int") => Qop::AuthInt,
            Some(_) => return Err(CredentialsError::UnsupportedQop),
        };
        let nc_param = get(ParamName::Nc);
        let nc = match nc_param {
            None => None,
            Some(n) => Some(parse_nc(n.raw).ok_or(CredentialsError::BadNc)?),
        };
        let cnonce = get(ParamName::Cnonce);
        let complete = match qop {
            Qop::None => nc.is_none() && cnonce.is_none() && !algorithm.is_sess(),
            Qop::Auth | Qop::AuthInt => nc.is_some() && cnonce.is_some(),
        };
        if !complete {
            return Err(CredentialsError::QopIncomplete);
        }

        Ok(Credentials {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            qop,
            nc,
            nc_raw: nc_param.map_or(&[][..], |n| n.raw),
            qop_raw: qop_param.map_or(&[][..], |q| q.raw),
            cnonce,
            opaque: get(ParamName::Opaque),
        })
    }
}

/// Where the bytes of one MD5 input go: the streaming hasher ([`Acc`]) or a lane of the
/// multi-buffer MD5 ([`md5x::Lane`]).
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for md5x::Lane {
    fn put(&mut self, bytes: &[u8]) {
        md5x::Lane::put(self, bytes);
    }
}

/// Something that can be written into a [`Sink`]: plain bytes, or a [`Param`] whose escapes
/// are removed on the fly.
trait Feed {
    fn feed<S: Sink>(&self, h: &mut S);
}

impl Feed for [u8] {
    fn feed<S: Sink>(&self, h: &mut S) {
        h.put(self);
    }
}

impl Feed for Param<'_> {
    fn feed<S: Sink>(&self, h: &mut S) {
        for chunk in self.chunks() {
            h.put(chunk);
        }
    }
}

/// The hash of one `a:b:c:…` input, fed piece by piece. (Gathering the pieces in a
/// stack buffer first and hashing once measured slower: the hashers buffer anyway.)
// The SHA states are larger than MD5's; an `Acc` lives on the stack for one hash.
#[allow(clippy::large_enum_variant)]
enum Acc {
    Md5(Md5),
    Sha256(Sha256),
    Sha512_256(Sha512_256),
}

impl Sink for Acc {
    fn put(&mut self, bytes: &[u8]) {
        match self {
            Acc::Md5(h) => h.update(bytes),
            Acc::Sha256(h) => h.update(bytes),
            Acc::Sha512_256(h) => h.update(bytes),
        }
    }
}

impl Acc {
    fn new(hash: Hash) -> Acc {
        match hash {
            Hash::Md5 => Acc::Md5(Md5::new()),
            Hash::Sha256 => Acc::Sha256(Sha256::new()),
            Hash::Sha512_256 => Acc::Sha512_256(Sha512_256::new()),
        }
    }

    fn finish(self) -> Hashed {
        match self {
            Acc::Md5(h) => Hashed::from_slice(&h.finalize()),
            Acc::Sha256(h) => Hashed::from_slice(&h.finalize()),
            Acc::Sha512_256(h) => Hashed::from_slice(&h.finalize()),
        }
    }
}

/// Inputs of one response computation; `nc`, `cnonce` and `qop_str` are
/// ignored when `qop` is [`Qop::None`] (except `cnonce` for the `-sess` algorithms).
struct Inputs<'x, U: Feed + ?Sized, N: Feed + ?Sized, C: Feed + ?Sized> {
    ha1: &'x [u8],
    method: &'x [u8],
    uri: &'x U,
    nonce: &'x N,
    qop: Qop,
    qop_str: &'x [u8],
    nc: &'x [u8],
    cnonce: &'x C,
    algorithm: Algorithm,
    body: &'x [u8],
    /// HA2 when already known (from [`Verifier`]'s cache).
    ha2: Option<Hashed>,
}

impl<U: Feed + ?Sized, N: Feed + ?Sized, C: Feed + ?Sized> Inputs<'_, U, N, C> {
    fn hash(&self) -> Hash {
        self.algorithm.hash()
    }

    /// The key of the last hash: HA1, or the `-sess` session key `H(hex(HA1):nonce:cnonce)`.
    fn key(&self) -> Hashed {
        if !self.algorithm.is_sess() {
            return Hashed::from_slice(self.ha1);
        }
        let mut h = Acc::new(self.hash());
        h.put(&Hashed::from_slice(self.ha1).hex());
        h.put(b":");
        self.nonce.feed(&mut h);
        h.put(b":");
        self.cnonce.feed(&mut h);
        h.finish()
    }

    /// `HA2 = H(method:uri[:H(body)])`, or the cached one.
    fn ha2(&self) -> Hashed {
        self.ha2.unwrap_or_else(|| {
            let mut h = Acc::new(self.hash());
            h.put(self.method);
            h.put(b":");
            self.uri.feed(&mut h);
            if self.qop == Qop::AuthInt {
                let body = self.hash().of(&[self.body]);
                h.put(b":");
                h.put(&body.hex());
            }
            h.finish()
        })
    }

    /// Writes the input of the last hash, `hex(key):nonce[:nc:cnonce:qop]:hex(HA2)`.
    fn response_input<S: Sink>(&self, key: &Hashed, ha2: &Hashed, h: &mut S) {
        h.put(&key.hex());
        h.put(b":");
        self.nonce.feed(h);
        h.put(b":");
        if self.qop != Qop::None {
            h.put(self.nc);
            h.put(b":");
            self.cnonce.feed(h);
            h.put(b":");
            h.put(self.qop_str);
            h.put(b":");
        }
        h.put(&ha2.hex());
    }
}

fn compute<U: Feed + ?Sized, N: Feed + ?Sized, C: Feed + ?Sized>(
    x: &Inputs<'_, U, N, C>,
) -> Hashed {
    let (key, ha2) = (x.key(), x.ha2());
    let mut h = Acc::new(x.hash());
    x.response_input(&key, &ha2, &mut h);
    h.finish()
}

/// One independent response verification.
///
/// Jobs carry only borrowed inputs and no hasher state, so a batch of them can
/// be computed together: [`verify_batch`] is the entry point a multi-buffer
/// (SIMD, N lanes at once) MD5 will implement without changing callers.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// Stored `HA1` of the user named by `credentials.username` in
    /// `credentials.realm`, for the credentials' algorithm's hash (16 bytes for MD5, 32 for
    /// SHA-256 and SHA-512/256; an HA1 of another length never verifies).
    pub ha1: &'a [u8],
    /// Request method (`REGISTER`, `INVITE`, …) exactly as in the request
    /// line; for SIP `ACK`/`CANCEL` the caller passes the method it
    /// authenticates.
    pub method: &'a [u8],
    /// Parsed credentials.
    pub credentials: &'a Credentials<'a>,
    /// Message body; only hashed for `qop=auth-int`.
    pub body: &'a [u8],
}

/// The response the client should have sent for `job` (binary).
#[must_use]
pub fn expected_response(job: &Job<'_>) -> Hashed {
    expected_response_with(job, None)
}

/// An absent `cnonce` (no qop): hashed as nothing.
const NO_CNONCE: Param<'static> = Param::token(&[]);

impl<'a> Job<'a> {
    fn inputs(&self, ha2: Option<Hashed>) -> Inputs<'_, Param<'a>, Param<'a>, Param<'a>> {
        let c = self.credentials;
        Inputs {
            ha1: self.ha1,
            method: self.method,
            uri: &c.uri,
            nonce: &c.nonce,
            qop: c.qop,
            qop_str: c.qop_raw,
            nc: c.nc_raw,
            cnonce: c.cnonce.as_ref().unwrap_or(&NO_CNONCE),
            algorithm: c.algorithm,
            body: self.body,
            ha2,
        }
    }
}

fn expected_response_with(job: &Job<'_>, ha2: Option<Hashed>) -> Hashed {
    compute(&job.inputs(ha2))
}

/// Whether `job`'s HA1 is one of its algorithm's hash (a stored HA1 of another hash never
/// verifies, even by accident).
fn ha1_fits(job: &Job<'_>) -> bool {
    job.ha1.len() == job.credentials.algorithm.hash().size()
}

/// The constant-time comparison of the expected and the received response.
fn matches(job: &Job<'_>, expected: &Hashed) -> bool {
    let same: bool = expected
        .as_bytes()
        .ct_eq(job.credentials.response.as_bytes())
        .into();
    same && ha1_fits(job)
}

/// Fewest jobs worth a multi-buffer pass: one pass costs about as much as two scalar MD5s
/// (AVX-512: 16 three-block lanes in 920 ns, one scalar in 490 ns; `docs/benchmarks.md`), so a
/// single job is hashed alone.
const MIN_LANES: usize = 2;

/// Verifies up to [`md5x::MAX_LANES`] jobs with the multi-buffer MD5 on `path`: each MD5 job's
/// session key and HA2 (given in `ha2s`, or computed here) first, then the last hash of every
/// MD5 job together. A job whose last input outgrows a lane (a very long nonce or cnonce) is
/// hashed alone, and so is every SHA job (SHA-NI where the CPU has it).
fn verify_lanes(
    path: md5x::Path,
    lanes: &mut [md5x::Lane],
    jobs: &[Job<'_>],
    ha2s: &[Option<Hashed>],
    results: &mut [bool],
) {
    let n = jobs
        .len()
        .min(results.len())
        .min(lanes.len())
        .min(md5x::MAX_LANES);
    // Lane k holds job `which[k]`.
    let mut which = [0usize; md5x::MAX_LANES];
    let mut known = [Hashed::from([0u8; 16]); md5x::MAX_LANES];
    let mut m = 0;
    for (i, job) in jobs.iter().enumerate().take(n) {
        let ha2 = ha2s.get(i).copied().flatten();
        if job.credentials.algorithm.hash() != Hash::Md5 {
            results[i] = matches(job, &expected_response_with(job, ha2));
            continue;
        }
        let x = job.inputs(ha2);
        let (key, ha2) = (x.key(), x.ha2());
        let lane = &mut lanes[m];
        lane.clear();
        x.response_input(&key, &ha2, lane);
        known[m] = ha2;
        which[m] = i;
        m += 1;
    }
    let mut out = [[0u8; 16]; md5x::MAX_LANES];
    md5x::digest(path, &mut lanes[..m], &mut out[..m]);
    for k in 0..m {
        let job = &jobs[which[k]];
        let expected = if lanes[k].overflowed() {
            expected_response_with(job, Some(known[k]))
        } else {
            Hashed::from(out[k])
        };
        results[which[k]] = matches(job, &expected);
    }
}

/// Whether the credentials' `response` matches [`expected_response`],
/// compared in constant time.
///
/// This checks the password proof only; the caller separately checks the
/// nonce (`nonce::Nonces::verify`), the `nc` replay table, and that
/// `realm` and `username` are the ones `ha1` was looked up for.
#[must_use]
pub fn verify(job: &Job<'_>) -> bool {
    matches(job, &expected_response(job))
}

/// Verifies a batch: `results[i] = verify(&jobs[i])`.
///
/// Processes `min(jobs.len(), results.len())` jobs and returns that count;
/// never panics on a length mismatch (entries past the count are left
/// untouched). The jobs' last hashes run together on the widest multi-buffer MD5 this CPU
/// offers ([`md5x::Path::best`]).
pub fn verify_batch(jobs: &[Job<'_>], results: &mut [bool]) -> usize {
    let n = jobs.len().min(results.len());
    let path = md5x::Path::best();
    if path == md5x::Path::Scalar || n < MIN_LANES {
        for (job, out) in jobs.iter().zip(results.iter_mut()) {
            *out = verify(job);
        }
        return n;
    }
    let mut lanes = [md5x::Lane::default(); md5x::MAX_LANES];
    for (jobs, results) in jobs[..n]
        .chunks(md5x::MAX_LANES)
        .zip(results[..n].chunks_mut(md5x::MAX_LANES))
    {
        verify_lanes(path, &mut lanes, jobs, &[], results);
    }
    n
}

/// Slots of the [`Verifier`]'s HA2 cache.
pub const HA2_CACHE_SLOTS: usize = 256;
/// Longest `method:uri` the HA2 cache keeps (longer ones are always computed).
pub const HA2_CACHE_KEY: usize = 96;

#[derive(Clone, Copy)]
struct Ha2Slot {
    len: u8,
    key: [u8; HA2_CACHE_KEY],
    ha2: [u8; 16],
}

/// A verifier with state: a small direct-mapped cache of `HA2 = MD5(method:uri)` for
/// `qop=auth` and no-qop requests, so that a phone refreshing its registration (same method and
/// URI every time) costs one MD5 computation less. Entries are compared byte for byte, so a hit
/// is exact; collisions only cost a miss. Fixed size ([`HA2_CACHE_SLOTS`] slots of
/// [`HA2_CACHE_KEY`] bytes), allocated once.
///
/// [`Verifier::verify_batch`] computes the last hash of the jobs together on a multi-buffer
/// MD5 ([`md5x`]): the widest path the CPU offers unless one is chosen
/// ([`Verifier::with_path`]).
pub struct Verifier {
    slots: Box<[Ha2Slot]>,
    hasher: hashbrown::DefaultHashBuilder,
    hits: u64,
    path: md5x::Path,
    lanes: Box<[md5x::Lane]>,
}

impl core::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Verifier")
            .field("hits", &self.hits)
            .field("path", &self.path)
            .finish()
    }
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier::with_path(md5x::Path::best())
    }
}

impl Verifier {
    /// A verifier on the given multi-buffer path (the scalar one if the CPU lacks it).
    pub fn with_path(path: md5x::Path) -> Self {
        let path = if path.is_available() {
            path
        } else {
            md5x::Path::Scalar
        };
        Verifier {
            slots: vec![
                Ha2Slot {
                    len: 0,
                    key: [0; HA2_CACHE_KEY],
                    ha2: [0; 16],
                };
                HA2_CACHE_SLOTS
            ]
            .into_boxed_slice(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            hits: 0,
            path,
            lanes: vec![md5x::Lane::default(); md5x::MAX_LANES].into_boxed_slice(),
        }
    }

    /// The multi-buffer path [`Verifier::verify_batch`] runs on.
    pub fn path(&self) -> md5x::Path {
        self.path
    }

    /// HA2 cache hits so far.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    fn ha2(&mut self, job: &Job<'_>) -> Option<Hashed> {
        use core::hash::BuildHasher;
        let c = job.credentials;
        if c.algorithm.hash() != Hash::Md5 {
            return None;
        }
        let uri = c.uri.raw();
        let len = job.method.len() + 1 + uri.len();
        if c.qop == Qop::AuthInt || c.uri.has_escapes() || len > HA2_CACHE_KEY {
            return None;
        }
        let mut key = [0u8; HA2_CACHE_KEY];
        key[..job.method.len()].copy_from_slice(job.method);
        key[job.method.len()] = b':';
        key[job.method.len() + 1..len].copy_from_slice(uri);
        let key = &key[..len];
        let index = (self.hasher.hash_one(key) as usize) % HA2_CACHE_SLOTS;
        let slot = &mut self.slots[index];
        if usize::from(slot.len) == len && &slot.key[..len] == key {
            self.hits += 1;
            return Some(Hashed::from(slot.ha2));
        }
        let ha2: [u8; 16] = Md5::digest(key).into();
        slot.len = len as u8;
        slot.key[..len].copy_from_slice(key);
        slot.ha2 = ha2;
        Some(Hashed::from(ha2))
    }

    /// [`verify`], with the HA2 cache.
    pub fn verify(&mut self, job: &Job<'_>) -> bool {
        let ha2 = self.ha2(job);
        matches(job, &expected_response_with(job, ha2))
    }

    /// [`verify_batch`], with the HA2 cache: `results[i]` for `jobs[i]`, `min` of the lengths
    /// processed and returned.
    pub fn verify_batch(&mut self, jobs: &[Job<'_>], results: &mut [bool]) -> usize {
        let n = jobs.len().min(results.len());
        if self.path == md5x::Path::Scalar || n < MIN_LANES {
            for (job, out) in jobs.iter().zip(results.iter_mut()) {
                *out = self.verify(job);
            }
            return n;
        }
        let width = self.path.lanes();
        for (jobs, results) in jobs[..n].chunks(width).zip(results[..n].chunks_mut(width)) {
            let mut ha2s = [None; md5x::MAX_LANES];
            for (job, ha2) in jobs.iter().zip(ha2s.iter_mut()) {
                *ha2 = self.ha2(job);
            }
            verify_lanes(self.path, &mut self.lanes, jobs, &ha2s, results);
        }
        n
    }
}

/// Client side (load generator, tests): the lowercase hex `response` for the
/// given inputs, all taken as already-unescaped values.
///
/// `nc`, `cnonce` are only used with a `qop` (and `cnonce` for the `-sess` algorithms);
/// `body` only with [`Qop::AuthInt`]. The `qop` is hashed in its canonical
/// lowercase spelling. `ha1` is the HA1 of the algorithm's hash (an MD5 `[u8; 16]` or a
/// [`Hashed`] of any hash: both are slices).
#[allow(clippy::too_many_arguments)] // signature mirrors the RFC's inputs
#[must_use]
pub fn client_response(
    ha1: &[u8],
    method: &[u8],
    uri: &[u8],
    nonce: &[u8],
    qop: Qop,
    nc: &[u8],
    cnonce: &[u8],
    algorithm: Algorithm,
    body: &[u8],
) -> Hex {
    (compute(&Inputs {
        ha1,
        method,
        uri,
        nonce,
        qop,
        qop_str: qop.as_str().as_bytes(),
        nc,
        cnonce,
        algorithm,
        body,
        ha2: None,
    }))
    .hex()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The MD5 HA1 the tests below use.
    type Ha1 = [u8; 16];

    /// RFC 2617 §3.5, header value exactly as printed (lines folded with
    /// CR LF + indentation).
    const RFC2617: &str = "Digest username=\"Mufasa\",\r\n                 realm=\"testrealm@host.com\",\r\n                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n                 uri=\"/dir/index.html\",\r\n                 qop=auth,\r\n                 nc=00000001,\r\n                 cnonce=\"0a4f113b\",\r\n                 response=\"6629fae49393a05397450978507c4ef1\",\r\n                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    /// RFC 7616 §3.9.1, MD5 variant.
    const RFC7616: &str = "Digest username=\"Mufasa\",\r\n       realm=\"http-auth@example.org\",\r\n       uri=\"/dir/index.html\",\r\n       algorithm=MD5,\r\n       nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n       nc=00000001,\r\n       cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n       qop=auth,\r\n       response=\"8ca523f5e9506fed4657c9700eebdbec\",\r\n       opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

    fn md5hex(parts: &[&[u8]]) -> [u8; 32] {
        let mut h = Md5::new();
        for p in parts {
            h.update(p);
        }
        hex(&h.finalize().into())
    }

    fn job<'a>(ha1: &'a Ha1, method: &'a [u8], c: &'a Credentials<'a>, body: &'a [u8]) -> Job<'a> {
        Job {
            ha1,
            method,
            credentials: c,
            body,
        }
    }

    fn parse(s: &str) -> Result<Credentials<'_>, CredentialsError> {
        Credentials::parse(s.as_bytes())
    }

    #[test]
    fn rfc2617_example() {
        let c = parse(RFC2617).unwrap();
        assert!(c.username.eq_unescaped(b"Mufasa"));
        assert!(c.realm.eq_unescaped(b"testrealm@host.com"));
        assert_eq!(c.qop, Qop::Auth);
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.nc_raw, b"00000001");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.opaque.unwrap().raw(), b"5ccc069c403ebaf9f0171e9517f40e41");
        let h = ha1(b"Mufasa", b"testrealm@host.com", b"Circle Of Life");
        assert!(verify(&job(&h, b"GET", &c, b"")));
        assert_eq!(
            &expected_response(&job(&h, b"GET", &c, b"")).hex(),
            b"6629fae49393a05397450978507c4ef1"
        );
        assert!(!verify(&job(&h, b"POST", &c, b"")));
        let wrong = ha1(b"Mufasa", b"testrealm@host.com", b"Circle of Life");
        assert!(!verify(&job(&wrong, b"GET", &c, b"")));
        assert_eq!(
            &client_response(
                &h,
                b"GET",
                b"/dir/index.html",
                b"dcd98b7102dd2f0e8b11d0f600bfb0c093",
                Qop::Auth,
                b"00000001",
                b"0a4f113b",
                Algorithm::Md5,
                b""
            ),
            b"6629fae49393a05397450978507c4ef1"
        );
        // Same value with bare LF folding, and unfolded.
        let lf = RFC2617.replace("\r\n", "\n");
        assert!(verify(&job(&h, b"GET", &parse(&lf).unwrap(), b"")));
        let flat = RFC2617.replace("\r\n                 ", " ");
        assert!(verify(&job(&h, b"GET", &parse(&flat).unwrap(), b"")));
    }

    #[test]
    fn rfc7616_md5_example() {
        let c = parse(RFC7616).unwrap();
        let h = ha1(b"Mufasa", b"http-auth@example.org", b"Circle of Life");
        assert!(verify(&job(&h, b"GET", &c, b"")));
        assert_eq!(
            &client_response(
                &h,
                b"GET",
                b"/dir/index.html",
                b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                Qop::Auth,
                b"00000001",
                b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                Algorithm::Md5,
                b""
            ),
            b"8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn ha1_hex_and_parse_hex() {
        let h = ha1(b"Mufasa", b"testrealm@host.com", b"Circle Of Life");
        assert_eq!(
            &hex(&h),
            &md5hex(&[b"Mufasa:testrealm@host.com:Circle Of Life"])
        );
        assert_eq!(parse_hex16(&hex(&h)), Some(h));
        let upper = hex(&h).to_ascii_uppercase();
        assert_eq!(parse_hex16(&upper), Some(h));
        assert_eq!(parse_hex16(&hex(&h)[..31]), None);
        assert_eq!(parse_hex16(b"0123456789abcdef0123456789abcdeg"), None);
        assert_eq!(parse_hex16(b""), None);
    }

    fn header(
        user: &str,
        realm: &str,
        nonce: &str,
        uri: &str,
        extra: &str,
        response: &[u8; 32],
    ) -> String {
        format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{}\"{extra}",
            core::str::from_utf8(response).unwrap()
        )
    }

    #[test]
    fn without_qop_rfc2069() {
        let h = ha1(b"bob", b"sip.example.com", b"zanzibar");
        let ha2 = md5hex(&[b"REGISTER:sip:sip.example.com"]);
        let expected = md5hex(&[&hex(&h), b":abc123:", &ha2]);
        assert_eq!(
            client_response(
                &h,
                b"REGISTER",
                b"sip:sip.example.com",
                b"abc123",
                Qop::None,
                b"",
                b"",
                Algorithm::Md5,
                b""
            ),
            expected
        );
        let v = header(
            "bob",
            "sip.example.com",
            "abc123",
            "sip:sip.example.com",
            "",
            &expected,
        );
        let c = parse(&v).unwrap();
        assert_eq!(
            (c.qop, c.nc, c.cnonce, c.nc_raw, c.qop_raw),
            (Qop::None, None, None, &b""[..], &b""[..])
        );
        assert!(verify(&job(&h, b"REGISTER", &c, b"")));
        assert!(!verify(&job(&h, b"INVITE", &c, b"")));
    }

    #[test]
    fn md5_sess() {
        let h = ha1(b"bob", b"sip.example.com", b"zanzibar");
        // HA1' = MD5(hex(HA1):nonce:cnonce), step by step.
        let sess = md5hex(&[&hex(&h), b":", b"n0nce", b":", b"c-n0nce"]);
        let ha2 = md5hex(&[b"INVITE", b":", b"sip:alice@example.com"]);
        let expected = md5hex(&[&sess, b":n0nce:0000000a:c-n0nce:auth:", &ha2]);
        let v = header(
            "bob",
            "sip.example.com",
            "n0nce",
            "sip:alice@example.com",
            ", algorithm=md5-SESS, qop=auth, nc=0000000a, cnonce=\"c-n0nce\"",
            &expected,
        );
        let c = parse(&v).unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5Sess);
        assert_eq!(c.nc, Some(10));
        assert!(verify(&job(&h, b"INVITE", &c, b"")));
        assert_eq!(
            client_response(
                &h,
                b"INVITE",
                b"sip:alice@example.com",
                b"n0nce",
                Qop::Auth,
                b"0000000a",
                b"c-n0nce",
                Algorithm::Md5Sess,
                b""
            ),
            expected
        );
        // Plain MD5 with the same inputs gives a different answer.
        let plain = v.replace("algorithm=md5-SESS", "algorithm=MD5");
        assert!(!verify(&job(&h, b"INVITE", &parse(&plain).unwrap(), b"")));
    }

    #[test]
    fn auth_int_with_body() {
        let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
        let h = ha1(b"bob", b"r", b"pw");
        let body_hash = md5hex(&[body]);
        let ha2 = md5hex(&[b"INVITE:sip:a@b:", &body_hash]);
        let expected = md5hex(&[&hex(&h), b":N:00000002:C:auth-int:", &ha2]);
        let v = header(
            "bob",
            "r",
            "N",
            "sip:a@b",
            ", qop=\"auth-int\", nc=00000002, cnonce=C",
            &expected,
        );
        let c = parse(&v).unwrap();
        assert_eq!(c.qop, Qop::AuthInt);
        assert!(verify(&job(&h, b"INVITE", &c, body)));
        assert!(!verify(&job(&h, b"INVITE", &c, b"other body")));
        assert_eq!(
            client_response(
                &h,
                b"INVITE",
                b"sip:a@b",
                b"N",
                Qop::AuthInt,
                b"00000002",
                b"C",
                Algorithm::Md5,
                body
            ),
            expected
        );
    }

    #[test]
    fn escaped_username() {
        let user = b"Mu\"fa\\sa";
        let h = ha1(user, b"r", b"pw");
        let resp = client_response(
            &h,
            b"REGISTER",
            b"sip:r",
            b"n",
            Qop::Auth,
            b"00000001",
            b"c\"x",
            Algorithm::Md5,
            b"",
        );
        let v = format!(
            "Digest username=\"Mu\\\"fa\\\\sa\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", qop=auth, nc=00000001, cnonce=\"c\\\"x\", response=\"{}\"",
            core::str::from_utf8(&resp).unwrap()
        );
        let c = parse(&v).unwrap();
        assert!(c.username.has_escapes());
        assert_eq!(c.username.raw(), b"Mu\\\"fa\\\\sa");
        assert!(c.username.eq_unescaped(user));
        assert!(!c.username.eq_unescaped(b"Mu\"fa\\s"));
        assert!(!c.username.eq_unescaped(b"Mu\"fa\\sax"));
        assert_eq!(c.username.unescaped_len(), user.len());
        let mut buf = [0u8; 16];
        assert_eq!(c.username.unescape_into(&mut buf), Some(&user[..]));
        assert_eq!(c.username.unescape_into(&mut [0u8; 7]), None);
        assert!(!c.realm.has_escapes());
        assert!(verify(&job(&h, b"REGISTER", &c, b"")));
    }

    #[test]
    fn param_chunks() {
        let collect = |p: Param<'_>| p.chunks().flatten().copied().collect::<Vec<u8>>();
        assert_eq!(collect(Param::quoted(b"a\\\\b")), b"a\\b");
        assert_eq!(collect(Param::quoted(b"\\\"x\\\"")), b"\"x\"");
        assert_eq!(collect(Param::quoted(b"\\a\\b\\c")), b"abc");
        assert_eq!(collect(Param::quoted(b"")), b"");
        assert_eq!(collect(Param::quoted(b"abc\\")), b"abc");
        assert_eq!(collect(Param::token(b"a\\b")), b"a\\b");
        assert_eq!(Param::quoted(b"").unescape_into(&mut []), Some(&b""[..]));
        assert!(Param::quoted(b"").eq_unescaped(b""));
    }

    #[test]
    fn any_order_mixed_case() {
        let h = ha1(b"Mufasa", b"testrealm@host.com", b"Circle Of Life");
        let v = "dIgEsT  OPAQUE=\"5ccc069c403ebaf9f0171e9517f40e41\",Response=\"6629FAE49393A05397450978507C4EF1\" ,CNonce=\"0a4f113b\",NC=00000001,QOP=\"auth\",URI=\"/dir/index.html\",Nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",REALM=\"testrealm@host.com\",UserName=\"Mufasa\"";
        let c = parse(v).unwrap();
        assert!(verify(&job(&h, b"GET", &c, b"")));
    }

    #[test]
    fn qop_hashed_as_sent() {
        let h = ha1(b"u", b"r", b"p");
        let ha2 = md5hex(&[b"GET:/"]);
        let expected = md5hex(&[&hex(&h), b":n:00000001:c:AUTH:", &ha2]);
        let v = header(
            "u",
            "r",
            "n",
            "/",
            ", qop=AUTH, nc=00000001, cnonce=c",
            &expected,
        );
        let c = parse(&v).unwrap();
        assert_eq!((c.qop, c.qop_raw), (Qop::Auth, &b"AUTH"[..]));
        assert!(verify(&job(&h, b"GET", &c, b"")));
    }

    #[test]
    fn duplicates_rejected() {
        let dup = RFC2617.replace("qop=auth,", "qop=auth, Realm=\"x\",");
        assert_eq!(
            parse(&dup).unwrap_err(),
            CredentialsError::DuplicateParam(ParamName::Realm)
        );
        let dup = RFC2617.replace("qop=auth,", "qop=auth, nc=00000002,");
        assert_eq!(
            parse(&dup).unwrap_err(),
            CredentialsError::DuplicateParam(ParamName::Nc)
        );
        // Unknown parameters may repeat.
        let unk = RFC2617.replace("qop=auth,", "qop=auth, x=1, X=2, y=\"\",");
        assert!(parse(&unk).is_ok());
    }

    #[test]
    fn missing_params() {
        for name in ["username", "realm", "nonce", "uri", "response"] {
            let v: Vec<&str> = RFC2617
                .split(',')
                .filter(|p| {
                    !p.trim_start_matches("Digest")
                        .trim()
                        .starts_with(&format!("{name}="))
                })
                .collect();
            let v = v.join(",");
            let v = if v.starts_with("Digest") {
                v
            } else {
                format!("Digest {v}")
            };
            let want = ParamName::from_name(name.as_bytes()).unwrap();
            assert_eq!(
                parse(&v).unwrap_err(),
                CredentialsError::MissingParam(want),
                "{v}"
            );
        }
        assert_eq!(
            parse("Digest").unwrap_err(),
            CredentialsError::MissingParam(ParamName::Username)
        );
        assert_eq!(
            parse("Digest  ,, ").unwrap_err(),
            CredentialsError::MissingParam(ParamName::Username)
        );
    }

    #[test]
    fn bad_hex() {
        let short = RFC2617.replace(
            "6629fae49393a05397450978507c4ef1",
            "6629fae49393a05397450978507c4ef",
        );
        assert_eq!(parse(&short).unwrap_err(), CredentialsError::BadResponse);
        let nonhex = RFC2617.replace(
            "6629fae49393a05397450978507c4ef1",
            "6629fae49393a05397450978507c4efz",
        );
        assert_eq!(parse(&nonhex).unwrap_err(), CredentialsError::BadResponse);
        let escaped = RFC2617.replace(
            "6629fae49393a05397450978507c4ef1",
            "6629fae49393a05397450978507c4e\\f1",
        );
        assert_eq!(parse(&escaped).unwrap_err(), CredentialsError::BadResponse);
        let nc7 = RFC2617.replace("nc=00000001", "nc=0000001");
        assert_eq!(parse(&nc7).unwrap_err(), CredentialsError::BadNc);
        let ncx = RFC2617.replace("nc=00000001", "nc=0000000g");
        assert_eq!(parse(&ncx).unwrap_err(), CredentialsError::BadNc);
        let nc_upper = RFC2617.replace("nc=00000001", "nc=\"0000FFFF\"");
        let c = parse(&nc_upper).unwrap();
        assert_eq!((c.nc, c.nc_raw), (Some(0xffff), &b"0000FFFF"[..]));
    }

    #[test]
    fn qop_consistency() {
        let no_nc = RFC2617.replace("nc=00000001,", "");
        assert_eq!(parse(&no_nc).unwrap_err(), CredentialsError::QopIncomplete);
        let no_cnonce = RFC2617.replace("cnonce=\"0a4f113b\",", "");
        assert_eq!(
            parse(&no_cnonce).unwrap_err(),
            CredentialsError::QopIncomplete
        );
        let no_qop = RFC2617.replace("qop=auth,", "");
        assert_eq!(parse(&no_qop).unwrap_err(), CredentialsError::QopIncomplete);
        let sess = header("u", "r", "n", "/", ", algorithm=MD5-sess", &[b'0'; 32]);
        assert_eq!(parse(&sess).unwrap_err(), CredentialsError::QopIncomplete);
    }

    /// RFC 7616 §3.9.1, SHA-256 variant (the same request as [`RFC7616`]).
    const RFC7616_SHA256: &str = "Digest username=\"Mufasa\",\r\n       realm=\"http-auth@example.org\",\r\n       uri=\"/dir/index.html\",\r\n       algorithm=SHA-256,\r\n       nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n       nc=00000001,\r\n       cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n       qop=auth,\r\n       response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\",\r\n       opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";

    #[test]
    fn rfc7616_sha256_vector() {
        let c = parse(RFC7616_SHA256).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert_eq!(c.response.as_bytes().len(), 32);
        let h = ha1_with(
            Hash::Sha256,
            b"Mufasa",
            b"http-auth@example.org",
            b"Circle of Life",
        );
        let j = Job {
            ha1: h.as_bytes(),
            method: b"GET",
            credentials: &c,
            body: b"",
        };
        assert!(verify(&j));
        assert_eq!(
            expected_response(&j).hex(),
            *b"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        // The MD5 HA1 of the same account never verifies a SHA-256 response.
        let md5 = ha1(b"Mufasa", b"http-auth@example.org", b"Circle of Life");
        assert!(!verify(&Job { ha1: &md5, ..j }));
        let wrong = ha1_with(
            Hash::Sha256,
            b"Mufasa",
            b"http-auth@example.org",
            b"circle of life",
        );
        assert!(!verify(&Job {
            ha1: wrong.as_bytes(),
            ..j
        }));
        // The batch paths (MD5 lanes beside a SHA job) agree.
        let md5_creds = parse(RFC7616).unwrap();
        let jobs = [
            j,
            Job {
                ha1: &md5,
                method: b"GET",
                credentials: &md5_creds,
                body: b"",
            },
            Job {
                ha1: wrong.as_bytes(),
                ..j
            },
            Job {
                ha1: &md5,
                method: b"GET",
                credentials: &md5_creds,
                body: b"",
            },
        ];
        let mut out = [false; 4];
        assert_eq!(verify_batch(&jobs, &mut out), 4);
        assert_eq!(out, [true, true, false, true]);
        for path in md5x::Path::available() {
            let mut v = Verifier::with_path(path);
            let mut out = [false; 4];
            v.verify_batch(&jobs, &mut out);
            assert_eq!(out, [true, true, false, true], "{path:?}");
        }
    }

    /// Every SHA algorithm, step by step with the sha2 hashers directly (RFC 7616 §3.4.1-3).
    #[test]
    fn sha_algorithms_and_their_sess_variants() {
        fn h(hash: Hash, s: &[u8]) -> Vec<u8> {
            hash.of(&[s]).hex().to_vec()
        }
        for alg in Algorithm::ALL {
            let hash = alg.hash();
            let a1 = h(hash, b"bob:sipgw:pw");
            let key = if alg.is_sess() {
                h(hash, &[&a1[..], b":n0nce:c0"].concat())
            } else {
                a1.clone()
            };
            let ha2 = h(hash, b"REGISTER:sip:sipgw");
            let want = h(
                hash,
                &[&key[..], b":n0nce:00000001:c0:auth:", &ha2].concat(),
            );
            let got = client_response(
                ha1_with(hash, b"bob", b"sipgw", b"pw").as_bytes(),
                b"REGISTER",
                b"sip:sipgw",
                b"n0nce",
                Qop::Auth,
                b"00000001",
                b"c0",
                alg,
                b"",
            );
            assert_eq!(got.to_vec(), want, "{alg:?}");
            let header = format!(
                "Digest username=\"bob\",realm=\"sipgw\",nonce=\"n0nce\",uri=\"sip:sipgw\",\
                 algorithm={},qop=auth,nc=00000001,cnonce=\"c0\",response=\"{}\"",
                alg.as_str(),
                got.as_str()
            );
            let c = Credentials::parse(header.as_bytes()).unwrap();
            assert_eq!(c.algorithm, alg);
            let ha1 = ha1_with(hash, b"bob", b"sipgw", b"pw");
            assert!(verify(&Job {
                ha1: ha1.as_bytes(),
                method: b"REGISTER",
                credentials: &c,
                body: b"",
            }));
        }
        assert_eq!(
            Hash::Sha512_256.of(&[b"abc"]).hex().as_str(),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
    }

    #[test]
    fn userhash_is_refused_unless_false() {
        let v = RFC7616.replace("qop=auth,", "qop=auth,\r\n userhash=true,");
        assert_eq!(
            parse(&v).unwrap_err(),
            CredentialsError::UserhashUnsupported
        );
        let v = RFC7616.replace("qop=auth,", "qop=auth, USERHASH=\"TRUE\",");
        assert_eq!(
            parse(&v).unwrap_err(),
            CredentialsError::UserhashUnsupported
        );
        let v = RFC7616.replace("qop=auth,", "qop=auth, userhash=false,");
        assert!(parse(&v).is_ok());
        let v = RFC7616.replace("qop=auth,", "qop=auth, userhash=false, userhash=false,");
        assert_eq!(
            parse(&v).unwrap_err(),
            CredentialsError::DuplicateParam(ParamName::Userhash)
        );
    }

    #[test]
    fn unsupported_algorithm_and_qop() {
        for alg in ["SHA-1", "SHA-512", "AKAv1-MD5", "\"MD5x\"", "md\\5"] {
            let v = RFC7616.replace("algorithm=MD5", &format!("algorithm={alg}"));
            let got = parse(&v);
            assert!(
                matches!(
                    got,
                    Err(CredentialsError::UnsupportedAlgorithm | CredentialsError::Syntax { .. })
                ),
                "{alg}: {got:?}"
            );
        }
        // A SHA algorithm with an MD5-sized response: the response is wrong for it.
        for alg in ["SHA-256", "SHA-256-sess", "SHA-512-256", "sha-512-256-SESS"] {
            let v = RFC7616.replace("algorithm=MD5", &format!("algorithm={alg}"));
            assert_eq!(
                parse(&v).unwrap_err(),
                CredentialsError::BadResponse,
                "{alg}"
            );
        }
        let v = RFC7616.replace("algorithm=MD5", "algorithm=\"SHA-25\\6\"");
        assert_eq!(
            parse(&v).unwrap_err(),
            CredentialsError::UnsupportedAlgorithm
        );
        let v = RFC7616.replace("algorithm=MD5", "algorithm=\"md5\"");
        assert_eq!(parse(&v).unwrap().algorithm, Algorithm::Md5);
        let v = RFC2617.replace("qop=auth,", "qop=\"auth,auth-int\",");
        assert_eq!(parse(&v).unwrap_err(), CredentialsError::UnsupportedQop);
        let v = RFC2617.replace("qop=auth,", "qop=auth-conf,");
        assert_eq!(parse(&v).unwrap_err(), CredentialsError::UnsupportedQop);
    }

    #[test]
    fn folded_whitespace() {
        let h = ha1(b"Mufasa", b"testrealm@host.com", b"Circle Of Life");
        let v = "Digest\r\n username\r\n\t=\r\n \"Mufasa\"\r\n ,realm=\"testrealm@host.com\",\r\n\tnonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\" , uri = \"/dir/index.html\",qop=auth,nc=00000001,cnonce=\"0a4f113b\",\r\n response=\"6629fae49393a05397450978507c4ef1\"\r\n ";
        let c = parse(v).unwrap();
        assert!(verify(&job(&h, b"GET", &c, b"")));
    }

    #[test]
    fn proxy_authorization_identical() {
        let auth = format!("Authorization: {RFC2617}");
        let proxy = format!("Proxy-Authorization: {RFC2617}");
        let value = |line: &str| line.split_once(": ").unwrap().1.to_owned();
        let (a, p) = (value(&auth), value(&proxy));
        let (ca, cp) = (parse(&a).unwrap(), parse(&p).unwrap());
        assert_eq!(format!("{ca:?}"), format!("{cp:?}"));
        let h = ha1(b"Mufasa", b"testrealm@host.com", b"Circle Of Life");
        assert!(verify(&job(&h, b"GET", &cp, b"")));
    }

    #[test]
    fn scheme_and_syntax_errors() {
        use CredentialsError as E;
        assert_eq!(parse("").unwrap_err(), E::NotDigest);
        assert_eq!(
            parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap_err(),
            E::NotDigest
        );
        assert_eq!(parse("Digestive username=\"a\"").unwrap_err(), E::NotDigest);
        assert!(matches!(
            parse("Digest,username=\"a\""),
            Err(E::Syntax { offset: 6 })
        ));
        assert!(matches!(parse("Digest username"), Err(E::Syntax { .. })));
        assert!(matches!(parse("Digest username="), Err(E::Syntax { .. })));
        assert!(matches!(
            parse("Digest username=,realm=x"),
            Err(E::Syntax { .. })
        ));
        assert!(matches!(
            parse("Digest username=\"a\" realm=\"b\""),
            Err(E::Syntax { .. })
        ));
        assert!(matches!(
            parse("Digest username=\"a\"b"),
            Err(E::Syntax { .. })
        ));
        assert!(matches!(
            parse("Digest username=a/b"),
            Err(E::Syntax { .. })
        ));
        assert!(matches!(parse("Digest foo="), Err(E::Syntax { .. })));
        assert!(matches!(parse("Digest =x"), Err(E::Syntax { .. })));
        assert_eq!(
            parse("Digest username=\"abc").unwrap_err(),
            E::BadQuoting { offset: 16 }
        );
        assert_eq!(
            parse("Digest username=\"abc\\").unwrap_err(),
            E::BadQuoting { offset: 16 }
        );
        assert_eq!(
            parse("Digest username=\"abc\\\"").unwrap_err(),
            E::BadQuoting { offset: 16 }
        );
        let many: String = (0..=MAX_PARAMS).map(|i| format!("x{i}=1, ")).collect();
        assert_eq!(
            parse(&format!("Digest {many}")).unwrap_err(),
            E::TooManyParams
        );
        let unknown_ok = RFC2617.replace("qop=auth,", "qop=auth, foo=\"b\\\"ar\", bar=baz, ,");
        assert!(parse(&unknown_ok).is_ok());
        // Trailing comma and leading white space are tolerated.
        assert!(parse(&format!("  {RFC2617}, ")).is_ok());
    }

    #[test]
    fn error_display() {
        assert_eq!(
            CredentialsError::MissingParam(ParamName::Nonce).to_string(),
            "missing digest parameter nonce"
        );
        assert_eq!(
            CredentialsError::DuplicateParam(ParamName::Qop).to_string(),
            "duplicated digest parameter qop"
        );
    }

    #[test]
    fn batch_agrees_with_verify() {
        let good = parse(RFC2617).unwrap();
        let other = parse(RFC7616).unwrap();
        let h1 = ha1(b"Mufasa", b"testrealm@host.com", b"Circle Of Life");
        let h2 = ha1(b"Mufasa", b"http-auth@example.org", b"Circle of Life");
        let jobs = [
            job(&h1, b"GET", &good, b""),
            job(&h2, b"GET", &good, b""),
            job(&h2, b"GET", &other, b""),
            job(&h1, b"PUT", &good, b""),
            job(&h2, b"GET", &other, b"ignored without auth-int"),
        ];
        let mut results = [false; 5];
        assert_eq!(verify_batch(&jobs, &mut results), 5);
        let singles: Vec<bool> = jobs.iter().map(verify).collect();
        assert_eq!(results.to_vec(), singles);
        assert_eq!(results, [true, false, true, false, true]);
        // Length mismatch: processes the common prefix only, no panic.
        let mut short = [false; 3];
        assert_eq!(verify_batch(&jobs, &mut short), 3);
        assert_eq!(short, [true, false, true]);
        let mut long = [true; 7];
        assert_eq!(verify_batch(&jobs[..1], &mut long), 1);
        assert_eq!(long, [true; 7]);
        assert_eq!(verify_batch(&[], &mut long), 0);
    }

    fn quote(v: &[u8], escape_all: bool) -> Vec<u8> {
        let mut out = vec![b'"'];
        for &b in v {
            if escape_all || b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
        out
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(c) = Credentials::parse(&bytes) {
                let h = [0u8; 16];
                let _ = verify(&job(&h, b"GET", &c, b""));
            }
        }

        #[test]
        fn parse_never_panics_on_mutations(
            base in prop_oneof![Just(RFC2617), Just(RFC7616)],
            edits in proptest::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 1..8),
        ) {
            let mut v = base.as_bytes().to_vec();
            for (pos, op, byte) in edits {
                let at = pos % (v.len() + 1);
                match op {
                    0 => v.insert(at, byte),
                    1 if at < v.len() => { v.remove(at); }
                    _ if at < v.len() => v[at] = byte,
                    _ => v.push(byte),
                }
            }
            if let Ok(c) = Credentials::parse(&v) {
                let h = [7u8; 16];
                let _ = verify(&job(&h, b"INVITE", &c, b"body"));
            }
        }

        #[test]
        fn parse_never_panics_on_fragments(
            parts in proptest::collection::vec(prop_oneof![
                Just("Digest"), Just(" "), Just("\r\n "), Just(","), Just("="), Just("\""), Just("\\"),
                Just("username"), Just("realm"), Just("nonce"), Just("uri"), Just("response"),
                Just("qop"), Just("nc"), Just("cnonce"), Just("algorithm"), Just("auth"), Just("auth-int"),
                Just("MD5-sess"), Just("00000001"), Just("6629fae49393a05397450978507c4ef1"), Just("x"),
            ], 0..60)
        ) {
            let v: String = parts.concat();
            if let Ok(c) = Credentials::parse(v.as_bytes()) {
                let h = [1u8; 16];
                let _ = verify(&job(&h, b"GET", &c, b""));
            }
        }

        #[test]
        fn roundtrip_verifies(
            user in proptest::collection::vec(any::<u8>(), 0..24),
            realm in proptest::collection::vec(any::<u8>(), 0..24),
            uri in proptest::collection::vec(any::<u8>(), 0..40),
            cnonce in proptest::collection::vec(any::<u8>(), 0..24),
            nonce in "[A-Za-z0-9_-]{1,40}",
            escape_all in any::<bool>(),
            nc in 1u32..,
            variant in 0u8..4,
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let h = ha1(&user, &realm, b"secret");
            let (qop, alg) = match variant {
                0 => (Qop::None, Algorithm::Md5),
                1 => (Qop::Auth, Algorithm::Md5),
                2 => (Qop::AuthInt, Algorithm::Md5),
                _ => (Qop::Auth, Algorithm::Md5Sess),
            };
            let nc_hex = format!("{nc:08x}");
            let resp = client_response(&h, b"MESSAGE", &uri, nonce.as_bytes(), qop, nc_hex.as_bytes(), &cnonce, alg, &body);
            let mut v = b"Digest response=\"".to_vec();
            v.extend_from_slice(&resp);
            v.extend_from_slice(b"\", username=");
            v.extend(quote(&user, escape_all));
            v.extend_from_slice(b",realm=");
            v.extend(quote(&realm, escape_all));
            v.extend_from_slice(b",uri=");
            v.extend(quote(&uri, escape_all));
            v.extend_from_slice(b",nonce=");
            v.extend(quote(nonce.as_bytes(), false));
            v.extend_from_slice(format!(",algorithm={}", alg.as_str()).as_bytes());
            if qop != Qop::None {
                v.extend_from_slice(format!(", qop={}, nc={nc_hex}, cnonce=", qop.as_str()).as_bytes());
                v.extend(quote(&cnonce, escape_all));
            }
            let c = Credentials::parse(&v).unwrap();
            prop_assert!(c.username.eq_unescaped(&user));
            prop_assert!(c.realm.eq_unescaped(&realm));
            let mut buf = [0u8; 64];
            prop_assert_eq!(c.uri.unescape_into(&mut buf), Some(&uri[..]));
            prop_assert_eq!(c.nc, (qop != Qop::None).then_some(nc));
            prop_assert!(verify(&job(&h, b"MESSAGE", &c, &body)));
            prop_assert!(!verify(&job(&h, b"MESSAGEX", &c, &body)));
        }
    }

    /// One random credential header (values escaped or not) with a valid or a wrong response.
    #[derive(Debug, Clone)]
    struct Case {
        user: Vec<u8>,
        uri: Vec<u8>,
        cnonce: Vec<u8>,
        nonce: String,
        variant: u8,
        method: &'static [u8],
        body: Vec<u8>,
        good: bool,
    }

    fn any_case() -> impl Strategy<Value = Case> {
        (
            proptest::collection::vec(any::<u8>(), 0..24),
            proptest::collection::vec(any::<u8>(), 0..60),
            // Up to 300 bytes: a long cnonce makes the last input outgrow a lane (hashed alone).
            prop_oneof![
                3 => proptest::collection::vec(any::<u8>(), 0..40),
                1 => proptest::collection::vec(any::<u8>(), 200..300),
            ],
            "[A-Za-z0-9_-]{1,60}",
            0u8..4,
            prop_oneof![
                Just(&b"REGISTER"[..]),
                Just(&b"INVITE"[..]),
                Just(&b"MESSAGE"[..])
            ],
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>(),
        )
            .prop_map(
                |(user, uri, cnonce, nonce, variant, method, body, good)| Case {
                    user,
                    uri,
                    cnonce,
                    nonce,
                    variant,
                    method,
                    body,
                    good,
                },
            )
    }

    fn case_header(c: &Case, ha1: &Ha1) -> Vec<u8> {
        let (qop, alg) = match c.variant {
            0 => (Qop::None, Algorithm::Md5),
            1 => (Qop::Auth, Algorithm::Md5),
            2 => (Qop::AuthInt, Algorithm::Md5),
            _ => (Qop::Auth, Algorithm::Md5Sess),
        };
        let mut resp = client_response(
            ha1,
            c.method,
            &c.uri,
            c.nonce.as_bytes(),
            qop,
            b"0000002a",
            &c.cnonce,
            alg,
            &c.body,
        )
        .to_vec();
        if !c.good {
            resp[7] = if resp[7] == b'0' { b'1' } else { b'0' };
        }
        let mut v = b"Digest response=\"".to_vec();
        v.extend_from_slice(&resp);
        v.extend_from_slice(b"\", username=");
        v.extend(quote(&c.user, false));
        v.extend_from_slice(b",realm=\"sipgw\",uri=");
        v.extend(quote(&c.uri, c.variant == 1));
        v.extend_from_slice(b",nonce=");
        v.extend(quote(c.nonce.as_bytes(), false));
        v.extend_from_slice(format!(",algorithm={}", alg.as_str()).as_bytes());
        if qop != Qop::None {
            v.extend_from_slice(format!(", qop={}, nc=0000002a, cnonce=", qop.as_str()).as_bytes());
            v.extend(quote(&c.cnonce, false));
        }
        v
    }

    proptest! {
        /// The multi-buffer verification (every path this CPU offers, with and without the HA2
        /// cache) agrees with the scalar `verify` on random batches: valid and wrong responses,
        /// every qop and algorithm, escaped values, inputs too long for a lane.
        #[test]
        fn batches_agree_with_verify_on_every_path(
            cases in proptest::collection::vec(any_case(), 1..40),
        ) {
            let ha1s: Vec<Ha1> = cases.iter().map(|c| ha1(&c.user, b"sipgw", b"pw")).collect();
            let headers: Vec<Vec<u8>> = cases.iter().zip(&ha1s).map(|(c, h)| case_header(c, h)).collect();
            let creds: Vec<Credentials<'_>> =
                headers.iter().map(|h| Credentials::parse(h).unwrap()).collect();
            let jobs: Vec<Job<'_>> = cases
                .iter()
                .zip(&ha1s)
                .zip(&creds)
                .map(|((c, h), cr)| job(h, c.method, cr, &c.body))
                .collect();
            let want: Vec<bool> = jobs.iter().map(verify).collect();
            for (c, w) in cases.iter().zip(&want) {
                prop_assert_eq!(*w, c.good);
            }
            let mut got = vec![!want[0]; jobs.len()];
            prop_assert_eq!(verify_batch(&jobs, &mut got), jobs.len());
            prop_assert_eq!(&got, &want);
            for path in md5x::Path::available() {
                let mut v = Verifier::with_path(path);
                prop_assert_eq!(v.path(), path);
                // Twice: the second round hits the HA2 cache.
                for _ in 0..2 {
                    let mut got = vec![false; jobs.len()];
                    prop_assert_eq!(v.verify_batch(&jobs, &mut got), jobs.len());
                    prop_assert_eq!(&got, &want, "{:?}", path);
                }
            }
        }
    }

    #[test]
    fn verifier_cache_agrees_with_verify() {
        let ha1 = ha1(b"alice", b"sipgw", b"secret");
        let long_uri = format!("sip:{}@198.18.0.1", "x".repeat(120));
        let uris = [
            "sip:198.18.0.1",
            "sip:198.18.0.2",
            "sip:bob@198.18.0.1",
            long_uri.as_str(),
        ];
        // The cache is direct-mapped under a randomly seeded hash: two of its six keys share a
        // slot in about 6 % of verifiers (and then evict each other). Across five fresh
        // verifiers, at least one must hit every time from the second round on.
        let mut best_hits = 0;
        for _ in 0..5 {
            let mut v = Verifier::default();
            for round in 0..3 {
                for (i, uri) in uris.iter().enumerate() {
                    for (method, qop) in [
                        (&b"REGISTER"[..], Qop::Auth),
                        (b"INVITE", Qop::None),
                        (b"INVITE", Qop::AuthInt),
                    ] {
                        let nc = if qop == Qop::None { "" } else { "00000001" };
                        let good = client_response(
                            &ha1,
                            method,
                            uri.as_bytes(),
                            b"n",
                            qop,
                            nc.as_bytes(),
                            b"c",
                            Algorithm::Md5,
                            b"body",
                        );
                        let resp = if (i + round) % 2 == 0 {
                            good.to_vec()
                        } else {
                            vec![b'0'; 32]
                        };
                        let qop_part = if qop == Qop::None {
                            String::new()
                        } else {
                            format!(", qop={}, nc={nc}, cnonce=\"c\"", qop.as_str())
                        };
                        let hv = format!(
                            "Digest username=\"alice\", realm=\"sipgw\", nonce=\"n\", uri=\"{uri}\", response=\"{}\"{qop_part}",
                            std::str::from_utf8(&resp).unwrap()
                        );
                        let c = Credentials::parse(hv.as_bytes()).unwrap();
                        let j = Job {
                            ha1: &ha1,
                            method,
                            credentials: &c,
                            body: b"body",
                        };
                        assert_eq!(v.verify(&j), verify(&j), "{uri} {qop:?} round {round}");
                        assert_eq!(verify(&j), (i + round) % 2 == 0);
                    }
                }
            }
            best_hits = best_hits.max(v.hits());
        }
        // The three short URIs with REGISTER/auth and INVITE/none hit in rounds 2 and 3.
        assert_eq!(best_hits, 3 * 2 * 2, "hits: {best_hits}");
    }
}
