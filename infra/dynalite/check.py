#!/usr/bin/env python3
"""Checks that the DynamoDB at --endpoint behaves as the service needs (infra/scripts/dynalite.sh check).

The operations of shared/src/store on a throwaway table with the keys and indexes of template.yaml's AppTable:
begins_with Queries on a GSI (paged past 1 MB), TransactWriteItems (applied, and cancelled by a condition),
BatchWriteItem, BatchGetItem, UpdateItem ADD counters, a conditional SET, and the TTL attribute. Exits 1 on the
first difference from DynamoDB's documented behaviour.
"""
import argparse
import sys
import uuid

import boto3
from botocore.exceptions import ClientError

ap = argparse.ArgumentParser()
ap.add_argument("--endpoint", default="http://127.0.0.1:4567")
args = ap.parse_args()
ddb = boto3.client("dynamodb", endpoint_url=args.endpoint, region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
table = f"c360-check-{uuid.uuid4().hex[:8]}"


def check(what: str, ok: bool) -> None:
    print(f"[check] {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        sys.exit(1)


def s(value: str) -> dict:
    return {"S": value}


def gsi(name: str) -> dict:
    return {"IndexName": name, "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": f"{name}pk", "KeyType": "HASH"},
                          {"AttributeName": f"{name}sk", "KeyType": "RANGE"}]}


def access(i: int, path: str) -> dict:
    return {"pk": s(f"USER#{i % 7}"), "sk": s(f"ACCESS#{i:016}"), "gsi2pk": s("ACCESSES"),
            "gsi2sk": s(f"{path}#{i:016}"), "pad": s("x" * 900)}


ddb.create_table(
    TableName=table, BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                          for n in ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk")],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    GlobalSecondaryIndexes=[gsi("gsi1"), gsi("gsi2")],
)
try:
    # 1,500 accesses of ~1 KB: 1,200 under /1/2/, 300 under /1/20/ (must not match the /1/2/ prefix).
    items = [access(i, "/1/2/3/" if i < 1200 else "/1/20/") for i in range(1500)]
    unprocessed = 0
    for start in range(0, len(items), 25):
        out = ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": it}} for it in items[start:start + 25]]})
        unprocessed += len(out.get("UnprocessedItems", {}).get(table, []))
    check("BatchWriteItem by 25 writes every item", unprocessed == 0)
    pages, found, key = 0, [], None
    while True:
        kw = {"ExclusiveStartKey": key} if key else {}
        out = ddb.query(TableName=table, IndexName="gsi2",
                        KeyConditionExpression="gsi2pk = :pk AND begins_with(gsi2sk, :p)",
                        ExpressionAttributeValues={":pk": s("ACCESSES"), ":p": s("/1/2/")}, **kw)
        pages += 1
        found += out["Items"]
        key = out.get("LastEvaluatedKey")
        if not key:
            break
    check(f"GSI begins_with Query finds the 1,200 accesses of /1/2/ only ({len(found)}, {pages} pages of <= 1 MB)",
          len(found) == 1200 and pages >= 2)
    check("GSI Query returns the sort-key order", [i["gsi2sk"]["S"] for i in found] == sorted(i["gsi2sk"]["S"] for i in found))
    out = ddb.query(TableName=table, KeyConditionExpression="pk = :pk", ConsistentRead=True,
                    ExpressionAttributeValues={":pk": s("USER#3")})
    check("table Query of one partition", len(out["Items"]) == len([i for i in range(1500) if i % 7 == 3]))
    out = ddb.batch_get_item(RequestItems={table: {"Keys": [{"pk": it["pk"], "sk": it["sk"]} for it in items[:3]]}})
    check("BatchGetItem", len(out["Responses"][table]) == 3)

    counter = {"pk": s("COUNTER#access"), "sk": s("#COUNTER")}
    for n, want in ((1, "1"), (10, "11")):
        out = ddb.update_item(TableName=table, Key=counter, UpdateExpression="ADD #v :n",
                              ExpressionAttributeNames={"#v": "value"}, ExpressionAttributeValues={":n": {"N": str(n)}},
                              ReturnValues="UPDATED_NEW")
        check(f"UpdateItem ADD {n} returns the new value {want}", out["Attributes"]["value"]["N"] == want)
    try:
        ddb.update_item(TableName=table, Key=counter, UpdateExpression="SET #v = :v",
                        ConditionExpression="attribute_not_exists(#v) OR #v < :v",
                        ExpressionAttributeNames={"#v": "value"}, ExpressionAttributeValues={":v": {"N": "5"}})
        check("conditional SET below the counter is refused", False)
    except ClientError as e:
        check("conditional SET below the counter is refused", e.response["Error"]["Code"] == "ConditionalCheckFailedException")

    user = {"pk": s("USER#u1"), "sk": s("#USER"), "gsi1pk": s("USERS"), "gsi1sk": s("u1")}
    guard = {"pk": s("EMAIL#u1@x"), "sk": s("#EMAIL")}
    new = "attribute_not_exists(pk)"
    ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": user, "ConditionExpression": new}},
                                            {"Put": {"TableName": table, "Item": guard, "ConditionExpression": new}}])
    check("TransactWriteItems writes both items",
          all("Item" in ddb.get_item(TableName=table, Key={"pk": k["pk"], "sk": k["sk"]}) for k in (user, guard)))
    try:
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": counter, "UpdateExpression": "ADD #v :n",
                        "ExpressionAttributeNames": {"#v": "value"}, "ExpressionAttributeValues": {":n": {"N": "1"}}}},
            {"Put": {"TableName": table, "Item": guard, "ConditionExpression": new}}])
        check("TransactWriteItems with a failed condition is cancelled", False)
    except ClientError as e:
        reasons = [r["Code"] for r in e.response.get("CancellationReasons", [])]
        check(f"TransactWriteItems with a failed condition is cancelled, reasons {reasons}",
              e.response["Error"]["Code"] == "TransactionCanceledException" and reasons == ["None", "ConditionalCheckFailed"])
    value = ddb.get_item(TableName=table, Key=counter)["Item"]["value"]["N"]
    print(f"[check] note: after the cancelled transaction the counter is {value} "
          f"({'rolled back' if value == '11' else 'NOT rolled back: the shim is not atomic'})")
    ddb.transact_write_items(TransactItems=[{"Delete": {"TableName": table, "Key": {"pk": guard["pk"], "sk": guard["sk"]},
                                                        "ConditionExpression": "attribute_exists(pk)"}}])
    check("TransactWriteItems Delete", "Item" not in ddb.get_item(TableName=table, Key={"pk": guard["pk"], "sk": guard["sk"]}))

    token = {"pk": s("REFRESH#j1"), "sk": s("#REFRESH"), "expires_at": {"N": "1"}}
    ddb.put_item(TableName=table, Item=token)
    kept = "Item" in ddb.get_item(TableName=table, Key={"pk": token["pk"], "sk": token["sk"]})
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"]
    check(f"an item with an expired TTL attribute is stored and readable (TTL status {ttl}; reads check expiry)", kept)
finally:
    ddb.delete_table(TableName=table)
