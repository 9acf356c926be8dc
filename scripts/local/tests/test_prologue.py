"""The shell scripts' shared prologue (scripts/lib/prologue.sh): what it sets in a clean
environment, what each option adds, what scripts/test.sh still gives its stages, and that no
script in scripts/ declares again what the prologue provides."""

from __future__ import annotations

import pathlib
import re
import stat
import subprocess
import tempfile
import unittest

REPO = pathlib.Path(__file__).resolve().parents[3]
PROLOGUE = REPO / "scripts" / "lib" / "prologue.sh"
SCRIPTS = sorted((REPO / "scripts").glob("*.sh"))
SOURCE_LINE = 'source "$(dirname "${BASH_SOURCE[0]}")/lib/prologue.sh" '
HOME = "/home/prologue-test"
CLEAN_PATH = "/usr/bin:/bin"

# What the prologue provides; the part after `set` prints each as "NAME=VALUE exported|local".
PROVIDED = ["REPO_ROOT", "PIPELINE_CACHE", "VENV", "PYTHON", "LAMBDA_TOOLS", "CARGO_LAMBDA", "LOCAL_DIR", "RUN_DIR", "LOG_DIR", "ENV_FILE"]
CARGO = ["CARGO_TARGET_DIR", "CARGO_TERM_COLOR", "PIPELINE_CHECKOUT"]
REPORT = r"""
for name in %s; do
  if [[ -v $name ]]; then
    if [[ "$(declare -p "$name")" == "declare -x"* ]]; then scope=exported; else scope=local; fi
    printf '%%s=%%s %%s\n' "$name" "${!name}" "$scope"
  fi
done
printf 'PWD=%%s\nPATH=%%s\nARGS=%%s\nOPTIONS=%%s\n' "$PWD" "$PATH" "$*" "$SHELLOPTS:pipefail=$(set -o | awk '$1 == "pipefail" {print $2}')"
""" % " ".join(PROVIDED + CARGO)


def run_bash(script: str, env: dict[str, str] | None = None, cwd: str = "/", args: tuple[str, ...] = ("one", "two")):
    """bash -c SCRIPT with positional parameters ARGS, in an environment as empty as `env -i`
    leaves it plus HOME, PATH and `env`."""
    clean = {"HOME": HOME, "PATH": CLEAN_PATH, **(env or {})}
    args = ["env", "-i", *[f"{k}={v}" for k, v in clean.items()], "bash", "-c", script, "bash", *args]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def report(options: str = "", env: dict[str, str] | None = None, cwd: str = "/") -> dict[str, str]:
    # `set +euo pipefail` first: the prologue must turn them on itself.
    result = run_bash(f"set +euo pipefail; source {PROLOGUE} demo {options}\n{REPORT}", env, cwd)
    if result.returncode != 0:
        raise AssertionError(f"bash failed ({result.returncode}): {result.stderr}")
    values = {}
    for line in result.stdout.splitlines():
        name, _, value = line.partition("=")
        values[name] = value
    return values


class PrologueDefaultsTest(unittest.TestCase):
    def test_a_clean_environment_gets_every_default(self):
        v = report()
        root = str(REPO)
        self.assertEqual(v["REPO_ROOT"], f"{root} local")
        self.assertEqual(v["PIPELINE_CACHE"], f"{HOME}/.cache/pipeline exported")
        self.assertEqual(v["VENV"], f"{root}/.venv local")
        self.assertEqual(v["PYTHON"], f"{root}/.venv/bin/python local")
        # Outside the checkout: one cargo-lambda (and zig) for every checkout.
        self.assertEqual(v["LAMBDA_TOOLS"], f"{HOME}/.cache/pipeline/lambda-tools local")
        self.assertEqual(v["CARGO_LAMBDA"], f"{HOME}/.cache/pipeline/lambda-tools/bin/cargo-lambda exported")
        self.assertEqual(v["LOCAL_DIR"], f"{root}/.local local")
        self.assertEqual(v["RUN_DIR"], f"{root}/.local/run local")
        self.assertEqual(v["LOG_DIR"], f"{root}/.local/logs local")
        self.assertEqual(v["ENV_FILE"], f"{root}/.local/stack.env local")
        # Without --cargo, cargo builds wherever the caller's environment says.
        self.assertNotIn("CARGO_TARGET_DIR", v)
        self.assertNotIn("CARGO_TERM_COLOR", v)
        self.assertNotIn("PIPELINE_CHECKOUT", v)
        # Without --cd or --path, the working directory and PATH are the caller's.
        self.assertEqual(v["PWD"], "/")
        self.assertEqual(v["PATH"], CLEAN_PATH)
        self.assertEqual(v["ARGS"], "one two", "the script's own arguments are back after sourcing")
        options = v["OPTIONS"]
        self.assertIn("errexit", options)
        self.assertIn("nounset", options)
        self.assertTrue(options.endswith("pipefail=on"), options)

    def test_values_in_the_environment_win_over_the_defaults(self):
        v = report("--cargo", {
            "PIPELINE_CACHE": "/srv/cache", "PIPELINE_LOCAL_DIR": "/srv/local",
            "CARGO_TARGET_DIR": "/srv/target", "CARGO_TERM_COLOR": "always",
        })
        self.assertEqual(v["PIPELINE_CACHE"], "/srv/cache exported")
        self.assertEqual(v["LOCAL_DIR"], "/srv/local local")
        self.assertEqual(v["RUN_DIR"], "/srv/local/run local")
        self.assertEqual(v["ENV_FILE"], "/srv/local/stack.env local")
        self.assertEqual(v["CARGO_TARGET_DIR"], "/srv/target exported")
        self.assertEqual(v["CARGO_TERM_COLOR"], "always exported")

    def test_the_options_a_script_asks_for(self):
        root = str(REPO)
        v = report("--cd --cargo --path .venv/bin:node_modules/.bin")
        self.assertEqual(v["PWD"], root)
        self.assertEqual(v["CARGO_TARGET_DIR"], f"{HOME}/.cache/pipeline/target exported")
        self.assertEqual(v["CARGO_TERM_COLOR"], "never exported")
        # functions/contracts/build.rs rebuilds our crates when this changes.
        self.assertEqual(v["PIPELINE_CHECKOUT"], f"{root} exported")
        # --cargo puts the checkouts' shared cargo-lambda first, --path the repo's directories before it.
        self.assertEqual(v["PATH"], f"{root}/.venv/bin:{root}/node_modules/.bin:{HOME}/.cache/pipeline/lambda-tools/bin:{CLEAN_PATH}")
        self.assertEqual(v["ARGS"], "one two")

    def test_use_local_dir_moves_every_local_path(self):
        result = run_bash(f'source {PROLOGUE} demo; use_local_dir /srv/test; echo "$LOCAL_DIR $RUN_DIR $LOG_DIR $ENV_FILE"')
        self.assertEqual(result.stdout.split(), ["/srv/test", "/srv/test/run", "/srv/test/logs", "/srv/test/stack.env"])

    def test_log_and_die_carry_the_tag_and_die_its_status(self):
        result = run_bash(f"source {PROLOGUE} demo; log hello world; die broken; echo unreachable")
        self.assertEqual((result.returncode, result.stdout, result.stderr), (1, "", "[demo] hello world\n[demo] ERROR: broken\n"))
        result = run_bash(f"source {PROLOGUE} demo --spaced-log --die-status 2; log section; die broken")
        self.assertEqual((result.returncode, result.stderr), (2, "\n[demo] section\n[demo] ERROR: broken\n"))

    def test_an_unknown_option_or_a_missing_tag_stops_the_script(self):
        result = run_bash(f"source {PROLOGUE} demo --cdd; echo unreachable")
        self.assertEqual((result.returncode, result.stdout), (2, ""))
        self.assertIn("unknown option --cdd", result.stderr)
        # (With no arguments, `source` hands the prologue the script's own: the check below makes
        # every script name its tag.)
        result = run_bash(f"source {PROLOGUE}; echo unreachable", args=())
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("log tag", result.stderr)


class BuildBinariesTest(unittest.TestCase):
    """`build_binaries` runs cargo once for all the crates it is given; a stand-in `cargo` records
    each call."""

    def build(self, options: str, call: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        with tempfile.TemporaryDirectory() as tmp:
            fake = pathlib.Path(tmp) / "cargo"
            fake.write_text(f'#!/bin/sh\necho "$*" >>"{tmp}/calls"\n')
            fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
            result = run_bash(f'source {PROLOGUE} demo {options}; {call}; echo "BIN_DIR=$BIN_DIR"',
                              {"PATH": f"{tmp}:{CLEAN_PATH}"})
            calls = pathlib.Path(tmp) / "calls"
            return result, calls.read_text().splitlines() if calls.exists() else []

    def test_one_cargo_run_builds_every_crate(self):
        result, calls = self.build("--cargo", "build_binaries debug esm-emulator producer consumer")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(calls, ["build --locked -p esm-emulator -p producer -p consumer"])
        self.assertIn(f"BIN_DIR={HOME}/.cache/pipeline/target/debug", result.stdout)
        result, calls = self.build("--cargo", "build_binaries release pipeline-bench")
        self.assertEqual(calls, ["build --locked --release -p pipeline-bench"])
        self.assertIn(f"BIN_DIR={HOME}/.cache/pipeline/target/release", result.stdout)

    def test_it_refuses_an_unknown_profile_or_a_script_without_the_cargo_option(self):
        result, calls = self.build("--cargo", "build_binaries fast consumer")
        self.assertEqual((result.returncode, calls), (1, []))
        self.assertIn("unknown profile fast", result.stderr)
        result, calls = self.build("", "build_binaries debug consumer")
        self.assertEqual((result.returncode, calls), (1, []))
        self.assertIn("--cargo", result.stderr)


class TestRunnerEnvironmentTest(unittest.TestCase):
    """scripts/test.sh runs its stages against a test stack of its own; the stage gets what the
    prologue gives plus those ports and that data dir. A stand-in `npm` (the cdk stage's first
    command) records the environment and fails, so no stage does any work."""

    def stage_environment(self, extra: dict[str, str]) -> dict[str, str]:
        with tempfile.TemporaryDirectory() as tmp:
            fake = pathlib.Path(tmp) / "npm"
            fake.write_text(f'#!/bin/sh\nenv >"{tmp}/env"\npwd >"{tmp}/pwd"\nexit 3\n')
            fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
            env = {"PATH": f"{tmp}:{CLEAN_PATH}", "PIPELINE_TEST_ONLY": "cdk", **extra}
            result = run_bash(f"exec {REPO}/scripts/test.sh", env)
            self.assertNotEqual(result.returncode, 0, result.stdout)
            self.assertIn("cdk      FAILED", result.stdout)
            seen = dict(line.split("=", 1) for line in (pathlib.Path(tmp) / "env").read_text().splitlines() if "=" in line)
            seen["PWD"] = (pathlib.Path(tmp) / "pwd").read_text().strip()
            seen["PATH_PREFIX"] = seen["PATH"].removesuffix(f"{tmp}:{CLEAN_PATH}")
            return seen

    def test_the_test_stack_defaults_are_its_own(self):
        # An interactive pipeline's settings must not leak into the test stack.
        seen = self.stage_environment({"PIPELINE_LOCAL_DIR": "/srv/interactive", "PIPELINE_KAFKA_PORT": "19092"})
        root = str(REPO)
        self.assertEqual(seen["PIPELINE_LOCAL_DIR"], f"{root}/.local/test")
        self.assertEqual(seen["PIPELINE_KAFKA_PORT"], "39092")
        self.assertEqual(seen["PIPELINE_MOTO_PORT"], "35000")
        self.assertEqual(seen["PIPELINE_PG_PORT"], "35432")
        self.assertEqual(seen["PIPELINE_CACHE"], f"{HOME}/.cache/pipeline")
        self.assertEqual(seen["CARGO_TARGET_DIR"], f"{HOME}/.cache/pipeline/target")
        self.assertEqual(seen["CARGO_TERM_COLOR"], "never")
        self.assertEqual(seen["PATH_PREFIX"], f"{root}/.venv/bin:{root}/node_modules/.bin:{HOME}/.cache/pipeline/lambda-tools/bin:")
        self.assertEqual(seen["PWD"], root)
        # Shell variables stay in the shell.
        for name in ("REPO_ROOT", "LOCAL_DIR", "PYTHON", "VENV"):
            self.assertNotIn(name, seen)

    def test_the_test_variables_move_the_test_stack(self):
        seen = self.stage_environment({
            "PIPELINE_TEST_LOCAL_DIR": "/srv/t", "PIPELINE_TEST_KAFKA_PORT": "41092",
            "PIPELINE_TEST_MOTO_PORT": "41500", "PIPELINE_TEST_PG_PORT": "41432",
        })
        self.assertEqual(
            [seen[k] for k in ("PIPELINE_LOCAL_DIR", "PIPELINE_KAFKA_PORT", "PIPELINE_MOTO_PORT", "PIPELINE_PG_PORT")],
            ["/srv/t", "41092", "41500", "41432"],
        )


# A script that declares one of these again keeps a copy of the prologue.
REDECLARED = [
    (re.compile(r"^\s*(export\s+|local\s+)?(%s)=" % "|".join(PROVIDED + CARGO + ["PATH"]), re.M), "assigns a prologue variable"),
    (re.compile(r"^\s*(function\s+)?(log|die|use_local_dir)\s*\(\)", re.M), "defines a prologue function"),
    (re.compile(r"\.venv/bin/python|\$REPO_ROOT/\.venv\b"), "spells the venv path (use $PYTHON or $VENV)"),
    (re.compile(r"BASH_SOURCE\[0\]\}\"\)/\.\.\""), "finds the repository root itself"),
    (re.compile(r"\.cache/pipeline"), "spells the cache default (use $PIPELINE_CACHE)"),
]


class NoCopiesTest(unittest.TestCase):
    def test_every_script_starts_with_strict_mode_and_the_prologue(self):
        self.assertGreaterEqual(len(SCRIPTS), 10)
        for script in SCRIPTS:
            code = [line for line in script.read_text().splitlines() if line.strip() and not line.startswith("#")]
            with self.subTest(script=script.name):
                self.assertEqual(code[0], "set -euo pipefail")
                self.assertTrue(code[1].startswith(SOURCE_LINE), code[1])

    def test_no_script_declares_what_the_prologue_provides(self):
        for script in SCRIPTS:
            text = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("#"))
            for pattern, what in REDECLARED:
                with self.subTest(script=script.name, what=what):
                    self.assertIsNone(pattern.search(text), f"{script.name} {what}: {pattern.search(text)}")

    def test_every_script_that_builds_shares_one_target_dir(self):
        # The quick start (pipeline.sh) and the tests (test.sh) must reuse one build: a script that
        # runs cargo or cargo lambda without --cargo would build a second copy under the checkout.
        builds = re.compile(r"^\s*[^#\n]*\bcargo (lambda |run|build|test|nextest|clippy|install)", re.MULTILINE)
        for script in SCRIPTS:
            text = script.read_text()
            if script.name == "setup.sh" or not builds.search(text):
                continue
            source = next(line for line in text.splitlines() if line.startswith(SOURCE_LINE))
            with self.subTest(script=script.name):
                self.assertIn("--cargo", source.split())

    def test_scripts_build_binaries_through_the_prologue(self):
        # A script of its own `cargo build -p` loop would build the crates one at a time (no
        # parallelism across them) and drift from the set the others build.
        for script in SCRIPTS:
            with self.subTest(script=script.name):
                for line in script.read_text().splitlines():
                    code = line.split("#", 1)[0]
                    # test.sh's check builds each binary alone on purpose.
                    if "cargo build" in code and not (script.name == "test.sh" and 'cargo build --locked -p "$crate"' in code):
                        self.fail(f"{script.name} runs cargo build itself: {code.strip()}")

    def test_the_check_finds_a_copy(self):
        # The patterns above must match what the scripts used to repeat.
        copy = '\n'.join([
            'REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"',
            'export PIPELINE_CACHE="${PIPELINE_CACHE:-$HOME/.cache/pipeline}"',
            'export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PIPELINE_CACHE/target}"',
            'LOCAL_DIR="${PIPELINE_LOCAL_DIR:-$REPO_ROOT/.local}"',
            'PYTHON="$REPO_ROOT/.venv/bin/python"',
            'export PATH="$REPO_ROOT/.venv/bin:$PATH"',
            "log() { printf '[x] %s\\n' \"$*\" >&2; }",
        ])
        self.assertEqual([bool(p.search(copy)) for p, _ in REDECLARED], [True] * len(REDECLARED))


if __name__ == "__main__":
    unittest.main()
