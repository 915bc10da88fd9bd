"""Text tables and attribute encodings as Chinese offices deliver them.

A CSV saved by Excel on Chinese Windows ("CSV (逗号分隔)") is GB18030/GBK, not UTF-8; a
Shapefile exported without its ``.cpg`` carries GBK attributes that GDAL reads as
ISO-8859-1 (mojibake such as ``³Îä¯´óÐÍ``). Here every text input is decoded by one rule:

1. a byte-order mark decides (UTF-8 with BOM, UTF-16);
2. bytes that are valid UTF-8 are UTF-8 (plain ASCII included);
3. otherwise charset-normalizer chooses among the encodings such files come in
   (:data:`CANDIDATES`); the GB2312/GBK family is read as its superset GB18030;
4. when the detector has no answer, GB18030 is tried (it is what Excel writes on
   Chinese Windows); if that fails too, the file is refused with the fix.

Whenever the rule had to guess (steps 3 and 4) the encoding used is reported with an
``InputEncodingWarning`` naming the layer, the encoding and a sample of the decoded text,
so a wrong guess shows at once.
"""

from __future__ import annotations

import codecs
import csv
import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputEncodingWarning, LayerError

__all__ = ["CANDIDATES", "Decoded", "detect_encoding", "read_text_table", "read_table", "dbf_encoding"]

#: Encodings a Chinese delivery comes in, as charset-normalizer names them: the GB family
#: (mainland Windows "ANSI" code page 936 and its supersets), Big5 (Taiwan, Hong Kong),
#: and Western code pages for files made elsewhere.
CANDIDATES = ("gb18030", "gbk", "gb2312", "big5", "big5hkscs", "cp1252", "latin_1")
_GB_FAMILY = {"gb2312", "gbk", "gb18030", "cp936", "hz", "euc_cn"}
# detection looks at this many bytes (a survey of thousands of rows decides in the first MB)
_SAMPLE_BYTES = 1 << 20


@dataclass(frozen=True)
class Decoded:
    """How a file's bytes were decoded.

    Attributes
    ----------
    encoding : str
        Python codec name used (``"utf-8"``, ``"utf-8-sig"``, ``"gb18030"`` ...).
    how : str
        Why: ``"UTF-8 byte-order mark"``, ``"valid UTF-8"``, ``"detected by charset-normalizer"``
        or ``"GB18030 after UTF-8 failed"``.
    guessed : bool
        True when the encoding was inferred (then it is reported).
    """

    encoding: str
    how: str
    guessed: bool

    @property
    def label(self) -> str:
        """Human name: ``GB18030`` rather than ``gb18030``."""
        return {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 (BOM)", "utf-16": "UTF-16",
                "gb18030": "GB18030 (GBK)", "big5": "Big5", "big5hkscs": "Big5-HKSCS",
                "cp1252": "Windows-1252", "latin_1": "ISO-8859-1"}.get(self.encoding, self.encoding)


def _normalise(name: str) -> str:
    n = codecs.lookup(name).name.replace("-", "_")
    if n in _GB_FAMILY:
        return "gb18030"
    return n


def detect_encoding(data: bytes) -> Decoded:
    """Decide how to decode ``data`` (see the module docstring for the rule).

    Returns
    -------
    Decoded
        The codec and why; ``guessed`` is True when it was inferred.

    Raises
    ------
    UnicodeDecodeError
        When no candidate decodes the bytes.
    """
    if data.startswith(codecs.BOM_UTF8):
        return Decoded("utf-8-sig", "UTF-8 byte-order mark", False)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Decoded("utf-16", "UTF-16 byte-order mark", False)
    try:
        data.decode("utf-8")
        return Decoded("utf-8", "valid UTF-8", False)
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data[:_SAMPLE_BYTES], cp_isolation=list(CANDIDATES)))
    best = matches[0] if matches else None
    if best is not None:
        # Short Chinese text fits GBK and Big5 equally well (菊园新区 is 8 bytes of either);
        # a delivery to a mainland office is GB unless the text is clearly worse read so.
        gb = [m for m in matches if _normalise(m.encoding) == "gb18030"
              and m.chaos <= best.chaos + 0.05 and m.coherence >= best.coherence - 0.05]
        enc = "gb18030" if gb else _normalise(best.encoding)
        try:
            data.decode(enc)
            return Decoded(enc, "detected by charset-normalizer", True)
        except UnicodeDecodeError:
            pass  # the sample fitted, the whole file does not: fall through to GB18030
    data.decode("gb18030")  # raises UnicodeDecodeError when even GB18030 fails
    return Decoded("gb18030", "GB18030 after UTF-8 failed", True)


def _sample_text(text: str, limit: int = 24) -> str:
    """A short run of the decoded text around its first non-ASCII character."""
    i = next((k for k, ch in enumerate(text) if ord(ch) > 127), None)
    if i is None:
        return ""
    j = i
    while j < len(text) and j - i < limit and text[j] not in ",;\t\r\n\"":
        j += 1
    return text[i:j]


def _report(label: str, what: str, text: str, fix: str) -> None:
    sample = _sample_text(text).strip()
    warnings.warn(f"{label}: {what}" + (f"; first text: {sample!r}" if sample else "")
                  + f". If the text looks wrong, {fix}", InputEncodingWarning, stacklevel=3)


def read_text_table(path: str | Path, label: str, **kwargs) -> pd.DataFrame:
    """Read a CSV/TXT table in whatever encoding it came in.

    Parameters
    ----------
    path : path
        The file.
    label : str
        Layer name for messages (``"survey (survey.csv)"``).
    **kwargs
        Passed to ``pandas.read_csv`` (e.g. ``dtype=object``); ``encoding`` is decided here.

    Returns
    -------
    DataFrame
        ``attrs["encoding"]`` holds the codec used and ``attrs["encoding_how"]`` why.

    Raises
    ------
    LayerError
        The file is empty (no header), cannot be decoded, or is not a table.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise LayerError(label, f"cannot read the file ({exc.strerror or exc})",
                         fix="check the path and the file's permissions") from None
    if not data.strip(b" \t\r\n\xef\xbb\xbf"):
        raise LayerError(label, f"the file is empty ({len(data)} bytes, not even a header row)",
                         fix="export the table again with its header row and data")
    try:
        dec = detect_encoding(data)
    except UnicodeDecodeError as exc:
        raise LayerError(label, f"the text is neither UTF-8 nor GB18030/GBK nor Big5 (undecodable byte "
                                f"{data[exc.start:exc.start + 1]!r} at offset {exc.start})",
                         fix="save the table as 'CSV UTF-8' in Excel (or UTF-8 in WPS)") from None
    text = data.decode(dec.encoding)
    kwargs.pop("encoding", None)
    try:
        table = pd.read_csv(io.StringIO(text), **kwargs)
    except pd.errors.EmptyDataError:
        raise LayerError(label, "the file holds no columns (blank lines only)",
                         fix="export the table again with its header row") from None
    except (pd.errors.ParserError, csv.Error) as exc:
        raise LayerError(label, f"not a well-formed CSV table ({str(exc).strip()})",
                         fix="check the delimiter (comma), quotes and the number of fields on that line") from None
    if dec.guessed:
        _report(label, f"read as {dec.label}, not UTF-8 ({dec.how})", text,
                "save the table as 'CSV UTF-8' in Excel and read it again")
    table.attrs["encoding"] = dec.encoding
    table.attrs["encoding_how"] = dec.how
    return table


def read_table(path: str | Path, label: str, **kwargs) -> pd.DataFrame:
    """Read a CSV/TXT (any encoding, see :func:`read_text_table`) or Excel table.

    ``kwargs`` go to ``pandas.read_csv`` / ``pandas.read_excel`` (``dtype`` etc.).

    Raises
    ------
    LayerError
        Naming the file, for an empty, undecodable, malformed or unreadable table.
    """
    p = Path(path)
    if p.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
        kwargs.pop("encoding", None)
        try:
            return pd.read_excel(p, **kwargs)
        except Exception as exc:  # a renamed CSV, a truncated or password-protected workbook
            raise LayerError(label, f"cannot read the workbook ({type(exc).__name__}: {exc})",
                             fix="open it in Excel/WPS and save it again as .xlsx (or as 'CSV UTF-8')") from None
    return read_text_table(p, label, **kwargs)


def dbf_encoding(shp: str | Path, label: str) -> str | None:
    """Encoding to read a Shapefile's attributes with, when its ``.cpg`` is missing.

    GDAL reads a ``.dbf`` without ``.cpg`` (and without a code-page byte) as ISO-8859-1;
    GBK attributes then become mojibake without any error. When the ``.cpg`` is absent
    and the table holds non-ASCII bytes, the encoding is detected (see
    :func:`detect_encoding`) and reported with an ``InputEncodingWarning``.

    Returns
    -------
    str or None
        The codec to pass to the reader, or None to leave GDAL's own rule (a ``.cpg``
        exists, or the attributes are plain ASCII).
    """
    shp = Path(shp)
    if any(shp.with_suffix(s).exists() for s in (".cpg", ".CPG")):
        return None
    dbf = next((shp.with_suffix(s) for s in (".dbf", ".DBF") if shp.with_suffix(s).exists()), None)
    if dbf is None:
        return None
    with open(dbf, "rb") as fh:
        head = fh.read(32)
        if len(head) < 32:
            return None
        header_len, = struct.unpack("<H", head[8:10])
        fh.seek(0)
        # field names (header) and the first records: both are in the table's encoding
        data = fh.read(header_len + _SAMPLE_BYTES)
    names = data[32:header_len]
    body = names + data[header_len:]
    if body.isascii():
        return None
    try:
        dec = detect_encoding(body)
    except UnicodeDecodeError:
        raise LayerError(label, "the attribute table (.dbf) is neither UTF-8 nor GB18030/GBK nor Big5, "
                                "and there is no .cpg saying what it is",
                         fix="add a .cpg file holding the encoding name (e.g. GBK), or export the layer "
                             "again as UTF-8 / GeoPackage") from None
    enc = "utf-8" if dec.encoding == "utf-8-sig" else dec.encoding
    text = body.decode(enc, errors="replace")
    how = dec.how if dec.guessed else dec.how.replace("valid UTF-8", "valid UTF-8 throughout")
    _report(label, f"the .cpg file is missing (GDAL would read the attributes as ISO-8859-1, garbling "
                   f"Chinese): read them as {Decoded(enc, how, True).label} ({how})", text,
            f"add a .cpg file holding the encoding name (e.g. '{'GBK' if enc == 'gb18030' else 'UTF-8'}') "
            "beside the .shp")
    return enc
