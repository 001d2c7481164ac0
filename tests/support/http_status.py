"""A plain HTTP server that answers every POST with one fixed status, for what a real collector
will not do on demand: refuse every request with 503 or 429 (retryable) or 400 (final).

Usage: <venv>/bin/python tests/support/http_status.py DIR STATUS [RETRY_AFTER]
  DIR     gets `port` (written once listening on 127.0.0.1, port chosen by the kernel) and
          `requests` (one line per request received: its body length)
  STATUS  the HTTP status of every answer; RETRY_AFTER, if given, is sent as Retry-After
Runs until killed.
"""

import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out_dir, status = sys.argv[1], int(sys.argv[2])
retry_after = sys.argv[3] if len(sys.argv) > 3 else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with open(os.path.join(out_dir, "requests"), "a") as f:
            f.write(f"{len(body)}\n")
        text = b"scripted answer"
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(text)))
        if retry_after is not None:
            self.send_header("retry-after", retry_after)
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(out_dir, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(out_dir, "port.tmp"), os.path.join(out_dir, "port"))
server.serve_forever()
