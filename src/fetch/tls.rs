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
    let inner = if certs.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone()).map_err(setup)?
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(certs.clone(), provider.clone())
            .map_err(setup)?
    };
    let verifier = Pinned {
        pinned: certs,
        inner: Arc::new(inner),
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

/// Accepts a pinned certificate presented as the server's own; defers everything else.
#[derive(Debug)]
struct Pinned {
    pinned: Vec<CertificateDer<'static>>,
    inner: Arc<dyn ServerCertVerifier>,
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
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
