"""The local signing identity: a root certificate (the trust anchor) and a leaf key that signs generated files.

Everything lives in one folder (``$GENLAB_HOME/keys``, by default ``~/.genlab/keys``):

* ``key.pem``   the leaf's private key (ECDSA P-256, for C2PA's ES256), mode 0600
* ``chain.pem`` the leaf certificate, then the root certificate
* ``root.pem``  the root certificate alone: share it so that others can verify your files as trusted
* ``trusted/``  optional: other people's ``root.pem`` files (any name ending in ``.pem``) that you choose to trust

The root's private key is used once, to sign the leaf, and never written anywhere: nobody (you included) can mint
another leaf under this root, so a stolen ``key.pem`` is the only thing to guard. Replacing the identity
(``genlab keys init --force``) makes a new root as well.

Certificates are valid for 10 years. There is no timestamp authority offline, so a C2PA reader checks the leaf
against today's date: once it expires, files it signed no longer read as valid. A long validity keeps generated
files verifiable for as long as they are likely to matter.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from genlab.errors import GenlabError
from genlab.files import atomic_write

KEY_FILE = "key.pem"
CHAIN_FILE = "chain.pem"
ROOT_FILE = "root.pem"
TRUSTED_DIR = "trusted"
VALIDITY_DAYS = 3652  # 10 years: no timestamp authority offline, see the module docstring
C2PA_SIGNING_EKU = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
ORGANIZATION = "genlab"


@dataclass(frozen=True)
class Identity:
    """A loaded signing identity (PEM bytes, as C2PA takes them)."""

    folder: Path
    key_pem: bytes
    chain_pem: bytes
    root_pem: bytes
    subject: str
    fingerprint: str


def identity_folder() -> Path:
    """``$GENLAB_HOME/keys``, or ``~/.genlab/keys`` when GENLAB_HOME is not set."""
    home = os.environ.get("GENLAB_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".genlab") / "keys"


def default_name() -> str:
    """``user@host``, the name that goes into a new identity's certificates."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        user = "user"
    return f"{user}@{socket.gethostname() or 'localhost'}"[:64]  # X.509 caps a common name at 64


def init_identity(folder: Path | None = None, *, name: str | None = None, force: bool = False) -> Identity:
    """Create a new root and leaf in ``folder``; refuse to replace an existing identity unless ``force``."""
    folder = Path(folder) if folder is not None else identity_folder()
    if not force and has_identity(folder):
        raise GenlabError(f"a signing identity already exists in {folder}; pass --force to replace it "
                          "(files signed with the old key will no longer verify as trusted)")
    name = (name or default_name()).strip()
    if not name:
        raise GenlabError("the identity name must not be empty")
    if len(name) > 64 or not name.isprintable():  # X.509's limit for a common name; no line breaks in manifests
        raise GenlabError(f"the identity name must be at most 64 printable characters, got {len(name)} characters"
                          + ("" if name.isprintable() else " with control characters"))
    key_pem, chain_pem, root_pem = _make_chain(name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
    except OSError as e:
        raise GenlabError(f"cannot make the identity folder {folder}: {e.strerror or e} (check GENLAB_HOME)") from None
    # the key last: a crash part-way leaves a key that does not match the chain, which load_identity reports
    _write(folder / ROOT_FILE, root_pem, 0o644)
    _write(folder / CHAIN_FILE, chain_pem, 0o644)
    _write(folder / KEY_FILE, key_pem, 0o600)
    return load_identity(folder)


def load_identity(folder: Path | None = None) -> Identity:
    """Read and check the identity in ``folder``: the key matches the leaf, and the leaf chains to the root."""
    folder = Path(folder) if folder is not None else identity_folder()
    paths = [folder / f for f in (KEY_FILE, CHAIN_FILE, ROOT_FILE)]
    missing = [p.name for p in paths if not p.is_file()]
    if len(missing) == len(paths):
        raise GenlabError(f"no signing identity in {folder}; create one with `genlab keys init`")
    if missing:
        raise GenlabError(f"the signing identity in {folder} is incomplete (missing {', '.join(missing)}); "
                          "replace it with `genlab keys init --force`")
    try:
        key_pem, chain_pem, root_pem = (p.read_bytes() for p in paths)
        leaf = _check(key_pem, chain_pem, root_pem)
    except (OSError, ValueError, TypeError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise GenlabError(f"the signing identity in {folder} is unreadable ({reason}); "
                          "replace it with `genlab keys init --force`") from None
    return Identity(folder=folder, key_pem=key_pem, chain_pem=chain_pem, root_pem=root_pem,
                    subject=_common_name(leaf), fingerprint=leaf.fingerprint(hashes.SHA256()).hex())


def ensure_identity(folder: Path | None = None) -> tuple[Identity, bool]:
    """Load the identity, or create one on first use. Returns ``(identity, created)``."""
    folder = Path(folder) if folder is not None else identity_folder()
    if not has_identity(folder):
        return init_identity(folder), True
    return load_identity(folder), False


def has_identity(folder: Path | None = None) -> bool:
    """Whether ``folder`` holds any part of an identity (a partial one counts: it must not be overwritten)."""
    folder = Path(folder) if folder is not None else identity_folder()
    return any((folder / f).exists() for f in (KEY_FILE, CHAIN_FILE, ROOT_FILE))


MAX_PEM_BYTES = 1_000_000  # a certificate chain is a few kB


def trusted_roots(folder: Path | None = None) -> list[bytes]:
    """The PEM certificates in ``folder/trusted/*.pem`` (other people's roots), each checked to parse."""
    folder = Path(folder) if folder is not None else identity_folder()
    roots = []
    for path in sorted((folder / TRUSTED_DIR).glob("*.pem")):
        try:
            if not path.is_file() or path.stat().st_size > MAX_PEM_BYTES:  # a FIFO, a device, a huge file
                raise ValueError(f"not a regular file of at most {MAX_PEM_BYTES // 1000} kB")
            pem = path.read_bytes()
            if not x509.load_pem_x509_certificates(pem):
                raise ValueError("no certificate")
        except (OSError, ValueError) as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise GenlabError(f"the trusted root {path} is unreadable ({reason}); fix or remove it") from None
        roots.append(pem)
    return roots


def leaf_certificate(identity: Identity) -> x509.Certificate:
    """The identity's signing certificate (the first one in the chain)."""
    return x509.load_pem_x509_certificates(identity.chain_pem)[0]


def _check(key_pem: bytes, chain_pem: bytes, root_pem: bytes) -> x509.Certificate:
    """Return the leaf, or raise ValueError saying which part is wrong."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{KEY_FILE} is not a P-256 key")
    chain = x509.load_pem_x509_certificates(chain_pem)
    root = x509.load_pem_x509_certificate(root_pem)
    if len(chain) != 2 or chain[1] != root:
        raise ValueError(f"{CHAIN_FILE} must hold the leaf, then the certificate in {ROOT_FILE}")
    leaf = chain[0]
    if leaf.public_key() != key.public_key():
        raise ValueError(f"{KEY_FILE} does not match the certificate in {CHAIN_FILE}")
    leaf.verify_directly_issued_by(root)
    return leaf


def _make_chain(name: str) -> tuple[bytes, bytes, bytes]:
    """A fresh root and leaf: returns ``(leaf key PEM, leaf+root PEM, root PEM)``."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate a little clock skew
    until = now + dt.timedelta(days=VALIDITY_DAYS)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"genlab local root ({name})")
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name).issuer_name(root_name)
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"genlab local signer ({name})")).issuer_name(root_name)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        # C2PA's own EKU, plus emailProtection: c2pa's default trust settings reject a leaf with only the former
        .add_extension(x509.ExtendedKeyUsage([C2PA_SIGNING_EKU, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    root_pem = root.public_bytes(pem)
    return key_pem, leaf.public_bytes(pem) + root_pem, root_pem


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the given permissions (set on the temporary file, before the rename)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data), mode=mode)
