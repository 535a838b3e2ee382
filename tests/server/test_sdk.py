"""The official COS Python SDK (``cos-python-sdk-v5``) against a live ``ci-engine serve``, in
proxy mode and in IP mode (the ``mode`` fixture): every call the issue lists."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from qcloud_cos.cos_exception import CosServiceError

import ci_engine
from tests.server.conftest import GUARDED, MISSING, PHOTOS, REGION, REPO, Server, make_client

RULES = [
    "imageMogr2/thumbnail/200x",
    "imageMogr2/thumbnail/!50p/format/webp",
    "imageMogr2/thumbnail/300x300/format/png",
    "imageMogr2/crop/400x300/gravity/center",
    "imageMogr2/rotate/90/format/jpg/quality/70",
    "imageMogr2/cut/300x200x10x20",
    "imageMogr2/blur/8x3",
    "imageMogr2/strip/format/webp/quality/60",
    "imageMogr2/iradius/40/format/png",
    "imageView2/1/w/150/h/150",
    "imageMogr2/thumbnail/400x|imageMogr2/rotate/270",
    "imageMogr2/flip/vertical/thumbnail/!20p/format/bmp",
]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def key_for(mode: str, name: str) -> str:
    return f"{mode}/{name}"


def body_of(response: dict[str, Any]) -> bytes:
    return response["Body"].get_raw_stream().read()


def test_put_get_head_delete(client: Any, mode: str, photo: bytes) -> None:
    key = key_for(mode, "dir/in 1.jpg")
    put = client.put_object(Bucket=PHOTOS, Body=photo, Key=key)
    assert put["ETag"] == f'"{md5(photo)}"'
    assert put["x-cos-request-id"]
    got = client.get_object(Bucket=PHOTOS, Key=key)
    assert body_of(got) == photo
    assert got["Content-Type"] == "image/jpeg"
    head = client.head_object(Bucket=PHOTOS, Key=key)
    assert head["Content-Length"] == str(len(photo))
    assert head["ETag"] == f'"{md5(photo)}"'
    assert head["Last-Modified"].endswith("GMT")
    client.delete_object(Bucket=PHOTOS, Key=key)
    with pytest.raises(CosServiceError) as info:
        client.head_object(Bucket=PHOTOS, Key=key)
    assert info.value.get_status_code() == 404


def test_missing_key_and_bucket(client: Any, mode: str) -> None:
    with pytest.raises(CosServiceError) as info:
        client.get_object(Bucket=PHOTOS, Key=key_for(mode, "absent.jpg"))
    assert (info.value.get_error_code(), info.value.get_status_code()) == ("NoSuchKey", 404)
    assert info.value.get_request_id()
    with pytest.raises(CosServiceError) as info:
        client.get_object(Bucket=MISSING, Key="a.jpg")
    assert (info.value.get_error_code(), info.value.get_status_code()) == ("NoSuchBucket", 404)


def test_wrong_key_is_refused(server: Server, mode: str, photo: bytes) -> None:
    bad = make_client(server, mode, secret_key="not-the-key")
    with pytest.raises(CosServiceError) as info:
        bad.put_object(Bucket=PHOTOS, Body=photo, Key=key_for(mode, "forged.jpg"))
    assert (info.value.get_error_code(), info.value.get_status_code()) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(CosServiceError) as info:
        bad.get_object(Bucket=PHOTOS, Key=key_for(mode, "forged.jpg"))
    assert info.value.get_error_code() == "SignatureDoesNotMatch"


def test_upload_file_multipart_stores_identical_bytes(client: Any, mode: str, big_photo: Path) -> None:
    key = key_for(mode, "big/kleiber-4800.jpg")
    data = big_photo.read_bytes()
    assert len(data) > 1024 * 1024  # the SDK uses multipart above PartSize (1 MB)
    result = client.upload_file(Bucket=PHOTOS, Key=key, LocalFilePath=str(big_photo), PartSize=1, MAXThread=3)
    assert result["ETag"] == f'"{md5(data)}"'
    assert body_of(client.get_object(Bucket=PHOTOS, Key=key)) == data
    uploads = client.list_multipart_uploads(Bucket=PHOTOS, Prefix=key)
    assert "Upload" not in uploads  # completed: nothing left in progress


def test_multipart_completed_with_pic_operations(client: Any, mode: str, big_photo: Path) -> None:
    key = key_for(mode, "mp/source.jpg")
    data = big_photo.read_bytes()
    upload_id = client.create_multipart_upload(Bucket=PHOTOS, Key=key)["UploadId"]
    cut = 1024 * 1024
    parts = []
    for number, chunk in enumerate((data[:cut], data[cut:]), start=1):
        etag = client.upload_part(Bucket=PHOTOS, Key=key, Body=chunk, PartNumber=number, UploadId=upload_id)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    listed = client.list_parts(Bucket=PHOTOS, Key=key, UploadId=upload_id)
    assert [int(p["PartNumber"]) for p in listed["Part"]] == [1, 2]
    assert [int(p["Size"]) for p in listed["Part"]] == [cut, len(data) - cut]
    ops = {"is_pic_info": 1, "rules": [{"fileid": "small.webp", "rule": "imageMogr2/thumbnail/480x/format/webp"}]}
    done = client.complete_multipart_upload(
        Bucket=PHOTOS,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Part": parts},
        PicOperations=json.dumps(ops),
    )
    assert done["ETag"] == f'"{md5(data)}"'
    result = done["ProcessResults"]["Object"]
    assert (result["Key"], result["Format"], result["Width"], result["Height"]) == (
        key_for(mode, "mp/small.webp"),
        "webp",
        "480",
        "270",
    )
    assert done["OriginalInfo"]["ImageInfo"]["Width"] == "4800"
    assert body_of(client.get_object(Bucket=PHOTOS, Key=key)) == data
    small = body_of(client.get_object(Bucket=PHOTOS, Key=key_for(mode, "mp/small.webp")))
    assert small[:4] == b"RIFF" and md5(small) == result["ETag"].strip('"')


def test_abort_multipart(client: Any, mode: str, photo: bytes) -> None:
    key = key_for(mode, "mp/aborted.jpg")
    upload_id = client.create_multipart_upload(Bucket=PHOTOS, Key=key)["UploadId"]
    client.upload_part(Bucket=PHOTOS, Key=key, Body=photo, PartNumber=1, UploadId=upload_id)
    client.abort_multipart_upload(Bucket=PHOTOS, Key=key, UploadId=upload_id)
    with pytest.raises(CosServiceError) as info:
        client.list_parts(Bucket=PHOTOS, Key=key, UploadId=upload_id)
    assert info.value.get_error_code() == "NoSuchUpload"
    with pytest.raises(CosServiceError):
        client.head_object(Bucket=PHOTOS, Key=key)


def test_ci_put_object_with_pic_operations(client: Any, mode: str, photo: bytes, tmp_path: Path) -> None:
    source = tmp_path / "kleiber.jpg"
    source.write_bytes(photo)
    key = key_for(mode, "shop/kleiber.jpg")
    ops = {
        "is_pic_info": 1,
        "rules": [
            {"fileid": "thumbs/k.webp", "rule": "imageMogr2/thumbnail/200x/format/webp"},
            {"fileid": "/" + key_for(mode, "abs/k.png"), "rule": "imageMogr2/crop/100x100/format/png"},
        ],
    }
    headers, result = client.ci_put_object_from_local_file(
        Bucket=PHOTOS, LocalFilePath=str(source), Key=key, PicOperations=json.dumps(ops)
    )
    assert headers["ETag"] == f'"{md5(photo)}"'
    original = result["OriginalInfo"]
    assert original["Key"] == key
    assert original["Location"] == f"{PHOTOS}.cos.{REGION}.myqcloud.com/{key}"
    assert (original["ImageInfo"]["Format"], original["ImageInfo"]["Width"]) == ("JPEG", "1200")
    first, second = result["ProcessResults"]["Object"]
    assert (first["Key"], first["Format"], first["Width"], first["Height"]) == (
        key_for(mode, "shop/thumbs/k.webp"),
        "webp",
        "200",
        "113",
    )
    assert (second["Key"], second["Width"], second["Height"]) == (key_for(mode, "abs/k.png"), "100", "100")
    stored = body_of(client.get_object(Bucket=PHOTOS, Key=first["Key"]))
    assert md5(stored) == first["ETag"].strip('"')
    assert int(first["Size"]) == len(stored)


def test_ci_image_process(client: Any, mode: str, photo: bytes) -> None:
    key = key_for(mode, "cloud/src.jpg")
    client.put_object(Bucket=PHOTOS, Body=photo, Key=key)
    ops = {"rules": [{"fileid": "out.png", "rule": "imageMogr2/thumbnail/!25p/format/png"}]}
    _, result = client.ci_image_process(Bucket=PHOTOS, Key=key, PicOperations=json.dumps(ops))
    obj = result["ProcessResults"]["Object"]
    expected = (key_for(mode, "cloud/out.png"), "png", "300", "169")
    assert (obj["Key"], obj["Format"], obj["Width"], obj["Height"]) == expected
    assert "ImageInfo" not in result["OriginalInfo"]
    with pytest.raises(CosServiceError) as info:
        client.ci_image_process(Bucket=PHOTOS, Key=key_for(mode, "cloud/none.jpg"), PicOperations=json.dumps(ops))
    assert info.value.get_error_code() == "NoSuchKey"


def test_ci_get_object_matches_process(client: Any, mode: str, photo: bytes, tmp_path: Path) -> None:
    key = key_for(mode, "dl/kleiber.jpg")
    client.put_object(Bucket=PHOTOS, Body=photo, Key=key)
    for i, rule in enumerate(RULES):
        dest = tmp_path / f"out-{i}"
        headers = client.ci_get_object(Bucket=PHOTOS, Key=key, DestImagePath=str(dest), Rule=rule)
        expected = ci_engine.process(photo, rule)
        assert dest.read_bytes() == expected.data, rule
        assert headers["Content-Type"] == expected.mime_type, rule


def test_ci_get_object_with_an_image_watermark_from_the_bucket(
    client: Any, mode: str, photo: bytes, tmp_path: Path
) -> None:
    """``watermark/1`` on a download: the logo is an object of the same bucket (no cache on
    this server)."""
    import base64
    import io

    from PIL import Image

    logo = io.BytesIO()
    Image.new("RGBA", (120, 60), (250, 200, 0, 200)).save(logo, "PNG")
    key, logo_key = key_for(mode, "wm/photo.jpg"), key_for(mode, "wm/logo.png")
    client.put_object(Bucket=PHOTOS, Body=photo, Key=key)
    client.put_object(Bucket=PHOTOS, Body=logo.getvalue(), Key=logo_key)
    url = f"http://{PHOTOS}.cos.{REGION}.myqcloud.com/{logo_key}"
    rule = f"watermark/1/image/{base64.urlsafe_b64encode(url.encode()).decode()}/gravity/center/dissolve/70"
    dest = tmp_path / "marked"
    headers = client.ci_get_object(Bucket=PHOTOS, Key=key, DestImagePath=str(dest), Rule=rule)
    expected = ci_engine.process(photo, rule, resources={url: logo.getvalue()})
    assert dest.read_bytes() == expected.data
    assert headers["Content-Type"] == "image/jpeg"
    assert dest.read_bytes() != ci_engine.process(photo, "imageMogr2/format/jpg").data


def test_image_info_exif_ave(client: Any, mode: str, photo: bytes) -> None:
    key = key_for(mode, "info/kleiber.jpg")
    client.put_object(Bucket=PHOTOS, Body=photo, Key=key)
    _, info = client.ci_get_image_info(Bucket=PHOTOS, Key=key)
    assert info == ci_engine.process(photo, "imageInfo").data
    assert json.loads(info)["width"] == "1200"
    _, exif = client.ci_get_image_exif_info(Bucket=PHOTOS, Key=key)
    assert exif == ci_engine.process(photo, "exif").data
    _, ave = client.ci_get_image_ave_info(Bucket=PHOTOS, Key=key)
    assert ave == ci_engine.process(photo, "imageAve").data
    assert json.loads(ave)["RGB"].startswith("0x")


def _fetch(url: str, *, proxy: str | None = None) -> tuple[int, bytes]:
    handlers: list[Any] = [urllib.request.ProxyHandler({"http": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_presigned_url_with_rule(client: Any, server: Server, mode: str, photo: bytes) -> None:
    key = key_for(mode, "signed/kleiber.jpg")
    client.put_object(Bucket=PHOTOS, Body=photo, Key=key)
    rule = "imageMogr2/thumbnail/100x/format/png"
    url = client.get_presigned_url(Bucket=PHOTOS, Key=key, Method="GET", Params={rule: ""})
    assert "q-signature=" in url
    if mode == "proxy":
        status, body = _fetch(url, proxy=server.url)
    else:  # IP mode URLs carry no bucket: fetch it path style
        parts = urllib.parse.urlsplit(url)
        status, body = _fetch(f"{server.url}/{PHOTOS}{parts.path}?{parts.query}")
    assert status == 200, body[:300]
    assert body == ci_engine.process(photo, rule).data
    tampered = url.replace("thumbnail%2F100x", "thumbnail%2F101x")
    assert tampered != url
    if mode == "proxy":
        status, body = _fetch(tampered, proxy=server.url)
    else:
        parts = urllib.parse.urlsplit(tampered)
        status, body = _fetch(f"{server.url}/{PHOTOS}{parts.path}?{parts.query}")
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body


def test_styles_and_protection(client: Any, mode: str, photo: bytes, tmp_path: Path) -> None:
    key = key_for(mode, "trip/beach.jpg")
    client.put_object(Bucket=GUARDED, Body=photo, Key=key)
    name = f"card{mode}"
    body = "imageMogr2/thumbnail/320x320/format/webp"
    client.ci_put_image_style(Bucket=GUARDED, Request={"StyleName": name, "StyleBody": body})
    _, listed = client.ci_get_image_style(Bucket=GUARDED, Request={"StyleName": name})
    assert listed["StyleRule"] == {"StyleName": name, "StyleBody": body}
    _, every = client.ci_get_image_style(Bucket=GUARDED, Request={"StyleName": ""})
    rules = every["StyleRule"] if isinstance(every["StyleRule"], list) else [every["StyleRule"]]
    assert name in [r["StyleName"] for r in rules]
    # protection: the style URL works, the original and ad-hoc strings do not
    styled = body_of(client.get_object(Bucket=GUARDED, Key=f"{key}!{name}"))
    assert styled == ci_engine.process(photo, body).data
    with pytest.raises(CosServiceError) as info:
        client.get_object(Bucket=GUARDED, Key=key)
    assert (info.value.get_error_code(), info.value.get_status_code()) == ("AccessDenied", 403)
    with pytest.raises(CosServiceError) as info:
        client.ci_get_object(
            Bucket=GUARDED, Key=key, DestImagePath=str(tmp_path / "x"), Rule="imageMogr2/thumbnail/10x"
        )
    assert info.value.get_error_code() == "AccessDenied"
    client.ci_delete_image_style(Bucket=GUARDED, Request={"StyleName": name})
    with pytest.raises(CosServiceError) as info:
        client.ci_get_image_style(Bucket=GUARDED, Request={"StyleName": name})
    assert (info.value.get_error_code(), info.value.get_status_code()) == ("NoSuchStyle", 404)
    with pytest.raises(CosServiceError) as info:
        client.get_object(Bucket=GUARDED, Key=f"{key}!{name}")
    assert info.value.get_error_code() == "NoSuchKey"


def test_pic_bucket_open_get_close(client: Any, mode: str) -> None:
    _, opened = client.ci_open_pic_bucket(Bucket=PHOTOS)
    assert opened["PicBucket"]["BucketId"] == PHOTOS
    assert opened["PicBucket"]["Region"] == REGION
    assert opened["RequestId"]
    listed = client.ci_get_pic_bucket(Regions=REGION, BucketNames=PHOTOS, PageNumber="1", PageSize="10")
    assert listed["TotalCount"] == "1"
    assert [b["BucketId"] for b in listed["PicBucketList"]] == [PHOTOS]
    _, closed = client.ci_close_pic_bucket(Bucket=PHOTOS)
    assert closed["PicBucket"]["BucketId"] == PHOTOS
    listed = client.ci_get_pic_bucket(Regions=REGION, BucketNames=PHOTOS)
    assert listed["TotalCount"] == "0"
    assert listed.get("PicBucketList", []) == []


def test_compress_inspect_and_qrcode(client: Any, mode: str, photo: bytes, tmp_path: Path) -> None:
    key = key_for(mode, "more/kleiber.jpg")
    client.put_object(Bucket=PHOTOS, Body=photo, Key=key)
    small = (REPO / "tests" / "fixtures" / "images" / "kleiber-320.png").read_bytes()  # HEIF encoding is slow
    small_key = key_for(mode, "more/kleiber-320.png")
    client.put_object(Bucket=PHOTOS, Body=small, Key=small_key)
    dest = tmp_path / "k.heif"
    headers = client.ci_download_compress_image(
        Bucket=PHOTOS, Key=small_key, DestImagePath=str(dest), CompressType="heif"
    )
    expected = ci_engine.process(small, "imageMogr2/format/heif")
    assert dest.read_bytes() == expected.data
    assert headers["Content-Type"] == "image/heic"
    _, inspect = client.ci_image_inspect(Bucket=PHOTOS, Key=key)
    assert inspect == ci_engine.process(photo, "imageInspect").data  # the SDK hands back the raw JSON
    _, qr = client.ci_get_object_qrcode(Bucket=PHOTOS, Key=key, Cover=0)
    assert qr["CodeStatus"] == "0"  # a photograph without a QR code


def test_copy_md5_and_delete_objects(client: Any, mode: str, photo: bytes) -> None:
    src = key_for(mode, "copy/src.jpg")
    client.put_object(Bucket=PHOTOS, Body=photo, Key=src, EnableMD5=True)  # sends Content-MD5
    dest = key_for(mode, "copy/dest.jpg")
    copied = client.copy_object(
        Bucket=PHOTOS, Key=dest, CopySource={"Bucket": PHOTOS, "Key": src, "Region": REGION}
    )
    assert copied["ETag"] == f'"{md5(photo)}"'
    head = client.head_object(Bucket=PHOTOS, Key=dest)
    assert head["ETag"] == f'"{md5(photo)}"' and head["Content-Length"] == str(len(photo))
    result = client.delete_objects(
        Bucket=PHOTOS, Delete={"Object": [{"Key": src}, {"Key": key_for(mode, "copy/never.jpg")}], "Quiet": "false"}
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted([src, key_for(mode, "copy/never.jpg")])
    with pytest.raises(CosServiceError):
        client.head_object(Bucket=PHOTOS, Key=src)
    client.delete_object(Bucket=PHOTOS, Key=dest)


def test_bucket_create_list_delete(client: Any, mode: str, photo: bytes) -> None:
    bucket = f"made{mode}-1250000000"
    client.create_bucket(Bucket=bucket)
    with pytest.raises(CosServiceError) as info:
        client.create_bucket(Bucket=bucket)
    assert info.value.get_status_code() == 409
    assert client.head_bucket(Bucket=bucket)["x-cos-bucket-region"] == REGION
    keys = ["a/1.jpg", "a/2.jpg", "a/sub/3.jpg", "b/4.jpg", "c 5.jpg"]
    for key in keys:
        client.put_object(Bucket=bucket, Body=photo, Key=key)
    first = client.list_objects(Bucket=bucket, MaxKeys=2)
    assert [c["Key"] for c in first["Contents"]] == keys[:2]
    assert first["IsTruncated"] == "true"
    rest = client.list_objects(Bucket=bucket, Marker=first["NextMarker"], MaxKeys=10)
    assert [c["Key"] for c in rest["Contents"]] == keys[2:]
    assert rest["IsTruncated"] == "false"
    assert rest["Contents"][0]["ETag"] == f'"{md5(photo)}"' and rest["Contents"][0]["Size"] == str(len(photo))
    grouped = client.list_objects(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert [c["Key"] for c in grouped["Contents"]] == ["a/1.jpg", "a/2.jpg"]
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["a/sub/"]
    if mode == "proxy":  # the SDK's list_buckets ignores IP= and always calls service.cos.myqcloud.com
        assert bucket in [b["Name"] for b in client.list_buckets()["Buckets"]["Bucket"]]
    with pytest.raises(CosServiceError) as info:
        client.delete_bucket(Bucket=bucket)
    assert info.value.get_error_code() == "BucketNotEmpty"
    for key in keys:
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)
    with pytest.raises(CosServiceError) as info:
        client.head_bucket(Bucket=bucket)
    assert info.value.get_status_code() == 404
