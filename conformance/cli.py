"""``rlspec``: the command line of rlspec.

    rlspec list [--json] [--kind K] [--status S]      the registry: name, kind, status, arXiv, year, title
    rlspec show NAME [--json]                         one entry: paper, equations, gradient, properties, config
    rlspec check IMPL [--out DIR] [--algorithms a,b] [--dtypes float64,float32] [--n-random N] [--json]
                                                      conformance of an implementation against the reference
    rlspec vectors [--out DIR] [--check]              regenerate or verify the golden vectors

Exit codes: 0 ok; 1 unexpected failures (``check``: a case with status ``fail`` or ``error``, or the
implementation is not installed; ``vectors --check``: a vector does not validate or reproduce); 2 usage
error (unknown command, option, algorithm, dtype or implementation). ``xpass`` results and stale
expectation entries are reported but exit 0 unless ``check --strict``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad argument value found after parsing (unknown algorithm, dtype, implementation)."""


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


# --------------------------------------------------------------------------- list / show
def cmd_list(args: argparse.Namespace) -> int:
    from reference import registry

    if args.kind and args.kind not in registry.KINDS:
        raise UsageError(f"--kind: got {args.kind!r}; expected one of {', '.join(registry.KINDS)}")
    if args.status and args.status not in registry.STATUSES:
        raise UsageError(f"--status: got {args.status!r}; expected one of {', '.join(registry.STATUSES)}")
    specs = registry.specs(kind=args.kind, status=args.status)
    if args.json:
        print(json.dumps([s.to_dict() for s in specs], indent=1, ensure_ascii=False))
        return EXIT_OK
    rows = [("name", "kind", "status", "arXiv", "year", "title")]
    for s in specs:
        title = s.paper.title if len(s.paper.title) <= 70 else s.paper.title[:67] + "..."
        rows.append((s.name, s.kind, s.status, s.paper.arxiv or "-", str(s.paper.year), title))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for j, r in enumerate(rows):
        print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r[:5])) + "  " + r[5])
        if j == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 5)
    counts = {st: sum(1 for s in specs if s.status == st) for st in registry.STATUSES}
    print(f"\n{len(specs)} entries: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    return EXIT_OK


def supporting_implementations(spec: Any) -> dict[str, str]:
    """Built-in adapters and whether they implement ``spec`` ("yes", "no", or why unknown)."""
    from conformance import adapters

    out = {}
    for name in sorted(adapters.BUILTIN):
        try:
            a = adapters.load(name)
            ok, why = a.available()
            out[name] = ("yes" if a.supports(spec) else "no") if ok else f"not installed ({why})"
        except Exception as e:  # noqa: BLE001
            out[name] = f"unavailable ({type(e).__name__}: {e})"
    return out


def cmd_show(args: argparse.Namespace) -> int:
    from reference import registry

    try:
        spec = registry.get(args.name)
    except KeyError as e:
        raise UsageError(str(e.args[0] if e.args else e)) from None
    d = spec.to_dict()
    d["implementations"] = supporting_implementations(spec)
    if args.json:
        print(json.dumps(d, indent=1, ensure_ascii=False))
        return EXIT_OK
    p = spec.paper
    print(f"{spec.name}  ({spec.kind}, {spec.status}{', family ' + spec.family if spec.family else ''})")
    if spec.aliases:
        print(f"aliases: {', '.join(spec.aliases)}")
    print(f"paper:   {p.title} ({p.year})  arXiv {p.arxiv or '-'}  {p.link}")
    if spec.summary:
        print(f"summary: {spec.summary}")
    if spec.equations:
        print("\nequations:")
        for e in spec.equations:
            print(f"  [{e.label}] {e.text}")
            print(f"      where: {e.where}   provenance: {e.source}" + (f"   function: {e.function}" if e.function else ""))
            if e.note:
                print(textwrap.fill(e.note, 100, initial_indent="      note: ", subsequent_indent="            "))
    if spec.gradient:
        print(f"\ngradient: {spec.gradient}")
    if spec.properties:
        print("\nproperties tested:")
        for prop in spec.properties:
            print(f"  - {prop}")
    if d["config"]:
        print(f"\nconfig defaults ({spec.config_cls.__name__}):")
        for k, v in d["config"].items():
            print(f"  {k} = {v!r}")
    if spec.missing:
        print(f"\nmissing: {spec.missing}")
    print("\nimplementations: " + ", ".join(f"{k}: {v}" for k, v in d["implementations"].items()))
    return EXIT_OK


# --------------------------------------------------------------------------- check
def cmd_check(args: argparse.Namespace) -> int:
    from conformance import adapters, expectations, harness, reports, tolerances
    from reference import registry

    try:
        adapter = adapters.load(args.impl)
    except (KeyError, ValueError) as e:
        raise UsageError(str(e.args[0] if e.args else e)) from None
    except (ImportError, AttributeError, TypeError) as e:
        if ":" in args.impl:  # the user's own adapter could not be loaded: a usage problem
            raise UsageError(f"cannot load adapter {args.impl!r}: {type(e).__name__}: {e}") from None
        print(f"rlspec check: implementation {args.impl!r} is not installed: {e}", file=sys.stderr)
        return EXIT_FAILURES
    algorithms = _csv(args.algorithms)
    if algorithms:
        for a in algorithms:
            try:
                registry.get(a)
            except KeyError as e:
                raise UsageError(str(e.args[0] if e.args else e)) from None
    dtypes = _csv(args.dtypes)
    for d in dtypes or ():
        if d not in tolerances.DTYPES:
            raise UsageError(f"--dtypes: got {d!r}; expected some of {', '.join(tolerances.DTYPES)}")
    if args.n_random < 0:
        raise UsageError(f"--n-random: got {args.n_random}; expected a number >= 0")
    try:
        entries = expectations.load(args.expectations) if args.expectations else expectations.for_adapter(adapter)
    except (OSError, expectations.ExpectationFileError) as e:
        raise UsageError(f"expectations: {e}") from None

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=0, file=sys.stderr, desc=f"rlspec check {args.impl}", unit="case", leave=False)

    def on_total(n: int) -> None:
        if bar is not None:
            bar.total = n
            bar.refresh()

    def progress(_r: Any) -> None:
        if bar is not None:
            bar.update(1)

    try:
        results = harness.run(adapter, algorithms=algorithms, dtypes=dtypes, n_random=args.n_random,
                              timeout=args.timeout, progress=progress, on_total=on_total)
    finally:
        if bar is not None:
            bar.close()
    expectations.apply(results, entries)
    out = Path(args.out or Path("reports") / _safe(args.impl))
    meta = {"command": "rlspec " + " ".join(args.argv),
            "n_random": args.n_random, "expectations": args.expectations or str(
                expectations.find(str(getattr(adapter, "name", "")), str(getattr(adapter, "version", ""))) or "")}
    paths = reports.write_all(results, out, meta)
    unexpected = results.unexpected()
    not_installed = [r for r in results if r.status == "not-installed"]
    xpass = [r for r in results if r.status == "xpass"]
    if args.json:
        print(json.dumps({**reports.summary(results), "implementation": results.impl,
                          "files": {k: str(v) for k, v in paths.items()},
                          "failures": [r.to_dict() for r in unexpected]}, indent=1, ensure_ascii=False))
    else:
        print(f"rlspec check {results.impl} (version {results.version or '?'})")
        print(reports.text_matrix(results, results.impl))
        print("cell: verdict of the worst case, passed/judged (largest relative error); "
              "✓ pass, ✗ fail, E error, — unsupported")
        print("counts: " + ", ".join(f"{k} {v}" for k, v in results.counts().items()))
        if results.planned:
            print(f"{len(results.planned)} planned registry entries not checked (no reference yet)")
        for r in unexpected[:20]:
            print(f"  {r.status.upper():5s} {r.case_id}: {r.message}")
        if len(unexpected) > 20:
            print(f"  ... {len(unexpected) - 20} more in {paths['markdown']}")
        for r in xpass:
            print(f"  XPASS {r.case_id}: {r.message}")
        for s in results.stale:
            print(f"  STALE expectation {s}")
        if not_installed:
            print(f"  not installed: {not_installed[0].message}")
        print(f"reports: {out}/ (report.json, junit.xml, report.md, matrix.png)")
    if unexpected or not_installed:
        return EXIT_FAILURES
    if args.strict and (xpass or results.stale):
        return EXIT_FAILURES
    return EXIT_OK


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --------------------------------------------------------------------------- vectors
def cmd_vectors(args: argparse.Namespace) -> int:
    from conformance import vectors

    if args.check:
        problems = vectors.check(args.out)
        n = len(vectors.files(args.out))
        for p in problems:
            print(p)
        print(f"{n} vector(s) checked, {len(problems)} problem(s)")
        return EXIT_FAILURES if problems else EXIT_OK
    written = vectors.generate(args.out, _csv(args.algorithms))
    root = Path(args.out) if args.out else vectors.DIRECTORY
    size = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} vector(s) for {len({p.parent.name for p in written})} algorithm(s) "
          f"into {root} ({size / 1024:.0f} KiB)")
    return EXIT_OK


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlspec", description="rlspec: the executable specification of RL policy "
                                "optimization for LLMs (registry, conformance checks, golden vectors).",
                                epilog="exit codes: 0 ok, 1 unexpected failures, 2 usage error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    pl = sub.add_parser("list", help="list the registry's algorithms",
                        description="List every algorithm in the registry (name, kind, status, arXiv, year, title).")
    pl.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pl.add_argument("--kind", help="only this kind (policy_loss, advantage, kl, ...)")
    pl.add_argument("--status", help="only this status (implemented, partial, planned)")
    pl.set_defaults(func=cmd_list)

    ps = sub.add_parser("show", help="show one algorithm", description="Paper, summary, equations (with where "
                        "and provenance), gradient, properties, config defaults and supporting implementations.")
    ps.add_argument("name", help="registry name or alias")
    ps.add_argument("--json", action="store_true", help="print JSON")
    ps.set_defaults(func=cmd_show)

    pc = sub.add_parser("check", help="check an implementation against the reference",
                        description="Run the conformance harness on IMPL (a built-in adapter such as 'optimized', "
                        "or module:attr for your own Adapter) and write report.json, junit.xml, report.md and "
                        "matrix.png. Exit 1 on unexpected failures (fail/error) or if IMPL is not installed; "
                        "xpass and stale expectation entries exit 0 unless --strict.")
    pc.add_argument("impl", help="implementation: built-in adapter name or module:attr")
    pc.add_argument("--out", help="report directory (default reports/IMPL)")
    pc.add_argument("--algorithms", help="comma-separated registry names (default: every entry with a reference)")
    pc.add_argument("--dtypes", help="comma-separated dtypes among float64,float32,bfloat16 (default: the adapter's)")
    pc.add_argument("--n-random", type=int, default=20, help="random cases per algorithm and dtype (default 20)")
    pc.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it is an error (default 30)")
    pc.add_argument("--expectations", help="expectation file (default conformance/expectations/IMPL[-VERSION].txt)")
    pc.add_argument("--strict", action="store_true", help="also exit 1 on xpass results and stale expectations")
    pc.add_argument("--json", action="store_true", help="print a JSON summary instead of the table")
    pc.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    pc.set_defaults(func=cmd_check)

    pv = sub.add_parser("vectors", help="regenerate or verify the golden vectors",
                        description="Write conformance/vectors/<algorithm>/<case>.json from the reference, or with "
                        "--check validate them against the schema and check the reference still reproduces them.")
    pv.add_argument("--out", help="vector directory (default: conformance/vectors in the package)")
    pv.add_argument("--check", action="store_true", help="verify instead of writing; exit 1 on any problem")
    pv.add_argument("--algorithms", help="comma-separated names to regenerate (default: all implemented)")
    pv.set_defaults(func=cmd_vectors)

    pe = sub.add_parser("e2e", help="end-to-end learning matrix on a tiny model (needs transformers)", add_help=False,
                        description="Train a tiny model with every registered policy loss and advantage estimator "
                        "and write table.md/table.json/curves.png (options: rlspec e2e --help).")
    pe.set_defaults(func=lambda args: cmd_e2e([]))
    return p


def cmd_e2e(rest: list[str]) -> int:
    """Delegate to :func:`optimized.e2e.matrix.main` (default --out reports/e2e)."""
    try:
        from optimized.e2e import matrix
    except ImportError as e:
        print(f"rlspec e2e: {e}; install with: pip install -e '.[e2e]'", file=sys.stderr)
        return EXIT_USAGE
    rest = list(rest)
    if "--out" not in rest and not {"-h", "--help"} & set(rest):
        rest = ["--out", os.path.join("reports", "e2e"), *rest]
    try:
        return matrix.main(rest)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rlspec`` console script; returns the exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["e2e"]:  # its options belong to optimized.e2e.matrix
        return cmd_e2e(argv[1:])
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    args.argv = argv
    try:
        return args.func(args)
    except UsageError as e:
        print(f"rlspec {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
