"""Test doubles for extension authors and osqsdk's own tests.

- ``ManagerDouble``: the manager side of osqueryd's extension socket, with osqueryd's
  registration rules and messages, health checks, routing and shutdown.
"""

from osqsdk.testing._manager import ManagerDouble, RegisteredExtension

__all__ = ["ManagerDouble", "RegisteredExtension"]
