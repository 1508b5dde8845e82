//! TLS trust for repositories and registries: the system's roots, the configured CA
//! bundles, and — as skopeo, podman and docker accept it — a configured certificate that a
//! server presents as its own (a self-signed certificate, its own CA, as `openssl req -x509`
//! makes it and many private registries run).
//!
//! webpki refuses such a certificate as an end entity (`CaUsedAsEndEntity`): a CA may not
//! also be a leaf. pbsimage therefore pins it: when the certificate a server presents is
//! byte for byte one from a configured bundle, and names the host connected to, it is
//! accepted; every other certificate goes through the usual verification (the platform
//! verifier with the bundles as extra roots), unchanged.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::FetchError;

/// Reads every certificate of the PEM bundles; a bundle that cannot be read or holds none is
/// an error naming it.
fn read_bundles(bundles: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>, FetchError> {
    let mut out = Vec::new();
    for path in bundles {
        let pem = std::fs::read(path).map_err(|e| {
            FetchError::Setup(format!("cannot read CA bundle `{}`: {e}", path.display()))
        })?;
        let before = out.len();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            out.push(
                cert.map_err(|e| {
                    FetchError::Setup(format!("CA bundle `{}`: {e}", path.display()))
                })?,
            );
        }
        if out.len() == before {
            return Err(FetchError::Setup(format!(
                "CA bundle `{}` holds no PEM certificate",
                path.display()
            )));
        }
    }
    Ok(out)
}

/// The client configuration: the platform's verification with `bundles` as extra roots, and
/// their certificates pinned as servers' own.
pub(crate) fn client_config(bundles: &[PathBuf]) -> Result<rustls::ClientConfig, FetchError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_bundles(bundles)?;
    let setup = |e: rustls::Error| FetchError::Setup(format!("TLS: {e}"));
    let verifier = Pinned {
        pinned: certs,
        provider: provider.clone(),
        inner: std::sync::OnceLock::new(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts a pinned certificate presented as the server's own; defers everything else to
/// the platform verifier, made on the first certificate to verify (it reads the system's
/// roots: a run that only reads `file://` repositories never pays for it).
#[derive(Debug)]
struct Pinned {
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    inner: std::sync::OnceLock<Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error>>,
}

impl Pinned {
    fn inner(&self) -> Result<&Arc<rustls_platform_verifier::Verifier>, rustls::Error> {
        self.inner
            .get_or_init(|| {
                let p = self.provider.clone();
                if self.pinned.is_empty() {
                    rustls_platform_verifier::Verifier::new(p)
                } else {
                    rustls_platform_verifier::Verifier::new_with_extra_roots(self.pinned.clone(), p)
                }
                .map(Arc::new)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            // The very certificate configured: its name must still be the host's.
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
