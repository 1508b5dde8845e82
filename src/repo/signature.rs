//! `repomd.xml.asc`: a detached OpenPGP signature over `repomd.xml`, checked against the
//! repository's `gpgkey` (the primary key or any of its subkeys may have signed).

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};

/// Verifies `sig` (armored or binary) over `data` with the armored or binary key `key`.
pub fn verify(key: &[u8], sig: &[u8], data: &[u8]) -> Result<(), String> {
    let key = if key.starts_with(b"-----") {
        SignedPublicKey::from_armor_single(key).map(|(k, _)| k)
    } else {
        SignedPublicKey::from_bytes(key)
    }
    .map_err(|e| format!("cannot parse the key: {e}"))?;
    let sig = if sig.starts_with(b"-----") {
        DetachedSignature::from_armor_single(sig).map(|(s, _)| s)
    } else {
        DetachedSignature::from_bytes(sig)
    }
    .map_err(|e| format!("cannot parse repomd.xml.asc: {e}"))?;
    if sig.verify(&key.primary_key, data).is_ok() {
        return Ok(());
    }
    if key
        .public_subkeys
        .iter()
        .any(|sk| sig.verify(&sk.key, data).is_ok())
    {
        return Ok(());
    }
    Err("the signature does not match repomd.xml under the configured key".into())
}
