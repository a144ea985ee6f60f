"""The LLM judge through its real interfaces: the evolve CLI against a scripted loopback server,
and the calibration bench over the labelled set."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.evolve.judge import LABELS, RULE, load_trust, messages, template_hash
from pipeline.evolve.judge_checks import normalised
from pipeline.jsonl import read_records
from pipeline.llm.fake_server import FakeOpenAIServer
from pipeline.models import Rejection, Stage, Task
from pipeline.seeds import SEED_DIR

REPO = Path(__file__).resolve().parents[2]
LABELLED = REPO / "bench" / "data" / "judge_labelled.jsonl"


def _prompt(body: dict[str, Any]) -> str:
    return str(next(m["content"] for m in body["messages"] if m["role"] == "user"))


def _evidence(body: dict[str, Any]) -> tuple[str, list[str], list[str], str]:
    """The request, the call ids, the string argument values and the results of a judge
    prompt, read back from its text."""
    prompt = _prompt(body)
    request = re.search(r"^Request: (.*)$", prompt, re.M)
    assert request is not None
    calls_part = prompt.split("Calls, in order:", 1)[1]
    calls = re.findall(r"^(\S+): \S+ (.*)$", calls_part, re.M)
    values: list[str] = []
    for _, arguments in calls:
        try:
            parsed = json.loads(arguments)
        except ValueError:  # cut at the prompt's limit
            continue
        values += [str(v) for v in parsed.values() if isinstance(v, str | int | float)]
    results = " ".join(re.findall(r"^   returned: (.*)$", calls_part, re.M))
    return request.group(1), [call_id for call_id, _ in calls], values, results


def judge_saying(no: set[str], why: str = "checked it") -> Callable[[dict[str, Any]], str]:
    """A judge whose lists show a problem of each label in ``no`` (each one the checks in
    code confirm) and nothing else."""

    def answer(body: dict[str, Any]) -> str:
        request, ids, values, results = _evidence(body)
        opening = " ".join(request.split()[:3])
        seen = f" {normalised(request + ' ' + results)} "
        hidden = [v for v in values if f" {normalised(v)} " not in seen and normalised(v)]
        lists: dict[str, Any] = {
            "asked": [{"words": opening, "call": ids[0]}],
            "calls": [
                {"call": i, "asked_by": "none" if "mismatch" in no and i == ids[0] else opening}
                for i in ids
            ],
            "unexplained_references": [opening] if "context-dependent" in no else [],
            "odd_wording": [opening] if "unnatural-language" in no else [],
            "misused_values": [opening] if "nonsensical" in no else [],
            "open_choices": [opening] if "under-specified" in no else [],
            "unsourced_values": hidden[:1] if "ungrounded" in no else [],
            "wrong_waits": [{"call": ids[-1], "why": why}] if "wrong-dependency" in no else [],
        }
        return json.dumps(lists)

    return answer


def _calibration(path: Path, model: str, good: set[str]) -> Path:
    """A calibration file in which the labels in ``good`` clear the trust rule and the
    others do not (a judge no better than chance)."""
    labels = {
        label: {
            "positives": 10,
            "flagged": 10,
            "true_positives": 9 if label in good else 2,
            "base_rate": 0.2,
            "precision": 0.9 if label in good else 0.2,
            "recall": 0.9 if label in good else 0.2,
        }
        for label in LABELS
    }
    entry = {"template_hash": template_hash(), "coverage": 1.0, "labels": labels}
    path.write_text(json.dumps({"rule": RULE.as_dict(), "models": {model: entry}}))
    return path


def _seeds(tmp: Path) -> Path:
    """Two maths seeds: verbalise (no LLM) makes the tasks the judge is asked about."""
    lines = (SEED_DIR / "maths.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp / "seeds.jsonl"
    path.write_text("".join(lines[:2]), encoding="utf-8")
    return path


def _evolve(tmp: Path, run_id: str, url: str, calibration: Path) -> dict[str, Any]:
    argv = [
        "evolve", "--inline", "--output", str(tmp), "--run-id", run_id,
        "--seeds", str(_seeds(tmp)), "--rounds", "1", "--operators", "verbalise",
        "--judge", "--judge-calibration", str(calibration), "--no-repair",
        "--llm-base-url", url, "--llm-model", "fake-model",
    ]  # fmt: skip
    assert main(argv) == 0
    manifest = json.loads((tmp / "runs" / run_id / "manifest.json").read_text())
    return manifest["evolve"]  # type: ignore[no-any-return]


def _run(tmp: Path, run_id: str) -> tuple[list[Task], list[Rejection]]:
    run = tmp / "runs" / run_id
    evolved = [t for t in read_records(run / "evolved.jsonl", Task) if t.lineage.operator != "seed"]
    return evolved, list(read_records(run / "evolve_rejected.jsonl", Rejection))


def test_a_no_on_a_trusted_label_rejects_with_the_judges_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    calibration = _calibration(tmp_path / "calibration.json", "fake-model", {"mismatch"})
    server = FakeOpenAIServer(answer=judge_saying({"mismatch"}))
    with server as url:
        manifest = _evolve(tmp_path, "trusted", url, calibration)
    asked = [body for body in server.bodies if "Calls, in order:" in _prompt(body)]
    assert asked and all(body["temperature"] == 0 for body in asked), "judging is not sampled"
    evolved, rejected = _run(tmp_path, "trusted")
    judged = [r for r in rejected if r.stage is Stage.JUDGE]
    assert evolved == [] and judged, "every judged task is rejected"
    for rejection in judged:
        assert rejection.code.value == "judge.mismatch"
        assert "is asked for by no words of the request" in rejection.message
        output = rejection.evidence.output
        assert isinstance(output, dict) and output["label"] == "mismatch"
        assert output["answers"]["nonsensical"]["answer"] == "yes"  # type: ignore[index]
    record = manifest["judge"]
    assert record["trusted_labels"] == ["mismatch"]
    assert record["rejected"] == record["judged"] == len(judged)
    assert record["not_judged"] == 0
    assert manifest["counts"]["rejected_by_code"]["judge.mismatch"] == len(judged)


def test_a_no_on_an_untrusted_label_rejects_nothing_and_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    calibration = _calibration(tmp_path / "calibration.json", "fake-model", {"mismatch"})
    with FakeOpenAIServer(answer=judge_saying({"unnatural-language", "context-dependent"})) as url:
        manifest = _evolve(tmp_path, "untrusted", url, calibration)
    evolved, rejected = _run(tmp_path, "untrusted")
    assert evolved and not [r for r in rejected if r.stage is Stage.JUDGE]
    record = manifest["judge"]
    assert record["judged"] == len(evolved) and record["rejected"] == 0
    assert record["untrusted_no"] == {
        "context-dependent": len(evolved),
        "unnatural-language": len(evolved),
    }


def test_lists_the_checks_cannot_confirm_find_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A judge that fills every list with things not in the task (quotes the request does
    not have, a value it states, call ids the task lacks) rejects nothing, though every label
    is trusted: only what is really there counts."""
    monkeypatch.chdir(tmp_path)
    calibration = _calibration(tmp_path / "calibration.json", "fake-model", set(LABELS))

    def inventing(body: dict[str, Any]) -> str:
        request, ids, _, _ = _evidence(body)
        stated = request.split()[-1]
        invented = "the purple elephant of Tuesday"
        return json.dumps(
            {
                "asked": [{"words": invented, "call": "none"}],
                "calls": [{"call": "s99", "asked_by": "none"}]
                + [{"call": i, "asked_by": invented} for i in ids],
                "unexplained_references": [invented],
                "odd_wording": [invented],
                "misused_values": [invented],
                "open_choices": [invented],
                "unsourced_values": [stated, invented],
                "wrong_waits": [{"call": "s99", "why": "waits"}, {"call": ids[0], "why": "x"}],
            }
        )

    with FakeOpenAIServer(answer=inventing) as url:
        manifest = _evolve(tmp_path, "inventing", url, calibration)
    evolved, rejected = _run(tmp_path, "inventing")
    record = manifest["judge"]
    assert evolved and record["judged"] == len(evolved)
    assert record["rejected"] == 0 and record["untrusted_no"] == {}
    assert not [r for r in rejected if r.stage is Stage.JUDGE]


def test_a_judge_calibrated_for_another_model_trusts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    calibration = _calibration(tmp_path / "calibration.json", "other-model", set(LABELS))
    with FakeOpenAIServer(answer=judge_saying(set(LABELS))) as url:
        manifest = _evolve(tmp_path, "other", url, calibration)
    evolved, _ = _run(tmp_path, "other")
    assert evolved and manifest["judge"]["trusted_labels"] == []
    assert "no calibration for model 'fake-model'" in manifest["judge"]["trust_source"]


def test_an_unparseable_judge_reply_is_not_judged_never_agreed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    calibration = _calibration(tmp_path / "calibration.json", "fake-model", set(LABELS))
    with FakeOpenAIServer(answer=lambda body: "I cannot judge this task.") as url:
        manifest = _evolve(tmp_path, "refused", url, calibration)
    evolved, rejected = _run(tmp_path, "refused")
    record = manifest["judge"]
    assert evolved, "a task the judge could not rate stays accepted (validation passed)"
    assert record["judged"] == 0 and record["rejected"] == 0
    assert record["not_judged"] == len(evolved)
    assert sorted(record["not_judged_ids"]) == sorted(t.id for t in evolved)
    assert not [r for r in rejected if r.stage is Stage.JUDGE]


def test_a_changed_judge_prompt_needs_a_new_calibration(tmp_path: Path) -> None:
    path = _calibration(tmp_path / "calibration.json", "m", {"mismatch"})
    assert load_trust(path, "m").labels == {"mismatch"}
    data = json.loads(path.read_text())
    data["models"]["m"]["template_hash"] = "0" * 16
    path.write_text(json.dumps(data))
    trust = load_trust(path, "m")
    assert trust.labels == frozenset() and "recalibrate" in trust.source


# --- the calibration bench -----------------------------------------------------------------


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "judge_calibration", REPO / "bench" / "judge_calibration.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _truth() -> dict[str, set[str]]:
    """The labels of each labelled task, by the judge prompt about it (two tasks of the set
    share a request and differ in their dependencies)."""
    truth: dict[str, set[str]] = {}
    for line in LABELLED.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        truth[messages(Task.model_validate(record["task"]))[1]["content"]] = set(record["labels"])
    return truth


def test_labelled_set_has_valid_and_invalid_tasks_of_every_label() -> None:
    bench = _bench()
    items = bench.load_set(LABELLED)
    assert len(items) >= 40
    valid = [labels for _, labels in items if not labels]
    assert len(valid) >= 10 and len(items) - len(valid) >= 10
    for label in LABELS:
        assert sum(label in labels for _, labels in items) >= 3, label


def test_calibration_measures_the_judge_and_derives_the_trusted_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A judge that answers from the truth scores 1.0 where a label occurs; one that lists a
    problem of every kind scores the base rate (the checks confirm a hidden value or a wrong
    wait only where the task has one) and is trusted on nothing."""
    bench = _bench()
    truth = _truth()

    def oracle(body: dict[str, Any]) -> str:
        return judge_saying(truth[_prompt(body)])(body)

    out = tmp_path / "calibration.json"
    argv = ["--set", str(LABELLED), "--out", str(out), "--cache", str(tmp_path / "c.sqlite")]
    with FakeOpenAIServer(answer=oracle) as url:
        assert bench.main(["--base-url", url, "--model", "oracle", *argv]) == 0
    with FakeOpenAIServer(answer=judge_saying(set(LABELS))) as url:
        assert bench.main(["--base-url", url, "--model", "naysayer", *argv]) == 0
    printed = capsys.readouterr().out
    assert "| mismatch |" in printed and "base rate" in printed
    data = json.loads(out.read_text())
    oracle_entry, naysayer = data["models"]["oracle"], data["models"]["naysayer"]
    assert oracle_entry["coverage"] == 1.0
    for label in LABELS:
        stats = oracle_entry["labels"][label]
        assert stats["precision"] == 1.0
        # a value can be confirmed hidden only where a call passes one nothing shows; a read
        # that called a task ungrounded for a value taken from a result is beyond the check
        assert stats["recall"] == 1.0 or (label == "ungrounded" and stats["recall"] >= 0.8)
        if label not in {"ungrounded", "wrong-dependency"}:  # confirmed only where possible
            assert naysayer["labels"][label]["precision"] == stats["base_rate"]
    assert load_trust(out, "oracle").labels == set(LABELS)
    assert load_trust(out, "naysayer").labels == frozenset()


def test_calibration_refuses_a_bad_set_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _bench()
    bad = tmp_path / "set.jsonl"
    line = json.loads(LABELLED.read_text(encoding="utf-8").splitlines()[0])
    line["labels"] = ["rude"]
    bad.write_text(json.dumps(line) + "\n")
    argv = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--set", str(bad)]
    assert bench.main([*argv, "--out", str(tmp_path / "c.json")]) == 2
    assert "unknown label(s) rude" in capsys.readouterr().err


def test_rescore_checks_stored_answers_again_without_asking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lists a judge copied out are kept with the prompt they answered: ``--rescore``
    measures them again (after a change to the checks) with no endpoint, and refuses answers
    to another prompt."""
    bench = _bench()
    truth = _truth()
    verdicts, out = tmp_path / "verdicts.jsonl", tmp_path / "calibration.json"
    argv = ["--set", str(LABELLED), "--out", str(out), "--verdicts", str(verdicts)]
    with FakeOpenAIServer(answer=lambda body: judge_saying(truth[_prompt(body)])(body)) as url:
        cache = ["--cache", str(tmp_path / "c.sqlite")]
        assert bench.main(["--base-url", url, "--model", "oracle", *argv, *cache]) == 0
    asked = json.loads(out.read_text())["models"]["oracle"]
    rescored = tmp_path / "rescored.json"
    again = ["--set", str(LABELLED), "--out", str(rescored), "--verdicts", str(tmp_path / "v2")]
    assert bench.main(["--model", "oracle", "--rescore", str(verdicts), *again]) == 0
    entry = json.loads(rescored.read_text())["models"]["oracle"]
    assert entry["labels"] == asked["labels"] and entry["rescored_from"] == str(verdicts)
    assert entry["usage"] == {} or not any(entry["usage"].values())
    records = [json.loads(line) for line in verdicts.read_text().splitlines()]
    records[0]["prompt_hash"] = "0" * 16
    verdicts.write_text("".join(json.dumps(r) + "\n" for r in records))
    capsys.readouterr()
    assert bench.main(["--model", "oracle", "--rescore", str(verdicts), *again]) == 2
    assert "judge again" in capsys.readouterr().err
    assert bench.main(["--model", "oracle", *again]) == 2  # neither an endpoint nor answers
