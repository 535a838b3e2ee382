"""A first end-to-end check of the foundation: parse, render, errors."""

from __future__ import annotations

import pytest

import ci_engine as ce
from ci_engine import ast as A


def test_parse_render_typical_string() -> None:
    text = "imageMogr2/thumbnail/400x/crop/300x300/gravity/center/format/webp/quality/80"
    pipeline = ce.parse(text)
    (step,) = pipeline.steps
    assert isinstance(step, A.ImageMogr2)
    assert step.ops[0] == A.Thumbnail(A.FitWidth(400))
    assert ce.render(pipeline) == text


def test_range_error_is_located_and_maskable() -> None:
    with pytest.raises(ce.ValueRangeError) as info:
        ce.parse("imageMogr2/blur/80x5/ignore-error/1")
    assert info.value.code == "InvalidArgument"
    assert info.value.column == 17
    assert info.value.masked
