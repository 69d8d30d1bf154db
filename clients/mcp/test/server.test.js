// The server driven by the MCP SDK's own client over stdio, against the
// CLI ($ECHO_SANDBOX_BIN) or, with $ECHO_SANDBOX_URL or $ECHO_SANDBOX_SOCKET
// set, a daemon: spec/mcp_spec.lua runs it both ways.
//   ECHO_SANDBOX_BIN=build/echo-sandbox node --test clients/mcp/test/
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const server = fileURLToPath(new URL("../server.js", import.meta.url));
const passed = ["ECHO_SANDBOX_BIN", "ECHO_SANDBOX_URL", "ECHO_SANDBOX_SOCKET", "ECHO_SANDBOX_TOKEN", "PATH", "HOME"];
let client;

before(async () => {
  const env = {};
  for (const k of passed) if (process.env[k] !== undefined) env[k] = process.env[k];
  client = new Client({ name: "echo-sandbox-test", version: "0.1.0" });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [server], env }));
});

after(async () => {
  await client.close();
});

const text = (r) => r.content.map((c) => c.text).join("");

test("lists its three tools, with their input schemas", async () => {
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ["list_languages", "run_code", "run_shell"]);
  const runCode = tools.find((t) => t.name === "run_code");
  assert.deepEqual(runCode.inputSchema.required.sort(), ["code", "language"]);
  assert.ok(runCode.inputSchema.properties.files);
});

test("runs print(6*7) and answers 42", async () => {
  const r = await client.callTool({ name: "run_code", arguments: { language: "python", code: "print(6*7)" } });
  assert.notEqual(r.isError, true, text(r));
  assert.match(text(r), /^exit code 0 \(exited/);
  assert.match(text(r), /--- stdout ---\n42\n/);
});

test("runs a shell command with stdin and files, and reports a failing program as a result", async () => {
  const r = await client.callTool({ name: "run_shell", arguments: {
    command: "cat data.txt; cat; exit 3", stdin: "from stdin\n", files: { "data.txt": "from a file\n" } } });
  assert.notEqual(r.isError, true, text(r));
  assert.match(text(r), /^exit code 3 /);
  assert.match(text(r), /from a file\nfrom stdin\n/);
});

test("answers an invalid request with a tool error carrying the engine's message", async () => {
  const r = await client.callTool({ name: "run_code", arguments: { language: "cobol", code: "x" } });
  assert.equal(r.isError, true);
  assert.match(text(r), /^invalid_request: .*unknown language "cobol"/);
});

test("lists the policy's languages", async () => {
  const r = await client.callTool({ name: "list_languages", arguments: {} });
  assert.notEqual(r.isError, true, text(r));
  assert.ok(text(r).split("\n").includes("python"), text(r));
});
