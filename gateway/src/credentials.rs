//! The credential store: who may use the softswitch, and how each account authenticates.
//!
//! Layer: configuration data, loaded once (and on reload), read on the packet path without
//! allocation or locks (the store is immutable after load and shared behind an `Arc`).
//!
//! File format (TOML, documented in `docs/configuration.md`):
//!
//! ```toml
//! [[account]]
//! name = "1001"                # digest username
//! password = "s3cret"          # plaintext: HA1 = MD5(name:realm:password) is computed at load
//!
//! [[account]]
//! name = "1002"
//! ha1 = "0123456789abcdef0123456789abcdef"   # precomputed HA1 (htdigest's third field)
//! realm = "sipgw"              # the realm the HA1 was computed for; must be the gateway's
//!
//! [[account]]
//! name = "carrier-a"           # VOS3000 mapping gateway authenticated by address:
//! mode = "ip"                  # never challenged; the identity is `name`
//! allow = ["198.18.0.10", "198.18.1.0/24", "2001:db8::/64"]
//!
//! [[account]]
//! name = "pbx-b"
//! mode = "ip+port"             # address and port must both match
//! allow = ["198.18.0.20:5060", "[2001:db8::20]:5060"]
//! ```
//!
//! Invariants: usernames are unique; every `password` account has an HA1 for the gateway realm;
//! every address or network appears in at most one account. Errors name the file, the account
//! (index and name) and the key.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use hashbrown::HashMap;
use ipnet::IpNet;

use crate::addr::{bits, canonical, masked};
use serde::{Deserialize, Serialize};

use crate::digest::{self, Ha1, Hash, Hashed};

/// Index of an account in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountId(pub u32);

/// How an account proves who it is (VOS3000's mapping-gateway modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// SIP digest with a password (or its HA1).
    Password,
    /// The source IP address is the credential; never challenged.
    Ip,
    /// The source IP address and port are the credential; never challenged.
    IpPort,
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Username (password mode) or label (address modes).
    pub name: String,
    /// How it authenticates.
    pub mode: AuthMode,
    /// HA1s for the gateway realm, one per hash (password mode only).
    pub ha1s: Ha1s,
}

/// An account's HA1 per hash: every hash of `auth.algorithms` has one (computed from the
/// password at load, or given in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ha1s {
    by_hash: [Option<Ha1>; 3],
}

impl Ha1s {
    fn slot(hash: Hash) -> usize {
        match hash {
            Hash::Md5 => 0,
            Hash::Sha256 => 1,
            Hash::Sha512_256 => 2,
        }
    }

    /// The HA1 for `hash`.
    pub fn get(&self, hash: Hash) -> Option<&Ha1> {
        self.by_hash[Self::slot(hash)].as_ref()
    }

    /// Set the HA1 for `hash`.
    pub fn set(&mut self, hash: Hash, ha1: Ha1) {
        self.by_hash[Self::slot(hash)] = Some(ha1);
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.iter().all(Option::is_none)
    }
}

/// A credential file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Malformed TOML, a wrong type or an unknown key.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// toml's message (names the key and line).
        message: String,
    },
    /// A row of a database query is inconsistent.
    #[error("{origin}: row #{index} ({name:?}): {message}")]
    Row {
        /// The database (kind and server).
        origin: String,
        /// 1-based position of the row in the query's result.
        index: usize,
        /// Its `name` column.
        name: String,
        /// What is wrong, naming the column.
        message: String,
    },
    /// An account is inconsistent.
    #[error("{file}: account #{index} ({name:?}): {message}")]
    Account {
        /// The file.
        file: String,
        /// 1-based position of the `[[account]]` table.
        index: usize,
        /// Its name.
        name: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

#[derive(Debug, Deserialize, Serialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawFile {
    account: Vec<AccountRow>,
}

/// One account as it is written: a `[[account]]` table of the credential file, or a row of a
/// database query (its columns by these names). Checked by [`CredentialStore::from_rows`].
#[derive(Debug, Clone, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AccountRow {
    /// `name`: the digest username, or the label of an address account.
    pub name: String,
    /// `password`: plaintext (every HA1 is computed from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `ha1`: the MD5 HA1, 32 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha1: Option<String>,
    /// `ha1_sha256`: 64 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha1_sha256: Option<String>,
    /// `ha1_sha512_256`: 64 hex digits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha1_sha512_256: Option<String>,
    /// `realm` the HA1s were computed for (must be the gateway's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// `mode`: `password` (default), `ip`, `ip+port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `allow`: addresses or networks of an address account.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

/// The loaded, immutable store.
#[derive(Debug, Default)]
pub struct CredentialStore {
    accounts: Vec<Account>,
    by_name: HashMap<Box<[u8]>, AccountId>,
    by_ip_port: HashMap<SocketAddr, AccountId>,
    /// Networks (host addresses are /32 or /128) keyed by (is_v6, prefix length, masked bits).
    by_net: HashMap<(bool, u8, u128), AccountId>,
    /// Prefix lengths present, longest first, per family.
    v4_lens: Vec<u8>,
    v6_lens: Vec<u8>,
}

impl CredentialStore {
    /// Load a credential file; MD5 HA1s are computed for `realm`.
    pub fn load(path: &Path, realm: &str) -> Result<CredentialStore, CredentialsError> {
        Self::load_for(path, realm, &[Hash::Md5])
    }

    /// Load a credential file; every password account gets an HA1 for `realm` for each of
    /// `hashes` (those of `auth.algorithms`).
    pub fn load_for(
        path: &Path,
        realm: &str,
        hashes: &[Hash],
    ) -> Result<CredentialStore, CredentialsError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Io {
            file: file.clone(),
            source,
        })?;
        Self::parse_for(&text, &file, realm, hashes)
    }

    /// Parse credential TOML (MD5 HA1s); `origin` names it in errors.
    pub fn parse(
        text: &str,
        origin: &str,
        realm: &str,
    ) -> Result<CredentialStore, CredentialsError> {
        Self::parse_for(text, origin, realm, &[Hash::Md5])
    }

    /// Parse credential TOML with an HA1 per hash of `hashes`; `origin` names it in errors.
    pub fn parse_for(
        text: &str,
        origin: &str,
        realm: &str,
        hashes: &[Hash],
    ) -> Result<CredentialStore, CredentialsError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| CredentialsError::Syntax {
            file: origin.to_owned(),
            message: e.to_string().trim_end().replace('\n', " | "),
        })?;
        Self::build(&raw.account, realm, hashes, |index, name, message| {
            CredentialsError::Account {
                file: origin.to_owned(),
                index,
                name: name.to_owned(),
                message,
            }
        })
    }

    /// Build the store from accounts a database query returned, checked as the credential
    /// file's are; an error names `origin` (the server), the row (1-based, in query order)
    /// and the key, and nothing of the rows is kept.
    pub fn from_rows(
        rows: &[AccountRow],
        origin: &str,
        realm: &str,
        hashes: &[Hash],
    ) -> Result<CredentialStore, CredentialsError> {
        Self::build(rows, realm, hashes, |index, name, message| {
            CredentialsError::Row {
                origin: origin.to_owned(),
                index,
                name: name.to_owned(),
                message,
            }
        })
    }

    /// The credential file (TOML) holding `rows`: what a database backend writes as its cache,
    /// loadable with [`CredentialStore::load_for`].
    pub fn rows_to_toml(rows: &[AccountRow]) -> String {
        toml::to_string(&RawFile {
            account: rows.to_vec(),
        })
        .unwrap_or_default()
    }

    fn build(
        rows: &[AccountRow],
        realm: &str,
        hashes: &[Hash],
        fail: impl Fn(usize, &str, String) -> CredentialsError,
    ) -> Result<CredentialStore, CredentialsError> {
        let mut store = CredentialStore::default();
        for (i, acc) in rows.iter().enumerate() {
            let fail = |message: String| fail(i + 1, &acc.name, message);
            store
                .add(acc_checked(acc, realm, hashes).map_err(&fail)?, &acc.allow)
                .map_err(&fail)?;
        }
        store.v4_lens.sort_unstable_by(|a, b| b.cmp(a));
        store.v6_lens.sort_unstable_by(|a, b| b.cmp(a));
        Ok(store)
    }

    fn add(&mut self, account: Account, allow: &[String]) -> Result<(), String> {
        let id = AccountId(
            u32::try_from(self.accounts.len()).map_err(|_| "too many accounts".to_owned())?,
        );
        match account.mode {
            AuthMode::Password => {
                if self
                    .by_name
                    .insert(account.name.as_bytes().into(), id)
                    .is_some()
                {
                    return Err("name: a password account with this name already exists".into());
                }
            }
            AuthMode::Ip => {
                for a in allow {
                    let net: IpNet = match a.parse::<IpNet>() {
                        Ok(n) => n,
                        Err(_) => a
                            .parse::<IpAddr>()
                            .map(IpNet::from)
                            .map_err(|_| format!("allow: {a:?} is not an IP address or network (e.g. \"198.18.0.10\" or \"198.18.0.0/24\")"))?,
                    };
                    let (v6, b) = bits(net.addr());
                    let len = if v6 || matches!(net, IpNet::V4(_)) {
                        net.prefix_len()
                    } else {
                        // An IPv4-mapped IPv6 network: count the prefix in IPv4 bits.
                        net.prefix_len().saturating_sub(96)
                    };
                    if self
                        .by_net
                        .insert((v6, len, masked(v6, b, len)), id)
                        .is_some()
                    {
                        return Err(format!(
                            "allow: {a:?} is already allowed for another account"
                        ));
                    }
                    let lens = if v6 {
                        &mut self.v6_lens
                    } else {
                        &mut self.v4_lens
                    };
                    if !lens.contains(&len) {
                        lens.push(len);
                    }
                }
            }
            AuthMode::IpPort => {
                for a in allow {
                    let sa: SocketAddr = a.parse().map_err(|_| {
                        format!("allow: {a:?} is not an address with port (e.g. \"198.18.0.20:5060\" or \"[2001:db8::20]:5060\")")
                    })?;
                    let sa = SocketAddr::new(canonical(sa.ip()), sa.port());
                    if self.by_ip_port.insert(sa, id).is_some() {
                        return Err(format!(
                            "allow: {a:?} is already allowed for another account"
                        ));
                    }
                }
            }
        }
        self.accounts.push(account);
        Ok(())
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether the store has no account.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The account behind an id.
    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(id.0 as usize)
    }

    /// A password account by digest username (unescaped bytes), with its HA1s.
    pub fn by_username(&self, username: &[u8]) -> Option<(AccountId, &Ha1s)> {
        let id = *self.by_name.get(username)?;
        let account = self.accounts.get(id.0 as usize)?;
        (account.mode == AuthMode::Password).then_some((id, &account.ha1s))
    }

    /// Whether a username belongs to a password account.
    pub fn knows_username(&self, username: &[u8]) -> bool {
        self.by_name.contains_key(username)
    }

    /// The address-authenticated account for a source, if any: an `ip+port` match first, then
    /// the longest matching `ip` network.
    pub fn by_address(&self, peer: SocketAddr) -> Option<(AccountId, AuthMode)> {
        if self.by_ip_port.is_empty() && self.by_net.is_empty() {
            return None;
        }
        let ip = canonical(peer.ip());
        if let Some(&id) = self.by_ip_port.get(&SocketAddr::new(ip, peer.port())) {
            return Some((id, AuthMode::IpPort));
        }
        let (v6, b) = bits(ip);
        let lens = if v6 { &self.v6_lens } else { &self.v4_lens };
        lens.iter()
            .find_map(|&len| self.by_net.get(&(v6, len, masked(v6, b, len))))
            .map(|&id| (id, AuthMode::Ip))
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) are treated as the IPv4 address.
fn acc_checked(acc: &AccountRow, realm: &str, hashes: &[Hash]) -> Result<Account, String> {
    let name_ok = !acc.name.is_empty()
        && acc.name.len() <= 128
        && acc.name.bytes().all(|b| b >= 0x20 && b != 0x7f);
    if !name_ok {
        return Err("name: must be 1-128 characters without control characters".into());
    }
    let mode = match acc.mode.as_deref().unwrap_or("password") {
        "password" => AuthMode::Password,
        "ip" => AuthMode::Ip,
        "ip+port" => AuthMode::IpPort,
        other => {
            return Err(format!(
                "mode: {other:?} is not one of \"password\", \"ip\", \"ip+port\""
            ))
        }
    };
    if let Some(r) = &acc.realm {
        if r != realm {
            return Err(format!(
                "realm: {r:?} differs from the gateway realm {realm:?} (auth.realm); an HA1 is only valid for the realm it was computed with"
            ));
        }
    }
    match mode {
        AuthMode::Password => {
            if !acc.allow.is_empty() {
                return Err("allow: only for mode \"ip\" or \"ip+port\"".into());
            }
            let given = [
                (Hash::Md5, "ha1", &acc.ha1),
                (Hash::Sha256, "ha1_sha256", &acc.ha1_sha256),
                (Hash::Sha512_256, "ha1_sha512_256", &acc.ha1_sha512_256),
            ];
            let any_given = given.iter().any(|(_, _, v)| v.is_some());
            let mut ha1s = Ha1s::default();
            match &acc.password {
                Some(_) if any_given => {
                    return Err(
                        "give either password or ha1 (ha1_sha256, ha1_sha512_256), not both".into(),
                    )
                }
                Some(p) => {
                    for &h in hashes {
                        ha1s.set(
                            h,
                            digest::ha1_with(
                                h,
                                acc.name.as_bytes(),
                                realm.as_bytes(),
                                p.as_bytes(),
                            ),
                        );
                    }
                }
                None if !any_given => {
                    return Err("password or ha1 is required for mode \"password\"".into())
                }
                None => {
                    for (h, key, v) in given {
                        let Some(v) = v else { continue };
                        let parsed = Hashed::parse_hex(v.trim().as_bytes())
                            .filter(|x| x.as_bytes().len() == h.size())
                            .ok_or_else(|| {
                                format!("{key}: must be {} hexadecimal digits", 2 * h.size())
                            })?;
                        ha1s.set(h, parsed);
                    }
                    if let Some((h, key, _)) = given
                        .iter()
                        .find(|(h, _, v)| v.is_none() && hashes.contains(h))
                    {
                        return Err(format!(
                            "{key}: required, auth.algorithms offers {} (or give password, and \
                             every HA1 is computed)",
                            h.name()
                        ));
                    }
                }
            }
            Ok(Account {
                name: acc.name.clone(),
                mode,
                ha1s,
            })
        }
        AuthMode::Ip | AuthMode::IpPort => {
            if acc.password.is_some()
                || acc.ha1.is_some()
                || acc.ha1_sha256.is_some()
                || acc.ha1_sha512_256.is_some()
            {
                return Err("password/ha1: address-authenticated accounts are never challenged; remove the secret".into());
            }
            if acc.allow.is_empty() {
                return Err(
                    "allow: at least one address is required for an address-authenticated account"
                        .into(),
                );
            }
            Ok(Account {
                name: acc.name.clone(),
                mode,
                ha1s: Ha1s::default(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[account]]
name = "1001"
password = "secret"

[[account]]
name = "1002"
ha1 = "939E7578ED9E3C518A452ACEE763BCE9"
realm = "testrealm@host.com"

[[account]]
name = "carrier"
mode = "ip"
allow = ["198.18.0.10", "198.18.1.0/24", "2001:db8::/64"]

[[account]]
name = "narrow"
mode = "ip"
allow = ["198.18.1.128/25"]

[[account]]
name = "pbx"
mode = "ip+port"
allow = ["198.18.0.20:5060", "[2001:db8:1::20]:5070"]
"#;

    fn store() -> CredentialStore {
        CredentialStore::parse(FILE, "creds.toml", "testrealm@host.com").unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn password_accounts() {
        let s = store();
        assert_eq!(s.len(), 5);
        let (_, ha1) = s.by_username(b"1001").unwrap();
        assert_eq!(
            *ha1.get(Hash::Md5).unwrap(),
            digest::ha1(b"1001", b"testrealm@host.com", b"secret")
        );
        // RFC 2617 §3.5: HA1 of Mufasa:testrealm@host.com:Circle Of Life; a precomputed HA1 is
        // used as given (any case).
        let (id, ha1) = s.by_username(b"1002").unwrap();
        assert_eq!(
            ha1.get(Hash::Md5).unwrap().hex(),
            *b"939e7578ed9e3c518a452acee763bce9"
        );
        assert_eq!(s.account(id).unwrap().name, "1002");
        assert!(
            s.by_username(b"carrier").is_none(),
            "ip accounts have no digest"
        );
        assert!(s.by_username(b"nobody").is_none());
    }

    #[test]
    fn address_accounts() {
        let s = store();
        let name = |p: &str| {
            s.by_address(sa(p))
                .map(|(id, m)| (s.account(id).unwrap().name.clone(), m))
        };
        assert_eq!(
            name("198.18.0.10:1234"),
            Some(("carrier".into(), AuthMode::Ip))
        );
        assert_eq!(
            name("198.18.1.7:5060"),
            Some(("carrier".into(), AuthMode::Ip))
        );
        assert_eq!(
            name("198.18.1.200:5060"),
            Some(("narrow".into(), AuthMode::Ip)),
            "longest prefix wins"
        );
        assert_eq!(
            name("[2001:db8::99]:5060"),
            Some(("carrier".into(), AuthMode::Ip))
        );
        assert_eq!(
            name("[::ffff:198.18.0.10]:5060"),
            Some(("carrier".into(), AuthMode::Ip)),
            "v4-mapped"
        );
        assert_eq!(
            name("198.18.0.20:5060"),
            Some(("pbx".into(), AuthMode::IpPort))
        );
        assert_eq!(name("198.18.0.20:5061"), None, "ip+port needs the port");
        assert_eq!(
            name("[2001:db8:1::20]:5070"),
            Some(("pbx".into(), AuthMode::IpPort))
        );
        assert_eq!(name("198.18.0.11:5060"), None);
        assert_eq!(name("198.18.2.1:5060"), None);
    }

    #[test]
    fn errors_name_file_account_and_key() {
        let cases = [
            ("name = \"a\"\n", "password or ha1 is required"),
            ("name = \"a\"\npassword = \"x\"\nha1 = \"00\"\n", "not both"),
            ("name = \"a\"\nha1 = \"xyz\"\n", "ha1: must be 32"),
            (
                "name = \"a\"\npassword = \"x\"\nrealm = \"other\"\n",
                "realm: \"other\" differs",
            ),
            ("name = \"a\"\nmode = \"ipport\"\n", "mode: \"ipport\""),
            ("name = \"a\"\nmode = \"ip\"\n", "allow: at least one"),
            (
                "name = \"a\"\nmode = \"ip\"\nallow = [\"nope\"]\n",
                "allow: \"nope\"",
            ),
            (
                "name = \"a\"\nmode = \"ip+port\"\nallow = [\"198.18.0.1\"]\n",
                "address with port",
            ),
            (
                "name = \"a\"\nmode = \"ip\"\npassword = \"x\"\nallow = [\"198.18.0.1\"]\n",
                "never challenged",
            ),
            ("name = \"\"\npassword = \"x\"\n", "name: must be"),
            (
                "name = \"a\"\npassword = \"x\"\nallow = [\"198.18.0.1\"]\n",
                "allow: only for",
            ),
        ];
        for (body, want) in cases {
            let text = format!("[[account]]\n{body}");
            let e = CredentialStore::parse(&text, "creds.toml", "r")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("creds.toml: account #1"), "{e}");
            assert!(e.contains(want), "{body}: {e}");
        }
        let dup = "[[account]]\nname = \"a\"\npassword = \"x\"\n[[account]]\nname = \"a\"\npassword = \"y\"\n";
        let e = CredentialStore::parse(dup, "c", "r")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("account #2") && e.contains("already exists"),
            "{e}"
        );
        let dup = "[[account]]\nname = \"a\"\nmode=\"ip\"\nallow=[\"198.18.0.1\"]\n[[account]]\nname = \"b\"\nmode=\"ip\"\nallow=[\"198.18.0.1/32\"]\n";
        let e = CredentialStore::parse(dup, "c", "r")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("account #2") && e.contains("already allowed"),
            "{e}"
        );
        let e = CredentialStore::parse("[[account]]\nnam = \"a\"\n", "c", "r")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c: ") && e.contains("nam"), "{e}");
    }

    fn row(name: &str) -> AccountRow {
        AccountRow {
            name: name.to_owned(),
            ..AccountRow::default()
        }
    }

    #[test]
    fn rows_are_checked_like_the_file_and_errors_name_the_row() {
        let hashes = [Hash::Sha256, Hash::Md5];
        let good = vec![
            AccountRow {
                password: Some("pw".into()),
                ..row("1001")
            },
            AccountRow {
                mode: Some("ip".into()),
                allow: vec!["198.18.0.0/24".into()],
                ..row("trunk")
            },
        ];
        let s = CredentialStore::from_rows(&good, "postgres 127.0.0.1:5432", "r", &hashes).unwrap();
        let (_, ha1s) = s.by_username(b"1001").unwrap();
        assert_eq!(
            *ha1s.get(Hash::Sha256).unwrap(),
            digest::ha1_with(Hash::Sha256, b"1001", b"r", b"pw")
        );
        assert!(s.by_address("198.18.0.7:5060".parse().unwrap()).is_some());
        // Garbage: a duplicate username, a bad HA1, a bad network: refused, the row named.
        let cases = [
            (
                vec![good[0].clone(), good[0].clone()],
                "postgres 127.0.0.1:5432: row #2 (\"1001\"): name: a password account with this name already exists",
            ),
            (
                vec![AccountRow {
                    ha1: Some("zz".into()),
                    ha1_sha256: Some("00".repeat(32)),
                    ..row("x")
                }],
                "row #1 (\"x\"): ha1: must be 32 hexadecimal digits",
            ),
            (
                vec![
                    good[0].clone(),
                    AccountRow {
                        mode: Some("ip".into()),
                        allow: vec!["198.18.0.0/33".into()],
                        ..row("t")
                    },
                ],
                "row #2 (\"t\"): allow: \"198.18.0.0/33\"",
            ),
        ];
        for (rows, want) in cases {
            let e = CredentialStore::from_rows(&rows, "postgres 127.0.0.1:5432", "r", &hashes)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}\nwanted: {want}");
        }
    }

    #[test]
    fn the_cache_file_of_rows_loads_as_the_same_store() {
        let hashes = [Hash::Md5, Hash::Sha512_256];
        let rows = vec![
            AccountRow {
                password: Some("p\"w\\".into()),
                ..row("1001")
            },
            AccountRow {
                ha1: Some(
                    digest::ha1_with(Hash::Md5, b"1002", b"r", b"x")
                        .hex()
                        .as_str()
                        .into(),
                ),
                ha1_sha512_256: Some(
                    digest::ha1_with(Hash::Sha512_256, b"1002", b"r", b"x")
                        .hex()
                        .as_str()
                        .into(),
                ),
                realm: Some("r".into()),
                ..row("1002")
            },
            AccountRow {
                mode: Some("ip+port".into()),
                allow: vec!["[2001:2::1]:5060".into()],
                ..row("pbx")
            },
        ];
        let text = CredentialStore::rows_to_toml(&rows);
        let back = CredentialStore::parse_for(&text, "cache.toml", "r", &hashes).unwrap();
        let direct = CredentialStore::from_rows(&rows, "db", "r", &hashes).unwrap();
        assert_eq!(back.len(), 3);
        for id in 0..3 {
            assert_eq!(
                back.account(AccountId(id)),
                direct.account(AccountId(id)),
                "{text}"
            );
        }
    }
}
