"""unit_point_counts (counted in numpy) equals a pandas crosstab of the unit-level points."""

from __future__ import annotations

import pandas as pd

from geotijian.report import problem_figures
from geotijian.report import _common as c
from tests.test_report import make_study


def _crosstab(study) -> pd.DataFrame:
    """The reference: pandas' crosstab of the unit-level points, on the units, classes ordered."""
    ids = study.units["unit_id"].astype(str)
    p = study.problem_points[study.problem_points["level"].astype(str) == "unit"]
    tab = pd.crosstab(p["area_id"].astype(str), p["problem_class"].astype(str))
    classes = c.ordered_classes(pd.Series(list(tab.columns) + list(problem_figures.PROBLEM_CLASSES)))
    out = tab.reindex(index=ids, columns=classes, fill_value=0).fillna(0).astype(int)
    out["total"] = out.sum(axis=1)
    return out


def test_unit_point_counts_is_the_crosstab():
    study = make_study()
    pts = study.problem_points
    unit = pts.index[pts["level"].astype(str) == "unit"]
    assert len(unit) >= 4
    extra = pts.loc[unit[:4]].copy()
    extra["problem_class"] = ["其他", None, "限时解决", "限时解决"]   # a class outside the three; a missing one
    extra["area_id"] = [extra["area_id"].iloc[0], extra["area_id"].iloc[1], None, "NOT-A-UNIT"]
    study.problem_points = pd.concat([pts, extra], ignore_index=True)
    got = problem_figures.unit_point_counts(study)
    want = _crosstab(study)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.columns) == ["限时解决", "尽力解决", "长期谋划", "其他", "total"]
    assert got["其他"].sum() == 1 and got["total"].sum() == len(unit) + 1
    study.problem_points = study.problem_points.assign(level="town")   # no unit-level point
    none = problem_figures.unit_point_counts(study)
    assert (none.to_numpy() == 0).all() and list(none.index) == list(study.units["unit_id"].astype(str))
