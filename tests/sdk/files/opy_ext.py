"""An osquery-python 3.1.1 extension, unchanged: table, logger and config plugins."""
import json
import os

import osquery
from osquery.extensions.ttypes import ExtensionStatus

LOG = os.environ.get("OPY_LOG", "/dev/null")


@osquery.register_plugin
class LegacyTable(osquery.TablePlugin):
    def name(self):
        return "legacy_table"

    def columns(self):
        return [osquery.TableColumn(name="a", type=osquery.STRING),
                osquery.TableColumn(name="flag", type=osquery.INTEGER),
                osquery.TableColumn(name="big", type="BIGINT")]

    def generate(self, context):
        return [{"a": "x", "flag": True, "big": 2**40, "junk": 1},
                {"a": None, "flag": False, "big": None}]


@osquery.register_plugin
class LegacyLogger(osquery.LoggerPlugin):
    def name(self):
        return "legacy_logger"

    def log_string(self, value):
        with open(LOG, "a") as f:
            f.write(value + "\n")
        return ExtensionStatus(code=0, message="OK")


@osquery.register_plugin
class LegacyConfig(osquery.ConfigPlugin):
    def name(self):
        return "legacy_config"

    def content(self):
        return [{"main": json.dumps({"schedule": {"t": {"query": "select 1", "interval": 60}}})}]


if __name__ == "__main__":
    osquery.start_extension(name="legacy", version="0.0.1")
