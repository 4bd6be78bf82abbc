"""TLS for ``yunkan serve``: phones open the camera only on HTTPS pages.

Production puts a reverse proxy with a real certificate in front (``docs/deployment.md``).
For trying it from a phone on the local network, ``yunkan serve --tls-dev`` generates a
self-signed certificate under ``<data_dir>/tls/`` covering localhost, the machine's name and
its addresses (the phone shows a warning once; accept it).

Wire-up in ``server/cli.py`` (``serve``)::

    ssl_context = signaling.tls.server_ssl_context(
        settings.data_dir, cert=args.tls_cert or settings.tls_cert,
        key=args.tls_key or settings.tls_key, dev=args.tls_dev)
    web.run_app(app, host=..., port=..., ssl_context=ssl_context)   # None: plain HTTP
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class TlsError(ValueError):
    """The configured certificate or key cannot be used; the message says which file."""


def server_ssl_context(
    data_dir: Path, *, cert: str | None = None, key: str | None = None, dev: bool = False
) -> ssl.SSLContext | None:
    """The SSL context ``yunkan serve`` should use, or None for plain HTTP."""
    if cert or key:
        if not (cert and key):
            raise TlsError("--tls-cert and --tls-key must be given together")
        return load_context(Path(cert), Path(key))
    if dev:
        cert_path, key_path = dev_certificate(data_dir / "tls")
        return load_context(cert_path, key_path)
    return None


def load_context(cert: Path, key: Path) -> ssl.SSLContext:
    for path, what in ((cert, "certificate"), (key, "key")):
        if not path.is_file():
            raise TlsError(f"TLS {what} {path} does not exist")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as err:
        raise TlsError(f"TLS certificate {cert} / key {key} cannot be loaded: {err}") from None
    return context


def local_names() -> tuple[list[str], list[str]]:
    """Host names and IP addresses a phone on the LAN may use to reach this machine."""
    names = {"localhost", socket.gethostname()}
    addresses = {"127.0.0.1", "::1"}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addresses.add(str(info[4][0]))
    except OSError:
        pass
    # The address used for outgoing traffic (no packet is sent by a UDP connect).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            addresses.add(probe.getsockname()[0])
        except OSError:
            pass
    return sorted(names), sorted(addresses)


def dev_certificate(
    directory: Path, *, days: int = 365, extra_hosts: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """A self-signed certificate for local testing, created once and reused."""
    cert_path, key_path = directory / "dev-cert.pem", directory / "dev-key.pem"
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    names, addresses = local_names()
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in [*names, *extra_hosts]]
    alt += [x509.IPAddress(ipaddress.ip_address(a.split("%")[0])) for a in addresses]
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Yunkan development")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path
