"""Test doubles for extension authors and osqsdk's own tests.

- ``ManagerDouble``: the manager side of osqueryd's extension socket, with osqueryd's
  registration rules and messages, health checks, routing and shutdown.
- ``launch_extension``: start an extension file the way osqueryd does (its permission
  checks, its argv, its environment); ``ManagerDouble.wait_for`` reports a child that dies
  before registering (``ExtensionExited``) with its exit code and last stderr lines.
- ``LokiReceiver``: a Loki push endpoint with the distributor's validation rules and
  fault injection (outage, slow answers, scripted statuses, connection resets).
"""

from osqsdk.extension._launch import ExtensionProcess, launch_extension
from osqsdk.extension._manager import ExtensionExited, ManagerDouble, RegisteredExtension
from osqsdk.loki._receiver import LokiReceiver

__all__ = ["ExtensionExited", "ExtensionProcess", "LokiReceiver", "ManagerDouble",
           "RegisteredExtension", "launch_extension"]
