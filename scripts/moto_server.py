"""moto's server mode, made faithful where the tests rely on it, and quiet.

- Conditional writes are atomic on DynamoDB. moto's threaded server checks a
  condition and writes the item without a lock, so two concurrent
  conditional UpdateItems can both apply (seen: a run finished twice in the
  chaos test). One lock around DynamoDB's item writes restores the
  guarantee the engine is built on; SQS is untouched, so long polls still
  wait side by side.
- SQS receives cost what SQS's do. moto checks each received message's
  retention by computing every attribute of its queue (three scans of all
  its messages), three times over; under the chaos test that was most of
  moto's time. The same rules are applied here from the one attribute each
  needs.
- No per-request access log: under the chaos test's load, writing one line
  per request costs moto about a tenth of its time. Errors are still logged.

Arguments are moto_server's own (-H HOST -p PORT).
"""
import functools
import logging
import sys
import threading

from moto.core.utils import unix_time
from moto.dynamodb.models import DynamoDBBackend
from moto.server import main
from moto.sqs.exceptions import InvalidAttributeName
from moto.sqs.models import SQSBackend

_WRITE_LOCK = threading.RLock()


def _atomic(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _WRITE_LOCK:
            return method(*args, **kwargs)

    return locked


for _name in ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))



def _within_retention(self, queue_name, message):
    retention_s = int(self.get_queue(queue_name).message_retention_period)
    return retention_s + message.sent_timestamp / 1000 > unix_time()


def _queue_attributes(self, queue_name, attribute_names):
    queue = self.get_queue(queue_name)
    if not attribute_names:
        return {}
    valid = ["All"] + queue.BASE_ATTRIBUTES + queue.FIFO_ATTRIBUTES + queue.KMS_ATTRIBUTES
    invalid = next((name for name in attribute_names if name not in valid), None)
    if invalid is not None:
        raise InvalidAttributeName(invalid)
    current = queue.attributes
    if "All" in attribute_names:
        return current
    return {name: current[name] for name in attribute_names if current.get(name) is not None}


SQSBackend.is_message_valid_based_on_retention_period = _within_retention
SQSBackend.get_queue_attributes = _queue_attributes

logging.getLogger("werkzeug").setLevel(logging.ERROR)
sys.exit(main())
