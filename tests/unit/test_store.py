"""The object stores: key validation, confinement to the root, atomic writes, ETags."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from ci_engine.errors import AccessDeniedError, InternalError, InvalidArgumentError, NoSuchKeyError
from ci_engine.store import LocalStore, MemoryStore, Store, check_key, md5_etag


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "bucket", fsync=False)
    return MemoryStore()


def _leftovers(root: Path) -> list[str]:
    """Every file under ``root`` whose name is not a stored key (temporary files)."""
    return sorted(p.name for p in root.rglob("*") if p.is_file() and p.name.startswith(".ci-tmp-"))


# -- the interface, on both stores ---------------------------------------------------------------


def test_put_get_exists_etag_delete(store: Store) -> None:
    etag = store.put("shop/items/42.jpg", b"hello")
    assert etag == hashlib.md5(b"hello").hexdigest() == md5_etag(b"hello")
    assert store.get("shop/items/42.jpg") == b"hello"
    assert store.exists("shop/items/42.jpg")
    assert "shop/items/42.jpg" in store
    assert not store.exists("shop/items/43.jpg")
    assert store.etag("shop/items/42.jpg") == etag
    assert store.keys() == ["shop/items/42.jpg"]
    assert store.keys("shop/x") == []
    store.delete("shop/items/42.jpg")
    assert not store.exists("shop/items/42.jpg")
    store.delete("shop/items/42.jpg")  # deleting a missing key is not an error (COS)
    assert store.keys() == []


def test_overwrite_changes_the_etag(store: Store) -> None:
    first = store.put("a.bin", b"one")
    second = store.put("a.bin", b"two")
    assert first != second
    assert store.etag("a.bin") == second == hashlib.md5(b"two").hexdigest()
    assert store.get("a.bin") == b"two"


def test_missing_objects_raise_no_such_key(store: Store) -> None:
    with pytest.raises(NoSuchKeyError) as info:
        store.get("nope.jpg")
    assert info.value.status == 404 and info.value.x_errno == -46628
    with pytest.raises(NoSuchKeyError):
        store.etag("nope.jpg")


def test_put_accepts_bytes_like_and_refuses_the_rest(store: Store) -> None:
    store.put("a", bytearray(b"xy"))
    store.put("b", memoryview(b"zw"))
    assert store.get("a") == b"xy" and store.get("b") == b"zw"
    with pytest.raises(TypeError):  # programming errors (docs/errors.md)
        store.put("c", "text")  # type: ignore[arg-type]
    released = memoryview(b"zz")
    released.release()
    with pytest.raises(ValueError, match="released"):
        store.put("d", released)


BAD_KEYS = [
    "",
    "/abs.jpg",
    "dir/",
    "a//b.jpg",
    ".",
    "..",
    "../x.jpg",
    "a/../../x.jpg",
    "a/./b.jpg",
    "a/..",
    "nul\x00.jpg",
    "new\nline.jpg",
    "del\x7f.jpg",
    "x" * 851,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k[:20]))
def test_invalid_keys_are_refused_everywhere(store: Store, key: str) -> None:
    with pytest.raises(InvalidArgumentError):
        check_key(key)
    with pytest.raises(InvalidArgumentError):
        store.put(key, b"x")
    with pytest.raises(InvalidArgumentError):
        store.get(key)
    with pytest.raises(InvalidArgumentError):
        store.exists(key)
    assert key not in store  # __contains__ never raises


LONG_KEY = "/".join(["x" * 200] * 4) + "/" + "y" * 46  # 850 bytes, segments within NAME_MAX


@pytest.mark.parametrize(
    "key", ["a.jpg", "a/b/c.jpg", "中文/图片.jpg", "with space.png", LONG_KEY, "a..b/c.d"], ids=lambda k: k[:20]
)
def test_valid_keys(store: Store, key: str) -> None:
    assert check_key(key) == key
    store.put(key, b"ok")
    assert store.get(key) == b"ok"


def test_check_key_refuses_non_strings() -> None:
    with pytest.raises(TypeError, match="key must be str, got bytes"):  # a programming error
        check_key(b"a.jpg")  # type: ignore[arg-type]


# -- LocalStore specifics -----------------------------------------------------------------------------


def test_local_store_lays_objects_out_as_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "new" / "root")  # created
    store.put("shop/items/42.jpg", b"data")
    assert (tmp_path / "new" / "root" / "shop" / "items" / "42.jpg").read_bytes() == b"data"
    assert _leftovers(tmp_path) == []


def test_local_store_delete_prunes_empty_folders(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=False)
    store.put("a/b/c.jpg", b"1")
    store.put("a/d.jpg", b"2")
    store.delete("a/b/c.jpg")
    assert not (tmp_path / "a" / "b").exists()
    assert (tmp_path / "a" / "d.jpg").exists()


def test_local_store_object_and_folder_clash_is_an_error(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=False)
    store.put("a", b"file")
    with pytest.raises(InvalidArgumentError):
        store.put("a/b.jpg", b"x")
    store.put("d/e.jpg", b"x")
    with pytest.raises(InvalidArgumentError):
        store.put("d", b"x")
    assert not store.exists("d")  # a folder is not an object


def test_local_store_refuses_segments_longer_than_a_file_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        LocalStore(tmp_path).put("x" * 256, b"x")


def test_local_store_refuses_keys_that_look_like_its_temporary_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        LocalStore(tmp_path).put("a/.ci-tmp-123", b"x")


def test_local_store_refuses_a_symlinked_folder_leading_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    store = LocalStore(root, fsync=False)
    with pytest.raises(AccessDeniedError):
        store.get("link/secret.txt")
    with pytest.raises(AccessDeniedError):
        store.put("link/new.txt", b"x")
    assert not (outside / "new.txt").exists()
    assert not store.exists("link/secret.txt")
    assert store.keys() == []


def test_local_store_refuses_a_symlinked_object(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").symlink_to(outside)
    store = LocalStore(root, fsync=False)
    with pytest.raises(AccessDeniedError):
        store.get("a.txt")
    assert not store.exists("a.txt")
    # Writing replaces the link itself (rename), never the file it points to.
    store.put("a.txt", b"new")
    assert outside.read_bytes() == b"secret"
    assert store.get("a.txt") == b"new"


def test_local_store_root_may_itself_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    store = LocalStore(tmp_path / "alias", fsync=False)
    store.put("x/y.jpg", b"1")
    assert (real / "x" / "y.jpg").read_bytes() == b"1"


def test_a_failed_rename_leaves_no_file_and_keeps_the_old_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path, fsync=False)
    store.put("a/b.jpg", b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(InternalError):
        store.put("a/b.jpg", b"new" * 1000)
    with pytest.raises(InternalError):
        store.put("a/c.jpg", b"new")
    monkeypatch.undo()
    assert store.get("a/b.jpg") == b"old"
    assert not store.exists("a/c.jpg")
    assert _leftovers(tmp_path) == []
    assert store.keys() == ["a/b.jpg"]


def test_a_write_failing_half_way_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path)  # fsync on: the failure comes from fsync, after a partial write

    def boom(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(InternalError):
        store.put("big.bin", b"x" * 1_000_000)
    monkeypatch.undo()
    assert not (tmp_path / "big.bin").exists()
    assert _leftovers(tmp_path) == []


def test_an_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path, fsync=False)

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.put("k.bin", b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_readers_never_see_a_partial_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=False)
    payloads = [bytes([i]) * 2_000_000 for i in range(2)]
    store.put("obj", payloads[0])
    seen: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            data = store.get("obj")
            if data not in payloads:
                seen.append(data[:16])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            store.put("obj", payloads[i % 2])
    finally:
        done.set()
        thread.join()
    assert seen == []


def test_etag_follows_changes_made_behind_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=False)
    store.put("a.txt", b"one")
    assert store.etag("a.txt") == md5_etag(b"one")
    (tmp_path / "a.txt").unlink()
    (tmp_path / "a.txt").write_bytes(b"two, longer")
    assert store.etag("a.txt") == md5_etag(b"two, longer")


def test_keys_lists_nested_objects_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=False)
    for key in ("b.jpg", "a/x.jpg", "a/b/y.jpg"):
        store.put(key, b"1")
    (tmp_path / "a" / ".ci-tmp-leftover").write_bytes(b"")
    assert store.keys() == ["a/b/y.jpg", "a/x.jpg", "b.jpg"]
    assert store.keys("a/") == ["a/b/y.jpg", "a/x.jpg"]
