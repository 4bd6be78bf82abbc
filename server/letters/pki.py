"""The agency's sealing key material: a configured PKCS#12 file, or a development CA.

Production agencies get a seal certificate from their CA as a PKCS#12 file
(``YUNKAN_SEAL_P12`` + ``YUNKAN_SEAL_P12_PASSWORD``). Without one, the first start
generates a development CA and a signing certificate under ``<data_dir>/pki/``:

    pki/ca.pem          the trust root verification uses (public)
    pki/seal.p12        the signing key + certificate + CA, no password (0600)

Both are written into a temporary directory, fsynced, and the directory is renamed to
``pki/``: a crash during the first start leaves no PKI (generated again) or a complete
one, and when two processes race, one rename wins and the other loads the winner's files,
so every process of one deployment seals with the same certificate.

ECDSA P-256 is used for the development keys: signing takes about a millisecond, and
pyHanko and every PDF reader accept it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from recordings.checkpoints import Signer, Trust
from server import timestamps


class PkiError(RuntimeError):
    """The configured seal certificate cannot be used (message says which file and why)."""


@dataclass(frozen=True)
class SealMaterial:
    """What sealing and verification need, in the types pyHanko takes."""

    signing_cert: asn1_x509.Certificate
    signing_key: asn1_keys.PrivateKeyInfo
    chain: tuple[asn1_x509.Certificate, ...]  # intermediates and root, as shipped in the PDF
    trust_roots: tuple[asn1_x509.Certificate, ...]  # what verification accepts
    tsa_url: str = ""  # RFC 3161 authority for B-T/B-LT seals and checkpoint tokens
    agency_name: str = ""  # drawn on the visible seal (电子印章)

    @property
    def subject(self) -> str:
        return str(self.signing_cert.subject.human_friendly)

    def configured(self, *, tsa_url: str, agency_name: str) -> SealMaterial:
        """The same keys with the deployment's TSA and agency name."""
        return dataclasses.replace(self, tsa_url=tsa_url, agency_name=agency_name)

    def checkpoint_signer(self) -> Signer:
        """The seal key as the signer of case checkpoints and bundle manifests: one agency
        key, one certificate to trust, one thing to protect."""
        return Signer.from_der(
            self.signing_key.dump(), self.signing_cert.dump(), timestamps.from_url(self.tsa_url)
        )

    def trust(self) -> Trust:
        """What a checkpoint signature must chain to: this seal or the seal's trust roots."""
        return Trust(certificates=(self.signing_cert.dump(),), roots=self.trust_roots)


def _name(common_name: str, agency: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, agency),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def generate_dev_pki(agency: str = "Yunkan Development Agency") -> tuple[bytes, bytes]:
    """A fresh CA and seal certificate: ``(ca_pem, seal_p12)``. Also used by tests for
    "another agency" whose seals must be reported as not ours."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{agency} Development Root CA", agency)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    seal_key = ec.generate_private_key(ec.SECP256R1())
    seal_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{agency} Document Seal", agency))
        .issuer_name(ca_name)
        .public_key(seal_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    p12 = pkcs12.serialize_key_and_certificates(
        b"seal", seal_key, seal_cert, [ca_cert], serialization.NoEncryption()
    )
    return ca_cert.public_bytes(serialization.Encoding.PEM), p12


def load_p12(data: bytes, password: bytes | None, *, trust: bytes | None = None) -> SealMaterial:
    """Key material from PKCS#12 bytes. ``trust`` (PEM) overrides the trust roots; by
    default the self-signed certificates inside the file are the roots."""
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError as exc:
        raise PkiError(f"cannot open the PKCS#12 file: {exc}") from exc
    if key is None or cert is None:
        raise PkiError("the PKCS#12 file holds no private key and certificate")
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = tuple(
        asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in extra
    )
    if trust is not None:
        roots = tuple(
            asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
            for c in x509.load_pem_x509_certificates(trust)
        )
    else:
        roots = tuple(c for c in chain if c.self_signed)
    if not roots:
        raise PkiError("no trust root: the PKCS#12 file has no CA certificate; set YUNKAN_SEAL_CA")
    return SealMaterial(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
        chain=chain,
        trust_roots=roots,
    )


def _create_dev_pki(pki: Path) -> None:
    """Generate the development PKI into a fresh directory and rename it into place.

    A directory rename is atomic and fails when the target exists, so concurrent first
    starts cannot mix one process's CA with another's seal."""
    ca_pem, p12 = generate_dev_pki()
    tmp = Path(tempfile.mkdtemp(dir=pki.parent, prefix=".pki-"))
    try:
        for name, data in (("ca.pem", ca_pem), ("seal.p12", p12)):
            fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        try:
            os.rename(tmp, pki)
        except OSError:
            if not (pki / "seal.p12").exists():
                raise
            # another process won the race; its files are loaded by the caller
    finally:
        if tmp.exists():
            for child in tmp.iterdir():
                child.unlink()
            tmp.rmdir()


def load_existing(
    data_dir: Path,
    *,
    p12_path: Path | None = None,
    p12_password: str | None = None,
    ca_path: Path | None = None,
) -> SealMaterial | None:
    """The deployment's seal if there is one, without creating a development PKI: for
    verification tools, which must not mint a key to check signatures against."""
    if p12_path is None and not (data_dir / "pki" / "seal.p12").exists():
        return None
    return load_or_create(data_dir, p12_path=p12_path, p12_password=p12_password, ca_path=ca_path)


def load_or_create(
    data_dir: Path,
    *,
    p12_path: Path | None = None,
    p12_password: str | None = None,
    ca_path: Path | None = None,
) -> SealMaterial:
    """The deployment's seal: the configured PKCS#12, else the development PKI under
    ``data_dir/pki`` (created on first call)."""
    if p12_path is not None:
        try:
            data = p12_path.read_bytes()
            trust = ca_path.read_bytes() if ca_path is not None else None
        except OSError as exc:
            raise PkiError(f"YUNKAN_SEAL_P12={p12_path}: {exc.strerror}") from exc
        password = p12_password.encode() if p12_password else None
        return load_p12(data, password, trust=trust)
    pki = data_dir / "pki"
    if not (pki / "seal.p12").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _create_dev_pki(pki)
    try:
        return load_p12((pki / "seal.p12").read_bytes(), None, trust=(pki / "ca.pem").read_bytes())
    except OSError as exc:
        raise PkiError(f"{pki}: {exc.strerror}") from exc
