"""The dataset card (``README.md``): Hub metadata in YAML front matter, then a readable body.

The card is a pure function of the published data and the run manifest (no build time, no host
name), so publishing the same run twice gives the same bytes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from pipeline.splits import Split

PRETTY_NAME = "AsyncTool Forge"
PLACEHOLDER_REPO = "user/asynctool-forge"
TAGS = ["tool-calling", "function-calling", "agents", "asynchronous", "synthetic", "benchmark"]
CONFIG_ORDER = ("multi", "single", "rejected")

_SIZE_STEPS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)


@dataclass(frozen=True)
class DataFile:
    config: str
    split: str
    path: str  # relative to the dataset folder, POSIX style
    rows: int
    size: int
    sha256: str


@dataclass
class CardInfo:
    version: str
    license: str
    test_fraction: float
    repo_id: str | None
    files: list[DataFile]
    data_sha256: str
    single: Counter[tuple[str, str]] = field(default_factory=Counter)  # (split, category)
    operators: Counter[str] = field(default_factory=Counter)
    roots: Counter[str] = field(default_factory=Counter)  # split -> seed ancestors
    multi: Counter[tuple[str, str]] = field(default_factory=Counter)  # (split, composition)
    tasks_per_instance: Counter[int] = field(default_factory=Counter)
    latency_profiles: Counter[str] = field(default_factory=Counter)
    rejected_by_code: Counter[str] = field(default_factory=Counter)
    reviews: Counter[str] = field(default_factory=Counter)  # decision -> reviews
    reviewed_samples: int = 0
    manifest: dict[str, Any] | None = None

    def rows(self, config: str) -> int:
        return sum(item.rows for item in self.files if item.config == config)


def size_category(rows: int) -> str:
    for limit, name in _SIZE_STEPS:
        if rows < limit:
            return name
    return "n>10M"


def default_config(info: CardInfo) -> str:
    return "multi" if info.rows("multi") else "single"


def front_matter(info: CardInfo) -> dict[str, Any]:
    configs = []
    default = default_config(info)
    for config in CONFIG_ORDER:
        files = [item for item in info.files if item.config == config]
        if not files:
            continue  # datasets cannot load a split without rows, so empty ones are left out
        entry: dict[str, Any] = {"config_name": config}
        if config == default:
            entry["default"] = True
        entry["data_files"] = [{"split": item.split, "path": item.path} for item in files]
        configs.append(entry)
    return {
        "license": info.license,
        "pretty_name": PRETTY_NAME,
        "version": info.version,
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": TAGS,
        "size_categories": [size_category(info.rows("single") + info.rows("multi"))],
        "configs": configs,
        "data_sha256": info.data_sha256,
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _by_split(counts: Counter[tuple[str, str]], label: str) -> str:
    keys = sorted({key for _, key in counts})
    if not keys:
        return "_none_"
    splits = [split.value for split in Split]
    rows = [
        [key, *(counts[(split, key)] for split in splits), sum(counts[(s, key)] for s in splits)]
        for key in keys
    ]
    totals = [sum(counts[(split, key)] for key in keys) for split in splits]
    rows.append(["**total**", *totals, sum(totals)])
    return _table([label, *splits, "all"], rows)


def _counts(counts: Counter[Any], label: str) -> str:
    if not counts:
        return "_none_"
    return _table([label, "count"], [[key, n] for key, n in sorted(counts.items())])


def _multi_section(info: CardInfo) -> str:
    if not info.multi:
        return (
            "This run has no multi-task instances (the compose stage did not run), so there is\n"
            "no `multi` configuration."
        )
    return f"""Multi-task instances by composition:

{_by_split(info.multi, "composition")}

Tasks per instance:

{_counts(info.tasks_per_instance, "tasks")}

Latency profiles:

{_counts(info.latency_profiles, "profile")}"""


def _body(info: CardInfo) -> str:
    repo = info.repo_id or PLACEHOLDER_REPO
    tag = f"v{info.version}"
    default = default_config(info)
    files = _table(
        ["config", "split", "rows", "bytes", "file"],
        [[f.config, f.split, f.rows, f.size, f"`{f.path}`"] for f in info.files],
    )
    stages: Counter[str] = Counter()
    for code, n in info.rejected_by_code.items():
        stages[code.split(".", 1)[0]] += n
    reviews = (
        f"{sum(info.reviews.values())} review decisions on {info.reviewed_samples} samples.\n\n"
        + _counts(info.reviews, "decision")
        + "\n\n`override_accept` decisions whose task still replays are published in `single`; "
        "a spot-check `reject` removes an accepted task and every instance holding it."
        if info.reviews
        else "No human review decisions were recorded for this run."
    )
    manifest = (
        "```json\n" + json.dumps(info.manifest, indent=2, ensure_ascii=False) + "\n```"
        if info.manifest is not None
        else "_The run folder held no `manifest.json`._"
    )
    return f"""# {PRETTY_NAME} (version {info.version})

Tasks for evaluating **asynchronous, multi-task tool calling**: an agent is given two or three
independent requests at once, each solvable only by a chain of calls to simulated tools whose
results arrive after a delay. A good agent starts a slow call for one request and keeps working
on the others instead of waiting; its score depends on getting every request right and on how
close its wall-clock makespan comes to the best possible schedule.

Every task carries its ground truth: the initial state of each simulated environment, the calls
that solve it as a dependency graph (which call needs which earlier output), and the final state
and outputs a correct run must reach. Everything was generated and checked by code; nothing in
this dataset touched a real file system, account or network.

## Configurations

- `single`: one task per row (a question, its environments' start state, the gold calls).
- `multi`: one instance per row: 2-3 tasks to solve concurrently, the tool latencies drawn for
  this instance, and its optimal (fully overlapped) and sequential makespans.
- `rejected`: every candidate the validator turned down, with the check that failed and its
  evidence, so the failure modes of generation can be studied too. Its one split is `full`
  (rejected candidates have no seed-based split; `split="all"` loads the same rows).

{files}

Splits without any row are left out of the configuration list (`datasets` cannot load an empty
split).

## Loading

```python
from datasets import load_dataset

multi = load_dataset("{repo}", "multi", split="test", revision="{tag}")
single = load_dataset("{repo}", "single", split="train", revision="{tag}")
rejected = load_dataset("{repo}", "rejected", split="full", revision="{tag}")
```

Each version is a git tag of the dataset repository (`{tag}` here), so `revision=` pins exactly
the data described by this card. Without a configuration name, `load_dataset` opens `{default}`.
Nested values (states, calls, lineage, latencies, bounds, evidence) are stored as JSON text so
that column types stay the same across versions; decode them with `json.loads`, or with the
project's `pipeline.publish.rows.row_to_task` / `row_to_instance` / `row_to_rejection`, which
rebuild the exact pydantic records.

## How it was built

1. **Seeds.** Hand-written tasks per tool category and, where available, tasks imported from
   the BFCL multi-turn suite; each category is a simulated environment with a strict, seeded
   state.
2. **Evolution.** Operators derive new tasks from validated ones: programmatic ones (`rename`
   entities consistently, `extend` a chain with a call that consumes an earlier output,
   `verbalise` a call chain into a question) and, when a language model endpoint is configured,
   LLM ones (deepen, broaden, paraphrase, repair). Every task records its parents and operator.
3. **Validation**, cheapest check first: parsing; static checks (known tools, arguments that fit
   their schema, at least two calls, declared dependencies that exist, no API names in the
   question); execution on a fresh environment, twice, with identical results; dependencies
   (each declared dependency matters, each copied value is declared); grounding (every literal
   argument comes from the question, the state or an earlier output); minimality (no call can be
   dropped); optionally an LLM judge; and human review. A failed check rejects the candidate
   with a code from a closed list; nothing is dropped without a record.
4. **Composition.** Tasks of the same split are grouped into instances of 2-3, either from one
   category or across categories, with per-tool latencies drawn from a named profile using the
   instance's seed, and the optimal and sequential makespans computed exactly.
5. **Publishing.** Records are flattened into the Parquet files above, sorted by id.

Accepted single tasks by operator:

{_counts(info.operators, "operator")}

## Splits

A task's split is decided by its seed ancestor alone: follow `lineage.parents` back to the seed,
take `sha256(":" + seed_id)`, read its first 8 bytes as a fraction of 2^64, and put the task in
`test` when that fraction is below {info.test_fraction:g} (otherwise `train`). All descendants of
one seed (renamed, extended, reworded) therefore share a split, instances only combine tasks of
one split, and **train and test never share a seed ancestor**. The seed ancestor of each row is
in `single.root_id` and `multi.root_ids`.

Seed ancestors per split:

{_counts(info.roots, "split")}

## Contents

Single tasks by category:

{_by_split(info.single, "category")}

{_multi_section(info)}

## Rejections

{info.rows("rejected")} rejected candidates.

By stage:

{_counts(stages, "stage")}

By code:

{_counts(info.rejected_by_code, "code")}

## Human review

{reviews}

## Integrity

`data_sha256` in the metadata above is the SHA-256 of the lines `<path> <sha256 of file>` for
every data file, sorted by path: `{info.data_sha256}`. Per file:

{_table(["file", "sha256"], [[f"`{f.path}`", f.sha256] for f in info.files])}

## Run manifest

The configuration, versions, counts and timings of the run that produced this data (also
published as `manifest.json`):

{manifest}

## License

{info.license}
"""


def render_card(info: CardInfo) -> str:
    meta = yaml.safe_dump(front_matter(info), sort_keys=False, allow_unicode=True)
    return f"---\n{meta}---\n\n{_body(info)}"
