"""Word primitives of the 体检报告: styles, headings, TOC, captions, tables, figures, fields.

:class:`DocWriter` wraps a python-docx ``Document`` (the packaged default or a district's
own template) and adds content in the house style of Chinese government reports:

* **Styles** by their built-in names, so a table of contents, the navigation pane and a
  district template's house style all work: ``Normal`` (正文, 宋体 12 pt, first line
  indented two characters, 1.5 lines), ``Heading 1``-``3`` (黑体 16 / 14 / 12 pt, outline
  levels 1-3), ``Title``, ``Caption`` (题注, 黑体 10.5 pt), ``TOC 1``-``3``, and two of
  geotijian's own: ``表格文字`` (table text, 宋体 9 pt) and ``待填写`` (a paragraph the
  office fills in, highlighted). East-Asian fonts are named 宋体 / 黑体 with their Latin
  fallbacks (SimSun / SimHei in the font table, Times New Roman for Latin text); a
  system without them substitutes by the font table's family and charset. With a template,
  its styles win: only the styles it lacks are added.
* **Table of contents**: a real ``TOC \\o "1-3" \\h \\z \\u`` field whose cached result
  already lists every heading (hyperlinks to bookmarks, ``PAGEREF`` page numbers), and
  ``updateFields`` in the settings so Word refreshes the page numbers on opening.
* **Captions** numbered with ``SEQ 表`` / ``SEQ 图`` fields (cached numbers correct);
  tables above their table, figures below their figure.
* **Tables** with a header row that repeats on every page (``tblHeader``), rows that do
  not break across pages, borders set on the table (independent of a template's table
  styles) and numbers right-aligned.
* **Deterministic bytes**: fixed core properties and zip entry times (:meth:`save`).
"""

from __future__ import annotations

import copy
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from docx import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK, WD_COLOR_INDEX
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Cm, Pt, RGBColor

from ...errors import ConfigError

__all__ = ["DocWriter", "BODY_FONT", "HEADING_FONT", "LATIN_FONT", "FIELDS", "BODY_FIELD"]

#: East-Asian fonts by their Chinese names, with the names Word and fontconfig know them by.
BODY_FONT = ("宋体", "SimSun")
HEADING_FONT = ("黑体", "SimHei")
LATIN_FONT = "Times New Roman"
#: the font-table entries that let a system without 宋体 / 黑体 substitute a like font
_FONT_TABLE = {
    "宋体": {"altName": "SimSun", "panose1": "02010600030101010101", "charset": "86", "family": "auto",
             "pitch": "variable"},
    "黑体": {"altName": "SimHei", "panose1": "02010609060101010101", "charset": "86", "family": "modern",
             "pitch": "fixed"},
}

#: Template fields filled by the report (Chinese or English spelling), and the body field.
FIELDS = {"标题": "title", "title": "title", "年份": "year", "year": "year", "编制单位": "organisation",
          "organisation": "organisation", "日期": "date", "date": "date"}
BODY_FIELD = ("正文", "body")
_FIELD_RE = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")

# (style name, east-asian font, size pt, bold, outline level, space before/after pt)
_HEADINGS = {1: (HEADING_FONT[0], 16, False, 24, 12), 2: (HEADING_FONT[0], 14, False, 12, 6),
             3: (HEADING_FONT[0], 12, False, 6, 3)}
FILL_STYLE = "待填写"
TABLE_TEXT_STYLE = "表格文字"
FIXED_CORE_TIME = "2000-01-01T00:00:00Z"
#: text width of the default A4 page (21 cm − 2.8 − 2.6 cm margins), the tables' full width
TEXT_WIDTH_CM = 15.6
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _runs_xml(text: str, rpr: str = "") -> str:
    """``<w:r>`` XML of a text (escaped; control characters dropped; line breaks kept)."""
    from xml.sax.saxutils import escape

    lines = _XML_BAD.sub("", text).split("\n")
    inner = "<w:br/>".join(f'<w:t xml:space="preserve">{escape(ln)}</w:t>' for ln in lines)
    return f"<w:r>{rpr}{inner}</w:r>"


def _el(tag: str, **attrs: str) -> Any:
    e = OxmlElement(tag)
    for k, v in attrs.items():
        e.set(qn(k), str(v))
    return e


def _set_fonts(rpr: Any, east_asia: str, latin: str = LATIN_FONT) -> None:
    """Replace ``w:rFonts`` of a run-properties element (theme fonts removed)."""
    for old in rpr.findall(qn("w:rFonts")):
        rpr.remove(old)
    rf = _el("w:rFonts", **{"w:ascii": latin, "w:hAnsi": latin, "w:eastAsia": east_asia, "w:cs": latin})
    rpr.insert(0, rf)


def _style_font(style: Any, east_asia: str, size: float, *, bold: bool | None = None,
                color: str | None = "000000") -> None:
    style.font.size = Pt(size)
    if bold is not None:
        style.font.bold = bold
    if color is not None:
        style.font.color.rgb = RGBColor.from_string(color)
        c = style.element.get_or_add_rPr().find(qn("w:color"))
        for a in ("w:themeColor", "w:themeShade", "w:themeTint"):
            if c is not None and c.get(qn(a)) is not None:
                del c.attrib[qn(a)]
    _set_fonts(style.element.get_or_add_rPr(), east_asia)


def _outline(style: Any, level: int) -> None:
    ppr = style.element.get_or_add_pPr()
    for old in ppr.findall(qn("w:outlineLvl")):
        ppr.remove(old)
    ppr.append(_el("w:outlineLvl", **{"w:val": str(level - 1)}))


class DocWriter:
    """A report under construction.

    Parameters
    ----------
    template : path, optional
        A district's own ``.docx`` (house style). It must hold a paragraph ``{{正文}}``
        (or ``{{body}}``) where the report body goes; ``{{标题}}``, ``{{年份}}``,
        ``{{编制单位}}`` and ``{{日期}}`` anywhere (body, tables, headers, footers) are
        filled. Without a template, geotijian's own cover, header and footer are used.
    """

    def __init__(self, template: str | Path | None = None, *, _blank: bool = False) -> None:
        self.template = Path(template) if template is not None else None
        self._bookmark = 0
        self._seq = {"表": 0, "图": 0}
        self._headings: list[tuple[int, str, str]] = []
        self._toc: Any = None
        self._body_mark: Any = None
        self._style_ids: dict[Any, str | None] = {}
        if self.template is None and not _blank:
            # geotijian's own styles and page, set up once per process (python-docx finds a
            # style by scanning every style: ~20 ms a report) and read back from their bytes
            self.doc = Document(io.BytesIO(_blank_package()))
            self._style_ids = _BLANK_STYLE_IDS   # (the blank document's styles: the same in every report)
            _hash_pictures_once(self.doc)
            return
        self.doc = Document() if self.template is None else _open_template(self.template)
        _hash_pictures_once(self.doc)
        self._setup_styles()
        if self.template is not None:
            self._body_mark = _find_body_field(self.doc, self.template)
            self._start = len(self.doc.element.body)
        else:
            self._page_setup()

    # ------------------------------------------------------------------ styles
    def _setup_styles(self) -> None:
        styles = self.doc.styles
        names = {s.name for s in styles}
        own = self.template is None
        # document defaults: Chinese language, so East-Asian text takes the East-Asian font
        rpr_default = self.doc.styles.element.find(qn("w:docDefaults"))
        if rpr_default is not None and own:
            rpr = rpr_default.find(qn("w:rPrDefault") + "/" + qn("w:rPr"))
            if rpr is not None:
                _set_fonts(rpr, BODY_FONT[0])
                for old in rpr.findall(qn("w:lang")):
                    rpr.remove(old)
                rpr.append(_el("w:lang", **{"w:val": "en-US", "w:eastAsia": "zh-CN", "w:bidi": "ar-SA"}))
        if own:
            normal = styles["Normal"]
            _style_font(normal, BODY_FONT[0], 12)
            pf = normal.paragraph_format
            pf.line_spacing = 1.5
            pf.space_after = Pt(0)
            pf.space_before = Pt(0)
            ppr = normal.element.get_or_add_pPr()
            for old in ppr.findall(qn("w:ind")):
                ppr.remove(old)
            ppr.append(_el("w:ind", **{"w:firstLineChars": "200", "w:firstLine": "480"}))
            ppr.append(_el("w:jc", **{"w:val": "both"}))
        for level, (font, size, bold, before, after) in _HEADINGS.items():
            name = f"Heading {level}"
            if name not in names:
                st = styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
                st.base_style = styles["Normal"]
                st.next_paragraph_style = styles["Normal"]
                own_h = True
            else:
                st = styles[name]
                own_h = own
            if own_h:
                _style_font(st, font, size, bold=bold)
                pf = st.paragraph_format
                pf.space_before, pf.space_after = Pt(before), Pt(after)
                pf.keep_with_next = True
                pf.first_line_indent = Pt(0)
                pf.line_spacing = 1.25
                _outline(st, level)
                ppr = st.element.get_or_add_pPr()
                for old in ppr.findall(qn("w:ind")):
                    ppr.remove(old)
                ppr.append(_el("w:ind", **{"w:firstLineChars": "0", "w:firstLine": "0"}))
        if own or "Title" not in names:
            st = styles["Title"] if "Title" in names else styles.add_style("Title", WD_STYLE_TYPE.PARAGRAPH)
            _style_font(st, HEADING_FONT[0], 22)
            st.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.CENTER
            st.paragraph_format.first_line_indent = Pt(0)
            ppr = st.element.get_or_add_pPr()
            for old in ppr.findall(qn("w:pBdr")):
                ppr.remove(old)
        if own or "Caption" not in names:
            st = styles["Caption"] if "Caption" in names else styles.add_style("Caption", WD_STYLE_TYPE.PARAGRAPH)
            _style_font(st, HEADING_FONT[0], 10.5, bold=False)
            st.font.italic = False
            st.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.CENTER
            st.paragraph_format.first_line_indent = Pt(0)
            st.paragraph_format.space_before = Pt(6)
            st.paragraph_format.space_after = Pt(6)
            st.paragraph_format.keep_with_next = True
            st.paragraph_format.line_spacing = 1.0
        for level in (1, 2, 3):
            name = f"TOC {level}"
            if name in names and not own:
                continue
            st = styles[name] if name in names else styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
            st.base_style = styles["Normal"]
            _style_font(st, HEADING_FONT[0] if level == 1 else BODY_FONT[0], 12 if level == 1 else 11)
            pf = st.paragraph_format
            pf.first_line_indent = Pt(0)
            pf.left_indent = Cm(0.75 * (level - 1))
            pf.space_before = Pt(3)
            pf.line_spacing = 1.25
            ppr = st.element.get_or_add_pPr()
            for old in ppr.findall(qn("w:tabs")):
                ppr.remove(old)
            tabs = _el("w:tabs")
            tabs.append(_el("w:tab", **{"w:val": "right", "w:leader": "dot", "w:pos": "9060"}))
            ppr.append(tabs)
            for old in ppr.findall(qn("w:ind")):
                ppr.remove(old)
            ppr.append(_el("w:ind", **{"w:left": str(425 * (level - 1)), "w:firstLine": "0", "w:firstLineChars": "0"}))
        if TABLE_TEXT_STYLE not in names:
            st = styles.add_style(TABLE_TEXT_STYLE, WD_STYLE_TYPE.PARAGRAPH)
            st.base_style = styles["Normal"]
            _style_font(st, BODY_FONT[0], 9)
            pf = st.paragraph_format
            pf.first_line_indent = Pt(0)
            pf.line_spacing = 1.0
            pf.space_before = Pt(1)
            pf.space_after = Pt(1)
            ppr = st.element.get_or_add_pPr()
            for old in ppr.findall(qn("w:ind")):
                ppr.remove(old)
            ppr.append(_el("w:ind", **{"w:firstLineChars": "0", "w:firstLine": "0"}))
            for jc in ppr.findall(qn("w:jc")):
                ppr.remove(jc)
            ppr.append(_el("w:jc", **{"w:val": "left"}))  # not Normal's justified: wide gaps in narrow cells
        if FILL_STYLE not in names:
            st = styles.add_style(FILL_STYLE, WD_STYLE_TYPE.PARAGRAPH)
            st.base_style = styles["Normal"]
            st.font.color.rgb = RGBColor(0xC0, 0x00, 0x00)
            st.font.highlight_color = WD_COLOR_INDEX.YELLOW
            ppr = st.element.get_or_add_pPr()
            ppr.append(_el("w:pBdr"))
            bdr = ppr.find(qn("w:pBdr"))
            for side in ("top", "left", "bottom", "right"):
                bdr.append(_el(f"w:{side}", **{"w:val": "dashed", "w:sz": "6", "w:space": "4", "w:color": "C00000"}))
        self._font_table()
        self._update_fields_on_open()

    def _font_table(self) -> None:
        part = self.doc.part
        ft = next((r.target_part for r in part.rels.values() if r.reltype.endswith("/fontTable")), None)
        if ft is None:
            return
        from lxml import etree

        root = etree.fromstring(ft.blob)
        have = {f.get(qn("w:name")) for f in root.findall(qn("w:font"))}
        for name, spec in _FONT_TABLE.items():
            if name in have:
                continue
            f = etree.SubElement(root, qn("w:font"))
            f.set(qn("w:name"), name)
            for k in ("altName", "panose1", "charset", "family", "pitch"):
                etree.SubElement(f, qn(f"w:{k}")).set(qn("w:val"), spec[k])
        ft._blob = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)

    def _update_fields_on_open(self) -> None:
        s = self.doc.settings.element
        for old in s.findall(qn("w:updateFields")):
            s.remove(old)
        s.append(_el("w:updateFields", **{"w:val": "true"}))

    def _page_setup(self) -> None:
        sec = self.doc.sections[0]
        sec.page_width, sec.page_height = Cm(21.0), Cm(29.7)
        sec.top_margin, sec.bottom_margin = Cm(2.54), Cm(2.54)
        sec.left_margin, sec.right_margin = Cm(2.8), Cm(2.6)
        sec.header_distance = sec.footer_distance = Cm(1.5)

    # ------------------------------------------------------------------ text
    def _add_p(self, style: str | None = None) -> Any:
        """A new paragraph at the end of the body, in paragraph style ``style`` (by name).

        python-docx resolves a style name by scanning every style of the document (XPath,
        milliseconds per paragraph: seconds for a district's report); the writer's styles
        are fixed once :meth:`_setup_styles` ran, so each name is resolved once.
        """
        p = self.doc.add_paragraph()
        if style is not None:
            if style not in self._style_ids:
                self._style_ids[style] = self.doc.part.get_style_id(style, WD_STYLE_TYPE.PARAGRAPH)
            p._p.style = self._style_ids[style]   # (None for the default style, as python-docx sets it)
        return p

    def _style_id(self, name: str) -> str:
        """The ID of style ``name`` (resolved once, see :meth:`_add_p`)."""
        key = ("id", name)
        if key not in self._style_ids:
            self._style_ids[key] = self.doc.styles[name].style_id  # type: ignore[index]
        return self._style_ids[key]  # type: ignore[index,return-value]

    def heading(self, text: str, level: int = 1) -> Any:
        """A heading (bookmarked for the table of contents)."""
        p = self._add_p(f"Heading {level}")
        name = f"_Toc{self._bookmark + 1:06d}"
        self._bookmark += 1
        p._p.append(_el("w:bookmarkStart", **{"w:id": str(self._bookmark), "w:name": name}))
        p.add_run(text)
        p._p.append(_el("w:bookmarkEnd", **{"w:id": str(self._bookmark)}))
        self._headings.append((level, text, name))
        return p

    def para(self, text: str | Sequence[tuple[str, dict]] = "", *, style: str | None = None,
             align: str | None = None, indent: bool = True) -> Any:
        """A paragraph; ``text`` is a string or runs ``[(text, {"bold": True}), ...]``."""
        p = self._add_p(style)
        runs = [(text, {})] if isinstance(text, str) else text
        for t, fmt in runs:
            r = p.add_run(t)
            if fmt.get("bold"):
                r.bold = True
            if fmt.get("color"):
                r.font.color.rgb = RGBColor.from_string(fmt["color"])
            if fmt.get("size"):
                r.font.size = Pt(fmt["size"])
            if fmt.get("font"):
                _set_fonts(r._r.get_or_add_rPr(), fmt["font"])
        if align == "center":
            p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        elif align == "right":
            p.alignment = WD_ALIGN_PARAGRAPH.RIGHT
        if not indent:
            p.paragraph_format.first_line_indent = Pt(0)
        return p

    def fill_in(self, text: str) -> Any:
        """A paragraph the office fills in: style 待填写, starting with 【待填写】."""
        return self.para(f"【待填写】{text}", style=FILL_STYLE)

    def bullets(self, items: Iterable[str]) -> None:
        for t in items:
            self.para(t)

    def page_break(self) -> None:
        self.doc.add_paragraph().add_run().add_break(WD_BREAK.PAGE)

    # ------------------------------------------------------------------ cover, header, TOC
    def cover(self, title: str, subtitle: str, lines: Sequence[str]) -> None:
        """geotijian's own cover page (no template): title, subtitle, the organisation lines."""
        for _ in range(6):
            self.para("", indent=False)
        self.para(title, style="Title")
        self.para(subtitle, align="center", indent=False).runs[0].font.size = Pt(16)
        for _ in range(10):
            self.para("", indent=False)
        for ln in lines:
            p = self.para(ln, align="center", indent=False)
            p.runs[0].font.size = Pt(14)
        self.page_break()

    def header_footer(self, header_text: str) -> None:
        """Header text and a centred page number (``PAGE`` field) on every page but the first."""
        if self.template is not None:
            return
        sec = self.doc.sections[0]
        sec.different_first_page_header_footer = True
        hp = sec.header.paragraphs[0]
        hp.text = header_text
        hp.alignment = WD_ALIGN_PARAGRAPH.CENTER
        hp.paragraph_format.first_line_indent = Pt(0)
        for r in hp.runs:
            r.font.size = Pt(9)
        ppr = hp._p.get_or_add_pPr()
        bdr = _el("w:pBdr")
        bdr.append(_el("w:bottom", **{"w:val": "single", "w:sz": "6", "w:space": "1", "w:color": "000000"}))
        ppr.append(bdr)
        fp = sec.footer.paragraphs[0]
        fp.alignment = WD_ALIGN_PARAGRAPH.CENTER
        fp.paragraph_format.first_line_indent = Pt(0)
        fp.add_run("第 ").font.size = Pt(9)
        self._field(fp, " PAGE ", "1", size=9)
        fp.add_run(" 页").font.size = Pt(9)

    def _field(self, p: Any, instr: str, cached: str, *, size: float | None = None, parent: Any = None) -> None:
        """A complex field ``instr`` with the ``cached`` result, appended to ``p`` (or ``parent``)."""
        target = p._p if parent is None else parent

        def run(child: Any = None, text: str | None = None) -> None:
            r = OxmlElement("w:r")
            if size is not None:
                rpr = _el("w:rPr")
                rpr.append(_el("w:sz", **{"w:val": str(int(size * 2))}))
                r.append(rpr)
            if child is not None:
                r.append(child)
            if text is not None:
                t = _el("w:t", **{"xml:space": "preserve"})
                t.text = text
                r.append(t)
            target.append(r)

        run(_el("w:fldChar", **{"w:fldCharType": "begin"}))
        it = _el("w:instrText", **{"xml:space": "preserve"})
        it.text = instr
        run(it)
        run(_el("w:fldChar", **{"w:fldCharType": "separate"}))
        run(text=cached)
        run(_el("w:fldChar", **{"w:fldCharType": "end"}))

    def toc(self, title: str = "目  录") -> None:
        """Reserve the table of contents here; its entries are written by :meth:`finish`."""
        p = self.para(title, align="center", indent=False)
        p.runs[0].font.size = Pt(16)
        _set_fonts(p.runs[0]._r.get_or_add_rPr(), HEADING_FONT[0])
        self._toc = self._add_p("TOC 1")
        self.page_break()

    def _write_toc(self, pages: dict[str, int] | None) -> None:
        if self._toc is None:
            return
        anchor = self._toc._p
        heads = [h for h in self._headings if h[0] <= 3] or [(1, "（无标题）", "")]
        paras = []
        for k, (level, text, bm) in enumerate(heads):
            p = _el("w:p")
            ppr = _el("w:pPr")
            ppr.append(_el("w:pStyle", **{"w:val": self._style_id(f"TOC {level}")}))
            p.append(ppr)
            paras.append(p)
            holder = self._toc.__class__(p, self._toc._parent)
            if k == 0:
                self._field_begin(p, ' TOC \\o "1-3" \\h \\z \\u ')
            link = _el("w:hyperlink", **{"w:anchor": bm, "w:history": "1"}) if bm else p
            if bm:
                p.append(link)
            for child in (None, _el("w:tab")):
                r = OxmlElement("w:r")
                if child is None:
                    t = _el("w:t", **{"xml:space": "preserve"})
                    t.text = text
                    r.append(t)
                else:
                    r.append(child)
                link.append(r)
            page = "" if not pages or bm not in pages else str(pages[bm])
            if bm:
                self._field(holder, f" PAGEREF {bm} \\h ", page, parent=link)
            if k == len(heads) - 1:
                r = OxmlElement("w:r")
                r.append(_el("w:fldChar", **{"w:fldCharType": "end"}))
                p.append(r)
        for p in paras:
            anchor.addprevious(p)
        anchor.getparent().remove(anchor)
        self._toc = None

    @staticmethod
    def _field_begin(p: Any, instr: str) -> None:
        for child in (_el("w:fldChar", **{"w:fldCharType": "begin", "w:dirty": "true"}),):
            r = OxmlElement("w:r")
            r.append(child)
            p.append(r)
        r = OxmlElement("w:r")
        it = _el("w:instrText", **{"xml:space": "preserve"})
        it.text = instr
        r.append(it)
        p.append(r)
        r = OxmlElement("w:r")
        r.append(_el("w:fldChar", **{"w:fldCharType": "separate"}))
        p.append(r)

    # ------------------------------------------------------------------ captions, tables, figures
    def caption(self, kind: str, text: str) -> str:
        """A numbered caption ``表 n text`` / ``图 n text`` (``SEQ`` field); returns ``表 n``."""
        return self._caption(kind, text)[0]

    def _caption(self, kind: str, text: str) -> tuple[str, Any]:
        self._seq[kind] += 1
        n = self._seq[kind]
        p = self._add_p("Caption")
        p.add_run(f"{kind} ")
        self._field(p, f" SEQ {kind} \\* ARABIC ", str(n))
        p.add_run(f"  {text}")
        return f"{kind} {n}", p

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str | None = None,
              widths_cm: Sequence[float] | None = None, numeric: Sequence[int] = (),
              note: str | None = None) -> str | None:
        """A table with a repeating header row; cells are strings (format numbers first).

        ``numeric``: column positions right-aligned. Returns the caption label (``表 n``).
        The table's XML is written in one piece (python-docx's cell API costs milliseconds
        per cell: minutes for a district's attachments).
        """
        label = self.caption("表", caption) if caption else None
        ncol = len(header)
        if widths_cm is None:
            widths_cm = [TEXT_WIDTH_CM / ncol] * ncol
        tw = [int(round(x * 567)) for x in widths_cm]
        sid = self._style_id(TABLE_TEXT_STYLE)
        num = set(numeric)
        parts = [f'<w:tbl {nsdecls("w")}><w:tblPr><w:tblW w:w="{sum(tw)}" w:type="dxa"/><w:jc w:val="center"/>'
                 '<w:tblBorders>' + "".join(f'<w:{s} w:val="single" w:sz="4" w:space="0" w:color="000000"/>'
                                            for s in ("top", "left", "bottom", "right", "insideH", "insideV")) +
                 '</w:tblBorders><w:tblLayout w:type="fixed"/>'
                 '<w:tblCellMar><w:left w:w="85" w:type="dxa"/><w:right w:w="85" w:type="dxa"/></w:tblCellMar>'
                 '<w:tblLook w:val="0020" w:firstRow="1" w:lastRow="0" w:firstColumn="0" w:lastColumn="0" '
                 'w:noHBand="1" w:noVBand="1"/></w:tblPr><w:tblGrid>']
        parts += [f'<w:gridCol w:w="{w}"/>' for w in tw]
        parts.append("</w:tblGrid>")
        # each column's cell XML before its run, for the header (0) and the body (1)
        pre: list[list[str]] = [[], []]
        for i in (0, 1):
            shd = '<w:shd w:val="clear" w:color="auto" w:fill="D9E2F3"/>' if i == 0 else ""
            for j in range(ncol):
                jc = '<w:jc w:val="center"/>' if i == 0 else '<w:jc w:val="right"/>' if j in num else ""
                pre[i].append(f'<w:tc><w:tcPr><w:tcW w:w="{tw[j]}" w:type="dxa"/>{shd}<w:vAlign w:val="center"/>'
                              f'</w:tcPr><w:p><w:pPr><w:pStyle w:val="{sid}"/>{jc}</w:pPr>')
        for i, row in enumerate([list(header)] + [list(r) for r in rows]):
            if len(row) != ncol:
                raise ValueError(f"table {caption!r}: row {i} has {len(row)} cells, the header {ncol}")
            parts.append("<w:tr><w:trPr><w:cantSplit/>" + ("<w:tblHeader/>" if i == 0 else "") + "</w:trPr>")
            cells = pre[min(i, 1)]
            rpr = "<w:rPr><w:b/></w:rPr>" if i == 0 else ""
            texts = ["" if value is None else str(value) for value in row]
            plain = not _XML_BAD.search("".join(texts))
            for j, text in enumerate(texts):
                if plain and "\n" not in text:   # one line, nothing to drop: _runs_xml's XML, written here
                    if "&" in text or "<" in text or ">" in text:
                        text = text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
                    parts.append(f'{cells[j]}<w:r>{rpr}<w:t xml:space="preserve">{text}</w:t></w:r></w:p></w:tc>')
                else:
                    parts.append(f"{cells[j]}{_runs_xml(text, rpr)}</w:p></w:tc>")
            parts.append("</w:tr>")
        parts.append("</w:tbl>")
        tbl = parse_xml("".join(parts))
        self.doc.element.body.append(tbl)
        body = self.doc.element.body
        sect = body.find(qn("w:sectPr"))
        if sect is not None:  # the last section's properties stay last
            body.remove(sect)
            body.append(sect)
        if note:
            p = self.para(note, style=TABLE_TEXT_STYLE)
            p.paragraph_format.space_after = Pt(6)
        else:
            self._add_p(TABLE_TEXT_STYLE)
        return label

    def figure(self, path: str | Path, caption: str, *, width_cm: float = 14.5) -> str:
        """A picture (centred) with its numbered caption below; returns ``图 n``."""
        p = self.doc.add_paragraph()
        p.alignment = WD_ALIGN_PARAGRAPH.CENTER
        p.paragraph_format.first_line_indent = Pt(0)
        p.paragraph_format.keep_with_next = True
        p.paragraph_format.line_spacing = 1.0
        p.add_run().add_picture(str(path), width=Cm(width_cm))
        # the caption goes below: keep_with_next is for the caption style (above tables)
        label, cap = self._caption("图", caption)
        cap.paragraph_format.keep_with_next = False
        return label

    # ------------------------------------------------------------------ finishing
    def finish(self, *, fields: dict[str, str], pages: dict[str, int] | None = None) -> None:
        """Write the table of contents, fill the template's fields, move the body into place."""
        self._write_toc(pages)
        if self.template is not None:
            body = self.doc.element.body
            new = [e for e in list(body)[self._start:] if e.tag != qn("w:sectPr")]
            for e in new:
                self._body_mark.addprevious(e)
            self._body_mark.getparent().remove(self._body_mark)
            _fill_fields(self.doc, fields)

    @property
    def headings(self) -> list[tuple[int, str, str]]:
        """``(level, text, bookmark)`` of every heading, in order."""
        return list(self._headings)

    @property
    def table_count(self) -> int:
        """Numbered tables so far (``表 n``)."""
        return self._seq["表"]

    @property
    def figure_count(self) -> int:
        """Numbered figures so far (``图 n``)."""
        return self._seq["图"]

    def to_bytes(self, *, title: str, subject: str, year: int) -> bytes:
        """The document's bytes, deterministic: fixed core properties and zip entry times."""
        cp = self.doc.core_properties
        cp.title = title
        cp.subject = subject
        cp.author = "geotijian"
        cp.last_modified_by = "geotijian"
        cp.comments = "geotijian 生成的城市体检报告初稿"
        cp.keywords = f"城市体检; {year}"
        cp.revision = 1
        import datetime as _dt

        fixed = _dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc)
        cp.created = fixed
        cp.modified = fixed
        cp.last_printed = fixed
        return _package_bytes(self.doc)


#: pictures read, by file: a district's gap figures go into every town's report; parsing
#: and hashing ~1 MB each time cost ~2 ms a picture. At most _IMAGES_MAX_BYTES are kept (a
#: district's report and its town packages: ~25 MB).
_IMAGES: dict[str, Any] = {}
_IMAGES_MAX_BYTES = 64 * 2**20


def _image(descriptor: Any) -> Any:
    """python-docx's ``Image`` of a picture file, parsed and hashed once per process while
    the file holds the same bytes (read and compared each time); streams read each time."""
    from docx.image.image import Image

    if not isinstance(descriptor, (str, Path)) or not hasattr(Image, "_from_stream"):
        return Image.from_file(descriptor if isinstance(descriptor, str) or not isinstance(descriptor, Path)
                               else str(descriptor))
    path = os.path.abspath(descriptor)
    with open(path, "rb") as f:
        blob = f.read()
    known = _IMAGES.get(path)
    if known is not None and known.blob == blob:
        return known
    if sum(len(im.blob) for im in _IMAGES.values()) + len(blob) > _IMAGES_MAX_BYTES:
        _IMAGES.clear()
    _IMAGES[path] = image = Image._from_stream(io.BytesIO(blob), blob, os.path.basename(path))
    return image


def _hash_pictures_once(doc: Any) -> None:
    """Find a picture already in the document by a hash table, not by hashing every picture
    part again for each new picture (python-docx's ``ImageParts._get_by_sha1``: quadratic,
    ~0.2 s for a district report's 20 figures). Same answer: the first part with the hash.
    A picture file is parsed and hashed once per process (:func:`_image`), and a part made
    from it takes its hash (not hashed again)."""
    images = doc.part.package.image_parts
    if not (hasattr(images, "_get_by_sha1") and hasattr(images, "_add_image_part")
            and isinstance(getattr(images, "_image_parts", None), list)):
        return   # (another python-docx: leave it be)
    known: dict[str, Any] = {}
    seen = 0

    def by_sha1(sha1: str) -> Any:
        nonlocal seen
        parts = images._image_parts
        for part in parts[seen:]:   # parts are only appended: each hashed once
            known.setdefault(part.sha1, part)
        seen = len(parts)
        return known.get(sha1)

    def get_or_add_image_part(descriptor: Any) -> Any:
        """``ImageParts.get_or_add_image_part``, the picture from :func:`_image`."""
        nonlocal seen
        image = _image(descriptor)
        part = by_sha1(image.sha1)
        if part is None:
            part = images._add_image_part(image)
            if images._image_parts[seen:] == [part]:   # the new part's hash is the picture's
                known.setdefault(image.sha1, part)
                seen += 1
        return part

    images._get_by_sha1 = by_sha1
    images.get_or_add_image_part = get_or_add_image_part


_BLANK: list[bytes] = []
#: style IDs by name (and ("id", name)) of the blank document, resolved once per process
_BLANK_STYLE_IDS: dict[Any, str | None] = {}


def _blank_package() -> bytes:
    """The package of a new report without a template (python-docx's default document with
    geotijian's styles, font table, settings and page set up), made once per process;
    stored uncompressed (it is only read back)."""
    if not _BLANK:
        _BLANK.append(_package_bytes(DocWriter(_blank=True).doc, compress=False))
    return _BLANK[0]


def _package_bytes(doc: Any, *, compress: bool = True) -> bytes:
    """The document's package as zip bytes, written once, deterministic: entries in
    python-docx's order (content types, package relationships, each part and its
    relationships), fixed entry times and permissions, core times fixed; pictures stored
    (they are compressed already), XML deflated.

    ``Document.save`` deflates every part, pictures too (a town's report embeds ~12 MB of
    PNG: most of its writing time), and its entries would need rewriting for fixed times.
    """
    import zipfile

    from docx.opc.packuri import CONTENT_TYPES_URI, PACKAGE_URI
    from docx.opc.pkgwriter import _ContentTypesItem

    pkg = doc.part.package
    parts = pkg.parts
    for part in parts:
        part.before_marshal()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        def put(uri: Any, data: bytes) -> None:
            name = uri.membername
            if name == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                              rb"\g<1>" + FIXED_CORE_TIME.encode() + rb"\g<2>", data)
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = (zipfile.ZIP_STORED if not compress or name.lower().endswith((".png", ".jpg", ".jpeg"))
                                  else zipfile.ZIP_DEFLATED)
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)

        put(CONTENT_TYPES_URI, _ContentTypesItem.from_parts(parts).blob)
        put(PACKAGE_URI.rels_uri, pkg.rels.xml)
        for part in parts:
            put(part.partname, part.blob)
            if len(part.rels):
                put(part.partname.rels_uri, part.rels.xml)
    return out.getvalue()


# ---------------------------------------------------------------------- templates
def _open_template(path: Path) -> Any:
    key = "report.template"
    if not path.exists():
        raise ConfigError(key, f"file not found: {path}", "check the path (relative to the study.toml)")
    if path.suffix.lower() not in (".docx", ".dotx"):
        raise ConfigError(key, f"{path.name} is not a Word .docx/.dotx file",
                          "save the house style from Word as .docx (a .doc must be converted first)")
    try:
        if path.suffix.lower() == ".dotx":
            return _open_dotx(path)
        return Document(str(path))
    except Exception as exc:  # python-docx raises several types for a broken package
        raise ConfigError(key, f"{path.name} cannot be read as a Word document ({type(exc).__name__}: {exc})",
                          "open it in Word and save it again as .docx") from None


def _open_dotx(path: Path) -> Any:
    """A ``.dotx`` opened as a document (its main part's content type changed in memory)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "[Content_Types].xml":
                data = data.replace(b"wordprocessingml.template.main+xml", b"wordprocessingml.document.main+xml")
            dst.writestr(info, data)
    buf.seek(0)
    return Document(buf)


def _all_paragraphs(doc: Any) -> Iterable[Any]:
    """Every paragraph: body, table cells (nested), headers and footers of every section."""
    def walk(container: Any) -> Iterable[Any]:
        yield from container.paragraphs
        for t in getattr(container, "tables", []):
            for row in t.rows:
                for cell in row.cells:
                    yield from walk(cell)

    yield from walk(doc)
    seen = set()
    for sec in doc.sections:
        for hf in (sec.header, sec.footer, sec.first_page_header, sec.first_page_footer,
                   sec.even_page_header, sec.even_page_footer):
            if hf.is_linked_to_previous and sec is not doc.sections[0]:
                continue
            el = hf._element if hasattr(hf, "_element") else None
            if el is not None and id(el) in seen:
                continue
            seen.add(id(el))
            try:
                yield from walk(hf)
            except Exception:  # a header part that python-docx cannot open: skip it
                continue


def _find_body_field(doc: Any, path: Path) -> Any:
    hits = [p for p in doc.paragraphs if _FIELD_RE.search(p.text)
            and any(m.group(1) in BODY_FIELD for m in _FIELD_RE.finditer(p.text))]
    if not hits:
        found = sorted({m.group(1) for p in _all_paragraphs(doc) for m in _FIELD_RE.finditer(p.text)})
        said = f"it has the fields {', '.join('{{' + f + '}}' for f in found)}" if found else "it has no {{...}} fields"
        raise ConfigError("report.template", f"{path.name} has no {{{{正文}}}} paragraph where the report goes ({said})",
                          "add a paragraph holding only {{正文}} (or {{body}}) where the report body belongs; "
                          "{{标题}}, {{年份}}, {{编制单位}} and {{日期}} are filled too")
    if len(hits) > 1:
        raise ConfigError("report.template", f"{path.name} has {len(hits)} {{{{正文}}}} paragraphs",
                          "keep exactly one {{正文}} paragraph")
    p = hits[0]
    if p.text.strip() not in ("{{正文}}", "{{body}}", "{{ 正文 }}", "{{ body }}"):
        raise ConfigError("report.template", f"{path.name}: the {{{{正文}}}} paragraph holds other text ({p.text.strip()!r})",
                          "put {{正文}} alone in its own paragraph")
    if p._p.getparent() is not doc.element.body:
        raise ConfigError("report.template", f"{path.name}: {{{{正文}}}} is inside a table or text box",
                          "put {{正文}} in a paragraph of the document body")
    return p._p


def _fill_fields(doc: Any, values: dict[str, str]) -> None:
    """Replace ``{{field}}`` in every paragraph; a field split across runs is joined first."""
    unknown: set[str] = set()
    for p in _all_paragraphs(doc):
        text = p.text
        if "{{" not in text:
            continue

        def repl(m: re.Match) -> str:
            key = FIELDS.get(m.group(1))
            if key is None:
                unknown.add(m.group(1))
                return m.group(0)
            return values.get(key, "")

        new = _FIELD_RE.sub(repl, text)
        if new == text:
            continue
        runs = p.runs
        if not runs:
            continue
        done = False
        for r in runs:  # a field inside one run: keep every run's formatting
            if _FIELD_RE.search(r.text):
                r.text = _FIELD_RE.sub(repl, r.text)
                done = True
        if done and p.text == new:
            continue
        runs[0].text = new  # a field split across runs: the first run's formatting for the whole text
        for r in runs[1:]:
            r._r.getparent().remove(r._r)
    if unknown:
        import warnings

        from ...errors import GeotijianWarning

        warnings.warn(f"report template: unknown field(s) {', '.join('{{' + u + '}}' for u in sorted(unknown))} "
                      f"left as they are (known: {', '.join(sorted(set(FIELDS)))}, 正文)", GeotijianWarning,
                      stacklevel=3)


def copy_element(e: Any) -> Any:
    return copy.deepcopy(e)
