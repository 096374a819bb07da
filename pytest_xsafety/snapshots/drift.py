"""The drift summary the terminal shows after a run with snapshots: counts, manifest
changes, then label flips, text drift, new and unused files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pytest_xsafety.core.choices import DriftPolicy, SnapshotStatus
from pytest_xsafety.core.records import CaseRecord


@dataclass
class DriftSummary:
    """``cases``: the records that carry a snapshot status; ``prompts``: prompt text
    by case id, shown beside each label flip."""

    directory: str
    policy: DriftPolicy
    update: bool
    cases: list[CaseRecord] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # paths, relative for display
    unused_deleted: bool = False
    manifests: dict[str, list[str]] = field(default_factory=dict)  # group -> changes
    # group -> (case files checked, recorded files not checked): manifest not rewritten
    partial: dict[str, tuple[int, int]] = field(default_factory=dict)
    prompts: Mapping[str, str] = field(default_factory=dict)

    def count(self, status: SnapshotStatus) -> int:
        return sum(1 for c in self.cases if c.snapshot == status)

    def lines(self, most: int = 10) -> list[str]:
        """The drift summary: counts, manifest changes, then flips, drift, new, unused."""
        counts = (
            f"{self.count('unchanged')} unchanged, {self.count('drift')} text drift, "
            f"{self.count('flip')} label flips, {self.count('new')} new, "
            f"{len(self.unused)} unused"
        )
        mode = "recorded by --snapshot-update" if self.update else f"drift policy {self.policy}"
        out = [f"snapshots in {self.directory} ({mode}): {counts}"]
        verb = "rewritten" if self.update else "differs from the recorded one"
        for group, changes in sorted(self.manifests.items()):
            if group in self.partial:
                ran, left = self.partial[group]
                out.append(
                    f"manifest {group} not rewritten: this run re-recorded {ran} case file(s), "
                    f"{left} other(s) keep the recorded pins ({'; '.join(changes)}); run "
                    "--snapshot-update over all of them (a larger --xsafety-sample) to record them"
                )
                continue
            out.append(f"manifest {group} {verb}: {'; '.join(changes)}")
        flips = [c for c in self.cases if c.snapshot == "flip"]
        if flips:
            out.append("label flips" + (" (recorded):" if self.update else ":"))
            for c in sorted(flips, key=lambda c: c.case_id):
                out.append(self._flip_line(c))
        drift = [c for c in self.cases if c.snapshot == "drift"]
        if drift:
            tail = " (recorded)" if self.update else ", labels kept"
            out.append(f"text drift{tail}:")
            changed = [f"{c.case_id}: {', '.join(c.snapshot_changed)} changed" for c in drift]
            out += _listed(changed, most)
        new = [c.case_id for c in self.cases if c.snapshot == "new"]
        if new:
            hint = "recorded" if self.update else "not recorded; --snapshot-update records them"
            out.append(f"new ({hint}):")
            out += _listed(new, most)
        if self.unused:
            if self.unused_deleted:
                out.append("unused (deleted):")
            else:
                out.append("unused (no such prompt in the suite; --snapshot-update deletes them):")
            out += _listed(self.unused, most)
        return out

    def _flip_line(self, c: CaseRecord) -> str:
        what = c.snapshot_changed
        # A first-turn flip (interactive) compares the first answers' labels.
        first = "first-turn label" in what and c.first_label is not None
        label = c.first_label if first else c.label
        shown = label.value if label is not None else "?"
        which = f" [{what[0]}]" if what else ""
        prompt = self.prompts.get(c.case_id, "")
        return f"  {c.case_id}: {c.snapshot_old_label} -> {shown}{which}  {prompt!r}"


def _listed(items: Sequence[str], most: int) -> list[str]:
    ordered = sorted(items)
    shown = [f"  {item}" for item in ordered[:most]]
    if len(ordered) > most:
        shown.append(f"  ... and {len(ordered) - most} more")
    return shown
