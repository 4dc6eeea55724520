"""Drives an mcp-secure server over streamable HTTP with the official MCP Python SDK.

Usage: python3 http_client.py URL TOKEN

Prints one JSON object on stdout with what it saw; tests/http_interop.rs checks it.
Works with the SDK's 1.x (`streamablehttp_client(url, headers=...)`) and 2.x
(`streamable_http_client(url, http_client=...)`) APIs.
"""

import asyncio
import json
import sys
import urllib.error
import urllib.request
from contextlib import asynccontextmanager

from mcp import ClientSession


@asynccontextmanager
async def connect(url, token):
    headers = {"Authorization": f"Bearer {token}"}
    try:
        from mcp.client.streamable_http import streamable_http_client  # mcp >= 2
        from mcp.shared._httpx_utils import create_mcp_http_client
    except ImportError:
        from mcp.client.streamable_http import streamablehttp_client  # mcp 1.x

        async with streamablehttp_client(url, headers=headers) as streams:
            yield streams[0], streams[1]
        return
    async with create_mcp_http_client(headers=headers) as client:
        async with streamable_http_client(url, http_client=client) as streams:
            yield streams[0], streams[1]


def structured(result):
    data = getattr(result, "structuredContent", None)
    if data is None:
        data = getattr(result, "structured_content", None)
    return data


def is_error(result):
    value = getattr(result, "isError", None)
    if value is None:
        value = getattr(result, "is_error", None)
    return bool(value)


def unauthenticated_status(url):
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}},
        }
    ).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("WWW-Authenticate", "")


async def main(url, token):
    report = {}
    async with connect(url, token) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            info = getattr(init, "serverInfo", None) or getattr(init, "server_info", None)
            report["server_name"] = info.name
            tools = await session.list_tools()
            report["tools"] = sorted(t.name for t in tools.tools)
            ok = await session.call_tool("get_customer", {"customer_id": "c-1001"})
            report["get_customer_error"] = is_error(ok)
            report["get_customer"] = structured(ok)
            bad = await session.call_tool("get_customer", {"customer_id": ""})
            report["invalid_code"] = (structured(bad) or {}).get("error", {}).get("code")
            denied = await session.call_tool("execute_query", {"query": "SELECT 1"})
            report["forbidden_code"] = (structured(denied) or {}).get("error", {}).get("code")
    status, challenge = unauthenticated_status(url)
    report["unauthenticated_status"] = status
    report["unauthenticated_challenge"] = challenge
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), timeout=60))
