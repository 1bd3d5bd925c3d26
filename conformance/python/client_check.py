"""A second, independent MCP client: the official Python SDK drives the sandbox.

Run by .ci/run after `cargo test`: it reads the sandbox's ready file (MCP URL and a bearer
token), lists the tools, calls two of them and reads a resource. Any failure exits non-zero,
because if this client cannot use the connector, real clients cannot either.

Usage: python client_check.py READY_FILE
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


EXPECTED_TOOLS = {"get_me", "outlook_email_search", "read_resource"}


async def check(mcp_url: str, token: str, mode: str) -> list[str]:
    failures: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=120.0)) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http), mode=mode) as client:
            print(f"[{mode}] protocol version {client.protocol_version}")
            listed = await client.list_tools()
            names = {t.name for t in listed.tools}
            print(f"[{mode}] tools: {sorted(names)}")
            missing = EXPECTED_TOOLS - names
            if missing:
                failures.append(f"[{mode}] tools/list lacks {sorted(missing)}")
            for tool in listed.tools:
                hints = tool.annotations
                if hints is None or hints.read_only_hint is not True:
                    failures.append(f"[{mode}] {tool.name} is not annotated read-only")

            me = await client.call_tool("get_me", {})
            if me.is_error or not me.structured_content:
                failures.append(f"[{mode}] get_me failed: {me.content}")
            else:
                print(f"[{mode}] get_me tenant {me.structured_content.get('tenant_id')}")

            mail = await client.call_tool("outlook_email_search", {"query": "budget"})
            if mail.is_error or not mail.structured_content:
                failures.append(f"[{mode}] outlook_email_search failed: {mail.content}")
                return failures
            items = mail.structured_content.get("messages") or []
            print(f"[{mode}] outlook_email_search returned {len(items)} messages")
            uri = next((i.get("uri") for i in items if isinstance(i, dict) and i.get("uri")), None)
            if uri is None:
                failures.append(f"[{mode}] no m365:// URI in the mail results")
                return failures
            read = await client.read_resource(uri)
            texts = [c for c in read.contents if getattr(c, "text", None)]
            if not texts:
                failures.append(f"[{mode}] resources/read {uri} returned no text")
            else:
                print(f"[{mode}] resources/read {uri}: {len(texts[0].text)} characters")
    return failures


async def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        ready = json.load(f)
    failures: list[str] = []
    for mode in ("legacy", "auto"):
        try:
            failures += await check(ready["mcp_url"], ready["token"], mode)
        except Exception as e:  # the SDK raises ExceptionGroups from its task group
            failures.append(f"[{mode}] the client failed: {e!r}")
    for line in failures:
        print(f"FAIL {line}")
    print(f"python-client: {0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
