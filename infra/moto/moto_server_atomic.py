"""moto_server whose DynamoDB writes are atomic, as DynamoDB's are.

moto serves requests on threads and its DynamoDB backend takes no lock: two conditional writes (or two
TransactWriteItems) on one item sent at the same instant can both pass their condition, and a Query can see
half of a transaction. DynamoDB guarantees neither can happen, and the service relies on it (one first
snapshot per request, job status transitions, uniqueness guards). This launcher runs the very same
moto_server with every DynamoDB backend read and write under one lock. Usage: as `moto_server`.

It also makes a Query read its partition only. moto answers every Query by sorting the whole table, then
keeping the items of the asked partition: a Query's cost grew with the table (a 20-item Query took 26 ms at
1,000 items, 296 ms at 30,000), so `make dev` slowed down as its request log grew. Here a Query of the base
table looks its partition up, and a Query of an index keeps the items whose index key matches, unsorted (moto
sorts what it keeps); everything else moto does (conditions, ranges, filters, order, paging) is unchanged.
"""
import functools
import inspect
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
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

_TABLE_QUERY = Table.query
_QUERY_SIGNATURE = inspect.signature(_TABLE_QUERY)


def _key_value(item, name):
    value = item.attrs.get(name)
    return _ABSENT if value is None else value


class _Absent:
    """Equal to nothing: stands for an index key attribute the item does not have."""

    def __eq__(self, other):
        return False

    __hash__ = None


_ABSENT = _Absent()


def _items_of(table, bucket):
    return list(bucket.values()) if table.range_key_attr else [bucket]


@functools.wraps(_TABLE_QUERY)
def _partition_query(self, *args, **kwargs):
    asked = _QUERY_SIGNATURE.bind(self, *args, **kwargs).arguments
    index_name, hash_key, conditions = asked.get("index_name"), asked.get("hash_key"), asked.get("hash_key_conditions")
    if not index_name and hash_key is not None:
        def candidates():
            bucket = self.items.get(hash_key)
            return [] if bucket is None else _items_of(self, bucket)
    elif index_name and conditions:
        def candidates():
            return [
                item
                for bucket in self.items.values()
                for item in _items_of(self, bucket)
                # DynamoType compares only with DynamoType: an item without the key is not in the index.
                if all(_key_value(item, name) == value for name, value in conditions)
            ]
    else:
        return _TABLE_QUERY(self, *args, **kwargs)
    # Under the backend lock: the table answers this Query only with its candidates.
    self.all_items = candidates
    try:
        return _TABLE_QUERY(self, *args, **kwargs)
    finally:
        del self.all_items


Table.query = _partition_query

if __name__ == "__main__":
    main(sys.argv[1:])
