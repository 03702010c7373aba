"""Which tenant a record belongs to.

The `tenant` header, else the JSON payload's `tenant` field, else `default` (DESIGN.md
section 4).
"""

from __future__ import annotations

import re

from streamplane.platform.headers import DEFAULT_TENANT, TENANT_INPUT

# A tenant name longer than this is not a tenant, it is payload: cut it.
MAX_TENANT_LEN = 64

# Finds "tenant": "<name>" without parsing the whole JSON value: this runs once per
# record in the supervisor, where a full parse would cost more than everything else.
# Escaped names fall back to the default tenant: fairness then lumps them, losing nothing.
_TENANT_IN_JSON = re.compile(rb'"tenant"\s*:\s*"([^"\\]{1,64})"')

Headers = list[tuple[str, bytes | None]] | None


def tenant_of(value: bytes | None, headers: Headers) -> str:
    """The record's tenant."""
    if headers:
        for key, raw in headers:
            if key == TENANT_INPUT and raw:
                return raw.decode("utf-8", "replace")[:MAX_TENANT_LEN]
    if value:
        match = _TENANT_IN_JSON.search(value)
        if match:
            return match.group(1).decode("utf-8", "replace")
    return DEFAULT_TENANT
