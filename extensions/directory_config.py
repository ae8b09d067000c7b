#!/usr/bin/env python3
"""A config extension: serve osquery.conf and its packs from a directory.

    --config_plugin=osqsdk_directory --config_refresh=60   (osqueryd flags)

Environment: OSQSDK_CONFIG_DIR (default /etc/osquery/osqsdk). The directory holds
osquery.conf; packs it names by path ("packs": {"ir": "packs/incident-response.conf"}) or
by glob ("packs": {"*": "packs/*.conf"}) must be inside it. A broken edit is logged and the
last good config keeps being served; osqueryd picks up good edits every --config_refresh.
"""

import os

import osqsdk

if __name__ == "__main__":
    root = os.environ.get("OSQSDK_CONFIG_DIR", "/etc/osquery/osqsdk")
    osqsdk.run("osqsdk_directory_config",
               [osqsdk.DirectoryConfig(root, name="osqsdk_directory")], version="1.0.0")
