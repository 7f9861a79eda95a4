"""Bad inputs (issue 12): does every verb of the ``genlab`` CLI answer bad input with its own one-line error?

The contract: for input a user can get wrong (a flag out of range, NaN / inf / negative / huge numbers, a wrong
type or unknown key in ``--set`` or a config file, a missing or odd path, a damaged or hostile run folder, image,
pairs or text file, stdin "-", symlinks), ``genlab`` prints ONE line on stderr starting with ``error:`` and exits
with code 2: never a Python traceback, never a hang, never an attempt to allocate terabytes. The case table lives
in ``bench/bad_input_cases.py`` (hostile files and run-folder edits in ``bench/bad_input_files.py``).

A case meets the contract when, within its timeout (default 60 s) and under a memory cap on the child (RLIMIT_AS,
default 8 GiB, so a run-away allocation fails the case instead of hurting the machine):

* the exit code is one the case expects (most: 2; a few odd-but-valid inputs: 0; ``genlab verify``: 1 = a verdict
  of "not trusted", or 2; a damaged record a verb can do without: 0 or 2);
* stderr holds no "Traceback";
* on exit 2 (genlab's own refusal) the last non-empty stderr line, and only that line, starts with ``error:``;
* any case-specific check holds (a path with [brackets] printed as it is; nothing written outside the run).

Before the cases it trains tiny runs once (gpt and bert on Shakespeare, t5 on a small pairs file, vae on digits:
about 30 s); each case copies the one it needs into its own temporary folder, which is its working directory, and
gets its own empty ``GENLAB_HOME`` (signing keys) and ``GENLAB_CACHE``. Children use one thread each.

    python bench/bad_inputs.py [-j 2] [--only SUBSTRING ...] [--keep] [--timeout 60] [--mem-gb 8]

Prints a table (case, verb, exit code, ok/FAIL, first line of stderr) and a summary, and writes
``bench/results/bad_inputs.json`` (every case: argv, expected and actual exit code, seconds, problems, the last
lines of stderr). The exit code is 0 when every case meets the contract, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_input_cases import CASES, Case  # noqa: E402
import bad_input_data  # noqa: E402,F401  (adds the tables' and music's cases to CASES)
from bad_input_files import kinds, pairs_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GENLAB = str(Path(sys.executable).with_name("genlab"))
TAIL_LINES = 8


@dataclass
class Result:
    name: str
    verb: str
    argv: list[str]
    expected: list[int]
    code: int | None
    seconds: float
    ok: bool
    problems: list[str]
    first_line: str
    stderr_tail: list[str]


# -- the children ------------------------------------------------------------------------------------------------
def child_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"GENLAB_HOME": str(home / "genlab-home"), "GENLAB_CACHE": str(home / "genlab-cache"),
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"})
    env.pop("COLUMNS", None)
    env.update(extra or {})
    return env


def limited(mem_bytes: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return preexec


def run_genlab(argv: list[str], cwd: Path, env: dict[str, str], timeout: float, mem_bytes: int,
               stdin: bytes = b"") -> tuple[int | None, str, str, float]:
    """(exit code or None on timeout, stdout, stderr, seconds); a child past its timeout is killed with its group."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([GENLAB, *argv], cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=limited(mem_bytes), start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: this ends what it started too
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        code = None
    return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), time.perf_counter() - t0


# -- the tiny runs every case copies -----------------------------------------------------------------------------
BASE_TRAIN = ["--set", "train.eval_every=0", "--set", "train.eval_batches=1", "--set", "train.precision=fp32",
              "--set", "release.track_energy=false", "--set", "train.max_steps=10", "--set", "train.batch_size=8"]
TEXT_NET = ["--set", "model.n_layer=1", "--set", "model.n_head=2", "--set", "model.n_embd=32",
            "--set", "model.block_size=32"]
BASES = {
    "gpt": ["train", "gpt", "--data", "shakespeare", *TEXT_NET],
    "bert": ["train", "bert", "--data", "shakespeare", *TEXT_NET],
    "t5": ["train", "t5", "--data", "pairs.jsonl", "--set", "model.n_layer=1", "--set", "model.n_decoder_layer=1",
           "--set", "model.n_head=2", "--set", "model.d_model=32", "--set", "model.d_kv=16", "--set", "model.d_ff=64",
           "--set", "data.vocab_size=300"],
    "vae": ["train", "vae", "--data", "digits", "--set", "model.latent_dim=4", "--set", "model.width=4",
            "--set", "model.hidden=16"],
    "copula": ["train", "copula", "--data", "diabetes"],
    "vdm": ["train", "vdm", "--data", "moving-digits", "--set", "data.frames=4", "--set", "data.size=32",
            "--set", "model.widths=[16, 32]", "--set", "model.norm_groups=8", "--set", "model.timesteps=100",
            "--set", "model.sample_steps=3"],
    "music": ["train", "gpt", "--data", "tunes", *TEXT_NET, "--set", "model.block_size=128"],
}


def build_bases(tmp: Path, kinds: set[str], mem_bytes: int, jobs: int) -> dict[str, Path]:
    where = tmp / "bases"
    where.mkdir()
    (where / "pairs.jsonl").write_text(pairs_jsonl())
    for i in range(6):  # the tiny music run's tunes
        (where / "tunes").mkdir(exist_ok=True)
        (where / "tunes" / f"t{i}.mid").write_bytes(bad_input_data.midi(32, shift=i))
    env = child_env(where)

    def build(kind: str) -> tuple[str, Path]:
        code, _, err, secs = run_genlab([*BASES[kind], *BASE_TRAIN, "--out", kind], where, env, 600, mem_bytes)
        if code != 0:
            sys.exit(f"could not build the tiny {kind} run (exit {code}):\n{err[-3000:]}")
        print(f"built the tiny {kind} run in {secs:.0f} s", file=sys.stderr)
        return kind, where / kind

    with ThreadPoolExecutor(jobs) as pool:
        return dict(pool.map(build, sorted(kinds)))


def kinds_needed(cases: list[Case]) -> set[str]:
    """Which tiny runs the selected cases copy."""
    return set().union(*(kinds(c.setup) for c in cases))


# -- one case ----------------------------------------------------------------------------------------------------
def judge(case: Case, code: int | None, err: str, case_dir: Path) -> list[str]:
    problems = []
    if code is None:
        problems.append(f"no answer within {case.timeout:.0f} s (killed)")
    elif code not in case.expect.codes:
        problems.append(f"exit {code}, expected {' or '.join(map(str, case.expect.codes))}")
    if "Traceback" in err:
        problems.append("traceback")
    if code is not None and code < 0:
        problems.append(f"killed by signal {-code}")
    if code == 2 and 2 in case.expect.codes:
        lines = [line for line in err.splitlines() if line.strip()]
        if not lines or not lines[-1].startswith("error:"):
            problems.append("stderr does not end in an 'error:' line")
        elif sum(line.startswith("error:") for line in lines) > 1:
            problems.append("more than one 'error:' line")
    if case.expect.contains and case.expect.contains not in err:
        problems.append(f"stderr lacks {case.expect.contains!r}")
    if case.check is not None:
        extra = case.check(case_dir)
        if extra:
            problems.append(extra)
    return problems


def run_case(case: Case, tmp: Path, bases: dict[str, Path], args: argparse.Namespace) -> Result:
    case_dir = Path(tempfile.mkdtemp(prefix=f"{case.name[:40]}-", dir=tmp))
    env = child_env(case_dir / ".env", {k: v.replace("{d}", str(case_dir)) for k, v in case.env.items()})
    (case_dir / ".env").mkdir()
    try:
        try:
            if case.setup is not None:
                case.setup(case_dir, bases)
        except Exception as e:  # a bug of this bench, not of genlab: say so and go on with the other cases
            return Result(case.name, case.verb, list(case.argv), list(case.expect.codes), None, 0.0, False,
                          [f"the bench's setup failed: {type(e).__name__}: {e}"], "", [])
        timeout = args.timeout if args.timeout else case.timeout
        case = dataclasses.replace(case, timeout=timeout)
        code, _, err, secs = run_genlab(list(case.argv), case_dir, env, timeout, args.mem_gb << 30, case.stdin)
        problems = judge(case, code, err, case_dir)
    finally:
        if not args.keep:
            shutil.rmtree(case_dir, ignore_errors=True)
    lines = [line for line in err.splitlines() if line.strip()]
    boxed = [line.strip("│ ") for line in lines if line.startswith("│")]  # the parser's usage box
    first = next((line for line in lines if line.startswith(("error:", "Traceback"))), "") or \
        (boxed[0] if boxed else lines[0] if lines else "")
    return Result(case.name, case.verb, list(case.argv), list(case.expect.codes), code, round(secs, 1), not problems,
                  problems, first, lines[-TAIL_LINES:])


def source_state() -> dict[str, object]:
    """The commit the cases ran against, and how many files of src/ differ from it (work in progress)."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    changed = git("status", "--porcelain", "src").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD"), "src_files_changed": len(changed)}


# -- report ------------------------------------------------------------------------------------------------------
def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def print_table(results: list[Result]) -> None:
    w = max(len(r.name) for r in results)
    print(f"{'case':<{w}}  {'verb':<11} {'exit':>4}  {'':4}  first line of stderr")
    for r in results:
        code = "-" if r.code is None else str(r.code)
        mark = "ok" if r.ok else "FAIL"
        print(f"{r.name:<{w}}  {r.verb:<11} {code:>4}  {mark:<4}  {short(r.first_line, 110)}")
    failed = [r for r in results if not r.ok]
    print(f"\n{len(results) - len(failed)} of {len(results)} cases meet the contract; {len(failed)} fail")
    for r in failed:
        print(f"\nFAIL {r.name}: {'; '.join(r.problems)}\n  genlab {short(shlex.join(r.argv), 300)}")
        for line in r.stderr_tail[-4:]:
            print(f"  | {short(line, 160)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[], help="run only the cases whose name contains this (repeat)")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="cases at a time (default 2, for 2 cores)")
    ap.add_argument("--timeout", type=float, default=0.0, help="seconds per case (default: each case's own, 60)")
    ap.add_argument("--mem-gb", type=int, default=8, help="address-space cap of each child, GiB")
    ap.add_argument("--keep", action="store_true", help="keep each case's folder (printed at the end)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bad_inputs.json")
    args = ap.parse_args()

    names = [c.name for c in CASES]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        sys.exit(f"duplicate case names: {sorted(dupes)}")
    cases = [c for c in CASES if not args.only or any(part in c.name for part in args.only)]
    if not cases:
        sys.exit(f"no case name contains any of {args.only}")
    tmp = Path(tempfile.mkdtemp(prefix="genlab-bad-inputs-"))
    t0 = time.perf_counter()
    try:
        bases = build_bases(tmp, kinds_needed(cases), args.mem_gb << 30, args.jobs)
        print(f"running {len(cases)} cases, {args.jobs} at a time", file=sys.stderr)

        def one(case: Case) -> Result:
            r = run_case(case, tmp, bases, args)
            print(f"  {'ok  ' if r.ok else 'FAIL'} {r.name} ({r.seconds:.0f} s)", file=sys.stderr, flush=True)
            return r

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(one, cases))
    finally:
        if args.keep:
            print(f"case folders kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(results)
    passed = sum(r.ok for r in results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "meta": {"genlab": importlib.metadata.version("genlab"), **source_state(),
                 "python": platform.python_version(), "cpu": platform.machine(), "jobs": args.jobs,
                 "mem_gb": args.mem_gb, "only": args.only, "seconds": round(time.perf_counter() - t0, 1)},
        "summary": {"cases": len(results), "meet_contract": passed, "fail": len(results) - passed},
        "cases": [asdict(r) for r in results],
    }, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
