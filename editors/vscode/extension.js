// klingspec for VS Code: starts `klingspec lsp` (stdio) for .kvs files.
'use strict';
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client = null;

function serverOptions() {
  const config = vscode.workspace.getConfiguration('klingspec');
  const command = (config.get('serverPath') || '').trim() || 'klingspec';
  const extra = config.get('serverArgs') || [];
  const executable = { command, args: ['lsp', ...extra], transport: TransportKind.stdio };
  return { run: executable, debug: executable };
}

async function startClient() {
  const options = serverOptions();
  client = new LanguageClient('klingspec', 'klingspec', options, {
    documentSelector: [
      { scheme: 'file', language: 'kvs' },
      { scheme: 'untitled', language: 'kvs' },
    ],
    // `use "lib/x.kvs"` and `--vars` files: tell the server when they change on disk.
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.{kvs,json,toml}'),
    },
  });
  try {
    await client.start();
  } catch (err) {
    const command = [options.run.command, ...options.run.args].join(' ');
    vscode.window.showErrorMessage(
      `klingspec: could not start the language server (\`${command}\`): ${err && err.message ? err.message : err}. ` +
        'Install klingspec with its `lsp` extra or set `klingspec.serverPath`.'
    );
  }
}

async function stopClient() {
  if (client) {
    const running = client;
    client = null;
    try {
      await running.stop();
    } catch (_) {
      // it may never have started
    }
  }
}

async function restart() {
  await stopClient();
  await startClient();
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('klingspec.restartServer', restart),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('klingspec.serverPath') || event.affectsConfiguration('klingspec.serverArgs')) {
        restart();
      }
    }),
    { dispose: () => stopClient() }
  );
  await startClient();
}

function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate };
