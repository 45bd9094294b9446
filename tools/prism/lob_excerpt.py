"""Cut the operations Dunning uses out of Lob's OpenAPI description (lob-api-bundled.yml from
lob/lob-openapi, MIT), for Prism and the mock Lob's tests.

    python tools/prism/lob_excerpt.py ../shared/specs/lob-api-bundled.yml          # write
    python tools/prism/lob_excerpt.py ../shared/specs/lob-api-bundled.yml --check  # compare

The excerpt keeps Lob's text as it is, as JSON: the top-level keys Prism reads (openapi, info,
servers, security, tags of the kept operations, paths, components), each kept path's own keys
and the operations named in OPERATIONS, and every component they reach through $ref (schemas,
parameters, responses, headers and Lob's own `mediaTypes`). Nothing is changed; what is left
out is listed in the excerpt's info.x-dunning-excerpt, with one change: a schema that declares
`nullable: true` and also lists null among its `enum` values (use_type, extra_service, a
tracking event's details) loses that enum null. Under OpenAPI 3.0 `nullable` already allows
null, so the meaning is the same; but Prism's converter adds null to such an enum a second
time, its validator refuses the duplicate as an invalid schema and then silently validates
nothing at all. A `details` schema whose only value is null keeps `enum: [null]` and drops
`type` and `nullable` instead (still: null only). And an `allOf` of a schema and a bare
`{nullable: true}` (a letter's failure_reason) becomes `anyOf` of that schema and
`{enum: [null]}`, the same meaning in a form Prism's validator compiles (it refuses
`nullable` without `type`, and again validates nothing).

And the create's multipart/form-data body, the one Dunning sends (a PDF is a file upload):
Lob's file gives it the schema of the JSON body, whose `file` is a string (HTML, a template
id, a URL), and no `encoding`. As Lob takes it (and its own SDK sends it), the PDF is a file
part and the addresses and metadata are fields in bracket notation (to[name]=...). So the
excerpt gives the multipart body its own schema, `letter_editable_multipart`: Lob's
letter_editable with `file` declared as OpenAPI 3.0 declares a file part (`type: string,
format: binary`) and `to` and `from` as inline US addresses (inline_address_us) rather
than "an address id or an inline address" (Prism's deepObject reader builds an object only
from a schema of type object, so it cannot read either side of that oneOf: every form
create would lack its addresses), and the urlencoded body's own `encoding` (deepObject for
to, from, merge_variables, metadata). The JSON and urlencoded bodies are Lob's as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).parents[2] / "sandbox/gateways/specs/lob_letters.json"
OPERATIONS = {
    "/letters": ("post",),
    "/letters/{ltr_id}": ("get",),
}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
KEPT_TOP = ("openapi", "info", "servers", "security", "tags", "paths", "components")
CHANGES = [
    "Only the operations Dunning uses (create a letter, retrieve a letter), with the "
    "components they reference; x-webhooks, x-tagGroups and the other products left out.",
    "Schemas with nullable: true and null in their enum (ltr_use_type, extra_service, "
    "tracking_event_normal's details) lose the enum's null (nullable allows it already): "
    "Prism adds it a second time, and a duplicate enum item makes it skip validation. A "
    "details schema whose only value is null keeps enum [null] without type and nullable.",
    "letter_generated_base's failure_reason: allOf [failure_reason, {nullable: true}] is "
    "written anyOf [failure_reason, {enum: [null]}] (the same meaning; Prism cannot compile "
    "nullable without a type and then validates nothing).",
    "POST /letters, multipart/form-data: its own schema letter_editable_multipart (Lob's "
    "letter_editable with file as a file part: type string, format binary, and to and from "
    "as inline US addresses, which Prism's deepObject reader can build) and the urlencoded "
    "body's encoding (deepObject for to, from, merge_variables, metadata).",
]
MULTIPART = "letter_editable_multipart"


class _TextLoader(yaml.SafeLoader):
    """YAML's safe loader without its timestamp type: Lob's example dates stay as written."""


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node)) if node else set()
    return set()


def _nullable_enums(node: Any) -> None:
    """The one change (see the module's docstring), in place."""
    if isinstance(node, dict):
        members = node.get("allOf")
        if isinstance(members, list) and {"nullable": True} in members:
            rest = [member for member in members if member != {"nullable": True}]
            del node["allOf"]
            node["anyOf"] = [rest[0] if len(rest) == 1 else {"allOf": rest}, {"enum": [None]}]
        enum = node.get("enum")
        if node.get("nullable") is True and isinstance(enum, list) and None in enum:
            rest = [value for value in enum if value is not None]
            if rest:
                node["enum"] = rest
            else:
                node.pop("type", None)
                node.pop("nullable")
        for value in node.values():
            _nullable_enums(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_enums(value)


def excerpt(full: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        item = full["paths"][path]
        paths[path] = {
            key: value for key, value in item.items() if key not in METHODS or key in methods
        }
    kept: dict[str, dict[str, Any]] = {}
    todo = _refs(paths)
    while todo:
        ref = todo.pop()
        parts = ref.split("/")
        if len(parts) != 4 or parts[:2] != ["#", "components"]:
            raise SystemExit(f"lob_excerpt: a $ref outside the components: {ref}")
        kind, name = parts[2], parts[3]
        if name not in kept.setdefault(kind, {}):
            node = full["components"][kind][name]
            kept[kind][name] = node
            todo |= _refs(node)
    components: dict[str, Any] = {"securitySchemes": full["components"]["securitySchemes"]}
    for kind in full["components"]:
        if kind in kept:
            components[kind] = dict(sorted(kept[kind].items()))
    used_tags = {
        tag
        for item in paths.values()
        for key, op in item.items()
        if key in METHODS
        for tag in op.get("tags", [])
    }
    parts_out = {
        "info": {**full["info"], "x-dunning-excerpt": CHANGES},
        "paths": paths,
        "components": components,
        "tags": [tag for tag in full.get("tags", []) if tag["name"] in used_tags],
    }
    result = json.loads(json.dumps({k: parts_out.get(k, full[k]) for k in full if k in KEPT_TOP}))
    _nullable_enums(result["components"])  # on a copy: Lob's own text is never touched
    _multipart_file(result)
    return result


def _multipart_file(result: dict[str, Any]) -> None:
    """The multipart body's own schema and encoding (see the module's docstring), in place."""
    schemas = result["components"]["schemas"]
    content = result["paths"]["/letters"]["post"]["requestBody"]["content"]
    multipart = content["multipart/form-data"]
    if multipart["schema"] != {"$ref": "#/components/schemas/letter_editable"}:
        raise SystemExit("lob_excerpt: the multipart body changed; check the change")
    own = json.loads(json.dumps(schemas["letter_editable"]))
    (listed,) = [m for m in own["allOf"] if "file" in m.get("properties", {})]
    listed["properties"]["file"] = {
        "description": "The letter's PDF as a file part (all pages 8.5x11 inches).",
        "type": "string",
        "format": "binary",
    }
    for side in ("to", "from"):
        ref = {"$ref": f"#/components/schemas/input_{side}"}
        if ref not in own["allOf"]:
            raise SystemExit(f"lob_excerpt: letter_editable has no input_{side}; check the change")
        inline = {"$ref": "#/components/schemas/inline_address_us"}
        own["allOf"][own["allOf"].index(ref)] = {"type": "object", "properties": {side: inline}}
    schemas[MULTIPART] = own
    multipart["schema"] = {"$ref": f"#/components/schemas/{MULTIPART}"}
    multipart["encoding"] = content["application/x-www-form-urlencoded"]["encoding"]


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[1:] not in ([], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    full = yaml.load(Path(argv[0]).read_text(), Loader=_TextLoader)  # a SafeLoader
    text = json.dumps(excerpt(full), indent=1, ensure_ascii=False) + "\n"
    if argv[1:] == ["--check"]:
        if OUT.read_text() != text:
            print(f"{OUT} is not the excerpt of {argv[0]}: run without --check", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
