"""Render a report to PDF with LibreOffice (to look at it, and for the tests).

:func:`docx_to_pdf` runs ``soffice --headless --convert-to pdf`` in a private user profile
(several conversions may run at once) with a fontconfig file that maps the report's font
names to installed CJK fonts where Windows' fonts are absent: 宋体 / SimSun → a serif CJK
font (Noto Serif CJK SC, Source Han Serif SC, AR PL UMing), 黑体 / SimHei → a sans CJK font
(Noto Sans CJK SC, Source Han Sans SC, WenQuanYi), Times New Roman → Liberation Serif.
Without the mapping LibreOffice falls back to whichever CJK font it finds first (on Debian
the Japanese variant of Noto Sans for every style). Word on Windows has the fonts and
needs none of this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["soffice_path", "docx_to_pdf", "FONT_ALIASES"]

FONT_ALIASES = {
    "宋体": ("Noto Serif CJK SC", "Source Han Serif SC", "AR PL UMing CN", "Noto Serif CJK JP"),
    "SimSun": ("Noto Serif CJK SC", "Source Han Serif SC", "AR PL UMing CN", "Noto Serif CJK JP"),
    "黑体": ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Noto Sans CJK JP"),
    "SimHei": ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Noto Sans CJK JP"),
    "Times New Roman": ("Liberation Serif", "Tinos", "DejaVu Serif"),
}


def soffice_path() -> str | None:
    """The LibreOffice command (``soffice`` or ``libreoffice``), or None."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def _fonts_conf(folder: Path) -> Path:
    aliases = "".join(
        f"<alias binding=\"same\"><family>{name}</family><prefer>"
        + "".join(f"<family>{f}</family>" for f in prefer) + "</prefer></alias>"
        for name, prefer in FONT_ALIASES.items())
    conf = folder / "fonts.conf"
    conf.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                    "<include ignore_missing=\"yes\">/etc/fonts/fonts.conf</include>"
                    f"{aliases}</fontconfig>", encoding="utf-8")
    return conf


def docx_to_pdf(docx: str | Path, out_dir: str | Path, *, timeout_s: float = 600) -> Path:
    """Convert a ``.docx`` to PDF with LibreOffice; returns the PDF's path.

    Raises
    ------
    FileNotFoundError
        LibreOffice is not installed (``scripts/sysdeps.sh`` installs it on Debian).
    RuntimeError
        The conversion failed (its output is in the message).
    """
    exe = soffice_path()
    if exe is None:
        raise FileNotFoundError("LibreOffice (soffice) is not installed: apt-get install libreoffice-writer-nogui")
    docx, out_dir = Path(docx).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="geotijian-soffice-") as tmp:
        env = dict(os.environ, FONTCONFIG_FILE=str(_fonts_conf(Path(tmp))), HOME=tmp)
        cmd = [exe, f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--norestore",
               "--convert-to", "pdf", "--outdir", str(out_dir), str(docx)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    pdf = out_dir / (docx.stem + ".pdf")
    if r.returncode != 0 or not pdf.exists():
        raise RuntimeError(f"LibreOffice could not convert {docx.name} (exit {r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()[-500:]}")
    return pdf
