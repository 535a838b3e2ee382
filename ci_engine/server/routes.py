"""The dispatcher: which handler answers a request, from its host kind, bucket, path, method
and query (``service.md`` sections 1-2).

Order:

1. no bucket (``ci.<region>``, ``cos.<region>``, a local host without ``/<bucket>/``): a CI
   path goes to :func:`~ci_engine.server.ci_api.bucketless`, ``GET /`` lists the buckets;
2. the signature is checked (a public-read bucket lets unsigned downloads through);
3. the bucket's ci host: ``PUT /`` binds, CI paths go to their API;
4. ``PUT /`` on a cos host creates the bucket; any other request needs the bucket to exist;
5. the bucket itself (empty key): ``?style``, ``?origin-protect``, the pic host's binding,
   else PUT / HEAD / DELETE / GET Bucket;
6. IP mode: a CI path on the cos host (``/picbucket``, ``/pic_jobs/<id>`` ...) that is not an
   existing object goes to the CI API (the SDK sends the cos host name for ci calls then);
7. everything else is an object request.
"""

from __future__ import annotations

from starlette.responses import Response

from ci_engine.server import ci_api, objects
from ci_engine.server.addressing import ci_path
from ci_engine.server.app import App, Context, io
from ci_engine.server.errors import InvalidRequestError, NoSuchBucketError

__all__ = ["dispatch"]


async def dispatch(app: App, ctx: Context) -> Response:
    target = ctx.target
    method = ctx.method
    if target.bucket is None:
        if ci_path(target.path):
            app.authenticate(ctx)
            return await ci_api.bucketless(app, ctx)
        if target.path == "/" and method in ("GET", "HEAD"):
            app.authenticate(ctx)
            return await objects.list_buckets(app, ctx)
        raise NoSuchBucketError(
            "bucket: the request names no bucket; address <BucketName-APPID>.cos.<region>.myqcloud.com "
            "or use the path /<BucketName-APPID>/<key>"
        )
    bucket = target.bucket
    cfg = app.config.bucket(bucket)
    public = cfg.public_read and method in ("GET", "HEAD") and target.key != ""
    app.authenticate(ctx, public=public)
    if target.kind == "ci":
        if target.path == "/":
            return await ci_api.bind_ci(app, ctx)
        if ci_path(target.path):
            return await ci_api.bucket_ci(app, ctx)
        raise InvalidRequestError(f"{target.path}: not an API of the ci host")
    if target.key == "":
        if ctx.has("style"):
            return await ci_api.styles(app, ctx)
        if ctx.has("origin-protect"):
            return await ci_api.origin_protect(app, ctx)
        if method == "GET" and ctx.param("ci-process") == "qrcode-generate":
            return await objects.qrcode_generate(app, ctx)
        if target.kind == "pic":
            return await ci_api.pic_binding(app, ctx)
        return await objects.bucket_ops(app, ctx)
    if not await app.bucket_exists(bucket):
        raise NoSuchBucketError(f"bucket: {bucket!r} does not exist")
    if target.kind == "cos" and not target.path_style and ci_path(target.path):
        store = await io(app.storage.store, bucket)
        if not await io(store.exists, target.key):
            return await ci_api.bucket_ci(app, ctx)
    return await objects.handle(app, ctx)
