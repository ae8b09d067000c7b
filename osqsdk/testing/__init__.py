"""Test doubles for extension authors and osqsdk's own tests.

- ``ManagerDouble``: the manager side of osqueryd's extension socket, with osqueryd's
  registration rules and messages, health checks, routing and shutdown.
- ``launch_extension``: start an extension file the way osqueryd does (its permission
  checks, its argv, its environment).
- ``LokiReceiver``: a Loki push endpoint with the distributor's validation rules and
  fault injection (outage, slow answers, scripted statuses, connection resets).
"""

from osqsdk.testing._manager import ManagerDouble, RegisteredExtension
from osqsdk.testing._launch import launch_extension
from osqsdk.testing._loki import LokiReceiver

__all__ = ["LokiReceiver", "ManagerDouble", "RegisteredExtension", "launch_extension"]
