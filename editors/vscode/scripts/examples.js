#!/usr/bin/env node
// The project's examples (../../examples/**/*.kvs) and this grammar.
//
//   node scripts/examples.js check   tokenise every example with vscode-textmate and check that
//                                    no character is left unclassified or marked invalid, that
//                                    CRLF line endings tokenise like LF, and that the snapshot
//                                    copies under tests/snap/examples/ are up to date
//   node scripts/examples.js sync    refresh those copies (then `vscode-tmgrammar-snap -u`
//                                    rewrites their .snap files; `npm run snap:update` does both)
'use strict';
const fs = require('fs');
const path = require('path');
const { tokenizeText } = require('./tokenize');

const ROOT = path.join(__dirname, '..');
const EXAMPLES = path.resolve(ROOT, '..', '..', 'examples');
const COPIES = path.join(ROOT, 'tests', 'snap', 'examples');

function kvsFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  const found = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...kvsFiles(full));
    else if (entry.isFile() && entry.name.endsWith('.kvs')) found.push(full);
  }
  return found.sort();
}

const rel = (file, base) => path.relative(base, file).split(path.sep).join('/');

// Scopes that say nothing about what a character is.
const UNINFORMATIVE = /^(source\.kvs|meta\.statement\.[\w.-]+|meta\.structure\.[\w.-]+)$/;

async function checkTokens(file) {
  const problems = [];
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split(/\r\n|\r|\n/);
  const tokens = await tokenizeText(text);
  tokens.forEach((lineTokens, i) => {
    for (const t of lineTokens) {
      const piece = lines[i].slice(t.start, t.end);
      const where = `${rel(file, EXAMPLES)}:${i + 1}:${t.start + 1}`;
      const bad = t.scopes.find((s) => s.startsWith('invalid.'));
      if (bad) problems.push(`${where}: ${JSON.stringify(piece)} is marked ${bad}`);
      if (piece.trim() && t.scopes.every((s) => UNINFORMATIVE.test(s))) {
        problems.push(`${where}: ${JSON.stringify(piece)} is not recognised (${t.scopes.join(' ')})`);
      }
    }
  });
  const crlf = await tokenizeText(lines.join('\r\n'));
  if (JSON.stringify(crlf) !== JSON.stringify(tokens)) {
    problems.push(`${rel(file, EXAMPLES)}: tokenises differently with CRLF line endings`);
  }
  return problems;
}

function checkCopies(examples) {
  const problems = [];
  const copies = kvsFiles(COPIES);
  const wanted = new Set(examples.map((f) => rel(f, EXAMPLES)));
  for (const file of examples) {
    const name = rel(file, EXAMPLES);
    const copy = path.join(COPIES, name);
    if (!fs.existsSync(copy)) problems.push(`examples/${name} has no snapshot copy`);
    else if (!fs.readFileSync(copy).equals(fs.readFileSync(file))) problems.push(`examples/${name} changed since its snapshot copy`);
    else if (!fs.existsSync(copy + '.snap')) problems.push(`examples/${name} has no .snap file`);
  }
  for (const copy of copies) {
    if (!wanted.has(rel(copy, COPIES))) problems.push(`tests/snap/examples/${rel(copy, COPIES)} is no longer an example`);
  }
  if (problems.length) problems.push('review the grammar, then run `npm run snap:update` and commit tests/snap/');
  return problems;
}

function sync(examples) {
  const wanted = new Set(examples.map((f) => rel(f, EXAMPLES)));
  for (const copy of kvsFiles(COPIES)) {
    if (!wanted.has(rel(copy, COPIES))) {
      fs.rmSync(copy);
      fs.rmSync(copy + '.snap', { force: true });
    }
  }
  for (const file of examples) {
    const copy = path.join(COPIES, rel(file, EXAMPLES));
    fs.mkdirSync(path.dirname(copy), { recursive: true });
    fs.copyFileSync(file, copy);
  }
  console.log(`copied ${examples.length} examples to ${rel(COPIES, ROOT)}`);
}

async function main(command) {
  const examples = kvsFiles(EXAMPLES);
  if (examples.length === 0) throw new Error(`no .kvs files under ${EXAMPLES}`);
  if (command === 'sync') return sync(examples);
  if (command !== 'check') throw new Error('usage: examples.js check|sync');
  const problems = [];
  for (const file of examples) problems.push(...(await checkTokens(file)));
  problems.push(...checkCopies(examples));
  if (problems.length) {
    for (const p of problems) console.error(`✖ ${p}`);
    process.exitCode = 1;
  } else {
    console.log(`✓ ${examples.length} examples tokenise cleanly and their snapshots are current`);
  }
}

main(process.argv[2]).catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
