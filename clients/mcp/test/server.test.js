// The server's one-shot calls (ECHO_SANDBOX_MCP_SESSION=none: each call a
// new sandbox; its sessions are session.test.js's) driven by the MCP SDK's
// own client over stdio, against the CLI ($ECHO_SANDBOX_BIN) or, with
// $ECHO_SANDBOX_URL or $ECHO_SANDBOX_SOCKET set, a daemon: spec/mcp_spec.lua
// runs it both ways.
//   ECHO_SANDBOX_BIN=build/echo-sandbox node --test clients/mcp/test/server.test.js
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const server = fileURLToPath(new URL("../server.js", import.meta.url));
const passed = ["ECHO_SANDBOX_BIN", "ECHO_SANDBOX_URL", "ECHO_SANDBOX_SOCKET", "ECHO_SANDBOX_TOKEN", "PATH", "HOME"];
let client;

async function connect(extra = {}) {
  const env = { ECHO_SANDBOX_MCP_SESSION: "none", ...extra };
  for (const k of passed) if (process.env[k] !== undefined) env[k] = process.env[k];
  const c = new Client({ name: "echo-sandbox-test", version: "0.1.0" });
  await c.connect(new StdioClientTransport({ command: process.execPath, args: [server], env }));
  return c;
}

before(async () => {
  client = await connect();
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
  assert.ok(runCode.inputSchema.properties.collect);
});

test("its run tools say what persists, and declare the result's fields as their output schema", async () => {
  const { tools } = await client.listTools();
  for (const name of ["run_code", "run_shell"]) {
    const t = tools.find((x) => x.name === name);
    assert.match(t.description, /nothing persists between calls/);
    assert.match(t.description, /come back only through collect/);
    assert.deepEqual(t.outputSchema.required.sort(), ["exit_code", "status"]);
    assert.ok(t.outputSchema.properties.stdout_base64);
  }
  assert.ok(tools.find((x) => x.name === "list_languages").outputSchema.properties.languages);
});

test("runs print(6*7) and answers 42", async () => {
  const r = await client.callTool({ name: "run_code", arguments: { language: "python", code: "print(6*7)" } });
  assert.notEqual(r.isError, true, text(r));
  assert.match(text(r), /^exit code 0 \(exited/);
  assert.match(text(r), /--- stdout \(3 bytes\) ---\n42\n/);
  assert.equal(r.structuredContent.exit_code, 0);
  assert.equal(r.structuredContent.stdout, "42\n");
});

// Checked: with the old stream text (base64 where not UTF-8), this fails:
// the text was "(8 bytes, not UTF-8; base64) Y2Fm6SBvawo=".
test("shows output that is not UTF-8 as text, invalid bytes as U+FFFD, the base64 only in the structured result",
  async () => {
    const r = await client.callTool({ name: "run_shell", arguments: { command: "printf 'caf\\351 ok\\n'" } });
    assert.notEqual(r.isError, true, text(r));
    assert.match(text(r), /\ncaf\uFFFD ok\n/);
    assert.doesNotMatch(text(r), /Y2Fm6SBvawo=/);
    assert.equal(r.structuredContent.stdout_base64, "Y2Fm6SBvawo=");
  });

// A log of about 590 KB whose error is on its last line.
const longLog = "seq 1 100000; echo 'FATAL: the last line'";

function checkCut(r, maxText) {
  assert.notEqual(r.isError, true, text(r));
  const t = text(r);
  assert.ok(Buffer.byteLength(t) <= maxText, `${Buffer.byteLength(t)} bytes of text`);
  assert.match(t, /--- stdout \(588916 bytes\) ---\n1\n2\n3\n/);
  assert.match(t, /\nFATAL: the last line\n/);
  const left = Number(t.match(/\n\[\.\.\. ([0-9]+) bytes left out \.\.\.\]\n/)[1]);
  const stdout = t.slice(t.indexOf("---\n") + 4, t.indexOf("\n--- stderr"));
  const kept = Buffer.byteLength(stdout.replace(/\n\[\.\.\. [0-9]+ bytes left out \.\.\.\]\n/, ""));
  assert.equal(left + kept, 588916);
  assert.equal(r.structuredContent.stdout.length, 588916);
}

// Checked: with the text uncut (cut() returning the whole stream), the
// first of these fails on the text's length.
test("bounds the text at 32 KiB, keeping the head and the tail of a long log around a marked cut", async () => {
  checkCut(await client.callTool({ name: "run_shell", arguments: { command: longLog } }), 32 * 1024);
});

test("bounds the text at $ECHO_SANDBOX_MCP_MAX_TEXT", async () => {
  const small = await connect({ ECHO_SANDBOX_MCP_MAX_TEXT: "4096" });
  try {
    checkCut(await small.callTool({ name: "run_shell", arguments: { command: longLog } }), 4096);
  } finally {
    await small.close();
  }
});

test("brings back the files collect names, as text and in the structured result", async () => {
  const r = await client.callTool({ name: "run_shell", arguments: {
    command: "echo made here > out.txt; printf '\\377' > bin.dat", collect: ["*.txt", "*.dat"] } });
  assert.notEqual(r.isError, true, text(r));
  assert.match(text(r), /--- file out\.txt \(10 bytes\) ---\nmade here\n/);
  assert.match(text(r), /--- file bin\.dat \(1 bytes\) ---\n\(not UTF-8: its bytes are files\[[01]\]\.base64/);
  const files = Object.fromEntries(r.structuredContent.files.map((f) => [f.path, f.base64]));
  assert.deepEqual(files, { "out.txt": Buffer.from("made here\n").toString("base64"), "bin.dat": "/w==" });
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
  assert.equal(r.structuredContent.error.code, "invalid_request");
});

test("lists the policy's languages", async () => {
  const r = await client.callTool({ name: "list_languages", arguments: {} });
  assert.notEqual(r.isError, true, text(r));
  assert.ok(text(r).split("\n").includes("python"), text(r));
  assert.ok(r.structuredContent.languages.some((l) => l.name === "python"));
});
