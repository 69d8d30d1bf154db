#!/usr/bin/env node
// echo-sandbox-mcp: a Model Context Protocol server (stdio) that lets an
// agent run code and shell commands in echo-sandbox.
//
// Tools: run_code (language, code, stdin, files, timeout_ms), run_shell
// (command, stdin, files, timeout_ms) and list_languages.
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
import { spawn } from "node:child_process";
import http from "node:http";
import https from "node:https";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";

const env = process.env;

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

function streamText(result, name) {
  if (result[`${name}_base64`] !== undefined) {
    return `(${result[`${name}_bytes`]} bytes, not UTF-8; base64) ${result[`${name}_base64`]}`;
  }
  return result[name] || "";
}

function toolResult(result) {
  if (result.status === "error") {
    const e = result.error || {};
    return { isError: true, content: [{ type: "text", text: `${e.code}: ${e.message}` }] };
  }
  const lines = [`exit code ${result.exit_code} (${result.status}${result.reason ? ", " + result.reason : ""}, ` +
                 `${Math.round(result.duration_ms)} ms)`];
  if (result.timed_out) lines.push("the run was killed at its deadline");
  lines.push("--- stdout ---", streamText(result, "stdout"));
  if (result.stdout_truncated) lines.push(`(truncated: ${result.stdout_bytes} bytes in all)`);
  lines.push("--- stderr ---", streamText(result, "stderr"));
  if (result.stderr_truncated) lines.push(`(truncated: ${result.stderr_bytes} bytes in all)`);
  return { content: [{ type: "text", text: lines.join("\n") }] };
}

async function tool(request) {
  try {
    return toolResult(await runRequest(request));
  } catch (e) {
    return { isError: true, content: [{ type: "text", text: `backend_unavailable: ${e.message}` }] };
  }
}

// ---- the server ----

const common = {
  stdin: z.string().optional().describe("text the program reads on its standard input"),
  files: z.record(z.string()).optional()
    .describe("files written into the working dir first: relative path -> UTF-8 content"),
  timeout_ms: z.number().int().positive().optional().describe("the wall-clock limit in milliseconds"),
};

function request(fields, args) {
  const r = { ...fields };
  for (const key of ["stdin", "files", "timeout_ms"]) if (args[key] !== undefined) r[key] = args[key];
  return r;
}

const server = new McpServer({ name: "echo-sandbox", version: "0.1.0" });

server.registerTool("run_code", {
  title: "Run code in a sandbox",
  description: "Runs code in a language (python, node, ruby, perl, php, lua, bash, ... : see list_languages) in an " +
    "isolated sandbox without network, and returns its exit code, stdout and stderr.",
  inputSchema: { language: z.string().describe("the language, e.g. python"), code: z.string(), ...common },
}, async (args) => tool(request({ language: args.language, code: args.code }, args)));

server.registerTool("run_shell", {
  title: "Run a shell command in a sandbox",
  description: "Runs a /bin/sh command line in an isolated sandbox without network, and returns its exit code, " +
    "stdout and stderr.",
  inputSchema: { command: z.string().describe("the shell command line"), ...common },
}, async (args) => tool(request({ shell: args.command }, args)));

server.registerTool("list_languages", {
  title: "List the sandbox's languages",
  description: "Lists the languages run_code takes.",
  inputSchema: {},
}, async () => {
  try {
    const list = await listLanguages();
    return { content: [{ type: "text", text: list.map((l) => l.name).join("\n") }] };
  } catch (e) {
    return { isError: true, content: [{ type: "text", text: `backend_unavailable: ${e.message}` }] };
  }
});

await server.connect(new StdioServerTransport());
