/**
 * Entry point for MCP over stdio: `node dist/workers/figma-mcp/stdio-main.js` (what `fleet worker figma
 * --stdio` runs). Configuration comes from the usual file + environment (FIGMA_API_TOKEN, FIGMA_TEAM_ID,
 * FIGMA_API_BASE_URL, FLEET_CONFIG).
 */
import { loadConfig } from '../../config/load.js';
import { runFigmaStdio } from './index.js';

try {
  const config = loadConfig();
  await runFigmaStdio(config.figma_mcp);
} catch (err) {
  process.stderr.write(`figma-mcp: ${(err as Error).message}\n`);
  process.exit(1);
}
