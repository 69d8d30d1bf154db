// The server's session (one per connection, the default), driven by the MCP
// SDK's own client over stdio against the CLI ($ECHO_SANDBOX_BIN), with a
// directory of sessions of its own so that `echo-sandbox session ls` here
// sees only the sessions these tests' servers make. Every test checks that
// its connection's close left no session behind. With $ECHO_SANDBOX_URL or
// $ECHO_SANDBOX_SOCKET set, the server goes to that daemon instead, which
// must keep its sessions in $ECHO_SANDBOX_SESSION_DIR (the directory `ls`
// reads here).
//   ECHO_SANDBOX_BIN=build/echo-sandbox node --test clients/mcp/test/session.test.js
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const server = fileURLToPath(new URL("../server.js", import.meta.url));
const bin = process.env.ECHO_SANDBOX_BIN || "echo-sandbox";
let dir;

const daemon = ["ECHO_SANDBOX_URL", "ECHO_SANDBOX_SOCKET", "ECHO_SANDBOX_TOKEN"];
const ownDir = !process.env.ECHO_SANDBOX_SESSION_DIR;

before(() => {
  dir = ownDir ? mkdtempSync(join(tmpdir(), "esb-mcp-sessions-")) : process.env.ECHO_SANDBOX_SESSION_DIR;
});

// What a failed test left is removed here, and said.
after(() => {
  const left = sessions();
  for (const s of left) cliSession(["rm", s.id]);
  if (ownDir) rmdirSync(dir);
  assert.deepEqual(left, [], "sessions left behind");
});

function cliSession(args) {
  return execFileSync(bin, ["session", ...args], { env: { ...process.env, ECHO_SANDBOX_SESSION_DIR: dir },
                                                   encoding: "utf8" });
}

// The sessions in the tests' directory, alive or ended.
function sessions() {
  return cliSession(["ls", "--json"]).split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

const show = (id) => JSON.parse(cliSession(["show", id, "--json"]));

async function connect(extra = {}) {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ECHO_SANDBOX_BIN: bin,
                ECHO_SANDBOX_SESSION_DIR: dir, ...extra };
  for (const k of daemon) if (process.env[k] !== undefined) env[k] = process.env[k];
  const c = new Client({ name: "echo-sandbox-test", version: "0.1.0" });
  const transport = new StdioClientTransport({ command: process.execPath, args: [server], env });
  await c.connect(transport);
  c.pid = transport.pid;
  return c;
}

const text = (r) => r.content.map((c) => c.text).join("");

async function call(c, name, args) {
  const r = await c.callTool({ name, arguments: args });
  assert.notEqual(r.isError, true, text(r));
  return r;
}

const code = (c, language, source) => call(c, "run_code", { language, code: source });

// fn(c) on a connection, closed at the end (stdin's end) even where fn
// failed; then no session is left.
async function connected(extra, fn) {
  const c = await connect(extra);
  try {
    await fn(c);
  } finally {
    await c.close();
  }
  assert.deepEqual(sessions(), []);
}

// Checked: with run_code's cells sent as one-shot runs (runRequest), the
// second call raised NameError / ReferenceError.
for (const [language, define] of [["python", "x = 41"], ["node", "var x = 41"]]) {
  test(`calls run_code twice on one connection and the second call sees the first's variable (${language})`,
    () => connected({}, async (c) => {
      const first = await code(c, language, define);
      const r = await code(c, language, "x + 1");
      assert.equal(r.structuredContent.value, "42");
      assert.match(text(r), /--- value of the last expression ---\n42/);
      assert.equal(r.structuredContent.session, first.structuredContent.session);
      assert.notEqual(r.structuredContent.state_lost, true);
      assert.deepEqual(sessions().map((s) => s.id), [r.structuredContent.session]);
    }));
}

test("returns what a cell raised (name, message, traceback) as a result, and keeps the state",
  () => connected({}, async (c) => {
    await code(c, "python", "x = 41");
    const r = await code(c, "python", "def f():\n    return 1 / 0\nf()");
    assert.equal(r.structuredContent.status, "error");
    assert.equal(r.structuredContent.exit_code, 1);
    assert.equal(r.structuredContent.error.name, "ZeroDivisionError");
    assert.match(r.structuredContent.error.traceback, /in f\n/);
    assert.match(text(r), /^python cell: raised ZeroDivisionError: division by zero/);
    assert.match(text(r), /--- traceback ---\nTraceback/);
    assert.equal((await code(c, "python", "x + 1")).structuredContent.value, "42");
  }));

// Checked: with run_shell and run_code in other languages sent as one-shot
// runs (runRequest), cat found no file.
test("keeps the working dir's files from call to call, across run_shell and run_code in any language",
  () => connected({}, async (c) => {
    await call(c, "run_shell", { command: "echo written by the shell > shell.txt; echo in tmp > /tmp/t.txt" });
    let r = await code(c, "python", "open('shell.txt').read() + open('/tmp/t.txt').read()");
    assert.equal(r.structuredContent.value, "'written by the shell\\nin tmp\\n'");
    r = await call(c, "run_code", { language: "ruby",
                                    code: "print File.read('given/in.txt'); File.write('ruby.txt', 'ruby')",
                                    files: { "given/in.txt": "given in files\n" } });
    assert.equal(r.structuredContent.stdout, "given in files\n");
    r = await call(c, "run_shell", { command: "cat ruby.txt shell.txt" });
    assert.equal(r.structuredContent.stdout, "rubywritten by the shell\n");
  }));

// Checked: with reset() answering the id without dropping the session, x
// was still 41 and the session the same.
test("reset_session forgets: a new session, without the old one's variables or files",
  () => connected({}, async (c) => {
    const first = await code(c, "python", "x = 41\nopen('kept.txt', 'w').write('x')");
    const reset = await call(c, "reset_session", {});
    assert.equal(reset.structuredContent.ended, first.structuredContent.session);
    assert.deepEqual(sessions(), []);
    const r = await c.callTool({ name: "run_code", arguments: { language: "python", code: "x" } });
    assert.equal(r.structuredContent.error.name, "NameError");
    assert.notEqual(r.structuredContent.session, first.structuredContent.session);
    assert.equal((await call(c, "run_shell", { command: "ls" })).structuredContent.stdout, "");
    assert.equal((await call(c, "reset_session", {})).structuredContent.ended, r.structuredContent.session);
    assert.match(text(await call(c, "reset_session", {})), /there was no session/);
  }));

test("makes no session until a call needs one", () => connected({}, async (c) => {
  const { tools } = await c.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), ["list_languages", "reset_session", "run_code", "run_shell"]);
  await call(c, "list_languages", {});
  assert.deepEqual(sessions(), []);
}));

// Checked: without the stdin end's shutdown, the session was left (ls
// listed it); without the signals', SIGTERM left it too.
test("deletes the session when the connection closes (connected() checks it), and at SIGTERM", async () => {
  await connected({}, async (c) => {
    await code(c, "python", "x = 1");
    assert.equal(sessions().length, 1);
  });
  await connected({}, async (c) => {
    await call(c, "run_shell", { command: "true" });
    assert.equal(sessions().length, 1);
    const closed = new Promise((resolve) => { c.onclose = resolve; });
    process.kill(c.pid, "SIGTERM");
    await closed;
    assert.deepEqual(sessions(), []);
  });
});

// Polls for the session's end (the engine's idle timer, or a kill), with a
// generous cap: an interlock on the engine's record, not a sleep.
async function waitEnded(id) {
  for (let i = 0; i < 3000; i++) {
    if (show(id).state === "ended") return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`session ${id} did not end`);
}

// Checked: with call() answering the first answer as it is (no new
// session), the cell after the idle end was the engine's refusal "session
// ... has ended (idle)" (status session_ended, state_lost false). The idle
// timeout is every session's of the connection, the new one's too: at 1 s,
// a loaded CI machine once took longer between the new session's create
// and its cell, and that session idled out as well (its cell's result had
// no error). 5 s is the gap between two requests the test makes back to
// back that it tolerates.
test("a session that ended under the agent: the next call runs in a new one and says the state was lost",
  async () => {
    await connected({ ECHO_SANDBOX_MCP_SESSION_IDLE_MS: "5000" }, async (c) => {
      const { tools } = await c.listTools();
      assert.match(tools.find((t) => t.name === "run_code").description, /after 5 s without a call/);
      const first = (await code(c, "python", "x = 41")).structuredContent.session;
      await waitEnded(first);
      const r = await c.callTool({ name: "run_code", arguments: { language: "python", code: "x" } });
      assert.equal(r.structuredContent.state_lost, true);
      assert.deepEqual(r.structuredContent.session_lost, { id: first, ended: "idle", during_this_call: false });
      assert.equal(r.structuredContent.error.name, "NameError");
      assert.match(text(r),
                   new RegExp(`state_lost: session ${first} had ended \\(idle\\); this call ran in a new session`));
      const second = r.structuredContent.session;
      assert.notEqual(second, first);
      assert.deepEqual(sessions().map((s) => s.id), [second]); // the ended one's remains are gone
    });
  });

// With the default idle timeout (2 min): a session that idles out between
// the kill and the look says "idle", which a loaded machine once did
// where the idle timeout was 1 s.
test("a session killed under the agent: the next call runs in a new one and says it died", async () => {
  await connected({}, async (c) => {
    const first = (await code(c, "python", "x = 41")).structuredContent.session;
    process.kill(show(first).pid, "SIGKILL");
    await waitEnded(first);
    const r = await call(c, "run_shell", { command: "echo again" });
    assert.equal(r.structuredContent.stdout, "again\n");
    assert.deepEqual(r.structuredContent.session_lost, { id: first, ended: "died", during_this_call: false });
    assert.notEqual(r.structuredContent.session, first);
  });
});

// Checked: with the mode forced to "connection", the second call saw x.
test("ECHO_SANDBOX_MCP_SESSION=none keeps every call one-shot: no session, nothing kept", async () => {
  await connected({ ECHO_SANDBOX_MCP_SESSION: "none" }, async (c) => {
    const { tools } = await c.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), ["list_languages", "run_code", "run_shell"]);
    assert.match(tools.find((t) => t.name === "run_code").description, /nothing persists between calls/);
    await code(c, "python", "x = 41");
    const r = await c.callTool({ name: "run_code", arguments: { language: "python", code: "print(x)" } });
    assert.match(r.structuredContent.stderr, /NameError/);
    assert.equal(r.structuredContent.session, undefined);
    assert.deepEqual(sessions(), []);
  });
});

test("its tools say exactly what persists in a session and what does not", async () => {
  await connected({}, async (c) => {
    const { tools } = await c.listTools();
    for (const name of ["run_code", "run_shell"]) {
      const d = tools.find((t) => t.name === name).description;
      assert.match(d, /the files of its working dir/);
      assert.match(d, /for run_code in python or node, the interpreter's variables, imports and definitions/);
      assert.match(d, /What does not persist: processes a call starts/);
      assert.match(d, /state_lost/);
      assert.equal(tools.find((t) => t.name === name).inputSchema.properties.collect, undefined);
    }
  });
});

test("refuses a session mode it does not know, naming the ones it does", () => {
  const r = spawnSync(process.execPath, [server], { env: { ...process.env, ECHO_SANDBOX_MCP_SESSION: "per-call" },
                                                    input: "", encoding: "utf8" });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /ECHO_SANDBOX_MCP_SESSION must be connection or none; got "per-call"/);
});
