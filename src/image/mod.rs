//! Image: OCI image references, config, manifest and layout, and what the image holds
//! (rpm manifest, SBOM, library path).

pub mod oci;
pub mod packages;
pub mod reference;

pub use reference::ImageRef;
