"""Joining the embedded model's parts: atomic, checked, and clear about a bad part."""

import hashlib

import pytest

from backfeed.llm import local
from backfeed.llm.local import ModelInstallError, ModelPart, ModelSpec, ensure_model


def make_parts(site, contents, version="1.0"):
    """Install fake part distributions (dist-info + data file) into directory `site`."""
    parts = []
    for i, data in enumerate(contents, start=1):
        pkg = f"fakemodel_part{i}"
        (site / pkg / "data").mkdir(parents=True)
        (site / pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        info = site / f"{pkg}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: fakemodel-part{i}\nVersion: {version}\n")
        (info / "RECORD").write_text(f"{pkg}/data/part{i:02d}.bin,,\n")
        parts.append(ModelPart(f"fakemodel-part{i}", "1.0", len(data),
                               hashlib.sha256(data).hexdigest()))
    return parts


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    contents = [b"GGUF" + b"a" * 1000, b"b" * 1000, b"c" * 10]
    parts = make_parts(site, contents)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(contents)
    spec = ModelSpec("fake", "fake.gguf", len(whole), hashlib.sha256(whole).hexdigest(),
                     tuple(parts), extra="local")
    monkeypatch.setitem(local.MODELS, "fake", spec)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return site, whole


def test_parts_are_joined_into_the_xdg_cache_and_verified(fake_model, tmp_path):
    _, whole = fake_model
    path = ensure_model("fake")
    assert path == tmp_path / "xdg" / "backfeed" / "models" / "fake.gguf"
    assert path.read_bytes() == whole
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".part")] == []
    assert ensure_model("fake") == path  # second time: verified stamp, no re-join
    assert local.resolve_model("fake") == ("fake", path)


def test_corrupt_part_is_named_with_the_reinstall_command(fake_model, tmp_path):
    site, _ = fake_model
    (site / "fakemodel_part2" / "data" / "part02.bin").write_bytes(b"B" * 1000)
    with pytest.raises(ModelInstallError, match=r"part 2 of 3 \(fakemodel-part2==1.0.*corrupt"
                       r".*pip install --force-reinstall 'fakemodel-part2==1.0'"):
        ensure_model("fake")
    models = tmp_path / "xdg" / "backfeed" / "models"
    assert list(models.iterdir()) == []  # the temp file is gone, nothing half-written


def test_missing_part_is_named(fake_model):
    site, _ = fake_model
    for f in (site / "fakemodel_part3-1.0.dist-info").iterdir():
        f.unlink()
    (site / "fakemodel_part3-1.0.dist-info").rmdir()
    with pytest.raises(ModelInstallError, match=r"part 3 of 3 \(fakemodel-part3==1.0\).*not "
                       r"installed.*pip install --force-reinstall 'fakemodel-part3==1.0'"):
        ensure_model("fake")


def test_a_changed_joined_file_is_rebuilt(fake_model):
    _, whole = fake_model
    path = ensure_model("fake")
    path.write_bytes(b"tampered" + whole[8:])
    assert ensure_model("fake").read_bytes() == whole


def test_whole_file_hash_is_checked_when_parts_have_no_pins(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    parts = [ModelPart(p.distribution, p.version) for p in make_parts(site, [b"x", b"y"])]
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(local.MODELS, "fake2",
                        ModelSpec("fake2", "f2.gguf", 2, "0" * 64, tuple(parts), extra="local"))
    with pytest.raises(ModelInstallError, match=r"do not match the pinned sha256.*fakemodel-part1"):
        ensure_model("fake2", directory=tmp_path / "m")


def test_unknown_model_and_bad_paths_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'gpt-9'"):
        ensure_model("gpt-9")
    with pytest.raises(ValueError, match="neither one of"):
        local.Local("no-such-model")
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"NOPE")
    with pytest.raises(ValueError, match="not a GGUF model file"):
        local.resolve_model(str(bogus))


def test_pinned_specs_are_consistent():
    for spec in local.MODELS.values():
        sizes = [p.size for p in spec.parts]
        if None not in sizes:
            assert sum(sizes) == spec.size
        assert len(spec.sha256) == 64


@pytest.mark.parametrize("load, cores, expected", [
    (0.2, 2, 2),    # idle: every core
    (1.0, 2, 2),    # this process's own load
    (2.0, 2, 1),    # one other busy job on 2 cores: one thread
    (7.0, 2, 1),    # overloaded: never fewer than one
    (4.0, 16, 13),
])
def test_thread_default_leaves_busy_cores_alone(monkeypatch, load, cores, expected):
    monkeypatch.delenv("BACKFEED_LOCAL_THREADS", raising=False)
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(local.os, "getloadavg", lambda: (load, load, load))
    assert local.cpu_count() == expected


def test_thread_override_wins_and_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setattr(local.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    monkeypatch.setenv("BACKFEED_LOCAL_THREADS", "3")
    assert local.cpu_count() == 3
    monkeypatch.setenv("BACKFEED_LOCAL_THREADS", "many")
    with pytest.raises(ValueError, match="BACKFEED_LOCAL_THREADS must be a positive integer"):
        local.cpu_count()
