#!/usr/bin/env node
// echo-sandbox-mcp: a Model Context Protocol server (stdio) that lets an
// agent run code and shell commands in echo-sandbox.
//
// Tools: run_code (language, code, stdin, files, timeout_ms), run_shell
// (command, stdin, files, timeout_ms), list_languages, and reset_session.
//
// Sessions: by default the server keeps one echo-sandbox session per client
// connection, made at the first call that needs it and deleted when the
// connection closes (stdin's end, the transport's close, SIGTERM, SIGINT or
// SIGHUP), so that an agent's state persists from call to call: the files
// of the session's working dir, and for run_code in a language that has a
// kernel (python, node) the interpreter's variables, imports and
// definitions, each call a cell of that kernel. A session that ended under
// the agent (idle timeout, TTL, memory) is replaced by a new one at the
// next call, whose result says the state was lost (state_lost,
// session_lost). $ECHO_SANDBOX_MCP_SESSION=none runs every call in a new
// sandbox instead (and offers collect); $ECHO_SANDBOX_MCP_SESSION_TTL_MS and
// $ECHO_SANDBOX_MCP_SESSION_IDLE_MS set the session's TTL and idle timeout
// (else the engine's defaults).
//
// Where runs go: the daemon at $ECHO_SANDBOX_URL (http://HOST:PORT) or
// $ECHO_SANDBOX_SOCKET (a unix socket), with $ECHO_SANDBOX_TOKEN as its
// bearer token; with neither, the CLI ($ECHO_SANDBOX_BIN, else echo-sandbox
// on PATH): `echo-sandbox run --json` for a one-shot call, `echo-sandbox
// session create|run|cell|show|rm` for a session's, and `echo-sandbox policy
// languages` for the list.
//
// A program that fails is a tool result like any other (its exit code and
// output, or the exception a cell raised); an error of the engine (an
// invalid request, a backend that is not there) is a tool error (isError)
// carrying the engine's code and message.
// Every result's text is bounded ($ECHO_SANDBOX_MCP_MAX_TEXT bytes, default
// 32 KiB), keeping the head and the tail of long output; its
// structuredContent is the engine's whole result. The engine keeps up to
// $ECHO_SANDBOX_MCP_MAX_OUTPUT bytes (default 8 MiB) of each stream.
import { spawn } from "node:child_process";
import http from "node:http";
import https from "node:https";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const env = process.env;

function badEnv(name, what, v) {
  process.stderr.write(`echo-sandbox-mcp: ${name} must be ${what}; got "${v}"\n`);
  process.exit(2);
}

// A whole number of units (bytes, milliseconds) from the environment, or
// fallback.
function wholeFromEnv(name, fallback, least, unit = "bytes") {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  if (!/^[0-9]+$/.test(v) || Number(v) < least) badEnv(name, `a number of ${unit}, at least ${least}`, v);
  return Number(v);
}
// The text of one tool result, at most; and what the engine keeps of each
// stream (the policy may keep less), more than the text so that the text's
// tail is the program's.
const maxText = wholeFromEnv("ECHO_SANDBOX_MCP_MAX_TEXT", 32 * 1024, 2048);
const maxOutput = wholeFromEnv("ECHO_SANDBOX_MCP_MAX_OUTPUT", 8 * 1024 * 1024, 1);
// One session per connection, or none (every call a new sandbox); the
// session's TTL and idle timeout, where not the engine's defaults.
const sessionModes = ["connection", "none"];
const sessionMode = env.ECHO_SANDBOX_MCP_SESSION || "connection";
if (!sessionModes.includes(sessionMode)) badEnv("ECHO_SANDBOX_MCP_SESSION", sessionModes.join(" or "), sessionMode);
const sessionTtlMs = wholeFromEnv("ECHO_SANDBOX_MCP_SESSION_TTL_MS", undefined, 1, "milliseconds");
const sessionIdleMs = wholeFromEnv("ECHO_SANDBOX_MCP_SESSION_IDLE_MS", undefined, 1, "milliseconds");

// ---- the engine: the daemon, or the CLI ----

function daemonRequest(method, path, body) {
  const url = env.ECHO_SANDBOX_URL ? new URL(path, env.ECHO_SANDBOX_URL) : null;
  const headers = { "Content-Type": "application/json" };
  if (env.ECHO_SANDBOX_TOKEN) headers.Authorization = `Bearer ${env.ECHO_SANDBOX_TOKEN}`;
  const options = url
    ? { method, hostname: url.hostname, port: url.port, path: url.pathname + url.search, headers }
    : { method, socketPath: env.ECHO_SANDBOX_SOCKET, path, headers };
  const transport = url && url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(options, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          resolve({ status: res.statusCode, body: JSON.parse(text) });
        } catch {
          reject(new Error(`the daemon answered ${res.statusCode} with no JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

// Runs the CLI with input (a string) on its stdin: its exit status, stdout
// and stderr.
function cliRaw(args, input = "") {
  const bin = env.ECHO_SANDBOX_BIN || "echo-sandbox";
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out = [];
    const err = [];
    child.stdout.on("data", (c) => out.push(c));
    child.stderr.on("data", (c) => err.push(c));
    child.on("error", (e) => reject(new Error(`cannot run ${bin}: ${e.message}`)));
    child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out).toString("utf8"),
                                          stderr: Buffer.concat(err).toString("utf8").trim() }));
    // A child that ends without reading its stdin is judged by its output,
    // not by our write's EPIPE.
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

// The JSON the CLI printed (input: an object, sent as JSON, or a string).
async function cli(args, input) {
  const text = input === undefined || typeof input === "string" ? input : JSON.stringify(input);
  const { code, stdout, stderr } = await cliRaw(args, text);
  try {
    return JSON.parse(stdout);
  } catch {
    const bin = env.ECHO_SANDBOX_BIN || "echo-sandbox";
    throw new Error(`${bin} ${args.join(" ")} exited ${code}: ${stderr}`);
  }
}

const viaDaemon = () => Boolean(env.ECHO_SANDBOX_URL || env.ECHO_SANDBOX_SOCKET);

async function runRequest(request) {
  if (viaDaemon()) return (await daemonRequest("POST", "/v1/run", request)).body;
  return cli(["run", "--json"], request);
}

async function listLanguages() {
  if (viaDaemon()) {
    const { status, body } = await daemonRequest("GET", "/v1/languages");
    if (status !== 200) throw new Error(body.error ? body.error.message : `the daemon answered ${status}`);
    return body.languages;
  }
  return (await cli(["policy", "languages"])).languages;
}

// ---- sessions: the engine's side ----

// A session's transport: the CLI or the daemon, each with create, run,
// cell, remove and codeRequest. run and cell answer { result, ended }:
// ended is null while the session lives, else { reason, taken }, the
// reason it ended (idle, ttl, memory, deleted, died, gone) and whether the
// call went in before it did (where it did not, it can go to a new one).

// The languages whose run_code is a cell of the session's kernel.
const kernelLanguages = ["python", "node"];

// A cell's timeout in the CLI's seconds.
const cellTimeout = (ms) => (ms === undefined ? [] : ["--timeout", String(ms / 1000)]);

// An engine error as a run's result, for errors that come as text.
function errorResult(code, message) {
  return { exit_code: 125, status: "error", error: { code, message, retryable: false } };
}

const cliSessions = {
  async create() {
    const args = ["session", "create", "--json"];
    if (sessionTtlMs !== undefined) args.push("--ttl", String(sessionTtlMs));
    if (sessionIdleMs !== undefined) args.push("--idle-timeout", String(sessionIdleMs));
    return (await cli(args)).id;
  },
  // Whether session id has ended, asked once a call did not go well.
  async ended(id, taken) {
    const { code, stdout, stderr } = await cliRaw(["session", "show", id, "--json"]);
    if (code !== 0) return /no session/.test(stderr) ? { reason: "gone", taken } : null;
    const info = JSON.parse(stdout);
    return info.state === "alive" ? null : { reason: info.ended, taken };
  },
  async run(id, request) {
    const result = await cli(["session", "run", id, "--json"], request);
    // The engine refuses (invalid_request) a run in an ended session before
    // it goes in; a run the session's end cut short is a backend error.
    const refused = result.status === "error" && (result.error || {}).code === "invalid_request";
    const ended = result.status === "error" ? await this.ended(id, !refused) : null;
    return { result, ended };
  },
  async cell(id, language, code, timeoutMs) {
    const result = await cli(["session", "cell", id, "--lang", language, "--code-file", "-", "--json",
                              ...cellTimeout(timeoutMs)], code);
    const refused = result.status === "session_ended" || result.status === "failed";
    const ended = refused || result.status === "died" ? await this.ended(id, !refused) : null;
    return { result, ended };
  },
  async remove(id) {
    await cliRaw(["session", "rm", id]);
  },
  // A session's run takes a command, not code: the policy says how the
  // language runs on the sessions' backend (its argv, and the file its code
  // goes in), and the code goes into the working dir's .echo-sandbox-mcp/
  // as that file.
  async codeRequest(language, code) {
    const { code: status, stdout, stderr } = await cliRaw(["policy", "explain", "--json"],
                                                          JSON.stringify({ language, code, backend: "local" }));
    if (status !== 0) {
      const m = stderr.match(/^echo-sandbox: ([a-z_]+): (.*)$/s);
      return { error: m ? errorResult(m[1], m[2]) : errorResult("backend_unavailable", stderr) };
    }
    const plan = JSON.parse(stdout);
    if (!plan.code_file) return { request: { program: plan.argv[0], args: plan.argv.slice(1) }, files: {} };
    const file = `.echo-sandbox-mcp/${plan.code_file}`;
    const argv = plan.argv.map((a) => (a === plan.code_file ? file : a));
    return { request: { program: argv[0], args: argv.slice(1) }, files: { [file]: code } };
  },
};

// The daemon's /v1/sessions: an unknown or ended session is a 404 that
// names it and says why it ended ("ended", null where unknown); no call
// went in. (Another 404, a route the daemon lacks, is an error like any.)
function daemonGone(status, body) {
  const e = body.error || {};
  if (status !== 404 || !("session" in body || "ended" in body)) {
    return { result: body.exit_code === undefined && e.message ? errorResult(e.code, e.message) : body, ended: null };
  }
  return { result: errorResult(e.code || "invalid_request", e.message || "the session has ended"),
           ended: { reason: body.ended || "gone", taken: false } };
}

const daemonSessions = {
  async create() {
    const { status, body } = await daemonRequest("POST", "/v1/sessions", {
      ...(sessionTtlMs !== undefined && { ttl_ms: sessionTtlMs }),
      ...(sessionIdleMs !== undefined && { idle_timeout_ms: sessionIdleMs }),
    });
    if (status === 200 || status === 201) return body.id;
    const why = body.error ? `${body.error.code}: ${body.error.message}` : `the daemon answered ${status}`;
    throw new Error(`cannot make a session (${why})${status === 404 ? "; ECHO_SANDBOX_MCP_SESSION=none runs " +
                    "each call in a new sandbox" : ""}`);
  },
  async run(id, request) {
    const { status, body } = await daemonRequest("POST", `/v1/sessions/${id}/run`, request);
    return daemonGone(status, body);
  },
  // A cell's result, or (any answer but a 200) a cell that did not go in.
  async cell(id, language, code, timeoutMs) {
    const { status, body } = await daemonRequest("POST", `/v1/sessions/${id}/cell`,
                                                 { language, code, timeout_ms: timeoutMs });
    if (status === 200) return { result: body, ended: null };
    const { result, ended } = daemonGone(status, body);
    const e = result.error || {};
    return { result: { status: ended ? "session_ended" : "failed", code: e.code, message: e.message, language,
                       session: id, stdout: "", stderr: "", value: null, error: null, state_lost: false },
             ended };
  },
  async remove(id) {
    await daemonRequest("DELETE", `/v1/sessions/${id}`);
  },
  // The daemon's session runs take code as a run does.
  async codeRequest(language, code) {
    return { request: { language, code }, files: {} };
  },
};

// ---- sessions: one per connection ----

class ConnectionSession {
  constructor(transport) {
    this.transport = transport;
    this.id = null;
    this.making = null; // the create in flight, shared by the calls that wait on it
    this.closed = false;
  }

  async current() {
    if (this.closed) throw new Error("the connection is closing");
    if (this.id) return this.id;
    if (!this.making) {
      this.making = this.transport.create().then((id) => {
        this.id = id;
        return id;
      }).finally(() => {
        this.making = null;
      });
    }
    return this.making;
  }

  // Lets go of session id (if it is still ours) and removes what it left.
  async drop(id) {
    if (this.id === id) this.id = null;
    await this.transport.remove(id).catch(() => {});
  }

  // Runs fn(id) (which answers { result, ended }) in the session; where the
  // session had ended, in a new one, the result saying that the state was
  // lost. Where it ended during the call, the result says so and the next
  // call makes a new one.
  async call(fn) {
    const id = await this.current();
    let { result, ended } = await fn(id);
    if (!ended) return result;
    await this.drop(id);
    const lost = { id, ended: ended.reason, during_this_call: ended.taken };
    if (!ended.taken) {
      result = (await fn(await this.current())).result;
    }
    return { ...result, state_lost: true, session_lost: lost };
  }

  // Ends the session, if there is one: the id it had, or null.
  async reset() {
    const id = this.id || (this.making && (await this.making.catch(() => null)));
    if (!id) return null;
    await this.drop(id);
    return id;
  }

  async close() {
    this.closed = true;
    const id = this.id || (this.making && (await this.making.catch(() => null)));
    if (id) await this.drop(id);
  }
}

const session = sessionMode === "connection" ? new ConnectionSession(viaDaemon() ? daemonSessions : cliSessions)
                                             : null;

// A relative path inside the working dir, or why not.
function badPath(path) {
  if (path === "" || path.startsWith("/")) return "is not a relative path";
  if (path.split("/").includes("..")) return "goes out of the working dir (..)";
  return null;
}

// Writes files into session id's working dir, one run each (a session's run
// takes no files yet): null, or the answer that stopped it.
async function writeFiles(id, files) {
  for (const [path, content] of Object.entries(files || {})) {
    const bad = badPath(path);
    if (bad) return { result: errorResult("invalid_request", `files: "${path}" ${bad}`), ended: null };
    const answer = await session.transport.run(id, {
      program: "/bin/sh", args: ["-c", 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"', "sh", path],
      stdin: content,
    });
    if (answer.ended || answer.result.status === "error") return answer;
    if (answer.result.exit_code !== 0) {
      return { result: errorResult("invalid_request", `files: cannot write "${path}": ${answer.result.stderr}`),
               ended: null };
    }
  }
  return null;
}

// A run in the session: its files first, then the request.
function sessionRun(request, files) {
  return session.call(async (id) => (await writeFiles(id, files)) || session.transport.run(id, request));
}

// A cell's status as the CLI's exit status says it, for exit_code.
const cellExit = { ok: 0, error: 1, timed_out: 124, interrupted: 130 };

function sessionCell(args) {
  return session.call(async (id) => {
    const wrote = await writeFiles(id, args.files);
    if (wrote) return wrote;
    const answer = await session.transport.cell(id, args.language, args.code, args.timeout_ms);
    answer.result = { ...answer.result, exit_code: cellExit[answer.result.status] ?? 125 };
    return answer;
  });
}

// ---- results as tool results ----

// A model reads the text; a program reads structuredContent. The text is
// bounded (a long log would crowd out the rest of the conversation) and keeps
// the tail as well as the head, since the error that ended a run is most
// often on its last lines.

// How a stream or file's bytes stand in the text: what is not UTF-8 turns
// into U+FFFD (up to 3 bytes of text for 1 of output, hence the weight).
function piece(title, bytes, utf8, notes) {
  return { title, bytes, utf8, notes, weight: utf8 ? 1 : 3 };
}

function streamPiece(result, name) {
  const b64 = result[`${name}_base64`];
  const bytes = b64 !== undefined ? Buffer.from(b64, "base64") : Buffer.from(result[name] || "", "utf8");
  const notes = [];
  if (b64 !== undefined) {
    notes.push(`(not UTF-8: invalid bytes shown as U+FFFD; the bytes are ${name}_base64 in the structured result)`);
  }
  if (result[`${name}_truncated`]) {
    notes.push(`(the engine kept the first ${bytes.length} of ${result[`${name}_bytes`]} bytes: max_output_bytes)`);
  }
  return piece(`${name} (${result[`${name}_bytes`] ?? bytes.length} bytes)`, bytes, b64 === undefined, notes);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
function isUtf8(bytes) {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

// A collected file: shown as text where it is UTF-8; its bytes are always
// in the structured result.
function filePiece(file, i) {
  const name = file.path !== undefined ? file.path : Buffer.from(file.path_base64, "base64").toString("utf8");
  const bytes = Buffer.from(file.base64, "base64");
  const notes = [];
  if (file.truncated) notes.push(`(the engine kept the first ${bytes.length} of ${file.size} bytes)`);
  if (!isUtf8(bytes)) {
    notes.push(`(not UTF-8: its bytes are files[${i}].base64 in the structured result)`);
    return piece(`file ${name} (${file.size} bytes)`, Buffer.alloc(0), true, notes);
  }
  return piece(`file ${name} (${file.size} bytes)`, bytes, true, notes);
}

// Shares budget bytes among demands: the smaller ones whole, what is left
// evenly among the larger ones.
function share(demands, budget) {
  const order = demands.map((_, i) => i).sort((a, b) => demands[a] - demands[b]);
  const got = new Array(demands.length);
  let left = budget;
  let n = demands.length;
  for (const i of order) {
    got[i] = Math.min(demands[i], Math.floor(left / n));
    left -= got[i];
    n -= 1;
  }
  return got;
}

// bytes as text in at most room bytes of output: whole, or a quarter of the
// room for the head and the rest for the tail around a marked cut, both ends
// on UTF-8 character boundaries.
function cut(bytes, room) {
  if (bytes.length <= room) return bytes.toString("utf8");
  let head = Math.floor(room / 4);
  let tail = bytes.length - (room - head);
  while (head > 0 && (bytes[head] & 0xc0) === 0x80) head -= 1;
  while (tail < bytes.length && (bytes[tail] & 0xc0) === 0x80) tail += 1;
  return bytes.subarray(0, head).toString("utf8") + `\n[... ${tail - head} bytes left out ...]\n` +
    bytes.subarray(tail).toString("utf8");
}

// Room for the headers, notes and cut markers around the pieces.
const framing = 1024;

// What a session's result says of state the call found gone.
function sessionLines(result) {
  const lost = result.session_lost;
  if (!lost) return result.state_lost && result.message ? [`state_lost: ${result.message}`] : [];
  const forgot = "without the files and variables of earlier calls";
  const how = lost.during_this_call ? `ended during this call (${lost.ended}); the next call starts`
                                   : `had ended (${lost.ended}); this call ran in`;
  return [`state_lost: session ${lost.id} ${how} a new session, ${forgot}`];
}

function summary(result) {
  const lines = [`exit code ${result.exit_code} (${result.status}${result.reason ? ", " + result.reason : ""}, ` +
                 `${Math.round(result.duration_ms)} ms)`, ...sessionLines(result)];
  if (result.timed_out) lines.push("the run was killed at its deadline");
  for (const warning of result.warnings || []) lines.push(`warning: ${warning}`);
  if (result.fallback) lines.push(`ran on ${result.fallback.backend} instead: ${result.fallback.reason}`);
  return lines;
}

// A cell's: its status, what the engine said of it, the session's news.
function cellSummary(result) {
  const e = result.error;
  const how = result.status === "error" ? `raised ${e.name}: ${e.message}` : result.status;
  const lines = [`${result.language} cell: ${how} (${Math.round(result.duration_ms)} ms)`, ...sessionLines(result)];
  if (result.message && !(result.state_lost && !result.session_lost)) lines.push(result.message);
  return lines;
}

// The text of lines, then pieces sharing what room is left.
function boundedText(lines, pieces) {
  const room = share(pieces.map((p) => p.bytes.length * p.weight),
                     Math.max(0, maxText - framing - Buffer.byteLength(lines.join("\n"))));
  pieces.forEach((p, i) => {
    lines.push(`--- ${p.title} ---`, ...p.notes, cut(p.bytes, Math.floor(room[i] / p.weight)));
  });
  return lines.join("\n");
}

function resultText(result) {
  const pieces = [streamPiece(result, "stdout"), streamPiece(result, "stderr"),
                  ...(result.files || []).map(filePiece)];
  const text = boundedText(summary(result), pieces);
  return result.files_truncated ? `${text}\n(more files matched collect than the result brings back)` : text;
}

function cellText(result) {
  const pieces = [streamPiece(result, "stdout"), streamPiece(result, "stderr")];
  const text = (s) => Buffer.from(s, "utf8");
  if (result.value !== null && result.value !== undefined) {
    pieces.push(piece("value of the last expression", text(result.value), true, []));
  }
  if (result.error && result.error.traceback) pieces.push(piece("traceback", text(result.error.traceback), true, []));
  return boundedText(cellSummary(result), pieces);
}

// Statuses of a cell that did not go in: the engine's errors.
const cellRefused = ["busy", "failed", "session_ended"];

function toolResult(result, cell = false) {
  if (cell ? cellRefused.includes(result.status) : result.status === "error") {
    const e = cell ? { code: result.code, message: result.message } : result.error || {};
    const text = [...sessionLines(result), `${e.code}: ${e.message}${e.retryable ? " (retryable)" : ""}`];
    return { isError: true, structuredContent: result, content: [{ type: "text", text: text.join("\n") }] };
  }
  return { structuredContent: result, content: [{ type: "text", text: cell ? cellText(result) : resultText(result) }] };
}

function toolError(e) {
  return { isError: true, content: [{ type: "text", text: `backend_unavailable: ${e.message}` }] };
}

// A tool's answer: what(), a promise of the engine's result, as a tool result.
async function tool(what, cell = false) {
  try {
    return toolResult(await what(), cell);
  } catch (e) {
    return toolError(e);
  }
}

// ---- the server ----

const common = {
  stdin: z.string().optional().describe("text the program reads on its standard input"),
  files: z.record(z.string()).optional()
    .describe("files written into the working dir first: relative path -> UTF-8 content"),
  // A session's files stay in its working dir for the next call to read.
  ...(!session && {
    collect: z.array(z.string().min(1)).max(64).optional()
      .describe("glob patterns (relative to the working dir) of the files to bring back once the program ends"),
  }),
  timeout_ms: z.number().int().positive().optional().describe("the wall-clock limit in milliseconds"),
};

// The engine's request: fields, the limits, and those of args the request
// takes (a session's run takes no files: they go in first, by runs).
function request(fields, args) {
  const r = { ...fields, limits: { max_output_bytes: maxOutput } };
  const keys = session ? ["stdin", "timeout_ms"] : ["stdin", "files", "collect", "timeout_ms"];
  for (const key of keys) if (args[key] !== undefined) r[key] = args[key];
  return r;
}

const optInt = z.number().int().nullable().optional();
const resultSchema = z.object({
  exit_code: z.number().int().describe("as a shell reports it: 128+N signaled, 124 timed out"),
  status: z.enum(["exited", "signaled", "timed_out", "oom_killed", "error", "ok", "interrupted", "died", "busy",
                  "session_ended", "failed"])
    .describe("a run's (exited ... error: an engine error); a cell's (ok, error: the code raised, timed_out, " +
              "interrupted, died: the kernel did, busy, session_ended, failed)"),
  reason: z.string().optional(),
  signal: optInt,
  killed_by_us: z.boolean().optional(),
  timed_out: z.boolean().optional(),
  duration_ms: z.number().optional(),
  sandbox_type: z.string().optional(),
  isolation: z.string().optional(),
  pod: z.string().optional(),
  stdout: z.string().optional().describe("the whole of stdout, where it is UTF-8"),
  stdout_base64: z.string().optional().describe("the whole of stdout, where it is not UTF-8"),
  stderr: z.string().optional(),
  stderr_base64: z.string().optional(),
  stdout_truncated: z.boolean().optional(),
  stderr_truncated: z.boolean().optional(),
  stdout_bytes: optInt,
  stderr_bytes: optInt,
  cpu_time_ms: optInt,
  memory_peak_bytes: optInt,
  warnings: z.array(z.string()).optional().describe("what the run was degraded by, one entry each"),
  cleanup_error: z.string().optional(),
  fallback: z.object({ backend: z.string(), reason: z.string() }).passthrough().optional(),
  files: z.array(z.object({
    path: z.string().optional(), path_base64: z.string().optional(), size: z.number().int(),
    base64: z.string(), truncated: z.boolean(),
  }).passthrough()).optional().describe("the files collect matched, their bytes in base64"),
  files_truncated: z.boolean().optional(),
  egress: z.array(z.object({
    host: z.string(), port: z.number().int(), allowed: z.boolean(), reason: z.string(),
    bytes_out: z.number().int(), bytes_in: z.number().int(),
  }).passthrough()).optional().describe("with a network allow list: the connections the program tried, each with its verdict"),
  egress_left_off: z.number().int().optional(),
  error: z.object({ code: z.string().optional(), message: z.string(), retryable: z.boolean().optional(),
                    name: z.string().optional(), traceback: z.string().optional() }).passthrough().nullable().optional()
    .describe("a run's engine error {code, message}; what a cell raised {name, message, traceback}"),
  session: z.string().nullable().optional().describe("the session the call ran in"),
  language: z.string().optional(),
  value: z.string().nullable().optional().describe("a cell's value of its last expression, as text"),
  state_lost: z.boolean().optional()
    .describe("the state of earlier calls is gone: the session or the kernel had ended, and a new one took the call"),
  session_lost: z.object({ id: z.string(), ended: z.string(), during_this_call: z.boolean() }).optional()
    .describe("the session that had ended (idle, ttl, memory, deleted, died, gone)"),
  message: z.string().nullable().optional(),
  code: z.string().nullable().optional().describe("a cell's engine error code"),
}).passthrough();

// What a model must know to use the tools well: what persists from call to
// call, and that the text it reads is bounded.
const oneShot = "Each call runs in a new sandbox, gone when the call returns: nothing persists between calls " +
  "(no files, processes, installed packages or variables), so pass what a run needs in files every time. " +
  "The files a run writes come back only through collect.";
const duration = (ms, fallback) => (ms === undefined ? fallback : ms % 60000 ? `${ms / 1000} s` : `${ms / 60000} min`);
const idle = duration(sessionIdleMs, "2 min by default");
const ttl = duration(sessionTtlMs, "10 min by default");
const kept = "Calls run in this connection's session, one sandbox kept for all its calls. What persists from call " +
  "to call: the files of its working dir (its home) and of /tmp (run_code and run_shell alike: what one call " +
  "writes there, the next reads; the rest of the file system is read-only), " +
  `and for run_code in ${kernelLanguages.join(" or ")}, the interpreter's variables, imports and definitions ` +
  "(each such call is a cell of one interpreter per language; the result has the value of its last expression, " +
  "or what it raised: name, message, traceback). What does not persist: processes a call starts (they end with " +
  "the call), the state of other languages' programs (each is a new process; only its files stay). " +
  `The session ends when the connection closes, on reset_session, after ${idle} ` +
  `without a call, or ${ttl} after it began; its state is then gone, and the call that finds it gone runs in a ` +
  "new session and its result says so (state_lost).";
const persistence = session ? kept : oneShot;
const shown = `The text shows at most ${maxText} bytes: longer output keeps its head and its tail around a cut ` +
  "that says how many bytes were left out, and bytes that are not UTF-8 show as U+FFFD. The structured result " +
  "has all of the engine's result (the streams whole, in base64 where they are not UTF-8). An engine error " +
  "(an invalid request, a backend that is not there) is a tool error; a program that fails is a result.";

// run_code in the session: a cell of the language's kernel, or a run of
// the policy's command for it.
function sessionCode(args) {
  if (kernelLanguages.includes(args.language)) {
    if (args.stdin !== undefined) {
      return tool(async () => errorResult("invalid_request", `a ${args.language} cell takes no stdin: ` +
                                          "its code runs in the session's interpreter (pass data in files)"));
    }
    return tool(() => sessionCell(args), true);
  }
  return tool(async () => {
    const c = await session.transport.codeRequest(args.language, args.code);
    return c.error || sessionRun(request(c.request, args), { ...args.files, ...c.files });
  });
}

const server = new McpServer({ name: "echo-sandbox", version: "0.1.0" });

server.registerTool("run_code", {
  title: "Run code in a sandbox",
  description: "Runs code in a language (python, node, ruby, perl, php, lua, bash, ... : see list_languages) in an " +
    `isolated sandbox without network, and returns its exit code, stdout and stderr. ${persistence} ${shown}`,
  inputSchema: { language: z.string().describe("the language, e.g. python"), code: z.string(), ...common },
  outputSchema: resultSchema,
}, async (args) => (session ? sessionCode(args)
                            : tool(() => runRequest(request({ language: args.language, code: args.code }, args)))));

server.registerTool("run_shell", {
  title: "Run a shell command in a sandbox",
  description: "Runs a /bin/sh command line in an isolated sandbox without network, and returns its exit code, " +
    `stdout and stderr. ${persistence} ${shown}`,
  inputSchema: { command: z.string().describe("the shell command line"), ...common },
  outputSchema: resultSchema,
}, async (args) => tool(() => (session ? sessionRun(request({ shell: args.command }, args), args.files)
                                       : runRequest(request({ shell: args.command }, args)))));

server.registerTool("list_languages", {
  title: "List the sandbox's languages",
  description: "Lists the languages run_code takes.",
  inputSchema: {},
  outputSchema: { languages: z.array(z.object({ name: z.string() }).passthrough()) },
}, async () => {
  try {
    const languages = await listLanguages();
    return { structuredContent: { languages },
             content: [{ type: "text", text: languages.map((l) => l.name).join("\n") }] };
  } catch (e) {
    return toolError(e);
  }
});

if (session) {
  server.registerTool("reset_session", {
    title: "Reset the sandbox session",
    description: "Ends this connection's session: the files of its working dir and its interpreters' variables, " +
      "imports and definitions are gone. The next call starts a new, empty session.",
    inputSchema: {},
    outputSchema: { ended: z.string().nullable().describe("the session that ended; null where there was none") },
  }, async () => {
    try {
      const ended = await session.reset();
      return { structuredContent: { ended },
               content: [{ type: "text", text: ended ? `session ${ended} ended; the next call starts a new one`
                                                     : "there was no session; the next call starts one" }] };
    } catch (e) {
      return toolError(e);
    }
  });
}

// The connection's end, however it comes, ends its session: nothing of it
// is left behind.
let closing = null;
function shutdown() {
  closing ||= (session ? session.close() : Promise.resolve()).finally(() => process.exit(0));
  return closing;
}
process.stdin.on("end", shutdown);
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, shutdown);
server.server.onclose = shutdown;

await server.connect(new StdioServerTransport());
