//! Sender authentication of inbound hooks, over the raw body before anything
//! parses it. Every comparison of a secret or a signature is constant-time
//! over equal lengths: a signature that decodes to the wrong length (empty,
//! truncated) never verifies.

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{HmacPreset, Hook, HookAuth, SignatureEncoding};

/// How far a signed timestamp may be from now, either way (Standard
/// Webhooks and Stripe both use five minutes).
pub const TIMESTAMP_TOLERANCE_S: i64 = 300;

/// Why a request did not authenticate. Logged, never shown to the sender:
/// every refusal answers the same 401 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("header {0} is malformed")]
    Malformed(&'static str),
    #[error("the signed timestamp is more than {TIMESTAMP_TOLERANCE_S} s from now")]
    OutsideTolerance,
    #[error("no live secret matches")]
    Mismatch,
}

/// The first value of header `name` (any case).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Checks the request against every live secret of the hook.
pub fn verify(hook: &Hook, headers: &[(String, String)], body: &[u8], now: DateTime<Utc>) -> Result<(), AuthFailure> {
    let secrets: Vec<&[u8]> = hook.live_secrets(now).map(|s| s.value.as_bytes()).collect();
    match &hook.auth {
        HookAuth::None => Ok(()),
        HookAuth::Bearer => {
            // As much work as an HMAC check, so no mode answers faster.
            spend_like_a_check(body);
            let token = authorization(headers, "Bearer ")?;
            any_equal(&secrets, token.as_bytes())
        }
        HookAuth::Basic { username } => {
            spend_like_a_check(body);
            let encoded = authorization(headers, "Basic ")?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| AuthFailure::Malformed("Authorization"))?;
            let text = String::from_utf8(decoded).map_err(|_| AuthFailure::Malformed("Authorization"))?;
            let (user, password) = text.split_once(':').ok_or(AuthFailure::Malformed("Authorization"))?;
            let user_ok: bool = user.as_bytes().ct_eq(username.as_bytes()).into();
            let password_ok = any_equal(&secrets, password.as_bytes());
            if user_ok {
                password_ok
            } else {
                Err(AuthFailure::Mismatch)
            }
        }
        HookAuth::Hmac {
            preset: Some(HmacPreset::Stripe),
            ..
        } => verify_stripe(&secrets, headers, body, now),
        HookAuth::Hmac {
            preset,
            header: name,
            prefix,
            encoding,
        } => {
            let (name, prefix, encoding) = match preset {
                Some(HmacPreset::Github) => ("X-Hub-Signature-256", "sha256=", SignatureEncoding::Hex),
                Some(HmacPreset::Shopify) => ("X-Shopify-Hmac-Sha256", "", SignatureEncoding::Base64),
                _ => (
                    name.as_deref().unwrap_or("X-Signature"),
                    prefix.as_deref().unwrap_or(""),
                    encoding.unwrap_or(SignatureEncoding::Hex),
                ),
            };
            let value = header(headers, name).ok_or(AuthFailure::MissingHeader("signature"))?;
            let encoded = value
                .trim()
                .strip_prefix(prefix)
                .ok_or(AuthFailure::Malformed("signature"))?;
            let given = decode(encoded, encoding).ok_or(AuthFailure::Malformed("signature"))?;
            any_signature(&secrets, &[body], &[given])
        }
        HookAuth::StandardWebhooks => verify_standard_webhooks(&secrets, headers, body, now),
    }
}

fn authorization<'a>(headers: &'a [(String, String)], scheme: &str) -> Result<&'a str, AuthFailure> {
    let value = header(headers, "Authorization").ok_or(AuthFailure::MissingHeader("Authorization"))?;
    match value.get(..scheme.len()) {
        Some(given) if given.eq_ignore_ascii_case(scheme) => Ok(&value[scheme.len()..]),
        _ => Err(AuthFailure::Malformed("Authorization")),
    }
}

fn any_equal(secrets: &[&[u8]], given: &[u8]) -> Result<(), AuthFailure> {
    // Every secret is compared, so the time does not tell which one matched.
    let matched = secrets
        .iter()
        .fold(subtle::Choice::from(0), |found, secret| found | secret.ct_eq(given));
    if bool::from(matched) && !secrets.is_empty() {
        Ok(())
    } else {
        Err(AuthFailure::Mismatch)
    }
}

/// The work of one signature check over `body`, for a request that will be
/// refused before any check (an unknown or disabled hook): its answer then
/// takes about as long as a failed check, and its timing tells nothing.
pub fn spend_like_a_check(body: &[u8]) {
    std::hint::black_box(mac(b"no hook", &[body]));
}

pub(crate) fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// True when one of `given` is the HMAC of `parts` under one of the keys.
/// A signature that is not exactly 32 bytes is never compared.
fn any_signature(keys: &[&[u8]], parts: &[&[u8]], given: &[Vec<u8>]) -> Result<(), AuthFailure> {
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        let expected = mac(key, parts);
        for signature in given.iter().filter(|s| s.len() == expected.len()) {
            matched |= expected.ct_eq(signature.as_slice());
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(AuthFailure::Mismatch)
    }
}

fn decode(text: &str, encoding: SignatureEncoding) -> Option<Vec<u8>> {
    match encoding {
        SignatureEncoding::Hex => decode_hex(text),
        SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn within_tolerance(timestamp: &str, now: DateTime<Utc>) -> Result<(), AuthFailure> {
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| AuthFailure::Malformed("timestamp"))?;
    if now.timestamp().abs_diff(at) > TIMESTAMP_TOLERANCE_S.unsigned_abs() {
        return Err(AuthFailure::OutsideTolerance);
    }
    Ok(())
}

/// `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `<t>.<body>`.
fn verify_stripe(
    secrets: &[&[u8]],
    headers: &[(String, String)],
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), AuthFailure> {
    let value = header(headers, "Stripe-Signature").ok_or(AuthFailure::MissingHeader("Stripe-Signature"))?;
    let mut timestamp = None;
    let mut signatures = vec![];
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", hex)) => signatures.push(decode_hex(hex).ok_or(AuthFailure::Malformed("Stripe-Signature"))?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(AuthFailure::Malformed("Stripe-Signature"))?;
    within_tolerance(timestamp, now)?;
    any_signature(secrets, &[timestamp.as_bytes(), b".", body], &signatures)
}

/// Standard Webhooks: `<webhook-id>.<webhook-timestamp>.<body>` signed with
/// the base64 key after `whsec_`; `webhook-signature` holds space-separated
/// `v1,<base64>` signatures (other versions are skipped).
fn verify_standard_webhooks(
    secrets: &[&[u8]],
    headers: &[(String, String)],
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), AuthFailure> {
    let id = header(headers, "webhook-id").ok_or(AuthFailure::MissingHeader("webhook-id"))?;
    let timestamp = header(headers, "webhook-timestamp").ok_or(AuthFailure::MissingHeader("webhook-timestamp"))?;
    let signature = header(headers, "webhook-signature").ok_or(AuthFailure::MissingHeader("webhook-signature"))?;
    within_tolerance(timestamp, now)?;
    let signatures: Vec<Vec<u8>> = signature
        .split_whitespace()
        .filter_map(|item| item.strip_prefix("v1,"))
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    let keys: Vec<Vec<u8>> = secrets.iter().filter_map(|s| standard_webhooks_key(s)).collect();
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let timestamp = timestamp.trim();
    any_signature(
        &keys,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        &signatures,
    )
}

/// The key bytes of a `whsec_<base64>` secret.
pub fn standard_webhooks_key(secret: &[u8]) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(b"whsec_")?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{EventIdSource, HookKind, HookSecret, HookStatus, HOOK_FORMAT};

    const BODY: &[u8] = br#"{"ok":true}"#;

    fn hook(auth: HookAuth, secret: &str) -> Hook {
        let now = Utc::now();
        Hook {
            format: HOOK_FORMAT,
            id: "hk_1".into(),
            workspace_id: "ws".into(),
            name: "t".into(),
            kind: HookKind::Webhook,
            trigger_type: "Hook.t".into(),
            siteid: None,
            cardid: None,
            event_id: EventIdSource::Generated,
            auth,
            status: HookStatus::Enabled,
            max_body_bytes: 1024,
            rate_limit: 10,
            redirect_url: None,
            secrets: vec![HookSecret {
                id: "hs_1".into(),
                value: secret.into(),
                created_at: now,
                expires_at: None,
            }],
            revision: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn github_signatures_verify_and_tampering_does_not() {
        let hook = hook(
            HookAuth::Hmac {
                preset: Some(HmacPreset::Github),
                header: None,
                prefix: None,
                encoding: None,
            },
            "s3cret",
        );
        let good = format!("sha256={}", hex(&mac(b"s3cret", &[BODY])));
        let now = Utc::now();
        assert_eq!(
            verify(&hook, &headers(&[("x-hub-signature-256", &good)]), BODY, now),
            Ok(())
        );
        assert_eq!(
            verify(&hook, &headers(&[("X-Hub-Signature-256", &good)]), b"{}", now),
            Err(AuthFailure::Mismatch)
        );
        let truncated = &good[..good.len() - 2];
        assert!(verify(&hook, &headers(&[("X-Hub-Signature-256", truncated)]), BODY, now).is_err());
        assert_eq!(
            verify(&hook, &headers(&[]), BODY, now),
            Err(AuthFailure::MissingHeader("signature"))
        );
    }

    #[test]
    fn standard_webhooks_refuses_empty_and_truncated_signatures_and_old_timestamps() {
        let key = [7u8; 24];
        let secret = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key));
        let hook = hook(HookAuth::StandardWebhooks, &secret);
        let now = Utc::now();
        let ts = now.timestamp().to_string();
        let sig = base64::engine::general_purpose::STANDARD.encode(mac(&key, &[b"msg_1.", ts.as_bytes(), b".", BODY]));
        let signed = |signature: &str, ts: &str| {
            headers(&[
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", ts),
                ("webhook-signature", signature),
            ])
        };
        let good = format!("v1,bm90IGl0 v1,{sig}");
        assert_eq!(verify(&hook, &signed(&good, &ts), BODY, now), Ok(()));
        assert_eq!(
            verify(&hook, &signed("v1,", &ts), BODY, now),
            Err(AuthFailure::Mismatch)
        );
        let truncated = format!("v1,{}", &sig[..20]);
        assert_eq!(
            verify(&hook, &signed(&truncated, &ts), BODY, now),
            Err(AuthFailure::Mismatch)
        );
        // The boundary, with the clock fixed: ±300 s verify, ±301 s do not.
        let at = |offset: i64| {
            let ts = (now.timestamp() + offset).to_string();
            let sig =
                base64::engine::general_purpose::STANDARD.encode(mac(&key, &[b"msg_1.", ts.as_bytes(), b".", BODY]));
            verify(&hook, &signed(&format!("v1,{sig}"), &ts), BODY, now)
        };
        assert_eq!((at(-300), at(300)), (Ok(()), Ok(())));
        assert_eq!(
            (at(-301), at(301)),
            (Err(AuthFailure::OutsideTolerance), Err(AuthFailure::OutsideTolerance))
        );
        assert_eq!(
            verify(&hook, &signed(&good, &i64::MIN.to_string()), BODY, now),
            Err(AuthFailure::OutsideTolerance),
            "no overflow"
        );
    }

    #[test]
    fn an_expired_secret_no_longer_verifies() {
        let mut hook = hook(HookAuth::Bearer, "tok");
        let now = Utc::now();
        let bearer = headers(&[("Authorization", "Bearer tok")]);
        assert_eq!(verify(&hook, &bearer, BODY, now), Ok(()));
        hook.secrets[0].expires_at = Some(now);
        assert_eq!(verify(&hook, &bearer, BODY, now), Err(AuthFailure::Mismatch));
    }
}
