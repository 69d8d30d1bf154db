#!/usr/bin/env node
// echo-sandbox-mcp: a Model Context Protocol server (stdio) that lets an
// agent run code and shell commands in echo-sandbox.
//
// Tools: run_code (language, code, stdin, files, collect, timeout_ms),
// run_shell (command, stdin, files, collect, timeout_ms) and list_languages.
//
// Where runs go: the daemon at $ECHO_SANDBOX_URL (http://HOST:PORT) or
// $ECHO_SANDBOX_SOCKET (a unix socket), with $ECHO_SANDBOX_TOKEN as its
// bearer token; with neither, `echo-sandbox run --json` ($ECHO_SANDBOX_BIN,
// else echo-sandbox on PATH) for each call, and `echo-sandbox policy
// languages` for the list.
//
// A program that fails is a tool result like any other (its exit code and
// output); an error of the engine (an invalid request, a backend that is not
// there) is a tool error (isError) carrying the engine's code and message.
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

// A size in bytes from the environment, or fallback.
function bytesFromEnv(name, fallback, least) {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  if (!/^[0-9]+$/.test(v) || Number(v) < least) {
    process.stderr.write(`echo-sandbox-mcp: ${name} must be a number of bytes, at least ${least}; got "${v}"\n`);
    process.exit(2);
  }
  return Number(v);
}
// The text of one tool result, at most; and what the engine keeps of each
// stream (the policy may keep less), more than the text so that the text's
// tail is the program's.
const maxText = bytesFromEnv("ECHO_SANDBOX_MCP_MAX_TEXT", 32 * 1024, 2048);
const maxOutput = bytesFromEnv("ECHO_SANDBOX_MCP_MAX_OUTPUT", 8 * 1024 * 1024, 1);

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

function cli(args, input) {
  const bin = env.ECHO_SANDBOX_BIN || "echo-sandbox";
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out = [];
    const err = [];
    child.stdout.on("data", (c) => out.push(c));
    child.stderr.on("data", (c) => err.push(c));
    child.on("error", (e) => reject(new Error(`cannot run ${bin}: ${e.message}`)));
    child.on("close", (code) => {
      const text = Buffer.concat(out).toString("utf8");
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error(`${bin} ${args.join(" ")} exited ${code}: ${Buffer.concat(err).toString("utf8").trim()}`));
      }
    });
    // A child that ends without reading its stdin is judged by its output,
    // not by our write's EPIPE.
    child.stdin.on("error", () => {});
    if (input === undefined) child.stdin.end();
    else child.stdin.end(JSON.stringify(input));
  });
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

function summary(result) {
  const lines = [`exit code ${result.exit_code} (${result.status}${result.reason ? ", " + result.reason : ""}, ` +
                 `${Math.round(result.duration_ms)} ms)`];
  if (result.timed_out) lines.push("the run was killed at its deadline");
  for (const warning of result.warnings || []) lines.push(`warning: ${warning}`);
  if (result.fallback) lines.push(`ran on ${result.fallback.backend} instead: ${result.fallback.reason}`);
  return lines;
}

function resultText(result) {
  const pieces = [streamPiece(result, "stdout"), streamPiece(result, "stderr"),
                  ...(result.files || []).map(filePiece)];
  const lines = summary(result);
  const room = share(pieces.map((p) => p.bytes.length * p.weight),
                     Math.max(0, maxText - framing - Buffer.byteLength(lines.join("\n"))));
  pieces.forEach((p, i) => {
    lines.push(`--- ${p.title} ---`, ...p.notes, cut(p.bytes, Math.floor(room[i] / p.weight)));
  });
  if (result.files_truncated) lines.push("(more files matched collect than the result brings back)");
  return lines.join("\n");
}

function toolResult(result) {
  if (result.status === "error") {
    const e = result.error || {};
    return { isError: true, structuredContent: result,
             content: [{ type: "text", text: `${e.code}: ${e.message}${e.retryable ? " (retryable)" : ""}` }] };
  }
  return { structuredContent: result, content: [{ type: "text", text: resultText(result) }] };
}

function toolError(e) {
  return { isError: true, content: [{ type: "text", text: `backend_unavailable: ${e.message}` }] };
}

async function tool(request) {
  try {
    return toolResult(await runRequest(request));
  } catch (e) {
    return toolError(e);
  }
}

// ---- the server ----

const common = {
  stdin: z.string().optional().describe("text the program reads on its standard input"),
  files: z.record(z.string()).optional()
    .describe("files written into the working dir first: relative path -> UTF-8 content"),
  collect: z.array(z.string().min(1)).max(64).optional()
    .describe("glob patterns (relative to the working dir) of the files to bring back once the program ends"),
  timeout_ms: z.number().int().positive().optional().describe("the wall-clock limit in milliseconds"),
};

function request(fields, args) {
  const r = { ...fields, limits: { max_output_bytes: maxOutput } };
  for (const key of ["stdin", "files", "collect", "timeout_ms"]) if (args[key] !== undefined) r[key] = args[key];
  return r;
}

const optInt = z.number().int().nullable().optional();
const resultSchema = z.object({
  exit_code: z.number().int().describe("as a shell reports it: 128+N signaled, 124 timed out"),
  status: z.enum(["exited", "signaled", "timed_out", "oom_killed", "error"]),
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
  error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean() }).passthrough().optional(),
}).passthrough();

// What a model must know to use the tools well: each call starts from
// nothing, and the text it reads is bounded.
const persistence = "Each call runs in a new sandbox, gone when the call returns: nothing persists between calls " +
  "(no files, processes, installed packages or variables), so pass what a run needs in files every time. " +
  "The files a run writes come back only through collect.";
const shown = `The text shows at most ${maxText} bytes: longer output keeps its head and its tail around a cut ` +
  "that says how many bytes were left out, and bytes that are not UTF-8 show as U+FFFD. The structured result " +
  "has all of the engine's result (the streams whole, in base64 where they are not UTF-8). An engine error " +
  "(an invalid request, a backend that is not there) is a tool error; a program that fails is a result.";

const server = new McpServer({ name: "echo-sandbox", version: "0.1.0" });

server.registerTool("run_code", {
  title: "Run code in a sandbox",
  description: "Runs code in a language (python, node, ruby, perl, php, lua, bash, ... : see list_languages) in an " +
    `isolated sandbox without network, and returns its exit code, stdout and stderr. ${persistence} ${shown}`,
  inputSchema: { language: z.string().describe("the language, e.g. python"), code: z.string(), ...common },
  outputSchema: resultSchema,
}, async (args) => tool(request({ language: args.language, code: args.code }, args)));

server.registerTool("run_shell", {
  title: "Run a shell command in a sandbox",
  description: "Runs a /bin/sh command line in an isolated sandbox without network, and returns its exit code, " +
    `stdout and stderr. ${persistence} ${shown}`,
  inputSchema: { command: z.string().describe("the shell command line"), ...common },
  outputSchema: resultSchema,
}, async (args) => tool(request({ shell: args.command }, args)));

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

await server.connect(new StdioServerTransport());
