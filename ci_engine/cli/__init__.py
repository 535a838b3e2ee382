"""The ``ci-engine`` command (``python -m ci_engine``): process, info, explain, batch, parse, serve.

``main(argv) -> int`` is the console-script entry point; the exit codes are documented in
:mod:`ci_engine.cli.common` and ``docs/usage.md``. Nothing here loads an imaging library
until a subcommand touches pixels.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_engine import _dc
from ci_engine.cli.common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    SUFFIXES,
    add_engine_options,
    add_limit_options,
    atomic_write,
    extras_from,
    limits_from,
    original_result,
    parse_rule,
    report_error,
    rule_format,
    suffix_format,
    with_format,
)
from ci_engine.errors import CIError, UnsupportedOperationError
from ci_engine.limits import Limits

if TYPE_CHECKING:
    import argparse

__all__ = ["main", "build_parser"]

EPILOG = """\
exit codes: 0 ok; 1 batch: some files failed; 2 usage or processing-string error;
3 image or file error (undecodable, over a limit, unreadable); 4 internal, backend or
not-implemented error; 130 interrupted. See docs/usage.md.
"""

INFO_OPS = ("imageInfo", "exif", "imageAve")


def _version() -> str:
    from ci_engine import __version__

    return __version__


def _add_common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("-v", "--verbose", action="store_true", help="show diagnostics (backend messages, tracebacks)")
    return parser


def _add_engine(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "vips", "pillow"),
        help="imaging backend (default auto: libvips when it loads, else Pillow; or $CI_ENGINE_BACKEND)",
    )
    add_engine_options(parser)
    add_limit_options(parser)
    return parser


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or (``only``: a command's name) the top level with just
    that command's subparser: what a one-shot run needs (building all of them costs as
    much as parsing the processing string)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run Tencent Cloud Infinite (CI) image-processing strings locally.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    if only in (None, "process"):
        p = _add_engine(
            _add_common(
                sub.add_parser(
                    "process",
                    help="run a processing string on one image",
                    description="Run RULE on IN and write the result to OUT. The output format is the rule's "
                    "format/..., else the one OUT's suffix names, else the input's.",
                    epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                )
            )
        )
        p.add_argument("input", metavar="IN", help="image file, or - for standard input")
        p.add_argument("rule", metavar="RULE", help="processing string, e.g. imageMogr2/thumbnail/400x/format/webp")
        p.add_argument(
            "-o", "--output", metavar="OUT", default="-", help="output file, or - for standard output (default)"
        )
        p.add_argument(
            "--ignore-error", action="store_true", help="like ignore-error/1: on a maskable error, write the original"
        )
        p.add_argument("-q", "--quiet", action="store_true", help="do not print what was written")

    if only in (None, "info"):
        p = _add_engine(
            _add_common(
                sub.add_parser(
                    "info",
                    help="imageInfo, exif and imageAve of an image, as JSON",
                    description="Print the header ci_engine reads and the results of imageInfo, exif and imageAve "
                    "as one pretty JSON object. An operation this ci_engine does not implement is reported in place.",
                    epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                )
            )
        )
        p.add_argument("input", metavar="IN", help="image file, or - for standard input")
        p.add_argument("--op", action="append", choices=INFO_OPS, help="only this operation (repeatable)")

    if only in (None, "explain"):
        p = _add_common(
            sub.add_parser(
                "explain",
                help="the AST, the plan and (with IN) the resolved plan of a processing string",
                epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
        p.add_argument("rule", metavar="RULE")
        p.add_argument("input", metavar="IN", nargs="?", help="image to resolve the plan for (- for standard input)")
        add_limit_options(p)

    if only in (None, "batch"):
        p = _add_engine(
            _add_common(
                sub.add_parser(
                    "batch",
                    help="run a processing string over a directory tree, in parallel",
                    description="Run RULE on every image under SRC_DIR (recursively) and write the results under "
                    "DEST_DIR with the same relative paths. Outputs newer than their source are skipped, so an "
                    "interrupted batch resumes; outputs are written atomically and Ctrl-C leaves no partial file.",
                    epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                )
            )
        )
        p.add_argument("src", metavar="SRC_DIR")
        p.add_argument("rule", metavar="RULE")
        p.add_argument("dest", metavar="DEST_DIR")
        p.add_argument("-j", "--jobs", type=int, default=None, metavar="N", help="worker processes (default: cores)")
        p.add_argument("--force", action="store_true", help="redo outputs that are already up to date")
        p.add_argument(
            "--scheduler",
            default=None,
            metavar="tcp://HOST:PORT",
            help="run the batch on this Dask cluster (SRC, DEST may then be s3:// URLs; its workers must reach them)",
        )
        p.add_argument(
            "--s3-endpoint",
            default=None,
            metavar="URL",
            help="URL of the S3-compatible service of s3:// SRC/DEST (credentials: the AWS environment variables)",
        )
        p.add_argument(
            "--ignore-error", action="store_true", help="like ignore-error/1: on a maskable error, write the original"
        )
        p.add_argument(
            "--progress",
            choices=("auto", "bar", "lines", "none"),
            default="auto",
            help="progress display on stderr (default auto: a bar on a terminal, plain lines otherwise)",
        )

    if only in (None, "parse"):
        p = _add_common(
            sub.add_parser(
                "parse",
                help="print the AST and the canonical form of a processing string",
            )
        )
        p.add_argument("rule", metavar="RULE")

    if only in (None, "serve"):
        from ci_engine.cli.serve import add_serve_parser

        add_serve_parser(sub, _add_common(argparse.ArgumentParser(add_help=False)))
    return parser


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


# -- subcommands ---------------------------------------------------------------------------------


def _cmd_process(args: argparse.Namespace) -> int:
    from ci_engine.api import process

    limits = limits_from(args)
    pipeline, masked = parse_rule(args.rule, limits, ignore_error=args.ignore_error)
    data = _read(args.input)
    to_stdout = args.output == "-"
    if pipeline is None:
        assert masked is not None
        result = original_result(data, masked)
    else:
        if rule_format(pipeline) is None and not to_stdout:
            fmt = suffix_format(args.output)
            if fmt is not None:
                pipeline = _add_format(pipeline, fmt, data)
        result = process(data, pipeline, backend=args.backend, limits=limits, **extras_from(args).kwargs())

    if result.masked is not None:
        print(f"{PROG}: ignore-error: wrote the original image instead; masked:", file=sys.stderr)
        print(str(result.masked), file=sys.stderr)
    if to_stdout:
        if result.format != "json" and sys.stdout.isatty():
            print(f"{PROG}: refusing to write {result.format} data to a terminal; use -o OUT", file=sys.stderr)
            return EXIT_USAGE
        sys.stdout.buffer.write(result.data)
        if result.format == "json" and not result.data.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")  # a text answer ends its line, as the other subcommands' do
        sys.stdout.buffer.flush()
        return EXIT_OK
    out = Path(args.output)
    named = _suffix_container(args.output)
    if named is not None and named != result.format and result.masked is None and result.format in SUFFIXES:
        print(f"{PROG}: warning: writing {result.format} data to {out} (the rule's format wins)", file=sys.stderr)
    atomic_write(out, result.data, make_parents=False)
    if not args.quiet:
        frames = f" x{result.frames} frames" if result.frames > 1 else ""
        geometry = f" {result.width}x{result.height}{frames}" if result.width else ""
        print(f"{out}: {result.format}{geometry}, {len(result.data):,} bytes", file=sys.stderr)
    return EXIT_OK


def _suffix_container(path: str) -> str | None:
    """The container (``jpeg``, ``webp`` ...) OUT's suffix names, if any."""
    from ci_engine.types import ImageFormat

    fmt = suffix_format(path)
    if fmt is None:
        return None
    try:
        return ImageFormat.from_output(fmt).value
    except KeyError:
        return None


def _add_format(pipeline: Any, fmt: Any, data: bytes) -> Any:
    """Add ``format/<fmt>`` (from OUT's suffix) unless the input already is in that format
    (then the rule runs as written: CI keeps the input's format and its quality)."""
    from ci_engine.io import probe
    from ci_engine.types import ImageFormat

    try:
        header = probe(data)
        if ImageFormat.from_output(fmt) is header.format:
            return pipeline
    except (CIError, KeyError):
        pass  # process() reports an undecodable input; an unknown container is refused there
    return with_format(pipeline, fmt)


def _cmd_info(args: argparse.Namespace) -> int:
    import dataclasses
    import enum
    import json

    from ci_engine.api import process
    from ci_engine.io import probe
    from ci_engine.limits import check_input_bytes

    limits = limits_from(args)
    data = _read(args.input)
    check_input_bytes(len(data), limits)
    header = probe(data)

    def plain(value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, tuple):
            return list(value)
        return value

    report: dict[str, Any] = {
        "file": args.input,
        "size": len(data),
        "header": {f.name: plain(getattr(header, f.name)) for f in dataclasses.fields(header)},
    }
    status = EXIT_OK
    kwargs = extras_from(args).kwargs()
    for op in args.op or INFO_OPS:
        try:
            result = process(data, op, backend=args.backend, limits=limits, **kwargs)
            report[op] = json.loads(result.data)
        except UnsupportedOperationError as exc:
            report[op] = {"error": exc.to_dict()}
        except CIError as exc:
            report[op] = {"error": exc.to_dict()}
            if status == EXIT_OK:
                status = report_error(exc, verbose=args.verbose)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return status


def _cmd_explain(args: argparse.Namespace) -> int:
    from ci_engine.api import explain

    limits = limits_from(args)
    data = _read(args.input) if args.input else None
    print(explain(args.rule, data, limits=limits))
    return EXIT_OK


def _cmd_batch(args: argparse.Namespace) -> int:
    from ci_engine.cli.batch import run_batch

    limits = limits_from(args)
    pipeline, masked = parse_rule(args.rule, limits, ignore_error=args.ignore_error)
    if masked is not None:
        print(f"{PROG}: ignore-error: the rule is invalid, the originals are copied; masked:", file=sys.stderr)
        print(str(masked), file=sys.stderr)
    extras = extras_from(args)
    note = f"{masked.code}: {masked.message}" if masked else ""
    if args.scheduler or str(args.src).startswith("s3://") or str(args.dest).startswith("s3://"):
        from ci_engine.cli.batch_dask import run_batch_dask

        return run_batch_dask(args, pipeline, limits, masked=note, extras=extras)
    return run_batch(args, pipeline, limits, masked=note, extras=extras)


def _cmd_parse(args: argparse.Namespace) -> int:
    from ci_engine.parse import parse
    from ci_engine.render import render

    pipeline = parse(args.rule)
    print(pipeline)
    print(render(pipeline))
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from ci_engine.cli.serve import cmd_serve

    return cmd_serve(args)


COMMANDS = {
    "process": _cmd_process,
    "info": _cmd_info,
    "explain": _cmd_explain,
    "batch": _cmd_batch,
    "parse": _cmd_parse,
    "serve": _cmd_serve,
}


_PROCESS_FLAGS = {
    "-q": "quiet",
    "--quiet": "quiet",
    "-v": "verbose",
    "--verbose": "verbose",
    "--ignore-error": "ignore_error",
}
_PROCESS_VALUES = {"-o": "output", "--output": "output", "--backend": "backend"}
_BACKENDS = ("auto", "vips", "pillow")


def fast_process_args(words: list[str]) -> Any:
    """The namespace ``build_parser().parse_args(words)`` gives for the everyday forms of
    ``process`` (``IN RULE`` with ``-o``, ``-q``, ``-v``, ``--ignore-error``,
    ``--backend``), without importing :mod:`argparse` (about a fifth of a one-shot run's
    own time); ``None`` for anything else (help, other options, a usage error), which then
    goes to argparse. ``tests/unit/test_cli_fast_args.py`` checks it against argparse."""
    if not words or words[0] != "process":
        return None
    values: dict[str, Any] = {
        "command": "process",
        "verbose": False,
        "backend": "auto",
        "resources": None,
        "styles": None,
        "output": "-",
        "ignore_error": False,
        "quiet": False,
    }
    for f in _dc.fields(Limits):
        values[f"limit_{f.name}"] = None
    positional: list[str] = []
    rest = iter(words[1:])
    for word in rest:
        if word == "--" or (word.startswith("-") and word != "-"):
            if word in _PROCESS_FLAGS:
                values[_PROCESS_FLAGS[word]] = True
                continue
            name, eq, value = word.partition("=")
            dest = _PROCESS_VALUES.get(name)
            if dest is None:  # (an abbreviation, -oOUT, --: argparse's)
                return None
            if not eq:
                following = next(rest, None)
                if following is None or (following.startswith("-") and following != "-"):
                    return None
                value = following
            if dest == "backend" and value not in _BACKENDS:
                return None
            values[dest] = value
        else:
            positional.append(word)
    if len(positional) != 2:
        return None
    values["input"], values["rule"] = positional
    from types import SimpleNamespace

    return SimpleNamespace(**values)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    words = sys.argv[1:] if argv is None else argv
    args = fast_process_args(words)
    if args is None:
        # A known command first: only its subparser is built (help and errors are the same).
        parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors (argparse exits 2)
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``ci-engine process ... | head -c 10``): not our failure.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except (CIError, OSError) as exc:
        return report_error(exc, verbose=args.verbose)
    except Exception as exc:
        report_error(exc, verbose=args.verbose)
        return EXIT_INTERNAL
