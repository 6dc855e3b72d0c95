#!/usr/bin/env node
// py-solc-x compatible front for solcjs (the official emscripten build of solc).
//
// py-solc-x runs `$SOLCX_BINARY_PATH/solc-v0.8.28 --version` and
// `... --standard-json [--allow-paths ...]` with the input JSON on stdin.  The solcjs CLI
// prints banners on stdout that break the JSON, so this shim calls the compiler library
// directly and writes only the compiler's JSON output.  Installed by `make setup`.
'use strict';
const fs = require('fs');
const path = require('path');

const repoRoot = path.resolve(__dirname, '..');
const solc = require(path.join(repoRoot, 'node_modules', 'solc'));
const args = process.argv.slice(2);

if (args.includes('--version')) {
  const v = solc.version(); // e.g. 0.8.28+commit.7893614a.Emscripten.clang
  process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + v + '\n');
  process.exit(0);
}

if (!args.includes('--standard-json')) {
  process.stderr.write('solc shim: only --version and --standard-json are supported, got: ' + args.join(' ') + '\n');
  process.exit(2);
}

// Imports that brownie did not inline are resolved against the working directory, the repo
// root and node_modules (for @openzeppelin/... remapped paths).
function findImports(importPath) {
  const candidates = [
    path.resolve(process.cwd(), importPath),
    path.resolve(repoRoot, importPath),
    path.resolve(repoRoot, 'node_modules', importPath),
  ];
  for (const c of candidates) {
    if (fs.existsSync(c)) return { contents: fs.readFileSync(c, 'utf8') };
  }
  return { error: 'File not found: ' + importPath };
}

const input = fs.readFileSync(0, 'utf8');
process.stdout.write(solc.compile(input, { import: findImports }));
