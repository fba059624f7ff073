"""Mutation testing of the code the durability and billing promises rest on: ``./dev mutate [area ...]``.

Each area (``core``, ``pricing``, ``outbox``, ``meters``) is mutated by mutmut (3.x) in a copy of the project's
committed tree (HEAD) of its own (``.mutate/<area>/``), never in the work tree, so that others working in the same
checkout are not disturbed and their uncommitted edits do not change the score (commit the tests you want
measured), and each is run with the tests that cover it rather than the whole suite. mutmut maps every test to
the functions it calls, then runs each mutant against only the tests that reach the mutated function, one
mutant at a time (``--max-children 1``: the machine has 2 cores, and others use them).

Options:
    --max-mutants N   a seeded random sample of N mutants per area (0 = all; default 0)
    --seed S          the sample's seed (default 1; the same seed gives the same sample)
    --keep            reuse ``.mutate/<area>`` and mutmut's cached results instead of starting afresh

Prints killed / survived / score per area and writes every survivor's diff to ``.mutate/<area>/survivors.txt``.
Exit status 0 unless mutmut itself failed (a low score is a finding, not an error).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutate"
COPIED = ("chargepoint", "hal", "simulators", "bench", "tests", "config")


@dataclass(frozen=True, slots=True)
class Area:
    files: tuple[str, ...]  # globs of the files to mutate, relative to the project root
    tests: tuple[str, ...]  # pytest arguments selecting the tests that cover them; globs name the files that exist
    functions: str = ""  # a regex on mutant names: mutate only these functions (empty: all)


AREAS: dict[str, Area] = {
    "core": Area(
        files=("chargepoint/core/*.py",),
        tests=("tests/unit/test_core_*.py", "tests/unit/test_ocpp_auth.py", "tests/unit/test_smart_charging.py"),
    ),
    "pricing": Area(
        files=("chargepoint/pricing/*.py",),
        tests=("tests/unit/test_california_*.py", "tests/unit/test_pricing_*.py", "tests/unit/test_money_engine.py",
               "tests/unit/test_display.py"),
    ),
    "outbox": Area(
        files=("chargepoint/ocpp/v16/outbox.py", "chargepoint/store/store.py"),
        tests=("tests/unit/test_store_outbox.py", "tests/e2e/test_ocpp_link_loss.py", "tests/e2e/test_ocpp_offline.py",
               # ConnectorUnplugged (a DataTransfer of the transaction) gets the CSMS's transactionId patched in.
               "tests/e2e/test_ocpp_pricing.py::test_idle_fee_after_stop_reports_the_unplug"),
        # The delivery machinery: queueing, order, retries, deletion on an answer, and the store's outbox table.
        # Not the messages' contents (start_messages, stop_messages ...) nor the invalid-idTag rules in outbox.py,
        # nor the rest of store.py (sessions, pricing, faults): the OCPP and store tests own those.
        functions=r"^chargepoint\.ocpp\.v16\.outbox\.xǁOutboxǁ(run|_deliver|_refused|enqueue|changed|pending)__mutmut|"
                  r"^chargepoint\.store\.store\.(x__enqueue|xǁStoreǁ(enqueue|outbox_\w+))__mutmut",
    ),
    "meters": Area(
        files=("hal/drivers/modbus_link.py", "hal/drivers/sdm630.py", "hal/drivers/iskra_wm3m4c.py"),
        tests=("tests/integration/test_sdm630_driver.py", "tests/integration/test_sdm630_rtu.py",
               "tests/integration/test_sdm630_settings.py", "tests/integration/test_iskra_*.py"),
    ),
}

# mutmut's exit codes per mutant (mutmut/utils/stats.py), grouped as we count them.
KILLED = {1, 3, 37}  # a test failed (3: pytest internal error), or the type checker refused the mutant
TIMEOUT = {24, -24, 36, 152, 255}
SURVIVED = {0}
NO_TESTS = {5, 33}


@dataclass
class Tally:
    killed: int = 0
    timeout: int = 0
    survived: list[str] = field(default_factory=list)
    no_tests: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.killed + self.timeout + len(self.survived) + len(self.no_tests) + len(self.other)

    @property
    def score(self) -> float:
        """Killed (timeouts included: an endless loop is caught) over all mutants tried; untested ones count as
        survivors."""
        return 100.0 * (self.killed + self.timeout) / self.total if self.total else 100.0


def test_args(area: Area, base: Path) -> list[str]:
    """``area.tests`` with each glob replaced by the test files it matches under ``base`` (mutmut's pytest run fails
    on a name that does not exist, and a glob names the area's test files added later without editing this list)."""
    args: list[str] = []
    for arg in area.tests:
        if any(ch in arg for ch in "*?["):
            args.extend(sorted(str(path.relative_to(base)) for path in base.glob(arg)))
        else:
            args.append(arg)
    return args


def pyproject_for(area: Area, work: Path) -> str:
    """The project's pyproject.toml with a [tool.mutmut] table for ``area`` in place of any it has."""
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    table = {
        "source_paths": list(COPIED[:4]),
        "only_mutate": list(area.files),
        "pytest_add_cli_args_test_selection": test_args(area, work),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q"],
        "use_git_change_detection": False,
    }
    lines = [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in table.items()]
    return text.rstrip() + "\n\n[tool.mutmut]\n" + "\n".join(lines) + "\n"


def prepare(name: str, area: Area, keep: bool) -> Path:
    """``.mutate/<name>`` holding the committed tree (HEAD), not the work tree: in a checkout others share, their
    uncommitted edits must not decide the score (a half-done change elsewhere once failed the outbox area's e2e
    tests before any mutant ran). Commit the tests you want measured first."""
    work = WORK / name
    if work.exists() and not keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD", "--", *COPIED],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"git archive HEAD failed: {archive.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
            tar.extractall(work, filter="data")
        else:
            tar.extractall(work)  # our own repository's archive
    (work / "pyproject.toml").write_text(pyproject_for(area, work))
    return work


def mutmut(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).with_name("mutmut")), *args], cwd=work, text=True,
                          capture_output=True, check=False)


def generate(work: Path) -> None:
    """Write the mutants (mutmut's first step) without running anything, so that they can be listed."""
    script = ("import os\nfrom mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants\n"
              "os.makedirs('mutants', exist_ok=True)\ncopy_src_dir()\ncopy_also_copy_files()\ncreate_mutants(1)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=work, text=True, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mutmut could not generate mutants in {work}:\n{done.stdout}\n{done.stderr}")


def results(work: Path) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for meta in (work / "mutants").rglob("*.py.meta"):
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


def run_area(name: str, area: Area, max_mutants: int, seed: int, keep: bool) -> Tally:
    print(f"== {name}: preparing .mutate/{name}", flush=True)
    work = prepare(name, area, keep)
    generate(work)
    names = sorted(results(work))
    if area.functions:
        names = [n for n in names if re.search(area.functions, n)]
    if max_mutants and len(names) > max_mutants:
        names = sorted(random.Random(seed).sample(names, max_mutants))
    print(f"== {name}: {len(names)} mutants of {', '.join(area.files)}; tests: {' '.join(test_args(area, work))}",
          flush=True)
    done = mutmut(work, "run", "--max-children", "1", *names)
    (work / "mutmut-run.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        raise SystemExit(f"mutmut run failed for {name} (exit {done.returncode}); see .mutate/{name}/mutmut-run.log")
    codes = results(work)
    tally = Tally()
    for mutant in names:
        code = codes.get(mutant)
        if code in KILLED:
            tally.killed += 1
        elif code in TIMEOUT:
            tally.timeout += 1
        elif code in SURVIVED:
            tally.survived.append(mutant)
        elif code in NO_TESTS:
            tally.no_tests.append(mutant)
        else:
            tally.other.append(f"{mutant} (exit {code})")
    with (work / "survivors.txt").open("w") as out:
        for mutant in tally.survived + tally.no_tests:
            out.write(mutmut(work, "show", mutant).stdout + "\n")
    return tally


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="./dev mutate", description=__doc__.split("\n\n")[0])
    parser.add_argument("areas", nargs="*", metavar="area", help=f"one or more of {', '.join(AREAS)} (default: all)")
    parser.add_argument("--max-mutants", type=int, default=0, help="a random sample of N per area (0: all)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sample")
    parser.add_argument("--keep", action="store_true", help="reuse .mutate/<area> and mutmut's cached results")
    options = parser.parse_args(argv)
    unknown = [name for name in options.areas if name not in AREAS]
    if unknown:
        parser.error(f"unknown area {', '.join(unknown)}: choose from {', '.join(AREAS)}")
    tallies = {name: run_area(name, AREAS[name], options.max_mutants, options.seed, options.keep)
               for name in (options.areas or list(AREAS))}
    print()
    print(f"{'area':<8} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} {'score':>6}")
    for name, t in tallies.items():
        print(f"{name:<8} {t.total:>7} {t.killed:>6} {t.timeout:>7} {len(t.survived):>8} {len(t.no_tests):>8} "
              f"{t.score:>5.1f}%")
        for mutant in t.survived + t.no_tests + t.other:
            print(f"    survived: {mutant}")
    print("\nDiffs of the survivors: .mutate/<area>/survivors.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
