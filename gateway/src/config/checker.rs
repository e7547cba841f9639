//! The configuration's error type and the range checks every section's check uses, with the
//! file's name for the message.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, a value has the wrong type, or a key is unknown.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// toml's message, which names the key and the line.
        message: String,
    },
    /// A value is outside its allowed range or set.
    #[error("{file}: {key} = {value} is out of range (allowed: {allowed})")]
    Range {
        /// The file.
        file: String,
        /// Dotted key, e.g. `auth.max_retry`.
        key: &'static str,
        /// The value as given.
        value: String,
        /// The allowed range or set.
        allowed: &'static str,
    },
    /// Two keys contradict each other.
    #[error("{file}: {message}")]
    Conflict {
        /// The file.
        file: String,
        /// What contradicts what.
        message: String,
    },
}

/// Range checks with file context.
pub(crate) struct Checker<'a> {
    pub(crate) file: &'a str,
}

impl Checker<'_> {
    pub(crate) fn range(
        &self,
        key: &'static str,
        value: i64,
        lo: i64,
        hi: i64,
        allowed: &'static str,
    ) -> Result<i64, ConfigError> {
        if (lo..=hi).contains(&value) {
            Ok(value)
        } else {
            Err(self.bad(key, value.to_string(), allowed))
        }
    }

    /// `v` within `lo..=hi`, as the integer type of the field (every call site's range fits
    /// it; a range that did not would be reported as out of range, never truncated).
    pub(crate) fn int<T: TryFrom<i64>>(
        &self,
        key: &'static str,
        v: i64,
        lo: i64,
        hi: i64,
        allowed: &'static str,
    ) -> Result<T, ConfigError> {
        let v = self.range(key, v, lo, hi, allowed)?;
        T::try_from(v).map_err(|_| self.bad(key, v.to_string(), allowed))
    }

    pub(crate) fn secs(
        &self,
        key: &'static str,
        v: i64,
        lo: i64,
        hi: i64,
        allowed: &'static str,
    ) -> Result<Duration, ConfigError> {
        self.range(key, v, lo, hi, allowed)
            .map(|v| Duration::from_secs(v.unsigned_abs()))
    }

    pub(crate) fn size(
        &self,
        key: &'static str,
        v: i64,
        allowed: &'static str,
    ) -> Result<usize, ConfigError> {
        self.range(key, v, 1024, 1 << 26, allowed)
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
    }

    pub(crate) fn bad(
        &self,
        key: &'static str,
        value: String,
        allowed: &'static str,
    ) -> ConfigError {
        ConfigError::Range {
            file: self.file.to_owned(),
            key,
            value,
            allowed,
        }
    }

    pub(crate) fn addr(&self, key: &'static str, v: &str) -> Result<SocketAddr, ConfigError> {
        v.trim().parse().map_err(|_| {
            self.bad(
                key,
                format!("{v:?}"),
                "an IP address and port, e.g. \"198.18.0.1:5060\" or \"[2001:db8::1]:5060\"",
            )
        })
    }

    pub(crate) fn secret(
        &self,
        key: &'static str,
        v: &Option<String>,
    ) -> Result<Option<[u8; 32]>, ConfigError> {
        let Some(text) = v else { return Ok(None) };
        let text = text.trim();
        let mut out = [0u8; 32];
        let ok = text.len() == 64
            && text.is_ascii()
            && out.iter_mut().enumerate().all(|(i, b)| {
                match u8::from_str_radix(&text[2 * i..2 * i + 2], 16) {
                    Ok(v) => {
                        *b = v;
                        true
                    }
                    Err(_) => false,
                }
            });
        if ok {
            Ok(Some(out))
        } else {
            // Never echo a secret into logs: show its length only.
            Err(self.bad(
                key,
                format!("<{} characters>", text.chars().count()),
                "64 hexadecimal digits (32 bytes), e.g. from `openssl rand -hex 32`",
            ))
        }
    }
}
