"""``asynctool``: the command line of AsyncTool Forge."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

# Only what building the parser needs is imported here: every stage's dependencies (datasets,
# openai, pandas, the simulators) load inside its command, so `--help` answers at once.
from pipeline.cli_types import (
    non_negative_int,
    port,
    positive_int,
    positive_rate,
    positive_seconds,
    repo_id,
    run_id,
    seconds,
    share,
)
from pipeline.names import DEFAULT_BFCL, new_run_id
from pipeline.rundir import RUNS, RunDir

if TYPE_CHECKING:
    from pipeline.bfcl.importer import ImportReport
    from pipeline.flows import Runner

#: ``pipeline.bfcl.importer.Granularity`` (a test keeps the two equal)
GRANULARITIES = ("task", "turn")

OUTPUT = Path("output")
LLM_TIMEOUT_HELP = (
    "seconds to wait for one LLM answer (ASYNCTOOL_LLM_TIMEOUT; default 60, or 600 for a local"
    " endpoint, whose CPU may queue requests)"
)


def _cmd_import_bfcl(args: argparse.Namespace) -> int:
    from pipeline.bfcl.importer import Granularity, import_bfcl, multi_turn_files
    from pipeline.jsonl import write_records

    folder: Path = args.folder
    files = [folder] if folder.is_file() else multi_turn_files(folder)
    if not files:
        print(f"error: no BFCL multi-turn files with ground truth in {folder}", file=sys.stderr)
        return 2
    report = import_bfcl(files, Granularity(args.granularity))
    out: Path = args.out or OUTPUT / "imports" / f"bfcl_{args.granularity}.jsonl"
    write_records(out, report.tasks)
    _print_import_report(report)
    print(f"wrote {out}")
    return 0


def _print_import_report(report: ImportReport, examples: int = 10) -> None:
    print(report.summary())
    for source, reason in report.skipped[:examples]:
        print(f"  skipped {source}: {reason}")
    for item in report.dropped[:examples]:
        print(f"  dropped {item.source} [{item.code}]: {item.message}")
    if len(report.dropped) > examples:
        print(f"  ... and {len(report.dropped) - examples} more dropped turns")


def _cmd_replay(args: argparse.Namespace) -> int:
    from pipeline.jsonl import read_records
    from pipeline.models import Task
    from pipeline.replay import replay

    failures: Counter[str] = Counter()
    total = unreplayable = 0
    if args.file.is_dir():
        print(f"error: {args.file} is a folder; give a JSON-lines file of tasks", file=sys.stderr)
        return 2
    for task in read_records(args.file, Task):
        total += 1
        try:
            result = replay(task)
        except (KeyError, ValueError) as error:  # an unknown environment, a bad initial state
            unreplayable += 1
            print(f"{task.id}: cannot replay: {str(error).strip(chr(34))}", file=sys.stderr)
            continue
        for outcome in result.errors:
            failures[outcome.tool] += 1
            if args.verbose:
                print(f"{task.id} {outcome.call_id} {outcome.tool}: {outcome.error}")
    failed_calls = sum(failures.values())
    print(f"replayed {total - unreplayable} tasks; {failed_calls} calls raised ToolError")
    for tool, count in failures.most_common(10):
        print(f"  {tool}: {count}")
    if unreplayable:
        print(f"error: {unreplayable} of {total} tasks could not be replayed", file=sys.stderr)
        return 1
    return 0


def _cmd_schemas(args: argparse.Namespace) -> int:
    from pipeline.schemas import SCHEMA_DIR, stale_schemas, write_schemas

    if args.check:
        stale = stale_schemas()
        if stale:
            print(f"stale schemas: {', '.join(stale)} (run `make schemas`)", file=sys.stderr)
            return 1
        print("schemas are up to date")
        return 0
    for path in write_schemas():
        print(f"wrote {path.relative_to(SCHEMA_DIR.parent)}")
    return 0


def _print_full_tools() -> None:
    """Each tool as an agent meets it: description, and per parameter its JSON type, semantic
    type, default and documentation."""
    from pipeline.envs import ENVIRONMENTS
    from pipeline.tooldocs import default_in_words, json_type

    for env_name, cls in ENVIRONMENTS.items():
        print(f"## {env_name}\n")
        for name, spec in cls.tool_specs().items():
            print(f"### {env_name}.{name} ({spec.kind.value})\n\n{spec.description}\n")
            for param, schema in spec.parameters.get("properties", {}).items():
                sem = schema.get("x-semantic-type", "?")
                doc = schema.get("description", "")
                default = default_in_words(spec, param)
                print(f"- `{param}` ({json_type(schema)}; {sem}; {default}): {doc}")
            returns = ", ".join(
                f"`{path or '(value)'}`: {sem.value}" for path, sem in spec.result_types
            )
            print(f"- returns: {' '.join(filter(None, [spec.returns, returns]))}\n")


def _cmd_tools(args: argparse.Namespace) -> int:
    from pipeline.envs import ENVIRONMENTS

    if args.full:
        _print_full_tools()
        return 0
    print("| tool | kind | latency (s) | parameters (semantic type) | returns | description |")
    print("| --- | --- | --- | --- | --- | --- |")
    for env_name, cls in ENVIRONMENTS.items():
        for name, spec in cls.tool_specs().items():
            params = ", ".join(
                f"{param}: {spec.param_types[param].value if param in spec.param_types else '?'}"
                for param in spec.param_names
            )
            returns = ", ".join(
                f"{path or '(value)'}: {sem.value}" for path, sem in spec.result_types
            )
            print(
                f"| {env_name}.{name} | {spec.kind.value} | {spec.latency:g} | {params} | "
                f"{returns} | {spec.description} |"
            )
    return 0


def _cmd_dataset(args: argparse.Namespace) -> int:
    from pipeline.dataset import build_dataset
    from pipeline.llm import LLMConfig

    bfcl = None if args.no_bfcl else args.bfcl
    if bfcl is not None and not bfcl.is_dir():
        print(f"note: BFCL data not found at {bfcl}; using the project's seeds only")
    llm = LLMConfig.load()
    if not llm.configured:
        print("no LLM endpoint configured: evolving with the programmatic operators only")
    _prefect_note(args.inline)
    summary = build_dataset(args.output, args.run_id, bfcl, use_prefect=not args.inline, llm=llm)
    counts = summary.evolve.counts
    print(f"seeds: {summary.sources}")
    imports = summary.imports
    if imports is not None:
        print(
            f"BFCL turns: kept {imports.turns_kept}, merged {imports.turns_merged}, "
            f"dropped {imports.turns_dropped} {imports.dropped_by_code}"
        )
    print(f"evolve: {counts.seeds_accepted} seeds + {counts.new_accepted} evolved tasks")
    # every other count comes from the published release, so the lines below add up
    for line in summary.counts.summary_lines():
        print(line)
    print(
        f"dataset folder: {summary.folder}/ "
        f'(datasets.load_dataset("{summary.folder}", "multi", split="test"))'
    )
    print(
        f"push it: make push REPO=user/name VERSION=0.1.0 RUN={summary.run_dir.name}"
        "  (add DRY_RUN=1 to list the files first)"
    )
    return 0


def _cmd_gather(args: argparse.Namespace) -> int:
    from pipeline.dataset import gather_candidates

    bfcl = None if args.no_bfcl else args.bfcl
    gathered = gather_candidates(args.out, bfcl)
    if gathered.report is not None:
        _print_import_report(gathered.report, examples=5)
    sources = gathered.sources
    print(f"wrote {sum(sources.values())} candidates {sources} to {args.out}")
    return 0


def _prefect_note(inline: bool) -> None:
    if not inline and not os.environ.get("PREFECT_API_URL"):
        print(
            "note: PREFECT_API_URL is not set, so Prefect starts a temporary server (10-20 s); "
            "the make targets start a shared local one",
            file=sys.stderr,
        )


def _cmd_validate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pipeline.validate.runner import ShardStats, plan_shards, validate_file

    source: Path = args.input
    if not source.is_file():
        print(f"error: no such input file: {source}", file=sys.stderr)
        return 2
    run_dir = RunDir.of(args.output, args.run_id or new_run_id()).path
    total = sum(shard.lines for shard in plan_shards(source, args.shard_size))
    if total == 0:
        print(f"error: {source} holds no candidate tasks (it is empty)", file=sys.stderr)
        return 2
    bar = tqdm(total=total, desc="validate", unit="task")

    def advance(stats: ShardStats) -> None:
        bar.update(stats.accepted + stats.rejected)

    _prefect_note(args.inline)
    if args.inline:
        section = validate_file(source, run_dir, args.shard_size, on_shard=advance)
    else:
        from pipeline.flows import run_validate_flow

        section = run_validate_flow(
            source, run_dir, args.shard_size, on_shard=advance, runner=_runner(args)
        )
    bar.close()
    counts = section.counts
    print(f"accepted {counts.accepted} / rejected {counts.rejected} of {counts.input}")
    for code, count in list(counts.rejected_by_code.items())[:8]:
        print(f"  {code}: {count}")
    run = RunDir(run_dir)
    _print_written(run, run.accepted, run.rejected)
    unreadable = sum(n for code, n in counts.rejected_by_code.items() if code.startswith("parse."))
    if counts.accepted == 0 and unreadable == counts.input:
        print(f"error: no line of {source} is a task (every one failed to parse)", file=sys.stderr)
        return 1
    return 0


def _cmd_evolve(args: argparse.Namespace) -> int:
    from pipeline.evolve.engine import EvolveSettings, Operator, evolve, validated_seeds
    from pipeline.jsonl import read_records, write_records
    from pipeline.llm import LLMConfig
    from pipeline.models import Task
    from pipeline.seeds import seed_files

    try:
        operators = [Operator(name.strip()) for name in args.operators.split(",") if name.strip()]
    except ValueError:
        known = ", ".join(op.value for op in Operator)
        print(f"error: unknown operator in {args.operators!r}; known: {known}", file=sys.stderr)
        return 2
    llm = LLMConfig.load(
        overrides={
            "base_url": args.llm_base_url,
            "model": args.llm_model,
            "concurrency": args.concurrency,
            "requests_per_minute": args.rpm,
            "timeout": args.llm_timeout,
        },
        config_file=args.llm_config,
    )
    if not llm.configured:
        dropped = [op.value for op in operators if op.needs_llm]
        operators = [op for op in operators if not op.needs_llm]
        print(
            "no LLM endpoint configured (--llm-base-url/--llm-model or ASYNCTOOL_LLM_BASE_URL/"
            "ASYNCTOOL_LLM_MODEL): running the programmatic operators only "
            f"({', '.join(op.value for op in operators)})"
            + (f"; skipped {', '.join(dropped)}" if dropped else "")
        )
    else:
        print(f"LLM endpoint {llm.base_url} model {llm.model}")
    if not operators:
        print("error: no operator left to run", file=sys.stderr)
        return 2
    run_dir = RunDir.of(args.output, args.run_id or new_run_id()).path
    validated = None if args.seeds else validated_seeds(run_dir)
    if validated is not None:
        seeds, seeds_path = validated, RunDir(run_dir).accepted
        print(
            f"evolving what validation accepted in {run_dir}: {len(seeds)} tasks "
            f"({RunDir(run_dir).rejected.name} joins the run's rejections)"
        )
    else:
        seeds = [task for path in args.seeds or seed_files() for task in read_records(path, Task)]
        seeds_path = RunDir(run_dir).seeds
        if not seeds_path.exists():
            write_records(seeds_path, seeds)
    settings = EvolveSettings(
        rounds=args.rounds,
        target=args.target,
        operators=operators,
        seed=args.seed,
        shard_size=args.shard_size,
        repair=not args.no_repair,
        judge=args.judge,
        offer_steps=not args.free_steps,
        judge_calibration=None if args.judge_calibration is None else str(args.judge_calibration),
    )

    def progress(round_no: int, total: int) -> None:
        print(f"round {round_no}: {total} new tasks accepted so far", flush=True)

    if args.inline:
        section = evolve(
            seeds, run_dir, settings, llm, on_round=progress, validated=validated is not None
        )
    else:
        from pipeline.flows import run_evolve_flow

        _prefect_note(False)
        section = run_evolve_flow(
            seeds_path, run_dir, settings, llm, args.llm_config, progress, _runner(args),
            validated=validated is not None,
        )  # fmt: skip
    counts = section.counts
    print(
        f"evolved {counts.evolved} validated tasks ({counts.seeds_accepted} seeds + "
        f"{counts.new_accepted} new) in {counts.rounds} rounds; rejected {counts.rejected}"
    )
    for name, record in section.operators.items():
        print(
            f"  {name:10s} generated {record.generated:5d}  accepted {record.accepted:5d}"
            f"  rate {record.acceptance_rate}"
        )
    run = RunDir(run_dir)
    _print_written(run, run.evolved, run.evolve_rejected)
    return 0


def _print_written(run: RunDir, *files: Path) -> None:
    """Where a stage's merged files and its manifest section went."""
    names = [path.name for path in (*files, run.manifest)]
    print(f"written to {run.path}/ ({', '.join(names)})")


def _publish_run_dir(args: argparse.Namespace) -> Path:
    from pipeline.publish import newest_run

    if args.run_dir is not None:
        run_dir: Path = args.run_dir
    elif args.run_id is not None:
        run_dir = RunDir.of(args.output, args.run_id).path
    else:
        return newest_run(args.output)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run folder {run_dir}")
    return run_dir


def _cmd_compose(args: argparse.Namespace) -> int:
    from pipeline.compose import ComposeSettings
    from pipeline.compose_stage import run_compose
    from pipeline.manifest import read_manifest
    from pipeline.shards import run_inline

    run_dir = _publish_run_dir(args)
    profiles = dict(
        (name.strip(), float(weight))
        for name, _, weight in (item.partition("=") for item in args.profiles.split(","))
    )
    settings = ComposeSettings(
        count=args.count,
        seed=args.seed,
        three_task_share=args.three_share,
        cross_category_share=args.cross_share,
        profiles=profiles,
        turn_cost=args.turn_cost,
        long_context_share=args.long_context_share,
    )
    run = RunDir(run_dir)
    read_manifest(run_dir)  # an unreadable manifest is refused now, not after the work
    if not run.evolved.is_file():
        raise FileNotFoundError(f"{run.evolved} does not exist: run `asynctool evolve` first")
    if args.runner == "inline":
        section = run_compose(run_dir, settings, run_inline)
    else:
        from pipeline.flows import Runner, run_compose_flow

        _prefect_note(False)
        runner = Runner(args.runner, args.dask_address, args.dask_workers)
        section = run_compose_flow(run_dir, settings, runner)
    count = section.instances
    tasks = run.evolved.read_text(encoding="utf-8").count("\n")
    print(f"composed {count} instances {section.per_split} from {tasks} tasks")
    if count < args.count:
        print(f"note: the pool allowed only {count} of {args.count} instances")
    report = section.long_context
    if report is not None:
        print(
            f"long context: {section.per_context.get('long', 0)} instances; of "
            f"{report.tasks_checked} tasks, {report.tasks_lengthened} run long, "
            f"{report.tasks_without_mode} have no long-context mode, "
            f"{report.tasks_left_out} left out {report.left_out_by_code} "
            f"(reasons in {run.long_context_left_out})"
        )
    print(f"written to {run.instances}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pipeline.harness.evaluate import evaluate
    from pipeline.harness.sim import Mode
    from pipeline.harness.source import dataset_source, run_source
    from pipeline.llm import LLMConfig

    if args.dataset is not None:
        if args.run_id is not None or args.run_dir is not None:
            print("error: give --dataset or a run (--run/--run-dir), not both", file=sys.stderr)
            return 2
        source = dataset_source(args.dataset, args.revision, args.endpoint, args.output)
    elif args.revision is not None or args.endpoint is not None:
        print("error: --revision and --endpoint go with --dataset REPO_ID", file=sys.stderr)
        return 2
    else:
        source = run_source(_publish_run_dir(args))
    print(f"source: {source.label}")
    instances = source.load(args.split)
    for note in source.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.limit:
        instances = instances[: args.limit]
    if not instances:
        print(f"error: no instances in split {args.split!r} of {source.label}", file=sys.stderr)
        return 2
    llm = None
    if args.agent == "openai":
        llm = LLMConfig.load(
            overrides={
                "base_url": args.llm_base_url,
                "model": args.llm_model,
                "timeout": args.llm_timeout,
            },
            config_file=args.llm_config,
        )
        if not llm.configured:
            print("error: the openai agent needs --llm-base-url and --llm-model", file=sys.stderr)
            return 2
    mode = Mode(args.mode)
    out = (args.out or source.eval_dir) / f"{args.agent}-{mode.value}"
    scores = None
    if args.runner != "inline":
        from pipeline.flows import EvalOptions, Runner, run_eval_flow

        if args.limit:
            print("note: --limit applies to the inline runner only", file=sys.stderr)
        instances = source.load(args.split)
        runner = Runner(args.runner, args.dask_address, args.dask_workers)
        options = EvalOptions(args.turn_cost, args.measure_turns, resume=not args.fresh)
        scores = run_eval_flow(
            source.folder, args.split, len(instances), args.agent, mode.value, out, runner, llm,
            options,
        )  # fmt: skip
    summary = evaluate(
        instances, args.agent, mode, out, args.concurrency, args.plots,
        args.turn_cost, args.measure_turns, llm, scores,
        context={"split": args.split, "source": source.short},
        resume=not args.fresh, say=lambda line: print(line, file=sys.stderr),
    )  # fmt: skip
    print(f"{args.agent} / {mode.value} on {len(instances)} {args.split} instances:")
    for key in ("task_success", "subtask_success", "name_f1", "argument_f1", "efficiency"):
        print(f"  {key:16s} {summary[key]}")
    print(f"  {'makespan':16s} {summary['makespan']} s (optimal {summary['optimal_makespan']} s)")
    labels = {k[6:]: v for k, v in summary.items() if k.startswith("label_")}
    print(f"  failure labels   {labels or 'none'}")
    print(f"written to {out}/ (episodes/, summary.csv, summary.md, plots/)")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from pipeline.publish import publish_run
    from pipeline.splits import DEFAULT_TEST_FRACTION

    run_dir = _publish_run_dir(args)
    fraction = DEFAULT_TEST_FRACTION if args.test_fraction is None else args.test_fraction
    published = publish_run(run_dir, args.version, fraction, repo_id=args.repo)
    folder = published.folder
    print(f"wrote the dataset folder {folder}/ (version {args.version}, run {run_dir.name})")
    for line in published.counts.summary_lines():
        print(line)
    repo = args.repo or "user/name"
    print(f"push it: asynctool push --repo {repo} --version {args.version} --run-dir {run_dir}")
    if run_dir.parent.resolve() == (args.output / RUNS).resolve():
        print(f"    or: make push REPO={repo} VERSION={args.version} RUN={run_dir.name}")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub.errors import HfHubHTTPError

    from pipeline.publish import push_folder
    from pipeline.publish.push import TagError

    folder = RunDir(_publish_run_dir(args)).dataset
    try:
        result = push_folder(
            folder, args.repo, args.version, endpoint=args.endpoint, dry_run=args.dry_run
        )
    except TagError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except HfHubHTTPError as error:
        print(f"error: the Hub refused the push: {error}", file=sys.stderr)
        return 1
    except httpx2.TransportError as error:
        print(f"error: could not reach the Hub: {error}", file=sys.stderr)
        return 1
    verb = "would upload" if result.dry_run else "uploaded"
    if result.reused_commit:
        print(f"the newest commit on {args.repo} already holds this content (its tag step failed)")
        verb = "not committed again:"
    print(f"{verb} {len(result.files)} files ({result.total_bytes} bytes) from {folder}/")
    for item in result.files:
        print(f"  {item.size:>10}  {item.path}")
    if result.dry_run:
        print(f"dry run: nothing sent; a push makes one commit to {args.repo} tagged {result.tag}")
        print(f"the pushed README.md names {args.repo} at {result.tag} in its examples")
    else:
        done = "tagged the existing commit" if result.reused_commit else "committed"
        print(f"{done} {result.commit_url} and tagged it {result.tag}")
        print(f'load it: datasets.load_dataset("{args.repo}", revision="{result.tag}")')
    return 0


def _cmd_audit_serve(args: argparse.Namespace) -> int:
    from pipeline.audit.app import is_loopback, serve

    if not is_loopback(args.host):
        print(
            f"error: refusing host {args.host!r}: the audit app binds loopback only",
            file=sys.stderr,
        )
        return 2
    serve(_publish_run_dir(args), args.host, args.port)
    return 0


def _cmd_audit_export(args: argparse.Namespace) -> int:
    from pipeline.audit.export import export_report

    run_dir = _publish_run_dir(args)
    out: Path = args.out or RunDir(run_dir).audit_report
    count = export_report(run_dir, out)
    print(f"wrote {out} ({count} rejected samples, one self-contained HTML file)")
    return 0


def _runner_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runner", choices=["threads", "dask"], default="threads", help="where shard tasks run"
    )
    parser.add_argument("--dask-address", help="tcp://host:8786 of an existing Dask scheduler")
    parser.add_argument(
        "--dask-workers", type=positive_int, default=2,
        help="LocalCluster worker processes, or threads with --runner threads (default 2)",
    )  # fmt: skip


def _runner(args: argparse.Namespace) -> Runner:
    from pipeline.flows import Runner

    return Runner(args.runner, args.dask_address, args.dask_workers)


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run",
        dest="run_id",
        metavar="RUN",
        type=run_id,
        help="run under output/runs (default: newest)",
    )
    parser.add_argument("--run-dir", type=Path, help="the run folder itself")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="output root (default: output)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asynctool", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import-bfcl", help="turn BFCL multi-turn files into tasks")
    imp.add_argument("folder", type=Path, help="BFCL data folder (or one multi-turn file)")
    imp.add_argument("--granularity", choices=GRANULARITIES, default="turn")
    imp.add_argument("--out", type=Path, help="output JSON-lines file")
    imp.set_defaults(run=_cmd_import_bfcl)

    rep = sub.add_parser("replay", help="replay every task of a JSON-lines file")
    rep.add_argument("file", type=Path)
    rep.add_argument("-v", "--verbose", action="store_true", help="print every failing call")
    rep.set_defaults(run=_cmd_replay)

    sch = sub.add_parser("schemas", help="write the contracts' JSON Schemas to schemas/")
    sch.add_argument("--check", action="store_true", help="fail if schemas/ is stale")
    sch.set_defaults(run=_cmd_schemas)

    tls = sub.add_parser("tools", help="list every tool with its kind and default latency")
    tls.add_argument(
        "--full", action="store_true", help="every parameter's type, default and documentation"
    )
    tls.set_defaults(run=_cmd_tools)

    val = sub.add_parser("validate", help="validate candidate tasks (a Prefect flow)")
    val.add_argument("input", type=Path, help="JSON-lines file of candidate tasks")
    val.add_argument("--run-id", type=run_id, help="name of the run folder (default: a timestamp)")
    val.add_argument("--output", type=Path, default=OUTPUT, help="output root (default: output)")
    val.add_argument(
        "--shard-size", type=positive_int, default=1000, help="candidates per Prefect task"
    )
    val.add_argument("--inline", action="store_true", help="run in this process without Prefect")
    _runner_arguments(val)
    val.set_defaults(run=_cmd_validate)

    evo = sub.add_parser("evolve", help="grow validated tasks from seeds with operators")
    evo.add_argument(
        "--seeds", type=Path, nargs="+",
        help="seed JSONL files (default: what `asynctool validate` accepted in this run, if it"
        " validated anything, else seeds/*.jsonl)",
    )  # fmt: skip
    evo.add_argument("--rounds", type=positive_int, default=3)
    evo.add_argument(
        "--target", type=positive_int, default=1000, help="stop after this many new tasks"
    )
    evo.add_argument(
        "--operators",
        default="rename,extend,verbalise,deepen,broaden,paraphrase",
        help="comma-separated; LLM operators are skipped when no endpoint is configured",
    )
    evo.add_argument("--seed", type=int, default=0, help="random seed of the operators")
    evo.add_argument("--shard-size", type=positive_int, default=50, help="parents per Prefect task")
    evo.add_argument("--run-id", type=run_id, help="name of the run folder; rerun it to resume")
    evo.add_argument("--output", type=Path, default=OUTPUT, help="output root (default: output)")
    evo.add_argument("--llm-base-url", help="OpenAI-compatible endpoint (ASYNCTOOL_LLM_BASE_URL)")
    evo.add_argument("--llm-model", help="model name (ASYNCTOOL_LLM_MODEL)")
    evo.add_argument("--llm-config", type=Path, help="TOML file with LLM settings")
    evo.add_argument("--concurrency", type=positive_int, help="LLM requests in flight")
    evo.add_argument("--rpm", type=positive_rate, help="LLM requests per minute limit")
    evo.add_argument("--llm-timeout", type=positive_seconds, help=LLM_TIMEOUT_HELP)
    evo.add_argument("--no-repair", action="store_true", help="do not send rejects to repair")
    evo.add_argument("--judge", action="store_true", help="ask the LLM judge about accepted tasks")
    evo.add_argument(
        "--free-steps",
        action="store_true",
        help="deepen and broaden write their own new calls instead of choosing among steps"
        " checked by execution (docs/evolution.md)",
    )
    evo.add_argument(
        "--judge-calibration",
        type=Path,
        help="the judge's calibration file (default prompts/judge_calibration.json): only the"
        " labels it trusts for the model reject",
    )
    evo.add_argument("--inline", action="store_true", help="run in this process without Prefect")
    _runner_arguments(evo)
    evo.set_defaults(run=_cmd_evolve)

    dat = sub.add_parser("dataset", help="run the pipeline's stages end to end (offline)")
    dat.add_argument("--run-id", type=run_id, help="name of the run folder (default: a timestamp)")
    dat.add_argument("--output", type=Path, default=OUTPUT, help="output root (default: output)")
    dat.add_argument("--bfcl", type=Path, default=DEFAULT_BFCL, help="BFCL v4 data folder")
    dat.add_argument("--no-bfcl", action="store_true", help="use the project's seeds only")
    dat.add_argument("--inline", action="store_true", help="validate without Prefect")
    dat.set_defaults(run=_cmd_dataset)

    gat = sub.add_parser("gather", help="write seeds plus BFCL imports as one candidates file")
    gat.add_argument("--out", type=Path, default=OUTPUT / "candidates.jsonl")
    gat.add_argument("--bfcl", type=Path, default=DEFAULT_BFCL, help="BFCL v4 data folder")
    gat.add_argument("--no-bfcl", action="store_true", help="use the project's seeds only")
    gat.set_defaults(run=_cmd_gather)

    com = sub.add_parser("compose", help="compose multi-task instances from a run's tasks")
    _run_arguments(com)
    com.add_argument("--count", type=positive_int, default=1200, help="instances to compose")
    com.add_argument("--seed", type=int, default=0)
    com.add_argument("--three-share", type=share, default=0.5, help="share of 3-task instances")
    com.add_argument("--cross-share", type=share, default=0.5, help="share of cross-category")
    com.add_argument(
        "--profiles",
        default="uniform=0.4,lognormal=0.4,paper-rounds=0.2",
        help="latency profiles with weights (defaults, uniform, lognormal, paper-rounds)",
    )
    com.add_argument("--turn-cost", type=seconds, default=1.0, help="seconds per agent turn")
    com.add_argument(
        "--long-context-share",
        type=share,
        default=0.0,
        help="share of instances whose environments run in BFCL's long-context mode (0-1)",
    )
    com.add_argument(
        "--runner", choices=["inline", "threads", "dask"], default="inline",
        help="inline (default), or a Prefect flow on threads or Dask",
    )  # fmt: skip
    com.add_argument("--dask-address", help="tcp://host:8786 of an existing Dask scheduler")
    com.add_argument(
        "--dask-workers", type=positive_int, default=2,
        help="LocalCluster worker processes, or threads with --runner threads (default 2)",
    )  # fmt: skip
    com.set_defaults(run=_cmd_compose)

    evl = sub.add_parser("eval", help="run an agent over a split in the latency simulator")
    _run_arguments(evl)
    evl.add_argument(
        "--dataset", metavar="FOLDER_OR_REPO",
        help="a published dataset instead of a run: its folder, or a Hub repo id user/name",
    )  # fmt: skip
    evl.add_argument("--revision", help="with a Hub repo id: tag, branch or commit (default main)")
    evl.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
    evl.add_argument(
        "--out", type=Path,
        help="folder for the results (default: the run's eval/, or output/eval/<dataset>)",
    )  # fmt: skip
    evl.add_argument(
        "--fresh", action="store_true", help="play every episode again (default: resume)"
    )
    evl.add_argument("--agent", default="oracle-async", help="oracle-async, oracle-sync, openai")
    evl.add_argument("--mode", default="clock", choices=["sync", "rounds", "clock"])
    evl.add_argument("--split", default="test", choices=["train", "test", "all"])
    evl.add_argument("--limit", type=positive_int, help="only the first N instances")
    evl.add_argument("--concurrency", type=positive_int, default=8, help="episodes at once")
    evl.add_argument("--plots", type=non_negative_int, default=3, help="timeline plots to draw")
    evl.add_argument("--turn-cost", type=seconds, help="seconds per turn (default: the instance's)")
    evl.add_argument("--measure-turns", action="store_true", help="turn cost = model wall time")
    evl.add_argument("--llm-base-url", help="endpoint for the openai agent")
    evl.add_argument("--llm-model", help="model for the openai agent")
    evl.add_argument("--llm-config", type=Path, help="TOML file with LLM settings")
    evl.add_argument("--llm-timeout", type=positive_seconds, help=LLM_TIMEOUT_HELP)
    evl.add_argument(
        "--runner", choices=["inline", "threads", "dask"], default="inline",
        help="inline (default), or a Prefect flow on threads or Dask",
    )  # fmt: skip
    evl.add_argument("--dask-address", help="tcp://host:8786 of an existing Dask scheduler")
    evl.add_argument(
        "--dask-workers", type=positive_int, default=2,
        help="LocalCluster worker processes, or threads with --runner threads (default 2)",
    )  # fmt: skip
    evl.set_defaults(run=_cmd_eval)

    pub = sub.add_parser("publish", help="build a run's Hugging Face dataset folder")
    _run_arguments(pub)
    pub.add_argument("--version", default="0.1.0", help="dataset version x.y.z (default 0.1.0)")
    pub.add_argument("--test-fraction", type=share, help="share of seeds in test (default 0.2)")
    pub.add_argument(
        "--repo", type=repo_id, help="Hub repo user/name, shown in the card's loading example"
    )
    pub.set_defaults(run=_cmd_publish)

    psh = sub.add_parser("push", help="push a run's dataset folder as one commit plus a tag")
    psh.add_argument("--repo", required=True, type=repo_id, help="Hub dataset repo, user/name")
    psh.add_argument("--version", required=True, help="the folder's version x.y.z (tag vx.y.z)")
    _run_arguments(psh)
    psh.add_argument("--dry-run", action="store_true", help="list what would be sent; send nothing")
    psh.add_argument("--endpoint", help="Hub URL (default: HF_ENDPOINT or huggingface.co)")
    psh.set_defaults(run=_cmd_push)

    aud = sub.add_parser("audit", help="review a run's rejected (and spot-check accepted) samples")
    aud_sub = aud.add_subparsers(dest="audit_command", required=True)
    srv = aud_sub.add_parser("serve", help="start the review app on a loopback address")
    _run_arguments(srv)
    srv.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    srv.add_argument("--port", type=port, default=8765, help="port (default 8765)")
    srv.set_defaults(run=_cmd_audit_serve)
    exp = aud_sub.add_parser("export", help="write one self-contained HTML report of the rejects")
    _run_arguments(exp)
    exp.add_argument("--out", type=Path, help="HTML file (default: <run>/audit_report.html)")
    exp.set_defaults(run=_cmd_audit_export)
    return parser


#: commands that write into a run folder: one process at a time (audit only appends decisions)
_WRITES_RUN = frozenset({"validate", "evolve", "dataset", "compose", "eval", "publish", "push"})


def _locked_run_folder(args: argparse.Namespace) -> Path | None:
    """The run folder a writing command names explicitly (``--run-id``/``--run``/``--run-dir``)."""
    if args.command not in _WRITES_RUN:
        return None
    run_dir: Path | None = getattr(args, "run_dir", None)
    name: str | None = getattr(args, "run_id", None)
    if run_dir is None and name is not None:
        run_dir = RunDir.of(getattr(args, "output", OUTPUT), name).path
    if run_dir is None and args.command in {"compose", "eval", "publish", "push"}:
        if getattr(args, "dataset", None) is not None:
            return None  # evaluating a published release: no run folder involved
        try:
            run_dir = _publish_run_dir(args)  # the newest run, which the command will use
        except FileNotFoundError:
            return None  # the command itself says so
    if run_dir is None:
        return None
    creates = args.command in {"validate", "evolve", "dataset"}
    return run_dir if creates or run_dir.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    from pipeline.runguard import RunBusy, run_lock

    args = build_parser().parse_args(argv)
    try:
        folder = _locked_run_folder(args)
        with run_lock(folder) if folder is not None else contextlib.nullcontext():
            code: int = args.run(args)
    except (FileNotFoundError, ValueError, RunBusy) as error:  # RecordError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno == errno.ENOSPC:
            print(
                f"error: the disk is full ({error.filename or 'while writing'}); finished "
                "shards are kept: free some space and rerun the same command to resume",
                file=sys.stderr,
            )
            return 3
        print(f"error: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
