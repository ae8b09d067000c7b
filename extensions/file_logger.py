#!/usr/bin/env python3
"""A logger extension: osquery results and status logs to rotated files.

    --logger_plugin=osqsdk_file   (osqueryd flag)

Environment: OSQSDK_LOG_DIR (default /var/log/osquery/osqsdk), OSQSDK_LOG_MAX_BYTES
(default 10485760), OSQSDK_LOG_BACKUPS (default 5). Results go to results.log, status logs
to status.log, one JSON line each, rotated by size.
"""

import json
import logging
import logging.handlers
import os
import threading

import osqsdk


def rotating(path, max_bytes, backups):
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups,
                                                   encoding="utf-8", errors="surrogateescape")
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


class FileLogger:
    def __init__(self, directory, max_bytes, backups):
        os.makedirs(directory, mode=0o750, exist_ok=True)
        self.results = rotating(os.path.join(directory, "results.log"), max_bytes, backups)
        self.status = rotating(os.path.join(directory, "status.log"), max_bytes, backups)
        self.lock = threading.Lock()

    def write(self, handler, line):
        record = logging.LogRecord("osqsdk_file", logging.INFO, "", 0, line, None, None)
        with self.lock:
            handler.emit(record)  # emit() rotates when the file would grow past max_bytes

    def log_result(self, record):
        self.write(self.results, record.raw)

    def log_status(self, records):
        for r in records:
            self.write(self.status, json.dumps({
                "hostIdentifier": r.host_identifier, "calendarTime": r.calendar_time,
                "unixTime": r.unix_time, "severity": int(r.severity), "filename": r.filename,
                "line": r.line, "message": r.message}))


def plugin():
    sink = FileLogger(os.environ.get("OSQSDK_LOG_DIR", "/var/log/osquery/osqsdk"),
                      int(os.environ.get("OSQSDK_LOG_MAX_BYTES", 10 * 1024 * 1024)),
                      int(os.environ.get("OSQSDK_LOG_BACKUPS", 5)))
    return osqsdk.LoggerPlugin("osqsdk_file", log_result=sink.log_result,
                               log_status=sink.log_status)


if __name__ == "__main__":
    osqsdk.run("osqsdk_file_logger", [plugin()], version="1.0.0")
