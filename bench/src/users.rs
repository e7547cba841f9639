//! The accounts the generator registers as: the password accounts of a sipgw credential file.
//!
//! Layer: input. The file is read by sipgw's own loader ([`sipgw::credentials::CredentialStore`]),
//! so the generator accepts exactly what the gateway accepts, plaintext passwords and
//! precomputed HA1s alike; only the HA1 (for the realm given) is kept. Address-authenticated
//! accounts (`mode = "ip"`, `"ip+port"`) are skipped: they are never challenged.

use std::path::Path;

use sipgw::credentials::{AccountId, AuthMode, CredentialStore};
use sipgw::digest::Hash;

/// An MD5 HA1 (the load generator speaks MD5).
pub type Ha1 = [u8; 16];

/// One password account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Digest username.
    pub name: String,
    /// `MD5(name:realm:password)` for the realm the file was loaded for.
    pub ha1: Ha1,
}

/// The password accounts of a credential file, in file order.
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// The accounts.
    pub list: Vec<User>,
    /// The realm their HA1s are for.
    pub realm: String,
}

/// A credential file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// sipgw's loader refused it (the message names the file, account and key).
    #[error(transparent)]
    Credentials(#[from] sipgw::credentials::CredentialsError),
    /// It has no password account to register as.
    #[error("{file}: no password account (mode = \"password\") to register as")]
    Empty {
        /// The file.
        file: String,
    },
}

impl Users {
    /// Load the password accounts of `path`, computing HA1s for `realm`.
    pub fn load(path: &Path, realm: &str) -> Result<Users, UsersError> {
        let store = CredentialStore::load(path, realm)?;
        Self::from_store(&store, realm, &path.display().to_string())
    }

    /// Parse credential-file text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str, realm: &str) -> Result<Users, UsersError> {
        let store = CredentialStore::parse(text, origin, realm)?;
        Self::from_store(&store, realm, origin)
    }

    fn from_store(store: &CredentialStore, realm: &str, file: &str) -> Result<Users, UsersError> {
        let list: Vec<User> = (0..store.len())
            .filter_map(|i| store.account(AccountId(u32::try_from(i).ok()?)))
            .filter(|a| a.mode == AuthMode::Password)
            .filter_map(|a| {
                Some(User {
                    name: a.name.clone(),
                    ha1: a.ha1s.get(Hash::Md5)?.as_bytes().try_into().ok()?,
                })
            })
            .collect();
        if list.is_empty() {
            return Err(UsersError::Empty {
                file: file.to_owned(),
            });
        }
        Ok(Users {
            list,
            realm: realm.to_owned(),
        })
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there is none (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_accounts_only_with_their_ha1() {
        let text = "[[account]]\nname = \"a\"\npassword = \"x\"\n\n\
                    [[account]]\nname = \"t\"\nmode = \"ip\"\nallow = [\"198.18.0.1\"]\n";
        let u = Users::parse(text, "t.toml", "r").unwrap();
        assert_eq!(u.len(), 1);
        assert_eq!(u.list[0].name, "a");
        assert_eq!(u.list[0].ha1, sipgw::digest::ha1(b"a", b"r", b"x"));
        let only_ip = "[[account]]\nname = \"t\"\nmode = \"ip\"\nallow = [\"198.18.0.1\"]\n";
        assert!(matches!(
            Users::parse(only_ip, "t.toml", "r"),
            Err(UsersError::Empty { .. })
        ));
    }
}
