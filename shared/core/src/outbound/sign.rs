//! Standard Webhooks signing: `v1,` and the base64 HMAC-SHA256 of
//! `<webhook-id>.<webhook-timestamp>.<body>` under the key a `whsec_`
//! secret carries.

use base64::Engine;

use crate::hooks::auth::{mac, standard_webhooks_key};
use crate::ports::PortError;

/// A fresh `whsec_` secret of 24 random bytes.
pub fn new_signing_secret() -> Result<String, PortError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| PortError::retryable("random", e.to_string()))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// The `webhook-signature` value: one `v1,` signature per secret, space
/// separated, so a receiver holding either secret of a rotation verifies.
/// A secret that is not `whsec_` and base64 signs nothing.
pub fn signature_header(secrets: &[&str], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    secrets
        .iter()
        .filter_map(|secret| standard_webhooks_key(secret.as_bytes()))
        .map(|key| {
            let digest = mac(&key, &[message_id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(digest))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn signs_the_specifications_example() {
        let header = signature_header(
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn signs_with_every_secret_of_a_rotation() {
        let old = new_signing_secret().expect("secret");
        let new = new_signing_secret().expect("secret");
        let header = signature_header(&[&new, &old], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature_header(&[&new], "msg_1", 1, b"{}"));
        assert_eq!(parts[1], signature_header(&[&old], "msg_1", 1, b"{}"));
    }
}
