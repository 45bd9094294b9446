"""Cut the operations Dunning uses out of Twilio's OpenAPI description of its 2010-04-01 API
(twilio_api_v2010.json from twilio/twilio-oai, MIT), for Prism and the mock Twilio's tests.

    python tools/prism/twilio_excerpt.py ../shared/specs/twilio_api_v2010.json          # write
    python tools/prism/twilio_excerpt.py ../shared/specs/twilio_api_v2010.json --check  # compare

The excerpt keeps Twilio's text as it is: the top-level keys, each kept path's own keys and the
operations named in OPERATIONS, and every component schema they reach through $ref. One change,
listed in the excerpt's info.x-dunning-excerpt: the list page's links are declared `format: uri`
(an absolute URI), but Twilio answers with links relative to https://api.twilio.com, as the
file's own examples show and as Twilio's SDKs expect (they prefix the domain). Declared as they
are, Prism would fail every correct list answer, so the excerpt declares them `uri-reference`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parents[2] / "sandbox/gateways/specs/twilio_api_v2010_messages.json"
OPERATIONS = {
    "/2010-04-01/Accounts/{AccountSid}/Messages.json": ("post", "get"),
    "/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json": ("get",),
    "/2010-04-01/Accounts/{Sid}.json": ("get",),
}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
LIST_LINKS = ("first_page_uri", "next_page_uri", "previous_page_uri", "uri")
CHANGES = [
    "Only the operations Dunning uses, with the component schemas they reference.",
    "GET .../Messages.json, 200: first_page_uri, next_page_uri, previous_page_uri and uri "
    "are declared format uri-reference instead of uri: Twilio's answers and this file's own "
    "examples give them relative to https://api.twilio.com.",
]


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def _tags(operation: Any) -> list[str]:
    return list(operation.get("tags", [])) if isinstance(operation, dict) else []


def excerpt(full: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        item = full["paths"][path]
        paths[path] = {
            key: value for key, value in item.items() if key not in METHODS or key in methods
        }
    schemas = full["components"]["schemas"]
    kept: dict[str, Any] = {}
    todo = _refs(paths)
    while todo:
        ref = todo.pop()
        name = ref.removeprefix("#/components/schemas/")
        if name == ref:
            raise SystemExit(f"twilio_excerpt: a $ref outside the schemas: {ref}")
        if name not in kept:
            kept[name] = schemas[name]
            todo |= _refs(schemas[name])
    used_tags = {tag for item in paths.values() for op in item.values() for tag in _tags(op)}
    parts = {
        "info": {**full["info"], "x-dunning-excerpt": CHANGES},
        "paths": json.loads(json.dumps(paths)),  # a copy: the change below is ours alone
        "components": {
            "securitySchemes": full["components"]["securitySchemes"],
            "schemas": dict(sorted(kept.items())),
        },
        "tags": [tag for tag in full.get("tags", []) if tag["name"] in used_tags],
    }
    # Twilio's key order (components first), so the excerpt reads like the file it comes from.
    result = {key: parts.get(key, value) for key, value in full.items()}
    listed = result["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["get"]
    page = listed["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    for link in LIST_LINKS:
        if page[link].get("format") != "uri":
            raise SystemExit(f"twilio_excerpt: {link} is no longer format uri; check the change")
        page[link]["format"] = "uri-reference"
    return result


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[1:] not in ([], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    text = json.dumps(excerpt(json.loads(Path(argv[0]).read_text())), indent=1) + "\n"
    if argv[1:] == ["--check"]:
        if OUT.read_text() != text:
            print(f"{OUT} is not the excerpt of {argv[0]}: run without --check", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
