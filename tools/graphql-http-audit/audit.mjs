// GraphQL-over-HTTP compliance audit of a running server, with graphql-http's auditServer.
//
//   node audit.mjs http://127.0.0.1:8000/graphql      (or GRAPHQL_URL=...; `make audit` does it all)
//
// Prints every audit (MUST / SHOULD / MAY) with its outcome: ok, or notice / warn / error and the
// reason. Exits 1 when any MUST audit fails, 2 when the server cannot be reached; SHOULD and MAY
// failures are reported but do not fail the run.
import { auditServer } from 'graphql-http';

const url = process.argv[2] ?? process.env.GRAPHQL_URL ?? 'http://127.0.0.1:8000/graphql';

let results;
try {
  results = await auditServer({ url });
} catch (err) {
  console.error(`audit of ${url} could not run: ${err?.message ?? err}`);
  process.exit(2);
}

const counts = {};
let mustFailures = 0;
console.log(`GraphQL-over-HTTP audit of ${url}\n`);
for (const result of results) {
  const level = result.name.split(' ', 1)[0];
  counts[level] ??= { ok: 0, notice: 0, warn: 0, error: 0 };
  counts[level][result.status] += 1;
  if (level === 'MUST' && result.status !== 'ok') mustFailures += 1;
  const mark = result.status === 'ok' ? 'ok' : result.status;
  console.log(`${mark.padEnd(6)} ${result.name}`);
  if (result.status !== 'ok') {
    console.log(`       ${result.reason}`);
  }
}

console.log('');
for (const level of ['MUST', 'SHOULD', 'MAY']) {
  const c = counts[level];
  if (!c) continue;
  const total = c.ok + c.notice + c.warn + c.error;
  const failed = total - c.ok;
  console.log(`${level.padEnd(6)} ${c.ok}/${total} ok` + (failed ? `, ${failed} not ok` : ''));
}
const ok = results.filter((r) => r.status === 'ok').length;
console.log(`${ok} of ${results.length} audits ok; ${mustFailures} MUST requirement(s) not met`);
if (mustFailures) {
  console.error(`\n${mustFailures} MUST requirement(s) of the GraphQL-over-HTTP spec failed`);
  process.exit(1);
}
