"""The shared, caching Agg renderer of the print maps draws the pixels matplotlib's own does."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
import matplotlib.patheffects as pe  # noqa: E402

from geotijian.report import _agg, figures  # noqa: E402
from geotijian.report import _common as c  # noqa: E402

TEXTS = ["嘉定镇街道 12", "1.25 – 1.5 倍半径 (1234)", "北 N", "0.5 km", "Ångström ffi", "  "]


def _figure(seed: int) -> Figure:
    """Texts at sub-pixel positions, sizes, angles, weights and colours, some with a halo,
    some without antialiasing, each string several times."""
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(4.0, 3.0), dpi=150)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    for i in range(60):
        s = TEXTS[i % len(TEXTS)]
        kw = {"fontsize": float(rng.choice([6.5, 7.0, 8.0, 12.5])),
              "rotation": float(rng.choice([0.0, 0.0, 30.0, 90.0])),
              "fontweight": "bold" if i % 4 == 0 else "normal",
              "color": ("#222222", "#d7191c", "#2b83ba")[i % 3],
              "antialiased": i % 7 != 3}
        if i % 5 == 0:
            kw["path_effects"] = [pe.withStroke(linewidth=2.2, foreground="white")]
        ax.text(*rng.uniform(0.0, 1.0, 2), s, **kw)
    return fig


def _cjk() -> dict:
    font = figures.find_cjk_font()
    return {"font.sans-serif": ([font] if font else []) + ["DejaVu Sans"]}


def _pixels(canvas_type: type, seed: int) -> np.ndarray:
    with matplotlib.rc_context(_cjk()):
        canvas = canvas_type(_figure(seed))
        canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def test_caching_renderer_draws_matplotlibs_pixels():
    """Two figures in turn on the shared renderer (the second hits the caches the first
    filled, at other sub-pixel offsets) are, pixel for pixel, those of a new stock renderer."""
    for seed in (1, 2, 1):
        ours = _pixels(_agg.SharedRendererCanvas, seed)
        ref = _pixels(FigureCanvasAgg, seed)
        assert ours.shape == ref.shape == (450, 600, 4)
        assert (ref[..., :3] < 250).any()   # something was drawn
        assert np.array_equal(ours, ref)


def test_caching_renderer_shared_per_size_and_cached():
    with matplotlib.rc_context(_cjk()):
        a = _agg.SharedRendererCanvas(_figure(3))
        a.draw()
        b = _agg.SharedRendererCanvas(_figure(4))
        b.draw()
    assert a.get_renderer() is b.get_renderer()
    r = a.get_renderer()
    if not _agg._GLYPH_CALLS:
        pytest.skip("this matplotlib draws text through the stock RendererAgg.draw_text")
    assert r._layouts and r._glyphs and r._text2path._paths
    verts, codes = next(iter(r._text2path._paths.values()))
    assert not verts.flags.writeable and len(verts) == len(codes)
    other = Figure(figsize=(2.0, 2.0), dpi=100)
    c = _agg.SharedRendererCanvas(other)
    assert c.get_renderer() is not r and (c.get_renderer().width, c.get_renderer().height) == (200, 200)


def test_gap_figures_on_a_backdrop_are_the_same_bytes(tmp_path):
    """The gap figures of save_figures share their units layer (a Backdrop: drawn by the
    first, its pixels restored in the next): each PNG is byte for byte the figure drawn
    alone; a figure of another extent, or an SVG, draws the layer itself."""
    from tests.test_report import make_study

    study = make_study()
    types = list(c.ordered_types(study.coverage_gaps["facility_type"]))
    assert len(types) >= 2
    backdrop = _agg.Backdrop()
    restored = []
    mark_draw = _agg.BackdropMark.draw

    def spy(self, renderer):
        restored.append(self._backdrop.covers(renderer, self.axes))
        return mark_draw(self, renderer)

    _agg.BackdropMark.draw = spy
    try:
        for t in types:
            shared = figures.coverage_gap_figure(study, t, tmp_path / f"shared_{t}.png", _backdrop=backdrop)
            alone = figures.coverage_gap_figure(study, t, tmp_path / f"alone_{t}.png")
            assert shared.read_bytes() == alone.read_bytes(), t
        other = figures.coverage_gap_figure(study, types[0], tmp_path / "small.png", dpi=60, _backdrop=backdrop)
        svg = figures.coverage_gap_figure(study, types[0], tmp_path / "v.svg", _backdrop=backdrop)
    finally:
        _agg.BackdropMark.draw = mark_draw
    assert restored == [False] + [True] * (len(types) - 1) + [False, False]
    assert other.read_bytes() == figures.coverage_gap_figure(study, types[0], tmp_path / "small_alone.png",
                                                             dpi=60).read_bytes()
    assert svg.read_text(encoding="utf-8").count("#f4f4f4") >= 1   # the units layer itself, in the SVG
