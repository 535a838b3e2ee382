"""Styles: the registry, expansion, style URLs with every separator, original-image
protection (styles.md)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import ci_engine
from ci_engine import ast as A
from ci_engine.errors import (
    AccessDeniedError,
    InvalidArgumentError,
    NoSuchKeyError,
    NoSuchStyleError,
    ParseError,
    TooManyStepsError,
)
from ci_engine.parse import parse
from ci_engine.store import MemoryStore
from ci_engine.styles import SEPARATORS, StyleRegistry, resolve_request

PHOTO = Path(__file__).resolve().parents[2] / "docs" / "samples" / "kleiber.jpg"
CARD = "imageMogr2/thumbnail/400x400"
HOST = "https://photos-1250000000.cos.ap-guangzhou.myqcloud.com"


# -- the registry ------------------------------------------------------------------------------------


def test_add_get_list_delete() -> None:
    styles = StyleRegistry()
    style = styles.add("card", CARD)
    assert (style.name, style.body, style.pipeline) == ("card", CARD, parse(CARD))
    assert styles.get("card") == style
    assert "card" in styles and len(styles) == 1 and list(styles) == ["card"]
    styles.add("thumb", "imageView2/1/w/200/h/200")
    assert [s.name for s in styles.list()] == ["card", "thumb"]
    styles.delete("card")
    assert "card" not in styles
    with pytest.raises(NoSuchStyleError) as info:
        styles.get("card")
    assert info.value.status == 404
    with pytest.raises(NoSuchStyleError):
        styles.delete("card")


def test_adding_an_existing_name_replaces_its_body() -> None:
    styles = StyleRegistry({"card": CARD})
    styles.add("card", "imageMogr2/thumbnail/200x")
    assert styles.get("card").body == "imageMogr2/thumbnail/200x"
    assert len(styles) == 1


def test_names_are_case_sensitive() -> None:
    styles = StyleRegistry({"Card": CARD})
    assert "Card" in styles and "card" not in styles


@pytest.mark.parametrize("name", ["card", "a", "x" * 64, "v1.2", "my-style_2", "A.B-c_d"])
def test_valid_names(name: str) -> None:
    assert StyleRegistry().check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 65,
        "has space",
        "slash/name",
        "bang!name",
        "emoji😀",
        "imageMogr2",
        "IMAGEMOGR2",
        "style",
        "exif",
        "imageInfo",
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        StyleRegistry().add(name, CARD)
    assert info.value.status == 400


def test_names_may_not_contain_an_enabled_separator() -> None:
    assert StyleRegistry(separators="!").check_name("my-card")
    with pytest.raises(InvalidArgumentError):
        StyleRegistry(separators="-!").add("my-card", CARD)
    with pytest.raises(InvalidArgumentError):
        StyleRegistry(separators="_").add("my_card", CARD)


def test_enabling_a_separator_used_by_a_name_is_refused() -> None:
    styles = StyleRegistry({"my-card": CARD}, separators="!")
    with pytest.raises(InvalidArgumentError):
        styles.set_separators("-!")
    assert styles.separators == ("!",)
    styles.set_separators("_/!")
    assert styles.separators == ("_", "/", "!")


def test_unknown_separators_are_refused() -> None:
    with pytest.raises(InvalidArgumentError):
        StyleRegistry(separators="@")


@pytest.mark.parametrize(
    "body, error",
    [
        ("imageMogr2/thumbnail", ParseError),
        ("notAnApi/1", ParseError),
        ("", InvalidArgumentError),
        ("style/other", InvalidArgumentError),
        ("imageMogr2/thumbnail/100x|style/other", InvalidArgumentError),
        ("|".join(["imageMogr2/rotate/90"] * 11), TooManyStepsError),
    ],
)
def test_bodies_are_validated_when_added(body: str, error: type[Exception]) -> None:
    styles = StyleRegistry({"other": CARD})
    with pytest.raises(error):
        styles.add("card", body)
    assert "card" not in styles


def test_the_101st_style_is_refused() -> None:
    styles = StyleRegistry({f"s{i}": CARD for i in range(100)})
    styles.add("s5", "imageMogr2/thumbnail/10x")  # replacing one at the limit is fine
    with pytest.raises(InvalidArgumentError) as info:
        styles.add("s100", CARD)
    assert (info.value.status, info.value.code, info.value.x_errno) == (400, "InvalidArgument", -60957)
    assert len(styles) == 100


def test_style_list_xml() -> None:
    styles = StyleRegistry({"card": CARD, "wm": "watermark/2/text/5pWw5o2u5LiH6LGh"})
    root = ET.fromstring(styles.to_xml())
    assert root.tag == "StyleList"
    assert [(r.findtext("StyleName"), r.findtext("StyleBody")) for r in root] == [
        ("card", CARD),
        ("wm", "watermark/2/text/5pWw5o2u5LiH6LGh"),
    ]
    assert [r.findtext("StyleName") for r in ET.fromstring(styles.to_xml("wm"))] == ["wm"]


# -- expansion -----------------------------------------------------------------------------------------


def test_expand_replaces_style_steps_in_place() -> None:
    styles = StyleRegistry({"card": "imageMogr2/thumbnail/400x400|imageMogr2/rotate/90"})
    expanded = styles.expand(parse("style/card|imageMogr2/format/webp"))
    assert expanded == parse("imageMogr2/thumbnail/400x400|imageMogr2/rotate/90|imageMogr2/format/webp")
    assert not any(isinstance(s, A.StyleRef) for s in expanded.steps)


def test_expand_without_styles_returns_the_pipeline() -> None:
    pipeline = parse("imageMogr2/thumbnail/100x")
    assert StyleRegistry().expand(pipeline) is pipeline


def test_expand_unknown_style() -> None:
    with pytest.raises(NoSuchStyleError) as info:
        StyleRegistry().expand(parse("style/nope"))
    assert info.value.x_errno == -60967


def test_the_step_limit_counts_the_expanded_chain() -> None:
    styles = StyleRegistry({"six": "|".join(["imageMogr2/rotate/90"] * 6)})
    assert len(styles.expand(parse("style/six|" + "|".join(["imageMogr2/rotate/90"] * 4))).steps) == 10
    with pytest.raises(TooManyStepsError) as info:
        styles.expand(parse("style/six|" + "|".join(["imageMogr2/rotate/90"] * 5)))
    assert not info.value.masked
    with pytest.raises(TooManyStepsError) as info:
        styles.expand(parse("style/six|" + "|".join(["imageMogr2/rotate/90"] * 4) + "|imageMogr2/ignore-error/1"))
    assert info.value.masked  # ignore-error/1 masks the 11th step


def test_process_expands_styles() -> None:
    photo = PHOTO.read_bytes()
    styles = StyleRegistry({"card": "imageMogr2/thumbnail/400x400"})
    styled = ci_engine.process(photo, "style/card|imageMogr2/format/webp", styles=styles)
    direct = ci_engine.process(photo, "imageMogr2/thumbnail/400x400|imageMogr2/format/webp")
    assert (styled.width, styled.height, styled.format) == (direct.width, direct.height, "webp")
    assert styled.data == direct.data
    with pytest.raises(NoSuchStyleError):
        ci_engine.process(photo, "style/card")


# -- download URLs -----------------------------------------------------------------------------------


def _bucket(separators: str = "".join(SEPARATORS)) -> tuple[StyleRegistry, MemoryStore]:
    styles = StyleRegistry({"card": CARD, "wm": "watermark/2/text/Y2k"}, separators=separators)
    store = MemoryStore()
    store.put("trip/beach.jpg", b"jpeg")
    return styles, store


@pytest.mark.parametrize("sep", SEPARATORS)
def test_style_urls_with_every_separator(sep: str) -> None:
    styles, store = _bucket()
    key, pipeline = resolve_request(f"{HOST}/trip/beach.jpg{sep}card", styles, exists=store)
    assert key == "trip/beach.jpg"
    assert pipeline == parse(CARD)


@pytest.mark.parametrize("sep", SEPARATORS)
def test_a_separator_that_is_not_enabled_is_part_of_the_key(sep: str) -> None:
    others = "".join(s for s in SEPARATORS if s != sep)
    styles, store = _bucket(others)
    with pytest.raises(NoSuchKeyError) as info:
        resolve_request(f"/trip/beach.jpg{sep}card", styles, exists=store)
    assert info.value.x_errno == -46628
    store.put(f"trip/beach.jpg{sep}card", b"other object")
    assert resolve_request(f"/trip/beach.jpg{sep}card", styles, exists=store) == (f"trip/beach.jpg{sep}card", None)


def test_an_existing_full_key_wins_over_a_style_split() -> None:
    styles, store = _bucket("-")
    store.put("trip/beach.jpg-card", b"an object whose name ends like a style")
    assert resolve_request("/trip/beach.jpg-card", styles, exists=store) == ("trip/beach.jpg-card", None)


def test_the_prefix_must_exist_and_the_suffix_must_be_a_style() -> None:
    styles, store = _bucket("-")
    with pytest.raises(NoSuchKeyError):
        resolve_request("/trip/other.jpg-card", styles, exists=store)  # no such object
    with pytest.raises(NoSuchKeyError):
        resolve_request("/trip/beach.jpg-nostyle", styles, exists=store)  # no such style


def test_split_at_the_last_separator() -> None:
    styles, store = _bucket("-")
    store.put("a-b-c.jpg", b"x")
    assert resolve_request("/a-b-c.jpg-card", styles, exists=store) == ("a-b-c.jpg", parse(CARD))


def test_without_an_existence_check_a_style_suffix_is_a_style() -> None:
    styles, _ = _bucket("!")
    assert resolve_request("/trip/beach.jpg!card", styles) == ("trip/beach.jpg", parse(CARD))
    assert resolve_request("/trip/beach.jpg!nope", styles) == ("trip/beach.jpg!nope", None)
    assert resolve_request("/trip/beach.jpg!card", None) == ("trip/beach.jpg!card", None)


def test_exists_may_be_a_callable() -> None:
    styles, _ = _bucket("!")
    keys = {"trip/beach.jpg"}
    assert resolve_request("/trip/beach.jpg!card", styles, exists=keys.__contains__)[0] == "trip/beach.jpg"


def test_the_path_is_percent_decoded() -> None:
    styles, store = _bucket("!")
    store.put("trip/my beach.jpg", b"x")
    assert resolve_request("/trip/my%20beach.jpg%21card", styles, exists=store) == ("trip/my beach.jpg", parse(CARD))


@pytest.mark.parametrize(
    "query, expected",
    [
        ("?style/card", CARD),
        ("?card", CARD),
        ("?style/card|imageMogr2/format/webp", CARD + "|imageMogr2/format/webp"),
        ("?style/card%7CimageMogr2/format/webp", CARD + "|imageMogr2/format/webp"),
        ("?q-sign-algorithm=sha1&q-ak=AKID&style/card", CARD),
        ("?imageMogr2/thumbnail/!50p", "imageMogr2/thumbnail/!50p"),
    ],
)
def test_query_forms(query: str, expected: str) -> None:
    styles, store = _bucket("!")
    assert resolve_request(f"{HOST}/trip/beach.jpg{query}", styles, exists=store) == ("trip/beach.jpg", parse(expected))


def test_a_separator_style_plus_query_steps_runs_the_style_first() -> None:
    styles, store = _bucket("!")
    key, pipeline = resolve_request("/trip/beach.jpg!card?imageMogr2/format/webp", styles, exists=store)
    assert key == "trip/beach.jpg"
    assert pipeline == parse(CARD + "|imageMogr2/format/webp")


def test_signature_only_queries_are_plain_downloads() -> None:
    styles, store = _bucket("!")
    url = f"{HOST}/trip/beach.jpg?q-sign-algorithm=sha1&q-ak=AKID&q-signature=abc"
    assert resolve_request(url, styles, exists=store) == ("trip/beach.jpg", None)
    assert resolve_request(url + "#frag", styles, exists=store) == ("trip/beach.jpg", None)


@pytest.mark.parametrize("query", ["?style/nope", "?nope", "?style/nope|imageMogr2/format/webp"])
def test_unknown_query_styles(query: str) -> None:
    styles, store = _bucket("!")
    with pytest.raises(NoSuchStyleError) as info:
        resolve_request(f"/trip/beach.jpg{query}", styles, exists=store)
    assert (info.value.status, info.value.x_errno) == (404, -105)
    with pytest.raises(NoSuchStyleError):
        resolve_request(f"/trip/beach.jpg{query}", None, exists=store)


def test_the_expanded_chain_is_limited_to_ten_steps() -> None:
    styles = StyleRegistry({"six": "|".join(["imageMogr2/rotate/90"] * 6)})
    extra = "|".join(["imageMogr2/rotate/90"] * 5)
    with pytest.raises(TooManyStepsError):
        resolve_request(f"/a.jpg?style/six|{extra}", styles)


def test_an_url_without_a_key_is_malformed() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        resolve_request(f"{HOST}/?style/card", StyleRegistry({"card": CARD}))
    assert info.value.x_errno == -106


# -- original-image protection -----------------------------------------------------------------------

ALLOWED = [
    "/trip/beach.jpg!card",
    "/trip/beach.jpg?style/card",
    "/trip/beach.jpg?card",
    "/trip/beach.jpg!card?q-ak=AKID",
]
REFUSED = [
    "/trip/beach.jpg",
    "/trip/beach.jpg?q-sign-algorithm=sha1&q-ak=AKID",
    "/trip/beach.jpg?imageMogr2/thumbnail/!40p",
    "/trip/beach.jpg?imageView2/1/w/200",
    "/trip/beach.jpg?watermark/2/text/Y2k",
    "/trip/beach.jpg?imageInfo",
    "/trip/beach.jpg?exif",
    "/trip/beach.jpg?imageAve",
    "/trip/beach.jpg?ci-process=QRcode&cover=0",
    "/trip/beach.jpg!card?imageMogr2/crop/10x10",
    "/trip/beach.jpg?style/card|imageMogr2/crop/10x10",
]


@pytest.mark.parametrize("url", ALLOWED)
def test_protection_allows_pure_style_urls(url: str) -> None:
    styles, store = _bucket("!")
    assert resolve_request(url, styles, True, exists=store) == ("trip/beach.jpg", parse(CARD))


@pytest.mark.parametrize("url", REFUSED)
def test_protection_refuses_everything_else(url: str) -> None:
    styles, store = _bucket("!")
    with pytest.raises(AccessDeniedError) as info:
        resolve_request(url, styles, protection=True, exists=store)
    assert (info.value.status, info.value.code, info.value.x_errno) == (403, "AccessDenied", -154)
    body = ET.fromstring(info.value.to_xml(resource="photos-1250000000/trip/beach.jpg", request_id=None))
    assert body.findtext("Code") == "AccessDenied" and body.findtext("RequestId")


@pytest.mark.parametrize("url", REFUSED[:1] + REFUSED[2:8])
def test_without_protection_the_same_urls_are_served(url: str) -> None:
    styles, store = _bucket("!")
    key, pipeline = resolve_request(url, styles, protection=False, exists=store)
    assert key == "trip/beach.jpg"
    assert (pipeline is None) == (url == "/trip/beach.jpg")
