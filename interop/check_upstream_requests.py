"""Checks that every request the demo API received conforms to its OpenAPI contract.

Reads the log written by the demo API under RAMPART_DEMO_REQUEST_LOG (one JSON object a line:
method, path, query, content_type, body) and validates each request's path, query parameters and
body with openapi-core, an implementation independent of Rampart's. Security is not checked here:
credentials are the gateway's to verify, and it does not pass them on.

Fields the contract marks `x-rampart-sanitize: html` are also checked with Python's own HTML
parser: only the gateway's allow-listed elements and attributes, no `javascript:`/`data:` links,
and no `<` left as text (the sanitizer escapes every `<` it does not keep as a tag, so a raw one
is markup that got past it, such as a tag cut by the end of the string).

Usage: check_upstream_requests.py CONTRACT REQUEST_LOG
Exit status 0 when at least one request reached the API and all conform; 1 otherwise.
"""

import json
import sys
from html.parser import HTMLParser
from urllib.parse import parse_qsl

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest
from openapi_core.validation.request.validators import (
    V31RequestBodyValidator,
    V31RequestParametersValidator,
)
from werkzeug.datastructures import ImmutableMultiDict
import yaml

# The gateway's own active health check (configured in the demo's config), not a client request.
GATEWAY_PROBES = {("GET", "/health")}


# The gateway's default allow-list ([validation.html] in docs/config.md).
ALLOWED_TAGS = {"a", "abbr", "acronym", "b", "blockquote", "br", "code", "em", "i", "li", "ol",
                "p", "strong", "ul"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title", "rel"}, "abbr": {"title"}, "acronym": {"title"}}


class AllowListed(HTMLParser):
    """Collects what in a string is outside the gateway's HTML allow-list."""

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.problems = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"element <{tag}> is not allowed")
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES.get(tag, set()):
                self.problems.append(f"attribute {name} on <{tag}> is not allowed")
            elif name == "href" and (value or "").strip().lower().startswith(("javascript:", "data:")):
                self.problems.append("a javascript: or data: link")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        if "<" in data:
            self.problems.append("a raw '<' (markup the sanitizer did not see)")

    def handle_comment(self, data):
        self.problems.append("a comment")

    def handle_decl(self, decl):
        self.problems.append("a declaration")

    def handle_pi(self, data):
        self.problems.append("a processing instruction")


def html_problems(text):
    parser = AllowListed()
    parser.feed(text)
    parser.close()
    return parser.problems


def resolve(spec, schema):
    while isinstance(schema, dict) and "$ref" in schema:
        node = spec
        for token in schema["$ref"].lstrip("#/").split("/"):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema


def sanitized_fields(spec, path, method):
    """Top-level JSON body properties the operation's contract marks for HTML sanitization."""
    operation = spec.get("paths", {}).get(path, {}).get(method, {})
    media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = resolve(spec, media.get("schema", {}))
    return [name for name, prop in schema.get("properties", {}).items()
            if resolve(spec, prop).get("x-rampart-sanitize") == "html"]


def sanitize_problems(raw_spec, seen):
    base = raw_spec.get("servers", [{}])[0].get("url", "")
    path = seen["path"][len(base):] if seen["path"].startswith(base) else seen["path"]
    try:
        body = json.loads(seen["body"])
    except ValueError:
        return []
    problems = []
    for template in raw_spec.get("paths", {}):
        # Literal paths only: the demo's sanitized field is on POST /orders.
        if template == path and isinstance(body, dict):
            for name in sanitized_fields(raw_spec, template, seen["method"].lower()):
                if isinstance(body.get(name), str):
                    problems += [f"/body/{name}: {p}" for p in html_problems(body[name])]
    return problems


def main() -> int:
    contract, log = sys.argv[1], sys.argv[2]
    api = OpenAPI.from_file_path(contract)
    with open(contract, encoding="utf-8") as text:
        raw_spec = yaml.safe_load(text)
    validators = [V31RequestParametersValidator(api.spec), V31RequestBodyValidator(api.spec)]
    checked, failures = 0, []
    with open(log, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            seen = json.loads(line)
            if (seen["method"], seen["path"]) in GATEWAY_PROBES:
                continue
            checked += 1
            problems = []
            if not seen.get("body_utf8", True):
                problems.append("body is not UTF-8")
            query = ImmutableMultiDict(parse_qsl(seen["query"], keep_blank_values=True))
            body = seen["body"].encode("utf-8")
            request = MockRequest(
                "https://localhost",
                seen["method"].lower(),
                seen["path"],
                args=query,
                data=body if body else None,
                content_type=seen.get("content_type") or "",
            )
            for validator in validators:
                for error in validator.iter_errors(request):
                    causes = [str(c) for c in getattr(error, "schema_errors", []) or []]
                    problems.append(f"{error}{': ' + '; '.join(causes) if causes else ''}")
            problems += sanitize_problems(raw_spec, seen)
            problems = list(dict.fromkeys(problems))  # one line per kind of problem
            if problems:
                failures.append((number, seen, problems))
    for number, seen, problems in failures:
        print(f"{log}:{number}: {seen['method']} {seen['path']}?{seen['query']} body={seen['body'][:300]!r}")
        for problem in problems:
            print(f"    does not conform: {problem[:500]}")
    print(f"upstream requests checked against {contract}: {checked}, not conforming: {len(failures)}")
    if checked == 0:
        print("no request reached the upstream: the check proves nothing")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
