"""flask_receiver.py -- a Dialgen webhook receiver written the way the
Dialgen documentation's Python sample is (Flask, request.json), plus the
signature check over the raw body, idempotency by id, and "respond first,
process afterwards" (a worker thread takes the processing).

    WEBHOOK_SECRET=whsec_... PORT=3002 python3 flask_receiver.py
(Debian: apt-get install python3-flask)
"""
import hashlib
import hmac
import logging
import os
import queue
import sys
import threading

from flask import Flask, jsonify, request

# logging, not print: request threads and the processing thread write at
# the same time, and a log record is written as one whole line.
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
log = logging.getLogger("receiver")
app = Flask(__name__)
SECRET = os.environ["WEBHOOK_SECRET"].encode()
processed = set()
lock = threading.Lock()
work = queue.Queue()


def verify(req):
    expected = hmac.new(SECRET, req.get_data(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(req.headers.get("x-dialgen-signature", ""), expected)


def first_time(key):
    with lock:
        if key in processed:
            return False
        processed.add(key)
        return True


@app.route("/webhooks/call-complete", methods=["POST"])
def call_complete():
    if not verify(request):
        log.info("Invalid signature")
        return jsonify({"error": "Invalid signature"}), 401
    data = request.json
    call_data = data["callData"]
    if not first_time(call_data["id"]):
        log.info(f"Duplicate call {call_data['id']}")
        return jsonify({"received": True, "duplicate": True}), 200
    work.put(("call", data))
    return jsonify({"received": True}), 200


@app.route("/webhooks/batch-complete", methods=["POST"])
def batch_complete():
    if not verify(request):
        log.info("Invalid signature")
        return jsonify({"error": "Invalid signature"}), 401
    data = request.json
    if not first_time("batch:" + data["batchId"]):
        log.info(f"Duplicate batch {data['batchId']}")
        return jsonify({"received": True, "duplicate": True}), 200
    work.put(("batch", data))
    return jsonify({"received": True}), 200


def processor():
    while True:
        kind, data = work.get()
        if kind == "call":
            c = data["callData"]
            log.info(f"Call {c['id']} completed (success={data['success']}, "
                     f"duration {c['duration']}s)")
        else:
            log.info(f"Batch {data['batchId']} completed: success rate "
                     f"{data['statistics']['successRate']}%")


if __name__ == "__main__":
    threading.Thread(target=processor, daemon=True).start()
    port = int(os.environ.get("PORT", "3002"))
    log.info(f"listening on {port}")
    app.run(host="127.0.0.1", port=port, threaded=True)
