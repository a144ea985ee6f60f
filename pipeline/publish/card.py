"""The dataset card (``README.md``): Hub metadata in YAML front matter, then a readable body.

The card is a pure function of the published data and the run manifest (no build time, no host
name), so publishing the same run twice gives the same bytes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from pipeline.manifest import Manifest
from pipeline.publish.counts import ReleaseCounts
from pipeline.publish.review import Dropped
from pipeline.publish.rows import SCHEMAS
from pipeline.splits import Split

PRETTY_NAME = "AsyncTool Forge"
TAGS = ["tool-calling", "function-calling", "agents", "asynchronous", "synthetic", "benchmark"]
CONFIG_ORDER = ("multi", "single", "rejected")
#: the part of the card that names where the release lives; ``asynctool push`` rewrites it
WHERE_START = (
    "<!-- asynctool:where (rewritten by asynctool push for the repository it pushes to) -->"
)
WHERE_END = "<!-- asynctool:where-end -->"

_SIZE_STEPS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)


class CardError(ValueError):
    """A card this version of the project did not write (so it cannot be retargeted)."""


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
    counts: ReleaseCounts
    manifest: Manifest
    run_id: str = "<run_id>"
    single: Counter[tuple[str, str]] = field(default_factory=Counter)  # (split, category)
    operators: Counter[str] = field(default_factory=Counter)
    roots: Counter[str] = field(default_factory=Counter)  # split -> seed ancestors
    multi: Counter[tuple[str, str]] = field(default_factory=Counter)  # (split, composition)
    tasks_per_instance: Counter[int] = field(default_factory=Counter)
    latency_profiles: Counter[str] = field(default_factory=Counter)
    context_profiles: Counter[str] = field(default_factory=Counter)  # standard | long

    def rows(self, config: str) -> int:
        return sum(item.rows for item in self.files if item.config == config)


@dataclass(frozen=True)
class Where:
    """Where a reader finds this release: a Hub repository at a tag, or the local folder."""

    repo_id: str | None
    tag: str
    configs: dict[str, list[str]]  # config -> its splits, as the front matter lists them
    local_folder: str  # shown while no repository is named

    @property
    def default_config(self) -> str:
        return "multi" if "multi" in self.configs else "single"


def size_category(rows: int) -> str:
    for limit, name in _SIZE_STEPS:
        if rows < limit:
            return name
    return "n>10M"


def default_config(info: CardInfo) -> str:
    return "multi" if info.rows("multi") else "single"  # as Where.default_config reads it back


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


def _dropped_list(items: list[Dropped], what: str) -> str:
    if not items:
        return ""
    return "\n".join(f"- {what} `{item.id}`: {item.reason}" for item in items) + "\n"


def _columns_section() -> str:
    parts = []
    for config in ("single", "multi", "rejected"):
        rows = [
            [f"`{name}`", column.kind.replace("_", " "), column.doc]
            for name, column in SCHEMAS[config].items()
        ]
        parts.append(f"`{config}`:\n\n" + _table(["column", "type", "meaning"], rows))
    return "\n\n".join(parts)


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

{_counts(info.latency_profiles, "profile")}

Context profiles (`long`: the environments run BFCL's long-context mode, with far larger
states and results):

{_counts(info.context_profiles, "context")}"""


def _ledger(info: CardInfo) -> str:
    """Every count from the run's files to the published rows, each drop with its reason."""
    counts = info.counts
    review = counts.review
    composed = sum(counts.instances_composed.values())
    rows = [
        ["validated tasks (`evolved.jsonl`)", counts.tasks_validated],
        [
            "+ rejected candidates a reviewer accepted that still replay",
            len(review.overrides_published),
        ],
        ["- accepted tasks a reviewer rejected", len(review.rejected_tasks)],
        ["**= rows of `single`**", counts.published("single")],
        ["composed instances (`instances.jsonl`)", composed],
        ["- instances holding a task a reviewer rejected", len(review.instances_dropped)],
        ["**= rows of `multi`**", counts.published("multi")],
        ["validator rejections (`evolve_rejected.jsonl`)", counts.validator_total],
        ["+ accepted tasks a reviewer rejected (`review.rejected`)", counts.review_rejections],
        ["**= rows of `rejected`**", counts.published("rejected")],
    ]
    notes = _dropped_list(review.overrides_dropped, "not published: override of")
    notes += _dropped_list(review.rejected_tasks, "removed: task")
    notes += _dropped_list(review.instances_dropped, "removed: instance")
    notes += "".join(
        f"- ignored: a `reject` of `{sample}`, which is no accepted task\n"
        for sample in review.rejected_unknown
    )
    if counts.task_repeats:
        notes += f"- {counts.task_repeats} repeated lines of `evolved.jsonl` were kept once\n"
    if counts.disagreements:
        notes += (
            "\nThe run manifest below records what each stage counted when it ran; where it "
            "disagrees with the files, the files (and this card) are right:\n\n"
            + "".join(f"- {item}\n" for item in counts.disagreements)
        )
    table = _table(["", "count"], rows)
    return table + ("\n\n" + notes.rstrip("\n") if notes else "")


def _reviews_section(info: CardInfo) -> str:
    review = info.counts.review
    if not review.decisions:
        return "No human review decisions were recorded for this run."
    published = len(review.overrides_published)
    dropped = len(review.overrides_dropped)
    return (
        f"{review.decisions} review decisions on {review.samples} samples. Only the latest "
        f"decision on a sample counts ({review.superseded} superseded by a later decision on "
        "the same sample). Latest decisions:\n\n"
        + _counts(review.latest, "decision")
        + f"\n\n{published} overrides (`override_accept`) were published in `single`"
        + (f", {dropped} could not be (listed above)" if dropped else "")
        + "; a `reject` of an accepted task removes it and every instance holding it, and "
        "adds it to `rejected` as `review.rejected`. The `review` column of `rejected` holds "
        "each sample's latest decision."
    )


#: what ``asynctool eval`` reports, as the card explains it
METRICS = (
    ("`task_success`", "share of instances whose every task succeeded"),
    (
        "`subtask_success`",
        "share of tasks finished with the gold final state and every requested output delivered",
    ),
    (
        "`name_f1`, `argument_f1`",
        "F1 of the called tool names, and of the calls with their arguments, against the gold "
        "calls, per task, in any order that respects the dependencies",
    ),
    (
        "`makespan`, `optimal_makespan`",
        "mean simulated seconds until the last task was finished, and the best possible",
    ),
    (
        "`efficiency`",
        "optimal over actual makespan on solved instances (1.0 is the best schedule), "
        "0 on unsolved ones",
    ),
    (
        "`overlap`, `same_task_streak`",
        "share of the time with calls in flight spent working, and the mean run of consecutive "
        "calls for one task",
    ),
    (
        "`label_*`",
        "episodes showing a failure: `dependency_violation`, `task_neglect`, `tool_confusion`, "
        "`ungrounded_argument`",
    ),
)


def where_block(where: Where) -> str:
    """Loading and evaluation examples for the release's repository and tag (or local folder)."""
    default = where.default_config
    if where.repo_id is None:
        source, pin, cli_pin = where.local_folder, "", ""
        intro = (
            "This card was built for a local folder; `asynctool push --repo user/name` rewrites "
            "this part for the repository it pushes to. From the folder `asynctool publish` "
            "wrote:"
        )
    else:
        source, pin, cli_pin = (
            where.repo_id,
            f', revision="{where.tag}"',
            f" --revision {where.tag}",
        )
        intro = (
            f"This release is the tag `{where.tag}` of the dataset repository `{where.repo_id}`, "
            "so `revision=` pins exactly the data described by this card:"
        )
    examples = "\n".join(
        f'{config} = load_dataset("{source}", "{config}", split="{splits[-1]}"{pin})'
        for config, splits in where.configs.items()
    )
    return f"""{WHERE_START}
## Loading

{intro}

```python
from datasets import load_dataset

{examples}
```

Without a configuration name, `load_dataset` opens `{default}`. Nested values (states, calls,
lineage, latencies, bounds, evidence, candidate tasks) are JSON text, so that column types stay
the same across versions: decode them with `json.loads`, or with the project's
`pipeline.publish.rows.row_to_task` / `row_to_instance` / `row_to_rejection`, which rebuild the
exact pydantic records.

## Evaluating an agent

The project's harness (`asynctool eval`) runs an agent on the `multi` instances of a split in a
simulator on a virtual clock: each call is acknowledged at once and its result is delivered
after the tool's latency, so the agent can keep working on the other tasks meanwhile.

```sh
asynctool eval --dataset {source}{cli_pin} --split test --mode clock \\
    --agent openai --llm-base-url http://127.0.0.1:8181/v1 --llm-model MODEL
```

`--agent oracle-async` (the gold calls on the optimal schedule) and `--agent oracle-sync` (the
gold calls one at a time) are the reference points. `--mode clock` uses each instance's
per-tool latencies in seconds; `--mode rounds` makes every call take one turn (the AsyncTool
paper's setting); `--mode sync` has no latency. Metrics (in `summary.md` and `summary.csv`):

{_table(["metric", "meaning"], [list(item) for item in METRICS])}
{WHERE_END}"""


def _sources_section(info: CardInfo) -> str:
    return f"""## Sources and licence

This dataset is released under **{info.license}**. Its tasks come from two sources, named in
each task's `lineage.source` and `operator`:

- **BFCL multi-turn** (operator `import`): tasks imported from the Berkeley Function Calling
  Leaderboard's multi-turn data (Gorilla project, `github.com/ShishirPatil/gorilla`), licensed
  **Apache-2.0**; the environments reproduce the public API of its simulated classes.
- **Project seeds** (operator `seed`): tasks written for this project in the twelve tool
  categories and the design of the AsyncTool paper (arXiv 2605.27995; the paper is CC BY 4.0
  on OpenReview). No data released with the paper is included.

Everything else (operators `rename`, `extend`, `verbalise`, and the LLM operators when a model
was configured, recorded in `lineage.model`) was derived from these by the pipeline."""


CITATION = """## Citation

If you use this dataset, please cite the work it builds on:

```bibtex
@misc{asynctool2026,
  title         = {{AsyncTool}: Evaluating the Asynchronous Function Calling Capability under
                   Multi-Task Scenarios},
  year          = {2026},
  eprint        = {2605.27995},
  archiveprefix = {arXiv},
  note          = {An earlier version was submitted to ICLR 2026}
}

@inproceedings{patil2025bfcl,
  title     = {The {Berkeley} Function Calling Leaderboard ({BFCL}): From Tool Use to Agentic
               Evaluation of Large Language Models},
  author    = {Patil, Shishir G. and Mao, Huanzhi and Yan, Fanjia and Ji, Charlie Cheng-Jie
               and Suresh, Vishnu and Stoica, Ion and Gonzalez, Joseph E.},
  booktitle = {Proceedings of the 42nd International Conference on Machine Learning},
  series    = {Proceedings of Machine Learning Research},
  volume    = {267},
  pages     = {48371--48392},
  year      = {2025}
}
```"""

LIMITATIONS = """## Limitations

- **Simulated tools.** Every tool is an in-memory simulator with a strict, seeded state; none
  touches a real file system, account or network. Scores say how an agent handles these APIs
  and their delays, not how it fares against real services.
- **Simulated latency.** Latencies are drawn per instance from named profiles around documented
  per-tool defaults; they are plausible, not measurements of any real service. Makespans are in
  simulated seconds, and the optimum assumes unlimited parallel calls and a fixed turn cost.
- **Synthetic questions.** Most tasks are derived automatically (renamed entities, extended
  chains, questions written from call chains by templates or a language model); wording can be
  stilted or repetitive, and validation checks consistency with the gold calls, not fluency.
- **English only**, and only the twelve tool categories listed under Contents.
- **One gold call set per task.** Any order that respects the dependencies is accepted, but a
  different set of calls reaching the same final state scores lower on the step metrics
  (`name_f1`, `argument_f1`) even when the sub-task succeeds.
- **Human review is partial.** Reviewers saw only the samples counted under Human review; the
  rest passed automated checks alone."""


def _body(info: CardInfo) -> str:
    tag = f"v{info.version}"
    where = Where(
        info.repo_id, tag, _config_splits(front_matter(info)), f"output/runs/{info.run_id}/dataset"
    )
    counts = info.counts
    files = _table(
        ["config", "split", "rows", "bytes", "file"],
        [[f.config, f.split, f.rows, f.size, f"`{f.path}`"] for f in info.files],
    )
    stages: Counter[str] = Counter()
    by_code = counts.by_code()
    for code, n in by_code.items():
        stages[code.split(".", 1)[0]] += n
    manifest = "```json\n" + info.manifest.text() + "```"
    return f"""# {PRETTY_NAME} (version {info.version})

Tasks for evaluating **asynchronous, multi-task tool calling**: an agent is given two or three
independent requests at once, each solvable only by a chain of calls to simulated tools whose
results arrive after a delay. A good agent starts a slow call for one request and keeps working
on the others instead of waiting; its score depends on getting every request right and on how
close its makespan comes to the best possible schedule.

Every task carries its ground truth: the initial state of each simulated environment, the calls
that solve it as a dependency graph (which call needs which earlier output), and the final state
and outputs a correct run must reach. Everything was generated and checked by code; nothing in
this dataset touched a real file system, account or network.

## Configurations

- `single`: one task per row (a question, its environments' start state, the gold calls).
- `multi`: one instance per row: 2-3 tasks to solve concurrently, the tool latencies drawn for
  this instance, and its optimal (fully overlapped) and sequential makespans.
- `rejected`: every candidate turned down, by the validator or by a reviewer, with the check
  that failed, its evidence, and the candidate's question and task where it had one, so the
  failure modes of generation can be studied and reviewed. Its one split is `full` (rejected
  candidates have no seed-based split; `split="all"` loads the same rows).

{files}

Splits without any row are left out of the configuration list (`datasets` cannot load an empty
split). Each data file's name ends in the start of its SHA-256, so a file name always stands for
the same rows.

## Columns

Types are Arrow types; "json" columns are strings holding JSON text. Times are simulated
seconds.

{_columns_section()}

{where_block(where)}

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
5. **Publishing.** Reviewers' latest decisions are applied, and the records are flattened into
   the Parquet files above, sorted by id.

Published single tasks by operator:

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

## From the run's files to the published rows

{_ledger(info)}

## Rejections

{counts.rejections} rejected candidates: {counts.validator_total} by the validator,
{counts.review_rejections} by reviewers. A candidate rejected more than once has a row per
rejection.

By stage:

{_counts(stages, "stage")}

By code:

{_counts(by_code, "code")}

## Human review

{_reviews_section(info)}

{LIMITATIONS}

{_sources_section(info)}

{CITATION}

## Integrity

`data_sha256` in the metadata above is the SHA-256 of the lines `<path> <sha256 of file>` for
every data file, sorted by path: `{info.data_sha256}`. Per file:

{_table(["file", "sha256"], [[f"`{f.path}`", f.sha256] for f in info.files])}

## Run manifest

The configuration, versions, counts and timings of the run that produced this data, with the
counts of this release under `published` (also published as `manifest.json`):

{manifest}
"""


def render_card(info: CardInfo) -> str:
    meta = yaml.safe_dump(front_matter(info), sort_keys=False, allow_unicode=True)
    return f"---\n{meta}---\n\n{_body(info)}"


def _config_splits(meta: Any) -> dict[str, list[str]]:
    """Config -> splits, from a card's front matter (as written by :func:`front_matter`)."""
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(configs, list) or not configs:
        raise CardError("the card's front matter lists no configs")
    found: dict[str, list[str]] = {}
    for config in configs:
        files = config.get("data_files") if isinstance(config, dict) else None
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
            raise CardError(f"the card's front matter has a malformed config: {config!r:.80}")
        found[str(config.get("config_name"))] = [str(f.get("split")) for f in files]
    return found


def _front_matter_of(text: str) -> Any:
    if not text.startswith("---\n") or "\n---\n" not in text[3:]:
        raise CardError("the card has no YAML front matter")
    try:
        return yaml.safe_load(text[4 : text.index("\n---\n", 3)])
    except yaml.YAMLError as error:
        raise CardError(f"the card's front matter is not YAML: {error}") from None


def retarget_card(text: str, repo_id: str, tag: str) -> str:
    """The card with its loading and evaluation examples naming ``repo_id`` at ``tag``."""
    if text.count(WHERE_START) != 1 or text.count(WHERE_END) != 1:
        raise CardError("the card has no loading section to rewrite (it predates this version)")
    start = text.index(WHERE_START)
    end = text.index(WHERE_END) + len(WHERE_END)
    block = where_block(Where(repo_id, tag, _config_splits(_front_matter_of(text)), ""))
    return text[:start] + block + text[end:]
