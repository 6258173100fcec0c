"""moto's server mode, made faithful where the tests rely on it, and quiet.

- Conditional writes are atomic on DynamoDB. moto's threaded server checks a
  condition and writes the item without a lock, so two concurrent
  conditional UpdateItems can both apply (seen: a run finished twice in the
  chaos test). One lock around DynamoDB's item writes restores the
  guarantee the engine is built on; SQS is untouched, so long polls still
  wait side by side.
- No per-request access log: under the chaos test's load, writing one line
  per request costs moto about a tenth of its time. Errors are still logged.

Arguments are moto_server's own (-H HOST -p PORT).
"""
import functools
import logging
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_WRITE_LOCK = threading.RLock()


def _atomic(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _WRITE_LOCK:
            return method(*args, **kwargs)

    return locked


for _name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

logging.getLogger("werkzeug").setLevel(logging.ERROR)
sys.exit(main())
