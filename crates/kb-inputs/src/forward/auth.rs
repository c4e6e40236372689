//! Secure forward (`shared_key`): the server greets with `HELO`, checks the client's `PING`
//! and answers `PONG`, as the Forward Protocol v1 specifies.
//!
//! * `HELO`: `["HELO", {"nonce": <16 random bytes>, "auth": <16-byte salt, or empty when no
//!   users are configured>, "keepalive": true}]` (the bytes as msgpack str, as Fluent Bit);
//! * `PING` is accepted when its digest is the hex SHA-512 of
//!   `shared_key_salt + client_hostname + nonce + shared_key` and, with `security.users`, its
//!   password digest is the hex SHA-512 of `auth_salt + username + password` of a known user;
//! * `PONG`: `["PONG", true, "", self_hostname, sha512_hex(shared_key_salt + self_hostname +
//!   nonce + shared_key)]`, or `["PONG", false, reason, "", ""]` before the connection is closed.

use aws_lc_rs::digest;

use super::proto::Ping;

/// The configured secrets.
#[derive(Debug, Clone)]
pub(crate) struct Security {
    pub(crate) shared_key: String,
    pub(crate) self_hostname: String,
    /// `(username, password)` pairs; empty = no user authentication.
    pub(crate) users: Vec<(String, String)>,
}

/// One connection's handshake values.
#[derive(Debug)]
pub(crate) struct Handshake {
    nonce: [u8; 16],
    auth_salt: Vec<u8>,
}

/// Lower-case hex SHA-512 of the concatenated parts.
pub fn sha512_hex(parts: &[&[u8]]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA512);
    for p in parts {
        ctx.update(p);
    }
    let d = ctx.finish();
    let mut s = String::with_capacity(128);
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn random16() -> Result<[u8; 16], String> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| "no random bytes available".to_string())?;
    Ok(b)
}

fn same(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

impl Security {
    /// A fresh handshake and its encoded `HELO`.
    pub(crate) fn helo(&self) -> Result<(Handshake, Vec<u8>), String> {
        let nonce = random16()?;
        let auth_salt = if self.users.is_empty() {
            Vec::new()
        } else {
            random16()?.to_vec()
        };
        let mut buf = Vec::new();
        let _ = rmp::encode::write_array_len(&mut buf, 2);
        let _ = rmp::encode::write_str(&mut buf, "HELO");
        let _ = rmp::encode::write_map_len(&mut buf, 3);
        let _ = rmp::encode::write_str(&mut buf, "nonce");
        // Raw bytes as str, as Fluent Bit sends them.
        let _ = rmp::encode::write_str_len(&mut buf, nonce.len() as u32);
        buf.extend_from_slice(&nonce);
        let _ = rmp::encode::write_str(&mut buf, "auth");
        let _ = rmp::encode::write_str_len(&mut buf, auth_salt.len() as u32);
        buf.extend_from_slice(&auth_salt);
        let _ = rmp::encode::write_str(&mut buf, "keepalive");
        let _ = rmp::encode::write_bool(&mut buf, true);
        Ok((Handshake { nonce, auth_salt }, buf))
    }

    /// Check a `PING`: `Ok(pong)` when authenticated, else the reason and the failure `PONG`.
    pub(crate) fn check(
        &self,
        hs: &Handshake,
        ping: &Ping<'_>,
    ) -> Result<Vec<u8>, (String, Vec<u8>)> {
        let key = self.shared_key.as_bytes();
        let expected = sha512_hex(&[ping.shared_key_salt, ping.hostname, &hs.nonce, key]);
        if !same(expected.as_bytes(), ping.shared_key_digest) {
            return Err(failure("shared_key mismatch"));
        }
        if !self.users.is_empty() {
            let user = self
                .users
                .iter()
                .find(|(u, _)| u.as_bytes() == ping.username);
            let ok = user.is_some_and(|(u, p)| {
                let d = sha512_hex(&[&hs.auth_salt, u.as_bytes(), p.as_bytes()]);
                same(d.as_bytes(), ping.password_digest)
            });
            if !ok {
                return Err(failure("username/password mismatch"));
            }
        }
        let host = self.self_hostname.as_bytes();
        let digest = sha512_hex(&[ping.shared_key_salt, host, &hs.nonce, key]);
        Ok(pong(true, "", &self.self_hostname, &digest))
    }
}

fn failure(reason: &str) -> (String, Vec<u8>) {
    (reason.to_string(), pong(false, reason, "", ""))
}

fn pong(ok: bool, reason: &str, host: &str, digest: &str) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = rmp::encode::write_array_len(&mut buf, 5);
    let _ = rmp::encode::write_str(&mut buf, "PONG");
    let _ = rmp::encode::write_bool(&mut buf, ok);
    let _ = rmp::encode::write_str(&mut buf, reason);
    let _ = rmp::encode::write_str(&mut buf, host);
    let _ = rmp::encode::write_str(&mut buf, digest);
    buf
}
