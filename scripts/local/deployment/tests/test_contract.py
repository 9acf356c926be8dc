"""The harness's contract reader (scripts/local/contract.py) and local provisioning with a contract
that has one more topic of an existing payload kind: nothing in the scripts names the topics."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import tempfile
import unittest

import contract as contracts

PROVISION = pathlib.Path(contracts.__file__).resolve().parent / "provision.py"


def with_fourth_topic() -> dict:
    raw = json.loads(contracts.CONTRACT_PATH.read_text())
    extra = dict(raw["topics"]["sensorReadings"])
    extra.update(name="sensor-readings-eu", envVar="SENSOR_EU_TOPIC", consumerGroup="pipeline-sensor-readings-eu")
    raw["topics"]["sensorReadingsEu"] = extra
    return raw


class ContractReaderTest(unittest.TestCase):
    def test_the_repository_contract_is_read_in_file_order(self):
        c = contracts.load()
        self.assertEqual([t.key for t in c.topics], ["sensorReadings", "storeEvents", "explicitEvents"])
        self.assertEqual({t.payload for t in c.topics}, set(contracts.PAYLOAD_KINDS))
        self.assertEqual(set(c.tables), set(contracts.TABLE_KEYS))

    def test_an_unknown_payload_kind_or_a_shared_variable_is_refused(self):
        raw = with_fourth_topic()
        raw["topics"]["sensorReadingsEu"]["payload"] = "Generic"
        with self.assertRaisesRegex(contracts.ContractError, "payload"):
            contracts.parse(raw)
        raw = with_fourth_topic()
        raw["topics"]["sensorReadingsEu"]["envVar"] = "SENSOR_TOPIC"
        with self.assertRaisesRegex(contracts.ContractError, "env_var"):
            contracts.parse(raw)

    def test_provisioning_creates_and_names_a_fourth_topic_with_no_code_change(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "pipeline.json"
            path.write_text(json.dumps(with_fourth_topic()))
            (pathlib.Path(tmp) / "schemas").symlink_to(contracts.CONTRACT_PATH.parent / "schemas")
            out = subprocess.run([sys.executable, str(PROVISION), "--dry-run", "--contract", str(path)],
                                 check=True, capture_output=True, text=True).stdout.splitlines()
        self.assertIn("topic sensor-readings-eu partitions=4 config={'retention.ms': '-1', 'cleanup.policy': 'delete'}", out)
        self.assertIn("env SENSOR_EU_TOPIC=sensor-readings-eu", out)
        self.assertIn("env SENSOR_TOPIC=sensor-readings", out)


if __name__ == "__main__":
    unittest.main()
