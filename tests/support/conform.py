"""Checks answers against the OpenAPI document they claim to follow (issue 14).

Input (JSON file given as the only argument): {"document": <the /schema document>,
"answers": [{"method", "path" (the route template), "status", "content_type", "body" (null when
empty)}]}. Each answer's status must be documented for its operation, a documented body must come as
JSON and validate against the documented schema (JSON Schema 2020-12, the components resolved inside the document). Prints one
line per failure; exit status 1 when there is any.
"""
import json
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def pointer(*parts):
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def main(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    document, answers = data["document"], data["answers"]
    registry = Registry().with_resource("urn:c360:openapi", Resource(document, specification=DRAFT202012))
    failures = []
    for a in answers:
        where = f'{a["method"]} {a["path"]} -> {a["status"]}'
        operation = document["paths"].get(a["path"], {}).get(a["method"].lower())
        if operation is None:
            failures.append(f"{where}: operation not in the document")
            continue
        response = operation["responses"].get(str(a["status"]))
        if response is None:
            failures.append(f"{where}: status not documented (documented: {sorted(operation['responses'])})")
            continue
        content = response.get("content")
        if content is None:
            if a["body"] is not None:
                failures.append(f"{where}: documented without a body, answered {json.dumps(a['body'])[:200]}")
            continue
        answered = (a.get("content_type") or "").split(";")[0].strip()
        if answered not in content:
            failures.append(f"{where}: documented as {sorted(content)}, answered {a.get('content_type')!r}")
            continue
        if answered != "application/json":
            continue  # a file: its type is what the document says, its bytes are not JSON
        ref = "urn:c360:openapi#/" + pointer(
            "paths", a["path"], a["method"].lower(), "responses", str(a["status"]), "content", "application/json", "schema"
        )
        validator = Draft202012Validator({"$ref": ref}, registry=registry)
        for error in validator.iter_errors(a["body"]):
            failures.append(f"{where}: {error.message} at {list(error.absolute_path)}")
    for line in failures:
        print(line)
    print(f"conformance: {len(answers)} answers checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
