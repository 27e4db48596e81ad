// Smoke test for extension.js without VS Code: `vscode` and `vscode-languageclient/node` are
// replaced by stubs that record what the extension asks for.
'use strict';
const assert = require('assert');
const Module = require('module');
const path = require('path');

const settings = { serverPath: 'klingspec', serverArgs: [] };
const events = { configListeners: [], commands: {}, errors: [] };
const clients = [];

class FakeClient {
  constructor(id, name, serverOptions, clientOptions) {
    Object.assign(this, { id, name, serverOptions, clientOptions, started: false, stopped: false });
    clients.push(this);
  }
  async start() {
    if (this.serverOptions.run.command === 'missing-klingspec') throw new Error('spawn ENOENT');
    this.started = true;
  }
  async stop() {
    this.stopped = true;
  }
}

const fakeVscode = {
  workspace: {
    getConfiguration: (section) => {
      assert.strictEqual(section, 'klingspec');
      return { get: (key) => settings[key] };
    },
    onDidChangeConfiguration: (listener) => {
      events.configListeners.push(listener);
      return { dispose() {} };
    },
    createFileSystemWatcher: (glob) => ({ glob, dispose() {} }),
  },
  commands: {
    registerCommand: (name, fn) => {
      events.commands[name] = fn;
      return { dispose() {} };
    },
  },
  window: { showErrorMessage: (message) => events.errors.push(message) },
};
const fakeClientLib = { LanguageClient: FakeClient, TransportKind: { stdio: 0, ipc: 1 } };

const load = Module._load;
Module._load = function (request, ...rest) {
  if (request === 'vscode') return fakeVscode;
  if (request === 'vscode-languageclient/node') return fakeClientLib;
  return load.call(this, request, ...rest);
};

(async () => {
  const manifest = require('../package.json');
  const extension = require(path.join('..', manifest.main));
  const context = { subscriptions: [] };
  await extension.activate(context);

  assert.strictEqual(clients.length, 1);
  const [first] = clients;
  assert.ok(first.started);
  assert.deepStrictEqual(first.serverOptions.run, { command: 'klingspec', args: ['lsp'], transport: 0 });
  assert.deepStrictEqual(first.clientOptions.documentSelector.map((d) => d.language), ['kvs', 'kvs']);
  assert.ok(events.commands['klingspec.restartServer'], 'restart command registered');
  const declared = manifest.contributes.commands.map((c) => c.command);
  assert.deepStrictEqual(Object.keys(events.commands).sort(), declared.sort());

  // A new server path restarts the server with it.
  settings.serverPath = '/opt/venv/bin/klingspec';
  settings.serverArgs = ['--log-level', 'debug'];
  for (const listener of events.configListeners) {
    await listener({ affectsConfiguration: (key) => key === 'klingspec.serverPath' });
  }
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(first.stopped);
  const second = clients[clients.length - 1];
  assert.deepStrictEqual(second.serverOptions.run.args, ['lsp', '--log-level', 'debug']);
  assert.strictEqual(second.serverOptions.run.command, '/opt/venv/bin/klingspec');

  // A server that cannot start is reported, not thrown.
  settings.serverPath = 'missing-klingspec';
  await events.commands['klingspec.restartServer']();
  assert.strictEqual(events.errors.length, 1);
  assert.match(events.errors[0], /missing-klingspec lsp/);

  await extension.deactivate();
  console.log('✓ tests/extension.test.js: extension.js starts, restarts and stops `klingspec lsp`');
})().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
