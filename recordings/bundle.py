"""Case export bundle: one ZIP that can be checked without the server.

Layout::

    manifest.json            case, files (name, kind, sha256, size), timeline, letters
    report.pdf               the inspection report (listed in the manifest like any file)
    media/...                snapshots, annotated images, recordings
    letters/...              signed letters (PDF)

    manifest.sig             the agency's detached signature over manifest.json's bytes

``verify_bundle`` re-hashes every listed file, refuses files that are not listed,
re-computes the timeline hash chain and reports the *first* break in a stable order
(files in manifest order, the chain, then the signature), so two people checking the same
bundle get the same answer. A forger who rewrites files, manifest and every event hash
consistently still fails twice: ``manifest.sig`` (ECDSA/RSA with the seal key, with an
RFC 3161 token when a TSA is configured) no longer holds, and the signed checkpoints in
the manifest (``recordings.checkpoints``) name heads the rewritten chain does not have.
Re-signing with another key is caught when the verifier is given the agency's
certificate (``trust``; ``yunkan verify bundle`` takes it from the deployment or
``--cert``).

Files are streamed in and out in 1 MiB chunks so an hour of recording does not sit in
memory; media that is already compressed is stored, not deflated again.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from recordings import checkpoints
from recordings.checkpoints import Signer, Trust, signature_holds
from recordings.errors import BundleError
from recordings.facts import FACT_TABLES, fact_breaks
from recordings.integrity import ChainBreak, record_breaks, verify_chain
from recordings.segments import segment_breaks
from server import timestamps

FORMAT = "yunkan-case-bundle/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SIGNATURE_FORMAT = "yunkan-manifest-signature/1"
CHUNK = 1 << 20
_STORED_SUFFIXES = {".jpg", ".jpeg", ".png", ".webm", ".mkv", ".pdf", ".zip"}


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One file to export. ``sha256`` is the hash on record; a mismatch aborts the export."""

    name: str
    kind: str
    source: Path | bytes
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    where: str  # "file media/x.png", "timeline seq 4", "manifest"
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass(slots=True)
class BundleReport:
    case_number: str | None = None
    files_checked: int = 0
    events_checked: int = 0
    head_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)
    redacted: list[int] | None = None
    """A redacted copy: the seqs of the events whose content was masked (see ``limits``)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_break(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "case_number": self.case_number,
            "files_checked": self.files_checked,
            "events_checked": self.events_checked,
            "head_hash": self.head_hash,
            "first_break": str(self.first_break) if self.first_break else None,
            "problems": [str(p) for p in self.problems],
            "redacted": self.redacted is not None,
            "limits": self.limits(),
        }

    def limits(self) -> list[str]:
        """What this check could not establish (a redacted copy cannot show everything)."""
        if self.redacted is None:
            return []
        return [
            f"redacted copy: the content of {len(self.redacted)} events was masked, so their"
            " hashes were not recomputed (the links between events were checked; compare the"
            " head hash with `yunkan verify case` at the agency)",
            "documents are unsealed redacted copies: their seals and signatures cannot be"
            " checked here; the sealed originals stay at the agency",
            "every file, snapshot and recording was checked byte for byte (not redacted)",
        ]


def _check_name(name: str) -> None:
    parts = name.split("/")
    reserved = name in (MANIFEST, SIGNATURE)
    if not name or name.startswith("/") or ".." in parts or "\\" in name or reserved:
        raise ValueError(f"unsafe or reserved bundle path: {name!r}")


def _chunks(source: Path | bytes) -> Iterable[bytes]:
    if isinstance(source, bytes):
        yield source
        return
    with source.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def write_bundle(
    target: Path | IO[bytes],
    *,
    case: Mapping[str, Any],
    files: Sequence[BundleFile],
    events: Sequence[Mapping[str, Any]],
    letters: Sequence[Mapping[str, Any]] = (),
    exported_at: str,
    tables: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    signer: Signer | None = None,
    case_checkpoints: Sequence[Mapping[str, Any]] = (),
    redaction: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the ZIP and return its manifest.

    A file whose bytes no longer match the hash on record raises ``BundleError``: an export
    must never launder a tampered blob into a bundle that then verifies as consistent.
    ``tables`` are the server's decision and checklist rows as exported; the verifier
    checks them against the events (``recordings.integrity.record_breaks``), so a bundle
    made from a database whose side tables were edited says so.
    """
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for item in files:
            _check_name(item.name)
            if item.name in seen:
                raise ValueError(f"duplicate bundle path: {item.name}")
            seen.add(item.name)
            stored = Path(item.name).suffix.lower() in _STORED_SUFFIXES
            info = zipfile.ZipInfo(item.name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            digest = hashlib.sha256()
            size = 0
            with zf.open(info, "w", force_zip64=True) as out:
                for chunk in _chunks(item.source):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            if item.sha256 is not None and item.sha256 != sha:
                raise BundleError(
                    message="%(name)s: stored file does not match its recorded SHA-256",
                    params={"name": item.name},
                )
            entries.append({"name": item.name, "kind": item.kind, "sha256": sha, "size": size})
        manifest = {
            "format": FORMAT,
            "case": dict(case),
            "exported_at": exported_at,
            "files": entries,
            "timeline": {
                "events": [dict(e) for e in events],
                "head": events[-1]["hash"] if events else None,
            },
            "letters": [dict(letter) for letter in letters],
            "checkpoints": [dict(c) for c in case_checkpoints],
        }
        if redaction is not None:
            manifest["redaction"] = dict(redaction)
        if tables is not None:
            manifest["tables"] = {k: [dict(row) for row in v] for k, v in tables.items()}
        body = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode()
        zf.writestr(MANIFEST, body)
        if signer is not None:
            zf.writestr(SIGNATURE, json.dumps(_signature(body, signer), indent=2).encode())
    return manifest


def _run(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, also when called from a running loop
    (tests and tools call these functions from async code): in a fresh thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _signature(body: bytes, signer: Signer) -> dict[str, Any]:
    token = None
    if signer.timestamper is not None:
        try:
            token = base64.b64encode(_run(signer.timestamper.stamp(body))).decode()
        except timestamps.TimestampError:
            token = None  # the signature stands without it; verify reports no timestamp
    return {
        "format": SIGNATURE_FORMAT,
        "manifest_sha256": hashlib.sha256(body).hexdigest(),
        "signature": base64.b64encode(signer.sign(body)).decode(),
        "certificate": base64.b64encode(signer.certificate).decode(),
        "timestamp": token,
    }


def _check_signature(zf: zipfile.ZipFile, body: bytes, trust: Trust | None) -> list[Problem]:
    where = SIGNATURE
    try:
        sig = json.loads(zf.read(SIGNATURE))
    except KeyError:
        return [Problem("manifest", "not signed by the agency (no manifest.sig)")]
    except (ValueError, zipfile.BadZipFile):
        return [Problem(where, "unreadable")]
    if not isinstance(sig, dict) or sig.get("format") != SIGNATURE_FORMAT:
        return [Problem(where, "unknown signature format")]
    try:
        signature = base64.b64decode(str(sig.get("signature")), validate=True)
        cert = base64.b64decode(str(sig.get("certificate")), validate=True)
    except ValueError:
        return [Problem(where, "unreadable")]
    if not signature_holds(cert, body, signature):
        return [Problem("manifest", "the agency's signature does not hold (manifest changed)")]
    if trust is not None and not trust.accepts(cert):
        return [Problem("manifest", "signed by a key that is not the agency's")]
    token = sig.get("timestamp")
    if token:
        result = _run(timestamps.check(str(token), body))
        if not result.ok:
            return [Problem(where, f"timestamp: {result.problem}")]
    return []


def _hash_member(zf: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with zf.open(name) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _describe(brk: ChainBreak) -> Problem:
    return Problem(f"timeline seq {brk.seq}", brk.reason)


def verify_bundle(path: Path | IO[bytes], trust: Trust | None = None) -> BundleReport:
    """Check a bundle offline; every problem is collected, the first one is the break.

    ``trust``: the agency's certificate(s); without it the signatures are checked against
    the certificate they carry only."""
    report = BundleReport()
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(message="Not a ZIP file") from exc
    with zf:
        try:
            body = zf.read(MANIFEST)
            manifest = json.loads(body)
        except KeyError:
            raise BundleError(message="The bundle has no manifest.json") from None
        except (ValueError, zipfile.BadZipFile) as exc:
            raise BundleError(message="manifest.json is unreadable") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise BundleError(
                message="Unknown bundle format (expected %(format)s)", params={"format": FORMAT}
            )
        report.case_number = str(manifest.get("case", {}).get("number") or "") or None
        present = {i.filename for i in zf.infolist() if not i.is_dir()} - {SIGNATURE}
        listed: set[str] = set()
        for entry in manifest.get("files", []):
            name = str(entry.get("name"))
            listed.add(name)
            where = f"file {name}"
            if name not in present:
                report.problems.append(Problem(where, "listed in the manifest but missing"))
                continue
            try:
                sha, size = _hash_member(zf, name)
            except (zipfile.BadZipFile, OSError) as exc:
                report.problems.append(Problem(where, f"unreadable: {exc}"))
                continue
            report.files_checked += 1
            if size != entry.get("size"):
                report.problems.append(
                    Problem(where, f"size {size} differs from manifest {entry.get('size')}")
                )
            elif sha != entry.get("sha256"):
                report.problems.append(Problem(where, "SHA-256 differs from the manifest"))
        for name in sorted(present - listed - {MANIFEST}):
            report.problems.append(Problem(f"file {name}", "not listed in the manifest"))
        timeline = manifest.get("timeline") or {}
        events = timeline.get("events") or []
        report.events_checked = len(events)
        report.head_hash = timeline.get("head")
        redaction = manifest.get("redaction")
        if isinstance(redaction, dict):
            report.redacted = [int(e["seq"]) for e in events if e.get("redacted")]
        breaks = verify_chain(report.case_number or "", events, masked=report.redacted is not None)
        report.problems.extend(_describe(b) for b in breaks)
        if events and not breaks and events[-1].get("hash") != report.head_hash:
            report.problems.append(Problem("timeline head", "differs from the last event's hash"))
        signed = [c for c in manifest.get("checkpoints") or [] if isinstance(c, dict)]
        anchors = _run(checkpoints.verify(report.case_number or "", events, signed, trust))
        report.problems.extend(Problem(f"timeline seq {b.seq}", b.reason) for b in anchors)
        by_sha = {str(e.get("sha256")): str(e.get("name")) for e in manifest.get("files", [])}

        def member(_key: str, sha256: str) -> BinaryIO | None:
            name = by_sha.get(sha256)
            if name is None or name not in present:
                return None
            # Segments are read by offset; ZIP members of media are stored, so seekable.
            return cast(BinaryIO, zf.open(name))

        report.problems.extend(
            Problem(f"timeline seq {b.seq}", b.reason) for b in segment_breaks(events, member)
        )
        tables = manifest.get("tables")
        if isinstance(tables, dict):
            rows = record_breaks(
                events,
                [r for r in tables.get("decisions") or [] if isinstance(r, dict)],
                [r for r in tables.get("checklist") or [] if isinstance(r, dict)],
            )
            rows += fact_breaks(
                events,
                {
                    k: [r for r in v if isinstance(r, dict)]
                    for k, v in tables.items()
                    if k in FACT_TABLES and isinstance(v, list)
                },
            )
            report.problems.extend(
                Problem(f"timeline seq {b.seq}" if b.seq is not None else "tables", b.reason)
                for b in rows
            )
        # Last, so that a located break (this file, that event) is the first one named.
        report.problems.extend(_check_signature(zf, body, trust))
    return report
