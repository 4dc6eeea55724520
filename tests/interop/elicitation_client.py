"""Interop: the official MCP Python SDK approves and declines `delete_customer` on the example.

Usage: python3 elicitation_client.py <customer_service binary> <data dir> <editor token>

The server runs over stdio (`customer_service serve --data DIR`) with the token in
`MCP_SECURE_TOKEN`. The client declares elicitation through its `elicitation_callback`; the
callback answers `approve: true` for the first delete and declines the second. Exits non-zero,
saying why, when anything differs from what mcp-secure promises.
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def error_code(result: types.CallToolResult) -> str:
    if not result.is_error:
        return "ok"
    structured = result.structured_content or {}
    return str(structured.get("error", {}).get("code", "<no code>"))


def first_text(result: types.CallToolResult) -> str:
    for block in result.content:
        if getattr(block, "type", None) == "text":
            return block.text
    return ""


async def main(binary: str, data: str, token: str) -> None:
    answers = {"next": "accept"}
    shown: list[str] = []

    async def on_elicit(context, params):  # the human
        shown.append(params.message)
        schema = params.requested_schema
        if schema.get("properties", {}).get("approve", {}).get("type") != "boolean":
            fail(f"unexpected schema: {schema}")
        if answers["next"] == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="decline")

    server = StdioServerParameters(command=binary, args=["serve", "--data", data], env={"MCP_SECURE_TOKEN": token})
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write, elicitation_callback=on_elicit) as session:
            await session.initialize()

            answers["next"] = "accept"
            approved = await session.call_tool("delete_customer", {"customer_id": "c-1004"})
            if error_code(approved) != "ok":
                fail(f"accepted delete was refused: {first_text(approved)}")
            gone = await session.call_tool("get_customer", {"customer_id": "c-1004"})
            if error_code(gone) != "not_found":
                fail(f"the approved delete did not delete: {first_text(gone)}")

            answers["next"] = "decline"
            declined = await session.call_tool("delete_customer", {"customer_id": "c-1005"})
            if error_code(declined) != "approval_denied":
                fail(f"declined delete was not refused with approval_denied: {first_text(declined)}")
            kept = await session.call_tool("get_customer", {"customer_id": "c-1005"})
            if error_code(kept) != "ok":
                fail(f"the declined delete changed the database: {first_text(kept)}")

    if len(shown) != 2:
        fail(f"expected two elicitations, saw {len(shown)}")
    for part in ("delete_customer", "c-1004"):
        if part not in shown[0]:
            fail(f"the human was not shown `{part}`: {shown[0]!r}")
    print(json.dumps({"approved": first_text(approved), "declined": first_text(declined), "shown": shown}))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        fail("usage: elicitation_client.py <customer_service binary> <data dir> <editor token>")
    asyncio.run(main(*sys.argv[1:]))
