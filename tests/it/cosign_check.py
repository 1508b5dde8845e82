"""An independent check of cosign-format keys and signatures, with PyCA cryptography and
PyNaCl (libsodium), for the tests: Debian's skopeo and podman are built without sigstore
("Debian-local change: sigstore disabled") and cosign is not packaged, so this stands in for
them, following cosign's specification (sigstore/cosign specifications.md).

  cosign_check.py open-key KEY PASSWORD
      Decrypt cosign's encrypted private key (scrypt N=32768 r=8 p=1, nacl/secretbox, PKCS#8
      inside); print the curve and the public key PEM.
  cosign_check.py verify SIGDIR PUBKEY DIGEST IDENTITY
      SIGDIR is `skopeo copy docker://REPO:sha256-<hex>.sig dir:SIGDIR`: some layer is a
      simple-signing payload (media type application/vnd.dev.cosign.simplesigning.v1+json)
      whose annotation dev.cosignproject.cosign/signature is an ECDSA P-256/SHA-256 signature
      by PUBKEY, naming DIGEST and IDENTITY. Exit 1 otherwise.
  cosign_check.py sign-dir OUTDIR PKCS8KEY DIGEST IDENTITY
      Write a skopeo `dir:` image OUTDIR holding a cosign signature of DIGEST by PKCS8KEY.
"""

import base64
import hashlib
import json
import os
import re
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
import nacl.secret

PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"


def pem_body(text):
    m = re.search(r"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", text, re.S)
    return m.group(1), base64.b64decode("".join(m.group(2).split()))


def open_key(path, password):
    label, body = pem_body(open(path).read())
    assert label in ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY"), label
    env = json.loads(body)
    assert env["kdf"]["name"] == "scrypt" and env["cipher"]["name"] == "nacl/secretbox", env
    p = env["kdf"]["params"]
    assert (p["N"], p["r"], p["p"]) == (32768, 8, 1), p
    key = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(env["kdf"]["salt"]),
        n=p["N"],
        r=p["r"],
        p=p["p"],
        maxmem=64 * 1024 * 1024,
        dklen=32,
    )
    der = nacl.secret.SecretBox(key).decrypt(
        base64.b64decode(env["ciphertext"]), base64.b64decode(env["cipher"]["nonce"])
    )
    return serialization.load_der_private_key(der, password=None)


def verify(sigdir, pubkey, digest, identity):
    pub = serialization.load_pem_public_key(open(pubkey, "rb").read())
    manifest = json.load(open(os.path.join(sigdir, "manifest.json")))
    problems = []
    for layer in manifest.get("layers", []):
        if layer.get("mediaType") != PAYLOAD_TYPE:
            problems.append(f"layer media type {layer.get('mediaType')}")
            continue
        payload = open(os.path.join(sigdir, layer["digest"].split(":", 1)[1]), "rb").read()
        if "sha256:" + hashlib.sha256(payload).hexdigest() != layer["digest"]:
            problems.append("payload digest mismatch")
            continue
        sig = base64.b64decode(layer.get("annotations", {}).get(SIG_ANNOTATION, ""))
        try:
            pub.verify(sig, payload, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            problems.append("signature does not verify")
            continue
        c = json.loads(payload)["critical"]
        if c["type"] != "cosign container image signature":
            problems.append(f"type {c['type']}")
        elif c["image"]["docker-manifest-digest"] != digest:
            problems.append(f"payload names {c['image']['docker-manifest-digest']}")
        elif c["identity"]["docker-reference"] != identity:
            problems.append(f"identity {c['identity']['docker-reference']}")
        else:
            print("verified")
            return 0
    print("; ".join(problems) or "no layers")
    return 1


def sign_dir(out, keyfile, digest, identity):
    key = serialization.load_pem_private_key(open(keyfile, "rb").read(), password=None)
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": identity},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    sig = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    pd = "sha256:" + hashlib.sha256(payload).hexdigest()
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [pd]}}).encode()
    cd = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "size": len(config), "digest": cd},
        "layers": [{"mediaType": PAYLOAD_TYPE, "size": len(payload), "digest": pd,
                    "annotations": {SIG_ANNOTATION: sig}}],
    }
    os.makedirs(out)
    open(os.path.join(out, "version"), "w").write("Directory Transport Version: 1.1\n")
    open(os.path.join(out, "manifest.json"), "w").write(json.dumps(manifest))
    open(os.path.join(out, pd.split(":")[1]), "wb").write(payload)
    open(os.path.join(out, cd.split(":")[1]), "wb").write(config)
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "open-key":
        k = open_key(sys.argv[2], sys.argv[3])
        print(k.curve.name)
        print(k.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(), end="")
        return 0
    if cmd == "verify":
        return verify(*sys.argv[2:6])
    if cmd == "sign-dir":
        return sign_dir(*sys.argv[2:6])
    print(f"unknown command {cmd}")
    return 2


sys.exit(main())
