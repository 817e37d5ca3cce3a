"""A webhook receiver as a team would write one: every request is verified with the
Standard Webhooks reference library (`standardwebhooks`), and each verified event is
appended, as a JSON line, to the file named by the first argument.

    receiver.py EVENTS_FILE PORT SECRET [--fail] [--down]

With --fail it verifies, records and then answers 500 to everything: a receiver that is
broken forever. A request whose signature does not verify is recorded with "verified":
false and answered 400. PORT 0 takes a free one. It prints `listening on 127.0.0.1:PORT`
once it accepts requests. With --down it holds the port, bound but not listening, so a
connection is refused as by a receiver that is down, prints `down on 127.0.0.1:PORT`, and
comes up when a line arrives on its standard input.
"""

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


def main() -> None:
    events_file, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    fail = "--fail" in sys.argv[4:]
    down = "--down" in sys.argv[4:]
    webhook = Webhook(secret)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                payload = webhook.verify(body, headers)
                verified = True
            except Exception:  # the library raises WebhookVerificationError and others
                payload, verified = None, False
            record = {
                "id": headers.get("webhook-id"),
                "verified": verified,
                "type": payload.get("type") if payload else None,
                "data": payload.get("data") if payload else None,
            }
            with lock, open(events_file, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
            status = 400 if not verified else 500 if fail else 204
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    # Bound at once and held: a port given up while the receiver is down could be taken by
    # any other program before it comes up.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    if down:
        print(f"down on 127.0.0.1:{port}", flush=True)
        sys.stdin.readline()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_name, server.server_port = "127.0.0.1", port
    server.server_activate()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
