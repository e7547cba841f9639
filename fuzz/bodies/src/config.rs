//! `config_parse`: the configuration file and the credential file.

use std::net::SocketAddr;

use sipgw::credentials::AccountId;
use sipgw::{Config, CredentialStore};

/// Parses `data` (as UTF-8, lossily) as a configuration and as a credential file: no panic,
/// every error renders (naming its origin), and a store that loads answers every lookup.
pub fn config_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let realm = match Config::parse(&text, "fuzz.toml", None) {
        Ok(c) => {
            let _ = format!("{c:?}");
            assert!(!c.auth.realm.is_empty());
            c.auth.realm
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.starts_with("fuzz.toml: "), "{m}");
            "sipgw".into()
        }
    };
    match CredentialStore::parse(&text, "users.toml", &realm) {
        Ok(store) => {
            let _ = format!("{store:?}");
            assert_eq!(store.is_empty(), store.account(AccountId(0)).is_none());
            for i in 0..store.len() {
                let id = AccountId(u32::try_from(i).expect("few accounts"));
                let a = store.account(id).expect("every index is an account");
                if !a.ha1s.is_empty() {
                    let (found, ha1s) = store.by_username(a.name.as_bytes()).expect("by name");
                    assert_eq!(found, id);
                    assert_eq!(*ha1s, a.ha1s);
                    assert!(store.knows_username(a.name.as_bytes()));
                }
            }
            assert!(store.account(AccountId(u32::MAX)).is_none());
            for peer in [
                "198.18.0.10:5060",
                "198.18.1.7:5060",
                "[2001:db8::20]:5060",
                "[::ffff:198.18.0.20]:5060",
                "0.0.0.0:0",
            ] {
                let peer: SocketAddr = peer.parse().expect("address");
                if let Some((id, _)) = store.by_address(peer) {
                    assert!(store.account(id).is_some());
                }
            }
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.starts_with("users.toml: "), "{m}");
        }
    }
}
