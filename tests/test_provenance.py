"""Signing identity and C2PA provenance: sign, verify, and every way a signed file can be tampered with."""

from __future__ import annotations

import io
import shutil
import stat
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from genlab.errors import GenlabError
from genlab.responsible.keys import (
    CHAIN_FILE,
    KEY_FILE,
    ROOT_FILE,
    TRUSTED_DIR,
    ensure_identity,
    identity_folder,
    init_identity,
    load_identity,
)
from genlab.responsible.provenance import (
    GENERATION_LABEL,
    _status,
    sidecar_path,
    sign_bytes,
    verify_file,
    write_signed,
)

GENERATION = {
    "run_id": "run-0001",
    "family": "gpt",
    "dataset": "shakespeare",
    "weights_sha256": "ab" * 32,
    "seed": 1234,
    "sampler": {"temperature": 0.8, "top_k": None, "steps": 25},
    "prompt_sha256": "cd" * 32,
    "watermark": {"scheme": "green-list", "gamma": 0.25, "delta": 2.0},
}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def identity(home):
    return init_identity(name="alice@test")


def png_bytes(size: int = 28, colour=(10, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at < len(data):
        (n,) = struct.unpack(">I", data[at:at + 4])
        chunks.append((data[at + 4:at + 8], data[at + 8:at + 8 + n]))
        at += 12 + n
    return chunks


def png_from_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(struct.pack(">I", len(c)) + t + c + struct.pack(">I", zlib.crc32(t + c)) for t, c in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def signed_png(tmp_path: Path, identity, name: str = "digit.png") -> Path:
    return write_signed(tmp_path / name, png_bytes(), identity=identity, title=name, generation=GENERATION)


# --- identity ---------------------------------------------------------------------------------------------------

def test_init_and_load_identity(home, identity):
    folder = identity_folder()
    assert folder == home / "keys" and identity.folder == folder
    for name in (KEY_FILE, CHAIN_FILE, ROOT_FILE):
        assert (folder / name).is_file()
    assert stat.S_IMODE((folder / KEY_FILE).stat().st_mode) == 0o600
    assert identity.subject == "genlab local signer (alice@test)"
    assert len(identity.fingerprint) == 64
    assert identity.chain_pem.count(b"BEGIN CERTIFICATE") == 2 and identity.chain_pem.endswith(identity.root_pem)
    assert load_identity() == identity


def test_init_refuses_to_overwrite_without_force(identity):
    with pytest.raises(GenlabError, match="already exists in .*; pass --force to replace it"):
        init_identity()
    replaced = init_identity(force=True)
    assert replaced.fingerprint != identity.fingerprint and load_identity() == replaced


def test_ensure_identity_creates_once(home):
    first, created = ensure_identity()
    again, created_again = ensure_identity()
    assert created and not created_again and again == first


def test_load_identity_errors(home):
    with pytest.raises(GenlabError, match="no signing identity in .*genlab keys init"):
        load_identity()
    init_identity()
    (identity_folder() / CHAIN_FILE).write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n")
    with pytest.raises(GenlabError, match="unreadable") as error:
        load_identity()
    assert "\n" not in str(error.value)
    (identity_folder() / KEY_FILE).unlink()
    with pytest.raises(GenlabError, match="incomplete .*key.pem"):
        load_identity()


def test_key_must_match_chain(home, tmp_path):
    init_identity()
    other = init_identity(tmp_path / "other")
    (identity_folder() / KEY_FILE).write_bytes(other.key_pem)
    with pytest.raises(GenlabError, match="does not match"):
        load_identity()


# --- signing and verifying ---------------------------------------------------------------------------------------

def test_png_signed_and_trusted(tmp_path, identity):
    path = signed_png(tmp_path, identity)
    assert not sidecar_path(path).exists()
    assert Image.open(path).getpixel((3, 3)) == (10, 120, 200)  # still an ordinary PNG
    result = verify_file(path)
    assert result.status == "trusted", result.failures
    assert result.generation == GENERATION
    assert result.signer == identity.subject and result.failures == [] and result.sidecar is None
    labels = [a["label"] for a in result.manifest["assertions"]]
    assert GENERATION_LABEL in labels and any(label.startswith("c2pa.actions") for label in labels)
    assert result.manifest["claim_generator_info"][0]["name"] == "genlab"


@pytest.mark.parametrize("name, data", [("story.txt", b"To be, or not to be.\n" * 50),
                                        ("table.csv", b"age,income\n31,4200.5\n45,3900\n")])
def test_sidecar_signed_and_trusted(tmp_path, identity, name, data):
    path = write_signed(tmp_path / name, data, identity=identity, title=name, generation=GENERATION)
    assert path.read_bytes() == data  # byte-identical
    assert sidecar_path(path) == tmp_path / f"{name}.c2pa" and sidecar_path(path).is_file()
    result = verify_file(path, identity=identity)
    assert result.status == "trusted" and result.generation == GENERATION
    assert result.sidecar == sidecar_path(path)


def test_sign_bytes_returns_sidecar_only_for_detached_formats(identity):
    asset, manifest = sign_bytes(png_bytes(), suffix=".PNG", identity=identity, title="x", generation={})
    assert manifest is None and asset.startswith(b"\x89PNG") and len(asset) > len(png_bytes())
    asset, manifest = sign_bytes(b"MThd", suffix=".mid", identity=identity, title="x", generation={})
    assert asset == b"MThd" and manifest


def test_sign_rejects_data_that_is_not_its_format(identity):
    with pytest.raises(GenlabError, match="not a valid image/png"):
        sign_bytes(b"hello", suffix=".png", identity=identity, title="x", generation={})


# --- tampering ---------------------------------------------------------------------------------------------------

def test_changed_pixel_is_tampered(tmp_path, identity):
    path = signed_png(tmp_path, identity)
    chunks = png_chunks(path.read_bytes())
    pixels = bytearray(zlib.decompress(b"".join(c for t, c in chunks if t == b"IDAT")))
    pixels[1] ^= 0xFF  # the red value of the first pixel (after the row's filter byte)
    chunks = [(t, zlib.compress(bytes(pixels)) if t == b"IDAT" else c) for t, c in chunks]
    path.write_bytes(png_from_chunks(chunks))
    assert Image.open(path).getpixel((0, 0)) == (10 ^ 0xFF, 120, 200)  # a valid PNG, one pixel changed
    result = verify_file(path)
    assert result.status == "tampered" and "assertion.dataHash.mismatch" in result.failures


def test_edited_manifest_byte_is_tampered(tmp_path, identity):
    path = signed_png(tmp_path, identity)
    data = path.read_bytes()
    assert data.count(b"run-0001") == 1
    path.write_bytes(png_from_chunks(png_chunks(data.replace(b"run-0001", b"run-0002"))))
    result = verify_file(path)
    assert result.status == "tampered" and "assertion.hashedURI.mismatch" in result.failures


def test_edited_signature_is_tampered(tmp_path, identity):
    path = signed_png(tmp_path, identity)
    chunks = png_chunks(path.read_bytes())
    store = dict(chunks)[b"caBX"]
    at = store.rindex(b"c2pa.signature") + 200  # inside the signature box, past its header
    edited = store[:at] + bytes([store[at] ^ 0x01]) + store[at + 1:]
    path.write_bytes(png_from_chunks([(t, edited if t == b"caBX" else c) for t, c in chunks]))
    result = verify_file(path)
    assert result.status == "tampered" and "claimSignature.mismatch" in result.failures, result.failures


def test_stripped_manifest_is_unsigned(tmp_path, identity):
    path = signed_png(tmp_path, identity)
    path.write_bytes(png_from_chunks([(t, c) for t, c in png_chunks(path.read_bytes()) if t != b"caBX"]))
    assert verify_file(path).status == "unsigned"


def test_other_signer_is_untrusted_until_its_root_is_trusted(tmp_path, identity):
    stranger = init_identity(tmp_path / "stranger", name="mallory@elsewhere")
    path = signed_png(tmp_path, stranger)
    result = verify_file(path, identity=identity)
    assert result.status == "untrusted" and "signingCredential.untrusted" in result.failures
    assert result.signer == stranger.subject and result.generation == GENERATION
    (identity.folder / TRUSTED_DIR).mkdir()
    (identity.folder / TRUSTED_DIR / "mallory.pem").write_bytes(stranger.root_pem)
    assert verify_file(path, identity=identity).status == "trusted"


def test_without_identity_at_most_untrusted(tmp_path, monkeypatch, identity):
    path = signed_png(tmp_path, identity)
    monkeypatch.setenv("GENLAB_HOME", str(tmp_path / "empty-home"))
    assert verify_file(path).status == "untrusted"


def test_edited_text_is_tampered(tmp_path, identity):
    path = write_signed(tmp_path / "story.txt", b"Once upon a time.\n", identity=identity, title="story",
                        generation=GENERATION)
    path.write_bytes(b"Once upon a tine.\n")
    result = verify_file(path)
    assert result.status == "tampered" and "assertion.dataHash.mismatch" in result.failures


def test_edited_sidecar_is_tampered(tmp_path, identity):
    path = write_signed(tmp_path / "story.txt", b"Once.\n", identity=identity, title="story", generation=GENERATION)
    sidecar = sidecar_path(path)
    sidecar.write_bytes(sidecar.read_bytes().replace(b"run-0001", b"run-0002"))
    assert verify_file(path).status == "tampered"
    sidecar.write_bytes(b"not a manifest at all")
    result = verify_file(path)
    assert result.status == "tampered" and result.failures[0].startswith("manifest.unreadable")
    sidecar.write_bytes(b"")
    assert verify_file(path).status == "tampered"


def test_sidecar_from_another_file_is_tampered(tmp_path, identity):
    a = write_signed(tmp_path / "a.txt", b"first\n", identity=identity, title="a", generation=GENERATION)
    b = write_signed(tmp_path / "b.txt", b"second\n", identity=identity, title="b", generation=GENERATION)
    shutil.copyfile(sidecar_path(a), sidecar_path(b))
    result = verify_file(b)
    assert result.status == "tampered" and "assertion.dataHash.mismatch" in result.failures


@pytest.mark.parametrize("state, failures, expected", [
    ("Trusted", [], "trusted"),
    ("Valid", ["signingCredential.untrusted"], "untrusted"),
    ("Invalid", ["signingCredential.expired"], "untrusted"),
    ("Invalid", ["signingCredential.untrusted", "claimSignature.mismatch"], "tampered"),
    ("Invalid", [], "tampered"),
])
def test_status_mapping(state, failures, expected):
    assert _status(state, failures) == expected


# --- errors and unsigned files -----------------------------------------------------------------------------------

def test_verify_errors(tmp_path, identity):
    with pytest.raises(GenlabError, match="no such file"):
        verify_file(tmp_path / "missing.png")
    (tmp_path / "fake.png").write_text("hello")
    with pytest.raises(GenlabError, match="not a valid image/png"):
        verify_file(tmp_path / "fake.png")
    text = write_signed(tmp_path / "s.txt", b"x", identity=identity, title="s", generation={})
    with pytest.raises(GenlabError, match="detached C2PA manifest"):
        verify_file(sidecar_path(text))


def test_unsigned_files(tmp_path, identity):
    (tmp_path / "notes.json").write_text('{"a": 1}')
    assert verify_file(tmp_path / "notes.json") == verify_file(tmp_path / "notes.json", identity=identity)
    assert verify_file(tmp_path / "notes.json").status == "unsigned"
    (tmp_path / "plain.png").write_bytes(png_bytes())
    assert verify_file(tmp_path / "plain.png").status == "unsigned"
