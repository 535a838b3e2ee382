"""``ci-engine serve``: the CI-compatible HTTP service (``docs/server.md``).

The parser is built here without importing the server; :func:`cmd_serve` imports it (and so
Starlette and uvicorn) only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ci_engine._dc import replace

__all__ = ["add_serve_parser", "cmd_serve"]

EXIT_CONFIG = 2


def add_serve_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="run a CI-compatible HTTP service (the official COS SDKs work against it)",
        description="Serve the buckets under --root over HTTP with COS/CI's API: objects, processing on "
        "download, on upload (Pic-Operations) and in the cloud, styles, protection, picbucket. "
        "Requests must carry a COS v5 signature made with the given keys (or use --anonymous). "
        "Once the socket listens, the first line on stdout is 'listening on http://HOST:PORT'.",
    )
    p.add_argument(
        "--root",
        required=True,
        metavar="DIR",
        help="directory of the buckets (created if missing), or s3://BUCKET[/PREFIX] with --s3-endpoint",
    )
    p.add_argument(
        "--s3-endpoint",
        default=None,
        metavar="URL",
        help="URL of the S3-compatible service of an s3:// root (credentials: the AWS environment variables)",
    )
    p.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="local folder for job records and uploads in progress when --root is s3:// "
        "(default: ~/.cache/ci-engine/<bucket>)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run the asynchronous jobs on this Dask cluster (default: a local cluster of --workers processes)",
    )
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--region", default=None, help="region the server answers for (default ap-guangzhou)")
    p.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="NAME-APPID",
        help="create this bucket at start when missing (repeatable)",
    )
    p.add_argument("--secret-id", default=None, help="SecretId clients sign with (or $CI_ENGINE_SECRET_ID)")
    p.add_argument("--secret-key", default=None, help="its SecretKey (or $CI_ENGINE_SECRET_KEY)")
    p.add_argument(
        "--anonymous",
        action="store_true",
        help="accept unsigned requests (a signature that is present is still checked)",
    )
    p.add_argument("--config", default=None, metavar="FILE", help="TOML config file (buckets, keys, limits)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="image-processing threads, and worker processes of the local Dask cluster that runs the "
        "asynchronous jobs (started on the first job request; default: the cores)",
    )
    p.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="NAME-APPID=URL",
        help="back-to-source: a GET for a key missing in bucket NAME-APPID fetches URL + key, stores it "
        "and serves it (repeatable; the config file also sets origin_mode per bucket)",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="cache processed outputs in DIR (kept across restarts; no result cache without it)",
    )
    p.add_argument(
        "--cache-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="bytes the result cache may hold on disk (default 1 GiB; least recently used entries go first)",
    )
    p.add_argument("--max-body", type=int, default=None, metavar="BYTES", help="largest request body (default 5 GB)")


def cmd_serve(args: argparse.Namespace) -> int:
    from ci_engine.server.config import (
        SECRET_ID_ENV,
        SECRET_KEY_ENV,
        BucketConfig,
        ConfigError,
        ServerConfig,
        load_toml,
        parse_origin_flag,
    )

    try:
        settings: dict[str, Any] = load_toml(args.config) if args.config else {}
        settings["root"] = args.root
        endpoint = args.s3_endpoint or settings.pop("s3_endpoint", None)
        if str(args.root).startswith("s3://"):
            from ci_engine.errors import CIError
            from ci_engine.s3 import parse_s3_url
            from ci_engine.server.s3storage import s3_storage_factory

            try:
                s3_bucket, _ = parse_s3_url(args.root)
            except CIError as exc:
                raise ConfigError(f"--root: {exc.message}") from None
            state = args.state_dir or os.path.join(os.path.expanduser("~"), ".cache", "ci-engine", s3_bucket)
            settings["root"] = state
            settings["storage_factory"] = s3_storage_factory(args.root, endpoint)
        elif endpoint is not None:
            raise ConfigError("--s3-endpoint needs an s3:// --root")
        if args.scheduler is not None:
            settings["scheduler"] = args.scheduler
        for name in ("host", "port", "region", "workers"):
            value = getattr(args, name)
            if value is not None:
                settings[name] = value
        if args.max_body is not None:
            settings["max_body_bytes"] = args.max_body
        if args.anonymous:
            settings["anonymous"] = True
        secret_id = args.secret_id or os.environ.get(SECRET_ID_ENV)
        secret_key = args.secret_key or os.environ.get(SECRET_KEY_ENV)
        if bool(secret_id) != bool(secret_key):
            raise ConfigError("give both --secret-id and --secret-key (or both environment variables), not one")
        if secret_id and secret_key:
            settings["credentials"] = {**settings.get("credentials", {}), secret_id: secret_key}
        buckets = dict(settings.get("buckets", {}))
        for name in args.bucket:
            buckets.setdefault(name, BucketConfig(name))
        for flag in args.origin:
            name, url = parse_origin_flag(flag)
            found = buckets.get(name)
            buckets[name] = BucketConfig(name, origin=url) if found is None else replace(found, origin=url)
        settings["buckets"] = buckets
        if args.cache_dir is not None:
            settings["cache_dir"] = args.cache_dir
        if args.cache_size is not None:
            settings["cache_size"] = args.cache_size
        config = ServerConfig(**settings)
        config.check_auth()
    except ConfigError as exc:
        print(f"ci-engine serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from ci_engine.server.serve import run

    try:
        return run(config, log_level="info" if args.verbose else "warning")
    except OSError as exc:
        print(f"ci-engine serve: cannot listen on {config.host}:{config.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
