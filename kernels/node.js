// echo-sandbox's Node.js kernel: one global scope kept across the cells of a
// session. The protocol is python.py's (read its header): requests on fd 3,
// replies on fd 4, the cell's output on fd 1 and 2 (pipes are written
// synchronously on Linux, so all a cell printed is in them before its reply).
// A cell's value is its completion value (as the REPL shows it); a cell whose
// value is a promise is awaited (a top-level `await` is not taken: wrap it
// in an async function). A SIGINT interrupts the cell running (the scope is
// kept); one while no cell runs is ignored, and one that comes as a script
// returns can be lost (the client then ends the kernel, as the protocol
// says).
// Core modules only, Node.js 18 and later.
'use strict';

const fs = require('fs');
const readline = require('readline');
const util = require('util');
const vm = require('vm');

const REQUESTS = 3;
const REPLIES = 4;

// A cell's code runs as a script of this context, as the REPL's does with
// useGlobal: `var`, `let`, functions and `x = ...` all stay for later cells.
globalThis.require = require;

// An interrupt that arrives while a cell's promise is awaited: it rejects it.
let interruptAwait = null;
process.on('SIGINT', () => {
  if (interruptAwait) interruptAwait();
});

function interrupted(err) {
  return err && err.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED';
}

// The stack as far as the cell's own frames: the kernel's and Node's
// internal frames under them are not the program's.
function cellStack(stack) {
  const lines = String(stack).split('\n');
  const own = lines.findIndex((line) => /^\s+at /.test(line) &&
    (line.includes(__filename) || line.includes('node:')));
  return (own < 0 ? lines : lines.slice(0, own)).join('\n');
}

function errorOf(err) {
  if (err instanceof Error) {
    return { name: err.name, message: err.message, traceback: cellStack(err.stack) };
  }
  return { name: 'Thrown', message: util.inspect(err), traceback: '' };
}

async function settle(value) {
  if (!value || typeof value.then !== 'function') return value;
  return new Promise((resolve, reject) => {
    interruptAwait = () => reject(Object.assign(new Error('interrupted'),
      { code: 'ERR_SCRIPT_EXECUTION_INTERRUPTED' }));
    value.then(resolve, reject);
  }).finally(() => { interruptAwait = null; });
}

async function runCell(id, code) {
  try {
    const value = await settle(vm.runInThisContext(code, {
      filename: `<cell ${id}>`, breakOnSigint: true, displayErrors: false,
    }));
    return { id, status: 'ok', value: value === undefined ? null : util.inspect(value) };
  } catch (err) {
    if (interrupted(err)) return { id, status: 'interrupted' };
    return { id, status: 'error', error: errorOf(err) };
  }
}

function reply(message) {
  let data = Buffer.from(JSON.stringify(message) + '\n');
  while (data.length) data = data.subarray(fs.writeSync(REPLIES, data));
}

async function main() {
  const lines = readline.createInterface({
    input: fs.createReadStream(null, { fd: REQUESTS }), crlfDelay: Infinity,
  });
  for await (const line of lines) {
    let request;
    try {
      request = JSON.parse(line);
      if (typeof request.code !== 'string' || !Number.isInteger(request.id)) {
        throw new TypeError('a request is {"id": integer, "code": string}');
      }
    } catch (err) {
      reply({ id: null, status: 'error', error: errorOf(err) });
      continue;
    }
    reply(await runCell(request.id, request.code));
  }
  process.exit(0); // fd 3 ended: so does the kernel, whatever the cells left pending
}

main();
