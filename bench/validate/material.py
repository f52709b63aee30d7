"""The validate and fullchain groups' material (bench/run, bench/instructions), in OUT_DIR:
contract.yaml (bench/validate/contract.yaml), contract-bearer.yaml (the same with the bearer scheme
declared as its security: what a contract for a JWT route says; without it `rampart check` warns
operation-without-security), the 1 KiB order body.json that satisfies them, and the bodies that must
be refused.

Usage: material.py OUT_DIR
"""
import json, os, sys
from pathlib import Path

d = sys.argv[1]
os.makedirs(d, exist_ok=True)
contract = (Path(__file__).parent / "contract.yaml").read_text()
open(f"{d}/contract.yaml", "w").write(contract)
bearer = contract.replace(
    "\ncomponents:\n",
    "\ncomponents:\n  securitySchemes:\n    bearer: { type: http, scheme: bearer, bearerFormat: JWT }\n",
)
assert bearer != contract
open(f"{d}/contract-bearer.yaml", "w").write(bearer + "security: [ { bearer: [] } ]\n")
# The body: compact JSON, padded to exactly 1024 bytes in the free-text field. Plain prose (no
# quotes, no SQL or markup words), so a block-list has nothing to object to either.
body = {
    "order_id": "ord-7f3a9c21-5b8e-4d2f-a1c0-3e9b7d6f4a12",
    "customer_id": 4821377,
    "email": "jane.doe@example.com",
    "first_name": "Jane",
    "last_name": "Doe-Smith",
    "phone": "+44 20 7946 0958",
    "street": "221 Baker Street, Flat 2",
    "city": "London",
    "postcode": "NW1 6XE",
    "country": "GB",
    "currency": "GBP",
    "amount_cents": 129900,
    "quantity": 3,
    "sku": "SKU-000123-BLK-L",
    "gift": True,
    "gift_message": "Happy birthday, Sam! With love from all of us at number twelve.",
    "discount_pct": 12.5,
    "created_at": "2026-12-03T08:15:42Z",
    "channel": "web",
    "notes": "",
}
words = "Leave the parcel with the neighbour next door when nobody answers the bell. "
compact = lambda b: json.dumps(b, separators=(",", ":"))
room = 1024 - len(compact(body))
body["notes"] = (words * 20)[:room].rstrip()
body["notes"] += "." * (1024 - len(compact(body)))
text = compact(body)
assert len(text) == 1024, len(text)
open(f"{d}/body.json", "w").write(text)
# Refused by the contract (an undeclared property: mass assignment), not by a block-list.
extra = dict(body, is_admin=True)
open(f"{d}/body-extra-property.json", "w").write(compact(extra))
# Refused by the JSON threat limits on every route (duplicate member names).
open(f"{d}/body-duplicate-member.json", "w").write(text[:-1] + ',"quantity":1000}')
# Refused by a block-list: SQL injection in the free-text field (which the contract allows).
sqli = dict(body, notes="1' UNION SELECT username, password FROM users --")
open(f"{d}/body-sqli.json", "w").write(compact(sqli))
