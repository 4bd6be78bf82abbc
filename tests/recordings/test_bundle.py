from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from recordings.bundle import MANIFEST, BundleFile, verify_bundle, write_bundle
from recordings.errors import BundleError
from recordings.integrity import verify_chain
from server.cases.models import GENESIS_HASH
from server.cases.timeline import event_hash
from tests.pki_services import dev_signer

CASE = "YK-20261122-0007"
T0 = dt.datetime(2026, 11, 22, 3, 0, 0, tzinfo=dt.UTC)


def chain(n: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        at = T0 + dt.timedelta(seconds=seq)
        actor = {"kind": "staff", "id": 3, "name": "王勘验"}
        data = {"n": seq, "note": "仓库"}
        h = event_hash(
            case_number=CASE,
            seq=seq,
            kind="note",
            actor=actor,
            data=data,
            created_at=at,
            prev_hash=prev,
        )
        events.append(
            {
                "seq": seq,
                "kind": "note",
                "actor": actor,
                "data": data,
                "at": at.isoformat(),
                "prev_hash": prev,
                "hash": h,
            }
        )
        prev = h
    return events


def make(tmp_path: Path, events: list[dict[str, Any]] | None = None) -> Path:
    media = tmp_path / "rec.webm"
    media.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 4000)
    target = tmp_path / "case.zip"
    write_bundle(
        target,
        case={"number": CASE, "title": "种子公司"},
        files=[
            BundleFile("media/snapshots/1-original.png", "snapshot.original", b"png-bytes"),
            BundleFile("media/recordings/1.webm", "recording", media),
            BundleFile("report.pdf", "report", b"%PDF-1.7 ..."),
        ],
        events=events if events is not None else chain(5),
        letters=[{"id": 1, "sha256": "ab" * 32}],
        exported_at=T0.isoformat(),
        signer=dev_signer(),
    )
    return target


def rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    """Copy a ZIP, replacing (or dropping, with None) some members: the tamperer's tool."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in change:
                data = change[info.filename]
                if data is not None:
                    zout.writestr(info.filename, data)
            else:
                zout.writestr(info, zin.read(info.filename))
        for name, data in change.items():
            if name not in zin.namelist() and data is not None:
                zout.writestr(name, data)


def test_fresh_bundle_verifies(tmp_path: Path) -> None:
    report = verify_bundle(make(tmp_path))
    assert report.ok, report.problems
    assert report.case_number == CASE
    assert report.files_checked == 3 and report.events_checked == 5
    manifest = json.loads(zipfile.ZipFile(tmp_path / "case.zip").read(MANIFEST))
    assert manifest["timeline"]["head"] == manifest["timeline"]["events"][-1]["hash"]
    assert manifest["letters"][0]["sha256"] == "ab" * 32
    entry = next(f for f in manifest["files"] if f["kind"] == "recording")
    assert entry["size"] == 4 + 256 * 4000


def test_changed_media_is_located(tmp_path: Path) -> None:
    good = make(tmp_path)
    bad = tmp_path / "bad.zip"
    rewrite(good, bad, {"media/snapshots/1-original.png": b"png-bytez"})
    report = verify_bundle(bad)
    assert not report.ok
    assert (
        str(report.first_break)
        == "file media/snapshots/1-original.png: SHA-256 differs from the manifest"
    )


def test_missing_and_extra_files(tmp_path: Path) -> None:
    good = make(tmp_path)
    bad = tmp_path / "bad.zip"
    rewrite(good, bad, {"report.pdf": None, "media/extra.jpg": b"x"})
    problems = [str(p) for p in verify_bundle(bad).problems]
    assert problems == [
        "file report.pdf: listed in the manifest but missing",
        "file media/extra.jpg: not listed in the manifest",
    ]


def test_edited_event_is_located(tmp_path: Path) -> None:
    good = make(tmp_path)
    manifest = json.loads(zipfile.ZipFile(good).read(MANIFEST))
    manifest["timeline"]["events"][2]["data"]["note"] = "办公室"
    bad = tmp_path / "bad.zip"
    rewrite(good, bad, {MANIFEST: json.dumps(manifest).encode()})
    report = verify_bundle(bad)
    assert str(report.first_break) == "timeline seq 3: event content changed"


def test_removed_event_is_located() -> None:
    events = chain(4)
    del events[1]
    breaks = verify_chain(CASE, events)
    assert breaks[0].seq == 2 and "missing" in breaks[0].reason


def test_chain_is_bound_to_the_case_number() -> None:
    assert verify_chain(CASE, chain(2)) == []
    assert verify_chain("YK-20261122-0008", chain(2))[0].reason == "event content changed"


def test_export_refuses_a_tampered_blob(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not match"):
        write_bundle(
            tmp_path / "x.zip",
            case={"number": CASE},
            files=[BundleFile("a.png", "snapshot", b"now", sha256="0" * 64)],
            events=[],
            exported_at="x",
        )


@pytest.mark.parametrize("name", ["../evil", "/abs", "manifest.json", "a\\b"])
def test_unsafe_names_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="bundle path"):
        write_bundle(
            tmp_path / "x.zip",
            case={"number": CASE},
            files=[BundleFile(name, "x", b"")],
            events=[],
            exported_at="x",
        )


def test_not_a_bundle(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(BundleError):
        verify_bundle(junk)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(BundleError, match="manifest"):
        verify_bundle(empty)
