"""Generate ``docs/gallery.md`` and ``docs/gallery/``: every operation, run by the real engine.

Run from the repository root::

    python docs/make_gallery.py          # regenerate the page and the pictures
    python docs/make_gallery.py --check  # exit 1 if the page is not what the engine makes now

Every picture is the output of ``ci_engine.process(input, rule, backend="vips")``, so the
pictures are always true. The inputs are made by the engine too: ``docs/samples/kleiber.jpg``
reduced to 360 px wide (``imageMogr2/thumbnail/360x/quality/90``), and for the animation
operations an 8-frame 240 x 135 GIF zooming into the same photograph.

There is one entry per operation family and per AST class of
``ci_engine.ast.ALL_NODE_CLASSES``; each names the classes and grammar rules it shows
(``tests/unit/test_gallery.py`` checks that every one is covered). An entry whose operation
the engine refuses (not implemented yet, or it needs something the gallery cannot give) is
listed with the engine's error message; it gets its picture as soon as it works, on the
next run of this script.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import inspect
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import ci_engine  # noqa: E402

OUT_DIR = DOCS / "gallery"
PAGE = DOCS / "gallery.md"
SAMPLE = DOCS / "samples" / "kleiber.jpg"
LADYBIRD = DOCS / "samples" / "ladybird.jpg"
WIDTH = 360
LOGO_URL = "http://example.com/ladybird.png"
VIEWABLE = {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp", "avif": ".avif"}
"""Formats a browser shows; other outputs are described, not pictured."""


def b64(text: str) -> str:
    """CI's URL-safe Base64, without padding."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Entry:
    slug: str
    title: str
    rule: str
    ast: tuple[str, ...]
    grammar: tuple[str, ...]
    note: str = ""
    input: str = "photo"


@dataclass(frozen=True)
class Section:
    title: str
    intro: str
    entries: tuple[Entry, ...]


LOGO = b64(LOGO_URL)
SECTIONS: tuple[Section, ...] = (
    Section(
        "Scaling: imageMogr2/thumbnail",
        "The eleven geometries of `thumbnail` (`imagemogr2.md` section 2), with `pad` and `color`.",
        (
            Entry(
                "thumbnail-scale-percent",
                "Scale by a percentage",
                "imageMogr2/thumbnail/!50p",
                ("ImageMogr2", "Thumbnail", "ScalePercent"),
                ("image_mogr2", "thumbnail", "scale_percent"),
            ),
            Entry(
                "thumbnail-width-percent",
                "Scale the width only",
                "imageMogr2/thumbnail/!50px",
                ("WidthPercent",),
                ("width_percent",),
            ),
            Entry(
                "thumbnail-height-percent",
                "Scale the height only",
                "imageMogr2/thumbnail/!x50p",
                ("HeightPercent",),
                ("height_percent",),
            ),
            Entry("thumbnail-fit-width", "Fit a width", "imageMogr2/thumbnail/240x", ("FitWidth",), ("fit_width",)),
            Entry("thumbnail-fit-height", "Fit a height", "imageMogr2/thumbnail/x100", ("FitHeight",), ("fit_height",)),
            Entry("thumbnail-fit-box", "Fit inside a box", "imageMogr2/thumbnail/200x200", ("FitBox",), ("fit_box",)),
            Entry(
                "thumbnail-shrink-box",
                "Fit inside a box, only shrinking",
                "imageMogr2/thumbnail/200x200>",
                ("ShrinkBox",),
                ("shrink_box",),
            ),
            Entry(
                "thumbnail-enlarge-box",
                "Fit a box, only enlarging",
                "imageMogr2/thumbnail/400x300<",
                ("EnlargeBox",),
                ("enlarge_box",),
            ),
            Entry(
                "thumbnail-shrink-width",
                "Shrink to a width, only when wider",
                "imageMogr2/thumbnail/240x>",
                ("ShrinkBox",),
                ("shrink_width",),
                note="One side of the box left out, as real clients write it (`450x%3E`); see compatibility.md.",
            ),
            Entry(
                "thumbnail-shrink-height",
                "Shrink to a height, only when taller",
                "imageMogr2/thumbnail/x100>",
                ("ShrinkBox",),
                ("shrink_height",),
            ),
            Entry(
                "thumbnail-enlarge-width",
                "Enlarge to a width, only when narrower",
                "imageMogr2/thumbnail/480x<",
                ("EnlargeBox",),
                ("enlarge_width",),
            ),
            Entry(
                "thumbnail-enlarge-height",
                "Enlarge to a height, only when shorter",
                "imageMogr2/thumbnail/x300<",
                ("EnlargeBox",),
                ("enlarge_height",),
            ),
            Entry(
                "thumbnail-cover-box",
                "Cover a box (the short side fits)",
                "imageMogr2/thumbnail/!200x200r",
                ("CoverBox",),
                ("cover_box",),
            ),
            Entry(
                "thumbnail-exact-size",
                "Exact size, aspect ignored",
                "imageMogr2/thumbnail/200x200!",
                ("ExactSize",),
                ("exact_size",),
            ),
            Entry(
                "thumbnail-max-area",
                "At most this many pixels",
                "imageMogr2/thumbnail/20000@",
                ("MaxArea",),
                ("max_area",),
            ),
            Entry(
                "thumbnail-pad-color",
                "Fit a box and pad it with a colour",
                f"imageMogr2/thumbnail/240x240/pad/1/color/{b64('#3366CC')}",
                ("Thumbnail",),
                ("pad", "color"),
                "`color` is `#3366CC` in URL-safe Base64.",
            ),
        ),
    ),
    Section(
        "Cropping",
        "`cut`, `crop` (with `gravity`), the rounded crops, the smart crop and the ratio crop.",
        (
            Entry(
                "cut", "Cut a region (width x height x left x top)", "imageMogr2/cut/200x120x80x40", ("Cut",), ("cut",)
            ),
            Entry(
                "indexcrop",
                "Cut into equal slices, keep one",
                "imageMogr2/indexcrop/width/120/index/1",
                ("IndexCrop",),
                ("index_crop",),
                note="Slices 120 px wide from the left; index 1 is the second.",
            ),
            Entry(
                "crop-box",
                "Crop a box around a gravity",
                "imageMogr2/crop/160x160/gravity/center",
                ("Crop", "CropBox"),
                ("crop", "crop_box", "gravity"),
            ),
            Entry(
                "crop-box-southeast",
                "Gravity before the crop, another corner",
                "imageMogr2/gravity/southeast/crop/200x100",
                ("Crop", "CropBox"),
                ("gravity",),
            ),
            Entry(
                "crop-width", "Crop to a width", "imageMogr2/crop/200x/gravity/east", ("CropWidth",), ("crop_width",)
            ),
            Entry("crop-height", "Crop to a height", "imageMogr2/crop/x100", ("CropHeight",), ("crop_height",)),
            Entry(
                "crop-region",
                "The legacy form with offsets",
                "imageMogr2/crop/!200x120a40a30",
                ("CropRegion",),
                ("crop_region",),
            ),
            Entry(
                "crop-region-width",
                "Legacy form, width only",
                "imageMogr2/crop/!200xa40a30",
                ("CropRegion",),
                ("crop_region_width",),
            ),
            Entry(
                "crop-region-height",
                "Legacy form, height only",
                "imageMogr2/crop/!x120a40a30",
                ("CropRegion",),
                ("crop_region_height",),
            ),
            Entry(
                "iradius",
                "Inscribed circle",
                "imageMogr2/iradius/90/format/png",
                ("IRadius",),
                ("iradius",),
                "PNG, so that the corners are transparent.",
            ),
            Entry("rradius", "Rounded corners", "imageMogr2/rradius/40/format/png", ("RRadius",), ("rradius",)),
            Entry(
                "scrop",
                "Face crop (around the faces; this photograph has none, so it comes back unchanged)",
                "imageMogr2/scrop/160x160",
                ("SmartCrop",),
                ("scrop",),
            ),
            Entry("rcrop", "Ratio crop", "imageMogr2/rcrop/0.5x1.2", ("RatioCrop",), ("rcrop",)),
        ),
    ),
    Section(
        "Orientation",
        "",
        (
            Entry("rotate", "Rotate (clockwise, white background)", "imageMogr2/rotate/30", ("Rotate",), ("rotate",)),
            Entry("rotate-90", "A quarter turn", "imageMogr2/rotate/90", ("Rotate",), ("rotate",)),
            Entry(
                "auto-orient",
                "Turn upright from the EXIF orientation",
                "imageMogr2/auto-orient",
                ("AutoOrient",),
                ("auto_orient",),
                "The input is the sample stored sideways with EXIF orientation 6 (\"rotate 90° clockwise to view\"), "
                "as a phone writes it: auto-orient turns the pixels upright and resets the tag.",
                input="sideways",
            ),
            Entry("flip-vertical", "Flip vertically", "imageMogr2/flip/vertical", ("Flip",), ("flip",)),
            Entry("flip-horizontal", "Flip horizontally", "imageMogr2/flip/horizontal", ("Flip",), ("flip",)),
        ),
    ),
    Section(
        "Pixels",
        "",
        (
            Entry("blur", "Gaussian blur (radius x sigma)", "imageMogr2/blur/12x6", ("Blur",), ("blur",)),
            Entry("sharpen", "Sharpen", "imageMogr2/sharpen/200", ("Sharpen",), ("sharpen",)),
            Entry("bright", "Brightness", "imageMogr2/bright/40", ("Bright",), ("bright",)),
            Entry("contrast", "Contrast", "imageMogr2/contrast/60", ("Contrast",), ("contrast",)),
            Entry("grayscale", "Greyscale", "imageMogr2/grayscale/1", ("Grayscale",), ("grayscale",)),
        ),
    ),
    Section(
        "Encoding",
        "Encoding parameters apply once, at the end of their step, wherever they are written.",
        (
            Entry("format-webp", "Convert to WebP", "imageMogr2/format/webp", ("Format",), ("format",)),
            Entry("format-png", "Convert to PNG", "imageMogr2/format/png", ("Format",), ("format",)),
            Entry("format-avif", "Convert to AVIF", "imageMogr2/format/avif", ("Format",), ("format",)),
            Entry("format-gif", "Convert to GIF", "imageMogr2/format/gif", ("Format",), ("format",)),
            Entry("quality", "Absolute quality", "imageMogr2/quality/15", ("Quality",), ("quality",)),
            Entry(
                "rquality", "Quality relative to the input's", "imageMogr2/rquality/30", ("RQuality",), ("rquality",)
            ),
            Entry(
                "lquality",
                "Lowest quality (raise it to at least this)",
                "imageMogr2/lquality/95",
                ("LQuality",),
                ("lquality",),
            ),
            Entry("interlace", "Progressive JPEG", "imageMogr2/interlace/1", ("Interlace",), ("interlace",)),
            Entry("strip", "Drop the metadata", "imageMogr2/strip", ("Strip",), ("strip",)),
            Entry(
                "aigc-metadata",
                "Label AI-generated content",
                "imageMogr2/AIGCMetadata/Label/MQ/ContentProducer/MDAwMTIz",
                ("AIGCMetadata",),
                ("aigc_metadata",),
                note="The picture is unchanged; the label is an XMP `TC260:AIGC` property "
                "(`ci_engine.read_aigc_metadata` reads it back).",
            ),
            Entry(
                "size-limit",
                "Fit a file size (quality searched)",
                "imageMogr2/size-limit/6k!",
                ("SizeLimit",),
                ("size_limit",),
            ),
            Entry(
                "ignore-error",
                "Give the original back instead of a maskable error",
                "imageMogr2/blur/80x5/ignore-error/1",
                ("IgnoreError",),
                ("ignore_error",),
                "The blur radius is out of range: the output is the input, unchanged.",
            ),
        ),
    ),
    Section(
        "Animations",
        "On an 8-frame 240 x 135 GIF made from the sample.",
        (
            Entry(
                "gif-thumbnail",
                "Every frame scaled",
                "imageMogr2/thumbnail/!50p",
                ("Thumbnail", "ScalePercent"),
                ("thumbnail",),
                input="animated",
            ),
            Entry("cgif", "Keep the first N frames", "imageMogr2/cgif/4", ("CGif",), ("cgif",), input="animated"),
            Entry("egif", "Keep every N-th frame", "imageMogr2/egif/2", ("EGif",), ("egif",), input="animated"),
            Entry("frame", "Keep one frame", "imageMogr2/frame/3", ("Frame",), ("frame",), input="animated"),
        ),
    ),
    Section(
        "imageView2",
        "The quick-thumbnail API: modes 0 to 5, plus format and quality keys.",
        (
            *(
                Entry(
                    f"imageview2-mode-{mode}",
                    f"Mode {mode}",
                    f"imageView2/{mode}/w/200/h/160",
                    ("ImageView2",),
                    ("image_view2",),
                )
                for mode in range(6)
            ),
            Entry(
                "imageview2-format",
                "Width, format and quality",
                "imageView2/2/w/200/format/webp/q/60",
                ("ImageView2",),
                ("image_view2",),
            ),
        ),
    ),
    Section(
        "Pipelines and styles",
        "`|` chains steps; each runs on the previous one's output (one decode, one encode).",
        (
            Entry(
                "pipeline",
                "Three steps",
                "imageMogr2/thumbnail/240x|imageMogr2/rotate/90|imageMogr2/format/webp",
                ("Pipeline",),
                ("pipeline",),
            ),
            Entry(
                "style",
                "A saved style, then a step",
                "style/card|imageMogr2/format/webp",
                ("StyleRef",),
                ("style_ref",),
                "The gallery defines `card` as `imageMogr2/thumbnail/!200x200r/crop/200x200`.",
            ),
        ),
    ),
    Section(
        "Watermarks",
        f"The image watermark is `{LOGO_URL}`, served to the engine from memory: the ladybird sample, 80 px wide.",
        (
            Entry(
                "watermark-image",
                "Image watermark",
                f"watermark/1/image/{LOGO}/gravity/southeast/dx/10/dy/10",
                ("ImageWatermark",),
                ("image_watermark",),
            ),
            Entry(
                "watermark-image-tiled",
                "Image watermark, tiled and faded",
                f"watermark/1/image/{LOGO}/batch/1/dissolve/50/degree/30",
                ("ImageWatermark",),
                ("image_watermark",),
            ),
            Entry(
                "watermark-text",
                "Text watermark",
                f"watermark/2/text/{b64('ci_engine')}/fill/{b64('#FFFFFF')}/fontsize/28/gravity/southwest/dx/10/dy/10",
                ("TextWatermark",),
                ("text_watermark",),
            ),
            Entry(
                "watermark-blind",
                "Blind (invisible) watermark",
                f"watermark/3/type/3/text/{b64('Order1007')}",
                ("BlindWatermark",),
                ("blind_watermark",),
            ),
            Entry(
                "watermark-extract",
                "Extract a blind watermark",
                "watermark/4/type/3/version/3.0",
                ("ExtractBlindWatermark",),
                ("extract_blind_watermark",),
            ),
        ),
    ),
    Section(
        "Information",
        "These return JSON instead of an image.",
        (
            Entry("imageinfo", "imageInfo", "imageInfo", ("ImageInfo",), ("image_info",)),
            Entry("exif", "exif", "exif", ("Exif",), ("exif",)),
            Entry("imageave", "imageAve (average colour)", "imageAve", ("ImageAve",), ("image_ave",)),
            Entry("imageslim", "imageSlim", "imageSlim", ("ImageSlim",), ("image_slim",)),
            Entry("imageinspect", "imageInspect", "imageInspect", ("ImageInspect",), ("image_inspect",)),
            Entry("qrcode", "QR code recognition", "QRcode/cover/0", ("QRCode",), ("qr_code",)),
            Entry(
                "ci-process",
                "ci-process requests",
                "ci-process=AIImageCrop&width=16&height=9",
                ("CiProcess",),
                ("ci_process",),
            ),
        ),
    ),
)

ENTRIES: tuple[Entry, ...] = tuple(e for s in SECTIONS for e in s.entries)


# -- inputs ---------------------------------------------------------------------------------------------


def photo_input() -> bytes:
    return ci_engine.process(SAMPLE.read_bytes(), f"imageMogr2/thumbnail/{WIDTH}x/quality/90", backend="vips").data


def sideways_input() -> bytes:
    """The sample as a phone camera stores a portrait shot: pixels turned a quarter turn
    anticlockwise, and EXIF orientation 6 saying how to turn them back."""
    from PIL import Image

    with Image.open(io.BytesIO(photo_input())) as img:
        turned = img.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    turned.save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def animated_input() -> bytes:
    """An 8-frame zoom into the sample, 240 x 135, made by Pillow (the engine makes no
    animations out of stills)."""
    from PIL import Image

    with Image.open(SAMPLE) as img:
        sample = img.convert("RGB")
    frames = []
    for i in range(8):
        zoom = 1 + 0.5 * i / 7
        w, h = 1200 / zoom, 675 / zoom
        box = ((1200 - w) / 2, (675 - h) / 2, (1200 + w) / 2, (675 + h) / 2)
        frames.append(sample.resize((240, 135), Image.Resampling.LANCZOS, box=box).quantize(64))
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=150, loop=0)
    return buf.getvalue()


def logo() -> bytes:
    from PIL import Image

    with Image.open(LADYBIRD) as img:
        small = img.convert("RGB").resize((80, 50), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "PNG")
    return buf.getvalue()


def extras() -> dict[str, Any]:
    """Keyword arguments for the features ``process`` supports here: watermark resources and
    a style registry (the gallery picks them up when they exist)."""
    params = inspect.signature(ci_engine.process).parameters
    out: dict[str, Any] = {}
    if "resources" in params:
        out["resources"] = {LOGO_URL: logo()}
    registry = getattr(ci_engine, "StyleRegistry", None)
    if "styles" in params and registry is not None:
        out["styles"] = registry({"card": "imageMogr2/thumbnail/!200x200r/crop/200x200"})
    return out


# -- running ------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    entry: Entry
    format: str = ""
    width: int = 0
    height: int = 0
    frames: int = 0
    data: bytes = b""
    error: str = ""
    masked: str = ""

    @property
    def summary(self) -> str:
        if self.error:
            return self.error
        if self.format == "json":
            return f"JSON, {len(self.data):,} bytes"
        frames = f" x {self.frames} frames" if self.frames > 1 else ""
        return f"{self.format.upper()} {self.width}x{self.height}{frames}, {len(self.data):,} bytes"

    @property
    def file(self) -> str | None:
        suffix = VIEWABLE.get(self.format)
        return f"{self.entry.slug}{suffix}" if suffix and not self.error else None


def run(entry: Entry, inputs: dict[str, bytes], kwargs: dict[str, Any]) -> Outcome:
    try:
        result = ci_engine.process(inputs[entry.input], entry.rule, backend="vips", **kwargs)
    except ci_engine.CIError as exc:
        return Outcome(entry, error=f"{exc.code}: {exc.message}")
    masked = f"{result.masked.code}: {result.masked.message}" if result.masked is not None else ""
    return Outcome(entry, result.format, result.width, result.height, result.frames, result.data, masked=masked)


def run_all() -> tuple[dict[str, bytes], list[Outcome]]:
    inputs = {"photo": photo_input(), "animated": animated_input(), "sideways": sideways_input()}
    kwargs = extras()
    return inputs, [run(e, inputs, kwargs) for e in ENTRIES]


# -- the page -------------------------------------------------------------------------------------------------


def _anchor(slug: str) -> str:
    return f'<a id="{slug}"></a>'


def page(outcomes: list[Outcome]) -> str:
    by_slug = {o.entry.slug: o for o in outcomes}
    lines = [
        "# Gallery",
        "",
        "<!-- Generated by docs/make_gallery.py from the real engine: do not edit by hand. -->",
        "",
        'Every operation of the processing language, run by `ci_engine.process(..., backend="vips")` on the',
        f"sample photograph (`docs/samples/kleiber.jpg`, reduced to {WIDTH} px wide by the engine itself;",
        "`docs/samples/SOURCES.md` has its origin and licence). The pictures are regenerated by",
        "`python docs/make_gallery.py`, so they show what the engine does, not what it should do;",
        "`tests/unit/test_gallery.py` checks that every operation of the grammar is here and that",
        "the page matches the engine. Operations the engine refuses are listed with its message.",
        "",
        "Inputs: ![photo](gallery/input.jpg) ![animation](gallery/input-animated.gif)"
        " ![sideways, EXIF orientation 6](gallery/input-sideways.jpg)",
        "",
        "Each entry names the AST classes (`ci_engine.ast`) and the grammar rules (`grammar/ci.lark`)",
        "it shows.",
        "",
        "## Contents",
        "",
    ]
    for section in SECTIONS:
        slug = section.title.lower().replace(":", "").replace(" ", "-").replace("/", "")
        lines.append(f"- [{section.title}](#{slug})")
    refused = [o for o in outcomes if o.error]
    if refused:
        lines.append("- [Not available here](#not-available-here)")
    lines.append("")
    for section in SECTIONS:
        lines += [f"## {section.title}", ""]
        if section.intro:
            lines += [section.intro, ""]
        for entry in section.entries:
            o = by_slug[entry.slug]
            lines += [
                f"### {entry.title} {_anchor(entry.slug)}",
                "",
                f"`{entry.rule}`",
                "",
                "AST: "
                + ", ".join(f"`{name}`" for name in entry.ast)
                + " · grammar: "
                + ", ".join(f"`{name}`" for name in entry.grammar),
                "",
            ]
            source = {
                "photo": "gallery/input.jpg",
                "animated": "gallery/input-animated.gif",
                "sideways": "gallery/input-sideways.jpg",
            }[entry.input]
            if o.error:
                lines += [f"Refused here: **{o.error}** (see [below](#not-available-here)).", ""]
            elif o.format == "json":
                pretty = json.dumps(json.loads(o.data), indent=2, ensure_ascii=False)
                lines += ["| input | output |", "|---|---|", f"| ![input]({source}) | JSON (below) |", ""]
                lines += ["```json", pretty, "```", ""]
            elif o.file:
                lines += [
                    "| input | output |",
                    "|---|---|",
                    f"| ![input]({source}) | ![{entry.rule}](gallery/{o.file}) |",
                    "",
                ]
            else:
                lines += [f"No picture: browsers do not show {o.format.upper()}.", ""]
            if not o.error:
                lines += [f"Output: {o.summary}." + (f" Masked: {o.masked}." if o.masked else ""), ""]
            if entry.note:
                lines += [entry.note, ""]
    if refused:
        lines += ["## Not available here", "", "| operation | AST | the engine's message |", "|---|---|---|"]
        for o in refused:
            ast = ", ".join(f"`{name}`" for name in o.entry.ast)
            lines.append(f"| [`{o.entry.rule}`](#{o.entry.slug}) | {ast} | {o.error} |")
        lines.append("")
    return "\n".join(lines)


def write(inputs: dict[str, bytes], outcomes: list[Outcome]) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    wanted = {
        "input.jpg": inputs["photo"],
        "input-animated.gif": inputs["animated"],
        "input-sideways.jpg": inputs["sideways"],
    }
    for o in outcomes:
        if o.file:
            wanted[o.file] = o.data
    for old in OUT_DIR.iterdir():
        if old.is_file() and old.name not in wanted:
            old.unlink()
    for name, data in wanted.items():
        path = OUT_DIR / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    PAGE.write_text(page(outcomes), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare docs/gallery.md with what the engine makes now")
    args = parser.parse_args(argv)
    inputs, outcomes = run_all()
    if args.check:
        fresh = page(outcomes)
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if fresh != current:
            print("docs/gallery.md is out of date: run python docs/make_gallery.py", file=sys.stderr)
            return 1
        return 0
    write(inputs, outcomes)
    total = sum(p.stat().st_size for p in OUT_DIR.iterdir())
    digest = hashlib.sha256(PAGE.read_bytes()).hexdigest()[:12]
    shown = sum(1 for o in outcomes if not o.error)
    print(f"{len(outcomes)} entries ({shown} shown), docs/gallery/ is {total / 1e6:.2f} MB, page {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
