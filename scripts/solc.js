#!/usr/bin/env node
// A native-solc stand-in over solcjs (the real compiler as WebAssembly) for py-solc-x, which runs
// `solc --version` and `solc --standard-json` (input on stdin). No native solc installs offline here.
"use strict";
const v8 = require("v8");
v8.setFlagsFromString("--liftoff-only"); // faster start-up, byte-identical output
const fs = require("fs");
const path = require("path");
const root = path.resolve(__dirname, "..");
const solc = require(path.join(root, "node_modules", "solc"));

// Imports resolve against the project root, then node_modules (for @openzeppelin/...).
function findImports(name) {
  for (const base of [root, path.join(root, "node_modules")]) {
    const file = path.join(base, name);
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `File not found: ${name}` };
}

// Exit only once stdout has drained: a pipe is otherwise truncated.
function emit(text) {
  process.stdout.write(text, () => process.exit(0));
}

const args = process.argv.slice(2);
if (args.includes("--version")) {
  emit(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
} else if (args.includes("--standard-json")) {
  // Read stdin asynchronously: a synchronous read of more than 64 KiB fails with EAGAIN.
  const chunks = [];
  process.stdin.on("data", (c) => chunks.push(c));
  process.stdin.on("end", () => {
    const input = Buffer.concat(chunks).toString("utf8");
    emit(solc.compile(input, { import: findImports }));
  });
} else {
  process.stderr.write("usage: solc.js --version | --standard-json < input.json\n");
  process.exit(2);
}
