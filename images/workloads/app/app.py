"""A small JSON web service as Python images run it: /app/.venv/bin/python /app/app.py."""

import json
import os
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DB = os.environ.get("APP_DB", "/tmp/app.db")


def store():
    connection = sqlite3.connect(DB)
    connection.execute("CREATE TABLE IF NOT EXISTS visits (path TEXT)")
    return connection


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with store() as connection:
            connection.execute("INSERT INTO visits VALUES (?)", (self.path,))
            count = connection.execute("SELECT count(*) FROM visits").fetchone()[0]
        body = json.dumps({"path": self.path, "visits": count}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()
