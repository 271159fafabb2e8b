"""``rlspec probe`` and ``rlspec findings`` (registered by :mod:`rlspec.conformance.cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlspec.conformance.probes import FRAMEWORKS


def add_parsers(sub: argparse._SubParsersAction) -> None:
    pp = sub.add_parser("probe", help="run frameworks as users call them: defaults, every accepted knob combination, "
                        "inputs taken silently, padding, a framework against itself",
                        description="Run the probes of conformance/probes/<framework>.py and write probes.json. "
                        "Exit 0 when every probe ran (findings are results, not failures); 1 when a probe itself "
                        "errored or timed out; 2 on a usage error.")
    pp.add_argument("frameworks", nargs="*", default=["all"], help=f"any of {', '.join(FRAMEWORKS)}, or all")
    pp.add_argument("--out", default="reports/probes", help="folder for probes.json (default reports/probes)")
    pp.add_argument("--runs", help="comma-separated subset of: defaults,combination,input,padding,self")
    pp.add_argument("--timeout", type=float, default=60.0, help="seconds per probe (default 60)")
    pp.add_argument("--json", action="store_true", help="print the counts as JSON")
    pp.add_argument("--no-progress", action="store_true", help="no progress bars")
    pp.set_defaults(func=cmd_probe)

    pf = sub.add_parser("findings", help="write docs/findings.md from probes.json and a `rlspec check all` folder",
                        description="One row per finding across all frameworks: probe findings and harness cases "
                        "classified xfail (or unclassified failures).")
    pf.add_argument("--probes", default="reports/probes/probes.json", help="probes.json (default reports/probes/)")
    pf.add_argument("--reports", default="reports/all", help="`rlspec check all` output folder (default reports/all)")
    pf.add_argument("--out", default="docs/findings.md", help="page to write (default docs/findings.md)")
    pf.add_argument("--json", action="store_true", help="print the findings as JSON")
    pf.set_defaults(func=cmd_findings)


def _frameworks(names: list[str]) -> list[str]:
    from rlspec.conformance.cli import UsageError

    if not names or names == ["all"]:
        return [fw for fw in FRAMEWORKS if (Path(__file__).parent / f"{fw}.py").exists()]
    bad = [n for n in names if n not in FRAMEWORKS]
    if bad:
        raise UsageError(f"frameworks: got {', '.join(bad)}; expected any of {', '.join(FRAMEWORKS)} or all")
    return names


def cmd_probe(args: argparse.Namespace) -> int:
    from rlspec.conformance.cli import UsageError
    from rlspec.conformance.probes import core

    runs = [r.strip() for r in args.runs.split(",")] if args.runs else None
    if runs and set(runs) - set(core.RUNS):
        raise UsageError(f"--runs: got {args.runs!r}; expected a subset of {', '.join(core.RUNS)}")
    outcomes = core.run_probes(_frameworks(args.frameworks), timeout=args.timeout, runs=runs,
                               progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    core.save(outcomes, str(out / "probes.json"), command="rlspec " + " ".join(getattr(args, "argv", [])))
    counts = core.counts(outcomes)
    if args.json:
        print(json.dumps(counts, indent=1))
    else:
        for fw, per_run in counts.items():
            print(f"{fw}: " + "; ".join(f"{run} " + ", ".join(f"{s} {n}" for s, n in sorted(c.items()))
                                        for run, c in per_run.items()))
        print(f"probes: {out / 'probes.json'}")
    errors = [o for o in outcomes if o.status == "error"]
    for o in errors[:20]:
        print(f"  probe error: {o.framework} {o.run} {o.path} [{o.case}]: {o.summary}")
    return 1 if errors else 0


def cmd_findings(args: argparse.Namespace) -> int:
    from rlspec.conformance.probes import findings

    fs = findings.write(Path(args.out), Path(args.probes), Path(args.reports),
                        command="rlspec " + " ".join(getattr(args, "argv", [])))
    if args.json:
        print(json.dumps([{**{k: v for k, v in f.__dict__.items() if not k.startswith("_")}} for f in fs], indent=1))
    else:
        print(f"{len(fs)} findings: {args.out}")
    return 0
