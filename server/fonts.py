"""Finding a CJK font for watermarks and PDFs.

Pillow and fpdf2 both need a font file that covers Chinese. We look for one once:
the configured path (``YUNKAN_CJK_FONT``, ``file.ttc`` or ``file.ttc#index``), then
fontconfig's best match for Simplified Chinese, then a few well-known paths from
Debian's font packages (fonts-noto-cjk, fonts-wqy-zenhei).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class FontNotFoundError(RuntimeError):
    """No font with Chinese glyphs was found; install fonts-noto-cjk or set YUNKAN_CJK_FONT."""


@dataclass(frozen=True, slots=True)
class FontFile:
    path: Path
    index: int = 0  # face number inside a .ttc collection


_KNOWN = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),
)


def _parse(spec: str) -> FontFile:
    path, _, index = spec.partition("#")
    return FontFile(Path(path), int(index or 0))


def _fc_match() -> FontFile | None:
    if shutil.which("fc-match") is None:
        return None
    try:
        out = subprocess.run(
            ["fc-match", "-f", "%{file}#%{index}", "sans-serif:lang=zh-cn"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    font = _parse(out)
    # fontconfig answers *something* even without CJK fonts (DejaVu); only trust CJK families.
    lowered = font.path.name.lower()
    if not any(
        tag in lowered for tag in ("cjk", "wqy", "ming", "hei", "song", "kai", "droidsansfallback")
    ):
        return None
    return font


@functools.cache
def find_cjk_font(configured: str | None = None) -> FontFile:
    configured = configured or os.environ.get("YUNKAN_CJK_FONT") or None
    if configured:
        font = _parse(configured)
        if not font.path.is_file():
            raise FontNotFoundError(f"YUNKAN_CJK_FONT={configured!r}: no such file")
        return font
    for path, index in _KNOWN:
        if Path(path).is_file():
            return FontFile(Path(path), index)
    matched = _fc_match()
    if matched is not None and matched.path.is_file():
        return matched
    raise FontNotFoundError(
        "no CJK font found: install fonts-noto-cjk (Debian) or set YUNKAN_CJK_FONT=/path/font.ttc"
    )
