"""bf.Sandbox: model-written code runs in pooled workers under limits; violations are error nodes."""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
import tempfile
import threading
import time

import pytest

import backfeed as bf
from backfeed.graph.execute import CodeError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

TIMEOUT_S = 1.0
MEMORY_MB = 100
# Shared by the tests: workers start lazily and are reused, as in a training run.
SB = bf.Sandbox(timeout_s=TIMEOUT_S, memory_mb=MEMORY_MB, workers=2)


@pytest.fixture(scope="module", autouse=True)
def _close_sandbox():
    yield
    SB.close()


def _children() -> set[int]:
    """Live (or zombie) child processes of this process, from /proc."""
    me = os.getpid()
    kids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            kids.add(int(entry))
    return kids


def _error(call, *args):
    with pytest.raises(bf.ExecutionError) as info:
        call(*args)
    return info.value.node


@bf.op(trainable=True, sandbox=SB)
def spin(n: int) -> int:
    total = 0
    while True:
        total += n
    return total


@bf.op(trainable=True, sandbox=SB)
def hoard(megabytes: int) -> int:
    block = bytearray(megabytes * 2**20)
    return len(block)


@bf.op(trainable=True, sandbox=SB)
def where(x: int) -> tuple[int, int]:
    return os.getpid(), x * 2


@pytest.mark.timeout(TIMEOUT_S + 20)
def test_infinite_loop_becomes_a_timeout_error_node_with_its_line():
    error_node = _error(spin, bf.node(1))
    assert error_node.error.type == "Timeout"
    assert error_node.error.lineno in (3, 4)  # inside the loop
    assert error_node.error.line.strip() in ("while True:", "total += n")
    assert error_node.error.parameter == "spin"
    assert error_node.backward("it never returns") == [spin.code]
    text = bf.render(spin.code).text
    assert "Timeout" in text and "it never returns" in text
    assert where(bf.node(3)).value[1] == 6  # the pool replaced the worker


@pytest.mark.timeout(TIMEOUT_S + 20)
def test_code_blocked_in_a_sleep_times_out_too():
    def nap() -> None:
        import time

        time.sleep(3600)

    with pytest.raises(CodeError) as info:
        SB.call(nap, (), {})
    assert info.value.info.type == "Timeout"
    assert info.value.info.lineno == 4 and "time.sleep" in info.value.info.line


@pytest.mark.timeout(TIMEOUT_S + 20)
def test_allocating_past_the_memory_limit_becomes_a_memory_error_node():
    assert hoard(bf.node(10)).value == 10 * 2**20
    error_node = _error(hoard, bf.node(50 * MEMORY_MB))
    assert error_node.error.type == "MemoryLimit"
    assert error_node.error.lineno == 2 and "bytearray" in error_node.error.line
    assert f"{MEMORY_MB} MiB" in error_node.error.message
    assert error_node.backward("use less memory") == [hoard.code]


def test_memory_limit_stops_gradual_growth_too():
    def grow() -> int:
        blocks = []
        while True:
            blocks.append(bytearray(8 * 2**20))
        return len(blocks)

    with pytest.raises(CodeError) as info:
        SB.call(grow, (), {})
    assert info.value.info.type == "MemoryLimit"
    assert info.value.info.lineno == 4


@bf.op(trainable=True, sandbox=SB)
def connect(host: str) -> str:
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((host, 80))
    return "connected"


@bf.op(trainable=True, sandbox=SB)
def shell(command: str) -> int:
    import subprocess

    return subprocess.run(command, shell=True).returncode


@bf.op(trainable=True, sandbox=SB)
def write(path: str, text: str) -> str:
    with open(path, "w") as f:
        f.write(text)
    return path


def test_network_connection_is_refused_and_reported():
    error_node = _error(connect, bf.node("10.0.0.1"))
    assert error_node.error.type == "ForbiddenOperation"
    assert "network socket" in error_node.error.message
    assert error_node.error.lineno == 4 and "socket.socket" in error_node.error.line
    assert SB.isolation in ("network namespace", "audit")


def test_network_is_refused_even_when_the_code_catches_the_refusal():
    def sneaky() -> str:
        import socket

        try:
            socket.getaddrinfo("example.org", 80)
        except Exception:
            return "swallowed"
        return "resolved"

    with pytest.raises(CodeError) as info:
        SB.call(sneaky, (), {})
    assert info.value.info.type == "ForbiddenOperation"
    assert "resolving a host name" in info.value.info.message


def test_network_true_allows_sockets():
    def make_socket() -> bool:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM):
            return True

    with bf.Sandbox(timeout_s=5, network=True, workers=1) as open_sb:
        assert open_sb.call(make_socket, (), {}) is True
        assert open_sb.isolation == "none"


def test_subprocess_is_refused_and_reported():
    error_node = _error(shell, bf.node("echo hi"))
    assert error_node.error.type == "ForbiddenOperation"
    assert "subprocess" in error_node.error.message
    assert "subprocess.run" in error_node.error.line

    def system() -> int:
        return os.system("true")

    with pytest.raises(CodeError, match="shell command"):
        SB.call(system, (), {})


def test_writes_outside_the_working_directory_are_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    error_node = _error(write, bf.node(str(target)), bf.node("x"))
    assert error_node.error.type == "ForbiddenOperation"
    assert str(target) in error_node.error.message
    assert not target.exists()

    def remove(path: str) -> None:
        os.remove(path)

    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(CodeError, match="outside the working directory"):
        SB.call(remove, (str(tmp_path / "keep.txt"),), {})
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_temporary_files_go_to_the_working_directory():
    def use_tempfile() -> bool:
        import tempfile

        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("scratch")
        return os.path.dirname(f.name) == os.getcwd()

    assert SB.call(use_tempfile, (), {}) is True


def test_each_call_gets_an_empty_writable_working_directory():
    def scratch(name: str) -> tuple[str, list[str]]:
        before = os.listdir(".")
        with open(name, "w") as f:
            f.write("mine")
        os.mkdir(name + ".d")
        return os.getcwd(), before

    with bf.Sandbox(timeout_s=5, workers=1) as sb:
        first_dir, first_listing = sb.call(scratch, ("a.txt",), {})
        second_dir, second_listing = sb.call(scratch, ("b.txt",), {})
        assert first_listing == second_listing == []  # what the first call wrote is gone
        assert first_dir != os.getcwd()
        assert os.path.dirname(second_dir) == os.path.realpath(tempfile.gettempdir())
    assert not os.path.exists(second_dir)  # removed with its worker (inside bwrap: never on disk)


@pytest.mark.timeout(30)
def test_segfault_is_reported_and_the_pool_recovers():
    def crash() -> None:
        import ctypes

        ctypes.string_at(0)

    with bf.Sandbox(timeout_s=5, workers=1) as sb:
        assert sb.call(lambda_free_double, (1,), {}) == 2
        (pid_before,) = sb.worker_pids()
        with pytest.raises(CodeError) as info:
            sb.call(crash, (), {})
        assert info.value.info.type == "WorkerCrash"
        assert "SIGSEGV" in info.value.info.message
        assert info.value.info.lineno == 4 and "string_at" in info.value.info.line
        assert sb.worker_pids() == []
        assert sb.call(lambda_free_double, (21,), {}) == 42
        assert sb.worker_pids() != [pid_before]


def test_a_worker_whose_code_left_a_thread_running_is_replaced():
    def leave_thread() -> int:
        import time

        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        return os.getpid()

    with bf.Sandbox(timeout_s=5, workers=1) as sb:
        assert sb.call(lambda_free_double, (1,), {}) == 2
        (pid,) = sb.worker_pids()
        sb.call(leave_thread, (), {})
        assert sb.worker_pids() == []
        assert sb.call(where.fn, (1,), {})[1] == 2
        assert sb.worker_pids() != [pid]


def test_an_idle_worker_killed_from_outside_is_replaced():
    import signal

    with bf.Sandbox(timeout_s=5, workers=1) as sb:
        assert sb.call(lambda_free_double, (1,), {}) == 2
        (pid,) = sb.worker_pids()
        os.kill(pid, signal.SIGKILL)
        while os.path.exists(f"/proc/{pid}") and not _is_zombie(pid):
            time.sleep(0.01)  # dead (its zombie, if any, not yet reaped)
        assert sb.call(lambda_free_double, (2,), {}) == 4
        assert sb.worker_pids() != [pid]


def lambda_free_double(x: int) -> int:
    return 2 * x


@pytest.mark.timeout(60)
def test_200_sequential_calls_leave_no_stray_processes(tmp_path):
    def maybe_fail(i: int) -> int:
        if i % 7 == 0:
            raise ValueError(f"bad {i}")
        if i % 50 == 48:
            import os

            os._exit(3)  # the worker dies; the pool must replace it
        return i * i

    before = _children()
    with bf.Sandbox(timeout_s=5, workers=2, workdir=tmp_path) as sb:
        outcomes = []
        for i in range(200):
            try:
                outcomes.append(sb.call(maybe_fail, (i,), {}))
            except CodeError as exc:
                outcomes.append(exc.info.type)
            assert len(_children() - before) <= 1  # sequential calls reuse a single worker
        assert outcomes[0] == "ValueError" and outcomes[1] == 1
        assert outcomes[48] == "WorkerCrash" and outcomes[47] == 47 * 47
    assert _children() - before == set()
    assert os.listdir(tmp_path) == []  # no working directory left behind, crashed ones included


@pytest.mark.timeout(60)
def test_concurrent_calls_from_threads_share_the_pool():
    results: dict[int, int] = {}

    def worker(start: int) -> None:
        for i in range(start, start + 10):
            results[i] = where(bf.node(i)).value[1]

    threads = [threading.Thread(target=worker, args=(k * 10,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: 2 * i for i in range(60)}
    assert 1 <= len(SB.worker_pids()) <= 2


def test_exception_in_changed_code_reports_its_line_and_parameter():
    @bf.op(trainable=True, sandbox=SB)
    def parse(text: str) -> int:
        return int(text)

    assert parse(bf.node(" 7 ")).value == 7
    parse.code.value = "def parse(text):\n    cleaned = text.strip()\n    return int(cleaned) // 0\n"
    error_node = _error(parse, bf.node("7"))
    assert error_node.error.type == "ZeroDivisionError"
    assert error_node.error.lineno == 3 and error_node.error.line.strip() == "return int(cleaned) // 0"
    assert error_node.error.parameter == "parse"
    assert error_node.backward("divides by zero") == [parse.code]

    parse.code.value = "def parse(text):\n    return int(text\n"
    assert _error(parse, bf.node("7")).error.type == "SyntaxError"


def test_code_runs_with_its_module_globals():
    @bf.op(trainable=True, sandbox=SB)
    def scaled(x: int) -> int:
        return lambda_free_double(x) + TIMEOUT_S

    assert scaled(bf.node(4)).value == 9.0
    pid, _ = where(bf.node(1)).value
    assert pid != os.getpid()


def test_main_module_globals_are_shipped_by_the_documented_rule():
    source = "def f(x):\n    return math.floor(x) + OFFSET + len(helper)\n"
    globals_ = {"__name__": "__main__", "math": __import__("math"), "OFFSET": 10, "helper": "ab"}
    exec(source, globals_)
    assert SB.call(globals_["f"], (2.5,), {}, source=source, name="f") == 14

    globals_["helper"] = threading.Lock()  # cannot be pickled: left undefined, and said so
    with pytest.raises(CodeError) as info:
        SB.call(globals_["f"], (2.5,), {}, source=source, name="f")
    assert info.value.info.type == "NameError"
    assert "could not be sent to the sandbox" in info.value.info.message


def test_an_argument_that_cannot_cross_names_the_argument():
    @bf.op(trainable=True, sandbox=SB)
    def use(data: str, lock: object) -> str:
        return data

    error_node = _error(use, bf.node("ok"), bf.node(threading.Lock()))
    assert error_node.error.type == "SandboxError"
    assert "argument 'lock'" in error_node.error.message and "pickle" in error_node.error.message


def test_a_result_that_cannot_cross_is_an_error_of_the_code():
    def give_generator() -> object:
        return (i for i in range(3))

    with pytest.raises(CodeError) as info:
        SB.call(give_generator, (), {})
    assert info.value.info.type == "UnpicklableResult"


def test_printed_output_reaches_the_caller(capsys):
    def chatty(x: int) -> int:
        print("thinking about", x)
        return x

    assert SB.call(chatty, (5,), {}) == 5
    assert "thinking about 5" in capsys.readouterr().out


def test_default_sandbox_applies_to_trainable_ops_and_can_be_opted_out():
    @bf.op(trainable=True)
    def pid() -> int:
        return os.getpid()

    @bf.op(trainable=True, sandbox=False)
    def local_pid() -> int:
        return os.getpid()

    bf.set_default_sandbox(SB)
    try:
        assert bf.get_default_sandbox() is SB
        assert pid().value != os.getpid()
        assert local_pid().value == os.getpid()
    finally:
        bf.set_default_sandbox(None)
    assert pid().value == os.getpid()


def test_async_trainable_op_runs_in_the_sandbox():
    @bf.op(trainable=True, sandbox=SB)
    async def later(x: int) -> tuple[int, int]:
        await asyncio.sleep(0)
        return os.getpid(), x + 1

    pid, value = asyncio.run(later(bf.node(1))).value
    assert value == 2 and pid != os.getpid()


def test_bad_settings_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="timeout_s"):
        bf.Sandbox(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        bf.Sandbox(memory_mb=-5)
    with pytest.raises(ValueError, match="not an existing directory"):
        bf.Sandbox(workdir=tmp_path / "missing")
    with pytest.raises(ValueError, match="workers"):
        bf.Sandbox(workers=0)
    with pytest.raises(TypeError, match="network"):
        bf.Sandbox(network="no")
    with pytest.raises(TypeError, match=r"bf\.Sandbox"):
        bf.set_default_sandbox("sandbox please")


def test_workdir_holds_the_call_directories(tmp_path):
    def here() -> str:
        return os.getcwd()

    with bf.Sandbox(timeout_s=5, workdir=tmp_path, workers=1) as sb:
        call_dir = sb.call(here, (), {})
        assert os.path.dirname(call_dir) == str(tmp_path.resolve())
    assert os.listdir(tmp_path) == []


def test_sandbox_pickles_its_settings_not_its_workers():
    SB.call(lambda_free_double, (1,), {})
    copy = pickle.loads(pickle.dumps(SB))
    assert (copy.timeout_s, copy.memory_mb, copy.workers) == (TIMEOUT_S, MEMORY_MB, 2)
    assert copy.worker_pids() == []
    assert copy.call(lambda_free_double, (4,), {}) == 8
    copy.close()


_EXIT_SCRIPT = """
import os, signal, sys
import backfeed as bf

def double(x):
    return 2 * x

sb = bf.Sandbox(timeout_s=5, workers=1, workdir=sys.argv[2])
assert sb.call(double, (2,), {}, source="def double(x):\\n    return 2 * x\\n") == 4
print(sb.worker_pids()[0], flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_workers_end_with_their_caller(how, tmp_path):
    import subprocess

    script = tmp_path / "caller.py"
    script.write_text(_EXIT_SCRIPT)
    src = os.path.dirname(os.path.dirname(bf.__file__))
    env = {**os.environ, "PYTHONPATH": src}
    workdir = tmp_path / "calls"
    workdir.mkdir()
    done = subprocess.run([sys.executable, str(script), how, str(workdir)], capture_output=True,
                          text=True, env=env, timeout=30)
    worker_pid = int(done.stdout.split()[0])
    for _ in range(200):  # a killed caller's worker sees its pipe close and exits
        if not os.path.exists(f"/proc/{worker_pid}") or _is_zombie(worker_pid):
            break
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{worker_pid}") or _is_zombie(worker_pid)
    assert os.listdir(workdir) == []


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@pytest.mark.timeout(TIMEOUT_S + 30)
def test_proposals_that_hang_or_crash_become_feedback_and_the_next_one_runs():
    @bf.op(trainable=True, sandbox=SB)
    def solve(x: int) -> int:
        return x

    proposals = [
        ("def solve(x):\n    while x > 0:\n        x += 1\n    return x\n", "Timeout"),
        ("def solve(x):\n    import ctypes\n    return ctypes.string_at(0)\n", "WorkerCrash"),
        ("def solve(x):\n    return [0] * (10 ** 10)\n", "MemoryLimit"),
        ("def solve(x):\n    import os\n    return os.system('true')\n", "ForbiddenOperation"),
    ]
    for source, expected in proposals:
        solve.code.value = source
        error_node = _error(solve, bf.node(3))
        assert error_node.error.type == expected
        assert error_node.error.parameter == "solve" and error_node.error.lineno is not None
        error_node.backward(f"{expected}: propose code that returns x squared")
        rendered = bf.render(solve.code).text
        assert expected in rendered and "x squared" in rendered
        solve.code.zero_feedback()
    solve.code.value = "def solve(x):\n    return x * x\n"
    assert solve(bf.node(3)).value == 9


def test_graph_reaches_the_sandbox_only_through_its_protocol():
    import ast
    import pathlib

    graph_dir = pathlib.Path(bf.graph.__file__).parent
    for path in graph_dir.glob("*.py"):
        for stmt in ast.walk(ast.parse(path.read_text())):
            if isinstance(stmt, ast.ImportFrom) and stmt.level:
                shared = stmt.level == 2 and (stmt.module or "").startswith("_")  # _tokens
                assert stmt.level == 1 or shared, f"{path.name} imports from outside graph/"
    calls = []

    class Recorder:  # any object with .call is a sandbox to graph/
        def call(self, function, args, kwargs, *, source=None, name=None):
            calls.append(name)
            return function(*args, **kwargs)

    @bf.op(trainable=True)
    def triple(x: int) -> int:
        return 3 * x

    assert isinstance(Recorder(), bf.sandbox.SandboxLike)
    bf.set_default_sandbox(Recorder())
    try:
        assert triple(bf.node(2)).value == 6
    finally:
        bf.set_default_sandbox(None)
    assert calls == ["triple"]


def test_the_wire_carries_dataclasses_and_an_error_keeps_its_source_line():
    from backfeed.graph.execute import source_line
    from backfeed.sandbox import wire

    assert source_line("a\nb\n", 2) == "b"
    assert source_line("a\n", 5) is None and source_line(None, 1) is None
    with pytest.raises(CodeError) as info:
        SB.call(lambda_free_double, ("x", 1), {},
                source="def lambda_free_double(x, y):\n    return x + y\n")
    assert info.value.info.type == "TypeError"
    assert info.value.info.lineno == 2 and info.value.info.line == "    return x + y"
    request = pickle.loads(pickle.dumps(wire.Request("f", "def f(): ...", [], {}, "__main__")))
    assert request.globals == {} and request.module is None
