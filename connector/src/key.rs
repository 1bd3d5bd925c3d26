//! [`Key32`]: a 32-byte secret key (AES-256 or HMAC) read from configuration, redacted in
//! `Debug` and zeroized on drop. Its own module so that the configuration and the parts that
//! use keys (the audit chain, the token cache, cursors) need not import each other.

use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox};

/// A 32-byte key (AES-256 or HMAC), redacted and zeroized.
#[derive(Clone)]
pub struct Key32(std::sync::Arc<SecretBox<[u8; 32]>>);

impl Key32 {
    /// Decodes standard or URL-safe base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| "is not valid base64".to_owned())?;
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("decodes to {} bytes, expected 32", bytes.len()))?;
        Ok(Self(std::sync::Arc::new(SecretBox::new(Box::new(array)))))
    }
    /// # Security
    /// Key material: never log it.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Key32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key32([redacted])")
    }
}
