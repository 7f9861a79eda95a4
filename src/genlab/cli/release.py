"""The release verbs of the command line: keys init, verify, detect, audit, card (see docs/release.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

import genlab
from genlab.cli.common import RunArg, err, out, print_json, table
from genlab.errors import GenlabError


def keys_init(
    name: Annotated[Optional[str], typer.Option(help="who signs, as shown in manifests (default: user@host)")] = None,
    force: Annotated[bool, typer.Option("--force", help="replace an existing identity")] = False,
) -> None:
    """Create the local signing identity: a root certificate (your trust anchor) and a C2PA signing certificate."""
    from genlab.responsible.keys import init_identity

    identity = init_identity(name=name, force=force)
    err.print(f"signing identity {identity.subject} in {identity.folder}\n"
              f"certificate sha256 {identity.fingerprint}; share {identity.folder / 'root.pem'} so others can "
              "verify your files as trusted", markup=False, highlight=False)


def verify(
    files: Annotated[list[Path], typer.Argument(help="generated files (PNG, JPEG, .txt, .csv, .mid ...)")],
    runs_: Annotated[Path, typer.Option("--runs", help="where to look for the run a file's manifest names")] = Path("runs"),
    run: Annotated[Optional[Path], typer.Option(help="keyed watermarks (text): the run whose key to use")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Check each file's C2PA signature and its watermark, together: one verdict per file, whatever the others
    hold. Exit code 1 if any file is not trusted."""
    from genlab.responsible.verify import verify as check

    verdicts = []
    for f in files:
        try:
            verdicts.append(_verdict_dict(check(f, runs=runs_, run=run)))
        except GenlabError as e:  # this file cannot be checked at all (missing, a folder, unreadable): its verdict
            verdicts.append({"file": str(f), "signature": "unreadable", "signer": None, "failures": [str(e)],
                             "generation": None, "watermark": None})
    if as_json:
        print_json(verdicts)
    else:
        for v in verdicts:
            _print_verdict(v)
    if any(v["signature"] != "trusted" for v in verdicts):
        raise typer.Exit(1)


def _verdict_dict(v) -> dict:
    import dataclasses

    p = v.provenance
    return {"file": str(v.path), "signature": p.status, "signer": p.signer, "failures": list(p.failures),
            "generation": p.generation, "watermark": dataclasses.asdict(v.watermark) if v.watermark else None}


def _print_verdict(v: dict) -> None:
    colour = {"trusted": "green", "untrusted": "yellow"}.get(v["signature"], "red")
    line = Text.assemble((v["file"], "bold"), ": signature ", (v["signature"], f"bold {colour}"))
    if v["signer"]:
        line.append(f" (signed by {v['signer']})")
    say = [line, *(f"  failure: {failure}" for failure in v["failures"])]
    g = v["generation"] or {}
    if g:
        say.append(f"  made by genlab {g.get('genlab_version', '?')}: {g.get('family', '?')} on "
                   f"{g.get('dataset', '?')}, run {str(g.get('run_id', '?'))[:8]}, weights "
                   f"{str(g.get('weights_sha256', '?'))[:12]}, seed {g.get('seed', '-')}")
    w = v["watermark"]
    if v["signature"] == "unreadable":
        pass
    elif w is None:
        say.append("  watermark: none for this format")
    elif not w["checked"]:
        say.append(f"  watermark: not checked ({w['note']})")
    else:
        what = ", ".join(f"{k} {val:.3g}" if isinstance(val, float) else f"{k} {val}" for k, val in w["detail"].items()
                         if k != "run" and val is not None)
        key = f"; looked for with the key of run {w['detail']['run']}" if w["detail"].get("run") else ""
        agree = {True: "; it names the manifest's run", False: "; it names ANOTHER run than the manifest's",
                 None: ""}[w["matches_manifest"]]
        say.append(f"  watermark ({w['scheme']}): {'found' if w['found'] else 'not found'} ({what}){key}{agree}"
                   + (f" [{w['note']}]" if w["note"] else ""))
    for item in say:
        out.print(item, markup=False, highlight=False, soft_wrap=True)


def detect(
    files: Annotated[list[Path], typer.Argument(help="text files to test, one document each")],
    run: Annotated[Path, typer.Option(help="the run whose watermark key to test with")],
    window: Annotated[int, typer.Option(help="tokens per sliding window (0 = whole documents only)")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Test files for a run's keyed watermark (text): z-score, p-value and verdict per document and per window."""
    import dataclasses

    r = genlab.load(run)
    marks = r.release.marks
    if marks is None or not marks.keyed:
        raise GenlabError(f"{run} is a {r.config.family} run, whose outputs carry no keyed watermark; "
                          "`genlab detect` tests a keyed one (use `genlab verify FILE` for the others)")
    if window < 0:
        raise GenlabError(f"--window must be 0 or more tokens, got {window}")
    results = [(f, marks.detect(marks.read(f), window=window)) for f in files]
    if as_json:
        print_json([{"file": str(f), "document": dataclasses.asdict(d.document),
                     "windows": [dataclasses.asdict(w) for w in d.windows]} for f, d in results])
        return
    threshold = r.config.release.z_threshold
    t = table(f"watermark of {run} (gamma {r.config.release.text_gamma}, z threshold {threshold})", "file",
              "tokens scored", "green", "z", "p-value", "verdict", f"best {window}-token window",
              right=("tokens scored", "green", "z", "p-value"))
    for f, d in results:
        s, best = d.document, d.best_window
        verdict = Text("watermarked", "bold red") if s.watermarked else "not watermarked"
        where = "-" if best is None else f"z {best.z:.2f} at tokens {best.start}-{best.end}" + \
            (" (watermarked)" if best.watermarked else "")
        t.add_row(Text(str(f)), str(s.tokens_scored), f"{s.green_fraction:.1%}", f"{s.z:.2f}", f"{s.p_value:.2e}",
                  verdict, where)
    out.print(t)


def audit(
    run: RunArg,
    n: Annotated[Optional[int], typer.Option("--n", help="samples to audit (default: the modality's, e.g. 64 texts, 500 images)")] = None,
    seed: Annotated[int, typer.Option(help="seeds the samples")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Memorisation and bias audit: writes RUN/audit.json (and pictures in RUN/audit/), updates the model card."""
    r = genlab.load(run)
    report = r.audit(n=n, seed=seed)
    if as_json:
        print_json(report)
        return
    out.print(f"audit of {run}: {report['n']} samples, seed {report['seed']}, {report['seconds']:.0f} s",
              markup=False, highlight=False)
    for line in report.get("summary", []):
        out.print(f"- {line}", markup=False, highlight=False, soft_wrap=True)
    err.print(f"every figure, the method and its limits in {r.path / 'audit.json'}; model card {r.path / 'README.md'}",
              markup=False, highlight=False)


def card(run: RunArg) -> None:
    """Write (or refresh) the run's model card, RUN/README.md, from what the run has measured."""
    path = genlab.load(run).write_card()
    err.print(f"model card in {path}", markup=False, highlight=False)
