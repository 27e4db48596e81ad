#!/usr/bin/env node
// Tokenise .kvs files with the engine VS Code uses (vscode-textmate + vscode-oniguruma)
// and the grammar this extension contributes.
//
//   node scripts/tokenize.js FILE...   prints [{"file", "lines": [[{"start","end","scopes"}...]...]}] as JSON
//
// Also a module: `await tokenizeText(text)` gives the same per-line token lists.
'use strict';
const fs = require('fs');
const path = require('path');
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const ROOT = path.join(__dirname, '..');
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const contribution = manifest.contributes.grammars.find((g) => g.language === 'kvs');
const GRAMMAR_PATH = path.join(ROOT, contribution.path);

let grammarPromise = null;

function loadGrammar() {
  if (grammarPromise === null) {
    const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm')).buffer;
    const onigLib = oniguruma.loadWASM(wasm).then(() => ({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }));
    const registry = new vsctm.Registry({
      onigLib,
      loadGrammar: async (scopeName) => {
        if (scopeName !== contribution.scopeName) return null;
        return vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR_PATH, 'utf8'), GRAMMAR_PATH);
      },
    });
    grammarPromise = registry.loadGrammar(contribution.scopeName);
  }
  return grammarPromise;
}

// Lines are split like VS Code's text model does: at \r\n, \n or \r.
async function tokenizeText(text) {
  const grammar = await loadGrammar();
  let stack = vsctm.INITIAL;
  return text.split(/\r\n|\r|\n/).map((line) => {
    const result = grammar.tokenizeLine(line, stack);
    stack = result.ruleStack;
    return result.tokens
      .map((t) => ({ start: t.startIndex, end: Math.min(t.endIndex, line.length), scopes: t.scopes }))
      .filter((t) => t.end > t.start);
  });
}

module.exports = { tokenizeText, loadGrammar, GRAMMAR_PATH };

if (require.main === module) {
  (async () => {
    const out = [];
    for (const file of process.argv.slice(2)) {
      out.push({ file, lines: await tokenizeText(fs.readFileSync(file, 'utf8')) });
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  })().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
