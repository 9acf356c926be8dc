"""One TLS crypto provider in the workspace, ring, and every AWS SDK configuration loaded with the
HTTPS client that uses it.

rskafka links ring for Kafka's TLS; the AWS SDK's default HTTPS client would add aws-lc, a second
C crypto build of about two CPU-minutes in the first build (`cargo build --timings`, 2026-12-02).
The workspace therefore builds the SDK without its default client and
`pipeline_msk_auth::sdk_config_loader` sets one on ring. A configuration loaded any other way has
no HTTP client, and its first request fails at run time, so this test finds such loaders before
a run does.
"""
from __future__ import annotations

import pathlib
import re
import tomllib
import unittest

REPO = pathlib.Path(__file__).resolve().parents[3]
LOADER_HOME = REPO / "functions" / "msk-auth" / "src" / "lib.rs"
# aws-config's own entry points, each of which would load a configuration without our client.
DEFAULT_LOADERS = re.compile(r"aws_config::(defaults|load_defaults|from_env|load_from_env)\s*\(|use aws_config::(defaults|load_defaults|from_env|load_from_env)\b")
# Builders that need the client (or a configuration that has it) within the same expression.
BUILDERS_NEEDING = {
    re.compile(r"SdkConfig::builder\(\)"): "http_client(",
    re.compile(r"AssumeRoleProvider::builder\("): ".configure(",
}
# How far (in lines) the expression may run on.
EXPRESSION_LINES = 10


def rust_sources() -> list[pathlib.Path]:
    return [
        source
        for root in (REPO / "functions", REPO / "bench")
        for source in sorted(root.rglob("*.rs"))
        if source != LOADER_HOME and "target" not in source.parts
    ]


class OneTlsProviderTest(unittest.TestCase):
    def test_no_aws_lc_in_the_dependency_graph(self):
        lock = tomllib.loads((REPO / "Cargo.lock").read_text())
        names = {package["name"] for package in lock["package"]}
        self.assertTrue({"ring", "rustls"} <= names, "the check reads the right lock file")
        self.assertFalse(names & {"aws-lc-sys", "aws-lc-rs"}, "a dependency asks for aws-lc (an SDK crate's default-https-client?)")

    def test_no_sdk_crate_asks_for_its_default_https_client(self):
        dependencies = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["dependencies"]
        for name, spec in dependencies.items():
            if name.startswith("aws-sdk-") or name == "aws-config":
                with self.subTest(name):
                    self.assertIs(spec.get("default-features"), False)
                    self.assertNotIn("default-https-client", spec.get("features", []))

    def test_every_sdk_configuration_comes_from_the_shared_loader(self):
        offenders = []
        for source in rust_sources():
            lines = source.read_text().splitlines()
            for number, line in enumerate(lines, 1):
                if DEFAULT_LOADERS.search(line):
                    offenders.append(f"{source.relative_to(REPO)}:{number}: {line.strip()}")
                for builder, needed in BUILDERS_NEEDING.items():
                    expression = "\n".join(lines[number - 1:number - 1 + EXPRESSION_LINES])
                    if builder.search(line) and needed not in expression:
                        offenders.append(f"{source.relative_to(REPO)}:{number}: {line.strip()} (without {needed})")
        self.assertEqual(offenders, [], "load through pipeline_msk_auth::sdk_config_loader (or pipeline_adapters::aws)")
        self.assertRegex(LOADER_HOME.read_text(), DEFAULT_LOADERS, "the loader itself starts from aws-config's defaults")


if __name__ == "__main__":
    unittest.main()
