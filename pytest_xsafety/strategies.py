"""Strategy stage: how a prompt is presented to a model, as chat messages.

A strategy turns the suite's prompt text into a conversation. It may depend on
the prompt text and the model entry (its default system prompt, whether its
template takes a system role), never on the prompt's suite label or type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pytest_xsafety.models import ModelSpec
from pytest_xsafety.records import ChatMessage, Conversation


class StrategyError(ValueError):
    """A strategy that is unknown or cannot apply to a model."""


@dataclass(frozen=True)
class Strategy:
    """A named way of presenting a prompt: an optional system text before it."""

    name: str
    description: str
    system: Callable[[ModelSpec], str | None] = lambda _model: None

    def check(self, model: ModelSpec) -> None:
        """Raise StrategyError when this strategy cannot apply to ``model``."""

    def render(self, prompt: str, model: ModelSpec) -> Conversation:
        system = self.system(model)
        messages = [ChatMessage("user", prompt)]
        if system:
            messages.insert(0, ChatMessage("system", system))
        return fold_system(tuple(messages), model)


def fold_system(messages: Conversation, model: ModelSpec) -> Conversation:
    """For templates without a system role, prepend system text to the first user turn."""
    if model.system_role or not messages or messages[0].role != "system":
        return messages
    system, rest = messages[0], list(messages[1:])
    for i, m in enumerate(rest):
        if m.role == "user":
            rest[i] = ChatMessage("user", f"{system.content}\n\n{m.content}")
            return tuple(rest)
    return (ChatMessage("user", system.content), *rest)


BUILTIN_STRATEGIES: dict[str, Strategy] = {
    "baseline": Strategy("baseline", "the model's chat template, no system prompt"),
}


def resolve_strategies(names: list[str], registry: Mapping[str, Strategy]) -> list[Strategy]:
    out = []
    for name in names:
        if name not in registry:
            raise StrategyError(f"unknown strategy {name!r}; known: {', '.join(sorted(registry))}")
        out.append(registry[name])
    return out
