"""Any OpenAI-compatible chat-completions endpoint: a vLLM or TGI server, a hosted API.

Settings come from the model entry's ``options``: ``base_url``, ``model`` (else
``hub_id``), ``api_key_env`` (the *name* of the environment variable holding the
key, default ``OPENAI_API_KEY``; empty for an endpoint without a key),
``concurrency`` (requests in flight, default 8), ``timeout`` (seconds per request,
default 60), ``max_retries`` (default 5), ``backoff`` (first retry delay in
seconds, doubled each time, default 1) and ``seed``. Decoding is pinned:
temperature 0, top_p 1, one choice, ``max_tokens`` = the run's max new tokens.

429s, 5xx responses, timeouts and dropped connections are retried with
exponential backoff (a ``Retry-After`` header is honoured, up to 60 s); other
errors fail at once. The key never appears in ``describe()``, logs or errors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pytest_xsafety.core.records import Conversation, Generation
from pytest_xsafety.engine.backends.base import BackendError, BackendUnavailable, require
from pytest_xsafety.setup.models import ModelSpec, public_url

DEFAULTS = {"api_key_env": "OPENAI_API_KEY", "concurrency": "8", "timeout": "60",
            "max_retries": "5", "backoff": "1"}  # fmt: skip
MAX_DELAY = 60.0
# Sent with every request; recorded by describe().
PINNED = {"temperature": 0, "top_p": 1, "n": 1}


def _require() -> Any:
    return require("openai", "openai", extra="openai")[0]


class _Retry(Exception):
    """A failure worth another attempt; ``delay`` is the server's Retry-After, if any."""

    def __init__(self, what: str, delay: float = 0.0, unreachable: bool = False) -> None:
        super().__init__(what)
        self.what = what
        self.delay = delay
        self.unreachable = unreachable  # no connection at all, not a slow or busy server


class OpenAIBackend:
    def __init__(self, spec: ModelSpec) -> None:
        self.openai = _require()
        opts = {**DEFAULTS, **spec.options}
        self.spec = spec
        self.endpoint = public_url(opts["base_url"]).rstrip("/") + "/chat/completions"
        self.model = spec.served_model
        env = opts["api_key_env"]
        key = os.environ.get(env, "") if env else "none"
        if not key:
            raise BackendError(
                f"model {spec.name!r}: the API key for {public_url(opts['base_url'])} is read "
                f"from the environment variable {env}, which is not set. Export it, or set "
                f'api_key_env = "" under [tool.xsafety.models.{spec.name}.options] for an '
                "endpoint that needs no key"
            )
        self._secret = key if env else ""
        self.timeout = float(opts["timeout"])
        self.max_retries = int(opts["max_retries"])
        self.backoff = float(opts["backoff"])
        self.seed = int(opts["seed"]) if "seed" in opts else None
        # The client's own retries are off: ours count, back off and report uniformly.
        self.client = self.openai.OpenAI(
            api_key=key, base_url=opts["base_url"], timeout=self.timeout, max_retries=0
        )
        self.pool = ThreadPoolExecutor(int(opts["concurrency"]), "xsafety-openai")
        self._lock = threading.Lock()
        self.fingerprints: set[str] = set()
        self._describe = {
            "backend": "openai",
            "base_url": public_url(opts["base_url"]),
            "model": self.model,
            **{k: str(v) for k, v in PINNED.items()},
            "seed": "none" if self.seed is None else str(self.seed),
            "openai": str(self.openai.__version__),
        }

    def describe(self) -> Mapping[str, str]:
        """Settings, plus the ``system_fingerprint``(s) the server has reported so far."""
        out = dict(self._describe)
        with self._lock:
            if self.fingerprints:
                out["system_fingerprint"] = ",".join(sorted(self.fingerprints))
        return out

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _request(self, conversation: Conversation, max_new_tokens: int) -> Generation:
        openai = self.openai
        extra = {} if self.seed is None else {"seed": self.seed}
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=[m.as_dict() for m in conversation],
                max_tokens=max_new_tokens,
                **PINNED,
                **extra,
            )
        except openai.APIStatusError as exc:
            status = int(exc.status_code)
            detail = f"HTTP {status}: {self._redact(str(exc.message))[:200]}"
            if status == 429 or status >= 500:
                raise _Retry(detail, _retry_after(exc.response.headers)) from None
            hint = " (check the key's environment variable)" if status in (401, 403) else ""
            raise BackendError(
                f"model {self.spec.name!r}: {self.endpoint} answered {detail}{hint}"
            ) from None
        except openai.APITimeoutError:
            raise _Retry(f"no response within {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            reason = self._redact(str(exc.__cause__ or exc))[:200]
            raise _Retry(f"connection failed ({reason})", unreachable=True) from None
        except Exception as exc:
            # Some openai releases let the HTTP transport's own read timeout
            # (httpcore's ReadTimeout) through unmapped: it is still a timeout.
            if not type(exc).__name__.endswith("Timeout"):
                raise
            raise _Retry(f"no response within {self.timeout:g} s") from None
        if not response.choices:
            raise BackendError(f"model {self.spec.name!r}: {self.endpoint} returned no choices")
        if response.system_fingerprint:
            with self._lock:
                self.fingerprints.add(response.system_fingerprint)
        choice = response.choices[0]
        usage = response.usage
        return Generation(
            text=choice.message.content or "",
            # 0 when the server reports no usage.
            new_tokens=usage.completion_tokens if usage else 0,
            truncated=choice.finish_reason == "length",
        )

    def _with_retries(
        self, conversation: Conversation, max_new_tokens: int, stop: threading.Event
    ) -> Generation:
        for attempt in range(self.max_retries + 1):
            try:
                return self._request(conversation, max_new_tokens)
            except _Retry as exc:
                last = exc
            delay = min(max(self.backoff * 2**attempt, last.delay), MAX_DELAY)
            if attempt == self.max_retries or stop.wait(delay):
                break
        if last.unreachable:
            raise BackendUnavailable(
                f"model {self.spec.name!r}: {self.endpoint} failed {attempt + 1} time(s); "
                f"last: {last.what}. Is the server running at that address?"
            )
        raise BackendError(
            f"model {self.spec.name!r}: {self.endpoint} failed {attempt + 1} time(s); last: "
            f"{last.what}. Raise options.max_retries or options.timeout if the server is "
            "just slow"
        )

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]:
        stop = threading.Event()  # set on the first failure: the others stop retrying
        futures = [
            self.pool.submit(self._with_retries, c, max_new_tokens, stop) for c in conversations
        ]
        try:
            return [f.result() for f in futures]  # input order, whatever finished first
        except BaseException:
            stop.set()
            for f in futures:
                f.cancel()
            raise

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        return max(0.0, float(headers.get("retry-after", "0")))
    except ValueError:
        return 0.0  # an HTTP date: fall back to our own backoff
