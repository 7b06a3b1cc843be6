/**
 * `fleet capabilities` (the catalog: what the fleet offers now, with schemas) and `fleet mcp` (a stdio MCP
 * server for clients that launch a command, bridged to the manager's `/mcp` gateway).
 */
import type { Command } from 'commander';
import Table from 'cli-table3';
import { FleetError } from '../protocol/errors.js';
import { clientCommand, withClient } from './client-commands.js';
import type { ClientOptions } from './connect.js';
import { resolveManager } from './connect.js';

export function registerCatalogCommands(program: Command): void {
  clientCommand(
    program,
    'capabilities',
    'list what the fleet offers now (or one capability with its schemas)',
  )
    .argument('[capability]', 'show this one in full: description, payload and result JSON Schema')
    .option('--json', 'print JSON instead of the table')
    .action(async (name: string | undefined, opts: ClientOptions & { json?: boolean }) =>
      withClient(opts, async (c) => {
        const catalog = await c.capabilities();
        if (name) {
          const entry = catalog.capabilities.find((e) => e.capability === name);
          if (!entry) {
            const { CapabilityCatalog } = await import('../manager/catalog/capability-catalog.js');
            throw CapabilityCatalog.unknownCapability(name, [
              ...catalog.capabilities.map((e) => e.capability),
              ...catalog.offline,
            ]);
          }
          process.stdout.write(`${JSON.stringify(entry, null, 2)}\n`);
          return;
        }
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(catalog, null, 2)}\n`);
          return;
        }
        const table = new Table({
          head: ['capability', 'workers', 'types', 'flags', 'artifacts', 'description'],
          colWidths: [20, 9, 16, 25, 18, 60],
          wordWrap: true,
        });
        for (const e of catalog.capabilities) {
          const flags = [
            e.readOnly ? 'read-only' : '',
            e.idempotent ? 'idempotent' : '',
            e.payloadSchema ? '' : 'undescribed',
          ]
            .filter(Boolean)
            .join(', ');
          table.push([
            e.capability,
            e.workers,
            e.workerTypes.join(', '),
            flags,
            e.artifactTypes.join(', '),
            e.description,
          ]);
        }
        process.stdout.write(`${table.toString()}\n`);
        if (catalog.offline.length > 0)
          process.stdout.write(
            `no worker online for: ${catalog.offline.join(', ')} (tasks queue until one comes)\n`,
          );
      }),
    );

  clientCommand(
    program,
    'mcp',
    "serve the fleet's MCP gateway on stdin/stdout (for MCP clients that launch a command)",
  ).action(async (opts: ClientOptions) => {
    const manager = resolveManager(opts);
    // Loaded here: the MCP SDK is heavy, and every other command would pay for it at startup.
    const { runStdioBridge } = await import('./mcp-stdio.js');
    const done = await runStdioBridge({
      url: new URL('/mcp', manager.url),
      ...(manager.token ? { token: manager.token } : {}),
    });
    if (done.error)
      throw done.error instanceof FleetError
        ? done.error
        : new FleetError('manager_unreachable', done.error.message);
  });
}
