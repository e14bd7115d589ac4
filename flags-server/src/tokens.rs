//! API tokens: where they come from and how a presented one is checked.
//!
//! Tokens come from `FLAGS_CLIENT_TOKENS` / `FLAGS_ADMIN_TOKENS`
//! (comma-separated) and from an optional file of `client TOKEN` /
//! `admin TOKEN` lines, never from `flags.toml`, so the config can live in
//! git. Every configured token is compared in constant time on each check.
//! Not here: reading them off requests (`server::auth`).

use std::path::Path;

use subtle::ConstantTimeEq;

use crate::error::{Error, read_config};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Evaluate flags, send events, read the status summary: what a
    /// browser may see, since client tokens ship in frontend code.
    Client,
    /// Everything a client may, plus the rules' view (explain traces, the
    /// flag listing), metrics, reload, experiments and status details.
    Admin,
}

/// The configured tokens.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    entries: Vec<(Box<[u8]>, Role)>,
}

impl Tokens {
    /// Tokens from the environment and, if given, a tokens file.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        let mut tokens = Self::default();
        for (var, role) in [
            ("FLAGS_CLIENT_TOKENS", Role::Client),
            ("FLAGS_ADMIN_TOKENS", Role::Admin),
        ] {
            if let Ok(list) = std::env::var(var) {
                list.split(',').for_each(|t| tokens.add(t, role));
            }
        }
        if let Some(path) = file {
            tokens.add_file(&read_config(path)?, path)?;
        }
        Ok(tokens)
    }

    fn add(&mut self, token: &str, role: Role) {
        let token = token.trim();
        if !token.is_empty() {
            self.entries.push((token.as_bytes().into(), role));
        }
    }

    fn add_file(&mut self, text: &str, path: &Path) -> Result<(), Error> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let (role, token) = match words[..] {
                ["client", token] => (Role::Client, token),
                ["admin", token] => (Role::Admin, token),
                _ => {
                    // Described, not quoted: the line may hold a secret.
                    let found = match words.len() {
                        1 => "one word".to_string(),
                        2 => "an unknown role".to_string(),
                        count => format!("{count} words (a token cannot contain spaces)"),
                    };
                    return Err(Error::Usage(format!(
                        "{}:{}: expected `client TOKEN` or `admin TOKEN`, found {found}",
                        path.display(),
                        n + 1
                    )));
                }
            };
            self.add(token, role);
        }
        Ok(())
    }

    /// Whether no token is configured (then the server is open, on loopback only).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The role of `presented`, if it is a configured token.
    ///
    /// Compares against every token without stopping early, so the time
    /// taken does not say which token (or how much of one) matched; only a
    /// length difference is visible, as with any equality check.
    pub fn role_of(&self, presented: &[u8]) -> Option<Role> {
        let mut found = None;
        for (token, role) in &self.entries {
            if bool::from(token.ct_eq(presented)) {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_lines_give_roles_and_comments_are_skipped() {
        let mut tokens = Tokens::default();
        tokens
            .add_file("# tokens\nclient abc\nadmin  root-1\n\n", Path::new("t"))
            .unwrap();
        assert_eq!(tokens.role_of(b"abc"), Some(Role::Client));
        assert_eq!(tokens.role_of(b"root-1"), Some(Role::Admin));
        assert_eq!(tokens.role_of(b"ab"), None);
        assert_eq!(tokens.role_of(b""), None);
        let err = tokens.add_file("owner xyz\n", Path::new("t")).unwrap_err();
        assert!(err.to_string().starts_with("t:1:"), "{err}");
        assert!(err.to_string().ends_with("found an unknown role"), "{err}");
    }

    #[test]
    fn a_line_with_extra_words_is_an_error_naming_file_and_line() {
        let mut tokens = Tokens::default();
        let err = tokens
            .add_file("client abc\n\nadmin root 1\n", Path::new("tokens.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "tokens.txt:3: expected `client TOKEN` or `admin TOKEN`, found 3 words"
            ),
            "{err}"
        );
        assert!(!err.contains("root"), "the token is not echoed: {err}");
        assert_eq!(tokens.role_of(b"root 1"), None);
    }

    #[test]
    fn a_token_listed_twice_gets_its_highest_role() {
        let mut tokens = Tokens::default();
        tokens.add("same", Role::Client);
        tokens.add("same", Role::Admin);
        tokens.add(" ", Role::Admin);
        assert_eq!(tokens.role_of(b"same"), Some(Role::Admin));
        assert_eq!(tokens.entries.len(), 2);
    }
}
