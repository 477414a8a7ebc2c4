//! The `.aes` layer of opsiconfd: the marker `{aes-256-gcm-sha256}`, a 32-byte salt, the
//! 16-byte GCM tag, a 16-byte nonce, then the ciphertext. The key is PBKDF2-HMAC-SHA256 of
//! the password (200,000 iterations, 32 bytes); AES-256-GCM with that 16-byte nonce
//! (GHASH-derived counter, which is why the cipher type names the nonce size) and no
//! associated data. GCM authenticates the whole ciphertext at once, so the layer is undone in
//! memory, in place.

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce, Tag};

use crate::error::{Error, Result};

pub const MARKER: &[u8] = b"{aes-256-gcm-sha256}";
const SALT: usize = 32;
const TAG: usize = 16;
const NONCE: usize = 16;
const ITERATIONS: u32 = 200_000;

type Cipher = AesGcm<Aes256, U16>;

/// A password as opsiconfd's key derivation sees it: opsiconfd passes its text to
/// PyCryptodome's PBKDF2, which encodes text as Latin-1, so `ä` is one byte (0xe4), not
/// UTF-8's two. Kept out of `Debug` output.
pub struct Password(Vec<u8>);

impl Password {
    /// A password typed or kept as text (UTF-8), in opsiconfd's Latin-1 bytes. Bytes that are
    /// not UTF-8 are taken as they are (already Latin-1); characters beyond Latin-1 are refused:
    /// opsiconfd cannot use them either.
    pub fn from_text(bytes: Vec<u8>) -> Result<Password> {
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => return Ok(Password(e.into_bytes())),
        };
        text.chars()
            .map(|c| u8::try_from(u32::from(c)))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map(Password)
            .map_err(|_| {
                Error::Invalid(
                    "the password has characters outside Latin-1, which opsiconfd cannot \
                     use for its backups"
                        .into(),
                )
            })
    }

    /// A password file's content: one trailing line break is not part of the password.
    pub fn from_file_content(mut bytes: Vec<u8>) -> Result<Password> {
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        Password::from_text(bytes)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

fn cipher(password: &Password, salt: &[u8]) -> Cipher {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(&password.0, salt, ITERATIONS, &mut key);
    Cipher::new(&key.into())
}

/// True when `head` starts like an encrypted file.
pub fn is_encrypted(head: &[u8]) -> bool {
    head.starts_with(MARKER)
}

/// Decrypts a whole `.aes` file in place: afterwards `data` holds the plaintext. A wrong
/// password and a changed byte both fail the tag check and leave an error, not data.
pub fn decrypt(data: &mut Vec<u8>, password: &Password, name: &str) -> Result<()> {
    let head = MARKER.len() + SALT + TAG + NONCE;
    if !data.starts_with(MARKER) {
        return Err(Error::Invalid(format!(
            "{name} is not an encrypted opsiconfd backup"
        )));
    }
    if data.len() < head {
        return Err(Error::Corrupt(format!(
            "{name} is truncated: {} bytes, shorter than the encryption header ({head} bytes)",
            data.len()
        )));
    }
    let salt_at = MARKER.len();
    let salt = data[salt_at..salt_at + SALT].to_vec();
    let tag = *Tag::<U16>::from_slice(&data[salt_at + SALT..salt_at + SALT + TAG]);
    let nonce = *Nonce::<U16>::from_slice(&data[salt_at + SALT + TAG..head]);
    data.drain(..head);
    cipher(password, &salt)
        .decrypt_in_place_detached(&nonce, b"", data, &tag)
        .map_err(|_| {
            data.clear();
            Error::Invalid(format!(
                "cannot decrypt {name}: wrong password, or the file was truncated or altered \
                 (the AES-GCM tag does not match)"
            ))
        })
}

/// Encrypts `data` in place into a whole `.aes` file, with a fresh salt and nonce.
pub fn encrypt(data: &mut Vec<u8>, password: &Password) -> Result<()> {
    let mut salt = [0u8; SALT];
    let mut nonce = [0u8; NONCE];
    OsRng
        .try_fill_bytes(&mut salt)
        .and_then(|()| OsRng.try_fill_bytes(&mut nonce))
        .map_err(|e| Error::Invalid(format!("no random bytes for the encryption: {e}")))?;
    let nonce = *Nonce::<U16>::from_slice(&nonce);
    let tag = cipher(password, &salt)
        .encrypt_in_place_detached(&nonce, b"", data)
        .map_err(|_| Error::Invalid("the backup is too large to encrypt".into()))?;
    let mut head = Vec::with_capacity(MARKER.len() + SALT + TAG + NONCE);
    head.extend_from_slice(MARKER);
    head.extend_from_slice(&salt);
    head.extend_from_slice(&tag);
    head.extend_from_slice(&nonce);
    data.splice(0..0, head);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_password() {
        let pw = Password::from_text(b"secret".to_vec()).unwrap();
        let mut data = b"hello opsi".to_vec();
        encrypt(&mut data, &pw).unwrap();
        assert!(is_encrypted(&data));
        assert_eq!(data.len(), 20 + 64 + 10);
        let mut copy = data.clone();
        decrypt(&mut copy, &pw, "x").unwrap();
        assert_eq!(copy, b"hello opsi");
        let mut copy = data.clone();
        let e = decrypt(
            &mut copy,
            &Password::from_text(b"other".to_vec()).unwrap(),
            "x",
        )
        .unwrap_err();
        assert!(e.to_string().contains("wrong password"), "{e}");
        let mut tampered = data.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(decrypt(&mut tampered, &pw, "x").is_err());
        let mut short = data[..50].to_vec();
        assert!(decrypt(&mut short, &pw, "x")
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }

    #[test]
    fn password_file_loses_its_line_break_only() {
        let p = |b: &[u8]| Password::from_file_content(b.to_vec()).map(|p| p.0);
        assert_eq!(p(b"a b\r\n").unwrap(), b"a b");
        assert_eq!(p(b"ab \n\n").unwrap(), b"ab \n");
    }

    #[test]
    fn passwords_are_latin_1_as_in_opsiconfd() {
        let p = |b: &[u8]| Password::from_text(b.to_vec()).map(|p| p.0);
        assert_eq!(p("pässwort".as_bytes()).unwrap(), b"p\xe4sswort");
        assert_eq!(p(b"p\xe4ss").unwrap(), b"p\xe4ss");
        assert!(p("pass€".as_bytes()).is_err());
    }
}
