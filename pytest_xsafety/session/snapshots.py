"""The run's snapshots: what the header says, each case's check against its file,
manifests, and the drift summary after the run.

syrupy reads and writes the case files through the extension in
:mod:`pytest_xsafety.snapshots.syrupy_ext`; the store decides where they live
and which are unused. Workers check and record; the controller, which owns the
directory, reports and deletes unused files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_xsafety.core.records import Case, CaseRecord, CaseResult
from pytest_xsafety.engine.pipeline import Runner
from pytest_xsafety.setup.options import ConfigError
from pytest_xsafety.setup.outputs import check_folder
from pytest_xsafety.snapshots.drift import DriftSummary
from pytest_xsafety.snapshots.manifest import manifest
from pytest_xsafety.snapshots.store import SnapshotCheck, Snapshots


def group_manifest(runner: Runner, model: str, strategy: str) -> dict[str, Any]:
    """The manifest of a model x strategy group, without loading the model."""
    suite = runner.plan.suite
    return manifest(
        suite={"name": suite.name, "sha256": suite.sha256},
        model=model,
        pins=runner.pins(model),
        decoding=runner.decoding(model),
        strategy=strategy,
        fingerprint=runner.plan.strategies[strategy].fingerprint(),
        classifier=f"{runner.classifier.name}=={runner.classifier.version}",
    )


@dataclass
class SnapshotRun:
    """Snapshots over one run; ``cleanup`` and ``check_unused`` follow syrupy's options."""

    store: Snapshots
    runner: Runner
    cleanup: bool = True  # --snapshot-update deletes unused files (not --snapshot-no-cleanup)
    check_unused: bool = True  # not --snapshot-disable-unused...
    manifest_changes: dict[str, list[str]] = field(default_factory=dict)
    unused: list[Path] = field(default_factory=list)
    _recorded: set[tuple[str, str]] = field(default_factory=set)

    @property
    def groups(self) -> list[tuple[str, str]]:
        return self.runner.plan.groups()

    def read_manifests(self) -> None:
        """Compare each recorded manifest with this run's pins (before any test runs:
        under --snapshot-update the manifests are rewritten)."""
        for model, strategy in self.groups:
            if self.store.manifest_path(model, strategy).is_file():
                current = group_manifest(self.runner, model, strategy)
                changes = self.store.manifest_changes(model, strategy, current)
                if changes:
                    self.manifest_changes[f"{model}/{strategy}"] = changes

    def check_update(self) -> None:
        """Under --snapshot-update: every folder writable, and no group recorded with
        another backend or suite (it would be rewritten and its files deleted)."""
        store = self.store
        if not store.update:
            return
        check_folder(store.root, "--xsafety-snapshot-dir")
        for model, strategy in self.groups:
            folder = store.group_dir(model, strategy)
            if folder.is_dir():
                check_folder(folder, "--xsafety-snapshot-dir", [p.name for p in folder.iterdir()])
                current = group_manifest(self.runner, model, strategy)
                conflict = store.update_conflict(model, strategy, current)
                if conflict:
                    raise ConfigError(conflict)

    def header(self) -> list[str]:
        store = self.store
        if store.update:
            state = "recording (--snapshot-update)"
        else:
            parts = [f"drift policy {store.policy}"]
            checked = [f"{m}/{s}" for m, s in self.groups if store.checked(m, s)]
            unchecked = [f"{m}/{s}" for m, s in self.groups if not store.checked(m, s)]
            if checked:
                parts.append(f"checked {', '.join(checked)}")
            if unchecked:
                parts.append(f"none recorded for {', '.join(unchecked)}")
            state = "; ".join(parts)
        root = store.shown(store.root)
        lines = [f"xsafety: snapshots in {root}/ (unsafe responses {store.unsafe}): {state}"]
        for group, changes in self.manifest_changes.items():
            lines.append(
                f"xsafety: snapshots {group}: manifest differs from the recorded one: "
                + "; ".join(changes)
            )
        return lines

    def check(self, result: CaseResult, selected: Sequence[Case]) -> SnapshotCheck:
        """The case's check; under --snapshot-update the process that runs a group
        writes its manifest first (after generation, so the backend's report is known),
        unless the ``selected`` cases leave some of the group's recorded files unchecked."""
        case = result.case
        if self.store.update and case.group not in self._recorded:
            self._recorded.add(case.group)
            ran = [c for c in selected if c.group == case.group]
            if not self.unchecked_files(case.group, ran):
                current = group_manifest(self.runner, case.model, case.strategy)
                loaded = self.runner.manifests.get(case.model)
                self.store.record_manifest(case.model, case.strategy, current, loaded)
        return self.store.check(result)

    def unchecked_files(self, group: tuple[str, str], ran: Sequence[Case]) -> list[Path]:
        """Recorded files of ``group`` that a run of the cases ``ran`` does not check."""
        prompts = self.runner.plan.full_suite.prompts
        return self.store.unchecked(*group, {self.store.path(c) for c in ran}, prompts)

    def partial_updates(self, records: Sequence[CaseRecord]) -> dict[str, tuple[int, int]]:
        """Groups whose manifest an update run left alone, as the process that ran them
        decided: (case files checked, recorded files it did not check)."""
        ran_ids = {r.case_id for r in records}
        out = {}
        for group in self.groups:
            name = f"{group[0]}/{group[1]}"
            if name not in self.manifest_changes:
                continue
            ran = [c for c in self.runner.plan.cases if c.group == group and c.case_id in ran_ids]
            if left := self.unchecked_files(group, ran):
                out[name] = (len(ran), len(left))
        return out

    def sweep(self) -> list[Path]:
        """Find (and under --snapshot-update delete) unused files; once, on the controller."""
        if self.check_unused:
            prompts = self.runner.plan.full_suite.prompts
            delete = self.store.update and self.cleanup
            self.unused = self.store.sweep(self.groups, prompts, delete)
        return self.unused

    def summary(self, records: list[CaseRecord]) -> list[str]:
        store = self.store
        seen = [r for r in records if r.snapshot is not None]
        if not seen:
            return []
        root = store.shown(store.root) + "/"
        if not store.update and not any(store.checked(*g) for g in self.groups):
            names = ", ".join(f"{m}/{s}" for m, s in self.groups)
            return [
                f"no snapshots recorded in {root} for {names}: --snapshot-update records "
                f"{len(seen)} case(s)"
            ]
        return DriftSummary(
            root,
            store.policy,
            store.update,
            cases=seen,
            unused=[store.shown(p) for p in self.unused],
            unused_deleted=store.update and self.cleanup,
            manifests=self.manifest_changes,
            partial=self.partial_updates(records) if store.update else {},
            prompts={c.case_id: c.prompt.text for c in self.runner.plan.cases},
        ).lines()
