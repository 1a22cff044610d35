"""moto_server whose DynamoDB writes are atomic, as DynamoDB's are.

moto serves requests on threads and its DynamoDB backend takes no lock: two conditional writes (or two
TransactWriteItems) on one item sent at the same instant can both pass their condition, and a Query can see
half of a transaction. DynamoDB guarantees neither can happen, and the service relies on it (one first
snapshot per request, job status transitions, uniqueness guards). This launcher runs the very same
moto_server with every DynamoDB backend read and write under one lock. Usage: as `moto_server`.
"""
import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_LOCK = threading.RLock()
_OPERATIONS = ("get_item", "query", "scan", "put_item", "update_item", "delete_item", "transact_write_items")


def _atomic(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _LOCK:
            return method(*args, **kwargs)

    return locked


for _name in _OPERATIONS:
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    main(sys.argv[1:])
