"""``featurizer storage ls|info|verify|recover|rebuild-catalog``: look into a storage root."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from featurizer._config import FeaturizerConfig
from featurizer.cli._common import write
from featurizer.cli._record_cmd import add_storage_argument
from featurizer.storage import (
    Storage,
    VerifyReport,
    format_ts,
    rebuild_catalog,
    resolve_root,
)


def _common(parser: argparse.ArgumentParser) -> None:
    add_storage_argument(parser)
    parser.add_argument(
        "--config", type=Path, metavar="CONFIG", help="take the storage root from this config"
    )


def register(commands: Any) -> None:
    """Add the ``storage`` subcommand and its actions."""
    parser = commands.add_parser(
        "storage",
        help="list, inspect, verify and recover a storage root",
        description="Look into Featurizer Storage: `ls` lists the stored series, `info` shows "
        "one series (sessions, holes, blocks), `verify` re-reads every block and checks it "
        "against the catalog, `recover` publishes what a crashed recorder acknowledged.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("ls", help="list the stored series")
    _common(ls)
    ls.set_defaults(handler=handle_ls)
    info = actions.add_parser("info", help="one series: params, schema, sessions, holes, blocks")
    _common(info)
    info.add_argument("series", metavar="SERIES", help="a series name, key or key prefix")
    info.add_argument("--blocks", action="store_true", help="list every block")
    info.set_defaults(handler=handle_info)
    verify = actions.add_parser(
        "verify", help="re-read every block and check checksums, schemas and the catalog"
    )
    _common(verify)
    verify.add_argument(
        "--quick", action="store_true", help="check checksums and footers, not every row"
    )
    verify.epilog = (
        "With --config, also checks that the config's definitions still declare the schemas "
        "their stored series have."
    )
    verify.set_defaults(handler=handle_verify)
    recover = actions.add_parser(
        "recover", help="publish the acknowledged events a crashed recorder left in the WAL"
    )
    _common(recover)
    recover.set_defaults(handler=handle_recover)
    rebuild = actions.add_parser(
        "rebuild-catalog",
        help="rebuild a lost, emptied or outdated catalog from the self-describing blocks",
        description="Read every block file (each carries its series, session, arrival and "
        "time ranges and schema in its Parquet metadata), check it, and write a new "
        "catalog from those that pass. The previous catalog, if any, is moved to "
        "quarantine/catalog/; no block file is moved or changed.",
    )
    _common(rebuild)
    rebuild.add_argument("--dry-run", action="store_true", help="only show what would be adopted")
    rebuild.set_defaults(handler=handle_rebuild)
    drop_session = actions.add_parser(
        "drop-session",
        help="remove a recording session and its blocks (files kept in quarantine/)",
    )
    _common(drop_session)
    drop_session.add_argument("session", metavar="SESSION", help="the session id")
    drop_session.add_argument("--dry-run", action="store_true", help="only show what would go")
    drop_session.set_defaults(handler=handle_drop_session)
    drop_block = actions.add_parser(
        "drop-block",
        help="take one block out of the catalog; its span becomes a recorded hole",
    )
    _common(drop_block)
    drop_block.add_argument("block", metavar="BLOCK", type=int, help="the block id")
    drop_block.add_argument("--dry-run", action="store_true", help="only show what would go")
    drop_block.set_defaults(handler=handle_drop_block)
    repair = actions.add_parser(
        "repair",
        help="make verify pass: recover the WAL, drop damaged blocks and record holes",
        description="Recover an unrecovered WAL, take missing, corrupt or mismatching blocks "
        "out of the catalog (their files to quarantine/) and record their spans, and block "
        "ordinals missing from the catalog, as holes that every replay reports.",
    )
    _common(repair)
    repair.add_argument("--dry-run", action="store_true", help="only show what would be done")
    repair.set_defaults(handler=handle_repair)


def _root(args: argparse.Namespace) -> Path:
    config = FeaturizerConfig.from_yaml(args.config) if args.config is not None else None
    return resolve_root(
        config.storage if config is not None else None,
        config_path=config.path if config is not None else None,
        override=args.storage,
    )


def _open(args: argparse.Namespace, *, readonly: bool = True) -> Storage:
    """Open the root; read-only unless the command writes (ls, info and verify never do)."""
    return Storage.open(_root(args), readonly=readonly)


def handle_ls(args: argparse.Namespace) -> int:
    """One line per series."""
    with _open(args) as storage:
        stats = storage.catalog.series_stats()
        series = storage.series()
        write(f"{storage.root}: {len(series)} series")
        if series:
            write(
                f"  {'KEY':10}  {'KIND':11}  {'NAME':34}  {'BLOCKS':>6}  {'EVENTS':>11}  "
                f"{'BYTES':>12}  FIRST .. LAST"
            )
        for info in series:
            blocks, rows, size, first, last = stats.get(info.key, (0, 0, 0, None, None))
            write(
                f"  {info.short_key:10}  {info.kind:11}  {info.name[:34]:34}  {blocks:>6,}  "
                f"{rows:>11,}  {size:>12,}  {format_ts(first)} .. {format_ts(last)}"
            )
    return 0


def handle_info(args: argparse.Namespace) -> int:
    """Details of one series."""
    with _open(args) as storage:
        info = storage.find_series(args.series)
        plan = storage.plan(info.key)
        blocks, rows, size, first, last = storage.catalog.series_stats().get(
            info.key, (0, 0, 0, None, None)
        )
        write(f"series {info.name}")
        write(f"  key:        {info.key}")
        write(f"  kind:       {info.kind}")
        write(f"  definition: {info.definition}")
        write(f"  params:     {info.params}")
        if info.children:
            write(f"  children:   {info.children}")
        write(f"  schema:     {info.schema}")
        write(f"  stored:     {rows:,} events in {blocks:,} blocks, {size:,} bytes")
        write(f"  range:      {format_ts(first)} .. {format_ts(last)}")
        sessions = {s.id: s for s in storage.catalog.sessions()}
        for entry in storage.catalog.session_series(info.key):
            session = sessions.get(entry.session)
            if session is None:
                continue
            write(
                f"  session {session.id} ({session.status}): {entry.rows:,} events in "
                f"{entry.blocks} blocks, covering {format_ts(session.first_ts)} .. "
                f"{format_ts(session.last_ts)}"
            )
        for hole in plan.holes:
            write(f"  hole: {hole.describe()}")
        if args.blocks:
            for block in plan.blocks:
                write(
                    f"  block {block.id}: {block.rows:,} rows  {format_ts(block.start_ts)} .. "
                    f"{format_ts(block.end_ts)}  seq {block.min_seq}..{block.max_seq}  "
                    f"{block.bytes:,} bytes  {block.path}"
                )
    return 0


def handle_verify(args: argparse.Namespace) -> int:
    """Check every block; exit 1 if anything severe is found."""
    with _open(args) as storage:
        report = storage.verify(deep=not args.quick)
        if args.config is not None:
            report = _with_definitions(storage, report, args.config)
        for problem in report.problems:
            level = "error" if problem.severe else "warning"
            write(f"{level}: {problem.kind}: {problem.message}", stream=sys.stderr)
        status = "ok" if report.ok else "FAILED"
        write(
            f"{storage.root}: {status}: {report.series} series, {report.blocks} blocks, "
            f"{report.rows:,} rows, {report.bytes:,} bytes checked; "
            f"{sum(p.severe for p in report.problems)} error(s), "
            f"{sum(not p.severe for p in report.problems)} warning(s)"
        )
    return 0 if report.ok else 1


def _with_definitions(storage: Storage, report: VerifyReport, config_path: Path) -> VerifyReport:
    """Add the config's definitions whose schema differs from their stored series'."""
    import attrs

    from featurizer._config import construct_features_from_configs
    from featurizer._graph import FeatureStreamGraph

    config = FeaturizerConfig.from_yaml(config_path)
    nodes = FeatureStreamGraph(construct_features_from_configs(config)).nodes()
    extra = storage.check_definitions(nodes)
    return attrs.evolve(report, problems=(*extra, *report.problems)) if extra else report


def handle_recover(args: argparse.Namespace) -> int:
    """Recover a crashed recorder's WAL."""
    with _open(args, readonly=False) as storage:
        report = storage.recover()
        write(f"{storage.root}: {report.describe()}")
    return 0 if report.ok else 1


def handle_rebuild(args: argparse.Namespace) -> int:
    """Rebuild the catalog from the blocks."""
    root = Path(_root(args))
    report = rebuild_catalog(root, dry_run=args.dry_run)
    write(f"{root.resolve()}: {report.describe()}")
    return 0


def _maintenance(args: argparse.Namespace, action: Any) -> int:
    with _open(args, readonly=args.dry_run) as storage:
        report = action(storage, dry_run=args.dry_run)
        write(f"{storage.root}: {report.describe()}")
    return 0


def handle_drop_session(args: argparse.Namespace) -> int:
    """Remove one session."""
    from featurizer.storage._maintenance import drop_session

    return _maintenance(args, lambda s, dry_run: drop_session(s, args.session, dry_run=dry_run))


def handle_drop_block(args: argparse.Namespace) -> int:
    """Remove one block."""
    from featurizer.storage._maintenance import drop_block

    return _maintenance(args, lambda s, dry_run: drop_block(s, args.block, dry_run=dry_run))


def handle_repair(args: argparse.Namespace) -> int:
    """Repair what verify finds."""
    from featurizer.storage._maintenance import repair

    return _maintenance(args, repair)
