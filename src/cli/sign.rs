//! `pbsimage keygen`, `verify`, `policy`, and the `--sign` key of `build`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::args::{KeygenArgs, PolicyArgs, SignArgs, VerifyArgs};
use super::{Env, Result};
use crate::config::Config;
use crate::registry::auth::Secret;
use crate::sign::{PrivateKey, PublicKey};

/// The password of a key: standard input when asked, else `COSIGN_PASSWORD` (cosign's
/// variable; empty is a password too), else none.
fn password(from_stdin: bool) -> Result<Option<Secret>> {
    if from_stdin {
        let mut p = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut p)
            .context("cannot read the key password from standard input")?;
        return Ok(Some(Secret::new(p.trim_end_matches(['\n', '\r']))));
    }
    Ok(std::env::var("COSIGN_PASSWORD").ok().map(Secret::new))
}

/// The key `--sign`/`--sign-key` ask for, loaded (and decrypted) before any work, so that a
/// wrong password fails the build before anything is pushed.
pub(super) fn signing_key(args: &SignArgs, config: &Config) -> Result<Option<PrivateKey>> {
    let path = match (&args.sign_key, args.sign) {
        (Some(k), _) => k.clone(),
        (None, true) => match &config.settings.sign.key {
            Some(k) => config.base_dir.join(k),
            None => {
                return Err(anyhow::anyhow!(
                    "--sign: no [sign] key in {} (or give --sign-key FILE)",
                    config.origin
                )
                .into());
            }
        },
        (None, false) => return Ok(None),
    };
    let pw = password(args.key_password_stdin)?;
    Ok(Some(PrivateKey::load(&path, pw.as_ref())?))
}

pub(super) fn keygen(args: &KeygenArgs, env: &Env<'_>) -> Result<()> {
    let pw = password(args.password_stdin)?.ok_or_else(|| {
        anyhow::anyhow!(
            "keygen: give the new key's password in COSIGN_PASSWORD or with --password-stdin"
        )
    })?;
    let (private, public) = crate::sign::generate(&pw);
    let with = |ext: &str| -> PathBuf {
        let mut p = args.output_key_prefix.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    let (key, pubkey) = (with(".key"), with(".pub"));
    for p in [&key, &pubkey] {
        if p.exists() {
            return Err(anyhow::anyhow!("{} exists; not overwritten", p.display()).into());
        }
    }
    write_private(&key, private.as_bytes())?;
    crate::ops::outputs::write_file(&pubkey, public.as_bytes())?;
    env.printer.note(&format!(
        "private key written to {} (encrypted), public key to {}",
        key.display(),
        pubkey.display()
    ));
    Ok(())
}

/// Writes the private key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub(super) fn verify(args: &VerifyArgs, env: &Env<'_>) -> Result<()> {
    let image = crate::image::ImageRef::parse(&args.reference)?;
    let Some(host) = image.registry.clone() else {
        return Err(anyhow::anyhow!(
            "verify: `{}` names no registry (host[:port]/repository[:tag|@digest])",
            args.reference
        )
        .into());
    };
    let repository = image
        .repository
        .strip_prefix(&format!("{host}/"))
        .unwrap_or(&image.repository)
        .to_owned();
    let reference = image
        .digest
        .clone()
        .or(image.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let key = PublicKey::load(&args.key)?;
    let ctx = env.context(false)?;
    let target = crate::ops::push::PushTarget {
        host,
        plain_http: args.plain_http,
        credentials: crate::registry::auth::CredentialChain::new(None),
        shard: None,
    };
    let v = crate::ops::sign::verify(&ctx, &target, &repository, &reference, &key)?;
    if args.json {
        env.printer.json(&v);
    } else {
        env.printer.data(&format!(
            "{}: signed by {} (signature {}, identity {})",
            v.reference,
            args.key.display(),
            v.tag,
            v.identity
        ));
    }
    Ok(())
}

pub(super) fn policy(args: &PolicyArgs, env: &Env<'_>) -> Result<()> {
    let pem = PublicKey::load(&args.key)?.pem();
    let scope = args.scope.trim_end_matches('/');
    let out = &args.output;
    let key_copy =
        std::path::absolute(out.join("pbsimage.pub")).unwrap_or(out.join("pbsimage.pub"));
    let files = crate::sign::policy_files(scope, &key_copy, &pem);
    crate::ops::outputs::write_file(&key_copy, pem.as_bytes())?;
    for (name, text) in files {
        crate::ops::outputs::write_file(&out.join(name), text.as_bytes())?;
    }
    env.printer.note(&format!(
        "wrote {0}/policy.json, {0}/registries.d/pbsimage.yaml (podman, CRI-O, skopeo: \
         --signature-policy / --registries.d) and {0}/kyverno-policy.yaml for {scope}",
        out.display()
    ));
    Ok(())
}
