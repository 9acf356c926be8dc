"""Every crate of ours is rebuilt when the shared target serves another checkout.

The scripts build every checkout into one target directory, and cargo judges freshness by file
times, so a crate could hand one checkout another checkout's build (whose compiled
`CARGO_MANIFEST_DIR` reads the other tree). `functions/contracts/build.rs` reruns, and rebuilds,
when `PIPELINE_CHECKOUT` (exported by the prologue's `--cargo`) changes; a crate gets that either
by depending on pipeline-contracts or by using the script as its own.
"""
from __future__ import annotations

import pathlib
import tomllib
import unittest

REPO = pathlib.Path(__file__).resolve().parents[3]
CONTRACTS_BUILD_SCRIPT = REPO / "functions" / "contracts" / "build.rs"
# The contracts crate owns the script; the feature union is a manifest of third-party features
# with no code of its own.
EXEMPT = {"pipeline-contracts", "pipeline-feature-union"}


def members() -> list[pathlib.Path]:
    workspace = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]
    found: list[pathlib.Path] = []
    for pattern in workspace["members"]:
        found += sorted(p for p in REPO.glob(pattern) if (p / "Cargo.toml").is_file())
    return found


def rebuilt_for_another_checkout(crate_dir: pathlib.Path) -> bool:
    manifest = tomllib.loads((crate_dir / "Cargo.toml").read_text())
    if "pipeline-contracts" in manifest.get("dependencies", {}):
        return True
    build = manifest["package"].get("build")
    return isinstance(build, str) and (crate_dir / build).resolve() == CONTRACTS_BUILD_SCRIPT


class CheckoutRebuildTest(unittest.TestCase):
    def test_every_crate_of_ours_is_rebuilt_for_another_checkout(self):
        crates = {tomllib.loads((d / "Cargo.toml").read_text())["package"]["name"]: d for d in members()}
        self.assertIn("consumer", crates, "the workspace members were not found")
        missing = [name for name, d in crates.items() if name not in EXEMPT and not rebuilt_for_another_checkout(d)]
        self.assertEqual(missing, [], "depend on pipeline-contracts or set build = \"../contracts/build.rs\"")

    def test_the_script_tracks_the_variable_the_prologue_exports(self):
        script = CONTRACTS_BUILD_SCRIPT.read_text()
        self.assertIn("cargo:rerun-if-env-changed=PIPELINE_CHECKOUT", script)
        prologue = (REPO / "scripts" / "lib" / "prologue.sh").read_text()
        self.assertIn('export PIPELINE_CHECKOUT="$REPO_ROOT"', prologue)


if __name__ == "__main__":
    unittest.main()
