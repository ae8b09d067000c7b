"""Test doubles for extension authors and osqsdk's own tests.

- ``ManagerDouble``: the manager side of osqueryd's extension socket, with osqueryd's
  registration rules and messages, health checks, routing and shutdown.
- ``launch_extension``: start an extension file the way osqueryd does (its permission
  checks, its argv, its environment).
"""

from osqsdk.testing._manager import ManagerDouble, RegisteredExtension
from osqsdk.testing._launch import launch_extension

__all__ = ["ManagerDouble", "RegisteredExtension", "launch_extension"]
