"""Exceptions and warnings of geotijian, in one place.

Every error about input data names the layer, the feature (index and ID where known),
what is wrong and how to fix it, so a GIS technician can act on the message alone.
"""

from __future__ import annotations

from typing import Any


class GeotijianError(Exception):
    """Base class of every geotijian error.

    Errors pickle with their message and fields (a worker process sends them back to the
    study, :mod:`geotijian.workers`), whatever their constructor's arguments.
    """

    def __reduce__(self) -> tuple:
        return _rebuild_error, (type(self), self.args, dict(self.__dict__))


def _rebuild_error(cls: type, args: tuple, state: dict) -> GeotijianError:
    try:
        err = cls.__new__(cls, *args)   # not its __init__: its arguments are not its args
    except TypeError:                    # MemoryError's kind: built by the class itself
        err = cls(*args)
    err.args = args
    err.__dict__.update(state)
    return err


class LayerError(GeotijianError, ValueError):
    """An input layer cannot be used as it is.

    Parameters
    ----------
    layer : str
        Layer name or role (``"compounds"``) and, where known, the file.
    problem : str
        What is wrong.
    fix : str, optional
        What the user should do.
    feature : object, optional
        Index (row position) of the first offending feature.
    feature_id : object, optional
        ID of that feature, when the layer has one.
    count : int, optional
        How many features share the problem.
    """

    def __init__(
        self,
        layer: str,
        problem: str,
        *,
        fix: str | None = None,
        feature: Any = None,
        feature_id: Any = None,
        count: int | None = None,
    ) -> None:
        self.layer = layer
        self.problem = problem
        self.fix = fix
        self.feature = feature
        self.feature_id = feature_id
        self.count = count
        where = f"layer '{layer}'"
        if feature is not None:
            where += f", feature {feature}"
            if feature_id is not None:
                where += f" (id {feature_id!r})"
        msg = f"{where}: {problem}"
        if count is not None and count > 1:
            msg += f" ({count} features in all)"
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class ConfigError(GeotijianError, ValueError):
    """A study configuration key is missing or wrong; the message names the key."""

    def __init__(self, key: str, problem: str, fix: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        msg = f"config key '{key}': {problem}"
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class NetworkError(GeotijianError, ValueError):
    """The walk network cannot be built or used (empty, broken OSM, not projected)."""


class FeasibilityError(GeotijianError, ValueError):
    """A problem cannot be solved as posed (units cannot meet the population range; new
    facility sites cannot serve the demand); the message says why in domain terms."""


class RasterError(GeotijianError, ValueError):
    """An orthophoto or population raster cannot be used as it is."""


class OutputError(GeotijianError, OSError):
    """The outputs cannot be written where the study sends them (a file in the way, a
    read-only folder, a full disk). The previous outputs are left untouched."""

    def __init__(self, path: Any, problem: str, fix: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.fix = fix
        msg = f"output folder {path}: {problem}"
        if fix:
            msg += f". Fix: {fix}"
        Exception.__init__(self, msg)

    def __str__(self) -> str:
        return str(self.args[0])


class StudyTooLargeError(GeotijianError, MemoryError):
    """The study would not fit in this machine's memory; raised before the heavy steps,
    with how to split it (by town, ``run_many``) and how to override the check."""


class GeotijianWarning(UserWarning):
    """Base class of geotijian warnings."""


class RepairWarning(GeotijianWarning):
    """Something in the input was repaired (e.g. invalid geometry made valid)."""


class TopologyWarning(GeotijianWarning):
    """Layers disagree with each other: overlaps, gaps, codes naming nothing, duplicates."""


class PlanWarning(GeotijianWarning):
    """Something the renewal plan could not do for every input (homes no candidate site
    reaches, a capacity below demand, units without data); the message says how many."""


class CoordinateWarning(GeotijianWarning):
    """Coordinates look suspicious (e.g. a WGS84 layer that looks GCJ-02 shifted)."""


class InputEncodingWarning(RepairWarning):
    """A text input was not UTF-8: its encoding was detected (GB18030/GBK, Big5 ...) and
    is reported with a sample of the decoded text."""


class InputWarning(GeotijianWarning):
    """An input was read by a documented rule the user should know about (e.g. the layer
    of a multi-layer file chosen by its role name), or holds records that were reported."""
