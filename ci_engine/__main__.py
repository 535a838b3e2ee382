"""``python -m ci_engine`` / ``ci-engine``: the command line (see ``docs/cli.md``)."""

from __future__ import annotations

import argparse
import sys

from ci_engine.errors import CIError
from ci_engine.parse import parse
from ci_engine.render import render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ci-engine", description="Run Tencent Cloud Infinite processing strings locally."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_parse = sub.add_parser("parse", help="print the AST and the canonical form of a processing string")
    p_parse.add_argument("rule")
    args = parser.parse_args(argv)
    try:
        if args.command == "parse":
            pipeline = parse(args.rule)
            print(pipeline)
            print(render(pipeline))
            return 0
    except CIError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
