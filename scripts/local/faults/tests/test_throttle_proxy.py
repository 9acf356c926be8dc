"""The proxy's stats file under concurrent requests (every request rewrites it)."""

import json
import os
import tempfile
import threading
import unittest

from faults import throttle_proxy


class StatsFileTest(unittest.TestCase):
    def test_concurrent_writers_never_fail_and_leave_a_whole_file(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "stats.json")
            proxy = throttle_proxy.Proxy("http://127.0.0.1:9", 0, {"dynamodb"}, 1, path, {})
            proxy.decide("dynamodb")
            errors: list[Exception] = []

            def write_many():
                try:
                    for _ in range(200):
                        proxy.write_stats()
                except OSError as error:  # the race surfaced as FileNotFoundError from os.replace
                    errors.append(error)

            threads = [threading.Thread(target=write_many) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            self.assertEqual(errors, [])
            with open(path) as stats:
                self.assertEqual(json.load(stats), {"dynamodb": {"forwarded": 1}})


if __name__ == "__main__":
    unittest.main()
