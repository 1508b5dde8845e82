//! Signing: sigstore (cosign-format) signatures of pushed images, made and checked here, in
//! the formats standard verifiers read (skopeo/podman `sigstoreSigned`, cosign, Kyverno).
//!
//! - Keys: cosign's encrypted private key (`ENCRYPTED SIGSTORE PRIVATE KEY` or the older
//!   `ENCRYPTED COSIGN PRIVATE KEY`: a JSON envelope of scrypt N=32768 r=8 p=1 over the
//!   password, nacl/secretbox around the PKCS#8 DER key), or a plain PKCS#8 / SEC1 P-256 PEM;
//!   public keys are PKIX `PUBLIC KEY` PEM. [`generate`] writes a pair in cosign's format.
//! - The signed payload is the "simple signing" JSON naming the image's manifest digest and
//!   repository ([`payload`]); the signature is ECDSA P-256 over its SHA-256, DER, base64.
//! - It is stored as cosign stores it ([`SignatureImage`]): an OCI manifest at tag
//!   `sha256-<hex>.sig` in the image's repository, whose one layer is the payload, with the
//!   signature in annotation `dev.cosignproject.cosign/signature`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_secretbox::aead::{Aead, KeyInit};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::digest::sha256_digest_of as sha256;
use crate::registry::auth::Secret;

/// The payload layer's media type (cosign's simple signing).
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The PEM label `cosign generate-key-pair` writes (and pbsimage).
pub const ENCRYPTED_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label of older cosign keys, still read.
pub const LEGACY_ENCRYPTED_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";

const SCRYPT_N: u32 = 32768;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

/// Why a key cannot be used, or a signature does not verify.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key file cannot be read or written.
    #[error("cannot {what} the key file {path}")]
    Io {
        /// read or write.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a PEM file pbsimage knows.
    #[error("{path} is not a key pbsimage can use: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// An encrypted key without a password.
    #[error("{path} is encrypted and no password was given")]
    NoPassword {
        /// The file.
        path: PathBuf,
    },
    /// The password does not open the key.
    #[error("the password does not decrypt {path}")]
    Password {
        /// The file.
        path: PathBuf,
    },
    /// A key of another algorithm or curve.
    #[error("{path} is not an ECDSA P-256 key: {why}")]
    Curve {
        /// The file.
        path: PathBuf,
        /// What the key is.
        why: String,
    },
    /// The signature does not verify.
    #[error("the signature of {what} does not verify with the key {key}")]
    Mismatch {
        /// What was signed.
        what: String,
        /// The public key's file.
        key: PathBuf,
    },
    /// The payload is not a simple-signing payload for this image.
    #[error("the signed payload {why}")]
    Payload {
        /// What is wrong.
        why: String,
    },
}

impl crate::hint::Hint for SignError {
    fn hint(&self) -> Option<String> {
        match self {
            SignError::NoPassword { .. } => Some(
                "give the password with --key-password-stdin or COSIGN_PASSWORD (it is never \
                 printed)"
                    .into(),
            ),
            SignError::Password { .. } => {
                Some("check COSIGN_PASSWORD / --key-password-stdin for this key".into())
            }
            SignError::Curve { .. } | SignError::Format { .. } => Some(
                "use a key from `pbsimage keygen` or `cosign generate-key-pair`, or a PKCS#8 \
                 P-256 PEM (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)"
                    .into(),
            ),
            SignError::Mismatch { .. } => {
                Some("the image was signed by another key, or changed after signing".into())
            }
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u32,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// cosign's encrypted key envelope.
#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the system random source works");
    b
}

fn box_key(password: &[u8], salt: &[u8], n: u32, r: u32, p: u32) -> Option<[u8; 32]> {
    let params = scrypt::Params::new(u8::try_from(n.trailing_zeros()).ok()?, r, p).ok()?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key).ok()?;
    Some(key)
}

/// The PEM blocks of `text`: (label, DER).
fn pem_blocks(text: &str) -> Vec<(String, Result<Vec<u8>, base64::DecodeError>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(end_label) = after.find("-----") else {
            break;
        };
        let label = after[..end_label].to_owned();
        let body_start = &after[end_label + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body_start.find(&end_marker) else {
            break;
        };
        let body: String = body_start[..end]
            .lines()
            .filter(|l| !l.contains(':'))
            .collect::<Vec<_>>()
            .join("")
            .split_whitespace()
            .collect();
        out.push((label, B64.decode(body)));
        rest = &body_start[end + end_marker.len()..];
    }
    out
}

/// A private key and where it came from.
pub struct PrivateKey {
    key: SigningKey,
    /// The file.
    pub path: PathBuf,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.path.display())
    }
}

impl PrivateKey {
    /// Reads the key at `path`: cosign's encrypted format (with `password`), or PKCS#8/SEC1.
    pub fn load(path: &Path, password: Option<&Secret>) -> Result<PrivateKey, SignError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignError::Io {
            what: "read",
            path: path.to_owned(),
            source,
        })?;
        let format = |why: &str| SignError::Format {
            path: path.to_owned(),
            why: why.to_owned(),
        };
        let curve = |e: p256::pkcs8::Error| SignError::Curve {
            path: path.to_owned(),
            why: match e {
                p256::pkcs8::Error::KeyMalformed(_) => "the key is malformed".into(),
                other => other.to_string(),
            },
        };
        let blocks = pem_blocks(&text);
        let Some((label, der)) = blocks.into_iter().next() else {
            return Err(format("no PEM block"));
        };
        let der = der.map_err(|_| format("the PEM body is not base64"))?;
        let key = match label.as_str() {
            ENCRYPTED_LABEL | LEGACY_ENCRYPTED_LABEL => {
                let env: Envelope = serde_json::from_slice(&der)
                    .map_err(|e| format(&format!("the encrypted envelope is not cosign's: {e}")))?;
                if env.kdf.name != "scrypt" || env.cipher.name != "nacl/secretbox" {
                    return Err(format(&format!(
                        "kdf {} / cipher {} (cosign's are scrypt / nacl/secretbox)",
                        env.kdf.name, env.cipher.name
                    )));
                }
                let p = &env.kdf.params;
                // The parameters cosign writes; others would let a file make us spin.
                if (p.n, p.r, p.p) != (SCRYPT_N, SCRYPT_R, SCRYPT_P) {
                    return Err(format("unexpected scrypt parameters"));
                }
                let password = password.ok_or_else(|| SignError::NoPassword {
                    path: path.to_owned(),
                })?;
                let salt = B64
                    .decode(&env.kdf.salt)
                    .map_err(|_| format("the salt is not base64"))?;
                let nonce = B64
                    .decode(&env.cipher.nonce)
                    .ok()
                    .filter(|n| n.len() == 24)
                    .ok_or_else(|| format("the nonce is not 24 bytes of base64"))?;
                let sealed = B64
                    .decode(&env.ciphertext)
                    .map_err(|_| format("the ciphertext is not base64"))?;
                let k = box_key(password.expose().as_bytes(), &salt, p.n, p.r, p.p)
                    .ok_or_else(|| format("bad scrypt parameters"))?;
                let plain = crypto_secretbox::XSalsa20Poly1305::new(&k.into())
                    .decrypt(nonce.as_slice().into(), sealed.as_slice())
                    .map_err(|_| SignError::Password {
                        path: path.to_owned(),
                    })?;
                SigningKey::from_pkcs8_der(&plain).map_err(curve)?
            }
            "PRIVATE KEY" => SigningKey::from_pkcs8_der(&der).map_err(curve)?,
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der)
                .map(SigningKey::from)
                .map_err(|_| SignError::Curve {
                    path: path.to_owned(),
                    why: "a SEC1 key of another curve, or malformed".into(),
                })?,
            other => {
                return Err(format(&format!(
                    "a PEM `{other}` block is not a private key"
                )));
            }
        };
        Ok(PrivateKey {
            key,
            path: path.to_owned(),
        })
    }

    /// The base64 DER signature of `payload`.
    pub fn sign(&self, payload: &[u8]) -> String {
        let sig: DerSignature = self.key.sign(payload);
        B64.encode(sig.as_bytes())
    }

    /// The public key as PKIX PEM.
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 key encodes")
    }
}

/// A public key and where it came from.
pub struct PublicKey {
    key: VerifyingKey,
    /// The file.
    pub path: PathBuf,
}

impl PublicKey {
    /// Reads a PKIX `PUBLIC KEY` PEM.
    pub fn load(path: &Path) -> Result<PublicKey, SignError> {
        let text = std::fs::read_to_string(path).map_err(|source| SignError::Io {
            what: "read",
            path: path.to_owned(),
            source,
        })?;
        let key = VerifyingKey::from_public_key_pem(&text).map_err(|e| SignError::Curve {
            path: path.to_owned(),
            why: e.to_string(),
        })?;
        Ok(PublicKey {
            key,
            path: path.to_owned(),
        })
    }

    /// The key as PKIX PEM.
    pub fn pem(&self) -> String {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 key encodes")
    }

    /// Checks a cosign signature of the image manifest `digest`: `sig` signs `payload`, a
    /// simple-signing payload for that digest. Returns the identity it names.
    pub fn check(
        &self,
        what: &str,
        payload: &[u8],
        sig: &str,
        digest: &str,
    ) -> Result<String, SignError> {
        self.verify(what, payload, sig)?;
        check_payload(payload, digest)?;
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
        Ok(v["critical"]["identity"]["docker-reference"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Checks the base64 DER signature `sig` of `payload`.
    pub fn verify(&self, what: &str, payload: &[u8], sig: &str) -> Result<(), SignError> {
        let mismatch = || SignError::Mismatch {
            what: what.to_owned(),
            key: self.path.clone(),
        };
        let der = B64.decode(sig.trim()).map_err(|_| mismatch())?;
        let sig = DerSignature::try_from(der.as_slice()).map_err(|_| mismatch())?;
        self.key.verify(payload, &sig).map_err(|_| mismatch())
    }
}

/// A new key pair in cosign's format: the encrypted private key (PEM) and the public key.
pub fn generate(password: &Secret) -> (String, String) {
    let key = loop {
        if let Ok(k) = SigningKey::from_slice(&random::<32>()) {
            break k;
        }
    };
    let der = key.to_pkcs8_der().expect("a P-256 key encodes");
    let salt = random::<32>();
    let nonce = random::<24>();
    let k = box_key(
        password.expose().as_bytes(),
        &salt,
        SCRYPT_N,
        SCRYPT_R,
        SCRYPT_P,
    )
    .expect("cosign's scrypt parameters are valid");
    let sealed = crypto_secretbox::XSalsa20Poly1305::new(&k.into())
        .encrypt(nonce.as_slice().into(), der.as_bytes())
        .expect("secretbox seals");
    let env = Envelope {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: SCRYPT_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(sealed),
    };
    let body = B64.encode(serde_json::to_vec(&env).expect("plain data serializes"));
    let mut pem = format!("-----BEGIN {ENCRYPTED_LABEL}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {ENCRYPTED_LABEL}-----\n"));
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("a P-256 key encodes");
    (pem, public)
}

/// The simple-signing payload for the image `repository` (`host/path`, no tag) with manifest
/// `digest`, as cosign writes it.
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": { "docker-reference": repository },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("plain data serializes")
}

/// Checks that `payload` is a simple-signing payload for manifest `digest`.
pub fn check_payload(payload: &[u8], digest: &str) -> Result<(), SignError> {
    let bad = |why: String| SignError::Payload { why };
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| bad(format!("is not JSON: {e}")))?;
    let c = &v["critical"];
    if c["type"] != "cosign container image signature" {
        return Err(bad(format!("has type {}", c["type"])));
    }
    match c["image"]["docker-manifest-digest"].as_str() {
        Some(d) if d == digest => Ok(()),
        other => Err(bad(format!(
            "names manifest {}, not {digest}",
            other.unwrap_or("none")
        ))),
    }
}

/// The signed layers of a `.sig` manifest (`tag`): (payload digest, base64 signature).
pub fn signature_layers(tag: &str, manifest: &[u8]) -> Result<Vec<(String, String)>, SignError> {
    let m: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|e| SignError::Payload {
            why: format!("manifest {tag} is not JSON: {e}"),
        })?;
    Ok(m["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            Some((
                l["digest"].as_str()?.to_owned(),
                l["annotations"][SIGNATURE_ANNOTATION].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// The tag cosign stores the signatures of manifest `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// A signature as an OCI image, ready to push: config, payload layer, manifest, tag.
#[derive(Debug, Clone)]
pub struct SignatureImage {
    /// The config blob and its digest.
    pub config: (Vec<u8>, String),
    /// The payload blob and its digest.
    pub payload: (Vec<u8>, String),
    /// The manifest's bytes and digest.
    pub manifest: (Vec<u8>, String),
    /// `sha256-<hex>.sig`.
    pub tag: String,
}

/// The `.sig` image of the image with manifest `digest`: `payload` signed as `signature`.
pub fn signature_image(digest: &str, payload: Vec<u8>, signature: &str) -> SignatureImage {
    let payload_digest = sha256(&payload);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [payload_digest] },
    }))
    .expect("plain data serializes");
    let config_digest = sha256(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "digest": config_digest,
        },
        "layers": [{
            "mediaType": PAYLOAD_MEDIA_TYPE,
            "size": payload.len(),
            "digest": payload_digest,
            "annotations": { SIGNATURE_ANNOTATION: signature },
        }],
    }))
    .expect("plain data serializes");
    let manifest_digest = sha256(&manifest);
    SignatureImage {
        config: (config, config_digest),
        payload: (payload, payload_digest),
        manifest: (manifest, manifest_digest),
        tag: signature_tag(digest),
    }
}

/// The OCI 1.1 empty descriptor's blob (`{}`) and media type.
pub const EMPTY_CONFIG: (&[u8], &str) = (b"{}", "application/vnd.oci.empty.v1+json");

/// An artifact attached to an image (OCI 1.1: a manifest whose `subject` is the image).
#[derive(Debug, Clone)]
pub struct Artifact {
    /// `application/spdx+json`, `application/vnd.in-toto+json`.
    pub artifact_type: &'static str,
    /// The one blob and its digest.
    pub blob: (Vec<u8>, String),
    /// The manifest's bytes and digest.
    pub manifest: (Vec<u8>, String),
}

/// The artifact manifest carrying `blob` (of `artifact_type`) for the image manifest
/// `subject` (`sha256:...`, `subject_size` bytes).
pub fn artifact(
    subject: &str,
    subject_size: usize,
    artifact_type: &'static str,
    blob: Vec<u8>,
) -> Artifact {
    let blob_digest = sha256(&blob);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": {
            "mediaType": EMPTY_CONFIG.1,
            "size": EMPTY_CONFIG.0.len(),
            "digest": sha256(EMPTY_CONFIG.0),
            "data": B64.encode(EMPTY_CONFIG.0),
        },
        "layers": [{
            "mediaType": artifact_type,
            "size": blob.len(),
            "digest": blob_digest,
        }],
        "subject": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": subject_size,
            "digest": subject,
        },
    }))
    .expect("plain data serializes");
    let manifest_digest = sha256(&manifest);
    Artifact {
        artifact_type,
        blob: (blob, blob_digest),
        manifest: (manifest, manifest_digest),
    }
}

/// The referrers tag schema's tag for `subject`: `sha256-<hex>`.
pub fn referrers_tag(subject: &str) -> String {
    subject.replacen(':', "-", 1)
}

/// The referrers index (tag schema) for `artifacts`, keeping the entries of `existing` (the
/// index the tag names now, if any) that are not among them.
pub fn referrers_index(existing: Option<&[u8]>, artifacts: &[Artifact]) -> Vec<u8> {
    let ours: Vec<&str> = artifacts.iter().map(|a| a.manifest.1.as_str()).collect();
    let mut manifests: Vec<serde_json::Value> = existing
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v["manifests"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["digest"].as_str().is_none_or(|d| !ours.contains(&d)))
        .collect();
    manifests.extend(artifacts.iter().map(|a| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": a.manifest.1,
            "size": a.manifest.0.len(),
            "artifactType": a.artifact_type,
        })
    }));
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .expect("plain data serializes")
}

/// What a cluster needs to admit only images under `scope` (`host[:port][/prefix]`) signed
/// by the public key `pem` (kept at `key_path` on the nodes): containers/image's
/// `policy.json` (`sigstoreSigned`, podman, CRI-O, skopeo) and `registries.d` entry
/// (`use-sigstore-attachments`), and a Kyverno `ClusterPolicy` (`verifyImages`). Other images
/// are left to the node's existing policy (`insecureAcceptAnything` by default here).
pub fn policy_files(scope: &str, key_path: &Path, pem: &str) -> Vec<(&'static str, String)> {
    let policy = serde_json::json!({
        "default": [{ "type": "insecureAcceptAnything" }],
        "transports": {
            "docker": {
                scope: [{
                    "type": "sigstoreSigned",
                    "keyPath": key_path,
                    "signedIdentity": { "type": "matchRepoDigestOrExact" },
                }]
            }
        }
    });
    let registries_d = serde_json::json!({
        "docker": { scope: { "use-sigstore-attachments": true } }
    });
    let kyverno = serde_json::json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": { "name": "pbsimage-signed-images" },
        "spec": {
            "validationFailureAction": "Enforce",
            "webhookTimeoutSeconds": 30,
            "rules": [{
                "name": "pbsimage-signature",
                "match": { "any": [{ "resources": { "kinds": ["Pod"] } }] },
                "verifyImages": [{
                    "imageReferences": [format!("{scope}/*")],
                    "attestors": [{
                        "entries": [{
                            "keys": {
                                "publicKeys": pem.trim_end(),
                                "rekor": { "ignoreTlog": true },
                                "ctlog": { "ignoreSCT": true },
                            }
                        }]
                    }],
                }],
            }],
        }
    });
    let yaml = |v: &serde_json::Value| serde_saphyr::to_string(v).expect("plain data serializes");
    vec![
        (
            "policy.json",
            serde_json::to_string_pretty(&policy).expect("plain data serializes") + "\n",
        ),
        ("registries.d/pbsimage.yaml", yaml(&registries_d)),
        ("kyverno-policy.yaml", yaml(&kyverno)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_signs_and_verifies() {
        let d = tempfile::tempdir().unwrap();
        let password = Secret::new("correct horse");
        let (private, public) = generate(&password);
        assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        std::fs::write(d.path().join("k.key"), &private).unwrap();
        std::fs::write(d.path().join("k.pub"), &public).unwrap();
        let key = PrivateKey::load(&d.path().join("k.key"), Some(&password)).unwrap();
        assert_eq!(key.public_pem(), public);
        let pubkey = PublicKey::load(&d.path().join("k.pub")).unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        let p = payload("reg.example/pbs/fib", &digest);
        let sig = key.sign(&p);
        pubkey.verify("fib", &p, &sig).unwrap();
        check_payload(&p, &digest).unwrap();
        assert!(check_payload(&p, &format!("sha256:{}", "b".repeat(64))).is_err());
        assert!(pubkey.verify("fib", b"other", &sig).is_err());
        // Wrong and missing passwords are told apart.
        assert!(matches!(
            PrivateKey::load(&d.path().join("k.key"), Some(&Secret::new("wrong"))),
            Err(SignError::Password { .. })
        ));
        assert!(matches!(
            PrivateKey::load(&d.path().join("k.key"), None),
            Err(SignError::NoPassword { .. })
        ));
        let img = signature_image(&digest, p, &sig);
        assert_eq!(img.tag, format!("sha256-{}.sig", "a".repeat(64)));
    }
}
