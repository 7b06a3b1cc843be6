// Container HEALTHCHECK: exit 0 when GET $FLEET_HEALTH_URL answers 2xx, 1 otherwise. Node's own fetch,
// because the slim images carry no curl or wget. A draining or not-ready service answers 503 and so
// reads as unhealthy, which is what Docker should see.
const url = process.env.FLEET_HEALTH_URL ?? 'http://127.0.0.1:3000/health';
const timeoutMs = Number(process.env.FLEET_HEALTH_TIMEOUT_MS ?? 4000);

try {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) {
    process.stderr.write(`healthcheck: ${url} answered ${res.status}\n`);
    process.exit(1);
  }
  process.exit(0);
} catch (err) {
  process.stderr.write(`healthcheck: ${url}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
