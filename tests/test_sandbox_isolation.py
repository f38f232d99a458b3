"""bf.Sandbox's kernel isolation: bubblewrap's namespaces, Landlock and seccomp hold against code
written to escape (ctypes included); where the kernel refuses them, the sandbox says so once and
`strict=True` refuses to run. Tests of the real isolation run where bwrap works (CI installs it)."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import os
import sys
import threading
import warnings

import pytest
from benchmarks.reliability import sandbox_escapes as esc

import backfeed as bf
from backfeed.graph.execute import CodeError
from backfeed.sandbox import confine, isolation, landlock

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

ROOT = os.geteuid() == 0
HAS_BWRAP = sys.platform.startswith("linux") and isolation.bubblewrap(ROOT)[0] is not None
HAS_LANDLOCK = sys.platform.startswith("linux") and landlock.abi() >= 1
try:
    confine.seccomp_module()
    HAS_SECCOMP = True
except (ImportError, OSError):
    HAS_SECCOMP = False
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap cannot make namespaces here")
needs_all = pytest.mark.skipif(not (HAS_BWRAP and HAS_LANDLOCK and HAS_SECCOMP),
                               reason="needs bubblewrap, Landlock and libseccomp's bindings")
needs_confinement = pytest.mark.skipif(not (HAS_LANDLOCK and HAS_SECCOMP),
                                       reason="needs Landlock and libseccomp's bindings")
THE_FIVE = ["read /etc/passwd", "read ~/.ssh", "read the run store",
            "parent's environ via /proc", "ctypes libc write"]


def attack(p: str, caller: int, home: str) -> object:  # stand-in for the catalogue's sources
    return None


@pytest.fixture
def no_bwrap(monkeypatch):
    """The sandbox as it runs where the kernel refuses namespaces (or bwrap is missing)."""
    monkeypatch.setattr(isolation, "bubblewrap", lambda root: (None, "off (hidden by a test)"))
    monkeypatch.setattr(isolation, "_said", set())


@pytest.fixture
def open_sys_path(monkeypatch):
    """sys.path without directories only root may enter (other tests leave tmp_path dirs on
    it): under root, one such directory keeps the worker root, without its thread limit."""
    paths = isolation.readable_paths(False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p or isolation._others_reach(
        os.path.abspath(p), paths)])


def double(x: int) -> int:
    return 2 * x


def test_without_namespaces_the_sandbox_says_once_in_one_line_what_is_off(no_bwrap):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with bf.Sandbox(timeout_s=5, workers=1) as first:
            assert first.call(double, (2,), {}) == 4
        with bf.Sandbox(timeout_s=5, workers=1) as second:
            assert second.call(double, (3,), {}) == 6
            assert second.protections["namespaces"] == "off (hidden by a test)"
    said = [w for w in caught if issubclass(w.category, bf.sandbox.SandboxWarning)]
    assert len(said) == 1
    line = str(said[0].message)
    assert "\n" not in line and "namespaces (hidden by a test)" in line
    assert "thread limit" in line and "strict=True" in line


def test_strict_refuses_to_run_without_kernel_isolation(no_bwrap):
    with bf.Sandbox(timeout_s=5, workers=1, strict=True) as sb:
        with pytest.raises(bf.SandboxError, match="namespaces") as info:
            sb.call(double, (2,), {})
        assert "refused to run" in str(info.value)
        assert sb.worker_pids() == []  # the worker it started is gone


def test_kernel_false_is_the_sandbox_of_before_and_cannot_be_strict():
    with warnings.catch_warnings():
        warnings.simplefilter("error", bf.sandbox.SandboxWarning)  # says nothing
        with bf.Sandbox(timeout_s=5, workers=1, kernel=False) as sb:
            assert sb.call(double, (5,), {}) == 10
            assert sb.protections == {"namespaces": "off (Sandbox(kernel=False))",
                                      "thread limit": sb.protections["thread limit"]}
    with pytest.raises(ValueError, match="strict=True needs"):
        bf.Sandbox(strict=True, kernel=False)
    with pytest.raises(ValueError, match="disk_mb"):
        bf.Sandbox(disk_mb=0)


def test_the_line_names_each_protection_that_is_off_and_none_when_all_are_on():
    on = {"namespaces": "on", "landlock": "on", "seccomp": "on", "thread limit": "on"}
    assert isolation.describe(on) is None
    line = isolation.describe({**on, "seccomp": "off (no bindings)"})
    assert line.startswith("bf.Sandbox: kernel protections off here: seccomp (no bindings).")
    assert "On: namespaces, landlock, thread limit" in line


@needs_all
def test_strict_runs_where_every_protection_is_on(open_sys_path):
    with bf.Sandbox(timeout_s=5, workers=1, strict=True) as sb:
        assert sb.call(double, (21,), {}) == 42
        assert set(sb.protections.values()) == {"on"}, sb.protections


@needs_all
def test_the_five_escapes_of_the_first_catalogue_are_refused_or_get_nothing(open_sys_path):
    rows = {r["attempt"]: r["outcome"] for r in esc.catalogue(names=THE_FIVE)}
    for name in THE_FIVE:
        assert not rows[name].startswith("escaped"), (name, rows[name])
    assert rows["ctypes libc write"] == "harmless: -1, no file written"


@needs_all
@pytest.mark.slow
def test_no_attempt_of_the_catalogue_escapes(open_sys_path):
    rows = esc.catalogue()
    assert len(rows) >= 41  # 48 attempts and the protections they met
    escaped = [r for r in rows if r["outcome"].startswith("escaped")]
    assert escaped == []
    assert len([r for r in rows if r["outcome"].startswith(("refused", "harmless"))]) >= 40


@needs_confinement
def test_without_namespaces_landlock_and_seccomp_still_stop_the_five(no_bwrap):
    rows = {r["attempt"]: r["outcome"] for r in esc.catalogue(names=THE_FIVE, namespaces=False)}
    for name in THE_FIVE:
        assert not rows[name].startswith("escaped"), (name, rows[name])


def test_a_result_whose_pickle_would_run_a_command_in_the_caller_is_refused(tmp_path):
    marker = tmp_path / "ran"
    source = ("def attack(p, caller, home):\n    import os\n    class Payload:\n"
              "        def __reduce__(self):\n"
              "            return (os.system, ('touch ' + p,))\n    return Payload()\n")
    with bf.Sandbox(timeout_s=5, workers=1) as sb:
        with pytest.raises(CodeError) as info:
            sb.call(attack, (str(marker), 0, ""), source=source, name="attack")
    assert info.value.info.type == "UnpicklableResult"
    assert "posix.system is not unpickled" in info.value.info.message
    assert not marker.exists()


@dataclasses.dataclass
class Point:
    x: int
    y: int


def plain_values() -> tuple:
    return (Point(1, 2), datetime.date(2026, 1, 2), decimal.Decimal("1.5"),
            collections.OrderedDict(a=1), collections.Counter("aab"), {1, 2}, b"x", None)


def test_plain_data_and_classes_of_your_own_code_still_cross():
    with bf.Sandbox(timeout_s=5, workers=1) as sb:
        assert sb.call(plain_values, (), {}) == plain_values()


def test_a_worker_started_from_a_thread_that_ended_keeps_working():
    with bf.Sandbox(timeout_s=5, workers=1) as sb:
        starter = threading.Thread(target=sb.call, args=(double, (1,), {}))
        starter.start()
        starter.join()  # bwrap's --die-with-parent follows the thread that started it
        (pid,) = sb.worker_pids()
        assert sb.call(double, (4,), {}) == 8
        assert sb.worker_pids() == [pid]


def test_an_environment_the_code_changed_does_not_reach_the_next_call():
    def plant() -> None:
        os.environ["LD_PRELOAD"] = "/tmp/evil.so"

    def look() -> str | None:
        return os.environ.get("LD_PRELOAD")

    with bf.Sandbox(timeout_s=5, workers=1) as sb:
        sb.call(plant, (), {})
        assert sb.call(look, (), {}) is None


@needs_bwrap
def test_threads_stop_at_the_limit_and_the_workdir_at_its_size(open_sys_path):
    def spawn() -> int:
        import time

        count = 0
        try:
            for _ in range(1000):
                threading.Thread(target=time.sleep, args=(1,), daemon=True).start()
                count += 1
        except RuntimeError:
            pass
        return count

    def fill() -> int:
        for i in range(64):
            with open(f"block{i}", "wb") as f:
                f.write(b"x" * 2**20)
        return 64

    with bf.Sandbox(timeout_s=10, workers=1, threads=8, disk_mb=16) as sb:
        assert sb.call(spawn, (), {}) <= 8
        with pytest.raises(CodeError) as info:
            sb.call(fill, (), {})
        assert info.value.info.type == "OSError" and "No space left" in info.value.info.message


@needs_bwrap
def test_the_worker_sees_its_own_root_and_proc_and_no_home():
    def look(caller: int) -> dict:
        return {"caller": os.path.exists(f"/proc/{caller}"), "own": os.getpid(),
                "home": os.path.expanduser("~") == os.getcwd(),
                "passwd": os.path.exists("/etc/passwd")}

    with bf.Sandbox(timeout_s=5, workers=1) as sb:
        seen = sb.call(look, (os.getpid(),), {})
    assert seen == {"caller": False, "own": 2, "home": True, "passwd": False}
