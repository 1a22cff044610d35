#!/usr/bin/env python3
"""Create the data resources of template.yaml in the local AWS emulator.

template.yaml is the single source of truth: this script translates it offline with
aws-sam-translator (no AWS call), keeps the data resources (AWS::DynamoDB::Table, AWS::SQS::Queue,
AWS::S3::Bucket) and creates each of them with direct boto3 calls against AWS_ENDPOINT_URL (moto
on 127.0.0.1:4566 by default, or any emulator speaking the AWS wire protocols); tables go to
AWS_ENDPOINT_URL_DYNAMODB instead when it is set (dynalite for the load runs). Physical names are
deterministic: ``<prefix>-<LogicalId>`` (lower-cased for buckets), so tests and the dev server can
find them. Existing resources are kept (their settings are re-applied where that is harmless).

Then it resolves the ``Globals.Function.Environment.Variables`` of the template: every variable whose
value is a ``!Ref``/``!GetAtt`` of a created resource becomes the local name/URL (queue URL for
``!Ref`` of a queue, name for tables and buckets), and WS_MANAGEMENT_ENDPOINT points at the dev server
(``http://127.0.0.1:${PORT:-8000}/ws-management``), which plays the API Gateway Management API
locally. Those ``KEY=VALUE`` lines go to ``--env-out`` (default ``.dev/resources.env``).

Usage (with the tools venv's python, see infra/scripts/tools.sh):
    bootstrap.py                         # create/keep resources with prefix c360-local, write .dev/resources.env
    bootstrap.py --prefix t-123          # another isolated set (tests)
    bootstrap.py --prefix t-123 --delete # delete that set (alias: --reset-prefix)
    bootstrap.py --recreate              # delete then create (fresh, empty resources)
    bootstrap.py --check                 # only translate the template (offline SAM validation), no AWS call
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

# Never let an AWS client reach real AWS or the EC2 metadata service from here: dummy credentials
# and a region are forced before boto3 is imported.
os.environ["AWS_ACCESS_KEY_ID"] = "test"
os.environ["AWS_SECRET_ACCESS_KEY"] = "test"
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("AWS_DEFAULT_REGION", os.environ["AWS_REGION"])

try:
    import boto3  # noqa: E402
    import samtranslator  # noqa: E402,F401
    from botocore.config import Config  # noqa: E402
    from botocore.exceptions import ClientError  # noqa: E402
except ImportError as _e:  # run with the tools venv: .tools/venv/bin/python infra/bootstrap.py
    sys.exit(f"[bootstrap] {_e}: run it with the tools venv's python (infra/scripts/tools.sh installs it)")

REPO = Path(__file__).resolve().parent.parent
DATA_TYPES = ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::S3::Bucket")
DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
ACCOUNT_ID = os.environ.get("C360_EMULATOR_ACCOUNT_ID", "123456789012")  # moto's default account


def log(msg: str) -> None:
    print(f"[bootstrap] {msg}", flush=True)


# --------------------------------------------------------------------------------------------------
# Template translation
# --------------------------------------------------------------------------------------------------


def load_sam(template: Path) -> dict:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(template.read_text())


def translate(sam: dict, params: dict[str, Any]) -> dict:
    """SAM -> CloudFormation, fully offline."""
    import copy

    from samtranslator.public.translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class NoManagedPolicies(ManagedPolicyLoader):  # no IAM call: managed policies are not needed here
        def __init__(self) -> None:
            pass

        def load(self) -> dict:
            return {}

    for name in ("samtranslator", "botocore", "boto3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sam = copy.deepcopy(sam)
    for res in sam.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            # The code is irrelevant for translation; a dummy S3 URI avoids any packaging step.
            res.setdefault("Properties", {})["CodeUri"] = "s3://local-dummy/code.zip"
    return transform(sam, params, NoManagedPolicies())


def parameter_values(sam: dict, overrides: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in (sam.get("Parameters") or {}).items():
        if "Default" in spec:
            values[name] = spec["Default"]
    values.update(overrides)
    return values


# --------------------------------------------------------------------------------------------------
# Intrinsic functions (the subset data resources use)
# --------------------------------------------------------------------------------------------------


class Unresolved(Exception):
    pass


class Resolver:
    def __init__(self, params: dict[str, Any], region: str) -> None:
        self.params = params
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "local",
            "AWS::NoValue": None,
        }
        self.refs: dict[str, Any] = {}  # logical id -> Ref value
        self.atts: dict[str, dict[str, Any]] = {}  # logical id -> {attr: value}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.params:
            return self.params[name]
        raise Unresolved(f"Ref {name}")

    def getatt(self, name: str, attr: str) -> Any:
        try:
            return self.atts[name][attr]
        except KeyError:
            raise Unresolved(f"GetAtt {name}.{attr}") from None

    def sub(self, text: str, local: dict[str, Any]) -> str:
        def repl(m: re.Match) -> str:
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in local:
                return str(self.resolve(local[expr]))
            if "." in expr and not expr.startswith("AWS::"):
                res, attr = expr.split(".", 1)
                return str(self.getatt(res, attr))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not None]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                res, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.getatt(res, attr)
            if fn == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(arg[0], arg[1])
                return self.sub(arg, {})
            if fn == "Fn::Join":
                sep, items = arg
                return sep.join(str(x) for x in self.resolve(items))
            if fn == "Fn::Select":
                idx, items = arg
                return self.resolve(items)[int(self.resolve(idx))]
            if fn.startswith("Fn::"):
                raise Unresolved(f"{fn} is not supported by infra/bootstrap.py")
        out = {}
        for k, v in value.items():
            r = self.resolve(v)
            if r is not None:
                out[k] = r
        return out


def references(value: Any) -> set[str]:
    """Logical ids a value depends on (Ref / GetAtt / Sub)."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::GetAtt":
                found.add(v[0] if isinstance(v, list) else v.split(".", 1)[0])
            elif k == "Fn::Sub":
                text = v[0] if isinstance(v, list) else v
                for expr in re.findall(r"\$\{([^}!]+)\}", text):
                    found.add(expr.split(".", 1)[0])
                if isinstance(v, list):
                    found |= references(v[1])
            else:
                found |= references(v)
    return found


def creation_order(resources: dict[str, dict]) -> list[str]:
    """Topological order over the data resources (e.g. DLQs before the queues redriving to them)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise SystemExit(f"circular reference among data resources at {name}")
        state[name] = 1
        for dep in sorted(references(resources[name].get("Properties", {}))):
            if dep in resources:
                visit(dep)
        state[name] = 2
        order.append(name)

    type_rank = {t: i for i, t in enumerate(DATA_TYPES)}
    for name in sorted(resources, key=lambda n: (type_rank[resources[n]["Type"]], n)):
        visit(name)
    return order


# --------------------------------------------------------------------------------------------------
# Resource handlers
# --------------------------------------------------------------------------------------------------


def physical_name(prefix: str, logical_id: str, rtype: str, props: dict) -> str:
    name = f"{prefix}-{logical_id}"
    if rtype == "AWS::S3::Bucket":
        name = name.lower()
    if rtype == "AWS::SQS::Queue" and str(props.get("FifoQueue", "")).lower() == "true":
        name += ".fifo"
    return name


def cfn_tags(props: dict) -> list[dict]:
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("Tags", [])]


class Emulator:
    def __init__(self, endpoint: str, dynamodb_endpoint: str, region: str) -> None:
        cfg = Config(
            region_name=region,
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"},
        )
        kw = {"endpoint_url": endpoint, "region_name": region, "config": cfg}
        self.region = region
        self.ddb = boto3.client("dynamodb", **{**kw, "endpoint_url": dynamodb_endpoint})
        self.sqs = boto3.client("sqs", **kw)
        self.s3 = boto3.client("s3", **kw)

    # ---- DynamoDB -------------------------------------------------------------------------------

    def table(self, name: str, props: dict) -> dict:
        created = False
        try:
            desc = self.ddb.describe_table(TableName=name)["Table"]
        except ClientError as e:
            if e.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            req: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PROVISIONED"),
            }
            if req["BillingMode"] == "PROVISIONED":
                req["ProvisionedThroughput"] = props.get(
                    "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
                )
            for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if props.get(key):
                    req[key] = props[key]
            sse = props.get("SSESpecification")
            if sse:
                req["SSESpecification"] = {
                    k2: sse[k1]
                    for k1, k2 in (("SSEEnabled", "Enabled"), ("SSEType", "SSEType"), ("KMSMasterKeyId", "KMSMasterKeyId"))
                    if k1 in sse
                }
            stream = props.get("StreamSpecification")
            if stream:
                req["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
            if props.get("Tags"):
                req["Tags"] = cfn_tags(props)
            desc = self.ddb.create_table(**req)["TableDescription"]
            created = True
            for _ in range(100):
                if desc.get("TableStatus") == "ACTIVE":
                    break
                time.sleep(0.1)
                desc = self.ddb.describe_table(TableName=name)["Table"]
        if not created:
            self.add_missing_indexes(name, props, desc)

        ttl = props.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            # moto's CloudFormation ignores TimeToLiveSpecification; set it explicitly.
            cur = self.ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if cur.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                try:
                    self.ddb.update_time_to_live(
                        TableName=name,
                        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                    )
                except ClientError as e:  # dynalite has no TTL; reads check expiry themselves (lazy deletion)
                    log(f"  note: TTL not set on {name}: {e.response['Error']['Code']}")
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and str(pitr.get("PointInTimeRecoveryEnabled")).lower() == "true":
            try:
                self.ddb.update_continuous_backups(
                    TableName=name,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
            except ClientError as e:  # not every emulator implements it; it changes nothing locally
                log(f"  note: point-in-time recovery not set on {name}: {e.response['Error']['Code']}")
        return {
            "created": created,
            "ref": name,
            "atts": {"Arn": desc["TableArn"], "StreamArn": desc.get("LatestStreamArn", "")},
            "detail": name,
        }

    def add_missing_indexes(self, name: str, props: dict, desc: dict) -> None:
        """A table made by an older template gains the indexes added since (one at a time, as DynamoDB wants)."""
        have = {i["IndexName"] for i in desc.get("GlobalSecondaryIndexes", [])}
        definitions = {d["AttributeName"]: d for d in props["AttributeDefinitions"]}
        for index in props.get("GlobalSecondaryIndexes", []):
            if index["IndexName"] in have:
                continue
            # The table's definitions and the new index's: moto replaces the table's with those sent.
            used = list({d["AttributeName"]: d for d in desc.get("AttributeDefinitions", [])}.values())
            used += [definitions[k["AttributeName"]] for k in index["KeySchema"] if k["AttributeName"] not in
                     {d["AttributeName"] for d in used}]
            create = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            if props.get("BillingMode", "PROVISIONED") == "PROVISIONED":
                create["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            log(f"  adding index {index['IndexName']} to {name}")
            self.ddb.update_table(
                TableName=name, AttributeDefinitions=used, GlobalSecondaryIndexUpdates=[{"Create": create}]
            )
            for _ in range(300):
                current = self.ddb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
                if all(i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in current):
                    break
                time.sleep(0.1)

    def delete_table(self, name: str) -> bool:
        try:
            self.ddb.delete_table(TableName=name)
            return True
        except ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return False
            raise

    # ---- SQS ------------------------------------------------------------------------------------

    @staticmethod
    def queue_attributes(props: dict) -> dict[str, str]:
        attrs: dict[str, str] = {}
        for key, value in props.items():
            if key in ("QueueName", "Tags"):
                continue
            if isinstance(value, (dict, list)):
                attrs[key] = json.dumps(value, separators=(",", ":"))
            elif isinstance(value, bool):
                attrs[key] = "true" if value else "false"
            else:
                attrs[key] = str(value)
        return attrs

    def queue(self, name: str, props: dict) -> dict:
        attrs = self.queue_attributes(props)
        created = False
        try:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            settable = {k: v for k, v in attrs.items() if k not in ("FifoQueue",)}
            if settable:
                self.sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
        except ClientError as e:
            if e.response["Error"]["Code"] not in (
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
                "NonExistentQueue",
            ):
                raise
            req: dict[str, Any] = {"QueueName": name, "Attributes": attrs}
            if props.get("Tags"):
                req["tags"] = {t["Key"]: t["Value"] for t in cfn_tags(props)}
            url = self.sqs.create_queue(**req)["QueueUrl"]
            created = True
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"created": created, "ref": url, "atts": {"Arn": arn, "QueueName": name, "QueueUrl": url}, "detail": url}

    def delete_queue(self, name: str) -> bool:
        try:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError:
            return False
        self.sqs.delete_queue(QueueUrl=url)
        return True

    # ---- S3 -------------------------------------------------------------------------------------

    @staticmethod
    def lifecycle_rules(props: dict) -> list[dict]:
        rules = []
        for r in (props.get("LifecycleConfiguration") or {}).get("Rules", []):
            rule: dict[str, Any] = {"Status": r.get("Status", "Enabled")}
            if "Id" in r:
                rule["ID"] = r["Id"]
            if "Prefix" in r:
                rule["Filter"] = {"Prefix": r["Prefix"]}
            else:
                rule["Filter"] = {"Prefix": ""}
            if "ExpirationInDays" in r:
                rule["Expiration"] = {"Days": int(r["ExpirationInDays"])}
            if "AbortIncompleteMultipartUpload" in r:
                rule["AbortIncompleteMultipartUpload"] = {
                    "DaysAfterInitiation": int(r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
                }
            if "NoncurrentVersionExpirationInDays" in r:
                rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(r["NoncurrentVersionExpirationInDays"])}
            rules.append(rule)
        return rules

    def bucket(self, name: str, props: dict) -> dict:
        created = False
        try:
            self.s3.head_bucket(Bucket=name)
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
                raise
            req: dict[str, Any] = {"Bucket": name}
            if self.region != "us-east-1":
                req["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            self.s3.create_bucket(**req)
            created = True
        enc = props.get("BucketEncryption")
        if enc:
            rules = []
            for r in enc["ServerSideEncryptionConfiguration"]:
                rule = {k: v for k, v in r.items() if k != "ServerSideEncryptionByDefault"}
                if "ServerSideEncryptionByDefault" in r:  # CloudFormation and API spell it differently
                    rule["ApplyServerSideEncryptionByDefault"] = r["ServerSideEncryptionByDefault"]
                rules.append(rule)
            self.s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        pab = props.get("PublicAccessBlockConfiguration")
        if pab:
            self.s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration={k: str(v).lower() == "true" for k, v in pab.items()},
            )
        own = props.get("OwnershipControls")
        if own:
            self.s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=own)
        ver = props.get("VersioningConfiguration")
        if ver:
            self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": ver["Status"]})
        cors = props.get("CorsConfiguration")
        if cors:
            rules = []
            for r in cors.get("CorsRules", []):
                rule = {"AllowedMethods": r["AllowedMethods"], "AllowedOrigins": r["AllowedOrigins"]}
                for k1, k2 in (("AllowedHeaders", "AllowedHeaders"), ("ExposedHeaders", "ExposeHeaders"),
                               ("MaxAge", "MaxAgeSeconds"), ("Id", "ID")):
                    if k1 in r:
                        rule[k2] = r[k1]
                rules.append(rule)
            self.s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
        rules = self.lifecycle_rules(props)
        if rules:
            self.s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        if props.get("Tags"):
            self.s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": cfn_tags(props)})
        return {
            "created": created,
            "ref": name,
            "atts": {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"},
            "detail": name,
        }

    def delete_bucket(self, name: str) -> bool:
        try:
            self.s3.head_bucket(Bucket=name)
        except ClientError:
            return False
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=name):
            objs = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                    for o in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for i in range(0, len(objs), 1000):
                self.s3.delete_objects(Bucket=name, Delete={"Objects": objs[i:i + 1000], "Quiet": True})
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objs:
                self.s3.delete_objects(Bucket=name, Delete={"Objects": objs, "Quiet": True})
        self.s3.delete_bucket(Bucket=name)
        return True


# --------------------------------------------------------------------------------------------------
# Environment file
# --------------------------------------------------------------------------------------------------


def local_overrides() -> dict[str, str]:
    """Variables whose production value points at a resource that only exists in AWS."""
    port = os.environ.get("PORT", "8000")
    return {
        # The dev server plays the API Gateway Management API (POST/GET/DELETE @connections/{id}).
        "WS_MANAGEMENT_ENDPOINT": f"http://127.0.0.1:{port}/ws-management",
    }


def resolve_env(sam: dict, data_ids: set[str], resolver: Resolver) -> tuple[dict[str, str], list[str]]:
    variables = (((sam.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables") or {}
    overrides = local_overrides()
    env: dict[str, str] = {}
    unresolved: list[str] = []
    for key, value in variables.items():
        if key in overrides:
            env[key] = overrides[key]
            continue
        deps = references(value)
        if not deps & data_ids:
            continue  # parameter or literal: documented in infra/env/local.env
        try:
            env[key] = str(resolver.resolve(value))
        except Unresolved as e:
            unresolved.append(f"{key} ({e})")
    return env, unresolved


def write_env(path: Path, env: dict[str, str], prefix: str, endpoint: str, created: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Generated by infra/bootstrap.py from template.yaml - do not edit.",
        f"# prefix={prefix} endpoint={endpoint}",
    ]
    lines += [f"# {lid}: {detail}" for lid, detail in created.items()]
    lines += [f"{k}={v}" for k, v in env.items()]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--template", default=str(REPO / "template.yaml"))
    ap.add_argument("--prefix", default=os.environ.get("C360_RESOURCE_PREFIX", "c360-local"),
                    help="physical names are <prefix>-<LogicalId> (default: $C360_RESOURCE_PREFIX or c360-local)")
    ap.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL") or DEFAULT_ENDPOINT)
    ap.add_argument("--dynamodb-endpoint", default=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"),
                    help="endpoint of the tables only (default: $AWS_ENDPOINT_URL_DYNAMODB, else --endpoint)")
    ap.add_argument("--env-out", default=str(REPO / ".dev" / "resources.env"),
                    help="where to write the resolved variables ('-' for stdout, '' for nowhere)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="template parameter override (repeatable)")
    ap.add_argument("--delete", "--reset-prefix", dest="delete", action="store_true",
                    help="delete the data resources of --prefix, then exit")
    ap.add_argument("--recreate", action="store_true", help="delete the resources of --prefix, then create them")
    ap.add_argument("--check", action="store_true",
                    help="only translate the template offline (SAM validation); no emulator needed")
    args = ap.parse_args()

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", args.prefix):
        ap.error("--prefix must be 1-31 chars of [a-z0-9-] (it also names S3 buckets)")
    overrides = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--param expects KEY=VALUE, got {item!r}")
        overrides[key] = value

    region = os.environ["AWS_REGION"]
    template = Path(args.template)
    sam = load_sam(template)
    params = parameter_values(sam, overrides)
    t0 = time.monotonic()
    try:
        cfn = translate(sam, params)
    except Exception as e:  # InvalidDocumentException carries the list of problems
        causes = getattr(e, "causes", None) or [e]
        for c in causes:
            print(f"[bootstrap] template error: {getattr(c, 'message', c)}", file=sys.stderr)
        return 2
    data = {k: v for k, v in cfn["Resources"].items() if v["Type"] in DATA_TYPES}

    if args.check:
        counts: dict[str, int] = {}
        for v in cfn["Resources"].values():
            counts[v["Type"]] = counts.get(v["Type"], 0) + 1
        log(f"{template.name} translates cleanly ({len(cfn['Resources'])} CloudFormation resources, "
            f"{(time.monotonic() - t0):.1f}s)")
        log("  " + ", ".join(f"{counts[t]} {t.split('::', 1)[1]}" for t in sorted(counts)))
        missing = [
            f"{lid}: {res['Properties']['CodeUri']}"
            for lid, res in (sam.get("Resources") or {}).items()
            if res.get("Type") == "AWS::Serverless::Function"
            and isinstance(res.get("Properties", {}).get("CodeUri"), str)
            and not (template.parent / res["Properties"]["CodeUri"] / "Cargo.toml").exists()
        ]
        for m in missing:
            log(f"  warning: no Cargo.toml under CodeUri of {m}")
        return 0

    emu = Emulator(args.endpoint, args.dynamodb_endpoint or args.endpoint, region)
    order = creation_order(data)
    names = {lid: physical_name(args.prefix, lid, data[lid]["Type"], data[lid].get("Properties", {})) for lid in order}

    if args.delete or args.recreate:
        deleters = {
            "AWS::DynamoDB::Table": emu.delete_table,
            "AWS::SQS::Queue": emu.delete_queue,
            "AWS::S3::Bucket": emu.delete_bucket,
        }
        for lid in reversed(order):
            gone = deleters[data[lid]["Type"]](names[lid])
            log(f"{'deleted' if gone else 'absent '} {data[lid]['Type']:22s} {names[lid]}")
        if args.delete:
            return 0
        time.sleep(0.2)  # SQS forbids re-creating a deleted queue name "too soon" on real AWS; moto does not care

    resolver = Resolver(params, region)
    handlers = {"AWS::DynamoDB::Table": emu.table, "AWS::SQS::Queue": emu.queue, "AWS::S3::Bucket": emu.bucket}
    created: dict[str, str] = {}
    n_new = 0
    for lid in order:
        res = data[lid]
        try:
            props = resolver.resolve(res.get("Properties", {}))
        except Unresolved as e:
            print(f"[bootstrap] cannot resolve {e} in {lid}", file=sys.stderr)
            return 2
        out = handlers[res["Type"]](names[lid], props)
        resolver.refs[lid] = out["ref"]
        resolver.atts[lid] = out["atts"]
        created[lid] = out["detail"]
        n_new += out["created"]
        log(f"{'created' if out['created'] else 'kept   '} {res['Type']:22s} {out['detail']}")

    env, unresolved = resolve_env(sam, set(data), resolver)
    if args.dynamodb_endpoint and args.dynamodb_endpoint != args.endpoint:
        # The tables live elsewhere: whoever loads this file must look for them there.
        env["AWS_ENDPOINT_URL_DYNAMODB"] = args.dynamodb_endpoint
    for u in unresolved:
        log(f"warning: environment variable not resolved locally: {u}")
    if args.env_out == "-":
        for k, v in env.items():
            print(f"{k}={v}")
    elif args.env_out:
        out_path = Path(args.env_out)
        write_env(out_path, env, args.prefix, args.endpoint, created)
        log(f"wrote {len(env)} variables to {out_path}")
    tables_at = f" (tables at {args.dynamodb_endpoint})" if "AWS_ENDPOINT_URL_DYNAMODB" in env else ""
    log(f"{len(order)} resources ({n_new} new) with prefix '{args.prefix}' at {args.endpoint}{tables_at} "
        f"in {(time.monotonic() - t0):.1f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # connection refused etc.: one clear line, not a stack trace
        if os.environ.get("C360_DEBUG"):
            raise
        print(f"[bootstrap] error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
