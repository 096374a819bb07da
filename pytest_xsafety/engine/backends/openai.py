"""Any OpenAI-compatible chat-completions endpoint: a vLLM or TGI server, a hosted API.

Settings come from the model entry's ``options``: ``base_url``, ``model`` (else
``hub_id``), ``api_key_env`` (the *name* of the environment variable holding the
key, default ``OPENAI_API_KEY``; empty for an endpoint without a key),
``concurrency`` (requests in flight, default 8), ``timeout`` (seconds per request,
default 60), ``max_retries`` (default 5), ``backoff`` (first retry delay in
seconds, doubled each time, default 1) and ``seed``. Decoding is pinned:
temperature 0, top_p 1, one choice, ``max_tokens`` = the run's max new tokens.
A query in ``base_url`` (``...?token=T``) is sent with every request.

Requests are independent, so answers are handed over as they arrive
(:meth:`OpenAIBackend.stream`: cached at once, counted in progress) and a request
that fails fails alone. 408s, 429s, 5xx responses, timeouts and dropped
connections are retried with exponential backoff (a ``Retry-After`` header is
honoured, up to 60 s); other errors (400, 401...) fail at once, since asking again
would get the same answer. An answer longer than ``max_tokens`` could be (a server
that ignores it) is cut to :data:`CHARS_PER_TOKEN` characters a token and marked
truncated. ``/v1/models`` is read once at load: a model name the server does not
list is a warning. What the server says it served (the answers' ``model`` and
``system_fingerprint``) is recorded by ``describe()``.

Errors are one line; every configured secret (the key, the URL's user info and
query values) is scrubbed from them, from server bodies quoted in them too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor, as_completed
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pytest_xsafety.core.records import Conversation, Generation
from pytest_xsafety.core.secrets import MASK, remember, scrub
from pytest_xsafety.core.text import clip
from pytest_xsafety.engine.backends.base import BackendError, BackendUnavailable, require
from pytest_xsafety.setup.models import DEFAULT_KEY_ENV, ModelSpec, public_url

DEFAULTS = {"api_key_env": DEFAULT_KEY_ENV, "concurrency": "8", "timeout": "60",
            "max_retries": "5", "backoff": "1"}  # fmt: skip
MAX_DELAY = 60.0
# Sent with every request; recorded by describe().
PINNED = {"temperature": 0, "top_p": 1, "n": 1}
# The longest answer kept is max_tokens x this many characters. No tokenizer here:
# real tokens average about 4 characters; 32 leaves room for any honest answer.
CHARS_PER_TOKEN = 32
QUOTED = 400  # characters of a server's answer quoted in an error
LISTING_TIMEOUT = 10.0  # seconds for the one GET of /v1/models


def _require() -> Any:
    return require("openai", "openai", extra="openai")[0]


def _retried(status: int) -> bool:
    """Statuses worth another attempt: a timeout, a rate limit, a server error."""
    return status in (408, 429) or status >= 500


def split_url(url: str, path: str) -> tuple[str, dict[str, str], str]:
    """``base_url`` as the client needs it (no query), its query, and ``base_url/path``
    as errors show it: without user info, each query value ``***``."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    shown = public_url(url).rstrip("/") + "/" + path
    if query:
        shown += "?" + "&".join(f"{k}={MASK}" for k in query)
    return base, query, shown


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
        remember(spec.secrets(os.environ))  # also when built without a run plan
        base, query, self.endpoint = split_url(opts["base_url"], "chat/completions")
        self.model = spec.served_model
        env = opts["api_key_env"]
        key = os.environ.get(env, "") if env else "none"
        if not key:
            raise BackendError(
                f"model {spec.name!r}: the API key for {public_url(base)} is read from the "
                f"environment variable {env}, which is not set: export {env}, or set "
                f'api_key_env = "" under [tool.xsafety.models.{spec.name}.options] for an '
                "endpoint that needs no key"
            )
        self.timeout = float(opts["timeout"])
        self.max_retries = int(opts["max_retries"])
        self.backoff = float(opts["backoff"])
        self.seed = int(opts["seed"]) if "seed" in opts else None
        # The client's own retries are off: ours count, back off and report uniformly.
        self.client = self.openai.OpenAI(
            api_key=key, base_url=base, default_query=query or None, timeout=self.timeout,
            max_retries=0,
        )  # fmt: skip
        self.pool = ThreadPoolExecutor(int(opts["concurrency"]), "xsafety-openai")
        self._lock = threading.Lock()
        self.fingerprints: set[str] = set()
        self.served: set[str] = set()  # the ``model`` the answers name
        self.warnings: list[str] = []
        self._describe = {
            "backend": "openai",
            "base_url": public_url(base),
            "model": self.model,
            **{k: str(v) for k, v in PINNED.items()},
            "seed": "none" if self.seed is None else str(self.seed),
            "openai": str(self.openai.__version__),
        }
        self._check_listed(opts["base_url"])

    def describe(self) -> Mapping[str, str]:
        """Settings, plus what the server said it served so far: the answers' ``model``
        (``served_model``) and ``system_fingerprint``."""
        out = dict(self._describe)
        with self._lock:
            if self.served:
                out["served_model"] = ",".join(sorted(self.served))
            if self.fingerprints:
                out["system_fingerprint"] = ",".join(sorted(self.fingerprints))
        return out

    def _check_listed(self, url: str) -> None:
        """Read ``/v1/models`` once: a server that serves one model answers under any
        name, so a name it does not list is a warning. A server without the route (or
        not reachable yet) is not: the requests will say what is wrong."""
        try:
            client = self.client.with_options(timeout=min(self.timeout, LISTING_TIMEOUT))
            listed = sorted({str(m.id) for m in client.models.list()})
        except Exception:
            return
        if listed and self.model not in listed:
            shown = ", ".join(map(repr, listed[:5])) + (", ..." if len(listed) > 5 else "")
            self.warnings.append(
                scrub(
                    f"model {self.spec.name!r}: {split_url(url, 'models')[2]} does not list "
                    f"{self.model!r} (it lists {shown}); a server that serves one model "
                    "answers under any name: check options.model (or hub_id)"
                )
            )

    def _fail(self, what: str) -> BackendError:
        return BackendError(scrub(f"model {self.spec.name!r}: {self.endpoint} {what}"))

    def _request(self, conversation: Conversation, max_new_tokens: int) -> Generation:
        openai = self.openai
        extra = {} if self.seed is None else {"seed": self.seed}
        try:
            raw = self.client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=[m.as_dict() for m in conversation],
                max_tokens=max_new_tokens,
                **PINNED,
                **extra,
            )
        except openai.APIStatusError as exc:
            status = int(exc.status_code)
            detail = f"HTTP {status}: {_quote(_error_text(exc))}"
            if _retried(status):
                raise _Retry(detail, _retry_after(exc.response.headers)) from None
            hint = " (check the key's environment variable)" if status in (401, 403) else ""
            raise self._fail(f"answered {detail}{hint}") from None
        except openai.APITimeoutError:
            raise _Retry(f"no response within {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            reason = _quote(str(exc.__cause__ or exc))
            raise _Retry(f"connection failed ({reason})", unreachable=True) from None
        except Exception as exc:
            # Some openai releases let the HTTP transport's own read timeout
            # (httpcore's ReadTimeout) through unmapped: it is still a timeout.
            if not type(exc).__name__.endswith("Timeout"):
                raise
            raise _Retry(f"no response within {self.timeout:g} s") from None
        try:
            response = raw.parse()
        except ValueError:  # a JSON content type, not JSON
            response = None
        if not hasattr(response, "choices"):
            raise self._fail(f"answered non-JSON: {_quote(raw.http_response.text)}") from None
        if not response.choices:
            raise self._fail("returned no choices")
        return self._generation(response, max_new_tokens)

    def _generation(self, response: Any, max_new_tokens: int) -> Generation:
        """The answer, cut to what ``max_new_tokens`` allows; what the server served."""
        with self._lock:
            if response.system_fingerprint:
                self.fingerprints.add(str(response.system_fingerprint))
            if getattr(response, "model", None):
                self.served.add(str(response.model))
        choice = response.choices[0]
        usage = response.usage
        text = choice.message.content or ""
        limit = max_new_tokens * CHARS_PER_TOKEN
        cut = len(text) > limit
        if cut:
            self._warn_cut(len(text), max_new_tokens)
            text = text[:limit]
        return Generation(
            text=text,
            # 0 when the server reports no usage.
            new_tokens=usage.completion_tokens if usage else 0,
            truncated=cut or choice.finish_reason == "length",
        )

    def _warn_cut(self, chars: int, max_new_tokens: int) -> None:
        with self._lock:
            if any(w.startswith("answers cut:") for w in self.warnings):
                return  # once: the first one says what the server does
            self.warnings.append(
                f"answers cut: model {self.spec.name!r}: {self.endpoint} sent an answer of "
                f"{chars:,} characters for max_tokens {max_new_tokens}; answers are kept "
                f"up to {CHARS_PER_TOKEN} characters a token "
                f"({max_new_tokens * CHARS_PER_TOKEN:,}) and marked truncated"
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
                scrub(
                    f"model {self.spec.name!r}: {self.endpoint} failed {attempt + 1} time(s); "
                    f"last: {last.what}. Is the server running at that address?"
                )
            )
        raise self._fail(
            f"failed {attempt + 1} time(s); last: {last.what}. Raise options.max_retries or "
            "options.timeout if the server is just slow"
        )

    def stream(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> Iterator[tuple[int, Generation | Exception]]:
        """Each answer as it arrives, with its conversation's index. A request that
        fails yields its error and the others go on; once one finds the server
        unreachable (:class:`BackendUnavailable`), the others stop retrying and
        every request still unanswered yields that same error."""
        stop = threading.Event()
        futures = {
            self.pool.submit(self._with_retries, c, max_new_tokens, stop): i
            for i, c in enumerate(conversations)
        }
        down: BackendUnavailable | None = None
        try:
            for future in as_completed(futures):
                got: Generation | Exception
                try:
                    got = future.result()
                except CancelledError:
                    assert down is not None  # only cancelled once the server is down
                    got = down
                except BackendUnavailable as exc:
                    if down is None:
                        down = exc
                        stop.set()
                        for f in futures:
                            f.cancel()
                    got = down
                except Exception as exc:
                    got = exc
                yield futures[future], got
        finally:
            stop.set()  # an interrupted consumer: the requests in flight stop retrying
            for f in futures:
                f.cancel()

    def generate(
        self, conversations: Sequence[Conversation], max_new_tokens: int
    ) -> list[Generation]:
        """Every answer in input order, or the first failure raised."""
        out: dict[int, Generation] = {}
        for i, got in self.stream(conversations, max_new_tokens):
            if isinstance(got, Exception):
                raise got
            out[i] = got
        return [out[i] for i in range(len(conversations))]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()


def _error_text(exc: Any) -> str:
    """What a server's error says: its ``message`` when the body is OpenAI's JSON."""
    body = exc.body
    if isinstance(body, Mapping):
        message = body.get("message")
        return message if isinstance(message, str) and message else str(dict(body))
    return str(body) if body else str(exc.message)


def _quote(text: str) -> str:
    """A server's text in an error: secrets scrubbed first (a cut never leaves half
    of one), then one line cut at a word boundary."""
    return clip(scrub(text), QUOTED)


def _retry_after(headers: Mapping[str, str]) -> float:
    try:
        return max(0.0, float(headers.get("retry-after", "0")))
    except ValueError:
        return 0.0  # an HTTP date: fall back to our own backoff
