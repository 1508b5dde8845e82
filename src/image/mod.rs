//! Image: OCI image references (and, with the image stage, config, manifest and layout).

pub mod oci;
pub mod reference;

pub use reference::ImageRef;
