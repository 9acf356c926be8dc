import unittest

import fresh_tables


class FreshTablesTest(unittest.TestCase):
    def test_every_contract_table_has_the_consumer_variable_that_names_it(self):
        contract = fresh_tables.contracts.load()
        self.assertEqual(set(fresh_tables.TABLE_VARIABLES), set(contract.tables))
        for variable in fresh_tables.TABLE_VARIABLES.values():
            self.assertIn(variable, contract.env_vars)

    def test_fresh_names_keep_the_prefix_apart_from_the_stack_tables(self):
        contract = fresh_tables.contracts.load()
        named = fresh_tables.names(contract, "bench-pipeline-sqlite-42")
        self.assertEqual(len(set(named.values())), len(contract.tables))
        for key, name in named.items():
            self.assertEqual(name, f"bench-pipeline-sqlite-42-{contract.tables[key].name}")


if __name__ == "__main__":
    unittest.main()
