"""A real local PKI for tests: root CA, agency seal certificate, TSA, OCSP and CRL over HTTP.

certomancer (which pyHanko's own tests use) builds the certificates from the configuration
below and its aiohttp "animator" answers RFC 3161 timestamp requests, OCSP requests and
CRL downloads. The server runs on its own event loop in a thread, bound to 127.0.0.1 on
a free port, so synchronous code (pyHanko's signer runs its own loop in a worker thread)
and async tests can both reach it. Keys are fresh ECDSA P-256 keys per fixture.

Usage::

    with LocalPki(tmp_path) as pki:
        pki.tsa_url, pki.p12_path, pki.ca_pem_path
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from certomancer.integrations.aiohttp_animator import build_animator_app
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from recordings.checkpoints import Signer
from server.letters.pki import SealMaterial, generate_dev_pki, load_p12

ARCH = "yunkan"
VALID = {"valid-from": "2020-01-01T00:00:00+0000", "valid-to": "2090-01-01T00:00:00+0000"}
AGENCY = "云勘测试中心"


def _key_usage(*usages: str) -> dict[str, Any]:
    return {
        "id": "key_usage",
        "critical": True,
        "smart-value": {"schema": "key-usage", "params": list(usages)},
    }


CRL = {
    "id": "crl_distribution_points",
    "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": ["root"]}},
}
OCSP = {
    "id": "authority_information_access",
    "smart-value": {"schema": "aia-urls", "params": {"ocsp-responder-names": ["root"]}},
}


def config(url: str) -> dict[str, Any]:
    """The certomancer configuration: root → seal (CRL + OCSP URLs), TSA, OCSP responder."""
    keys = {name: {"path": f"{name}.key.pem"} for name in ("root", "seal", "tsa", "ocsp")}
    return {
        "external-url-prefix": url,
        "keysets": {ARCH: {"keys": keys}},
        "pki-architectures": {
            ARCH: {
                "keyset": ARCH,
                "entity-defaults": {"country-name": "CN", "organization-name": AGENCY},
                "entities": {
                    "root": {"common-name": "Yunkan Test Root CA"},
                    "seal": {"common-name": f"{AGENCY} Document Seal"},
                    "tsa": {"common-name": "Yunkan Test TSA"},
                    "ocsp": {"common-name": "Yunkan Test OCSP"},
                },
                "certs": {
                    "root": {
                        "subject": "root",
                        "subject-key": "root",
                        "issuer": "root",
                        "authority-key": "root",
                        "validity": VALID,
                        "extensions": [
                            {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
                            _key_usage("digital_signature", "key_cert_sign", "crl_sign"),
                        ],
                    },
                    "seal": {
                        "issuer": "root",
                        "validity": VALID,
                        "extensions": [
                            _key_usage("digital_signature", "non_repudiation"),
                            CRL,
                            OCSP,
                        ],
                    },
                    "tsa": {
                        "issuer": "root",
                        "validity": VALID,
                        "extensions": [
                            _key_usage("digital_signature"),
                            {
                                "id": "extended_key_usage",
                                "critical": True,
                                "value": ["time_stamping"],
                            },
                            CRL,
                        ],
                    },
                    "ocsp": {
                        "issuer": "root",
                        "validity": VALID,
                        "extensions": [
                            _key_usage("digital_signature"),
                            {
                                "id": "extended_key_usage",
                                "critical": True,
                                "value": ["ocsp_signing"],
                            },
                            {"id": "ocsp_no_check"},
                        ],
                    },
                },
                "services": {
                    "ocsp": {
                        "root": {
                            "for-issuer": "root",
                            "responder-cert": "ocsp",
                            "signing-key": "ocsp",
                        }
                    },
                    "crl-repo": {
                        "root": {
                            "for-issuer": "root",
                            "signing-key": "root",
                            "simulated-update-schedule": "P30D",
                        }
                    },
                    "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
                },
            }
        },
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPki:
    """The PKI files under ``root`` and its services on 127.0.0.1 while in ``with``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for name in ("root", "seal", "tsa", "ocsp"):
            key = ec.generate_private_key(ec.SECP256R1())
            (root / f"{name}.key.pem").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = CertomancerConfig(config(self.url), key_search_dir=str(root))
        self.arch = self.config.get_pki_arch(ArchLabel(ARCH))
        self.tsa_url = f"{self.url}/{ARCH}/tsa/tsa"
        self.crl_url = f"{self.url}/{ARCH}/crls/root/latest.crl"
        self.p12_path = root / "seal.p12"
        self.p12_path.write_bytes(self.arch.package_pkcs12(CertLabel("seal")))
        self.ca_pem_path = root / "ca.pem"
        self.ca_pem_path.write_bytes(_pem(self.arch.get_cert(CertLabel("root")).dump()))
        self.requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        app = build_animator_app({ARCH: self.arch}, with_web_ui=False)

        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            self.requests += 1
            return await handler(request)  # type: ignore[no-any-return]

        app.middlewares.append(count)
        return app

    def __enter__(self) -> LocalPki:
        started = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def start() -> None:
            self._runner = web.AppRunner(self._app(), access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="local-pki", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the local PKI server did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or self._thread is None:
            return
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)


@functools.cache
def dev_material() -> SealMaterial:
    """A development agency seal (no services), once per test process."""
    _ca, p12 = generate_dev_pki("云勘测试中心")
    return load_p12(p12, None)


def dev_signer() -> Signer:
    return dev_material().checkpoint_signer()


def _pem(der: bytes) -> bytes:
    from asn1crypto import pem

    return bytes(pem.armor("CERTIFICATE", der))
